"""ListUsers: Filter, AttributesToGet, Limit, PaginationToken."""

import datetime

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, UUID_RE, attrs_to_dict, error_code, unique


@pytest.fixture
def populated(idp, unsigned_idp, make_pool, make_client):
    """A pool with five users in various states and with various attributes."""
    pool = make_pool(AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"])
    tag = unique("")  # shared prefix so ^= filters are specific to this test
    users = {}

    def create(suffix, attrs, confirm=True):
        username = f"{tag}{suffix}"
        u = idp.admin_create_user(
            UserPoolId=pool["Id"], Username=username, UserAttributes=attrs, MessageAction="SUPPRESS"
        )["User"]
        if confirm:
            idp.admin_set_user_password(
                UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True
            )
        users[suffix] = {"username": username, "sub": attrs_to_dict(u["Attributes"])["sub"]}
        return username

    create("alice", [
        {"Name": "email", "Value": f"alice.{tag}@example.com"},
        {"Name": "name", "Value": "Alice Liddell"},
        {"Name": "given_name", "Value": "Alice"},
        {"Name": "family_name", "Value": "Liddell"},
        {"Name": "preferred_username", "Value": f"ally{tag}"},
        {"Name": "phone_number", "Value": "+15555550100"},
    ])
    create("albert", [
        {"Name": "email", "Value": f"albert.{tag}@example.com"},
        {"Name": "given_name", "Value": "Albert"},
        {"Name": "family_name", "Value": "Einstein"},
    ])
    create("bob", [
        {"Name": "email", "Value": f"bob.{tag}@example.org"},
        {"Name": "given_name", "Value": "Bob"},
        {"Name": "phone_number", "Value": "+15555550111"},
    ])
    create("carol", [{"Name": "email", "Value": f"carol.{tag}@example.org"}], confirm=False)
    # dave signs up himself and stays UNCONFIRMED
    dave = f"{tag}dave"
    resp = unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=dave, Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": f"dave.{tag}@example.net"}],
    )
    users["dave"] = {"username": dave, "sub": resp["UserSub"]}
    idp.admin_disable_user(UserPoolId=pool["Id"], Username=users["bob"]["username"])
    return {"pool": pool, "tag": tag, "users": users}


def _names(resp):
    return sorted(u["Username"] for u in resp["Users"])


def _filter(idp, populated, expr):
    return _names(idp.list_users(UserPoolId=populated["pool"]["Id"], Filter=expr))


def test_list_users_shape(idp, populated):
    resp = idp.list_users(UserPoolId=populated["pool"]["Id"])
    assert len(resp["Users"]) == 5
    assert "PaginationToken" not in resp
    for u in resp["Users"]:
        assert isinstance(u["Username"], str)
        assert isinstance(u["UserCreateDate"], datetime.datetime)
        assert isinstance(u["UserLastModifiedDate"], datetime.datetime)
        assert isinstance(u["Enabled"], bool)
        assert u["UserStatus"] in {"CONFIRMED", "UNCONFIRMED", "FORCE_CHANGE_PASSWORD"}
        attrs = attrs_to_dict(u["Attributes"])
        assert UUID_RE.match(attrs["sub"])
    statuses = {u["Username"]: u["UserStatus"] for u in resp["Users"]}
    users = populated["users"]
    assert statuses[users["alice"]["username"]] == "CONFIRMED"
    assert statuses[users["carol"]["username"]] == "FORCE_CHANGE_PASSWORD"
    assert statuses[users["dave"]["username"]] == "UNCONFIRMED"
    enabled = {u["Username"]: u["Enabled"] for u in resp["Users"]}
    assert enabled[users["bob"]["username"]] is False
    assert enabled[users["alice"]["username"]] is True


def test_list_users_pagination_limit_2(idp, populated):
    pool_id = populated["pool"]["Id"]
    seen, token, pages = [], None, 0
    while True:
        kw = {"UserPoolId": pool_id, "Limit": 2}
        if token:
            kw["PaginationToken"] = token
        resp = idp.list_users(**kw)
        assert len(resp["Users"]) <= 2
        seen.extend(u["Username"] for u in resp["Users"])
        pages += 1
        token = resp.get("PaginationToken")
        if not token:
            break
        assert pages < 20, "pagination does not terminate"
    expected = sorted(u["username"] for u in populated["users"].values())
    assert len(seen) == len(set(seen)), f"duplicates across pages: {seen}"
    assert sorted(seen) == expected
    assert pages == 3


def test_list_users_paginator(idp, populated):
    paginator = idp.get_paginator("list_users")
    pages = list(paginator.paginate(UserPoolId=populated["pool"]["Id"], PaginationConfig={"PageSize": 2}))
    names = [u["Username"] for p in pages for u in p["Users"]]
    assert sorted(names) == sorted(u["username"] for u in populated["users"].values())


def test_list_users_pagination_with_filter(idp, populated):
    pool_id = populated["pool"]["Id"]
    seen, token = [], None
    while True:
        kw = {"UserPoolId": pool_id, "Limit": 1, "Filter": 'email ^= "al"'}
        if token:
            kw["PaginationToken"] = token
        resp = idp.list_users(**kw)
        seen.extend(u["Username"] for u in resp["Users"])
        token = resp.get("PaginationToken")
        if not token:
            break
        assert len(seen) < 10
    users = populated["users"]
    assert sorted(seen) == sorted([users["alice"]["username"], users["albert"]["username"]])


def test_list_users_limit_above_60_is_invalid(idp, populated):
    with pytest.raises(ClientError) as ei:
        idp.list_users(UserPoolId=populated["pool"]["Id"], Limit=61)
    assert error_code(ei.value) == "InvalidParameterException"


def test_list_users_limit_60_is_fine(idp, populated):
    assert len(idp.list_users(UserPoolId=populated["pool"]["Id"], Limit=60)["Users"]) == 5


def test_list_users_attributes_to_get(idp, populated):
    resp = idp.list_users(UserPoolId=populated["pool"]["Id"], AttributesToGet=["email"])
    assert len(resp["Users"]) == 5
    for u in resp["Users"]:
        names = [a["Name"] for a in u["Attributes"]]
        assert names == ["email"], names
        assert u["UserStatus"]


def test_list_users_attributes_to_get_multiple(idp, populated):
    resp = idp.list_users(
        UserPoolId=populated["pool"]["Id"],
        AttributesToGet=["given_name", "sub"],
        Filter=f'username = "{populated["users"]["alice"]["username"]}"',
    )
    assert len(resp["Users"]) == 1
    attrs = attrs_to_dict(resp["Users"][0]["Attributes"])
    assert set(attrs) == {"given_name", "sub"}
    assert attrs["given_name"] == "Alice"


def test_list_users_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.list_users(UserPoolId="us-east-1_NoSuchPool3")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_filter_email_equals(idp, populated):
    tag, users = populated["tag"], populated["users"]
    assert _filter(idp, populated, f'email = "alice.{tag}@example.com"') == [users["alice"]["username"]]


def test_filter_email_prefix(idp, populated):
    users = populated["users"]
    assert _filter(idp, populated, 'email ^= "al"') == sorted(
        [users["alice"]["username"], users["albert"]["username"]]
    )


def test_filter_no_match(idp, populated):
    assert _filter(idp, populated, 'email = "nobody@nowhere.invalid"') == []


def test_filter_username(idp, populated):
    users = populated["users"]
    tag = populated["tag"]
    assert _filter(idp, populated, f'username = "{users["bob"]["username"]}"') == [users["bob"]["username"]]
    assert _filter(idp, populated, f'username ^= "{tag}a"') == sorted(
        [users["alice"]["username"], users["albert"]["username"]]
    )


def test_filter_phone_number(idp, populated):
    users = populated["users"]
    assert _filter(idp, populated, 'phone_number = "+15555550100"') == [users["alice"]["username"]]
    assert _filter(idp, populated, 'phone_number ^= "+1555555"') == sorted(
        [users["alice"]["username"], users["bob"]["username"]]
    )


def test_filter_name_fields(idp, populated):
    users = populated["users"]
    tag = populated["tag"]
    assert _filter(idp, populated, 'name = "Alice Liddell"') == [users["alice"]["username"]]
    assert _filter(idp, populated, 'given_name = "Bob"') == [users["bob"]["username"]]
    assert _filter(idp, populated, 'given_name ^= "Al"') == sorted(
        [users["alice"]["username"], users["albert"]["username"]]
    )
    assert _filter(idp, populated, 'family_name = "Einstein"') == [users["albert"]["username"]]
    assert _filter(idp, populated, f'preferred_username = "ally{tag}"') == [users["alice"]["username"]]


def test_filter_user_status(idp, populated):
    users = populated["users"]
    assert _filter(idp, populated, 'cognito:user_status = "UNCONFIRMED"') == [users["dave"]["username"]]
    assert _filter(idp, populated, 'cognito:user_status = "FORCE_CHANGE_PASSWORD"') == [users["carol"]["username"]]
    assert _filter(idp, populated, 'cognito:user_status = "CONFIRMED"') == sorted(
        [users["alice"]["username"], users["albert"]["username"], users["bob"]["username"]]
    )


def test_filter_enabled_status(idp, populated):
    users = populated["users"]
    assert _filter(idp, populated, 'status = "Disabled"') == [users["bob"]["username"]]
    assert len(_filter(idp, populated, 'status = "Enabled"')) == 4


def test_filter_sub(idp, populated):
    users = populated["users"]
    assert _filter(idp, populated, f'sub = "{users["dave"]["sub"]}"') == [users["dave"]["username"]]


def test_empty_filter_lists_everyone(idp, populated):
    assert len(_filter(idp, populated, "")) == 5


def test_filter_without_spaces_around_operator(idp, populated):
    users = populated["users"]
    assert _filter(idp, populated, f'email="bob.{populated["tag"]}@example.org"') == [users["bob"]["username"]]


@pytest.mark.parametrize(
    "expr",
    ['email', 'email = unquoted', 'email ~= "x"', 'custom:tenant = "x"'],
    ids=["no-operator", "unquoted", "bad-operator", "unsupported-attribute"],
)
def test_invalid_filter(idp, populated, expr):
    with pytest.raises(ClientError) as ei:
        idp.list_users(UserPoolId=populated["pool"]["Id"], Filter=expr)
    assert error_code(ei.value) == "InvalidParameterException"


def test_filter_email_username_pool(idp, make_pool):
    pool = make_pool(UsernameAttributes=["email"])
    email = f"{unique('eve')}@example.com"
    created = idp.admin_create_user(
        UserPoolId=pool["Id"], Username=email,
        UserAttributes=[{"Name": "email", "Value": email}], MessageAction="SUPPRESS",
    )["User"]
    resp = idp.list_users(UserPoolId=pool["Id"], Filter=f'email = "{email}"')
    assert [u["Username"] for u in resp["Users"]] == [created["Username"]]
    assert UUID_RE.match(resp["Users"][0]["Username"])
    resp = idp.list_users(UserPoolId=pool["Id"], Filter=f'username = "{created["Username"]}"')
    assert [u["Username"] for u in resp["Users"]] == [created["Username"]]
