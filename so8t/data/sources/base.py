"""The contract of a data source form: one pydantic schema that owns its check and its loader.

A form is a subclass of `SourceForm` that sets `key`, the mapping key that names it in a config (`path`,
`hub`, or `builtin` for the forms built into so8t, told apart by their `builtin` value). Defining the class
registers it (see registry.py): the config accepts it, `so8t validate` checks it, training loads it, and
docs/config.md lists it. Every form ends with the `repeat` field (`repeat: int = repeat_field()`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from so8t.data.jsonl import OnBadRecord
from so8t.data.mapping import ColumnMap, RecordMapping
from so8t.data.policy import Policy
from so8t.data.sources.registry import SOURCES
from so8t.data.split import SplitData


@dataclass(frozen=True)
class SourceSummary:
    """What one source gives a split, for the summary of `so8t validate`: records of one format and where
    they come from (`files`, `synthetic`, `bundled`, `hub NAME SPLIT`). `count` is None when only loading can
    count them (a hub dataset); `count` includes the repeats. `dropped` counts records whose label the mapping
    drops on purpose (mapped to null). `first_skipped` places and explains the first bad record skipped."""

    format: str
    origin: str
    count: int | None
    skipped: int = 0
    repeat: int = 1
    dropped: int = 0
    first_skipped: str | None = None


def repeat_field() -> Any:
    """`repeat`, the last key of every data source form."""
    return Field(
        1,
        ge=1,
        description="Times each record of this source enters the training mix: weighs a small hand-labelled "
        "set up next to a large generated one. Training sources only (a repeated validation or test record "
        "would count twice in the metrics).",
    )


class SourceForm(BaseModel):
    """Base of the data source forms: a subclass that sets `key` is one, registered by being defined."""

    model_config = ConfigDict(extra="forbid")

    # the mapping key that names the form: "path", "hub" or "builtin" (then the `builtin` field's value)
    key: ClassVar[str] = ""
    # heading of the form in docs/config.md
    title: ClassVar[str] = ""
    # a plain string in a source list is this form (files: the string is the path)
    from_string: ClassVar[bool] = False
    # the user's policy file (data.policy) applies to this form's records: user data, not so8t's own sets
    takes_policy: ClassVar[bool] = False

    # the policy in force, given by the data section through under_policy()
    _policy: Policy | None = PrivateAttr(None)

    if TYPE_CHECKING:
        # declared by each form as its last field (a field here would come first in every form)
        repeat: int

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.key:
            SOURCES.add(cls)

    def declared_format(self) -> str | None:
        """The record format this source declares (gsm8k or safety), or None when its records decide."""
        raise NotImplementedError

    def resolved(self, base_dir: Path) -> SourceForm:
        """This source with local paths resolved against the config's folder (a copy; self is unchanged)."""
        return self

    def under_policy(self, policy: Policy | None) -> SourceForm:
        """This source checking its records against the user's policy (a copy), when the form takes one."""
        if not self.takes_policy or policy is None:
            return self
        copy = self.model_copy()
        copy._policy = policy
        return copy

    def record_mapping(self, prefix: str = "") -> RecordMapping:
        """The `columns` and `labels` of a mapped form (`prefix`: its key in messages, e.g. data.train[0].)."""
        columns = getattr(self, "columns", None) or ColumnMap()
        return RecordMapping(columns, getattr(self, "labels", None), prefix)

    def identity(self) -> dict[str, Any]:
        """What this source gives, independent of where the config or the run lies: two sources with equal
        identities give the same examples. A resumed run compares these (so8t.config.identity)."""
        return self.model_dump(mode="json")

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        """The shard guard for this source, without torch or network: (summaries of what it gives `split`,
        one-line problems that start with `key`, its place in the config such as "data.train[0]")."""
        raise NotImplementedError

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        """The examples this source gives `split` (once; the caller applies `repeat`); `seed` is the run's."""
        raise NotImplementedError
