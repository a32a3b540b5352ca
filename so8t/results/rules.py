"""The files `so8t gate` reads: gate rules files (`evals/rules/NAME.yaml`) and benchmark suites
(`evals/suites/NAME.yaml`), importable without torch. Both go through the config's YAML reader and error path,
so a misspelt key anywhere gets the closest valid key. The gate schema itself (GateConfig, GateRule, RulesFile)
is the config's (so8t.config.gates), shared with the `gates` section of a run config.

A path in a rules or suite file (the baseline, an include) is relative to that file, wherever the command runs.
A rules file, and a suite's `gates`, may `include:` other rules files: their rules come first, with task names
renamed where the include says so, and the whole gate is then checked as one GateConfig. An included file
contributes its rules only; it may not set a baseline, tolerance or z.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from so8t.config import GateConfig, parse_mapping, read_yaml
from so8t.config.gates import RulesFile
from so8t.config.section import Section
from so8t.data.shards import resolve_local
from so8t.errors import ConfigError

# keys only a suite has: a file with any of them is read (and checked) as a suite
SUITE_KEYS = frozenset({"name", "tasks", "gates", "description", "baseline_command"})


class SuiteConfig(Section):
    """A benchmark suite for CI: which tasks to evaluate, how, and the gate to apply."""

    name: str = Field(description="Suite name (usually the file name without .yaml).")
    description: str = Field("", description="What the suite checks, in a sentence or two.")
    tasks: list[str] = Field(min_length=1, description="lm-eval task names (so8t tasks or any lm-eval task).")
    baseline_command: str | None = Field(
        None,
        description="The command (run from the repository root) that writes the suite's baseline when it "
        "is not shipped; shown when the baseline is missing.",
    )
    gates: RulesFile | None = Field(
        None, description="The regression gate applied to the suite's results (it may include rules files)."
    )


# what an included file may not set: the including gate's own settings
INCLUDER_ONLY_KEYS = ("baseline", "default_tolerance", "z")


def _with_baseline(gates: Any, baseline: str | None, path: Path) -> Any:
    """The gate mapping with the command line's baseline, or its own resolved against the file's folder."""
    if not isinstance(gates, dict):
        return gates
    if baseline is not None:
        return {**gates, "baseline": baseline}
    own = gates.get("baseline")
    if isinstance(own, str) and own.strip():
        return {**gates, "baseline": os.path.abspath(resolve_local(own, path.parent))}
    return gates


def read_suite(path: str | Path, *, baseline: str | None = None) -> SuiteConfig:
    """A suite file as a SuiteConfig, its baseline resolved (or replaced by `baseline`) and the includes of its
    gate expanded; ConfigError listing every problem otherwise."""
    path = Path(path)
    data = read_yaml(path, "suite file")
    if "gates" in data:
        data = {**data, "gates": _with_baseline(data["gates"], baseline, path)}
    suite = parse_mapping(data, SuiteConfig, source=str(path))
    if suite.gates is None:
        return suite
    return suite.model_copy(update={"gates": expand_includes(suite.gates, path, "gates.")})


def load_gate_config(path: str | Path, *, baseline: str | None = None) -> GateConfig:
    """Read gate rules from YAML: a GateConfig, or a suite (checked whole) whose `gates` key is one.

    `baseline` (from the command line) replaces the file's baseline before validation, so a rules file
    without a baseline of its own may still hold baseline comparisons; the file's own baseline is relative
    to the file.
    """
    path = Path(path)
    data: dict[str, Any] = read_yaml(path, "rules file")
    if SUITE_KEYS & set(data):
        suite = read_suite(path, baseline=baseline)
        if suite.gates is None:
            raise ConfigError(["this suite has no `gates`, so there is nothing to check"], source=str(path))
        return suite.gates
    rules_file = parse_mapping(_with_baseline(data, baseline, path), RulesFile, source=str(path))
    return expand_includes(rules_file, path)


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate `evals/suites/NAME.yaml`; raises ConfigError listing every problem."""
    return read_suite(path)


def missing_baseline_hint(rules_path: str | Path | None) -> str:
    """The suite's own command for writing its baseline, when the rules file is a suite that names one."""
    if rules_path is None:
        return ""
    try:
        data = read_yaml(Path(rules_path), "rules file")
    except ConfigError:
        return ""
    command = data.get("baseline_command")
    return f" This suite's baseline is made with: {command}" if isinstance(command, str) and command else ""


def expand_includes(config: GateConfig, path: Path, key: str = "") -> GateConfig:
    """`config` (read from `path`, at `key` of it: "" or "gates.") as one GateConfig: the rules of its
    includes first, then its own; the whole gate checked again (e.g. rules that compare with a baseline need
    one)."""
    data = config.model_dump(exclude={"include"})
    data["rules"] = gate_rules(config, path, (), key)
    return parse_mapping(data, GateConfig, source=str(path))


def gate_rules(
    config: GateConfig, path: Path, chain: tuple[Path, ...], key: str = ""
) -> list[dict[str, Any]]:
    """Every rule of a gate read from `path`: its includes' (recursively, renamed) and then its own."""
    chain = (*chain, path.resolve())
    rules: list[dict[str, Any]] = []
    for index, included in enumerate(getattr(config, "include", [])):
        target = (path.parent / included.file).resolve()
        where = f"{key}include[{index}].file"
        if target in chain:
            cycle = " -> ".join(str(p) for p in (*chain, target))
            raise ConfigError([f"{where}: {included.file} includes itself ({cycle})"], source=str(path))
        if not target.is_file():
            raise ConfigError(
                [f"{where}: {included.file} is not a file (paths are relative to {path.parent})"],
                source=str(path),
            )
        rules += _included_rules(target, included.rename_tasks, chain, path, f"{key}include[{index}]")
    return [*rules, *(rule.model_dump() for rule in config.rules)]


def _included_rules(
    target: Path, rename_tasks: dict[str, str], chain: tuple[Path, ...], includer: Path, where: str
) -> list[dict[str, Any]]:
    """The rules of an included file (its own includes resolved), task names renamed."""
    data = read_yaml(target, "rules file")
    set_here = [key for key in INCLUDER_ONLY_KEYS if key in data]
    if set_here:
        raise ConfigError(
            [
                f"{key}: an included rules file contributes its rules only (included by {includer}); set "
                f"{key} in the file that includes it"
                for key in set_here
            ],
            source=str(target),
        )
    rules = gate_rules(parse_mapping(data, RulesFile, source=str(target)), target, chain)
    tasks = sorted({rule["task"] for rule in rules})
    unknown = [task for task in rename_tasks if task not in tasks]
    if unknown:
        raise ConfigError(
            [
                f"{where}.rename_tasks names {', '.join(unknown)}, which no rule of {target} gates "
                f"(its tasks: {', '.join(tasks) or 'none'})"
            ],
            source=str(includer),
        )
    return [{**rule, "task": rename_tasks.get(rule["task"], rule["task"])} for rule in rules]
