"""`so8t run`: the whole pipeline, its stages listed in order in one function.

validate -> prepare data -> train (pretraining the embedded base when configured) -> consolidate ->
evaluate -> gate -> report. Nothing heavy is imported before the config has passed validation, and a
failing evaluation never loses training: the checkpoint and the consolidated model stay on disk and
`so8t eval` can be re-run alone.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.layout import LOCAL_TASKS, RunDir, claim_run_dir, last_complete_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

# Exit codes of `so8t run` beyond the CLI's 0 / 1 (gate) / 2 (bad input).
EXIT_EVAL_FAILED = 3


@dataclass
class StageClock:
    """One progress display for the whole pipeline: stage n/N, what it does, and how long it took."""

    stages: list[str]
    console: Any = None
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from rich.console import Console

        self.console = self.console or Console(stderr=True)

    def begin(self, name: str, detail: str = "") -> float:
        index = self.stages.index(name) + 1
        elapsed = time.monotonic() - self.started
        self.console.rule(
            f"[bold]so8t run[/] stage {index}/{len(self.stages)}: {name}  {detail}  (elapsed {elapsed:,.0f}s)"
        )
        return time.monotonic()

    def end(self, name: str, t0: float) -> None:
        self.timings[name] = round(time.monotonic() - t0, 1)


PIPELINE_STAGES = ["validate", "data", "train", "consolidate", "evaluate", "gate", "report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from so8t.config import add_set_option

    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--output-dir", help="run directory (default: output_dir from the config)")
    add_set_option(parser)


def run_cli(args: argparse.Namespace) -> int:
    return run_pipeline(args.config, overrides=args.overrides, output_dir=args.output_dir)


def run_pipeline(
    config_path: str | Path, overrides: list[str] | None = None, output_dir: str | Path | None = None
) -> int:
    """Run every stage; returns the exit code (0 ok, 1 gate failed, 3 evaluation failed)."""
    from so8t.config import load_config, resolved_config_yaml, summarize

    overrides = list(overrides or [])
    if output_dir is not None:
        overrides.append(f"output_dir={output_dir}")
    clock = StageClock(PIPELINE_STAGES)

    t0 = clock.begin("validate")
    cfg = load_config(config_path, overrides)
    run_dir = Path(cfg.output_dir)
    run = RunDir(run_dir)
    resolved = resolved_config_yaml(cfg)
    claim_run_dir(run_dir, resolved)
    clock.console.print(summarize(cfg))
    clock.end("validate", t0)

    t0 = clock.begin("data", "materialising the held-out split for evaluation")
    test_files = _prepare_test_data(cfg, run_dir)
    clock.end("data", t0)

    t0 = clock.begin("train", f"{cfg.model.base}")
    from so8t.train.run import train_from_config

    resume = last_complete_checkpoint(run.checkpoints)
    if resume is not None:
        clock.console.print(f"resuming from {resume}")
    trained = train_from_config(cfg, run_dir)
    clock.end("train", t0)

    t0 = clock.begin("consolidate", "LoRA merged, rotations folded into the heads")
    from so8t.consolidate import consolidate_checkpoint

    checkpoint = trained.best_checkpoint or trained.checkpoint_dir
    consolidated = consolidate_checkpoint(checkpoint, run.consolidated, **cfg.consolidate.model_dump())
    clock.end("consolidate", t0)

    t0 = clock.begin("evaluate", ", ".join(cfg.eval.tasks))
    results_path = run.results_output_path
    try:
        results = _evaluate(cfg, consolidated, results_path, test_files)
    except Exception as exc:  # keep training; say how to resume the evaluation alone
        clock.console.print_exception(max_frames=5)
        clock.console.print(
            f"[red]evaluation failed[/]: {exc}\nTraining is kept: checkpoint {checkpoint}, consolidated model "
            f"{consolidated}. Re-run the evaluation alone with:\n  so8t eval {consolidated} "
            f"--tasks {','.join(cfg.eval.tasks)} --out {results_path}"
        )
        return EXIT_EVAL_FAILED
    clock.end("evaluate", t0)

    t0 = clock.begin("gate")
    gate_report = _gate(cfg, Path(results["so8t_results_file"]), run_dir)
    clock.end("gate", t0)

    t0 = clock.begin("report")
    from so8t.results.report import write_report

    report_path = write_report(
        run_dir,
        cfg=cfg,
        results=results,
        results_file=Path(results["so8t_results_file"]),
        gate_report=gate_report,
        timings=clock.timings,
        train_metrics=trained.metrics,
        evaluated_checkpoint=checkpoint,
    )
    _log_eval_to_wandb(cfg, run_dir, results)
    clock.end("report", t0)
    clock.console.print(f"[bold green]done[/] in {time.monotonic() - clock.started:,.0f}s: {report_path}")
    if gate_report is not None and not gate_report.passed:
        clock.console.print("[red]gate failed[/]: see the gate table above and report.md")
        return 1
    return 0


def _prepare_test_data(cfg: RunConfig, run_dir: Path) -> dict[str, Path]:
    """Write the held-out split as JSONL so the local lm-eval tasks (and anyone after) can read it."""
    from so8t.data.config import materialize
    from so8t.data.split import write_split_jsonl

    split = materialize(cfg.data, "test", cfg.seed)
    return write_split_jsonl(split, RunDir(run_dir).data)


def _evaluate(cfg: RunConfig, consolidated: Path, results_path: Path, test_files: dict[str, Path]) -> dict:
    """Evaluate the consolidated model with the so8t backend; local tasks read the run's held-out split."""
    from so8t.lmeval.evaluate import evaluate

    for task, spec in LOCAL_TASKS.items():
        path = test_files.get(spec.data_format)
        if task in cfg.eval.tasks and path is not None:
            os.environ[spec.env_var] = str(Path(path).resolve())
    model_args: dict[str, Any] = {"decision_source": cfg.eval.decision_source}
    if cfg.eval.allow_threshold is not None:
        model_args["allow_threshold"] = cfg.eval.allow_threshold
    return evaluate(
        str(consolidated),
        list(cfg.eval.tasks),
        results_path,
        limit=cfg.eval.limit,
        model_args=model_args,
        batch_size=cfg.eval.batch_size,
        bootstrap_iters=cfg.eval.bootstrap_iters,
        max_gen_toks=cfg.eval.max_gen_toks,
        log_samples=True,
    )


def _gate(cfg: RunConfig, results_file: Path, run_dir: Path) -> Any:
    """Apply the configured gates (if any) to the results file just written, paired with its samples; the
    verdict goes to report.md and the exit code."""
    if cfg.gates is None:
        return None
    from so8t.results.gate import gate_files

    report = gate_files([results_file], cfg.gates)
    report.print()
    RunDir(run_dir).gate_markdown.write_text(report.to_markdown())
    return report


def _log_eval_to_wandb(cfg: RunConfig, run_dir: Path, results: dict) -> None:
    """Send the evaluation metrics to the W&B run of this training (offline by default)."""
    if cfg.logging.wandb.mode == "disabled" or os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    run = wandb.init(
        project=cfg.logging.wandb.project,
        entity=cfg.logging.wandb.entity,
        name=cfg.logging.wandb.run_name,
        mode=cfg.logging.wandb.mode,
        dir=str(run_dir),
        job_type="eval",
        reinit="finish_previous",
    )
    flat = {
        f"eval/{task}/{key}": value
        for task, metrics in results.get("results", {}).items()
        for key, value in metrics.items()
        if isinstance(value, (int, float))
    }
    run.log(flat)
    run.summary.update(flat)
    run.finish()
