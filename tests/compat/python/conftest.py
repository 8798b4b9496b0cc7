"""pytest fixtures: one real `cognate serve` per session, plus unmodified clients."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import boto3
import botocore
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from cognate_helpers import (
    NO_RETRY,
    ACCESS_KEY_ID,
    GOOD_PASSWORD,
    REGION,
    SECRET_ACCESS_KEY,
    cli_env,
    cognate_bin,
    free_port,
    run_cli,
    unique,
)



def _tail(path, n=60):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "<no log>"


class ServerHandle:
    """A running `cognate serve`; `stop()` sends SIGTERM and waits."""

    def __init__(self, proc, endpoint, log_path, log_file, data_dir, owned_workdir=None):
        self.proc = proc
        self.owned_workdir = owned_workdir
        self.endpoint = endpoint
        self.log_path = log_path
        self._log = log_file
        self.data_dir = data_dir

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        # keep the data dir and log only when asked to (COGNATE_COMPAT_KEEP=1)
        if self.owned_workdir and not os.environ.get("COGNATE_COMPAT_KEEP"):
            shutil.rmtree(self.owned_workdir, ignore_errors=True)
        return self.proc.returncode

    def log_tail(self, n=60):
        return _tail(self.log_path, n)


def launch_server(data_dir=None, workdir=None, port=None, extra_args=(), extra_env=None):
    """Start `$COGNATE_BIN serve` on a free port and wait for GET /health == 200 (30 s)."""
    binary = cognate_bin()
    if not binary.exists():
        pytest.fail(
            f"cognate binary not found at {binary}; build it or set COGNATE_BIN", pytrace=False
        )
    owned = None
    if workdir is None:
        workdir = owned = tempfile.mkdtemp(prefix="cognate-compat-")
    if data_dir is None:
        data_dir = os.path.join(workdir, "data")
        os.makedirs(data_dir)
    log_path = os.path.join(workdir, f"server-{time.time_ns()}.log")
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        COGNATE_ACCESS_KEY_ID=ACCESS_KEY_ID,
        COGNATE_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
    )
    env.update(extra_env or {})
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            data_dir,
            "--password-hashing",
            "development",
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(endpoint + "/health", timeout=1).status_code == 200:
                return ServerHandle(proc, endpoint, log_path, log, data_dir, owned)
        except requests.RequestException:
            pass
        time.sleep(0.2)
    rc = proc.poll()
    if rc is None:
        proc.kill()
        proc.wait()
    log.close()
    pytest.fail(
        f"cognate did not become healthy on {endpoint} within 30 s (exit={rc}).\n"
        f"--- server log ---\n{_tail(log_path)}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def server():
    handle = launch_server()
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def endpoint(server):
    return server.endpoint


def _client(endpoint, **kw):
    return boto3.session.Session().client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        config=kw.pop("config", NO_RETRY),
        **kw,
    )


@pytest.fixture(scope="session")
def idp(endpoint):
    """boto3 client with the server's configured IAM key."""
    return _client(
        endpoint, aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY
    )


@pytest.fixture(scope="session")
def unsigned_idp(endpoint):
    """boto3 client that never signs (botocore.UNSIGNED)."""
    return _client(endpoint, config=NO_RETRY.merge(Config(signature_version=botocore.UNSIGNED)))


@pytest.fixture(scope="session")
def make_idp(endpoint):
    """Factory for boto3 clients with arbitrary credentials."""

    def factory(access_key, secret_key):
        return _client(endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    return factory


@pytest.fixture
def cli(endpoint, tmp_path):
    """Run the aws CLI against Cognate: cli('create-user-pool', '--pool-name', 'x')."""
    env = cli_env(str(tmp_path))

    def run(*args, check=True, env_override=None):
        e = dict(env)
        if env_override:
            e.update(env_override)
        return run_cli(endpoint, e, *args, check=check)

    return run


@pytest.fixture
def make_pool(idp):
    """Create a user pool (deleted again after the test). Returns the UserPool dict."""
    created = []

    def factory(**kwargs):
        kwargs.setdefault("PoolName", unique("pool"))
        kwargs.setdefault(
            "Policies",
            {
                "PasswordPolicy": {
                    "MinimumLength": 8,
                    "RequireUppercase": True,
                    "RequireLowercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": False,
                }
            },
        )
        pool = idp.create_user_pool(**kwargs)["UserPool"]
        created.append(pool["Id"])
        return pool

    yield factory
    for pool_id in created:
        try:
            idp.update_user_pool(UserPoolId=pool_id, DeletionProtection="INACTIVE")
        except ClientError:
            pass
        try:
            idp.delete_user_pool(UserPoolId=pool_id)
        except ClientError:
            pass


@pytest.fixture
def make_client(idp):
    """Create an app client: make_client(pool_id, GenerateSecret=True, ...)."""

    def factory(pool_id, **kwargs):
        kwargs.setdefault("ClientName", unique("client"))
        return idp.create_user_pool_client(UserPoolId=pool_id, **kwargs)["UserPoolClient"]

    return factory


@pytest.fixture
def pool(make_pool):
    """A self-sign-up pool with plain usernames and e-mail auto-verification."""
    return make_pool(AutoVerifiedAttributes=["email"])


@pytest.fixture
def app_client(pool, make_client):
    return make_client(pool["Id"])


@pytest.fixture
def signed_up(idp, unsigned_idp, pool, app_client):
    """Factory: sign a user up (unconfirmed) through the public API."""

    def factory(username=None, password=GOOD_PASSWORD, email=None, extra_attrs=None):
        username = username or unique("user")
        email = email or f"{username}@example.com"
        attrs = [{"Name": "email", "Value": email}] + list(extra_attrs or [])
        resp = unsigned_idp.sign_up(
            ClientId=app_client["ClientId"],
            Username=username,
            Password=password,
            UserAttributes=attrs,
        )
        return {"username": username, "email": email, "response": resp}

    return factory


@pytest.fixture
def admin_user(idp, pool):
    """Factory: create a CONFIRMED user with AdminCreateUser + AdminSetUserPassword."""

    def factory(username=None, attrs=None, pool_id=None):
        pool_id = pool_id or pool["Id"]
        username = username or unique("user")
        attributes = attrs if attrs is not None else [
            {"Name": "email", "Value": f"{username}@example.com"},
            {"Name": "email_verified", "Value": "true"},
        ]
        user = idp.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            UserAttributes=attributes,
            MessageAction="SUPPRESS",
        )["User"]
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=GOOD_PASSWORD, Permanent=True
        )
        return user

    return factory
