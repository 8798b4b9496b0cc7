"""Message delivery through a real SMTP server (aiosmtpd, started here), and admin keys that
are limited to some pools (configured in the YAML file)."""

import re
import threading

import boto3
import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from cognate_helpers import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, error_code, free_port, unique
from conftest import NO_RETRY, launch_server


class Sink:
    """Collects every message the SMTP server accepts."""

    def __init__(self):
        self.messages = []
        self.logins = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):
        with self.arrived:
            self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
            self.arrived.notify_all()
        return "250 OK"

    def wait(self, count, timeout=10):
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
        return self.messages


def authenticator(sink):
    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"mailer" and auth_data.password == b"mail-secret"
        sink.logins.append((mechanism, auth_data.login, ok))
        return AuthResult(success=ok)

    return check


@pytest.fixture
def smtp_server(tmp_path):
    sink = Sink()
    port = free_port()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator(sink),
        auth_require_tls=False,
    )
    controller.start()
    config = tmp_path / "cognate.yaml"
    config.write_text(
        "messages:\n"
        "  sender: smtp\n"
        "  smtp:\n"
        "    host: 127.0.0.1\n"
        f"    port: {port}\n"
        "    security: none\n"
        "    username: mailer\n"
        "    password: mail-secret\n"
        '    from: "Cognate Test <no-reply@cognate.test>"\n'
    )
    server = launch_server(extra_args=("--config", str(config)))
    yield server, sink
    server.stop()
    controller.stop()


def admin(endpoint, key=ACCESS_KEY_ID, secret=SECRET_ACCESS_KEY):
    return boto3.session.Session().client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=NO_RETRY,
    )


def test_codes_and_temporary_passwords_arrive_by_smtp(smtp_server):
    server, sink = smtp_server
    idp = admin(server.endpoint)
    pool = idp.create_user_pool(PoolName=unique("smtp"), AutoVerifiedAttributes=["email"])["UserPool"]["Id"]
    client = idp.create_user_pool_client(UserPoolId=pool, ClientName="web")["UserPoolClient"]["ClientId"]

    idp.sign_up(
        ClientId=client,
        Username="mia",
        Password="Passw0rd!",
        UserAttributes=[{"Name": "email", "Value": "mia@example.com"}],
    )
    rcpts, text = sink.wait(1)[0]
    assert rcpts == ["mia@example.com"]
    assert "Subject: Your verification code" in text
    assert re.search(r'^From: "?Cognate Test"? <no-reply@cognate.test>', text, re.M), text
    code = re.search(r"\b(\d{6})\b", text).group(1)
    idp.confirm_sign_up(ClientId=client, Username="mia", ConfirmationCode=code)
    assert idp.admin_get_user(UserPoolId=pool, Username="mia")["UserStatus"] == "CONFIRMED"

    idp.admin_create_user(
        UserPoolId=pool,
        Username="noah",
        UserAttributes=[{"Name": "email", "Value": "noah@example.com"}],
        TemporaryPassword="Temp-Passw0rd!",
        DesiredDeliveryMediums=["EMAIL"],
    )
    rcpts, text = sink.wait(2)[1]
    assert rcpts == ["noah@example.com"]
    assert "Temp-Passw0rd!" in text and "noah" in text
    assert sink.logins and all(ok for _, _, ok in sink.logins), sink.logins

    # The development outbox is not mounted with a real sender.
    r = requests.get(f"{server.endpoint}/_cognate/messages", params={"pool_id": pool}, timeout=5)
    assert r.status_code == 404
    # Nothing secret in the server's log.
    log = open(server.log_path, encoding="utf-8", errors="replace").read()
    assert code not in log and "Temp-Passw0rd!" not in log and "mail-secret" not in log


def test_a_failing_smtp_server_is_a_code_delivery_failure(tmp_path):
    config = tmp_path / "cognate.yaml"
    config.write_text(
        "messages:\n  sender: smtp\n  smtp:\n    host: 127.0.0.1\n"
        f"    port: {free_port()}\n    security: none\n    from: no-reply@cognate.test\n"
    )
    server = launch_server(extra_args=("--config", str(config)))
    try:
        idp = admin(server.endpoint)
        pool = idp.create_user_pool(PoolName=unique("smtpdown"), AutoVerifiedAttributes=["email"])["UserPool"]["Id"]
        client = idp.create_user_pool_client(UserPoolId=pool, ClientName="web")["UserPoolClient"]["ClientId"]
        with pytest.raises(idp.exceptions.ClientError) as e:
            idp.sign_up(
                ClientId=client,
                Username="olga",
                Password="Passw0rd!",
                UserAttributes=[{"Name": "email", "Value": "olga@example.com"}],
            )
        assert error_code(e.value) == "CodeDeliveryFailureException"
    finally:
        server.stop()


def test_admin_keys_limited_to_pools(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = launch_server(data_dir=str(data), workdir=str(tmp_path))
    idp = admin(first.endpoint)
    mine = idp.create_user_pool(PoolName="team-a")["UserPool"]["Id"]
    other = idp.create_user_pool(PoolName="team-b")["UserPool"]["Id"]
    first.stop()

    config = tmp_path / "cognate.yaml"
    config.write_text(
        "admin_keys:\n"
        "  - access_key_id: AKIDTEAMA\n"
        "    secret_access_key: team-a-secret\n"
        f"    pools: [{mine}]\n"
    )
    server = launch_server(data_dir=str(data), workdir=str(tmp_path), extra_args=("--config", str(config)))
    try:
        team = admin(server.endpoint, "AKIDTEAMA", "team-a-secret")
        assert team.describe_user_pool(UserPoolId=mine)["UserPool"]["Name"] == "team-a"
        team.create_group(UserPoolId=mine, GroupName="Admins", Precedence=0)
        for call in (
            lambda: team.describe_user_pool(UserPoolId=other),
            lambda: team.create_group(UserPoolId=other, GroupName="Admins"),
            lambda: team.create_user_pool(PoolName="team-c"),
        ):
            with pytest.raises(team.exceptions.ClientError) as e:
                call()
            assert error_code(e.value) == "AccessDeniedException"
        ids = [p["Id"] for p in team.list_user_pools(MaxResults=60)["UserPools"]]
        assert ids == [mine]
        # The unrestricted key from the environment still sees both.
        all_ids = {p["Id"] for p in admin(server.endpoint).list_user_pools(MaxResults=60)["UserPools"]}
        assert {mine, other} <= all_ids
    finally:
        server.stop()
