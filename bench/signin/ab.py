"""Two Cognate binaries side by side on USER_PASSWORD_AUTH with the default argon2id profile, for
deciding whether a change to the sign-in path helps (issue 4's argon2id goal).

On this shared VM the sign-in rate drifts by several per cent within a minute, so one run of each
binary tells nothing about a 2 % change. Both servers stay up; 3 s windows alternate between them
(A B, B A, A B, …) and each pair gives a ratio B/A. Identical binaries gave pair ratios from 0.95 to
1.07: about 20 pairs are needed to see a 2 % difference.

    python3 bench/signin/ab.py --a OLD_BINARY --b target/release/cognate [--pairs 20]
    python3 bench/signin/ab.py --a X --b X --tweak-b 'taskset -p -c 0 {pid}'   # a runtime change
    python3 bench/signin/ab.py --a X --b X --env-b TOKIO_WORKER_THREADS=1

--env-b sets a variable in B's environment. --tweak-b runs a shell command (with {pid} the server B's process) once B is up, for trying
scheduler settings without a build. The load generator is this tree's target/release/cognate-bench.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "directory"))
from bench import KEY, SECRET, Server, loadgen  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WINDOW_S = 3


def start(binary, name, extra_env=()):
    d = tempfile.mkdtemp(prefix="bench-ab-")
    env = {"COGNATE_ACCESS_KEY_ID": KEY, "COGNATE_SECRET_ACCESS_KEY": SECRET, "COGNATE_LOG": "warn",
           "COGNATE_MESSAGES": "log"}
    env.update(kv.split("=", 1) for kv in extra_env)
    cmd = [os.path.abspath(binary), "serve", "--listen", "127.0.0.1:{port}", "--data-dir", d]
    return Server(name, cmd, env=env, cwd=d), d


def window(server):
    """One window of sign-ins (the load generator seeds its users first, outside the window)."""
    rows = loadgen(ROOT, "signin", "--endpoint", server.url, "--flows", "password", "--users", "100",
                   "--size", "100", "--seconds", str(WINDOW_S), "--concurrency", "8",
                   "--cpu-pid", str(server.pid()))
    row = rows[-1]
    if "error" in row:
        raise SystemExit(f"{server.name}: {row['error']}")
    return row["per_s"], row["server_cpu_ms_per_request"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the baseline cognate binary")
    ap.add_argument("--b", required=True, help="the candidate cognate binary")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--tweak-b", help="shell command run once server B is up; {pid} is its pid")
    ap.add_argument("--env-b", action="append", default=[], help="NAME=VALUE in server B's environment")
    args = ap.parse_args()
    (a, da), (b, db) = start(args.a, "A"), start(args.b, "B", args.env_b)
    try:
        if args.tweak_b:
            subprocess.run(args.tweak_b.format(pid=b.pid()), shell=True, check=True)
        window(a), window(b)  # warm-up, not counted
        ratios = []
        for i in range(args.pairs):
            order = (a, b) if i % 2 == 0 else (b, a)
            got = {s.name: window(s) for s in order}
            ratios.append(got["B"][0] / got["A"][0])
            print(f"pair {i + 1:2}: A {got['A'][0]:6.1f}/s {got['A'][1]:5.2f} ms CPU   "
                  f"B {got['B'][0]:6.1f}/s {got['B'][1]:5.2f} ms CPU   B/A {ratios[-1]:.3f}", flush=True)
        mean = statistics.mean(ratios)
        sem = statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
        print(json.dumps({"pairs": len(ratios), "b_over_a_mean": round(mean, 4),
                          "standard_error": round(sem, 4), "median": round(statistics.median(ratios), 4),
                          "min": round(min(ratios), 4), "max": round(max(ratios), 4)}))
    finally:
        for s, d in ((a, da), (b, db)):
            s.stop()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
