"""How often the shipped gates fail runs of the same quality, and how often they catch real regressions.

    python benchmarks/gate_false_failures.py [--pairs 200] [--iters 1000]

Simulated from real samples: the per-document values the quickstart baseline embeds
(evals/baselines/quickstart.json: 200 GSM8K-style problems, 87 safety requests). A document's outcome is
re-drawn from the outcome of a random document of the same kind: for a safety request, the decision made
on a random request with the same gold class (every safety metric recomputed from (gold, decision)); for a
GSM8K problem, the scores of a random problem under every filter. So a re-drawn run has the baseline's
quality in expectation, with its metrics as correlated as the real ones.

- **same quality, re-drawn documents**: the baseline against itself with 20% of its documents re-drawn;
- **same quality, independent runs**: two runs with every document re-drawn, independently;
- **graded regressions**: k requests to refuse that the baseline decided REFUSE turned ALLOW (k = 2, 4, 6,
  8), on top of the 20% re-draw;
- **useless policies**: every request decided ALLOW, ESCALATE or REFUSE, and each wholesale shift of a
  class into a neighbour, scored on the same requests (the GSM8K side left as it is).

Each row gates with the real gate (so8t.results.gate.evaluate_gates): the quickstart suite; the full suite
(its tasks renamed onto the quickstart data; its absolute floors are deployment-level, which the tiny model
does not meet, so only its baseline comparisons are counted); and a bare `--baseline` gate (every baseline
metric at the default tolerance). A pair fails when any counted check fails. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from so8t.config import GateConfig  # noqa: E402
from so8t.data.safety import DECISIONS  # noqa: E402
from so8t.lmeval.safety_metrics import safety_doc_metrics  # noqa: E402
from so8t.results.documents import TaskDocuments  # noqa: E402
from so8t.results.gate import RunResults, evaluate_gates, read_run  # noqa: E402
from so8t.results.paired import lookup_aggregation  # noqa: E402
from so8t.results.results_file import is_metric_key, recorded_aggregation  # noqa: E402
from so8t.results.rules import load_gate_config  # noqa: E402

BASELINE = REPO / "evals" / "baselines" / "quickstart.json"
SUITES = REPO / "evals" / "suites"
ALLOW, ESCALATE, REFUSE = (DECISIONS.index(d) for d in ("ALLOW", "ESCALATE", "REFUSE"))
REDRAW = 0.2
FULL_NAMES = {"so8t_safety_local": "so8t_safety", "so8t_gsm8k_local": "so8t_gsm8k"}
Outcomes = dict[str, dict]  # task -> doc_hash -> outcome (safety: (gold, pred); else filter -> values)


def _is_safety(documents: TaskDocuments) -> bool:
    return all(isinstance(e.values.get("macro_f1"), tuple) for e in documents.entries)


def outcomes_of(run: RunResults) -> Outcomes:
    found: Outcomes = {}
    for task, documents in run.documents.items():
        per_doc: dict = {}
        for entry in documents.entries:
            if _is_safety(documents):
                per_doc[entry.doc_hash] = entry.values["macro_f1"]
            else:
                per_doc.setdefault(entry.doc_hash, {})[entry.filter] = dict(entry.values)
        found[task] = per_doc
    return found


def redraw(outcomes: Outcomes, share: float, rng: random.Random) -> Outcomes:
    """Each document's outcome, with probability `share`, replaced by that of a random document of its kind."""
    result: Outcomes = {}
    for task, per_doc in outcomes.items():
        hashes = sorted(per_doc)
        safety = isinstance(next(iter(per_doc.values())), tuple)
        by_gold: dict[int, list[str]] = {}
        if safety:
            for h in hashes:
                by_gold.setdefault(per_doc[h][0], []).append(h)
        new = {}
        for h in hashes:
            if rng.random() >= share:
                new[h] = per_doc[h]
            elif safety:
                gold = per_doc[h][0]
                new[h] = (gold, per_doc[rng.choice(by_gold[gold])][1])
            else:
                new[h] = per_doc[rng.choice(hashes)]
        result[task] = new
    return result


def run_from(base: RunResults, outcomes: Outcomes) -> RunResults:
    """A run with the baseline's documents and these outcomes: per-document values and reported metrics."""
    data = copy.deepcopy(base.data)
    documents = {}
    for task, old in base.documents.items():
        per_doc = outcomes[task]
        entries = []
        for entry in old.entries:
            outcome = per_doc[entry.doc_hash]
            values = safety_doc_metrics(*outcome) if isinstance(outcome, tuple) else outcome[entry.filter]
            entries.append(replace(entry, values=dict(values)))
        documents[task] = TaskDocuments(task, tuple(entries), old.source)
        for key in list(data["results"][task]):
            if not is_metric_key(key) or "_stderr" in key:
                continue
            metric, _, filter_name = key.partition(",")
            values = documents[task].values(metric, filter_name)
            aggregate = lookup_aggregation(recorded_aggregation(data, task, metric), metric)
            if values is not None and aggregate is not None:
                data["results"][task][key] = float(aggregate(values))
    return RunResults(data, documents)


def renamed(run: RunResults, names: dict[str, str]) -> RunResults:
    """The same run under other task names (the full suite's tasks on the quickstart data)."""
    data = copy.deepcopy(run.data)
    for section in ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples"):
        if isinstance(data.get(section), dict):
            data[section] = {names.get(k, k): v for k, v in data[section].items()}
    for task in data["results"]:
        data["results"][task]["alias"] = task
    documents = {names.get(t, t): replace(d, task=names.get(t, t)) for t, d in run.documents.items()}
    return RunResults(data, documents)


def policy(outcomes: Outcomes, decide: Callable[[int, int], int]) -> Outcomes:
    result = dict(outcomes)
    for task, per_doc in outcomes.items():
        if isinstance(next(iter(per_doc.values())), tuple):
            result[task] = {h: (gold, decide(gold, pred)) for h, (gold, pred) in per_doc.items()}
    return result


USELESS: dict[str, Callable[[int, int], int]] = {
    "everything ALLOW": lambda g, p: ALLOW,
    "everything ESCALATE": lambda g, p: ESCALATE,
    "everything REFUSE": lambda g, p: REFUSE,
    "ESCALATE -> ALLOW": lambda g, p: ALLOW if g == ESCALATE else g,
    "ALLOW -> ESCALATE": lambda g, p: ESCALATE if g == ALLOW else g,
    "ESCALATE -> REFUSE": lambda g, p: REFUSE if g == ESCALATE else g,
    "REFUSE -> ESCALATE": lambda g, p: ESCALATE if g == REFUSE else g,
}


def refuse_to_allow(outcomes: Outcomes, k: int, rng: random.Random) -> Outcomes:
    """k requests to refuse that were decided REFUSE, decided ALLOW instead."""
    result = dict(outcomes)
    for task, per_doc in outcomes.items():
        if isinstance(next(iter(per_doc.values())), tuple):
            caught = sorted(h for h, (gold, pred) in per_doc.items() if gold == REFUSE and pred == REFUSE)
            flipped = set(rng.sample(caught, min(k, len(caught))))
            result[task] = {h: ((g, ALLOW) if h in flipped else (g, p)) for h, (g, p) in per_doc.items()}
    return result


def gates(base: RunResults, iters: int) -> dict[str, tuple[GateConfig, Callable, bool]]:
    """Gate name -> (config, run transform, count only the baseline comparisons)."""
    quick = load_gate_config(SUITES / "quickstart.yaml", baseline=str(BASELINE))
    full = load_gate_config(SUITES / "full.yaml", baseline=str(BASELINE))
    bare = GateConfig(baseline=str(BASELINE))
    return {
        "quickstart suite": (quick.model_copy(update={"bootstrap_iters": iters}), lambda r: r, False),
        "full suite (baseline comparisons)": (
            full.model_copy(update={"bootstrap_iters": iters}),
            lambda r: renamed(r, FULL_NAMES),
            True,
        ),
        "--baseline only (every metric)": (
            bare.model_copy(update={"bootstrap_iters": iters}),
            lambda r: r,
            False,
        ),
    }


def failing_checks(
    config: GateConfig, baseline: RunResults, current: RunResults, only_baseline: bool
) -> list[str]:
    """The counted checks that fail, each as `metric (kind)`; empty when the gate passes."""
    report = evaluate_gates(current, baseline, config)
    counted = [c for c in report.checks if c.kind == "baseline" or not only_baseline]
    return [f"{c.metric} ({c.kind})" for c in counted if not c.passed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--iters", type=int, default=1000, help="the gate's bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    real = read_run([BASELINE])
    outcomes = outcomes_of(real)
    started = time.perf_counter()
    print(f"| scenario | {' | '.join(gates(real, args.iters))} |")
    print("|---|" + "---:|" * len(gates(real, args.iters)))

    def row(label: str, make_pair: Callable[[random.Random], tuple[RunResults, RunResults]], n: int) -> None:
        rng = random.Random(args.seed)
        counts = dict.fromkeys(gates(real, args.iters), 0)
        for _ in range(n):
            baseline, current = make_pair(rng)
            for name, (config, transform, only_baseline) in gates(real, args.iters).items():
                failed = failing_checks(config, transform(baseline), transform(current), only_baseline)
                counts[name] += bool(failed)
                if label.startswith("same quality"):
                    for check in failed:
                        causes[(label, name, check)] = causes.get((label, name, check), 0) + 1
        cells = [f"{c / n:.1%} ({c}/{n})" for c in counts.values()]
        print(f"| {label} | {' | '.join(cells)} |", flush=True)

    causes: dict[tuple[str, str, str], int] = {}

    row(
        f"same quality: {REDRAW:.0%} of documents re-drawn",
        lambda rng: (real, run_from(real, redraw(outcomes, REDRAW, rng))),
        args.pairs,
    )
    row(
        "same quality: independent runs",
        lambda rng: (run_from(real, redraw(outcomes, 1.0, rng)), run_from(real, redraw(outcomes, 1.0, rng))),
        args.pairs,
    )
    for k in (2, 4, 6, 8):
        row(
            f"regression: {k} REFUSE -> ALLOW (+ {REDRAW:.0%} re-drawn)",
            lambda rng, k=k: (real, run_from(real, refuse_to_allow(redraw(outcomes, REDRAW, rng), k, rng))),
            args.pairs,
        )
    for name, decide in USELESS.items():
        row(f"useless: {name}", lambda rng, d=decide: (real, run_from(real, policy(outcomes, d))), 1)
    print(
        f"\n{args.pairs} pairs per row, {args.iters} bootstrap resamples; {time.perf_counter() - started:.0f} s"
    )
    # why same-quality runs failed: a gate run may fail several checks at once
    print("\n| same-quality scenario | gate | failing check | runs |\n|---|---|---|---:|")
    for (label, name, check), count in sorted(causes.items(), key=lambda item: (item[0][:2], -item[1])):
        print(f"| {label} | {name} | {check} | {count} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
