"""The package's layers: a module imports only its own or a lower layer, and packages form no cycle.

Every import statement counts, also the lazy ones inside functions and those under TYPE_CHECKING, since each
says which layer the code depends on. The order is the one docs/architecture.md gives.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Lowest first. A unit is a package or module; a module belongs to the longest unit its name starts with.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("so8t.errors", "so8t.layout", "so8t.cache", "so8t.progress"),
    ("so8t.data",),
    ("so8t.config",),
    ("so8t.model",),
    ("so8t.train",),
    ("so8t.consolidate", "so8t.export"),
    ("so8t.lmeval", "so8t.tasks"),
    ("so8t.results",),
    (
        "so8t.responses",
        "so8t.predict",
        "so8t.llamacpp_agent",
        "so8t.pipeline",
        "so8t.cli",
        "so8t.__main__",
        "so8t",
    ),
)
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str | None:
    """The unit a dotted module name belongs to (None outside the package)."""
    matches = [u for u in LAYER_OF if module == u or module.startswith(u + ".")]
    return max(matches, key=len) if matches else None


def source_modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the package and of so8t.tasks (the top-level tasks/)."""
    found = {}
    for root, prefix in ((REPO / "so8t", "so8t"), (REPO / "tasks", "so8t.tasks")):
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, node.lineno))
            # `from so8t import model` imports the submodule so8t.model
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if base == "so8t"]
    return out


def import_edges() -> list[tuple[str, str, str, int]]:
    """(importing unit, imported unit, file, line) for every import between two different units."""
    edges = []
    for module, path in source_modules().items():
        source = unit_of(module)
        for target_module, line in imports_of(module, path):
            target = unit_of(target_module)
            if target is None or target == source:
                continue
            if target == "so8t" and target_module != "so8t":
                continue  # `from so8t import x` of a submodule: counted as that submodule above
            edges.append((source, target, str(path.relative_to(REPO)), line))
    return edges


def test_every_package_module_is_in_a_layer():
    assert all(unit_of(m) is not None for m in source_modules())


def test_no_module_imports_a_higher_layer():
    back_edges = [
        f"{file}:{line}: {source} (layer {LAYER_OF[source]}) imports {target} (layer {LAYER_OF[target]})"
        for source, target, file, line in import_edges()
        if LAYER_OF[target] > LAYER_OF[source]
    ]
    assert not back_edges, "\n".join(back_edges)


def test_units_form_no_import_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target, _, _ in import_edges():
        graph[source].add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = sorted(unit for unit in list(graph) if reaches(unit, unit, set()))
    assert not cycles, f"units on an import cycle: {cycles}"


@pytest.mark.parametrize(
    ("source", "statement", "expected"),
    [
        ("so8t.layout", "from so8t.model.so8t import SO8TModel", "back edge"),
        ("so8t.data.safety", "import so8t.config", "back edge"),
        ("so8t.train.run", "from so8t.model import base", None),
        ("so8t.results.gate", "from so8t.config import GateConfig", None),
    ],
)
def test_the_checker_sees_a_back_edge(tmp_path, source, statement, expected):
    """The walk itself works: a planted import from a lower to a higher layer is found."""
    path = tmp_path / "planted.py"
    path.write_text(statement + "\n")
    targets = [unit_of(name) for name, _ in imports_of(source, path)]
    higher = [t for t in targets if t and LAYER_OF[t] > LAYER_OF[unit_of(source)]]
    assert bool(higher) == (expected == "back edge")
