//! Keys remembered for a while, then forgotten.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Keys remembered for `memory` after they were last noted. Forgetting walks only the keys
/// that are due, oldest first, so a lookup costs the same with ten thousand keys as with ten.
#[derive(Debug)]
pub struct Recent<K> {
    memory: Duration,
    noted: HashMap<K, Instant>,
    /// Keys in the order they were noted; a key noted again is here twice, and its older
    /// place is skipped when it comes due.
    order: VecDeque<(Instant, K)>,
}

impl<K: Clone + Eq + Hash> Recent<K> {
    pub fn new(memory: Duration) -> Self {
        Self {
            memory,
            noted: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn note(&mut self, key: K) {
        self.note_at(key, Instant::now());
    }

    /// Whether `key` was noted less than `memory` ago.
    pub fn contains(&mut self, key: &K) -> bool {
        self.forget_before(Instant::now());
        self.noted.contains_key(key)
    }

    fn note_at(&mut self, key: K, now: Instant) {
        self.forget_before(now);
        self.noted.insert(key.clone(), now);
        self.order.push_back((now, key));
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front()
            && now.duration_since(*at) >= self.memory
        {
            let (at, key) = self.order.pop_front().expect("a front was seen");
            if self.noted.get(&key) == Some(&at) {
                self.noted.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.noted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_forgotten_after_their_memory_counted_from_the_last_note() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut recent = Recent::new(10 * second);
        recent.note_at("a", start);
        recent.note_at("b", start + 2 * second);
        recent.note_at("a", start + 5 * second);
        recent.forget_before(start + 11 * second);
        assert!(recent.noted.contains_key("a"), "noted again at 5 s");
        assert!(recent.noted.contains_key("b"));
        recent.forget_before(start + 12 * second);
        assert!(!recent.noted.contains_key("b"));
        assert!(recent.noted.contains_key("a"));
        recent.forget_before(start + 15 * second);
        assert_eq!(recent.len(), 0);
        assert!(recent.order.is_empty());
    }

    #[test]
    fn a_key_just_noted_is_held() {
        let mut recent = Recent::new(Duration::from_secs(60));
        recent.note(("id".to_string(), "endpoint".to_string()));
        assert!(recent.contains(&("id".to_string(), "endpoint".to_string())));
        assert!(!recent.contains(&("id".to_string(), "other".to_string())));
    }
}
