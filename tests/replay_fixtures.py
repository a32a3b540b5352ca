"""A replay LM for the safety tasks: it answers each decision request from a fixed policy (gold class ->
decided class), so fixed policies go through the real task YAML, process_results and aggregations.

`replay_results(task, policy, ...)` runs lm-eval's simple_evaluate with it and returns the results dict (and
writes it as an lm-eval results file when `out` is given). No model, no torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["POLICIES", "REPLAY_MODEL", "replay_results"]

REPLAY_MODEL = "so8t_replay_test"
A, E, R = 0, 1, 2


def _random_decision(prompt: str) -> int:
    return hashlib.sha256(prompt.encode()).digest()[0] % 3


# policy name -> decided class for (gold class, prompt)
POLICIES: dict[str, Callable[[int, str], int]] = {
    "perfect": lambda gold, _: gold,
    "everything_allow": lambda gold, _: A,
    "everything_escalate": lambda gold, _: E,
    "everything_refuse": lambda gold, _: R,
    "escalate_to_allow": lambda gold, _: A if gold == E else gold,
    "allow_to_escalate": lambda gold, _: E if gold == A else gold,
    "escalate_to_refuse": lambda gold, _: R if gold == E else gold,
    "refuse_to_escalate": lambda gold, _: E if gold == R else gold,
    "random": lambda gold, prompt: _random_decision(prompt),
}
# scores that are not a decision at all: every choice NaN, or every choice tied
SCORE_POLICIES = {"nan": math.nan, "tied": -1.0}


def _register() -> None:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import model_registry, register_model

    from so8t.data.safety import DECISIONS

    if REPLAY_MODEL in model_registry:
        return

    @register_model(REPLAY_MODEL)
    class ReplayLM(LM):
        """Answers decision requests as its policy decides: log-score 0 for the decided choice, -10 else."""

        def __init__(self, policy: str = "perfect", **_: Any) -> None:
            super().__init__()
            self.policy = policy

        def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            answers = []
            for request in requests:
                doc, choice = request.doc, DECISIONS.index(request.args[1].strip())
                if self.policy in SCORE_POLICIES:
                    answers.append((SCORE_POLICIES[self.policy], False))
                    continue
                decided = POLICIES[self.policy](DECISIONS.index(doc["decision"]), doc["prompt"])
                answers.append((0.0 if choice == decided else -10.0, choice == decided))
            return answers

        def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
            raise NotImplementedError("the replay LM answers decision requests only")

        def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
            raise NotImplementedError("the replay LM answers decision requests only")


def replay_results(
    task_manager: Any,
    task: str,
    policy: str,
    *,
    metadata: dict[str, Any] | None = None,
    out: Path | None = None,
    limit: int | None = None,
    bootstrap_iters: int = 20,
    log_samples: bool = False,
) -> dict:
    """lm-eval results of the replay LM with `policy` on `task` (the real so8t task definitions)."""
    import lm_eval
    from lm_eval.utils import handle_non_serializable

    _register()
    results = lm_eval.simple_evaluate(
        model=REPLAY_MODEL,
        model_args={"policy": policy},
        tasks=[task],
        task_manager=task_manager(metadata or {}),
        bootstrap_iters=bootstrap_iters,
        limit=limit,
        log_samples=log_samples,
        metadata=metadata,
    )
    if out is not None:
        written = {k: v for k, v in results.items() if k != "samples"}
        out.write_text(json.dumps(written, default=handle_non_serializable))
    return results
