//! Connections for single statements outside transactions, leased for one statement at a time
//! and taken back without a round trip. sqlx's pool tests every connection it takes back (a
//! `ping`: a round trip to SQLite's worker thread, or to PostgreSQL, from a task spawned for
//! it), which doubled the thread hand-offs of each statement; a password sign-in makes three.
//! What that test is for — a statement whose future was dropped half way — is handled here by
//! closing such a connection instead of taking it back; a connection idle for a while (which a
//! restarted database may have closed) is tested before its next statement, as sqlx's pool
//! tests one before lending it. Transactions still use the pool.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sqlx::{Connection as _, Database, Either, Error, Execute, Executor, Pool, SqlStr};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a connection may sit idle and still be lent without a test first.
const FRESH: Duration = Duration::from_secs(1);

/// How long a connection is kept at most. SQLite reads the planner's statistics when a
/// connection opens, and the server refreshes them every ten minutes (`Store::maintain`), so
/// connections are renewed at that pace (sqlx's pool renews its own after 30 minutes).
const MAX_AGE: Duration = Duration::from_secs(600);

/// Up to `max` connections, taken from `pool` (detached from it) when none is idle.
pub(crate) struct Leased<DB: Database> {
    pool: Pool<DB>,
    idle: Mutex<Vec<Idle<DB>>>,
    room: Semaphore,
    max_age: Duration,
    /// How long a statement may take, waiting for a connection included, before it fails (and
    /// its connection is closed): a database that stopped answering costs a caller this long,
    /// not a TCP timeout (security checklist R4). None: as long as it takes.
    deadline: Option<Duration>,
}

/// A connection waiting for its next statement.
struct Idle<DB: Database> {
    conn: DB::Connection,
    opened: Instant,
    returned: Instant,
}

impl<DB: Database> std::fmt::Debug for Leased<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leased")
            .field("available", &self.room.available_permits())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> Leased<DB> {
    pub(crate) fn new(pool: Pool<DB>, max: usize) -> Self {
        Self {
            pool,
            idle: Mutex::new(Vec::with_capacity(max)),
            room: Semaphore::new(max),
            max_age: MAX_AGE,
            deadline: None,
        }
    }

    /// Statements fail once they took `deadline` (see the field).
    pub(crate) fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    #[cfg(test)]
    fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    async fn lease(&self) -> Result<Lease<'_, DB>, Error> {
        let permit = self.room.acquire().await.map_err(|_| Error::PoolClosed)?;
        let (conn, opened) = loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match idle {
                Some(i) if i.returned.elapsed() < FRESH => break (i.conn, i.opened),
                // A connection that fails its test is dropped, and the next one tried.
                Some(mut i) => {
                    if i.conn.ping().await.is_ok() {
                        break (i.conn, i.opened);
                    }
                }
                None => break (self.pool.acquire().await?.detach(), Instant::now()),
            }
        };
        Ok(Lease {
            conn: Some(conn),
            opened,
            home: self,
            _permit: permit,
            finished: false,
        })
    }
}

/// The error of a statement the database did not answer in time.
fn past_deadline(deadline: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the database did not answer within {} ms",
            deadline.as_millis()
        ),
    )
}

/// One connection out for one statement. Back to the idle list only once `finished`.
struct Lease<'a, DB: Database> {
    conn: Option<DB::Connection>,
    opened: Instant,
    home: &'a Leased<DB>,
    _permit: SemaphorePermit<'a>,
    finished: bool,
}

impl<DB: Database> Lease<'_, DB> {
    fn conn(&mut self) -> Result<&mut DB::Connection, Error> {
        self.conn.as_mut().ok_or(Error::PoolClosed)
    }
}

impl<DB: Database> Drop for Lease<'_, DB> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // A statement cut short or failed may have left the connection mid-way: it is dropped
        // (closed) rather than handed to the next statement.
        if !self.finished {
            return;
        }
        // One past its age is closed politely (PostgreSQL would log an unexpected end of
        // file otherwise), so that its successor reads fresh statistics.
        if self.opened.elapsed() >= self.home.max_age {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = conn.close().await;
                });
            }
            return;
        }
        if let Ok(mut idle) = self.home.idle.lock() {
            idle.push(Idle {
                conn,
                opened: self.opened,
                returned: Instant::now(),
            });
        }
    }
}

/// Whether a connection is fit for the next statement after this outcome: the database's own
/// refusals (a constraint, a syntax error) leave it so; lost connections and protocol errors
/// do not.
fn reusable<T>(outcome: &Result<T, Error>) -> bool {
    matches!(outcome, Ok(_) | Err(Error::Database(_)))
}

/// The leased connections, with a deadline for each statement: [`Leased`]'s own, or, for
/// writes a request does not wait for or work that may rightly take long, [`PATIENT`].
#[derive(Debug)]
pub(crate) struct Held<'a, DB: Database> {
    leased: &'a Leased<DB>,
    deadline: Option<Duration>,
}

/// The deadline of [`Leased::patiently`]: long enough for a pool's cascading delete or a
/// failure count written after its answer, short of hanging for a TCP timeout.
pub(crate) const PATIENT: Duration = Duration::from_secs(30);

impl<DB: Database> Leased<DB> {
    /// These connections with [`PATIENT`] in place of the deadline (none stays none).
    pub(crate) fn patiently(&self) -> Held<'_, DB> {
        Held {
            leased: self,
            deadline: self.deadline.map(|_| PATIENT),
        }
    }

    fn held(&self) -> Held<'_, DB> {
        Held {
            leased: self,
            deadline: self.deadline,
        }
    }
}

impl<'p, DB: Database> Executor<'p> for &'p Leased<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.held().fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.held().fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        self.held().prepare_with(sql, parameters)
    }
}

impl<'p, DB: Database> Executor<'p> for Held<'p, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let leased = self.leased;
        // Read whole before the connection goes back; every caller collects it all anyway.
        futures_util::stream::once(within(
            self.deadline,
            async move {
                let mut lease = leased.lease().await?;
                let all: Result<Vec<_>, Error> =
                    lease.conn()?.fetch_many(query).try_collect().await;
                lease.finished = reusable(&all);
                Ok::<_, Error>(futures_util::stream::iter(all?.into_iter().map(Ok)))
            },
            |e| e,
        ))
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let leased = self.leased;
        Box::pin(within(
            self.deadline,
            async move {
                let mut lease = leased.lease().await?;
                let row = lease.conn()?.fetch_optional(query).await;
                lease.finished = reusable(&row);
                row
            },
            |e| e,
        ))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        let leased = self.leased;
        Box::pin(within(
            self.deadline,
            async move {
                let mut lease = leased.lease().await?;
                let statement = lease.conn()?.prepare_with(sql, parameters).await;
                lease.finished = reusable(&statement);
                statement
            },
            |e| e,
        ))
    }
}

/// `work` (a lease and its statement, or a transaction), cut short at `deadline` (none: as long
/// as it takes) and failed then with what `timed_out` makes of the error. Cut short, a lease is
/// dropped unfinished, which closes its connection; a transaction rolls back.
pub(crate) async fn within<T, E>(
    deadline: Option<Duration>,
    work: impl Future<Output = Result<T, E>>,
    timed_out: impl FnOnce(Error) -> E,
) -> Result<T, E> {
    let Some(deadline) = deadline else {
        return work.await;
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(done) => done,
        Err(_) => Err(timed_out(Error::Io(past_deadline(deadline)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;

    async fn leased(dir: &tempfile::TempDir) -> Leased<sqlx::Sqlite> {
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        Leased::new(pool, 1)
    }

    /// A store of one leased connection, marked with a TEMP table.
    async fn marked(dir: &tempfile::TempDir) -> Leased<sqlx::Sqlite> {
        let l = leased(dir).await;
        sqlx::query("CREATE TEMP TABLE marker (x)")
            .execute(&l)
            .await
            .unwrap();
        l
    }

    /// A TEMP table lives on one connection only: seeing it means the same connection.
    async fn same_connection(l: &Leased<sqlx::Sqlite>) -> bool {
        sqlx::query("SELECT x FROM temp.marker")
            .fetch_optional(l)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_finished_statement_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let l = marked(&dir).await;
        assert!(same_connection(&l).await);
        // The database's own refusal leaves the connection fit for the next statement.
        sqlx::query("INSERT INTO marker (x) VALUES (1)")
            .execute(&l)
            .await
            .unwrap();
        assert!(
            sqlx::query("SELECT * FROM no_such_table")
                .fetch_all(&l)
                .await
                .is_err()
        );
        assert!(same_connection(&l).await);
        let rows = sqlx::query("SELECT x FROM temp.marker")
            .fetch_all(&l)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[tokio::test]
    async fn a_statement_cut_short_closes_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let l = marked(&dir).await;
        // A statement that runs for seconds, abandoned after a few milliseconds.
        let long = sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000000) \
             SELECT count(*) FROM n",
        )
        .fetch_optional(&l);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), long)
                .await
                .is_err()
        );
        // The next statement gets another connection at once (not the busy one, whose TEMP
        // table it would see).
        let next = tokio::time::timeout(Duration::from_secs(2), same_connection(&l)).await;
        assert_eq!(next, Ok(false));
    }

    #[tokio::test]
    async fn a_connection_past_its_age_is_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let l = marked(&dir).await.with_max_age(Duration::from_millis(300));
        assert!(same_connection(&l).await, "a young connection is kept");
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Its first statement past the age still runs on it; then it is closed, not kept.
        assert!(same_connection(&l).await);
        assert!(!same_connection(&l).await, "an old connection is renewed");
    }

    #[tokio::test]
    async fn a_connection_the_database_closed_is_replaced_after_its_idle_test() {
        let url = std::env::var("COGNATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let pool = match sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
        {
            Ok(p) => p,
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL is required in CI: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot connect to {url}: {e}");
                return;
            }
        };
        let l = Leased::new(pool.clone(), 1);
        let backend = || sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()").fetch_one(&l);
        let first = backend().await.unwrap();
        assert_eq!(
            backend().await.unwrap(),
            first,
            "a fresh connection is lent again"
        );
        // The database ends that session, as a restart would, while it sits idle.
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(first)
            .execute(&pool)
            .await
            .unwrap();
        tokio::time::sleep(FRESH + Duration::from_millis(200)).await;
        let next = backend()
            .await
            .expect("the closed connection is tested and replaced, not used");
        assert_ne!(next, first);
    }
}
