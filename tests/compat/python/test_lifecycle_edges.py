"""State-machine edges of the user lifecycle, cascades, and default paging."""

import concurrent.futures

import pytest
from botocore.exceptions import ClientError

from cognate_helpers import NO_RETRY, GOOD_PASSWORD, error_code, unique, wait_for_messages


def test_admin_create_user_resend(endpoint, idp, pool):
    username = unique("u")
    idp.admin_create_user(
        UserPoolId=pool["Id"], Username=username, DesiredDeliveryMediums=["EMAIL"],
        UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"},
                        {"Name": "email_verified", "Value": "true"}],
    )
    first = wait_for_messages(endpoint, pool["Id"], username, "temporary_password")[0]["code"]
    user = idp.admin_create_user(
        UserPoolId=pool["Id"], Username=username, MessageAction="RESEND", DesiredDeliveryMediums=["EMAIL"]
    )["User"]
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    msgs = wait_for_messages(endpoint, pool["Id"], username, "temporary_password", count=2)
    assert len(msgs) == 2
    assert msgs[1]["code"] != first  # a fresh temporary password


def test_admin_create_user_resend_unknown_user(idp, pool):
    with pytest.raises(ClientError) as ei:
        idp.admin_create_user(UserPoolId=pool["Id"], Username=unique("ghost"), MessageAction="RESEND")
    assert error_code(ei.value) == "UserNotFoundException"


def test_resend_code_for_confirmed_user(idp, unsigned_idp, pool, app_client, admin_user):
    user = admin_user()
    with pytest.raises(ClientError) as ei:
        unsigned_idp.resend_confirmation_code(ClientId=app_client["ClientId"], Username=user["Username"])
    assert error_code(ei.value) == "InvalidParameterException"


def test_admin_confirm_already_confirmed(idp, pool, admin_user):
    user = admin_user()
    with pytest.raises(ClientError) as ei:
        idp.admin_confirm_sign_up(UserPoolId=pool["Id"], Username=user["Username"])
    assert error_code(ei.value) == "NotAuthorizedException"


def test_confirm_sign_up_of_force_change_password_user(unsigned_idp, idp, pool, app_client):
    username = unique("u")
    idp.admin_create_user(UserPoolId=pool["Id"], Username=username, MessageAction="SUPPRESS")
    with pytest.raises(ClientError) as ei:
        unsigned_idp.confirm_sign_up(ClientId=app_client["ClientId"], Username=username, ConfirmationCode="123456")
    assert error_code(ei.value) == "NotAuthorizedException"
    assert idp.admin_get_user(UserPoolId=pool["Id"], Username=username)["UserStatus"] == "FORCE_CHANGE_PASSWORD"


def test_deleting_pool_cascades(idp, unsigned_idp, make_pool, make_client):
    pool = make_pool()
    client = make_client(pool["Id"])
    idp.create_group(UserPoolId=pool["Id"], GroupName="g")
    idp.admin_create_user(UserPoolId=pool["Id"], Username="someone", MessageAction="SUPPRESS")
    idp.delete_user_pool(UserPoolId=pool["Id"])
    for call in (
        lambda: idp.list_users(UserPoolId=pool["Id"]),
        lambda: idp.get_group(UserPoolId=pool["Id"], GroupName="g"),
        lambda: idp.describe_user_pool_client(UserPoolId=pool["Id"], ClientId=client["ClientId"]),
        lambda: idp.admin_get_user(UserPoolId=pool["Id"], Username="someone"),
        lambda: unsigned_idp.sign_up(ClientId=client["ClientId"], Username=unique("u"), Password=GOOD_PASSWORD),
    ):
        with pytest.raises(ClientError) as ei:
            call()
        assert error_code(ei.value) == "ResourceNotFoundException"


def test_list_users_default_page_is_60(idp, make_pool):
    pool = make_pool()
    names = set()
    for i in range(65):
        n = f"bulk{i:03d}"
        idp.admin_create_user(UserPoolId=pool["Id"], Username=n, MessageAction="SUPPRESS")
        names.add(n)
    first = idp.list_users(UserPoolId=pool["Id"])
    assert len(first["Users"]) == 60
    assert first.get("PaginationToken")
    second = idp.list_users(UserPoolId=pool["Id"], PaginationToken=first["PaginationToken"])
    assert len(second["Users"]) == 5
    assert not second.get("PaginationToken")
    assert {u["Username"] for u in first["Users"] + second["Users"]} == names


def test_concurrent_sign_up_same_username(endpoint, make_pool, make_client):
    import boto3
    import botocore

    pool = make_pool()
    client_id = make_client(pool["Id"])["ClientId"]
    username = unique("race")
    c = boto3.session.Session().client(
        "cognito-idp", endpoint_url=endpoint, region_name="us-east-1",
        config=NO_RETRY.merge(botocore.config.Config(signature_version=botocore.UNSIGNED, max_pool_connections=10)),
    )

    def attempt(_):
        try:
            c.sign_up(ClientId=client_id, Username=username, Password=GOOD_PASSWORD)
            return "ok"
        except ClientError as e:
            return error_code(e)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(attempt, range(8)))
    assert results.count("ok") == 1, results
    assert results.count("UsernameExistsException") == 7, results

