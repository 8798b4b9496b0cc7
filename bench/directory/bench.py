"""Orchestrates the directory benchmark: starts each server, drives it with cognate-bench, and
measures memory (VmRSS) and, for Cognate, bytes on disk per user after a checkpoint and VACUUM."""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

QUICK = bool(os.environ.get("QUICK"))
SIZES = [200, 1000] if QUICK else [1000, 100_000]
SEED_BUDGET_S = 60 if QUICK else 420
LOOKUPS = 500 if QUICK else 3000
WRITES = 300 if QUICK else 1500
WRITES_ARGON2 = 100 if QUICK else 600
ARGON2_ROUNDS = 2 if QUICK else 3
FLOOR_S = 4 if QUICK else 8
# ONLY=argon2 runs just the default-profile rows and their floors (a few minutes).
ONLY = os.environ.get("ONLY", "")
CONCURRENCY = 8
KEY, SECRET = "AKIDBENCHMARK", "benchmark-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, proc, path="/health"):
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + path, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # answering at all is enough for the peers
        except Exception:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


class Server:
    def __init__(self, name, cmd, env=None, cwd=None, health="/health", sqlite=None):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [c.replace("{port}", str(self.port)) for c in cmd]
        full_env = dict(os.environ, **(env or {}))
        full_env = {k: v.replace("{port}", str(self.port)) for k, v in full_env.items()}
        self.log = open(os.path.join(cwd, "server.log"), "wb")
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        self.sqlite = sqlite
        wait_up(self.url, self.proc, health)

    def pid(self):
        # cognito-local runs under npx/node: measure the process listening, i.e. the newest child.
        try:
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
            return int(out[-1]) if out else self.proc.pid
        except Exception:
            return self.proc.pid

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def rss_mib(pid):
    total = 0
    for p in [pid] + [int(x) for x in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def disk_bytes(path):
    con = sqlite3.connect(path, timeout=30)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def loadgen(root, *args):
    cmd = [os.path.join(root, "target/release/cognate-bench"), *args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0:
        rows.append({"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"})
    return rows


def cognate(root, dev=True):
    d = tempfile.mkdtemp(prefix="bench-cognate-")
    cmd = [os.path.join(root, "target/release/cognate"), "serve", "--listen", "127.0.0.1:{port}", "--data-dir", d]
    if dev:
        cmd += ["--password-hashing", "development"]
    env = {"COGNATE_ACCESS_KEY_ID": KEY, "COGNATE_SECRET_ACCESS_KEY": SECRET, "COGNATE_LOG": "warn", "COGNATE_MESSAGES": "log"}
    name = "Cognate (development hashing)" if dev else "Cognate (argon2id 19 MiB, t=2)"
    return Server(name, cmd, env=env, cwd=d, sqlite=os.path.join(d, "cognate.db")), d


def moto(work):
    d = tempfile.mkdtemp(prefix="bench-moto-")
    cmd = [os.path.join(work, "venv/bin/moto_server"), "-H", "127.0.0.1", "-p", "{port}"]
    return Server("moto server 5.2.5", cmd, cwd=d, health="/moto-api/"), d


def cognito_local(work):
    d = tempfile.mkdtemp(prefix="bench-cognito-local-")
    cmd = [os.path.join(work, "node/node_modules/.bin/cognito-local")]
    return Server("cognito-local 3.23.3", cmd, env={"PORT": "{port}", "HOST": "127.0.0.1"}, cwd=d, health="/"), d


def lookups(root, server, probes):
    hook = f"{sys.executable} {os.path.abspath(__file__)} --probe {server.pid()} --probe-out {probes}"
    if server.sqlite:
        hook += f" --probe-sqlite {server.sqlite}"
    return loadgen(
        root, "lookups", "--endpoint", server.url, "--sizes", ",".join(map(str, SIZES)),
        "--seed-budget-s", str(SEED_BUDGET_S), "--requests", str(LOOKUPS), "--concurrency", str(CONCURRENCY),
        "--after-size", hook,
    )


def probe(pid, out, sqlite_path, size):
    row = {"size": size, "rss_mib": rss_mib(pid)}
    if sqlite_path:
        row["disk_bytes"] = disk_bytes(sqlite_path)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1), "kernel": platform.release()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work")
    ap.add_argument("--root")
    ap.add_argument("--probe", type=int)
    ap.add_argument("--probe-out")
    ap.add_argument("--probe-sqlite")
    ap.add_argument("size", nargs="?", type=int)
    a = ap.parse_args()
    if a.probe:
        return probe(a.probe, a.probe_out, a.probe_sqlite, a.size)

    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": QUICK, "peers": []}
    if ONLY != "argon2":
        peers(a, results)
    argon2_rounds(a, results)

    name = "results-argon2.json" if ONLY == "argon2" else "results.json"
    out = os.path.join(a.root, "bench/directory", name)
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(render(results))


def floor(root):
    f = loadgen(root, "floor", "--seconds", str(FLOOR_S))[0]
    print("floor:", f, file=sys.stderr)
    return f


def peers(a, results):
    results["floor"] = floor(a.root)
    for start in (lambda: cognate(a.root), lambda: moto(a.work), lambda: cognito_local(a.work)):
        server, d = start()
        print(f"== {server.name}", file=sys.stderr)
        probes = os.path.join(d, "probes.jsonl")
        rows = lookups(a.root, server, probes)
        server.stop()
        # Writes on a fresh server, so the pool sizes above do not weigh on them.
        server, d2 = start()
        rows += loadgen(a.root, "writes", "--endpoint", server.url, "--count", str(WRITES), "--concurrency", str(CONCURRENCY))
        server.stop()
        probe_rows = [json.loads(l) for l in open(probes)] if os.path.exists(probes) else []
        results["peers"].append({"name": server.name, "rows": rows, "probes": probe_rows})
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(d2, ignore_errors=True)


def argon2_rounds(a, results):
    """Default-profile writes, each round between two floor measurements, so that a noisy machine
    moves the floor and the rows together; each row's ratio is against the mean of its two floors."""
    floors = [floor(a.root)]
    rows = []
    name = None
    for rnd in range(ARGON2_ROUNDS):
        server, d = cognate(a.root, dev=False)
        name = server.name
        print(f"== {server.name} round {rnd + 1}", file=sys.stderr)
        got = loadgen(a.root, "writes", "--endpoint", server.url, "--count", str(WRITES_ARGON2), "--concurrency", str(CONCURRENCY))
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
        floors.append(floor(a.root))
        around = (floors[-2]["argon2id_per_s"] + floors[-1]["argon2id_per_s"]) / 2
        for row in got:
            row["round"] = rnd + 1
            row["floor_per_s"] = around
            row["floor_ratio"] = row["per_s"] / around if "per_s" in row else None
        rows += got
    results["argon2_floors"] = floors
    results["peers"].append({"name": name, "rows": rows, "probes": []})


def render(r):
    m = r["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; run {r['started']}.", ""]
    if "floor" in r:
        f = r["floor"]
        lines.append(f"Floors measured in the same run: argon2id (19 MiB, t=2, p=1) {f['argon2id_per_s']:.1f} hashes/s on all cores; "
                     f"SRP verifier {f['srp_verifier_per_s']:.0f}/s.")
        lines.append("")
    *lookup_peers, argon2 = r["peers"]
    if lookup_peers:
        lines.append("| Server | Measure | Users in pool | Requests/s | Mean ms | p50 ms | p99 ms |")
        lines.append("|---|---|---:|---:|---:|---:|---:|")
        for p in lookup_peers:
            for row in p["rows"]:
                lines.append(row_line(p["name"], row))
        lines.append("")
    floors = ", ".join(f"{f['argon2id_per_s']:.1f}" for f in r["argon2_floors"])
    lines.append(f"argon2id floor (19 MiB, t=2, p=1, hashes/s on all cores) before, between and after the rounds: {floors}.")
    lines.append("")
    lines.append("| Server | Round | Measure | Requests/s | Floor around it | Ratio | Mean ms | p99 ms |")
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|")
    for row in argon2["rows"]:
        if "error" in row:
            lines.append(f"| {argon2['name']} | {row.get('round', '')} | error | | | | | {row['error'][:80]} |")
            continue
        lines.append(f"| {argon2['name']} | {row['round']} | {row['measure']} | {row['per_s']:.0f} | {row['floor_per_s']:.1f} | "
                     f"{row['floor_ratio']:.2f} | {row['mean_ms']:.2f} | {row['p99_ms']:.2f} |")
    probes = [(p["name"], pr) for p in lookup_peers for pr in p["probes"]]
    if probes:
        lines.append("")
        lines.append("| Server | Users | Resident memory MiB | Database bytes (after VACUUM) |")
        lines.append("|---|---:|---:|---:|")
        for name, pr in probes:
            disk = f"{pr['disk_bytes']:,}" if "disk_bytes" in pr else "n/a"
            lines.append(f"| {name} | {pr['size']} | {pr['rss_mib']:.1f} | {disk} |")
    return "\n".join(lines)


def row_line(name, row):
    if "error" in row:
        return f"| {name} | error | | | | | {row['error'][:80]} |"
    size = row["size"]
    note = f" (of {row['target_size']} wanted)" if row.get("target_size", size) != size else ""
    return f"| {name} | {row['measure']} | {size}{note} | {row['per_s']:.0f} | {row['mean_ms']:.2f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |"


if __name__ == "__main__":
    main()
