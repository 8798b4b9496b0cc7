-- Sign-in: per-pool signing keys (private halves sealed with the master key), refresh-token
-- families (only a hash of the token is kept), used challenge sessions (single use), and the
-- wrong-password counter behind the lockout.
CREATE TABLE signing_keys (
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    kid TEXT COLLATE "C" NOT NULL,
    key_use TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    jwk TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    signs_from_ms BIGINT NOT NULL,
    retired_ms BIGINT,
    PRIMARY KEY (pool_id, kid)
);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    origin_jti TEXT COLLATE "C" NOT NULL UNIQUE,
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    sub TEXT COLLATE "C" NOT NULL,
    auth_time_s BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens(sub);

CREATE TABLE used_sessions (
    id BYTEA PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);

ALTER TABLE users ADD COLUMN failed_sign_ins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until_ms BIGINT;

-- At most one key of each use signs from now on in a pool: nodes making a pool's first keys at
-- the same moment cannot both succeed.
CREATE UNIQUE INDEX signing_keys_current ON signing_keys(pool_id, key_use) WHERE retired_ms IS NULL;
