"""Confirmation codes: mismatch, attempt limit, expiry (via the dev outbox hooks), re-use."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import error_code, expire_codes, latest_code


def _wrong(code: str) -> str:
    if code.isdigit():
        return str((int(code) + 1) % (10 ** len(code))).zfill(len(code))
    return code[::-1] + "x"


def test_wrong_code_is_code_mismatch(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=_wrong(code)
        )
    assert error_code(ei.value) == "CodeMismatchException"
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "UNCONFIRMED"
    # the right code still works after one mistake
    unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=code)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "CONFIRMED"


def test_five_wrong_codes_then_limit_exceeded(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    wrong = _wrong(code)
    for attempt in range(5):
        with pytest.raises(ClientError) as ei:
            unsigned_idp.confirm_sign_up(
                ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=wrong
            )
        assert error_code(ei.value) == "CodeMismatchException", f"attempt {attempt + 1}"
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=wrong
        )
    assert error_code(ei.value) == "LimitExceededException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "UNCONFIRMED"


def test_expired_code(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    expire_codes(endpoint, pool["Id"], u["username"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=code
        )
    assert error_code(ei.value) == "ExpiredCodeException"
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "UNCONFIRMED"


def test_new_code_after_expiry_works(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    latest_code(endpoint, pool["Id"], u["username"])
    expire_codes(endpoint, pool["Id"], u["username"])
    unsigned_idp.resend_confirmation_code(ClientId=app_client["ClientId"], Username=u["username"])
    fresh = latest_code(endpoint, pool["Id"], u["username"], count=2)
    unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=fresh)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "CONFIRMED"


def test_reused_code_fails(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=code)
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=code
        )
    # Real Cognito answers a second confirmation of a CONFIRMED user with
    # NotAuthorizedException ("User cannot be confirmed. Current status is CONFIRMED");
    # an implementation that tracks used codes may say ExpiredCodeException instead.
    assert error_code(ei.value) in ("NotAuthorizedException", "ExpiredCodeException")
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "CONFIRMED"


def test_expire_codes_is_per_user(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    a, b = signed_up(), signed_up()
    code_b = latest_code(endpoint, pool["Id"], b["username"])
    latest_code(endpoint, pool["Id"], a["username"])
    expire_codes(endpoint, pool["Id"], a["username"])
    unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=b["username"], ConfirmationCode=code_b)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=b["username"])["UserStatus"] == "CONFIRMED"


def test_code_of_other_user_is_mismatch(endpoint, unsigned_idp, pool, app_client, signed_up):
    a, b = signed_up(), signed_up()
    code_a = latest_code(endpoint, pool["Id"], a["username"])
    code_b = latest_code(endpoint, pool["Id"], b["username"])
    if code_a == code_b:
        pytest.fail("two users received the same 6-digit code; rerun (1 in a million)")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=app_client["ClientId"], Username=b["username"], ConfirmationCode=code_a
        )
    assert error_code(ei.value) == "CodeMismatchException"
