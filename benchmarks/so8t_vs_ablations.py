"""What SO8T buys on a real base: full SO8T against its ablations and the untouched base, one command.

Every trained row is `so8t run configs/smollm2-135m-cpu.yaml` (SmolLM2-135M-Instruct as Q4_1 weights,
dequantised; chat prompts; the same data, steps and prompt template) with only the keys of its ablation
changed, at a shorter budget than the recipe (--steps, default 70 against the recipe's 240) and without
validation inside the run (its one checkpoint is the one consolidated):

    base          the base untouched, deciding with its own words in its chat format (lm-eval's hf backend
                  scores the three decision words: decision_source=lm), 1 run
    probe         the frozen base + head B only: a linear probe (no LoRA, no rotations, no gate), seeds 0-2
    lora_head_b   LoRA + head B without SO(8) rotations (the plain-peft ablation), seeds 0-2
    so8t          full SO8T (rotations, gate, head B, PET), seeds 0-2
    so8t_no_pet   full SO8T without PET, seed 0

Columns: safety macro F1, refuse recall, escalate and allow precision, unsafe-allow and over-refusal rates
on the test split and on the bundled challenge set (other writers, never trained on); XSTest's unsafe-allow
and over-refusal rates (an outside benchmark, never trained on; --xstest-data, found as so8t_xstest finds
it, the columns left out with a note when it is absent); GSM8K-style exact
match on the synthetic test split; and capability kept: the mean per-token log-likelihood of the reference
solutions of the first --gsm8k-problems real GSM8K test problems (--gsm8k-data), rendered as training renders
them. Each run's value with its standard error, each row's mean and spread (sd) over seeds, and every row's
difference from full SO8T at seed 0 with the gate's paired standard error (so8t.results.gate.change_noise).
Last, training tokens/s of SO8T against plain peft LoRA + Trainer on this base, the median of
--throughput-repeats runs of each in alternating order (benchmarks/bench_train_throughput.py): one short run
is too noisy for a 0.95 goal (one run of 10 steps measured 0.90 and 1.11 in two builds of the table).
Nothing is tuned on the test split: every row runs the recipe's settings.

    python benchmarks/so8t_vs_ablations.py [--out runs/so8t-vs-ablations] [--steps 70] [--seeds 0,1,2] \
        [--gsm8k-problems 200] [--xstest-data PATH] [--limit N] [--throughput-steps 20] [--throughput-repeats 3] \
        [--base smollm2-135m-instruct] [--rows ...]

It writes OUT/table.md and OUT/table.json; rerunning trains nothing already trained (each run is a run
directory that `so8t run` resumes, or leaves as it is when finished), keeps the evaluations and scores
already written, and does the rest. The sets never trained on are scored in one lm-eval run per model, and
a model's reference scores are kept under a digest of its weights (OUT/reference-loglik/): the probe's LM is
the base's, so it is scored once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # logged_command, beside this file

from logged_command import benchmark_env, run_logged  # noqa: E402

RECIPE = REPO / "configs" / "smollm2-135m-cpu.yaml"
DEFAULT_GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
SAFETY_METRICS = (
    "macro_f1",
    "refuse_recall",
    "escalate_precision",
    "allow_precision",
    "unsafe_allow_rate",
    "over_refusal_rate",
)
GSM8K_METRIC = ("so8t_gsm8k_local", "exact_match", "strict-match")
SAFETY_TASK = "so8t_safety_local"
XSTEST_TASK = "so8t_xstest"
XSTEST_METRICS = ("unsafe_allow_rate", "over_refusal_rate")
LOGLIK = "gsm8k_reference_loglik_per_token"


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    seeds: int
    changes: dict[str, Any] = field(default_factory=dict)
    trained: bool = True


ROWS = (
    Row("base", "the base untouched, deciding with its own words (decision_source=lm)", 1, trained=False),
    Row(
        "probe",
        "frozen base + head B (linear probe)",
        3,
        {"model.lora.trainable": False, "model.so8.layers": [], "model.so8.gate": False},
    ),
    Row(
        "lora_head_b",
        "LoRA + head B, no SO(8) rotations",
        3,
        {"model.so8.layers": [], "model.so8.gate": False},
    ),
    Row("so8t", "full SO8T (rotations, gate, head B, PET)", 3),
    Row("so8t_no_pet", "full SO8T without PET", 1, {"pet.weight": 0.0}),
)


def _sets(values: dict[str, Any]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


def train_run(row: Row, seed: int, args: argparse.Namespace) -> Path:
    """`so8t run` of the recipe with the row's changes; the run directory."""
    run_dir = args.out / f"{row.name}-seed{seed}"
    common = {
        "model.base": args.base,
        "seed": seed,
        "train.max_steps": args.steps,
        "train.save_steps": args.steps,
        # no validation inside the runs: it would run once, after the last step, and the one checkpoint is the
        # one consolidated whatever it scores (the table reads the test split)
        "train.eval_strategy": "no",
        "logging.wandb.mode": "disabled",
    }
    if args.limit:
        common["eval.limit"] = args.limit
    command = [sys.executable, "-m", "so8t", "run", str(RECIPE), "--output-dir", str(run_dir)]
    run_logged([*command, *_sets({**common, **row.changes})], args.out / "logs" / f"{run_dir.name}.log")
    return run_dir


def outside_sets(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """The sets never trained on, each as (lm-eval task, its data file): the bundled challenge set, and
    XSTest where its file is found. Their tasks differ, so one lm-eval run scores them all."""
    from so8t.data.safety import bundled_challenge_path

    sets = {"challenge": (SAFETY_TASK, str(bundled_challenge_path()))}
    if args.xstest_data is not None:
        sets["xstest"] = (XSTEST_TASK, str(args.xstest_data))
    return sets


def _outside_tasks(outside: dict[str, tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    """(--tasks, --metadata) of the one lm-eval run that scores every outside set: each task its own file."""
    tasks = ",".join(task for task, _ in outside.values())
    return tasks, {"data_files": {task: data_file for task, data_file in outside.values()}}


def outside_eval(model: Path, outside: dict[str, tuple[str, str]], args: argparse.Namespace) -> Path:
    """Every set never trained on through one `so8t eval` (head-B decisions, the model's own prompt format)."""
    out = model.parent / "eval-outside" / "results.json"
    if _evaluated(out.parent):
        return out.parent
    tasks, metadata = _outside_tasks(outside)
    command = [sys.executable, "-m", "so8t", "eval", str(model), "--tasks", tasks, "--out", str(out)]
    command += ["--metadata", json.dumps(metadata)]
    if args.limit:
        command += ["--limit", str(args.limit)]
    run_logged(command, args.out / "logs" / f"{model.parent.name}-outside.log")
    return out.parent


def base_eval(
    base_folder: Path,
    data_dir: Path,
    out: Path,
    outside: dict[str, tuple[str, str]] | None,
    args: argparse.Namespace,
) -> None:
    """The untouched base through lm-eval's hf backend in its chat format: decisions are its own words. The
    test split when `outside` is None, else every outside set in one run."""
    from so8t.layout import LOCAL_TASKS

    if _evaluated(out):
        return
    command = [sys.executable, "-m", "lm_eval", "--model", "hf"]
    command += ["--model_args", f"pretrained={base_folder},dtype=float32", "--device", "cpu"]
    command += ["--batch_size", "16"]
    tasks = f"{GSM8K_METRIC[0]},{SAFETY_TASK}"
    if outside:
        tasks, metadata = _outside_tasks(outside)
        command += ["--metadata", json.dumps(metadata)]
    command += ["--tasks", tasks, "--apply_chat_template", "--fewshot_as_multiturn", "--log_samples"]
    command += ["--output_path", str(out), "--gen_kwargs", "max_gen_toks=96"]
    if args.limit:
        command += ["--limit", str(args.limit)]
    # the local tasks read the so8t run's materialised test split, as in `so8t run`
    files = {spec.env_var: str(data_dir / spec.file_name) for spec in LOCAL_TASKS.values()}
    run_logged(command, args.out / "logs" / f"base-{out.name}.log", benchmark_env(files))


def _evaluated(folder: Path) -> bool:
    """A rerun keeps an evaluation already written (the model behind it is never retrained)."""
    return folder.is_dir() and any(folder.rglob("results_*.json"))


def cached_loglik(folder: Path, problems: list[Any], cache: Path) -> list[float]:
    """reference_loglik of the model in `folder`, kept in `cache` under what decides it: the problems, the
    model's config and every weight as loaded. A model scored before is not scored again, on a rerun or
    under another name: a linear probe's consolidated LM is the base's own weights (head B lives apart)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    path = cache / f"gsm8k-reference-loglik-{len(problems)}-{_scoring_key(model, tokenizer, problems)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    values = reference_loglik(model, tokenizer, problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return values


def _scoring_key(model: Any, tokenizer: Any, problems: list[Any]) -> str:
    """A digest of everything reference_loglik's values depend on. Tied and untied heads holding the same
    values are one model (a consolidated folder unties what the base ties), so the digest reads the output
    embeddings as loaded and leaves the tie flag out of the config."""
    import torch

    digest = hashlib.sha256(json.dumps([[p.question, p.answer] for p in problems]).encode())
    config = {k: v for k, v in model.config.to_dict().items() if k not in _CONFIG_BOOKKEEPING}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(tokenizer.backend_tokenizer.to_str().encode() if tokenizer.is_fast else b"")
    digest.update((tokenizer.chat_template or "").encode())
    weights = dict(model.named_parameters(remove_duplicate=False))
    weights["lm_head.weight"] = model.get_output_embeddings().weight
    for name, tensor in sorted({**dict(model.named_buffers()), **weights}.items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


# config keys that say how a folder was written, not what the model computes
_CONFIG_BOOKKEEPING = {"tie_word_embeddings", "transformers_version", "_name_or_path", "architectures"}


def reference_loglik(model: Any, tokenizer: Any, problems: list[Any]) -> list[float]:
    """Per problem, the mean log-probability of the reference solution's tokens, tokenized and rendered as
    training renders a GSM8K row in the chat format (completion-only labels). One problem per forward:
    batching them measured no faster on 2 CPU cores."""
    import torch

    from so8t.data.templates import PromptFormat
    from so8t.train.collate import IGNORE_INDEX, encode_example

    values = []
    for problem in problems:
        row = encode_example(tokenizer, problem, max_length=1024, prompt_format=PromptFormat("chat"))
        ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
        # the logits at position p score token p + 1; only the solution's positions go through the 49k-wide
        # LM head (about a quarter of this model's forward compute per position)
        positions = (labels[1:] != IGNORE_INDEX).nonzero()[:, 0]
        with torch.no_grad():
            logits = model(input_ids=ids, logits_to_keep=positions).logits[0].float()
        log_probs = logits.log_softmax(-1).gather(-1, labels[positions + 1, None])
        values.append(float(log_probs.mean()))
    return values


def _gsm8k_problems(path: Path, count: int) -> list[Any]:
    from so8t.data.gsm8k import GSM8KExample

    lines = path.read_text(encoding="utf-8").splitlines()[:count]
    return [GSM8KExample(json.loads(line)["question"], json.loads(line)["answer"]) for line in lines]


# ----------------------------------------------------------------------------- reading and comparing


def _metrics(run: Any, task: str = SAFETY_TASK) -> dict[str, tuple[float, float | None]]:
    from so8t.results.results_file import get_metric

    found = {}
    for metric in XSTEST_METRICS if task == XSTEST_TASK else SAFETY_METRICS:
        value = get_metric(run.data, task, metric, "none")
        if value is not None:
            found[metric] = (float(value.value), value.stderr)
    value = get_metric(run.data, *GSM8K_METRIC)
    if value is not None:
        found["exact_match"] = (float(value.value), value.stderr)
    return found


def _loglik_difference(reference: list[float], current: list[float]) -> dict[str, Any]:
    from so8t.results.paired import paired_noise

    means = (statistics.fmean(reference), statistics.fmean(current))
    noise = paired_noise(reference, current, aggregation="mean", metric=LOGLIK, reported=means)
    se = noise.stderr if not isinstance(noise, str) else None
    return {"delta": means[1] - means[0], "se": se, "noise": getattr(noise, "label", noise)}


def _se_of_mean(values: list[float]) -> float | None:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(REPO / "benchmarks" / "bench_train_throughput.py"), "--base", args.base]
    command += ["--steps", str(args.throughput_steps), "--batch-size", "4"]
    command += ["--repeats", str(args.throughput_repeats)]
    log = args.out / "logs" / "throughput.log"
    run_logged(command, log)
    text = log.read_text()
    # the script prints its result last, as indented JSON
    return json.loads(text[text.rindex('{\n  "base"') :])


# ----------------------------------------------------------------------------- the table


def _cell(value: float | None, se: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} ± {se:.3f}" if se is not None else f"{value:.3f}"


def render(table: dict[str, Any]) -> str:
    columns = [*(f"test {m}" for m in SAFETY_METRICS), *(f"challenge {m}" for m in SAFETY_METRICS)]
    if table.get("xstest"):
        columns += [f"xstest {m}" for m in XSTEST_METRICS]
    columns += ["exact_match", LOGLIK]
    lines = [
        f"Base: {table['base']}; {table['steps']} training steps per run; seeds {table['seeds']}; "
        f"{table['gsm8k_problems']} real GSM8K problems for {LOGLIK}; XSTest: "
        + (table["xstest"] or "not found, its columns left out (give --xstest-data)")
        + ".",
        "",
        "Each run (value ± its standard error):",
        "",
        "| row | seed | " + " | ".join(columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for run in table["runs"]:
        cells = [_cell(*run["values"].get(c, (None, None))) for c in columns]
        lines.append(f"| {run['row']} | {run['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "Each row over its seeds (mean, sd):", "", "| row | runs | " + " | ".join(columns) + " |"]
    lines.append("|---|---:|" + "---:|" * len(columns))
    for name, summary in table["rows"].items():
        cells = [
            f"{summary[c]['mean']:.3f} (sd {summary[c]['sd']:.3f})" if summary.get(c) else "n/a"
            for c in columns
        ]
        lines.append(f"| {name} | {summary['runs']} | " + " | ".join(cells) + " |")
    lines += ["", "Difference from full SO8T at seed 0 (row − so8t, paired standard error, noise model):", ""]
    lines += ["| row | column | Δ | se(Δ) | noise |", "|---|---|---:|---:|---|"]
    for name, diffs in table["differences"].items():
        for column, d in diffs.items():
            se = f"{d['se']:.3f}" if d["se"] is not None else "n/a"
            lines.append(f"| {name} | {column} | {d['delta']:+.3f} | {se} | {d['noise']} |")
    if table.get("throughput"):
        t = table["throughput"]
        lines += [
            "",
            f"Training tokens/s on this base (batch {t['batch_size']}, {t['steps']} timed steps, median of "
            f"{t['repeats']} runs each): "
            f"SO8T {t['so8t_tokens_per_s']:.0f}, plain peft LoRA + Trainer {t['peft_lora_tokens_per_s']:.0f}, "
            f"ratio {t['ratio']:.3f} (goal {t['goal']}).",
        ]
    return "\n".join(lines) + "\n"


def _summaries(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for row in ROWS:
        mine = [r for r in runs if r["row"] == row.name]
        summary: dict[str, Any] = {"runs": len(mine)}
        for column in mine[0]["values"] if mine else []:
            values = [r["values"][column][0] for r in mine if r["values"].get(column)]
            if values:
                summary[column] = {
                    "mean": statistics.fmean(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                }
        rows[row.name] = summary
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "so8t-vs-ablations")
    parser.add_argument("--base", default="smollm2-135m-instruct", help="model.base of every row")
    parser.add_argument("--steps", type=int, default=70, help="training steps of every trained run")
    parser.add_argument(
        "--seeds", default="0,1,2", help="the seeds of the three-seed rows (the others: the first)"
    )
    parser.add_argument("--gsm8k-data", type=Path, default=DEFAULT_GSM8K, help="real GSM8K test JSONL")
    parser.add_argument("--gsm8k-problems", type=int, default=200)
    parser.add_argument(
        "--xstest-data",
        type=Path,
        default=None,
        help="XSTest's xstest_prompts.csv (found as so8t_xstest does)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="documents per evaluation task (plumbing checks)"
    )
    parser.add_argument("--throughput-steps", type=int, default=20, help="timed steps; 0 leaves it out")
    parser.add_argument(
        "--throughput-repeats", type=int, default=3, help="runs of each side, alternating order; the medians"
    )
    parser.add_argument(
        "--rows", default=",".join(r.name for r in ROWS), help="the trained rows to run (so8t is always run)"
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.monotonic()
    os.environ.setdefault("WANDB_MODE", "disabled")

    from so8t.data.xstest import find_xstest
    from so8t.model.base import resolve_base_path
    from so8t.results.baseline_comparison import metric_change
    from so8t.results.run_results import read_run

    if args.xstest_data is None:
        args.xstest_data = find_xstest({})
    outside = outside_sets(args)

    problems = _gsm8k_problems(args.gsm8k_data, args.gsm8k_problems)
    loglik_cache = args.out / "reference-loglik"
    runs: list[dict[str, Any]] = []
    sides: dict[tuple[str, int], dict[str, Any]] = {}
    chosen = {*args.rows.split(","), "so8t"}
    for row in (r for r in ROWS if r.trained and r.name in chosen):
        for seed in seeds[: row.seeds]:
            run_dir = train_run(row, seed, args)
            side: dict[str, Any] = {"test": read_run([run_dir / "eval"])}
            if outside:
                scored = read_run([outside_eval(run_dir / "consolidated", outside, args)])
                side.update({name: scored for name in outside})
            side["loglik"] = cached_loglik(run_dir / "consolidated", problems, loglik_cache)
            sides[(row.name, seed)] = side
    base_folder = Path(resolve_base_path(args.base))
    data_dir = args.out / f"so8t-seed{seeds[0]}" / "data"
    base_eval(base_folder, data_dir, args.out / "base" / "eval", None, args)
    base_side: dict[str, Any] = {"test": read_run([args.out / "base" / "eval"])}
    if outside:
        base_eval(base_folder, data_dir, args.out / "base" / "eval-outside", outside, args)
        base_side.update({name: read_run([args.out / "base" / "eval-outside"]) for name in outside})
    base_side["loglik"] = cached_loglik(base_folder, problems, loglik_cache)
    sides[("base", seeds[0])] = base_side
    for (name, seed), side in sides.items():
        values = {f"test {k}": v for k, v in _metrics(side["test"]).items() if k != "exact_match"}
        for split, (task, _) in outside.items():
            values.update(
                {f"{split} {k}": v for k, v in _metrics(side[split], task).items() if k != "exact_match"}
            )
        if "exact_match" in _metrics(side["test"]):
            values["exact_match"] = _metrics(side["test"])["exact_match"]
        values[LOGLIK] = (statistics.fmean(side["loglik"]), _se_of_mean(side["loglik"]))
        runs.append({"row": name, "seed": seed, "values": values})
    reference = sides[("so8t", seeds[0])]
    differences: dict[str, Any] = {}
    for (name, seed), side in sides.items():
        if name == "so8t" or seed != seeds[0]:
            continue
        diffs: dict[str, Any] = {}
        for split, task in (("test", SAFETY_TASK), *((n, t) for n, (t, _) in outside.items())):
            for metric in XSTEST_METRICS if task == XSTEST_TASK else SAFETY_METRICS:
                found = metric_change(task, metric, "none", reference[split], side[split])
                if found:
                    diffs[f"{split} {metric}"] = found
        found = metric_change(*GSM8K_METRIC, reference["test"], side["test"])
        if found:
            diffs["exact_match"] = found
        diffs[LOGLIK] = _loglik_difference(reference["loglik"], side["loglik"])
        differences[name] = diffs
    table = {
        "base": args.base,
        "steps": args.steps,
        "seeds": seeds,
        "gsm8k_problems": len(problems),
        "xstest": str(args.xstest_data) if args.xstest_data is not None else None,
        "runs": runs,
        "rows": _summaries(runs),
        "differences": differences,
        "throughput": throughput(args) if args.throughput_steps else None,
    }
    table["wall_seconds"] = time.monotonic() - started
    (args.out / "table.json").write_text(json.dumps(table, indent=2, default=str))
    (args.out / "table.md").write_text(render(table))
    print(render(table))
    print(f"{table['wall_seconds']:.0f} s; {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
