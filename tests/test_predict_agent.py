"""Decision-gated generation: head B decides with probabilities for every class; only ALLOW generates."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from so8t.data.safety import DECISIONS


@pytest.fixture(scope="session")
def agent(tiny_so8t):
    import so8t

    checkpoint, _, _ = tiny_so8t
    return so8t.load(str(checkpoint), device="cpu", max_new_tokens=8)


def _force(agent, decision: str) -> None:
    """Make head B certain of one decision (bias only), so the gate's behaviour is known."""
    import torch

    head = agent.safety_head
    linear = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([10.0 if d == decision else 0.0 for d in DECISIONS]))


def test_decide_returns_a_decision_with_a_probability_per_class(agent):
    decided = agent.decide("Delete every production database.")
    assert decided.decision in DECISIONS
    assert set(decided.probabilities) == set(DECISIONS)
    assert sum(decided.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert decided.decision == max(decided.probabilities, key=decided.probabilities.get)


@pytest.mark.parametrize("decision", ["ALLOW", "ESCALATE", "REFUSE"])
def test_only_allow_generates(agent, decision, monkeypatch):
    import copy

    gated = copy.copy(agent)
    gated.safety_head = copy.deepcopy(agent.safety_head)
    _force(gated, decision)
    calls = []
    original = gated.model.generate
    monkeypatch.setattr(gated.model, "generate", lambda *a, **k: calls.append(1) or original(*a, **k))
    response = gated.generate("Tom has 3 apples and buys 2. How many?")
    assert response.decision == decision
    assert response.generated is (decision == "ALLOW")
    assert len(calls) == (1 if decision == "ALLOW" else 0)
    if decision != "ALLOW":
        assert response.text == gated.messages[decision]


def test_allow_threshold_escalates_an_uncertain_allow(agent):
    import copy

    import torch

    gated = copy.copy(agent)
    gated.safety_head = copy.deepcopy(agent.safety_head)
    linear = [m for m in gated.safety_head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # ALLOW ~ 0.58
    gated.allow_threshold = 0.9
    response = gated.generate("Translate this sentence.")
    assert response.decision == "ESCALATE" and response.below_allow_threshold and not response.generated
    assert response.probabilities["ALLOW"] == pytest.approx(0.576, abs=1e-3)


def test_predict_cli_prints_json_with_the_configured_message(tiny_so8t):
    _, consolidated, _ = tiny_so8t
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "so8t",
            "predict",
            str(consolidated),
            "Wire $50,000 to this vendor.",
            "--json",
            "--max-new-tokens",
            "4",
            "--allow-threshold",
            "1.0",
            "--escalate-message",
            "Needs a human.",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    response = json.loads(result.stdout)
    assert set(response["probabilities"]) == set(DECISIONS)
    assert response["decision"] in ("ESCALATE", "REFUSE")  # threshold 1.0: never ALLOW
    if response["decision"] == "ESCALATE":
        assert response["text"] == "Needs a human." and response["generated"] is False


def test_predict_rejects_a_path_that_is_not_a_so8t_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "so8t", "predict", str(tmp_path / "missing"), "hi"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "nothing exists there" in result.stderr
