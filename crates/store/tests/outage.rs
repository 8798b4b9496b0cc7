//! Security checklist R4: when PostgreSQL stops answering, store calls fail with a retryable
//! error within about the store's deadline (`store::DEADLINE`, 1 s) instead of hanging, and work
//! again soon after it answers. The outage is a TCP relay between the store and the real database
//! that stops passing bytes: a link gone silent, with no reset to notice — the case where a
//! client would otherwise wait for the operating system's TCP timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use userpool::store::{StoreError, UserKey};

/// A TCP relay in front of the database.
struct Relay {
    addr: String,
    /// While true, passes no bytes and connects nobody new.
    silent: Arc<AtomicBool>,
    /// Bumped to cut every connection made before for good (they stay open and silent, as
    /// after a failover that drops their packets); connections made after pass bytes.
    era: Arc<AtomicU64>,
}

/// Passes bytes between its clients and `upstream`, as [`Relay`]'s switches allow.
async fn relay(upstream: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = Arc::new(AtomicBool::new(false));
    let era = Arc::new(AtomicU64::new(0));
    let (flag, eras) = (silent.clone(), era.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, silent, era) = (upstream.clone(), flag.clone(), eras.clone());
            tokio::spawn(async move {
                wait_while(&silent).await;
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let born = era.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let link = Link {
                    silent: silent.clone(),
                    era: era.clone(),
                    born,
                };
                tokio::spawn(pump(cr, sw, link));
                tokio::spawn(pump(sr, cw, Link { silent, era, born }));
            });
        }
    });
    Relay { addr, silent, era }
}

/// One relayed connection's view of the switches.
struct Link {
    silent: Arc<AtomicBool>,
    era: Arc<AtomicU64>,
    born: u64,
}

impl Link {
    /// Waits while the relay is silent, and for ever once this connection was cut.
    async fn open(&self) {
        while self.silent.load(Ordering::SeqCst) || self.era.load(Ordering::SeqCst) != self.born {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn wait_while(silent: &AtomicBool) {
    while silent.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        link.open().await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        link.open().await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// `url` with its host and port replaced by `addr`, and the host and port it had.
fn through(url: &str, addr: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match auth.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h.to_string()),
        None => (String::new(), auth.to_string()),
    };
    let host = if host.contains(':') {
        host
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{user}{addr}/{tail}"), host)
}

/// Tries a read and a transaction every 100 ms until both succeed; how long that took. Fails
/// the test when they still fail after `bound`.
async fn both_work_within<R, RF, RT, T, TF, TT>(
    read: R,
    transaction: T,
    bound: Duration,
) -> Duration
where
    R: Fn() -> RF,
    RF: std::future::Future<Output = Result<RT, StoreError>>,
    T: Fn() -> TF,
    TF: std::future::Future<Output = Result<TT, StoreError>>,
{
    let start = Instant::now();
    loop {
        if read().await.is_ok() && transaction().await.is_ok() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "the store still fails {bound:?} on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The test database's URL, or `None` (after saying so) when it is unreachable outside CI.
async fn reachable_postgres() -> Option<String> {
    let base = std::env::var("COGNATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if sqlx::PgPool::connect(&base).await.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is required in CI"
        );
        eprintln!("SKIPPED: cannot connect to {base}");
        return None;
    }
    Some(base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_calls_within_the_deadline_and_they_recover_after() {
    let Some(base) = reachable_postgres().await else {
        return;
    };
    let Relay { addr, silent, .. } = relay(through(&base, "").1).await;
    let (url, _) = through(&base, &addr);
    let schema = format!("cognate_outage_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = store::connect(&format!("{url}{sep}schema={schema}"))
        .await
        .unwrap();
    let read = || store.find_user("pool", UserKey::Sub("someone"));
    let transaction = || store.delete_user("pool", "someone", 0);
    assert!(read().await.unwrap().is_none());
    assert!(!transaction().await.unwrap());

    silent.store(true, Ordering::SeqCst);
    // A statement, a transaction, and twenty statements at once (more than the store has
    // connections: the wait for one counts against the deadline too).
    let started = Instant::now();
    let calls = async {
        let at_once = futures::future::join_all((0..20).map(|_| read())).await;
        (at_once, read().await, transaction().await)
    };
    let (at_once, alone, tx) = tokio::time::timeout(Duration::from_secs(20), calls)
        .await
        .expect("the calls hung while the database was silent");
    let took = started.elapsed();
    for outcome in at_once.into_iter().chain([alone.map(|_| None)]) {
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }
    assert!(matches!(tx, Err(StoreError::Unavailable(_))), "{tx:?}");
    // Three calls one after another, each cut at the deadline: not a TCP timeout (minutes).
    let bound = 3 * store::DEADLINE + Duration::from_millis(1500);
    eprintln!(
        "three failed calls took {took:?} (deadline {:?})",
        store::DEADLINE
    );
    assert!(took < bound, "three calls took {took:?}");

    silent.store(false, Ordering::SeqCst);
    let back = both_work_within(read, transaction, Duration::from_secs(5)).await;
    eprintln!("working again {back:?} after the database answered");

    let pg = sqlx::PgPool::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pg)
        .await
        .unwrap();
}

/// A failover that leaves the old connections silent for good (their packets dropped, no reset
/// to notice): transactions cut short on them must not keep the store's connections (sqlx's
/// pool tests a connection given back, and that test would wait for the operating system's TCP
/// timeout), so calls work again over new connections within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_for_good_are_given_up_and_calls_go_on_over_new_ones() {
    let Some(base) = reachable_postgres().await else {
        return;
    };
    let relay = relay(through(&base, "").1).await;
    let (url, _) = through(&base, &relay.addr);
    let schema = format!("cognate_cut_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    // Named, so that the cut connections' backends can be ended at the close.
    let store = store::connect(&format!(
        "{url}{sep}schema={schema}&application_name={schema}"
    ))
    .await
    .unwrap();
    let read = || store.find_user("pool", UserKey::Sub("someone"));
    let transaction = || store.delete_user("pool", "someone", 0);
    assert!(!transaction().await.unwrap());

    // More transactions than the store has connections for them, each inside its transaction
    // (waiting on a lock another connection holds) when every link is cut.
    let pg = sqlx::PgPool::connect(&base).await.unwrap();
    let mut blocker = pg.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {schema}.users IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *blocker)
    .await
    .unwrap();
    let cut = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay.era.fetch_add(1, Ordering::SeqCst);
    };
    let (outcomes, ()) = tokio::join!(
        futures::future::join_all((0..24).map(|_| transaction())),
        cut
    );
    for outcome in outcomes {
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }
    blocker.rollback().await.unwrap();

    // Still failing 10 s on would mean the cut connections are held.
    let after = both_work_within(read, transaction, Duration::from_secs(10)).await;
    eprintln!("working again {after:?} after the links were cut");
    // The cut connections' transactions are still open on the database (the relay keeps their
    // sockets): they are ended before the schema they hold locks in is dropped.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&schema)
    .execute(&pg)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&pg)
        .await
        .unwrap();
}
