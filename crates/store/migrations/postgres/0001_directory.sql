-- The user directory. Text keys use the C collation so they order bytewise, as on SQLite.
CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value BYTEA NOT NULL);

CREATE TABLE pools (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    arn TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    config TEXT NOT NULL
);

CREATE TABLE clients (
    client_id TEXT COLLATE "C" PRIMARY KEY,
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    secret TEXT,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX clients_by_pool ON clients(pool_id, client_id);

CREATE TABLE users (
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    username_key TEXT COLLATE "C" NOT NULL,
    username TEXT COLLATE "C" NOT NULL,
    sub TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    attributes TEXT NOT NULL,
    email TEXT COLLATE "C",
    phone_number TEXT COLLATE "C",
    email_alias TEXT COLLATE "C",
    phone_alias TEXT COLLATE "C",
    preferred_alias TEXT COLLATE "C",
    password_hash TEXT,
    srp_salt BYTEA,
    srp_verifier BYTEA,
    password_expires_ms BIGINT,
    PRIMARY KEY (pool_id, username_key)
);
CREATE UNIQUE INDEX users_sub ON users(sub);
CREATE UNIQUE INDEX users_email_alias ON users(pool_id, email_alias);
CREATE UNIQUE INDEX users_phone_alias ON users(pool_id, phone_alias);
CREATE UNIQUE INDEX users_preferred_alias ON users(pool_id, preferred_alias);
CREATE INDEX users_by_email ON users(pool_id, email);
CREATE INDEX users_by_phone ON users(pool_id, phone_number);

CREATE TABLE codes (
    sub TEXT COLLATE "C" NOT NULL,
    purpose TEXT COLLATE "C" NOT NULL,
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    code_hash BYTEA,
    expires_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    sends BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    PRIMARY KEY (sub, purpose)
);

CREATE TABLE user_groups (
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    description TEXT,
    role_arn TEXT,
    precedence BIGINT,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL,
    PRIMARY KEY (pool_id, name)
);

CREATE TABLE memberships (
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    group_name TEXT COLLATE "C" NOT NULL,
    sub TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (pool_id, group_name, sub)
);
CREATE INDEX memberships_by_user ON memberships(sub, group_name);

CREATE TABLE resource_servers (
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    identifier TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    scopes TEXT NOT NULL,
    PRIMARY KEY (pool_id, identifier)
);

CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool_id TEXT COLLATE "C" NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    username TEXT COLLATE "C" NOT NULL,
    medium TEXT NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    secret TEXT NOT NULL,
    sent_ms BIGINT NOT NULL
);
CREATE INDEX messages_by_user ON messages(pool_id, username, id);
