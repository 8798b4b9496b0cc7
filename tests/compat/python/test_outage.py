"""Security checklist R3 and R4 through the HTTP API: Cognate on PostgreSQL behind a TCP relay
that goes silent (a link that stops passing bytes without a reset, the case a client would
otherwise wait out for minutes). While it is silent, sign-ins fail within about the store's
1 s deadline with a retryable 500 InternalErrorException, and the gateway goes on authorizing
from the keys it holds: valid tokens pass, bad ones are refused, every time. Once the relay
passes bytes again, sign-ins work within 5 s."""

import os
import socket
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import _client, launch_server
from cognate_helpers import (
    ACCESS_KEY_ID, GOOD_PASSWORD, SECRET_ACCESS_KEY, apply_file, apply_mock_api, error_code, unique,
)

PG_URL = os.environ.get("COGNATE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


class Relay:
    """Passes bytes between its clients and PostgreSQL while `quiet` is clear; while it is set,
    holds what it read and connects nobody new."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.quiet = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _hold(self):
        while self.quiet.is_set():
            time.sleep(0.01)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        self._hold()
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            conn.close()
            return
        for a, b in ((conn, server), (server, conn)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                self._hold()
                data = src.recv(65536)
                if not data:
                    break
                self._hold()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def _postgres_reachable():
    try:
        return subprocess.run(["pg_isready", "-q", "-d", PG_URL], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _through(relay, schema):
    parts = urlsplit(PG_URL)
    user = f"{parts.username}@" if parts.username else ""
    query = f"{parts.query}&" if parts.query else ""
    return f"{parts.scheme}://{user}{relay.addr}{parts.path}?{query}schema={schema}"


def test_a_silent_database_fails_sign_ins_fast_and_the_gateway_keeps_authorizing(tmp_path):
    if not _postgres_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI", pytrace=False)
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable")
    parts = urlsplit(PG_URL)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    schema = f"outage_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "cognate.yaml"
    config.write_text("apis: []\n")
    server = launch_server(workdir=str(tmp_path),
                           extra_args=("--config", str(config), "--database", _through(relay, schema)))
    try:
        idp = _client(server.endpoint, aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
        pool = idp.create_user_pool(PoolName=unique("outage"))["UserPool"]
        client = idp.create_user_pool_client(
            UserPoolId=pool["Id"], ClientName="web", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]
        idp.admin_create_user(UserPoolId=pool["Id"], Username="ann", MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username="ann", Password=GOOD_PASSWORD, Permanent=True)

        def sign_in():
            return idp.initiate_auth(ClientId=client["ClientId"], AuthFlow="USER_PASSWORD_AUTH",
                                     AuthParameters={"USERNAME": "ann", "PASSWORD": GOOD_PASSWORD})

        token = sign_in()["AuthenticationResult"]["IdToken"]
        gw = apply_mock_api(server.endpoint, config, pool["Id"])
        good = {"Authorization": token}
        bad = {"Authorization": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
        assert requests.get(gw, headers=good, timeout=5).status_code == 200

        relay.quiet.set()
        started = time.monotonic()
        with pytest.raises(ClientError) as e:
            sign_in()
        took = time.monotonic() - started
        assert error_code(e.value) == "InternalErrorException", e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        print(f"a sign-in with the database silent failed after {took:.2f} s")
        assert took < 2.5, f"the sign-in took {took:.2f} s to fail"
        # The gateway authorizes from the keys it holds, for as long as the outage lasts.
        decisions, slowest = 0, 0.0
        until = time.monotonic() + 5
        while time.monotonic() < until:
            for headers, expected in ((good, 200), (bad, 401), ({}, 401)):
                t = time.monotonic()
                status = requests.get(gw, headers=headers, timeout=5).status_code
                slowest = max(slowest, time.monotonic() - t)
                assert status == expected, (headers is good, status)
                decisions += 1
        print(f"{decisions} gateway decisions during the outage, all right; the slowest took {slowest * 1000:.1f} ms")

        # Applying the APIs again writes their usage plans and keys: refused as fast, and the
        # running APIs stay.
        started = time.monotonic()
        again = apply_file(server.endpoint, config)
        took = time.monotonic() - started
        assert again.returncode != 0 and "unavailable" in again.stderr, again.stderr
        print(f"cognate apply with the database silent failed after {took:.2f} s: {again.stderr.strip()[:300]}")
        assert took < 5, f"cognate apply took {took:.2f} s to fail"
        assert requests.get(gw, headers=good, timeout=5).status_code == 200

        relay.quiet.clear()
        back = time.monotonic()
        while True:
            try:
                sign_in()
                break
            except ClientError:
                assert time.monotonic() - back < 5, "sign-ins did not work again within 5 s"
                time.sleep(0.1)
        print(f"sign-ins worked again {time.monotonic() - back:.2f} s after the database answered")
    finally:
        relay.quiet.clear()
        server.stop()
        relay.close()
        subprocess.run(["psql", PG_URL, "-q", "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], check=False,
                       capture_output=True)
