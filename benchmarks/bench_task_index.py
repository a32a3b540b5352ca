"""The task index `so8t eval` builds before it evaluates: so8t tasks only, against a run that names a built-in
lm-eval task (which needs lm-eval's full index of every built-in task YAML).

Each timing is a fresh interpreter building the index once (so8t.lmeval.evaluate.task_manager), interleaved
and measured in the same run (median of --repeats each), so the ratio holds on any machine.

    python benchmarks/bench_task_index.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CASES = {"so8t tasks only": ["so8t_gsm8k_local", "so8t_safety_local"], "with a built-in task": ["arc_easy"]}
CODE = (
    "import json, sys, time\n"
    "from so8t.lmeval.evaluate import task_manager\n"
    "start = time.perf_counter()\n"
    "manager = task_manager({}, None, json.loads(sys.argv[1]))\n"
    "print(time.perf_counter() - start, len(manager.all_tasks))\n"
)


def _seconds(tasks: list[str]) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", CODE, json.dumps(tasks)], capture_output=True, text=True, check=True
    )
    seconds, indexed = done.stdout.split()
    return float(seconds), int(indexed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh starts per case (median reported)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    indexed: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, tasks in CASES.items():
            seconds, indexed[name] = _seconds(tasks)
            times[name].append(seconds)
    print("| tasks named | tasks indexed | index built in (median s) |")
    print("|---|---:|---:|")
    for name in CASES:
        print(f"| {name} | {indexed[name]} | {statistics.median(times[name]):.3f} |")
    narrow, full = (statistics.median(times[name]) for name in CASES)
    print(f"\nfull / so8t-only: {full / narrow:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
