"""Multi-factor sign-in through boto3: the pool's MFA configuration, TOTP enrolment (with an
access token, and with the MFA_SETUP session), SOFTWARE_TOKEN_MFA with codes made by pyotp, SMS_MFA
and EMAIL_OTP with codes read from the development outbox, and SELECT_MFA_TYPE."""

import re
import time

import pyotp
import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, attrs_to_dict, error_code, latest_code, unique

FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
TOTP_ONLY = {"SoftwareTokenMfaConfiguration": {"Enabled": True}}


def _code(secret, steps_ahead=0):
    """The authenticator's code `steps_ahead` 30-second steps from now (pyotp, RFC 6238)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


@pytest.fixture
def mfa_pool(idp, make_pool, make_client):
    """Factory: a pool with the given MFA configuration, a password-flow client, and a user."""

    def factory(mfa_configuration, phone=None, **factors):
        pool = make_pool()
        idp.set_user_pool_mfa_config(UserPoolId=pool["Id"], MfaConfiguration=mfa_configuration, **factors)
        client = make_client(pool["Id"], ExplicitAuthFlows=FLOWS)
        username = unique("mfa")
        attrs = [{"Name": "email", "Value": f"{username}@example.com"}, {"Name": "email_verified", "Value": "true"}]
        if phone:
            attrs.append({"Name": "phone_number", "Value": phone})
        idp.admin_create_user(UserPoolId=pool["Id"], Username=username, UserAttributes=attrs, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True)
        return {"pool_id": pool["Id"], "client_id": client["ClientId"], "username": username}

    return factory


def _sign_in(unsigned_idp, s):
    return unsigned_idp.initiate_auth(
        ClientId=s["client_id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": s["username"], "PASSWORD": GOOD_PASSWORD},
    )


def _answer(unsigned_idp, s, challenge, session, **responses):
    return unsigned_idp.respond_to_auth_challenge(
        ClientId=s["client_id"], ChallengeName=challenge, Session=session,
        ChallengeResponses={"USERNAME": s["username"], **responses},
    )


def _enrol_with_access_token(unsigned_idp, s):
    """Signs in without MFA, then associates and verifies an authenticator; returns its secret."""
    access = _sign_in(unsigned_idp, s)["AuthenticationResult"]["AccessToken"]
    secret = unsigned_idp.associate_software_token(AccessToken=access)["SecretCode"]
    out = unsigned_idp.verify_software_token(AccessToken=access, UserCode=_code(secret), FriendlyDeviceName="phone")
    assert out["Status"] == "SUCCESS"
    return access, secret


def test_pool_mfa_configuration_round_trips(idp, make_pool):
    pool_id = make_pool()["Id"]
    fresh = idp.get_user_pool_mfa_config(UserPoolId=pool_id)
    assert fresh["MfaConfiguration"] == "OFF"
    assert fresh["SoftwareTokenMfaConfiguration"] == {"Enabled": False}
    assert "SmsMfaConfiguration" not in fresh and "EmailMfaConfiguration" not in fresh

    out = idp.set_user_pool_mfa_config(
        UserPoolId=pool_id, MfaConfiguration="OPTIONAL",
        SoftwareTokenMfaConfiguration={"Enabled": True},
        SmsMfaConfiguration={"SmsAuthenticationMessage": "Your sign-in code: {####}"},
        EmailMfaConfiguration={"Message": "Code {####}", "Subject": "Sign-in code"},
    )
    got = idp.get_user_pool_mfa_config(UserPoolId=pool_id)
    for view in (out, got):
        assert view["MfaConfiguration"] == "OPTIONAL"
        assert view["SoftwareTokenMfaConfiguration"] == {"Enabled": True}
        assert view["SmsMfaConfiguration"]["SmsAuthenticationMessage"] == "Your sign-in code: {####}"
        assert view["EmailMfaConfiguration"] == {"Message": "Code {####}", "Subject": "Sign-in code"}
    assert idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["MfaConfiguration"] == "OPTIONAL"


def test_mfa_cannot_be_required_without_a_factor(idp, make_pool):
    pool_id = make_pool()["Id"]
    with pytest.raises(ClientError) as e:
        idp.set_user_pool_mfa_config(UserPoolId=pool_id, MfaConfiguration="ON")
    assert error_code(e.value) == "InvalidParameterException"
    assert "can't turn on MFA and disable all MFA types" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        idp.set_user_pool_mfa_config(
            UserPoolId=pool_id, MfaConfiguration="ON",
            SmsMfaConfiguration={"SmsAuthenticationMessage": "no placeholder here"},
        )
    assert error_code(e.value) == "InvalidParameterException"
    # Nothing changed.
    assert idp.get_user_pool_mfa_config(UserPoolId=pool_id)["MfaConfiguration"] == "OFF"


def test_authenticator_enrolment_needs_totp_enabled_on_the_pool(unsigned_idp, mfa_pool):
    s = mfa_pool("OFF")
    access = _sign_in(unsigned_idp, s)["AuthenticationResult"]["AccessToken"]
    with pytest.raises(ClientError) as e:
        unsigned_idp.associate_software_token(AccessToken=access)
    assert error_code(e.value) == "SoftwareTokenMFANotFoundException"


def test_totp_enrolled_with_an_access_token_then_required_at_sign_in(idp, unsigned_idp, mfa_pool):
    s = mfa_pool("OPTIONAL", **TOTP_ONLY)
    access = _sign_in(unsigned_idp, s)["AuthenticationResult"]["AccessToken"]
    secret = unsigned_idp.associate_software_token(AccessToken=access)["SecretCode"]
    assert re.fullmatch(r"[A-Z2-7]{52}", secret), secret
    with pytest.raises(ClientError) as e:
        wrong = "000000" if _code(secret) != "000000" else "111111"
        unsigned_idp.verify_software_token(AccessToken=access, UserCode=wrong)
    assert error_code(e.value) == "EnableSoftwareTokenMFAException"
    assert unsigned_idp.verify_software_token(AccessToken=access, UserCode=_code(secret))["Status"] == "SUCCESS"

    # Verified but not enabled: an OPTIONAL pool does not ask for it yet.
    assert "UserMFASettingList" not in unsigned_idp.get_user(AccessToken=access)
    assert "AuthenticationResult" in _sign_in(unsigned_idp, s)

    unsigned_idp.set_user_mfa_preference(
        AccessToken=access, SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True})
    me = unsigned_idp.get_user(AccessToken=access)
    assert me["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    assert me["PreferredMfaSetting"] == "SOFTWARE_TOKEN_MFA"
    admin_view = idp.admin_get_user(UserPoolId=s["pool_id"], Username=s["username"])
    assert admin_view["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]

    challenge = _sign_in(unsigned_idp, s)
    assert challenge["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert "AuthenticationResult" not in challenge
    session = challenge["Session"]
    # A wrong code is refused and the session stays usable for another try.
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", session, SOFTWARE_TOKEN_MFA_CODE=_code(secret, -3))
    assert error_code(e.value) == "CodeMismatchException"
    # The code VerifySoftwareToken used is spent; the next step's code (one step of drift) works.
    code = _code(secret, 1)
    tokens = _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", session, SOFTWARE_TOKEN_MFA_CODE=code)
    assert tokens["AuthenticationResult"]["AccessToken"]
    # The session is used up, and the code works only once, even in a new sign-in.
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", session, SOFTWARE_TOKEN_MFA_CODE=code)
    assert error_code(e.value) == "NotAuthorizedException"
    again = _sign_in(unsigned_idp, s)
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", again["Session"], SOFTWARE_TOKEN_MFA_CODE=code)
    assert error_code(e.value) == "CodeMismatchException"
    assert e.value.response["Error"]["Message"] == "Invalid code or auth state for the user."


def test_required_mfa_enrols_the_authenticator_inside_the_sign_in(unsigned_idp, mfa_pool):
    s = mfa_pool("ON", **TOTP_ONLY)
    first = _sign_in(unsigned_idp, s)
    assert first["ChallengeName"] == "MFA_SETUP"
    assert first["ChallengeParameters"]["MFAS_CAN_SETUP"] == '["SOFTWARE_TOKEN_MFA"]'
    # The MFA_SETUP session cannot skip the enrolment.
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "MFA_SETUP", first["Session"])
    assert error_code(e.value) == "NotAuthorizedException"

    associated = unsigned_idp.associate_software_token(Session=first["Session"])
    secret = associated["SecretCode"]
    with pytest.raises(ClientError) as e:
        unsigned_idp.verify_software_token(Session=associated["Session"], UserCode=_code(secret, -3))
    assert error_code(e.value) == "EnableSoftwareTokenMFAException"
    verified = unsigned_idp.verify_software_token(
        Session=associated["Session"], UserCode=_code(secret), FriendlyDeviceName="my phone")
    assert verified["Status"] == "SUCCESS"
    done = _answer(unsigned_idp, s, "MFA_SETUP", verified["Session"])
    access = done["AuthenticationResult"]["AccessToken"]
    assert unsigned_idp.get_user(AccessToken=access)["UserMFASettingList"] == ["SOFTWARE_TOKEN_MFA"]
    # Each session of the enrolment works once.
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "MFA_SETUP", verified["Session"])
    assert error_code(e.value) == "NotAuthorizedException"

    second = _sign_in(unsigned_idp, s)
    assert second["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    assert second["ChallengeParameters"].get("FRIENDLY_DEVICE_NAME") == "my phone"
    tokens = _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", second["Session"], SOFTWARE_TOKEN_MFA_CODE=_code(secret, 1))
    assert tokens["AuthenticationResult"]["RefreshToken"]


def test_sms_mfa_sends_a_code_that_works_once_and_verifies_the_phone(endpoint, idp, unsigned_idp, mfa_pool):
    s = mfa_pool("OPTIONAL", phone="+15555550123",
                 SmsMfaConfiguration={"SmsAuthenticationMessage": "Sign-in code {####}"})
    idp.admin_set_user_mfa_preference(UserPoolId=s["pool_id"], Username=s["username"],
                                      SMSMfaSettings={"Enabled": True, "PreferredMfa": True})
    challenge = _sign_in(unsigned_idp, s)
    assert challenge["ChallengeName"] == "SMS_MFA"
    assert challenge["ChallengeParameters"]["CODE_DELIVERY_DELIVERY_MEDIUM"] == "SMS"
    assert challenge["ChallengeParameters"]["CODE_DELIVERY_DESTINATION"] == "+*******0123"
    code = latest_code(endpoint, s["pool_id"], s["username"], kind="mfa")
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SMS_MFA", challenge["Session"], SMS_MFA_CODE="000000" if code != "000000" else "111111")
    assert error_code(e.value) == "CodeMismatchException"
    # The session of an SMS challenge cannot answer another challenge.
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", challenge["Session"], SOFTWARE_TOKEN_MFA_CODE=code)
    assert error_code(e.value) == "NotAuthorizedException"
    tokens = _answer(unsigned_idp, s, "SMS_MFA", challenge["Session"], SMS_MFA_CODE=code)
    access = tokens["AuthenticationResult"]["AccessToken"]
    assert attrs_to_dict(unsigned_idp.get_user(AccessToken=access)["UserAttributes"])["phone_number_verified"] == "true"

    again = _sign_in(unsigned_idp, s)
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SMS_MFA", again["Session"], SMS_MFA_CODE=code)
    assert error_code(e.value) == "CodeMismatchException"


def test_an_sms_code_does_not_verify_a_number_changed_after_it_was_sent(endpoint, idp, unsigned_idp, mfa_pool):
    """A right SMS_MFA answer marks the number verified, so the code is for the number it went
    to: changed in between (with the tokens of an earlier sign-in), the answer is refused and the
    new number stays unverified."""
    s = mfa_pool("OPTIONAL", phone="+15555550123",
                 SmsMfaConfiguration={"SmsAuthenticationMessage": "Sign-in code {####}"})
    idp.admin_set_user_mfa_preference(UserPoolId=s["pool_id"], Username=s["username"],
                                      SMSMfaSettings={"Enabled": True, "PreferredMfa": True})
    first = _sign_in(unsigned_idp, s)
    code = latest_code(endpoint, s["pool_id"], s["username"], kind="mfa")
    access = _answer(unsigned_idp, s, "SMS_MFA", first["Session"], SMS_MFA_CODE=code)["AuthenticationResult"]["AccessToken"]
    second = _sign_in(unsigned_idp, s)
    mine = latest_code(endpoint, s["pool_id"], s["username"], kind="mfa", count=2)
    unsigned_idp.update_user_attributes(
        AccessToken=access, UserAttributes=[{"Name": "phone_number", "Value": "+15555550999"}])
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SMS_MFA", second["Session"], SMS_MFA_CODE=mine)
    assert error_code(e.value) == "CodeMismatchException"
    attrs = attrs_to_dict(idp.admin_get_user(UserPoolId=s["pool_id"], Username=s["username"])["UserAttributes"])
    assert attrs["phone_number"] == "+15555550999" and attrs.get("phone_number_verified") != "true"


def test_email_otp_as_a_second_factor(endpoint, idp, unsigned_idp, mfa_pool):
    s = mfa_pool("OPTIONAL", EmailMfaConfiguration={"Message": "Your code is {####}", "Subject": "Sign-in"})
    idp.admin_set_user_mfa_preference(UserPoolId=s["pool_id"], Username=s["username"],
                                      EmailMfaSettings={"Enabled": True})
    challenge = _sign_in(unsigned_idp, s)
    assert challenge["ChallengeName"] == "EMAIL_OTP"
    assert challenge["ChallengeParameters"]["CODE_DELIVERY_DELIVERY_MEDIUM"] == "EMAIL"
    code = latest_code(endpoint, s["pool_id"], s["username"], kind="mfa")
    tokens = _answer(unsigned_idp, s, "EMAIL_OTP", challenge["Session"], EMAIL_OTP_CODE=code)
    assert tokens["AuthenticationResult"]["IdToken"]


def test_two_factors_without_a_preference_are_a_choice(idp, unsigned_idp, mfa_pool):
    s = mfa_pool("OPTIONAL", phone="+15555550199",
                 SmsMfaConfiguration={"SmsAuthenticationMessage": "Code {####}"}, **TOTP_ONLY)
    access, secret = _enrol_with_access_token(unsigned_idp, s)
    unsigned_idp.set_user_mfa_preference(AccessToken=access, SoftwareTokenMfaSettings={"Enabled": True},
                                         SMSMfaSettings={"Enabled": True})
    choice = _sign_in(unsigned_idp, s)
    assert choice["ChallengeName"] == "SELECT_MFA_TYPE"
    assert choice["ChallengeParameters"]["MFAS_CAN_CHOOSE"] == '["SMS_MFA","SOFTWARE_TOKEN_MFA"]'
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SELECT_MFA_TYPE", choice["Session"], ANSWER="EMAIL_OTP")
    assert error_code(e.value) == "InvalidParameterException"
    chosen = _answer(unsigned_idp, s, "SELECT_MFA_TYPE", choice["Session"], ANSWER="SOFTWARE_TOKEN_MFA")
    assert chosen["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    tokens = _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", chosen["Session"], SOFTWARE_TOKEN_MFA_CODE=_code(secret, 1))
    assert tokens["AuthenticationResult"]["AccessToken"]


def test_preferences_need_the_factor(idp, mfa_pool):
    s = mfa_pool("OPTIONAL", **TOTP_ONLY)
    for settings in ({"SoftwareTokenMfaSettings": {"Enabled": True}}, {"SMSMfaSettings": {"Enabled": True}}):
        with pytest.raises(ClientError) as e:
            idp.admin_set_user_mfa_preference(UserPoolId=s["pool_id"], Username=s["username"], **settings)
        assert error_code(e.value) == "InvalidParameterException"
    assert "UserMFASettingList" not in idp.admin_get_user(UserPoolId=s["pool_id"], Username=s["username"])


def test_wrong_authenticator_codes_count_towards_the_lockout(unsigned_idp, mfa_pool):
    s = mfa_pool("OPTIONAL", **TOTP_ONLY)
    access, secret = _enrol_with_access_token(unsigned_idp, s)
    unsigned_idp.set_user_mfa_preference(AccessToken=access, SoftwareTokenMfaSettings={"Enabled": True})
    session = _sign_in(unsigned_idp, s)["Session"]
    for _ in range(5):
        with pytest.raises(ClientError) as e:
            _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", session, SOFTWARE_TOKEN_MFA_CODE=_code(secret, -3))
        assert error_code(e.value) == "CodeMismatchException"
    with pytest.raises(ClientError) as e:
        _answer(unsigned_idp, s, "SOFTWARE_TOKEN_MFA", session, SOFTWARE_TOKEN_MFA_CODE=_code(secret, 1))
    assert e.value.response["Error"]["Message"] == "Password attempts exceeded"
    # The password step is locked too.
    with pytest.raises(ClientError) as e:
        _sign_in(unsigned_idp, s)
    assert e.value.response["Error"]["Message"] == "Password attempts exceeded"
