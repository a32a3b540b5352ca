"""How often GSM8K scoring agrees with a careful human grader, per filter and metric, through the real task.

tests/fixtures/gsm8k_grading.jsonl holds model completions in the formats models produce in practice, each
with a careful grader's verdict (tests/fixtures/GSM8K_GRADING.md). A replay model, an lm-eval LM registered
as `so8t-grading-replay`, answers each question of the table with its completion, raw, as a backend that
ignores stop sequences would (with --honour-stop-sequences it cuts at the task's `until`, as HFLM does). The
completions go through `so8t_gsm8k_local` as lm-eval runs it: its YAML, its three filters and both metrics
(lm-eval's `exact_match` and so8t's `numeric_match`). Prints, per filter and metric, the rows that agree with
the grader, and every disagreement with what the filter left for the metric:

    python benchmarks/gsm8k_grading.py [--table tests/fixtures/gsm8k_grading.jsonl] [--honour-stop-sequences]

tests/test_gsm8k_grading.py runs the same code and pins the result: numeric_match agrees on every row whose
answer the filter leaves in, and disagrees exactly on the rows listed in FILTER_LIMITS, for the reason given.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("DISABLE_MULTIPROC", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "fixtures" / "gsm8k_grading.jsonl"
TASK = "so8t_gsm8k_local"
REPLAY_MODEL = "so8t-grading-replay"
FILTERS = ("strict-match", "flexible-extract", "none")
METRICS = ("exact_match", "numeric_match")

# Rows of the table where a filter of the task does not leave the grader's answer for numeric_match to read,
# so no metric after it can agree; the output of the filter is in brackets. Everything else must agree.
FILTER_LIMITS: dict[str, dict[int, str]] = {
    "strict-match": {
        3: 'the regex needs a space after "####" ("####42" -> [invalid])',
        7: 'the regex stops at a currency sign ("#### $42" -> [invalid])',
        8: 'the regex stops at a currency sign ("#### $1,250.00" -> [invalid])',
        10: 'the regex reads no space-grouped thousands ("#### 1 250" -> "1")',
        11: 'the regex reads no space-grouped thousands ("#### 1 234 567" -> "1")',
        16: 'the regex reads no Unicode minus ("#### \u22127" -> [invalid])',
        23: 'the regex stops at Markdown bold ("#### **42**" -> [invalid])',
        24: "no `####` line: a boxed answer (-> [invalid])",
        25: "no `####` line (-> [invalid])",
        26: "no `####` line (-> [invalid])",
        27: "no `####` line (-> [invalid])",
        35: "no `####` line before the run-on (-> [invalid])",
        39: 'the regex cuts a fraction at the slash ("#### 3/4" -> "3")',
        40: 'the regex cuts a fraction at the slash ("#### 1/2" -> "1")',
        50: "no `####` line (-> [invalid])",
        51: 'the regex stops at a currency sign ("#### \u00a342" -> [invalid])',
        53: "no `####` line: an answer stated in a sentence (-> [invalid])",
        54: 'the regex takes the first number of an equation ("#### 3 x 4 = 12" -> "3")',
        55: 'the regex takes the first number of an equation ("#### 10 - 2 = 8" -> "10")',
        56: 'the regex takes the first number of a conversion ("#### 3.5 hours = 210 minutes" -> "3.5")',
        57: 'the regex cuts a mixed number at the space ("#### 1 1/2" -> "1")',
        58: "no `####` line (-> [invalid])",
        59: 'the regex reads no dash as a minus sign ("#### \u20137" -> [invalid])',
        60: 'the regex drops the `####` that makes a decimal comma of "2,5" ("#### 2,5" -> "2,5", a list)',
        62: 'the regex reads no thin-space thousands ("#### 1\u2009250" -> "1")',
        63: "no `####` line: an answer stated in a sentence (-> [invalid])",
        64: 'the regex takes the first number of an equation ("#### 10 \u2013 2 = 8" -> "10")',
    },
    "flexible-extract": {
        10: 'the last number is the last thousands group ("#### 1 250" -> "250")',
        11: 'the last number is the last thousands group ("#### 1 234 567" -> "567")',
        16: 'the regex reads no Unicode minus ("#### \u22127" -> "7")',
        24: 'the regex takes the "$." that closes the LaTeX ("$\\boxed{42}$." -> "$.")',
        33: 'the last number is the run-on question\'s answer ("#### 42 ... #### 7" -> "7")',
        34: 'the last number is the run-on question\'s answer ("#### 7 ... #### 42" -> "42")',
        35: 'the last number is the run-on question\'s answer ("42 loaves ... Answer: 7" -> "7")',
        36: 'the last number is the run-on question\'s answer ("40 loaves ... Answer: 42" -> "42")',
        37: 'the last number is the second marker\'s ("#### 42 #### 45" -> "45")',
        38: 'the last number is in the run-on question ("#### 42 Question: ... 6 days" -> "6")',
        39: 'the last number is the denominator ("#### 3/4" -> "4")',
        40: 'the last number is the denominator ("#### 1/2" -> "2")',
        50: 'the regex reads no Unicode minus ("\u221212 dollars" -> "12")',
        53: 'the last number is in the sentence after the stated answer ("The answer is 12. ... 3 more" -> "3")',
        57: 'the last number is the denominator of a mixed number ("#### 1 1/2" -> "2")',
        58: 'the last number is the last thousands group ("1 250 dollars" -> "250")',
        59: 'the regex reads no dash as a minus sign ("#### \u20137" -> "7")',
        60: 'the regex drops the `####` that makes a decimal comma of "2,5" ("#### 2,5" -> "2,5", a list)',
        61: 'the `####` line holds no number, and the regex takes the working\'s last ("= 7 apples" -> "7")',
        62: 'the last number is the last thousands group ("#### 1\u2009250" -> "250")',
        63: 'the last number is in the sentence after the stated answer ("42 loaves. ... 50 more" -> "50")',
    },
    "none": {},
}
# The limits above that come from the run-on alone: a backend that cuts at the task's stop sequences (HFLM)
# hands the filter the answer only.
RUN_ON_LIMITS = {"strict-match": set(), "flexible-extract": {33, 34, 35, 36, 38}, "none": set()}


def filter_limits(filter_name: str, honour_stop_sequences: bool = False) -> dict[int, str]:
    """The rows a filter cuts the grader's answer out of, with the reason."""
    limits = FILTER_LIMITS[filter_name]
    skip = RUN_ON_LIMITS[filter_name] if honour_stop_sequences else set()
    return {row: reason for row, reason in limits.items() if row not in skip}


@dataclass(frozen=True)
class GradedRow:
    """One row of the table through the task: what each filter left and what each metric scored."""

    id: int
    output: str
    correct: bool
    why: str
    filtered: dict[str, str]
    scores: dict[tuple[str, str], float]

    def agrees(self, metric: str, filter_name: str) -> bool:
        return (self.scores[metric, filter_name] == 1.0) == self.correct


def read_table(path: Path = TABLE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def register_replay_model() -> None:
    """Register `so8t-grading-replay` with lm-eval once per process."""
    from lm_eval.api.model import LM
    from lm_eval.api.registry import get_model, register_model

    try:
        get_model(REPLAY_MODEL)
        return
    except ValueError:
        pass

    @register_model(REPLAY_MODEL)
    class ReplayLM(LM):
        """Answers each GSM8K prompt with the table's completion for its question; no model runs."""

        def __init__(self, table: str, honour_stop_sequences: bool = False, **_: Any) -> None:
            from so8t.data.templates import gsm8k_prompt

            super().__init__()
            self.outputs = {gsm8k_prompt(row["question"]): row["output"] for row in read_table(Path(table))}
            self.honour_stop_sequences = bool(honour_stop_sequences)

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            outputs = []
            for request in requests:
                context, generation_kwargs = request.args
                output = self.outputs[context]
                if self.honour_stop_sequences:
                    for stop in generation_kwargs.get("until", []):
                        output = output.split(stop, 1)[0]
                outputs.append(output)
            return outputs

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("the replay model only generates")

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("the replay model only generates")


def grade(table: Path = TABLE, honour_stop_sequences: bool = False) -> list[GradedRow]:
    """Run the table through so8t_gsm8k_local with the replay model; one GradedRow per table row."""
    from lm_eval import simple_evaluate

    from so8t.lmeval.evaluate import task_manager

    register_replay_model()
    rows = read_table(table)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "gsm8k_grading.jsonl"
        data.write_text(
            "".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n" for r in rows),
            encoding="utf-8",
        )
        results = simple_evaluate(
            model=REPLAY_MODEL,
            model_args={"table": str(table), "honour_stop_sequences": honour_stop_sequences},
            tasks=[TASK],
            task_manager=task_manager({"data_files": str(data)}),
            log_samples=True,
            bootstrap_iters=0,
            metadata={"data_files": str(data)},
        )
    by_question = {row["question"]: row for row in rows}
    filtered: dict[int, dict[str, str]] = {}
    scores: dict[int, dict[tuple[str, str], float]] = {}
    for sample in results["samples"][TASK]:
        row = by_question[sample["doc"]["question"]]
        filtered.setdefault(row["id"], {})[sample["filter"]] = sample["filtered_resps"][0]
        for metric in METRICS:
            scores.setdefault(row["id"], {})[metric, sample["filter"]] = float(sample[metric])
    return [
        GradedRow(r["id"], r["output"], r["correct"], r["why"], filtered[r["id"]], scores[r["id"]])
        for r in rows
    ]


def agreement_table(graded: list[GradedRow], honour_stop_sequences: bool = False) -> str:
    """Markdown: rows agreeing with the grader per filter and metric, and numeric_match on the rows the
    filter leaves the answer in."""
    lines = [
        "| filter | exact_match agrees | numeric_match agrees | numeric_match, rows the filter leaves the answer in |",
        "|---|---:|---:|---:|",
    ]
    for name in FILTERS:
        limits = filter_limits(name, honour_stop_sequences)
        kept = [row for row in graded if row.id not in limits]
        counts = [sum(row.agrees(metric, name) for row in graded) for metric in METRICS]
        numeric_kept = sum(row.agrees("numeric_match", name) for row in kept)
        lines.append(
            f"| {name} | {counts[0]} / {len(graded)} | {counts[1]} / {len(graded)} "
            f"| {numeric_kept} / {len(kept)} |"
        )
    return "\n".join(lines)


def disagreements(graded: list[GradedRow], honour_stop_sequences: bool = False) -> str:
    """Every row where numeric_match disagrees with the grader, with what the filter left."""
    lines = []
    for name in FILTERS:
        limits = filter_limits(name, honour_stop_sequences)
        for row in graded:
            if not row.agrees("numeric_match", name):
                reason = limits.get(row.id, "NOT A KNOWN FILTER LIMIT")
                lines.append(
                    f"- {name}, row {row.id} ({row.why}): the filter left {row.filtered[name]!r}; {reason}"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE, help="the grading table (JSONL)")
    parser.add_argument(
        "--honour-stop-sequences",
        action="store_true",
        help="cut each completion at the task's `until` strings, as HFLM does (default: raw)",
    )
    args = parser.parse_args()
    graded = grade(args.table, args.honour_stop_sequences)
    mode = "cut at the stop sequences" if args.honour_stop_sequences else "raw"
    print(f"{len(graded)} graded completions ({mode}) through {TASK}\n")
    print(agreement_table(graded, args.honour_stop_sequences))
    print("\nnumeric_match disagreements:\n" + (disagreements(graded, args.honour_stop_sequences) or "none"))


if __name__ == "__main__":
    main()
