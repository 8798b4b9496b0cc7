"""The API gateway (issue 5) with real tokens minted by Cognate's own pool through boto3 sign-in,
a real upstream (an echo server in this process) and plain HTTP callers (requests)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests

from cognate_helpers import ACCESS_KEY_ID, GOOD_PASSWORD, SECRET_ACCESS_KEY, cognate_bin, free_port, unique
from conftest import _client, launch_server


class Echo(BaseHTTPRequestHandler):
    """Answers with what it received: method, path, headers and the body's length."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        if self.path.startswith("/slow"):
            time.sleep(2)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("transfer-encoding") == "chunked":
            body = self._chunked()
            if body is None:
                return
        out = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_length": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.send_header("access-control-allow-origin", "https://upstream.example")
        self.end_headers()
        self.wfile.write(out)

    def _chunked(self):
        body = b""
        while True:
            size = self.rfile.readline()
            if not size:
                return None  # the sender gave up mid-body
            n = int(size.strip() or b"0", 16)
            if n == 0:
                self.rfile.readline()
                return body
            body += self.rfile.read(n)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


def definition(pool_id, client_id, endpoint, gw_port, up_port, dead_port, extra_routes=""):
    up = f"http://127.0.0.1:{up_port}"
    return f"""
apis:
  - name: tutorial
    kind: rest
    listen: 127.0.0.1:{gw_port}
    stages: [prod]
    authorizers:
      - name: users
        type: cognito
        pools: [{pool_id}]
      - name: web-only
        type: cognito
        pools: [{pool_id}]
        identity_validation_expression: "{client_id}"
      - name: others-only
        type: cognito
        pools: [{pool_id}]
        identity_validation_expression: "other-[a-z0-9]+"
    default_authorizer: users
    cors:
      allow_origins: ["https://app.example"]
      allow_methods: [GET, POST]
      allow_headers: [authorization, content-type]
      max_age: 600
    body_limit_bytes: 1024
    claim_headers:
      - header: x-user-sub
        claim: sub
    routes:
      - route: GET /users
        integration: {{type: http, url: "{up}/users"}}
      - route: POST /gates/control
        scopes: ["Admins-{client_id}"]
        integration: {{type: http, url: "{up}/gates/control"}}
      - route: POST /gates/status
        scopes: [aws.cognito.signin.user.admin]
        integration: {{type: http, url: "{up}/gates/status"}}
      - route: ANY /files/{{proxy+}}
        integration: {{type: http, url: "{up}/store/{{proxy}}"}}
      - route: GET /slow
        integration: {{type: http, url: "{up}/slow", timeout_ms: 300}}
      - route: GET /down
        integration: {{type: http, url: "http://127.0.0.1:{dead_port}/x"}}
      - route: GET /web-only
        authorizer: web-only
        integration: {{type: http, url: "{up}/web-only"}}
      - route: GET /others-only
        authorizer: others-only
        integration: {{type: http, url: "{up}/others-only"}}
      - route: GET /health
        authorizer: none
        integration:
          type: mock
          body: '{{"ok":true}}'
          headers: [{{name: content-type, value: application/json}}]
{extra_routes}
  - name: partner
    kind: http
    prefix: /partner
    authorizers:
      - name: jwt
        type: jwt
        issuer: {endpoint}/{pool_id}
        audience: [{client_id}]
      - name: strict
        type: jwt
        issuer: {endpoint}/{pool_id}
        audience: [{client_id}]
        reject_signed_out: true
    default_authorizer: jwt
    routes:
      - route: GET /items
        integration: {{type: http, url: "{up}/items"}}
      - route: GET /admin
        scopes: [partner/admin]
        integration: {{type: http, url: "{up}/admin"}}
      - route: GET /strict
        authorizer: strict
        integration: {{type: http, url: "{up}/strict"}}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("gateway")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    config = work / "cognate.yaml"
    config.write_text("apis: []\n")
    server = launch_server(workdir=str(work), extra_args=("--config", str(config)))
    idp = _client(server.endpoint, aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    pool = idp.create_user_pool(PoolName=unique("gw"))["UserPool"]
    client = idp.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName="web",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    ports = dict(gw_port=free_port(), up_port=upstream.server_address[1], dead_port=free_port())
    text = definition(pool["Id"], client["ClientId"], server.endpoint, **ports)
    config.write_text(text)
    apply = run_apply(server, config)
    assert apply.returncode == 0, apply.stderr
    yield {
        "server": server,
        "idp": idp,
        "pool": pool,
        "client": client,
        "config": config,
        "gw": f"http://127.0.0.1:{ports['gw_port']}",
        "ports": ports,
    }
    server.stop()
    upstream.shutdown()


def run_apply(server, path):
    e = dict(os.environ, COGNATE_ACCESS_KEY_ID=ACCESS_KEY_ID, COGNATE_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
    return subprocess.run(
        [str(cognate_bin()), "apply", "--endpoint", server.endpoint, str(path)],
        capture_output=True,
        text=True,
        env=e,
        timeout=30,
    )


def sign_in(env, username=None):
    idp, pool, client = env["idp"], env["pool"], env["client"]
    username = username or unique("u")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True)
    out = idp.admin_initiate_auth(
        UserPoolId=pool["Id"],
        ClientId=client["ClientId"],
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": GOOD_PASSWORD},
    )["AuthenticationResult"]
    return out


@pytest.fixture(scope="module")
def tokens(env):
    return sign_in(env)


def unauthorized(res):
    assert res.status_code == 401, res.text
    assert res.json() == {"message": "Unauthorized"}


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def test_a_valid_id_token_reaches_the_upstream_with_exactly_its_claims(env, tokens):
    # Identity headers a caller sends are replaced by the gateway's (security checklist G18).
    forged = {"x-cognate-claims": '{"sub":"forged"}', "x-user-sub": "forged", "x-forwarded-proto": "https"}
    res = requests.get(env["gw"] + "/prod/users", headers={"Authorization": tokens["IdToken"], **forged})
    assert res.status_code == 200, res.text
    seen = res.json()
    assert seen["path"] == "/users"
    assert json.loads(seen["headers"]["x-cognate-claims"]) == claims_of(tokens["IdToken"])
    assert seen["headers"]["x-user-sub"] == claims_of(tokens["IdToken"])["sub"]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    # With "Bearer " too.
    res = requests.get(env["gw"] + "/prod/users", headers={"Authorization": "Bearer " + tokens["IdToken"]})
    assert res.status_code == 200


def test_missing_and_unusable_tokens_are_401(env, tokens):
    url = env["gw"] + "/prod/users"
    unauthorized(requests.get(url))
    unauthorized(requests.get(url, headers={"Authorization": ""}))
    unauthorized(requests.get(url, headers={"Authorization": "not-a-jwt"}))
    # REST without scopes wants an ID token: the access token is refused.
    unauthorized(requests.get(url, headers={"Authorization": tokens["AccessToken"]}))
    assert requests.get(url).headers["x-amzn-ErrorType"] == "UnauthorizedException"


def test_identity_validation_expression_matches_the_id_tokens_aud(env, tokens):
    ok = requests.get(env["gw"] + "/prod/web-only", headers={"Authorization": tokens["IdToken"]})
    assert ok.status_code == 200, ok.text
    unauthorized(requests.get(env["gw"] + "/prod/others-only", headers={"Authorization": tokens["IdToken"]}))


def test_tampered_alg_none_and_hs256_tokens_are_401(env, tokens):
    url = env["gw"] + "/prod/users"
    # The genuine token first, so the gateway remembers it as verified: a forged payload under
    # its signature must still be refused.
    assert requests.get(url, headers={"Authorization": tokens["IdToken"]}).status_code == 200
    header, payload, sig = tokens["IdToken"].split(".")
    claims = claims_of(tokens["IdToken"])
    forged = dict(claims, sub="someone-else")
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    unauthorized(requests.get(url, headers={"Authorization": f"{header}.{enc(forged)}.{sig}"}))
    kid = jwt.get_unverified_header(tokens["IdToken"])["kid"]
    none = f"{enc({'alg': 'none', 'kid': kid})}.{payload}."
    unauthorized(requests.get(url, headers={"Authorization": none}))
    hs = jwt.encode(claims, "a-shared-secret-of-enough-length-for-hs256", algorithm="HS256", headers={"kid": kid})
    unauthorized(requests.get(url, headers={"Authorization": hs}))


def test_tokens_of_another_pool_are_401(env):
    idp = env["idp"]
    other = idp.create_user_pool(PoolName=unique("other"))["UserPool"]
    client = idp.create_user_pool_client(
        UserPoolId=other["Id"], ClientName="x", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]
    idp.admin_create_user(UserPoolId=other["Id"], Username="eve", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=other["Id"], Username="eve", Password=GOOD_PASSWORD, Permanent=True)
    out = idp.admin_initiate_auth(
        UserPoolId=other["Id"],
        ClientId=client["ClientId"],
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "eve", "PASSWORD": GOOD_PASSWORD},
    )["AuthenticationResult"]
    unauthorized(requests.get(env["gw"] + "/prod/users", headers={"Authorization": out["IdToken"]}))


def test_scope_protected_routes(env, tokens):
    control = env["gw"] + "/prod/gates/control"
    status = env["gw"] + "/prod/gates/status"
    # The tutorials' Admins-{clientId} scope is not in a plain user's token: 401 (REST).
    unauthorized(requests.post(control, headers={"Authorization": tokens["AccessToken"]}))
    unauthorized(requests.post(control, headers={"Authorization": tokens["IdToken"]}))
    # The same access token carries aws.cognito.signin.user.admin.
    res = requests.post(status, headers={"Authorization": tokens["AccessToken"]})
    assert res.status_code == 200, res.text
    # An ID token has no scopes.
    unauthorized(requests.post(status, headers={"Authorization": tokens["IdToken"]}))


def test_greedy_path_forwards_everything(env, tokens):
    res = requests.post(
        env["gw"] + "/prod/files/a/b%20c/d.txt?x=1&y=two",
        data=b"z" * 512,
        headers={"Authorization": tokens["IdToken"], "Connection": "keep-alive, x-drop", "x-drop": "1", "x-keep": "2"},
    )
    assert res.status_code == 200, res.text
    seen = res.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/store/a/b%20c/d.txt?x=1&y=two"
    assert seen["body_length"] == 512
    assert "x-drop" not in seen["headers"] and seen["headers"]["x-keep"] == "2"
    assert seen["headers"]["x-forwarded-proto"] == "http"


def test_body_limit_is_413(env, tokens):
    res = requests.post(env["gw"] + "/prod/files/x", data=b"z" * 2048, headers={"Authorization": tokens["IdToken"]})
    assert res.status_code == 413
    assert res.json() == {"message": "Request Too Long"}

    def chunks():
        for _ in range(4):
            yield b"z" * 512

    # Without a length: streamed, and cut off at the limit (the upstream, still reading, never
    # gets more than the limit), answered 413.
    res = requests.post(env["gw"] + "/prod/files/x", data=chunks(), headers={"Authorization": tokens["IdToken"]})
    assert res.status_code == 413, res.text
    # Under the limit, a chunked body arrives whole.
    res = requests.post(env["gw"] + "/prod/files/x", data=iter([b"a" * 300, b"b" * 300]), headers={"Authorization": tokens["IdToken"]})
    assert res.status_code == 200 and res.json()["body_length"] == 600, res.text


def test_unknown_routes_answer_as_rest_and_http_apis_do(env):
    for path in ("/prod/nothing", "/beta/users", "/"):
        res = requests.get(env["gw"] + path)
        assert res.status_code == 403, path
        assert res.json() == {"message": "Missing Authentication Token"}
    # A known path with an unknown method, on REST.
    res = requests.delete(env["gw"] + "/prod/users")
    assert res.status_code == 403
    res = requests.get(env["server"].endpoint + "/partner/nothing")
    assert res.status_code == 404
    assert res.json() == {"message": "Not Found"}


def test_mock_route_without_authorizer(env):
    res = requests.get(env["gw"] + "/prod/health")
    assert res.status_code == 200 and res.json() == {"ok": True}


def test_upstream_failures_are_502_and_504(env, tokens):
    auth = {"Authorization": tokens["IdToken"]}
    res = requests.get(env["gw"] + "/prod/down", headers=auth)
    assert res.status_code == 502
    assert res.json() == {"message": "Internal server error"}
    started = time.monotonic()
    res = requests.get(env["gw"] + "/prod/slow", headers=auth)
    assert res.status_code == 504
    assert res.json() == {"message": "Endpoint request timed out"}
    assert time.monotonic() - started < 1.5


def test_cors_preflight_and_headers_on_every_response(env, tokens):
    origin = {"Origin": "https://app.example"}
    res = requests.options(
        env["gw"] + "/prod/users",
        headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
    )
    assert res.status_code == 204
    assert res.headers["access-control-allow-origin"] == "https://app.example"
    assert res.headers["access-control-allow-methods"] == "GET,POST"
    assert res.headers["access-control-max-age"] == "600"
    # A refusal carries them too; the upstream's own CORS headers are replaced.
    res = requests.get(env["gw"] + "/prod/users", headers=origin)
    assert res.status_code == 401
    assert res.headers["access-control-allow-origin"] == "https://app.example"
    res = requests.get(env["gw"] + "/prod/users", headers={**origin, "Authorization": tokens["IdToken"]})
    assert res.headers["access-control-allow-origin"] == "https://app.example"
    res = requests.get(env["gw"] + "/prod/users", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in res.headers


def test_jwt_authorizer_audience_and_scopes(env, tokens):
    base = env["server"].endpoint + "/partner"
    for token in (tokens["AccessToken"], tokens["IdToken"]):
        res = requests.get(base + "/items", headers={"Authorization": "Bearer " + token})
        assert res.status_code == 200, res.text
    res = requests.get(base + "/items")
    assert res.status_code == 401 and res.json() == {"message": "Unauthorized"}
    assert "invalid_token" in res.headers["www-authenticate"]
    res = requests.get(base + "/admin", headers={"Authorization": "Bearer " + tokens["AccessToken"]})
    assert res.status_code == 403
    assert res.json() == {"message": "Forbidden"}
    assert "insufficient_scope" in res.headers["www-authenticate"]


def test_opt_in_check_refuses_signed_out_sessions(env):
    t = sign_in(env)
    url = env["server"].endpoint + "/partner/strict"
    auth = {"Authorization": "Bearer " + t["AccessToken"]}
    assert requests.get(url, headers=auth).status_code == 200
    env["idp"].global_sign_out(AccessToken=t["AccessToken"])
    deadline = time.monotonic() + 1.5
    while requests.get(url, headers=auth).status_code == 200:
        assert time.monotonic() < deadline, "the signed-out token still passes after 1.5 s"
        time.sleep(0.1)
    unauthorized(requests.get(url, headers=auth))
    # Without the opt-in, API Gateway's behaviour: a signed-out token still passes until it expires.
    assert requests.get(env["server"].endpoint + "/partner/items", headers=auth).status_code == 200


def test_a_bad_file_is_refused_with_its_line_and_the_running_apis_stay(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = env["config"].read_text().replace("default_authorizer: users", "default_authorizer: nobody")
    bad.write_text(text)
    out = run_apply(env["server"], bad)
    assert out.returncode != 0
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "default_authorizer: nobody" in l)
    assert f"line {line}" in out.stderr and "nobody" in out.stderr, out.stderr
    bad.write_text("apis:\n  - name: x\n    kind: rest\n    listen: [oops\n")
    out = run_apply(env["server"], bad)
    assert out.returncode != 0 and "line" in out.stderr, out.stderr
    assert requests.get(env["gw"] + "/prod/health").status_code == 200


def test_sighup_applies_the_file_again(env):
    server, config = env["server"], env["config"]
    p = env["ports"]
    extra = """      - route: GET /extra
        authorizer: none
        integration: {type: mock, status: 201, body: added}
"""
    config.write_text(definition(env["pool"]["Id"], env["client"]["ClientId"], server.endpoint, extra_routes=extra, **p))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while requests.get(env["gw"] + "/prod/extra").status_code != 201:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)
    assert requests.get(env["gw"] + "/prod/extra").text == "added"
    # A broken file on SIGHUP: logged, the running APIs stay.
    config.write_text("apis: [broken\n")
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert requests.get(env["gw"] + "/prod/extra").status_code == 201
    assert "APIs not applied" in server.log_tail(200)


def test_apply_needs_a_signature(env):
    res = requests.post(env["server"].endpoint + "/_cognate/apply", data="apis: []\n")
    assert res.status_code == 400
    assert res.json()["__type"] == "MissingAuthenticationTokenException"
    assert requests.get(env["gw"] + "/prod/health").status_code == 200


def test_metrics_count_requests_rejections_and_upstream_latency(env, tokens):
    requests.get(env["gw"] + "/prod/users", headers={"Authorization": tokens["IdToken"]})
    requests.get(env["gw"] + "/prod/users")
    text = requests.get(env["server"].endpoint + "/metrics").text
    line = lambda prefix: next((l for l in text.splitlines() if l.startswith(prefix)), None)
    ok = line('gateway_requests_total{api="tutorial",route="GET /users",status="200"}')
    assert ok and float(ok.split()[-1]) >= 1, text
    denied = line('gateway_authorizer_rejections_total{api="tutorial",reason="no token"}')
    assert denied and float(denied.split()[-1]) >= 1, text
    assert line('gateway_upstream_duration_seconds_bucket{api="tutorial",route="GET /users"'), text
    # Never a token in the metrics.
    assert tokens["IdToken"] not in text


def test_every_request_leaves_an_access_log_line_without_the_token(env):
    fresh = sign_in(env)
    sub = claims_of(fresh["IdToken"])["sub"]
    ok = requests.get(env["gw"] + "/prod/users", headers={"Authorization": fresh["IdToken"]})
    assert ok.status_code == 200
    refused = requests.get(env["gw"] + "/prod/users", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401
    server = env["server"]

    def line_of(request_id):
        # Lines are written in batches at least every 50 ms.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(server.log_path, errors="replace") as f:
                found = [l for l in f if f'request_id="{request_id}"' in l]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no access-log line for {request_id}:\n{server.log_tail()}")

    [line] = line_of(ok.headers["x-amzn-RequestId"])
    for part in ("INFO gateway: gateway request", "method=GET", 'path="/prod/users"', 'api="tutorial"',
                 'stage="prod"', 'route="GET /users"', "status=200", f'sub="{sub}"', 'refused=""', "latency_ms="):
        assert part in line, (part, line)
    [line] = line_of(refused.headers["x-amzn-RequestId"])
    assert "status=401" in line and 'sub=""' in line and 'refused=""' not in line, line
    with open(server.log_path, errors="replace") as f:
        log = f.read()
    assert fresh["IdToken"] not in log and fresh["AccessToken"] not in log and "not-a-token" not in log


def test_dot_segments_never_reach_the_upstream(env, tokens):
    import http.client

    port = int(env["gw"].rsplit(":", 1)[1])
    for path in ("/prod/files/a/../../admin", "/prod/files/%2e%2e/secret"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path, headers={"Authorization": tokens["IdToken"]})
        res = conn.getresponse()
        body = res.read()
        assert res.status == 403, (path, body)
        assert json.loads(body) == {"message": "Missing Authentication Token"}
        conn.close()


def test_path_variants_never_skip_the_authorizer(env):
    """Security checklist G16: spellings of a protected path (doubled slashes, dot segments,
    case, `;` parameters, encoded slashes and dots) either find no route (403) or the route's own
    authorizer (401) — never the upstream without a token."""
    import http.client

    port = env["ports"]["gw_port"]
    variants = [
        "/prod//users", "/prod/./users", "/prod/x/../users", "/prod/%2e/users", "/prod/USERS",
        "/prod/users;admin", "/prod/users/", "/prod/users%2f", "/prod/%75sers", "/prod/health/../users",
        "/prod/files/..%2f..%2fusers", "//prod/users", "/PROD/users",
    ]
    for path in variants:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        res = conn.getresponse()
        body = json.loads(res.read())
        conn.close()
        assert (res.status, body) in ((401, {"message": "Unauthorized"}), (403, {"message": "Missing Authentication Token"})), (path, res.status, body)


def _exchange(port, data, timeout=5):
    """Sends `data` as it is on a new connection and returns every byte the gateway sends back
    until it closes the connection, with whether it did."""
    import socket

    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got, closed = b"", False
    try:
        # The gateway may answer and close before it has read everything (a 431).
        s.sendall(data)
    except OSError:
        pass
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        closed = True  # closed with our unread bytes still in its buffer
    except socket.timeout:
        pass
    s.close()
    return got, closed


def test_ambiguous_framing_is_refused_or_read_one_way_only(env, tokens):
    """Security checklist G17. Two different Content-Lengths, and an obsolete folded header
    line: 400 and the connection closed. Content-Length beside Transfer-Encoding: chunked: the
    framing hyper settles before the gateway sees the request is RFC 9112's (the chunked coding
    wins, Content-Length is dropped) and the connection is closed after the answer, so the body
    is read one way, reaches the upstream framed one way, and nothing behind it is read as a
    request. (The checklist asks 400 for this case too; see docs/security.md.)"""
    port = env["ports"]["gw_port"]
    head = f"POST /prod/files/smuggle HTTP/1.1\r\nHost: gw\r\nAuthorization: {tokens['IdToken']}\r\n"
    smuggled = b"GET /prod/health HTTP/1.1\r\nHost: gw\r\n\r\n"

    got, closed = _exchange(port, (head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n").encode() + b"hello!" + smuggled)
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    assert got.count(b"HTTP/1.1 ") == 1 and closed, got

    got, closed = _exchange(port, (head + "Content-Length: 0\r\nX-Folded: a\r\n b\r\n\r\n").encode() + smuggled)
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    assert got.count(b"HTTP/1.1 ") == 1 and closed, got

    for te_first in (False, True):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        framing = ["Content-Length: 3", "Transfer-Encoding: chunked"]
        if te_first:
            framing.reverse()
        got, closed = _exchange(port, (head + "\r\n".join(framing) + "\r\n\r\n").encode() + body + smuggled)
        assert got.startswith(b"HTTP/1.1 200 "), got[:200]
        assert got.count(b"HTTP/1.1 ") == 1 and closed, got
        assert b'{"ok":true}' not in got
        seen = json.loads(got.split(b"\r\n\r\n", 1)[1])
        assert seen["body_length"] == 5, seen
        assert "content-length" not in seen["headers"] or "transfer-encoding" not in seen["headers"], seen


def test_oversized_and_deeply_nested_tokens_are_refused(env):
    """Security checklist G15: a 9 KiB token, a 64 KiB one and a header nested 100,000 deep
    are 401; a 1 MiB header is 431 before any of it is parsed."""
    url = env["gw"] + "/prod/users"
    unauthorized(requests.get(url, headers={"Authorization": "e" * (9 * 1024)}))
    unauthorized(requests.get(url, headers={"Authorization": "Bearer " + "eyJ" * (22 * 1024)}))
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    deep = enc(b"[" * 100_000) + "." + enc(b"{}") + ".c2ln"
    unauthorized(requests.get(url, headers={"Authorization": deep}))
    port = env["ports"]["gw_port"]
    got, closed = _exchange(port, b"GET /prod/users HTTP/1.1\r\nHost: gw\r\nAuthorization: " + b"e" * (1 << 20) + b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 431 "), got[:200]
    assert closed


def test_zz_expired_tokens_are_401(env, tokens):
    # Last in this module: moves this server's clock past the tokens' hour.
    requests.post(env["server"].endpoint + "/_cognate/clock/advance", json={"seconds": 3700}).raise_for_status()
    unauthorized(requests.get(env["gw"] + "/prod/users", headers={"Authorization": tokens["IdToken"]}))
    res = requests.get(env["server"].endpoint + "/partner/items", headers={"Authorization": "Bearer " + tokens["AccessToken"]})
    assert res.status_code == 401
    assert "expired" in res.headers["www-authenticate"]
