//! Limits on failed activation attempts: a token bucket per key (a client address, a tenant
//! id), refilled continuously, that only failures drain (an attempt is taken when it starts and
//! refunded if it did not fail), in a map bounded in bytes.
//!
//! Keys are fixed-size values (an [`std::net::IpAddr`], a [`uuid::Uuid`]) parsed from the
//! request before any limiter sees it, so the map holds at most [`MAX_KEYS`] entries of a known
//! size ([`Limiter::max_bytes`]) whatever the requests carry.
//!
//! A tenant's bucket also remembers the hash of the tenant's current token as last read, so that
//! when others' failures have emptied the bucket, the holder of that token still gets through
//! without the service reading the tenant again for every refused guess.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// Keys a limiter remembers at most. When full, buckets that refilled completely are dropped
/// (they hold nothing a new bucket would not), then the least recently used.
pub const MAX_KEYS: usize = 10_000;

/// Up to `per_minute` failures per key at once, refilled at `per_minute` a minute.
#[derive(Debug)]
pub struct Limiter<K> {
    per_minute: u32,
    buckets: Mutex<HashMap<K, Bucket>>,
    max_keys: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// The SHA-256 of the key's current token, as last read (tenants only).
    known: Option<[u8; 32]>,
}

impl<K: Hash + Eq + Copy> Limiter<K> {
    pub fn new(per_minute: u32) -> Self {
        Self::with_capacity(per_minute, MAX_KEYS)
    }

    fn with_capacity(per_minute: u32, max_keys: usize) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::with_capacity(max_keys.min(1024))),
            max_keys,
        }
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    fn rate(&self) -> f64 {
        self.capacity() / 60.0
    }

    /// Takes one attempt of `key` at `now`, as if it failed: `Ok`, or how long until one
    /// would be allowed. Taken before the attempt is judged, so that attempts in flight at once
    /// cannot overdraw the budget; [`Limiter::refund`] gives it back when it did not fail.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap();
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            self.make_room(&mut buckets, now);
        }
        let capacity = self.capacity();
        let bucket = buckets.entry(*key).or_insert(Bucket {
            tokens: capacity,
            last: now,
            known: None,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate()))
        }
    }

    /// Gives back an attempt taken for `key` that did not fail.
    pub fn refund(&self, key: &K) {
        let capacity = self.capacity();
        if let Some(bucket) = self.buckets.lock().unwrap().get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(capacity);
        }
    }

    /// Remembers `hash` as the current token of `key`, if `key` has a bucket.
    pub fn remember(&self, key: &K, hash: Option<[u8; 32]>) {
        if let Some(bucket) = self.buckets.lock().unwrap().get_mut(key) {
            bucket.known = hash;
        }
    }

    /// Whether `hash` is the current token of `key` as last remembered (constant time).
    pub fn knows(&self, key: &K, hash: &[u8; 32]) -> bool {
        self.buckets
            .lock()
            .unwrap()
            .get(key)
            .and_then(|b| b.known)
            .is_some_and(|known| bool::from(known.ct_eq(hash)))
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        (bucket.tokens + elapsed * self.rate()).min(self.capacity())
    }

    /// Drops the buckets that refilled; if that frees nothing, the least recently used tenth
    /// (at once, so that a flood of new keys costs one scan per tenth of the map, not per key).
    fn make_room(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        let capacity = self.capacity();
        buckets.retain(|_, b| self.refilled(b, now) < capacity);
        if buckets.len() >= self.max_keys {
            let mut by_age: Vec<(Instant, K)> = buckets.iter().map(|(k, b)| (b.last, *k)).collect();
            let drop = (self.max_keys / 10).max(1);
            by_age.select_nth_unstable_by_key(drop - 1, |(last, _)| *last);
            for (_, key) in &by_age[..drop] {
                buckets.remove(key);
            }
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An upper bound of the bytes the map holds when full: its entries and the hash table's
    /// own control bytes, at the load factor it grows at.
    pub fn max_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(K, Bucket)>() + 1;
        // hashbrown keeps at most 7/8 of its (power of two) buckets in use.
        (self.max_keys * 8 / 7 + 1).next_power_of_two() * entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_drain_a_key_and_others_are_untouched() {
        let limiter = Limiter::new(6);
        let t0 = Instant::now();
        for _ in 0..100 {
            limiter.take(&"a", t0).unwrap();
            limiter.refund(&"a");
        }
        for _ in 0..6 {
            limiter.take(&"a", t0).unwrap();
        }
        assert_eq!(limiter.take(&"a", t0), Err(Duration::from_secs(10)));
        assert!(limiter.take(&"b", t0).is_ok());
        assert!(limiter.take(&"a", t0 + Duration::from_secs(9)).is_err());
        assert!(limiter.take(&"a", t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn the_map_stays_bounded_dropping_full_buckets_then_the_oldest() {
        let limiter = Limiter::with_capacity(2, 3);
        let t0 = Instant::now();
        for key in 0..3 {
            let at = t0 + Duration::from_millis(key);
            limiter.take(&key, at).unwrap();
            limiter.take(&key, at).unwrap();
        }
        // All three are empty: the oldest used goes.
        limiter.take(&3, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(limiter.len(), 3);
        assert!(limiter.take(&1, t0).is_err(), "1 is still empty");
        assert!(
            limiter.take(&0, t0).is_ok(),
            "0 was dropped: a full bucket again"
        );
        // A minute on, every bucket is full again and all of them may go.
        limiter.take(&4, t0 + Duration::from_secs(120)).unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn a_flood_of_distinct_keys_holds_a_bounded_number_of_bytes() {
        let limiter = Limiter::<uuid::Uuid>::new(10);
        let t0 = Instant::now();
        for _ in 0..(2 * MAX_KEYS) {
            let _ = limiter.take(&uuid::Uuid::new_v4(), t0);
        }
        assert!(limiter.len() <= MAX_KEYS);
        // About 1 MiB however many keys come, and whatever the requests carried.
        assert!(limiter.max_bytes() < 2 << 20, "{}", limiter.max_bytes());
    }

    #[test]
    fn a_remembered_token_is_known_only_for_its_key() {
        let limiter = Limiter::new(1);
        let t0 = Instant::now();
        let hash = [7u8; 32];
        limiter.remember(&"t", Some(hash));
        assert!(!limiter.knows(&"t", &hash), "no bucket, nothing remembered");
        let _ = limiter.take(&"t", t0);
        limiter.remember(&"t", Some(hash));
        assert!(limiter.knows(&"t", &hash));
        assert!(!limiter.knows(&"t", &[8u8; 32]));
        assert!(!limiter.knows(&"u", &hash));
    }
}
