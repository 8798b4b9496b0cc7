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


def test_no_valid_token_is_refused_across_a_key_rotation(tmp_path):
    """Security checklist R6: through a rotation — the new key published, then signing `lead`
    seconds later — every token the pool issues is accepted by the gateway's Cognito authorizer
    and by a caching JWKS client: PyJWT's, set to behave as aws-jwt-verify does (the key set
    fetched once, then again only for an unknown kid, at most once per 10 s): zero refusals at
    the switch. The lead here (12 s) need only exceed the 10 s within which a running server
    publishes keys another process made, and that rate limit; a verifier that caches the key set
    longer needs a longer lead, hence the default of a day (with PyJWT's own default of 30 s
    between refreshes, a 12 s lead refuses the first tokens of the new key)."""
    import jwt

    from conftest import launch_server
    from cognate_helpers import GOOD_PASSWORD, admin_and_public, apply_mock_api, unique

    config = tmp_path / "cognate.yaml"
    config.write_text("apis: []\n")
    server = launch_server(workdir=str(tmp_path), extra_args=("--config", str(config)))
    try:
        idp, _ = admin_and_public(server.endpoint)
        pool_id = idp.create_user_pool(PoolName=unique("rotate"))["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName="c", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])[
            "UserPoolClient"]["ClientId"]
        idp.admin_create_user(UserPoolId=pool_id, Username="kim", MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username="kim", Password=GOOD_PASSWORD, Permanent=True)
        gateway = apply_mock_api(server.endpoint, config, pool_id)
        jwks = jwt.PyJWKClient(f"{server.endpoint}/{pool_id}/.well-known/jwks.json", cache_jwk_set=True,
                               lifespan=3600, cooldown_duration=10)

        def token():
            return idp.admin_initiate_auth(
                UserPoolId=pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": "kim", "PASSWORD": GOOD_PASSWORD})["AuthenticationResult"]["IdToken"]

        first = token()
        jwks.get_signing_key_from_jwt(first)  # the verifier's cache holds the keys before rotation
        rotated = subprocess.run(
            [str(cognate_bin()), "keys", "rotate", "--data-dir", server.data_dir, "--pool", pool_id,
             "--lead-seconds", "12"], capture_output=True, text=True, timeout=60)
        assert rotated.returncode == 0, rotated.stderr
        kids, refused = set(), []
        # The server signs with the new key from its first read of the keys past the lead (it
        # reads them every 10 s): until a few seconds after the first such token, or 30 s.
        until = time.monotonic() + 30
        while time.monotonic() < until:
            t = token()
            kid = jwt.get_unverified_header(t)["kid"]
            if kid not in kids and kids:
                until = min(until, time.monotonic() + 3)
            kids.add(kid)
            status = requests.get(gateway, headers={"Authorization": t}, timeout=5).status_code
            try:
                jwt.decode(t, jwks.get_signing_key_from_jwt(t).key, algorithms=["RS256"], audience=client_id)
            except jwt.PyJWTError as e:
                refused.append(f"PyJWT: {e}")
            if status != 200:
                refused.append(f"gateway: {status}")
            time.sleep(0.05)
        assert len(kids) == 2, f"the new key did not start signing within the loop: {kids}"
        assert refused == []
    finally:
        server.stop()
