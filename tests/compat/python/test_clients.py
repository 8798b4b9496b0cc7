"""App clients: Create/Describe/List/Update/DeleteUserPoolClient, GenerateSecret."""

import datetime

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import CLIENT_ID_RE, error_code, unique


def test_create_client_without_secret(make_pool, make_client):
    pool = make_pool()
    name = unique("client")
    client = make_client(
        pool["Id"],
        ClientName=name,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )
    assert client["UserPoolId"] == pool["Id"]
    assert client["ClientName"] == name
    assert CLIENT_ID_RE.match(client["ClientId"]), client["ClientId"]
    assert 1 <= len(client["ClientId"]) <= 128
    assert "ClientSecret" not in client
    assert isinstance(client["CreationDate"], datetime.datetime)
    assert isinstance(client["LastModifiedDate"], datetime.datetime)
    assert sorted(client["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]


def test_create_client_with_generated_secret(make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"], GenerateSecret=True)
    secret = client["ClientSecret"]
    assert isinstance(secret, str)
    assert 24 <= len(secret) <= 64
    other = make_client(pool["Id"], GenerateSecret=True)
    assert other["ClientSecret"] != secret
    assert other["ClientId"] != client["ClientId"]


def test_describe_client(idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"], GenerateSecret=True, RefreshTokenValidity=10)
    desc = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])[
        "UserPoolClient"
    ]
    assert desc["ClientId"] == client["ClientId"]
    assert desc["ClientName"] == client["ClientName"]
    assert desc["ClientSecret"] == client["ClientSecret"]
    assert desc["UserPoolId"] == pool["Id"]
    assert desc["RefreshTokenValidity"] == 10
    assert isinstance(desc["CreationDate"], datetime.datetime)


def test_describe_unknown_client(idp, make_pool):
    pool = make_pool()
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId="nosuchclient0000000000000")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_client_in_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.create_user_pool_client(UserPoolId="us-east-1_NoSuchPool6", ClientName="x")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_client_of_other_pool_not_found(idp, make_pool, make_client):
    pool_a, pool_b = make_pool(), make_pool()
    client = make_client(pool_a["Id"])
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool_client(UserPoolId=pool_b["Id"], ClientId=client["ClientId"])
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_list_clients_with_pagination(idp, make_pool, make_client):
    pool = make_pool()
    created = {make_client(pool["Id"])["ClientId"] for _ in range(3)}
    seen, token, pages = [], None, 0
    while True:
        kw = {"UserPoolId": pool["Id"], "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        resp = idp.list_user_pool_clients(**kw)
        assert len(resp["UserPoolClients"]) <= 2
        for c in resp["UserPoolClients"]:
            assert c["UserPoolId"] == pool["Id"]
            assert "ClientName" in c
            assert "ClientSecret" not in c
        seen.extend(c["ClientId"] for c in resp["UserPoolClients"])
        pages += 1
        token = resp.get("NextToken")
        if not token:
            break
        assert pages < 50
    assert len(seen) == len(set(seen))
    assert set(seen) == created
    assert pages == 2


def test_update_client(idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"], GenerateSecret=True)
    new_name = unique("renamed")
    upd = idp.update_user_pool_client(
        UserPoolId=pool["Id"],
        ClientId=client["ClientId"],
        ClientName=new_name,
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        AccessTokenValidity=30,
        TokenValidityUnits={"AccessToken": "minutes"},
    )["UserPoolClient"]
    assert upd["ClientName"] == new_name
    assert upd["ClientId"] == client["ClientId"]
    # the secret survives an update
    assert upd["ClientSecret"] == client["ClientSecret"]
    desc = idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])[
        "UserPoolClient"
    ]
    assert desc["ClientName"] == new_name
    assert desc["AccessTokenValidity"] == 30
    assert desc["TokenValidityUnits"]["AccessToken"] == "minutes"
    assert sorted(desc["ExplicitAuthFlows"]) == [
        "ALLOW_ADMIN_USER_PASSWORD_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    ]


def test_update_unknown_client(idp, make_pool):
    pool = make_pool()
    with pytest.raises(ClientError) as ei:
        idp.update_user_pool_client(
            UserPoolId=pool["Id"], ClientId="nosuchclient0000000000000", ClientName="x"
        )
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_delete_client(idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"])
    idp.delete_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])
    assert error_code(ei.value) == "ResourceNotFoundException"
    listed = idp.list_user_pool_clients(UserPoolId=pool["Id"], MaxResults=60)["UserPoolClients"]
    assert client["ClientId"] not in {c["ClientId"] for c in listed}
    with pytest.raises(ClientError) as ei:
        idp.delete_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_signup_with_deleted_client_fails(idp, unsigned_idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"])
    idp.delete_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"])
    with pytest.raises(ClientError) as ei:
        unsigned_idp.sign_up(
            ClientId=client["ClientId"], Username=unique("u"), Password="Correct-Horse-9battery"
        )
    assert error_code(ei.value) == "ResourceNotFoundException"
