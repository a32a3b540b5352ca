"""What GRPO does to a model: held-out exact match and safety before and after, paired by document, over seeds.

Each seed is one `so8t run` of a GRPO recipe (train.method grpo, continuing from its grpo.init_from run),
which trains, consolidates and evaluates on its held-out split as any run does. The starting model (the
init_from run) is evaluated on the same test files, so every difference is paired by document and carries
the gate's standard error (so8t.results.baseline_comparison.change_noise, as `so8t gate --baseline`).
Safety is scored with both decision sources, before and after: head B (decision_source=head) and the
decision the model states (decision_source=lm), the one GRPO's safety reward trains. The reward curve of
each seed is read from its log history.

    python benchmarks/grpo_before_after.py [--config configs/quickstart-grpo.yaml] [--seeds 0,1,2] \
        [--out runs/grpo-before-after] [--steps N] [--limit N] [--set KEY=VALUE ...]

It writes OUT/table.md and OUT/table.json; a rerun keeps the runs and evaluations already written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # logged_command, beside this file

from logged_command import benchmark_env, run_logged  # noqa: E402

GSM8K = ("so8t_gsm8k_local", "exact_match", "strict-match")
SAFETY_TASK = "so8t_safety_local"
SAFETY_METRICS = ("macro_f1", "refuse_recall", "unsafe_allow_rate", "over_refusal_rate")
DECISION_SOURCES = ("head", "lm")


def grpo_run(seed: int, sets: list[str], args: argparse.Namespace) -> Path:
    """`so8t run` of the GRPO recipe with this seed; the run directory (resumed or kept on a rerun)."""
    run_dir = args.out / f"seed{seed}"
    command = [sys.executable, "-m", "so8t", "run", str(args.config), "--output-dir", str(run_dir)]
    command += [arg for kv in [f"seed={seed}", *sets] for arg in ("--set", kv)]
    run_logged(command, args.out / "logs" / f"{run_dir.name}.log")
    return run_dir


def evaluate(model: Path, data_dir: Path, tasks: list[str], source: str, out: Path, settings: Any) -> Path:
    """`so8t eval` of `model` on the test files in `data_dir` with one decision source and the recipe's eval
    settings (those of the run's own evaluation); kept on a rerun."""
    from so8t.layout import LOCAL_TASKS

    if out.is_dir() and any(out.glob("results_*.json")):
        return out
    command = [sys.executable, "-m", "so8t", "eval", str(model), "--tasks", ",".join(tasks)]
    command += ["--out", str(out / "results.json"), "--model-args", f"decision_source={source}"]
    command += ["--bootstrap-iters", str(settings.bootstrap_iters), "--batch-size", str(settings.batch_size)]
    if settings.max_gen_toks is not None:
        command += ["--max-gen-toks", str(settings.max_gen_toks)]
    if settings.limit:
        command += ["--limit", str(settings.limit)]
    files = {spec.env_var: str(data_dir / spec.file_name) for spec in LOCAL_TASKS.values()}
    run_logged(command, out.parent / f"eval-{out.name}.log", benchmark_env(files))
    return out


def _test_files_key(data_dir: Path) -> str:
    """The test split's identity: seeds whose files are equal share one evaluation of the starting model."""
    from so8t.layout import LOCAL_TASKS

    digest = hashlib.sha256()
    for spec in LOCAL_TASKS.values():
        digest.update((data_dir / spec.file_name).read_bytes())
    return digest.hexdigest()[:12]


def reward_curve(run_dir: Path) -> list[dict[str, float]]:
    """The logged rewards of a GRPO run, step by step (a reward is absent where its batch had no row of its
    kind)."""
    from so8t.layout.checkpoints import log_history
    from so8t.lmeval.rewards import LOGGED_REWARDS

    return [
        {"step": entry["step"], **{k: entry[k] for k in LOGGED_REWARDS if entry.get(k) is not None}}
        for entry in log_history(run_dir)
        if "step" in entry and any(entry.get(k) is not None for k in LOGGED_REWARDS)
    ]


def _first_last(curve: list[dict[str, float]], key: str, n: int) -> tuple[float | None, float | None]:
    """Means of the first and the last n logged values, never sharing one (n is cut to half of a short curve)."""
    values = [point[key] for point in curve if key in point]
    n = min(n, len(values) // 2)
    if not n:
        return None, None
    return statistics.fmean(values[:n]), statistics.fmean(values[-n:])


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    se = f" ± {entry['se']:.3f}" if entry["se"] is not None else ""
    return f"{entry['before']:.3f} → {entry['after']:.3f} ({entry['delta']:+.3f}{se})"


def render(table: dict[str, Any]) -> str:
    from so8t.lmeval.rewards import LOGGED_REWARDS

    columns = ["GSM8K exact match"] + [f"{m} ({s})" for s in DECISION_SOURCES for m in SAFETY_METRICS]
    lines = [
        f"GRPO recipe: {table['config']} (from {table['init_from']}); seeds {table['seeds']}.",
        "",
        "Before → after on the held-out split (difference ± paired standard error):",
        "",
        "| seed | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for seed in table["runs"]:
        cells = [_cell(seed["differences"].get(column)) for column in columns]
        lines.append(f"| {seed['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "Mean reward over the first and the last logged steps (at most 5 each, never shared):", ""]
    lines += ["| seed | " + " | ".join(f"{k} first → last" for k in LOGGED_REWARDS) + " |"]
    lines += ["|---|" + "---|" * len(LOGGED_REWARDS)]
    for seed in table["runs"]:
        cells = []
        for key in LOGGED_REWARDS:
            first, last = seed["reward_first_last"][key]
            cells.append("—" if first is None else f"{first:.3f} → {last:.3f}")
        lines.append(f"| {seed['seed']} | " + " | ".join(cells) + " |")
    deltas = [s["differences"]["GSM8K exact match"]["delta"] for s in table["runs"]]
    spread = f", sd {statistics.stdev(deltas):.3f}" if len(deltas) > 1 else ""
    lines += ["", f"GSM8K exact match change over seeds: mean {statistics.fmean(deltas):+.3f}{spread}."]
    return "\n".join(lines + ["", *_curve_lines(table["runs"])]) + "\n"


def _curve_lines(runs: list[dict[str, Any]]) -> list[str]:
    """The reward curves: per logged step, the weighted reward of each seed, and each reward's mean over
    the seeds that logged it."""
    from so8t.lmeval.rewards import LOGGED_REWARDS

    by_step: dict[int, list[dict[str, float]]] = {}
    for run in runs:
        for point in run["reward_curve"]:
            by_step.setdefault(int(point["step"]), []).append(point)
    seeds = [run["seed"] for run in runs]
    header = [f"reward (seed {seed})" for seed in seeds] + [f"{key} (mean)" for key in LOGGED_REWARDS]
    lines = ["Reward curves (per logged step):", "", "| step | " + " | ".join(header) + " |"]
    lines.append("|---:|" + "---:|" * len(header))
    for step, points in sorted(by_step.items()):
        per_seed = {
            run["seed"]: next(
                (p["reward"] for p in run["reward_curve"] if p["step"] == step and "reward" in p), None
            )
            for run in runs
        }
        cells = ["—" if per_seed[seed] is None else f"{per_seed[seed]:.3f}" for seed in seeds]
        for key in LOGGED_REWARDS:
            values = [p[key] for p in points if key in p]
            cells.append(f"{statistics.fmean(values):.3f}" if values else "—")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    from so8t.config import load_config
    from so8t.layout import GSM8K_LOCAL_TASK, RunDir
    from so8t.lmeval.rewards import LOGGED_REWARDS
    from so8t.results.baseline_comparison import metric_change
    from so8t.results.run_results import read_run

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart-grpo.yaml")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated GRPO seeds")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "grpo-before-after")
    parser.add_argument("--steps", type=int, default=None, help="train.max_steps (default: the recipe's)")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (plumbing checks only)")
    parser.add_argument("--first-last", type=int, default=5, help="logged steps averaged at each end")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as `so8t run --set`")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    sets = ["logging.wandb.mode=disabled", *args.set]
    sets += [f"train.max_steps={args.steps}"] if args.steps else []
    sets += [f"eval.limit={args.limit}"] if args.limit else []

    cfg = load_config(args.config, sets)
    if cfg.grpo.init_from is None:
        raise SystemExit(f"{args.config}: grpo.init_from is not set; name the run GRPO continues from.")
    start = REPO / cfg.grpo.init_from  # `so8t run` runs in the repository, where relative paths start
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        run_dir = grpo_run(seed, sets, args)
        data_dir = RunDir(run_dir).data
        before_dir = args.out / f"before-{_test_files_key(data_dir)}"
        differences: dict[str, Any] = {}
        for source in DECISION_SOURCES:
            # GSM8K is answered by generation whatever the decision source: scored once, with head B's run
            tasks = [GSM8K_LOCAL_TASK, SAFETY_TASK] if source == DECISION_SOURCES[0] else [SAFETY_TASK]
            before = read_run([evaluate(start, data_dir, tasks, source, before_dir / source, cfg.eval)])
            if source == cfg.eval.decision_source and set(tasks) <= set(cfg.eval.tasks):
                after_dir = RunDir(run_dir).eval  # the run's own evaluation
            else:
                after_dir = evaluate(
                    RunDir(run_dir).consolidated,
                    data_dir,
                    tasks,
                    source,
                    run_dir / f"eval-{source}",
                    cfg.eval,
                )
            after = read_run([after_dir])
            if GSM8K_LOCAL_TASK in tasks:
                differences["GSM8K exact match"] = metric_change(*GSM8K, before, after)
            for metric in SAFETY_METRICS:
                differences[f"{metric} ({source})"] = metric_change(
                    SAFETY_TASK, metric, "none", before, after
                )
        curve = reward_curve(run_dir)
        runs.append(
            {
                "seed": seed,
                "differences": differences,
                "reward_curve": curve,
                "reward_first_last": {k: _first_last(curve, k, args.first_last) for k in LOGGED_REWARDS},
            }
        )
    table = {"config": str(args.config), "init_from": cfg.grpo.init_from, "seeds": args.seeds, "runs": runs}
    (args.out / "table.json").write_text(json.dumps(table, indent=2))
    text = render(table)
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
