"""Secrets never go in a config file: find secret-looking keys and values, report them without echoing them,
and redact them from the resolved config a run writes."""

from __future__ import annotations

import os
import re
from typing import Any

from so8t.config.keys import join_key
from so8t.layout import RESOLVED_CONFIG

_SECRET_WORDS = {"token", "secret", "secrets", "password", "passwd", "apikey", "credential", "credentials"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("auth", "key")}
_WANDB_KEY_RE = re.compile(r"[0-9a-fA-F]{40}")
# a 40-hex commit id is the normal value of a revision
_REVISION_KEYS = {"revision"}
_ENV_SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
REDACTED = "<redacted>"
SECRET_FIX = (
    f"secrets never go in a config file (it is copied to {RESOLVED_CONFIG}); remove it and set "
    "WANDB_API_KEY (or HF_TOKEN for the hub) in the environment instead"
)


def is_secret_key(key: str) -> bool:
    parts = [p for p in re.split(r"[_\-.\s]+", key.lower()) if p]
    return bool(_SECRET_WORDS & set(parts)) or any(
        pair in _SECRET_PAIRS for pair in zip(parts, parts[1:], strict=False)
    )


def looks_like_wandb_key(value: Any) -> bool:
    return isinstance(value, str) and bool(_WANDB_KEY_RE.fullmatch(value.strip()))


def scrub_secrets(node: Any, path: str, errors: list[str], reported: set[str]) -> Any:
    """Report secret-looking keys and values; return a copy without them (so nothing echoes them)."""
    if isinstance(node, dict):
        clean = {}
        for key, value in node.items():
            where = join_key(path, key)
            if isinstance(key, str) and is_secret_key(key):
                errors.append(f"{where}: looks like a secret; {SECRET_FIX}")
                reported.add(where)
                continue
            if looks_like_wandb_key(value) and str(key) not in _REVISION_KEYS:
                errors.append(
                    f"{where}: the value looks like a W&B API key (40 hex characters); {SECRET_FIX}"
                )
                reported.add(where)
                clean[key] = REDACTED
                continue
            clean[key] = scrub_secrets(value, where, errors, reported)
        return clean
    if isinstance(node, list):
        out = []
        for index, value in enumerate(node):
            where = join_key(path, index)
            if looks_like_wandb_key(value):
                errors.append(
                    f"{where}: the value looks like a W&B API key (40 hex characters); {SECRET_FIX}"
                )
                reported.add(where)
                out.append(REDACTED)
            else:
                out.append(scrub_secrets(value, where, errors, reported))
        return out
    return node


def redact_secrets(node: Any, key: str = "") -> Any:
    """A copy with secret-named keys, the environment's secret values and W&B-key-shaped values redacted."""
    env_secrets = {os.environ.get(k) for k in _ENV_SECRETS} - {None, ""}

    def redact(node: Any, key: str) -> Any:
        if isinstance(node, dict):
            return {
                k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v, str(k)))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [redact(v, "") for v in node]
        if isinstance(node, str) and (
            node in env_secrets or (looks_like_wandb_key(node) and key not in _REVISION_KEYS)
        ):
            return REDACTED
        return node

    return redact(node, key)
