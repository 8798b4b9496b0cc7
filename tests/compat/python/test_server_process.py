"""The server process itself: persistence in --data-dir across restarts, SIGTERM, and
SigV4 details that real HTTP stacks produce (chunked bodies, header whitespace)."""

import os
import shutil
import tempfile

import boto3
import botocore
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import launch_server
from cognate_helpers import (
    ACCESS_KEY_ID,
    GOOD_PASSWORD,
    JSON_CT,
    NO_RETRY,
    SECRET_ACCESS_KEY,
    TARGET_PREFIX,
    latest_code,
    secret_hash,
    unique,
)


def _client(endpoint):
    return boto3.session.Session().client(
        "cognito-idp", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, config=NO_RETRY,
    )


def test_data_survives_restart():
    workdir = tempfile.mkdtemp(prefix="cognate-restart-")
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir)
    first = launch_server(data_dir=data_dir, workdir=workdir)
    try:
        idp = _client(first.endpoint)
        pool = idp.create_user_pool(PoolName=unique("persist"), AutoVerifiedAttributes=["email"])["UserPool"]
        client = idp.create_user_pool_client(UserPoolId=pool["Id"], ClientName="c", GenerateSecret=True)[
            "UserPoolClient"
        ]
        idp.create_group(UserPoolId=pool["Id"], GroupName="Admins", Precedence=0)
        idp.admin_create_user(UserPoolId=pool["Id"], Username="keeper", MessageAction="SUPPRESS")
        idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username="keeper", GroupName="Admins")
        unsigned = boto3.session.Session().client(
            "cognito-idp", endpoint_url=first.endpoint, region_name="us-east-1",
            config=NO_RETRY.merge(Config(signature_version=botocore.UNSIGNED)),
        )
        sh = secret_hash("pending", client["ClientId"], client["ClientSecret"])
        unsigned.sign_up(
            ClientId=client["ClientId"], Username="pending", Password=GOOD_PASSWORD, SecretHash=sh,
            UserAttributes=[{"Name": "email", "Value": "pending@example.com"}],
        )
        code = latest_code(first.endpoint, pool["Id"], "pending")
    finally:
        rc = first.stop()
    assert rc is not None  # exited after SIGTERM within the timeout

    second = launch_server(data_dir=data_dir, workdir=workdir)
    try:
        idp = _client(second.endpoint)
        assert idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["Name"] == pool["Name"]
        desc = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])["UserPoolClient"]
        assert desc["ClientSecret"] == client["ClientSecret"]
        groups = idp.admin_list_groups_for_user(UserPoolId=pool["Id"], Username="keeper")["Groups"]
        assert [g["GroupName"] for g in groups] == ["Admins"]
        # a code issued before the restart still confirms the user after it
        unsigned = boto3.session.Session().client(
            "cognito-idp", endpoint_url=second.endpoint, region_name="us-east-1",
            config=NO_RETRY.merge(Config(signature_version=botocore.UNSIGNED)),
        )
        unsigned.confirm_sign_up(ClientId=client["ClientId"], Username="pending", ConfirmationCode=code, SecretHash=sh)
        assert idp.admin_get_user(UserPoolId=pool["Id"], Username="pending")["UserStatus"] == "CONFIRMED"
    finally:
        second.stop()
        if not os.environ.get("COGNATE_COMPAT_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def test_a_backup_of_a_running_server_restores_users_keys_and_revocations():
    """Security checklist R9: `cognate backup` copies a running server's database and master key;
    a server started from the copy has the users, clients and keys of the moment of the backup
    (nothing written after it), verifies tokens issued before it, still refuses a refresh token
    revoked before it, and can open the SRP verifiers sealed with the master key."""
    import stat
    import subprocess

    import jwt
    from pycognito.aws_srp import AWSSRP

    from cognate_helpers import cognate_bin

    workdir = tempfile.mkdtemp(prefix="cognate-backup-")
    data_dir, copy_dir = os.path.join(workdir, "data"), os.path.join(workdir, "copy")
    os.makedirs(data_dir)
    flows = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    # One issuer for both servers (tokens name it; by default it is the listen address).
    issuer = {"COGNATE_ISSUER_BASE": "https://idp.example.test"}
    first = launch_server(data_dir=data_dir, workdir=workdir, extra_env=issuer)
    try:
        idp = _client(first.endpoint)
        pool = idp.create_user_pool(PoolName=unique("backup"))["UserPool"]
        client = idp.create_user_pool_client(UserPoolId=pool["Id"], ClientName="c", ExplicitAuthFlows=flows)[
            "UserPoolClient"]
        idp.admin_create_user(UserPoolId=pool["Id"], Username="kept", MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username="kept", Password=GOOD_PASSWORD, Permanent=True)

        def sign_in(idp):
            return idp.initiate_auth(ClientId=client["ClientId"], AuthFlow="USER_PASSWORD_AUTH",
                                     AuthParameters={"USERNAME": "kept", "PASSWORD": GOOD_PASSWORD})[
                "AuthenticationResult"]
        kept, revoked = sign_in(idp), sign_in(idp)
        idp.revoke_token(Token=revoked["RefreshToken"], ClientId=client["ClientId"])

        done = subprocess.run([str(cognate_bin()), "backup", "--data-dir", data_dir, copy_dir],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        # A second backup into the same place is refused; the first is left alone.
        again = subprocess.run([str(cognate_bin()), "backup", "--data-dir", data_dir, copy_dir],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode != 0 and "must not exist" in again.stderr, again.stderr
        # A master key that does not open the database makes no backup, and leaves nothing.
        import base64
        wrong = dict(os.environ, COGNATE_MASTER_KEY=base64.b64encode(os.urandom(32)).decode())
        other_dir = os.path.join(workdir, "wrong-key")
        refused = subprocess.run([str(cognate_bin()), "backup", "--data-dir", data_dir, other_dir],
                                 capture_output=True, text=True, timeout=60, env=wrong)
        assert refused.returncode != 0 and "master key" in refused.stderr, refused.stderr
        assert not os.path.exists(other_dir)
        idp.admin_create_user(UserPoolId=pool["Id"], Username="later", MessageAction="SUPPRESS")
    finally:
        first.stop()
    assert stat.S_IMODE(os.stat(copy_dir).st_mode) == 0o700
    for name in ("master.key", "cognate.db"):
        assert stat.S_IMODE(os.stat(os.path.join(copy_dir, name)).st_mode) == 0o600, name

    restored = launch_server(data_dir=copy_dir, workdir=workdir, extra_env=issuer)
    try:
        idp = _client(restored.endpoint)
        assert idp.admin_get_user(UserPoolId=pool["Id"], Username="kept")["UserStatus"] == "CONFIRMED"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            idp.admin_get_user(UserPoolId=pool["Id"], Username="later")
        assert e.value.response["Error"]["Code"] == "UserNotFoundException"
        # Tokens issued before the backup verify against the restored server's keys and work.
        jwks = jwt.PyJWKClient(f"{restored.endpoint}/{pool['Id']}/.well-known/jwks.json")
        claims = jwt.decode(kept["IdToken"], jwks.get_signing_key_from_jwt(kept["IdToken"]).key,
                            algorithms=["RS256"], audience=client["ClientId"])
        assert claims["cognito:username"] == "kept"
        assert claims["iss"] == f"https://idp.example.test/{pool['Id']}"
        assert idp.get_user(AccessToken=kept["AccessToken"])["Username"] == "kept"
        refreshed = idp.initiate_auth(ClientId=client["ClientId"], AuthFlow="REFRESH_TOKEN_AUTH",
                                      AuthParameters={"REFRESH_TOKEN": kept["RefreshToken"]})
        assert refreshed["AuthenticationResult"]["AccessToken"]
        with pytest.raises(botocore.exceptions.ClientError) as e:
            idp.initiate_auth(ClientId=client["ClientId"], AuthFlow="REFRESH_TOKEN_AUTH",
                              AuthParameters={"REFRESH_TOKEN": revoked["RefreshToken"]})
        assert e.value.response["Error"]["Code"] == "NotAuthorizedException"
        # SRP needs the verifier the master key sealed.
        srp = AWSSRP(username="kept", password=GOOD_PASSWORD, pool_id=pool["Id"],
                     client_id=client["ClientId"], client=idp)
        assert srp.authenticate_user()["AuthenticationResult"]["IdToken"]
    finally:
        restored.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_sigterm_stops_server_promptly():
    handle = launch_server()
    # stop() kills what SIGTERM has not stopped within the timeout (exit status -9): a clean
    # exit within 10 s is status 0 (security checklist R5: drain within 10 s).
    rc = handle.stop(timeout=10)
    assert rc == 0, f"not a clean exit within 10 s of SIGTERM (status {rc})"
    with pytest.raises(requests.ConnectionError):
        requests.get(handle.endpoint + "/health", timeout=2)


def test_sigterm_stops_within_its_drain_limit_despite_a_stalled_request():
    """Security checklist R5: a request that never completes (its body promised and never sent)
    does not keep the server from stopping: SIGTERM ends it within the 10 s drain limit."""
    import socket
    import time as clock

    handle = launch_server()
    host, port = handle.endpoint.split("//")[1].split(":")
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n"
                    b"X-Amz-Target: AWSCognitoIdentityProviderService.ListUserPools\r\n"
                    b"Content-Length: 1000\r\n\r\n{\"MaxResults\":")
    clock.sleep(0.5)
    started = clock.monotonic()
    rc = handle.stop(timeout=20)
    took = clock.monotonic() - started
    stalled.close()
    assert rc == 0, f"not a clean exit (status {rc}) after {took:.1f} s"
    assert took < 13, f"SIGTERM took {took:.1f} s with a stalled request"


def test_sigterm_lets_gateway_requests_in_flight_finish(tmp_path):
    """Security checklist R5 on an API's own address: a proxied request in flight when SIGTERM
    arrives is answered, then the server exits cleanly."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cognate_helpers import free_port

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            time.sleep(1.5)
            body = b"slow ok"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    gw = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "cognate.yaml"
    config.write_text(f"""
apis:
  - name: slow
    kind: rest
    listen: {gw.removeprefix("http://")}
    stages: [prod]
    routes:
      - route: GET /slow
        authorizer: none
        integration: {{type: http, url: "http://127.0.0.1:{upstream.server_address[1]}/slow"}}
""")
    handle = launch_server(workdir=str(tmp_path), extra_args=("--config", str(config)))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(gw + "/prod/nothing", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, handle.log_tail()
                time.sleep(0.1)
        got = {}

        def call():
            try:
                got["res"] = requests.get(gw + "/prod/slow", timeout=10)
            except requests.RequestException as e:
                got["error"] = e

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the request is with the upstream now
        rc = handle.stop(timeout=10)
        caller.join(10)
        assert "res" in got, f"the request in flight failed: {got.get('error')}"
        assert got["res"].status_code == 200 and got["res"].text == "slow ok"
        assert rc == 0, handle.log_tail()
    finally:
        upstream.shutdown()


def _signed(endpoint, target, body, headers=None):
    req = AWSRequest(
        method="POST", url=endpoint + "/", data=body,
        headers={"Content-Type": JSON_CT, "X-Amz-Target": TARGET_PREFIX + target, **(headers or {})},
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "cognito-idp", "us-east-1").add_auth(req)
    return req.prepare()


def test_chunked_body_is_accepted(endpoint):
    body = b'{"MaxResults": 3}'
    prepared = _signed(endpoint, "ListUserPools", body)
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}

    def gen():
        yield body[:5]
        yield body[5:]

    r = requests.post(prepared.url, data=gen(), headers=headers, timeout=30)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["UserPools"], list)


def test_signed_header_whitespace_is_canonicalised(endpoint):
    # SigV4 trims header values and collapses inner runs of spaces before signing;
    # the server must do the same with what arrives.
    prepared = _signed(
        endpoint, "ListUserPools", b'{"MaxResults": 3}',
        headers={"X-Amz-User-Agent": "aws-amplify/6.0    js   framework/0"},
    )
    assert "x-amz-user-agent" in prepared.headers["Authorization"]
    r = requests.post(prepared.url, data=prepared.body, headers=dict(prepared.headers), timeout=30)
    assert r.status_code == 200, r.text

