"""Error messages that applications match on, worded as real Cognito words them
(01-transport.md §1.4; the quoted strings there are observed Cognito messages)."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, error_code, expire_codes, latest_code, secret_hash, unique


def _err(exc):
    return error_code(exc), exc.response["Error"]["Message"]


def test_user_does_not_exist(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert _err(ei.value) == ("UserNotFoundException", "User does not exist.")


def test_user_already_exists(unsigned_idp, app_client, signed_up):
    u = signed_up()
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=app_client["ClientId"], Username=u["username"], Password=GOOD_PASSWORD)
    assert _err(ei.value) == ("UsernameExistsException", "User already exists")


def test_password_policy_message(unsigned_idp, app_client):
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=app_client["ClientId"], Username=unique("u"), Password="Sh0rt")
    code, message = _err(ei.value)
    assert code == "InvalidPasswordException"
    assert message.startswith("Password did not conform with policy"), message


def test_code_mismatch_message(endpoint, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code)) if code.isdigit() else code + "x"
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=wrong)
    assert _err(ei.value) == (
        "CodeMismatchException",
        "Invalid verification code provided, please try again.",
    )


def test_expired_code_message(endpoint, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    expire_codes(endpoint, pool["Id"], u["username"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=code)
    assert _err(ei.value) == (
        "ExpiredCodeException",
        "Invalid code provided, please request a code again.",
    )


def test_attempt_limit_message(endpoint, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code)) if code.isdigit() else code + "x"
    for _ in range(5):
        with pytest.raises(ClientError):
            unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=wrong)
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=wrong)
    assert _err(ei.value) == (
        "LimitExceededException",
        "Attempt limit exceeded, please try after some time.",
    )


def test_secret_hash_messages(unsigned_idp, pool, make_client):
    client = make_client(pool["Id"], GenerateSecret=True)
    cid = client["ClientId"]
    username = unique("u")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=cid, Username=username, Password=GOOD_PASSWORD)
    assert _err(ei.value) == (
        "NotAuthorizedException",
        f"Client {cid} is configured for secret but secret was not received",
    )
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(
            ClientId=cid, Username=username, Password=GOOD_PASSWORD,
            SecretHash=secret_hash(username, cid, "wrong-secret"),
        )
    assert _err(ei.value) == ("NotAuthorizedException", f"Unable to verify secret hash for client {cid}")


def test_unrecognized_client_message(make_idp):
    with pytest.raises(ClientError) as ei:
        make_idp("AKIDNOSUCHKEY0000000", "x").list_user_pools(MaxResults=1)
    assert _err(ei.value) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )


def test_invalid_signature_message(make_idp):
    from cognate_helpers import ACCESS_KEY_ID

    with pytest.raises(ClientError) as ei:
        make_idp(ACCESS_KEY_ID, "wrong-secret").list_user_pools(MaxResults=1)
    code, message = _err(ei.value)
    assert code == "InvalidSignatureException"
    assert message.startswith(
        "The request signature we calculated does not match the signature you provided."
    ), message


def test_unknown_client_message(unsigned_idp):
    cid = "nosuchclient0000000000000"
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=cid, Username=unique("u"), Password=GOOD_PASSWORD)
    assert _err(ei.value) == ("ResourceNotFoundException", f"User pool client {cid} does not exist.")
