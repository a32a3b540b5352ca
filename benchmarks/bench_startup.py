"""Python start-up time with the lm-eval startup hook (so8t-lm-eval.pth) on, against a start with it off.

The hook runs at every interpreter start in the environment (pip, pytest, any script), so it must cost next to
nothing. Both timings are fresh `python -c pass` subprocesses of the running interpreter, interleaved and
measured in the same run (median of --runs each), so the ratio holds on any machine; the hook is switched off
with SO8T_LM_EVAL_HOOK=0, which the .pth line reads before importing anything of so8t.

    python benchmarks/bench_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HOOK_ENV = "SO8T_LM_EVAL_HOOK"


def _seconds(env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or result.stderr:
        raise SystemExit(
            f"python -c pass failed or wrote to stderr (exit {result.returncode}):\n{result.stderr}"
        )
    return elapsed


def _hook_installed() -> bool:
    code = "import sys; print(any(type(f).__name__ == '_PostImportFinder' for f in sys.meta_path))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return found.stdout.strip() == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="starts per setting (median reported)")
    args = parser.parse_args()
    if not _hook_installed():
        raise SystemExit(
            "the startup hook is not active in this interpreter: install so8t (pip install -e .) and unset "
            f"{HOOK_ENV} first, or there is nothing to measure."
        )
    on = {k: v for k, v in os.environ.items() if k != HOOK_ENV}
    off = {**on, HOOK_ENV: "0"}
    # warm the file cache for both
    _seconds(on)
    _seconds(off)
    on_s: list[float] = []
    off_s: list[float] = []
    for _ in range(args.runs):
        on_s.append(_seconds(on))
        off_s.append(_seconds(off))
    hook_on, hook_off = statistics.median(on_s), statistics.median(off_s)
    # without cached bytecode every start also compiles the hook's modules: say which case was measured
    no_pyc = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    print(f"interpreter: {sys.executable} (PYTHONDONTWRITEBYTECODE={no_pyc})")
    print(
        f"python -c pass, hook on:              median {hook_on * 1000:.1f} ms over {args.runs} runs "
        f"(min {min(on_s) * 1000:.1f}, max {max(on_s) * 1000:.1f})"
    )
    print(
        f"python -c pass, {HOOK_ENV}=0: median {hook_off * 1000:.1f} ms over {args.runs} runs "
        f"(min {min(off_s) * 1000:.1f}, max {max(off_s) * 1000:.1f})"
    )
    print(
        f"ratio hook on / off: {hook_on / hook_off:.3f} (the hook adds {(hook_on - hook_off) * 1000:.1f} ms "
        "to every start)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
