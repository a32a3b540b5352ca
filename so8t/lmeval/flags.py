"""lm-eval's own evaluation flags in `so8t eval`, under lm-eval's names and meanings, passed through unchanged.

`--num_fewshot`, `--gen_kwargs`, `--seed`, `--include_path` and `--apply_chat_template` are parsed by lm-eval's
own argument helpers, so a command line copied from `lm_eval` means the same here; `--no-apply-chat-template`
is so8t's: it turns off the chat template a model's so8t.json would set. One LmEvalFlags travels from the
parser to simple_evaluate and back to a command line for a relaunched process (so8t.lmeval.processes).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from so8t.data.templates import PromptFormat

# lm-eval's default seeds (python, numpy, torch, fewshot), as its CLI and simple_evaluate use them
DEFAULT_SEED = "0,1234,1234,1234"


@dataclass(frozen=True)
class LmEvalFlags:
    """lm-eval flags given on the command line; None (or empty) when not given."""

    num_fewshot: int | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: tuple[int | None, ...] | None = None
    include_path: str | None = None
    # None: from the model's so8t.json; False: off; True or a template name: lm-eval's meaning
    apply_chat_template: bool | str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LmEvalFlags:
        seed = getattr(args, "seed", None)
        return cls(
            num_fewshot=getattr(args, "num_fewshot", None),
            gen_kwargs=dict(getattr(args, "gen_kwargs", None) or {}),
            seed=tuple(seed) if seed is not None else None,
            include_path=getattr(args, "include_path", None),
            apply_chat_template=getattr(args, "apply_chat_template", None),
        )

    def simple_evaluate_kwargs(self, prompt: PromptFormat, max_gen_toks: int | None = None) -> dict[str, Any]:
        """simple_evaluate's keyword arguments: these flags over what the model's prompt format sets.

        An explicit `--apply_chat_template` keeps the model's system prompt (it is part of how the model was
        trained) and, as in lm-eval, turns on few-shot as multi-turn; `--no-apply-chat-template` gives
        lm-eval's plain prompts.
        """
        kwargs: dict[str, Any] = dict(prompt.lm_eval_args())
        if self.apply_chat_template is False:
            kwargs = {}
        elif self.apply_chat_template is not None:
            kwargs = {
                "apply_chat_template": self.apply_chat_template,
                "fewshot_as_multiturn": True,
                "system_instruction": prompt.system_prompt if prompt.is_chat else None,
            }
        gen_kwargs = dict(self.gen_kwargs)
        if max_gen_toks:
            gen_kwargs["max_gen_toks"] = int(max_gen_toks)
        kwargs["gen_kwargs"] = gen_kwargs or None
        if self.num_fewshot is not None:
            kwargs["num_fewshot"] = self.num_fewshot
        if self.seed is not None:
            names = ("random_seed", "numpy_random_seed", "torch_random_seed", "fewshot_random_seed")
            kwargs.update(zip(names, self.seed, strict=True))
        return kwargs

    def argv(self) -> list[str]:
        """The same flags as command-line arguments (of `so8t eval`; all but --no-apply-chat-template are
        also `lm_eval`'s)."""
        argv: list[str] = []
        if self.num_fewshot is not None:
            argv += ["--num_fewshot", str(self.num_fewshot)]
        if self.gen_kwargs:
            argv += ["--gen_kwargs", json.dumps(self.gen_kwargs)]
        if self.seed is not None:
            argv += ["--seed", ",".join("None" if s is None else str(s) for s in self.seed)]
        if self.include_path:
            argv += ["--include_path", self.include_path]
        if self.apply_chat_template is False:
            argv.append("--no-apply-chat-template")
        elif self.apply_chat_template is True:
            argv.append("--apply_chat_template")
        elif self.apply_chat_template:
            argv += ["--apply_chat_template", str(self.apply_chat_template)]
        return argv


def add_lm_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """lm-eval's flags, parsed by lm-eval's own helpers (so values mean what they mean to `lm_eval`)."""
    from lm_eval._cli.utils import MergeDictAction, _int_or_none_list_arg_type

    group = parser.add_argument_group("lm-eval flags (passed through under lm-eval's names and meanings)")
    group.add_argument("--num_fewshot", type=int, default=None, help="few-shot examples per context")
    group.add_argument(
        "--gen_kwargs",
        default=None,
        nargs="+",
        action=MergeDictAction,
        help="generation arguments, `temperature=0,top_p=0.9` or JSON; over each task's own",
    )
    group.add_argument(
        "--seed",
        type=partial(_int_or_none_list_arg_type, 3, 4, DEFAULT_SEED),
        default=None,
        help=f"seeds python,numpy,torch,fewshot (default {DEFAULT_SEED}); one integer sets all four",
    )
    group.add_argument("--include_path", default=None, help="a folder of your own task YAMLs")
    chat = group.add_mutually_exclusive_group()
    chat.add_argument(
        "--apply_chat_template",
        nargs="?",
        const=True,
        default=None,
        help="render prompts with the tokenizer's chat template (optionally a template name); default: "
        "the prompt format the model was trained with",
    )
    chat.add_argument(
        "--no-apply-chat-template",
        dest="apply_chat_template",
        action="store_const",
        const=False,
        help="plain prompts even for a model trained on chat prompts",
    )
