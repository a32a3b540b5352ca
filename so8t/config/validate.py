"""`so8t validate CONFIG [--set k=v]`: check a run config and its data in about a second, without importing
torch, transformers or datasets; exit 0 with the summary, or 2 with every problem."""

from __future__ import annotations

import argparse

from so8t.config.loading import load_config
from so8t.config.overrides import add_set_option
from so8t.config.summary import resolved_config_yaml, summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="run config (YAML)")
    add_set_option(parser)
    parser.add_argument(
        "--print",
        dest="print_resolved",
        action="store_true",
        help="also print the whole resolved config (base: merged, overrides applied, every default filled in)",
    )


def run_cli(args: argparse.Namespace) -> int:
    """OK and the summary (exit 0), or ConfigError with every problem (exit 2, printed by the CLI)."""
    cfg = load_config(args.config, args.overrides)
    print("OK")
    print(summarize(cfg))
    if args.print_resolved:
        print(resolved_config_yaml(cfg), end="")
    return 0
