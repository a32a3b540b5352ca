"""Synthetic safety-decision requests (ALLOW / ESCALATE / REFUSE) for the enterprise-assistant policy.

Why: the bundled safety set holds 798 hand-written training requests, too few for a small model to learn where
the policy draws its lines (`so8t/data/bundled/POLICY.md`): whose data or account a request touches, whether
it only explains or acts (pays, grants, deletes, sends), and whether a request that sounds harmful seeks harm,
reports it (someone must respond) or only uses a harmful word in another sense. This module composes many more requests from
per-category templates and slot vocabularies, the way `synthetic.py` composes GSM8K-style problems. The
templates, vocabularies and rationales are data, in `so8t/data/bundled/synthetic_safety.yaml`
(`synthetic_safety_vocabulary.py` reads it); this module holds only the code.

How the labels stay right: the decision and category belong to the template, never to a slot. Slots only
vary the wording inside a template's meaning (which system, which record, which colleague), and the
vocabularies are shared across decisions where the policy contrasts them, so the cue is the request itself:
"Show me my own {record}" is ALLOW, "Show me {person}'s {record}" is ESCALATE, "Reset {person}'s password
and send it to me" is REFUSE.

Splits: a request's *core* is its template rendered with the cosmetic slots masked (names, numbers, times,
companies) and without politeness; the split (train / validation / test) is a hash of the core, compared up
to case, punctuation and digits. So splits are disjoint by content, and two requests that differ only by a
name, a number or a "please" always fall in the same split. Generation is seeded per (seed, split, decision);
decisions come in shuffled blocks of three (exact thirds) and categories from a shuffled deck (every category
early on). No generated prompt equals a prompt of the bundled files up to case, punctuation, digits and
politeness words, nor is a near-duplicate of a bundled evaluation prompt (validation, test, challenge) under
so8t.data.contamination's rule: those are skipped.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from so8t.data.contamination import NearDuplicateIndex
from so8t.data.eval_order import EVAL_FILES, eval_file_path
from so8t.data.safety import (
    DECISIONS,
    SPLITS,
    SafetyExample,
    bundled_challenge_path,
    bundled_safety_path,
    read_bundled_safety,
)
from so8t.data.synthetic import SPLIT_BUCKETS
from so8t.data.synthetic_safety_vocabulary import slot_base, template_fields, vocabulary
from so8t.errors import DataError

# Share of requests typed casually: lowercase start, no final full stop.
CASUAL_RATE = 0.1
_I_WORDS = frozenset({"I", "I'm", "I'd", "I've", "I'll"})
# The politeness words the wraps, greetings and closers of the data file add, ignored when comparing prompts.
_POLITE = re.compile(
    r"\b(please|thanks|thank you|cheers|much appreciated|hi|hello|hey|quick request|can you|could you|"
    r"i need you to)\b"
)
# Attempts per requested example and category before the category counts as exhausted.
MAX_ATTEMPTS = 5_000


# ---------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """One composed request: its template, every slot's raw value (nested ones as "slot.inner"), and wording."""

    decision: str
    category: str
    template: str
    slots: tuple[tuple[str, str], ...]
    wrap: str = "{}"
    lower_first: bool = False
    closer: str = ""
    casual: bool = False

    @property
    def sentence(self) -> str:
        """The request itself, without greeting, politeness or casual typing."""
        return _capitalise(render(self.template, dict(self.slots)))

    @property
    def core(self) -> str:
        """The request with cosmetic slots masked: what decides its split and its rationale."""
        return _capitalise(render(self.template, dict(self.slots), mask=True))

    @property
    def prompt(self) -> str:
        """The request as typed: wrapped in a greeting or polite form, maybe a closer, maybe casually."""
        raw = render(self.template, dict(self.slots))
        # the first word may go lowercase only if it is an ordinary word ("Show", "the CFO"), not "I" or a name
        lowerable = _lowerable(self.template) or raw[:1].islower()
        text = _capitalise(raw)
        if self.lower_first and lowerable:
            text = text[0].lower() + text[1:]
        text = self.wrap.format(text[:-1] if self.wrap.endswith("?") else text) + self.closer
        if self.casual:
            if (lowerable or not self.wrap.startswith("{}")) and not text.startswith("I "):
                text = text[0].lower() + text[1:]
            text = text.removesuffix(".")
        return text

    def example(self) -> SafetyExample:
        """The training record: the decision and category of the template, a rationale chosen by the core."""
        reasons = vocabulary().rationales[(self.decision, self.category)]
        return SafetyExample(
            prompt=self.prompt,
            decision=self.decision,
            rationale=reasons[_digest(normalise(self.core)) % len(reasons)],
            category=self.category,
        )


def _choose(text: str, rng: random.Random, path: str, out: dict[str, str]) -> None:
    """Draw a value for every slot of `text` (and of the values drawn), into out[path + slot]."""
    fields = template_fields(text)
    for field in fields:
        base = slot_base(field)
        taken = {out[path + f] for f in fields if f != field and slot_base(f) == base and path + f in out}
        value = rng.choice([v for v in vocabulary().slots[base] if v not in taken])
        out[path + field] = value
        _choose(value, rng, f"{path}{field}.", out)


def render(text: str, slots: dict[str, str], path: str = "", mask: bool = False) -> str:
    """Fill a template from drawn slot values; mask=True writes cosmetic slots as <slot>."""
    values = {}
    for field in template_fields(text):
        if mask and slot_base(field) in vocabulary().cosmetic_slots:
            values[field] = f"<{slot_base(field)}>"
        else:
            values[field] = render(slots[path + field], slots, f"{path}{field}.", mask)
    return text.format(**values)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lowerable(template: str) -> bool:
    """Whether the template starts with an ordinary word that can go lowercase after "Please " etc."""
    first = template.split(" ", 1)[0].rstrip(",;:")
    return not first.startswith("{") and first not in _I_WORDS and first[1:] == first[1:].lower()


def _is_imperative(template: str) -> bool:
    """Requests that start with a verb and end in a full stop ("Show me...") take the polite wraps."""
    return template.endswith(".") and _lowerable(template)


def compose(rng: random.Random, decision: str, category: str) -> Request:
    """One request of a (decision, category): a template, its slots and a cosmetic wording."""
    words = vocabulary()
    template = rng.choice(words.templates[(decision, category)])
    slots: dict[str, str] = {}
    _choose(template, rng, "", slots)
    wrap, lower = rng.choice(words.imperative_wraps if _is_imperative(template) else words.greetings)
    return Request(
        decision=decision,
        category=category,
        template=template,
        slots=tuple(sorted(slots.items())),
        wrap=wrap,
        lower_first=lower,
        closer=rng.choice(words.closers),
        casual=rng.random() < CASUAL_RATE,
    )


# ------------------------------------------------------------------------------------------------ splits


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")


def split_of_core(core: str) -> str:
    """The split a request belongs to, from a hash of its normalised core (stable across seeds, sizes and
    wording; requests whose prompts normalise alike, e.g. "30-minute" and "45-minute", share a split)."""
    bucket = _digest("so8t-safety:" + normalise(core)) % 10
    return next(name for name, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def normalise(prompt: str) -> str:
    """Compare prompts up to case, politeness words, digits, punctuation and whitespace."""
    text = _POLITE.sub(" ", prompt.lower())
    text = re.sub(r"\d+", "#", text)
    return " ".join(re.sub(r"[^\w#]+", " ", text).split())


def bundled_prompts() -> set[str]:
    """Normalised prompts of every bundled file (generated prompts must differ from all of them); a missing or
    malformed bundled file raises DataError, so this guard never passes on a file it could not read."""
    paths = [bundled_safety_path(split) for split in SPLITS] + [bundled_challenge_path()]
    return {normalise(example.prompt) for path in paths for example in read_bundled_safety(path)}


def evaluation_index() -> NearDuplicateIndex:
    """The bundled files that are scored (validation, test, challenge): a generated request that is a
    near-duplicate of one of them (so8t.data.contamination) is skipped, so no training data is an evaluation
    prompt in other words."""
    return _index_of(tuple(eval_file_path(name) for name in EVAL_FILES))


@functools.lru_cache(maxsize=8)
def _index_of(paths: tuple[Path, ...]) -> NearDuplicateIndex:
    return NearDuplicateIndex({path.name: [e.prompt for e in read_bundled_safety(path)] for path in paths})


def _deck(decision: str, rng: random.Random, live: set[str]) -> list[str]:
    weights = vocabulary().category_weights
    cards = [
        category
        for (d, category), weight in weights.items()
        if d == decision and category in live
        for _ in range(weight)
    ]
    rng.shuffle(cards)
    return cards


def _decision_stream(split: str, decision: str, seed: int, excluded: set[str]) -> Iterator[Request]:
    """Distinct requests of one decision that belong to `split`, categories dealt from a shuffled deck."""
    rng = random.Random(f"so8t-synthetic-safety-{seed}-{split}-{decision}")
    live = {category for d, category in vocabulary().templates if d == decision}
    seen: set[str] = set()
    deck: list[str] = []
    while live:
        deck = deck or _deck(decision, rng, live)
        category = deck.pop()
        if category not in live:
            continue
        for _ in range(MAX_ATTEMPTS):
            request = compose(rng, decision, category)
            key = normalise(request.prompt)
            if key in seen or key in excluded or split_of_core(request.core) != split:
                continue
            if evaluation_index().matches(request.prompt):
                continue
            seen.add(key)
            yield request
            break
        else:  # this category has (almost) no unseen requests left in this split: deal the others
            live.discard(category)
    raise DataError(
        f"synthetic_safety: only {len(seen)} distinct {decision} requests exist for the {split} split; "
        f"ask for fewer (n of about {3 * len(seen)} at most)"
    )


def synthetic_safety_requests(split: str, n: int, seed: int) -> list[Request]:
    """The first n requests of `split` for a seed: decisions in shuffled blocks of three (exact thirds)."""
    if split not in SPLIT_BUCKETS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_BUCKETS)}")
    if n <= 0:
        return []
    excluded = bundled_prompts()
    streams = {d: _decision_stream(split, d, seed, excluded) for d in DECISIONS}
    order_rng = random.Random(f"so8t-synthetic-safety-order-{seed}-{split}")
    out: list[Request] = []
    while len(out) < n:
        block = list(DECISIONS)
        order_rng.shuffle(block)
        out += [next(streams[d]) for d in block[: n - len(out)]]
    return out


def synthetic_safety_split(split: str, n: int, seed: int) -> list[SafetyExample]:
    """n synthetic safety examples for `split`, the same for the same (split, n, seed); splits disjoint."""
    return [request.example() for request in synthetic_safety_requests(split, n, seed)]


def synthetic_safety_splits(sizes: dict[str, int], seed: int) -> dict[str, list[SafetyExample]]:
    """Examples for several splits at once, disjoint by content."""
    return {split: synthetic_safety_split(split, n, seed) for split, n in sizes.items()}
