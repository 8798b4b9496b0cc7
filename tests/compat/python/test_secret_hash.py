"""SECRET_HASH on public actions for an app client that has a secret."""

import jwt
import pytest
from botocore.exceptions import ClientError

from cognate_helpers import GOOD_PASSWORD, error_code, latest_code, secret_hash, unique


@pytest.fixture
def secret_client(pool, make_client):
    client = make_client(pool["Id"], GenerateSecret=True)
    assert client["ClientSecret"]
    return client


def _sign_up(unsigned_idp, client, username, **extra):
    return unsigned_idp.sign_up(
        ClientId=client["ClientId"],
        Username=username,
        Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}],
        **extra,
    )


def test_secret_hash_helper_matches_known_vector():
    # HMAC-SHA256(key="secret", msg="alice" + "client") in base64, computed independently.
    import base64
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(b"secret", b"aliceclient", hashlib.sha256).digest()).decode()
    assert secret_hash("alice", "client", "secret") == expected


def test_sign_up_without_secret_hash(idp, unsigned_idp, pool, secret_client):
    username = unique("u")
    with pytest.raises(ClientError) as ei:
        _sign_up(unsigned_idp, secret_client, username)
    assert error_code(ei.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as ei:
        idp.admin_get_user(UserPoolId=pool["Id"], Username=username)
    assert error_code(ei.value) == "UserNotFoundException"


def test_sign_up_with_wrong_secret_hash(unsigned_idp, secret_client):
    username = unique("u")
    bad = secret_hash(username, secret_client["ClientId"], "not-the-client-secret")
    with pytest.raises(ClientError) as ei:
        _sign_up(unsigned_idp, secret_client, username, SecretHash=bad)
    assert error_code(ei.value) == "NotAuthorizedException"


def test_sign_up_with_hash_for_other_username(unsigned_idp, secret_client):
    username = unique("u")
    other = secret_hash(username + "x", secret_client["ClientId"], secret_client["ClientSecret"])
    with pytest.raises(ClientError) as ei:
        _sign_up(unsigned_idp, secret_client, username, SecretHash=other)
    assert error_code(ei.value) == "NotAuthorizedException"


def test_sign_up_with_correct_secret_hash(endpoint, idp, unsigned_idp, pool, secret_client):
    username = unique("u")
    sh = secret_hash(username, secret_client["ClientId"], secret_client["ClientSecret"])
    resp = _sign_up(unsigned_idp, secret_client, username, SecretHash=sh)
    assert resp["UserConfirmed"] is False
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserStatus"] == "UNCONFIRMED"


def test_confirm_and_resend_need_secret_hash(endpoint, idp, unsigned_idp, pool, secret_client):
    username = unique("u")
    cid, secret = secret_client["ClientId"], secret_client["ClientSecret"]
    sh = secret_hash(username, cid, secret)
    _sign_up(unsigned_idp, secret_client, username, SecretHash=sh)

    with pytest.raises(ClientError) as ei:
        unsigned_idp.resend_confirmation_code(ClientId=cid, Username=username)
    assert error_code(ei.value) == "NotAuthorizedException"
    unsigned_idp.resend_confirmation_code(ClientId=cid, Username=username, SecretHash=sh)
    code = latest_code(endpoint, pool["Id"], username, count=2)

    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(ClientId=cid, Username=username, ConfirmationCode=code)
    assert error_code(ei.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(
            ClientId=cid, Username=username, ConfirmationCode=code,
            SecretHash=secret_hash(username, cid, "wrong"),
        )
    assert error_code(ei.value) == "NotAuthorizedException"
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserStatus"] == "UNCONFIRMED"

    unsigned_idp.confirm_sign_up(ClientId=cid, Username=username, ConfirmationCode=code, SecretHash=sh)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserStatus"] == "CONFIRMED"


def test_secret_hash_with_email_username(endpoint, idp, unsigned_idp, make_pool, make_client):
    # With e-mail as username the hash is computed over what the client sends as Username.
    pool = make_pool(UsernameAttributes=["email"], AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"], GenerateSecret=True)
    email = f"{unique('sh')}@example.com"
    sh = secret_hash(email, client["ClientId"], client["ClientSecret"])
    unsigned_idp.sign_up(
        ClientId=client["ClientId"], Username=email, Password=GOOD_PASSWORD, SecretHash=sh,
        UserAttributes=[{"Name": "email", "Value": email}],
    )
    user = idp.admin_get_user(UserPoolId=pool["Id"], Username=email)
    code = latest_code(endpoint, pool["Id"], user["Username"])
    unsigned_idp.confirm_sign_up(ClientId=client["ClientId"], Username=email, ConfirmationCode=code, SecretHash=sh)
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=email)["UserStatus"] == "CONFIRMED"


def test_sign_in_needs_the_secret_hash(idp, unsigned_idp, make_pool, make_client):
    """Security checklist A14 on the sign-in actions: USER_PASSWORD_AUTH, USER_SRP_AUTH and
    REFRESH_TOKEN_AUTH without SECRET_HASH, or with one for another user, are refused."""
    pool = make_pool()
    client = make_client(pool["Id"], GenerateSecret=True,
                         ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    cid, secret = client["ClientId"], client["ClientSecret"]
    name = unique("sh")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=name, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username=name, Password=GOOD_PASSWORD, Permanent=True)

    def password_auth(**extra):
        return unsigned_idp.initiate_auth(ClientId=cid, AuthFlow="USER_PASSWORD_AUTH",
                                          AuthParameters={"USERNAME": name, "PASSWORD": GOOD_PASSWORD, **extra})

    for extra in ({}, {"SECRET_HASH": secret_hash("someone-else", cid, secret)}, {"SECRET_HASH": "AAAA"}):
        with pytest.raises(ClientError) as e:
            password_auth(**extra)
        assert error_code(e.value) == "NotAuthorizedException", extra
        with pytest.raises(ClientError) as e:
            unsigned_idp.initiate_auth(ClientId=cid, AuthFlow="USER_SRP_AUTH",
                                       AuthParameters={"USERNAME": name, "SRP_A": "2", **extra})
        assert error_code(e.value) == "NotAuthorizedException", extra
    tokens = password_auth(SECRET_HASH=secret_hash(name, cid, secret))["AuthenticationResult"]

    def refresh(hash_):
        return unsigned_idp.initiate_auth(ClientId=cid, AuthFlow="REFRESH_TOKEN_AUTH",
                                          AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"], "SECRET_HASH": hash_})

    with pytest.raises(ClientError) as e:
        refresh("AAAA")
    assert error_code(e.value) == "NotAuthorizedException"
    # A refresh's hash is over the internal username (the tokens' `username`) or the `sub`.
    sub = jwt.decode(tokens["AccessToken"], options={"verify_signature": False})["sub"]
    for over in (name, sub):
        assert "AccessToken" in refresh(secret_hash(over, cid, secret))["AuthenticationResult"]
