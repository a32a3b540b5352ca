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
from so8t.layout import SAMPLES_GLOB, RunDir, date_id_of, samples_task_of
from so8t.layout.atomic import atomic_write_text
from so8t.layout.checkpoints import BEST_CHECKPOINT_RULE, BEST_METRIC_KEY, checkpoint_step, log_history
from so8t.layout.so8t_json import read_consolidated_info
from so8t.lmeval.rewards import LOGGED_REWARDS
from so8t.results.headlines import GSM8K, GSM8K_ROWS_NOTE, HEADLINES

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

CURVE_KEYS = (
    "loss",
    "lm_loss",
    "safety_loss",
    "pet",
    "pet_weight",
    "eval_loss",
    BEST_METRIC_KEY,
    *LOGGED_REWARDS,
)


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


def metric_notes(results: dict) -> list[str]:
    """What the rows of the metrics table mean where a reader could take one for another: the GSM8K rows."""
    tasks = results.get("results", {})
    return [GSM8K_ROWS_NOTE, ""] if any(HEADLINES.get(task) is GSM8K for task in tasks) else []


def _small(value: Any) -> str:
    return f"{value:.2e}" if isinstance(value, (int, float)) else "—"


def consolidation_summary(record: dict[str, Any] | None) -> list[str]:
    """What the consolidated model was folded onto, its dtype, the quantised-weight check and the drifts
    (so8t.json's `consolidation` record of the consolidated folder); [] when it records none."""
    if not record:
        return []
    base_kind = {"none": "an unquantised", "8bit": "an 8-bit", "4bit": "a 4-bit"}
    quantization = record.get("trained_quantization")
    lines = [
        f"- folded onto: {record.get('fold_onto')} ({record.get('fold_target')}); trained on "
        f"{base_kind.get(quantization, quantization)} base",
        f"- saved dtype: {record.get('dtype')} (the base's: {record.get('base_dtype')})",
    ]
    fp32 = record.get("kbit_fp32_tensors")
    if fp32:
        lines.append(
            f"- k-bit training ran {len(fp32.get('tensors', []))} tensor groups in fp32 (norms, embeddings, "
            f"LM head, biases; loaded in {fp32.get('loaded_in')}); saved in {fp32.get('saved_in')}"
        )
    check = record.get("quantized_weights")
    if check:
        verdict = {True: "match", False: "**MISMATCH**", None: "not verified (no checksum recorded)"}
        lines.append(
            f"- quantised weights recomputed at consolidation vs those training used: {verdict[check.get('match')]}"
        )
    drift = record.get("drift") or {}
    rows = [
        ("the trained model (dequantise-then-multiply, fp32)", drift.get("trained")),
        ("the quantised model's own eval forward", drift.get("quantized_eval")),
    ]
    chat = drift.get("chat_rendered_probe_prompts")
    lines += [
        "",
        f"Drift of the consolidated model: the maximum over {drift.get('probe_prompts', '—')} fixed probe "
        f"prompts{f' ({chat} of them chat-rendered)' if chat else ''}, so a lower bound on its drift over every "
        "input:",
        "",
        "| against | max abs logit diff | relative to the largest logit | max abs head-B probability diff |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {what} | {_small(d.get('max_abs_logit_diff'))} | {_small(d.get('max_rel_logit_diff'))} "
        f"| {_small(d.get('max_abs_head_b_prob_diff'))} |"
        for what, d in rows
        if d
    ]
    return lines


def _decision_of(sample: dict) -> tuple[str, str] | None:
    """(gold, predicted) for a logged multiple-choice safety sample, or None for other tasks."""
    if not sample.get("doc", {}).get("so8t_decision"):
        return None
    from so8t.lmeval.scoring import predicted_class

    scores = [float(r[0] if isinstance(r, (list, tuple)) else r) for r in sample["filtered_resps"]]
    # the tasks' own decision rule: non-finite scores decide REFUSE, ties go to the stricter class
    predicted = DECISIONS[predicted_class(scores)]
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
    from so8t.data.gsm8k import completion_answer, extract_gold

    rows = []
    for sample in samples:
        doc = sample.get("doc", {})
        if "question" not in doc or not sample.get("resps"):
            continue
        output = sample["resps"][0][0] if isinstance(sample["resps"][0], list) else sample["resps"][0]
        cell = str(output).strip().replace("\n", " ⏎ ").replace("|", "\\|")
        question = doc["question"].replace("\n", " ").replace("|", "\\|")
        rows.append(
            f"| {question} | {cell[:300]} | {completion_answer(str(output)) or '—'} | {extract_gold(doc['answer'])} |"
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
    # a GRPO reward is logged as None at steps whose batch had no row of its kind
    series = {
        k: [(h["step"], h[k]) for h in history if h.get(k) is not None and "step" in h] for k in CURVE_KEYS
    }
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


def load_samples(results_file: Path | None) -> list[dict]:
    """The samples of one evaluation: samples_<task>_<id>.jsonl beside its results_<id>.json, same id."""
    if results_file is None or date_id_of(results_file) is None:
        return []
    samples: list[dict] = []
    for path in sorted(results_file.parent.glob(SAMPLES_GLOB)):
        if date_id_of(path) == date_id_of(results_file) and samples_task_of(path):
            samples += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return samples


def write_report(
    run_dir: Path,
    *,
    cfg: RunConfig,
    results: dict,
    results_file: Path | None = None,
    gate_report: Any = None,
    timings: dict[str, float] | None = None,
    train_metrics: dict | None = None,
    evaluated_checkpoint: Path | None = None,
) -> Path:
    """Write run_dir/report.md (and report/curves.png) and return its path; the samples are those of
    `results_file` (default: the run's newest results file)."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    samples = load_samples(results_file or run.latest_results())
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
    consolidation = consolidation_summary(read_consolidated_info(run.consolidated).consolidation)
    if consolidation:
        lines += ["", "## Consolidation", "", *consolidation]
    lines += ["", "## Metrics", "", *metrics_table(results), "", *metric_notes(results)]
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
    atomic_write_text(run.report, "\n".join(lines))
    return run.report
