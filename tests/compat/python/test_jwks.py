"""Each pool publishes its signing keys (JWKS) and an OpenID discovery document, as Cognito does:
two RSA keys (ID and access tokens), CORS for browsers, caching headers, 404 for unknown pools."""

import base64
import subprocess
import time

import requests

from cognate_helpers import cognate_bin


def _b64url_int(s):
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def test_a_new_pool_publishes_two_rsa_signing_keys(endpoint, make_pool):
    pool = make_pool()
    r = requests.get(f"{endpoint}/{pool['Id']}/.well-known/jwks.json", headers={"Origin": "http://app.test"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert "max-age=" in r.headers["Cache-Control"]
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "http://app.test")
    keys = r.json()["keys"]
    assert len(keys) == 2
    assert len({k["kid"] for k in keys}) == 2
    for k in keys:
        assert (k["kty"], k["alg"], k["use"], k["e"]) == ("RSA", "RS256", "sig", "AQAB")
        assert _b64url_int(k["n"]).bit_length() == 2048
        assert len(k["kid"]) == 44
    # The document is stable: the same keys on every request.
    again = requests.get(f"{endpoint}/{pool['Id']}/.well-known/jwks.json").json()
    assert again == r.json()


def test_pools_have_keys_of_their_own(endpoint, make_pool):
    a, b = make_pool(), make_pool()
    ka = {k["kid"] for k in requests.get(f"{endpoint}/{a['Id']}/.well-known/jwks.json").json()["keys"]}
    kb = {k["kid"] for k in requests.get(f"{endpoint}/{b['Id']}/.well-known/jwks.json").json()["keys"]}
    assert ka.isdisjoint(kb)


def test_discovery_document_names_the_issuer_and_jwks(endpoint, make_pool):
    pool = make_pool()
    r = requests.get(f"{endpoint}/{pool['Id']}/.well-known/openid-configuration", headers={"Origin": "http://app.test"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "http://app.test")
    doc = r.json()
    issuer = f"{endpoint}/{pool['Id']}"
    assert doc["issuer"] == issuer
    assert doc["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["subject_types_supported"] == ["public"]


def test_unknown_pools_have_no_documents(endpoint):
    for doc in ("jwks.json", "openid-configuration"):
        r = requests.get(f"{endpoint}/us-east-1_Nope12345/.well-known/{doc}")
        assert r.status_code == 404
        assert "us-east-1_Nope12345" in r.json()["message"]


def test_a_deleted_pool_stops_publishing_keys(endpoint, idp, make_pool):
    pool = make_pool()
    assert requests.get(f"{endpoint}/{pool['Id']}/.well-known/jwks.json").status_code == 200
    idp.delete_user_pool(UserPoolId=pool["Id"])
    assert requests.get(f"{endpoint}/{pool['Id']}/.well-known/jwks.json").status_code == 404


def _kids(endpoint, pool_id):
    return {k["kid"] for k in requests.get(f"{endpoint}/{pool_id}/.well-known/jwks.json").json()["keys"]}


def test_cli_rotation_publishes_new_keys_and_keeps_the_old_ones(server, endpoint, make_pool):
    pool = make_pool()
    before = _kids(endpoint, pool["Id"])
    done = subprocess.run(
        [str(cognate_bin()), "keys", "rotate", "--data-dir", server.data_dir, "--pool", pool["Id"],
         "--lead-seconds", "60"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "new signing keys published" in done.stderr
    # A running server reads keys again within seconds of a rotation elsewhere.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(_kids(endpoint, pool["Id"])) < 4:
        time.sleep(0.5)
    after = _kids(endpoint, pool["Id"])
    assert len(after) == 4 and before < after


def test_cli_rotation_of_an_unknown_pool_fails_clearly(server):
    done = subprocess.run(
        [str(cognate_bin()), "keys", "rotate", "--data-dir", server.data_dir, "--pool", "us-east-1_Nope12345"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "us-east-1_Nope12345" in done.stderr and "does not exist" in done.stderr
