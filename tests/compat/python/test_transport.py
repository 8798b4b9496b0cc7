"""AWS JSON 1.1 framing: health, CORS, error envelope, unknown target, malformed JSON."""

import json

import pytest
import requests
from botocore.exceptions import ClientError

from cognate_helpers import (
    JSON_CT,
    TARGET_PREFIX,
    assert_error_response,
    error_code,
    http_status,
    raw_call,
    unique,
)


def test_health_returns_200(endpoint):
    r = requests.get(endpoint + "/health", timeout=10)
    assert r.status_code == 200


def test_cors_preflight_allows_cognito_headers(endpoint):
    r = requests.options(
        endpoint + "/",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-amz-target,x-amz-user-agent",
        },
        timeout=10,
    )
    assert r.status_code in (200, 204), (r.status_code, r.text)
    origin = r.headers.get("Access-Control-Allow-Origin")
    assert origin in ("*", "http://localhost:3000"), dict(r.headers)
    allow_headers = r.headers.get("Access-Control-Allow-Headers", "").lower()
    assert allow_headers == "*" or "x-amz-target" in [
        h.strip() for h in allow_headers.split(",")
    ], allow_headers
    assert "content-type" in allow_headers or allow_headers == "*", allow_headers


def test_successful_response_headers(endpoint):
    r = raw_call(endpoint, "ListUserPools", {"MaxResults": 1})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith(JSON_CT)
    assert r.headers.get("x-amzn-RequestId")
    body = r.json()
    assert isinstance(body.get("UserPools"), list)


def test_boto3_sees_request_id(idp):
    resp = idp.list_user_pools(MaxResults=1)
    rid = resp["ResponseMetadata"]["RequestId"]
    assert isinstance(rid, str) and rid
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_error_envelope_for_unknown_pool(endpoint):
    r = raw_call(endpoint, "DescribeUserPool", {"UserPoolId": "us-east-1_doesNotExist1"})
    body = assert_error_response(r, "ResourceNotFoundException")
    assert body["message"]
    assert r.headers["Content-Type"].startswith(JSON_CT)


def test_error_surfaces_in_boto3(idp):
    with pytest.raises(ClientError) as ei:
        idp.describe_user_pool(UserPoolId="us-east-1_doesNotExist2")
    assert error_code(ei.value) == "ResourceNotFoundException"
    assert http_status(ei.value) == 400
    assert ei.value.response["Error"]["Message"]
    assert ei.value.response["ResponseMetadata"]["RequestId"]


def test_unknown_target_is_unknown_operation(endpoint):
    r = raw_call(endpoint, TARGET_PREFIX + "NoSuchActionAtAll", {})
    assert_error_response(r, "UnknownOperationException")


def test_unknown_target_prefix_is_unknown_operation(endpoint):
    r = raw_call(endpoint, "SomeOtherService_20180101.ListUserPools", {"MaxResults": 1})
    assert_error_response(r, "UnknownOperationException")


def test_malformed_json_is_serialization_exception(endpoint):
    r = raw_call(endpoint, "ListUserPools", b'{"MaxResults": 5,,,')
    assert_error_response(r, "SerializationException")


def test_malformed_json_on_public_action_is_serialization_exception(endpoint):
    r = raw_call(endpoint, "SignUp", b"this is not json", sign=False)
    assert_error_response(r, "SerializationException")


def test_wrong_member_type_is_rejected(endpoint):
    # MaxResults must be an integer; a string must not be accepted as if valid.
    r = raw_call(endpoint, "ListUserPools", {"MaxResults": "lots"})
    assert r.status_code == 400, r.text
    assert r.json()["__type"].split("#")[-1] in (
        "SerializationException",
        "InvalidParameterException",
    )


def test_missing_required_member_is_invalid_parameter(endpoint):
    r = raw_call(endpoint, "CreateUserPool", {})
    assert_error_response(r, "InvalidParameterException")


def test_empty_body_object_for_public_action(endpoint):
    r = raw_call(endpoint, "SignUp", {}, sign=False)
    assert_error_response(r, "InvalidParameterException")


def test_request_ids_are_unique(endpoint):
    ids = {raw_call(endpoint, "ListUserPools", {"MaxResults": 1}).headers["x-amzn-RequestId"] for _ in range(3)}
    assert len(ids) == 3


def test_tolerates_extra_sdk_headers(endpoint, idp):
    name = unique("pool")
    r = raw_call(
        endpoint,
        "CreateUserPool",
        {"PoolName": name},
        headers={"X-Amz-User-Agent": "aws-amplify/6.0 js", "Cache-Control": "no-store"},
        unsigned_headers={
            "amz-sdk-invocation-id": "0b7e6f5e-1d7e-4a77-9a1c-2d6f0a1b2c3d",
            "amz-sdk-request": "attempt=1; max=3",
        },
    )
    assert r.status_code == 200, r.text
    pool_id = json.loads(r.text)["UserPool"]["Id"]
    idp.delete_user_pool(UserPoolId=pool_id)


def test_cors_headers_on_actual_response(endpoint):
    # A browser (amazon-cognito-identity-js, Amplify) needs CORS headers on the POST itself,
    # and must be allowed to read the request id / error type headers.
    r = raw_call(endpoint, "SignUp", {}, sign=False, headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 400
    origin = r.headers.get("Access-Control-Allow-Origin")
    assert origin in ("*", "http://localhost:3000"), dict(r.headers)
    exposed = [h.strip().lower() for h in r.headers.get("Access-Control-Expose-Headers", "").split(",")]
    for h in ("x-amzn-requestid", "x-amzn-errortype"):
        assert h in exposed or "*" in exposed, exposed


def test_missing_target_is_unknown_operation(endpoint):
    r = requests.post(
        endpoint + "/", data=b"{}", headers={"Content-Type": JSON_CT}, timeout=10
    )
    assert_error_response(r, "UnknownOperationException")


@pytest.mark.parametrize("body", [b"[]", b'"just a string"', b"42"], ids=["array", "string", "number"])
def test_non_object_json_body_is_rejected(endpoint, body):
    r = raw_call(endpoint, "SignUp", body, sign=False)
    assert r.status_code == 400, r.text
    assert r.json()["__type"].split("#")[-1] in ("SerializationException", "InvalidParameterException")


def test_error_type_header_matches_body(endpoint):
    r = raw_call(endpoint, "DescribeUserPool", {"UserPoolId": "us-east-1_NoSuchPoolHdr"})
    body = r.json()
    assert r.headers["x-amzn-ErrorType"].split(":")[0] == body["__type"]
