//! The gateway's usage store on SQLite and PostgreSQL: quota counts add up under concurrency,
//! and applying a file's keys and plans creates, updates and deletes only the file's own.

use std::sync::Arc;

use gateway::usage::{
    ApiKey, Period, PlanLimits, Quota, UsageError, UsagePlan, UsageStore, digest,
};

async fn engines() -> Vec<(
    Arc<dyn UsageStore>,
    Option<String>,
    Option<tempfile::TempDir>,
)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut out = vec![(store::open(&url).await.unwrap().usage, None, Some(dir))];
    let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("cognate_usage_{}_{}", std::process::id(), rand_suffix());
    let sep = if base.contains('?') { '&' } else { '?' };
    match store::open(&format!("{base}{sep}schema={schema}")).await {
        Ok(s) => out.push((s.usage, Some(schema), None)),
        Err(e) if std::env::var_os("CI").is_some() => panic!("PostgreSQL is required in CI: {e}"),
        Err(e) => eprintln!("SKIPPED the PostgreSQL half: {e}"),
    }
    out
}

fn rand_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}", t & 0xffff_ffff)
}

async fn drop_schema(schema: Option<String>) {
    let Some(schema) = schema else { return };
    let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await;
    }
}

fn plan(name: &str, from_config: bool) -> UsagePlan {
    UsagePlan {
        name: name.into(),
        limits: PlanLimits {
            stages: vec!["pets/prod".into()],
            throttle: None,
            quota: Some(Quota {
                limit: 10,
                period: Period::Day,
                offset: 0,
            }),
        },
        from_config,
        created_ms: 1,
    }
}

fn key(id: &str, name: &str, value: &str, from_config: bool) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: name.into(),
        digest: digest(value),
        enabled: true,
        plans: vec!["basic".into()],
        from_config,
        created_ms: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_counts_add_up_under_concurrent_writers() {
    for (s, schema, _dir) in engines().await {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    s.add_usage("k1", "basic", 1000, 3).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.add_usage("k1", "basic", 1000, 0).await.unwrap(), 600);
        // Other periods, plans and keys count apart.
        assert_eq!(s.add_usage("k1", "basic", 2000, 1).await.unwrap(), 1);
        assert_eq!(s.add_usage("k1", "other", 1000, 1).await.unwrap(), 1);
        assert_eq!(s.add_usage("k2", "basic", 1000, 0).await.unwrap(), 0);
        drop_schema(schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_file_touches_only_its_own_keys_and_plans() {
    for (s, schema, _dir) in engines().await {
        let v0 = s.usage_version().await.unwrap();
        s.put_usage_plan(&plan("cli-plan", false)).await.unwrap();
        s.insert_api_key(&key(
            "cli0000001",
            "cli-key",
            "cli-key-value-0000000001",
            false,
        ))
        .await
        .unwrap();
        // A second key with a taken name or value is refused.
        let dup = s
            .insert_api_key(&key(
                "cli0000002",
                "cli-key",
                "another-value-000000001",
                false,
            ))
            .await;
        assert!(matches!(dup, Err(UsageError::Conflict(_))), "{dup:?}");
        let dup = s
            .insert_api_key(&key(
                "cli0000003",
                "other",
                "cli-key-value-0000000001",
                false,
            ))
            .await;
        assert!(matches!(dup, Err(UsageError::Conflict(_))), "{dup:?}");

        let first = [key(
            "cfg0000001",
            "partner",
            "partner-value-000000001",
            true,
        )];
        s.apply_config(&[plan("basic", true)], &first)
            .await
            .unwrap();
        s.add_usage("cfg0000001", "basic", 1000, 4).await.unwrap();
        // Applied again with a new value: same key (id and counts kept), new digest.
        let again = [key(
            "cfgNEW0001",
            "partner",
            "partner-value-000000002",
            true,
        )];
        s.apply_config(&[plan("basic", true)], &again)
            .await
            .unwrap();
        let keys = s.api_keys().await.unwrap();
        let partner = keys.iter().find(|k| k.name == "partner").unwrap();
        assert_eq!(partner.id, "cfg0000001");
        assert_eq!(partner.digest, digest("partner-value-000000002"));
        assert_eq!(
            s.add_usage("cfg0000001", "basic", 1000, 0).await.unwrap(),
            4
        );

        // A file may not take over what the CLI made.
        let clash = s.apply_config(&[plan("cli-plan", true)], &[]).await;
        assert!(matches!(clash, Err(UsageError::Conflict(_))), "{clash:?}");
        let clash = s
            .apply_config(
                &[],
                &[key("x000000001", "cli-key", "some-value-00000000001", true)],
            )
            .await;
        assert!(matches!(clash, Err(UsageError::Conflict(_))), "{clash:?}");
        // ... and a refused file changed nothing.
        assert!(
            s.api_keys()
                .await
                .unwrap()
                .iter()
                .any(|k| k.name == "partner")
        );

        // A file without them deletes the file's keys (and their counts) and plans only.
        s.apply_config(&[], &[]).await.unwrap();
        let names: Vec<String> = s
            .api_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["cli-key"]);
        let plans: Vec<String> = s
            .usage_plans()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(plans, ["cli-plan"]);
        assert_eq!(
            s.add_usage("cfg0000001", "basic", 1000, 0).await.unwrap(),
            0
        );

        assert!(s.set_api_key("cli-key", false, &[]).await.unwrap());
        assert!(!s.api_keys().await.unwrap()[0].enabled);
        assert!(!s.set_api_key("nobody", false, &[]).await.unwrap());
        assert!(s.delete_api_key("cli-key").await.unwrap());
        assert!(!s.delete_api_key("cli-key").await.unwrap());
        assert!(s.delete_usage_plan("cli-plan").await.unwrap());
        assert!(s.usage_version().await.unwrap() > v0);
        drop_schema(schema).await;
    }
}
