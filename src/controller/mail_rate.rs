//! Each Distributor's email rate limit (`spec.email.rateLimit`): at most `messages` emails in
//! any window of `windowMinutes`, counted on the operator's clock.
//!
//! The count is a sliding log per Distributor of the moments its emails were attempted (an
//! attempt counts whether or not the server took it: a refused message still reached a mail
//! server). It lives in memory, so the lifecycle stays a pure function of what is stored; on
//! first use after a start it is seeded from the emails that the Distributor's Partners record
//! as sent within the window. What a restart forgets is only the emails of Partners deleted
//! since, within one window: documented in docs/email.md.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::api::{EmailRateLimit, Partner};

#[derive(Default)]
pub struct MailRate {
    /// Distributor name -> when its emails in the current window were attempted, oldest first.
    sent: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl MailRate {
    /// Takes a place for one email of `distributor` at `now`, or says when the next place
    /// frees. `partners` seeds the log on the Distributor's first email since the start.
    pub fn try_take(
        &self,
        distributor: &str,
        limit: EmailRateLimit,
        now: DateTime<Utc>,
        partners: impl FnOnce() -> Vec<std::sync::Arc<Partner>>,
    ) -> Result<(), DateTime<Utc>> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let log = sent
            .entry(distributor.to_owned())
            .or_insert_with(|| seed(distributor, &partners(), now - limit.window()));
        let window_start = now - limit.window();
        while log.front().is_some_and(|at| *at <= window_start) {
            log.pop_front();
        }
        let room = usize::try_from(limit.messages).unwrap_or(usize::MAX);
        if log.len() < room {
            log.push_back(now);
            return Ok(());
        }
        // The place of the email that leaves the window next; with a lowered limit, of the
        // one whose leaving brings the count under it.
        let frees = log[log.len() - room];
        Err(frees + limit.window())
    }
}

/// The sends within the window that `distributor`'s Partners record, oldest first.
fn seed(
    distributor: &str,
    partners: &[std::sync::Arc<Partner>],
    window_start: DateTime<Utc>,
) -> VecDeque<DateTime<Utc>> {
    let mut sent: Vec<_> = partners
        .iter()
        .filter(|p| p.spec.distributor_ref.name == distributor)
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.emails.iter().filter_map(|e| e.sent_at))
        .filter(|at| *at > window_start)
        .collect();
    sent.sort();
    sent.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn limit(messages: u32, window_minutes: u32) -> EmailRateLimit {
        EmailRateLimit {
            messages,
            window_minutes,
        }
    }

    fn t(minutes: i64) -> DateTime<Utc> {
        "2027-03-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn at_most_the_limit_in_any_window() {
        let rate = MailRate::default();
        let three_per_hour = limit(3, 60);
        for minute in [0, 10, 20] {
            assert_eq!(
                rate.try_take("n", three_per_hour, t(minute), Vec::new),
                Ok(())
            );
        }
        // The fourth waits until the first leaves the window.
        assert_eq!(
            rate.try_take("n", three_per_hour, t(30), Vec::new),
            Err(t(60))
        );
        assert_eq!(rate.try_take("n", three_per_hour, t(60), Vec::new), Ok(()));
        assert_eq!(
            rate.try_take("n", three_per_hour, t(61), Vec::new),
            Err(t(70))
        );
        // Another Distributor has its own count.
        assert_eq!(
            rate.try_take("other", three_per_hour, t(61), Vec::new),
            Ok(())
        );
    }

    #[test]
    fn a_lowered_limit_waits_until_the_count_is_under_it() {
        let rate = MailRate::default();
        for minute in [0, 1, 2, 3] {
            assert!(
                rate.try_take("n", limit(10, 60), t(minute), Vec::new)
                    .is_ok()
            );
        }
        assert_eq!(rate.try_take("n", limit(2, 60), t(5), Vec::new), Err(t(62)));
    }

    #[test]
    fn the_count_starts_from_what_partners_record_as_sent() {
        let mut partner = crate::lifecycle::fixtures::partner();
        let status = partner.status.get_or_insert_with(Default::default);
        for minute in [-90, -30, -20] {
            status.emails.push(crate::api::EmailRecord {
                event: crate::api::EmailEvent::Activation,
                recipient: None,
                period: 0,
                message_id: format!("<{minute}@x>"),
                sent_at: Some(t(minute)),
                last_error: None,
                facts: None,
                held: None,
            });
        }
        let rate = MailRate::default();
        let partners = || vec![std::sync::Arc::new(partner)];
        // Two of the three are within the hour: one place is left.
        assert_eq!(
            rate.try_take("northwind", limit(3, 60), t(0), partners),
            Ok(())
        );
        assert_eq!(
            rate.try_take("northwind", limit(3, 60), t(1), Vec::new),
            Err(t(30))
        );
    }
}
