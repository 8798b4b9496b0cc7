"""Sign-in, MFA and account flows through the unmodified aws CLI (v1, botocore 1.43.11): every
command a tutorial types, including wrong passwords, reused codes and the lockout."""

import json
import time

import pyotp

from cognate_helpers import GOOD_PASSWORD, attrs_to_dict, latest_code, unique

NEW_PASSWORD = "Another-Horse-7staple"
FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]


def _code(secret, steps_ahead=0):
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def _pool_and_client(cli, *client_args):
    pool_id = cli("create-user-pool", "--pool-name", unique("clisign"),
                  "--auto-verified-attributes", "email")["UserPool"]["Id"]
    client_id = cli("create-user-pool-client", "--user-pool-id", pool_id, "--client-name", "cli",
                    "--explicit-auth-flows", *FLOWS, *client_args)["UserPoolClient"]["ClientId"]
    return pool_id, client_id


def _password_auth(cli, client_id, username, password, check=True):
    return cli("initiate-auth", "--client-id", client_id, "--auth-flow", "USER_PASSWORD_AUTH",
               "--auth-parameters", f"USERNAME={username},PASSWORD={password}", check=check)


def _failed(err, exception, message=None):
    assert err.returncode == 255, (err.returncode, err.stderr)
    assert exception in err.stderr, err.stderr
    if message:
        assert message in err.stderr, err.stderr


def test_cli_sign_in_new_password_totp_refresh_and_sign_out(cli):
    pool_id, client_id = _pool_and_client(cli)
    try:
        out = cli("set-user-pool-mfa-config", "--user-pool-id", pool_id, "--mfa-configuration", "OPTIONAL",
                  "--software-token-mfa-configuration", "Enabled=true")
        assert out["MfaConfiguration"] == "OPTIONAL"
        assert cli("get-user-pool-mfa-config", "--user-pool-id", pool_id)["SoftwareTokenMfaConfiguration"] == {
            "Enabled": True}
        username = unique("cliu")
        cli("admin-create-user", "--user-pool-id", pool_id, "--username", username,
            "--temporary-password", "Temp-Pass-123", "--message-action", "SUPPRESS")

        _failed(_password_auth(cli, client_id, username, "Wrong-Pass-123", check=False),
                "NotAuthorizedException", "Incorrect username or password.")
        challenge = _password_auth(cli, client_id, username, "Temp-Pass-123")
        assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
        tokens = cli("respond-to-auth-challenge", "--client-id", client_id,
                     "--challenge-name", "NEW_PASSWORD_REQUIRED", "--session", challenge["Session"],
                     "--challenge-responses", f"USERNAME={username},NEW_PASSWORD={GOOD_PASSWORD}")
        access = tokens["AuthenticationResult"]["AccessToken"]
        assert cli("get-user", "--access-token", access)["Username"] == username

        secret = cli("associate-software-token", "--access-token", access)["SecretCode"]
        _failed(cli("verify-software-token", "--access-token", access, "--user-code", _code(secret, -3),
                    check=False), "EnableSoftwareTokenMFAException")
        assert cli("verify-software-token", "--access-token", access, "--user-code", _code(secret),
                   "--friendly-device-name", "cli phone")["Status"] == "SUCCESS"
        cli("set-user-mfa-preference", "--access-token", access,
            "--software-token-mfa-settings", "Enabled=true,PreferredMfa=true")
        assert cli("get-user", "--access-token", access)["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"

        mfa = _password_auth(cli, client_id, username, GOOD_PASSWORD)
        assert mfa["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
        code = _code(secret, 1)
        signed_in = cli("respond-to-auth-challenge", "--client-id", client_id,
                        "--challenge-name", "SOFTWARE_TOKEN_MFA", "--session", mfa["Session"],
                        "--challenge-responses", f"USERNAME={username},SOFTWARE_TOKEN_MFA_CODE={code}")
        refresh = signed_in["AuthenticationResult"]["RefreshToken"]
        # The same code again, in the admin flow: refused.
        admin_mfa = cli("admin-initiate-auth", "--user-pool-id", pool_id, "--client-id", client_id,
                        "--auth-flow", "ADMIN_USER_PASSWORD_AUTH",
                        "--auth-parameters", f"USERNAME={username},PASSWORD={GOOD_PASSWORD}")
        assert admin_mfa["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
        _failed(cli("admin-respond-to-auth-challenge", "--user-pool-id", pool_id, "--client-id", client_id,
                    "--challenge-name", "SOFTWARE_TOKEN_MFA", "--session", admin_mfa["Session"],
                    "--challenge-responses", f"USERNAME={username},SOFTWARE_TOKEN_MFA_CODE={code}",
                    check=False), "CodeMismatchException")
        admin_mfa = cli("admin-get-user", "--user-pool-id", pool_id, "--username", username)
        assert admin_mfa["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]

        refreshed = cli("initiate-auth", "--client-id", client_id, "--auth-flow", "REFRESH_TOKEN_AUTH",
                        "--auth-parameters", f"REFRESH_TOKEN={refresh}")
        assert "RefreshToken" not in refreshed["AuthenticationResult"]
        new_access = refreshed["AuthenticationResult"]["AccessToken"]
        assert cli("global-sign-out", "--access-token", new_access) is None
        _failed(cli("get-user", "--access-token", new_access, check=False), "NotAuthorizedException")
        _failed(cli("initiate-auth", "--client-id", client_id, "--auth-flow", "REFRESH_TOKEN_AUTH",
                    "--auth-parameters", f"REFRESH_TOKEN={refresh}", check=False), "NotAuthorizedException")
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)


def test_cli_account_actions_and_forgotten_password(cli, endpoint):
    pool_id, client_id = _pool_and_client(cli)
    try:
        username = unique("clia")
        cli("admin-create-user", "--user-pool-id", pool_id, "--username", username, "--message-action", "SUPPRESS",
            "--user-attributes", f"Name=email,Value={username}@example.com", "Name=email_verified,Value=true")
        cli("admin-set-user-password", "--user-pool-id", pool_id, "--username", username,
            "--password", GOOD_PASSWORD, "--permanent")

        sent = cli("forgot-password", "--client-id", client_id, "--username", username)
        assert sent["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
        code = latest_code(endpoint, pool_id, username, kind="forgot_password")
        assert cli("confirm-forgot-password", "--client-id", client_id, "--username", username,
                   "--confirmation-code", code, "--password", NEW_PASSWORD) is None
        _failed(cli("confirm-forgot-password", "--client-id", client_id, "--username", username,
                    "--confirmation-code", code, "--password", GOOD_PASSWORD, check=False), "Exception")
        access = _password_auth(cli, client_id, username, NEW_PASSWORD)["AuthenticationResult"]["AccessToken"]

        _failed(cli("change-password", "--access-token", access, "--previous-password", "Wrong-Pass-123",
                    "--proposed-password", GOOD_PASSWORD, check=False), "NotAuthorizedException")
        cli("change-password", "--access-token", access, "--previous-password", NEW_PASSWORD,
            "--proposed-password", GOOD_PASSWORD)

        out = cli("update-user-attributes", "--access-token", access,
                  "--user-attributes", f"Name=email,Value=new-{username}@example.com", "Name=given_name,Value=Cli")
        assert out["CodeDeliveryDetailsList"][0]["AttributeName"] == "email"
        code = latest_code(endpoint, pool_id, username, kind="attribute_verification")
        cli("verify-user-attribute", "--access-token", access, "--attribute-name", "email", "--code", code)
        attrs = attrs_to_dict(cli("get-user", "--access-token", access)["UserAttributes"])
        assert attrs["email_verified"] == "true" and attrs["given_name"] == "Cli"
        cli("delete-user-attributes", "--access-token", access, "--user-attribute-names", "given_name")
        assert "given_name" not in attrs_to_dict(cli("get-user", "--access-token", access)["UserAttributes"])

        assert cli("delete-user", "--access-token", access) is None
        _failed(cli("admin-get-user", "--user-pool-id", pool_id, "--username", username, check=False),
                "UserNotFoundException")
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)


def test_cli_lockout_after_five_wrong_passwords(cli):
    pool_id, client_id = _pool_and_client(cli)
    try:
        username = unique("clil")
        cli("admin-create-user", "--user-pool-id", pool_id, "--username", username, "--message-action", "SUPPRESS")
        cli("admin-set-user-password", "--user-pool-id", pool_id, "--username", username,
            "--password", GOOD_PASSWORD, "--permanent")
        for _ in range(5):
            _failed(_password_auth(cli, client_id, username, "Wrong-Pass-123", check=False),
                    "NotAuthorizedException", "Incorrect username or password.")
        # Each counted failure after the fifth doubles the lockout (1 s, 2 s, 4 s, 8 s); tries
        # during a lockout are refused without counting. Fail until eight have counted.
        counted, refused = 5, 0
        while counted < 8:
            err = _password_auth(cli, client_id, username, "Wrong-Pass-123", check=False)
            if "Password attempts exceeded" in err.stderr:
                refused += 1
            else:
                _failed(err, "NotAuthorizedException", "Incorrect username or password.")
                counted += 1
            assert refused < 30
        # Locked for eight seconds now: the right password is refused too.
        _failed(_password_auth(cli, client_id, username, GOOD_PASSWORD, check=False),
                "NotAuthorizedException", "Password attempts exceeded")
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)


def test_cli_refresh_token_rotation(cli):
    rotation = json.dumps({"Feature": "ENABLED", "RetryGracePeriodSeconds": 0})
    pool_id, client_id = _pool_and_client(cli, "--refresh-token-rotation", rotation)
    try:
        username = unique("clir")
        cli("admin-create-user", "--user-pool-id", pool_id, "--username", username, "--message-action", "SUPPRESS")
        cli("admin-set-user-password", "--user-pool-id", pool_id, "--username", username,
            "--password", GOOD_PASSWORD, "--permanent")
        first = _password_auth(cli, client_id, username, GOOD_PASSWORD)["AuthenticationResult"]["RefreshToken"]
        out = cli("get-tokens-from-refresh-token", "--client-id", client_id, "--refresh-token", first)
        second = out["AuthenticationResult"]["RefreshToken"]
        assert second != first
        _failed(cli("get-tokens-from-refresh-token", "--client-id", client_id, "--refresh-token", first,
                    check=False), "RefreshTokenReuseException")
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)


def test_cli_mfa_setup_sms_email_and_choice(cli, endpoint):
    """MFA_SETUP, SELECT_MFA_TYPE, SMS_MFA and EMAIL_OTP typed into the aws CLI. (USER_SRP_AUTH is
    not here: the CLI has no SRP arithmetic, so it cannot compute SRP_A or the claim signature;
    pycognito, amazon-cognito-identity-js and Amplify cover it.)"""
    pool_id, client_id = _pool_and_client(cli)
    try:
        cli("set-user-pool-mfa-config", "--user-pool-id", pool_id, "--mfa-configuration", "ON",
            "--software-token-mfa-configuration", "Enabled=true",
            # JSON, not the CLI's shorthand, which reads the braces of {####} as structure.
            "--sms-mfa-configuration", json.dumps({"SmsAuthenticationMessage": "Code {####}"}),
            "--email-mfa-configuration", json.dumps({"Message": "Code {####}", "Subject": "Sign-in code"}))
        username = unique("clim")
        cli("admin-create-user", "--user-pool-id", pool_id, "--username", username, "--message-action", "SUPPRESS",
            "--user-attributes", f"Name=email,Value={username}@example.com", "Name=email_verified,Value=true")
        cli("admin-set-user-password", "--user-pool-id", pool_id, "--username", username,
            "--password", GOOD_PASSWORD, "--permanent")

        # MFA required and the user has an e-mail address: EMAIL_OTP, code from the outbox.
        otp = _password_auth(cli, client_id, username, GOOD_PASSWORD)
        assert otp["ChallengeName"] == "EMAIL_OTP"
        code = latest_code(endpoint, pool_id, username, kind="mfa")
        out = cli("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "EMAIL_OTP",
                  "--session", otp["Session"], "--challenge-responses", f"USERNAME={username},EMAIL_OTP_CODE={code}")
        assert out["AuthenticationResult"]["AccessToken"]

        # A second user without e-mail or phone: MFA_SETUP with an authenticator.
        other = unique("clis")
        cli("admin-create-user", "--user-pool-id", pool_id, "--username", other, "--message-action", "SUPPRESS")
        cli("admin-set-user-password", "--user-pool-id", pool_id, "--username", other,
            "--password", GOOD_PASSWORD, "--permanent")
        setup = _password_auth(cli, client_id, other, GOOD_PASSWORD)
        assert setup["ChallengeName"] == "MFA_SETUP"
        assoc = cli("associate-software-token", "--session", setup["Session"])
        verified = cli("verify-software-token", "--session", assoc["Session"], "--user-code", _code(assoc["SecretCode"]))
        assert verified["Status"] == "SUCCESS"
        done = cli("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "MFA_SETUP",
                   "--session", verified["Session"], "--challenge-responses", f"USERNAME={other}")
        assert done["AuthenticationResult"]["AccessToken"]

        # The first user gets a phone too, and both SMS and e-mail enabled: a choice, then SMS_MFA.
        cli("admin-update-user-attributes", "--user-pool-id", pool_id, "--username", username,
            "--user-attributes", "Name=phone_number,Value=+15555550142")
        cli("admin-set-user-mfa-preference", "--user-pool-id", pool_id, "--username", username,
            "--sms-mfa-settings", "Enabled=true", "--email-mfa-settings", "Enabled=true")
        choice = _password_auth(cli, client_id, username, GOOD_PASSWORD)
        assert choice["ChallengeName"] == "SELECT_MFA_TYPE"
        assert json.loads(choice["ChallengeParameters"]["MFAS_CAN_CHOOSE"]) == ["SMS_MFA", "EMAIL_OTP"]
        sms = cli("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "SELECT_MFA_TYPE",
                  "--session", choice["Session"], "--challenge-responses", f"USERNAME={username},ANSWER=SMS_MFA")
        assert sms["ChallengeName"] == "SMS_MFA"
        assert sms["ChallengeParameters"]["CODE_DELIVERY_DESTINATION"] == "+*******0142"
        code = latest_code(endpoint, pool_id, username, kind="mfa", count=2)
        _failed(cli("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "SMS_MFA",
                    "--session", sms["Session"], "--challenge-responses",
                    f"USERNAME={username},SMS_MFA_CODE={'000000' if code != '000000' else '111111'}",
                    check=False), "CodeMismatchException")
        out = cli("respond-to-auth-challenge", "--client-id", client_id, "--challenge-name", "SMS_MFA",
                  "--session", sms["Session"], "--challenge-responses", f"USERNAME={username},SMS_MFA_CODE={code}")
        assert out["AuthenticationResult"]["IdToken"]
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)
