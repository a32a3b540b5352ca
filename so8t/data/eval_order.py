"""The order of the bundled evaluation files, so that `--limit` keeps them balanced over decisions.

Why: lm-eval's `--limit N` scores the first N documents of a file, in file order. A file sorted by decision
tests one class only (`--limit 40` on a sorted challenge set is 40 ALLOW requests). In this order the
decisions come in rounds of three, one of each (the decision that opens a round rotates, so no position
always holds the same class): every prefix of 3k records holds k of each decision. Within a decision, each
category's records sit at evenly spaced places, so a prefix also samples the categories in proportion. The
order is a function of the records and of the order of each category's records in the input, so applying it
to an ordered file changes nothing. Training files keep their own order: training shuffles them.

    python -m so8t.data.eval_order    # rewrites the bundled validation, test and challenge files in order
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from so8t.data.safety import DECISIONS, bundled_challenge_path, bundled_safety_path

# The bundled files that are scored (and so may be cut by --limit); the training split is shuffled instead.
EVAL_FILES = ("validation", "test", "challenge")


def eval_file_path(name: str) -> Path:
    return bundled_challenge_path() if name == "challenge" else bundled_safety_path(name)


def _spread_categories(records: list[dict]) -> list[dict]:
    """One decision's records, each category's j-th of n at the relative place (j + 0.5) / n."""
    by_category: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_category[record.get("category") or ""].append(record)
    placed = [
        ((index + 0.5) / len(items), category, index, record)
        for category, items in by_category.items()
        for index, record in enumerate(items)
    ]
    return [record for *_, record in sorted(placed, key=lambda item: item[:3])]


def balanced_order(records: list[dict]) -> list[dict]:
    """The records in rounds of one ALLOW, one ESCALATE and one REFUSE, categories spread out.

    Raises ValueError when the decisions are not equally many (no order could balance every prefix).
    """
    by_decision = {decision: [r for r in records if r["decision"] == decision] for decision in DECISIONS}
    sizes = {decision: len(items) for decision, items in by_decision.items()}
    if len(set(sizes.values())) != 1 or sum(sizes.values()) != len(records):
        raise ValueError(f"a balanced order needs equally many records of each decision, got {sizes}")
    spread = {decision: _spread_categories(items) for decision, items in by_decision.items()}
    ordered = []
    for round_index in range(sizes[DECISIONS[0]]):
        shift = round_index % len(DECISIONS)
        for decision in DECISIONS[shift:] + DECISIONS[:shift]:
            ordered.append(spread[decision][round_index])
    return ordered


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def main() -> None:
    for name in EVAL_FILES:
        path = eval_file_path(name)
        write_records(path, balanced_order(read_records(path)))
        print(f"{path}: in balanced order")


if __name__ == "__main__":
    main()
