#!/usr/bin/env bash
# Security checklist A1 (issue 4, item 7): is a refused sign-in for a user who does not exist as
# long as one with a wrong password? 1,000 pairs each, on SQLite and on PostgreSQL, for
# USER_PASSWORD_AUTH (default and development hashing) and USER_SRP_AUTH (pycognito), with a
# two-sample Kolmogorov–Smirnov test per row (bench/signin/existence.py); the `--again` rows time
# the second of two attempts at one name sent back to back. About 20 minutes on
# 2 cores.
#
#   bench/signin/existence.sh                 # SAMPLES=1000 by default
#   COGNATE_TEST_POSTGRES_URL=postgres://user@host/db bench/signin/existence.sh
#
# Results: bench/signin/results-existence.json and a Markdown table on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/bench/.work"
mkdir -p "$work"
cd "$root"
samples="${SAMPLES:-1000}"
pg="${COGNATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

cargo build --release --locked -p cognate
if [ ! -x "$work/venv-existence/bin/python" ]; then
  python3 -m venv "$work/venv-existence"
  "$work/venv-existence/bin/pip" install --quiet --disable-pip-version-check \
    -r <(grep -E '^(botocore|boto3|requests|pycognito)==' tests/compat/requirements.txt)
fi
py="$work/venv-existence/bin/python"
out="$here/results-existence.json"
: > "$out"

run() { "$py" "$here/existence.py" --bin target/release/cognate --samples "$samples" "$@" | tee -a "$out"; }
with_postgres() {
  local schema="existence_$$_$RANDOM" sep='?'
  case "$pg" in *\?*) sep='&' ;; esac
  run "$@" --database "$pg${sep}schema=$schema"
  psql "$pg" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}

run --flow password
run --flow password --again
run --flow password --hashing development
run --flow srp
if pg_isready -q -d "$pg" 2>/dev/null; then
  with_postgres --flow password
  with_postgres --flow password --again
  with_postgres --flow srp
else
  echo "PostgreSQL at $pg is not reachable: its rows are left out" >&2
fi

"$py" - "$out" <<'EOF'
import json, sys, platform, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}.\n")
print("| Flow | Hashing | Store | Wrong password p50 / p90 / p99 ms | Unknown user p50 / p90 / p99 ms | Median difference ms | KS D | KS p |")
print("|---|---|---|---|---|---:|---:|---:|")
for r in rows:
    w, u = r["wrong_password"], r["unknown_user"]
    f = lambda s: f"{s['p50_ms']:.2f} / {s['p90_ms']:.2f} / {s['p99_ms']:.2f}"
    print(f"| {r['flow']} | {r['hashing']} | {r['store']} | {f(w)} | {f(u)} | {r['median_difference_ms']:+.3f} | {r['ks_d']:.3f} | {r['ks_p']:.3f} |")
EOF
