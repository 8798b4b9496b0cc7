-- The gateway's API keys (only a SHA-256 digest of each value), usage plans (their limits as
-- JSON), quota counts per key, plan and period, and a version every change of keys or plans
-- moves, which nodes poll to reload them.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    value_digest TEXT NOT NULL UNIQUE,
    enabled BOOLEAN NOT NULL,
    plans TEXT NOT NULL,
    from_config BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE usage_plans (
    name TEXT PRIMARY KEY,
    limits TEXT NOT NULL,
    from_config BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE api_usage (
    key_id TEXT NOT NULL,
    plan TEXT NOT NULL,
    period_start_ms BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (key_id, plan, period_start_ms)
);
CREATE TABLE usage_version (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO usage_version (id, version) VALUES (1, 0);
