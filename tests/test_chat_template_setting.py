"""`data.chat_template`: a chat template for a base without one, by name (chatml) or from a Jinja file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from so8t.config import load_config
from so8t.data.chat_templates import CHATML
from so8t.errors import ConfigError


def _config(tmp_path: Path, **data) -> Path:
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"output_dir": str(tmp_path / "run"), "data": {"prompt_format": "chat", **data}}
    path.write_text(yaml.safe_dump(body))
    return path


def test_chatml_by_name_and_a_jinja_file_relative_to_the_config(tmp_path):
    from transformers import AutoTokenizer

    from so8t.model.base import resolve_base_path

    assert load_config(_config(tmp_path, chat_template="chatml")).data.chat_template_text() == CHATML
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    (tmp_path / "configs" / "mine.jinja").write_text(template)
    cfg = load_config(_config(tmp_path, chat_template="mine.jinja"))
    assert cfg.data.chat_template == str(tmp_path / "configs" / "mine.jinja")
    assert cfg.data.chat_template_text() == template
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_path("embedded:tiny"))
    tokenizer.chat_template = CHATML
    rendered = cfg.data.prompt.render(tokenizer, "Request: hi\nDecision:")
    assert rendered == "<|im_start|>user\nRequest: hi\nDecision:<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    ("value", "content", "message"),
    [
        (
            "missing.jinja",
            None,
            "data.chat_template: .*missing.jinja is not a file; give chatml or a Jinja file",
        ),
        (
            "bad.jinja",
            "{% for m in messages %}",
            "data.chat_template: .*bad.jinja: line 1: .*not valid Jinja",
        ),
        ("none.jinja", "hello", "never reads `messages`"),
    ],
)
def test_a_template_file_that_cannot_render_is_a_config_error(tmp_path, value, content, message):
    path = _config(tmp_path, chat_template=value)
    if content is not None:
        (path.parent / value).write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_chat_template_needs_chat_prompts(tmp_path):
    with pytest.raises(ConfigError, match="chat_template is set but prompt_format is plain"):
        load_config(_config(tmp_path, chat_template="chatml", prompt_format="plain"))
