"""Groups and membership."""

import datetime

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import error_code, unique

ROLE_ARN = "arn:aws:iam::123456789012:role/CognateTestRole"


def test_create_group_shape(idp, pool):
    name = unique("grp")
    g = idp.create_group(
        UserPoolId=pool["Id"], GroupName=name, Description="d", Precedence=3, RoleArn=ROLE_ARN
    )["Group"]
    assert g["GroupName"] == name
    assert g["UserPoolId"] == pool["Id"]
    assert g["Description"] == "d"
    assert g["Precedence"] == 3
    assert g["RoleArn"] == ROLE_ARN
    assert isinstance(g["CreationDate"], datetime.datetime)
    assert isinstance(g["LastModifiedDate"], datetime.datetime)


def test_create_group_precedence_zero(idp, pool):
    g = idp.create_group(UserPoolId=pool["Id"], GroupName="Admins", Precedence=0)["Group"]
    assert g["Precedence"] == 0
    assert idp.get_group(UserPoolId=pool["Id"], GroupName="Admins")["Group"]["Precedence"] == 0


def test_create_duplicate_group(idp, pool):
    name = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=name)
    with pytest.raises(ClientError) as ei:
        idp.create_group(UserPoolId=pool["Id"], GroupName=name)
    assert error_code(ei.value) == "GroupExistsException"


def test_create_group_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.create_group(UserPoolId="us-east-1_NoSuchPool2", GroupName="g")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_get_group(idp, pool):
    name = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=name, Description="hello")
    g = idp.get_group(UserPoolId=pool["Id"], GroupName=name)["Group"]
    assert g["GroupName"] == name
    assert g["Description"] == "hello"
    assert isinstance(g["CreationDate"], datetime.datetime)


def test_get_unknown_group(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.get_group(UserPoolId=pool["Id"], GroupName=unique("nogroup"))
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_list_groups_paginates(idp, pool):
    names = {unique("grp") for _ in range(3)}
    for n in names:
        idp.create_group(UserPoolId=pool["Id"], GroupName=n)
    seen, token, pages = [], None, 0
    while True:
        kw = {"UserPoolId": pool["Id"], "Limit": 2}
        if token:
            kw["NextToken"] = token
        resp = idp.list_groups(**kw)
        assert len(resp["Groups"]) <= 2
        for g in resp["Groups"]:
            assert g["UserPoolId"] == pool["Id"]
            assert isinstance(g["CreationDate"], datetime.datetime)
        seen.extend(g["GroupName"] for g in resp["Groups"])
        pages += 1
        token = resp.get("NextToken")
        if not token:
            break
        assert pages < 20
    assert len(seen) == len(set(seen))
    assert set(seen) == names
    all_at_once = idp.list_groups(UserPoolId=pool["Id"])["Groups"]
    assert {g["GroupName"] for g in all_at_once} == names


def test_update_group(idp, pool):
    name = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=name, Description="old", Precedence=5)
    g = idp.update_group(UserPoolId=pool["Id"], GroupName=name, Description="new", Precedence=1)["Group"]
    assert g["Description"] == "new"
    assert g["Precedence"] == 1
    got = idp.get_group(UserPoolId=pool["Id"], GroupName=name)["Group"]
    assert got["Description"] == "new"
    assert got["Precedence"] == 1


def test_update_unknown_group(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.update_group(UserPoolId=pool["Id"], GroupName=unique("nogroup"), Description="x")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_delete_group(idp, pool):
    name = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=name)
    idp.delete_group(UserPoolId=pool["Id"], GroupName=name)
    with pytest.raises(ClientError) as ei:
        idp.get_group(UserPoolId=pool["Id"], GroupName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        idp.delete_group(UserPoolId=pool["Id"], GroupName=name)
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_membership_lifecycle(idp, pool, admin_user):
    g1, g2 = unique("grp"), unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=g1, Precedence=1)
    idp.create_group(UserPoolId=pool["Id"], GroupName=g2, Precedence=2)
    alice, bob = admin_user(), admin_user()
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=alice["Username"], GroupName=g1)
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=alice["Username"], GroupName=g2)
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=bob["Username"], GroupName=g1)
    # adding twice is idempotent
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=bob["Username"], GroupName=g1)

    groups = idp.admin_list_groups_for_user(UserPoolId=pool["Id"], Username=alice["Username"])["Groups"]
    assert sorted(g["GroupName"] for g in groups) == sorted([g1, g2])
    for g in groups:
        assert g["UserPoolId"] == pool["Id"]
        assert isinstance(g["CreationDate"], datetime.datetime)

    members = idp.list_users_in_group(UserPoolId=pool["Id"], GroupName=g1)["Users"]
    assert sorted(u["Username"] for u in members) == sorted([alice["Username"], bob["Username"]])
    for u in members:
        assert u["UserStatus"] == "CONFIRMED"
        assert isinstance(u["UserCreateDate"], datetime.datetime)

    idp.admin_remove_user_from_group(UserPoolId=pool["Id"], Username=alice["Username"], GroupName=g1)
    groups = idp.admin_list_groups_for_user(UserPoolId=pool["Id"], Username=alice["Username"])["Groups"]
    assert [g["GroupName"] for g in groups] == [g2]
    members = idp.list_users_in_group(UserPoolId=pool["Id"], GroupName=g1)["Users"]
    assert [u["Username"] for u in members] == [bob["Username"]]


def test_list_users_in_group_paginates(idp, pool, admin_user):
    g = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=g)
    users = [admin_user()["Username"] for _ in range(3)]
    for u in users:
        idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=u, GroupName=g)
    seen, token = [], None
    while True:
        kw = {"UserPoolId": pool["Id"], "GroupName": g, "Limit": 2}
        if token:
            kw["NextToken"] = token
        resp = idp.list_users_in_group(**kw)
        assert len(resp["Users"]) <= 2
        seen.extend(u["Username"] for u in resp["Users"])
        token = resp.get("NextToken")
        if not token:
            break
        assert len(seen) < 10
    assert sorted(seen) == sorted(users)


def test_admin_list_groups_for_user_paginates(idp, pool, admin_user):
    user = admin_user()["Username"]
    names = [unique("grp") for _ in range(3)]
    for n in names:
        idp.create_group(UserPoolId=pool["Id"], GroupName=n)
        idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=user, GroupName=n)
    seen, token = [], None
    while True:
        kw = {"UserPoolId": pool["Id"], "Username": user, "Limit": 2}
        if token:
            kw["NextToken"] = token
        resp = idp.admin_list_groups_for_user(**kw)
        assert len(resp["Groups"]) <= 2
        seen.extend(g["GroupName"] for g in resp["Groups"])
        token = resp.get("NextToken")
        if not token:
            break
        assert len(seen) < 10
    assert sorted(seen) == sorted(names)


def test_add_user_to_unknown_group(idp, pool, admin_user):
    user = admin_user()
    with pytest.raises(ClientError) as ei:
        idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=user["Username"], GroupName=unique("nogroup"))
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_add_unknown_user_to_group(idp, pool):
    g = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=g)
    with pytest.raises(ClientError) as ei:
        idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=unique("ghost"), GroupName=g)
    assert error_code(ei.value) == "UserNotFoundException"


def test_list_groups_for_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_list_groups_for_user(UserPoolId=pool["Id"], Username=unique("ghost"))
    assert error_code(ei.value) == "UserNotFoundException"


def test_list_users_in_unknown_group(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.list_users_in_group(UserPoolId=pool["Id"], GroupName=unique("nogroup"))
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_deleting_group_removes_memberships(idp, pool, admin_user):
    user = admin_user()["Username"]
    g = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=g)
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=user, GroupName=g)
    idp.delete_group(UserPoolId=pool["Id"], GroupName=g)
    assert idp.admin_list_groups_for_user(UserPoolId=pool["Id"], Username=user)["Groups"] == []


def test_deleting_user_removes_memberships(idp, pool, admin_user):
    user = admin_user()["Username"]
    g = unique("grp")
    idp.create_group(UserPoolId=pool["Id"], GroupName=g)
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=user, GroupName=g)
    idp.admin_delete_user(UserPoolId=pool["Id"], Username=user)
    assert idp.list_users_in_group(UserPoolId=pool["Id"], GroupName=g)["Users"] == []


def test_email_username_in_group_calls(idp, make_pool):
    pool = make_pool(UsernameAttributes=["email"])
    email = f"{unique('grp')}@example.com"
    created = idp.admin_create_user(
        UserPoolId=pool["Id"], Username=email,
        UserAttributes=[{"Name": "email", "Value": email}], MessageAction="SUPPRESS",
    )["User"]
    idp.create_group(UserPoolId=pool["Id"], GroupName="Admins", Precedence=0)
    idp.admin_add_user_to_group(UserPoolId=pool["Id"], Username=email, GroupName="Admins")
    members = idp.list_users_in_group(UserPoolId=pool["Id"], GroupName="Admins")["Users"]
    assert [u["Username"] for u in members] == [created["Username"]]
    groups = idp.admin_list_groups_for_user(UserPoolId=pool["Id"], Username=email)["Groups"]
    assert [g["GroupName"] for g in groups] == ["Admins"]
