"""Two Cognate binaries side by side as the gateway of bench/gateway (the same authorized GET, API
key and upstream), for deciding whether a change to the proxy path helps (issue 5).

Both gateways stay up in front of one upstream; wrk runs against A and B in turn (A B, B A, ...)
and each pair gives B/A for the gateway's CPU per request and for requests/s. On this VM a rate
drifts by several per cent within a minute; CPU per request is the steadier of the two.

    python3 bench/gateway/ab.py --a OLD_BINARY --b target/release/cognate [--pairs 8] [--seconds 5]

--tweak-b runs a shell command (with {pid} gateway B's process) once B is up, for trying
scheduler settings without a build. With --rate R each side instead gets R requests/s from the
fixed-rate generator (as the benchmark's latency rows), beside a run straight to the upstream,
and each pair gives B - A for the latency added at p50, p90 and p99 (from the planned time).

The upstream and the token come from this tree's target/release/cognate-bench (build it first:
cargo build --release -p cognate-bench).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as gw  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def gateway(binary, up, work, name, procs):
    """A Cognate server with the bench's API; returns (url, headers, pid)."""
    api, port = gw.free_port(), gw.free_port()
    env = dict(os.environ, COGNATE_ACCESS_KEY_ID=gw.KEY, COGNATE_SECRET_ACCESS_KEY=gw.SECRET,
               COGNATE_MESSAGES="log")
    log = open(os.path.join(work, f"{name}.log"), "wb")
    p = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{api}", "--data-dir",
                          os.path.join(work, name), "--password-hashing", "development"],
                         env=env, stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    gw.wait_http(f"http://127.0.0.1:{api}/health")
    bench = os.path.join(ROOT, "target/release/cognate-bench")
    setup = json.loads(subprocess.run([bench, "gateway-setup", "--endpoint", f"http://127.0.0.1:{api}"],
                                      capture_output=True, text=True, check=True).stdout)
    cfg = os.path.join(work, f"{name}.yaml")
    open(cfg, "w").write(gw.definition(setup["pool_id"], port, up))
    subprocess.run([binary, "apply", "--endpoint", f"http://127.0.0.1:{api}", cfg], env=env,
                   check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}/prod/items"
    gw.wait_http(url)
    return url, [f"Authorization: {setup['access_token']}", f"x-api-key: {gw.API_KEY}"], p.pid


def latency(sides, direct, args):
    """Pairs of fixed-rate rows, A and B in turn with a direct row between them."""
    diffs = {q: [] for q in ("p50_ms", "p90_ms", "p99_ms")}
    for i in range(args.pairs):
        order = ("A", "B") if i % 2 == 0 else ("B", "A")
        row = {}
        for s in order:
            url, headers, _ = sides[s]
            row[s] = gw.rate(ROOT, url, args.rate, headers, seconds=args.seconds)
            if s == order[0]:
                row["direct"] = gw.rate(ROOT, direct[0], args.rate, direct[1], seconds=args.seconds)
        for q in diffs:
            diffs[q].append(row["B"][q] - row["A"][q])
        print(f"pair {i + 1}: " + "; ".join(
            f"{s} p50 {row[s]['p50_ms']:.3f} p90 {row[s]['p90_ms']:.3f} p99 {row[s]['p99_ms']:.3f}"
            f" errors {row[s]['errors']}" for s in ("A", "direct", "B")), flush=True)
    for q, xs in diffs.items():
        se = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0
        print(f"{q[:3]} B - A: mean {statistics.mean(xs):+.3f} ± {se:.3f} ms, "
              f"median {statistics.median(xs):+.3f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rate", type=int, help="compare latency at this fixed rate instead")
    ap.add_argument("--tweak-b", help="shell command run once gateway B is up; {pid} is its pid")
    args = ap.parse_args()
    gw.SECONDS = args.seconds
    work = tempfile.mkdtemp(prefix="bench-gateway-ab-")
    procs = []
    try:
        up = gw.free_port()
        procs.append(subprocess.Popen([os.path.join(ROOT, "target/release/cognate-bench"), "upstream",
                                       "--listen", f"127.0.0.1:{up}"]))
        gw.wait_http(f"http://127.0.0.1:{up}/")
        sides = {"A": gateway(os.path.abspath(args.a), up, work, "a", procs),
                 "B": gateway(os.path.abspath(args.b), up, work, "b", procs)}
        upstream_pid = procs[0].pid
        if args.tweak_b:
            subprocess.run(args.tweak_b.format(pid=sides["B"][2]), shell=True, check=True)
        for side in sides.values():  # warm-up: pools filled, keys loaded
            gw.wrk(side[0], side[1])
        if args.rate:
            direct = (f"http://127.0.0.1:{up}/items", sides["A"][1])
            return latency(sides, direct, args)
        cpu, rps = [], []
        for i in range(args.pairs):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            row = {}
            for s in order:
                url, headers, pid = sides[s]
                row[s] = gw.wrk_with_cpu(url, headers, pid, upstream_pid)
                if row[s]["non_2xx"]:
                    raise SystemExit(f"{s}: {row[s]['non_2xx']} responses were not 2xx")
            cpu.append(row["B"]["proxy_cpu_us"] / row["A"]["proxy_cpu_us"])
            rps.append(row["B"]["per_s"] / row["A"]["per_s"])
            print(f"pair {i + 1}: A {row['A']['per_s']:.0f}/s {row['A']['proxy_cpu_us']:.1f} us, "
                  f"B {row['B']['per_s']:.0f}/s {row['B']['proxy_cpu_us']:.1f} us; "
                  f"CPU/request B/A {cpu[-1]:.3f}, requests/s B/A {rps[-1]:.3f}", flush=True)

        def summary(xs):
            se = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0
            return f"mean {statistics.mean(xs):.3f} ± {se:.3f}, median {statistics.median(xs):.3f}"

        print(f"CPU per request B/A: {summary(cpu)}")
        print(f"requests/s B/A: {summary(rps)}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
