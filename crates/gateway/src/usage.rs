//! API keys and usage plans (spec 08 §8.6): which callers may use an API-key route, how fast
//! (a token bucket per key and plan, on each node) and how much (a quota per day, week or
//! month, counted in the database that every node shares).
//!
//! Keys are stored as SHA-256 digests of their values; each node holds the keys and plans in
//! memory and reloads them when the store's version moves ([`Usage::refresh`], every second).
//! Quota counts are batched: a node admits a request when the total it last read plus what it
//! admitted since is under the limit — decided in memory — and writes its count in the
//! background once half a batch is pending (and every second). A node never holds more than
//! `batch` requests the database has not seen (past that a request waits for the write), so
//! with N nodes a period's total exceeds the limit by at most (N − 1) × batch; one node alone
//! is exact. Requests a node admitted and had not written yet are lost if it dies
//! (at most `batch`, or a second's worth): a crash can only undercount.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::Refusal;
use crate::api::{Api, ApiKind, DefinitionError};
use crate::definition::{ApiKeyDef, UsagePlanDef};

/// Failures of keys, plans and their counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the usage store is unavailable: {0}")]
    Unavailable(String),
}

pub type UsageResult<T> = Result<T, UsageError>;

/// An API key as stored: never its value, only the value's digest.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Ten lowercase letters and digits, as API Gateway's key ids; what logs show.
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the value.
    pub digest: String,
    pub enabled: bool,
    pub plans: Vec<String>,
    /// Declared in the configuration file (applying a file without it deletes it).
    pub from_config: bool,
    pub created_ms: i64,
}

use throttle::Bucket;
pub use throttle::Throttle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    #[serde(rename = "DAY")]
    Day,
    #[serde(rename = "WEEK")]
    Week,
    #[serde(rename = "MONTH")]
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
    #[serde(default)]
    pub offset: u64,
}

/// The limits of a plan, as stored (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLimits {
    /// `api/stage` pairs.
    pub stages: Vec<String>,
    pub throttle: Option<Throttle>,
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlan {
    pub name: String,
    pub limits: PlanLimits,
    pub from_config: bool,
    pub created_ms: i64,
}

/// Where keys, plans and quota counts live (the store crate, on both engines).
#[async_trait::async_trait]
pub trait UsageStore: Send + Sync {
    /// Moves on every change of keys or plans.
    async fn usage_version(&self) -> UsageResult<i64>;
    async fn api_keys(&self) -> UsageResult<Vec<ApiKey>>;
    async fn usage_plans(&self) -> UsageResult<Vec<UsagePlan>>;
    /// A new key; `Conflict` when its name or value is taken.
    async fn insert_api_key(&self, key: &ApiKey) -> UsageResult<()>;
    /// False when no key has that name.
    async fn set_api_key(&self, name: &str, enabled: bool, plans: &[String]) -> UsageResult<bool>;
    async fn delete_api_key(&self, name: &str) -> UsageResult<bool>;
    /// Creates or replaces a plan by name (keeping its creation time).
    async fn put_usage_plan(&self, plan: &UsagePlan) -> UsageResult<()>;
    async fn delete_usage_plan(&self, name: &str) -> UsageResult<bool>;
    /// In one transaction: the file's plans and keys created or updated by name, and those an
    /// earlier file declared that this one does not, deleted. A name or value held by an entry
    /// made outside the file is a `Conflict`.
    async fn apply_config(&self, plans: &[UsagePlan], keys: &[ApiKey]) -> UsageResult<()>;
    /// Adds `n` to a key's count under a plan for the period starting at `period_start_ms`
    /// and returns the new total (`n` = 0 reads it).
    async fn add_usage(
        &self,
        key_id: &str,
        plan: &str,
        period_start_ms: i64,
        n: u64,
    ) -> UsageResult<u64>;
}

/// Hex SHA-256 of a key value.
pub fn digest(value: &str) -> String {
    raw_digest(value)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const MIN_VALUE_LEN: usize = 20;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const VALUE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_text(alphabet: &[u8], len: usize) -> UsageResult<String> {
    let mut b = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| UsageError::Unavailable("no randomness".into()))?;
    // 256 is not a multiple of the alphabet's size; the bias is below 2 % per character for
    // ids and keys alike, and values carry 40 characters (over 230 bits).
    Ok(b.iter()
        .map(|x| alphabet[*x as usize % alphabet.len()] as char)
        .collect())
}

/// A new key id.
pub fn new_key_id() -> UsageResult<String> {
    random_text(ID_ALPHABET, 10)
}

/// A new key value: 40 letters and digits, as API Gateway generates them.
pub fn new_key_value() -> UsageResult<String> {
    random_text(VALUE_ALPHABET, 40)
}

/// Checks a caller-chosen key value.
pub fn check_key_value(value: &str) -> Result<(), String> {
    if value.chars().count() < MIN_VALUE_LEN {
        return Err(format!(
            "an API key value needs at least {MIN_VALUE_LEN} characters"
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an API key value is printable ASCII without spaces".into());
    }
    Ok(())
}

/// Checks a plan's limits (from the file or the CLI).
pub fn check_limits(limits: &PlanLimits) -> Result<(), String> {
    for s in &limits.stages {
        let ok = s
            .split_once('/')
            .is_some_and(|(a, st)| !a.is_empty() && !st.is_empty() && !st.contains('/'));
        if !ok {
            return Err(format!(
                "{s:?} is not an API stage (api/stage, like pets/prod)"
            ));
        }
    }
    if let Some(t) = &limits.throttle {
        if !(t.rate.is_finite() && t.rate > 0.0) {
            return Err("a throttle rate is a number of requests per second above 0".into());
        }
        if t.burst == 0 {
            return Err("a throttle burst is at least 1".into());
        }
    }
    if let Some(q) = &limits.quota
        && q.offset >= q.limit
        && q.limit > 0
    {
        return Err("a quota offset is less than its limit".into());
    }
    Ok(())
}

pub fn parse_period(s: &str) -> Option<Period> {
    match s {
        "DAY" => Some(Period::Day),
        "WEEK" => Some(Period::Week),
        "MONTH" => Some(Period::Month),
        _ => None,
    }
}

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
pub fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Period {
    /// The start (UTC, ms) of the period holding `now_ms`: midnight, the Sunday before, the
    /// first of the month.
    pub fn start(self, now_ms: i64) -> i64 {
        let days = now_ms.div_euclid(DAY_MS);
        let first = match self {
            Period::Day => days,
            // 1970-01-01 was a Thursday: (days + 4) mod 7 is 0 on Sundays.
            Period::Week => days - (days + 4).rem_euclid(7),
            Period::Month => days - (civil(days).2 - 1),
        };
        first * DAY_MS
    }
}

impl Quota {
    /// The limit of the period starting at `period_start`: less the offset in the plan's first.
    fn limit_in(&self, period_start: i64, plan_created_ms: i64) -> u64 {
        if self.period.start(plan_created_ms) == period_start {
            self.limit.saturating_sub(self.offset)
        } else {
            self.limit
        }
    }
}

/// The file's `usage_plans` and `api_keys`, checked against the APIs applied with them.
pub fn compile(
    plans: &[UsagePlanDef],
    keys: &[ApiKeyDef],
    apis: &[Arc<Api>],
    now_ms: i64,
) -> Result<(Vec<UsagePlan>, Vec<ApiKey>), DefinitionError> {
    let err = |line: u64, message: String| DefinitionError { line, message };
    let mut out_plans: Vec<UsagePlan> = Vec::new();
    for p in plans {
        let line = p.name.referenced.line();
        if p.name.value.trim().is_empty() || out_plans.iter().any(|x| x.name == p.name.value) {
            return Err(err(
                line,
                format!("the usage plan name {:?} is empty or taken", p.name.value),
            ));
        }
        let mut stages = Vec::new();
        for s in &p.stages {
            let known = s.value.split_once('/').is_some_and(|(a, st)| {
                apis.iter().any(|x| {
                    x.name == a && x.kind == ApiKind::Rest && x.stages.iter().any(|y| y == st)
                })
            });
            if !known {
                return Err(err(
                    s.referenced.line(),
                    format!(
                        "{:?} names no stage of a rest API here (api/stage)",
                        s.value
                    ),
                ));
            }
            stages.push(s.value.clone());
        }
        let quota = match &p.quota {
            None => None,
            Some(q) => Some(Quota {
                limit: q.limit.value,
                period: parse_period(&q.period.value).ok_or_else(|| {
                    err(
                        q.period.referenced.line(),
                        format!(
                            "{:?} is not a quota period (DAY, WEEK or MONTH)",
                            q.period.value
                        ),
                    )
                })?,
                offset: q.offset.unwrap_or(0),
            }),
        };
        let limits = PlanLimits {
            stages,
            throttle: p.throttle.as_ref().map(|t| Throttle {
                rate: t.rate.value,
                burst: t.burst.value,
            }),
            quota,
        };
        let at = p
            .throttle
            .as_ref()
            .map(|t| t.rate.referenced.line())
            .unwrap_or(line);
        check_limits(&limits).map_err(|m| err(at, m))?;
        out_plans.push(UsagePlan {
            name: p.name.value.clone(),
            limits,
            from_config: true,
            created_ms: now_ms,
        });
    }
    let mut out_keys: Vec<ApiKey> = Vec::new();
    for k in keys {
        let line = k.name.referenced.line();
        if k.name.value.trim().is_empty() || out_keys.iter().any(|x| x.name == k.name.value) {
            return Err(err(
                line,
                format!("the API key name {:?} is empty or taken", k.name.value),
            ));
        }
        check_key_value(&k.value.value).map_err(|m| err(k.value.referenced.line(), m))?;
        let d = digest(&k.value.value);
        if out_keys.iter().any(|x| x.digest == d) {
            return Err(err(
                k.value.referenced.line(),
                "two API keys have the same value".into(),
            ));
        }
        for p in &k.usage_plans {
            if !out_plans.iter().any(|x| x.name == p.value) {
                return Err(err(
                    p.referenced.line(),
                    format!("no usage plan {:?} in this file", p.value),
                ));
            }
        }
        out_keys.push(ApiKey {
            id: new_key_id().map_err(|e| err(line, e.to_string()))?,
            name: k.name.value.clone(),
            digest: d,
            enabled: k.enabled.unwrap_or(true),
            plans: k.usage_plans.iter().map(|p| p.value.clone()).collect(),
            from_config: true,
            created_ms: now_ms,
        });
    }
    Ok((out_plans, out_keys))
}

/// One key's count under one plan, on this node.
#[derive(Debug, Default)]
struct Counter {
    period: i64,
    /// The total the database gave at the last write (None: not read in this period yet).
    seen: Option<u64>,
    /// Admitted here and being written now.
    in_flight: u64,
    /// Admitted here and not written yet.
    pending: u64,
    /// A background write of `pending` is on its way.
    scheduled: bool,
}

/// What the counter says of one more request without waiting for the database.
enum Step {
    Admit {
        write: bool,
    },
    Refuse {
        write: bool,
    },
    /// The period is not read yet, or `batch` requests wait to be written: the caller must
    /// write or read first.
    Wait,
}

impl Counter {
    fn step(&mut self, period: i64, limit: u64, batch: u64) -> Step {
        // A request timed just before a period began, decided after it began, counts in the
        // new one (the counter never goes back).
        let Some(seen) = self.seen.filter(|_| self.period >= period) else {
            return Step::Wait;
        };
        let unwritten = self.in_flight + self.pending;
        let idle = self.in_flight == 0 && !self.scheduled;
        if seen + unwritten >= limit {
            // At the limit by this node's view (the database can only hold more): refuse, and
            // write what is pending so the other nodes learn it.
            let write = idle && self.pending > 0;
            self.scheduled |= write;
            return Step::Refuse { write };
        }
        if unwritten >= batch {
            return Step::Wait;
        }
        self.pending += 1;
        // Writes start at half a batch, so that the next half is admitted while one is under way.
        let write = idle && self.pending >= batch.div_ceil(2);
        self.scheduled |= write;
        Step::Admit { write }
    }
}

/// One key's use of one plan on this node: its token bucket and its quota count.
struct PlanUse {
    /// (key id, plan name): where its count is written.
    key: PlanKey,
    bucket: Mutex<Option<Bucket>>,
    count: Mutex<Counter>,
    /// Held while this node writes or reads the count (one database call at a time).
    writing: tokio::sync::Mutex<()>,
}

impl PlanUse {
    fn new(key: PlanKey) -> Self {
        Self {
            key,
            bucket: Mutex::default(),
            count: Mutex::default(),
            writing: tokio::sync::Mutex::default(),
        }
    }

    fn take_token(&self, t: &Throttle, now: Instant) -> Option<bool> {
        let mut b = self.bucket.lock().ok()?;
        let bucket = b.get_or_insert_with(|| Bucket::full(t, now));
        Some(bucket.take(t, now))
    }

    fn step(&self, period: i64, limit: u64, batch: u64) -> UsageResult<Step> {
        let mut c = self.count.lock().map_err(|_| poisoned())?;
        Ok(c.step(period, limit, batch))
    }

    /// Writes what is pending (the caller holds `writing`).
    async fn write_pending(&self, store: &dyn UsageStore) -> UsageResult<()> {
        let (period, n) = {
            let mut c = self.count.lock().map_err(|_| poisoned())?;
            c.scheduled = false;
            if c.pending == 0 || c.seen.is_none() {
                return Ok(());
            }
            let n = std::mem::take(&mut c.pending);
            c.in_flight += n;
            (c.period, n)
        };
        let written = store.add_usage(&self.key.0, &self.key.1, period, n).await;
        let mut c = self.count.lock().map_err(|_| poisoned())?;
        c.in_flight -= n;
        match written {
            Ok(total) => {
                if c.period == period {
                    c.seen = Some(total);
                }
                Ok(())
            }
            Err(e) => {
                // Kept for the next write (of this period only: a later one starts from zero).
                if c.period == period {
                    c.pending += n;
                }
                Err(e)
            }
        }
    }

    /// Makes `period` the counted one: the last period's pending requests written to it, then
    /// this period's total read (the caller holds `writing`).
    async fn enter(&self, store: &dyn UsageStore, period: i64) -> UsageResult<()> {
        self.write_pending(store).await?;
        let current = {
            let c = self.count.lock().map_err(|_| poisoned())?;
            c.period >= period && c.seen.is_some()
        };
        if !current {
            let total = store.add_usage(&self.key.0, &self.key.1, period, 0).await?;
            let mut c = self.count.lock().map_err(|_| poisoned())?;
            if c.pending > 0 {
                // More of the last period came in meanwhile: the caller's next round writes it.
                return Ok(());
            }
            c.period = period;
            c.seen = Some(total);
        }
        Ok(())
    }

    /// Waits for a write under way, then writes what is pending; a failure is logged and the
    /// count kept for the next write.
    async fn write_now(&self, store: &dyn UsageStore) {
        let _writing = self.writing.lock().await;
        if let Err(e) = self.write_pending(store).await {
            tracing::warn!(api_key = %self.key.0, plan = %self.key.1, error = %e, "quota count not written; retried later");
        }
    }
}

fn poisoned() -> UsageError {
    UsageError::Unavailable("a usage counter was poisoned".into())
}

/// What a key may reach: per `api`/`stage`, the plan that applies (the first by name) and the
/// key's use of it.
struct KeyEntry {
    key: ApiKey,
    id: Arc<str>,
    stages: Vec<(String, String, Arc<UsagePlan>, Arc<PlanUse>)>,
}

#[derive(Default)]
struct View {
    version: Option<i64>,
    /// By the raw SHA-256 of the value.
    keys: HashMap<[u8; 32], KeyEntry>,
}

type PlanKey = (String, String);

/// The keys, plans, buckets and counters of this node.
pub struct Usage {
    store: Arc<dyn UsageStore>,
    view: RwLock<Arc<View>>,
    /// Buckets and counts by (key id, plan name); they outlive reloads of the view.
    uses: Mutex<HashMap<PlanKey, Arc<PlanUse>>>,
    batch: u64,
}

/// How many admitted requests a node may hold before it writes them [default where several
/// nodes may share the database].
pub const DEFAULT_QUOTA_BATCH: u64 = 100;
/// The same on a database one node holds (SQLite): a single node is exact whatever its batch,
/// so only a crash's loss grows with it (at most a second's worth: counts are also written
/// every second), while writing ten times less often.
pub const ONE_NODE_QUOTA_BATCH: u64 = 1000;

fn raw_digest(value: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The stored hex digest as bytes (None for a malformed one, which then matches no value).
fn digest_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Usage {
    pub fn new(store: Arc<dyn UsageStore>, batch: u64) -> Self {
        Self {
            store,
            view: RwLock::new(Arc::new(View::default())),
            uses: Mutex::new(HashMap::new()),
            batch: batch.max(1),
        }
    }

    pub fn store(&self) -> &Arc<dyn UsageStore> {
        &self.store
    }

    fn current(&self) -> Arc<View> {
        self.view
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|_| Arc::new(View::default()))
    }

    /// Reloads keys and plans when the store's version moved.
    pub async fn refresh(&self) -> UsageResult<()> {
        let version = self.store.usage_version().await?;
        if self.current().version == Some(version) {
            return Ok(());
        }
        let keys = self.store.api_keys().await?;
        let plans: HashMap<String, Arc<UsagePlan>> = self
            .store
            .usage_plans()
            .await?
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(p)))
            .collect();
        let mut uses = self.uses.lock().map_err(|_| poisoned())?;
        let mut view = View {
            version: Some(version),
            keys: HashMap::new(),
        };
        for key in keys {
            let Some(raw) = digest_bytes(&key.digest) else {
                continue;
            };
            let mut mine: Vec<&Arc<UsagePlan>> =
                key.plans.iter().filter_map(|p| plans.get(p)).collect();
            mine.sort_by(|a, b| a.name.cmp(&b.name));
            let mut stages: Vec<(String, String, Arc<UsagePlan>, Arc<PlanUse>)> = Vec::new();
            for plan in mine {
                for pair in &plan.limits.stages {
                    let Some((api, stage)) = pair.split_once('/') else {
                        continue;
                    };
                    if stages.iter().any(|(a, s, ..)| a == api && s == stage) {
                        continue;
                    }
                    let pk = (key.id.clone(), plan.name.clone());
                    let used = uses
                        .entry(pk.clone())
                        .or_insert_with(|| Arc::new(PlanUse::new(pk)))
                        .clone();
                    stages.push((api.into(), stage.into(), plan.clone(), used));
                }
            }
            let id = Arc::from(key.id.as_str());
            view.keys.insert(raw, KeyEntry { key, id, stages });
        }
        drop(uses);
        // Two refreshes can overlap (the upkeep's tick and an apply): the one that read an
        // older version must not replace the newer keys (versions only grow).
        if let Ok(mut v) = self.view.write()
            && v.version.is_none_or(|current| current <= version)
        {
            *v = Arc::new(view);
        }
        Ok(())
    }

    /// Writes every count this node holds (each second, and at shutdown; it waits for writes
    /// under way).
    pub async fn flush(&self) {
        let all: Vec<Arc<PlanUse>> = match self.uses.lock() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return,
        };
        for used in all {
            used.write_now(self.store.as_ref()).await;
        }
    }

    /// The checks of an API-key route: a known, enabled key (`value`, from `x-api-key`) of a
    /// plan covering `api/stage`, then its throttle, then its quota. Returns the key's id, also
    /// with a refusal when the key was known (for the access log).
    pub async fn admit(
        &self,
        value: Option<&str>,
        api: &str,
        stage: &str,
        now_ms: i64,
    ) -> Result<Arc<str>, (Refusal, Option<Arc<str>>)> {
        let view = self.current();
        let entry = value
            .and_then(|v| view.keys.get(&raw_digest(v)))
            .filter(|e| e.key.enabled)
            .ok_or((Refusal::InvalidApiKey, None))?;
        let refused = |r: Refusal| (r, Some(entry.id.clone()));
        let (_, _, plan, used) = entry
            .stages
            .iter()
            .find(|(a, s, ..)| a == api && s == stage)
            .ok_or_else(|| refused(Refusal::InvalidApiKey))?;
        if let Some(t) = &plan.limits.throttle {
            match used.take_token(t, Instant::now()) {
                Some(true) => {}
                Some(false) => return Err(refused(Refusal::Throttled)),
                None => return Err(refused(Refusal::UsageUnavailable)),
            }
        }
        if let Some(q) = &plan.limits.quota {
            match self.count(used, plan, q, now_ms).await {
                Ok(true) => {}
                Ok(false) => return Err(refused(Refusal::QuotaExceeded)),
                Err(e) => {
                    tracing::error!(api_key = %entry.id, error = %e, "quota not counted");
                    return Err(refused(Refusal::UsageUnavailable));
                }
            }
        }
        Ok(entry.id.clone())
    }

    /// Writes a key's pending count in the background (the request that filled half a batch
    /// does not wait for the database).
    fn write_behind(&self, used: &Arc<PlanUse>) {
        let (store, used) = (self.store.clone(), used.clone());
        tokio::spawn(async move { used.write_now(store.as_ref()).await });
    }

    /// One request against the quota: true when admitted (and counted). Usually decided in
    /// memory; it waits for the database only to read a new period's total, or when a whole
    /// batch is still unwritten.
    async fn count(
        &self,
        used: &Arc<PlanUse>,
        plan: &UsagePlan,
        q: &Quota,
        now_ms: i64,
    ) -> UsageResult<bool> {
        let period = q.period.start(now_ms);
        let limit = q.limit_in(period, plan.created_ms);
        // Each round either decides or waits for one database call, which makes progress.
        for _ in 0..8 {
            match used.step(period, limit, self.batch)? {
                Step::Admit { write } => {
                    if write {
                        self.write_behind(used);
                    }
                    return Ok(true);
                }
                Step::Refuse { write } => {
                    if write {
                        self.write_behind(used);
                    }
                    return Ok(false);
                }
                Step::Wait => {
                    let _writing = used.writing.lock().await;
                    used.enter(self.store.as_ref(), period).await?;
                }
            }
        }
        Err(UsageError::Unavailable(
            "the quota count could not be brought up to date".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn periods_start_at_utc_midnight_sunday_and_the_first() {
        // 2026-12-03T15:00:00Z, a Thursday.
        let t = 1_796_310_000_000;
        assert_eq!(Period::Day.start(t), 1_796_256_000_000); // 2026-12-03
        assert_eq!(Period::Week.start(t), 1_795_910_400_000); // Sunday 2026-11-29
        assert_eq!(Period::Month.start(t), 1_796_083_200_000); // 2026-12-01
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
        // A period's first millisecond belongs to it.
        let d = Period::Month.start(t);
        assert_eq!(Period::Month.start(d), d);
        assert_eq!(Period::Month.start(d - 1), 1_793_491_200_000); // 2026-11-01
    }

    #[test]
    fn the_offset_only_shrinks_the_plans_first_period() {
        let q = Quota {
            limit: 100,
            period: Period::Day,
            offset: 30,
        };
        let created = 1_796_310_000_000;
        let today = Period::Day.start(created);
        assert_eq!(q.limit_in(today, created), 70);
        assert_eq!(q.limit_in(today + DAY_MS, created), 100);
    }

    #[test]
    fn key_values_and_limits_are_checked() {
        assert!(check_key_value("short").is_err());
        assert!(check_key_value("twenty-characters-ok").is_ok());
        assert!(check_key_value("twenty characters no").is_err());
        let v = new_key_value().unwrap();
        assert_eq!(v.len(), 40);
        assert!(check_key_value(&v).is_ok());
        assert_eq!(new_key_id().unwrap().len(), 10);
        let mut l = PlanLimits {
            stages: vec!["pets/prod".into()],
            throttle: Some(Throttle {
                rate: 0.0,
                burst: 1,
            }),
            quota: None,
        };
        assert!(check_limits(&l).is_err());
        l.throttle = None;
        assert!(check_limits(&l).is_ok());
        l.stages = vec!["pets".into()];
        assert!(check_limits(&l).is_err());
    }

    /// Only the counting part of a store: the algorithm's bound, with nodes interleaved
    /// deterministically (the compat suite counts through the real databases).
    #[derive(Default)]
    struct Counts {
        totals: std::sync::Mutex<HashMap<(String, String, i64), u64>>,
        /// When set, each write (n > 0) waits for a permit.
        gate: Option<Arc<tokio::sync::Semaphore>>,
    }

    #[async_trait::async_trait]
    impl UsageStore for Counts {
        async fn usage_version(&self) -> UsageResult<i64> {
            Ok(1)
        }
        async fn api_keys(&self) -> UsageResult<Vec<ApiKey>> {
            Ok(vec![ApiKey {
                id: "k1".into(),
                name: "k".into(),
                digest: digest("a-key-value-of-20-chars"),
                enabled: true,
                plans: vec!["p".into()],
                from_config: false,
                created_ms: 0,
            }])
        }
        async fn usage_plans(&self) -> UsageResult<Vec<UsagePlan>> {
            Ok(vec![UsagePlan {
                name: "p".into(),
                limits: PlanLimits {
                    stages: vec!["a/prod".into()],
                    throttle: None,
                    quota: Some(Quota {
                        limit: 50,
                        period: Period::Day,
                        offset: 0,
                    }),
                },
                from_config: false,
                created_ms: 0,
            }])
        }
        async fn insert_api_key(&self, _: &ApiKey) -> UsageResult<()> {
            Ok(())
        }
        async fn set_api_key(&self, _: &str, _: bool, _: &[String]) -> UsageResult<bool> {
            Ok(true)
        }
        async fn delete_api_key(&self, _: &str) -> UsageResult<bool> {
            Ok(true)
        }
        async fn put_usage_plan(&self, _: &UsagePlan) -> UsageResult<()> {
            Ok(())
        }
        async fn delete_usage_plan(&self, _: &str) -> UsageResult<bool> {
            Ok(true)
        }
        async fn apply_config(&self, _: &[UsagePlan], _: &[ApiKey]) -> UsageResult<()> {
            Ok(())
        }
        async fn add_usage(&self, key: &str, plan: &str, start: i64, n: u64) -> UsageResult<u64> {
            if let (Some(gate), true) = (&self.gate, n > 0) {
                gate.acquire().await.unwrap().forget();
            }
            let mut m = self.totals.lock().unwrap();
            let v = m.entry((key.into(), plan.into(), start)).or_default();
            *v += n;
            Ok(*v)
        }
    }

    /// A store whose keys change from none (version 1) to one (version 2); the first read of
    /// the keys takes its answer at once and then waits for a permit, as a slow query would.
    struct Changing {
        version: std::sync::atomic::AtomicI64,
        hold_first: std::sync::atomic::AtomicBool,
        gate: tokio::sync::Semaphore,
        counts: Counts,
    }

    #[async_trait::async_trait]
    impl UsageStore for Changing {
        async fn usage_version(&self) -> UsageResult<i64> {
            Ok(self.version.load(Ordering::SeqCst))
        }
        async fn api_keys(&self) -> UsageResult<Vec<ApiKey>> {
            let keys = if self.version.load(Ordering::SeqCst) >= 2 {
                self.counts.api_keys().await?
            } else {
                Vec::new()
            };
            if self.hold_first.swap(false, Ordering::SeqCst) {
                self.gate.acquire().await.unwrap().forget();
            }
            Ok(keys)
        }
        async fn usage_plans(&self) -> UsageResult<Vec<UsagePlan>> {
            self.counts.usage_plans().await
        }
        async fn insert_api_key(&self, k: &ApiKey) -> UsageResult<()> {
            self.counts.insert_api_key(k).await
        }
        async fn set_api_key(&self, a: &str, b: bool, c: &[String]) -> UsageResult<bool> {
            self.counts.set_api_key(a, b, c).await
        }
        async fn delete_api_key(&self, a: &str) -> UsageResult<bool> {
            self.counts.delete_api_key(a).await
        }
        async fn put_usage_plan(&self, p: &UsagePlan) -> UsageResult<()> {
            self.counts.put_usage_plan(p).await
        }
        async fn delete_usage_plan(&self, a: &str) -> UsageResult<bool> {
            self.counts.delete_usage_plan(a).await
        }
        async fn apply_config(&self, p: &[UsagePlan], k: &[ApiKey]) -> UsageResult<()> {
            self.counts.apply_config(p, k).await
        }
        async fn add_usage(&self, key: &str, plan: &str, start: i64, n: u64) -> UsageResult<u64> {
            self.counts.add_usage(key, plan, start, n).await
        }
    }

    #[tokio::test]
    async fn a_slow_refresh_of_older_keys_never_replaces_newer_ones() {
        let store = Arc::new(Changing {
            version: 1.into(),
            hold_first: true.into(),
            gate: tokio::sync::Semaphore::new(0),
            counts: Counts::default(),
        });
        let node = Arc::new(Usage::new(store.clone(), 10));
        // The upkeep's refresh reads version 1 (no keys) and is held before it installs them.
        let slow = tokio::spawn({
            let node = node.clone();
            async move { node.refresh().await }
        });
        while store.hold_first.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        // Meanwhile a key is applied and another refresh installs it.
        store.version.store(2, Ordering::SeqCst);
        node.refresh().await.unwrap();
        let key = Some("a-key-value-of-20-chars");
        assert!(node.admit(key, "a", "prod", 0).await.is_ok());
        // The slow refresh finishes last; the key stays.
        store.gate.add_permits(1);
        slow.await.unwrap().unwrap();
        assert!(node.admit(key, "a", "prod", 0).await.is_ok());
    }

    async fn admitted(nodes: &[Usage], rounds: usize, now_ms: i64) -> usize {
        let mut n = 0;
        for _ in 0..rounds {
            for node in nodes {
                if node
                    .admit(Some("a-key-value-of-20-chars"), "a", "prod", now_ms)
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
        }
        n
    }

    #[tokio::test]
    async fn one_node_is_exact_and_n_nodes_overshoot_by_at_most_n_minus_1_batches() {
        let now = 1_796_310_000_000;
        for batch in [1, 7, 100] {
            let store: Arc<dyn UsageStore> = Arc::new(Counts::default());
            let one = Usage::new(store.clone(), batch);
            one.refresh().await.unwrap();
            assert_eq!(
                admitted(std::slice::from_ref(&one), 80, now).await,
                50,
                "batch {batch}"
            );
            for n in [2usize, 3] {
                let store: Arc<dyn UsageStore> = Arc::new(Counts::default());
                let nodes: Vec<Usage> = (0..n).map(|_| Usage::new(store.clone(), batch)).collect();
                for node in &nodes {
                    node.refresh().await.unwrap();
                }
                let got = admitted(&nodes, 200, now).await;
                let bound = 50 + (n - 1) * batch as usize;
                assert!(
                    got >= 50 && got <= bound,
                    "batch {batch}, {n} nodes: {got} > {bound}"
                );
                // Every admitted request reaches the database once the nodes have written.
                for node in &nodes {
                    node.flush().await;
                }
                let total = store
                    .add_usage("k1", "p", Period::Day.start(now), 0)
                    .await
                    .unwrap();
                assert_eq!(total as usize, got);
            }
        }
    }

    #[tokio::test]
    async fn a_new_period_starts_from_zero_and_the_old_one_keeps_its_count() {
        let store: Arc<dyn UsageStore> = Arc::new(Counts::default());
        let node = Usage::new(store.clone(), 10);
        node.refresh().await.unwrap();
        let day1 = 1_796_310_000_000;
        assert_eq!(admitted(std::slice::from_ref(&node), 60, day1).await, 50);
        assert_eq!(
            admitted(std::slice::from_ref(&node), 5, day1 + DAY_MS).await,
            5
        );
        node.flush().await;
        let first = Period::Day.start(day1);
        assert_eq!(store.add_usage("k1", "p", first, 0).await.unwrap(), 50);
        assert_eq!(
            store.add_usage("k1", "p", first + DAY_MS, 0).await.unwrap(),
            5
        );
        // Unknown and missing keys are refused before any count.
        assert_eq!(
            node.admit(Some("another-value-of-20-chars"), "a", "prod", day1)
                .await,
            Err((Refusal::InvalidApiKey, None))
        );
        assert_eq!(
            node.admit(None, "a", "prod", day1).await,
            Err((Refusal::InvalidApiKey, None))
        );
        assert_eq!(
            node.admit(Some("a-key-value-of-20-chars"), "a", "beta", day1)
                .await,
            Err((Refusal::InvalidApiKey, Some("k1".into())))
        );
    }

    const VALUE: &str = "a-key-value-of-20-chars";

    #[tokio::test]
    async fn requests_are_admitted_while_a_batch_is_written_and_wait_only_past_a_whole_batch() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let store = Arc::new(Counts {
            gate: Some(gate.clone()),
            ..Counts::default()
        });
        let node = Arc::new(Usage::new(store.clone(), 10));
        node.refresh().await.unwrap();
        let now = 1_796_310_000_000;
        // The fifth request starts a write, which the gate holds; the next five are admitted
        // meanwhile, from memory.
        for i in 0..10 {
            assert!(
                node.admit(Some(VALUE), "a", "prod", now).await.is_ok(),
                "request {i}"
            );
        }
        let eleventh = tokio::spawn({
            let node = node.clone();
            async move { node.admit(Some(VALUE), "a", "prod", now).await }
        });
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(
            !eleventh.is_finished(),
            "a whole batch unwritten: the next request waits"
        );
        gate.add_permits(100);
        assert!(eleventh.await.unwrap().is_ok());
        node.flush().await;
        let total = store.add_usage("k1", "p", Period::Day.start(now), 0).await;
        assert_eq!(total, Ok(11));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_requests_on_one_node_never_pass_the_limit() {
        let store: Arc<dyn UsageStore> = Arc::new(Counts::default());
        let node = Arc::new(Usage::new(store.clone(), 7));
        node.refresh().await.unwrap();
        let now = 1_796_310_000_000;
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let node = node.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    for _ in 0..20 {
                        if node.admit(Some(VALUE), "a", "prod", now).await.is_ok() {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += t.await.unwrap();
        }
        assert_eq!(admitted, 50);
        node.flush().await;
        let total = store.add_usage("k1", "p", Period::Day.start(now), 0).await;
        assert_eq!(total, Ok(50));
    }
}
