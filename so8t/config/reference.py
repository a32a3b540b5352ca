"""docs/config.md, generated from the models: every key of a run config with its type, default and
description, then every data source form. Regenerate with `python -m so8t.config.reference > docs/config.md`.
"""

from __future__ import annotations

import json
import sys
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from so8t.config.keys import join_key, models_in
from so8t.config.run import RunConfig
from so8t.data.sources import SOURCES, DataSource

COMMAND = "python -m so8t.config.reference > docs/config.md"


def _type_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is DataSource:
        return "data source"
    if origin is Annotated:
        return _type_text(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a) for a in parts)
        return text + (" or null" if len(parts) < len(args) else "")
    if origin is list:
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            return "list of mappings"
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _constraints(info: Any) -> str:
    words = []
    for meta in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >=")):
            value = getattr(meta, attr, None)
            if value is not None:
                words.append(f"{sign} {value}")
    return f" ({', '.join(words)})" if words else ""


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list):
        value = [v.model_dump(exclude_defaults=True) if isinstance(v, BaseModel) else v for v in value]
    return f"`{json.dumps(value)}`"


def _rows(cls: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, info in cls.model_fields.items():
        path = join_key(prefix, name)
        models = models_in(info.annotation)
        description = (info.description or "").replace("|", "\\|")
        rows.append(
            f"| `{path}` | {_type_text(info.annotation)}{_constraints(info)} | {_default_text(info)} | "
            f"{description} |"
        )
        if len(models) == 1:
            rows += _rows(models[0], f"{path}[]" if get_origin(info.annotation) is list else path)
    return rows


def config_reference_markdown() -> str:
    """docs/config.md: every key with its type, default and description, generated from the models."""
    header = "| key | type | default | description |\n|---|---|---|---|"
    lines = [
        "# Run config reference",
        "",
        "Generated from the pydantic models in `so8t/config/` and `so8t/data/` (the data section and the",
        f"source forms); regenerate with `{COMMAND}`. Unknown keys are errors.",
        "Override any key on the command line with `--set a.b=c` (values are read as YAML). Relative paths are",
        "resolved against the config file's folder. Secrets never go in a config: set `WANDB_API_KEY` (and",
        "`HF_TOKEN`) in the environment.",
        "",
        "A config may start from a parent: `base: PARENT.yaml` (relative to the file) takes every key of the",
        "parent, then the config's own keys on top. Mappings merge key by key; lists (such as `data.train`) and",
        "values are replaced whole; `key: null` removes the parent's value so its default applies. A parent's",
        "relative paths still name the files beside the parent. `so8t validate CONFIG --print` shows the merged,",
        "resolved config. The ablations under `configs/ablations/` are written this way.",
        "",
        header,
        *_rows(RunConfig, ""),
        "",
        "## Data sources",
        "",
        "Each item of `data.train`, `data.validation` and `data.test` takes one of these forms. A plain string",
        "is a path or glob whose format is detected from the records (`{question, answer}` is GSM8K,",
        "`{prompt, decision}` is safety). Every pattern must match at least one non-empty file of well-formed",
        "records; `so8t validate` checks this before any model loads.",
        "",
    ]
    for cls in SOURCES.forms():
        lines += [f"### {cls.title}", "", header, *_rows(cls, ""), ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(config_reference_markdown() + "\n")
