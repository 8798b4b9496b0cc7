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

cargo build --release --locked -p cognate -p cognate-bench

if [ ! -x "$work/venv/bin/moto_server" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
if [ ! -x "$work/node/node_modules/.bin/cognito-local" ]; then
  mkdir -p "$work/node"
  (cd "$work/node" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error cognito-local@3.23.3)
fi

exec python3 "$here/bench.py" --work "$work" --root "$root"
