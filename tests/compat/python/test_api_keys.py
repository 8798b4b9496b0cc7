"""API keys and usage plans (issue 5, item 4): `x-api-key` on key-protected routes, throttles,
quotas that survive a restart and are shared by two nodes on one PostgreSQL, keys and plans from
the configuration file and from the CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest
import requests

from cognate_helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, cognate_bin
from conftest import launch_server
from postgres import drop_schema, new_schema, require_postgres, schema_url

PARTNER = "partner-key-value-0123456789"
SLEEPER = "sleeper-key-value-0123456789"
METERED = "metered-key-value-0123456789"
FAST = "throttled-key-value-012345678"


def config(limit=5, batch=None):
    return f"""
{f"quota_batch: {batch}" if batch else ""}
apis:
  - name: shop
    kind: rest
    prefix: /shop
    stages: [prod, beta]
    routes:
      - route: GET /open
        integration: {{type: mock, body: open}}
      - route: GET /items
        api_key_required: true
        integration: {{type: mock, body: items}}
usage_plans:
  - name: partners
    stages: [shop/prod]
  - name: slow
    stages: [shop/prod]
    throttle: {{rate: 2, burst: 3}}
  - name: metered
    stages: [shop/prod]
    quota: {{limit: {limit}, period: DAY}}
api_keys:
  - name: partner
    value: {PARTNER}
    usage_plans: [partners]
  - name: sleeper
    value: {SLEEPER}
    enabled: false
    usage_plans: [partners]
  - name: metered
    value: {METERED}
    usage_plans: [metered]
  - name: fast
    value: {FAST}
    usage_plans: [slow]
"""


def start(tmp_path, text, data_dir=None, extra=()):
    path = tmp_path / "cognate.yaml"
    path.write_text(text)
    return launch_server(workdir=str(tmp_path), data_dir=data_dir, extra_args=("--config", str(path), *extra))


def get(server, key=None, stage="prod", route="items"):
    headers = {"x-api-key": key} if key is not None else {}
    return requests.get(f"{server.endpoint}/shop/{stage}/{route}", headers=headers, timeout=10)


def cli(server, *args):
    out = subprocess.run(
        [str(cognate_bin()), *args[:1], "--data-dir", server.data_dir, *args[1:]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def apply(server, path):
    env = dict(os.environ, COGNATE_ACCESS_KEY_ID=ACCESS_KEY_ID, COGNATE_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
    return subprocess.run(
        [str(cognate_bin()), "apply", "--endpoint", server.endpoint, str(path)],
        capture_output=True, text=True, timeout=30, env=env,
    )


def forbidden(res):
    assert res.status_code == 403, res.text
    assert res.json() == {"message": "Forbidden"}


@pytest.fixture
def server(tmp_path):
    s = start(tmp_path, config())
    yield s
    s.stop()


def test_key_routes_need_an_enabled_key_of_a_plan_for_the_stage(server):
    assert get(server).status_code == 403
    forbidden(get(server))
    forbidden(get(server, "not-a-key-of-this-server-at-all"))
    forbidden(get(server, SLEEPER))  # disabled
    forbidden(get(server, PARTNER, stage="beta"))  # its plan covers prod only
    res = get(server, PARTNER)
    assert res.status_code == 200 and res.text == "items"
    # Routes without the flag need no key.
    assert get(server, route="open").status_code == 200


def test_cli_keys_generated_enabled_disabled_and_deleted_within_a_second(server):
    [made] = cli(server, "api-keys", "create", "--name", "generated", "--plan", "partners")
    value = made["value"]
    assert len(value) == 40 and made["enabled"]
    listed = cli(server, "api-keys", "list")
    assert {k["name"] for k in listed} == {"partner", "sleeper", "metered", "fast", "generated"}
    assert all("value" not in k for k in listed)

    def within(status, key):
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if get(server, key).status_code == status:
                return True
            time.sleep(0.1)
        return False

    assert within(200, value)
    cli(server, "api-keys", "update", "--name", "generated", "--disable")
    assert within(403, value)
    cli(server, "api-keys", "update", "--name", "generated", "--enable")
    assert within(200, value)
    cli(server, "api-keys", "delete", "--name", "generated")
    assert within(403, value)
    # A caller-chosen value; a short one is refused.
    cli(server, "api-keys", "create", "--name", "chosen", "--value", "chosen-value-0123456789", "--plan", "partners")
    assert within(200, "chosen-value-0123456789")
    bad = subprocess.run(
        [str(cognate_bin()), "api-keys", "--data-dir", server.data_dir, "create", "--name", "x", "--value", "short"],
        capture_output=True, text=True, timeout=30,
    )
    assert bad.returncode != 0 and "20 characters" in bad.stderr
    # The file's keys are the file's.
    own = subprocess.run(
        [str(cognate_bin()), "api-keys", "--data-dir", server.data_dir, "delete", "--name", "partner"],
        capture_output=True, text=True, timeout=30,
    )
    assert own.returncode != 0 and "configuration file" in own.stderr
    # A CLI plan: a quota of 2 on a new key.
    cli(server, "usage-plans", "put", "--name", "tiny", "--stage", "shop/prod", "--quota-limit", "2", "--quota-period", "WEEK")
    [tiny] = cli(server, "api-keys", "create", "--name", "tiny", "--plan", "tiny")
    assert within(200, tiny["value"])
    statuses = [get(server, tiny["value"]).status_code for _ in range(3)]
    assert statuses == [200, 429, 429], statuses


def test_throttle_gives_429_and_recovers(server):
    statuses = [get(server, FAST).status_code for _ in range(6)]
    # A burst of 3, then the bucket is empty (2/s refills well under one token in these ms).
    assert statuses[:3] == [200, 200, 200], statuses
    assert 429 in statuses[3:], statuses
    res = next(r for r in (get(server, FAST) for _ in range(5)) if r.status_code == 429)
    assert res.json() == {"message": "Too Many Requests"}
    time.sleep(1.1)
    assert get(server, FAST).status_code == 200
    # Another key is not held back by this one's bucket.
    assert get(server, PARTNER).status_code == 200


def test_quota_gives_limit_exceeded_and_survives_a_restart(tmp_path):
    s = start(tmp_path, config(limit=5))
    data = s.data_dir
    try:
        assert [get(s, METERED).status_code for _ in range(3)] == [200] * 3
    finally:
        s.stop()  # SIGTERM: the node writes the counts it holds
    s = start(tmp_path, config(limit=5), data_dir=data)
    try:
        assert [get(s, METERED).status_code for _ in range(2)] == [200] * 2
        res = get(s, METERED)
        assert res.status_code == 429
        assert res.json() == {"message": "Limit Exceeded"}
        assert res.headers["x-amzn-ErrorType"] == "LimitExceededException"
        # The other keys have quotas (or none) of their own.
        assert get(s, PARTNER).status_code == 200
        # Each request's line names the key's id, never its value.
        time.sleep(0.2)
        log = open(s.log_path).read()
        ids = {k["name"]: k["id"] for k in cli(s, "api-keys", "list")}
        refused = [l for l in log.splitlines() if 'refused="quota_exceeded"' in l]
        assert refused and all(f'api_key="{ids["metered"]}"' in l for l in refused), refused
        assert METERED not in log and PARTNER not in log
    finally:
        s.stop()


def test_a_file_naming_a_missing_plan_or_stage_is_refused_with_its_line(tmp_path):
    good = config()
    s = start(tmp_path, good)
    try:
        bad = good.replace("usage_plans: [slow]", "usage_plans: [nowhere]")
        path = tmp_path / "bad.yaml"
        path.write_text(bad)
        out = apply(s, path)
        assert out.returncode != 0
        line = next(i for i, l in enumerate(bad.splitlines(), 1) if "nowhere" in l)
        assert f"line {line}" in out.stderr and "nowhere" in out.stderr, out.stderr
        path.write_text(good.replace("shop/prod]\n  - name: slow", "shop/gamma]\n  - name: slow"))
        out = apply(s, path)
        assert out.returncode != 0 and "shop/gamma" in out.stderr, out.stderr
        # The running keys stay.
        assert get(s, PARTNER).status_code == 200
        # A file without the keys takes them away.
        path.write_text(good.split("usage_plans:")[0])
        out = apply(s, path)
        assert out.returncode == 0, out.stderr
        forbidden(get(s, PARTNER))
    finally:
        s.stop()


def test_two_nodes_share_a_quota_and_overshoot_it_by_at_most_one_batch(tmp_path):
    require_postgres()
    schema = new_schema("usage")
    url = schema_url(schema)
    limit, batch = 20, 4
    old = os.environ.get("COGNATE_MASTER_KEY")
    os.environ["COGNATE_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        a = start(tmp_path / "a", config(limit=limit, batch=batch), extra=("--database", url))
        b = start(tmp_path / "b", config(limit=limit, batch=batch), extra=("--database", url))
    finally:
        if old is None:
            os.environ.pop("COGNATE_MASTER_KEY", None)
        else:
            os.environ["COGNATE_MASTER_KEY"] = old
    try:
        admitted = 0
        for _ in range(30):
            for node in (a, b):
                admitted += get(node, METERED).status_code == 200
        # One node knows the other's count only from the database: at most one batch unseen.
        assert limit <= admitted <= limit + batch, admitted
        # Both nodes now refuse.
        assert get(a, METERED).status_code == 429 and get(b, METERED).status_code == 429
    finally:
        a.stop()
        b.stop()
        drop_schema(schema)
