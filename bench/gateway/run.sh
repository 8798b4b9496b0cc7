#!/usr/bin/env bash
# The gateway benchmark (issue 5, item 7): an authorized GET (RS256 access token, scope check)
# proxied by Cognate to a minimal upstream, beside the same GET straight to the upstream and
# through Debian's nginx doing a plain proxy_pass (also given the very request Cognate gets, token
# and API key included, and with a buffered access log, as Cognate logs every request), with wrk as the load, each row with the proxy's and the upstream's
# CPU per request; then the latency Cognate
# adds at half its peak, measured at a fixed rate (open loop) against the direct run's noise.
# The goal's throughput ratio is also taken interleaved: Cognate and nginx in turn, 5 s of wrk
# each, the order rotating (PAIRS, default 8; PAIR_SECONDS, default 5). "Direct" and the
# fixed-rate nginx rows send the same GET as Cognate gets (token and API key).
#
#   bench/gateway/run.sh            # about 5 minutes on 2 cores
#   PERF_OUT=/tmp/gw.data ROUNDS=1 bench/gateway/run.sh   # also `perf record` of Cognate under wrk
#   RATE=11449 bench/gateway/run.sh   # the fixed-rate rows at a given rate instead of half the peak
#   BENCH_EXTRA="quota_batch: 1000" bench/gateway/run.sh   # a top-level line added to the config
#   HOLD=/tmp/gw.env bench/gateway/run.sh   # only bring everything up and keep it up (ports, pids,
#                                           # token and key in /tmp/gw.env) for perf by hand
#   (ROUNDS and SECONDS_PER_RUN set the wrk rounds; defaults 2 and 10)
#
# Installs wrk and nginx with apt-get when they are missing. Results: bench/gateway/results.json
# and a Markdown table on stdout (copied into docs/performance.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null
fi
cargo build --release -q -p cognate -p cognate-bench
exec python3 "$here/bench.py" --root "$root"
