"""The `gates` section: a GateConfig checked with the rest of the config, its baseline found up front."""

from __future__ import annotations

import json

import pytest

from so8t.config import GateConfig, load_config
from so8t.errors import ConfigError

RULES = """
gates:
  baseline: {baseline}
  rules:
    - {{task: so8t_safety, metric: refuse_recall, min: 0.95}}
    - {{task: so8t_gsm8k, metric: exact_match, filter: strict-match, max_drop: 0.02}}
"""


def _load(tmp_path, body: str):
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body)
    return load_config(path)


def test_gates_parse_as_gate_config_and_the_baseline_resolves_from_the_config_folder(
    tmp_path, bundled_safety
):
    (tmp_path / "configs" / "baseline.json").parent.mkdir()
    (tmp_path / "configs" / "baseline.json").write_text(json.dumps({"results": {}}))
    cfg = _load(tmp_path, RULES.format(baseline="baseline.json"))
    assert isinstance(cfg.gates, GateConfig)
    assert cfg.gates.baseline == str((tmp_path / "configs" / "baseline.json").resolve())
    assert [r.metric for r in cfg.gates.rules] == ["refuse_recall", "exact_match"]


def test_gate_problems_are_reported_with_the_rest(tmp_path, bundled_safety):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, RULES.format(baseline="missing.json") + "train: {max_steps: 0}\n")
    errors = info.value.errors
    assert errors[0] == "train.max_steps: got 0, must be greater than 0"
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, RULES.format(baseline="missing.json"))
    assert info.value.errors[0].startswith("gates.baseline: 'missing.json' is not a file")
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "gates:\n  rules: [{task: t, metric: m, mn: 0.9}]\n")
    assert info.value.errors == ["gates.rules[0].mn: unknown key, did you mean gates.rules[0].min?"]
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "gates:\n  rules: [{task: t, metric: m, max_drop: 0.1}]\n")
    assert info.value.errors[0].startswith("gates: rule t/m,none has max_drop, which needs a baseline")
