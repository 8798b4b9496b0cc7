-- Sign-in: per-pool signing keys (private halves sealed with the master key), refresh-token
-- families (only a hash of the token is kept), used challenge sessions (single use), and the
-- wrong-password counter behind the lockout.
CREATE TABLE signing_keys (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    kid TEXT NOT NULL,
    key_use TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    jwk TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    signs_from_ms INTEGER NOT NULL,
    retired_ms INTEGER,
    PRIMARY KEY (pool_id, kid)
);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    origin_jti TEXT NOT NULL UNIQUE,
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    auth_time_s INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens(sub);

CREATE TABLE used_sessions (
    id BLOB PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);

ALTER TABLE users ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until_ms INTEGER;

-- At most one key of each use signs from now on in a pool: nodes making a pool's first keys at
-- the same moment cannot both succeed.
CREATE UNIQUE INDEX signing_keys_current ON signing_keys(pool_id, key_use) WHERE retired_ms IS NULL;
