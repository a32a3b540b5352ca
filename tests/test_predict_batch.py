"""`so8t predict MODEL --input FILE|-`: batched head-B decisions, one JSON line per request, equal to the
single-request path's decisions."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

from so8t.cli import main
from so8t.data.safety import bundled_safety_path


@pytest.mark.slow
def test_batched_decisions_on_the_bundled_test_set_equal_the_single_request_path(tiny_so8t, tmp_path, capsys):
    import so8t

    _, consolidated, _ = tiny_so8t
    source = bundled_safety_path("test")
    out = tmp_path / "decisions.jsonl"
    argv = ["predict", str(consolidated), "--input", str(source), "--output", str(out), "--batch-size", "8"]
    assert main([*argv, "--max-new-tokens", "4", "--device", "cpu"]) == 0
    requests = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(requests)
    assert "requests/s" in capsys.readouterr().err

    agent = so8t.load(str(consolidated), device="cpu", max_new_tokens=4)
    for request, line in zip(requests, lines, strict=True):
        single = agent.generate(request["prompt"])
        assert line["decision"] == single.decision
        assert line["category"] == request["category"]  # the input's other fields are kept
        assert line["probabilities"] == pytest.approx(single.probabilities, abs=1e-5)
        assert line["generated"] is (single.decision == "ALLOW")
        assert line["text"] == single.text
    assert {line["decision"] for line in lines} >= {"ALLOW"}, "no ALLOW: the answers were never exercised"


def test_requests_from_standard_input_print_json_lines(tiny_so8t, monkeypatch, capsys):
    _, consolidated, _ = tiny_so8t
    rows = [{"prompt": "Summarise the memo.", "id": "a"}, {"prompt": "Delete every backup.", "id": "b"}]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(r) + "\n\n" for r in rows)))
    assert (
        main(["predict", str(consolidated), "--input", "-", "--max-new-tokens", "2", "--device", "cpu"]) == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(p["id"], p["line"]) for p in printed] == [("a", 1), ("b", 3)]
    assert all(set(p["probabilities"]) == {"ALLOW", "ESCALATE", "REFUSE"} for p in printed)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "ok"}\n{"text": "no prompt"}\n', r"requests.jsonl:2: expected a JSON object"),
        ("", "no requests"),
    ],
)
def test_a_bad_request_file_names_the_line(tiny_so8t, tmp_path, capsys, content, message):
    _, consolidated, _ = tiny_so8t
    bad = tmp_path / "requests.jsonl"
    bad.write_text(content)
    assert main(["predict", str(consolidated), "--input", str(bad), "--device", "cpu"]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_request_and_input_together_are_refused(capsys):
    assert main(["predict", "MODEL", "hello", "--input", "-"]) == 2
    assert "not both" in capsys.readouterr().err
