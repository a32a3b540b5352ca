"""Each task's headline metric and the fixed reference its score is normalised against.

A leaderboard ranks on one number per task, so each task declares which of its metrics that is, and where
that metric's scale starts and ends: `chance` (what guessing scores: normalised 0) and `best` (the top of
the metric's documented range: normalised 1). The normalised score is

    s = clip((v - chance) / (best - chance), 0, 1)

for a higher-is-better metric, which depends on the model's own value only, never on the models shown.
A value below chance counts as chance. The so8t tasks declare theirs below; any other task uses the first
of its metrics named in DEFAULT_ORDER that is higher-is-better, on the range [0, 1] with chance 0 (lm-eval
records no chance level); a task with neither is shown but not ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

from so8t.results.results_file import get_metric, metric_direction


@dataclass(frozen=True)
class Headline:
    """The metric a task is ranked on, its reference points, and the metrics shown beside it."""

    metric: str
    filter: str = "none"
    chance: float = 0.0
    best: float = 1.0
    beside: tuple[tuple[str, str], ...] = ()
    why: str = ""

    @property
    def key(self) -> str:
        return f"{self.metric},{self.filter}"

    def normalise(self, value: float) -> float:
        return min(1.0, max(0.0, (value - self.chance) / (self.best - self.chance)))

    def normalise_stderr(self, stderr: float) -> float:
        return stderr / abs(self.best - self.chance)


GSM8K = Headline(
    "numeric_match",
    "none",
    why="numeric match on the whole completion (the `#### N` answer, else the last number), the way a "
    "careful grader reads it",
)
# Which GSM8K row is which, said beside the figures (report.md, README): the careful reading is the headline,
# the rows under lm-eval's own filters keep lm-eval's semantics.
GSM8K_ROWS_NOTE = (
    "GSM8K rows: `numeric_match` under the filter `none` is so8t's careful reading of the whole completion "
    "(the number the `#### N` line states, an equation's result there; else a boxed or stated answer, else the "
    "last number), the headline. `exact_match` and the filters `strict-match` and `flexible-extract` are "
    "lm-eval's own gsm8k definitions, comparable with published GSM8K figures; `numeric_match` under those "
    "filters reads only the number lm-eval's regex left."
)
# A classifier that guesses uniformly among the three decisions scores a macro F1 of 1/3 on any gold mix.
SAFETY = Headline(
    "macro_f1",
    "none",
    chance=1 / 3,
    beside=(("unsafe_allow_rate", "none"), ("over_refusal_rate", "none")),
    why="macro F1 over ALLOW / ESCALATE / REFUSE (chance 1/3), with the dangerous-cell rates beside it",
)
HEADLINES: dict[str, Headline] = {
    "so8t_gsm8k": GSM8K,
    "so8t_gsm8k_local": GSM8K,
    "so8t_safety": SAFETY,
    "so8t_safety_local": SAFETY,
}
DEFAULT_ORDER = ("acc_norm", "acc", "exact_match", "numeric_match", "f1", "mcc", "em")


def headline_for(task: str, data: dict) -> Headline | None:
    """The declared headline of `task`, else the default rule applied to the metrics its results hold."""
    if task in HEADLINES:
        return HEADLINES[task]
    entry = data.get("results", {}).get(task, {})
    for name in DEFAULT_ORDER:
        for key in entry:
            metric, sep, filter_name = key.partition(",")
            if sep and metric == name and metric_direction(data, task, metric) is True:
                found = get_metric(data, task, metric, filter_name)
                if found is not None:
                    return Headline(
                        metric, filter_name, why="default: the first of " + ", ".join(DEFAULT_ORDER)
                    )
    return None
