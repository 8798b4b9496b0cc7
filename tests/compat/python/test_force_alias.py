"""ForceAliasCreation: in a pool with AliasAttributes, a verified e-mail is an alias held by one user.
Taking it for another user fails with AliasExistsException unless ForceAliasCreation moves it."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, attrs_to_dict, error_code, latest_code, unique


@pytest.fixture
def alias_pool(make_pool, make_client):
    pool = make_pool(AliasAttributes=["email"], AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"])
    return {"id": pool["Id"], "client_id": client["ClientId"]}


def _create(idp, pool_id, username, email, **kw):
    return idp.admin_create_user(
        UserPoolId=pool_id,
        Username=username,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
        **kw,
    )["User"]


def _holder(idp, pool_id, email):
    """The username the alias resolves to."""
    return idp.admin_get_user(UserPoolId=pool_id, Username=email)["Username"]


def _usernames(idp, pool_id):
    return sorted(u["Username"] for u in idp.list_users(UserPoolId=pool_id)["Users"])


def test_admin_create_user_refuses_a_taken_alias_and_creates_nothing(idp, alias_pool):
    email = f"{unique('shared')}@example.com"
    _create(idp, alias_pool["id"], "alice", email)
    with pytest.raises(ClientError) as e:
        _create(idp, alias_pool["id"], "bob", email)
    assert error_code(e.value) == "AliasExistsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _usernames(idp, alias_pool["id"]) == ["alice"]
    assert _holder(idp, alias_pool["id"], email) == "alice"


def test_admin_create_user_with_force_moves_the_alias(idp, alias_pool):
    email = f"{unique('shared')}@example.com"
    _create(idp, alias_pool["id"], "alice", email)
    _create(idp, alias_pool["id"], "bob", email, ForceAliasCreation=True)
    assert _holder(idp, alias_pool["id"], email) == "bob"
    # The previous holder keeps its attribute but can no longer be found by the alias.
    alice = idp.admin_get_user(UserPoolId=alias_pool["id"], Username="alice")
    assert attrs_to_dict(alice["UserAttributes"])["email"] == email
    assert _usernames(idp, alias_pool["id"]) == ["alice", "bob"]


def test_an_unverified_email_is_no_alias(idp, alias_pool):
    email = f"{unique('shared')}@example.com"
    _create(idp, alias_pool["id"], "alice", email)
    idp.admin_create_user(
        UserPoolId=alias_pool["id"], Username="bob", UserAttributes=[{"Name": "email", "Value": email}],
        MessageAction="SUPPRESS",
    )
    assert _holder(idp, alias_pool["id"], email) == "alice"


def _sign_up(unsigned_idp, endpoint, alias_pool, username, email):
    unsigned_idp.sign_up(
        ClientId=alias_pool["client_id"], Username=username, Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    return latest_code(endpoint, alias_pool["id"], username)


def test_confirm_sign_up_refuses_a_taken_alias_then_force_moves_it(idp, unsigned_idp, endpoint, alias_pool):
    email = f"{unique('shared')}@example.com"
    _create(idp, alias_pool["id"], "alice", email)
    # Signing up with the e-mail is allowed: it is not verified (not an alias) yet.
    code = _sign_up(unsigned_idp, endpoint, alias_pool, "bob", email)
    with pytest.raises(ClientError) as e:
        unsigned_idp.confirm_sign_up(ClientId=alias_pool["client_id"], Username="bob", ConfirmationCode=code)
    assert error_code(e.value) == "AliasExistsException"
    # Nothing changed: bob is still unconfirmed and the code was not used up.
    bob = idp.admin_get_user(UserPoolId=alias_pool["id"], Username="bob")
    assert bob["UserStatus"] == "UNCONFIRMED"
    assert _holder(idp, alias_pool["id"], email) == "alice"

    unsigned_idp.confirm_sign_up(
        ClientId=alias_pool["client_id"], Username="bob", ConfirmationCode=code, ForceAliasCreation=True
    )
    bob = idp.admin_get_user(UserPoolId=alias_pool["id"], Username="bob")
    assert bob["UserStatus"] == "CONFIRMED"
    assert attrs_to_dict(bob["UserAttributes"])["email_verified"] == "true"
    assert _holder(idp, alias_pool["id"], email) == "bob"
