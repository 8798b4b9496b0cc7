#!/usr/bin/env bash
# The user-directory benchmark: Cognate side by side with moto's server (PyPI) and cognito-local
# (npm), which this script installs and starts itself, on this machine, in one run.
#
#   bench/directory/run.sh            # full run (100,000 users; about 30 minutes on 2 cores)
#   QUICK=1 bench/directory/run.sh    # a smoke run with small sizes
#   ONLY=argon2 bench/directory/run.sh  # only the default-profile rows between argon2id floors
#
# Results: bench/directory/results.json and a Markdown table on stdout (copied into
# docs/performance.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/bench/.work"
mkdir -p "$work"
cd "$root"

. "$root/bench/peers.sh"

exec python3 "$here/bench.py" --work "$work" --root "$root"
