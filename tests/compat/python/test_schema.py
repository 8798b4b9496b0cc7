"""Attribute schema enforcement: required, mutable, constraints, data types; input validation."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, error_code, raw_call, unique


def test_required_attribute_missing_on_sign_up(unsigned_idp, make_pool, make_client):
    pool = make_pool(
        Schema=[{"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True}]
    )
    client = make_client(pool["Id"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=client["ClientId"], Username=unique("u"), Password=GOOD_PASSWORD)
    assert error_code(ei.value) == "InvalidParameterException"
    ok = unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=unique("u"), Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": "req@example.com"}],
    )
    assert ok["UserSub"]


def test_admin_create_user_may_omit_required_attribute(idp, make_pool):
    # Developer guide: "Administrators can create users without giving values for required
    # attributes by using the AdminCreateUser API." (only SignUp enforces them)
    pool = make_pool(
        Schema=[{"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True}]
    )
    username = unique("u")
    user = idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")["User"]
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert "email" not in {a["Name"] for a in user["Attributes"]}


def test_immutable_custom_attribute(idp, make_pool):
    pool = make_pool(
        Schema=[{"Name": "tenant", "AttributeDataType": "String", "Mutable": False}]
    )
    username = unique("u")
    idp.admin_create_user(
        UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "custom:tenant", "Value": "first"}],
    )
    with pytest.raises(ClientError) as ei:
        idp.admin_update_user_attributes(
            UserPoolId=pool["Id"], Username=username,
            UserAttributes=[{"Name": "custom:tenant", "Value": "second"}],
        )
    assert error_code(ei.value) == "InvalidParameterException"
    attrs = {a["Name"]: a["Value"] for a in idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserAttributes"]}
    assert attrs["custom:tenant"] == "first"


def test_string_length_constraint(idp, make_pool):
    pool = make_pool(
        Schema=[{
            "Name": "code", "AttributeDataType": "String", "Mutable": True,
            "StringAttributeConstraints": {"MinLength": "2", "MaxLength": "5"},
        }]
    )
    username = unique("u")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    idp.admin_update_user_attributes(
        UserPoolId=pool["Id"], Username=username, UserAttributes=[{"Name": "custom:code", "Value": "abcde"}]
    )
    with pytest.raises(ClientError) as ei:
        idp.admin_update_user_attributes(
            UserPoolId=pool["Id"], Username=username, UserAttributes=[{"Name": "custom:code", "Value": "abcdef"}]
        )
    assert error_code(ei.value) == "InvalidParameterException"


def test_number_attribute_rejects_text(idp, make_pool):
    pool = make_pool(
        Schema=[{
            "Name": "age", "AttributeDataType": "Number", "Mutable": True,
            "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "150"},
        }]
    )
    username = unique("u")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    idp.admin_update_user_attributes(
        UserPoolId=pool["Id"], Username=username, UserAttributes=[{"Name": "custom:age", "Value": "42"}]
    )
    for bad in ("forty-two", "151"):
        with pytest.raises(ClientError) as ei:
            idp.admin_update_user_attributes(
                UserPoolId=pool["Id"], Username=username, UserAttributes=[{"Name": "custom:age", "Value": bad}]
            )
        assert error_code(ei.value) == "InvalidParameterException", bad


def test_pool_name_pattern_enforced(endpoint):
    # botocore does not check patterns client-side, so the server must (pattern [\w\s+=,.@-]+).
    r = raw_call(endpoint, "CreateUserPool", {"PoolName": "bad/name!"})
    assert r.status_code == 400, r.text
    assert r.json()["__type"] == "InvalidParameterException"


def test_list_user_pools_max_results_above_60(idp):
    with pytest.raises(ClientError) as ei:
        idp.list_user_pools(MaxResults=61)
    assert error_code(ei.value) == "InvalidParameterException"


def test_unicode_attribute_values_round_trip(idp, pool):
    username = unique("josé")
    idp.admin_create_user(
        UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "given_name", "Value": "Zoë 🚀"}, {"Name": "family_name", "Value": "Ångström"}],
    )
    got = idp.admin_get_user(UserPoolId=pool["Id"], Username=username)
    assert got["Username"] == username
    attrs = {a["Name"]: a["Value"] for a in got["UserAttributes"]}
    assert attrs["given_name"] == "Zoë 🚀"
    assert attrs["family_name"] == "Ångström"
    listed = idp.list_users(UserPoolId=pool["Id"], Filter='family_name = "Ångström"')["Users"]
    assert [u["Username"] for u in listed] == [username]
