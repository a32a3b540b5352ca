"""Reading an offline W&B run folder back: the run id and the history rows of its `run-<id>.wandb` file.

The file is a LevelDB-style log (32 KiB blocks of records, each with a 7-byte header: CRC, length, type)
of protobuf `Record`s, after a 7-byte `:W&B` header; wandb ships the protobuf classes but no reader.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_offline_run(folder: Path) -> tuple[str, list[dict]]:
    """(run id, history rows as {key: value}) of one offline run folder."""
    from wandb.proto import wandb_internal_pb2

    run_id, rows = "", []
    (path,) = Path(folder).glob("run-*.wandb")
    for payload in _payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_id = record.run.run_id
        elif kind == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return run_id, rows
