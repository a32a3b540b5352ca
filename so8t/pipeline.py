"""`so8t run`: the whole pipeline, its stages listed in order in one function.

validate -> prepare data -> (pretrain the embedded base) -> train -> consolidate -> evaluate -> gate ->
report. Nothing heavy is imported before the config has passed validation, and a failing evaluation never
loses training: the checkpoint and the consolidated model stay on disk and `so8t eval` can be re-run alone.

A stage whose inputs have not changed since it last ran is skipped, as the run record (layout.RUN_RECORD)
tells: a finished run run again only says where its results are (also from a copy of its run directory),
a changed eval section re-evaluates without training or re-consolidating, changed gates re-gate.
"""

from __future__ import annotations

import argparse
import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so8t.layout import LOCAL_TASKS, RunDir
from so8t.layout.atomic import atomic_write_text, recover_replaced
from so8t.layout.checkpoints import checkpoint_step
from so8t.layout.run_record import checkpoint_digest, read_run_record, wandb_run_id, write_run_record
from so8t.layout.so8t_json import CONSOLIDATED_FORMAT, so8t_format
from so8t.progress import Progress, activate

if TYPE_CHECKING:  # pragma: no cover
    from so8t.config import RunConfig

# Exit codes of `so8t run` beyond the CLI's 0 / 1 (gate) / 2 (bad input).
EXIT_EVAL_FAILED = 3

PIPELINE_STAGES = ["validate", "data", "pretrain", "train", "consolidate", "evaluate", "gate", "report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from so8t.config import add_set_option

    parser.add_argument("config", help="run config (YAML)")
    parser.add_argument("--output-dir", help="run directory (default: output_dir from the config)")
    add_set_option(parser)


def run_cli(args: argparse.Namespace) -> int:
    from so8t.train.run import relaunch_command

    return run_pipeline(
        args.config,
        overrides=args.overrides,
        output_dir=args.output_dir,
        relaunch=relaunch_command(["so8t", "run"], args),
    )


def run_pipeline(
    config_path: str | Path,
    overrides: list[str] | None = None,
    output_dir: str | Path | None = None,
    relaunch: list[str] | None = None,
) -> int:
    """Run every stage that has something to do; returns the exit code (0 ok, 1 gate failed, 3 evaluation
    failed)."""
    from so8t.config import load_config, summarize
    from so8t.train.launch import config_arguments
    from so8t.train.run import claim

    overrides = list(overrides or [])
    if output_dir is not None:
        overrides.append(f"output_dir={output_dir}")
    progress = Progress(PIPELINE_STAGES)
    with activate(progress):
        progress.begin("validate")
        cfg = load_config(config_path, overrides)
        run_dir = Path(cfg.output_dir)
        changes = claim(cfg)
        record = read_run_record(run_dir)
        progress.estimates = dict(record.get("timings", {}))
        progress.note(summarize(cfg))
        if changes:
            progress.note("resumed with changed settings: " + ", ".join(sorted(changes)))
        progress.end("validate")
        return _stages(cfg, run_dir, record, progress, relaunch, config_arguments(config_path, overrides))


def _stages(
    cfg: RunConfig,
    run_dir: Path,
    record: dict,
    progress: Progress,
    relaunch: list[str] | None,
    config_argv: list[str],
) -> int:
    from so8t.config import eval_identity
    from so8t.train.run import finished_result

    run = RunDir(run_dir)
    # a consolidated/ folder a crash left moved aside goes back first
    recover_replaced(run_dir)
    evaluation = {"eval": eval_identity(cfg)}
    gates = cfg.gates.model_dump(mode="json") if cfg.gates is not None else None
    from so8t.train.resume_point import resume_checkpoint

    resume = resume_checkpoint(run.checkpoints)
    trained = finished_result(resume, cfg) if resume is not None else None
    current = {"consolidation": False, "evaluated": False, "report": False}
    if trained is not None:
        checkpoint = trained.best_checkpoint or trained.checkpoint_dir
        digest = checkpoint_digest(checkpoint)
        current = _made_from(run, record, digest, evaluation, gates)
        # a newly configured export (or another type) re-reports with its figures
        current["report"] &= _export_done(cfg, record, digest)
        if current["report"] and run.report.is_file():
            return _already_done(run, checkpoint, record, progress)

    test_files: dict[str, Path] = {}
    if current["evaluated"]:
        progress.skip("data", "the evaluation is up to date")
    else:
        progress.begin("data", "materialising the held-out split for evaluation")
        test_files = _prepare_test_data(cfg, run_dir)
        progress.end("data")

    if trained is not None:
        progress.skip("pretrain", "training is finished")
        progress.skip("train", f"finished at step {checkpoint_step(trained.checkpoint_dir)}")
    else:
        trained = _train(cfg, run_dir, resume, record, progress, relaunch, config_argv)
        checkpoint = trained.best_checkpoint or trained.checkpoint_dir
        digest = checkpoint_digest(checkpoint)
        current = _made_from(run, record, digest, evaluation, gates)

    if current["consolidation"]:
        progress.skip("consolidate", f"{run.consolidated} is already {checkpoint.name}")
    else:
        progress.begin("consolidate", f"{checkpoint.name}: LoRA merged, rotations folded into the heads")
        from so8t.consolidate import consolidate_checkpoint

        consolidate_checkpoint(checkpoint, run.consolidated, **cfg.consolidate.model_dump())
        _remember(run_dir, record, progress, consolidated_from={"digest": digest})
        progress.end("consolidate")

    exported = _export(cfg, run_dir, record, digest, progress)

    made = {"digest": digest, **evaluation}
    if current["evaluated"]:
        results_file = run.latest_results()
        assert results_file is not None  # `current["evaluated"]` says it exists
        progress.skip("evaluate", f"{results_file} is up to date")
        from so8t.lmeval.evaluate import read_results

        results = read_results(results_file)
    else:
        results = _evaluate_stage(cfg, run, checkpoint, test_files, progress)
        if results is None:
            return EXIT_EVAL_FAILED
        _remember(run_dir, record, progress, evaluated_from=made)
        progress.end("evaluate")

    progress.begin("gate")
    gate_report = _gate(cfg, Path(results["so8t_results_file"]), run_dir)
    progress.end("gate")

    progress.begin("report")
    from so8t.results.report import write_report

    report_path = write_report(
        run_dir,
        cfg=cfg,
        results=results,
        results_file=Path(results["so8t_results_file"]),
        gate_report=gate_report,
        timings=progress.timings,
        train_metrics=trained.metrics,
        evaluated_checkpoint=checkpoint,
    )
    if exported is not None:
        from so8t.gguf_check import report_section

        atomic_write_text(report_path, report_path.read_text(encoding="utf-8") + report_section(exported))
    if not current["evaluated"]:
        log_eval_to_wandb(cfg, run_dir, results, step=checkpoint_step(trained.checkpoint_dir) or 0)
    exit_code = 1 if gate_report is not None and not gate_report.passed else 0
    _remember(run_dir, record, progress, reported_from={**made, "gates": gates}, exit_code=exit_code)
    progress.end("report")
    progress.note(f"done: {report_path}")
    if exit_code:
        progress.note("gate failed: see the gate table above and report.md")
    return exit_code


def _train(
    cfg: RunConfig,
    run_dir: Path,
    resume: Path | None,
    record: dict,
    progress: Progress,
    relaunch: list[str] | None,
    config_argv: list[str],
) -> Any:
    """The pretrain and train stages: train (resuming from `resume`), in this process or on
    `train.processes` torchrun processes (`config_argv`: the config and its overrides), and return the
    TrainResult."""
    _pretrain(cfg, progress)
    detail = f"{cfg.model.base}" + (f", resuming from {resume.name}" if resume else "")
    if cfg.train.processes > 1:
        from so8t.train.launch import train_in_processes

        progress.begin("train", f"{detail}, on {cfg.train.processes} processes (torchrun)")
        trained = train_in_processes(cfg, run_dir, config_argv)
    else:
        from so8t.lmeval.rewards import reward_functions
        from so8t.train.run import train_from_config

        progress.begin("train", detail)
        trained = train_from_config(cfg, run_dir, relaunch=relaunch, rewards=reward_functions)
    _remember(run_dir, record, progress)
    progress.end("train")
    return trained


def _export_done(cfg: RunConfig, record: dict, digest: str) -> bool:
    previous = record.get("exported", {})
    same = previous.get("digest") == digest and previous.get("figures", {}).get("type") == cfg.export.gguf
    return cfg.export.gguf is None or same


def _export(cfg: RunConfig, run_dir: Path, record: dict, digest: str, progress: Progress) -> dict | None:
    """`export.gguf`: the consolidated model as GGUF with head B's sidecar, checked against it (once per
    consolidated checkpoint and type); its figures, or None when not configured."""
    if cfg.export.gguf is None:
        return None
    if _export_done(cfg, record, digest):
        return record["exported"]["figures"]
    progress.note(f"export: GGUF ({cfg.export.gguf}) with head B's sidecar, checked in llama.cpp")
    from so8t.gguf_check import export_for_run

    figures = export_for_run(RunDir(run_dir).consolidated, run_dir, cfg.export.gguf)
    _remember(run_dir, record, progress, exported={"digest": digest, "figures": figures})
    return figures


def _evaluate_stage(
    cfg: RunConfig, run: RunDir, checkpoint: Path, test_files: dict[str, Path], progress: Progress
) -> dict | None:
    """The evaluate stage; None when evaluation failed (training is kept, the way to re-run it is printed)."""
    progress.begin("evaluate", ", ".join(cfg.eval.tasks))
    try:
        return _evaluate(cfg, run.consolidated, run.results_output_path, test_files)
    except Exception as exc:  # keep training; say how to resume the evaluation alone
        traceback.print_exc(limit=5)
        progress.note(
            f"evaluation failed: {exc!r}\nTraining is kept: checkpoint {checkpoint}, consolidated model "
            f"{run.consolidated}. Re-run the evaluation alone with:\n  so8t eval {run.consolidated} "
            f"--tasks {','.join(cfg.eval.tasks)} --out {run.results_output_path}"
        )
        return None


def _made_from(run: RunDir, record: dict, digest: str, evaluation: dict, gates: Any) -> dict[str, bool]:
    """Which outputs of the run directory are already made from the checkpoint of this `digest` (its
    consolidation inputs' contents) and these settings."""
    consolidated = (
        record.get("consolidated_from", {}).get("digest") == digest
        and so8t_format(run.consolidated) == CONSOLIDATED_FORMAT
    )
    made = {"digest": digest, **evaluation}
    evaluated = consolidated and record.get("evaluated_from") == made and run.latest_results() is not None
    reported = evaluated and record.get("reported_from") == {**made, "gates": gates} and "exit_code" in record
    return {"consolidation": consolidated, "evaluated": evaluated, "report": reported}


def _remember(run_dir: Path, record: dict, progress: Progress, **made: Any) -> None:
    """Add what the running stage made, and the stage times so far (a later attempt's ETA estimates), to the
    run record (in place), written at once so a later stage that fails does not make the run redo this one."""
    timings = dict(record.get("timings", {}))
    timings.update({name: seconds for name, seconds in progress.timings.items() if seconds > 0})
    if progress.stage is not None:
        timings[progress.stage] = progress.stage_seconds()
    record.update(made, timings=timings)
    write_run_record(run_dir, record)


def _already_done(run: RunDir, checkpoint: Path, record: dict, progress: Progress) -> int:
    """A finished run with nothing changed: say where everything is, and end as it ended."""
    progress.note(
        f"{run.root} is finished and up to date, nothing to do: report {run.report}, results {run.latest_results()}, "
        f"model {run.consolidated} (from {checkpoint.name})"
    )
    return int(record.get("exit_code", 0))


def _pretrain(cfg: RunConfig, progress: Progress) -> None:
    """The embedded base's pretraining, cached: its own stage so the ETA counts its steps."""
    from so8t.config.model import EMBEDDED_BASES

    if cfg.model.base not in EMBEDDED_BASES or not cfg.model.pretrain.enabled:
        progress.skip("pretrain", f"the base is {cfg.model.base}")
        return
    from so8t.train.pretrain import pretrained_tiny_base

    progress.begin("pretrain", f"the embedded base, {cfg.model.pretrain.steps} steps (cached for later runs)")
    pretrained_tiny_base(cfg.model.pretrain, seed=cfg.seed, max_length=cfg.data.max_length)
    progress.end("pretrain")


def _prepare_test_data(cfg: RunConfig, run_dir: Path) -> dict[str, Path]:
    """Write the held-out split as JSONL so the local lm-eval tasks (and anyone after) can read it."""
    from so8t.data.config import materialize
    from so8t.data.split import write_split_jsonl

    split = materialize(cfg.data, "test", cfg.seed)
    return write_split_jsonl(split, RunDir(run_dir).data)


def _evaluate(cfg: RunConfig, consolidated: Path, results_path: Path, test_files: dict[str, Path]) -> dict:
    """Evaluate the consolidated model with the so8t backend (on eval.processes processes); local tasks read
    the run's held-out split."""
    from so8t.lmeval.processes import evaluate_on

    for task, spec in LOCAL_TASKS.items():
        path = test_files.get(spec.data_format)
        if task in cfg.eval.tasks and path is not None:
            os.environ[spec.env_var] = str(Path(path).resolve())
    model_args: dict[str, Any] = {"decision_source": cfg.eval.decision_source}
    if cfg.eval.allow_threshold is not None:
        model_args["allow_threshold"] = cfg.eval.allow_threshold
    options: dict[str, Any] = {
        "limit": cfg.eval.limit,
        "model_args": model_args,
        "batch_size": cfg.eval.batch_size,
        "bootstrap_iters": cfg.eval.bootstrap_iters,
        "max_gen_toks": cfg.eval.max_gen_toks,
        "log_samples": True,
    }
    return evaluate_on(cfg.eval.processes, str(consolidated), list(cfg.eval.tasks), results_path, **options)


def _gate(cfg: RunConfig, results_file: Path, run_dir: Path) -> Any:
    """Apply the configured gates (if any) to the results file just written, paired with its samples; the
    verdict goes to report.md and the exit code."""
    if cfg.gates is None:
        return None
    from so8t.results.gate import gate_files

    report = gate_files([results_file], cfg.gates)
    report.print()
    atomic_write_text(RunDir(run_dir).gate_markdown, report.to_markdown())
    return report


def eval_metrics(results: dict) -> dict[str, float]:
    """lm-eval's numeric results as `eval/<task>/<metric,filter>` (the keys the W&B run gets)."""
    return {
        f"eval/{task}/{key}": value
        for task, metrics in results.get("results", {}).items()
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def log_eval_to_wandb(cfg: RunConfig, run_dir: Path, results: dict, step: int) -> None:
    """Send the evaluation metrics to this run directory's one W&B run (offline by default), at the last
    training step on W&B's step axis for Trainer's logs (`train/global_step`)."""
    if cfg.logging.wandb.mode == "disabled" or os.environ.get("WANDB_MODE") == "disabled":
        return
    import wandb

    run = wandb.init(
        id=wandb_run_id(run_dir),
        resume="allow",
        project=cfg.logging.wandb.project,
        entity=cfg.logging.wandb.entity,
        name=cfg.logging.wandb.run_name,
        mode=cfg.logging.wandb.mode,
        dir=str(run_dir),
        reinit="finish_previous",
    )
    run.define_metric("train/global_step")
    run.define_metric("eval/*", step_metric="train/global_step")
    flat = eval_metrics(results)
    run.log({**flat, "train/global_step": step})
    run.summary.update(flat)
    run.finish()
