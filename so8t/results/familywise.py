"""One gate run tests many metrics at once: the noise allowance that keeps its whole-run false-failure rate
at the level one metric alone would have.

A baseline comparison fails on noise when its change in the bad direction exceeds `c · se(Δ)`. Gating each
of m metrics at `c = z` lets the run fail whenever any of them crosses by chance, far more often than
`Φ(−z)` (the metrics of a task share documents and move together, so Bonferroni would be needlessly
strict). The family is every baseline comparison of the run that has a standard error and no `z` of its
own; its level is `α = Φ(−z)` for the gate's `z` (2.3% at `z = 2`), one-sided as the gate is.

- **max-T (Westfall-Young, single step)** when every comparison in the family has per-document values of
  the same documents on both sides: B document resamples per task (the same indices for every metric of
  the task, independent between tasks), each metric's bootstrap change studentised and centred,
  `T*_b,m = s_m (Δ*_b,m − Δ_m) / se_m` with `s_m` the sign of its bad direction, and
  `c = max(z, quantile_{1−α}(max_m T*_b,m))`, the same c for every comparison. The resamples keep the
  metrics' correlation, so c grows only as much as the metrics are really separate tests.
- **Holm** otherwise (a comparison without per-document values, a group): the one-sided normal p-values
  `p_m = Φ(−bad_m / se_m)` sorted ascending, the i-th (from 0) tested at `α / (m − i)` until the first that
  is not rejected; as an allowance, `c_m = Φ⁻¹(1 − α / (m − i))` at the comparison's position, and the
  first non-rejected position's value for every comparison after it.

With one comparison, or `z = 0` (no noise allowance), c is z. Importable without torch.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from so8t.results.paired import BOOTSTRAP_SEED, paired_draws


@dataclass
class Comparison:
    """One baseline comparison waiting for its noise allowance."""

    task: str
    metric: str
    aggregation: str | None
    bad_change: float
    stderr: float | None
    higher_is_better: bool
    in_family: bool
    # per-document values (baseline, current) of the same documents, in the same order; None without them
    values: tuple[Sequence[Any], Sequence[Any]] | None = None


@dataclass(frozen=True)
class Allowance:
    """The multiple of se(Δ) a comparison may move by, and how it was set."""

    multiplier: float
    method: str  # "", "max-T over m", "Holm over m"


def family_level(z: float) -> float:
    """One-sided α of a single comparison at z standard errors: Φ(−z)."""
    return NormalDist().cdf(-z)


def _indices(task: str, n: int, iters: int) -> Any:

    seed = [BOOTSTRAP_SEED, zlib.crc32(task.encode())]
    return np.random.default_rng(seed).integers(0, n, size=(iters, n))


def _max_t(family: list[Comparison], z: float, iters: int) -> float | None:
    """c of the single-step max-T test, or None when a comparison's draws cannot be made."""

    columns = []
    for item in family:
        assert item.values is not None and item.stderr
        base, current = item.values
        draws = paired_draws(
            base,
            current,
            aggregation=item.aggregation,
            metric=item.metric,
            indices=_indices(item.task, len(base), iters),
        )
        if draws is None:
            return None
        observed = -item.bad_change if item.higher_is_better else item.bad_change
        sign = -1.0 if item.higher_is_better else 1.0
        columns.append(sign * (draws - observed) / item.stderr)
    t = np.vstack(columns)
    finite = np.where(np.isfinite(t), t, -np.inf).max(axis=0)
    finite = finite[np.isfinite(finite)]
    if finite.size < max(2, iters // 2):
        return None
    return max(z, float(np.quantile(finite, 1 - family_level(z))))


def _holm(family: list[Comparison], z: float) -> dict[int, float]:
    alpha, m = family_level(z), len(family)
    normal = NormalDist()
    order = sorted(range(m), key=lambda i: -(family[i].bad_change / family[i].stderr))  # type: ignore[operator]
    multipliers: dict[int, float] = {}
    stopped: float | None = None
    for position, i in enumerate(order):
        threshold = normal.inv_cdf(1 - alpha / (m - position))
        if stopped is None and family[i].bad_change / family[i].stderr < threshold:  # type: ignore[operator]
            stopped = threshold
        multipliers[i] = max(z, stopped if stopped is not None else threshold)
    return multipliers


def allowances(comparisons: list[Comparison], z: float, iters: int) -> list[Allowance]:
    """The noise multiplier of every comparison (in order): the family's at level Φ(−z), else z."""
    family = [i for i, c in enumerate(comparisons) if c.in_family and c.stderr and math.isfinite(c.stderr)]
    result = [Allowance(z, "") for _ in comparisons]
    if len(family) < 2 or z <= 0:
        return result
    members = [comparisons[i] for i in family]
    if all(c.values is not None for c in members):
        critical = _max_t(members, z, iters)
        if critical is not None:
            for i in family:
                result[i] = Allowance(critical, f"max-T over {len(family)}")
            return result
    for position, multiplier in _holm(members, z).items():
        result[family[position]] = Allowance(multiplier, f"Holm over {len(family)}")
    return result
