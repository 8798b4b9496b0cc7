"""User pools: Create/Describe/List/Update/DeleteUserPool, DeletionProtection, AddCustomAttributes."""

import datetime

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import POOL_ID_RE, error_code, unique


def _list_all_pools(idp, page_size=60):
    pools, token, pages = [], None, 0
    while True:
        kw = {"MaxResults": page_size}
        if token:
            kw["NextToken"] = token
        resp = idp.list_user_pools(**kw)
        assert len(resp["UserPools"]) <= page_size
        pools.extend(resp["UserPools"])
        pages += 1
        token = resp.get("NextToken")
        if not token:
            return pools, pages
        assert pages < 1000, "ListUserPools pagination does not terminate"


def test_create_user_pool_shape(make_pool):
    name = unique("pool")
    pool = make_pool(PoolName=name)
    assert POOL_ID_RE.match(pool["Id"]), pool["Id"]
    assert pool["Id"].startswith("us-east-1_"), pool["Id"]
    assert pool["Name"] == name
    assert isinstance(pool["CreationDate"], datetime.datetime)
    assert isinstance(pool["LastModifiedDate"], datetime.datetime)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - pool["CreationDate"]).total_seconds()) < 300
    assert pool["Arn"].startswith("arn:aws:cognito-idp:us-east-1:")
    assert pool["Arn"].endswith(":userpool/" + pool["Id"])
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 8


def test_create_user_pool_echoes_configuration(make_pool):
    pool = make_pool(
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        DeletionProtection="INACTIVE",
        MfaConfiguration="OFF",
        UserPoolTags={"team": "compat"},
    )
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["DeletionProtection"] == "INACTIVE"
    assert pool["MfaConfiguration"] == "OFF"
    assert pool["UserPoolTags"] == {"team": "compat"}


def test_pool_ids_are_unique(make_pool):
    ids = {make_pool()["Id"] for _ in range(3)}
    assert len(ids) == 3


def test_describe_user_pool(idp, make_pool):
    pool = make_pool(AutoVerifiedAttributes=["email"])
    desc = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
    assert desc["Id"] == pool["Id"]
    assert desc["Name"] == pool["Name"]
    assert desc["Arn"] == pool["Arn"]
    assert isinstance(desc["CreationDate"], datetime.datetime)
    assert desc["AutoVerifiedAttributes"] == ["email"]
    assert isinstance(desc.get("EstimatedNumberOfUsers", 0), int)
    schema = {a["Name"]: a for a in desc["SchemaAttributes"]}
    # the standard attributes are always in the schema
    for attr in ("sub", "email", "email_verified", "name", "phone_number"):
        assert attr in schema, sorted(schema)
    assert schema["sub"]["AttributeDataType"] == "String"
    assert schema["sub"]["Mutable"] is False
    assert schema["email_verified"]["AttributeDataType"] == "Boolean"


def test_describe_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool(UserPoolId="us-east-1_NoSuchPool9")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_list_user_pools_paginates(idp, make_pool):
    mine = {make_pool()["Id"] for _ in range(3)}
    everything, _ = _list_all_pools(idp)
    assert mine <= {p["Id"] for p in everything}
    paged, pages = _list_all_pools(idp, page_size=2)
    paged_ids = [p["Id"] for p in paged]
    assert len(paged_ids) == len(set(paged_ids)), "a pool was returned twice"
    assert set(paged_ids) == {p["Id"] for p in everything}
    assert pages >= 2
    for p in paged:
        assert set(p) >= {"Id", "Name"}
        assert isinstance(p["CreationDate"], datetime.datetime)


def test_list_user_pools_max_results_bound(idp):
    resp = idp.list_user_pools(MaxResults=1)
    assert len(resp["UserPools"]) <= 1


def test_update_user_pool(idp, make_pool):
    pool = make_pool()
    before = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
    resp = idp.update_user_pool(
        UserPoolId=pool["Id"],
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 12,
                "RequireUppercase": False,
                "RequireLowercase": True,
                "RequireNumbers": False,
                "RequireSymbols": False,
            }
        },
        AutoVerifiedAttributes=["email"],
        UserPoolTags={"env": "test"},
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    after = idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
    assert after["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert after["Policies"]["PasswordPolicy"]["RequireUppercase"] is False
    assert after["AutoVerifiedAttributes"] == ["email"]
    assert after["UserPoolTags"] == {"env": "test"}
    assert after["Name"] == before["Name"]
    assert after["LastModifiedDate"] >= before["LastModifiedDate"]


def test_update_user_pool_policy_is_enforced(idp, unsigned_idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"])
    idp.update_user_pool(
        UserPoolId=pool["Id"],
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 20,
                "RequireUppercase": False,
                "RequireLowercase": False,
                "RequireNumbers": False,
                "RequireSymbols": False,
            }
        },
    )
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(ClientId=client["ClientId"], Username=unique("u"), Password="Short-Pass-1")
    assert error_code(ei.value) == "InvalidPasswordException"
    ok = unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=unique("u"), Password="a" * 20
    )
    assert ok["UserSub"]


def test_update_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.update_user_pool(UserPoolId="us-east-1_NoSuchPool8", AutoVerifiedAttributes=["email"])
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_delete_user_pool(idp):
    pool_id = idp.create_user_pool(PoolName=unique("pool"))["UserPool"]["Id"]
    idp.delete_user_pool(UserPoolId=pool_id)
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool(UserPoolId=pool_id)
    assert error_code(ei.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as ei:
        idp.delete_user_pool(UserPoolId=pool_id)
    assert error_code(ei.value) == "ResourceNotFoundException"
    listed, _ = _list_all_pools(idp)
    assert pool_id not in {p["Id"] for p in listed}


def test_deletion_protection_blocks_delete(idp, make_pool):
    pool = make_pool(DeletionProtection="ACTIVE")
    assert pool["DeletionProtection"] == "ACTIVE"
    with pytest.raises(ClientError) as ei:
        idp.delete_user_pool(UserPoolId=pool["Id"])
    assert error_code(ei.value) == "InvalidParameterException"
    # still there
    assert idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["DeletionProtection"] == "ACTIVE"
    idp.update_user_pool(UserPoolId=pool["Id"], DeletionProtection="INACTIVE")
    assert idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["DeletionProtection"] == "INACTIVE"
    idp.delete_user_pool(UserPoolId=pool["Id"])
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool(UserPoolId=pool["Id"])
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_add_custom_attributes(idp, make_pool):
    pool = make_pool()
    idp.add_custom_attributes(
        UserPoolId=pool["Id"],
        CustomAttributes=[
            {"Name": "tenant", "AttributeDataType": "String", "Mutable": True,
             "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "64"}},
            {"Name": "level", "AttributeDataType": "Number", "Mutable": True},
        ],
    )
    schema = {
        a["Name"]: a
        for a in idp.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]["SchemaAttributes"]
    }
    assert "custom:tenant" in schema, sorted(schema)
    assert "custom:level" in schema, sorted(schema)
    assert schema["custom:tenant"]["AttributeDataType"] == "String"
    assert schema["custom:level"]["AttributeDataType"] == "Number"
    assert schema["custom:tenant"]["StringAttributeConstraints"]["MaxLength"] == "64"


def test_custom_attribute_usable_on_user(idp, make_pool):
    pool = make_pool()
    idp.add_custom_attributes(
        UserPoolId=pool["Id"],
        CustomAttributes=[{"Name": "tenant", "AttributeDataType": "String", "Mutable": True}],
    )
    username = unique("user")
    idp.admin_create_user(
        UserPoolId=pool["Id"],
        Username=username,
        UserAttributes=[{"Name": "custom:tenant", "Value": "acme"}],
        MessageAction="SUPPRESS",
    )
    user = idp.admin_get_user(UserPoolId=pool["Id"], Username=username)
    attrs = {a["Name"]: a["Value"] for a in user["UserAttributes"]}
    assert attrs["custom:tenant"] == "acme"


def test_add_duplicate_custom_attribute(idp, make_pool):
    pool = make_pool()
    attr = [{"Name": "dup", "AttributeDataType": "String", "Mutable": True}]
    idp.add_custom_attributes(UserPoolId=pool["Id"], CustomAttributes=attr)
    with pytest.raises(ClientError) as ei:
        idp.add_custom_attributes(UserPoolId=pool["Id"], CustomAttributes=attr)
    assert error_code(ei.value) == "InvalidParameterException"


def test_add_custom_attributes_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.add_custom_attributes(
            UserPoolId="us-east-1_NoSuchPool7",
            CustomAttributes=[{"Name": "x", "AttributeDataType": "String"}],
        )
    assert error_code(ei.value) == "ResourceNotFoundException"
