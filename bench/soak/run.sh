#!/usr/bin/env bash
# The soak (security checklist R7): one Cognate under a steady mixed load — REFRESH_TOKEN_AUTH,
# GetUser and an authorized GET through the gateway, each at a sixth of its own peak, so the
# machine is about half busy — for MINUTES (default 1440: the checklist's 24 hours), sampled
# every WINDOW_S (60) seconds: resident memory, file descriptors, threads, database size and each
# stream's latency. Reports RSS growth, descriptor growth and p99 drift after a WARMUP_MINUTES
# (10) warm-up against the checklist's goals (< 5 %, none, < 20 %). On two or more cores the
# server gets half of them to itself and the load (generators, upstream, driver) the other half,
# so that one's scheduling does not show as the other's tail (PIN=0: all share every core).
#
#   bench/soak/run.sh                  # 24 hours
#   MINUTES=60 bench/soak/run.sh       # an hour
#   FRACTION=0.25 bench/soak/run.sh    # each stream at a quarter of its peak
#   MINUTES=5 bench/soak/run.sh --out /tmp/try.json   # a trial that keeps the recorded results
#
# Installs wrk with apt-get when it is missing (the peaks are measured with it). Results:
# bench/soak/results.json (rewritten after every window) and a summary on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q wrk >/dev/null
fi
cargo build --release -q -p cognate -p cognate-bench
exec python3 "$here/soak.py" --root "$root" "$@"
