"""Every problem of a config file as one readable line naming its key: unknown keys with the closest valid
key, secrets, malformed data sources, and pydantic's messages rewritten. Run configs, rules files and suite
files all go through `validate_mapping`.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from so8t.config.keys import all_key_paths, join_key, models_in
from so8t.config.secrets import scrub_secrets
from so8t.data.sources import SOURCES, DataSource
from so8t.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

LEGACY_QUANT_KEYS = ("load_in_8bit", "load_in_4bit")
# pydantic names union members in error locations
_UNION_MEMBER_TAGS = {"int", "float", "str", "bool", "none", "list", "dict"}


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------------------- unknown keys


def suggest(key: str, path: str, fields: Sequence[str], root: type[BaseModel]) -> str:
    """', did you mean X?' from the siblings, else from anywhere in the root model."""
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    if close:
        return f", did you mean {join_key(path, close[0])}?"
    everywhere = all_key_paths(root)
    same_name = [p for p in everywhere if p.rsplit(".", 1)[-1] == key]
    if same_name:
        return f", did you mean {' or '.join(same_name)}?"
    anywhere = difflib.get_close_matches(key, [p.rsplit(".", 1)[-1] for p in everywhere], n=1, cutoff=0.75)
    if anywhere:
        match = next(p for p in everywhere if p.rsplit(".", 1)[-1] == anywhere[0])
        return f", did you mean {match}?"
    return f"; valid keys here: {', '.join(fields)}"


def _legacy_quantization(node: dict, path: str, errors: list[str], reported: set[str]) -> None:
    """load_in_8bit / load_in_4bit (the transformers flags) name the one field model.quantization."""
    legacy = {k: node[k] for k in LEGACY_QUANT_KEYS if k in node}
    if len(legacy) == 2 and all(v is True for v in legacy.values()):
        errors.append(
            f"{join_key(path, 'load_in_8bit')} and {join_key(path, 'load_in_4bit')} are both true: a base is "
            "quantised to 8 bit or to 4 bit, not both; remove both keys and set model.quantization: 8bit or 4bit"
        )
        reported.update(join_key(path, k) for k in legacy)
        return
    for key, value in legacy.items():
        errors.append(
            f"{join_key(path, key)}: not a so8t key; quantisation is one field, set model.quantization: "
            f"{'none' if value is not True else key[-4:]} (none, 8bit or 4bit) instead"
        )
        reported.add(join_key(path, key))


def _holds_sources(annotation: Any, value: Any = None) -> bool:
    """A list of data sources; or a union with one (data.validation) given anything but a mapping."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is list:
        return get_args(annotation) == (DataSource,)
    members = get_args(annotation) if get_origin(annotation) is Union else ()
    return not isinstance(value, dict) and any(_holds_sources(m) for m in members)


def check_keys(
    node: Any, cls: type[BaseModel], path: str, errors: list[str], reported: set[str], root: type[BaseModel]
) -> None:
    """Unknown keys (with the closest valid key), legacy quantisation keys and malformed data sources."""
    if not isinstance(node, dict):
        return
    fields = list(cls.model_fields)
    _legacy_quantization(node, path, errors, reported)
    for key, value in node.items():
        where = join_key(path, key)
        if key in LEGACY_QUANT_KEYS:
            continue
        if key not in cls.model_fields:
            errors.append(f"{where}: unknown key{suggest(str(key), path, fields, root)}")
            reported.add(where)
            continue
        annotation = cls.model_fields[key].annotation
        if _holds_sources(annotation, value):
            _check_sources(value, where, errors, reported, root)
            continue
        models = models_in(annotation)
        if len(models) != 1:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                check_keys(item, models[0], join_key(where, index), errors, reported, root)
        elif isinstance(value, dict) and get_origin(annotation) is dict:
            for sub_key, item in value.items():
                check_keys(item, models[0], join_key(where, sub_key), errors, reported, root)
        else:
            check_keys(value, models[0], where, errors, reported, root)


def _check_sources(
    value: Any, path: str, errors: list[str], reported: set[str], root: type[BaseModel]
) -> None:
    if value is None:
        errors.append(f"{path}: must be a list of data sources (use [] for none)")
        reported.add(path)
        return
    if not isinstance(value, list):
        errors.append(
            f"{path}: got {short(value)}, must be a list of data sources; write it as a YAML list "
            "(`- item` lines or [item, ...])"
        )
        reported.add(path)
        return
    for index, item in enumerate(value):
        where = join_key(path, index)
        problem = SOURCES.item_problem(item)
        if problem is not None:
            suffix, message = problem
            errors.append(f"{where}{suffix}: {message}")
            reported.add(where)
            continue
        check_keys(item, SOURCES.cls_of(item), where, errors, reported, root)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ pydantic error messages


def _loc_path(loc: tuple[Any, ...]) -> str:
    """Display path of a pydantic error location (drops tagged-union tags and type names)."""
    path = ""
    for part in loc:
        if isinstance(part, str) and (
            "[" in part or "(" in part or part.startswith("function-") or part in _UNION_MEMBER_TAGS
        ):
            continue
        path = join_key(path, part)
    return path


def pydantic_messages(exc: ValidationError, reported: set[str]) -> list[str]:
    """One line per pydantic error, keyed by path, skipping what the key checks already reported."""
    messages, seen = [], set()
    for error in exc.errors(include_url=False):
        where = _loc_path(tuple(error["loc"]))
        path = where or "(top level)"
        if any(path == r or path.startswith(r + ".") or path.startswith(r + "[") for r in reported):
            continue
        if path in seen:
            continue
        if error["type"] == "value_error" and any(
            not where or r.startswith((where + ".", where + "[")) for r in reported
        ):
            # a cross-field check of a section that has a misspelt key: the typo is the problem
            continue
        seen.add(path)
        kind, msg = error["type"], error["msg"]
        msg = msg.removeprefix("Value error, ").replace("Input should be", "must be")
        if kind == "missing":
            messages.append(f"{path}: required key is missing")
        elif kind == "extra_forbidden":
            messages.append(f"{path}: unknown key")
        elif kind in ("value_error", "assertion_error") or msg.startswith("got "):
            messages.append(f"{path}: {msg}")
        else:
            messages.append(f"{path}: got {short(error.get('input'))}, {msg}")
    return messages


# -------------------------------------------------------------------------------------------- validating


def without(raw: dict[str, Any], reported: set[str]) -> dict[str, Any]:
    """A copy of the raw mapping without keys already reported (so pydantic does not report them twice)."""
    raw = copy.deepcopy(raw)

    def drop(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {
                k: drop(v, join_key(path, k)) for k, v in node.items() if join_key(path, k) not in reported
            }
        if isinstance(node, list):
            return [drop(v, join_key(path, i)) for i, v in enumerate(node)]
        return node

    return drop(raw, "")


@dataclass
class Validated(Generic[M]):
    """A mapping checked against a model: the model (None when pydantic rejected it), the mapping without the
    keys already reported, and those keys."""

    model: M | None
    clean: dict[str, Any]
    reported: set[str] = field(default_factory=set)


def validate_mapping(raw: dict[str, Any], cls: type[M], errors: list[str]) -> Validated[M]:
    """Check `raw` against `cls`: secrets, unknown keys, then pydantic; every problem goes to `errors`."""
    reported: set[str] = set()
    raw = scrub_secrets(raw, "", errors, reported)
    check_keys(raw, cls, "", errors, reported, root=cls)
    clean = without(raw, reported)
    try:
        model = cls.model_validate(clean)
    except ValidationError as exc:
        errors += pydantic_messages(exc, reported)
        return Validated(None, clean, reported)
    return Validated(model, clean, reported)


def parse_mapping(raw: dict[str, Any], cls: type[M], source: str) -> M:
    """`raw` as a `cls`, or ConfigError listing every problem (rules files, suite files)."""
    errors: list[str] = []
    checked = validate_mapping(raw, cls, errors)
    if errors or checked.model is None:
        raise ConfigError(errors, source=source)
    return checked.model
