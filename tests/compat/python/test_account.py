"""What users do to their own account through boto3: with an access token (UpdateUserAttributes,
DeleteUserAttributes, GetUserAttributeVerificationCode, VerifyUserAttribute, ChangePassword,
DeleteUser) and without one (ForgotPassword, ConfirmForgotPassword). Codes come from the
development outbox."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, at_once, attrs_to_dict, error_code, latest_code, unique

FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
NEW_PASSWORD = "Another-Horse-7staple"


@pytest.fixture
def account(idp, unsigned_idp, make_pool, make_client):
    """Factory: a signed-in user of an e-mail auto-verifying pool; returns ids and tokens."""

    def factory(**client_kwargs):
        pool = make_pool(AutoVerifiedAttributes=["email"])
        client = make_client(pool["Id"], ExplicitAuthFlows=FLOWS, **client_kwargs)
        username = unique("acct")
        idp.admin_create_user(
            UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"},
                            {"Name": "email_verified", "Value": "true"},
                            {"Name": "given_name", "Value": "Ann"}],
        )
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True)
        s = {"pool_id": pool["Id"], "client_id": client["ClientId"], "username": username}
        s.update(_sign_in(unsigned_idp, s)["AuthenticationResult"])
        return s

    return factory


def _sign_in(unsigned_idp, s, password=GOOD_PASSWORD):
    return unsigned_idp.initiate_auth(
        ClientId=s["client_id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": s["username"], "PASSWORD": password},
    )


def _attrs(unsigned_idp, s):
    return attrs_to_dict(unsigned_idp.get_user(AccessToken=s["AccessToken"])["UserAttributes"])


def test_a_changed_email_is_unverified_until_its_code_comes_back(endpoint, unsigned_idp, account):
    s = account()
    out = unsigned_idp.update_user_attributes(
        AccessToken=s["AccessToken"],
        UserAttributes=[{"Name": "email", "Value": "new@example.com"}, {"Name": "given_name", "Value": "Anna"}],
    )
    assert out["CodeDeliveryDetailsList"] == [
        {"Destination": "n***@e***", "DeliveryMedium": "EMAIL", "AttributeName": "email"}]
    attrs = _attrs(unsigned_idp, s)
    assert attrs["email"] == "new@example.com" and attrs["email_verified"] == "false"
    assert attrs["given_name"] == "Anna"

    code = latest_code(endpoint, s["pool_id"], s["username"], kind="attribute_verification")
    with pytest.raises(ClientError) as e:
        unsigned_idp.verify_user_attribute(AccessToken=s["AccessToken"], AttributeName="email",
                                           Code="000000" if code != "000000" else "111111")
    assert error_code(e.value) == "CodeMismatchException"
    unsigned_idp.verify_user_attribute(AccessToken=s["AccessToken"], AttributeName="email", Code=code)
    assert _attrs(unsigned_idp, s)["email_verified"] == "true"
    # The code is used up.
    with pytest.raises(ClientError) as e:
        unsigned_idp.verify_user_attribute(AccessToken=s["AccessToken"], AttributeName="email", Code=code)
    assert error_code(e.value) in ("ExpiredCodeException", "CodeMismatchException")


def test_a_code_sent_to_the_old_address_does_not_verify_a_new_one(
        endpoint, idp, unsigned_idp, make_pool, make_client):
    """A verification code is for the address it went to: after the user changes the attribute,
    the code the old address received is refused (otherwise anyone could mark an address they
    do not own verified with a code from their own). Here the pool sends no code on a change, so
    the old code is still stored when the new address is tried."""
    pool = make_pool()
    client = make_client(pool["Id"], ExplicitAuthFlows=FLOWS)
    username = unique("addr")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": f"{username}@mine.example"}])
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD,
                                Permanent=True)
    s = {"pool_id": pool["Id"], "client_id": client["ClientId"], "username": username}
    s.update(_sign_in(unsigned_idp, s)["AuthenticationResult"])
    unsigned_idp.get_user_attribute_verification_code(AccessToken=s["AccessToken"], AttributeName="email")
    mine = latest_code(endpoint, s["pool_id"], username, kind="attribute_verification")
    unsigned_idp.update_user_attributes(
        AccessToken=s["AccessToken"], UserAttributes=[{"Name": "email", "Value": "victim@theirs.example"}])
    with pytest.raises(ClientError) as e:
        unsigned_idp.verify_user_attribute(AccessToken=s["AccessToken"], AttributeName="email", Code=mine)
    assert error_code(e.value) == "CodeMismatchException"
    attrs = _attrs(unsigned_idp, s)
    assert attrs["email"] == "victim@theirs.example" and attrs.get("email_verified") != "true"
    # A code sent to the address now held verifies it.
    unsigned_idp.get_user_attribute_verification_code(AccessToken=s["AccessToken"], AttributeName="email")
    theirs = latest_code(endpoint, s["pool_id"], username, kind="attribute_verification", count=2)
    unsigned_idp.verify_user_attribute(AccessToken=s["AccessToken"], AttributeName="email", Code=theirs)
    assert _attrs(unsigned_idp, s)["email_verified"] == "true"


def test_a_change_whose_code_is_refused_is_not_made(unsigned_idp, account):
    """In a pool that verifies e-mail, a new address and its code are one write: once the send
    limit refuses more codes, UpdateUserAttributes fails with LimitExceededException and the
    user keeps the verified address they had."""
    s = account()
    refused = None
    for _ in range(30):
        try:
            unsigned_idp.get_user_attribute_verification_code(AccessToken=s["AccessToken"], AttributeName="email")
        except ClientError as e:
            refused = e
            break
    assert refused is not None and error_code(refused) == "LimitExceededException"
    with pytest.raises(ClientError) as e:
        unsigned_idp.update_user_attributes(
            AccessToken=s["AccessToken"],
            UserAttributes=[{"Name": "email", "Value": "elsewhere@example.com"}, {"Name": "given_name", "Value": "Bo"}])
    assert error_code(e.value) == "LimitExceededException"
    attrs = _attrs(unsigned_idp, s)
    assert attrs["email"] == f"{s['username']}@example.com" and attrs["email_verified"] == "true"
    assert attrs["given_name"] == "Ann"


def test_an_administrators_reset_is_not_stopped_by_the_send_limit(idp, unsigned_idp, account):
    """ForgotPassword needs no sign-in, and its sends are limited; an administrator's
    AdminResetUserPassword is not held to that limit, so nobody who knows a user name can keep a
    password the administrator meant to end."""
    s = account()
    refused = None
    for _ in range(30):
        try:
            unsigned_idp.forgot_password(ClientId=s["client_id"], Username=s["username"])
        except ClientError as e:
            refused = e
            break
    assert refused is not None and error_code(refused) == "LimitExceededException"
    idp.admin_reset_user_password(UserPoolId=s["pool_id"], Username=s["username"])
    assert idp.admin_get_user(UserPoolId=s["pool_id"], Username=s["username"])["UserStatus"] == "RESET_REQUIRED"
    with pytest.raises(ClientError) as e:
        _sign_in(unsigned_idp, s)
    assert error_code(e.value) == "PasswordResetRequiredException"


def test_a_verification_code_can_be_asked_for_again(endpoint, unsigned_idp, account):
    s = account()
    out = unsigned_idp.get_user_attribute_verification_code(AccessToken=s["AccessToken"], AttributeName="email")
    assert out["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    code = latest_code(endpoint, s["pool_id"], s["username"], kind="attribute_verification")
    unsigned_idp.verify_user_attribute(AccessToken=s["AccessToken"], AttributeName="email", Code=code)
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_user_attribute_verification_code(AccessToken=s["AccessToken"], AttributeName="given_name")
    assert error_code(e.value) == "InvalidParameterException"


def test_users_cannot_write_verification_flags_or_attributes_their_client_may_not(unsigned_idp, account):
    s = account()
    with pytest.raises(ClientError) as e:
        unsigned_idp.update_user_attributes(
            AccessToken=s["AccessToken"], UserAttributes=[{"Name": "email_verified", "Value": "true"}])
    assert error_code(e.value) == "NotAuthorizedException"
    assert e.value.response["Error"]["Message"] == "A client attempted to write unauthorized attribute"

    limited = account(WriteAttributes=["given_name"])
    unsigned_idp.update_user_attributes(
        AccessToken=limited["AccessToken"], UserAttributes=[{"Name": "given_name", "Value": "Bo"}])
    with pytest.raises(ClientError) as e:
        unsigned_idp.update_user_attributes(
            AccessToken=limited["AccessToken"], UserAttributes=[{"Name": "family_name", "Value": "X"}])
    assert error_code(e.value) == "NotAuthorizedException"
    attrs = _attrs(unsigned_idp, limited)
    assert attrs["given_name"] == "Bo" and "family_name" not in attrs


def test_sign_up_is_held_to_the_same_write_rules(idp, unsigned_idp, make_pool, make_client):
    """Security checklist A16: a user signing up cannot mark an address verified, nor write an
    attribute the client may not; nothing is created when refused."""
    pool = make_pool(AutoVerifiedAttributes=["email"])
    open_client = make_client(pool["Id"], ExplicitAuthFlows=FLOWS)
    limited = make_client(pool["Id"], ExplicitAuthFlows=FLOWS, WriteAttributes=["email"])
    cases = [
        (open_client["ClientId"], [{"Name": "email_verified", "Value": "true"}]),
        (open_client["ClientId"], [{"Name": "phone_number", "Value": "+15555550100"},
                                   {"Name": "phone_number_verified", "Value": "true"}]),
        (limited["ClientId"], [{"Name": "given_name", "Value": "Eve"}]),
    ]
    for client_id, extra in cases:
        username = unique("eve")
        with pytest.raises(ClientError) as e:
            unsigned_idp.sign_up(ClientId=client_id, Username=username, Password=GOOD_PASSWORD,
                                 UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}, *extra])
        assert error_code(e.value) == "NotAuthorizedException", extra
        assert e.value.response["Error"]["Message"] == "A client attempted to write unauthorized attribute"
        with pytest.raises(ClientError) as e:
            idp.admin_get_user(UserPoolId=pool["Id"], Username=username)
        assert error_code(e.value) == "UserNotFoundException"
    # The same sign-up without the flag goes through, unverified until the code comes back.
    username = unique("eve")
    unsigned_idp.sign_up(ClientId=limited["ClientId"], Username=username, Password=GOOD_PASSWORD,
                         UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}])
    attrs = {a["Name"]: a["Value"] for a in idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserAttributes"]}
    assert attrs.get("email_verified", "false") == "false"


def test_delete_user_attributes(unsigned_idp, account):
    s = account()
    unsigned_idp.delete_user_attributes(AccessToken=s["AccessToken"], UserAttributeNames=["given_name"])
    assert "given_name" not in _attrs(unsigned_idp, s)
    with pytest.raises(ClientError) as e:
        unsigned_idp.delete_user_attributes(AccessToken=s["AccessToken"], UserAttributeNames=["no_such"])
    assert error_code(e.value) == "InvalidParameterException"


def test_change_password_needs_the_current_one(unsigned_idp, account):
    s = account()
    with pytest.raises(ClientError) as e:
        unsigned_idp.change_password(AccessToken=s["AccessToken"], PreviousPassword="Wrong-Pass-1",
                                     ProposedPassword=NEW_PASSWORD)
    assert error_code(e.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        unsigned_idp.change_password(AccessToken=s["AccessToken"], PreviousPassword=GOOD_PASSWORD,
                                     ProposedPassword="short")
    assert error_code(e.value) == "InvalidPasswordException"
    unsigned_idp.change_password(AccessToken=s["AccessToken"], PreviousPassword=GOOD_PASSWORD,
                                 ProposedPassword=NEW_PASSWORD)
    assert _sign_in(unsigned_idp, s, NEW_PASSWORD)["AuthenticationResult"]
    with pytest.raises(ClientError) as e:
        _sign_in(unsigned_idp, s, GOOD_PASSWORD)
    assert error_code(e.value) == "NotAuthorizedException"


def test_changes_sent_at_once_all_land(unsigned_idp, account):
    """A password change reads the user, hashes, then writes: attribute changes landing meanwhile
    are kept (a change is written only over the user as it read them, else made again)."""
    s = account()
    password = GOOD_PASSWORD
    for round in range(8):
        new = f"{NEW_PASSWORD}-{round}"
        token = s["AccessToken"]

        def change(name, value):
            attrs = [{"Name": name, "Value": value}]
            return lambda: unsigned_idp.update_user_attributes(AccessToken=token, UserAttributes=attrs)

        answers = at_once(
            lambda: unsigned_idp.change_password(AccessToken=token, PreviousPassword=password,
                                                 ProposedPassword=new),
            change("given_name", f"Ann {round}"),
            change("family_name", f"Lee {round}"),
            change("locale", f"l{round}"),
        )
        assert answers == ["ok"] * 4, f"round {round}"
        attrs = _attrs(unsigned_idp, s)
        assert (attrs["given_name"], attrs["family_name"], attrs["locale"]) == (
            f"Ann {round}", f"Lee {round}", f"l{round}"), f"round {round}"
        assert _sign_in(unsigned_idp, s, new)["AuthenticationResult"], f"round {round}"
        password = new


def test_two_password_changes_from_one_password_one_lands(unsigned_idp, account):
    """Two ChangePassword calls proving the same current password at once: one lands, the other
    is told the previous password is wrong (it no longer is the user's), and only the winner's
    new password signs in."""
    s = account()
    token = s["AccessToken"]
    news = [f"{NEW_PASSWORD}-a", f"{NEW_PASSWORD}-b"]
    answers = at_once(*[
        (lambda new=new: unsigned_idp.change_password(AccessToken=token, PreviousPassword=GOOD_PASSWORD,
                                                      ProposedPassword=new))
        for new in news
    ])
    assert sorted(answers) == ["NotAuthorizedException", "ok"], answers
    winner, loser = (news[0], news[1]) if answers[0] == "ok" else (news[1], news[0])
    assert _sign_in(unsigned_idp, s, winner)["AuthenticationResult"]
    with pytest.raises(ClientError) as e:
        _sign_in(unsigned_idp, s, loser)
    assert error_code(e.value) == "NotAuthorizedException"


def test_delete_user_ends_the_account_and_its_tokens(unsigned_idp, account):
    s = account()
    unsigned_idp.delete_user(AccessToken=s["AccessToken"])
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_user(AccessToken=s["AccessToken"])
    assert error_code(e.value) in ("NotAuthorizedException", "UserNotFoundException")
    with pytest.raises(ClientError) as e:
        unsigned_idp.initiate_auth(ClientId=s["client_id"], AuthFlow="REFRESH_TOKEN_AUTH",
                                   AuthParameters={"REFRESH_TOKEN": s["RefreshToken"]})
    assert error_code(e.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        _sign_in(unsigned_idp, s)
    assert error_code(e.value) in ("NotAuthorizedException", "UserNotFoundException")


def test_forgot_password_then_confirm_with_the_code(endpoint, unsigned_idp, account):
    s = account()
    out = unsigned_idp.forgot_password(ClientId=s["client_id"], Username=s["username"])
    assert out["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"
    assert out["CodeDeliveryDetails"]["Destination"] == f"{s['username'][0]}***@e***"
    # The old password keeps working until the reset is confirmed.
    assert _sign_in(unsigned_idp, s)["AuthenticationResult"]
    code = latest_code(endpoint, s["pool_id"], s["username"], kind="forgot_password")

    def confirm(code, password):
        unsigned_idp.confirm_forgot_password(ClientId=s["client_id"], Username=s["username"],
                                             ConfirmationCode=code, Password=password)

    with pytest.raises(ClientError) as e:
        confirm("000000" if code != "000000" else "111111", NEW_PASSWORD)
    assert error_code(e.value) == "CodeMismatchException"
    # A password the policy refuses does not use the code up.
    with pytest.raises(ClientError) as e:
        confirm(code, "weak")
    assert error_code(e.value) == "InvalidPasswordException"
    confirm(code, NEW_PASSWORD)
    assert _sign_in(unsigned_idp, s, NEW_PASSWORD)["AuthenticationResult"]
    with pytest.raises(ClientError) as e:
        _sign_in(unsigned_idp, s, GOOD_PASSWORD)
    assert error_code(e.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        confirm(code, "Third-Horse-5battery")
    assert error_code(e.value) in ("ExpiredCodeException", "CodeMismatchException")


def test_forgot_password_for_unknown_users(idp, unsigned_idp, make_pool, make_client):
    pool_id = make_pool()["Id"]
    legacy = make_client(pool_id, PreventUserExistenceErrors="LEGACY")
    with pytest.raises(ClientError) as e:
        unsigned_idp.forgot_password(ClientId=legacy["ClientId"], Username="nobody-here")
    assert error_code(e.value) == "UserNotFoundException"
    hiding = make_client(pool_id, PreventUserExistenceErrors="ENABLED")
    out = unsigned_idp.forgot_password(ClientId=hiding["ClientId"], Username="nobody-here")
    assert out["CodeDeliveryDetails"] == {"Destination": "n***@e***", "DeliveryMedium": "EMAIL", "AttributeName": "email"}


def test_forgot_password_needs_a_verified_destination(idp, unsigned_idp, make_pool, make_client):
    pool_id = make_pool()["Id"]
    client = make_client(pool_id)
    username = unique("nover")
    idp.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}])
    with pytest.raises(ClientError) as e:
        unsigned_idp.forgot_password(ClientId=client["ClientId"], Username=username)
    assert error_code(e.value) == "InvalidParameterException"
