"""Key paths of a config as messages and docs spell them: `model.lora.r`, `data.train[0].path`."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


def join_key(path: str, key: Any) -> str:
    """`path.key`, or `path[index]` for a list position."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation can hold (through Optional, list, dict and Annotated)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return models_in(get_args(annotation)[0])
    if origin in (list, tuple, set, dict) or origin in (Union, types.UnionType):
        return [cls for arg in get_args(annotation) for cls in models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def all_key_paths(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key path of a model, sections included (`model`, `model.lora`, `model.lora.r`, ...)."""
    paths = []
    for name, info in cls.model_fields.items():
        path = join_key(prefix, name)
        paths.append(path)
        models = models_in(info.annotation)
        if len(models) == 1:
            paths += all_key_paths(models[0], path)
    return paths
