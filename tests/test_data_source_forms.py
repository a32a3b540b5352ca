"""Data source forms are classes: one defined here, outside so8t, is accepted, checked and loaded like the
built-in ones, and the registry's error texts cover it."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
from pydantic import Field

from so8t.config import load_config, summarize
from so8t.data.config import materialize
from so8t.data.gsm8k import GSM8KExample
from so8t.data.sources import SOURCES, SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData
from so8t.errors import ConfigError


@pytest.fixture
def echo_form():
    """A builtin form `echo` that gives each split one GSM8K problem made from its `question`."""

    class EchoSource(SourceForm):
        key: ClassVar[str] = "builtin"
        title: ClassVar[str] = "Echo"

        builtin: Literal["echo"] = Field(description="One fixed problem per split.")
        question: str = Field(description="The problem's question.")
        repeat: int = repeat_field()

        def declared_format(self) -> str | None:
            return "gsm8k"

        def check(self, split, key, on_bad_record):
            if not self.question.endswith("?"):
                return [], [f"{key}.question: {self.question!r} is not a question; end it with '?'"]
            return [SourceSummary("gsm8k", "echo", 1)], []

        def load(self, split, seed, on_bad_record):
            problem = GSM8KExample(f"{self.question} ({split}, seed {seed})", "1 + 1 = 2\n#### 2")
            return SplitData(gsm8k=[problem], split=split)

    yield EchoSource
    SOURCES.remove(EchoSource)


def _config(tmp_path, body: str):
    path = tmp_path / "run.yaml"
    path.write_text(body)
    return path


BODY = """
seed: 5
data:
  train: [{builtin: echo, question: "What is 1 + 1?", repeat: 2}, {builtin: safety}]
  validation: [{builtin: echo, question: "What is 1 + 1?"}]
"""


def test_a_form_defined_outside_so8t_is_validated_summarised_and_loaded(tmp_path, bundled_safety, echo_form):
    cfg = load_config(_config(tmp_path, BODY))
    assert isinstance(cfg.data.train[0], echo_form) and cfg.data.train[0].repeat == 2
    assert "train 2 GSM8K (echo x2) + 3 safety (bundled)" in summarize(cfg)
    train = materialize(cfg.data, "train", cfg.seed)
    assert [e.question for e in train.gsm8k] == ["What is 1 + 1? (train, seed 5)"] * 2
    assert len(train.safety) == 3
    assert cfg.model_dump(mode="json")["data"]["validation"][0]["builtin"] == "echo"


def test_its_schema_and_check_report_through_the_config(tmp_path, bundled_safety, echo_form):
    body = BODY.replace('question: "What is 1 + 1?", repeat: 2', "questoin: x").replace(
        "[{builtin: echo, question", "[{builtin: ehco, question"
    )
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, body))
    assert info.value.errors == [
        "data.train[0].questoin: unknown key, did you mean data.train[0].question?",
        "data.validation[0].builtin: unknown builtin 'ehco', did you mean echo? "
        "(builtins: echo, safety, synthetic_gsm8k, synthetic_safety)",
        "data.train[0].question: required key is missing",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, BODY.replace("What is 1 + 1?", "Two")))
    assert info.value.errors == [
        "data.train[0].question: 'Two' is not a question; end it with '?'",
        "data.validation[0].question: 'Two' is not a question; end it with '?'",
    ]


def test_a_removed_form_is_no_longer_accepted(tmp_path, bundled_safety, echo_form):
    SOURCES.remove(echo_form)
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, BODY))
    assert info.value.errors[0].startswith("data.train[0].builtin: unknown builtin 'echo'")
