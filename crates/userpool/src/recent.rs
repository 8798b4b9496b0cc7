//! A small per-node cache of recent values: entries live for a fixed time and the map is
//! bounded. It backs reads that may be slightly old by contract (the store's `*_recent`
//! lookups, verified access tokens), never reads that a write depends on.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 8;

pub struct TtlCache<K, V> {
    shards: Vec<Mutex<HashMap<K, (Instant, V)>>>,
    hasher: RandomState,
    ttl: Duration,
    per_shard: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// Entries live `ttl`; at most about `capacity` are kept.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            ttl,
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, (Instant, V)>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    /// The value stored for `key` less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// The recent value for `key`, or the one `load` reads (and this cache then keeps).
    pub async fn get_or_load<E, Fut>(&self, key: K, load: impl FnOnce() -> Fut) -> Result<V, E>
    where
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let value = load().await?;
        self.insert(key, value.clone());
        Ok(value)
    }

    pub fn insert(&self, key: K, value: V) {
        let mut map = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.per_shard {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    pub fn remove(&self, key: &K) {
        self.shard(key)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_removed() {
        let c = TtlCache::new(Duration::from_millis(50), 100);
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
        let c = TtlCache::new(Duration::from_secs(60), 100);
        let failed: Result<u32, &str> = c.get_or_load("k", || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        assert_eq!(c.get(&"k"), None);
        let first: Result<u32, &str> = c.get_or_load("k", || async { Ok(1) }).await;
        let second: Result<u32, &str> = c.get_or_load("k", || async { Ok(2) }).await;
        assert_eq!((first, second), (Ok(1), Ok(1)));
    }

    #[test]
    fn the_map_stays_bounded() {
        let c = TtlCache::new(Duration::from_secs(60), 16);
        for i in 0..1000 {
            c.insert(i, i);
        }
        let kept: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(kept <= 16 + SHARDS, "{kept}");
        assert_eq!(c.get(&999), Some(999));
    }
}
