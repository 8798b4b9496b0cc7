//! The user directory's storage on SQLite (the embedded default) and PostgreSQL (many nodes on
//! one database): one implementation of [`userpool::Store`] per engine, from the same code, with
//! versioned migrations applied at start.
//!
//! Both engines run the same SQL (`$n` placeholders, `ON CONFLICT`, `RETURNING`); the engine is
//! chosen once, from the database URL, in [`connect`]. The same engines keep the gateway's API
//! keys, usage plans and quota counts ([`gateway::UsageStore`]).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod engine;
mod leased;
mod migrate;
mod usage;

use std::sync::Arc;

use userpool::Store;

pub use engine::{DEADLINE, PostgresStore, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
}

/// Opens (creating if needed) and migrates the database at `url`.
///
/// `sqlite://PATH` (or `sqlite:PATH`) opens a file; `postgres://…` a server. A PostgreSQL URL may
/// carry `schema=NAME` among its query parameters: the store then lives in that schema, created if
/// missing (how tests and several Cognate environments share one database).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, ConnectError> {
    Ok(open(url).await?.directory)
}

/// One database, seen as each of its users sees it.
pub struct Stores {
    pub directory: Arc<dyn Store>,
    pub usage: Arc<dyn gateway::UsageStore>,
}

/// Writes a consistent copy of the SQLite database at `url` to the new file `to`, while servers
/// may be reading and writing it: `VACUUM INTO` copies one read transaction's view, so the copy
/// holds every write committed before it began and none after (security checklist R9).
pub async fn backup_sqlite(url: &str, to: &std::path::Path) -> Result<(), ConnectError> {
    use sqlx::{ConnectOptions, Connection};
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
        .map_err(|e| ConnectError::Open(e.to_string()))?
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut conn = options
        .connect()
        .await
        .map_err(|e| ConnectError::Open(e.to_string()))?;
    let to = to
        .to_str()
        .ok_or_else(|| ConnectError::Open(format!("not a UTF-8 path: {}", to.display())))?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(to)
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| ConnectError::Open(format!("cannot copy the database: {e}")));
    let _ = conn.close().await;
    copied
}

/// True for a database URL only one node can hold (an SQLite file), false for one several nodes
/// may share.
pub fn is_single_node(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// [`connect`], with the gateway's side of the same database.
pub async fn open(url: &str) -> Result<Stores, ConnectError> {
    if is_single_node(url) {
        let s = Arc::new(SqliteStore::open(url).await?);
        Ok(Stores {
            directory: s.clone(),
            usage: s,
        })
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = Arc::new(PostgresStore::open(url).await?);
        Ok(Stores {
            directory: s.clone(),
            usage: s,
        })
    } else {
        Err(ConnectError::UnsupportedUrl(redact(url)))
    }
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
