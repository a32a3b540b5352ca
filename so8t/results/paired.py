"""The standard error of a metric's change between a baseline and a current run.

Two runs on the same documents are not independent samples: most documents get the same score in both, so
the change is far less noisy than two separate standard errors suggest. With per-document values of the
same documents on both sides (documents matched by `(doc_hash, filter)`, see so8t.results.documents):

- **paired differences**, for a metric whose denominator is the same documents in both runs: a mean over
  every document (accuracy, exact match) or a ratio whose denominator is fixed by the gold labels (recall,
  the unsafe-allow and over-refusal rates: NaN on exactly the same documents in both runs), whatever the
  task calls its aggregation (`mean`, `nanmean`, so8t's `ratio`): the aggregation is recognised by computing
  the mean over the non-NaN documents on both sides. With
  d_i = current_i - baseline_i over the n documents in the denominator,
  `Δ = mean(d)` and `se(Δ) = sd(d) / sqrt(n)` (sd with n - 1).
- **paired bootstrap**, for a metric whose denominator depends on the predictions (precisions: their NaN
  documents differ between the runs) and for aggregate metrics (macro F1): B resamples of the documents,
  each drawn with replacement and used for both runs, `Δ*_b = agg(current[idx_b]) - agg(baseline[idx_b])`,
  and `se(Δ) = sd(Δ*_b)` over the finite resamples. The aggregation is the one the task declares, looked up
  by name (lm-eval's registered ones, or so8t's scoring functions); the seed is fixed, so a gate is
  reproducible.
- **independent** (no per-document values on one side, a group, an unknown aggregation, or values that do
  not reproduce the reported number): `se(Δ) = sqrt(se_baseline^2 + se_current^2)` from the files.

Importable without torch; lm_eval is imported only to look up a registered aggregation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Method = Literal["paired differences", "paired bootstrap", "independent"]
Aggregation = Callable[[Sequence[Any]], float]
BOOTSTRAP_SEED = 1234
# agg(per-document values) must give the reported number within this (float noise of a mean)
REPRODUCE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class DeltaNoise:
    """The standard error of a change and how it was obtained (`documents` for the paired methods)."""

    stderr: float | None
    method: Method
    documents: int | None = None
    note: str = ""

    @property
    def label(self) -> str:
        if self.method == "independent":
            return "independent" + (f" ({self.note})" if self.note else "")
        return f"{self.method}, {self.documents} docs"


def independent_noise(se_baseline: float | None, se_current: float | None, note: str) -> DeltaNoise:
    """`sqrt(se_b^2 + se_c^2)`, or no stderr when either file has none (lm-eval's "N/A")."""
    if se_baseline is None or se_current is None:
        return DeltaNoise(None, "independent", note=(note + "; " if note else "") + "no stderr in a file")
    return DeltaNoise(math.hypot(se_baseline, se_current), "independent", note=note)


# ------------------------------------------------------------------------------------------ aggregations


def lookup_aggregation(name: str | None, metric: str) -> Aggregation | None:
    """The aggregation function a task declares, by name: so8t's scoring functions first (a custom
    aggregation is recorded by its function's name), then lm-eval's registered ones ("mean", "nanmean",
    "median", "f1", ...). A file that records no aggregation is looked up by the metric's name in so8t's
    scoring. None when unknown."""
    from so8t.lmeval import scoring

    found = getattr(scoring, name or metric, None)
    if callable(found) and not isinstance(found, type):
        return found
    if name is None:
        return None
    import lm_eval.api.metrics  # noqa: F401  (registers lm-eval's aggregations)
    from lm_eval.api.registry import AGGREGATION_REGISTRY

    return AGGREGATION_REGISTRY.get(name, None)


def _as_float_array(values: Sequence[Any]) -> Any:
    """The values as a float array, or None when one is not a plain number (a (gold, pred) pair, text)."""

    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return None
    return np.asarray(values, dtype=float)


def _same(a: Any, b: Any) -> bool:
    """Equal per-document values (NaN equals NaN: the document is outside the denominator in both)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _reproduces(aggregate: Aggregation, values: Sequence[Any], reported: float) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(aggregate(list(values)))
    except Exception:  # an aggregation that cannot take these values: not comparable document by document
        return False
    return math.isclose(value, reported, rel_tol=REPRODUCE_TOLERANCE, abs_tol=REPRODUCE_TOLERANCE)


# ------------------------------------------------------------------------------------------ the methods


def _differences(base: Any, current: Any) -> DeltaNoise:
    """Paired differences on the documents in the denominator (the same documents on both sides)."""

    keep = ~np.isnan(base)
    diffs = current[keep] - base[keep]
    n = int(diffs.size)
    if n < 2:
        return DeltaNoise(None, "paired differences", n, note="fewer than 2 documents in the denominator")
    return DeltaNoise(float(np.std(diffs, ddof=1) / math.sqrt(n)), "paired differences", n)


def _class_pairs(values: Sequence[Any]) -> Any:
    """(gold, pred) class indices as an (n, 2) int array, or None for other values."""

    ok = all(isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v) for v in values)
    return np.asarray(values, dtype=int) if ok and values else None


def _macro_f1_of_counts(counts: Any) -> Any:
    """Macro F1 of (B, K, K) confusion counts (rows gold), over the classes present in gold or predictions."""

    tp = np.diagonal(counts, axis1=1, axis2=2)
    gold, pred = counts.sum(axis=2), counts.sum(axis=1)
    denominator = gold + pred
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    present = denominator > 0
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _resampled(values: Sequence[Any], indices: Any, name: str | None, aggregate: Aggregation) -> Any:
    """agg(values[idx_b]) for every row of `indices`: vectorised for the aggregations whose formula is
    known (mean, nanmean, macro F1 over class pairs) once it is checked to agree with the task's own
    aggregation on all documents, else the task's aggregation called on each resample."""

    array = _as_float_array(values)
    if array is not None and is_mean_over_denominator(aggregate, array):
        return np.nanmean(array[indices], axis=1)
    pairs = _class_pairs(values)
    if pairs is not None and pairs.min() >= 0:
        k = int(pairs.max()) + 1
        codes = pairs[:, 0] * k + pairs[:, 1]
        whole = np.bincount(codes, minlength=k * k).reshape(1, k, k)
        if math.isclose(float(_macro_f1_of_counts(whole)[0]), float(aggregate(list(values))), abs_tol=1e-12):
            offsets = (np.arange(len(indices)) * k * k)[:, None]
            flat = np.bincount((codes[indices] + offsets).ravel(), minlength=len(indices) * k * k)
            return _macro_f1_of_counts(flat.reshape(len(indices), k, k))
    return np.array([float(aggregate([values[i] for i in row])) for row in indices])


def _bootstrap(
    base: Sequence[Any], current: Sequence[Any], aggregate: Aggregation, name: str | None, iters: int
) -> DeltaNoise:
    """Paired bootstrap over documents: the same resampled documents for both runs."""

    n = len(base)
    indices = np.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(iters, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deltas = _resampled(current, indices, name, aggregate) - _resampled(base, indices, name, aggregate)
    finite = deltas[np.isfinite(deltas)]
    dropped = iters - int(finite.size)
    note = f"{dropped} of {iters} resamples undefined" if dropped else ""
    if finite.size < max(2, iters // 2):
        return DeltaNoise(None, "paired bootstrap", n, note=note or "too few resamples")
    return DeltaNoise(float(np.std(finite, ddof=1)), "paired bootstrap", n, note=note)


def paired_noise(
    base: Sequence[Any],
    current: Sequence[Any],
    *,
    aggregation: str | None,
    metric: str,
    reported: tuple[float, float],
    iters: int = 1000,
) -> DeltaNoise | str:
    """The paired standard error of `agg(current) - agg(baseline)` over matched documents (same order), or
    the reason the paired methods do not apply (the caller then uses the independent formula)."""
    if len(base) != len(current) or not base:
        return "the runs have different numbers of documents for this metric"
    aggregate = lookup_aggregation(aggregation, metric)
    if aggregate is None:
        return f"no known aggregation {aggregation or metric!r} for {metric}"
    for side, values, value in (("baseline", base, reported[0]), ("current", current, reported[1])):
        if not _reproduces(aggregate, values, value):
            return f"the {side} per-document values do not reproduce the reported {metric}"
    fixed = fixed_denominator(aggregate, base, current)
    if all(_same(b, c) for b, c in zip(base, current, strict=True)):
        # every resample and every difference is 0: no need to draw them
        return DeltaNoise(0.0, "paired differences" if fixed else "paired bootstrap", len(base))
    if fixed:
        return _differences(*fixed)
    return _bootstrap(base, current, aggregate, aggregation, iters)


def is_mean_over_denominator(aggregate: Aggregation, values: Any) -> bool:
    """True when the aggregation of these plain numbers is their mean over the non-NaN documents (lm-eval's
    mean and nanmean, so8t's ratio, or any function under another name that computes the same)."""

    if values.size == 0 or np.isnan(values).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(aggregate(list(values)))
        except Exception:  # an aggregation that cannot take plain numbers
            return False
    return math.isclose(value, float(np.nanmean(values)), rel_tol=1e-9, abs_tol=1e-12)


def fixed_denominator(aggregate: Aggregation, base: Sequence[Any], current: Sequence[Any]) -> Any:
    """(baseline, current) as float arrays when the metric is a rate whose denominator is the same documents
    in both runs (NaN on exactly the same documents, the aggregation a mean over the rest), else None: the
    rates the paired differences test applies to, whatever name the task gives their aggregation."""

    arrays = (_as_float_array(base), _as_float_array(current))
    if arrays[0] is None or arrays[1] is None:
        return None
    if not np.array_equal(np.isnan(arrays[0]), np.isnan(arrays[1])):
        return None
    return arrays if all(is_mean_over_denominator(aggregate, a) for a in arrays) else None


def bootstrap_stderr(
    values: Sequence[Any], *, aggregation: str | None, metric: str, iters: int = 1000
) -> float | None:
    """The bootstrap standard error of one run's aggregate (for a metric whose file has no stderr)."""
    aggregate = lookup_aggregation(aggregation, metric)
    if aggregate is None or len(values) < 2:
        return None

    indices = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(values), size=(iters, len(values)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draws = _resampled(values, indices, aggregation, aggregate)
    finite = draws[np.isfinite(draws)]
    return float(np.std(finite, ddof=1)) if finite.size >= max(2, iters // 2) else None


def paired_draws(
    base: Sequence[Any], current: Sequence[Any], *, aggregation: str | None, metric: str, indices: Any
) -> Any:
    """`agg(current[idx_b]) - agg(baseline[idx_b])` for every row of `indices` (document resamples shared
    by every metric of a task), or None when the aggregation is unknown: the joint draws a family-wise test
    of several metrics on the same documents is built on (so8t.results.familywise)."""

    aggregate = lookup_aggregation(aggregation, metric)
    if aggregate is None or len(base) != len(current) or not base:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(
            _resampled(current, indices, aggregation, aggregate)
            - _resampled(base, indices, aggregation, aggregate),
            dtype=float,
        )
