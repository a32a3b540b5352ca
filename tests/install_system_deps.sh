#!/usr/bin/env bash
# System packages the test suite uses beyond pip: Debian's headless Chromium renders the leaderboard page.
# Idempotent; does nothing when Chromium is already there. Without root or apt it says so: the test then skips
# on a developer machine and fails under CI (tests/system_deps.py).
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the leaderboard rendering test skips (fails under CI)" >&2
else
  echo "note: chromium not installed (needs root + apt); the leaderboard rendering test skips (fails under CI)" >&2
fi
exit 0
