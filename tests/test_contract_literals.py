"""Every contract literal is written once: the file and format names of run directories, checkpoints and
consolidated folders live in the so8t/layout/ package (the cache's own names in so8t/cache.py), and every
other module of the package imports them. The scan reads string constants from the AST, so docstrings may still name the
files they describe."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_SOURCES = [REPO / "so8t", REPO / "tasks"]

# Patterns searched in every string constant (f-string pieces included) outside the owning module.
LAYOUT_LITERALS = [
    r"so8t_state\.safetensors",
    r"so8t_safety_head\.safetensors",
    r"config\.resolved\.yaml",
    r"trainer_state\.json",
    r"adapter_config\.json",
    r"adapter_model\.",
    r"^(checkpoints|consolidated)$",
    r"SO8T_(GSM8K|SAFETY)_DATA",
    r"results\.json",
    r"^(results|samples)_(\*|$)",
    r"^(gate\.md|samples\.jsonl|report\.md|report/curves\.png)$",
    r"task_loss",
]
# Names layout builds from its constants (checkpoint_name, RunDir, split_file_name): spelled out nowhere.
LAYOUT_BUILT_NAMES = [r"^checkpoint-", r"checkpoints/", r"consolidated/", r"_test\.jsonl"]
CACHE_LITERALS = [r"SO8T_CACHE_DIR", r"\.tmp-", r"^\.cache$"]
# so8t.json's own names, in so8t/layout/so8t_json.py; the staging prefix, in so8t/layout/atomic.py.
SO8T_JSON_LITERALS = [r"so8t\.json", r"so8t-checkpoint", r"so8t-consolidated"]
ATOMIC_LITERALS = [r"\.staging-"]
# An owner is a module or a package folder (its modules together).
DEFINED = {
    "so8t/layout/": LAYOUT_LITERALS + SO8T_JSON_LITERALS + ATOMIC_LITERALS,
    "so8t/cache.py": CACHE_LITERALS,
}
OWNERS = {**DEFINED, "so8t/layout/": DEFINED["so8t/layout/"] + LAYOUT_BUILT_NAMES}


def owns(owner: str, relative: str) -> bool:
    return relative.startswith(owner) if owner.endswith("/") else relative == owner


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def string_constants(source: str) -> list[tuple[int, str]]:
    """(line, text) of every str/bytes constant in `source` that is not a docstring."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in skip:
            value = node.value.decode("utf-8", "replace") if isinstance(node.value, bytes) else node.value
            found.append((node.lineno, value))
    return found


def contract_literals_in(source: str, patterns: list[str]) -> list[tuple[int, str]]:
    """(line, literal) of each string constant that matches one of `patterns`."""
    return [
        (line, text) for line, text in string_constants(source) if any(re.search(p, text) for p in patterns)
    ]


def _package_files() -> list[Path]:
    return sorted(path for root in PACKAGE_SOURCES for path in root.rglob("*.py"))


def test_contract_literals_appear_only_in_their_owning_module():
    misplaced = []
    for path in _package_files():
        relative = path.relative_to(REPO).as_posix()
        others = [p for owner, patterns in OWNERS.items() if not owns(owner, relative) for p in patterns]
        for line, text in contract_literals_in(path.read_text(encoding="utf-8"), others):
            misplaced.append(f"{relative}:{line}: {text!r}")
    assert not misplaced, (
        "contract literals outside so8t/layout/ / so8t/cache.py (import them):\n" + "\n".join(misplaced)
    )


@pytest.mark.parametrize("owner", sorted(DEFINED))
def test_every_contract_pattern_is_defined_in_its_owner(owner):
    """A pattern that matches nothing in its owner has gone stale (a renamed constant), so the scan above
    would no longer guard it."""
    files = sorted((REPO / owner).rglob("*.py")) if owner.endswith("/") else [REPO / owner]
    constants = [text for path in files for _, text in string_constants(path.read_text(encoding="utf-8"))]
    stale = [p for p in DEFINED[owner] if not any(re.search(p, text) for text in constants)]
    assert not stale, f"{owner} defines nothing matching {stale}"


def test_the_scan_flags_a_restated_literal_but_not_a_docstring():
    source = '''
"""Reads so8t.json."""

def save(folder):
    """Writes so8t.json and so8t_state.safetensors."""
    return folder / f"{'x'}/so8t.json", "checkpoint-" + "10", "plain text"
'''
    found = contract_literals_in(source, [p for patterns in OWNERS.values() for p in patterns])
    assert sorted(text for _, text in found) == ["/so8t.json", "checkpoint-"]
