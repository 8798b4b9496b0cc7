"""The unmodified aws CLI (v1, botocore 1.43.11) against Cognate."""

import json
import time

from cognate_helpers import GOOD_PASSWORD, UUID_RE, attrs_to_dict, unique, wait_for_messages


def test_done_when_scenario(cli, endpoint):
    """The issue's 'Done when' scenario, driven entirely through `aws cognito-idp`."""
    # --- pool 1: e-mail as username, admin-only sign-up --------------------------------
    pool = cli(
        "create-user-pool",
        "--pool-name", unique("donewhen"),
        "--username-attributes", "email",
        "--admin-create-user-config", "AllowAdminCreateUserOnly=true",
    )["UserPool"]
    pool_id = pool["Id"]
    second_pool_id = None
    try:
        assert pool["UsernameAttributes"] == ["email"]
        assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
        # aws CLI v1 prints timestamps as received: awsJson 1.1 epoch seconds
        assert isinstance(pool["CreationDate"], (int, float))
        assert abs(pool["CreationDate"] - time.time()) < 300

        client = cli(
            "create-user-pool-client",
            "--user-pool-id", pool_id,
            "--client-name", "web",
            "--no-generate-secret",
        )["UserPoolClient"]
        assert client["UserPoolId"] == pool_id
        assert "ClientSecret" not in client

        group = cli(
            "create-group", "--user-pool-id", pool_id, "--group-name", "Admins", "--precedence", "0"
        )["Group"]
        assert group["GroupName"] == "Admins"
        assert group["Precedence"] == 0

        email = f"{unique('admin')}@example.com"
        user = cli(
            "admin-create-user",
            "--user-pool-id", pool_id,
            "--username", email,
            "--user-attributes", f"Name=email,Value={email}", "Name=email_verified,Value=true",
            "--desired-delivery-mediums", "EMAIL",
        )["User"]
        uuid_username = user["Username"]
        assert UUID_RE.match(uuid_username), uuid_username
        assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"
        assert attrs_to_dict(user["Attributes"])["email"] == email
        invite = wait_for_messages(endpoint, pool_id, uuid_username, "temporary_password")
        assert invite[0]["to"] == email and invite[0]["code"]

        out = cli("admin-add-user-to-group", "--user-pool-id", pool_id, "--username", email, "--group-name", "Admins")
        assert out is None  # empty response body -> CLI prints nothing

        groups = cli("admin-list-groups-for-user", "--user-pool-id", pool_id, "--username", email)["Groups"]
        assert [(g["GroupName"], g["Precedence"]) for g in groups] == [("Admins", 0)]

        listed = cli("list-users", "--user-pool-id", pool_id, "--filter", f'email = "{email}"')["Users"]
        assert [u["Username"] for u in listed] == [uuid_username]
        assert attrs_to_dict(listed[0]["Attributes"])["email"] == email

        in_group = cli("list-users-in-group", "--user-pool-id", pool_id, "--group-name", "Admins")["Users"]
        assert [u["Username"] for u in in_group] == [uuid_username]

        # admin-only: self sign-up is refused
        err = cli(
            "sign-up", "--client-id", client["ClientId"], "--username", f"{unique('x')}@example.com",
            "--password", GOOD_PASSWORD, check=False,
        )
        assert err.returncode != 0 and "NotAuthorizedException" in err.stderr, err.stderr

        # --- pool 2: self sign-up -------------------------------------------------------
        second = cli(
            "create-user-pool",
            "--pool-name", unique("selfsignup"),
            "--auto-verified-attributes", "email",
        )["UserPool"]
        second_pool_id = second["Id"]
        client2 = cli(
            "create-user-pool-client", "--user-pool-id", second_pool_id, "--client-name", "app"
        )["UserPoolClient"]

        username = unique("bob")
        signup = cli(
            "sign-up",
            "--client-id", client2["ClientId"],
            "--username", username,
            "--password", GOOD_PASSWORD,
            "--user-attributes", f"Name=email,Value={username}@example.com",
        )
        assert signup["UserConfirmed"] is False
        assert UUID_RE.match(signup["UserSub"])
        assert signup["CodeDeliveryDetails"]["DeliveryMedium"] == "EMAIL"

        code = wait_for_messages(endpoint, second_pool_id, username, "signup")[-1]["code"]
        out = cli(
            "confirm-sign-up",
            "--client-id", client2["ClientId"],
            "--username", username,
            "--confirmation-code", code,
        )
        assert out is None

        got = cli("admin-get-user", "--user-pool-id", second_pool_id, "--username", username)
        assert got["Username"] == username
        assert got["UserStatus"] == "CONFIRMED"
        assert got["Enabled"] is True
        attrs = attrs_to_dict(got["UserAttributes"])
        assert attrs["sub"] == signup["UserSub"]
        assert attrs["email_verified"] == "true"
    finally:
        for pid in (pool_id, second_pool_id):
            if pid:
                cli("delete-user-pool", "--user-pool-id", pid, check=False)


def test_cli_error_exit_code_and_message(cli):
    pool_id = cli("create-user-pool", "--pool-name", unique("clierr"))["UserPool"]["Id"]
    try:
        err = cli("admin-get-user", "--user-pool-id", pool_id, "--username", "ghost", check=False)
        # aws CLI v1 exits 255 on a service error (v2 would use 254)
        assert err.returncode == 255, (err.returncode, err.stderr)
        assert "UserNotFoundException" in err.stderr
        assert "AdminGetUser" in err.stderr
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)


def test_cli_list_users_auto_paginates(cli):
    pool_id = cli("create-user-pool", "--pool-name", unique("clipage"))["UserPool"]["Id"]
    try:
        names = sorted(unique("u") for _ in range(5))
        for n in names:
            cli("admin-create-user", "--user-pool-id", pool_id, "--username", n, "--message-action", "SUPPRESS")
        # --page-size makes the CLI send Limit=2 and follow PaginationToken itself
        out = cli("list-users", "--user-pool-id", pool_id, "--page-size", "2")
        assert sorted(u["Username"] for u in out["Users"]) == names
        # --max-items truncates and hands back a NextToken
        first = cli("list-users", "--user-pool-id", pool_id, "--page-size", "2", "--max-items", "3")
        assert len(first["Users"]) == 3
        rest = cli(
            "list-users", "--user-pool-id", pool_id, "--page-size", "2",
            "--starting-token", first["NextToken"],
        )
        combined = [u["Username"] for u in first["Users"]] + [u["Username"] for u in rest["Users"]]
        assert sorted(combined) == names
    finally:
        cli("delete-user-pool", "--user-pool-id", pool_id, check=False)


def test_cli_describe_user_pool_round_trip(cli):
    created = cli(
        "create-user-pool", "--pool-name", unique("clidesc"),
        "--policies", json.dumps({"PasswordPolicy": {"MinimumLength": 10, "RequireNumbers": True}}),
    )["UserPool"]
    try:
        desc = cli("describe-user-pool", "--user-pool-id", created["Id"])["UserPool"]
        assert desc["Id"] == created["Id"]
        assert desc["Policies"]["PasswordPolicy"]["MinimumLength"] == 10
        assert desc["Policies"]["PasswordPolicy"]["RequireNumbers"] is True
    finally:
        cli("delete-user-pool", "--user-pool-id", created["Id"], check=False)
