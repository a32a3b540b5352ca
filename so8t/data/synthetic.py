"""Synthetic GSM8K-style word problems: 1 to 3 arithmetic steps with `<<a+b=c>>` annotations and `#### N`.

Small integers and a handful of problem shapes with varied names and objects, so a tiny model can learn
the answer format and the arithmetic. Generation is seeded; the split of a problem (train, validation,
test) is a hash of its text, so splits are disjoint by content whatever the seeds and sizes.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator

from so8t.data.gsm8k import GSM8KExample

NAMES = [
    "Ava",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Vera",
    "Wes",
    "Yuki",
    "Zane",
]
# (plural, container, containers) for countable things
OBJECTS = [
    ("apples", "bag", "bags"),
    ("marbles", "jar", "jars"),
    ("pencils", "box", "boxes"),
    ("stickers", "sheet", "sheets"),
    ("cookies", "tray", "trays"),
    ("books", "shelf", "shelves"),
    ("eggs", "carton", "cartons"),
    ("cards", "pack", "packs"),
    ("shells", "bucket", "buckets"),
    ("buttons", "tin", "tins"),
    ("flowers", "vase", "vases"),
    ("crayons", "case", "cases"),
    ("oranges", "crate", "crates"),
    ("stamps", "album", "albums"),
    ("beads", "pouch", "pouches"),
]
# (singular, plural) of things with a price
ITEMS_FOR_SALE = [
    ("notebook", "notebooks"),
    ("sandwich", "sandwiches"),
    ("ticket", "tickets"),
    ("toy car", "toy cars"),
    ("kite", "kites"),
    ("comic", "comics"),
    ("puzzle", "puzzles"),
    ("mug", "mugs"),
    ("plant", "plants"),
    ("ball", "balls"),
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SPLIT_BUCKETS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10)}  # of 10 buckets


def _step(a: int, op: str, b: int) -> tuple[int, str]:
    """One annotated calculation: returns (result, "a op b = <<a op b=result>>result")."""
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    return result, f"{a} {op} {b} = <<{a}{op}{b}={result}>>{result}"


def _add(rng: random.Random) -> tuple[str, list[str], int]:
    name, other = rng.sample(NAMES, 2)
    plural, _, _ = rng.choice(OBJECTS)
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    c, calc = _step(a, "+", b)
    question = f"{name} has {a} {plural}. {other} gives {name} {b} more {plural}. How many {plural} does {name} have now?"
    return question, [f"{name} has {calc} {plural} now."], c


def _subtract(rng: random.Random) -> tuple[str, list[str], int]:
    name, other = rng.sample(NAMES, 2)
    plural, _, _ = rng.choice(OBJECTS)
    a = rng.randint(10, 60)
    b = rng.randint(1, a - 1)
    c, calc = _step(a, "-", b)
    question = (
        f"{name} had {a} {plural} and gave {b} of them to {other}. How many {plural} does {name} have left?"
    )
    return question, [f"{name} has {calc} {plural} left."], c


def _multiply(rng: random.Random) -> tuple[str, list[str], int]:
    name = rng.choice(NAMES)
    plural, container, containers = rng.choice(OBJECTS)
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    c, calc = _step(a, "*", b)
    question = f"{name} buys {a} {containers} with {b} {plural} in each {container}. How many {plural} does {name} buy?"
    return question, [f"{name} buys {calc} {plural}."], c


def _share(rng: random.Random) -> tuple[str, list[str], int]:
    name = rng.choice(NAMES)
    plural, _, _ = rng.choice(OBJECTS)
    b, each = rng.randint(2, 9), rng.randint(2, 12)
    a = b * each
    c, calc = _step(a, "/", b)
    question = (
        f"{name} shares {a} {plural} equally among {b} friends. How many {plural} does each friend get?"
    )
    return question, [f"Each friend gets {calc} {plural}."], c


def _buy_then_give(rng: random.Random) -> tuple[str, list[str], int]:
    name, other = rng.sample(NAMES, 2)
    plural, container, containers = rng.choice(OBJECTS)
    a, b = rng.randint(2, 9), rng.randint(2, 10)
    total, calc1 = _step(a, "*", b)
    c = rng.randint(1, total - 1)
    left, calc2 = _step(total, "-", c)
    question = (
        f"{name} buys {a} {containers} of {plural} with {b} {plural} in each. {name} gives {c} {plural} "
        f"to {other}. How many {plural} does {name} keep?"
    )
    return question, [f"{name} buys {calc1} {plural}.", f"{name} keeps {calc2} {plural}."], left


def _change(rng: random.Random) -> tuple[str, list[str], int]:
    name = rng.choice(NAMES)
    item, items = rng.choice(ITEMS_FOR_SALE)
    price, count = rng.randint(2, 15), rng.randint(2, 6)
    cost, calc1 = _step(price, "*", count)
    paid = rng.choice([p for p in (20, 50, 100) if p >= cost] or [100])
    change, calc2 = _step(paid, "-", cost)
    question = (
        f"A {item} costs ${price}. {name} buys {count} of them and pays with a ${paid} bill. "
        f"How much change does {name} get in dollars?"
    )
    return question, [f"The {items} cost {calc1} dollars.", f"{name} gets {calc2} dollars in change."], change


def _three_days(rng: random.Random) -> tuple[str, list[str], int]:
    name = rng.choice(NAMES)
    plural, _, _ = rng.choice(OBJECTS)
    d1, d2, d3 = rng.sample(DAYS, 3)
    a, b, k = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 4)
    times = {2: "twice", 3: "three times", 4: "four times"}[k]
    third, calc1 = _step(a, "*", k)
    first_two, calc2 = _step(a, "+", b)
    total, calc3 = _step(first_two, "+", third)
    question = (
        f"{name} collects {a} {plural} on {d1} and {b} {plural} on {d2}. On {d3}, {name} collects {times} "
        f"as many {plural} as on {d1}. How many {plural} does {name} collect in total?"
    )
    steps = [
        f"On {d3}, {name} collects {calc1} {plural}.",
        f"On {d1} and {d2}, {name} collects {calc2} {plural}.",
        f"In total, {name} collects {calc3} {plural}.",
    ]
    return question, steps, total


def _pages(rng: random.Random) -> tuple[str, list[str], int]:
    name = rng.choice(NAMES)
    per_day, days = rng.randint(3, 15), rng.randint(2, 7)
    read, calc1 = _step(per_day, "*", days)
    book = read + rng.randint(5, 60)
    left, calc2 = _step(book, "-", read)
    question = (
        f"A book has {book} pages. {name} reads {per_day} pages every day for {days} days. "
        f"How many pages are left to read?"
    )
    return question, [f"{name} reads {calc1} pages.", f"There are {calc2} pages left."], left


def _groups_plus_extra(rng: random.Random) -> tuple[str, list[str], int]:
    name, other = rng.sample(NAMES, 2)
    plural, container, containers = rng.choice(OBJECTS)
    a, b, extra = rng.randint(2, 8), rng.randint(2, 9), rng.randint(2, 15)
    mine, calc1 = _step(a, "*", b)
    total, calc2 = _step(mine, "+", extra)
    question = (
        f"{name} has {a} {containers} with {b} {plural} in each. {other} has {extra} {plural}. "
        f"How many {plural} do they have together?"
    )
    return question, [f"{name} has {calc1} {plural}.", f"Together they have {calc2} {plural}."], total


SHAPES: list[Callable[[random.Random], tuple[str, list[str], int]]] = [
    _add,
    _subtract,
    _multiply,
    _share,
    _buy_then_give,
    _change,
    _three_days,
    _pages,
    _groups_plus_extra,
]


def _make(rng: random.Random) -> GSM8KExample:
    question, steps, result = rng.choice(SHAPES)(rng)
    return GSM8KExample(question=question, answer="\n".join(steps) + f"\n#### {result}")


def _stream(seed: int) -> Iterator[GSM8KExample]:
    """Unique problems in a seeded order."""
    rng = random.Random(f"so8t-synthetic-{seed}")
    seen: set[str] = set()
    misses = 0
    while True:
        example = _make(rng)
        if example.question in seen:
            misses += 1
            if misses > 100_000:  # pragma: no cover - the problem space is far larger than any request
                raise RuntimeError("synthetic problem space exhausted")
            continue
        seen.add(example.question)
        yield example


def split_of(question: str) -> str:
    """The split a problem belongs to, from a hash of its text (stable across seeds and sizes)."""
    bucket = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:4], "big") % 10
    return next(name for name, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def generate_problems(n: int, seed: int) -> list[GSM8KExample]:
    """n distinct problems, the same for the same seed (splits not considered)."""
    stream = _stream(seed)
    return [next(stream) for _ in range(n)]


def synthetic_split(split: str, n: int, seed: int) -> list[GSM8KExample]:
    """The first n problems of the seeded stream that belong to `split`."""
    if split not in SPLIT_BUCKETS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_BUCKETS)}")
    out: list[GSM8KExample] = []
    if n <= 0:
        return out
    for example in _stream(seed):
        if split_of(example.question) == split:
            out.append(example)
            if len(out) == n:
                break
    return out


def synthetic_splits(sizes: dict[str, int], seed: int) -> dict[str, list[GSM8KExample]]:
    """Problems for several splits at once, disjoint by content."""
    return {split: synthetic_split(split, n, seed) for split, n in sizes.items()}
