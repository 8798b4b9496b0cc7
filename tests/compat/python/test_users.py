"""Users: SignUp, ConfirmSignUp, ResendConfirmationCode and the Admin* user actions."""

import datetime
import uuid

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import (
    GOOD_PASSWORD,
    UUID_RE,
    attrs_to_dict,
    error_code,
    latest_code,
    outbox,
    unique,
    wait_for_messages,
)

USER_STATUSES = {
    "UNCONFIRMED", "CONFIRMED", "ARCHIVED", "COMPROMISED", "UNKNOWN",
    "RESET_REQUIRED", "FORCE_CHANGE_PASSWORD", "EXTERNAL_PROVIDER",
}


def assert_user_shape(user, username_key="Username", attrs_key="Attributes"):
    assert isinstance(user[username_key], str) and user[username_key]
    assert isinstance(user["UserCreateDate"], datetime.datetime)
    assert isinstance(user["UserLastModifiedDate"], datetime.datetime)
    assert isinstance(user["Enabled"], bool)
    assert user["UserStatus"] in USER_STATUSES
    attrs = attrs_to_dict(user[attrs_key])
    assert UUID_RE.match(attrs["sub"]), attrs
    return attrs


# ---------------------------------------------------------------------------
# SignUp / ConfirmSignUp / ResendConfirmationCode
# ---------------------------------------------------------------------------

def test_sign_up_response_shape(signed_up):
    u = signed_up()
    resp = u["response"]
    assert resp["UserConfirmed"] is False
    assert UUID_RE.match(resp["UserSub"]), resp["UserSub"]
    cdd = resp["CodeDeliveryDetails"]
    assert cdd["DeliveryMedium"] == "EMAIL"
    assert cdd["AttributeName"] == "email"
    assert isinstance(cdd["Destination"], str) and cdd["Destination"]
    # Cognito masks the destination (e.g. u***@e***)
    assert cdd["Destination"] != u["email"]


def test_sign_up_creates_unconfirmed_user(idp, pool, signed_up):
    u = signed_up()
    user = idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])
    assert user["Username"] == u["username"]
    assert user["UserStatus"] == "UNCONFIRMED"
    assert user["Enabled"] is True
    attrs = assert_user_shape(user, attrs_key="UserAttributes")
    assert attrs["sub"] == u["response"]["UserSub"]
    assert attrs["email"] == u["email"]
    assert attrs.get("email_verified", "false") == "false"


def test_sign_up_sends_code_to_outbox(endpoint, pool, signed_up):
    u = signed_up()
    msgs = wait_for_messages(endpoint, pool["Id"], u["username"], "signup")
    assert len(msgs) == 1
    m = msgs[0]
    assert m["to"] == u["email"]
    assert m["username"] == u["username"]
    assert m["code"].isdigit() and len(m["code"]) == 6, m
    assert m["code"] in m["body"]
    assert m["sent_at"]


def test_confirm_sign_up(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    code = latest_code(endpoint, pool["Id"], u["username"])
    resp = unsigned_idp.confirm_sign_up(
        ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=code
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    user = idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])
    assert user["UserStatus"] == "CONFIRMED"
    assert attrs_to_dict(user["UserAttributes"])["email_verified"] == "true"


def test_sign_up_duplicate_username(unsigned_idp, app_client, signed_up):
    u = signed_up()
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(
            ClientId=app_client["ClientId"], Username=u["username"], Password=GOOD_PASSWORD
        )
    assert error_code(ei.value) == "UsernameExistsException"


@pytest.mark.parametrize(
    "password",
    ["short1A", "alllowercase123", "ALLUPPERCASE123", "NoNumbersHere"],
    ids=["too-short", "no-upper", "no-lower", "no-number"],
)
def test_sign_up_weak_password(idp, unsigned_idp, pool, app_client, password):
    username = unique("user")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=app_client["ClientId"], Username=username, Password=password)
    assert error_code(ei.value) == "InvalidPasswordException"
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=pool["Id"], Username=username)
    assert error_code(ei.value) == "UserNotFoundException"


def test_sign_up_symbols_required(unsigned_idp, make_pool, make_client):
    pool = make_pool(
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 8,
                "RequireUppercase": False,
                "RequireLowercase": False,
                "RequireNumbers": False,
                "RequireSymbols": True,
            }
        }
    )
    client = make_client(pool["Id"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=client["ClientId"], Username=unique("u"), Password="nosymbols")
    assert error_code(ei.value) == "InvalidPasswordException"
    ok = unsigned_idp.sign_up(ClientId=client["ClientId"], Username=unique("u"), Password="has-symbol")
    assert ok["UserConfirmed"] is False


def test_sign_up_unknown_client(unsigned_idp):
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(
            ClientId="nosuchclient0000000000000", Username=unique("u"), Password=GOOD_PASSWORD
        )
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_sign_up_unknown_attribute(unsigned_idp, app_client):
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(
            ClientId=app_client["ClientId"],
            Username=unique("u"),
            Password=GOOD_PASSWORD,
            UserAttributes=[{"Name": "custom:notinschema", "Value": "x"}],
        )
    assert error_code(ei.value) == "InvalidParameterException"


def test_sign_up_admin_only_pool(unsigned_idp, make_pool, make_client):
    pool = make_pool(AdminCreateUserConfig={"AllowAdminCreateUserOnly": True})
    client = make_client(pool["Id"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=client["ClientId"], Username=unique("u"), Password=GOOD_PASSWORD)
    assert error_code(ei.value) == "NotAuthorizedException"


def test_resend_confirmation_code(endpoint, idp, unsigned_idp, pool, app_client, signed_up):
    u = signed_up()
    wait_for_messages(endpoint, pool["Id"], u["username"], "signup", count=1)
    resp = unsigned_idp.resend_confirmation_code(ClientId=app_client["ClientId"], Username=u["username"])
    cdd = resp["CodeDeliveryDetails"]
    assert cdd["DeliveryMedium"] == "EMAIL"
    assert cdd["AttributeName"] == "email"
    msgs = wait_for_messages(endpoint, pool["Id"], u["username"], "signup", count=2)
    assert len(msgs) == 2
    assert msgs[0]["sent_at"] <= msgs[1]["sent_at"]  # oldest first
    unsigned_idp.confirm_sign_up(
        ClientId=app_client["ClientId"], Username=u["username"], ConfirmationCode=msgs[-1]["code"]
    )
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "CONFIRMED"


def test_resend_confirmation_code_unknown_user(unsigned_idp, make_pool, make_client):
    pool = make_pool(AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"], PreventUserExistenceErrors="LEGACY")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.resend_confirmation_code(ClientId=client["ClientId"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"


def test_confirm_sign_up_unknown_user(unsigned_idp, make_pool, make_client):
    pool = make_pool(AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"], PreventUserExistenceErrors="LEGACY")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=client["ClientId"], Username=unique("ghost"), ConfirmationCode="123456"
        )
    assert error_code(ei.value) == "UserNotFoundException"


# ---------------------------------------------------------------------------
# AdminCreateUser / AdminConfirmSignUp / AdminGetUser
# ---------------------------------------------------------------------------

def test_admin_create_user_shape(endpoint, idp, pool):
    username = unique("user")
    email = f"{username}@example.com"
    user = idp.admin_create_user(
        UserPoolId=pool["Id"],
        Username=username,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "given_name", "Value": "Ada"},
        ],
        DesiredDeliveryMediums=["EMAIL"],
    )["User"]
    assert user["Username"] == username
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert user["Enabled"] is True
    attrs = assert_user_shape(user)
    assert attrs["email"] == email
    assert attrs["given_name"] == "Ada"
    msgs = wait_for_messages(endpoint, pool["Id"], username, "temporary_password")
    assert len(msgs) == 1
    assert msgs[0]["to"] == email
    temp = msgs[0]["code"]
    assert isinstance(temp, str) and len(temp) >= 8
    assert temp in msgs[0]["body"]


def test_admin_create_user_with_given_temporary_password(endpoint, idp, pool):
    username = unique("user")
    idp.admin_create_user(
        UserPoolId=pool["Id"],
        Username=username,
        TemporaryPassword="Temp-Pass-123x",
        UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"},
                        {"Name": "email_verified", "Value": "true"}],
        DesiredDeliveryMediums=["EMAIL"],
    )
    msgs = wait_for_messages(endpoint, pool["Id"], username, "temporary_password")
    assert msgs[-1]["code"] == "Temp-Pass-123x"


def test_admin_create_user_suppress_sends_nothing(endpoint, idp, pool):
    username = unique("user")
    idp.admin_create_user(
        UserPoolId=pool["Id"],
        Username=username,
        UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}],
        MessageAction="SUPPRESS",
    )
    assert outbox(endpoint, pool["Id"], username) == []


def test_admin_create_user_duplicate(idp, pool):
    username = unique("user")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    with pytest.raises(ClientError) as ei:
        idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    assert error_code(ei.value) == "UsernameExistsException"


def test_admin_create_user_weak_temporary_password(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_create_user(
            UserPoolId=pool["Id"], Username=unique("u"), TemporaryPassword="weak", MessageAction="SUPPRESS"
        )
    assert error_code(ei.value) == "InvalidPasswordException"


def test_admin_create_user_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.admin_create_user(UserPoolId="us-east-1_NoSuchPool5", Username="x", MessageAction="SUPPRESS")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_subs_are_unique_uuids(idp, pool):
    subs = set()
    for _ in range(3):
        user = idp.admin_create_user(UserPoolId=pool["Id"], Username=unique("u"), MessageAction="SUPPRESS")["User"]
        sub = attrs_to_dict(user["Attributes"])["sub"]
        assert UUID_RE.match(sub)
        uuid.UUID(sub)
        subs.add(sub)
    assert len(subs) == 3


def test_admin_confirm_sign_up(idp, pool, signed_up):
    u = signed_up()
    idp.admin_confirm_sign_up(UserPoolId=pool["Id"], Username=u["username"])
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=u["username"])["UserStatus"] == "CONFIRMED"


def test_admin_confirm_sign_up_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_confirm_sign_up(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"


def test_admin_get_user_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"


def test_admin_get_user_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId="us-east-1_NoSuchPool4", Username="x")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_users_are_scoped_to_their_pool(idp, make_pool):
    a, b = make_pool(), make_pool()
    username = unique("u")
    idp.admin_create_user(UserPoolId=a["Id"], Username=username, MessageAction="SUPPRESS")
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=b["Id"], Username=username)
    assert error_code(ei.value) == "UserNotFoundException"
    # the same name is free in the other pool
    idp.admin_create_user(UserPoolId=b["Id"], Username=username, MessageAction="SUPPRESS")


# ---------------------------------------------------------------------------
# E-mail as username
# ---------------------------------------------------------------------------

@pytest.fixture
def email_pool(make_pool):
    return make_pool(UsernameAttributes=["email"], AutoVerifiedAttributes=["email"])


def test_email_username_pool_stores_uuid(endpoint, idp, email_pool):
    email = f"{unique('ada')}@example.com"
    user = idp.admin_create_user(
        UserPoolId=email_pool["Id"],
        Username=email,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        DesiredDeliveryMediums=["EMAIL"],
    )["User"]
    assert UUID_RE.match(user["Username"]), user["Username"]
    attrs = attrs_to_dict(user["Attributes"])
    assert attrs["email"] == email
    by_email = idp.admin_get_user(UserPoolId=email_pool["Id"], Username=email)
    assert by_email["Username"] == user["Username"]
    by_uuid = idp.admin_get_user(UserPoolId=email_pool["Id"], Username=user["Username"])
    assert by_uuid["Username"] == user["Username"]
    assert attrs_to_dict(by_uuid["UserAttributes"])["sub"] == attrs["sub"]
    msgs = wait_for_messages(endpoint, email_pool["Id"], user["Username"], "temporary_password")
    assert msgs[0]["to"] == email


def test_email_username_pool_rejects_non_email_username(idp, email_pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_create_user(UserPoolId=email_pool["Id"], Username="not-an-email", MessageAction="SUPPRESS")
    assert error_code(ei.value) == "InvalidParameterException"


def test_email_username_pool_duplicate_email(idp, email_pool):
    email = f"{unique('dup')}@example.com"
    idp.admin_create_user(
        UserPoolId=email_pool["Id"], Username=email,
        UserAttributes=[{"Name": "email", "Value": email}], MessageAction="SUPPRESS",
    )
    with pytest.raises(ClientError) as ei:
        idp.admin_create_user(
            UserPoolId=email_pool["Id"], Username=email,
            UserAttributes=[{"Name": "email", "Value": email}], MessageAction="SUPPRESS",
        )
    assert error_code(ei.value) == "UsernameExistsException"


def test_email_username_pool_sign_up(endpoint, idp, unsigned_idp, email_pool, make_client):
    client = make_client(email_pool["Id"])
    email = f"{unique('bob')}@example.com"
    resp = unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=email, Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    sub = resp["UserSub"]
    user = idp.admin_get_user(UserPoolId=email_pool["Id"], Username=email)
    assert UUID_RE.match(user["Username"])
    assert attrs_to_dict(user["UserAttributes"])["sub"] == sub
    code = latest_code(endpoint, email_pool["Id"], user["Username"])
    unsigned_idp.confirm_sign_up(ClientId=client["ClientId"], Username=email, ConfirmationCode=code)
    assert idp.admin_get_user(UserPoolId=email_pool["Id"], Username=email)["UserStatus"] == "CONFIRMED"


# ---------------------------------------------------------------------------
# Attribute updates, enable/disable, delete
# ---------------------------------------------------------------------------

def test_admin_update_user_attributes(idp, pool, admin_user):
    user = admin_user()
    before = idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])
    idp.admin_update_user_attributes(
        UserPoolId=pool["Id"],
        Username=user["Username"],
        UserAttributes=[
            {"Name": "name", "Value": "Ada Lovelace"},
            {"Name": "given_name", "Value": "Ada"},
        ],
    )
    after = idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])
    attrs = attrs_to_dict(after["UserAttributes"])
    assert attrs["name"] == "Ada Lovelace"
    assert attrs["given_name"] == "Ada"
    assert attrs["sub"] == attrs_to_dict(before["UserAttributes"])["sub"]
    assert after["UserLastModifiedDate"] >= before["UserLastModifiedDate"]


def test_admin_update_email_verified_flag(idp, pool, admin_user):
    user = admin_user()
    new_email = f"{unique('new')}@example.com"
    idp.admin_update_user_attributes(
        UserPoolId=pool["Id"],
        Username=user["Username"],
        UserAttributes=[{"Name": "email", "Value": new_email}, {"Name": "email_verified", "Value": "true"}],
    )
    attrs = attrs_to_dict(idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["UserAttributes"])
    assert attrs["email"] == new_email
    assert attrs["email_verified"] == "true"


def test_admin_update_email_sends_verification_code(endpoint, idp, pool, admin_user):
    user = admin_user()
    new_email = f"{unique('chg')}@example.com"
    idp.admin_update_user_attributes(
        UserPoolId=pool["Id"], Username=user["Username"],
        UserAttributes=[{"Name": "email", "Value": new_email}],
    )
    msgs = wait_for_messages(endpoint, pool["Id"], user["Username"], "attribute_verification")
    assert msgs[-1]["to"] == new_email
    attrs = attrs_to_dict(idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["UserAttributes"])
    assert attrs["email"] == new_email
    assert attrs["email_verified"] == "false"


def test_admin_update_user_attributes_rejects_immutable_sub(idp, pool, admin_user):
    user = admin_user()
    with pytest.raises(ClientError) as ei:
        idp.admin_update_user_attributes(
            UserPoolId=pool["Id"], Username=user["Username"],
            UserAttributes=[{"Name": "sub", "Value": str(uuid.uuid4())}],
        )
    assert error_code(ei.value) == "InvalidParameterException"


def test_admin_update_user_attributes_unknown_attribute(idp, pool, admin_user):
    user = admin_user()
    with pytest.raises(ClientError) as ei:
        idp.admin_update_user_attributes(
            UserPoolId=pool["Id"], Username=user["Username"],
            UserAttributes=[{"Name": "custom:nope", "Value": "x"}],
        )
    assert error_code(ei.value) == "InvalidParameterException"


def test_admin_update_user_attributes_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_update_user_attributes(
            UserPoolId=pool["Id"], Username=unique("ghost"),
            UserAttributes=[{"Name": "name", "Value": "x"}],
        )
    assert error_code(ei.value) == "UserNotFoundException"


def test_admin_delete_user_attributes(idp, pool, admin_user):
    user = admin_user()
    idp.admin_update_user_attributes(
        UserPoolId=pool["Id"], Username=user["Username"],
        UserAttributes=[{"Name": "name", "Value": "Temp"}, {"Name": "family_name", "Value": "Keep"}],
    )
    idp.admin_delete_user_attributes(
        UserPoolId=pool["Id"], Username=user["Username"], UserAttributeNames=["name"]
    )
    attrs = attrs_to_dict(idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["UserAttributes"])
    assert "name" not in attrs
    assert attrs["family_name"] == "Keep"


def test_admin_delete_user_attributes_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_delete_user_attributes(
            UserPoolId=pool["Id"], Username=unique("ghost"), UserAttributeNames=["name"]
        )
    assert error_code(ei.value) == "UserNotFoundException"


def test_admin_disable_and_enable_user(idp, pool, admin_user):
    user = admin_user()
    idp.admin_disable_user(UserPoolId=pool["Id"], Username=user["Username"])
    got = idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])
    assert got["Enabled"] is False
    assert got["UserStatus"] == "CONFIRMED"
    idp.admin_enable_user(UserPoolId=pool["Id"], Username=user["Username"])
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["Enabled"] is True


def test_admin_disable_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_disable_user(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"
    with pytest.raises(ClientError) as ei:
        idp.admin_enable_user(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"


def test_admin_delete_user(idp, pool, admin_user):
    user = admin_user()
    idp.admin_delete_user(UserPoolId=pool["Id"], Username=user["Username"])
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])
    assert error_code(ei.value) == "UserNotFoundException"
    with pytest.raises(ClientError) as ei:
        idp.admin_delete_user(UserPoolId=pool["Id"], Username=user["Username"])
    assert error_code(ei.value) == "UserNotFoundException"
    listed = idp.list_users(UserPoolId=pool["Id"])["Users"]
    assert user["Username"] not in {u["Username"] for u in listed}


def test_deleted_username_can_be_reused(idp, unsigned_idp, pool, app_client, admin_user):
    user = admin_user()
    idp.admin_delete_user(UserPoolId=pool["Id"], Username=user["Username"])
    resp = unsigned_idp.sign_up(
        ClientId=app_client["ClientId"], Username=user["Username"], Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": "again@example.com"}],
    )
    old_sub = attrs_to_dict(user["Attributes"])["sub"]
    assert resp["UserSub"] != old_sub


# ---------------------------------------------------------------------------
# Passwords
# ---------------------------------------------------------------------------

def test_admin_set_user_password_permanent(idp, pool):
    username = unique("u")
    user = idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")["User"]
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserStatus"] == "CONFIRMED"


def test_admin_set_user_password_temporary(idp, pool, admin_user):
    user = admin_user()
    idp.admin_set_user_password(
        UserPoolId=pool["Id"], Username=user["Username"], Password="Another-Pass-77", Permanent=False
    )
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["UserStatus"] == "FORCE_CHANGE_PASSWORD"


def test_admin_set_user_password_policy(idp, pool, admin_user):
    user = admin_user()
    with pytest.raises(ClientError) as ei:
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username=user["Username"], Password="weak", Permanent=True)
    assert error_code(ei.value) == "InvalidPasswordException"
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["UserStatus"] == "CONFIRMED"


def test_admin_set_user_password_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username=unique("ghost"), Password=GOOD_PASSWORD, Permanent=True)
    assert error_code(ei.value) == "UserNotFoundException"


def test_admin_reset_user_password(endpoint, idp, pool, admin_user):
    user = admin_user()
    resp = idp.admin_reset_user_password(UserPoolId=pool["Id"], Username=user["Username"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=user["Username"])["UserStatus"] == "RESET_REQUIRED"
    msgs = wait_for_messages(endpoint, pool["Id"], user["Username"], "forgot_password")
    assert msgs[-1]["to"] == attrs_to_dict(user["Attributes"])["email"]
    assert msgs[-1]["code"]


def test_admin_reset_user_password_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_reset_user_password(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"
