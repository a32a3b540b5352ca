"""claim_run_dir: a run directory records its resolved config once and is resumed only with the same one."""

from __future__ import annotations

import pytest

import so8t.rundir as rundir
from so8t.errors import UserError
from so8t.rundir import claim_run_dir


def test_first_claim_writes_the_config_and_the_same_config_claims_again(tmp_path):
    run = tmp_path / "run"
    claim_run_dir(run, "seed: 0\n")
    assert (run / "config.resolved.yaml").read_text() == "seed: 0\n"
    assert oct((run / "config.resolved.yaml").stat().st_mode & 0o777) == oct(0o644)
    claim_run_dir(run, "seed: 0\n")
    assert sorted(p.name for p in run.iterdir()) == ["config.resolved.yaml"]  # no temporary file left


def test_a_changed_config_is_refused_with_the_difference_and_the_ways_out(tmp_path):
    claim_run_dir(tmp_path, "seed: 0\nlr: 1\n")
    with pytest.raises(UserError) as info:
        claim_run_dir(tmp_path, "seed: 0\nlr: 2\n")
    message = str(info.value)
    assert "-lr: 1" in message and "+lr: 2" in message and "another --output-dir" in message
    assert (tmp_path / "config.resolved.yaml").read_text() == "seed: 0\nlr: 1\n"


def test_ranks_claiming_the_same_directory_at_once_all_succeed(tmp_path, monkeypatch):
    """Under torchrun every rank claims the run directory at the same moment: here a second claim runs
    between the first one's write and its rename, as another rank would."""
    real_replace = rundir.os.replace
    calls = []

    def replace_after_another_rank(src, dst):
        calls.append(src)
        if len(calls) == 1:
            claim_run_dir(tmp_path / "run", "seed: 0\n")
        real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", replace_after_another_rank)
    claim_run_dir(tmp_path / "run", "seed: 0\n")
    assert len(calls) == 2 and calls[0] != calls[1]
    assert (tmp_path / "run" / "config.resolved.yaml").read_text() == "seed: 0\n"
