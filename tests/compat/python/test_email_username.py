"""Pools with UsernameAttributes=['email']: the e-mail works wherever Username is asked for."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, UUID_RE, attrs_to_dict, error_code, unique, wait_for_messages


@pytest.fixture
def email_user(idp, make_pool):
    pool = make_pool(UsernameAttributes=["email"], AutoVerifiedAttributes=["email"])
    email = f"{unique('mail')}@example.com"
    user = idp.admin_create_user(
        UserPoolId=pool["Id"],
        Username=email,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )["User"]
    assert UUID_RE.match(user["Username"])
    return {"pool_id": pool["Id"], "email": email, "uuid": user["Username"]}


def _get(idp, u):
    return idp.admin_get_user(UserPoolId=u["pool_id"], Username=u["uuid"])


def test_set_password_by_email(idp, email_user):
    idp.admin_set_user_password(
        UserPoolId=email_user["pool_id"], Username=email_user["email"], Password=GOOD_PASSWORD, Permanent=True
    )
    assert _get(idp, email_user)["UserStatus"] == "CONFIRMED"


def test_update_and_delete_attributes_by_email(idp, email_user):
    idp.admin_update_user_attributes(
        UserPoolId=email_user["pool_id"], Username=email_user["email"],
        UserAttributes=[{"Name": "given_name", "Value": "Grace"}],
    )
    assert attrs_to_dict(_get(idp, email_user)["UserAttributes"])["given_name"] == "Grace"
    idp.admin_delete_user_attributes(
        UserPoolId=email_user["pool_id"], Username=email_user["email"], UserAttributeNames=["given_name"]
    )
    assert "given_name" not in attrs_to_dict(_get(idp, email_user)["UserAttributes"])


def test_disable_enable_by_email(idp, email_user):
    idp.admin_disable_user(UserPoolId=email_user["pool_id"], Username=email_user["email"])
    assert _get(idp, email_user)["Enabled"] is False
    idp.admin_enable_user(UserPoolId=email_user["pool_id"], Username=email_user["email"])
    assert _get(idp, email_user)["Enabled"] is True


def test_reset_password_by_email(endpoint, idp, email_user):
    idp.admin_set_user_password(
        UserPoolId=email_user["pool_id"], Username=email_user["email"], Password=GOOD_PASSWORD, Permanent=True
    )
    idp.admin_reset_user_password(UserPoolId=email_user["pool_id"], Username=email_user["email"])
    assert _get(idp, email_user)["UserStatus"] == "RESET_REQUIRED"
    msgs = wait_for_messages(endpoint, email_user["pool_id"], email_user["uuid"], "forgot_password")
    assert msgs[-1]["to"] == email_user["email"]


def test_group_membership_by_email(idp, email_user):
    idp.create_group(UserPoolId=email_user["pool_id"], GroupName="Staff")
    idp.admin_add_user_to_group(UserPoolId=email_user["pool_id"], Username=email_user["email"], GroupName="Staff")
    idp.admin_remove_user_from_group(UserPoolId=email_user["pool_id"], Username=email_user["email"], GroupName="Staff")
    assert idp.list_users_in_group(UserPoolId=email_user["pool_id"], GroupName="Staff")["Users"] == []


def test_delete_by_email(idp, email_user):
    idp.admin_delete_user(UserPoolId=email_user["pool_id"], Username=email_user["email"])
    with pytest.raises(ClientError) as ei:
        _get(idp, email_user)
    assert error_code(ei.value) == "UserNotFoundException"
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=email_user["pool_id"], Username=email_user["email"])
    assert error_code(ei.value) == "UserNotFoundException"


def test_confirm_sign_up_by_email_admin(idp, unsigned_idp, make_pool, make_client):
    pool = make_pool(UsernameAttributes=["email"])
    client = make_client(pool["Id"])
    email = f"{unique('conf')}@example.com"
    unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=email, Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    idp.admin_confirm_sign_up(UserPoolId=pool["Id"], Username=email)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=email)["UserStatus"] == "CONFIRMED"


def test_sign_up_with_taken_email(unsigned_idp, idp, make_pool, make_client):
    pool = make_pool(UsernameAttributes=["email"])
    client = make_client(pool["Id"])
    email = f"{unique('taken')}@example.com"
    unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=email, Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(
            ClientId=client["ClientId"], Username=email, Password=GOOD_PASSWORD,
            UserAttributes=[{"Name": "email", "Value": email}],
        )
    assert error_code(ei.value) == "UsernameExistsException"


@pytest.mark.parametrize("case_sensitive", [False, True])
def test_username_case_sensitivity(idp, make_pool, case_sensitive):
    pool = make_pool(UsernameConfiguration={"CaseSensitive": case_sensitive})
    assert pool["UsernameConfiguration"]["CaseSensitive"] is case_sensitive
    name = unique("Mixed")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=name, MessageAction="SUPPRESS")
    if case_sensitive:
        with pytest.raises(ClientError) as ei:
            idp.admin_get_user(UserPoolId=pool["Id"], Username=name.upper())
        assert error_code(ei.value) == "UserNotFoundException"
        # and the upper-case name is a different, free username
        idp.admin_create_user(UserPoolId=pool["Id"], Username=name.upper(), MessageAction="SUPPRESS")
    else:
        got = idp.admin_get_user(UserPoolId=pool["Id"], Username=name.upper())
        assert got["Username"].lower() == name.lower()
        with pytest.raises(ClientError) as ei:
            idp.admin_create_user(UserPoolId=pool["Id"], Username=name.upper(), MessageAction="SUPPRESS")
        assert error_code(ei.value) == "UsernameExistsException"
