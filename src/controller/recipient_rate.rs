//! The operator's limit on activation emails per recipient address
//! (`--email-per-recipient-per-hour`): at most that many in any hour to one address, whatever
//! Partner asks and whatever Distributor it is bound to.
//!
//! A Distributor's `spec.email.rateLimit` counts its messages, not whom they go to, and every
//! Partner created anew is a new uid with an activation email of its own: a Partner author who
//! creates and deletes Partners in a loop with one `notificationEmail` would mail a third party
//! as often as the Distributor's limit allows. This count closes that loop.
//!
//! Addresses are written by Partner authors, so the count is kept under a hash of the address
//! (folded to lower case: a mail server treats `Victim@X` and `victim@x` alike) and holds at
//! most [`MAX_RECIPIENTS`] of them: entries whose window is over are dropped first, then the
//! one mailed longest ago. Filling the table needs that many addresses mailed within an hour,
//! which the Distributors' own limits keep far away.
//!
//! The count lives in memory. On first use after a start (or a change of leader) it is seeded
//! from the activation emails that existing Partners record as sent within the hour; what a
//! restart forgets is the emails of Partners deleted before it, within one hour.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::api::{EmailEvent, Partner, Recipient};

/// The most recipient addresses counted at once (each entry is a hash and at most the
/// limit's timestamps: a few MiB at most).
pub const MAX_RECIPIENTS: usize = 100_000;

/// The default of `--email-per-recipient-per-hour`.
pub const DEFAULT_PER_HOUR: u32 = 3;

type Key = [u8; 32];

pub struct RecipientRate {
    /// Activation emails to one address in any hour; 0: no limit.
    per_hour: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seeded: bool,
    /// Hash of the address -> when its activation emails were attempted, oldest first.
    sent: HashMap<Key, VecDeque<DateTime<Utc>>>,
}

/// A place taken by [`RecipientRate::try_take`]: given back with [`RecipientRate::give_back`]
/// when the email does not go out after all (the Distributor's limit has no room).
#[derive(Debug, PartialEq, Eq)]
pub struct Place {
    key: Key,
    at: DateTime<Utc>,
}

fn window() -> Duration {
    Duration::hours(1)
}

/// The key of `address`: the SHA-256 of its mailbox, case folded and without a `+tag`
/// (`victim+1@example.com` and `Victim@example.com` reach one inbox at most mail hosts, so they
/// are one recipient here).
fn key(address: &str) -> Key {
    let address = address.to_ascii_lowercase();
    let mailbox = match address.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => address,
    };
    Sha256::digest(mailbox.as_bytes()).into()
}

impl RecipientRate {
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            state: Mutex::default(),
        }
    }

    pub fn per_hour(&self) -> u32 {
        self.per_hour
    }

    /// Takes a place for one activation email to `address` at `now` (`None`: there is no
    /// limit), or says when the next place frees. `partners` seeds the count on first use.
    pub fn try_take(
        &self,
        address: &str,
        now: DateTime<Utc>,
        partners: impl FnOnce() -> Vec<Arc<Partner>>,
    ) -> Result<Option<Place>, DateTime<Utc>> {
        if self.per_hour == 0 {
            return Ok(None);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.seeded {
            state.seeded = true;
            seed(&mut state.sent, &partners(), now - window());
        }
        let key = key(address);
        let window_start = now - window();
        if !state.sent.contains_key(&key) {
            make_room(&mut state.sent, window_start);
        }
        let log = state.sent.entry(key).or_default();
        while log.front().is_some_and(|at| *at <= window_start) {
            log.pop_front();
        }
        let room = usize::try_from(self.per_hour).unwrap_or(usize::MAX);
        if log.len() < room {
            log.push_back(now);
            return Ok(Some(Place { key, at: now }));
        }
        Err(log[log.len() - room] + window())
    }

    /// Gives back a place: its email was not sent.
    pub fn give_back(&self, place: Place) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = state.sent.get_mut(&place.key)
            && let Some(i) = log.iter().rposition(|at| *at == place.at)
        {
            log.remove(i);
        }
    }

    /// How many addresses are counted (for tests of the bound).
    pub fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sent
            .len()
    }
}

/// Before a new address is counted: drops the addresses whose window is over, and if the
/// table is still full, the one mailed longest ago.
fn make_room(sent: &mut HashMap<Key, VecDeque<DateTime<Utc>>>, window_start: DateTime<Utc>) {
    if sent.len() < MAX_RECIPIENTS {
        return;
    }
    sent.retain(|_, log| log.back().is_some_and(|at| *at > window_start));
    while sent.len() >= MAX_RECIPIENTS {
        let oldest = sent
            .iter()
            .min_by_key(|(_, log)| log.back().copied())
            .map(|(key, _)| *key);
        match oldest {
            Some(key) => sent.remove(&key),
            None => break,
        };
    }
}

/// The activation emails to each Partner's address that Partners record as sent within the
/// window, oldest first.
fn seed(
    sent: &mut HashMap<Key, VecDeque<DateTime<Utc>>>,
    partners: &[Arc<Partner>],
    window_start: DateTime<Utc>,
) {
    let mut found: Vec<(Key, DateTime<Utc>)> = partners
        .iter()
        .filter_map(|p| Some((key(&p.spec.notification_email), p.status.as_ref()?)))
        .flat_map(|(key, status)| {
            status
                .emails
                .iter()
                .filter(|e| {
                    e.event == EmailEvent::Activation
                        && e.recipient.unwrap_or(Recipient::Partner) == Recipient::Partner
                })
                .filter_map(|e| e.sent_at)
                .filter(|at| *at > window_start)
                .map(move |at| (key, at))
        })
        .collect();
    found.sort_by_key(|(_, at)| *at);
    for (key, at) in found.into_iter().take(MAX_RECIPIENTS) {
        sent.entry(key).or_default().push_back(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        "2027-03-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn at_most_the_limit_to_one_address_in_any_hour() {
        let rate = RecipientRate::new(3);
        for minute in [0, 10, 20] {
            assert!(matches!(
                rate.try_take("victim@x.example", t(minute), Vec::new),
                Ok(Some(_))
            ));
        }
        // Case does not make another address, nor does a `+tag` (one inbox).
        assert_eq!(
            rate.try_take("Victim@X.example", t(30), Vec::new),
            Err(t(60))
        );
        assert_eq!(
            rate.try_take("victim+2@x.example", t(30), Vec::new),
            Err(t(60))
        );
        assert!(rate.try_take("other@x.example", t(30), Vec::new).is_ok());
        assert!(matches!(
            rate.try_take("victim@x.example", t(60), Vec::new),
            Ok(Some(_))
        ));
    }

    #[test]
    fn a_place_given_back_frees_it() {
        let rate = RecipientRate::new(1);
        let place = rate
            .try_take("a@x.example", t(0), Vec::new)
            .unwrap()
            .unwrap();
        assert!(rate.try_take("a@x.example", t(1), Vec::new).is_err());
        rate.give_back(place);
        assert!(rate.try_take("a@x.example", t(1), Vec::new).is_ok());
    }

    #[test]
    fn zero_is_no_limit() {
        let rate = RecipientRate::new(0);
        for _ in 0..10 {
            assert_eq!(rate.try_take("a@x.example", t(0), Vec::new), Ok(None));
        }
        assert_eq!(rate.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_drops_expired_addresses_first() {
        let rate = RecipientRate::new(3);
        // Full, with all but one address mailed over an hour ago.
        for i in 0..MAX_RECIPIENTS {
            let at = if i == 0 { t(100) } else { t(0) };
            rate.try_take(&format!("a{i}@x.example"), at, Vec::new)
                .unwrap();
        }
        assert_eq!(rate.tracked(), MAX_RECIPIENTS);
        rate.try_take("new@x.example", t(120), Vec::new).unwrap();
        assert_eq!(rate.tracked(), 2, "the expired addresses were dropped");
        // The recent one is still counted.
        for _ in 0..2 {
            rate.try_take("a0@x.example", t(121), Vec::new).unwrap();
        }
        assert!(rate.try_take("a0@x.example", t(121), Vec::new).is_err());
    }

    #[test]
    fn a_full_table_of_recent_addresses_drops_the_one_mailed_longest_ago() {
        let rate = RecipientRate::new(1);
        for i in 0..MAX_RECIPIENTS {
            let at = t(0) + Duration::milliseconds(i as i64);
            rate.try_take(&format!("a{i}@x.example"), at, Vec::new)
                .unwrap();
        }
        rate.try_take("new@x.example", t(1), Vec::new).unwrap();
        assert_eq!(rate.tracked(), MAX_RECIPIENTS);
        // a0 was dropped for it (and a1 for a0 now); a2 is still counted.
        assert!(rate.try_take("a0@x.example", t(2), Vec::new).is_ok());
        assert!(rate.try_take("a2@x.example", t(2), Vec::new).is_err());
    }

    #[test]
    fn the_count_starts_from_what_partners_record_as_sent() {
        let mut partner = crate::lifecycle::fixtures::partner();
        partner.spec.notification_email = "victim@x.example".into();
        let status = partner.status.get_or_insert_with(Default::default);
        for (minute, event) in [
            (-90, EmailEvent::Activation),
            (-30, EmailEvent::Activation),
            (-20, EmailEvent::Activation),
            (-10, EmailEvent::Converted),
        ] {
            status.emails.push(crate::api::EmailRecord {
                event,
                recipient: Some(Recipient::Partner),
                period: 0,
                message_id: format!("<{minute}@x>"),
                sent_at: Some(t(minute)),
                last_error: None,
                facts: None,
                held: None,
            });
        }
        let rate = RecipientRate::new(3);
        let partners = || vec![Arc::new(partner)];
        // Two activation emails are within the hour: one place is left.
        assert!(rate.try_take("victim@x.example", t(0), partners).is_ok());
        assert_eq!(
            rate.try_take("victim@x.example", t(1), Vec::new),
            Err(t(30))
        );
    }
}
