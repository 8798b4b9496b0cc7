//! One implementation of the store, expanded for each engine by `sql_store!`: the SQL and the
//! row mapping are shared; only connecting, transaction start and migration locking differ.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite};
use userpool::recent::TtlCache;
use userpool::store::*;
use userpool::{
    Aliases, Client, Group, Medium, Message, MessageKind, Millis, PasswordCredential, Pool,
    ResourceServer, SignInFailures, Store, StoredMessage, User, UserMfa, UserStatus,
};

use crate::ConnectError;
use crate::leased::{Leased, PATIENT, within};
use crate::migrate::{self, Migration};

const USER_COLS: &str = "pool_id, username_key, username, sub, status, enabled, created_ms, modified_ms, \
     attributes, email, phone_number, email_alias, phone_alias, preferred_alias, password_hash, srp_salt, \
     srp_verifier, password_expires_ms, mfa, failed_sign_ins, locked_until_ms, revision";
const GROUP_COLS: &str =
    "pool_id, name, description, role_arn, precedence, created_ms, modified_ms";

/// The users column a key looks in, and the value it looks for.
fn user_key(key: UserKey<'_>) -> (&'static str, &str) {
    match key {
        UserKey::Username(v) => ("username_key", v),
        UserKey::Sub(v) => ("sub", v),
        UserKey::EmailAlias(v) => ("email_alias", v),
        UserKey::PhoneAlias(v) => ("phone_alias", v),
        UserKey::PreferredUsernameAlias(v) => ("preferred_alias", v),
    }
}

/// [`Store::find_signing_in`]'s query: always one row, the user's columns NULL when no key
/// finds one, beside the unknown name's failures (NULL when none were counted). Parameters: the
/// pool, the first key's value, the second's if any, the unknown name's key.
fn signing_in_sql(first: UserKey<'_>, then: Option<UserKey<'_>>) -> String {
    let user_cols = USER_COLS
        .split(',')
        .map(|c| format!("u.{0} AS {0}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let first = user_key(first).0;
    // A name that is one user's username and another's alias finds the username's owner.
    let (found_by, order, nobody) = match then {
        None => (format!("u.{first} = $2"), String::new(), 3),
        Some(then) => (
            format!("u.{first} = $2 OR u.{} = $3", user_key(then).0),
            format!(" ORDER BY CASE WHEN u.{first} = $2 THEN 0 ELSE 1 END"),
            4,
        ),
    };
    format!(
        "SELECT {user_cols}, n.failures AS nobody_failures, n.locked_until_ms AS nobody_locked_until_ms \
         FROM (SELECT 1 AS one) AS one \
         LEFT JOIN users u ON u.pool_id = $1 AND ({found_by}) \
         LEFT JOIN unknown_names n ON n.pool_id = $1 AND n.name_key = ${nobody}{order} LIMIT 1"
    )
}

/// A text bound that sorts after every string starting with `prefix`.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Maps a unique violation to the key it broke; anything else is the database being unavailable.
fn classify(e: sqlx::Error, table: UniqueKey) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let text = format!("{} {}", db.constraint().unwrap_or(""), db.message());
        let key = if table != UniqueKey::Username {
            table
        } else if text.contains("email_alias") {
            UniqueKey::EmailAlias
        } else if text.contains("phone_alias") {
            UniqueKey::PhoneAlias
        } else if text.contains("preferred_alias") {
            UniqueKey::PreferredUsernameAlias
        } else if text.contains("users_sub") || text.contains("users.sub") {
            UniqueKey::Sub
        } else {
            UniqueKey::Username
        };
        return StoreError::Conflict(key);
    }
    unavailable(e)
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| corrupt("json", e))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

/// The SQL condition and bound text for a ListUsers filter (after `pool_id = $1`).
fn filter_sql(filter: &UserFilter, next: usize) -> Option<(String, Vec<String>)> {
    let column = match &filter.field {
        FilterField::Username => "username_key",
        FilterField::Sub => "sub",
        FilterField::Email => "email",
        FilterField::PhoneNumber => "phone_number",
        FilterField::UserStatus => "status",
        FilterField::Enabled | FilterField::Attribute(_) => return None,
    };
    Some(if filter.prefix {
        (
            format!(" AND {column} >= ${next} AND {column} < ${}", next + 1),
            vec![filter.value.clone(), prefix_end(&filter.value)],
        )
    } else {
        (
            format!(" AND {column} = ${next}"),
            vec![filter.value.clone()],
        )
    })
}

/// ` LIMIT n`, written into the statement rather than bound: SQLite reads a bound LIMIT's value
/// while planning, and then compiles the statement again every time the parameter is bound, even
/// to the same value (a password sign-in's group lookup was compiled anew on every call). The
/// statement cache keeps one statement per distinct limit.
fn limit_clause(limit: u32) -> String {
    format!(" LIMIT {limit}")
}

/// The query of one ListUsers batch of `limit` rows after `cursor` (binds: pool id, then the
/// returned binds) and the part of the filter SQL cannot express, if any, which the caller applies to
/// each row. Pages follow the username, or the filtered value and then the username (see
/// [`UserFilter::orders_by_value`]), so that the index serving the filter yields page order.
fn list_users_sql<'f>(
    filter: Option<&'f UserFilter>,
    cursor: &str,
    limit: u32,
) -> (String, Vec<String>, Option<&'f UserFilter>) {
    let by_value = filter
        .filter(|f| f.orders_by_value())
        .map(|f| match f.field {
            FilterField::Email => "email",
            _ => "phone_number",
        });
    let (after, order, mut binds) = match by_value {
        Some(col) => {
            let (value, key) = cursor.rsplit_once('\0').unwrap_or(("", ""));
            (
                format!("({col}, username_key) > ($2, $3)"),
                format!("{col}, username_key"),
                vec![value.to_string(), key.to_string()],
            )
        }
        None => (
            "username_key > $2".to_string(),
            "username_key".to_string(),
            vec![cursor.to_string()],
        ),
    };
    let indexed = filter.and_then(|f| filter_sql(f, 2 + binds.len()));
    let rest = filter.filter(|_| indexed.is_none());
    let (cond, more) = indexed.unwrap_or_default();
    binds.extend(more);
    let sql = format!(
        "SELECT {USER_COLS} FROM users WHERE pool_id = $1 AND {after}{cond} ORDER BY {order}{}",
        limit_clause(limit)
    );
    (sql, binds, rest)
}

/// Whether a user passes a filter that SQL could not express.
fn passes(filter: &UserFilter, user: &User) -> bool {
    let value = match &filter.field {
        FilterField::Enabled => if user.enabled { "Enabled" } else { "Disabled" }.to_string(),
        FilterField::Attribute(name) => match user.attributes.get(name) {
            Some(v) => v.clone(),
            None => return false,
        },
        _ => return true,
    };
    if filter.prefix {
        value.starts_with(&filter.value)
    } else {
        value == filter.value
    }
}

macro_rules! sql_store {
    ($name:ident, $pool:ty, $row:ty, $begin:expr, $lock:expr, $share:expr, $maintain:ident) => {
        impl $name {
            async fn migrate(&self, migrations: &[Migration]) -> Result<(), ConnectError> {
                let err = |e: sqlx::Error| ConnectError::Migrate(e.to_string());
                let mut tx = self.pool.begin_with($begin).await.map_err(err)?;
                for statement in $lock {
                    sqlx::query(*statement).execute(&mut *tx).await.map_err(err)?;
                }
                sqlx::query(migrate::CREATE_TABLE).execute(&mut *tx).await.map_err(err)?;
                let done: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?
                    .iter()
                    .map(|r| r.try_get::<i64, _>(0))
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                let newest = migrations.iter().map(|m| m.version).max().unwrap_or(0);
                if let Some(v) = done.iter().find(|v| **v > newest) {
                    return Err(ConnectError::Migrate(format!(
                        "the database has schema version {v}, newer than this Cognate knows ({newest})"
                    )));
                }
                for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
                    sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(err)?;
                    sqlx::query("INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)")
                        .bind(m.version)
                        .bind(now_ms())
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                }
                tx.commit().await.map_err(err)
            }

            fn pool_from(row: &$row) -> StoreResult<Pool> {
                let g = |e| corrupt("pool", e);
                let config: String = row.try_get("config").map_err(g)?;
                Ok(Pool {
                    id: row.try_get("id").map_err(g)?,
                    name: row.try_get("name").map_err(g)?,
                    arn: row.try_get("arn").map_err(g)?,
                    created: row.try_get("created_ms").map_err(g)?,
                    modified: row.try_get("modified_ms").map_err(g)?,
                    config: from_json("pool config", &config)?,
                })
            }

            fn client_from(row: &$row) -> StoreResult<Client> {
                let g = |e| corrupt("client", e);
                let config: String = row.try_get("config").map_err(g)?;
                Ok(Client {
                    pool_id: row.try_get("pool_id").map_err(g)?,
                    client_id: row.try_get("client_id").map_err(g)?,
                    secret: row.try_get("secret").map_err(g)?,
                    created: row.try_get("created_ms").map_err(g)?,
                    modified: row.try_get("modified_ms").map_err(g)?,
                    config: from_json("client config", &config)?,
                })
            }

            fn user_from(row: &$row) -> StoreResult<User> {
                let g = |e| corrupt("user", e);
                let status: String = row.try_get("status").map_err(g)?;
                let attributes: String = row.try_get("attributes").map_err(g)?;
                let hash: Option<String> = row.try_get("password_hash").map_err(g)?;
                let password = match hash {
                    Some(hash) => Some(PasswordCredential {
                        hash,
                        srp_salt: row.try_get::<Option<Vec<u8>>, _>("srp_salt").map_err(g)?.unwrap_or_default(),
                        srp_verifier_sealed: row
                            .try_get::<Option<Vec<u8>>, _>("srp_verifier")
                            .map_err(g)?
                            .unwrap_or_default(),
                        expires: row.try_get("password_expires_ms").map_err(g)?,
                    }),
                    None => None,
                };
                Ok(User {
                    pool_id: row.try_get("pool_id").map_err(g)?,
                    username_key: row.try_get("username_key").map_err(g)?,
                    username: row.try_get("username").map_err(g)?,
                    sub: row.try_get("sub").map_err(g)?,
                    status: UserStatus::parse(&status).ok_or_else(|| corrupt("user status", &status))?,
                    enabled: row.try_get("enabled").map_err(g)?,
                    created: row.try_get("created_ms").map_err(g)?,
                    modified: row.try_get("modified_ms").map_err(g)?,
                    attributes: from_json::<BTreeMap<String, String>>("user attributes", &attributes)?,
                    aliases: Aliases {
                        email: row.try_get("email_alias").map_err(g)?,
                        phone_number: row.try_get("phone_alias").map_err(g)?,
                        preferred_username: row.try_get("preferred_alias").map_err(g)?,
                    },
                    password,
                    mfa: match row.try_get::<Option<String>, _>("mfa").map_err(g)? {
                        Some(json) => from_json("user mfa", &json)?,
                        None => UserMfa::default(),
                    },
                    failures: SignInFailures {
                        count: u32::try_from(row.try_get::<i64, _>("failed_sign_ins").map_err(g)?).unwrap_or(u32::MAX),
                        locked_until: row.try_get("locked_until_ms").map_err(g)?,
                    },
                    revision: row.try_get("revision").map_err(g)?,
                })
            }

            fn group_from(row: &$row) -> StoreResult<Group> {
                let g = |e| corrupt("group", e);
                Ok(Group {
                    pool_id: row.try_get("pool_id").map_err(g)?,
                    name: row.try_get("name").map_err(g)?,
                    description: row.try_get("description").map_err(g)?,
                    role_arn: row.try_get("role_arn").map_err(g)?,
                    precedence: row.try_get("precedence").map_err(g)?,
                    created: row.try_get("created_ms").map_err(g)?,
                    modified: row.try_get("modified_ms").map_err(g)?,
                })
            }

            fn resource_server_from(row: &$row) -> StoreResult<ResourceServer> {
                let g = |e| corrupt("resource server", e);
                let scopes: String = row.try_get("scopes").map_err(g)?;
                Ok(ResourceServer {
                    pool_id: row.try_get("pool_id").map_err(g)?,
                    identifier: row.try_get("identifier").map_err(g)?,
                    name: row.try_get("name").map_err(g)?,
                    scopes: from_json("scopes", &scopes)?,
                })
            }

            /// Clears `user`'s aliases from every other user of the pool (ForceAliasCreation).
            async fn release_aliases<'c>(
                tx: &mut sqlx::Transaction<'c, <$pool as PoolDb>::Db>,
                user: &User,
            ) -> StoreResult<()> {
                for (column, value) in [
                    ("email_alias", &user.aliases.email),
                    ("phone_alias", &user.aliases.phone_number),
                    ("preferred_alias", &user.aliases.preferred_username),
                ] {
                    if let Some(v) = value {
                        let sql = format!(
                            "UPDATE users SET {column} = NULL, revision = revision + 1 \
                             WHERE pool_id = $1 AND {column} = $2 AND sub <> $3"
                        );
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(&user.pool_id)
                            .bind(v)
                            .bind(&user.sub)
                            .execute(&mut **tx)
                            .await
                            .map_err(unavailable)?;
                    }
                }
                Ok(())
            }

            async fn write_user<'e, E>(ex: E, user: &User, insert: bool) -> StoreResult<bool>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                let attributes = to_json(&user.attributes)?;
                let email = user.attributes.get("email").map(|e| e.to_lowercase());
                let phone = user.attributes.get("phone_number");
                let pw = user.password.as_ref();
                // Most users have no second factor: no JSON for them.
                let mfa = if user.mfa == UserMfa::default() { None } else { Some(to_json(&user.mfa)?) };
                let sql = if insert {
                    "INSERT INTO users (pool_id, username_key, username, sub, status, enabled, created_ms, \
                     modified_ms, attributes, email, phone_number, email_alias, phone_alias, preferred_alias, \
                     password_hash, srp_salt, srp_verifier, password_expires_ms, mfa, revision) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
                } else {
                    // Written only if nobody wrote the row since `user` was read ($20, its
                    // revision): no lost update. `enabled` ($6) is not written here but by
                    // `set_user_enabled` alone, so a change made from an older read cannot undo
                    // an AdminDisableUser; $6 is still compared to itself so both statements
                    // take the same parameters.
                    "UPDATE users SET username_key = $2, username = $3, status = $5, \
                     created_ms = $7, modified_ms = $8, attributes = $9, email = $10, phone_number = $11, \
                     email_alias = $12, phone_alias = $13, preferred_alias = $14, password_hash = $15, \
                     srp_salt = $16, srp_verifier = $17, password_expires_ms = $18, mfa = $19, \
                     revision = revision + 1 \
                     WHERE pool_id = $1 AND sub = $4 AND revision = $20 AND $6 = $6"
                };
                let done = sqlx::query(sql)
                    .bind(&user.pool_id)
                    .bind(&user.username_key)
                    .bind(&user.username)
                    .bind(&user.sub)
                    .bind(user.status.as_str())
                    .bind(user.enabled)
                    .bind(user.created)
                    .bind(user.modified)
                    .bind(attributes)
                    .bind(email)
                    .bind(phone)
                    .bind(&user.aliases.email)
                    .bind(&user.aliases.phone_number)
                    .bind(&user.aliases.preferred_username)
                    .bind(pw.map(|p| p.hash.clone()))
                    .bind(pw.map(|p| p.srp_salt.clone()))
                    .bind(pw.map(|p| p.srp_verifier_sealed.clone()))
                    .bind(pw.and_then(|p| p.expires))
                    .bind(mfa)
                    .bind(user.revision)
                    .execute(ex)
                    .await
                    .map_err(|e| classify(e, UniqueKey::Username))?;
                Ok(done.rows_affected() > 0)
            }

            fn refresh_from(r: &$row) -> StoreResult<RefreshToken> {
                let g = |e| corrupt("refresh token", e);
                Ok(RefreshToken {
                    token_hash: r.try_get("token_hash").map_err(g)?,
                    origin_jti: r.try_get("origin_jti").map_err(g)?,
                    pool_id: r.try_get("pool_id").map_err(g)?,
                    client_id: r.try_get("client_id").map_err(g)?,
                    sub: r.try_get("sub").map_err(g)?,
                    auth_time: r.try_get("auth_time_s").map_err(g)?,
                    created: r.try_get("created_ms").map_err(g)?,
                    expires: r.try_get("expires_ms").map_err(g)?,
                    revoked: r.try_get("revoked_ms").map_err(g)?,
                    previous_hash: r.try_get("previous_hash").map_err(g)?,
                    previous_until: r.try_get("previous_until_ms").map_err(g)?,
                })
            }

            /// Stores a fresh code (replacing an older one of its purpose) unless the send limit is
            /// reached; whether it was stored.
            async fn put_code_in<'e, E>(ex: E, code: &NewCode<'_>, limit: SendLimit) -> StoreResult<bool>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                let row = sqlx::query(
                    "INSERT INTO codes (sub, purpose, pool_id, code_hash, expires_ms, attempts, sends, window_start_ms) \
                     VALUES ($1, $2, $3, $4, $5, 0, 1, $6) \
                     ON CONFLICT (sub, purpose) DO UPDATE SET \
                       code_hash = excluded.code_hash, expires_ms = excluded.expires_ms, attempts = 0, \
                       sends = CASE WHEN codes.window_start_ms > $7 THEN codes.sends + 1 ELSE 1 END, \
                       window_start_ms = CASE WHEN codes.window_start_ms > $7 THEN codes.window_start_ms ELSE $6 END \
                     WHERE codes.window_start_ms <= $7 OR codes.sends < $8 \
                     RETURNING sends",
                )
                .bind(code.sub)
                .bind(code.purpose.as_str())
                .bind(code.pool_id)
                .bind(code.hash)
                .bind(code.expires)
                .bind(limit.now)
                .bind(limit.now - limit.window)
                .bind(i64::from(limit.max_sends))
                .fetch_optional(ex)
                .await
                .map_err(unavailable)?;
                Ok(row.is_some())
            }

            /// A transaction that has used `session` up first, or `None` (rolled back, nothing
            /// written) when it was used before. The session row comes first in every such
            /// transaction: two answers with one session queue on it, and the later finds it
            /// used before touching anything else (and no transaction takes a user's, code's or
            /// token's row before a session's).
            async fn spending_tx(
                &self,
                session: SessionUse<'_>,
            ) -> StoreResult<Option<sqlx::Transaction<'static, <$pool as PoolDb>::Db>>> {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                if !Self::use_session_in(&mut *tx, session).await? {
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(None);
                }
                Ok(Some(tx))
            }

            /// Marks a session used; false when it already was.
            async fn use_session_in<'e, E>(ex: E, session: SessionUse<'_>) -> StoreResult<bool>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                let done = sqlx::query("INSERT INTO used_sessions (id, expires_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(session.id)
                    .bind(session.expires)
                    .execute(ex)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
            }

            async fn insert_refresh_token_in<'e, E>(ex: E, t: &RefreshToken) -> StoreResult<()>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, origin_jti, pool_id, client_id, sub, auth_time_s, created_ms, expires_ms, revoked_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&t.token_hash)
                .bind(&t.origin_jti)
                .bind(&t.pool_id)
                .bind(&t.client_id)
                .bind(&t.sub)
                .bind(t.auth_time)
                .bind(t.created)
                .bind(t.expires)
                .bind(t.revoked)
                .execute(ex)
                .await
                .map_err(unavailable)?;
                Ok(())
            }

            /// Revokes every refresh-token family of the user at `now`; how many.
            async fn revoke_user_tokens_in<'e, E>(ex: E, pool_id: &str, sub: &str, now: Millis) -> StoreResult<u64>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_ms = $3 WHERE pool_id = $1 AND sub = $2 AND revoked_ms IS NULL",
                )
                .bind(pool_id)
                .bind(sub)
                .bind(now)
                .execute(ex)
                .await
                .map_err(unavailable)?;
                Ok(done.rows_affected())
            }

            /// Writes `user` (and `code`, the first code of a user inserted) in one transaction
            /// when there is more than one statement to run.
            async fn save_user(
                &self,
                user: &User,
                take_aliases: bool,
                insert: bool,
                code: Option<&NewCode<'_>>,
            ) -> StoreResult<bool> {
                let done = within(self.deadline, async {
                if !take_aliases && code.is_none() {
                    // One statement is atomic on its own: no transaction round trips needed.
                    return Self::write_user(&self.leased, user, insert).await;
                }
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                if take_aliases {
                    Self::release_aliases(&mut tx, user).await?;
                }
                if !Self::write_user(&mut *tx, user, insert).await? {
                    // Stale: the aliases taken from others go back too.
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(false);
                }
                if let Some(code) = code {
                    // A new user's first code: no earlier send to limit it; its send window
                    // opens as the user is created.
                    let first = SendLimit { now: user.created, window: 0, max_sends: u32::MAX };
                    Self::put_code_in(&mut *tx, code, first).await?;
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(true)
                            }, unavailable).await;
                // Whatever came of it: a write cut short may still have landed.
                if take_aliases {
                    // Other users lost their aliases too.
                    self.recent.users.clear();
                } else {
                    self.recent.forget_user(&user.pool_id, &user.sub);
                }
                done
            }

            /// Counts a failed sign-in with `count` (binds: pool, key, now, forget before;
            /// returns the count as its one column, or no row for no such user) and writes the
            /// lockout the count calls for with `lock` (pool, key, until), in one transaction:
            /// no count is left without its lockout. Written after the answer, so patiently.
            async fn count_failure(
                &self,
                count: &'static str,
                lock: &'static str,
                (pool_id, key): (&str, &str),
                failure: Failure,
            ) -> StoreResult<u32> {
                within(self.deadline.map(|_| PATIENT), async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                let row = sqlx::query(count)
                    .bind(pool_id)
                    .bind(key)
                    .bind(failure.now)
                    .bind(failure.forget_before)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                let Some(row) = row else {
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(0);
                };
                let n: i64 = row.try_get(0).map_err(|e| corrupt("failure count", e))?;
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                if let Some(ms) = (failure.lock_for)(n) {
                    sqlx::query(lock)
                        .bind(pool_id)
                        .bind(key)
                        .bind(failure.now + ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(n)
                            }, unavailable).await
            }

            async fn delete_where(&self, sql: &'static str, binds: &[&str]) -> StoreResult<bool> {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                let done = q.execute(&self.leased).await.map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl Store for $name {
            async fn maintain(&self) -> StoreResult<()> {
                self.$maintain().await.map_err(unavailable)
            }

            async fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.map(|r| r.try_get::<Vec<u8>, _>(0).map_err(|e| corrupt("meta", e))).transpose()
            }

            async fn init_meta(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.leased)
                    .await
                    .map_err(unavailable)?;
                self.get_meta(key).await?.ok_or_else(|| corrupt("meta", "value vanished"))
            }

            async fn insert_pool(&self, pool: &Pool) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO pools (id, name, arn, created_ms, modified_ms, config) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&pool.id)
                .bind(&pool.name)
                .bind(&pool.arn)
                .bind(pool.created)
                .bind(pool.modified)
                .bind(to_json(&pool.config)?)
                .execute(&self.leased)
                .await
                .map_err(|e| classify(e, UniqueKey::Pool))?;
                self.recent.pools.remove(&pool.id);
                Ok(())
            }

            async fn get_pool(&self, id: &str) -> StoreResult<Option<Pool>> {
                let row = sqlx::query("SELECT * FROM pools WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::pool_from).transpose()
            }

            async fn get_pool_recent(&self, id: &str) -> StoreResult<Option<Pool>> {
                self.recent.pools.get_or_load(id.to_string(), || self.get_pool(id)).await
            }

            async fn list_pools(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Pool>> {
                let sql = format!("SELECT * FROM pools WHERE id > $1 ORDER BY id{}", limit_clause(limit));
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after.unwrap_or(""))
                    .fetch_all(&self.leased)
                    .await
                    .map_err(unavailable)?;
                rows.iter().map(Self::pool_from).collect()
            }

            async fn update_pool(&self, pool: &Pool) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE pools SET name = $2, modified_ms = $3, config = $4 WHERE id = $1")
                    .bind(&pool.id)
                    .bind(&pool.name)
                    .bind(pool.modified)
                    .bind(to_json(&pool.config)?)
                    .execute(&self.leased)
                    .await
                    .map_err(unavailable)?;
                self.recent.pools.remove(&pool.id);
                Ok(done.rows_affected() > 0)
            }

            async fn delete_pool(&self, id: &str) -> StoreResult<bool> {
                // Everything in the pool goes with it (ON DELETE CASCADE): for a large pool,
                // longer than a request's statement may take.
                let done = sqlx::query("DELETE FROM pools WHERE id = $1")
                    .bind(id)
                    .execute(self.leased.patiently())
                    .await
                    .map(|d| d.rows_affected() > 0)
                    .map_err(unavailable);
                self.recent.clear();
                done
            }

            async fn count_users(&self, pool_id: &str) -> StoreResult<u64> {
                let row = sqlx::query("SELECT COUNT(*) FROM users WHERE pool_id = $1")
                    .bind(pool_id)
                    .fetch_one(&self.leased)
                    .await
                    .map_err(unavailable)?;
                let n: i64 = row.try_get(0).map_err(|e| corrupt("count", e))?;
                Ok(n.max(0) as u64)
            }

            async fn insert_client(&self, c: &Client) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO clients (client_id, pool_id, secret, created_ms, modified_ms, config) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&c.client_id)
                .bind(&c.pool_id)
                .bind(&c.secret)
                .bind(c.created)
                .bind(c.modified)
                .bind(to_json(&c.config)?)
                .execute(&self.leased)
                .await
                .map_err(|e| classify(e, UniqueKey::Client))?;
                self.recent.clients.remove(&c.client_id);
                Ok(())
            }

            async fn get_client_recent(&self, client_id: &str) -> StoreResult<Option<Client>> {
                self.recent
                    .clients
                    .get_or_load(client_id.to_string(), || self.get_client(client_id))
                    .await
            }

            async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
                let row = sqlx::query("SELECT * FROM clients WHERE client_id = $1")
                    .bind(client_id)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::client_from).transpose()
            }

            async fn list_clients(&self, pool_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Client>> {
                let sql = format!(
                    "SELECT * FROM clients WHERE pool_id = $1 AND client_id > $2 ORDER BY client_id{}",
                    limit_clause(limit)
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool_id)
                .bind(after.unwrap_or(""))
                .fetch_all(&self.leased)
                .await
                .map_err(unavailable)?;
                rows.iter().map(Self::client_from).collect()
            }

            async fn update_client(&self, c: &Client) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE clients SET modified_ms = $3, config = $4 WHERE pool_id = $1 AND client_id = $2",
                )
                .bind(&c.pool_id)
                .bind(&c.client_id)
                .bind(c.modified)
                .bind(to_json(&c.config)?)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                self.recent.clients.remove(&c.client_id);
                Ok(done.rows_affected() > 0)
            }

            async fn delete_client(&self, pool_id: &str, client_id: &str) -> StoreResult<bool> {
                let done = self
                    .delete_where("DELETE FROM clients WHERE pool_id = $1 AND client_id = $2", &[pool_id, client_id])
                    .await;
                self.recent.clients.remove(&client_id.to_string());
                done
            }

            async fn insert_user(
                &self,
                user: &User,
                take_aliases: bool,
                code: Option<&NewCode<'_>>,
            ) -> StoreResult<()> {
                self.save_user(user, take_aliases, true, code).await.map(|_| ())
            }

            async fn find_user(&self, pool_id: &str, key: UserKey<'_>) -> StoreResult<Option<User>> {
                let (column, value) = user_key(key);
                let sql = format!("SELECT {USER_COLS} FROM users WHERE pool_id = $1 AND {column} = $2");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(pool_id)
                    .bind(value)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::user_from).transpose()
            }

            async fn find_user_recent(&self, pool_id: &str, sub: &str) -> StoreResult<Option<User>> {
                let key = (pool_id.to_string(), sub.to_string());
                self.recent
                    .users
                    .get_or_load(key, || self.find_user(pool_id, UserKey::Sub(sub)))
                    .await
            }

            async fn update_user(&self, user: &User, take_aliases: bool) -> StoreResult<bool> {
                self.save_user(user, take_aliases, false, None).await
            }

            async fn update_user_spending(
                &self,
                user: &User,
                session: SessionUse<'_>,
            ) -> StoreResult<SpendingUpdate> {
                let done = within(self.deadline, async {
                let Some(mut tx) = self.spending_tx(session).await? else {
                    return Ok(SpendingUpdate::SessionUsed);
                };
                if !Self::write_user(&mut *tx, user, false).await? {
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(SpendingUpdate::Stale);
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(SpendingUpdate::Written)
                            }, unavailable).await;
                // Whatever came of it: a commit cut short may still have landed.
                self.recent.forget_user(&user.pool_id, &user.sub);
                done
            }

            async fn set_user_enabled(
                &self,
                pool_id: &str,
                sub: &str,
                enabled: bool,
                now: Millis,
            ) -> StoreResult<bool> {
                let done = within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                let found = sqlx::query(
                    "UPDATE users SET enabled = $3, modified_ms = $4, revision = revision + 1 WHERE pool_id = $1 AND sub = $2",
                )
                .bind(pool_id)
                .bind(sub)
                .bind(enabled)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?
                .rows_affected()
                    > 0;
                if !enabled {
                    Self::revoke_user_tokens_in(&mut *tx, pool_id, sub, now).await?;
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(found)
                            }, unavailable).await;
                // Whatever came of it: a commit cut short may still have landed.
                self.recent.forget_user(pool_id, sub);
                self.recent.families.clear();
                done
            }

            async fn delete_user(&self, pool_id: &str, sub: &str, now: Millis) -> StoreResult<bool> {
                let done = within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                // Codes before the user: the order a redemption locks them in.
                for sql in ["DELETE FROM codes WHERE pool_id = $1 AND sub = $2", "DELETE FROM memberships WHERE pool_id = $1 AND sub = $2"] {
                    sqlx::query(sql).bind(pool_id).bind(sub).execute(&mut *tx).await.map_err(unavailable)?;
                }
                let done = sqlx::query("DELETE FROM users WHERE pool_id = $1 AND sub = $2")
                    .bind(pool_id)
                    .bind(sub)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                // After the user, as AdminDisableUser locks them: one order, no deadlock.
                Self::revoke_user_tokens_in(&mut *tx, pool_id, sub, now).await?;
                tx.commit().await.map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
                            }, unavailable).await;
                // Whatever came of it: a commit cut short may still have landed.
                self.recent.forget_user(pool_id, sub);
                self.recent.forget_groups(pool_id, sub);
                self.recent.families.clear();
                done
            }

            async fn list_users(
                &self,
                pool_id: &str,
                filter: Option<&UserFilter>,
                after: Option<&str>,
                limit: u32,
            ) -> StoreResult<Vec<User>> {
                let mut cursor = after.unwrap_or("").to_string();
                let rest = list_users_sql(filter, "", 0).2;
                // A filter SQL cannot express is applied here, reading the pool in batches.
                let batch = if rest.is_some() { 500 } else { limit };
                let mut out = Vec::new();
                loop {
                    let (sql, binds, _) = list_users_sql(filter, &cursor, batch);
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(pool_id);
                    for b in &binds {
                        q = q.bind(b);
                    }
                    let rows = q.fetch_all(&self.leased).await.map_err(unavailable)?;
                    let full = rows.len() == batch as usize;
                    for row in &rows {
                        let user = Self::user_from(row)?;
                        cursor = list_cursor(filter, &user);
                        if rest.is_none_or(|f| passes(f, &user)) {
                            out.push(user);
                        }
                    }
                    if rest.is_none() || !full || out.len() >= limit as usize {
                        break;
                    }
                }
                out.truncate(limit as usize);
                Ok(out)
            }

            async fn put_code(&self, code: &NewCode<'_>, limit: SendLimit) -> StoreResult<bool> {
                Self::put_code_in(&self.leased, code, limit).await
            }

            async fn put_code_spending(
                &self,
                code: &NewCode<'_>,
                limit: SendLimit,
                session: SessionUse<'_>,
            ) -> StoreResult<SpendingCode> {
                within(self.deadline, async {
                let Some(mut tx) = self.spending_tx(session).await? else {
                    return Ok(SpendingCode::SessionUsed);
                };
                if !Self::put_code_in(&mut *tx, code, limit).await? {
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(SpendingCode::LimitReached);
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(SpendingCode::Stored)
                            }, unavailable).await
            }

            async fn update_user_with_code(
                &self,
                user: &User,
                code: &NewCode<'_>,
                limit: SendLimit,
            ) -> StoreResult<CodedUpdate> {
                let done = within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                // The code row first, as a redemption locks it (then the user): one order, no
                // deadlock between a change and a code being redeemed.
                if !Self::put_code_in(&mut *tx, code, limit).await? {
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(CodedUpdate::LimitReached);
                }
                if !Self::write_user(&mut *tx, user, false).await? {
                    tx.rollback().await.map_err(unavailable)?;
                    return Ok(CodedUpdate::Stale);
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(CodedUpdate::Written)
                            }, unavailable).await;
                // Whatever came of it: a commit cut short may still have landed.
                self.recent.forget_user(&user.pool_id, &user.sub);
                done
            }

            async fn redeem_code(&self, a: &CodeAttempt<'_>) -> StoreResult<Redeem> {
                let done = within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                // Counting the attempt first makes this transaction a writer from its first
                // statement, so concurrent attempts serialise on the row.
                let row = sqlx::query(
                    "UPDATE codes SET attempts = attempts + 1 WHERE sub = $1 AND purpose = $2 AND code_hash IS NOT NULL \
                     RETURNING code_hash, expires_ms, attempts",
                )
                .bind(a.sub)
                .bind(a.purpose.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
                let Some(row) = row else {
                    return Ok(Redeem::NoCode);
                };
                let g = |e| corrupt("code", e);
                let hash: Vec<u8> = row.try_get("code_hash").map_err(g)?;
                let expires: i64 = row.try_get("expires_ms").map_err(g)?;
                let attempts: i64 = row.try_get("attempts").map_err(g)?;
                let outcome = if attempts > i64::from(a.max_attempts) {
                    Redeem::TooManyAttempts
                } else if expires <= a.now {
                    Redeem::Expired
                } else if !userpool::ct_eq(&hash, a.candidate) {
                    Redeem::Mismatch
                } else {
                    Redeem::Redeemed
                };
                if outcome == Redeem::Redeemed {
                    sqlx::query("UPDATE codes SET code_hash = NULL WHERE sub = $1 AND purpose = $2")
                        .bind(a.sub)
                        .bind(a.purpose.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                    if let Some(user) = a.then_store {
                        if a.take_aliases {
                            Self::release_aliases(&mut tx, user).await?;
                        }
                        if !Self::write_user(&mut *tx, user, false).await? {
                            // Not as read: the code stays unused and this attempt uncounted;
                            // the caller tries again over a fresh read.
                            tx.rollback().await.map_err(unavailable)?;
                            return Ok(Redeem::Stale);
                        }
                    }
                }
                tx.commit().await.map_err(unavailable)?;
                Ok(outcome)
                            }, unavailable).await;
                // Whatever came of it: a commit cut short may still have landed.
                if let Some(user) = a.then_store {
                    if a.take_aliases {
                        self.recent.users.clear();
                    }
                    self.recent.forget_user(&user.pool_id, &user.sub);
                }
                done
            }

            async fn expire_codes(&self, pool_id: &str, sub: &str, now: Millis) -> StoreResult<u64> {
                let done = sqlx::query("UPDATE codes SET expires_ms = $3 WHERE pool_id = $1 AND sub = $2 AND code_hash IS NOT NULL")
                    .bind(pool_id)
                    .bind(sub)
                    .bind(now - 1)
                    .execute(&self.leased)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected())
            }

            async fn insert_group(&self, g: &Group) -> StoreResult<()> {
                let sql = format!("INSERT INTO user_groups ({GROUP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&g.pool_id)
                    .bind(&g.name)
                    .bind(&g.description)
                    .bind(&g.role_arn)
                    .bind(g.precedence)
                    .bind(g.created)
                    .bind(g.modified)
                    .execute(&self.leased)
                    .await
                    .map_err(|e| classify(e, UniqueKey::Group))?;
                Ok(())
            }

            async fn get_group(&self, pool_id: &str, name: &str) -> StoreResult<Option<Group>> {
                let row = sqlx::query("SELECT * FROM user_groups WHERE pool_id = $1 AND name = $2")
                    .bind(pool_id)
                    .bind(name)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::group_from).transpose()
            }

            async fn list_groups(&self, pool_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Group>> {
                let sql = format!(
                    "SELECT * FROM user_groups WHERE pool_id = $1 AND name > $2 ORDER BY name{}",
                    limit_clause(limit)
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(pool_id)
                    .bind(after.unwrap_or(""))
                    .fetch_all(&self.leased)
                    .await
                    .map_err(unavailable)?;
                rows.iter().map(Self::group_from).collect()
            }

            async fn update_group(&self, g: &Group) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE user_groups SET description = $3, role_arn = $4, precedence = $5, modified_ms = $6 \
                     WHERE pool_id = $1 AND name = $2",
                )
                .bind(&g.pool_id)
                .bind(&g.name)
                .bind(&g.description)
                .bind(&g.role_arn)
                .bind(g.precedence)
                .bind(g.modified)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                // Every member's cached groups hold this group's precedence and role.
                self.recent.groups.clear();
                Ok(done.rows_affected() > 0)
            }

            async fn delete_group(&self, pool_id: &str, name: &str) -> StoreResult<bool> {
                let done = within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                let done = sqlx::query("DELETE FROM user_groups WHERE pool_id = $1 AND name = $2")
                    .bind(pool_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("DELETE FROM memberships WHERE pool_id = $1 AND group_name = $2")
                    .bind(pool_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
                            }, unavailable).await;
                // Whatever came of it: a commit cut short may still have landed.
                self.recent.groups.clear();
                done
            }

            async fn add_member(&self, pool_id: &str, group: &str, sub: &str) -> StoreResult<bool> {
                // Only while the group exists: a DeleteGroup at the same moment either waits for
                // this row (and deletes it with the group's memberships) or is seen to have
                // removed the group (PostgreSQL holds the group row with FOR KEY SHARE; SQLite runs
                // one writer at a time).
                let sql = format!(
                    "INSERT INTO memberships (pool_id, group_name, sub) \
                     SELECT $1, $2, $3 WHERE EXISTS \
                       (SELECT 1 FROM user_groups WHERE pool_id = $1 AND name = $2{}) \
                     ON CONFLICT DO NOTHING",
                    $share
                );
                let added = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(pool_id)
                    .bind(group)
                    .bind(sub)
                    .execute(&self.leased)
                    .await
                    .map_err(unavailable)?;
                self.recent.forget_groups(pool_id, sub);
                if added.rows_affected() > 0 {
                    return Ok(true);
                }
                let member = sqlx::query(
                    "SELECT 1 FROM memberships WHERE pool_id = $1 AND group_name = $2 AND sub = $3",
                )
                .bind(pool_id)
                .bind(group)
                .bind(sub)
                .fetch_optional(&self.leased)
                .await
                .map_err(unavailable)?;
                Ok(member.is_some())
            }

            async fn remove_member(&self, pool_id: &str, group: &str, sub: &str) -> StoreResult<()> {
                let done = self
                    .delete_where("DELETE FROM memberships WHERE pool_id = $1 AND group_name = $2 AND sub = $3", &[pool_id, group, sub])
                    .await
                    .map(|_| ());
                self.recent.forget_groups(pool_id, sub);
                done
            }

            async fn all_groups_of_user_recent(&self, pool_id: &str, sub: &str) -> StoreResult<Vec<Group>> {
                let key = (pool_id.to_string(), sub.to_string());
                self.recent
                    .groups
                    .get_or_load(key, || self.groups_of_user(pool_id, sub, None, MAX_GROUPS_OF_USER))
                    .await
            }

            async fn groups_of_user(&self, pool_id: &str, sub: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<Group>> {
                let sql = format!(
                    "SELECT g.* FROM memberships m JOIN user_groups g ON g.pool_id = m.pool_id AND g.name = m.group_name \
                     WHERE m.pool_id = $1 AND m.sub = $2 AND m.group_name > $3 ORDER BY m.group_name{}",
                    limit_clause(limit)
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool_id)
                .bind(sub)
                .bind(after.unwrap_or(""))
                .fetch_all(&self.leased)
                .await
                .map_err(unavailable)?;
                rows.iter().map(Self::group_from).collect()
            }

            async fn users_in_group(&self, pool_id: &str, group: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>> {
                let cols = USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ");
                let sql = format!(
                    "SELECT {cols} FROM memberships m JOIN users u ON u.pool_id = m.pool_id AND u.sub = m.sub \
                     WHERE m.pool_id = $1 AND m.group_name = $2 AND u.username_key > $3 ORDER BY u.username_key{}",
                    limit_clause(limit)
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(pool_id)
                    .bind(group)
                    .bind(after.unwrap_or(""))
                    .fetch_all(&self.leased)
                    .await
                    .map_err(unavailable)?;
                rows.iter().map(Self::user_from).collect()
            }

            async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()> {
                sqlx::query("INSERT INTO resource_servers (pool_id, identifier, name, scopes) VALUES ($1, $2, $3, $4)")
                    .bind(&rs.pool_id)
                    .bind(&rs.identifier)
                    .bind(&rs.name)
                    .bind(to_json(&rs.scopes)?)
                    .execute(&self.leased)
                    .await
                    .map_err(|e| classify(e, UniqueKey::ResourceServer))?;
                Ok(())
            }

            async fn get_resource_server(&self, pool_id: &str, identifier: &str) -> StoreResult<Option<ResourceServer>> {
                let row = sqlx::query("SELECT * FROM resource_servers WHERE pool_id = $1 AND identifier = $2")
                    .bind(pool_id)
                    .bind(identifier)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::resource_server_from).transpose()
            }

            async fn list_resource_servers(&self, pool_id: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<ResourceServer>> {
                let sql = format!(
                    "SELECT * FROM resource_servers WHERE pool_id = $1 AND identifier > $2 ORDER BY identifier{}",
                    limit_clause(limit)
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(pool_id)
                .bind(after.unwrap_or(""))
                .fetch_all(&self.leased)
                .await
                .map_err(unavailable)?;
                rows.iter().map(Self::resource_server_from).collect()
            }

            async fn update_resource_server(&self, rs: &ResourceServer) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE resource_servers SET name = $3, scopes = $4 WHERE pool_id = $1 AND identifier = $2")
                    .bind(&rs.pool_id)
                    .bind(&rs.identifier)
                    .bind(&rs.name)
                    .bind(to_json(&rs.scopes)?)
                    .execute(&self.leased)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_resource_server(&self, pool_id: &str, identifier: &str) -> StoreResult<bool> {
                self.delete_where("DELETE FROM resource_servers WHERE pool_id = $1 AND identifier = $2", &[pool_id, identifier])
                    .await
            }

            async fn insert_message(&self, m: &Message, sent: Millis) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO messages (pool_id, username, medium, destination, kind, subject, body, secret, sent_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&m.pool_id)
                .bind(&m.username)
                .bind(m.medium.as_str())
                .bind(&m.destination)
                .bind(m.kind.as_str())
                .bind(&m.subject)
                .bind(&m.body)
                .bind(&m.secret)
                .bind(sent)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                Ok(())
            }

            async fn list_messages(&self, pool_id: &str, username: Option<&str>) -> StoreResult<Vec<StoredMessage>> {
                let rows = sqlx::query(
                    "SELECT * FROM messages WHERE pool_id = $1 AND ($2 = '' OR username = $2) ORDER BY id",
                )
                .bind(pool_id)
                .bind(username.unwrap_or(""))
                .fetch_all(&self.leased)
                .await
                .map_err(unavailable)?;
                rows.iter()
                    .map(|r| {
                        let g = |e| corrupt("message", e);
                        let medium: String = r.try_get("medium").map_err(g)?;
                        let kind: String = r.try_get("kind").map_err(g)?;
                        Ok(StoredMessage {
                            message: Message {
                                pool_id: r.try_get("pool_id").map_err(g)?,
                                username: r.try_get("username").map_err(g)?,
                                medium: if medium == "SMS" { Medium::Sms } else { Medium::Email },
                                destination: r.try_get("destination").map_err(g)?,
                                kind: MessageKind::parse(&kind).ok_or_else(|| corrupt("message kind", &kind))?,
                                subject: r.try_get("subject").map_err(g)?,
                                body: r.try_get("body").map_err(g)?,
                                secret: r.try_get("secret").map_err(g)?,
                            },
                            sent: r.try_get("sent_ms").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn rotate_signing_keys(&self, keys: &[StoredKey]) -> StoreResult<()> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                for key in keys {
                    sqlx::query(
                        "UPDATE signing_keys SET retired_ms = $3 \
                         WHERE pool_id = $1 AND key_use = $2 AND retired_ms IS NULL",
                    )
                    .bind(&key.pool_id)
                    .bind(&key.key_use)
                    .bind(key.signs_from)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                    sqlx::query(
                        "INSERT INTO signing_keys (pool_id, kid, key_use, private_sealed, jwk, created_ms, signs_from_ms, retired_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
                    )
                    .bind(&key.pool_id)
                    .bind(&key.kid)
                    .bind(&key.key_use)
                    .bind(&key.private_sealed)
                    .bind(&key.jwk)
                    .bind(key.created)
                    .bind(key.signs_from)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
                tx.commit().await.map_err(unavailable)
                            }, unavailable).await
            }

            async fn insert_refresh_token(&self, t: &RefreshToken) -> StoreResult<()> {
                Self::insert_refresh_token_in(&self.leased, t).await?;
                self.recent.families.remove(&t.origin_jti);
                Ok(())
            }

            async fn insert_refresh_token_spending(
                &self,
                t: &RefreshToken,
                session: SessionUse<'_>,
            ) -> StoreResult<bool> {
                let done = within(self.deadline, async {
                let Some(mut tx) = self.spending_tx(session).await? else {
                    return Ok(false);
                };
                Self::insert_refresh_token_in(&mut *tx, t).await?;
                tx.commit().await.map_err(unavailable)?;
                Ok(true)
                            }, unavailable).await;
                self.recent.families.remove(&t.origin_jti);
                done
            }

            async fn find_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>> {
                let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1 OR previous_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::refresh_from).transpose()
            }

            async fn find_retired_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>> {
                let row = sqlx::query(
                    "SELECT f.* FROM retired_refresh_tokens r JOIN refresh_tokens f ON f.origin_jti = r.origin_jti \
                     WHERE r.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.leased)
                .await
                .map_err(unavailable)?;
                row.as_ref().map(Self::refresh_from).transpose()
            }

            async fn rotate_refresh_token(
                &self,
                origin_jti: &str,
                current: &[u8],
                new: &[u8],
                (previous, until): (&[u8], Millis),
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET token_hash = $3, previous_hash = $4, previous_until_ms = $5 \
                     WHERE origin_jti = $1 AND token_hash = $2 AND revoked_ms IS NULL",
                )
                .bind(origin_jti)
                .bind(current)
                .bind(new)
                .bind(previous)
                .bind(until)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                self.recent.families.remove(&origin_jti.to_string());
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_refresh_tokens(&self, pool_id: &str, sub: &str, now: Millis) -> StoreResult<u64> {
                let done = Self::revoke_user_tokens_in(&self.leased, pool_id, sub, now).await;
                self.recent.families.clear();
                done
            }

            async fn revoke_refresh_family(&self, origin_jti: &str, now: Millis) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_ms = $2 WHERE origin_jti = $1 AND revoked_ms IS NULL",
                )
                .bind(origin_jti)
                .bind(now)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                self.recent.families.clear();
                Ok(done.rows_affected() > 0)
            }

            async fn refresh_family(&self, origin_jti: &str) -> StoreResult<Option<RefreshToken>> {
                let row = sqlx::query("SELECT * FROM refresh_tokens WHERE origin_jti = $1")
                    .bind(origin_jti)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                row.as_ref().map(Self::refresh_from).transpose()
            }

            async fn refresh_family_recent(&self, origin_jti: &str) -> StoreResult<Option<RefreshToken>> {
                self.recent
                    .families
                    .get_or_load(origin_jti.to_string(), || self.refresh_family(origin_jti))
                    .await
            }

            async fn purge_expired(
                &self,
                now: Millis,
                families_before: Millis,
                failures_before: Millis,
            ) -> StoreResult<u64> {
                // Background upkeep, not a request: on pool connections, free of the deadline a
                // request's statements have, however many rows have piled up.
                let sessions = sqlx::query("DELETE FROM used_sessions WHERE expires_ms < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                let families = sqlx::query("DELETE FROM refresh_tokens WHERE expires_ms < $1")
                    .bind(families_before)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                self.recent.families.clear();
                let names = sqlx::query("DELETE FROM unknown_names WHERE last_failure_ms < $1")
                    .bind(failures_before)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(sessions.rows_affected() + families.rows_affected() + names.rows_affected())
            }

            async fn use_session(&self, id: &[u8], expires: Millis) -> StoreResult<bool> {
                Self::use_session_in(&self.leased, SessionUse { id, expires }).await
            }

            async fn count_sign_in_failure(&self, pool_id: &str, sub: &str, failure: Failure) -> StoreResult<u32> {
                let done = self.count_failure(
                    "UPDATE users SET failed_sign_ins = CASE WHEN last_failed_sign_in_ms IS NULL \
                     OR last_failed_sign_in_ms < $4 THEN 1 ELSE failed_sign_ins + 1 END, \
                     last_failed_sign_in_ms = $3 WHERE pool_id = $1 AND sub = $2 RETURNING failed_sign_ins",
                    "UPDATE users SET locked_until_ms = $3 WHERE pool_id = $1 AND sub = $2",
                    (pool_id, sub),
                    failure,
                ).await;
                // Whatever came of it: a commit cut short may still have landed.
                self.recent.forget_user(pool_id, sub);
                done
            }

            async fn clear_sign_in_failures(&self, pool_id: &str, sub: &str) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE users SET failed_sign_ins = 0, locked_until_ms = NULL, last_failed_sign_in_ms = NULL \
                     WHERE pool_id = $1 AND sub = $2",
                )
                .bind(pool_id)
                .bind(sub)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                self.recent.forget_user(pool_id, sub);
                Ok(())
            }

            async fn find_signing_in(
                &self,
                pool_id: &str,
                first: UserKey<'_>,
                then: Option<UserKey<'_>>,
                nobody: &str,
            ) -> StoreResult<SigningIn> {
                let sql = signing_in_sql(first, then);
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(pool_id)
                    .bind(user_key(first).1);
                if let Some(then) = then {
                    query = query.bind(user_key(then).1);
                }
                let row = query
                    .bind(nobody)
                    .fetch_one(&self.leased)
                    .await
                    .map_err(unavailable)?;
                let g = |e| corrupt("unknown name", e);
                if row.try_get::<Option<String>, _>("sub").map_err(g)?.is_some() {
                    return Ok(SigningIn::User(Box::new(Self::user_from(&row)?)));
                }
                let count: Option<i64> = row.try_get("nobody_failures").map_err(g)?;
                Ok(SigningIn::Nobody(SignInFailures {
                    count: u32::try_from(count.unwrap_or(0)).unwrap_or(u32::MAX),
                    locked_until: row.try_get("nobody_locked_until_ms").map_err(g)?,
                }))
            }

            async fn count_nobody_failure(&self, pool_id: &str, nobody: &str, failure: Failure) -> StoreResult<u32> {
                self.count_failure(
                    "INSERT INTO unknown_names (pool_id, name_key, failures, last_failure_ms) \
                     VALUES ($1, $2, 1, $3) ON CONFLICT (pool_id, name_key) DO UPDATE SET \
                     failures = CASE WHEN unknown_names.last_failure_ms < $4 THEN 1 \
                     ELSE unknown_names.failures + 1 END, last_failure_ms = $3 RETURNING failures",
                    "UPDATE unknown_names SET locked_until_ms = $3 WHERE pool_id = $1 AND name_key = $2",
                    (pool_id, nobody),
                    failure,
                ).await
            }

            async fn session_used(&self, id: &[u8]) -> StoreResult<bool> {
                let row = sqlx::query("SELECT 1 AS one FROM used_sessions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.leased)
                    .await
                    .map_err(unavailable)?;
                Ok(row.is_some())
            }

            async fn use_totp_step(&self, pool_id: &str, sub: &str, step: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE users SET totp_last_step = $3 WHERE pool_id = $1 AND sub = $2 \
                     AND (totp_last_step IS NULL OR totp_last_step < $3)",
                )
                .bind(pool_id)
                .bind(sub)
                .bind(step)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_first_signing_key(&self, key: &StoredKey) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO signing_keys (pool_id, kid, key_use, private_sealed, jwk, created_ms, signs_from_ms, retired_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) ON CONFLICT DO NOTHING",
                )
                .bind(&key.pool_id)
                .bind(&key.kid)
                .bind(&key.key_use)
                .bind(&key.private_sealed)
                .bind(&key.jwk)
                .bind(key.created)
                .bind(key.signs_from)
                .execute(&self.leased)
                .await
                .map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
            }

            async fn signing_keys(&self, pool_id: &str) -> StoreResult<Vec<StoredKey>> {
                let rows = sqlx::query("SELECT * FROM signing_keys WHERE pool_id = $1 ORDER BY created_ms, kid")
                    .bind(pool_id)
                    .fetch_all(&self.leased)
                    .await
                    .map_err(unavailable)?;
                rows.iter()
                    .map(|r| {
                        let g = |e| corrupt("signing key", e);
                        Ok(StoredKey {
                            pool_id: r.try_get("pool_id").map_err(g)?,
                            kid: r.try_get("kid").map_err(g)?,
                            key_use: r.try_get("key_use").map_err(g)?,
                            private_sealed: r.try_get("private_sealed").map_err(g)?,
                            jwk: r.try_get("jwk").map_err(g)?,
                            created: r.try_get("created_ms").map_err(g)?,
                            signs_from: r.try_get("signs_from_ms").map_err(g)?,
                            retired: r.try_get("retired_ms").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn delete_retired_keys(&self, before: Millis) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM signing_keys WHERE retired_ms IS NOT NULL AND retired_ms < $1")
                    .bind(before)
                    .execute(&self.leased)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected())
            }

            async fn pools_with_keys_older_than(&self, before: Millis) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT DISTINCT pool_id FROM signing_keys WHERE retired_ms IS NULL AND created_ms < $1 ORDER BY pool_id",
                )
                .bind(before)
                .fetch_all(&self.leased)
                .await
                .map_err(unavailable)?;
                rows.iter()
                    .map(|r| r.try_get("pool_id").map_err(|e| corrupt("signing key", e)))
                    .collect()
            }
        }
    };
}

/// Names the sqlx database type of a pool, for transaction types in the macro.
trait PoolDb {
    type Db: sqlx::Database;
}
impl PoolDb for SqlitePool {
    type Db = sqlx::Sqlite;
}
impl PoolDb for PgPool {
    type Db = sqlx::Postgres;
}

/// This node's caches behind the `*_recent` lookups. Entries live [`RECENT_TTL`], so another
/// node's writes show within that time; this node's own writes drop the entries they change.
struct Recent {
    users: TtlCache<(String, String), Option<User>, StoreError>,
    families: TtlCache<String, Option<RefreshToken>, StoreError>,
    clients: TtlCache<String, Option<Client>, StoreError>,
    pools: TtlCache<String, Option<Pool>, StoreError>,
    groups: TtlCache<(String, String), Vec<Group>, StoreError>,
}

impl Default for Recent {
    fn default() -> Self {
        Self {
            users: TtlCache::new(RECENT_TTL, 100_000),
            families: TtlCache::new(RECENT_TTL, 100_000),
            clients: TtlCache::new(RECENT_TTL, 10_000),
            pools: TtlCache::new(RECENT_TTL, 10_000),
            groups: TtlCache::new(RECENT_TTL, 100_000),
        }
    }
}

impl Recent {
    fn forget_user(&self, pool_id: &str, sub: &str) {
        self.users.remove(&(pool_id.to_string(), sub.to_string()));
    }

    fn forget_groups(&self, pool_id: &str, sub: &str) {
        self.groups.remove(&(pool_id.to_string(), sub.to_string()));
    }

    fn clear(&self) {
        self.users.clear();
        self.families.clear();
        self.clients.clear();
        self.pools.clear();
        self.groups.clear();
    }
}

/// Connections each store keeps for single statements outside transactions (besides its pool).
const LEASED: usize = 8;

/// The embedded store: one SQLite file in write-ahead-log mode.
pub struct SqliteStore {
    /// Transactions; and the connections `leased` takes.
    pub(crate) pool: SqlitePool,
    /// Single statements outside transactions.
    pub(crate) leased: Leased<Sqlite>,
    recent: Recent,
    /// None: an embedded database has no link to lose; a statement waits for the write lock
    /// (`busy_timeout`) instead.
    pub(crate) deadline: Option<Duration>,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, ConnectError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| ConnectError::Open(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL sync survives a crash of the process (not of the machine's power).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // An embedded connection has no link that can break; pinging it before every query
            // only costs a round trip to its worker thread.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| ConnectError::Open(e.to_string()))?;
        let store = Self {
            leased: Leased::new(pool.clone(), LEASED),
            pool,
            recent: Recent::default(),
            deadline: None,
        };
        store.migrate(migrate::SQLITE).await?;
        store
            .optimize()
            .await
            .map_err(|e| ConnectError::Open(e.to_string()))?;
        Ok(store)
    }

    /// Refreshes the planner's statistics where they are stale (SQLite's `PRAGMA optimize`):
    /// without them a filtered listing may scan the pool instead of using the filter's index.
    ///
    /// Every index leads with the pool (or another key every query fixes), so skip-scans are
    /// turned off in the statistics (`noskipscan`): with one pool holding most rows, SQLite would
    /// otherwise skip-scan past the pool equality and sort a prefix filter's matches whole
    /// instead of reading them in index order.
    pub async fn optimize(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA optimize=0x10002")
            .execute(&mut *conn)
            .await?;
        let has_stats: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_stat1'",
        )
        .fetch_optional(&mut *conn)
        .await?;
        if has_stats.is_some() {
            sqlx::query(
                "UPDATE sqlite_stat1 SET stat = stat || ' noskipscan' \
                 WHERE idx IS NOT NULL AND stat NOT LIKE '%noskipscan%'",
            )
            .execute(&mut *conn)
            .await?;
            // Reloads the statistics on this connection; others read them when they open.
            sqlx::query("ANALYZE sqlite_schema")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// SQLite's plan for a ListUsers batch with `filter`, one line per step (diagnostics and
    /// the test that filtered listings read an index, not the pool).
    pub async fn list_users_plan(
        &self,
        pool_id: &str,
        filter: Option<&UserFilter>,
    ) -> Result<Vec<String>, sqlx::Error> {
        let (sql, binds, _) = list_users_sql(filter, "", 60);
        let mut q =
            sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))).bind(pool_id);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.leased).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("detail"))
            .collect()
    }

    /// Checkpoints the write-ahead log into the database file (for size measurements, backups).
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.leased)
            .await?;
        Ok(())
    }
}

/// The shared store: PostgreSQL, for several Cognate nodes on one database.
pub struct PostgresStore {
    /// Transactions; and the connections `leased` takes.
    pub(crate) pool: PgPool,
    /// Single statements outside transactions.
    pub(crate) leased: Leased<Postgres>,
    recent: Recent,
    /// How long a statement or transaction may take: [`DEADLINE`].
    pub(crate) deadline: Option<Duration>,
}

/// How long a PostgreSQL statement or transaction may take, waiting for a connection included,
/// before the request fails with a retryable error (security checklist R4: within 1 s, no hung
/// connections, when the database stops answering). Statements take milliseconds; a second
/// means the database or the link to it is gone or overwhelmed.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// How long PostgreSQL lets a statement wait for a lock before ending it: past the deadline of
/// any request, which has failed by then; a few seconds, so that a patient write (a failure count
/// written after its answer) still outwaits a burst of others on the same row.
const SET_LOCK_TIMEOUT: &str = "SET lock_timeout = '5s'";

/// sqlx's pool tests a connection given back to it (a round trip that also completes a rollback
/// still under way), with no time limit: on a link gone silent for good (a failover that drops
/// its packets) the connection would keep its place in the pool until the operating system's
/// TCP timeout, and a pool full of them fails every transaction until then. Tested here first
/// within [`DEADLINE`], such a connection is closed instead and its place taken by a new one
/// (so is one whose transaction was cut short while its statement still waits on the database
/// for a lock; PostgreSQL ends that statement by `lock_timeout`). The price: sqlx's
/// own test still follows, a second round trip per transaction, off the request's path.
async fn test_given_back(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    match tokio::time::timeout(DEADLINE, conn.ping()).await {
        Ok(answered) => answered.map(|()| true),
        // An error closes the connection without a word to the database (a graceful close
        // would write to the silent link).
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "a connection given back did not answer its test in time",
        ))),
    }
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<Self, ConnectError> {
        let (url, schema) = split_schema(url);
        let mut options =
            PgConnectOptions::from_str(&url).map_err(|e| ConnectError::Open(e.to_string()))?;
        if let Some(schema) = &schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(ConnectError::Open(format!(
                    "invalid schema name {schema:?}"
                )));
            }
            options = options.options([("search_path", schema.as_str())]);
        }
        // With `LEASED` more for single statements: at most 16 to the database per node.
        let pool = PgPoolOptions::new()
            .max_connections(16 - LEASED as u32)
            // For opening the store (and its migrations), which may wait for a database that
            // is still starting; a request's statements are held to `DEADLINE`.
            .acquire_timeout(Duration::from_secs(5))
            .after_release(|conn, _| Box::pin(test_given_back(conn)))
            // A statement the store gave up on (past its deadline) while it waits for a lock is
            // not left waiting on the database: PostgreSQL ends it too. Set once a connection is
            // open (not as a startup option, which PgBouncer and hosted poolers refuse). No
            // statement_timeout: a large delete (a pool, expired rows) must finish even when
            // nobody waits for it.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(SET_LOCK_TIMEOUT)
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| ConnectError::Open(e.to_string()))?;
        if let Some(schema) = &schema {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .map_err(|e| ConnectError::Migrate(e.to_string()))?;
        }
        let store = Self {
            leased: Leased::new(pool.clone(), LEASED).with_deadline(DEADLINE),
            pool,
            recent: Recent::default(),
            deadline: Some(DEADLINE),
        };
        store.migrate(migrate::POSTGRES).await?;
        Ok(store)
    }
}

impl PostgresStore {
    /// PostgreSQL's autovacuum keeps statistics current; nothing to do.
    pub async fn analyze(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// Takes `schema=NAME` out of a URL's query string.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

// Each engine's store: how a write transaction begins, what its migrations run first (a lock),
// and the clause that holds a row read in a write (SQLite runs one writer at a time).
sql_store!(
    SqliteStore,
    SqlitePool,
    SqliteRow,
    "BEGIN IMMEDIATE",
    &[] as &[&'static str],
    "",
    optimize
);
sql_store!(
    PostgresStore,
    PgPool,
    PgRow,
    "BEGIN",
    // Migrations may rightly wait and run long (another node migrating first, an index built).
    &[
        "SET LOCAL lock_timeout = 0",
        "SELECT pg_advisory_xact_lock(7294001)",
    ],
    " FOR KEY SHARE",
    analyze
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_split_from_the_url() {
        assert_eq!(
            split_schema("postgres://h/db?schema=t1"),
            ("postgres://h/db".into(), Some("t1".into()))
        );
        assert_eq!(
            split_schema("postgres://h/db?sslmode=disable&schema=t1"),
            ("postgres://h/db?sslmode=disable".into(), Some("t1".into()))
        );
        assert_eq!(
            split_schema("postgres://h/db"),
            ("postgres://h/db".into(), None)
        );
    }

    /// Every PostgreSQL connection of the store ends a lock wait the store gave up on, and lets
    /// a long statement (a large delete) run.
    #[tokio::test]
    async fn postgres_connections_carry_the_servers_time_limits() {
        let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("cognate_limits_{}", std::process::id());
        let sep = if base.contains('?') { '&' } else { '?' };
        let store = match PostgresStore::open(&format!("{base}{sep}schema={schema}")).await {
            Ok(store) => store,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL is required in CI: {e}")
            }
            Err(e) => return eprintln!("SKIPPED: {e}"),
        };
        for (name, want) in [("lock_timeout", "5s"), ("statement_timeout", "0")] {
            let got: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(got, want, "{name}");
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&store.pool)
            .await
            .unwrap();
    }
}
