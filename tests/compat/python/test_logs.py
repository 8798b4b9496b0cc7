"""Security checklist A25: no password, code, TOTP secret or token is ever written to the log, even
at the most verbose level, through every flow that carries one (boto3, pycognito and pyotp against
a server of this module's own, logging at `trace`)."""

import pyotp
import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from cognate_helpers import SECRET_ACCESS_KEY, admin_and_public, latest_code, secret_hash, unique
from conftest import launch_server

FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
PASSWORDS = ["First-Secret-Pass-1", "Second-Secret-Pass-2", "Third-Secret-Pass-3", "Fourth-Secret-Pass-4"]
WRONG = "Wrong-Secret-Guess-9"


def test_secrets_never_reach_the_log(tmp_path):
    # In a directory of the test's own, so that the log outlives the server.
    server = launch_server(workdir=str(tmp_path), extra_env={"COGNATE_LOG": "trace"})
    secrets = {"the admin secret key": SECRET_ACCESS_KEY, "a wrong password": WRONG}
    try:
        admin, public = admin_and_public(server.endpoint)
        pool_id = admin.create_user_pool(PoolName=unique("logs"), AutoVerifiedAttributes=["email"])["UserPool"]["Id"]
        admin.set_user_pool_mfa_config(UserPoolId=pool_id, MfaConfiguration="OPTIONAL",
                                       SoftwareTokenMfaConfiguration={"Enabled": True})
        client = admin.create_user_pool_client(UserPoolId=pool_id, ClientName="c", ExplicitAuthFlows=FLOWS,
                                               GenerateSecret=True, EnableTokenRevocation=True)["UserPoolClient"]
        cid, client_secret = client["ClientId"], client["ClientSecret"]
        secrets["the client secret"] = client_secret
        name = unique("logged")

        def sh(user=name):
            return secret_hash(user, cid, client_secret)

        def password_auth(password):
            return public.initiate_auth(ClientId=cid, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={
                "USERNAME": name, "PASSWORD": password, "SECRET_HASH": sh()})

        for i, p in enumerate(PASSWORDS):
            secrets[f"password {i + 1}"] = p
        public.sign_up(ClientId=cid, SecretHash=sh(), Username=name, Password=PASSWORDS[0],
                       UserAttributes=[{"Name": "email", "Value": f"{name}@example.com"}])
        code = latest_code(server.endpoint, pool_id, name, kind="signup")
        secrets["the sign-up code"] = code
        public.confirm_sign_up(ClientId=cid, SecretHash=sh(), Username=name, ConfirmationCode=code)

        with pytest.raises(ClientError):
            password_auth(WRONG)
        first = password_auth(PASSWORDS[0])["AuthenticationResult"]
        refreshed = public.initiate_auth(ClientId=cid, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters={
            "REFRESH_TOKEN": first["RefreshToken"], "SECRET_HASH": sh()})["AuthenticationResult"]
        public.get_user(AccessToken=refreshed["AccessToken"])
        public.change_password(AccessToken=first["AccessToken"], PreviousPassword=PASSWORDS[0],
                               ProposedPassword=PASSWORDS[1])

        public.forgot_password(ClientId=cid, SecretHash=sh(), Username=name)
        reset = latest_code(server.endpoint, pool_id, name, kind="forgot_password")
        secrets["the reset code"] = reset
        public.confirm_forgot_password(ClientId=cid, SecretHash=sh(), Username=name, ConfirmationCode=reset,
                                       Password=PASSWORDS[2])

        srp = AWSSRP(username=name, password=PASSWORDS[2], pool_id=pool_id, client_id=cid,
                     client_secret=client_secret, client=public)
        by_srp = srp.authenticate_user()["AuthenticationResult"]
        totp = public.associate_software_token(AccessToken=by_srp["AccessToken"])["SecretCode"]
        secrets["the TOTP secret"] = totp
        totp_code = pyotp.TOTP(totp).now()
        secrets["a TOTP code"] = totp_code
        public.verify_software_token(AccessToken=by_srp["AccessToken"], UserCode=totp_code)
        public.revoke_token(Token=by_srp["RefreshToken"], ClientId=cid, ClientSecret=client_secret)
        admin.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=PASSWORDS[3], Permanent=True)

        for label, tokens in (("first", first), ("refreshed", refreshed), ("SRP", by_srp)):
            for kind in ("IdToken", "AccessToken", "RefreshToken"):
                if kind in tokens:
                    # A token's signature alone would be enough to use it; look for that.
                    secrets[f"the {label} {kind}"] = tokens[kind].rsplit(".", 1)[-1]
    finally:
        server.stop()
    with open(server.log_path, errors="replace") as f:
        log = f.read()
    assert "TRACE" in log or "DEBUG" in log, "the server did not log verbosely:\n" + log[-2000:]
    leaked = [label for label, value in secrets.items() if value in log]
    assert not leaked, leaked
