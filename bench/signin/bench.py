"""Orchestrates the sign-in benchmark (issue 4, item 8): floors of this machine (RS256 signatures,
argon2id hashes, the server's SRP arithmetic) measured in the same run, Cognate beside moto's
server and cognito-local on each sign-in flow, Cognate at 1,000 and 100,000 users (server CPU per
request, memory, bytes on disk), and the default argon2id profile against its floor, with an
overload that the bounded hashing queue must turn into fast TooManyRequestsExceptions."""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "directory"))
from bench import cognate, cognito_local, disk_bytes, loadgen, machine, moto, rss_mib  # noqa: E402

QUICK = bool(os.environ.get("QUICK"))
SECONDS = 3 if QUICK else 8
USERS = 50 if QUICK else 100
SIZES = [1000, 5000] if QUICK else [1000, 100_000]
FLOOR_S = 3 if QUICK else 6
CONCURRENCY = 32
ARGON2_ROUNDS = 1 if QUICK else 3
# ONLY=argon2 runs just the default-profile rounds and their floors (a few minutes).
ONLY = os.environ.get("ONLY", "")
# The hashing queue holds 16 sign-ins; 8 connections keep both cores busy, 192 overload it.
HASH_CONCURRENCY, OVERLOAD_CONCURRENCY = 8, 192
# Each window of the interleaved run (eight sign-in windows between nine floor windows).
INTERLEAVE_S = 2 if QUICK else 3


def floor(root):
    f = loadgen(root, "floor", "--seconds", str(FLOOR_S))[0]
    print("floor:", f, file=sys.stderr)
    return f


def signin(root, server, flows, size, concurrency=CONCURRENCY, seconds=SECONDS, users=USERS):
    return loadgen(
        root, "signin", "--endpoint", server.url, "--flows", ",".join(flows), "--users", str(users),
        "--size", str(size), "--seconds", str(seconds), "--concurrency", str(concurrency),
        "--cpu-pid", str(server.pid()),
    )


def side_by_side(a, results):
    """Every flow on each server, in a pool of the first size."""
    for start in (lambda: cognate(a.root), lambda: moto(a.work), lambda: cognito_local(a.work)):
        server, d = start()
        print(f"== {server.name}", file=sys.stderr)
        rows = []
        for flow in ("password", "refresh", "getuser", "srp"):
            # One flow per run: a peer that fails one flow still gets measured on the others.
            rows += signin(a.root, server, [flow], SIZES[0])
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
        results["side_by_side"].append({"name": server.name, "rows": rows})


def sizes(a, results):
    """Cognate at each pool size: the cost per request must not grow with the pool."""
    for size in SIZES:
        server, d = cognate(a.root)
        print(f"== {server.name} at {size} users", file=sys.stderr)
        rows = signin(a.root, server, ["password", "refresh", "getuser"], size)
        rss = rss_mib(server.pid())
        server.stop()
        disk = disk_bytes(server.sqlite)
        results["sizes"].append({"size": size, "rows": rows, "rss_mib": rss, "disk_bytes": disk})
        shutil.rmtree(d, ignore_errors=True)


def argon2(a, results):
    """The default profile in rounds, each between two floor measurements (this VM's argon2id floor
    moves by ±15 % within minutes, so a row is compared with the floors around it): throughput at
    a concurrency that keeps the cores busy; then an overload of the bounded queue and SRP
    sign-ins for their server CPU."""
    floors = [floor(a.root)]
    rows = []
    name = None
    for rnd in range(ARGON2_ROUNDS):
        server, d = cognate(a.root, dev=False)
        name = server.name
        print(f"== {server.name} round {rnd + 1}", file=sys.stderr)
        got = signin(a.root, server, ["password"], USERS, concurrency=HASH_CONCURRENCY)
        if rnd == ARGON2_ROUNDS - 1:
            got += signin(a.root, server, ["password"], USERS, concurrency=OVERLOAD_CONCURRENCY)
            # The load generator's own SRP arithmetic costs it about three times what the server
            # spends, so the server is never saturated; its CPU per sign-in falls as more sign-ins
            # overlap (fewer idle wake-ups), hence two rows.
            got += signin(a.root, server, ["srp"], USERS, concurrency=4)
            got += signin(a.root, server, ["srp"], USERS, concurrency=16)
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
        floors.append(floor(a.root))
        for row in got:
            row["round"] = rnd + 1
            row["floor_argon2id_per_s"] = (floors[-2]["argon2id_per_s"] + floors[-1]["argon2id_per_s"]) / 2
            row["floor_srp_server_ms"] = (floors[-2]["srp_server_ms"] + floors[-1]["srp_server_ms"]) / 2
        rows += got
    # The goal's own measurement: sign-in windows alternating with floor windows seconds apart.
    server, d = cognate(a.root, dev=False)
    print(f"== {server.name} interleaved with the floor", file=sys.stderr)
    inter = signin(a.root, server, ["password-interleaved"], USERS, concurrency=HASH_CONCURRENCY,
                   seconds=INTERLEAVE_S)[0]
    server.stop()
    shutil.rmtree(d, ignore_errors=True)
    results["argon2"] = {"name": name, "rows": rows, "floors": floors, "interleaved": inter}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work")
    ap.add_argument("--root")
    a = ap.parse_args()
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": QUICK,
               "side_by_side": [], "sizes": []}
    if ONLY != "argon2":
        results["floor"] = floor(a.root)
        side_by_side(a, results)
        sizes(a, results)
    argon2(a, results)
    name = "results-argon2.json" if ONLY == "argon2" else "results.json"
    with open(os.path.join(a.root, "bench/signin", name), "w") as f:
        json.dump(results, f, indent=1)
    print(render(results))


def fmt(v, spec=".2f"):
    return "n/a" if v is None else format(v, spec)


def errors_text(row):
    errs = row.get("errors") or {}
    return ", ".join(f"{k} {v['count']} (p99 {v['p99_ms']:.1f} ms)" for k, v in errs.items()) or "none"


def render(r):
    m = r["machine"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; run {r['started']}.", ""]
    if "floor" in r:
        out += render_peers(r)
    out += render_argon2(r["argon2"])
    return "\n".join(out)


def render_peers(r):
    f = r["floor"]
    ceiling = f["rs256_sign_per_s"] / 2
    out = [f"Floors measured in this run: RS256 {f['rs256_sign_per_s']:.0f} signatures/s on all cores "
           f"(two-signature ceiling {ceiling:.0f} grants/s); argon2id (19 MiB, t=2, p=1) {f['argon2id_per_s']:.1f} "
           f"hashes/s on all cores; the server's part of one SRP sign-in (B, session key, two signatures) "
           f"{f['srp_server_ms']:.2f} ms of CPU.", "",
           f"Side by side ({SIZES[0]} users in the pool, {USERS} signing in, {CONCURRENCY} connections, "
           f"{SECONDS} s per row; the peers store plaintext passwords and skip hashing; Cognate here uses its "
           "development hashing profile):", "",
           "| Server | Flow | Sign-ins/s | p50 ms | p99 ms | Server CPU ms/request | Errors |",
           "|---|---|---:|---:|---:|---:|---|"]
    for p in r["side_by_side"]:
        for row in p["rows"]:
            if "error" in row:
                out.append(f"| {p['name']} | — | | | | | {row['error'][:90]} |")
                continue
            out.append(f"| {p['name']} | {row['measure']} | {row['per_s']:.0f} | {row['p50_ms']:.2f} | "
                       f"{row['p99_ms']:.2f} | {fmt(row.get('server_cpu_ms_per_request'), '.3f')} | {errors_text(row)} |")
    cognate_rows = {row["measure"]: row for row in r["side_by_side"][0]["rows"] if "measure" in row}
    if "REFRESH_TOKEN_AUTH" in cognate_rows:
        got = cognate_rows["REFRESH_TOKEN_AUTH"]["per_s"]
        out += ["", f"REFRESH_TOKEN_AUTH: {got:.0f} grants/s = **{got / ceiling:.2f}** of the two-signature ceiling "
                    f"({ceiling:.0f}/s; goal ≥ 0.60)."]
    if "GetUser" in cognate_rows:
        out.append(f"GetUser: **{cognate_rows['GetUser']['per_s']:.0f}/s** (goal ≥ 20,000/s; signature, expiry and "
                   "revocation checked on every call).")
    out += ["", "Cognate by pool size (development hashing; cost per request must stay flat):", "",
            "| Users in pool | Flow | Requests/s | p99 ms | Server CPU ms/request | Resident MiB | Disk bytes/user |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    for s in r["sizes"]:
        for row in s["rows"]:
            if "error" in row:
                out.append(f"| {s['size']} | error | | | | | {row['error'][:80]} |")
                continue
            out.append(f"| {s['size']} | {row['measure']} | {row['per_s']:.0f} | {row['p99_ms']:.2f} | "
                       f"{fmt(row.get('server_cpu_ms_per_request'), '.3f')} | {s['rss_mib']:.1f} | "
                       f"{s['disk_bytes'] / s['size']:.0f} |")
    return out + [""]


def render_argon2(g):
    floors = ", ".join(f"{x['argon2id_per_s']:.1f}" for x in g["floors"])
    out = [f"{g['name']}, in rounds between floors (argon2id hashes/s before, between and after: {floors}):", "",
           "| Round | Flow | Connections | Sign-ins/s | Ratio to its floor | p50 ms | p99 ms | Server CPU ms/sign-in | Load generator CPU ms/sign-in | Errors |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in g["rows"]:
        if "error" in row:
            out.append(f"| {row.get('round', '')} | error | | | | | | | | {row['error'][:80]} |")
            continue
        if row["measure"] == "USER_SRP_AUTH":
            cpu = row.get("server_cpu_ms_per_request")
            ratio = f"{cpu / row['floor_srp_server_ms']:.2f}× SRP floor {row['floor_srp_server_ms']:.2f} ms" if cpu else "n/a"
        else:
            ratio = f"{row['per_s'] / row['floor_argon2id_per_s']:.2f}"
        out.append(f"| {row['round']} | {row['measure']} | {row['concurrency']} | {row['per_s']:.1f} | {ratio} | "
                   f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {fmt(row.get('server_cpu_ms_per_request'))} | "
                   f"{fmt(row.get('loadgen_cpu_ms_per_request'))} | {errors_text(row)} |")
    i = g.get("interleaved")
    if i and "windows" in i:
        out += ["", f"USER_PASSWORD_AUTH ({i['concurrency']} connections) in {i['window_seconds']} s windows alternating "
                f"with {i['window_seconds']} s argon2id floor windows (floors: "
                + ", ".join(f"{f:.1f}" for f in i["floors"]) + " hashes/s):", "",
                "| Window | Sign-ins/s | Floor around it | Ratio | Server CPU ms/sign-in | Errors |",
                "|---:|---:|---:|---:|---:|---:|"]
        for n, w in enumerate(i["windows"], 1):
            out.append(f"| {n} | {w['per_s']:.1f} | {w['floor_per_s']:.1f} | {w['ratio']:.2f} | "
                       f"{fmt(w.get('server_cpu_ms_per_request'))} | {w['errors']} |")
        out += ["", f"Ratio to the floor: mean **{i['ratio_mean']:.2f}**, median {i['ratio_median']:.2f}, "
                f"range {i['ratio_min']:.2f}–{i['ratio_max']:.2f}."]
    return out


if __name__ == "__main__":
    main()
