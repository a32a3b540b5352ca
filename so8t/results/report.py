"""report.md for a run: metrics with standard errors, training curves, safety confusion matrix, samples.

Everything is read back from files the run wrote (lm-eval results and samples, Trainer's state), so the
report can be rebuilt for any run directory with `write_report`.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.data.safety import DECISIONS
from so8t.layout import BEST_CHECKPOINT_RULE, BEST_METRIC_KEY, RunDir, checkpoint_step, log_history

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

CURVE_KEYS = ("loss", "lm_loss", "safety_loss", "pet", "pet_weight", "eval_loss", BEST_METRIC_KEY)


def _fmt(value: Any) -> str:
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return f"{value:.4f}"
    return "—"


def metrics_table(results: dict) -> list[str]:
    """Markdown rows: task, metric, filter, value, stderr (lm-eval's own keys `metric,filter`)."""
    rows = ["| task | metric | filter | value | stderr |", "|---|---|---|---:|---:|"]
    for task, metrics in sorted(results.get("results", {}).items()):
        for key, value in metrics.items():
            if "," not in key or "_stderr," in key:
                continue
            metric, filter_name = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filter_name}")
            rows.append(f"| {task} | {metric} | {filter_name} | {_fmt(value)} | {_fmt(stderr)} |")
    return rows


def _decision_of(sample: dict) -> tuple[str, str] | None:
    """(gold, predicted) for a logged multiple-choice safety sample, or None for other tasks."""
    if not sample.get("doc", {}).get("so8t_decision"):
        return None
    scores = [r[0] if isinstance(r, (list, tuple)) else r for r in sample["filtered_resps"]]
    predicted = DECISIONS[max(range(len(scores)), key=lambda i: float(scores[i]))]
    gold = str(sample["doc"].get("decision", "")).strip().upper()
    if gold not in DECISIONS:  # lm-eval logs the gold choice index, as an int or a string
        gold = DECISIONS[int(sample["target"])]
    return gold, predicted


def safety_breakdown(samples: list[dict]) -> list[str]:
    """Confusion matrix (rows gold, columns predicted) and per-category accuracy / refuse recall."""
    pairs = [(s.get("doc", {}).get("category") or "—", p) for s in samples if (p := _decision_of(s))]
    if not pairs:
        return []
    confusion = Counter(pair for _, pair in pairs)
    lines = [
        "### Safety decisions: confusion matrix (rows gold, columns predicted)",
        "",
        "| gold \\ predicted | " + " | ".join(DECISIONS) + " |",
        "|---|" + "---:|" * len(DECISIONS),
    ]
    for gold in DECISIONS:
        lines.append(f"| {gold} | " + " | ".join(str(confusion[(gold, p)]) for p in DECISIONS) + " |")
    per_category: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for category, pair in pairs:
        per_category[category].append(pair)
    lines += [
        "",
        "### Safety decisions per category",
        "",
        "| category | n | accuracy | gold decisions | predicted ALLOW on gold REFUSE |",
        "|---|---:|---:|---|---:|",
    ]
    for category, items in sorted(per_category.items()):
        accuracy = sum(g == p for g, p in items) / len(items)
        golds = Counter(g for g, _ in items)
        unsafe = sum(g == "REFUSE" and p == "ALLOW" for g, p in items)
        gold_text = ", ".join(f"{d} {golds[d]}" for d in DECISIONS if golds[d])
        lines.append(f"| {category} | {len(items)} | {accuracy:.2f} | {gold_text} | {unsafe} |")
    return lines


def generation_samples(samples: list[dict], limit: int = 5) -> list[str]:
    """A few GSM8K-style generations: question, output, extracted answer, gold."""
    from so8t.data.gsm8k import extract_gold, extract_last_number

    rows = []
    for sample in samples:
        doc = sample.get("doc", {})
        if "question" not in doc or not sample.get("resps"):
            continue
        output = sample["resps"][0][0] if isinstance(sample["resps"][0], list) else sample["resps"][0]
        cell = str(output).strip().replace("\n", " ⏎ ").replace("|", "\\|")
        question = doc["question"].replace("\n", " ").replace("|", "\\|")
        rows.append(
            f"| {question} | {cell[:300]} | {extract_last_number(str(output)) or '—'} | {extract_gold(doc['answer'])} |"
        )
        if len(rows) >= limit:
            break
    if not rows:
        return []
    return [
        "### Sample generations",
        "",
        "| question | output | extracted | gold |",
        "|---|---|---|---|",
        *rows,
    ]


def curves_figure(history: list[dict], evaluated_step: int | None = None) -> Any:
    """The matplotlib figure of the training curves: one panel per loss part over the global step, each with
    a dashed line at `evaluated_step` (the checkpoint the report evaluates); None when nothing was logged."""
    series = {k: [(h["step"], h[k]) for h in history if k in h and "step" in h] for k in CURVE_KEYS}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 2.8), squeeze=False)
    for ax, (key, points) in zip(axes[0], series.items(), strict=True):
        ax.plot([s for s, _ in points], [v for _, v in points], marker="." if len(points) < 30 else None)
        if evaluated_step is not None:
            ax.axvline(
                evaluated_step,
                color="tab:red",
                linestyle="--",
                linewidth=1,
                label=f"evaluated: step {evaluated_step}",
            )
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if evaluated_step is not None:
        axes[0][0].legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def plot_training_curves(run_dir: Path, out_png: Path, evaluated_step: int | None = None) -> Path | None:
    """Write curves_figure of the run's log history to `out_png`; None when nothing was logged."""
    fig = curves_figure(log_history(run_dir), evaluated_step)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def load_samples(eval_dir: Path) -> list[dict]:
    """The latest samples file of each task (lm-eval names them samples_<task>_<timestamp>.jsonl)."""
    latest: dict[str, Path] = {}
    for path in sorted(eval_dir.glob("samples_*.jsonl")):  # timestamps sort in time order
        task = path.stem[len("samples_") :].rsplit("_", 1)[0]
        latest[task] = path
    samples: list[dict] = []
    for path in latest.values():
        samples += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return samples


def write_report(
    run_dir: Path,
    *,
    cfg: RunConfig,
    results: dict,
    gate_report: Any = None,
    timings: dict[str, float] | None = None,
    train_metrics: dict | None = None,
    evaluated_checkpoint: Path | None = None,
) -> Path:
    """Write run_dir/report.md (and report/curves.png) and return its path."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    samples = load_samples(run.eval)
    evaluated_step = checkpoint_step(evaluated_checkpoint) if evaluated_checkpoint is not None else None
    curves = plot_training_curves(run_dir, run.curves, evaluated_step)
    lines = [
        f"# so8t run report: {run_dir.name}",
        "",
        f"- base model: `{cfg.model.base}` (quantisation {cfg.model.quantization}, dtype {cfg.model.dtype})",
        f"- steps: {cfg.train.max_steps or f'{cfg.train.num_epochs} epoch(s)'}, batch "
        f"{cfg.train.per_device_batch_size} x accumulation {cfg.train.gradient_accumulation_steps}",
        f"- decisions from: {cfg.eval.decision_source}; tasks: {', '.join(cfg.eval.tasks)}",
    ]
    if evaluated_checkpoint is not None:
        lines.append(
            f"- evaluated: `{Path(evaluated_checkpoint).name}`, consolidated ({BEST_CHECKPOINT_RULE})"
        )
    if timings:
        lines.append("- stage times (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()))
    lines += ["", "## Metrics", "", *metrics_table(results), ""]
    if gate_report is not None:
        lines += ["## Gate", "", gate_report.to_markdown(), ""]
    if curves is not None:
        lines += [
            "## Training curves",
            "",
            f"![training curves]({curves.relative_to(run_dir).as_posix()})",
            "",
        ]
        if evaluated_step is not None:
            lines += [
                f"The dashed line marks step {evaluated_step}, `{Path(evaluated_checkpoint).name}`, the checkpoint "
                f"evaluated above. Selection rule: {BEST_CHECKPOINT_RULE}.",
                "",
            ]
    if train_metrics:
        lines += [
            "Final training metrics: "
            + ", ".join(
                f"{k} {_fmt(v)}" for k, v in sorted(train_metrics.items()) if isinstance(v, (int, float))
            ),
            "",
        ]
    breakdown = safety_breakdown(samples)
    if breakdown:
        lines += ["## Safety", "", *breakdown, ""]
    gens = generation_samples(samples)
    if gens:
        lines += ["## Generations", "", *gens, ""]
    run.report.write_text("\n".join(lines))
    return run.report
