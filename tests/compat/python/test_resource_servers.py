"""Resource servers: Create/Describe/List/Update/DeleteResourceServer."""

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import error_code, unique

SCOPES = [
    {"ScopeName": "read", "ScopeDescription": "Read things"},
    {"ScopeName": "write", "ScopeDescription": "Write things"},
]


def _identifier():
    return f"https://api.example.com/{unique('rs')}"


def test_create_resource_server(idp, pool):
    ident = _identifier()
    rs = idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="My API", Scopes=SCOPES)[
        "ResourceServer"
    ]
    assert rs["UserPoolId"] == pool["Id"]
    assert rs["Identifier"] == ident
    assert rs["Name"] == "My API"
    assert sorted(rs["Scopes"], key=lambda s: s["ScopeName"]) == SCOPES


def test_create_resource_server_without_scopes(idp, pool):
    ident = _identifier()
    rs = idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="Bare")["ResourceServer"]
    assert rs["Identifier"] == ident
    assert rs.get("Scopes", []) == []


def test_create_duplicate_resource_server(idp, pool):
    ident = _identifier()
    idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="A")
    with pytest.raises(ClientError) as ei:
        idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="B")
    assert error_code(ei.value) == "InvalidParameterException"


def test_create_resource_server_unknown_pool(idp):
    with pytest.raises(ClientError) as ei:
        idp.create_resource_server(UserPoolId="us-east-1_NoSuchPool1", Identifier="x", Name="x")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_describe_resource_server(idp, pool):
    ident = _identifier()
    idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="Desc", Scopes=SCOPES)
    rs = idp.describe_resource_server(UserPoolId=pool["Id"], Identifier=ident)["ResourceServer"]
    assert rs["Identifier"] == ident
    assert rs["Name"] == "Desc"
    assert rs["UserPoolId"] == pool["Id"]
    assert {s["ScopeName"] for s in rs["Scopes"]} == {"read", "write"}


def test_describe_unknown_resource_server(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.describe_resource_server(UserPoolId=pool["Id"], Identifier="https://nope.example.com")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_list_resource_servers_paginates(idp, pool):
    idents = {_identifier() for _ in range(3)}
    for i in idents:
        idp.create_resource_server(UserPoolId=pool["Id"], Identifier=i, Name="L")
    seen, token, pages = [], None, 0
    while True:
        kw = {"UserPoolId": pool["Id"], "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        resp = idp.list_resource_servers(**kw)
        assert len(resp["ResourceServers"]) <= 2
        for rs in resp["ResourceServers"]:
            assert rs["UserPoolId"] == pool["Id"]
            assert rs["Name"] == "L"
        seen.extend(rs["Identifier"] for rs in resp["ResourceServers"])
        pages += 1
        token = resp.get("NextToken")
        if not token:
            break
        assert pages < 20
    assert len(seen) == len(set(seen))
    assert set(seen) == idents


def test_update_resource_server(idp, pool):
    ident = _identifier()
    idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="Old", Scopes=SCOPES)
    new_scopes = [{"ScopeName": "admin", "ScopeDescription": "Administer"}]
    rs = idp.update_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="New", Scopes=new_scopes)[
        "ResourceServer"
    ]
    assert rs["Name"] == "New"
    assert rs["Scopes"] == new_scopes
    got = idp.describe_resource_server(UserPoolId=pool["Id"], Identifier=ident)["ResourceServer"]
    assert got["Name"] == "New"
    assert got["Scopes"] == new_scopes


def test_update_unknown_resource_server(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.update_resource_server(UserPoolId=pool["Id"], Identifier="https://nope.example.com", Name="x")
    assert error_code(ei.value) == "ResourceNotFoundException"


def test_delete_resource_server(idp, pool):
    ident = _identifier()
    idp.create_resource_server(UserPoolId=pool["Id"], Identifier=ident, Name="Del")
    idp.delete_resource_server(UserPoolId=pool["Id"], Identifier=ident)
    with pytest.raises(ClientError) as ei:
        idp.describe_resource_server(UserPoolId=pool["Id"], Identifier=ident)
    assert error_code(ei.value) == "ResourceNotFoundException"
    listed = idp.list_resource_servers(UserPoolId=pool["Id"], MaxResults=50)["ResourceServers"]
    assert ident not in {rs["Identifier"] for rs in listed}
    with pytest.raises(ClientError) as ei:
        idp.delete_resource_server(UserPoolId=pool["Id"], Identifier=ident)
    assert error_code(ei.value) == "ResourceNotFoundException"
