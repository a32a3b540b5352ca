"""How long `so8t validate` takes to reject a bad config, against the cost of merely importing torch.

The point of validating up front: a run config whose validation glob matches nothing must fail in a
fraction of the time it takes to start loading models. Both timings are fresh subprocesses measured in the
same run (median of several repeats), so the ratio holds on any machine.

    python benchmarks/bench_validate.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
data:
  train: ["data/*.train.jsonl"]
  validation: ["data/*.val.jsonl"]   # matches nothing: validate must exit 2
  test: ["data/*.test.jsonl"]
"""
RECORD = {
    "question": "Ann has 2 apples and buys 3 more. How many apples?",
    "answer": "2 + 3 = <<2+3=5>>5\n#### 5",
}
SAFETY = {"prompt": "How do I bake bread?", "decision": "ALLOW"}


def _seconds(command: list[str], expected_code: int) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != expected_code:
        raise SystemExit(
            f"{' '.join(command)} exited {result.returncode}, expected {expected_code}:\n{result.stderr}"
        )
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "data").mkdir()
        for split in ("train", "test"):
            lines = [json.dumps(RECORD)] * 500 + [json.dumps(SAFETY)] * 100
            (root / "data" / f"mixed.{split}.jsonl").write_text("\n".join(lines) + "\n")
        config = root / "run.yaml"
        config.write_text(CONFIG)
        validate = [sys.executable, "-m", "so8t", "validate", str(config)]
        heavy = [sys.executable, "-c", "import torch, transformers"]
        _seconds(validate, 2)  # warm the file cache for both
        _seconds(heavy, 0)
        validate_s = [_seconds(validate, 2) for _ in range(args.repeats)]
        import_s = [_seconds(heavy, 0) for _ in range(args.repeats)]
    v, h = statistics.median(validate_s), statistics.median(import_s)
    print(
        f"so8t validate (bad validation glob, exit 2): median {v:.3f} s over {args.repeats} runs "
        f"(min {min(validate_s):.3f}, max {max(validate_s):.3f})"
    )
    print(
        f"python -c 'import torch, transformers':      median {h:.3f} s over {args.repeats} runs "
        f"(min {min(import_s):.3f}, max {max(import_s):.3f})"
    )
    print(
        f"ratio validate / import: {v / h:.3f} (validate rejects the config {h / v:.1f}x faster than the "
        "heavy imports alone)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
