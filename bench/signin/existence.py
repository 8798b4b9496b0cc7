"""Does a refused sign-in take as long for a user who does not exist as for a wrong password?

Security checklist A1 (issue 4, item 7): with PreventUserExistenceErrors ENABLED, an unknown
user must look exactly like a wrong password, in answer and in timing. This measures the two
latency distributions side by side: pairs of USER_PASSWORD_AUTH calls in random order, one with
a wrong password for an existing user, one for a username that does not exist, over one kept-
alive connection. It reports both distributions and a two-sample Kolmogorov–Smirnov test.

    python3 bench/signin/existence.py --bin target/release/cognate [--samples 1000]
        [--hashing default|development] [--database postgres://…/test] [--flow srp]

`--flow srp` signs in with pycognito's SRP client instead (both calls, timed together).
bench/signin/existence.sh runs every row into a venv of its own (boto3, requests, pycognito).

Each existing user takes at most four wrong passwords, below the lockout threshold of five, so
every refusal is the ordinary one. `--again` times the second of two attempts at one name sent
back to back instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

JSON_CT = "application/x-amz-json-1.1"
KEY, SECRET = "AKIDCOGNATEBENCH", "cognate-bench-secret"
PASSWORD = "Correct-Horse-9battery"
WRONG_PER_USER = 4


def ks_two_sample(a: list[float], b: list[float]) -> tuple[float, float]:
    """The Kolmogorov–Smirnov statistic D and its asymptotic p-value."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        x = min(a[i], b[j])
        while i < len(a) and a[i] <= x:
            i += 1
        while j < len(b) and b[j] <= x:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    n = len(a) * len(b) / (len(a) + len(b))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.2:  # the series does not converge there; the p-value is 1 to many digits
        return d, 1.0
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def summary(xs: list[float]) -> dict:
    s = sorted(xs)
    q = lambda f: s[min(len(s) - 1, int(f * len(s)))]  # noqa: E731
    return {
        "n": len(s),
        "mean_ms": round(statistics.fmean(s), 3),
        "p10_ms": round(q(0.10), 3),
        "p50_ms": round(q(0.50), 3),
        "p90_ms": round(q(0.90), 3),
        "p99_ms": round(q(0.99), 3),
    }


class Server:
    def __init__(self, binary: str, hashing: str, database: str | None):
        self.work = tempfile.mkdtemp(prefix="cognate-existence-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        args = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", self.work,
                "--password-hashing", hashing]
        if database:
            args += ["--database", database]
        env = dict(os.environ, COGNATE_ACCESS_KEY_ID=KEY, COGNATE_SECRET_ACCESS_KEY=SECRET)
        self.log = open(os.path.join(self.work, "server.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.endpoint + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit("the server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def setup(endpoint: str, users: int):
    import boto3

    idp = boto3.client("cognito-idp", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    pool = idp.create_user_pool(PoolName="existence")["UserPool"]["Id"]
    client = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="app", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH",
                                                              "ALLOW_REFRESH_TOKEN_AUTH"],
        PreventUserExistenceErrors="ENABLED")["UserPoolClient"]["ClientId"]
    names = []
    for i in range(users):
        name = f"user{i:05d}"
        idp.admin_create_user(UserPoolId=pool, Username=name, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool, Username=name, Password=PASSWORD,
                                    Permanent=True)
        names.append(name)
    return pool, client, names


def srp_sign_in(endpoint: str, pool: str, client: str):
    """USER_SRP_AUTH with a wrong password through pycognito, timed from the first call to the
    refusal of the second."""
    import boto3
    import botocore
    from botocore.config import Config
    from pycognito.aws_srp import AWSSRP

    idp = boto3.client("cognito-idp", endpoint_url=endpoint, region_name="us-east-1",
                       config=Config(signature_version=botocore.UNSIGNED))

    def sign_in(username: str) -> float:
        srp = AWSSRP(username=username, password="Wrong-Horse-9", pool_id=pool,
                     client_id=client, client=idp)
        t0 = time.perf_counter()
        try:
            srp.authenticate_user()
        except idp.exceptions.NotAuthorizedException as e:
            dt = (time.perf_counter() - t0) * 1000
            if e.response["Error"]["Message"] != "Incorrect username or password.":
                raise SystemExit(f"unexpected answer for {username}: {e}")
            return dt
        raise SystemExit(f"{username} signed in with a wrong password")

    return sign_in


def password_sign_in(endpoint: str, client: str):
    """USER_PASSWORD_AUTH with a wrong password over one kept-alive connection."""
    http = requests.Session()
    headers = {"Content-Type": JSON_CT,
               "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth"}

    def sign_in(username: str) -> float:
        body = json.dumps({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client,
                           "AuthParameters": {"USERNAME": username, "PASSWORD": "Wrong-Horse-9"}})
        t0 = time.perf_counter()
        r = http.post(endpoint, data=body, headers=headers)
        dt = (time.perf_counter() - t0) * 1000
        err = r.json()
        if r.status_code != 400 or err.get("__type") != "NotAuthorizedException" \
                or err.get("message") != "Incorrect username or password.":
            raise SystemExit(f"unexpected answer for {username}: {r.status_code} {r.text}")
        return dt

    return sign_in


def measure(sign_in, names: list[str], samples: int, seed: int, again: bool):
    """`again`: each sample is the second of two attempts at one name sent back to back (the
    first waits for nothing a real user's failure leaves behind, the second might)."""
    rng = random.Random(seed)
    spare, names = names[-5:], names[:-5]
    per_user = WRONG_PER_USER // 2 if again else WRONG_PER_USER
    existing = [n for n in names for _ in range(per_user)]
    rng.shuffle(existing)
    # Warm the connection, the statement caches and the hashing threads alike for both paths.
    for n in spare:
        sign_in(n)
        sign_in(f"nobody-{uuid.uuid4().hex[:8]}")
    wrong, unknown = [], []
    for i in range(samples):
        pair = [("wrong", existing[i]), ("unknown", f"user{rng.randrange(10**9):09d}x")]
        rng.shuffle(pair)
        for kind, name in pair:
            if again:
                sign_in(name)
            (wrong if kind == "wrong" else unknown).append(sign_in(name))
    return wrong, unknown


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/cognate")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--hashing", default="default", choices=["default", "development"])
    ap.add_argument("--database", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flow", default="password", choices=["password", "srp"])
    ap.add_argument("--again", action="store_true")
    a = ap.parse_args()
    per_user = WRONG_PER_USER // 2 if a.again else WRONG_PER_USER
    users = math.ceil(a.samples / per_user) + 5
    server = Server(a.bin, a.hashing, a.database)
    try:
        pool, client, names = setup(server.endpoint, users)
        if a.flow == "srp":
            sign_in = srp_sign_in(server.endpoint, pool, client)
        else:
            sign_in = password_sign_in(server.endpoint, client)
        wrong, unknown = measure(sign_in, names, a.samples, a.seed, a.again)
    finally:
        server.stop()
    d, p = ks_two_sample(wrong, unknown)
    out = {
        "flow": a.flow + (" (second of two)" if a.again else ""),
        "hashing": a.hashing,
        "store": "postgres" if a.database else "sqlite",
        "wrong_password": summary(wrong),
        "unknown_user": summary(unknown),
        "median_difference_ms": round(statistics.median(wrong) - statistics.median(unknown), 3),
        "ks_d": round(d, 4),
        "ks_p": round(p, 4),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
