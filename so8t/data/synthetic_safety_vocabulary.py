"""The data of the synthetic safety requests: so8t/data/bundled/synthetic_safety.yaml, read and checked once.

Why a data file: the vocabularies, templates and rationales are policy, reviewed by policy writers as data
next to the bundled set and its POLICY.md; `synthetic_safety.py` holds only the code that composes them. The
file ships with so8t, so a missing or malformed one is a broken installation: a DataError naming the file and
the key, never a silent fallback.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from types import MappingProxyType
from typing import Any, NoReturn

import yaml

from so8t.data.safety import BUNDLED_DIR, DECISIONS, REINSTALL_HINT
from so8t.errors import DataError

VOCABULARY_PATH = BUNDLED_DIR / "synthetic_safety.yaml"
SECTIONS = ("categories", "slots", "cosmetic_slots", "imperative_wraps", "greetings", "closers")
CATEGORY_KEYS = ("weight", "rationales", "templates")
WRAP_KEYS = ("text", "lowercase_first")

Key = tuple[str, str]


@dataclass(frozen=True)
class SafetyVocabulary:
    """What the generator composes requests from, keyed by (decision, category) where the file nests them.

    templates / rationales / category_weights: every (decision, category) of the policy, in file order.
    slots: slot name -> its values. Wraps: (format with one {}, lowercase the request's first word).
    """

    templates: Mapping[Key, tuple[str, ...]]
    rationales: Mapping[Key, tuple[str, ...]]
    category_weights: Mapping[Key, int]
    slots: Mapping[str, tuple[str, ...]]
    cosmetic_slots: frozenset[str]
    imperative_wraps: tuple[tuple[str, bool], ...]
    greetings: tuple[tuple[str, bool], ...]
    closers: tuple[str, ...]


def template_fields(text: str) -> list[str]:
    """The slots a template or slot value names, in order, each once: "{name} and {name2}" -> [name, name2]."""
    return list(dict.fromkeys(field for _, field, _, _ in Formatter().parse(text) if field))


def slot_base(field: str) -> str:
    """The vocabulary a slot draws from: `{name2}` draws from "name"."""
    return field.rstrip("0123456789")


@functools.cache
def vocabulary() -> SafetyVocabulary:
    """The bundled vocabulary, read and checked once per process."""
    return load_vocabulary(VOCABULARY_PATH)


def load_vocabulary(path: Path) -> SafetyVocabulary:
    """Read and check a vocabulary file; DataError naming the file and key when it is missing or malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: the synthetic safety data file is missing. {REINSTALL_HINT}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: the synthetic safety data file is unreadable ({exc}). {REINSTALL_HINT}"
        ) from exc
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise DataError(f"{path}: not valid YAML{line} ({exc}). {REINSTALL_HINT}") from exc
    return _Reader(path).vocabulary(data)


class _Reader:
    """Turns the parsed file into a SafetyVocabulary, failing at the first problem with its key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> NoReturn:
        raise DataError(f"{self.path}: {key}: {problem}. {REINSTALL_HINT}")

    def mapping(
        self, value: Any, key: str, allowed: tuple[str, ...] = (), required: tuple[str, ...] = ()
    ) -> dict:
        if not isinstance(value, dict) or not value:
            self.fail(key, "expected a non-empty mapping")
        for name in value:
            if not isinstance(name, str):
                self.fail(key, f"key {name!r} is not a string")
            if allowed and name not in allowed:
                self.fail(f"{key}.{name}", f"unknown key (expected {', '.join(allowed)})")
        for name in required:
            if name not in value:
                self.fail(f"{key}.{name}", "missing")
        return value

    def strings(self, value: Any, key: str, allow_empty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(key, "expected a non-empty list of double-quoted strings")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not (allow_empty or item.strip()):
                self.fail(f"{key}[{index}]", f"expected a non-empty double-quoted string, found {item!r}")
        return tuple(value)

    def wraps(self, value: Any, key: str) -> tuple[tuple[str, bool], ...]:
        if not isinstance(value, list) or not value:
            self.fail(key, "expected a non-empty list of {text, lowercase_first} entries")
        out = []
        for index, item in enumerate(value):
            entry = self.mapping(item, f"{key}[{index}]", WRAP_KEYS, WRAP_KEYS)
            text, lower = entry["text"], entry["lowercase_first"]
            if not isinstance(text, str) or text.count("{}") != 1 or template_fields(text):
                self.fail(f"{key}[{index}].text", f"expected a string holding {{}} once, found {text!r}")
            if not isinstance(lower, bool):
                self.fail(f"{key}[{index}].lowercase_first", f"expected true or false, found {lower!r}")
            out.append((text, lower))
        return tuple(out)

    def check_fields(self, text: str, key: str, slots: Mapping[str, tuple[str, ...]]) -> None:
        try:
            fields = [field for _, field, _, _ in Formatter().parse(text) if field is not None]
        except ValueError as exc:
            self.fail(
                key, f"{text!r} is not a valid template ({exc}; a literal brace is written {{{{ or }}}})"
            )
        for field in fields:
            if not field.isidentifier():
                self.fail(key, f"{text!r} holds {{{field}}}; a slot is a name in braces, such as {{name}}")
            if slot_base(field) not in slots:
                self.fail(key, f"{text!r} names the slot {{{field}}}, which has no vocabulary under slots")

    def vocabulary(self, data: Any) -> SafetyVocabulary:
        data = self.mapping(data, "top level", SECTIONS, SECTIONS)
        slots = {
            name: self.strings(values, f"slots.{name}", allow_empty=True)
            for name, values in self.mapping(data["slots"], "slots").items()
        }
        for name, values in slots.items():
            for index, value in enumerate(values):
                self.check_fields(value, f"slots.{name}[{index}]", slots)
        cosmetic = self.strings(data["cosmetic_slots"], "cosmetic_slots")
        for name in cosmetic:
            if name not in slots:
                self.fail("cosmetic_slots", f"{name!r} is not a slot")
        templates: dict[Key, tuple[str, ...]] = {}
        rationales: dict[Key, tuple[str, ...]] = {}
        weights: dict[Key, int] = {}
        decisions = self.mapping(data["categories"], "categories", DECISIONS, DECISIONS)
        for decision, categories in decisions.items():
            for category, entry in self.mapping(categories, f"categories.{decision}").items():
                key = f"categories.{decision}.{category}"
                entry = self.mapping(entry, key, CATEGORY_KEYS, ("rationales", "templates"))
                templates[decision, category] = self.strings(entry["templates"], f"{key}.templates")
                for index, template in enumerate(templates[decision, category]):
                    self.check_fields(template, f"{key}.templates[{index}]", slots)
                rationales[decision, category] = self.strings(entry["rationales"], f"{key}.rationales")
                weight = entry.get("weight", 1)
                if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
                    self.fail(f"{key}.weight", f"expected a whole number of 1 or more, found {weight!r}")
                weights[decision, category] = weight
        return SafetyVocabulary(
            templates=MappingProxyType(templates),
            rationales=MappingProxyType(rationales),
            category_weights=MappingProxyType(weights),
            slots=MappingProxyType(slots),
            cosmetic_slots=frozenset(cosmetic),
            imperative_wraps=self.wraps(data["imperative_wraps"], "imperative_wraps"),
            greetings=self.wraps(data["greetings"], "greetings"),
            closers=self.strings(data["closers"], "closers", allow_empty=True),
        )
