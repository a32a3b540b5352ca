"""One progress display for a whole `so8t run`: the stage, its step, the stage's ETA and the overall ETA.

On a terminal a single status line is redrawn in place; when the output is a file or a pipe (CI, `> log`),
a one-line record is written at each stage boundary and every `interval_s` seconds of a stage, never a redraw,
so a log stays small however many steps a stage has. Notes (the training log lines) go out as lines in both.

The code that does the work reports into `current()` (pretraining, the trainer's callback, lm-eval's
request bars through `routed_progress_bars`); the pipeline owns the display with `activate`. Only the main
process of a torchrun job displays anything. The overall ETA is the current stage's (from its measured rate)
plus an estimate for each stage still to come, known when an earlier attempt of the same run timed it; a stage
with no estimate is named after the ETA instead of guessed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

# Seconds between two one-line records when the output is not a terminal, and between two redraws on one.
RECORD_INTERVAL_S = 30.0
REDRAW_INTERVAL_S = 0.25


def format_duration(seconds: float) -> str:
    """`45s`, `3m05s`, `2h07m`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class _Task:
    """Steps of the running stage: what is counted, how many, and the rate measured since it began."""

    unit: str
    total: int | None
    first_done: int
    started: float
    done: int = 0

    def rate(self, now: float) -> float | None:
        elapsed = now - self.started
        counted = self.done - self.first_done
        return counted / elapsed if elapsed > 0 and counted > 0 else None

    def remaining_s(self, now: float) -> float | None:
        rate = self.rate(now)
        if rate is None or self.total is None:
            return None
        return max(self.total - self.done, 0) / rate


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


@dataclass
class Progress:
    """The display. `stages` in order; `estimates` (stage -> seconds) from an earlier attempt of the run."""

    stages: Sequence[str] = ()
    stream: TextIO | None = None
    estimates: dict[str, float] = field(default_factory=dict)
    interval_s: float = RECORD_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    enabled: bool = field(default_factory=_is_main_process)
    started: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stream = self.stream if self.stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = self.started or self.clock()
        self.stage: str | None = None
        self._stage_started = self.started
        self._task: _Task | None = None
        self._last_output = -float("inf")
        # off a terminal: when the last status record (or stage boundary) was written; notes leave it alone
        self._last_record = -float("inf")
        self._status_shown = False

    # ------------------------------------------------------------------------------------------ stages

    def begin(self, stage: str, detail: str = "") -> None:
        """Start a stage: a line naming it, its place among the stages and the time so far."""
        self.stage, self._task = stage, None
        self._stage_started = self._last_record = self.clock()
        self._line(f"{self._stage_label()}{f': {detail}' if detail else ''}  (elapsed {self._elapsed()})")

    def end(self, stage: str) -> float:
        """Finish a stage; returns (and records) its duration in seconds."""
        seconds = round(self.clock() - self._stage_started, 1)
        self.timings[stage] = seconds
        self._task = None
        if not self.live:
            self._line(f"{self._stage_label()} done in {format_duration(seconds)}")
        self._clear_status()
        self.stage = None
        return seconds

    def stage_seconds(self) -> float:
        """Seconds since the running stage began."""
        return round(self.clock() - self._stage_started, 1)

    def skip(self, stage: str, reason: str) -> None:
        """A stage with nothing to do this time."""
        self.stage = stage
        self.timings[stage] = 0.0
        self._line(f"{self._stage_label()}: skipped, {reason}")
        self.stage = None

    # ------------------------------------------------------------------------------------------ steps

    def update(self, done: int, total: int | None, unit: str = "step") -> None:
        """`done` of `total` units of the running stage; the first call of a unit starts its rate clock."""
        now = self.clock()
        if self._task is None or self._task.unit != unit or done < self._task.done:
            self._task = _Task(unit, total, first_done=done, started=now)
        self._task.done, self._task.total = done, total
        if self.live:
            if now - self._last_output >= REDRAW_INTERVAL_S or (total is not None and done >= total):
                self._draw(self.status())
        elif now - self._last_record >= self.interval_s:
            # timed apart from the notes: training log lines come more often than the interval
            self._last_record = now
            self._line(self.status())

    def note(self, text: str) -> None:
        """A line that stays in the output (a training log line), above the status line on a terminal."""
        self._line(text)

    # ------------------------------------------------------------------------------------------ text

    def status(self) -> str:
        """`stage 4/8 train  step 120/400 (30%)  2.10 step/s  stage ETA 2m13s  overall ETA 3m40s + evaluate`."""
        now = self.clock()
        parts = [self._stage_label()]
        task = self._task
        if task is not None:
            share = f" ({100 * task.done / task.total:.0f}%)" if task.total else ""
            parts.append(f"{task.unit} {task.done}/{task.total if task.total is not None else '?'}{share}")
            rate = task.rate(now)
            if rate is not None:
                parts.append(f"{rate:.2f}/s" if rate >= 1 else f"{1 / rate:.1f} s each")
        stage_left = task.remaining_s(now) if task is not None else None
        if stage_left is not None:
            parts.append(f"stage ETA {format_duration(stage_left)}")
        overall = self.overall_eta(now, stage_left)
        if overall is not None:
            parts.append(overall)
        parts.append(f"elapsed {self._elapsed()}")
        return "  ".join(parts)

    def overall_eta(self, now: float, stage_left: float | None) -> str | None:
        """The current stage's ETA plus the estimates of the stages after it (unestimated ones named)."""
        if self.stage not in self.stages:
            return None
        later = list(self.stages)[list(self.stages).index(self.stage) + 1 :]
        known = sum(self.estimates[s] for s in later if s in self.estimates)
        unknown = [s for s in later if s not in self.estimates]
        if stage_left is None:
            return None
        text = f"overall ETA {format_duration(stage_left + known)}"
        return text + (f" + {', '.join(unknown)}" if unknown else "")

    def _stage_label(self) -> str:
        if self.stage is None:
            return "so8t"
        if self.stage in self.stages:
            return f"stage {list(self.stages).index(self.stage) + 1}/{len(self.stages)} {self.stage}"
        return self.stage

    def _elapsed(self) -> str:
        return format_duration(self.clock() - self.started)

    # ------------------------------------------------------------------------------------------ output

    def _line(self, text: str) -> None:
        if not self.enabled:
            return
        self._clear_status()
        self.stream.write(f"[so8t] {text}\n")
        self.stream.flush()
        self._last_output = self.clock()

    def _draw(self, text: str) -> None:
        if not self.enabled:
            return
        self.stream.write(f"\r\033[K[so8t] {text}")
        self.stream.flush()
        self._status_shown = True
        self._last_output = self.clock()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\033[K")
            self._status_shown = False


_ACTIVE: list[Progress] = []


def current() -> Progress:
    """The display of the running pipeline, or a stage-less one on stderr when none is active."""
    if not _ACTIVE:
        _ACTIVE.append(Progress())
    return _ACTIVE[-1]


@contextmanager
def activate(progress: Progress) -> Iterator[Progress]:
    """Make `progress` the display every stage reports to, with other libraries' bars routed into it."""
    _ACTIVE.append(progress)
    try:
        with routed_progress_bars(progress):
            yield progress
    finally:
        _ACTIVE.remove(progress)


@contextmanager
def routed_progress_bars(progress: Progress) -> Iterator[None]:
    """While active, a tqdm bar (lm-eval's request bars, datasets, any library's) draws nothing itself and
    counts into `progress` instead, so there is one display and a log file gets no redraws."""
    try:
        from tqdm import std
    except ImportError:  # pragma: no cover - tqdm comes with transformers
        yield
        return
    original_init, original_update = std.tqdm.__init__, std.tqdm.update

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original_init(self, *args, **kwargs)
        self.n = 0
        self.total = kwargs.get("total", getattr(self, "total", None))
        self._so8t_unit = (kwargs.get("desc") or "item").removeprefix("Running ")

    def update(self: Any, n: float = 1) -> Any:
        self.n = getattr(self, "n", 0) + n
        total = getattr(self, "total", None)
        progress.update(int(self.n), int(total) if total else None, unit=getattr(self, "_so8t_unit", "item"))
        return None

    std.tqdm.__init__, std.tqdm.update = init, update
    try:
        yield
    finally:
        std.tqdm.__init__, std.tqdm.update = original_init, original_update
