"""Expiry, seen by boto3 and the aws CLI without waiting: each test runs its own server and moves
that server's clock forward with the development hook `POST /_cognate/clock/advance`."""

import pyotp
import pytest
import requests
from botocore.exceptions import ClientError

from cognate_helpers import (
    GOOD_PASSWORD, admin_and_public, cli_env, error_code, run_cli, unique,
)
from conftest import launch_server

FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]


@pytest.fixture
def clocked(tmp_path):
    """A private server, its clients, a pool with a password-flow client, and a clock to move."""
    server = launch_server()
    admin, public = admin_and_public(server.endpoint)
    pool_id = admin.create_user_pool(PoolName=unique("clock"))["UserPool"]["Id"]

    def advance(seconds):
        r = requests.post(f"{server.endpoint}/_cognate/clock/advance", json={"seconds": seconds}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["now_ms"] / 1000

    def cli(*args, check=True):
        return run_cli(server.endpoint, cli_env(str(tmp_path)), *args, check=check)

    def client(**kwargs):
        return admin.create_user_pool_client(
            UserPoolId=pool_id, ClientName="c", ExplicitAuthFlows=FLOWS, **kwargs)["UserPoolClient"]["ClientId"]

    def user(temporary=False):
        name = unique("exp")
        if temporary:
            admin.admin_create_user(UserPoolId=pool_id, Username=name, TemporaryPassword="Temp-Pass-123",
                                    MessageAction="SUPPRESS")
        else:
            admin.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
            admin.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=GOOD_PASSWORD, Permanent=True)
        return name

    yield {"admin": admin, "public": public, "pool_id": pool_id, "advance": advance, "cli": cli,
           "client": client, "user": user}
    server.stop()


def _sign_in(public, client_id, username, password=GOOD_PASSWORD):
    return public.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                AuthParameters={"USERNAME": username, "PASSWORD": password})


def test_a_challenge_session_expires_after_auth_session_validity(clocked):
    c = clocked
    client_id = c["client"](AuthSessionValidity=3)
    name = c["user"](temporary=True)
    session = _sign_in(c["public"], client_id, name, "Temp-Pass-123")["Session"]
    c["advance"](3 * 60 + 1)
    with pytest.raises(ClientError) as e:
        c["public"].respond_to_auth_challenge(
            ClientId=client_id, ChallengeName="NEW_PASSWORD_REQUIRED", Session=session,
            ChallengeResponses={"USERNAME": name, "NEW_PASSWORD": GOOD_PASSWORD})
    assert error_code(e.value) == "NotAuthorizedException"
    assert e.value.response["Error"]["Message"] == "Invalid session for the user, session is expired."

    # The same through the aws CLI; a fresh session still works.
    session = _sign_in(c["public"], client_id, name, "Temp-Pass-123")["Session"]
    c["advance"](3 * 60 + 1)
    err = c["cli"]("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "NEW_PASSWORD_REQUIRED",
                   "--session", session, "--challenge-responses", f"USERNAME={name},NEW_PASSWORD={GOOD_PASSWORD}",
                   check=False)
    assert err.returncode == 255 and "session is expired" in err.stderr, err.stderr
    session = _sign_in(c["public"], client_id, name, "Temp-Pass-123")["Session"]
    out = c["cli"]("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "NEW_PASSWORD_REQUIRED",
                   "--session", session, "--challenge-responses", f"USERNAME={name},NEW_PASSWORD={GOOD_PASSWORD}")
    assert out["AuthenticationResult"]["AccessToken"]


def test_an_mfa_setup_session_expires(clocked):
    c = clocked
    c["admin"].set_user_pool_mfa_config(UserPoolId=c["pool_id"], MfaConfiguration="ON",
                                        SoftwareTokenMfaConfiguration={"Enabled": True})
    client_id = c["client"]()
    name = c["user"]()
    setup = _sign_in(c["public"], client_id, name)
    assert setup["ChallengeName"] == "MFA_SETUP"
    associated = c["public"].associate_software_token(Session=setup["Session"])
    totp = pyotp.TOTP(associated["SecretCode"])
    c["advance"](3 * 60 + 1)
    # The associate step's session has expired by the server's clock (the code is right for it).
    server_now = c["advance"](0)
    with pytest.raises(ClientError) as e:
        c["public"].verify_software_token(Session=associated["Session"], UserCode=totp.at(server_now))
    assert error_code(e.value) == "NotAuthorizedException"


def test_access_tokens_expire_and_refresh_tokens_outlive_them(clocked):
    c = clocked
    client_id = c["client"](RefreshTokenValidity=2, TokenValidityUnits={"RefreshToken": "hours"})
    name = c["user"]()
    r = _sign_in(c["public"], client_id, name)["AuthenticationResult"]
    c["advance"](3600 + 1)
    with pytest.raises(ClientError) as e:
        c["public"].get_user(AccessToken=r["AccessToken"])
    assert error_code(e.value) == "NotAuthorizedException"
    assert e.value.response["Error"]["Message"] == "Access Token has expired"
    fresh = c["public"].initiate_auth(ClientId=client_id, AuthFlow="REFRESH_TOKEN_AUTH",
                                      AuthParameters={"REFRESH_TOKEN": r["RefreshToken"]})["AuthenticationResult"]
    assert c["public"].get_user(AccessToken=fresh["AccessToken"])["Username"] == name
    c["advance"](3600)
    err = c["cli"]("initiate-auth", "--client-id", client_id, "--auth-flow", "REFRESH_TOKEN_AUTH",
                   "--auth-parameters", f"REFRESH_TOKEN={r['RefreshToken']}", "--no-sign-request", check=False)
    assert err.returncode == 255 and "Refresh Token has expired" in err.stderr, err.stderr


def test_the_lockout_ends_with_time_and_old_failures_are_forgotten(clocked):
    c = clocked
    client_id = c["client"]()
    name = c["user"]()

    def fail(times):
        for _ in range(times):
            with pytest.raises(ClientError) as e:
                _sign_in(c["public"], client_id, name, "Wrong-Pass-123")
            assert e.value.response["Error"]["Message"] == "Incorrect username or password."

    fail(5)
    with pytest.raises(ClientError) as e:
        _sign_in(c["public"], client_id, name)
    assert e.value.response["Error"]["Message"] == "Password attempts exceeded"
    c["advance"](2)
    assert "AuthenticationResult" in _sign_in(c["public"], client_id, name)

    # Four failures, a quiet quarter of an hour, four more: the first four are forgotten.
    fail(4)
    c["advance"](15 * 60 + 1)
    fail(4)
    assert "AuthenticationResult" in _sign_in(c["public"], client_id, name)


def test_a_password_reset_code_lives_one_hour_and_a_temporary_password_seven_days(clocked):
    """Security checklist A7 and A13, as AWS documents them: a ForgotPassword code is valid for
    one hour (sign-up and attribute codes for 24), and a temporary password for the pool's
    TemporaryPasswordValidityDays (7 by default)."""
    from cognate_helpers import latest_code

    c = clocked
    admin, public, pool_id = c["admin"], c["public"], c["pool_id"]
    client_id = c["client"]()
    name = unique("reset")
    admin.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS",
                            UserAttributes=[{"Name": "email", "Value": f"{name}@example.com"},
                                            {"Name": "email_verified", "Value": "true"}])
    admin.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=GOOD_PASSWORD, Permanent=True)
    temporary = c["user"](temporary=True)  # before the clock moves: admin calls are signed
    endpoint = admin.meta.endpoint_url

    def reset_code(count):
        public.forgot_password(ClientId=client_id, Username=name)
        return latest_code(endpoint, pool_id, name, kind="forgot_password", count=count)

    def confirm(code):
        public.confirm_forgot_password(ClientId=client_id, Username=name, ConfirmationCode=code,
                                       Password="Another-Good-Pass-7")

    code = reset_code(1)
    c["advance"](3600 + 1)
    with pytest.raises(ClientError) as e:
        confirm(code)
    assert error_code(e.value) == "ExpiredCodeException"
    code = reset_code(2)
    c["advance"](3600 - 60)
    confirm(code)
    assert _sign_in(public, client_id, name, "Another-Good-Pass-7")["AuthenticationResult"]

    c["advance"](6 * 86400)  # about six days and two hours since it was made
    assert _sign_in(public, client_id, temporary, "Temp-Pass-123")["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    c["advance"](86400)
    with pytest.raises(ClientError) as e:
        _sign_in(public, client_id, temporary, "Temp-Pass-123")
    assert error_code(e.value) == "NotAuthorizedException"
    assert "Temporary password has expired" in e.value.response["Error"]["Message"]
