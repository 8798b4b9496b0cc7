"""Password sign-in (USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH), refresh, and GetUser with the
access token, through boto3; the tokens are checked by PyJWT against the pool's JWKS."""

import time

import jwt
import pytest
from botocore.exceptions import ClientError

from conftest import launch_server
from cognate_helpers import GOOD_PASSWORD, admin_and_public, at_once, error_code, unique, wrong_passwords_at_once

FLOWS = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]


@pytest.fixture
def signin(idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"], ExplicitAuthFlows=FLOWS)
    username = unique("alice")
    email = f"{username}@example.com"
    idp.admin_create_user(
        UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"},
                        {"Name": "given_name", "Value": "Alice"}],
    )
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True)
    return {"pool_id": pool["Id"], "client_id": client["ClientId"], "username": username, "email": email}


def _password_auth(unsigned_idp, s, password=GOOD_PASSWORD):
    return unsigned_idp.initiate_auth(
        ClientId=s["client_id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": s["username"], "PASSWORD": password},
    )


def _verify(endpoint, s, token, token_use):
    jwks = jwt.PyJWKClient(f"{endpoint}/{s['pool_id']}/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(token)
    options = {"require": ["exp", "iat", "iss", "sub", "token_use", "jti", "origin_jti", "auth_time"]}
    kw = {"audience": s["client_id"]} if token_use == "id" else {"options": {**options, "verify_aud": False}}
    if token_use == "id":
        kw["options"] = options
    claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=f"{endpoint}/{s['pool_id']}", **kw)
    assert claims["token_use"] == token_use
    return claims


def test_user_password_auth_gives_tokens_that_pyjwt_verifies(endpoint, unsigned_idp, signin):
    res = _password_auth(unsigned_idp, signin)
    assert res["ChallengeParameters"] == {}
    r = res["AuthenticationResult"]
    assert r["TokenType"] == "Bearer" and r["ExpiresIn"] == 3600
    access = _verify(endpoint, signin, r["AccessToken"], "access")
    id_ = _verify(endpoint, signin, r["IdToken"], "id")
    assert access["client_id"] == signin["client_id"] and "aud" not in access
    assert access["scope"] == "aws.cognito.signin.user.admin"
    assert access["username"] == signin["username"] and "version" not in access
    assert access["exp"] - access["iat"] == 3600
    assert id_["cognito:username"] == signin["username"]
    assert id_["email"] == signin["email"] and id_["email_verified"] is True
    assert id_["given_name"] == "Alice"
    assert id_["sub"] == access["sub"] and id_["origin_jti"] == access["origin_jti"]
    assert id_["jti"] != access["jti"]
    # ID and access tokens are signed with different keys of the pool.
    assert jwt.get_unverified_header(r["IdToken"])["kid"] != jwt.get_unverified_header(r["AccessToken"])["kid"]
    assert set(r["RefreshToken"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.")


def test_admin_password_auth_and_group_claims(endpoint, idp, signin):
    for name, precedence in (("Users", 5), ("Admins", 0)):
        idp.create_group(UserPoolId=signin["pool_id"], GroupName=name, Precedence=precedence)
        idp.admin_add_user_to_group(UserPoolId=signin["pool_id"], Username=signin["username"], GroupName=name)
    res = idp.admin_initiate_auth(
        UserPoolId=signin["pool_id"], ClientId=signin["client_id"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": signin["username"], "PASSWORD": GOOD_PASSWORD},
    )
    r = res["AuthenticationResult"]
    assert _verify(endpoint, signin, r["IdToken"], "id")["cognito:groups"] == ["Admins", "Users"]
    assert _verify(endpoint, signin, r["AccessToken"], "access")["cognito:groups"] == ["Admins", "Users"]


def test_wrong_password_and_unknown_user(unsigned_idp, idp, make_client, signin):
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, signin, password="Wrong-Password-1")
    assert error_code(e.value) == "NotAuthorizedException"
    assert "Incorrect username or password." in str(e.value)
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, {**signin, "username": "nobody"})
    assert error_code(e.value) == "UserNotFoundException"
    # With PreventUserExistenceErrors an unknown user looks like a wrong password.
    hidden = make_client(signin["pool_id"], ExplicitAuthFlows=FLOWS, PreventUserExistenceErrors="ENABLED")
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, {**signin, "client_id": hidden["ClientId"], "username": "nobody"})
    assert error_code(e.value) == "NotAuthorizedException"
    assert "Incorrect username or password." in str(e.value)


def test_an_unknown_name_is_locked_out_as_a_user_is(idp, unsigned_idp, make_pool, make_client):
    """Security checklist A1: with PreventUserExistenceErrors, wrong guesses at a name nobody has
    are answered exactly as at a real user, the lockout included; the count is the name's in any
    spelling that would find the same user (here a case-insensitive pool)."""
    pool = make_pool(UsernameConfiguration={"CaseSensitive": False})
    hidden = make_client(pool["Id"], ExplicitAuthFlows=FLOWS, PreventUserExistenceErrors="ENABLED")
    legacy = make_client(pool["Id"], ExplicitAuthFlows=FLOWS)
    username = unique("alice")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool["Id"], Username=username, Password=GOOD_PASSWORD, Permanent=True)
    nobody = unique("nobody")

    def answers(spellings, client_id=hidden["ClientId"]):
        got = []
        for name in spellings:
            try:
                unsigned_idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                           AuthParameters={"USERNAME": name, "PASSWORD": "Wrong-Password-1"})
                got.append("signed in")
            except ClientError as e:
                got.append((error_code(e), e.response["Error"]["Message"]))
        return got

    def seven(name):
        return [name, name.upper()] * 3 + [name]

    expected = [("NotAuthorizedException", "Incorrect username or password.")] * 5 + [
        ("NotAuthorizedException", "Password attempts exceeded")] * 2
    assert answers(seven(username)) == expected
    assert answers(seven(nobody)) == expected
    # A client without the setting tells the name's absence, as Cognito's does.
    assert answers([nobody], legacy["ClientId"]) == [("UserNotFoundException", "User does not exist.")]
    # The lockout (one second after five failures) ends for both alike.
    time.sleep(1.2)
    assert answers([username]) == answers([nobody]) == [
        ("NotAuthorizedException", "Incorrect username or password.")]


def test_flows_not_enabled_on_the_client_are_refused(unsigned_idp, idp, make_client, signin):
    plain = make_client(signin["pool_id"])  # Cognito's default flows: SRP, refresh, custom
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, {**signin, "client_id": plain["ClientId"]})
    assert error_code(e.value) == "InvalidParameterException"
    assert "USER_PASSWORD_AUTH flow not enabled for this client" in str(e.value)
    with pytest.raises(ClientError) as e:
        idp.admin_initiate_auth(
            UserPoolId=signin["pool_id"], ClientId=plain["ClientId"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": signin["username"], "PASSWORD": GOOD_PASSWORD},
        )
    assert "Auth flow not enabled for this client" in str(e.value)


def test_disabled_and_unconfirmed_users_cannot_sign_in(unsigned_idp, idp, signin):
    idp.admin_disable_user(UserPoolId=signin["pool_id"], Username=signin["username"])
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, signin)
    assert error_code(e.value) == "NotAuthorizedException" and "User is disabled." in str(e.value)
    idp.admin_enable_user(UserPoolId=signin["pool_id"], Username=signin["username"])
    unsigned_idp.sign_up(ClientId=signin["client_id"], Username="carol", Password=GOOD_PASSWORD,
                         UserAttributes=[{"Name": "email", "Value": "carol@example.com"}])
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, {**signin, "username": "carol"})
    assert error_code(e.value) == "UserNotConfirmedException"


def test_refresh_gives_new_tokens_of_the_same_family(endpoint, unsigned_idp, idp, signin):
    first = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    time.sleep(1.1)
    res = unsigned_idp.initiate_auth(
        ClientId=signin["client_id"], AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={"REFRESH_TOKEN": first["RefreshToken"]},
    )["AuthenticationResult"]
    assert "RefreshToken" not in res
    old = _verify(endpoint, signin, first["AccessToken"], "access")
    new = _verify(endpoint, signin, res["AccessToken"], "access")
    assert new["origin_jti"] == old["origin_jti"] and new["auth_time"] == old["auth_time"]
    assert new["jti"] != old["jti"] and new["iat"] > old["iat"]
    with pytest.raises(ClientError) as e:
        unsigned_idp.initiate_auth(ClientId=signin["client_id"], AuthFlow="REFRESH_TOKEN_AUTH",
                                   AuthParameters={"REFRESH_TOKEN": "not-a-token"})
    assert error_code(e.value) == "NotAuthorizedException" and "Invalid Refresh Token" in str(e.value)
    # A disabled user's refresh token stops working.
    idp.admin_disable_user(UserPoolId=signin["pool_id"], Username=signin["username"])
    with pytest.raises(ClientError) as e:
        unsigned_idp.initiate_auth(ClientId=signin["client_id"], AuthFlow="REFRESH_TOKEN_AUTH",
                                   AuthParameters={"REFRESH_TOKEN": first["RefreshToken"]})
    assert error_code(e.value) == "NotAuthorizedException"


def test_get_user_with_the_access_token(unsigned_idp, signin):
    r = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    me = unsigned_idp.get_user(AccessToken=r["AccessToken"])
    assert me["Username"] == signin["username"]
    attrs = {a["Name"]: a["Value"] for a in me["UserAttributes"]}
    assert attrs["email"] == signin["email"] and "sub" in attrs
    # An ID token, a tampered token and garbage are not access tokens.
    for bad in (r["IdToken"], r["AccessToken"][:-4] + "AAAA", "garbage"):
        with pytest.raises(ClientError) as e:
            unsigned_idp.get_user(AccessToken=bad)
        assert error_code(e.value) == "NotAuthorizedException"


def _refresh(unsigned_idp, s, token):
    return unsigned_idp.initiate_auth(ClientId=s["client_id"], AuthFlow="REFRESH_TOKEN_AUTH",
                                      AuthParameters={"REFRESH_TOKEN": token})


def _assert_signed_out(unsigned_idp, signin, session):
    """The session's access token is refused by GetUser and its refresh token by a refresh, both
    as revoked."""
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_user(AccessToken=session["AccessToken"])
    assert error_code(e.value) == "NotAuthorizedException"
    assert "Access Token has been revoked" in str(e.value)
    with pytest.raises(ClientError) as e:
        _refresh(unsigned_idp, signin, session["RefreshToken"])
    assert "Refresh Token has been revoked" in str(e.value)


def _signs_in_afresh(unsigned_idp, signin):
    again = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    assert unsigned_idp.get_user(AccessToken=again["AccessToken"])["Username"] == signin["username"]


def test_global_sign_out_kills_refresh_and_access_tokens(unsigned_idp, signin):
    one = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    two = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    unsigned_idp.global_sign_out(AccessToken=one["AccessToken"])
    for session in (one, two):
        _assert_signed_out(unsigned_idp, signin, session)
    _signs_in_afresh(unsigned_idp, signin)


def test_admin_user_global_sign_out(unsigned_idp, idp, signin):
    r = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    idp.admin_user_global_sign_out(UserPoolId=signin["pool_id"], Username=signin["username"])
    with pytest.raises(ClientError) as e:
        _refresh(unsigned_idp, signin, r["RefreshToken"])
    assert error_code(e.value) == "NotAuthorizedException"


def test_disabling_a_user_revokes_their_tokens_for_good(unsigned_idp, idp, signin):
    """Security checklist A11, and AWS's AdminDisableUser ("revokes all access tokens for the
    user"): enabling the user again does not bring the old tokens back."""
    old = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    idp.admin_disable_user(UserPoolId=signin["pool_id"], Username=signin["username"])
    idp.admin_enable_user(UserPoolId=signin["pool_id"], Username=signin["username"])
    _assert_signed_out(unsigned_idp, signin, old)
    _signs_in_afresh(unsigned_idp, signin)


def test_passwords_are_compared_as_given_whole_and_unnormalised(unsigned_idp, idp, signin):
    """Security checklist A12: a password is the exact string set — its Unicode normalisation form
    is part of it (no normalisation, documented in docs/security.md) and no length is cut off."""
    import unicodedata

    def sign_in_with(password):
        return _password_auth(unsigned_idp, signin, password)

    def refused(password):
        with pytest.raises(ClientError) as e:
            sign_in_with(password)
        assert error_code(e.value) == "NotAuthorizedException"

    composed = unicodedata.normalize("NFC", "Crème-Brûlée-42")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    idp.admin_set_user_password(UserPoolId=signin["pool_id"], Username=signin["username"], Password=composed,
                                Permanent=True)
    assert sign_in_with(composed)["AuthenticationResult"]
    refused(decomposed)
    long = "Aa1-" + "x" * 251 + "y"  # 256 characters, the most a password may have
    idp.admin_set_user_password(UserPoolId=signin["pool_id"], Username=signin["username"], Password=long,
                                Permanent=True)
    assert sign_in_with(long)["AuthenticationResult"]
    refused(long[:-1] + "z")
    refused(long[:72])


def test_revoke_token_kills_one_family_only(unsigned_idp, signin):
    one = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    two = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    unsigned_idp.revoke_token(Token=one["RefreshToken"], ClientId=signin["client_id"])
    with pytest.raises(ClientError) as e:
        _refresh(unsigned_idp, signin, one["RefreshToken"])
    assert "Refresh Token has been revoked" in str(e.value)
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_user(AccessToken=one["AccessToken"])
    assert "Access Token has been revoked" in str(e.value)
    assert "AccessToken" in _refresh(unsigned_idp, signin, two["RefreshToken"])["AuthenticationResult"]
    assert unsigned_idp.get_user(AccessToken=two["AccessToken"])["Username"] == signin["username"]
    # Only refresh tokens can be revoked; unknown ones are no error.
    with pytest.raises(ClientError) as e:
        unsigned_idp.revoke_token(Token=two["AccessToken"], ClientId=signin["client_id"])
    assert error_code(e.value) == "UnsupportedTokenTypeException"
    unsigned_idp.revoke_token(Token="unknown-token", ClientId=signin["client_id"])


def test_revoke_token_needs_revocation_enabled(unsigned_idp, make_client, signin):
    off = make_client(signin["pool_id"], ExplicitAuthFlows=FLOWS, EnableTokenRevocation=False)
    r = _password_auth(unsigned_idp, {**signin, "client_id": off["ClientId"]})["AuthenticationResult"]
    with pytest.raises(ClientError) as e:
        unsigned_idp.revoke_token(Token=r["RefreshToken"], ClientId=off["ClientId"])
    assert error_code(e.value) == "UnsupportedOperationException"


def test_deleted_users_tokens_stop_working(unsigned_idp, idp, signin):
    r = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    idp.admin_delete_user(UserPoolId=signin["pool_id"], Username=signin["username"])
    with pytest.raises(ClientError) as e:
        _refresh(unsigned_idp, signin, r["RefreshToken"])
    assert error_code(e.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_user(AccessToken=r["AccessToken"])
    assert error_code(e.value) in ("NotAuthorizedException", "UserNotFoundException")


@pytest.fixture
def temp_user(idp, make_pool, make_client):
    pool = make_pool(Schema=[{"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True}])
    client = make_client(pool["Id"], ExplicitAuthFlows=FLOWS)
    idp.admin_create_user(
        UserPoolId=pool["Id"], Username="newbie", TemporaryPassword="Temp-Pass-123", MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": "newbie@example.com"}, {"Name": "name", "Value": "N"}],
    )
    return {"pool_id": pool["Id"], "client_id": client["ClientId"], "username": "newbie"}


def _temp_sign_in(unsigned_idp, t):
    return unsigned_idp.initiate_auth(ClientId=t["client_id"], AuthFlow="USER_PASSWORD_AUTH",
                                      AuthParameters={"USERNAME": t["username"], "PASSWORD": "Temp-Pass-123"})


def test_temporary_password_asks_for_a_new_one(endpoint, unsigned_idp, idp, temp_user):
    import json as _json
    res = _temp_sign_in(unsigned_idp, temp_user)
    assert res["ChallengeName"] == "NEW_PASSWORD_REQUIRED" and "AuthenticationResult" not in res
    params = res["ChallengeParameters"]
    assert params["USER_ID_FOR_SRP"] == "newbie"
    assert _json.loads(params["requiredAttributes"]) == []
    assert _json.loads(params["userAttributes"])["email"] == "newbie@example.com"
    # A password the policy refuses leaves the session usable.
    with pytest.raises(ClientError) as e:
        unsigned_idp.respond_to_auth_challenge(
            ClientId=temp_user["client_id"], ChallengeName="NEW_PASSWORD_REQUIRED", Session=res["Session"],
            ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": "short"})
    assert error_code(e.value) == "InvalidPasswordException"
    # So does an attribute the user may not write.
    with pytest.raises(ClientError) as e:
        unsigned_idp.respond_to_auth_challenge(
            ClientId=temp_user["client_id"], ChallengeName="NEW_PASSWORD_REQUIRED", Session=res["Session"],
            ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": GOOD_PASSWORD, "userAttributes.sub": "mine"})
    assert error_code(e.value) == "InvalidParameterException"
    done = unsigned_idp.respond_to_auth_challenge(
        ClientId=temp_user["client_id"], ChallengeName="NEW_PASSWORD_REQUIRED", Session=res["Session"],
        ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": GOOD_PASSWORD, "userAttributes.name": "Newbie"})
    tokens = done["AuthenticationResult"]
    claims = _verify(endpoint, {**temp_user}, tokens["IdToken"], "id")
    assert claims["name"] == "Newbie"
    user = idp.admin_get_user(UserPoolId=temp_user["pool_id"], Username="newbie")
    assert user["UserStatus"] == "CONFIRMED"
    # Sessions are single use.
    with pytest.raises(ClientError) as e:
        unsigned_idp.respond_to_auth_challenge(
            ClientId=temp_user["client_id"], ChallengeName="NEW_PASSWORD_REQUIRED", Session=res["Session"],
            ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": GOOD_PASSWORD + "x"})
    assert error_code(e.value) == "NotAuthorizedException"
    # The new password signs in; the temporary one no longer does.
    ok = unsigned_idp.initiate_auth(ClientId=temp_user["client_id"], AuthFlow="USER_PASSWORD_AUTH",
                                    AuthParameters={"USERNAME": "newbie", "PASSWORD": GOOD_PASSWORD})
    assert "AuthenticationResult" in ok
    with pytest.raises(ClientError):
        _temp_sign_in(unsigned_idp, temp_user)


def test_two_answers_to_one_new_password_challenge_at_once_one_lands(unsigned_idp, temp_user):
    """A session answers once, even two answers sent at once: one sets its password and gets
    tokens, the other is refused (as a session already used — or, when the winner's write lands
    between its session check and its read of the user, as a user no longer waiting for a new
    password), and only the winner's password signs in."""
    session = _temp_sign_in(unsigned_idp, temp_user)["Session"]
    news = [f"{GOOD_PASSWORD}-a", f"{GOOD_PASSWORD}-b"]
    answers = at_once(*[
        (lambda new=new: unsigned_idp.respond_to_auth_challenge(
            ClientId=temp_user["client_id"], ChallengeName="NEW_PASSWORD_REQUIRED", Session=session,
            ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": new}))
        for new in news
    ])
    assert sorted(answers) == ["NotAuthorizedException", "ok"], answers
    winner, loser = (news[0], news[1]) if answers[0] == "ok" else (news[1], news[0])

    def sign_in(password):
        return unsigned_idp.initiate_auth(ClientId=temp_user["client_id"], AuthFlow="USER_PASSWORD_AUTH",
                                          AuthParameters={"USERNAME": "newbie", "PASSWORD": password})

    assert "AuthenticationResult" in sign_in(winner)
    with pytest.raises(ClientError) as e:
        sign_in(loser)
    assert error_code(e.value) == "NotAuthorizedException"


def test_sessions_are_bound_to_their_challenge_and_not_forgeable(unsigned_idp, idp, temp_user):
    res = _temp_sign_in(unsigned_idp, temp_user)
    for name, session in (("SOFTWARE_TOKEN_MFA", res["Session"]), ("NEW_PASSWORD_REQUIRED", "A" * 40),
                          ("NEW_PASSWORD_REQUIRED", res["Session"][:-3] + "xyz")):
        with pytest.raises(ClientError) as e:
            unsigned_idp.respond_to_auth_challenge(
                ClientId=temp_user["client_id"], ChallengeName=name, Session=session,
                ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": GOOD_PASSWORD,
                                    "SOFTWARE_TOKEN_MFA_CODE": "123456"})
        assert error_code(e.value) in ("NotAuthorizedException", "InvalidParameterException"), name
    # The admin twin answers the same challenge.
    res = idp.admin_initiate_auth(UserPoolId=temp_user["pool_id"], ClientId=temp_user["client_id"],
                                  AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                                  AuthParameters={"USERNAME": "newbie", "PASSWORD": "Temp-Pass-123"})
    done = idp.admin_respond_to_auth_challenge(
        UserPoolId=temp_user["pool_id"], ClientId=temp_user["client_id"], ChallengeName="NEW_PASSWORD_REQUIRED",
        Session=res["Session"], ChallengeResponses={"USERNAME": "newbie", "NEW_PASSWORD": GOOD_PASSWORD})
    assert "IdToken" in done["AuthenticationResult"]


def test_tokens_signed_before_a_key_rotation_keep_verifying(endpoint, server, unsigned_idp, signin):
    import subprocess

    from cognate_helpers import cognate_bin

    before = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    old_kid = jwt.get_unverified_header(before["AccessToken"])["kid"]
    done = subprocess.run(
        [str(cognate_bin()), "keys", "rotate", "--data-dir", server.data_dir, "--pool", signin["pool_id"],
         "--lead-seconds", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # The server reads the pool's keys again within 10 s; from then on new tokens use the new key.
    deadline = time.monotonic() + 20
    while True:
        after = _password_auth(unsigned_idp, signin)["AuthenticationResult"]
        if jwt.get_unverified_header(after["AccessToken"])["kid"] != old_kid or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert jwt.get_unverified_header(after["AccessToken"])["kid"] != old_kid
    # Both generations verify against the JWKS, and the old access token still works.
    for r in (before, after):
        _verify(endpoint, signin, r["AccessToken"], "access")
        _verify(endpoint, signin, r["IdToken"], "id")
    assert unsigned_idp.get_user(AccessToken=before["AccessToken"])["Username"] == signin["username"]


def test_five_wrong_passwords_lock_the_user_out_for_a_doubling_time(unsigned_idp, signin):
    for _ in range(5):
        with pytest.raises(ClientError) as e:
            _password_auth(unsigned_idp, signin, "Wrong-Password-1")
        assert e.value.response["Error"]["Message"] == "Incorrect username or password."
    # Locked for one second: even the right password is refused, without counting.
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, signin)
    assert error_code(e.value) == "NotAuthorizedException"
    assert e.value.response["Error"]["Message"] == "Password attempts exceeded"
    time.sleep(1.2)
    # A sixth failure after the lockout locks for two seconds.
    with pytest.raises(ClientError):
        _password_auth(unsigned_idp, signin, "Wrong-Password-1")
    time.sleep(1.2)
    with pytest.raises(ClientError) as e:
        _password_auth(unsigned_idp, signin)
    assert e.value.response["Error"]["Message"] == "Password attempts exceeded"
    time.sleep(1.0)
    assert _password_auth(unsigned_idp, signin)["AuthenticationResult"]
    # The successful sign-in reset the count: four failures do not lock.
    for _ in range(4):
        with pytest.raises(ClientError):
            _password_auth(unsigned_idp, signin, "Wrong-Password-1")
    assert _password_auth(unsigned_idp, signin)["AuthenticationResult"]


def _rotating_client(idp, make_client, pool_id, grace):
    return make_client(pool_id, ExplicitAuthFlows=FLOWS,
                       RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": grace})


def _first_refresh_token(unsigned_idp, signin, client_id):
    res = unsigned_idp.initiate_auth(
        ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": signin["username"], "PASSWORD": GOOD_PASSWORD})
    return res["AuthenticationResult"]["RefreshToken"]


def test_get_tokens_from_refresh_token_without_rotation(unsigned_idp, signin):
    refresh = _password_auth(unsigned_idp, signin)["AuthenticationResult"]["RefreshToken"]
    out = unsigned_idp.get_tokens_from_refresh_token(RefreshToken=refresh, ClientId=signin["client_id"])
    r = out["AuthenticationResult"]
    assert r["AccessToken"] and r["IdToken"] and "RefreshToken" not in r
    # Still the same token: it keeps working.
    assert unsigned_idp.get_tokens_from_refresh_token(RefreshToken=refresh, ClientId=signin["client_id"])


def test_rotation_replaces_the_refresh_token_and_refuses_the_old_one(idp, unsigned_idp, make_client, signin):
    client_id = _rotating_client(idp, make_client, signin["pool_id"], 0)["ClientId"]
    assert idp.describe_user_pool_client(UserPoolId=signin["pool_id"], ClientId=client_id)[
        "UserPoolClient"]["RefreshTokenRotation"] == {"Feature": "ENABLED", "RetryGracePeriodSeconds": 0}
    first = _first_refresh_token(unsigned_idp, signin, client_id)
    with pytest.raises(ClientError) as e:
        unsigned_idp.initiate_auth(ClientId=client_id, AuthFlow="REFRESH_TOKEN_AUTH",
                                   AuthParameters={"REFRESH_TOKEN": first})
    assert error_code(e.value) == "NotAuthorizedException"
    second = unsigned_idp.get_tokens_from_refresh_token(RefreshToken=first, ClientId=client_id)[
        "AuthenticationResult"]["RefreshToken"]
    assert second != first
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_tokens_from_refresh_token(RefreshToken=first, ClientId=client_id)
    assert error_code(e.value) == "RefreshTokenReuseException"
    third = unsigned_idp.get_tokens_from_refresh_token(RefreshToken=second, ClientId=client_id)
    assert third["AuthenticationResult"]["RefreshToken"] not in (first, second)
    # Revoking the current token ends the family.
    unsigned_idp.revoke_token(Token=third["AuthenticationResult"]["RefreshToken"], ClientId=client_id)
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_tokens_from_refresh_token(
            RefreshToken=third["AuthenticationResult"]["RefreshToken"], ClientId=client_id)
    assert error_code(e.value) == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        unsigned_idp.get_user(AccessToken=third["AuthenticationResult"]["AccessToken"])
    assert error_code(e.value) == "NotAuthorizedException"


def _rotate(idp, client_id, token):
    return idp.get_tokens_from_refresh_token(RefreshToken=token, ClientId=client_id)["AuthenticationResult"]


def test_by_default_a_replaced_token_is_refused_and_its_family_lives(unsigned_idp, make_client, signin):
    """Cognito's behaviour (security checklist A10, default): tokens a rotation replaced are
    refused; the family's current token goes on working."""
    client_id = _rotating_client(unsigned_idp, make_client, signin["pool_id"], 0)["ClientId"]
    first = _first_refresh_token(unsigned_idp, signin, client_id)
    second = _rotate(unsigned_idp, client_id, first)["RefreshToken"]
    third = _rotate(unsigned_idp, client_id, second)["RefreshToken"]
    for old, code in ((second, "RefreshTokenReuseException"), (first, "NotAuthorizedException")):
        with pytest.raises(ClientError) as e:
            _rotate(unsigned_idp, client_id, old)
        assert error_code(e.value) == code
    assert _rotate(unsigned_idp, client_id, third)["RefreshToken"]


def test_with_revoke_family_a_replaced_token_presented_again_ends_the_family(tmp_path):
    """Security checklist A10, `refresh_token_reuse: revoke_family`: a token a rotation replaced —
    the last one or one further back — presented again is refused and revokes its family, so the
    current refresh token and the access tokens minted from it stop working; a token never issued
    is only refused."""
    config = tmp_path / "cognate.yaml"
    config.write_text("refresh_token_reuse: revoke_family\n")
    server = launch_server(workdir=str(tmp_path), extra_args=("--config", str(config)))
    try:
        idp, _ = admin_and_public(server.endpoint)
        pool_id = idp.create_user_pool(PoolName=unique("reuse"))["UserPool"]["Id"]
        client_id = _rotating_client(idp, lambda p, **kw: idp.create_user_pool_client(
            UserPoolId=p, ClientName="c", **kw)["UserPoolClient"], pool_id, 0)["ClientId"]
        idp.admin_create_user(UserPoolId=pool_id, Username="rita", MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=pool_id, Username="rita", Password=GOOD_PASSWORD, Permanent=True)
        s = {"pool_id": pool_id, "username": "rita"}
        with pytest.raises(ClientError) as e:
            _rotate(idp, client_id, "CgR1" + "A" * 64)
        assert error_code(e.value) == "NotAuthorizedException"
        for back in (1, 2):
            first = _first_refresh_token(idp, s, client_id)
            chain = [first]
            for _ in range(back):
                chain.append(_rotate(idp, client_id, chain[-1])["RefreshToken"])
            current = _rotate(idp, client_id, chain[-1])
            stolen = chain[-1] if back == 1 else chain[0]
            with pytest.raises(ClientError) as e:
                _rotate(idp, client_id, stolen)
            assert error_code(e.value) == "RefreshTokenReuseException", back
            with pytest.raises(ClientError) as e:
                _rotate(idp, client_id, current["RefreshToken"])
            assert error_code(e.value) == "NotAuthorizedException", back
            with pytest.raises(ClientError) as e:
                idp.get_user(AccessToken=current["AccessToken"])
            assert error_code(e.value) == "NotAuthorizedException", back
    finally:
        server.stop()


def test_rotation_grace_lets_a_lost_answer_be_retried(idp, unsigned_idp, make_client, signin):
    client_id = _rotating_client(idp, make_client, signin["pool_id"], 30)["ClientId"]
    first = _first_refresh_token(unsigned_idp, signin, client_id)
    lost = unsigned_idp.get_tokens_from_refresh_token(RefreshToken=first, ClientId=client_id)[
        "AuthenticationResult"]["RefreshToken"]
    retried = unsigned_idp.get_tokens_from_refresh_token(RefreshToken=first, ClientId=client_id)[
        "AuthenticationResult"]["RefreshToken"]
    assert retried not in (first, lost)
    # The answer that was lost is superseded; the retry's token is the family's token now.
    with pytest.raises(ClientError):
        unsigned_idp.get_tokens_from_refresh_token(RefreshToken=lost, ClientId=client_id)
    assert unsigned_idp.get_tokens_from_refresh_token(RefreshToken=retried, ClientId=client_id)


def test_rotation_settings_are_checked(idp, make_client, signin):
    for bad in ({"Feature": "SOMETIMES"}, {"Feature": "ENABLED", "RetryGracePeriodSeconds": 61}):
        with pytest.raises(ClientError) as e:
            make_client(signin["pool_id"], RefreshTokenRotation=bad)
        assert error_code(e.value) == "InvalidParameterException"


@pytest.mark.parametrize("who", ["a user", "a name nobody has"])
def test_fifty_parallel_wrong_passwords_are_five_tries(unsigned_idp, make_client, signin, who):
    """The lockout count is exact under parallel guesses (security checklist A3/R8): of 50 wrong
    passwords sent at once, five are checked and the rest refused by the lockout — at a name
    nobody has too, with PreventUserExistenceErrors (A1)."""

    hidden = make_client(signin["pool_id"], ExplicitAuthFlows=FLOWS, PreventUserExistenceErrors="ENABLED")
    target = {**signin, "client_id": hidden["ClientId"]}
    if who == "a name nobody has":
        target["username"] = unique("nobody")

    answers = wrong_passwords_at_once(lambda _: _password_auth(unsigned_idp, target, "Wrong-Password-1"))
    assert answers.count("Incorrect username or password.") == 5, answers
    assert answers.count("Password attempts exceeded") == 45, answers
