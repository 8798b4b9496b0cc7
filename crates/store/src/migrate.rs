//! Versioned migrations, embedded in the binary, one list per engine. Each runs once, in a
//! transaction, recorded in `schema_migrations`.

pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_directory.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_filter_indexes.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_sign_in.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_mfa_lockout_rotation.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_api_keys.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/sqlite/0006_unknown_names.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/sqlite/0007_retired_refresh_tokens.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/sqlite/0008_user_revision.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_directory.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_filter_indexes.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_sign_in.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/postgres/0004_mfa_lockout_rotation.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/postgres/0005_api_keys.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/postgres/0006_unknown_names.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/postgres/0007_retired_refresh_tokens.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/postgres/0008_user_revision.sql"),
    },
];

pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";
