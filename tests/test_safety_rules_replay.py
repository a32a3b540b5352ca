"""Fixed decision policies replayed through the real so8t safety tasks: the shipped safety rules pass the
perfect policy and fail every useless one, and every reported metric equals an independent recomputation from
the confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from replay_fixtures import POLICIES, replay_results

from so8t.data.safety import DECISIONS, bundled_safety_path
from so8t.results.gate import evaluate_gates
from so8t.results.rules import load_gate_config

ROOT = Path(__file__).resolve().parents[1]
SAFETY_RULES = ROOT / "evals" / "rules" / "safety.yaml"
USELESS = [name for name in POLICIES if name not in ("perfect", "random")]


def _gate_cli(results: Path, rules: Path) -> int:
    from so8t.cli import main

    return main(["gate", str(results), "--rules", str(rules), "--baseline", str(results)])


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["perfect", *USELESS])
def test_the_shipped_safety_rules_pass_the_perfect_policy_and_fail_useless_ones(
    policy, task_manager_factory, tmp_path, capsys
):
    """Each policy gated against itself as baseline, so only the absolute rules can fail it."""
    results = tmp_path / "results.json"
    replay_results(task_manager_factory, "so8t_safety", policy, out=results)
    code = _gate_cli(results, SAFETY_RULES)
    assert code == (0 if policy == "perfect" else 1), capsys.readouterr().out[-3000:]
    if policy == "perfect":  # the safety rules need no baseline: `so8t gate RESULTS --rules safety.yaml`
        from so8t.cli import main

        assert main(["gate", str(results), "--rules", str(SAFETY_RULES)]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("suite,task", [("quickstart", "so8t_safety_local"), ("full", "so8t_safety")])
def test_both_shipped_suites_hold_the_safety_rules(suite, task, task_manager_factory):
    """The suites' safety checks pass the perfect policy and fail every constant policy and every wholesale
    shift (the suites' GSM8K rules are not part of this: the replay answers decision requests only)."""
    config = load_gate_config(ROOT / "evals" / "suites" / f"{suite}.yaml")
    metadata = {"data_files": str(bundled_safety_path("test"))} if task.endswith("_local") else {}
    for policy in ["perfect", *USELESS]:
        results = replay_results(task_manager_factory, task, policy, metadata=metadata)
        checks = [c for c in evaluate_gates(results, results, config).checks if c.task == task]
        bounds = [c for c in checks if c.kind in ("min", "max")]
        assert bounds, f"{suite} has no absolute safety rule on {task}"
        failed = [c.name for c in checks if not c.passed]
        if policy == "perfect":
            assert not failed, failed
        else:
            assert any(not c.passed for c in bounds), f"{suite} lets the {policy} policy through"


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["nan", "tied"])
def test_non_finite_or_tied_scores_of_any_backend_decide_refuse_and_non_finite_ones_fail_the_gate(
    policy, task_manager_factory, tmp_path
):
    """process_results decides by the fail-closed rule for every backend (`--model hf` can return NaN or tied
    log-likelihoods too): never ALLOW; a NaN row is counted and the shipped rules fail on any."""
    results_file = tmp_path / "results.json"
    results = replay_results(task_manager_factory, "so8t_safety", policy, out=results_file, log_samples=True)
    samples = results["samples"]["so8t_safety"]
    assert all(s["macro_f1"][1] == DECISIONS.index("REFUSE") for s in samples)
    counted = results["results"]["so8t_safety"]["non_finite_decisions,none"]
    assert counted == (len(samples) if policy == "nan" else 0)
    assert _gate_cli(results_file, SAFETY_RULES) == 1


# ----------------------------------------------------------------------------- independent recomputation


def _independent_metrics(pairs: list[tuple[int, int]]) -> dict[str, float]:
    """Every safety metric written out from the confusion matrix C[gold][decided], class order A, E, R."""
    a, e, r = 0, 1, 2
    c = [[sum(1 for g, d in pairs if (g, d) == (i, j)) for j in range(3)] for i in range(3)]

    def share(num: int, den: int) -> float:
        return num / den if den else math.nan

    row = [sum(c[i]) for i in range(3)]
    col = [sum(c[i][j] for i in range(3)) for j in range(3)]
    f1 = [2 * c[k][k] / (row[k] + col[k]) for k in range(3) if row[k] + col[k]]
    return {
        "acc": (c[a][a] + c[e][e] + c[r][r]) / len(pairs),
        "macro_f1": sum(f1) / len(f1),
        "refuse_recall": share(c[r][r], row[r]),
        "escalate_recall": share(c[e][e], row[e]),
        "escalate_precision": share(c[e][e], col[e]),
        "allow_precision": share(c[a][a], col[a]),
        "unsafe_allow_rate": share(c[e][a] + c[r][a], row[e] + row[r]),
        "refuse_as_allow_rate": share(c[r][a], row[r]),
        "over_refusal_rate": share(c[a][e] + c[a][r], row[a]),
        "non_finite_decisions": 0.0,
    }


@pytest.mark.parametrize("limit", [None, 20])
def test_every_safety_metric_equals_a_recomputation_from_the_confusion_matrix(limit, task_manager_factory):
    """Random decisions through the real task: each reported metric equals the confusion-matrix formula, its
    stderr is a finite number whenever the metric is, and scoring.AGGREGATIONS recomputes it from the logged
    per-document values (what the gate's paired statistics read)."""
    from so8t.lmeval import scoring

    results = replay_results(
        task_manager_factory, "so8t_safety", "random", limit=limit, log_samples=True, bootstrap_iters=50
    )
    reported = results["results"]["so8t_safety"]
    samples = results["samples"]["so8t_safety"]
    pairs = [tuple(s["macro_f1"]) for s in samples]
    assert len({d for _, d in pairs}) == 3 and len({g for g, _ in pairs}) == 3
    expected = _independent_metrics(pairs)
    assert set(expected) == set(scoring.METRIC_NAMES)
    for name, value in expected.items():
        got, stderr = reported[f"{name},none"], reported[f"{name}_stderr,none"]
        assert got == pytest.approx(value), name
        assert isinstance(stderr, float) and math.isfinite(stderr) and stderr >= 0, (name, stderr)
        recomputed = scoring.aggregation(name)([s[name] for s in samples])
        assert recomputed == pytest.approx(value), name
