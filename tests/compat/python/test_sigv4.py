"""SigV4 on the IAM (admin) actions; public actions need no signature."""

import datetime

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import (
    GOOD_PASSWORD,
    SECRET_ACCESS_KEY,
    assert_error_response,
    error_code,
    http_status,
    raw_call,
    unique,
)


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def test_valid_signature_is_accepted(idp):
    resp = idp.list_user_pools(MaxResults=5)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(resp["UserPools"], list)


def test_unknown_access_key_is_unrecognized_client(make_idp):
    client = make_idp("AKIDUNKNOWNKEY000000", SECRET_ACCESS_KEY)
    with pytest.raises(ClientError) as ei:
        client.list_user_pools(MaxResults=5)
    assert error_code(ei.value) == "UnrecognizedClientException"
    assert http_status(ei.value) == 400


def test_wrong_secret_is_invalid_signature(make_idp):
    from cognate_helpers import ACCESS_KEY_ID

    client = make_idp(ACCESS_KEY_ID, "definitely-not-the-secret")
    with pytest.raises(ClientError) as ei:
        client.list_user_pools(MaxResults=5)
    assert error_code(ei.value) == "InvalidSignatureException"
    assert http_status(ei.value) == 400


def test_wrong_secret_raw_envelope(endpoint):
    r = raw_call(endpoint, "ListUserPools", {"MaxResults": 5}, secret_key="wrong-secret")
    assert_error_response(r, "InvalidSignatureException")


def test_unsigned_admin_call_is_missing_authentication_token(unsigned_idp):
    with pytest.raises(ClientError) as ei:
        unsigned_idp.list_user_pools(MaxResults=5)
    assert error_code(ei.value) == "MissingAuthenticationTokenException"
    assert http_status(ei.value) in (400, 403)


def test_unsigned_admin_call_raw_envelope(endpoint):
    r = raw_call(endpoint, "AdminGetUser", {"UserPoolId": "us-east-1_abc", "Username": "x"}, sign=False)
    assert r.status_code in (400, 403), r.text
    assert r.json()["__type"].split("#")[-1] == "MissingAuthenticationTokenException"
    assert r.headers.get("x-amzn-RequestId")


def test_unsigned_admin_call_does_not_act(unsigned_idp, idp):
    name = unique("pool")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.create_user_pool(PoolName=name)
    assert error_code(ei.value) == "MissingAuthenticationTokenException"
    names = set()
    token = None
    while True:
        kw = {"MaxResults": 60}
        if token:
            kw["NextToken"] = token
        page = idp.list_user_pools(**kw)
        names.update(p["Name"] for p in page["UserPools"])
        token = page.get("NextToken")
        if not token:
            break
    assert name not in names


def test_body_tampered_after_signing_is_invalid_signature(endpoint):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import requests

    from cognate_helpers import ACCESS_KEY_ID, JSON_CT, TARGET_PREFIX

    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=b'{"MaxResults": 5}',
        headers={"Content-Type": JSON_CT, "X-Amz-Target": TARGET_PREFIX + "ListUserPools"},
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "cognito-idp", "us-east-1").add_auth(req)
    prepared = req.prepare()
    headers = dict(prepared.headers)
    headers.pop("X-Amz-Content-SHA256", None)
    headers.pop("x-amz-content-sha256", None)
    r = requests.post(prepared.url, data=b'{"MaxResults": 6}', headers=headers, timeout=30)
    assert_error_response(r, "InvalidSignatureException")


def test_target_tampered_after_signing_is_invalid_signature(endpoint):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import requests

    from cognate_helpers import ACCESS_KEY_ID, JSON_CT, TARGET_PREFIX

    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=b'{"MaxResults": 5}',
        headers={"Content-Type": JSON_CT, "X-Amz-Target": TARGET_PREFIX + "ListUserPools"},
    )
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "cognito-idp", "us-east-1").add_auth(req)
    headers = dict(req.prepare().headers)
    headers["X-Amz-Target"] = TARGET_PREFIX + "ListUserPoolClients"
    r = requests.post(endpoint + "/", data=b'{"MaxResults": 5}', headers=headers, timeout=30)
    assert_error_response(r, "InvalidSignatureException")


def test_stale_timestamp_is_signature_expired(endpoint):
    stale = lambda: _utc_now() - datetime.timedelta(minutes=20)  # noqa: E731
    r = raw_call(endpoint, "ListUserPools", {"MaxResults": 5}, clock=stale)
    body = assert_error_response(r, "InvalidSignatureException")
    assert body["message"].startswith("Signature expired"), body


def test_future_timestamp_is_signature_not_yet_current(endpoint):
    future = lambda: _utc_now() + datetime.timedelta(minutes=20)  # noqa: E731
    r = raw_call(endpoint, "ListUserPools", {"MaxResults": 5}, clock=future)
    body = assert_error_response(r, "InvalidSignatureException")
    assert body["message"].startswith("Signature not yet current"), body


@pytest.mark.parametrize("minutes", [-10, 10])
def test_timestamp_within_fifteen_minutes_is_accepted(endpoint, minutes):
    skewed = lambda: _utc_now() + datetime.timedelta(minutes=minutes)  # noqa: E731
    r = raw_call(endpoint, "ListUserPools", {"MaxResults": 5}, clock=skewed)
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["UserPools"], list)


def test_public_actions_work_unsigned(idp, unsigned_idp, make_pool, make_client, endpoint):
    from cognate_helpers import latest_code

    pool = make_pool(AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"])
    username = unique("user")
    resp = unsigned_idp.sign_up(
        ClientId=client["ClientId"],
        Username=username,
        Password=GOOD_PASSWORD,
        UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}],
    )
    assert resp["UserConfirmed"] is False
    unsigned_idp.resend_confirmation_code(ClientId=client["ClientId"], Username=username)
    code = latest_code(endpoint, pool["Id"], username, "signup", count=2)
    unsigned_idp.confirm_sign_up(ClientId=client["ClientId"], Username=username, ConfirmationCode=code)
    user = idp.admin_get_user(UserPoolId=pool["Id"], Username=username)
    assert user["UserStatus"] == "CONFIRMED"


def test_public_action_raw_without_any_auth_headers(endpoint, make_pool, make_client):
    pool = make_pool(AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"])
    username = unique("user")
    r = raw_call(
        endpoint,
        "SignUp",
        {
            "ClientId": client["ClientId"],
            "Username": username,
            "Password": GOOD_PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": f"{username}@example.com"}],
        },
        sign=False,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["UserConfirmed"] is False
    assert body["UserSub"]


def test_public_action_ignores_bad_signature(endpoint, make_pool, make_client):
    # 01-transport §1.2 / 02-sigv4 §2.5: public operations are never sign-checked.
    pool = make_pool(AutoVerifiedAttributes=["email"])
    client = make_client(pool["Id"])
    username = unique("user")
    r = raw_call(
        endpoint,
        "SignUp",
        {
            "ClientId": client["ClientId"],
            "Username": username,
            "Password": GOOD_PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": f"{username}@example.com"}],
        },
        secret_key="not-the-secret",
    )
    assert r.status_code == 200, r.text
    assert r.json()["UserConfirmed"] is False


def test_cli_with_wrong_secret_fails(cli):
    err = cli(
        "list-user-pools",
        "--max-results",
        "5",
        check=False,
        env_override={"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
    )
    assert not isinstance(err, (dict, list)) and err is not None
    assert err.returncode != 0
    assert "InvalidSignatureException" in err.stderr, err.stderr


def test_a_pool_of_another_region_does_not_exist_for_the_caller(endpoint, idp, make_pool):
    """Security checklist A15: the region of the signature's credential scope counts. As on AWS,
    where each region is its own endpoint, a client signing for eu-west-1 neither sees nor
    touches a us-east-1 pool (ResourceNotFoundException, as for a pool that does not exist), and
    the pool it creates is an eu-west-1 pool."""
    import boto3

    from cognate_helpers import ACCESS_KEY_ID, NO_RETRY, REGION

    assert REGION != "eu-west-1"
    home = make_pool()
    abroad = boto3.session.Session().client(
        "cognito-idp", endpoint_url=endpoint, region_name="eu-west-1", config=NO_RETRY,
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    for call in (lambda: abroad.describe_user_pool(UserPoolId=home["Id"]),
                 lambda: abroad.admin_create_user(UserPoolId=home["Id"], Username=unique("u")),
                 lambda: abroad.delete_user_pool(UserPoolId=home["Id"])):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_code(ei.value) == "ResourceNotFoundException"
        assert ei.value.response["Error"]["Message"] == f"User pool {home['Id']} does not exist."
    assert idp.describe_user_pool(UserPoolId=home["Id"])["UserPool"]["Id"] == home["Id"]
    assert idp.list_users(UserPoolId=home["Id"])["Users"] == []

    theirs = abroad.create_user_pool(PoolName=unique("eu"))["UserPool"]
    try:
        assert theirs["Id"].startswith("eu-west-1_")
        assert theirs["Arn"].startswith("arn:aws:cognito-idp:eu-west-1:")
        listed = {p["Id"] for p in _all_pools(abroad)}
        assert theirs["Id"] in listed and home["Id"] not in listed
        assert theirs["Id"] not in {p["Id"] for p in _all_pools(idp)}
    finally:
        abroad.delete_user_pool(UserPoolId=theirs["Id"])


def _all_pools(client):
    pages = client.get_paginator("list_user_pools").paginate(MaxResults=60)
    return [p for page in pages for p in page["UserPools"]]
