"""The bundled safety set: the hand-written requests shipped with so8t, one file per split."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from so8t.data.jsonl import OnBadRecord
from so8t.data.safety import bundled_safety_path, read_safety_counted
from so8t.data.shards import ShardProblem, check_shard
from so8t.data.sources.base import SourceForm, SourceSummary, repeat_field
from so8t.data.split import SplitData


class SafetySource(SourceForm):
    key: ClassVar[str] = "builtin"
    title: ClassVar[str] = "Bundled safety set"

    builtin: Literal["safety"] = Field(
        description="The safety set bundled with so8t, for the split of the list key."
    )
    repeat: int = repeat_field()

    def declared_format(self) -> str | None:
        return "safety"

    def check(
        self, split: str, key: str, on_bad_record: OnBadRecord
    ) -> tuple[list[SourceSummary], list[str]]:
        # the shipped set is held to "error" whatever the policy: a bad line there is a broken install
        path = bundled_safety_path(split)
        try:
            shard = check_shard(path, "safety", "error")
        except FileNotFoundError:
            return [], [f"{key}: the bundled safety split is missing ({path}); reinstall so8t"]
        except ShardProblem as exc:
            return [], [f"{key}: the bundled safety split {path} is unusable ({exc.what}); reinstall so8t"]
        return [SourceSummary("safety", "bundled", shard.records)], []

    def load(self, split: str, seed: int, on_bad_record: OnBadRecord) -> SplitData:
        examples, skipped = read_safety_counted(bundled_safety_path(split), "error")
        return SplitData(safety=examples, skipped=skipped, split=split)
