//! The store's test suite, run against both engines: every case runs once on a fresh SQLite file
//! and once in a fresh schema of the PostgreSQL at `COGNATE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). With `CI` set, an unreachable PostgreSQL fails the
//! run; elsewhere those cases say they skipped and pass.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use userpool::store::*;
use userpool::*;

struct FakeClock(AtomicI64);
impl Clock for FakeClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

struct CountingRandom(AtomicU64);
impl Random for CountingRandom {
    fn fill(&self, buf: &mut [u8]) {
        // Deterministic but distinct bytes, so tests are repeatable.
        for chunk in buf.chunks_mut(8) {
            let n = self
                .0
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst)
                .to_le_bytes();
            chunk.copy_from_slice(&n[..chunk.len()]);
        }
    }
}

struct Env {
    store: Arc<dyn Store>,
    dir: Directory,
    clock: Arc<FakeClock>,
    grant: AdminGrant,
}

const T0: Millis = 1_800_000_000_000;

fn env(store: Arc<dyn Store>) -> Env {
    let clock = Arc::new(FakeClock(AtomicI64::new(T0)));
    let vault = Arc::new(vault::Vault::from_bytes(&[7u8; 32]).unwrap());
    let dir = Directory::new(Deps {
        store: store.clone(),
        sender: Arc::new(messages::OutboxSender::new(store.clone(), clock.clone())),
        clock: clock.clone(),
        random: Arc::new(CountingRandom(AtomicU64::new(1))),
        hasher: PasswordHasher::new(HashProfile::DEVELOPMENT, 2, 64),
        vault,
        account_id: "000000000000".into(),
        issuer_base: "http://127.0.0.1:9229".into(),
    });
    Env {
        store,
        dir,
        clock,
        grant: AdminGrant::new("us-east-1", None),
    }
}

fn unique() -> String {
    let mut b = [0u8; 6];
    aws_lc_rs_fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn aws_lc_rs_fill(b: &mut [u8]) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let pid = std::process::id() as u128;
    let seed = (t ^ (pid << 64)).to_le_bytes();
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst).to_le_bytes();
    for (i, x) in b.iter_mut().enumerate() {
        *x = seed[i % 16] ^ n[i % 8].rotate_left(i as u32);
    }
}

async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (::store::connect(&url).await.unwrap(), dir)
}

/// A store in a schema of its own, or `None` (after saying so) when PostgreSQL is unreachable
/// outside CI.
async fn postgres_store() -> Option<(Arc<dyn Store>, String)> {
    let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("cognate_test_{}", unique());
    let sep = if base.contains('?') { '&' } else { '?' };
    match ::store::connect(&format!("{base}{sep}schema={schema}")).await {
        Ok(s) => Some((s, schema)),
        Err(e) if std::env::var_os("CI").is_some() => panic!("PostgreSQL is required in CI: {e}"),
        Err(e) => {
            eprintln!("SKIPPED the PostgreSQL half of this case: cannot connect to {base}: {e}");
            None
        }
    }
}

async fn drop_schema(schema: &str) {
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

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, _dir) = sqlite_store().await;
    case(env(store)).await;
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some((store, schema)) = postgres_store().await {
        case(env(store)).await;
        drop_schema(&schema).await;
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::on_sqlite(super::$name).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::on_postgres(super::$name).await } )* }
    };
}

both!(
    pools_round_trip_and_delete_everything_inside,
    concurrent_sign_ups_of_one_username_make_one_user,
    email_is_unique_in_email_username_pools,
    listing_pages_neither_skip_nor_repeat_while_users_are_added,
    filters_find_users_by_indexed_and_plain_attributes,
    codes_are_single_use_limited_and_expire,
    wrong_codes_are_limited_even_in_parallel,
    groups_and_memberships,
    resource_servers_and_clients,
    meta_values_are_written_once,
    prefix_filtered_pages_cover_every_match_once,
    signing_keys_are_made_rotated_and_retired,
    nodes_making_first_keys_at_once_make_one_pair,
    expired_sign_in_state_is_purged,
    user_mfa_settings_round_trip_and_totp_steps_are_used_once,
    sign_in_failures_count_lock_and_are_forgotten,
    a_sign_in_finds_the_user_or_the_unknown_names_failures_in_one_read,
    refresh_tokens_rotate_once_and_the_previous_one_is_found,
    a_sign_up_code_does_not_verify_an_address_changed_since_it_was_sent,
    a_change_from_an_older_read_does_not_undo_a_disable,
    a_change_from_a_stale_read_is_not_written,
    concurrent_changes_to_one_user_all_land,
    a_deleted_users_sessions_are_revoked,
    a_session_is_used_by_the_write_it_comes_with_once,
);

fn pool_input(name: &str) -> PoolInput {
    PoolInput {
        name: Some(name.into()),
        ..Default::default()
    }
}

async fn make_pool(e: &Env, input: PoolInput) -> (Pool, Client) {
    let pool = e.dir.create_pool(&e.grant, input).await.unwrap();
    let client = e
        .dir
        .create_client(
            &e.grant,
            &pool.id,
            ClientInput {
                name: Some("app".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (pool, client)
}

/// A pool with a client that signs in with USER_PASSWORD_AUTH and hides unknown users.
async fn password_pool(e: &Env, name: &str) -> (Pool, Client) {
    let pool = e.dir.create_pool(&e.grant, pool_input(name)).await.unwrap();
    let input = ClientInput {
        name: Some("app".into()),
        explicit_auth_flows: vec!["ALLOW_USER_PASSWORD_AUTH".into()],
        prevent_user_existence_errors: Some("ENABLED".into()),
        ..Default::default()
    };
    let client = e.dir.create_client(&e.grant, &pool.id, input).await;
    (pool, client.unwrap())
}

/// A pool that verifies e-mail addresses (sending codes), with its client.
async fn verifying_pool(e: &Env, name: &str) -> (Pool, Client) {
    let input = PoolInput {
        auto_verified_attributes: vec!["email".into()],
        ..pool_input(name)
    };
    make_pool(e, input).await
}

fn sign_up(client: &Client, username: &str, email: &str) -> SignUp {
    SignUp {
        client_id: client.client_id.clone(),
        username: username.into(),
        password: Some("Passw0rd!".into()),
        attributes: vec![("email".into(), email.into())],
        ..Default::default()
    }
}

async fn pools_round_trip_and_delete_everything_inside(e: Env) {
    let (pool, client) = verifying_pool(&e, "p1").await;
    assert!(pool.id.starts_with("us-east-1_"));
    let (back, count) = e.dir.describe_pool(&e.grant, &pool.id).await.unwrap();
    assert_eq!(back, pool);
    assert_eq!(count, 0);
    e.dir
        .sign_up(sign_up(&client, "alice", "a@example.com"))
        .await
        .unwrap();
    e.dir
        .create_group(&e.grant, &pool.id, "g", GroupInput::default())
        .await
        .unwrap();
    e.dir
        .add_user_to_group(&e.grant, &pool.id, "alice", "g")
        .await
        .unwrap();
    assert_eq!(e.dir.describe_pool(&e.grant, &pool.id).await.unwrap().1, 1);

    e.dir.delete_pool(&e.grant, &pool.id).await.unwrap();
    assert!(matches!(
        e.dir.describe_pool(&e.grant, &pool.id).await,
        Err(Error::ResourceNotFound(_))
    ));
    assert!(
        e.store
            .get_client(&client.client_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(e.store.count_users(&pool.id).await.unwrap(), 0);
    assert!(
        e.store
            .list_messages(&pool.id, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        e.store
            .list_groups(&pool.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_sign_ups_of_one_username_make_one_user(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("race")).await;
    let e = Arc::new(e);
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let e = e.clone();
            let req = sign_up(&client, "same-name", &format!("u{i}@example.com"));
            tokio::spawn(async move { e.dir.sign_up(req).await })
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let exists = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(Error::UsernameExists(_)))))
        .count();
    assert_eq!((ok, exists), (1, 7), "{results:?}");
    assert_eq!(e.store.count_users(&pool.id).await.unwrap(), 1);
}

async fn email_is_unique_in_email_username_pools(e: Env) {
    let input = PoolInput {
        username_attributes: vec!["email".into()],
        ..pool_input("emails")
    };
    let (pool, client) = make_pool(&e, input).await;
    let out = e
        .dir
        .sign_up(sign_up(&client, "Carol@Example.com", "ignored@example.com"))
        .await
        .unwrap();
    let user = e
        .dir
        .admin_get_user(&e.grant, &pool.id, "carol@example.com")
        .await
        .unwrap();
    assert_eq!(user.username, out.sub, "the stored username is the sub");
    assert_eq!(user.attribute("email"), Some("Carol@Example.com"));
    let again = e
        .dir
        .sign_up(sign_up(&client, "carol@example.com", "x@example.com"))
        .await;
    assert!(
        matches!(again, Err(Error::UsernameExists(ref m)) if m.contains("email")),
        "{again:?}"
    );
    let not_email = e
        .dir
        .sign_up(sign_up(&client, "carol", "x@example.com"))
        .await;
    assert!(matches!(not_email, Err(Error::InvalidParameter(_))));
}

async fn listing_pages_neither_skip_nor_repeat_while_users_are_added(e: Env) {
    let (pool, _) = make_pool(&e, pool_input("paging")).await;
    let create = |name: String| AdminCreateUser {
        pool_id: pool.id.clone(),
        username: name,
        message_action: Some("SUPPRESS".into()),
        ..Default::default()
    };
    for i in 0..20 {
        e.dir
            .admin_create_user(&e.grant, create(format!("user{i:02}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut round = 0;
    loop {
        let page = e
            .dir
            .list_users(
                &e.grant,
                ListUsersQuery {
                    pool_id: pool.id.clone(),
                    limit: 3,
                    token: token.clone(),
                    filter: None,
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|u| u.username.clone()));
        // Others sign up between pages, before and after the cursor.
        e.dir
            .admin_create_user(&e.grant, create(format!("a-new{round}")))
            .await
            .unwrap();
        e.dir
            .admin_create_user(&e.grant, create(format!("zz-new{round}")))
            .await
            .unwrap();
        round += 1;
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen, "no user twice");
    for i in 0..20 {
        assert!(seen.contains(&format!("user{i:02}")), "user{i:02} skipped");
    }
    let bad = e
        .dir
        .list_users(
            &e.grant,
            ListUsersQuery {
                pool_id: pool.id.clone(),
                limit: 3,
                token: token.clone(),
                filter: Some("username = \"x\"".into()),
            },
        )
        .await;
    assert!(token.is_some());
    assert!(
        matches!(bad, Err(Error::InvalidParameter(_))),
        "a token only works for its own query"
    );
}

async fn filters_find_users_by_indexed_and_plain_attributes(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("filters")).await;
    for (name, email, given) in [
        ("ann", "ann@a.com", "Ann"),
        ("ben", "ben@b.com", "Ben"),
        ("bea", "bea@b.com", "Bea"),
    ] {
        let mut req = sign_up(&client, name, email);
        req.attributes.push(("given_name".into(), given.into()));
        e.dir.sign_up(req).await.unwrap();
    }
    e.dir
        .admin_confirm_sign_up(&e.grant, &pool.id, "ben")
        .await
        .unwrap();
    e.dir
        .admin_set_user_enabled(&e.grant, &pool.id, "bea", false)
        .await
        .unwrap();
    let names = |filter: &str| {
        let q = ListUsersQuery {
            pool_id: pool.id.clone(),
            limit: 60,
            token: None,
            filter: Some(filter.into()),
        };
        let dir = &e.dir;
        let grant = &e.grant;
        async move {
            dir.list_users(grant, q)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|u| u.username)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("email = \"ben@b.com\"").await, ["ben"]);
    assert_eq!(names("email ^= \"be\"").await, ["bea", "ben"]);
    assert_eq!(names("given_name ^= \"B\"").await, ["bea", "ben"]);
    assert_eq!(names("cognito:user_status = \"CONFIRMED\"").await, ["ben"]);
    assert_eq!(names("status = \"Disabled\"").await, ["bea"]);
    assert_eq!(names("username ^= \"a\"").await, ["ann"]);
    assert!(
        e.dir
            .list_users(
                &e.grant,
                ListUsersQuery {
                    pool_id: pool.id.clone(),
                    limit: 1,
                    token: None,
                    filter: Some("nope = \"x\"".into())
                }
            )
            .await
            .is_err()
    );
}

async fn latest_code(e: &Env, pool: &str, user: &str) -> String {
    let list = e.dir.outbox(pool, Some(user)).await.unwrap();
    list.last().unwrap().message.secret.clone()
}

/// Resends `name`'s confirmation code and confirms the sign-up with it: the user as it is then,
/// and the code.
async fn resend_and_confirm(e: &Env, pool: &Pool, client: &Client, name: &str) -> (User, String) {
    e.dir
        .resend_confirmation_code(&client.client_id, None, name)
        .await
        .unwrap();
    let code = latest_code(e, &pool.id, name).await;
    e.dir
        .confirm_sign_up(&client.client_id, None, name, &code, false)
        .await
        .unwrap();
    let user = e
        .dir
        .admin_get_user(&e.grant, &pool.id, name)
        .await
        .unwrap();
    (user, code)
}

async fn codes_are_single_use_limited_and_expire(e: Env) {
    let (pool, client) = verifying_pool(&e, "codes").await;
    let out = e
        .dir
        .sign_up(sign_up(&client, "dan", "dan@example.com"))
        .await
        .unwrap();
    assert_eq!(out.delivery.unwrap().destination, "d***@e***");
    let code = latest_code(&e, &pool.id, "dan").await;
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));

    // Expired after 24 hours.
    e.clock.0.fetch_add(24 * 3600 * 1000 + 1, Ordering::SeqCst);
    let r = e
        .dir
        .confirm_sign_up(&client.client_id, None, "dan", &code, false)
        .await;
    assert!(matches!(r, Err(Error::ExpiredCode)), "{r:?}");

    // A resend gives a fresh code that works once.
    let (user, code) = resend_and_confirm(&e, &pool, &client, "dan").await;
    assert_eq!(user.status, UserStatus::Confirmed);
    assert_eq!(user.attribute("email_verified"), Some("true"));
    let again = e
        .dir
        .confirm_sign_up(&client.client_id, None, "dan", &code, false)
        .await;
    assert!(matches!(again, Err(Error::NotAuthorized(_))), "{again:?}");

    // The development hook expires outstanding codes.
    let (_, c2) = (pool.clone(), client.clone());
    e.dir
        .sign_up(sign_up(&c2, "eve", "eve@example.com"))
        .await
        .unwrap();
    let code = latest_code(&e, &pool.id, "eve").await;
    assert_eq!(e.dir.expire_codes(&pool.id, "eve").await.unwrap(), 1);
    let r = e
        .dir
        .confirm_sign_up(&client.client_id, None, "eve", &code, false)
        .await;
    assert!(matches!(r, Err(Error::ExpiredCode)));

    // Sends are limited per user and window, generously.
    let mut limited = false;
    for _ in 0..40 {
        if let Err(Error::LimitExceeded(_)) = e
            .dir
            .resend_confirmation_code(&client.client_id, None, "eve")
            .await
        {
            limited = true;
            break;
        }
    }
    assert!(limited, "unbounded code sends");
}

async fn wrong_codes_are_limited_even_in_parallel(e: Env) {
    let (pool, client) = verifying_pool(&e, "attempts").await;
    e.dir
        .sign_up(sign_up(&client, "fay", "fay@example.com"))
        .await
        .unwrap();
    let code = latest_code(&e, &pool.id, "fay").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let e = Arc::new(e);
    let tries: Vec<_> = (0..20)
        .map(|_| {
            let e = e.clone();
            let id = client.client_id.clone();
            tokio::spawn(async move { e.dir.confirm_sign_up(&id, None, "fay", wrong, false).await })
        })
        .collect();
    let results = futures::future::join_all(tries).await;
    let mismatches = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(Error::CodeMismatch))))
        .count();
    let limited = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(Error::LimitExceeded(_)))))
        .count();
    assert_eq!((mismatches, limited), (5, 15), "{results:?}");
    let right = e
        .dir
        .confirm_sign_up(&client.client_id, None, "fay", &code, false)
        .await;
    assert!(
        matches!(right, Err(Error::LimitExceeded(_))),
        "the right code is refused once the limit is reached"
    );
}

async fn groups_and_memberships(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("groups")).await;
    e.dir
        .sign_up(sign_up(&client, "gus", "gus@example.com"))
        .await
        .unwrap();
    let g = e
        .dir
        .create_group(
            &e.grant,
            &pool.id,
            "Admins",
            GroupInput {
                precedence: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(g.precedence, Some(0));
    assert!(matches!(
        e.dir
            .create_group(&e.grant, &pool.id, "Admins", GroupInput::default())
            .await,
        Err(Error::GroupExists(_))
    ));
    e.dir
        .create_group(&e.grant, &pool.id, "Users", GroupInput::default())
        .await
        .unwrap();
    e.dir
        .add_user_to_group(&e.grant, &pool.id, "gus", "Admins")
        .await
        .unwrap();
    e.dir
        .add_user_to_group(&e.grant, &pool.id, "gus", "Admins")
        .await
        .unwrap();
    e.dir
        .add_user_to_group(&e.grant, &pool.id, "gus", "Users")
        .await
        .unwrap();
    let groups = e
        .dir
        .groups_for_user(&e.grant, &pool.id, "gus", 1, None)
        .await
        .unwrap();
    assert_eq!(groups.items[0].name, "Admins");
    let rest = e
        .dir
        .groups_for_user(&e.grant, &pool.id, "gus", 1, groups.next.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.items[0].name, "Users");
    assert!(rest.next.is_none());
    let users = e
        .dir
        .users_in_group(&e.grant, &pool.id, "Admins", 10, None)
        .await
        .unwrap();
    assert_eq!(users.items.len(), 1);
    let updated = e
        .dir
        .update_group(
            &e.grant,
            &pool.id,
            "Admins",
            GroupInput {
                description: Some("d".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.description.as_deref(), updated.precedence),
        (Some("d"), Some(0))
    );
    e.dir
        .remove_user_from_group(&e.grant, &pool.id, "gus", "Admins")
        .await
        .unwrap();
    assert_eq!(
        e.dir
            .users_in_group(&e.grant, &pool.id, "Admins", 10, None)
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    e.dir
        .delete_group(&e.grant, &pool.id, "Users")
        .await
        .unwrap();
    assert!(
        e.dir
            .groups_for_user(&e.grant, &pool.id, "gus", 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A membership of a group deleted since it was read is not written: the group made again
    // under that name starts empty.
    let gus = e
        .dir
        .admin_get_user(&e.grant, &pool.id, "gus")
        .await
        .unwrap();
    assert!(
        !e.store
            .add_member(&pool.id, "Users", &gus.sub)
            .await
            .unwrap()
    );
    e.dir
        .create_group(&e.grant, &pool.id, "Users", GroupInput::default())
        .await
        .unwrap();
    assert!(
        e.dir
            .users_in_group(&e.grant, &pool.id, "Users", 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    e.dir
        .admin_delete_user(&e.grant, &pool.id, "gus")
        .await
        .unwrap();
    assert!(matches!(
        e.dir.admin_get_user(&e.grant, &pool.id, "gus").await,
        Err(Error::UserNotFound)
    ));
}

async fn resource_servers_and_clients(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("rs")).await;
    let rs = ResourceServer {
        pool_id: pool.id.clone(),
        identifier: "https://api.example.com".into(),
        name: "api".into(),
        scopes: vec![Scope {
            name: "read".into(),
            description: "Read".into(),
        }],
    };
    e.dir
        .create_resource_server(&e.grant, rs.clone())
        .await
        .unwrap();
    assert!(
        e.dir
            .create_resource_server(&e.grant, rs.clone())
            .await
            .is_err()
    );
    assert_eq!(
        e.dir
            .describe_resource_server(&e.grant, &pool.id, &rs.identifier)
            .await
            .unwrap(),
        rs
    );
    let scoped = ClientInput {
        name: Some("m2m".into()),
        generate_secret: true,
        allowed_oauth_flows: vec!["client_credentials".into()],
        allowed_oauth_scopes: vec!["https://api.example.com/read".into()],
        allowed_oauth_flows_user_pool_client: true,
        ..Default::default()
    };
    let m2m = e
        .dir
        .create_client(&e.grant, &pool.id, scoped.clone())
        .await
        .unwrap();
    assert_eq!(m2m.secret.as_ref().map(String::len), Some(51));
    let unknown = ClientInput {
        allowed_oauth_scopes: vec!["https://api.example.com/write".into()],
        ..scoped
    };
    assert!(matches!(
        e.dir.create_client(&e.grant, &pool.id, unknown).await,
        Err(Error::ScopeDoesNotExist(_))
    ));
    let page = e
        .dir
        .list_clients(&e.grant, &pool.id, 1, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next.is_some());
    e.dir
        .delete_client(&e.grant, &pool.id, &client.client_id)
        .await
        .unwrap();
    assert!(
        e.dir
            .describe_client(&e.grant, &pool.id, &client.client_id)
            .await
            .is_err()
    );
    e.dir
        .delete_resource_server(&e.grant, &pool.id, &rs.identifier)
        .await
        .unwrap();
    assert!(
        e.dir
            .list_resource_servers(&e.grant, &pool.id, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn meta_values_are_written_once(e: Env) {
    assert_eq!(e.store.init_meta("k", b"first").await.unwrap(), b"first");
    assert_eq!(e.store.init_meta("k", b"second").await.unwrap(), b"first");
    assert_eq!(e.store.get_meta("missing").await.unwrap(), None);
}

/// Filtered ListUsers pages must read the filter's index, not every user of the pool: with the
/// planner statistics `maintain` keeps, SQLite picks `users_by_email` for e-mail filters, and
/// the plan has no step that scans the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_filtered_listings_use_the_email_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let sqlite = Arc::new(::store::SqliteStore::open(&url).await.unwrap());
    let e = env(sqlite.clone());
    let (pool, client) = make_pool(&e, pool_input("plans")).await;
    for i in 0..1500 {
        e.dir
            .sign_up(sign_up(
                &client,
                &format!("user{i:05}"),
                &format!("user{i:05}@example.com"),
            ))
            .await
            .unwrap();
    }
    e.store.maintain().await.unwrap();
    for (prefix, value) in [(false, "user00042@example.com"), (true, "user0004")] {
        let filter = UserFilter {
            field: FilterField::Email,
            prefix,
            value: value.into(),
        };
        let plan = sqlite
            .list_users_plan(&pool.id, Some(&filter))
            .await
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("users_by_email")),
            "prefix={prefix}: {plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.starts_with("SCAN") || step.contains("TEMP B-TREE")),
            "prefix={prefix}: {plan:?}"
        );
    }
}

/// A wrong password is answered without waiting for its failure count to be written (security
/// checklist A1: a refusal that waited for a commit would tell a user from a name nobody has,
/// unless both waited), and the count is still written, exactly once: here another connection
/// holds the database's write lock while the wrong password is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_wrong_password_is_answered_before_its_count_is_written() {
    answered_before_the_count_is_written(true).await;
}

/// The same for a name nobody has, with PreventUserExistenceErrors: its failure is counted too,
/// after the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_unknown_names_failure_is_answered_before_its_count_is_written() {
    answered_before_the_count_is_written(false).await;
}

async fn answered_before_the_count_is_written(user_exists: bool) {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let e = env(::store::connect(&url).await.unwrap());
    let (pool, client) = password_pool(&e, "answer-first").await;
    if user_exists {
        e.dir
            .sign_up(sign_up(&client, "slowpoke", "s@example.com"))
            .await
            .unwrap();
    }
    // The user's count, or the count of the one name nobody has that was tried in the pool.
    let failures = || async {
        let sql = if user_exists {
            "SELECT failed_sign_ins FROM users WHERE pool_id = $1"
        } else {
            "SELECT failures FROM unknown_names WHERE pool_id = $1"
        };
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>(sql)
            .bind(&pool.id)
            .fetch_optional(&mut conn)
            .await
            .unwrap()
            .unwrap_or(0)
    };
    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let attempt = e.dir.initiate_auth(AuthRequest {
        client_id: client.client_id.clone(),
        flow: "USER_PASSWORD_AUTH".into(),
        params: [("USERNAME", "slowpoke"), ("PASSWORD", "Wrong-passw0rd")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    });
    // Bounded only so that a regression fails instead of hanging: the store's busy timeout is
    // 10 s, after which a count written before the answer would fail the sign-in.
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), attempt)
        .await
        .expect("the answer came");
    assert!(
        matches!(&answer, Err(Error::NotAuthorized(m)) if m == "Incorrect username or password."),
        "{answer:?}"
    );
    assert_eq!(
        failures().await,
        0,
        "nothing is written while the lock is held"
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert!(e.dir.settle(std::time::Duration::from_secs(30)).await);
    assert_eq!(failures().await, 1);
}

/// Prefix filters on e-mail page by e-mail, then username: every matching user appears exactly
/// once across the pages, users added between pages included, and no one else does.
async fn prefix_filtered_pages_cover_every_match_once(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("prefix-pages")).await;
    // Usernames in the opposite order of their e-mails, so the two orders differ.
    for i in 0..130 {
        let email = format!("Match{:03}@example.com", 129 - i);
        e.dir
            .sign_up(sign_up(&client, &format!("u{i:03}"), &email))
            .await
            .unwrap();
    }
    e.dir
        .sign_up(sign_up(&client, "other", "nomatch@example.com"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = e
            .dir
            .list_users(
                &e.grant,
                ListUsersQuery {
                    pool_id: pool.id.clone(),
                    limit: 60,
                    token: token.take(),
                    filter: Some("email ^= \"match\"".into()),
                },
            )
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page.items
                .into_iter()
                .map(|u| u.attributes["email"].clone()),
        );
        if pages == 1 {
            // Added behind the cursor and ahead of it while the listing is under way.
            for (name, email) in [
                ("late-a", "match000a@example.com"),
                ("late-z", "matchzzz@example.com"),
            ] {
                e.dir.sign_up(sign_up(&client, name, email)).await.unwrap();
            }
        }
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = (0..130)
        .map(|i| format!("Match{i:03}@example.com"))
        .collect();
    want.push("matchzzz@example.com".into());
    assert_eq!(
        seen, want,
        "in e-mail order, each once, the late user ahead of the cursor included"
    );
}

/// Signing keys: two per pool from its creation, sealed (the stored private half is not the
/// PKCS#8 key), rotation publishes two more at once, and upkeep deletes retired keys only once
/// their last token can have expired.
async fn signing_keys_are_made_rotated_and_retired(e: Env) {
    let (pool, _) = make_pool(&e, pool_input("keys")).await;
    let first = e.dir.jwks(&pool.id).await.unwrap();
    assert_eq!(first.keys.len(), 2);
    let stored = e.store.signing_keys(&pool.id).await.unwrap();
    assert_eq!(stored.len(), 2);
    for k in &stored {
        // PKCS#8 DER starts with a SEQUENCE tag; a sealed value starts with its random nonce.
        assert!(k.private_sealed.len() > 1000);
        assert!(k.retired.is_none());
    }
    e.dir.rotate_keys(&pool.id, 60_000).await.unwrap();
    let after = e.dir.jwks(&pool.id).await.unwrap();
    assert_eq!(after.keys.len(), 4);
    assert!(first.keys.iter().all(|k| after.keys.contains(k)));
    let stored = e.store.signing_keys(&pool.id).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|k| k.retired == Some(T0 + 60_000))
            .count(),
        2
    );

    // A day after the old keys stopped signing they are still published ...
    e.clock.0.store(T0 + 60_000 + 86_400_000, Ordering::SeqCst);
    e.dir.maintain_keys(None, 0).await.unwrap();
    assert_eq!(e.store.signing_keys(&pool.id).await.unwrap().len(), 4);
    // ... and just after that they are gone, the new ones stay.
    e.clock.0.store(T0 + 60_001 + 86_400_000, Ordering::SeqCst);
    e.dir.maintain_keys(None, 0).await.unwrap();
    let left = e.store.signing_keys(&pool.id).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|k| k.retired.is_none()));

    // Automatic rotation picks pools whose keys are older than the given age.
    e.dir.maintain_keys(Some(86_400_000), 0).await.unwrap();
    assert_eq!(e.store.signing_keys(&pool.id).await.unwrap().len(), 4);

    // The keys go with the pool.
    e.dir.delete_pool(&e.grant, &pool.id).await.unwrap();
    assert!(e.store.signing_keys(&pool.id).await.unwrap().is_empty());
}

/// Two nodes (two directories on one database) asked for a new pool's JWKS at the same moment:
/// the pool ends up with one ID key and one access key, and both nodes publish that pair.
async fn nodes_making_first_keys_at_once_make_one_pair(e: Env) {
    let (pool, _) = make_pool(&e, pool_input("first-keys")).await;
    assert!(e.store.signing_keys(&pool.id).await.unwrap().is_empty());
    let other = env(e.store.clone());
    let (a, b) = tokio::join!(e.dir.jwks(&pool.id), other.dir.jwks(&pool.id));
    let stored = e.store.signing_keys(&pool.id).await.unwrap();
    assert_eq!(stored.len(), 2);
    let mut uses: Vec<&str> = stored.iter().map(|k| k.key_use.as_str()).collect();
    uses.sort_unstable();
    assert_eq!(uses, ["access", "id"]);
    // A node that lost the race reads the winner's keys.
    let again_a = e.dir.jwks(&pool.id).await.unwrap();
    let again_b = other.dir.jwks(&pool.id).await.unwrap();
    assert_eq!(again_a, again_b);
    assert_eq!(again_a.keys.len(), 2);
    let _ = (a.unwrap(), b.unwrap());
}

/// Used-session records go once expired; refresh-token families a day after they expired.
async fn expired_sign_in_state_is_purged(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("purge")).await;
    assert!(e.store.use_session(b"s-old", T0 - 1).await.unwrap());
    assert!(e.store.use_session(b"s-live", T0 + 60_000).await.unwrap());
    // Used once: the second use is refused.
    assert!(!e.store.use_session(b"s-live", T0 + 60_000).await.unwrap());
    assert!(e.store.session_used(b"s-live").await.unwrap());
    assert!(!e.store.session_used(b"s-never").await.unwrap());
    let family = |hash: &[u8], jti: &str, expires| RefreshToken {
        token_hash: hash.to_vec(),
        origin_jti: jti.into(),
        pool_id: pool.id.clone(),
        client_id: client.client_id.clone(),
        sub: "sub-1".into(),
        auth_time: 0,
        created: 0,
        expires,
        revoked: None,
        previous_hash: None,
        previous_until: None,
    };
    let day = 86_400_000;
    e.store
        .insert_refresh_token(&family(b"h-old", "j-old", T0 - day - 1))
        .await
        .unwrap();
    e.store
        .insert_refresh_token(&family(b"h-recent", "j-recent", T0 - 1))
        .await
        .unwrap();
    assert_eq!(e.dir.purge_expired_sign_ins().await.unwrap(), 2);
    assert!(e.store.use_session(b"s-old", T0 + 60_000).await.unwrap());
    assert!(!e.store.use_session(b"s-live", T0 + 60_000).await.unwrap());
    assert!(e.store.refresh_family("j-old").await.unwrap().is_none());
    assert!(e.store.refresh_family("j-recent").await.unwrap().is_some());
}

async fn user_mfa_settings_round_trip_and_totp_steps_are_used_once(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("mfa")).await;
    e.dir
        .sign_up(sign_up(&client, "mfa-user", "m@example.com"))
        .await
        .unwrap();
    let find = || e.store.find_user(&pool.id, UserKey::Username("mfa-user"));
    let mut user = find().await.unwrap().unwrap();
    assert_eq!(user.mfa, UserMfa::default());
    user.mfa = UserMfa {
        enabled: vec![MfaMethod::SoftwareToken, MfaMethod::Sms],
        preferred: Some(MfaMethod::SoftwareToken),
        totp_secret: Some("c2VhbGVk".into()),
        totp_pending: None,
        totp_name: Some("phone".into()),
    };
    assert!(e.store.update_user(&user, false).await.unwrap());
    assert_eq!(find().await.unwrap().unwrap().mfa, user.mfa);

    let sub = user.sub.clone();
    assert!(e.store.use_totp_step(&pool.id, &sub, 100).await.unwrap());
    // The same step again, or an older one, is refused; a later one is accepted.
    assert!(!e.store.use_totp_step(&pool.id, &sub, 100).await.unwrap());
    assert!(!e.store.use_totp_step(&pool.id, &sub, 99).await.unwrap());
    assert!(e.store.use_totp_step(&pool.id, &sub, 101).await.unwrap());
    // Racing uses of one step: exactly one wins.
    let tries = (0..8).map(|_| e.store.use_totp_step(&pool.id, &sub, 102));
    let won = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    // Another user's steps are their own.
    assert!(
        !e.store
            .use_totp_step(&pool.id, "no-such-sub", 500)
            .await
            .unwrap()
    );
}

/// A failure counted at `now`, forgetting those before `forget_before`, locking nobody out.
fn failure(now: Millis, forget_before: Millis) -> Failure {
    Failure {
        now,
        forget_before,
        lock_for: |_| None,
    }
}

/// A failed sign-in's count and the lockout it calls for are one write: here the database
/// refuses every lockout, and the failure that called for one is not counted either (before,
/// the count stayed and that lockout was skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_whose_lockout_fails_is_not_kept_on_either_engine() {
    for table in ["users", "unknown_names"] {
        with_refusing_rows(
            table,
            "UPDATE",
            "NEW.locked_until_ms IS NOT NULL",
            |e| async move {
                let (pool, client) = make_pool(&e, pool_input("whole-lockouts")).await;
                let outcome = e.dir.sign_up(sign_up(&client, "mia", "mia@example.com"));
                let sub = outcome.await.unwrap().sub;
                let (store, pool_id, sub) = (&e.store, pool.id.as_str(), sub.as_str());
                let count = |n: Millis| {
                    let counted = Failure {
                        lock_for: |n| (n == 5).then_some(1_000),
                        ..failure(T0 + n, T0 - 60_000)
                    };
                    async move {
                        match table {
                            "users" => store.count_sign_in_failure(pool_id, sub, counted).await,
                            _ => store.count_nobody_failure(pool_id, "k", counted).await,
                        }
                    }
                };
                for n in 1..=4 {
                    assert_eq!(count(n).await.unwrap(), n as u32);
                }
                assert!(count(5).await.is_err(), "the lockout was written after all");
                let failures = if table == "users" {
                    let user = e.store.find_user(&pool.id, UserKey::Sub(sub)).await;
                    user.unwrap().unwrap().failures
                } else {
                    let nemo = UserKey::Username("nemo");
                    match e.store.find_signing_in(&pool.id, nemo, None, "k").await {
                        Ok(SigningIn::Nobody(failures)) => failures,
                        other => panic!("{other:?}"),
                    }
                };
                let four = SignInFailures {
                    count: 4,
                    locked_until: None,
                };
                assert_eq!(
                    failures, four,
                    "{table}: a count was kept without its lockout"
                );
            },
        )
        .await;
    }
}

async fn sign_in_failures_count_lock_and_are_forgotten(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("lockout")).await;
    e.dir
        .sign_up(sign_up(&client, "locky", "l@example.com"))
        .await
        .unwrap();
    let find = || e.store.find_user(&pool.id, UserKey::Username("locky"));
    let sub = find().await.unwrap().unwrap().sub;
    let minute = 60_000;
    for expected in 1..=3 {
        let n = e
            .store
            .count_sign_in_failure(&pool.id, &sub, failure(T0 + expected, T0 - 15 * minute))
            .await
            .unwrap();
        assert_eq!(n, expected as u32);
        let user = find().await.unwrap().unwrap();
        assert_eq!(
            user.failures.locked_until, None,
            "the count called for no lockout"
        );
    }
    // The count that calls for a lockout writes it too.
    let locking = Failure {
        lock_for: |n| (n == 4).then_some(1_000),
        ..failure(T0 + 4, T0 - 15 * minute)
    };
    let n = e.store.count_sign_in_failure(&pool.id, &sub, locking);
    assert_eq!(n.await.unwrap(), 4);
    let user = find().await.unwrap().unwrap();
    assert_eq!(
        user.failures,
        SignInFailures {
            count: 4,
            locked_until: Some(T0 + 4 + 1_000)
        }
    );
    // A user write (say, an attribute change) leaves the counter alone.
    assert!(e.store.update_user(&user, false).await.unwrap());
    assert_eq!(find().await.unwrap().unwrap().failures.count, 4);
    // A failure after the last one is forgotten starts the count again.
    let later = T0 + 20 * minute;
    let n = e
        .store
        .count_sign_in_failure(&pool.id, &sub, failure(later, later - 15 * minute))
        .await
        .unwrap();
    assert_eq!(n, 1);
    e.store
        .clear_sign_in_failures(&pool.id, &sub)
        .await
        .unwrap();
    assert_eq!(
        find().await.unwrap().unwrap().failures,
        SignInFailures::default()
    );
    // Parallel failures are all counted.
    let tries = (0..6).map(|_| {
        e.store
            .count_sign_in_failure(&pool.id, &sub, failure(later, later - 15 * minute))
    });
    futures::future::join_all(tries)
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    assert_eq!(find().await.unwrap().unwrap().failures.count, 6);
    // Unknown users count nothing.
    assert_eq!(
        e.store
            .count_sign_in_failure(&pool.id, "nobody", failure(later, 0))
            .await
            .unwrap(),
        0
    );
}

/// The one read of a sign-in finds the user by username before alias, or else the failures
/// counted against the name nobody has; those are counted, locked, kept per pool and forgotten
/// as a user's are (security checklist A1).
async fn a_sign_in_finds_the_user_or_the_unknown_names_failures_in_one_read(e: Env) {
    let input = PoolInput {
        alias_attributes: vec!["preferred_username".into()],
        ..pool_input("nobody")
    };
    let (pool, client) = make_pool(&e, input).await;
    let (other, _) = make_pool(&e, pool_input("other")).await;
    e.dir
        .sign_up(sign_up(&client, "carol", "c@example.com"))
        .await
        .unwrap();
    let mut dave = sign_up(&client, "dave", "d@example.com");
    // A preferred username is an alias at once (an e-mail only once verified).
    dave.attributes
        .push(("preferred_username".into(), "carol".into()));
    e.dir.sign_up(dave).await.unwrap();
    let find = |first, then, nobody: &'static str| {
        let pool_id = pool.id.clone();
        let store = e.store.clone();
        async move {
            store
                .find_signing_in(&pool_id, first, then, nobody)
                .await
                .unwrap()
        }
    };
    let username = |found: SigningIn| match found {
        SigningIn::User(u) => u.username,
        SigningIn::Nobody(f) => panic!("found nobody: {f:?}"),
    };
    // By username, by alias, and the username's owner where a name is both.
    assert_eq!(
        username(find(UserKey::Username("carol"), None, "k1").await),
        "carol"
    );
    let by_preferred = Some(UserKey::PreferredUsernameAlias("carol"));
    assert_eq!(
        username(find(UserKey::Username("x"), by_preferred, "k1").await),
        "dave"
    );
    assert_eq!(
        username(find(UserKey::Username("carol"), by_preferred, "k1").await),
        "carol"
    );
    let nobody = find(
        UserKey::Username("erin"),
        Some(UserKey::PreferredUsernameAlias("erin")),
        "k1",
    );
    assert_eq!(nobody.await, SigningIn::Nobody(SignInFailures::default()));

    let minute = 60_000;
    for expected in 1..=5 {
        let counted = Failure {
            lock_for: |n| (n == 5).then_some(1_000),
            ..failure(T0 + expected, T0 - 15 * minute)
        };
        let n = e.store.count_nobody_failure(&pool.id, "k1", counted);
        assert_eq!(n.await.unwrap(), expected as u32);
    }
    let locked = SigningIn::Nobody(SignInFailures {
        count: 5,
        locked_until: Some(T0 + 5 + 1_000),
    });
    assert_eq!(find(UserKey::Username("erin"), None, "k1").await, locked);
    assert_eq!(find(UserKey::Sub("k1"), None, "k1").await, locked);
    // Another name, and the same key in another pool, have counted nothing.
    let fresh = SigningIn::Nobody(SignInFailures::default());
    assert_eq!(find(UserKey::Username("erin"), None, "k2").await, fresh);
    assert_eq!(
        e.store
            .find_signing_in(&other.id, UserKey::Username("erin"), None, "k1")
            .await
            .unwrap(),
        fresh
    );
    // Parallel failures are all counted; a failure after the count was forgotten starts again.
    let later = T0 + 20 * minute;
    let tries = (0..6).map(|_| {
        e.store
            .count_nobody_failure(&other.id, "k1", failure(T0, T0 - 15 * minute))
    });
    futures::future::join_all(tries)
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    let n = e
        .store
        .count_nobody_failure(&other.id, "k1", failure(T0 + 1, T0 - 15 * minute))
        .await
        .unwrap();
    assert_eq!(n, 7);
    let n = e
        .store
        .count_nobody_failure(&pool.id, "k1", failure(later, later - 15 * minute))
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Purged once their last failure is older than the lockout remembers.
    let purged = e.store.purge_expired(later, 0, T0 + 2).await.unwrap();
    assert_eq!(purged, 1, "the other pool's name, last failed at T0 + 1");
    assert!(matches!(
        e.store
            .find_signing_in(&pool.id, UserKey::Username("erin"), None, "k1")
            .await
            .unwrap(),
        SigningIn::Nobody(SignInFailures { count: 1, .. })
    ));
    // They go with their pool.
    e.dir.delete_pool(&e.grant, &pool.id).await.unwrap();
    e.store
        .count_nobody_failure(&other.id, "k9", failure(later, 0))
        .await
        .unwrap();
    assert_eq!(e.store.purge_expired(later, 0, later + 1).await.unwrap(), 1);
}

async fn refresh_tokens_rotate_once_and_the_previous_one_is_found(e: Env) {
    let (_, client) = make_pool(&e, pool_input("rotate")).await;
    let family = RefreshToken {
        token_hash: b"h1".to_vec(),
        ..family(&client, "sub-r", "jti-rot")
    };
    e.store.insert_refresh_token(&family).await.unwrap();
    assert!(
        e.store
            .rotate_refresh_token("jti-rot", b"h1", b"h2", (b"h1", T0 + 5))
            .await
            .unwrap()
    );
    // Rotating from a token that is no longer current fails: one of two racing rotations wins.
    assert!(
        !e.store
            .rotate_refresh_token("jti-rot", b"h1", b"h3", (b"h1", T0 + 5))
            .await
            .unwrap()
    );
    let by_new = e.store.find_refresh_token(b"h2").await.unwrap().unwrap();
    let by_old = e.store.find_refresh_token(b"h1").await.unwrap().unwrap();
    assert_eq!(by_new, by_old);
    assert_eq!(by_new.token_hash, b"h2");
    assert_eq!(by_new.previous_hash.as_deref(), Some(&b"h1"[..]));
    assert_eq!(by_new.previous_until, Some(T0 + 5));
    assert!(e.store.find_refresh_token(b"h3").await.unwrap().is_none());
    // Every replaced token is kept with its family; a token never issued is not.
    assert!(
        e.store
            .rotate_refresh_token("jti-rot", b"h2", b"h5", (b"h2", T0 + 5))
            .await
            .unwrap()
    );
    assert!(e.store.find_refresh_token(b"h1").await.unwrap().is_none());
    for retired in [&b"h1"[..], b"h2"] {
        let family = e.store.find_retired_refresh_token(retired).await.unwrap();
        assert_eq!(family.map(|f| f.token_hash), Some(b"h5".to_vec()));
    }
    assert!(
        e.store
            .find_retired_refresh_token(b"h5")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        e.store
            .find_retired_refresh_token(b"h3")
            .await
            .unwrap()
            .is_none()
    );
    let (h2, h5) = (b"h2".to_vec(), b"h5".to_vec());
    // A revoked family does not rotate.
    assert!(e.store.revoke_refresh_family("jti-rot", T0).await.unwrap());
    assert!(!e.store.revoke_refresh_family("jti-rot", T0).await.unwrap());
    assert!(
        !e.store
            .rotate_refresh_token("jti-rot", &h5, b"h4", (&h2, T0 + 5))
            .await
            .unwrap()
    );
    // The replaced tokens go with their family.
    assert_eq!(e.store.purge_expired(T0, T0 + 60_001, 0).await.unwrap(), 1);
    assert!(
        e.store
            .find_retired_refresh_token(b"h1")
            .await
            .unwrap()
            .is_none()
    );
}

/// Runs `case` on each engine whose database refuses every `op` (INSERT, UPDATE) on `table`,
/// through a trigger: a write of several statements that fails half way must leave nothing.
async fn with_refusing<F, Fut>(table: &str, op: &str, case: F)
where
    F: Fn(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    with_refusing_rows(table, op, "TRUE", case).await;
}

/// [`with_refusing`], refusing only the rows for which `when` (SQL over `NEW`) holds.
async fn with_refusing_rows<F, Fut>(table: &str, op: &str, when: &str, case: F)
where
    F: Fn(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let e = env(::store::connect(&url).await.unwrap());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let sql = format!(
        "CREATE TRIGGER refuse BEFORE {op} ON {table} WHEN {when} \
         BEGIN SELECT RAISE(ABORT, 'refused'); END"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    case(e).await;

    let Some((store, schema)) = postgres_store().await else {
        return;
    };
    let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    for sql in [
        format!(
            "CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        ),
        format!(
            "CREATE TRIGGER refuse BEFORE {op} ON {schema}.{table} \
             FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {schema}.refuse()"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    case(env(store)).await;
    drop_schema(&schema).await;
}

/// A sign-up stores its user and the user's confirmation code together or not at all: here the
/// database refuses every new code, and the sign-up leaves no user behind — before, a failure
/// between its two writes left an unconfirmed user nobody had been sent a code for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_whose_code_cannot_be_stored_leaves_no_user_on_either_engine() {
    with_refusing(
        "codes",
        "INSERT",
        a_sign_up_whose_code_cannot_be_stored_leaves_no_user,
    )
    .await;
}

/// AdminDisableUser disables the user and revokes their sessions together or not at all: here
/// the database refuses the revocation, and the user stays enabled — before, the user was left
/// disabled with live refresh tokens, which AdminEnableUser would have brought back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_whose_revocation_fails_leaves_the_user_enabled_on_either_engine() {
    with_refusing(
        "refresh_tokens",
        "UPDATE",
        a_disable_whose_revocation_fails_leaves_the_user_enabled,
    )
    .await;
}

/// A change that sends a code (a new e-mail in a pool that verifies it; AdminResetUserPassword)
/// writes the change and the code together or not at all: here the database refuses every
/// code, and the user stays as they were — before, the e-mail changed (or the password was
/// marked for reset) with no code stored for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_whose_code_cannot_be_stored_leave_the_user_as_they_were_on_either_engine() {
    with_refusing(
        "codes",
        "INSERT",
        changes_whose_code_cannot_be_stored_leave_the_user_as_they_were,
    )
    .await;
}

async fn changes_whose_code_cannot_be_stored_leave_the_user_as_they_were(e: Env) {
    let (pool, _) = verifying_pool(&e, "whole-changes").await;
    let created = e
        .dir
        .admin_create_user(
            &e.grant,
            AdminCreateUser {
                pool_id: pool.id.clone(),
                username: "erin".into(),
                attributes: vec![
                    ("email".into(), "erin@example.com".into()),
                    ("email_verified".into(), "true".into()),
                ],
                temporary_password: Some("Passw0rd!".into()),
                message_action: Some("SUPPRESS".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let changed = e
        .dir
        .admin_update_user_attributes(
            &e.grant,
            &pool.id,
            "erin",
            vec![("email".into(), "erin@elsewhere.example".into())],
        )
        .await;
    assert!(changed.is_err(), "the code was stored after all");
    let reset = e
        .dir
        .admin_reset_user_password(&e.grant, &pool.id, "erin")
        .await;
    assert!(reset.is_err(), "the reset code was stored after all");
    let user = e
        .store
        .find_user(&pool.id, UserKey::Sub(&created.sub))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.attribute("email"), Some("erin@example.com"));
    assert_eq!(user.attribute("email_verified"), Some("true"));
    assert_eq!(user.status, created.status);
}

/// A rotation adds both new keys (ID and access) and retires both old ones together or not at
/// all: here the database refuses the new access key (a key signing later than it was made),
/// and the pool keeps its two keys as they were — before, the ID key was rotated alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_fails_half_way_changes_no_key_on_either_engine() {
    with_refusing_rows(
        "signing_keys",
        "INSERT",
        "NEW.key_use = 'access' AND NEW.signs_from_ms > NEW.created_ms",
        a_rotation_that_fails_half_way_changes_no_key,
    )
    .await;
}

async fn a_rotation_that_fails_half_way_changes_no_key(e: Env) {
    let (pool, _) = make_pool(&e, pool_input("whole-rotations")).await;
    e.dir.jwks(&pool.id).await.unwrap();
    let before = e.store.signing_keys(&pool.id).await.unwrap();
    assert_eq!(before.len(), 2);
    assert!(e.dir.rotate_keys(&pool.id, 60_000).await.is_err());
    assert_eq!(e.store.signing_keys(&pool.id).await.unwrap(), before);
}

/// A refresh-token family `jti` for the user `sub` of `client`, live for a minute from T0.
fn family(client: &Client, sub: &str, jti: &str) -> RefreshToken {
    RefreshToken {
        token_hash: format!("{jti}-token").into_bytes(),
        origin_jti: jti.into(),
        pool_id: client.pool_id.clone(),
        client_id: client.client_id.clone(),
        sub: sub.into(),
        auth_time: 0,
        created: T0,
        expires: T0 + 60_000,
        revoked: None,
        previous_hash: None,
        previous_until: None,
    }
}

/// Stores [`family`] `jti` for the user `sub` of `client`.
async fn insert_family(e: &Env, client: &Client, sub: &str, jti: &str) {
    let family = family(client, sub, jti);
    e.store.insert_refresh_token(&family).await.unwrap();
}

/// A deleted user's sessions are revoked with the deletion, in one transaction: here the
/// database refuses the revocation, and the user is still there — not deleted with live tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_revocation_fails_leaves_the_user_on_either_engine() {
    with_refusing("refresh_tokens", "UPDATE", |e| async move {
        let (pool, client) = make_pool(&e, pool_input("whole-deletes")).await;
        let outcome = e
            .dir
            .sign_up(sign_up(&client, "eve", "eve@example.com"))
            .await
            .unwrap();
        insert_family(&e, &client, &outcome.sub, "jti-eve").await;
        let refused = e.dir.admin_delete_user(&e.grant, &pool.id, "eve").await;
        assert!(refused.is_err(), "the revocation was written after all");
        let user = e.store.find_user(&pool.id, UserKey::Sub(&outcome.sub));
        assert!(user.await.unwrap().is_some(), "deleted, sessions left live");
        let token = e.store.refresh_family("jti-eve").await.unwrap().unwrap();
        assert_eq!(token.revoked, None);
    })
    .await;
}

async fn a_disable_whose_revocation_fails_leaves_the_user_enabled(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("whole-disables")).await;
    let outcome = e
        .dir
        .sign_up(sign_up(&client, "dora", "dora@example.com"))
        .await
        .unwrap();
    insert_family(&e, &client, &outcome.sub, "jti-dora").await;
    let refused = e
        .dir
        .admin_set_user_enabled(&e.grant, &pool.id, "dora", false)
        .await;
    assert!(refused.is_err(), "the revocation was written after all");
    let user = e
        .store
        .find_user(&pool.id, UserKey::Sub(&outcome.sub))
        .await
        .unwrap()
        .unwrap();
    assert!(
        user.enabled,
        "the user was disabled without their sessions revoked"
    );
    let token = e.store.refresh_family("jti-dora").await.unwrap().unwrap();
    assert_eq!(token.revoked, None);
}

async fn a_sign_up_whose_code_cannot_be_stored_leaves_no_user(e: Env) {
    let (pool, client) = verifying_pool(&e, "whole-sign-ups").await;
    let refused = e
        .dir
        .sign_up(sign_up(&client, "half", "half@example.com"))
        .await;
    assert!(
        refused.is_err(),
        "the code was stored after all: {refused:?}"
    );
    assert!(
        e.store
            .find_user(&pool.id, UserKey::Username("half"))
            .await
            .unwrap()
            .is_none(),
        "the sign-up left its user without a code"
    );
    assert_eq!(e.store.count_users(&pool.id).await.unwrap(), 0);
    // A pool that sends no code signs users up in one write, untouched by the trigger.
    let (quiet, quiet_client) = make_pool(&e, pool_input("no-codes")).await;
    e.dir
        .sign_up(sign_up(&quiet_client, "whole", "whole@example.com"))
        .await
        .unwrap();
    assert_eq!(e.store.count_users(&quiet.id).await.unwrap(), 1);
}

/// AdminAddUserToGroup racing DeleteGroup on PostgreSQL: the group is deleted (with its
/// memberships) by a transaction still open when the membership is written. The write waits for
/// it and then finds no group, instead of leaving a membership that a group made again under the
/// name would inherit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_membership_racing_its_groups_deletion_is_not_left_behind() {
    use sqlx::Connection;
    let Some((store, schema)) = postgres_store().await else {
        return;
    };
    let e = env(store);
    let (pool, client) = make_pool(&e, pool_input("race")).await;
    let hal = e
        .dir
        .sign_up(sign_up(&client, "hal", "hal@example.com"))
        .await
        .unwrap();
    e.dir
        .create_group(&e.grant, &pool.id, "Crew", GroupInput::default())
        .await
        .unwrap();
    let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    let mut deleting = conn.begin().await.unwrap();
    for sql in [
        format!("DELETE FROM {schema}.user_groups WHERE pool_id = $1 AND name = 'Crew'"),
        format!("DELETE FROM {schema}.memberships WHERE pool_id = $1 AND group_name = 'Crew'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&pool.id)
            .execute(&mut *deleting)
            .await
            .unwrap();
    }
    let adding = {
        let store = e.store.clone();
        let (pool_id, sub) = (pool.id.clone(), hal.sub.clone());
        tokio::spawn(async move { store.add_member(&pool_id, "Crew", &sub).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !adding.is_finished(),
        "the membership did not wait for the group's deletion"
    );
    deleting.commit().await.unwrap();
    assert!(!adding.await.unwrap().unwrap(), "added to a deleted group");
    e.dir
        .create_group(&e.grant, &pool.id, "Crew", GroupInput::default())
        .await
        .unwrap();
    let members = e
        .dir
        .users_in_group(&e.grant, &pool.id, "Crew", 10, None)
        .await
        .unwrap();
    assert!(
        members.items.is_empty(),
        "the new group inherited a membership"
    );
    drop_schema(&schema).await;
}

/// A sign-up code confirms the address it was sent to, not one an administrator put in its place
/// since (confirming marks the address verified): the old code is refused, and a code resent to
/// the new address confirms it.
async fn a_sign_up_code_does_not_verify_an_address_changed_since_it_was_sent(e: Env) {
    let (pool, client) = verifying_pool(&e, "bound-codes").await;
    e.dir
        .sign_up(sign_up(&client, "fay", "fay@example.com"))
        .await
        .unwrap();
    let code = latest_code(&e, &pool.id, "fay").await;
    e.dir
        .admin_update_user_attributes(
            &e.grant,
            &pool.id,
            "fay",
            vec![("email".into(), "fay@elsewhere.example".into())],
        )
        .await
        .unwrap();
    let r = e
        .dir
        .confirm_sign_up(&client.client_id, None, "fay", &code, false)
        .await;
    assert!(matches!(r, Err(Error::CodeMismatch)), "{r:?}");
    let user = e
        .dir
        .admin_get_user(&e.grant, &pool.id, "fay")
        .await
        .unwrap();
    assert_eq!(user.status, UserStatus::Unconfirmed);
    assert_ne!(user.attribute("email_verified"), Some("true"));
    let (user, _) = resend_and_confirm(&e, &pool, &client, "fay").await;
    assert_eq!(user.attribute("email"), Some("fay@elsewhere.example"));
    assert_eq!(user.attribute("email_verified"), Some("true"));
}

/// A user's other changes are written from a read of the whole user (a password change hashing
/// for tens of milliseconds, say); an AdminDisableUser landing meanwhile is not undone by them.
async fn a_change_from_an_older_read_does_not_undo_a_disable(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("stale-writes")).await;
    let out = e
        .dir
        .sign_up(sign_up(&client, "gil", "gil@example.com"))
        .await
        .unwrap();
    let mut read_before = e
        .store
        .find_user(&pool.id, UserKey::Sub(&out.sub))
        .await
        .unwrap()
        .unwrap();
    assert!(read_before.enabled);
    e.dir
        .admin_set_user_enabled(&e.grant, &pool.id, "gil", false)
        .await
        .unwrap();
    read_before
        .attributes
        .insert("given_name".into(), "Gil".into());
    // The disable advanced the revision: the change from the older read is stale, and made
    // again over a fresh read.
    assert!(!e.store.update_user(&read_before, false).await.unwrap());
    let fresh = e.store.find_user(&pool.id, UserKey::Sub(&out.sub)).await;
    let mut fresh = fresh.unwrap().unwrap();
    fresh.attributes.insert("given_name".into(), "Gil".into());
    assert!(e.store.update_user(&fresh, false).await.unwrap());
    let now = e
        .store
        .find_user(&pool.id, UserKey::Sub(&out.sub))
        .await
        .unwrap()
        .unwrap();
    assert!(!now.enabled, "the older read enabled the user again");
    assert_eq!(now.attribute("given_name"), Some("Gil"));
    e.dir
        .admin_set_user_enabled(&e.grant, &pool.id, "gil", true)
        .await
        .unwrap();
    let again = e
        .dir
        .admin_get_user(&e.grant, &pool.id, "gil")
        .await
        .unwrap();
    assert!(again.enabled);
}

/// Two changes made from one read of a user: the first is written, the second refused (the
/// row moved on), in each way a user is written; a change made over a fresh read is written.
async fn a_change_from_a_stale_read_is_not_written(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("stale-reads")).await;
    let out = e
        .dir
        .sign_up(sign_up(&client, "hal", "hal@example.com"))
        .await
        .unwrap();
    let read = || e.store.find_user(&pool.id, UserKey::Sub(&out.sub));
    let (mut first, mut second) = (
        read().await.unwrap().unwrap(),
        read().await.unwrap().unwrap(),
    );
    first.attributes.insert("given_name".into(), "Hal".into());
    second
        .attributes
        .insert("family_name".into(), "Lost".into());
    assert!(e.store.update_user(&first, false).await.unwrap());
    assert!(!e.store.update_user(&second, false).await.unwrap());
    let mut now = read().await.unwrap().unwrap();
    assert_eq!(now.attribute("given_name"), Some("Hal"));
    assert_eq!(now.attribute("family_name"), None);

    // With a code: neither the code nor the change is written.
    let (hash, code) = ([9u8; 32], CodePurpose::VerifyEmail);
    let new_code = NewCode {
        pool_id: &pool.id,
        sub: &out.sub,
        purpose: code,
        hash: &hash,
        expires: T0 + 60_000,
    };
    let limit = SendLimit {
        now: T0,
        window: 3_600_000,
        max_sends: 20,
    };
    second
        .attributes
        .insert("email".into(), "hal@elsewhere.example".into());
    let coded = e.store.update_user_with_code(&second, &new_code, limit);
    assert_eq!(coded.await.unwrap(), CodedUpdate::Stale);
    let attempt = |then_store| CodeAttempt {
        sub: &out.sub,
        purpose: code,
        candidate: &hash,
        now: T0,
        max_attempts: 5,
        then_store,
        take_aliases: false,
    };
    assert_eq!(
        e.store.redeem_code(&attempt(None)).await.unwrap(),
        Redeem::NoCode
    );
    assert_eq!(
        read().await.unwrap().unwrap().attribute("email"),
        Some("hal@example.com")
    );

    // A redemption storing a stale user: refused whole, the code still there to redeem.
    assert!(e.store.put_code(&new_code, limit).await.unwrap());
    let stale = attempt(Some(&second));
    assert_eq!(e.store.redeem_code(&stale).await.unwrap(), Redeem::Stale);
    now.attributes
        .insert("email_verified".into(), "true".into());
    let fresh = attempt(Some(&now));
    assert_eq!(e.store.redeem_code(&fresh).await.unwrap(), Redeem::Redeemed);
    let now = read().await.unwrap().unwrap();
    assert_eq!(now.attribute("email_verified"), Some("true"));
    assert_eq!(now.attribute("family_name"), None);

    // Taking another user's alias (ForceAliasCreation) is a write of that user too: a change
    // made from a read before it would otherwise give the alias back.
    let (alias_pool, alias_client) = make_pool(
        &e,
        PoolInput {
            alias_attributes: vec!["email".into()],
            auto_verified_attributes: vec!["email".into()],
            ..pool_input("stale-aliases")
        },
    )
    .await;
    for name in ["ivy", "jon"] {
        e.dir
            .sign_up(sign_up(&alias_client, name, "shared@example.com"))
            .await
            .unwrap();
    }
    resend_and_confirm(&e, &alias_pool, &alias_client, "ivy").await;
    let find = |name: &'static str| e.store.find_user(&alias_pool.id, UserKey::Username(name));
    let mut ivy = find("ivy").await.unwrap().unwrap();
    assert_eq!(ivy.aliases.email.as_deref(), Some("shared@example.com"));
    e.dir
        .resend_confirmation_code(&alias_client.client_id, None, "jon")
        .await
        .unwrap();
    let code = latest_code(&e, &alias_pool.id, "jon").await;
    e.dir
        .confirm_sign_up(&alias_client.client_id, None, "jon", &code, true)
        .await
        .unwrap();
    ivy.attributes.insert("given_name".into(), "Ivy".into());
    assert!(!e.store.update_user(&ivy, false).await.unwrap());
    let ivy = find("ivy").await.unwrap().unwrap();
    assert_eq!(ivy.aliases.email, None);
    let jon = find("jon").await.unwrap().unwrap();
    assert_eq!(jon.aliases.email.as_deref(), Some("shared@example.com"));
}

/// A password change hashes for a while between reading the user and writing them; attribute
/// and MFA changes landing meanwhile are kept, and the new password too (before revisions,
/// the password change wrote back the attributes it had read).
async fn concurrent_changes_to_one_user_all_land(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("concurrent-changes")).await;
    e.dir
        .sign_up(sign_up(&client, "kim", "kim@example.com"))
        .await
        .unwrap();
    let find = || e.store.find_user(&pool.id, UserKey::Username("kim"));
    for round in 0..5 {
        let before = find().await.unwrap().unwrap();
        let password = format!("Round{round}-Passw0rd!");
        let name = format!("Kim {round}");
        let (a, b, c) = tokio::join!(
            e.dir
                .admin_set_user_password(&e.grant, &pool.id, "kim", &password, true),
            e.dir.admin_update_user_attributes(
                &e.grant,
                &pool.id,
                "kim",
                vec![("given_name".into(), name.clone())],
            ),
            e.dir.admin_set_user_mfa_preference(
                &e.grant,
                &pool.id,
                "kim",
                MfaPreferences {
                    email: Some(MfaPreference {
                        enabled: Some(round % 2 == 0),
                        preferred: None,
                    }),
                    ..Default::default()
                },
            ),
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
        let after = find().await.unwrap().unwrap();
        assert_eq!(
            after.attribute("given_name"),
            Some(name.as_str()),
            "round {round}"
        );
        assert_ne!(after.password, before.password, "round {round}");
        assert_eq!(
            after.mfa.is_enabled(MfaMethod::Email),
            round % 2 == 0,
            "round {round}"
        );
        assert!(after.revision >= before.revision + 3, "round {round}");
    }
}

async fn a_deleted_users_sessions_are_revoked(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("deleted-sessions")).await;
    let outcome = e
        .dir
        .sign_up(sign_up(&client, "fox", "fox@example.com"))
        .await
        .unwrap();
    insert_family(&e, &client, &outcome.sub, "jti-fox").await;
    e.dir
        .admin_delete_user(&e.grant, &pool.id, "fox")
        .await
        .unwrap();
    let token = e.store.refresh_family("jti-fox").await.unwrap().unwrap();
    assert_eq!(token.revoked, Some(T0));
}

/// The writes that end a challenge use its session up in their own transaction: the first use
/// lands with its write, a second use of the session writes nothing, and a write refused as
/// stale leaves the session unused.
async fn a_session_is_used_by_the_write_it_comes_with_once(e: Env) {
    let (pool, client) = make_pool(&e, pool_input("spending")).await;
    let sub = e.dir.sign_up(sign_up(&client, "sam", "sam@example.com"));
    let sub = sub.await.unwrap().sub;
    let read = || async {
        let user = e.store.find_user(&pool.id, UserKey::Sub(&sub)).await;
        user.unwrap().unwrap()
    };
    let session = |id: &'static [u8]| SessionUse {
        id,
        expires: T0 + 60_000,
    };
    let named = |mut user: User, name: &str| {
        user.attributes.insert("name".into(), name.into());
        user
    };

    let store = &e.store;
    let spend = |user: User, id| async move {
        let done = store.update_user_spending(&user, session(id)).await;
        done.unwrap()
    };
    let first = spend(named(read().await, "one"), b"s-1").await;
    assert_eq!(first, SpendingUpdate::Written);
    let again = spend(named(read().await, "two"), b"s-1").await;
    assert_eq!(again, SpendingUpdate::SessionUsed);
    assert_eq!(
        read().await.attribute("name"),
        Some("one"),
        "a second use wrote"
    );

    let stale = named(read().await, "three");
    let fresh = named(read().await, "four");
    assert!(e.store.update_user(&fresh, false).await.unwrap());
    assert_eq!(spend(stale, b"s-2").await, SpendingUpdate::Stale);
    assert!(
        !e.store.session_used(b"s-2").await.unwrap(),
        "a stale write used its session"
    );
    assert_eq!(read().await.attribute("name"), Some("four"));

    let family = |jti| family(&client, &sub, jti);
    let grant = |family: RefreshToken| async move {
        let done = store.insert_refresh_token_spending(&family, session(b"s-3"));
        done.await.unwrap()
    };
    assert!(grant(family("j-1")).await);
    assert!(e.store.session_used(b"s-3").await.unwrap());
    assert!(!grant(family("j-2")).await);
    assert!(e.store.refresh_family("j-1").await.unwrap().is_some());
    assert!(
        e.store.refresh_family("j-2").await.unwrap().is_none(),
        "a second use stored"
    );

    // The code a SELECT_MFA_TYPE answer asks for.
    let code = NewCode {
        pool_id: &pool.id,
        sub: &sub,
        purpose: CodePurpose::SignInSms,
        hash: b"code-hash",
        expires: T0 + 60_000,
    };
    let open = SendLimit {
        now: T0,
        window: 60_000,
        max_sends: 5,
    };
    let code = &code;
    let ask = |limit, id| async move {
        let done = store.put_code_spending(code, limit, session(id)).await;
        done.unwrap()
    };
    assert_eq!(ask(open, b"s-4").await, SpendingCode::Stored);
    assert_eq!(ask(open, b"s-4").await, SpendingCode::SessionUsed);
    let shut = SendLimit {
        max_sends: 1,
        ..open
    };
    assert_eq!(ask(shut, b"s-5").await, SpendingCode::LimitReached);
    assert!(
        !e.store.session_used(b"s-5").await.unwrap(),
        "a refused code used its session"
    );
}

/// A session and the write that ends its challenge land together: here the database refuses
/// the write, and the session is left unused — the same answer can be given again. Before, a
/// NEW_PASSWORD_REQUIRED answer used its session up first, so a failure writing the user left
/// "Invalid session" to every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_write_fails_leaves_its_session_unused_on_either_engine() {
    let changed = "NEW.revision <> OLD.revision";
    with_refusing_rows("users", "UPDATE", changed, |e| async move {
        let (pool, client) = password_pool(&e, "whole-answers").await;
        let create = AdminCreateUser {
            pool_id: pool.id.clone(),
            username: "nell".into(),
            temporary_password: Some("Temp-passw0rd".into()),
            message_action: Some("SUPPRESS".into()),
            ..Default::default()
        };
        e.dir.admin_create_user(&e.grant, create).await.unwrap();
        let params = |pairs: &[(&str, &str)]| {
            let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            pairs.collect::<std::collections::BTreeMap<_, _>>()
        };
        let signed_in = e.dir.initiate_auth(AuthRequest {
            client_id: client.client_id.clone(),
            flow: "USER_PASSWORD_AUTH".into(),
            params: params(&[("USERNAME", "nell"), ("PASSWORD", "Temp-passw0rd")]),
        });
        let AuthOutcome::Challenge(challenge) = signed_in.await.unwrap() else {
            panic!("no NEW_PASSWORD_REQUIRED");
        };
        for attempt in 1..=2 {
            let answer = e.dir.respond_to_auth_challenge(ChallengeAnswer {
                client_id: client.client_id.clone(),
                challenge: "NEW_PASSWORD_REQUIRED".into(),
                session: Some(challenge.session.clone()),
                responses: params(&[("USERNAME", "nell"), ("NEW_PASSWORD", "New-passw0rd")]),
            });
            // The database's refusal each time; "Invalid session" would mean the first
            // answer used the session up without its write.
            match answer.await {
                Err(Error::Internal(_)) => {}
                other => panic!("answer {attempt}: {other:?}"),
            }
        }
        let user = e.store.find_user(&pool.id, UserKey::Username("nell")).await;
        let user = user.unwrap().unwrap();
        assert_eq!(user.status, UserStatus::ForceChangePassword);
    })
    .await;
}

/// The same for the refresh token that ends an MFA answer and the code a SELECT_MFA_TYPE answer
/// asks for: refused by the database, the session stays unused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_cannot_be_stored_leave_their_session_unused_on_either_engine() {
    for table in ["refresh_tokens", "codes"] {
        with_refusing(table, "INSERT", |e| async move {
            let (pool, client) = make_pool(&e, pool_input("whole-grants")).await;
            let session = SessionUse {
                id: b"s-mfa",
                expires: T0 + 60_000,
            };
            let refused = if table == "codes" {
                let code = NewCode {
                    pool_id: &pool.id,
                    sub: "sub-mfa",
                    purpose: CodePurpose::SignInEmail,
                    hash: b"code-hash",
                    expires: T0 + 60_000,
                };
                let limit = SendLimit {
                    now: T0,
                    window: 60_000,
                    max_sends: 5,
                };
                let asked = e.store.put_code_spending(&code, limit, session).await;
                asked.map(|_| ())
            } else {
                let family = family(&client, "sub-mfa", "j-mfa");
                let granted = e
                    .store
                    .insert_refresh_token_spending(&family, session)
                    .await;
                granted.map(|_| ())
            };
            assert!(refused.is_err(), "{table}: stored after all");
            let used = e.store.session_used(b"s-mfa").await.unwrap();
            assert!(!used, "{table}: the session used, nothing stored");
        })
        .await;
    }
}
