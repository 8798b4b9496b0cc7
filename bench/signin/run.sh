#!/usr/bin/env bash
# The sign-in benchmark (issue 4, item 8): Cognate beside moto's server (PyPI) and cognito-local
# (npm), which this script installs and starts itself, with the machine's floors (RS256, argon2id,
# SRP arithmetic) measured in the same run.
#
#   bench/signin/run.sh           # full run (about 10 minutes on 2 cores)
#   QUICK=1 bench/signin/run.sh   # a smoke run with small sizes
#   ONLY=argon2 bench/signin/run.sh  # only the default-profile rounds between argon2id floors
#
# Results: bench/signin/results.json and a Markdown table on stdout (copied into
# docs/performance.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/bench/.work"
mkdir -p "$work"
cd "$root"

. "$root/bench/peers.sh"

exec python3 "$here/bench.py" --work "$work" --root "$root"
