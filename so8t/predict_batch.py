"""`so8t predict MODEL --input FILE|- [--output FILE]`: screen many requests in batches, JSON lines out.

Each input line is a JSON object with the request under `prompt` (a safety record's field, so a safety data
file screens as it is) or a chat `messages` list (its last user turn decided with the turns before it); other
fields, such as an `id`, are copied to the output line. Head B decides a batch of requests in one forward (So8tAgent.decide_batch, the decisions `so8t predict MODEL "request"` makes one at a
time); only ALLOW requests are answered. Each output line carries the request's line number, the decision,
every class's probability and, on ALLOW, the answer (`text`, `generated: true`); the throughput goes to
standard error, so standard output stays JSON lines.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from so8t.data.safety import DECISIONS
from so8t.errors import DataError
from so8t.layout.atomic import atomic_write_text

REQUEST_FIELD = "prompt"
MESSAGES_FIELD = "messages"  # a conversation: its last user turn is decided, with the turns before it
STDIN = "-"


def read_requests(source: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every non-blank line of a JSONL file, or of standard input for `-`."""
    name = "standard input" if source == STDIN else source
    if source == STDIN:
        lines: Iterator[str] | TextIO = sys.stdin
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"--input {source}: no such file; give a JSONL file of requests, or - for stdin.")
        lines = io.StringIO(path.read_text(encoding="utf-8"))
    requests = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{name}:{number}: invalid JSON ({exc.msg}); write one JSON object a line."
            ) from exc
        if not isinstance(record, dict) or not (
            isinstance(record.get(REQUEST_FIELD), str) or isinstance(record.get(MESSAGES_FIELD), list)
        ):
            raise DataError(
                f'{name}:{number}: expected a JSON object with the request as a string under "{REQUEST_FIELD}" '
                f'(or a chat "{MESSAGES_FIELD}" list), e.g. {{"{REQUEST_FIELD}": "Summarise the attached memo."}}'
            )
        requests.append((number, record))
    if not requests:
        raise DataError(
            f"{name} holds no requests; write one JSON object a line with a {REQUEST_FIELD!r} field."
        )
    return requests


def response_record(response: Any) -> dict[str, Any]:
    """A Response as strict JSON (a broken head's non-finite probabilities become null)."""
    shown = asdict(response)
    shown["probabilities"] = {k: (v if math.isfinite(v) else None) for k, v in response.probabilities.items()}
    return shown


def predict_lines(agent: Any, requests: list[tuple[int, dict]], batch_size: int) -> Iterator[dict[str, Any]]:
    """One output record per request, in input order: head B decides `batch_size` requests at a time."""
    for start in range(0, len(requests), batch_size):
        batch = requests[start : start + batch_size]
        texts = [record.get(REQUEST_FIELD, record.get(MESSAGES_FIELD)) for _, record in batch]
        for (number, record), text, decided in zip(batch, texts, agent.decide_batch(texts), strict=True):
            extra = {k: v for k, v in record.items() if k not in (REQUEST_FIELD, MESSAGES_FIELD)}
            yield {**extra, "line": number, **response_record(agent.respond(decided, text))}


def run_batch(agent: Any, requests: list[tuple[int, dict]], output: str | None, batch_size: int) -> int:
    """Screen `requests` (read_requests), write JSON lines to `output` (atomically) or standard output."""
    started = time.perf_counter()
    records = list(predict_lines(agent, requests, batch_size))
    elapsed = time.perf_counter() - started
    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records)
    if output:
        atomic_write_text(Path(output), text)
    else:
        sys.stdout.write(text)
    tally = ", ".join(f"{d} {sum(r['decision'] == d for r in records)}" for d in DECISIONS)
    print(
        f"{len(records)} requests in {elapsed:.2f} s ({len(records) / max(elapsed, 1e-9):.1f} requests/s; "
        f"{tally})" + (f"; written to {output}" if output else ""),
        file=sys.stderr,
    )
    return 0
