//! The gateway's API keys, usage plans and quota counts ([`gateway::UsageStore`]) on both
//! engines, from the same SQL.

use async_trait::async_trait;
use gateway::usage::{ApiKey, PlanLimits, UsageError, UsagePlan, UsageResult, UsageStore};
use sqlx::Row;

use crate::engine::{PostgresStore, SqliteStore};
use crate::leased::within;

fn unavailable(e: sqlx::Error) -> UsageError {
    UsageError::Unavailable(e.to_string())
}

/// A unique violation is the caller's conflict; anything else, the database's trouble.
fn conflict_or(e: sqlx::Error, what: &str) -> UsageError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return UsageError::Conflict(what.to_string());
    }
    unavailable(e)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> UsageError {
    UsageError::Unavailable(format!("stored {what} unreadable: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> UsageResult<String> {
    serde_json::to_string(v).map_err(|e| corrupt("json", e))
}

const KEY_COLS: &str = "id, name, value_digest, enabled, plans, from_config, created_ms";
const BUMP: &str = "UPDATE usage_version SET version = version + 1 WHERE id = 1";

macro_rules! usage_store {
    ($name:ident, $row:ty, $begin:expr) => {
        impl $name {
            fn key_from(row: &$row) -> UsageResult<ApiKey> {
                let g = |e| corrupt("API key", e);
                let plans: String = row.try_get("plans").map_err(g)?;
                Ok(ApiKey {
                    id: row.try_get("id").map_err(g)?,
                    name: row.try_get("name").map_err(g)?,
                    digest: row.try_get("value_digest").map_err(g)?,
                    enabled: row.try_get("enabled").map_err(g)?,
                    plans: serde_json::from_str(&plans).map_err(|e| corrupt("API key plans", e))?,
                    from_config: row.try_get("from_config").map_err(g)?,
                    created_ms: row.try_get("created_ms").map_err(g)?,
                })
            }

            /// Inserts a plan (`from_config` as given), `conflict` saying what a taken name does;
            /// the rows written.
            async fn write_plan_in(
                tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
                plan: &UsagePlan,
                from_config: bool,
                conflict: &str,
            ) -> UsageResult<u64> {
                Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO usage_plans (name, limits, from_config, created_ms) VALUES ($1, $2, $3, $4) {conflict}"
                )))
                .bind(&plan.name)
                .bind(json(&plan.limits)?)
                .bind(from_config)
                .bind(plan.created_ms)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?
                .rows_affected())
            }

            /// Inserts a key (`from_config` as given), `conflict` saying what a taken name does;
            /// the rows written, or the database's refusal (a value held by another key).
            async fn write_key_in(
                tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
                key: &ApiKey,
                from_config: bool,
                conflict: &str,
            ) -> UsageResult<Result<u64, sqlx::Error>> {
                Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO api_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) {conflict}"
                )))
                .bind(&key.id)
                .bind(&key.name)
                .bind(&key.digest)
                .bind(key.enabled)
                .bind(json(&key.plans)?)
                .bind(from_config)
                .bind(key.created_ms)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()))
            }

            /// Deletes a key and its counts; false when there was none.
            async fn delete_key_in(
                tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
                name: &str,
            ) -> UsageResult<bool> {
                let id: Option<String> = sqlx::query_scalar("DELETE FROM api_keys WHERE name = $1 RETURNING id")
                    .bind(name)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable)?;
                let Some(id) = id else { return Ok(false) };
                sqlx::query("DELETE FROM api_usage WHERE key_id = $1")
                    .bind(&id)
                    .execute(&mut **tx)
                    .await
                    .map_err(unavailable)?;
                Ok(true)
            }
        }

        #[async_trait]
        impl UsageStore for $name {
            async fn usage_version(&self) -> UsageResult<i64> {
                sqlx::query_scalar("SELECT version FROM usage_version WHERE id = 1")
                    .fetch_one(&self.leased)
                    .await
                    .map_err(unavailable)
            }

            async fn api_keys(&self) -> UsageResult<Vec<ApiKey>> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {KEY_COLS} FROM api_keys ORDER BY name")))
                    .fetch_all(&self.leased)
                    .await
                    .map_err(unavailable)?;
                rows.iter().map(Self::key_from).collect()
            }

            async fn usage_plans(&self) -> UsageResult<Vec<UsagePlan>> {
                let rows = sqlx::query("SELECT name, limits, from_config, created_ms FROM usage_plans ORDER BY name")
                    .fetch_all(&self.leased)
                    .await
                    .map_err(unavailable)?;
                rows.iter()
                    .map(|row| {
                        let g = |e| corrupt("usage plan", e);
                        let limits: String = row.try_get("limits").map_err(g)?;
                        Ok(UsagePlan {
                            name: row.try_get("name").map_err(g)?,
                            limits: serde_json::from_str::<PlanLimits>(&limits)
                                .map_err(|e| corrupt("usage plan limits", e))?,
                            from_config: row.try_get("from_config").map_err(g)?,
                            created_ms: row.try_get("created_ms").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn insert_api_key(&self, key: &ApiKey) -> UsageResult<()> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                Self::write_key_in(&mut tx, key, key.from_config, "").await?.map_err(|e| {
                    conflict_or(e, &format!("an API key named {:?}, or with this value, exists", key.name))
                })?;
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)
                            }, unavailable).await
            }

            async fn set_api_key(&self, name: &str, enabled: bool, plans: &[String]) -> UsageResult<bool> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                let n = sqlx::query("UPDATE api_keys SET enabled = $2, plans = $3 WHERE name = $1")
                    .bind(name)
                    .bind(enabled)
                    .bind(json(&plans)?)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(n > 0)
                            }, unavailable).await
            }

            async fn delete_api_key(&self, name: &str) -> UsageResult<bool> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                let found = Self::delete_key_in(&mut tx, name).await?;
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(found)
                            }, unavailable).await
            }

            async fn put_usage_plan(&self, plan: &UsagePlan) -> UsageResult<()> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                Self::write_plan_in(
                    &mut tx,
                    plan,
                    plan.from_config,
                    "ON CONFLICT (name) DO UPDATE SET limits = excluded.limits, from_config = excluded.from_config",
                )
                .await?;
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)
                            }, unavailable).await
            }

            async fn delete_usage_plan(&self, name: &str) -> UsageResult<bool> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                let n = sqlx::query("DELETE FROM usage_plans WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                Ok(n > 0)
                            }, unavailable).await
            }

            async fn apply_config(&self, plans: &[UsagePlan], keys: &[ApiKey]) -> UsageResult<()> {
                within(self.deadline, async {
                let mut tx = self.pool.begin_with($begin).await.map_err(unavailable)?;
                for p in plans {
                    let n = Self::write_plan_in(
                        &mut tx,
                        p,
                        true,
                        "ON CONFLICT (name) DO UPDATE SET limits = excluded.limits WHERE usage_plans.from_config",
                    )
                    .await?;
                    if n == 0 {
                        return Err(UsageError::Conflict(format!(
                            "a usage plan named {:?} was made with the CLI; delete it or rename the file's",
                            p.name
                        )));
                    }
                }
                let old: Vec<String> = sqlx::query_scalar("SELECT name FROM usage_plans WHERE from_config")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                for name in old.iter().filter(|n| !plans.iter().any(|p| &p.name == *n)) {
                    sqlx::query("DELETE FROM usage_plans WHERE name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
                for k in keys {
                    let n = Self::write_key_in(
                        &mut tx,
                        k,
                        true,
                        "ON CONFLICT (name) DO UPDATE SET value_digest = excluded.value_digest, \
                         enabled = excluded.enabled, plans = excluded.plans WHERE api_keys.from_config",
                    )
                    .await?
                    .map_err(|e| conflict_or(e, &format!("the value of the API key {:?} belongs to another key", k.name)))?;
                    if n == 0 {
                        return Err(UsageError::Conflict(format!(
                            "an API key named {:?} was made with the CLI; delete it or rename the file's",
                            k.name
                        )));
                    }
                }
                let old: Vec<String> = sqlx::query_scalar("SELECT name FROM api_keys WHERE from_config")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                for name in old.iter().filter(|n| !keys.iter().any(|k| &k.name == *n)) {
                    Self::delete_key_in(&mut tx, name).await?;
                }
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)
                            }, unavailable).await
            }

            async fn add_usage(&self, key_id: &str, plan: &str, period_start_ms: i64, n: u64) -> UsageResult<u64> {
                let used: i64 = sqlx::query_scalar(
                    "INSERT INTO api_usage (key_id, plan, period_start_ms, used) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (key_id, plan, period_start_ms) DO UPDATE SET used = api_usage.used + excluded.used \
                     RETURNING used",
                )
                .bind(key_id)
                .bind(plan)
                .bind(period_start_ms)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .fetch_one(self.leased.patiently())
                .await
                .map_err(unavailable)?;
                Ok(u64::try_from(used).unwrap_or(0))
            }
        }
    };
}

usage_store!(SqliteStore, sqlx::sqlite::SqliteRow, "BEGIN IMMEDIATE");
usage_store!(PostgresStore, sqlx::postgres::PgRow, "BEGIN");
