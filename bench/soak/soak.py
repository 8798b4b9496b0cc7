"""The soak's driver (security checklist R7; see run.sh): one Cognate (release build, SQLite, a
gateway API with a Cognito authorizer, an API key and a usage plan, proxying to a minimal
upstream) under a steady mixed load for a long time, sampled every window.

The load: REFRESH_TOKEN_AUTH, GetUser and an authorized GET through the gateway, each at a
fraction of its own peak (measured first with wrk, each alone), by default a sixth, so that
together they keep the machine about half busy. Each window runs the three streams at a fixed
rate (open loop, `cognate-bench rate`) and then samples the server: resident memory, open file
descriptors, threads, the database's size, and each stream's latency percentiles and errors.
Tokens are refreshed before each window (access tokens live an hour).

The summary holds the checklist's measures against the state at the end of the warm-up: RSS
growth (goal < 5 %), file-descriptor growth (goal none) and p99 drift between the first and the
last tenth of the windows after warm-up (goal < 20 %). Results are written after every window,
so an interrupted soak keeps what it measured."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gateway"))
import bench as gw  # noqa: E402  (the gateway benchmark's parts: ports, wrk, the API's definition)

TARGET = "AWSCognitoIdentityProviderService."


def call(endpoint, action, body):
    """A public action, unsigned, as apps send them."""
    req = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + action})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def sample(pid, data_dir, listening):
    """The server's resident memory (KiB), open descriptors (and of those, TCP connections to
    its listeners and from it to others, e.g. the upstream's kept-alive pool), threads and
    database size (bytes)."""
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    db = sum(os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir)
             if f.startswith("cognate.db"))
    fds = os.listdir(f"/proc/{pid}/fd")
    targets = []
    for fd in fds:
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    sockets = {t[8:-1] for t in targets if t.startswith("socket:[")}
    database = sum("/cognate.db" in t for t in targets)
    inbound = outbound = 0
    for line in open(f"/proc/{pid}/net/tcp").readlines()[1:]:
        f = line.split()
        # Established connections only (state 01): listeners and closing sockets aside.
        if f[9] in sockets and f[3] == "01":
            if int(f[1].split(":")[1], 16) in listening:
                inbound += 1
            else:
                outbound += 1
    return {"rss_kib": int(status["VmRSS"].split()[0]), "hwm_kib": int(status["VmHWM"].split()[0]),
            "fds": len(fds), "inbound": inbound, "outbound": outbound, "threads": int(status["Threads"]),
            "db_bytes": db, "thread_kinds": thread_kinds(pid),
            # Each SQLite connection opens the database file once (and its log beside it).
            "db_connections": sum(t.endswith("/cognate.db") for t in targets),
            "fd_kinds": {"sockets": len(sockets), "database": database,
                         "other": len(targets) - len(sockets) - database}}


def thread_kinds(pid):
    """The server's threads by name, numbers stripped (tokio's workers, SQLite's connection
    threads, ...): which kind a growth in threads is."""
    kinds = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip().rstrip("0123456789-")
        except OSError:
            continue
        kinds[name] = kinds.get(name, 0) + 1
    return kinds


def split_cores():
    """The server's cores and the load's. On a shared machine the load generators' and the
    server's threads preempt each other, and each window's p99 swung by a factor of ten with
    whose thread waited (GetUser: 1–150 ms from the generator, never over 10 ms inside the
    server), which no drift could be read through. So the server gets half the cores to itself
    and the generators, the upstream and this driver the other half. None: one core, or PIN=0."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or os.environ.get("PIN") == "0":
        return None, None
    half = len(cores) // 2
    return set(cores[half:]), set(cores[:half])


class Streams:
    """The three requests of the load, built afresh from current tokens."""

    def __init__(self, endpoint, gateway_url, setup, names):
        self.endpoint, self.gateway_url, self.setup, self.names = endpoint, gateway_url, setup, names
        self.refresh()

    def refresh(self):
        got = call(self.endpoint, "InitiateAuth", {
            "AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": self.setup["client_id"],
            "AuthParameters": {"REFRESH_TOKEN": self.setup["refresh_token"]}})["AuthenticationResult"]
        self.access = got["AccessToken"]

    def requests(self):
        """name -> (url, headers, body or None)."""
        aws = ["Content-Type: application/x-amz-json-1.1"]
        every = {
            "refresh": (self.endpoint + "/", aws + [f"X-Amz-Target: {TARGET}InitiateAuth"], json.dumps({
                "AuthFlow": "REFRESH_TOKEN_AUTH", "ClientId": self.setup["client_id"],
                "AuthParameters": {"REFRESH_TOKEN": self.setup["refresh_token"]}})),
            "GetUser": (self.endpoint + "/", aws + [f"X-Amz-Target: {TARGET}GetUser"],
                        json.dumps({"AccessToken": self.access})),
            "gateway": (self.gateway_url, [f"Authorization: {self.access}", f"x-api-key: {gw.API_KEY}"], None),
        }
        return {name: every[name] for name in self.names}


def peaks(streams, work):
    """Each stream's closed-loop throughput alone (wrk, 64 connections, 10 s)."""
    out = {}
    for name, (url, headers, body) in streams.requests().items():
        script = None
        if body is not None:
            script = os.path.join(work, f"{name}.lua")
            with open(script, "w") as f:
                f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n')
        row = gw.wrk(url, headers, seconds=10, script=script)
        if row["non_2xx"]:
            raise SystemExit(f"{name}: {row['non_2xx']} failed requests while measuring its peak")
        out[name] = row["per_s"]
        print(f"peak {name}: {row['per_s']:.0f}/s", flush=True)
    return out


def window(root, streams, rates, seconds):
    """The three streams at once for `seconds`: name -> the generator's JSON."""
    procs = {}
    for name, (url, headers, body) in streams.requests().items():
        cmd = gw.rate_command(root, url, rates[name], headers, seconds, post=body, connections=16)
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = {}
    for name, p in procs.items():
        text = p.communicate()[0]
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            # A generator that failed (e.g. could not connect): the window counts as all errors.
            out[name] = {"requests": 0, "errors": rates[name] * seconds, "p50_ms": None, "p99_ms": None,
                         "failed": text[-500:]}
    return out


def summarise(r):
    """The checklist's three measures over the windows after the warm-up."""
    rows = r["windows"]
    warm = r["warmup_windows"]
    after = rows[warm:]
    if len(after) < 2:
        return {"note": "too few windows after the warm-up"}
    tenth = max(1, len(after) // 10)
    first, last = after[:tenth], after[-tenth:]
    base = rows[warm - 1] if warm else rows[0]
    rss_last = statistics.median(w["server"]["rss_kib"] for w in last)
    s = {"windows": len(rows), "after_warmup": len(after),
         "rss_at_warmup_kib": base["server"]["rss_kib"], "rss_last_kib": rss_last,
         "rss_growth_pct": 100 * (rss_last - base["server"]["rss_kib"]) / base["server"]["rss_kib"],
         "fds_at_warmup": base["server"]["fds"], "fds_max_after": max(w["server"]["fds"] for w in after),
         "fds_first": statistics.median(w["server"]["fds"] for w in first),
         "fds_last": statistics.median(w["server"]["fds"] for w in last),
         # Older results have no breakdown.
         "outbound_first": statistics.median(w["server"].get("outbound", 0) for w in first),
         "outbound_last": statistics.median(w["server"].get("outbound", 0) for w in last),
         "threads_at_warmup": base["server"]["threads"], "threads_max_after": max(w["server"]["threads"] for w in after),
         # Which kinds the threads were, and the database connections (each a thread and a
         # page cache: the pool opens them as concurrency asks, up to its bound).
         "thread_kinds_at_warmup": base["server"].get("thread_kinds"),
         "thread_kinds_last": after[-1]["server"].get("thread_kinds"),
         "db_connections_at_warmup": base["server"].get("db_connections"),
         "db_connections_last": after[-1]["server"].get("db_connections"),
         "fd_kinds_first": _median_kinds(first), "fd_kinds_last": _median_kinds(last),
         "db_bytes_first": after[0]["server"]["db_bytes"], "db_bytes_last": after[-1]["server"]["db_bytes"],
         "errors": sum(w["load"][n]["errors"] for w in after for n in w["load"]), "p99": {}}
    for name in rows[0]["load"]:
        # Windows without answers have no p99 (their requests are counted as errors).
        p_first = _median_p99(first, name)
        p_last = _median_p99(last, name)
        drift = 100 * (p_last / p_first - 1) if p_first and p_last is not None else None
        s["p99"][name] = {"first_ms": p_first, "last_ms": p_last, "drift_pct": drift}
    # Medians of the first and last tenth: the upstream's idle connections come and go by one
    # or two between samples; a leak grows with time.
    s["fd_growth"] = s["fds_last"] - s["fds_first"]
    # Only growth fails: a p99 that fell is no drift to worry about.
    s["verdict"] = {"rss growth < 5 %": s["rss_growth_pct"] < 5, "no fd growth": s["fd_growth"] <= 0,
                    "p99 drift < 20 %": all(p["drift_pct"] is not None and p["drift_pct"] < 20
                                            for p in s["p99"].values())}
    return s


def _median_kinds(rows):
    """Each kind of descriptor's median over `rows` (None for results without the breakdown)."""
    kinds = [w["server"].get("fd_kinds") for w in rows]
    if not all(kinds):
        return None
    return {k: statistics.median(x[k] for x in kinds) for k in kinds[0]}


def _median_p99(rows, name):
    values = [w["load"][name]["p99_ms"] for w in rows if w["load"][name]["p99_ms"]]
    return statistics.median(values) if values else None


def render(r):
    s = r["summary"]
    cores = r.get("cores", "shared")
    out = [f"Machine: {r['machine']}; started {r['started']}; {len(r['windows'])} windows of {r['window_s']} s "
           f"({r['warmup_windows']} of warm-up); cores: "
           + (cores if isinstance(cores, str) else f"server {cores['server']}, load {cores['load']}") + ".",
           "Rates: " + ", ".join(f"{n} {v}/s (peak {r['peaks'][n]:.0f}/s)" for n, v in r["rates"].items()) + "."]
    if "rss_growth_pct" not in s:
        return "\n".join(out + [s.get("note", "")])
    out += [f"RSS {s['rss_at_warmup_kib'] / 1024:.1f} MiB after warm-up, {s['rss_last_kib'] / 1024:.1f} MiB at the end: "
            f"{s['rss_growth_pct']:+.1f} %; file descriptors (median) {s['fds_first']:.0f} in the first tenth, "
            f"{s['fds_last']:.0f} in the last (at most {s['fds_max_after']}; of them connections out "
            f"{s['outbound_first']:.0f} then {s['outbound_last']:.0f}; by kind "
            f"{_kinds(s.get('fd_kinds_first'))} → {_kinds(s.get('fd_kinds_last'))}); "
            f"threads {s['threads_at_warmup']} then at most {s['threads_max_after']} "
            f"({_kinds(s.get('thread_kinds_at_warmup'))} → {_kinds(s.get('thread_kinds_last'))}); "
            f"database connections {s.get('db_connections_at_warmup')} then {s.get('db_connections_last')}; database "
            f"{s['db_bytes_first'] / 1e6:.1f} MB then {s['db_bytes_last'] / 1e6:.1f} MB; errors {s['errors']}.",
            "p99 first tenth → last tenth after warm-up: " + "; ".join(
                f"{n} {_ms(p['first_ms'])} → {_ms(p['last_ms'])} ("
                + ("n/a" if p["drift_pct"] is None else f"{p['drift_pct']:+.0f} %") + ")"
                for n, p in s["p99"].items()) + ".",
            "Goals: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in s["verdict"].items()) + "."]
    return "\n".join(out)


def _kinds(k):
    return "?" if not k else " ".join(f"{n}×{c:g}" for n, c in sorted(k.items()))


def _ms(v):
    return "no answers" if v is None else f"{v:.2f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("MINUTES", "1440")))
    ap.add_argument("--window", type=int, default=int(os.environ.get("WINDOW_S", "60")))
    ap.add_argument("--fraction", type=float, default=float(os.environ.get("FRACTION", str(1 / 6))))
    ap.add_argument("--warmup-minutes", type=float, default=float(os.environ.get("WARMUP_MINUTES", "10")))
    ap.add_argument("--streams", default=os.environ.get("STREAMS", "refresh,GetUser,gateway"),
                    help="which streams run (for finding which one a growth comes with)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    root = a.root
    out_path = a.out or os.path.join(root, "bench/soak/results.json")
    bench = os.path.join(root, "target/release/cognate-bench")
    work = tempfile.mkdtemp(prefix="bench-soak-")
    server_cores, load_cores = split_cores()
    data_dir = os.path.join(work, "data")
    procs = []
    try:
        if load_cores:
            os.sched_setaffinity(0, load_cores)  # inherited by the upstream and the generators
        up, api, gw_port = gw.free_port(), gw.free_port(), gw.free_port()
        procs.append(subprocess.Popen([bench, "upstream", "--listen", f"127.0.0.1:{up}"]))
        env = dict(os.environ, COGNATE_ACCESS_KEY_ID=gw.KEY, COGNATE_SECRET_ACCESS_KEY=gw.SECRET,
                   COGNATE_MESSAGES="log")
        log = open(os.path.join(work, "cognate.log"), "wb")
        # Default hashing and logging (one access-log line per request, to a file), as users run it.
        server = subprocess.Popen(
            [os.path.join(root, "target/release/cognate"), "serve", "--listen", f"127.0.0.1:{api}",
             "--data-dir", data_dir], env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, server_cores)) if server_cores else None)
        procs.append(server)
        endpoint = f"http://127.0.0.1:{api}"
        gw.wait_http(endpoint + "/health")
        gw.wait_http(f"http://127.0.0.1:{up}/")
        setup = json.loads(subprocess.run([bench, "gateway-setup", "--endpoint", endpoint],
                                          capture_output=True, text=True, check=True).stdout)
        cfg = os.path.join(work, "apis.yaml")
        with open(cfg, "w") as f:
            f.write(gw.definition(setup["pool_id"], gw_port, up))
        subprocess.run([os.path.join(root, "target/release/cognate"), "apply", "--endpoint", endpoint, cfg],
                       env=env, check=True, capture_output=True)
        streams = Streams(endpoint, f"http://127.0.0.1:{gw_port}/prod/items", setup, a.streams.split(","))
        peak = peaks(streams, work)
        rates = {n: max(1, int(p * a.fraction)) for n, p in peak.items()}
        windows = max(1, int(a.minutes * 60 / a.window))
        r = {"machine": gw.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "window_s": a.window,
             "cores": {"server": sorted(server_cores), "load": sorted(load_cores)} if server_cores else "shared",
             "fraction": a.fraction, "peaks": peak, "rates": rates,
             # At most half the run, so that a short run still has windows to judge.
             "warmup_windows": min(windows // 2, max(1, int(a.warmup_minutes * 60 / a.window))), "windows": []}
        began = time.monotonic()
        for i in range(windows):
            streams.refresh()
            load = window(root, streams, rates, a.window)
            time.sleep(1)  # the generators' connections closed on the server's side too
            row = {"at_s": round(time.monotonic() - began), "time": time.strftime("%H:%M:%S"), "load": load,
                   "server": sample(server.pid, data_dir, {api, gw_port})}
            r["windows"].append(row)
            print(f"window {i + 1}/{windows}: rss {row['server']['rss_kib'] / 1024:.1f} MiB, fds {row['server']['fds']} "
                  f"({row['server']['outbound']} connections out), "
                  + ", ".join(f"{n} p99 {_ms(v['p99_ms'])} ({v['errors']} errors)" for n, v in load.items()),
                  flush=True)
            r["summary"] = summarise(r)
            with open(out_path, "w") as f:
                json.dump(r, f, indent=1)
        print(render(r))
    finally:
        gw.stop(procs, timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
