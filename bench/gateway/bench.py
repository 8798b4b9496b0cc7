"""The gateway benchmark's driver (see run.sh): starts the upstream, Cognate and nginx, runs wrk
against each side by side in rounds, then the fixed-rate latency runs, and writes results.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

KEY, SECRET = "AKIDBENCHMARK", "benchmark-secret"
SECONDS = int(os.environ.get("SECONDS_PER_RUN", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
CONNECTIONS = 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}"


def wrk(url, headers=(), seconds=None, script=None):
    """A closed-loop wrk run; `script`: a Lua file setting the request (e.g. a POST's body)."""
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds or SECONDS}s", "--latency", url]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = {p: re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out) for p in ("50", "99")}

    def ms(m):
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"per_s": rps, "requests": requests, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"])}


def cpu_seconds(pid):
    """User and system CPU of a process and its children (nginx's workers), in seconds."""
    total = 0
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in [pid, *map(int, kids)]:
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wrk_with_cpu(url, headers, proxy_pid, upstream_pid, seconds=None):
    """A wrk row with the CPU microseconds per request of the proxy (none for direct) and of the
    upstream: on a VM whose speed drifts between rows, CPU per request compares binaries more
    steadily than requests/s."""
    before = (cpu_seconds(proxy_pid) if proxy_pid else 0, cpu_seconds(upstream_pid))
    row = wrk(url, headers, seconds)
    after = (cpu_seconds(proxy_pid) if proxy_pid else 0, cpu_seconds(upstream_pid))
    n = max(row["requests"], 1)
    row["proxy_cpu_us"] = (after[0] - before[0]) * 1e6 / n if proxy_pid else None
    row["upstream_cpu_us"] = (after[1] - before[1]) * 1e6 / n
    return row


# The goal's ratio, taken where this VM's drift between rows matters least: Cognate and the two
# nginx rows in turn, a short wrk run each, the order rotating, PAIRS times.
PAIRS = int(os.environ.get("PAIRS", "8"))
PAIR_SECONDS = int(os.environ.get("PAIR_SECONDS", "5"))


def interleaved(targets, proxies, upstream_pid):
    names = ["nginx (same request)", "nginx", "cognate"]
    groups = []
    for i in range(PAIRS):
        order = names[i % 3:] + names[:i % 3]
        group = {}
        for name in order:
            url, headers = targets[name]
            group[name] = wrk_with_cpu(url, headers, proxies[name], upstream_pid, seconds=PAIR_SECONDS)
        group["ratio_same"] = group["cognate"]["per_s"] / group["nginx (same request)"]["per_s"]
        group["ratio_plain"] = group["cognate"]["per_s"] / group["nginx"]["per_s"]
        print("interleaved", i + 1, {k: (v["per_s"] if isinstance(v, dict) else v) for k, v in group.items()}, flush=True)
        groups.append(group)
    summary = {"pairs": PAIRS, "seconds": PAIR_SECONDS, "groups": groups}
    for key in ("ratio_same", "ratio_plain"):
        v = sorted(g[key] for g in groups)
        summary[key] = {"mean": sum(v) / len(v), "median": v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2,
                        "min": v[0], "max": v[-1]}
    return summary


def rate_command(root, url, r, headers=(), seconds=None, post=None, connections=None):
    """`cognate-bench rate`: `r` requests a second (GETs, or POSTs of `post`), open loop."""
    cmd = [os.path.join(root, "target/release/cognate-bench"), "rate", "--url", url, "--rate", str(r),
           "--seconds", str(seconds or SECONDS)]
    for h in headers:
        cmd += ["--header", h]
    if post is not None:
        cmd += ["--post", post]
    if connections:
        cmd += ["--connections", str(connections)]
    return cmd


def rate(root, url, r, headers=(), seconds=None):
    cmd = rate_command(root, url, r, headers, seconds)
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def definition(pool_id, gw_port, up_port):
    return f"""apis:
  - name: bench
    kind: rest
    listen: 127.0.0.1:{gw_port}
    stages: [prod]
    authorizers:
      - name: users
        type: cognito
        pools: [{pool_id}]
    default_authorizer: users
    routes:
      - route: GET /items
        scopes: [aws.cognito.signin.user.admin]
        api_key_required: true
        integration: {{type: http, url: "http://127.0.0.1:{up_port}/items"}}
{os.environ.get("BENCH_EXTRA", "")}
usage_plans:
  # In the measured path, never refusing: a token bucket and a daily quota for the one key.
  - name: bench
    stages: [bench/prod]
    throttle: {{rate: 10000000, burst: 10000000}}
    quota: {{limit: 1000000000000, period: DAY}}
api_keys:
  - name: bench
    value: {API_KEY}
    usage_plans: [bench]
"""


API_KEY = "bench-api-key-value-0123456789"


NGINX = """worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  # Clients keep their connections (nginx closes one after 1,000 requests by default).
  keepalive_requests 100000000;
  upstream up {{ server 127.0.0.1:{up}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  # The same proxy writing an access-log line per request, buffered as Cognate's lines are (a
  # row for comparing like with like; the goal's row is the plain proxy_pass above).
  server {{
    listen 127.0.0.1:{logged};
    access_log {dir}/access.log combined buffer=64k flush=50ms;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def interrupt(*_):
    raise KeyboardInterrupt


def hold(path, targets, auth, procs):
    """For looking into a cost by hand (perf, strace, ab.py-style runs): everything stays up and
    `path` gets shell variables naming it, until the driver is interrupted."""
    port = lambda name: targets[name][0].split(":")[2].split("/")[0]
    with open(path, "w") as f:
        f.write(f"UP={port('direct')}\nGW={port('cognate')}\nNG={port('nginx')}\n")
        f.write(f"UP_PID={procs[0].pid}\nCOG_PID={procs[1].pid}\nNG_PID={procs[-1].pid}\n")
        f.write(f"TOKEN='{auth[0].split(': ', 1)[1]}'\nKEY={API_KEY}\n")
    print(f"up; variables in {path}; Ctrl-C (or SIGTERM) ends", flush=True)
    # SIGTERM too ends in the driver's clean-up, which stops the processes it started.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    a = ap.parse_args()
    root = a.root
    bench = os.path.join(root, "target/release/cognate-bench")
    work = tempfile.mkdtemp(prefix="bench-gateway-")
    procs = []
    try:
        up, api, gw, ng, ng_logged = free_port(), free_port(), free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([bench, "upstream", "--listen", f"127.0.0.1:{up}"]))
        env = dict(os.environ, COGNATE_ACCESS_KEY_ID=KEY, COGNATE_SECRET_ACCESS_KEY=SECRET, COGNATE_MESSAGES="log")
        log = open(os.path.join(work, "cognate.log"), "wb")
        # Default logging (info: one access-log line per request, to a file), as a user runs it.
        procs.append(subprocess.Popen(
            [os.path.join(root, "target/release/cognate"), "serve", "--listen", f"127.0.0.1:{api}",
             "--data-dir", os.path.join(work, "data"), "--password-hashing", "development"],
            env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_http(f"http://127.0.0.1:{api}/health")
        wait_http(f"http://127.0.0.1:{up}/")
        setup = json.loads(subprocess.run([bench, "gateway-setup", "--endpoint", f"http://127.0.0.1:{api}"],
                                          capture_output=True, text=True, check=True).stdout)
        cfg = os.path.join(work, "apis.yaml")
        open(cfg, "w").write(definition(setup["pool_id"], gw, up))
        subprocess.run([os.path.join(root, "target/release/cognate"), "apply", "--endpoint",
                        f"http://127.0.0.1:{api}", cfg], env=env, check=True, capture_output=True)
        conf = os.path.join(work, "nginx.conf")
        open(conf, "w").write(NGINX.format(dir=work, up=up, port=ng, logged=ng_logged))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen([nginx, "-c", conf, "-p", work, "-g", "daemon off;"]))
        wait_http(f"http://127.0.0.1:{ng}/")
        auth = [f"Authorization: {setup['access_token']}", f"x-api-key: {API_KEY}"]
        targets = {
            # "The same GET straight to the upstream": with the token and the API key, which the
            # upstream parses as it does when nginx passes them on.
            "direct": (f"http://127.0.0.1:{up}/items", auth),
            "nginx": (f"http://127.0.0.1:{ng}/items", ()),
            # The very request Cognate gets (its token and API key), which nginx passes on.
            "nginx (same request)": (f"http://127.0.0.1:{ng}/items", auth),
            "nginx (access log)": (f"http://127.0.0.1:{ng_logged}/items", ()),
            "cognate": (f"http://127.0.0.1:{gw}/prod/items", auth),
        }
        # Authorization works, and without a token the route refuses.
        check = urllib.request.Request(targets["cognate"][0], headers={"Authorization": setup["access_token"], "x-api-key": API_KEY})
        assert urllib.request.urlopen(check).status == 200
        try:
            urllib.request.urlopen(targets["cognate"][0])
            raise SystemExit("the gateway let an unauthenticated request through")
        except urllib.error.HTTPError as e:
            assert e.code == 401
        if os.environ.get("HOLD"):
            hold(os.environ["HOLD"], targets, auth, procs)
            return
        rows = []
        proxies = {"direct": None, "nginx": procs[-1].pid, "nginx (same request)": procs[-1].pid,
                   "nginx (access log)": procs[-1].pid, "cognate": procs[1].pid}
        for rnd in range(ROUNDS):
            for name, (url, headers) in targets.items():
                row = dict(wrk_with_cpu(url, headers, proxies[name], procs[0].pid), target=name, round=rnd + 1)
                print(row, flush=True)
                rows.append(row)
        if os.environ.get("PERF_OUT"):
            # For looking into the gateway's costs: `perf record` of Cognate under one more wrk run.
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(procs[1].pid),
                                     "-o", os.environ["PERF_OUT"]], stderr=subprocess.DEVNULL)
            print("profiled", wrk(*targets["cognate"]), flush=True)
            perf.send_signal(2)
            perf.wait()
        pairs = interleaved(targets, proxies, procs[0].pid) if PAIRS > 0 else None
        mean = lambda name: sum(r["per_s"] for r in rows if r["target"] == name) / ROUNDS
        peak = mean("cognate")
        half = int(os.environ.get("RATE") or peak / 2)
        # A short first run of each, reported apart: Cognate's upstream pools fill during it; the
        # measured rows are the steady state. The generator keeps 64 connections open (wrk2's
        # model), so the rows measure latency, not connection set-up.
        warmup = []
        for name in ("direct", "cognate"):
            url, headers = targets[name]
            row = dict(rate(root, url, half, headers, seconds=3), target=name)
            print("warm-up", row, flush=True)
            warmup.append(row)
        fixed = []
        # nginx at the same rate shows what a plain proxy hop adds on this machine.
        for name in ("direct", "nginx (same request)", "cognate", "direct", "nginx (same request)", "cognate"):
            url, headers = targets[name]
            row = dict(rate(root, url, half, headers), target=name)
            print(row, flush=True)
            fixed.append(row)
        results = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "connections": CONNECTIONS, "seconds": SECONDS, "wrk": rows, "fixed_rate": fixed, "warmup": warmup,
                   "interleaved": pairs,
                   "peak": peak, "direct": mean("direct"), "nginx": mean("nginx"),
                   "nginx_logged": mean("nginx (access log)"), "nginx_same": mean("nginx (same request)")}
        with open(os.path.join(root, "bench/gateway/results.json"), "w") as f:
            json.dump(results, f, indent=1)
        print(render(results))
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)


def stop(procs, timeout=10):
    """Stops the processes a driver started: SIGTERM, then SIGKILL after `timeout` s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def render(r):
    out = [f"Machine: {r['machine']}; run {r['started']}.", "",
           f"wrk, 2 threads, {r['connections']} connections, {r['seconds']} s per row, in rounds:", "",
           "| Round | Target | Requests/s | p50 ms | p99 ms | Non-2xx | Proxy CPU µs/request | Upstream CPU µs/request |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for w in r["wrk"]:
        proxy = f"{w['proxy_cpu_us']:.1f}" if w.get("proxy_cpu_us") is not None else "–"
        upstream = f"{w['upstream_cpu_us']:.1f}" if w.get("upstream_cpu_us") is not None else "–"
        out.append(f"| {w['round']} | {w['target']} | {w['per_s']:.0f} | {w['p50_ms']:.2f} | {w['p99_ms']:.2f} | {w['non_2xx']} "
                   f"| {proxy} | {upstream} |")
    out += ["", f"Cognate {r['peak']:.0f}/s authorized and proxied = **{r['peak'] / r['nginx']:.2f}** of nginx's "
            f"plain proxy_pass ({r['nginx']:.0f}/s); direct {r['direct']:.0f}/s."]
    if r.get("nginx_same"):
        out += [f"Against nginx given the same request as Cognate (the token and the API key, which it passes "
                f"on): **{r['peak'] / r['nginx_same']:.2f}** ({r['nginx_same']:.0f}/s)."]
    if r.get("nginx_logged"):
        out += [f"Against nginx also writing a buffered access-log line per request, as Cognate does: "
                f"{r['peak'] / r['nginx_logged']:.2f} ({r['nginx_logged']:.0f}/s)."]
    i = r.get("interleaved")
    if i:
        out += ["", f"The goal's ratio, interleaved: Cognate and nginx (given the same request, and plain) in turn, "
                f"{i['seconds']} s of wrk each, the order rotating, {i['pairs']} times:", "",
                "| # | nginx (same request)/s | nginx (plain)/s | Cognate/s | Cognate ÷ nginx (same request) | Cognate ÷ nginx (plain) |",
                "|---:|---:|---:|---:|---:|---:|"]
        for n, g in enumerate(i["groups"], 1):
            out.append(f"| {n} | {g['nginx (same request)']['per_s']:.0f} | {g['nginx']['per_s']:.0f} | {g['cognate']['per_s']:.0f} "
                       f"| {g['ratio_same']:.2f} | {g['ratio_plain']:.2f} |")
        s_, p_ = i["ratio_same"], i["ratio_plain"]
        out += ["", f"Cognate ÷ nginx given the same request: mean **{s_['mean']:.2f}**, median {s_['median']:.2f}, "
                f"range {s_['min']:.2f}–{s_['max']:.2f}. Cognate ÷ plain nginx (no token or key sent): mean "
                f"{p_['mean']:.2f}, median {p_['median']:.2f}, range {p_['min']:.2f}–{p_['max']:.2f}."]
    out += [""]
    d = [f for f in r["fixed_rate"] if f["target"] == "direct"]
    c = [f for f in r["fixed_rate"] if f["target"] == "cognate"]
    n = [f for f in r["fixed_rate"] if f["target"].startswith("nginx")]
    out += [f"Fixed rate {d[0]['rate']}/s (half of Cognate's peak) over 64 kept-alive connections, {r['seconds']} s per row:", "",
            "Latency counted from each request's planned time (wrk2's count), and in the last three columns "
            "without the generator's own lateness (its sender thread wakes within the kernel's timer slack, "
            "50 µs, and may be kept from a core; a request that found a connection idle counts from when it "
            "was sent, one that waited for a connection from its planned time):", "",
            "| Target | p50 ms | p90 ms | p99 ms | max ms | Errors | sent p50 ms | sent p90 ms | sent p99 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sent = lambda f: (f"{f['sent_p50_ms']:.3f} | {f['sent_p90_ms']:.3f} | {f['sent_p99_ms']:.3f}"
                      if "sent_p50_ms" in f else "– | – | –")
    for f in r.get("warmup", []):
        out.append(f"| {f['target']} (first, 3 s) | {f['p50_ms']:.3f} | {f['p90_ms']:.3f} | {f['p99_ms']:.3f} | {f['max_ms']:.1f} | {f['errors']} | {sent(f)} |")
    for f in r["fixed_rate"]:
        out.append(f"| {f['target']} | {f['p50_ms']:.3f} | {f['p90_ms']:.3f} | {f['p99_ms']:.3f} | {f['max_ms']:.1f} | {f['errors']} | {sent(f)} |")
    avg = lambda rows, k: sum(x[k] for x in rows) / len(rows)
    for label, p in (("from the planned time", ""), ("from the send", "sent_")):
        if f"{p}p50_ms" not in d[0]:
            continue
        out += ["", f"Added by Cognate, {label}: p50 **{avg(c, p + 'p50_ms') - avg(d, p + 'p50_ms'):.3f} ms**, p99 "
                f"**{avg(c, p + 'p99_ms') - avg(d, p + 'p99_ms'):.3f} ms** (noise of the direct runs: p50 "
                f"{abs(d[0][p + 'p50_ms'] - d[1][p + 'p50_ms']):.3f} ms, p99 {abs(d[0][p + 'p99_ms'] - d[1][p + 'p99_ms']):.3f} ms)."]
        if n:
            out += [f"Added by nginx's proxy_pass (given the same request) at the same rate, {label}: p50 "
                    f"{avg(n, p + 'p50_ms') - avg(d, p + 'p50_ms'):.3f} ms, p99 {avg(n, p + 'p99_ms') - avg(d, p + 'p99_ms'):.3f} ms."]
    return "\n".join(out)


if __name__ == "__main__":
    main()
