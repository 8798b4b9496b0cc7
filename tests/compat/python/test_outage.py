"""Security checklist R3 and R4 through the HTTP API: Cognate on PostgreSQL behind a TCP relay
that goes silent (a link that stops passing bytes without a reset, the case a client would
otherwise wait out for minutes). While it is silent, sign-ins fail within about the store's
1 s deadline with a retryable 500 InternalErrorException, and the gateway goes on authorizing
from the keys it holds: valid tokens pass, bad ones are refused, every time. Once the relay
passes bytes again, sign-ins work within 5 s."""

import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import _client, launch_server
from postgres import Relay, drop_schema, new_schema, require_postgres, schema_url
from cognate_helpers import (
    ACCESS_KEY_ID, GOOD_PASSWORD, SECRET_ACCESS_KEY, apply_file, apply_mock_api, error_code, unique,
)

def test_a_silent_database_fails_sign_ins_fast_and_the_gateway_keeps_authorizing(tmp_path):
    require_postgres()
    relay = Relay()
    schema = new_schema("outage")
    config = tmp_path / "cognate.yaml"
    config.write_text("apis: []\n")
    server = launch_server(workdir=str(tmp_path),
                           extra_args=("--config", str(config), "--database", schema_url(schema, relay)))
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
        drop_schema(schema)
