"""`data.validation: {split_from: train, size: 0.05 | N}`: a validation split carved out of the training data.

The held-out examples are chosen from the training sources' examples (before any `repeat`), disjoint from what
trains, deterministically from the run seed, and stratified: GSM8K examples and each safety decision (ALLOW,
ESCALATE, REFUSE) give the same share, the rounding remainder going to the groups with the largest fractions.
`size` below 1 is a fraction of the training examples, from 1 up a count. `validation_plan` computes the sizes
from counts alone, so `so8t validate` reports a split that would come out empty before anything loads.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from so8t.data.safety import DECISIONS
from so8t.layout import RunDir
from so8t.layout.atomic import atomic_write_json


class ValidationSplit(BaseModel):
    """`data.validation` as a share of the training data instead of sources of its own."""

    model_config = ConfigDict(extra="forbid")

    split_from: Literal["train"] = Field(description="The split the validation examples are taken from.")
    size: float = Field(
        gt=0,
        description="A fraction of the training examples (below 1, e.g. 0.05) or a count (1 and up, e.g. 200), "
        "stratified by GSM8K and by safety decision; chosen from the run seed.",
    )

    @field_validator("size")
    @classmethod
    def _whole_count(cls, size: float) -> float:
        if size >= 1 and size != int(size):
            raise ValueError(f"size {size} is neither a fraction below 1 nor a whole count; e.g. 0.05 or 200")
        return size

    def count(self, total: int) -> int:
        """How many of `total` training examples go to validation."""
        return round(self.size * total) if self.size < 1 else int(self.size)


@dataclass(frozen=True)
class Plan:
    """How many examples of each group (`gsm8k`, `safety/ALLOW`, ...) go to validation, of how many."""

    sizes: dict[str, int]
    taken: dict[str, int]

    @property
    def validation(self) -> int:
        return sum(self.taken.values())

    @property
    def train(self) -> int:
        return sum(self.sizes.values()) - self.validation


def group_of(fmt: str, example: Any) -> str:
    return "gsm8k" if fmt == "gsm8k" else f"safety/{example.decision}"


def validation_plan(split: ValidationSplit, sizes: dict[str, int]) -> Plan:
    """Stratified allocation of `split.count(total)` over the groups (largest remainder; never a whole group)."""
    total = sum(sizes.values())
    wanted = min(split.count(total), max(total - 1, 0))
    quotas = {g: wanted * n / total if total else 0.0 for g, n in sizes.items()}
    taken = {g: int(q) for g, q in quotas.items()}
    by_remainder = sorted(sizes, key=lambda g: (-(quotas[g] - taken[g]), list(sizes).index(g)))
    for group in by_remainder[: wanted - sum(taken.values())]:
        taken[group] += 1
    return Plan(dict(sizes), taken)


def plan_problems(split: ValidationSplit, sizes: dict[str, int], key: str = "data.validation") -> list[str]:
    """What `so8t validate` reports: a split that would leave validation or training empty."""
    total = sum(sizes.values())
    plan = validation_plan(split, sizes)
    if total and split.count(total) >= total:
        return [
            f"{key}.size: {split.size:g} would take all {total} training examples, leaving none to train on; "
            f"give a fraction below 1 or a count below {total}"
        ]
    if total and plan.validation == 0:
        return [
            f"{key}.size: {split.size:g} of {total} training examples gives an empty validation split; raise it "
            f"(e.g. size: {max(1, total // 10)}) or add training data"
        ]
    return []


def _seeded_rng(seed: int, group: str) -> random.Random:
    digest = hashlib.sha256(f"validation-split:{seed}:{group}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def choose(split: ValidationSplit, groups: Sequence[str], seed: int) -> tuple[set[int], Plan]:
    """(indices of `groups` (one group name per example) held out for validation, the plan)."""
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    order = ["gsm8k", *(f"safety/{d}" for d in DECISIONS)]
    sizes = {g: len(members[g]) for g in sorted(members, key=lambda g: (order + [g]).index(g))}
    plan = validation_plan(split, sizes)
    chosen: set[int] = set()
    for group, count in plan.taken.items():
        chosen.update(_seeded_rng(seed, group).sample(members[group], count))
    return chosen, plan


def record_split(split: ValidationSplit, seed: int, held_out: Any, run_dir: RunDir) -> Path:
    """Write what a run held out of its training data into its data/ folder: the examples (as the split's
    JSONL files) and validation_split.json (the setting, the seed, the count per group, the files), so a rerun
    with the same seed can be checked to hold out the same."""
    from so8t.data.split import write_split_jsonl

    files = write_split_jsonl(held_out, run_dir.data)
    groups: dict[str, int] = {}
    for fmt, examples in (("gsm8k", held_out.gsm8k), ("safety", held_out.safety)):
        for example in examples:
            groups[group_of(fmt, example)] = groups.get(group_of(fmt, example), 0) + 1
    record = {
        "split_from": split.split_from,
        "size": split.size,
        "seed": seed,
        "validation": groups,
        "files": sorted(path.name for path in files.values()),
    }
    return atomic_write_json(run_dir.validation_split, record)
