"""`so8t train`: so8t.train.run's command, given the suite's scorers as GRPO rewards (the training layer
cannot import the lm-eval layer that owns them, so the application hands them down)."""

from __future__ import annotations

import argparse

from so8t.train.run import add_arguments

__all__ = ["add_arguments", "run_cli"]


def run_cli(args: argparse.Namespace) -> int:
    from so8t.lmeval.rewards import reward_functions
    from so8t.train.run import run_cli as train_cli

    return train_cli(args, rewards=reward_functions)
