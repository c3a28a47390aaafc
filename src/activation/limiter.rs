//! Rate limits of the activation service: a token bucket per key (a client address, a tenant
//! id), refilled continuously, in a map of bounded size.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys a limiter remembers at most. When full, buckets that refilled completely are dropped
/// (they hold nothing a new bucket would not), then the least recently used.
pub const MAX_KEYS: usize = 10_000;

/// Up to `per_minute` requests per key at once, refilled at `per_minute` a minute.
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
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(per_minute: u32) -> Self {
        Self::with_capacity(per_minute, MAX_KEYS)
    }

    fn with_capacity(per_minute: u32, max_keys: usize) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    /// Takes one request for `key` at `now`: `Ok`, or how long until one would be allowed.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap();
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < capacity
            });
            if buckets.len() >= self.max_keys
                && let Some(oldest) = buckets
                    .iter()
                    .min_by_key(|(_, b)| b.last)
                    .map(|(k, _)| k.clone())
            {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_for_the_refill_and_others_are_untouched() {
        let limiter = Limiter::new(6);
        let t0 = Instant::now();
        for _ in 0..6 {
            assert!(limiter.take(&"a", t0).is_ok());
        }
        let wait = limiter.take(&"a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(limiter.take(&"b", t0).is_ok());
        assert!(limiter.take(&"a", t0 + Duration::from_secs(9)).is_err());
        assert!(limiter.take(&"a", t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn the_map_stays_bounded_dropping_full_buckets_then_the_oldest() {
        let limiter = Limiter::with_capacity(2, 3);
        let t0 = Instant::now();
        for key in 0..3 {
            limiter.take(&key, t0).unwrap();
            limiter.take(&key, t0).unwrap();
        }
        // All three are empty: the oldest used goes.
        limiter.take(&3, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(limiter.len(), 3);
        // A minute on, every bucket is full again and all of them may go.
        limiter.take(&4, t0 + Duration::from_secs(120)).unwrap();
        assert_eq!(limiter.len(), 1);
    }
}
