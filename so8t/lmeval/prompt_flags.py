"""The prompt format a so8t model records, as the flags that make the stock `lm_eval` CLI render its prompts.

`so8t eval` sets lm-eval's chat flags from the model's so8t.json; a stock command needs them spelled out:

    eval "chat_flags=($(python -m so8t.lmeval.prompt_flags runs/my-run))"   # none for a plain model
    lm_eval --model so8t --model_args pretrained=runs/my-run ... "${chat_flags[@]}"

Reads so8t.json only: no torch, no lm-eval, nothing consolidated.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from so8t.data.templates import PromptFormat
from so8t.errors import UserError
from so8t.layout.locate import locate_so8t_model
from so8t.layout.so8t_json import read_so8t_json


def model_prompt_format(model: str | Path) -> PromptFormat:
    """The prompt format a so8t model (consolidated folder, checkpoint or run directory) was trained with, from
    its so8t.json without loading or consolidating it; plain for models from before the setting."""
    return PromptFormat.from_record(getattr(read_so8t_json(locate_so8t_model(model).target), "prompt", None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m so8t.lmeval.prompt_flags",
        description="Print the lm_eval flags that render a so8t model's prompts as it was trained (shell-quoted; "
        "nothing for a plain model).",
    )
    parser.add_argument("model", help="consolidated folder, checkpoint or run directory")
    args = parser.parse_args(argv)
    try:
        print(shlex.join(model_prompt_format(args.model).lm_eval_cli_flags()))
    except UserError as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
