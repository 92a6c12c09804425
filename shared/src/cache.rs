//! A small time-bounded cache for what a warm container looks up: keys, memberships,
//! projects, a team's Stripe connection. Bounded in size (least recently used out first),
//! so a flood of distinct keys cannot grow memory without end, nor empty the cache of the
//! entries in use.

use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Bound on cached entries per cache.
const CAPACITY: usize = 1024;

/// Entries a warm container remembers for `ttl`, so a warm request costs no extra read.
/// A `ttl` of zero caches nothing.
pub struct TtlCache<K: Hash + Eq, V> {
    ttl: Duration,
    entries: Mutex<LruCache<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            // Unbounded to the crate, bounded by `insert`: nothing is allocated before the
            // first entry, so a container's start pays nothing for its caches.
            entries: Mutex::new(LruCache::unbounded()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(key) {
            Some((value, at)) if at.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY && !entries.contains(&key) {
                entries.pop_lru();
            }
            entries.put(key, (value, Instant::now()));
        }
    }

    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.pop(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_zero_ttl_caches_nothing() {
        let cache = TtlCache::new(Duration::from_millis(30));
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"a"), None);
        cache.insert("b", 2);
        cache.remove(&"b");
        assert_eq!(cache.get(&"b"), None);
        let off = TtlCache::new(Duration::ZERO);
        off.insert("a", 1);
        assert_eq!(off.get(&"a"), None);
    }

    #[test]
    fn a_full_cache_makes_room_with_its_least_recently_used_entry() {
        let cache = TtlCache::new(Duration::from_secs(60));
        for i in 0..CAPACITY {
            cache.insert(i, i);
        }
        // Entry 1 is read, so entry 0 is the least recently used one.
        assert_eq!(cache.get(&1), Some(1));
        cache.insert(CAPACITY, CAPACITY);
        assert_eq!(cache.get(&0), None);
        assert_eq!(cache.get(&CAPACITY), Some(CAPACITY));
        // The rest stay: a full cache no longer starts over.
        assert_eq!(cache.get(&1), Some(1));
        assert_eq!(cache.get(&2), Some(2));
        assert_eq!(cache.get(&(CAPACITY - 1)), Some(CAPACITY - 1));
    }
}
