"""The `so8t` command: one subcommand per pipeline stage, each wired to the module that owns it.

Modules are imported only when their subcommand runs, so `so8t validate` never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from so8t import __version__
from so8t.errors import UserError

# subcommand -> (module that owns it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("so8t.pipeline", "validate, train, consolidate, evaluate, gate and report in one go"),
    "validate": ("so8t.config.validate", "check a run config and its data without loading any model"),
    "train": ("so8t.train_command", "train an SO8T model from a run config"),
    "consolidate": ("so8t.consolidate", "fold a checkpoint into a plain HF model plus the safety head"),
    "eval": ("so8t.lmeval.evaluate", "evaluate a model with lm-evaluation-harness"),
    "gate": ("so8t.results.gate", "fail CI when lm-eval results regress against a baseline"),
    "leaderboard": ("so8t.results.leaderboard", "build a leaderboard from lm-eval results files"),
    "export": ("so8t.export.gguf_export", "export a model for other engines: gguf (llama.cpp) with head B"),
    "predict": ("so8t.predict", "decision-gated generation: head B decides, only ALLOW answers"),
    "cache": ("so8t.cache", "list or clear the consolidated checkpoints cached for evaluation and predict"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen subcommand's module is imported (to add its arguments)."""
    parser = argparse.ArgumentParser(prog="so8t", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"so8t {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        code = int(args._module.run_cli(args) or 0)
        sys.stdout.flush()
        return code
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`so8t validate cfg.yaml | head -1`): stop quietly, as a program killed by
        # SIGPIPE does, and point stdout at nothing so the interpreter's last flush raises nothing either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
