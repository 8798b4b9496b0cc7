"""USER_SRP_AUTH → PASSWORD_VERIFIER with pycognito's unmodified SRP client (which answers without
a Session, so the SECRET_BLOCK must carry the exchange), over boto3."""

import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from cognate_helpers import GOOD_PASSWORD, error_code, unique


@pytest.fixture
def srp_user(idp, unsigned_idp, make_pool, make_client):
    def make(pool_kwargs=None, username=None, **client_kwargs):
        pool = make_pool(**(pool_kwargs or {}))
        client = make_client(pool["Id"], **client_kwargs)
        email = f"{unique('m')}@example.com"
        # In e-mail-as-username pools the e-mail is the name given; the stored one is a UUID.
        name = email if "UsernameAttributes" in (pool_kwargs or {}) else (username or unique("srp"))
        created = idp.admin_create_user(
            UserPoolId=pool["Id"], Username=name, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        )["User"]
        idp.admin_set_user_password(UserPoolId=pool["Id"], Username=name, Password=GOOD_PASSWORD, Permanent=True)
        return {"pool_id": pool["Id"], "client": client, "username": name, "email": email,
                "internal": created["Username"]}
    return make


def _srp(unsigned_idp, u, username=None, password=GOOD_PASSWORD):
    return AWSSRP(username=username or u["username"], password=password, pool_id=u["pool_id"],
                  client_id=u["client"]["ClientId"], client_secret=u["client"].get("ClientSecret"),
                  client=unsigned_idp)


def test_pycognito_signs_in_with_srp(unsigned_idp, srp_user):
    u = srp_user()
    tokens = _srp(unsigned_idp, u).authenticate_user()
    r = tokens["AuthenticationResult"]
    assert unsigned_idp.get_user(AccessToken=r["AccessToken"])["Username"] == u["username"]


def test_srp_with_a_wrong_password_is_refused(unsigned_idp, srp_user):
    u = srp_user()
    with pytest.raises(ClientError) as e:
        _srp(unsigned_idp, u, password="Wrong-Password-9").authenticate_user()
    assert error_code(e.value) == "NotAuthorizedException"
    assert "Incorrect username or password." in str(e.value)


def test_srp_with_an_email_alias_uses_user_id_for_srp(unsigned_idp, srp_user):
    u = srp_user(pool_kwargs={"UsernameAttributes": ["email"]}, username=None)
    # The pool's usernames are UUIDs; the user signs in with the e-mail.
    tokens = _srp(unsigned_idp, u, username=u["email"]).authenticate_user()
    me = unsigned_idp.get_user(AccessToken=tokens["AuthenticationResult"]["AccessToken"])
    assert me["Username"] == u["internal"]


def test_an_unknown_user_is_answered_alike_every_time(unsigned_idp, srp_user):
    """Security checklist A2, with PreventUserExistenceErrors: USER_SRP_AUTH for a user who does
    not exist answers the same SALT and USER_ID_FOR_SRP on every call, as for a real user, and a
    UUID for USER_ID_FOR_SRP where real users have one; the answer to the challenge is the wrong
    password's."""
    import uuid

    blocks = {}

    def challenge(u, name):
        params = _srp(unsigned_idp, u, username=name).get_auth_params()
        # One SRP_A for every call, so that nothing but the user changes the SECRET_BLOCK.
        params["SRP_A"] = blocks.setdefault("A", params["SRP_A"])
        got = unsigned_idp.initiate_auth(ClientId=u["client"]["ClientId"], AuthFlow="USER_SRP_AUTH",
                                         AuthParameters=params)
        assert got["ChallengeName"] == "PASSWORD_VERIFIER"
        blocks[name] = len(got["ChallengeParameters"]["SECRET_BLOCK"])
        return got["ChallengeParameters"]["SALT"], got["ChallengeParameters"]["USER_ID_FOR_SRP"]

    for pool_kwargs in ({}, {"UsernameAttributes": ["email"]}):
        u = srp_user(pool_kwargs=pool_kwargs, PreventUserExistenceErrors="ENABLED")
        # As long as the real name, so that the SECRET_BLOCKs can be compared.
        nobody = f"n{u['username'][1:]}"
        real = challenge(u, u["username"])
        assert challenge(u, u["username"]) == real
        fake = challenge(u, nobody)
        assert challenge(u, nobody) == fake, pool_kwargs
        if pool_kwargs:
            # E-mail addresses are found in any case: a real one's answer does not change with
            # the spelling, and neither does nobody's.
            assert challenge(u, u["username"].upper()) == real
            assert challenge(u, nobody.upper()) == fake
        assert fake[0] != real[0] and len(fake[0]) >= 24
        # The sealed exchange is as long for nobody as for the user (it once lacked the sub).
        assert blocks[nobody] == blocks[u["username"]], pool_kwargs
        if pool_kwargs:
            # Real users of e-mail-as-username pools have UUIDs; so does nobody. Typed back, a
            # real user's finds the same user, and nobody's the same stand-in.
            assert str(uuid.UUID(real[1])) == real[1] and str(uuid.UUID(fake[1])) == fake[1]
            assert fake[1] != nobody
            assert challenge(u, real[1]) == real
            assert challenge(u, fake[1]) == fake
        else:
            assert (real[1], fake[1]) == (u["username"], nobody)
        with pytest.raises(ClientError) as e:
            _srp(unsigned_idp, u, username=nobody).authenticate_user()
        assert error_code(e.value) == "NotAuthorizedException"
        assert e.value.response["Error"]["Message"] == "Incorrect username or password."


def test_guesses_at_an_unknown_name_lock_it_out_as_a_user_through_either_flow(unsigned_idp, srp_user):
    """Security checklist A1: SRP proofs and passwords for a name nobody has count towards one
    lockout, as a real user's do, and are answered alike."""
    u = srp_user(PreventUserExistenceErrors="ENABLED",
                 ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH"])

    def answers(name):
        got = []
        for flow in ["srp", "password"] * 2 + ["srp"] * 2:
            try:
                if flow == "srp":
                    _srp(unsigned_idp, u, username=name, password="Wrong-Password-9").authenticate_user()
                else:
                    unsigned_idp.initiate_auth(
                        ClientId=u["client"]["ClientId"], AuthFlow="USER_PASSWORD_AUTH",
                        AuthParameters={"USERNAME": name, "PASSWORD": "Wrong-Password-9"})
                got.append("signed in")
            except ClientError as e:
                got.append((error_code(e), e.response["Error"]["Message"]))
        return got

    expected = [("NotAuthorizedException", "Incorrect username or password.")] * 5 + [
        ("NotAuthorizedException", "Password attempts exceeded")]
    assert answers(u["username"]) == expected
    assert answers(unique("nobody")) == expected


def test_an_unknown_email_and_its_stand_ins_id_share_one_lockout(unsigned_idp, srp_user):
    """Security checklist A1 in an e-mail-as-username pool: a real user can be named by e-mail or
    by the USER_ID_FOR_SRP its challenge returns, and both count towards one lockout; so can a
    name nobody has and the id its stand-in returns."""
    u = srp_user(pool_kwargs={"UsernameAttributes": ["email"]}, PreventUserExistenceErrors="ENABLED")

    def user_id_for_srp(name):
        params = _srp(unsigned_idp, u, username=name).get_auth_params()
        got = unsigned_idp.initiate_auth(ClientId=u["client"]["ClientId"], AuthFlow="USER_SRP_AUTH",
                                         AuthParameters=params)
        return got["ChallengeParameters"]["USER_ID_FOR_SRP"]

    def answers(email):
        names = [email] * 5 + [user_id_for_srp(email)]
        got = []
        for name in names:
            try:
                _srp(unsigned_idp, u, username=name, password="Wrong-Password-9").authenticate_user()
                got.append("signed in")
            except ClientError as e:
                got.append((error_code(e), e.response["Error"]["Message"]))
        return got

    expected = [("NotAuthorizedException", "Incorrect username or password.")] * 5 + [
        ("NotAuthorizedException", "Password attempts exceeded")]
    assert answers(u["email"]) == expected
    assert answers(f"{unique('nobody')}@example.com") == expected


def test_srp_with_a_client_secret(unsigned_idp, srp_user):
    u = srp_user(GenerateSecret=True)
    tokens = _srp(unsigned_idp, u).authenticate_user()
    assert "IdToken" in tokens["AuthenticationResult"]


def test_a_secret_block_answers_once(unsigned_idp, srp_user):
    u = srp_user()
    aws = _srp(unsigned_idp, u)
    auth_params = aws.get_auth_params()
    res = unsigned_idp.initiate_auth(AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params,
                                     ClientId=u["client"]["ClientId"])
    assert res["ChallengeName"] == "PASSWORD_VERIFIER"
    responses = aws.process_challenge(res["ChallengeParameters"], auth_params)
    ok = unsigned_idp.respond_to_auth_challenge(ClientId=u["client"]["ClientId"], ChallengeName="PASSWORD_VERIFIER",
                                                ChallengeResponses=responses)
    assert "AccessToken" in ok["AuthenticationResult"]
    with pytest.raises(ClientError) as e:
        unsigned_idp.respond_to_auth_challenge(ClientId=u["client"]["ClientId"], ChallengeName="PASSWORD_VERIFIER",
                                               ChallengeResponses=responses)
    assert error_code(e.value) == "NotAuthorizedException"


def test_a_secret_block_answers_only_its_own_client(unsigned_idp, make_client, srp_user):
    """Security checklist A6: the challenge of one app client cannot be answered through another
    of the same pool, and the refusal does not use it up."""
    u = srp_user()
    other = make_client(u["pool_id"], ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    aws = _srp(unsigned_idp, u)
    auth_params = aws.get_auth_params()
    res = unsigned_idp.initiate_auth(AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params,
                                     ClientId=u["client"]["ClientId"])
    responses = aws.process_challenge(res["ChallengeParameters"], auth_params)
    with pytest.raises(ClientError) as e:
        unsigned_idp.respond_to_auth_challenge(ClientId=other["ClientId"], ChallengeName="PASSWORD_VERIFIER",
                                               ChallengeResponses=responses)
    assert error_code(e.value) == "NotAuthorizedException"
    assert e.value.response["Error"]["Message"] == "Invalid session for the user, session is expired."
    ok = unsigned_idp.respond_to_auth_challenge(ClientId=u["client"]["ClientId"], ChallengeName="PASSWORD_VERIFIER",
                                                ChallengeResponses=responses)
    assert "AccessToken" in ok["AuthenticationResult"]


def test_a_timestamp_far_from_the_servers_clock_is_refused(unsigned_idp, srp_user, monkeypatch):
    """Security checklist A5: pycognito's own proof, signed correctly but over a TIMESTAMP more
    than 15 minutes from the server's clock (either way), is "Incorrect username or password.";
    a device clock ten minutes off still signs in."""
    import datetime

    u = srp_user()
    real = AWSSRP.get_cognito_formatted_timestamp

    def answer_with_clock_off_by(minutes):
        shifted = staticmethod(lambda now: real(now + datetime.timedelta(minutes=minutes)))
        monkeypatch.setattr(AWSSRP, "get_cognito_formatted_timestamp", shifted)
        return _srp(unsigned_idp, u).authenticate_user()

    for minutes in (-20, 20, -24 * 60):
        with pytest.raises(ClientError) as e:
            answer_with_clock_off_by(minutes)
        assert error_code(e.value) == "NotAuthorizedException", minutes
        assert e.value.response["Error"]["Message"] == "Incorrect username or password."
    for minutes in (-10, 10):
        assert "AccessToken" in answer_with_clock_off_by(minutes)["AuthenticationResult"]


def test_a_timestamp_in_the_wrong_format_is_an_invalid_parameter(unsigned_idp, srp_user):
    u = srp_user()
    aws = _srp(unsigned_idp, u)
    auth_params = aws.get_auth_params()
    res = unsigned_idp.initiate_auth(AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params,
                                     ClientId=u["client"]["ClientId"])
    responses = aws.process_challenge(res["ChallengeParameters"], auth_params)
    responses["TIMESTAMP"] = "2025-01-07T09:05:03Z"
    with pytest.raises(ClientError) as e:
        unsigned_idp.respond_to_auth_challenge(ClientId=u["client"]["ClientId"], ChallengeName="PASSWORD_VERIFIER",
                                               ChallengeResponses=responses)
    assert error_code(e.value) == "InvalidParameterException"
    assert "TIMESTAMP format should be EEE MMM d HH:mm:ss z yyyy in english." in str(e.value)
