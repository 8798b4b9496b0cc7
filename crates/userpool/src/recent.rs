//! A small per-node cache of recent values: entries live for a fixed time and the map is
//! bounded. It backs reads that may be slightly old by contract (the store's `*_recent`
//! lookups, verified access tokens), never reads that a write depends on.
//!
//! A miss loads once however many callers want the key at that moment (single flight): the
//! first loads, the others wait for its answer, its error included — without that, each
//! expiry of a busy key sent every request arriving during the load to the database, and
//! during an outage each caller ran its own query and waited for its own timeout. A removal
//! or an insert (this node's write) also cuts off a load under way: callers after it start a
//! fresh one and the older load's value is not kept (callers already waiting still get that
//! load's answer: they asked before the write).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

const SHARDS: usize = 8;

/// A load's answer, once it has one.
type Answer<V, E> = Option<Result<V, E>>;

pub struct TtlCache<K, V, E = Infallible> {
    shards: Vec<Mutex<Shard<K, V, E>>>,
    hasher: RandomState,
    ttl: Duration,
    per_shard: usize,
}

struct Shard<K, V, E> {
    ready: HashMap<K, (Instant, V)>,
    /// Loads under way, by key: later callers wait on the channel for the answer.
    loading: HashMap<K, watch::Receiver<Answer<V, E>>>,
}

/// What a caller of [`TtlCache::get_or_load`] does next.
enum Step<V, E> {
    Hit(V),
    Follow(watch::Receiver<Answer<V, E>>),
    Lead(watch::Sender<Answer<V, E>>),
}

impl<K: Hash + Eq, V, E> TtlCache<K, V, E> {
    /// Entries live `ttl`; at most about `capacity` are kept.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        ready: HashMap::new(),
                        loading: HashMap::new(),
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            ttl,
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Shard<K, V, E>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut shard = self.shard(&key);
        shard.loading.remove(&key);
        self.keep(&mut shard, key, value);
    }

    fn keep(&self, shard: &mut Shard<K, V, E>, key: K, value: V) {
        let map = &mut shard.ready;
        if map.len() >= self.per_shard {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    /// Forgets `key`'s value and any load of it under way.
    pub fn remove(&self, key: &K) {
        let mut shard = self.shard(key);
        shard.ready.remove(key);
        shard.loading.remove(key);
    }

    pub fn clear(&self) {
        for s in &self.shards {
            let mut shard = s.lock().unwrap_or_else(|p| p.into_inner());
            shard.ready.clear();
            shard.loading.clear();
        }
    }
}

impl<K: Hash + Eq, V: Clone, E> TtlCache<K, V, E> {
    /// The value stored for `key` less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.shard(key).fresh(key, self.ttl)
    }
}

impl<K: Hash + Eq, V, E> Shard<K, V, E> {
    fn fresh(&mut self, key: &K, ttl: Duration) -> Option<V>
    where
        V: Clone,
    {
        match self.ready.get(key) {
            Some((at, v)) if at.elapsed() < ttl => Some(v.clone()),
            Some(_) => {
                self.ready.remove(key);
                None
            }
            None => None,
        }
    }

    /// Whether `rx` is still the load under way for `key` (no removal cut it off).
    fn is_loading(&self, key: &K, rx: &watch::Receiver<Answer<V, E>>) -> bool {
        self.loading.get(key).is_some_and(|r| r.same_channel(rx))
    }
}

impl<K: Hash + Eq + Clone, V: Clone, E: Clone> TtlCache<K, V, E> {
    /// The recent value for `key`, or the one `load` reads (and this cache then keeps). While
    /// a load of `key` is under way, callers share its answer instead of loading again.
    pub async fn get_or_load<Fut>(&self, key: K, load: impl FnOnce() -> Fut) -> Result<V, E>
    where
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        let tx = loop {
            let mut rx = match self.step(&key) {
                Step::Hit(v) => return Ok(v),
                Step::Lead(tx) => break tx,
                Step::Follow(rx) => rx,
            };
            if let Ok(answer) = rx.wait_for(Option::is_some).await
                && let Some(answer) = answer.as_ref()
            {
                return answer.clone();
            }
            // Closed without an answer (the leader's caller went away, or its load panicked);
            // the leader's guard took it out of the map first: go again.
        };
        let leading = Leading {
            cache: self,
            key: &key,
            rx: tx.subscribe(),
            tx: Some(tx),
        };
        let answer = load().await;
        leading.finish(&answer);
        answer
    }

    fn step(&self, key: &K) -> Step<V, E> {
        let mut shard = self.shard(key);
        if let Some(v) = shard.fresh(key, self.ttl) {
            return Step::Hit(v);
        }
        if let Some(rx) = shard.loading.get(key) {
            return Step::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        shard.loading.insert(key.clone(), rx);
        Step::Lead(tx)
    }
}

/// A leader's claim on its key. Finished, it keeps the value (unless a removal cut the load
/// off) and answers the followers. Dropped unfinished (its caller went away mid-load, or the
/// load panicked), it takes its load out of the map before its sender closes — `drop` runs
/// before the fields are dropped — so a woken follower loads afresh instead of finding the
/// closed channel again.
struct Leading<'a, K: Hash + Eq, V, E> {
    cache: &'a TtlCache<K, V, E>,
    key: &'a K,
    rx: watch::Receiver<Answer<V, E>>,
    /// Taken by `finish`.
    tx: Option<watch::Sender<Answer<V, E>>>,
}

impl<K: Hash + Eq + Clone, V: Clone, E: Clone> Leading<'_, K, V, E> {
    fn finish(mut self, answer: &Result<V, E>) {
        {
            let mut shard = self.cache.shard(self.key);
            if shard.is_loading(self.key, &self.rx) {
                shard.loading.remove(self.key);
                if let Ok(v) = answer {
                    self.cache.keep(&mut shard, self.key.clone(), v.clone());
                }
            }
        }
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(answer.clone()));
        }
    }
}

impl<K: Hash + Eq, V, E> Drop for Leading<'_, K, V, E> {
    fn drop(&mut self) {
        if self.tx.is_none() {
            return;
        }
        let mut shard = self.cache.shard(self.key);
        if shard.is_loading(self.key, &self.rx) {
            shard.loading.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;

    #[test]
    fn entries_expire_and_can_be_removed() {
        let c: TtlCache<_, _> = TtlCache::new(Duration::from_millis(50), 100);
        c.insert("a", 1);
        c.insert("b", 2);
        assert_eq!(c.get(&"a"), Some(1));
        c.remove(&"a");
        assert_eq!(c.get(&"a"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"b"), None);
    }

    #[tokio::test]
    async fn a_loaded_value_is_kept_and_an_error_is_not() {
        let c: TtlCache<_, _, &str> = TtlCache::new(Duration::from_secs(60), 100);
        let failed: Result<u32, &str> = c.get_or_load("k", || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        assert_eq!(c.get(&"k"), None);
        let first: Result<u32, &str> = c.get_or_load("k", || async { Ok(1) }).await;
        let second: Result<u32, &str> = c.get_or_load("k", || async { Ok(2) }).await;
        assert_eq!((first, second), (Ok(1), Ok(1)));
    }

    /// A load that answers when `gate` opens, counting how often it ran.
    async fn gated(
        loads: &AtomicUsize,
        gate: &tokio::sync::Semaphore,
        answer: Result<u32, &'static str>,
    ) -> Result<u32, &'static str> {
        loads.fetch_add(1, Ordering::SeqCst);
        let _open = gate.acquire().await;
        answer
    }

    /// Lets the spawned callers run up to where they wait.
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    type Cache = TtlCache<&'static str, u32, &'static str>;

    fn cache() -> Arc<Cache> {
        Arc::new(TtlCache::new(Duration::from_secs(60), 100))
    }

    /// `n` callers of "k" at once, caller `i`'s load answering `answer(i)` once all are
    /// waiting: their answers, and how many loads ran.
    async fn callers_at_once(
        c: &Arc<Cache>,
        n: u32,
        answer: fn(u32) -> Result<u32, &'static str>,
    ) -> (Vec<Result<u32, &'static str>>, usize) {
        let (loads, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let callers: Vec<_> = (0..n)
            .map(|i| {
                let (c, loads, gate) = (c.clone(), loads.clone(), gate.clone());
                tokio::spawn(async move {
                    c.get_or_load("k", || async move { gated(&loads, &gate, answer(i)).await })
                        .await
                })
            })
            .collect();
        settle().await;
        gate.add_permits(100);
        let mut answers = Vec::new();
        for caller in callers {
            answers.push(caller.await.unwrap());
        }
        (answers, loads.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn callers_during_a_load_share_it() {
        let c = cache();
        let (answers, loads) = callers_at_once(&c, 20, Ok).await;
        assert_eq!(loads, 1);
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        assert_eq!(c.get(&"k"), Some(answers[0].unwrap()));
    }

    #[tokio::test]
    async fn callers_during_a_failing_load_share_its_error_and_it_is_not_kept() {
        let c = cache();
        let (answers, loads) = callers_at_once(&c, 5, |_| Err("down")).await;
        assert_eq!(loads, 1);
        assert!(answers.iter().all(|a| *a == Err("down")), "{answers:?}");
        // The failed load is over: the next caller loads again.
        let next = within(c.get_or_load("k", || async { Ok(7) })).await;
        assert_eq!(next, Ok(7));
    }

    /// A caller that must not wait on anything: a hang fails the test instead of stalling it.
    async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("waited on a load it should not have")
    }

    /// A load of "k" under way (answering `value` when `gate` opens), and the task waiting on it.
    async fn load_under_way(
        c: &Arc<Cache>,
        value: u32,
    ) -> (
        tokio::task::JoinHandle<Result<u32, &'static str>>,
        Arc<Semaphore>,
    ) {
        let (loads, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
        let task = {
            let (c, gate) = (c.clone(), gate.clone());
            tokio::spawn(async move {
                c.get_or_load("k", || async move { gated(&loads, &gate, Ok(value)).await })
                    .await
            })
        };
        settle().await;
        (task, gate)
    }

    #[tokio::test]
    async fn a_removal_cuts_off_a_load_under_way() {
        let c = cache();
        let (before, gate) = load_under_way(&c, 1).await;
        let follower = {
            let c = c.clone();
            tokio::spawn(async move { c.get_or_load("k", || async { Ok(99) }).await })
        };
        settle().await;
        // This node's write: what the load under way read may be older than it.
        c.remove(&"k");
        let after = within(c.get_or_load("k", || async { Ok(2) })).await;
        gate.add_permits(100);
        assert_eq!(before.await.unwrap(), Ok(1));
        assert_eq!(
            follower.await.unwrap(),
            Ok(1),
            "a caller from before the write"
        );
        assert_eq!(after, Ok(2));
        assert_eq!(c.get(&"k"), Some(2), "the older load's value was kept");
    }

    #[tokio::test]
    async fn a_clear_or_an_insert_cuts_off_a_load_under_way() {
        let c = cache();
        let (before, gate) = load_under_way(&c, 1).await;
        c.clear();
        let after = within(c.get_or_load("k", || async { Ok(2) })).await;
        gate.add_permits(100);
        assert_eq!((before.await.unwrap(), after), (Ok(1), Ok(2)));
        assert_eq!(c.get(&"k"), Some(2));

        c.remove(&"k");
        let (before, gate) = load_under_way(&c, 3).await;
        c.insert("k", 4);
        gate.add_permits(100);
        assert_eq!(before.await.unwrap(), Ok(3));
        assert_eq!(c.get(&"k"), Some(4), "the older load overwrote the insert");
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_hands_the_load_on() {
        let c = cache();
        let (leader, _gate) = load_under_way(&c, 1).await;
        let follower_loads = Arc::new(AtomicUsize::new(0));
        let follower = {
            let (c, loads) = (c.clone(), follower_loads.clone());
            tokio::spawn(async move {
                c.get_or_load("k", || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(2)
                })
                .await
            })
        };
        settle().await;
        assert!(
            !follower.is_finished(),
            "the follower did not wait for the leader"
        );
        leader.abort();
        assert!(leader.await.is_err());
        assert_eq!(within(follower).await.unwrap(), Ok(2));
        assert_eq!(follower_loads.load(Ordering::SeqCst), 1);
        assert_eq!(c.get(&"k"), Some(2));
    }

    #[test]
    fn the_map_stays_bounded() {
        let c: TtlCache<_, _> = TtlCache::new(Duration::from_secs(60), 16);
        for i in 0..1000 {
            c.insert(i, i);
        }
        let kept: usize = c.shards.iter().map(|s| s.lock().unwrap().ready.len()).sum();
        assert!(kept <= 16 + SHARDS, "{kept}");
        assert_eq!(c.get(&999), Some(999));
    }
}
