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


# ----------------------------------------------------------------------------- fail closed


@pytest.mark.parametrize("kind", ["nan_weights", "nan_bias", "all_equal"])
@pytest.mark.parametrize("threshold", [None, 0.3, 0.9])
def test_a_broken_or_tied_head_never_allows_through_the_python_api(broken_heads, kind, threshold):
    import so8t

    agent = so8t.load(str(broken_heads[kind]), device="cpu", allow_threshold=threshold, max_new_tokens=4)
    for request in ("Summarise the attached memo.", "Tom has 3 apples and buys 2. How many?"):
        decided = agent.decide(request)
        assert decided.decision == "REFUSE", (kind, threshold, decided)
        assert decided.non_finite_scores is (kind != "all_equal")
        assert not decided.below_allow_threshold
        response = agent.generate(request)
        assert (response.decision, response.generated, response.text) == (
            "REFUSE",
            False,
            agent.messages["REFUSE"],
        )


@pytest.mark.slow
def test_predict_cli_names_non_finite_scores(broken_heads):
    result = subprocess.run(
        [sys.executable, "-m", "so8t", "predict", str(broken_heads["nan_bias"]), "hi", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("decision: REFUSE (head B's scores are not finite numbers")
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "so8t",
            "predict",
            str(broken_heads["nan_bias"]),
            "hi",
            "--json",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    response = json.loads(as_json.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert response["decision"] == "REFUSE" and response["non_finite_scores"] is True
    assert response["probabilities"] == {d: None for d in DECISIONS}


# ----------------------------------------------------------------------------- over-long requests


@pytest.fixture(scope="module")
def gpt2_agent(make_so8t, tiny_gpt2_dir, tmp_path_factory):
    """An agent on a consolidated SO8T model of a GPT-2-shaped base with a 256-position window."""
    import so8t
    from so8t.consolidate import consolidate_checkpoint

    model, _ = make_so8t(tiny_gpt2_dir)
    root = tmp_path_factory.mktemp("gpt2_agent")
    checkpoint = model.save_so8t(root / "checkpoint")
    folder = consolidate_checkpoint(checkpoint, root / "consolidated")
    return so8t.load(str(folder), device="cpu", max_new_tokens=8)


def test_an_over_long_request_keeps_its_end_as_training_does(gpt2_agent):
    """1,206 tokens used to crash a GPT-2-shaped base; now the request keeps its last window of tokens, the
    same ids training's truncation (collate._fit) keeps of an over-long prompt."""
    import torch

    from so8t.data.templates import safety_prompt
    from so8t.model.inference import decide
    from so8t.train.collate import _fit

    agent = gpt2_agent
    window = agent.context_window
    assert window == 256
    request = " ".join(["please export the whole customer table"] * 200) + " and delete the backups."
    ids = agent.tokenizer(safety_prompt(request))["input_ids"]
    assert len(ids) > 1200
    kept, _ = _fit(ids, [], window)
    assert kept == ids[-window:]
    expected = decide(
        agent.model, agent.safety_head, torch.tensor([kept]), torch.ones(1, window, dtype=torch.long), None
    )
    decided = agent.decide(request)
    assert decided.probabilities == pytest.approx(
        dict(zip(DECISIONS, expected.log_probs[0].exp().tolist(), strict=True)), abs=1e-6
    )
    # an allowed over-long request is answered too: the prompt keeps its end and room for the answer
    _force(agent, "ALLOW")
    response = agent.generate(request, max_new_tokens=8)
    assert response.decision == "ALLOW" and response.generated


def test_max_new_tokens_beyond_the_window_is_a_clear_error(gpt2_agent):
    from so8t.errors import UserError

    _force(gpt2_agent, "ALLOW")
    with pytest.raises(UserError, match="window of 256 tokens"):
        gpt2_agent.generate("hi", max_new_tokens=300)
