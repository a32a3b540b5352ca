"""`data.chat_template`: a chat template for a base without one, by name (`chatml`) or from a Jinja file.

Training sets it on the tokenizer before anything is rendered, and the tokenizer is saved with every
checkpoint and the consolidated model, so lm-eval's `--apply_chat_template`, `so8t eval` and predict render
with the same template. Reading and checking the file needs no torch (so8t validate runs it).
"""

from __future__ import annotations

from pathlib import Path

# ChatML, as HF and axolotl write it: <|im_start|>role\ncontent<|im_end|>\n per turn
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
NAMED_TEMPLATES = {"chatml": CHATML}


class ChatTemplateProblem(ValueError):
    """data.chat_template names no known template or an unreadable or malformed Jinja file."""


def is_named(value: str) -> bool:
    return value in NAMED_TEMPLATES


def chat_template_text(value: str) -> str:
    """The Jinja text of a named template or of a template file (the path already resolved)."""
    if is_named(value):
        return NAMED_TEMPLATES[value]
    path = Path(value)
    if not path.is_file():
        raise ChatTemplateProblem(
            f"{value} is not a file; give {' or '.join(NAMED_TEMPLATES)} or a Jinja file (relative to the config)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChatTemplateProblem(f"{path} cannot be read ({exc}); give a UTF-8 Jinja file") from exc
    check_template(text, str(path))
    return text


def check_template(text: str, where: str) -> None:
    """A template that does not parse, or renders no message content, is a ChatTemplateProblem."""
    import jinja2

    if not text.strip():
        raise ChatTemplateProblem(f"{where} is empty; write a Jinja chat template that loops over messages")
    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateProblem(f"{where}: line {exc.lineno}: {exc.message} (not valid Jinja)") from exc
    if "messages" not in text:
        raise ChatTemplateProblem(f"{where} never reads `messages`, so it would render no conversation")
