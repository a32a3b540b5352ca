"""DataConfig: the sources of each split and the training mix; its shard guard and the examples it yields.

Validation (`check`) reads files but never imports torch or goes online; `materialize` loads the examples
of one split when training or evaluation needs them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from so8t.data.chat_templates import ChatTemplateProblem, chat_template_text, is_named
from so8t.data.policy import Policy, PolicyFileError, load_policy
from so8t.data.safety import SPLITS
from so8t.data.shards import resolve_local
from so8t.data.sources import SOURCES, DataSource, SourceForm, SourceSummary
from so8t.data.sources.bundled_safety import SafetySource
from so8t.data.sources.synthetic_gsm8k import SyntheticSource
from so8t.data.split import SplitData
from so8t.data.templates import PromptFormat
from so8t.data.validation_split import ValidationSplit, choose, group_of, plan_problems
from so8t.errors import DataError


def _validation_form(value: Any) -> str:
    return "validation(split_from)" if isinstance(value, (dict, ValidationSplit)) else "validation(sources)"


# data.validation: a list of sources, or a split taken from train (the tags in parentheses stay out of the key
# paths of error messages, so8t.config.messages)
ValidationSetting = Annotated[
    Union[  # noqa: UP007 - tagged members
        Annotated[list[DataSource], Tag("validation(sources)")],
        Annotated[ValidationSplit, Tag("validation(split_from)")],
    ],
    Discriminator(_validation_form),
]


def _default_sources(n: int) -> list[SourceForm]:
    return [SyntheticSource(builtin="synthetic_gsm8k", n=n), SafetySource(builtin="safety")]


class DataConfig(BaseModel):
    """The `data` section of a run config."""

    model_config = ConfigDict(extra="forbid")

    train: list[DataSource] = Field(
        default_factory=lambda: _default_sources(2000), description="Training sources (see the source forms)."
    )
    validation: ValidationSetting = Field(
        default_factory=lambda: _default_sources(100),
        description="Validation sources (may be empty only with train.eval_strategy: no), or "
        "{split_from: train, size: 0.05 | N}: a share of the training examples held out, disjoint from "
        "training, stratified by GSM8K and safety decision and chosen from the run seed.",
    )
    test: list[DataSource] = Field(
        default_factory=lambda: _default_sources(200),
        description="Held-out sources evaluated after training.",
    )
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="A malformed record stops the run (error) or is skipped and counted (skip)."
    )
    max_length: int = Field(256, ge=16, description="Maximum tokens per example (prompt + completion).")
    safety_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of safety examples in the training mix (the rest is GSM8K)."
    )
    prompt_format: Literal["plain", "chat"] = Field(
        "plain",
        description="How prompts reach the model: plain text (`Request: ...` then `Decision:`), or chat: that "
        "text as the user turn of the tokenizer's chat template (for instruct bases). Training records it with "
        "the model, and `so8t eval`, predict and the Python API follow it.",
    )
    system_prompt: str | None = Field(
        None,
        description="System prompt of the chat template (prompt_format: chat); null: the template's own.",
    )
    chat_template: str | None = Field(
        None,
        description="A chat template for a base without one (prompt_format: chat): `chatml`, or a Jinja file "
        "(relative to the config file's folder). Saved with the tokenizer of every checkpoint and the "
        "consolidated model, so evaluation and predict render with it; null: the tokenizer's own.",
    )
    policy: str | None = Field(
        None,
        description="A policy file declaring the categories of requests and the decision each expects; "
        "`so8t validate` reports records whose label disagrees (relative to the config file's folder).",
    )

    @model_validator(mode="after")
    def _system_prompt_needs_chat(self) -> DataConfig:
        if self.system_prompt is not None and self.prompt_format != "chat":
            raise ValueError(
                "system_prompt is set but prompt_format is plain; a system prompt is part of the chat "
                "template, so set data.prompt_format: chat or remove data.system_prompt"
            )
        if self.chat_template is not None and self.prompt_format != "chat":
            raise ValueError(
                "chat_template is set but prompt_format is plain; set data.prompt_format: chat to render "
                "prompts with it, or remove data.chat_template"
            )
        return self

    @property
    def prompt(self) -> PromptFormat:
        """The prompt format training renders with (recorded in so8t.json for evaluation and predict)."""
        return PromptFormat(self.prompt_format, self.system_prompt)

    @property
    def validation_split(self) -> ValidationSplit | None:
        """The validation split taken from training (`split_from: train`), or None for validation sources."""
        return self.validation if isinstance(self.validation, ValidationSplit) else None

    def sources(self, split: str) -> list[SourceForm]:
        """The sources of a split as the config lists them (none for a validation split taken from train)."""
        if split == "validation" and self.validation_split:
            return []
        return getattr(self, split)

    def resolved(self, base_dir: Path) -> DataConfig:
        """A copy whose local paths are resolved against `base_dir` (the config's folder)."""
        update: dict[str, object] = {
            split: [s.resolved(base_dir) for s in self.sources(split)] for split in SPLITS
        }
        if self.validation_split:
            update["validation"] = self.validation_split
        if self.policy:
            update["policy"] = str(resolve_local(self.policy, base_dir))
        if self.chat_template and not is_named(self.chat_template):
            update["chat_template"] = str(resolve_local(self.chat_template, base_dir))
        return self.model_copy(update=update)

    def chat_template_text(self) -> str | None:
        """The Jinja text of data.chat_template, or None; DataError naming the problem."""
        if not self.chat_template:
            return None
        try:
            return chat_template_text(self.chat_template)
        except ChatTemplateProblem as exc:
            raise DataError(f"data.chat_template: {exc}") from None

    def load_policy(self) -> Policy | None:
        """The user's policy (data.policy), or None; DataError naming every problem of the file."""
        if not self.policy:
            return None
        try:
            return load_policy(self.policy)
        except PolicyFileError as exc:
            raise DataError("data.policy: " + "; ".join(exc.problems)) from None

    def check(self) -> tuple[dict[str, list[SourceSummary]], list[str]]:
        """The shard guard over every source (paths already resolved): ({split: summaries}, problems)."""
        report: dict[str, list[SourceSummary]] = {}
        problems: list[str] = []
        policy = None
        if self.policy:
            try:
                policy = load_policy(self.policy)
            except PolicyFileError as exc:
                problems += [f"data.policy: {p}" for p in exc.problems]
        for split in SPLITS:
            entries = report.setdefault(split, [])
            for index, source in enumerate(self.sources(split)):
                source = source.under_policy(policy)
                summaries, found = source.check(split, f"data.{split}[{index}]", self.on_bad_record)
                problems += found
                entries += [_repeated(s, source.repeat) for s in summaries]
        if self.validation_split:
            problems += _split_problems(self.validation_split, report["train"])
        if self.chat_template:
            try:
                chat_template_text(self.chat_template)
            except ChatTemplateProblem as exc:
                problems.append(f"data.chat_template: {exc}")
        return report, problems


def _split_problems(split: ValidationSplit, train: list[SourceSummary]) -> list[str]:
    """A validation split taken from training that would come out empty (when the training data is counted)."""
    if not train or any(s.count is None for s in train):
        return []
    sizes: dict[str, int] = {}
    for summary in train:
        sizes[summary.format] = sizes.get(summary.format, 0) + summary.count // summary.repeat  # type: ignore[operator]
    return plan_problems(split, sizes)


def _repeated(summary: SourceSummary, repeat: int) -> SourceSummary:
    count = None if summary.count is None else summary.count * repeat
    return replace(summary, count=count, repeat=repeat)


def materialize(data: DataConfig, split: str, seed: int) -> SplitData:
    """All examples of `split` ("train", "validation" or "test") from its sources, in order; `seed` is the run
    seed. A source with `repeat: N` contributes each of its examples N times (the config allows that in train
    only). With `validation: {split_from: train}`, train and validation are the two disjoint parts of the
    training sources' examples (so8t.data.validation_split); repeats apply to the training part only."""
    if data.validation_split and split in ("train", "validation"):
        return _split_from_train(data, split, seed)
    out = SplitData(split=split)
    for source, mine in _loaded(data, split, seed):
        out.gsm8k += mine.gsm8k * source.repeat
        out.safety += mine.safety * source.repeat
        out.skipped += mine.skipped
    return out


def _loaded(data: DataConfig, split: str, seed: int) -> list[tuple[SourceForm, SplitData]]:
    policy = data.load_policy()
    return [
        (source, source.under_policy(policy).load(split, seed, data.on_bad_record))
        for source in data.sources(split)
    ]


def _split_from_train(data: DataConfig, split: str, seed: int) -> SplitData:
    loaded = _loaded(data, "train", seed)
    tagged = [
        (fmt, example, source.repeat)
        for source, mine in loaded
        for fmt, examples in (("gsm8k", mine.gsm8k), ("safety", mine.safety))
        for example in examples
    ]
    held_out, _ = choose(data.validation_split, [group_of(f, e) for f, e, _ in tagged], seed)  # type: ignore[arg-type]
    out = SplitData(split=split, skipped=sum(mine.skipped for _, mine in loaded) if split == "train" else 0)
    for index, (fmt, example, repeat) in enumerate(tagged):
        if (index in held_out) != (split == "validation"):
            continue
        getattr(out, fmt).extend([example] * (1 if split == "validation" else repeat))
    return out


# a form defined after this module (a plugin, a test) changes the union the split lists validate against
SOURCES.on_change(lambda: DataConfig.model_rebuild(force=True))
