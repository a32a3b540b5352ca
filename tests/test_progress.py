"""One progress display for the pipeline: stage, step, stage and overall ETA; one-line records off a terminal."""

from __future__ import annotations

import io
import sys

from so8t.progress import Progress, activate, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_long_stage_writes_a_few_one_line_records_and_never_redraws():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(["train", "evaluate"], stream=out, clock=clock, interval_s=30.0, enabled=True)
    progress.begin("train", "tiny")
    for step in range(1, 1001):  # 1000 steps over 100 s
        clock.now += 0.1
        progress.update(step, 1000)
    progress.end("train")
    text = out.getvalue()
    assert "\r" not in text and "\033" not in text
    lines = text.splitlines()
    records = [line for line in lines if "step " in line]
    # a record every 30 s of a 100 s stage, whatever the number of steps
    assert 2 <= len(records) <= 4, lines
    assert lines[0].startswith("[so8t] stage 1/2 train: tiny")
    assert lines[-1] == "[so8t] stage 1/2 train done in 1m40s"
    assert "10.00/s" in records[-1] and "stage ETA" in records[-1]


def test_on_a_terminal_the_status_line_is_redrawn_in_place_and_notes_stay_above_it():
    clock, out = FakeClock(), Terminal()
    progress = Progress(["train"], stream=out, clock=clock, enabled=True)
    progress.begin("train")
    for step in range(1, 11):
        clock.now += 1.0
        progress.update(step, 10)
        if step == 5:
            progress.note("step 5/10  loss 1.0")
    text = out.getvalue()
    assert text.count("\r\033[K[so8t] stage 1/1 train  step") == 10
    # the note clears the status line, is written as a line, and the status comes back after it
    assert "\r\033[K[so8t] step 5/10  loss 1.0\n" in text


def test_the_overall_eta_adds_the_estimates_of_later_stages_and_names_the_unestimated_ones():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(
        ["train", "consolidate", "evaluate"],
        stream=out,
        clock=clock,
        estimates={"evaluate": 120.0},
        enabled=True,
    )
    progress.begin("train")
    progress.update(0, 100)
    clock.now += 50
    progress.update(50, 100)
    status = progress.status()
    # 50 steps left at 1 step/s, then 2 minutes of evaluation; consolidation has no estimate yet
    assert "stage ETA 50s" in status and "overall ETA 2m50s + consolidate" in status


def test_other_libraries_bars_draw_nothing_and_count_into_the_display():
    from tqdm import tqdm

    clock, out = FakeClock(), io.StringIO()
    progress = Progress(["evaluate"], stream=out, clock=clock, interval_s=0.0, enabled=True)
    captured = io.StringIO()
    with activate(progress):
        progress.begin("evaluate")
        bar = tqdm(total=4, desc="Running loglikelihood requests", file=captured)
        for _ in range(4):
            clock.now += 1
            bar.update(1)
        bar.close()
    assert captured.getvalue() == ""
    assert "loglikelihood requests 4/4 (100%)" in out.getvalue()
    # the bar is tqdm's own again afterwards
    tqdm(range(2), file=captured, mininterval=0).update(0)
    assert captured.getvalue() != ""


def test_only_the_main_process_of_a_torchrun_job_displays(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    out = io.StringIO()
    progress = Progress(["train"], stream=out)
    progress.begin("train")
    progress.note("hello")
    assert out.getvalue() == "" and Progress(stream=sys.stderr).enabled is False


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (4.4, 65, 3 * 3600 + 7 * 60)] == ["4s", "1m05s", "3h07m"]


def test_a_file_log_shows_the_overall_eta_even_when_training_log_lines_come_more_often_than_records():
    """Training log lines (notes) are written every few seconds; they must not reset the 30 s clock of the
    status records, or a file log never shows the stage and overall ETA."""
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(
        ["train", "evaluate"], stream=out, clock=clock, estimates={"evaluate": 60.0}, enabled=True
    )
    progress.begin("train")
    for step in range(1, 101):  # 100 steps over 100 s, a training log line every 5 steps (5 s)
        clock.now += 1.0
        progress.update(step, 100)
        if step % 5 == 0:
            progress.note(f"step {step}/100  loss 1.0")
    records = [line for line in out.getvalue().splitlines() if "overall ETA" in line]
    assert 3 <= len(records) <= 4, out.getvalue()
