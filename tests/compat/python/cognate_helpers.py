"""Shared helpers for the Cognate compatibility suite.

Everything here talks to a running `cognate serve` over HTTP, either through the
unmodified boto3 / aws CLI clients or through raw requests signed by botocore's own
SigV4 signer (never a hand-rolled one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from botocore.auth import SigV4Auth
from botocore.config import Config
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY_ID = "AKIDCOGNATETEST"
SECRET_ACCESS_KEY = "cognate-test-secret-key"
REGION = "us-east-1"
TARGET_PREFIX = "AWSCognitoIdentityProviderService."
JSON_CT = "application/x-amz-json-1.1"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
POOL_ID_RE = re.compile(r"^[\w-]+_[0-9a-zA-Z]+$")
CLIENT_ID_RE = re.compile(r"^[\w+]+$")

# A password that satisfies every rule of Cognito's default policy.
GOOD_PASSWORD = "Correct-Horse-9battery"

# Every request is sent exactly once: a test that expects an error sees the first answer,
# and a 5xx from the server is not hidden behind retries.
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=10, read_timeout=60)

REPO_ROOT = Path(__file__).resolve().parents[3]


def admin_and_public(endpoint: str, config: Config = NO_RETRY):
    """boto3 cognito-idp clients for a server of the test's own: one signing with the admin
    credentials, one sending unsigned requests as apps do."""
    import boto3
    import botocore

    kw = dict(endpoint_url=endpoint, region_name=REGION)
    admin = boto3.session.Session().client(
        "cognito-idp", aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
        config=config, **kw)
    public = boto3.session.Session().client(
        "cognito-idp", config=config.merge(Config(signature_version=botocore.UNSIGNED)), **kw)
    return admin, public


def unique(prefix: str = "t") -> str:
    """A short unique name usable as pool/client/group/user name."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cognate_bin() -> Path:
    raw = os.environ.get("COGNATE_BIN", "target/debug/cognate")
    p = Path(raw)
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """SECRET_HASH = Base64(HMAC-SHA256(key=client secret, msg=username + client id))."""
    digest = hmac.new(
        client_secret.encode("utf-8"),
        (username + client_id).encode("utf-8"),
        hashlib.sha256,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def attrs_to_dict(attributes) -> dict:
    return {a["Name"]: a.get("Value") for a in (attributes or [])}


def error_code(exc) -> str:
    return exc.response["Error"]["Code"]


def http_status(exc) -> int:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------------------
# Raw requests (signed with botocore's SigV4Auth, or unsigned)
# ---------------------------------------------------------------------------

def raw_call(
    endpoint: str,
    target: str,
    body,
    *,
    sign: bool = True,
    access_key: str = ACCESS_KEY_ID,
    secret_key: str = SECRET_ACCESS_KEY,
    region: str = REGION,
    headers: dict | None = None,
    unsigned_headers: dict | None = None,
    clock=None,
) -> requests.Response:
    """POST / with X-Amz-Target, optionally signed by botocore's SigV4Auth.

    `body` may be bytes/str (sent verbatim) or a JSON-serialisable object.
    `target` is the full X-Amz-Target value if it contains a '.', else an action
    name that gets the AWSCognitoIdentityProviderService. prefix.
    `unsigned_headers` are added after signing (not covered by the signature).
    `clock` (callable returning a naive UTC datetime) replaces botocore's notion of
    "now" while signing, to produce a stale or future X-Amz-Date with the real signer.
    """
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = json.dumps(body).encode("utf-8")
    full_target = target if "." in target else TARGET_PREFIX + target
    hdrs = {"Content-Type": JSON_CT, "X-Amz-Target": full_target}
    if headers:
        hdrs.update(headers)
    url = endpoint.rstrip("/") + "/"
    req = AWSRequest(method="POST", url=url, data=data, headers=hdrs)
    if sign:
        signer = SigV4Auth(Credentials(access_key, secret_key), "cognito-idp", region)
        if clock is None:
            signer.add_auth(req)
        else:
            import botocore.auth as bauth

            original = bauth.get_current_datetime
            bauth.get_current_datetime = lambda *a, **k: clock()
            try:
                signer.add_auth(req)
            finally:
                bauth.get_current_datetime = original
    prepared = req.prepare()
    final_headers = dict(prepared.headers)
    if unsigned_headers:
        # added after signing, the way SDKs add amz-sdk-invocation-id / amz-sdk-request
        final_headers.update(unsigned_headers)
    return requests.post(prepared.url, data=prepared.body, headers=final_headers, timeout=30)


def assert_error_response(resp: requests.Response, expected_type: str, status: int = 400):
    """Check the AWS JSON 1.1 error envelope: status, body __type/message, headers."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    # clients strip an optional namespace prefix ("...#Name")
    assert body["__type"].split("#")[-1] == expected_type, body
    assert isinstance(body.get("message", body.get("Message")), str), body
    err_type = resp.headers.get("x-amzn-ErrorType")
    assert err_type is not None, dict(resp.headers)
    assert err_type.split(":")[0].split("#")[-1] == expected_type, err_type
    assert resp.headers.get("x-amzn-RequestId"), dict(resp.headers)
    return body


# ---------------------------------------------------------------------------
# Dev outbox
# ---------------------------------------------------------------------------

def outbox(endpoint: str, pool_id: str, username: str) -> list[dict]:
    r = requests.get(
        endpoint + "/_cognate/messages",
        params={"pool_id": pool_id, "username": username},
        timeout=10,
    )
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body.get("messages"), list), body
    return body["messages"]


def wait_for_messages(endpoint, pool_id, username, kind, count=1, timeout=10.0) -> list[dict]:
    """Poll the outbox until at least `count` messages of `kind` exist; return them oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = [m for m in outbox(endpoint, pool_id, username) if m.get("kind") == kind]
        if len(msgs) >= count:
            return msgs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"expected {count} {kind!r} message(s) for {username} in {pool_id}, "
                f"outbox has: {outbox(endpoint, pool_id, username)!r}"
            )
        time.sleep(0.1)


def latest_code(endpoint, pool_id, username, kind="signup", count=1) -> str:
    msgs = wait_for_messages(endpoint, pool_id, username, kind, count=count)
    code = msgs[-1]["code"]
    assert isinstance(code, str) and code, msgs[-1]
    return code


def expire_codes(endpoint, pool_id, username):
    r = requests.post(
        endpoint + "/_cognate/expire_codes",
        json={"pool_id": pool_id, "username": username},
        timeout=10,
    )
    assert 200 <= r.status_code < 300, (r.status_code, r.text)
    return r


# ---------------------------------------------------------------------------
# aws CLI
# ---------------------------------------------------------------------------

def aws_executable() -> str:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return str(candidate)
    import shutil

    found = shutil.which("aws")
    if not found:
        raise RuntimeError("aws CLI not found; install tests/compat/requirements.txt")
    return found


class CliError(Exception):
    def __init__(self, returncode, stdout, stderr, args):
        super().__init__(f"aws {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def cli_env(tmpdir: str, access_key=ACCESS_KEY_ID, secret_key=SECRET_ACCESS_KEY) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    empty = os.path.join(tmpdir, "empty-aws-config")
    Path(empty).touch()
    env.update(
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY=secret_key,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=empty,
        AWS_SHARED_CREDENTIALS_FILE=empty,
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    return env


def run_cli(endpoint: str, env: dict, *args: str, check: bool = True):
    """Run `aws cognito-idp <args> --endpoint-url E --output json`; return parsed JSON (or None)."""
    argv = [aws_executable(), "cognito-idp", *args, "--endpoint-url", endpoint, "--output", "json"]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        err = CliError(proc.returncode, proc.stdout, proc.stderr, list(args))
        if check:
            raise err
        return err
    out = proc.stdout.strip()
    return json.loads(out) if out else None


def apply_mock_api(endpoint: str, config: Path, pool_id: str, prefix: str = "/api") -> str:
    """Writes to `config` an API under `prefix` whose `GET /items` (a fixed `ok`) needs a token of
    `pool_id` (a Cognito authorizer), applies it with `cognate apply`, and returns the route's
    URL (stage `prod`)."""
    config.write_text(f"""
apis:
  - name: api
    kind: rest
    prefix: {prefix}
    stages: [prod]
    authorizers:
      - name: users
        type: cognito
        pools: [{pool_id}]
    default_authorizer: users
    routes:
      - route: GET /items
        integration: {{type: mock, body: 'ok'}}
""")
    applied = apply_file(endpoint, config)
    assert applied.returncode == 0, applied.stderr
    return f"{endpoint}{prefix}/prod/items"


def apply_file(endpoint: str, config: Path) -> subprocess.CompletedProcess:
    """`cognate apply` of `config` to the server at `endpoint`, signed with the test admin key."""
    env = dict(os.environ, COGNATE_ACCESS_KEY_ID=ACCESS_KEY_ID, COGNATE_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
    return subprocess.run([str(cognate_bin()), "apply", "--endpoint", endpoint, str(config)],
                          capture_output=True, text=True, env=env, timeout=30)


def wrong_passwords_at_once(attempt, n: int = 50) -> list[str]:
    """Runs `attempt(i)` for every i below `n` at once and returns each one's answer: the error
    message, or "signed in". The first lockout lasts one second, so all of them must arrive
    inside it for the count to mean anything; that is checked here."""
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    def answer(i):
        try:
            attempt(i)
        except ClientError as e:
            return e.response["Error"]["Message"]
        return "signed in"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(answer, range(n)))
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the {n} guesses took {elapsed:.2f} s"
    return answers


def at_once(*calls, answer=error_code):
    """Runs every call at once (each in its own thread, started together); returns each one's
    answer: `answer` of its error (by default its code), or "ok"."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from botocore.exceptions import ClientError

    start = Barrier(len(calls))

    def run(call):
        start.wait()
        try:
            call()
        except ClientError as e:
            return answer(e)
        return "ok"

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))
