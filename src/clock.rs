//! The one clock the operator, the sandbox API server and the tests read time from.
//!
//! Production runs on the system clock. The sandbox runs it `speed` times faster so that a
//! two-week trial can be watched in seconds, and tests freeze it and move it by hand. Whoever
//! waits for a deadline must wait through [`Clock::sleep_until`], which wakes up early when the
//! clock is moved, so a jump forward is seen at once rather than after the old real-time delay.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

/// A cheaply clonable handle on a shared clock.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Bumped on every jump (`advance`, `set`), so sleepers re-evaluate their deadline.
    jumps: watch::Sender<u64>,
}

/// `now = virtual_base + (Instant::now() - real_base) * speed`.
#[derive(Debug, Clone, Copy)]
struct State {
    real_base: Instant,
    virtual_base: DateTime<Utc>,
    speed: f64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::new(Utc::now(), 1.0)
    }

    /// A clock that starts at the current time and runs `speed` times faster than real time
    /// (86400 = a day a second). `speed` must be positive.
    pub fn scaled(speed: f64) -> Self {
        assert!(
            speed > 0.0 && speed.is_finite(),
            "clock speed must be positive"
        );
        Self::new(Utc::now(), speed)
    }

    /// A clock frozen at `start`; it moves only through [`Clock::advance`] and [`Clock::set`].
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self::new(start, 0.0)
    }

    fn new(start: DateTime<Utc>, speed: f64) -> Self {
        let (jumps, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    real_base: Instant::now(),
                    virtual_base: start,
                    speed,
                }),
                jumps,
            }),
        }
    }

    /// How many times faster than real time this clock runs (0 = frozen).
    pub fn speed(&self) -> f64 {
        self.inner.state.lock().unwrap().speed
    }

    /// The current time on this clock.
    pub fn now(&self) -> DateTime<Utc> {
        let state = *self.inner.state.lock().unwrap();
        Self::now_of(&state)
    }

    /// The current time in whole seconds: what is written into the API. Kubernetes
    /// timestamps (`metav1.Time`) have second precision, and a status that reads
    /// `2026-12-09T03:44:38Z` is easier to compare by eye than one with nanoseconds.
    pub fn timestamp(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        self.now().trunc_subsecs(0)
    }

    fn now_of(state: &State) -> DateTime<Utc> {
        if state.speed == 0.0 {
            return state.virtual_base;
        }
        let real = state.real_base.elapsed().as_secs_f64() * state.speed;
        state.virtual_base + Duration::microseconds((real * 1e6) as i64)
    }

    /// Moves the clock forward (or backward, for a negative `by`) and wakes every sleeper.
    pub fn advance(&self, by: Duration) {
        self.rebase(|now| now + by);
    }

    /// Sets the clock to `at` and wakes every sleeper.
    pub fn set(&self, at: DateTime<Utc>) {
        self.rebase(|_| at);
    }

    fn rebase(&self, to: impl FnOnce(DateTime<Utc>) -> DateTime<Utc>) {
        {
            let mut state = self.inner.state.lock().unwrap();
            let now = Self::now_of(&state);
            state.virtual_base = to(now);
            state.real_base = Instant::now();
        }
        self.inner.jumps.send_modify(|n| *n += 1);
    }

    /// Real time left until `at` on this clock: zero when `at` has passed, `None` when the
    /// clock is frozen and `at` lies ahead (only a jump will get there).
    pub fn real_duration_until(&self, at: DateTime<Utc>) -> Option<std::time::Duration> {
        let state = *self.inner.state.lock().unwrap();
        let left = at - Self::now_of(&state);
        if left <= Duration::zero() {
            return Some(std::time::Duration::ZERO);
        }
        if state.speed == 0.0 {
            return None;
        }
        let secs = left
            .num_microseconds()
            .map_or(f64::MAX, |us| us as f64 / 1e6)
            / state.speed;
        Some(std::time::Duration::from_secs_f64(secs.min(1e9)))
    }

    /// A receiver that changes whenever the clock jumps.
    pub fn jumps(&self) -> watch::Receiver<u64> {
        self.inner.jumps.subscribe()
    }

    /// Waits until `at` on this clock, waking on every jump to re-check.
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut jumps = self.jumps();
        loop {
            match self.real_duration_until(at) {
                Some(d) if d.is_zero() => return,
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = jumps.changed() => {}
                    }
                }
                None => {
                    if jumps.changed().await.is_err() {
                        // The clock is gone; nobody can move it any more.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_moves_only_by_hand() {
        let clock = Clock::manual(t0());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now(), t0());
        clock.advance(Duration::days(14));
        assert_eq!(clock.now(), t0() + Duration::days(14));
        clock.set(t0());
        assert_eq!(clock.now(), t0());
        assert_eq!(clock.real_duration_until(t0() + Duration::seconds(1)), None);
        assert_eq!(
            clock.real_duration_until(t0()),
            Some(std::time::Duration::ZERO)
        );
    }

    #[test]
    fn scaled_clock_runs_faster() {
        let clock = Clock::scaled(86400.0);
        let start = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 20 ms at a day a second is at least 28 minutes.
        assert!(clock.now() - start >= Duration::minutes(28));
        let wait = clock
            .real_duration_until(clock.now() + Duration::days(1))
            .unwrap();
        assert!(wait <= std::time::Duration::from_secs(1));
    }

    #[tokio::test]
    async fn sleepers_wake_on_a_jump() {
        let clock = Clock::manual(t0());
        let deadline = t0() + Duration::days(3);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::days(3));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .unwrap();
    }
}
