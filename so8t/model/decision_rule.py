"""The decision rule: the one place where per-class scores become ALLOW / ESCALATE / REFUSE, failing closed.

Pure Python (no torch), so head-B inference (so8t.model.inference), the lm-eval backend, predict and the safety
tasks' process_results (so8t.lmeval.scoring, which also scores other backends' log-likelihoods) all decide
with this code. The rule, in order:

1. any non-finite score (NaN, +-inf) decides REFUSE: a broken head or model never lets a request through;
2. otherwise the highest score wins, and a tie goes to the stricter class (REFUSE > ESCALATE > ALLOW);
3. with `allow_threshold` (head B only), an ALLOW whose probability is below it becomes ESCALATE.

`logged_scores` turns a row into the scores the lm-eval backend reports: their plain argmax (lm-eval's, or any
reader's `np.argmax`, first index on ties) is the decision. A finite row's scores are finite (at least
LOG_FLOOR); a non-finite row is reported as NON_FINITE_SCORES, the only scores holding -inf, so readers can
count such rows and a confident head can never produce them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from so8t.data.safety import DECISIONS

ALLOW, ESCALATE, REFUSE = (DECISIONS.index(name) for name in ("ALLOW", "ESCALATE", "REFUSE"))
# Classes from the strictest down: a tie between two classes goes to the one listed first.
STRICTEST_FIRST = (REFUSE, ESCALATE, ALLOW)
# The lowest log-score a decided row reports: log of float32's smallest normal number (about -87.3). A
# probability below it (ALLOW after allow_threshold moved its mass away, or an underflow) is reported as it.
LOG_FLOOR = math.log(2.0**-126)
# What a row with a non-finite score reports: log-probability 0 for REFUSE, -inf for the others.
NON_FINITE_SCORES = tuple(0.0 if i == REFUSE else -math.inf for i in range(len(DECISIONS)))


def all_finite(scores: Sequence[float]) -> bool:
    """True when every score is a finite number."""
    return all(math.isfinite(float(s)) for s in scores)


def strictest_argmax(scores: Sequence[float]) -> int:
    """The class with the highest score, a tie going to the stricter class (REFUSE > ESCALATE > ALLOW).

    The scores must be finite (see `fail_closed_choice` for the rule that also handles non-finite ones).
    """
    values = [float(s) for s in scores]
    best = max(values)
    return next(i for i in STRICTEST_FIRST if values[i] == best)


def fail_closed_choice(scores: Sequence[float]) -> int:
    """The decision for one row of per-class scores (log-probabilities or log-likelihoods, class order
    DECISIONS): REFUSE when any score is not finite, else `strictest_argmax`."""
    if len(scores) != len(DECISIONS):
        raise ValueError(
            f"expected {len(DECISIONS)} scores (one per class of {DECISIONS}), got {len(scores)}"
        )
    return strictest_argmax(scores) if all_finite(scores) else REFUSE


def _float32(value: float) -> float:
    """`value` rounded to the nearest float32 number, as a reader that loads the scores in float32 sees it."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _below_in_float32(value: float) -> float:
    """The float32 number just below `value`'s float32 rounding: lower than `value` in float64 and, read back
    in float32, still lower than it (a float64 step, math.nextafter, vanishes in float32)."""
    rounded = _float32(value)
    if rounded == 0.0:
        return -struct.unpack("<f", struct.pack("<I", 1))[0]
    bits = struct.unpack("<I", struct.pack("<f", rounded))[0]
    # float32 bits are sign and magnitude: toward -inf, a positive magnitude shrinks, a negative one grows
    return struct.unpack("<f", struct.pack("<I", bits - 1 if rounded > 0 else bits + 1))[0]


def decide_row(log_probs: Sequence[float], allow_threshold: float | None = None) -> tuple[int, list[float]]:
    """(decision, reported log-scores) for head B's log-probabilities of one request.

    The reported scores are the log-probabilities after the rule: with `allow_threshold`, a demoted ALLOW's
    probability mass moves to ESCALATE (the scores stay a distribution); values below LOG_FLOOR are raised to
    it; a class tied with the decision, in float64 or once rounded to float32, is lowered to the float32
    number just below the decision's, so the scores' first-index argmax is the decision for a reader in
    either precision. A non-finite row reports NON_FINITE_SCORES.
    """
    decision = fail_closed_choice(log_probs)
    if not all_finite(log_probs):
        return decision, list(NON_FINITE_SCORES)
    scores = [float(s) for s in log_probs]
    if allow_threshold is not None and decision == ALLOW and math.exp(scores[ALLOW]) < allow_threshold:
        decision = ESCALATE
        moved = math.exp(scores[ESCALATE]) + math.exp(scores[ALLOW])
        scores[ESCALATE], scores[ALLOW] = math.log(moved), -math.inf
    scores = [max(s, LOG_FLOOR) for s in scores]
    top = scores[decision]
    return decision, [
        s if i == decision or _float32(s) < _float32(top) else _below_in_float32(top)
        for i, s in enumerate(scores)
    ]
