-- The user directory. Text keys compare bytewise (SQLite's default BINARY collation).
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);

CREATE TABLE pools (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    arn TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    config TEXT NOT NULL
);

CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    secret TEXT,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX clients_by_pool ON clients(pool_id, client_id);

CREATE TABLE users (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    username_key TEXT NOT NULL,
    username TEXT NOT NULL,
    sub TEXT NOT NULL,
    status TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    email TEXT,
    phone_number TEXT,
    email_alias TEXT,
    phone_alias TEXT,
    preferred_alias TEXT,
    password_hash TEXT,
    srp_salt BLOB,
    srp_verifier BLOB,
    password_expires_ms INTEGER,
    PRIMARY KEY (pool_id, username_key)
);
CREATE UNIQUE INDEX users_sub ON users(sub);
CREATE UNIQUE INDEX users_email_alias ON users(pool_id, email_alias);
CREATE UNIQUE INDEX users_phone_alias ON users(pool_id, phone_alias);
CREATE UNIQUE INDEX users_preferred_alias ON users(pool_id, preferred_alias);
CREATE INDEX users_by_email ON users(pool_id, email);
CREATE INDEX users_by_phone ON users(pool_id, phone_number);

CREATE TABLE codes (
    sub TEXT NOT NULL,
    purpose TEXT NOT NULL,
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    code_hash BLOB,
    expires_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    sends INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    PRIMARY KEY (sub, purpose)
);

CREATE TABLE user_groups (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    role_arn TEXT,
    precedence INTEGER,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    PRIMARY KEY (pool_id, name)
);

CREATE TABLE memberships (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    sub TEXT NOT NULL,
    PRIMARY KEY (pool_id, group_name, sub)
);
CREATE INDEX memberships_by_user ON memberships(sub, group_name);

CREATE TABLE resource_servers (
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    PRIMARY KEY (pool_id, identifier)
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pool_id TEXT NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    medium TEXT NOT NULL,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    secret TEXT NOT NULL,
    sent_ms INTEGER NOT NULL
);
CREATE INDEX messages_by_user ON messages(pool_id, username, id);
