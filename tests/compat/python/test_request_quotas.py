"""Cognito's request-rate quotas by operation category (security checklist A26), configured with
`request_quotas`, seen through boto3: past a category's rate a call is refused with
TooManyRequestsException (400, "Rate exceeded"), other categories go on, the category is shared
by every pool, the rate comes back, and botocore's standard retry mode rides it out."""

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import launch_server
from cognate_helpers import (
    GOOD_PASSWORD,
    admin_and_public,
    error_code,
    http_status,
    raw_call,
    unique,
)

QUOTAS = """
request_quotas:
  UserRead: 2
  UserPoolResourceRead: 0.5
"""


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A server of its own with UserRead at 2 requests/s and UserPoolResourceRead at one per 2 s;
    two pools, each with a signed-in user."""
    workdir = tmp_path_factory.mktemp("quotas")
    config = workdir / "cognate.yaml"
    config.write_text(QUOTAS)
    server = launch_server(workdir=str(workdir), extra_args=("--config", str(config)))
    try:
        admin, public = admin_and_public(server.endpoint)
        users = []
        for _ in range(2):
            pool_id = admin.create_user_pool(PoolName=unique("quota"))["UserPool"]["Id"]
            client_id = admin.create_user_pool_client(
                UserPoolId=pool_id, ClientName="c",
                ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            )["UserPoolClient"]["ClientId"]
            name = unique("u")
            admin.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
            admin.admin_set_user_password(UserPoolId=pool_id, Username=name, Password=GOOD_PASSWORD,
                                          Permanent=True)
            tokens = public.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters={
                "USERNAME": name, "PASSWORD": GOOD_PASSWORD})["AuthenticationResult"]
            users.append({"pool_id": pool_id, "username": name, "access": tokens["AccessToken"]})
        yield {"server": server, "admin": admin, "public": public, "users": users}
    finally:
        server.stop()


def _drain(call, limit=50):
    """Calls until refused; returns (admitted, the refusal)."""
    for admitted in range(limit):
        try:
            call()
        except ClientError as e:
            return admitted, e
    pytest.fail(f"{limit} calls were all admitted")


def test_a_category_past_its_rate_is_too_many_requests(limited):
    admin = limited["admin"]
    u = limited["users"][0]
    time.sleep(1.1)  # a full bucket
    start = time.monotonic()
    admitted, refusal = _drain(lambda: admin.admin_get_user(UserPoolId=u["pool_id"], Username=u["username"]))
    elapsed = time.monotonic() - start
    # The burst (one second's worth) and what the rate refilled meanwhile; nothing more.
    assert 2 <= admitted <= 2 + int(2 * elapsed), (admitted, elapsed)
    assert error_code(refusal) == "TooManyRequestsException"
    assert http_status(refusal) == 400
    assert refusal.response["Error"]["Message"] == "Rate exceeded"
    # Another category (UserList, not limited) goes on meanwhile.
    for _ in range(20):
        admin.list_users(UserPoolId=u["pool_id"])
    # The rate comes back.
    time.sleep(0.6)
    assert admin.admin_get_user(UserPoolId=u["pool_id"], Username=u["username"])["Username"] == u["username"]


def test_the_category_is_shared_by_every_pool_and_by_public_actions(limited):
    admin, public = limited["admin"], limited["public"]
    first, second = limited["users"]
    time.sleep(1.1)
    _drain(lambda: admin.admin_get_user(UserPoolId=first["pool_id"], Username=first["username"]))
    # GetUser (public, with a token) is UserRead too, and the other pool's user is refused alike.
    for call in (lambda: public.get_user(AccessToken=second["access"]),
                 lambda: admin.admin_get_user(UserPoolId=second["pool_id"], Username=second["username"])):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "TooManyRequestsException"
    time.sleep(0.6)
    assert public.get_user(AccessToken=second["access"])["Username"] == second["username"]


def test_the_wire_answer_is_the_aws_json_error_shape(limited):
    server = limited["server"]
    u = limited["users"][0]
    time.sleep(1.1)
    body = {"UserPoolId": u["pool_id"], "Username": u["username"]}
    answers = [raw_call(server.endpoint, "AdminGetUser", body) for _ in range(30)]
    refused = [r for r in answers if r.status_code != 200]
    assert refused, [r.status_code for r in answers]
    r = refused[0]
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"].startswith("TooManyRequestsException")
    assert r.json() == {"__type": "TooManyRequestsException", "message": "Rate exceeded"}


def test_botocores_standard_retry_mode_rides_out_the_limit(limited):
    """botocore's standard mode treats TooManyRequestsException as throttling (spec 01) and
    retries with backoff: with UserPoolResourceRead at one request every 2 s, a second ListGroups
    right after a first is refused without retries and answered with them."""
    admin = limited["admin"]
    u = limited["users"][0]
    patient, _ = admin_and_public(
        limited["server"].endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 8}, connect_timeout=10,
                      read_timeout=60))
    time.sleep(2.1)
    admitted, refusal = _drain(lambda: admin.list_groups(UserPoolId=u["pool_id"]))
    assert admitted == 1
    assert error_code(refusal) == "TooManyRequestsException"
    assert refusal.response["ResponseMetadata"]["RetryAttempts"] == 0
    answer = patient.list_groups(UserPoolId=u["pool_id"])
    assert answer["ResponseMetadata"]["RetryAttempts"] >= 1
    assert answer["Groups"] == []


def test_without_request_quotas_nothing_is_limited(idp, make_pool):
    """The shared test server has no request_quotas: a hundred reads in a row all pass."""
    pool = make_pool()
    for _ in range(100):
        idp.describe_user_pool(UserPoolId=pool["Id"])
