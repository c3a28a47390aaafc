//! How reconciliations share what is scarce: the slots that may send email, each
//! Distributor's email rate and each recipient's, the deadlines that go first, and the backoff
//! of failures. Nothing here decides what happens to a Partner, only when it may happen.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::runtime::reflector::ObjectRef;

use super::backoff::Backoff;
use super::deadlines::Deadlines;
use super::mail_rate::MailRate;
use super::mail_slots::{MailSlot, MailSlots};
use super::recipient_rate::{Place, RecipientRate};
use crate::api::{Distributor, EmailEvent, Partner, Recipient};
use crate::clock::Clock;
use crate::lifecycle::Email;
use crate::lifecycle::emails::RateLimit;

/// Of the Partner reconciliation slots (`--concurrency`), one in this many may be in the mail
/// phase (see [`MailSlots`]); the rest stay free for provisioning, deadlines and deletions
/// however slow the mail server is (with every slot free to mail, a server that never answered
/// left a new Partner without any status for two minutes). While deadline work is due, half of
/// that again, so the conversions due are not queued behind the emails of those already
/// converted: measured with 1,000 trials ending at once, with every slot free to send the last
/// conversion came 1.3 s late, with a half 0.64 s.
pub const MAIL_SLOTS_DIVISOR: usize = 2;

/// The longest a failing Partner waits between retries.
const PARTNER_BACKOFF_CAP: Duration = Duration::from_secs(300);
/// The longest a failing Distributor waits: its counts are stale meanwhile (after an API
/// outage, for example), and a recount is one cheap write.
const DISTRIBUTOR_BACKOFF_CAP: Duration = Duration::from_secs(30);

/// While deadline work is due (trials ending at once, say), webhook deliveries wait for it,
/// polling this often, for at most [`DEADLINES_FIRST_AT_MOST`]: the conversions come first,
/// their events right after.
const DEADLINES_POLL: Duration = Duration::from_millis(50);
const DEADLINES_FIRST_AT_MOST: Duration = Duration::from_secs(10);

pub struct Pacing {
    /// The reconciliations that may send email at once (see [`MailSlots`]).
    pub mail_slots: Arc<MailSlots>,
    /// Each Distributor's email rate limit (see [`MailRate`]).
    pub mail_rate: MailRate,
    /// Activation emails per recipient address (see [`RecipientRate`]).
    pub recipient_rate: RecipientRate,
    /// Each Partner's next deadline: whether deadline work is due.
    pub deadlines: Deadlines,
    /// Retries of failed reconciliations, per Partner and per Distributor.
    pub partner_backoff: Backoff<Partner>,
    pub distributor_backoff: Backoff<Distributor>,
}

/// The mail slots of `concurrency` reconciliation slots: (all, while deadline work is due).
pub fn mail_slot_counts(concurrency: u16) -> (usize, usize) {
    let mail_phase = usize::from(concurrency).div_ceil(MAIL_SLOTS_DIVISOR);
    (mail_phase, mail_phase.div_ceil(MAIL_SLOTS_DIVISOR))
}

impl Pacing {
    /// `email_per_recipient_per_hour`: the operator's limit on activation emails to one
    /// address (0: none).
    pub fn new(mail_slots: Arc<MailSlots>, email_per_recipient_per_hour: u32) -> Self {
        Self {
            mail_slots,
            mail_rate: MailRate::default(),
            recipient_rate: RecipientRate::new(email_per_recipient_per_hour),
            deadlines: Deadlines::default(),
            partner_backoff: Backoff::up_to(PARTNER_BACKOFF_CAP),
            distributor_backoff: Backoff::up_to(DISTRIBUTOR_BACKOFF_CAP),
        }
    }

    /// A slot to send email in for `partner` at `now` (fewer are free while deadline work is
    /// due), or `None` with the Partner put in line to be woken.
    pub fn mail_slot(&self, partner: &ObjectRef<Partner>, now: DateTime<Utc>) -> Option<MailSlot> {
        self.mail_slots
            .try_take(partner, self.deadlines.any_due(now))
    }

    /// Places for `email` at `now`: in its recipient's count (an activation email to a
    /// partner), then in its Distributor's; or the limit that has no room, and until when
    /// (no place is kept then). `partners` seeds the counts on first use.
    pub fn take_places(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        partners: impl Fn() -> Vec<Arc<Partner>>,
    ) -> Result<Option<Place>, (RateLimit, DateTime<Utc>)> {
        let mut place = None;
        let counted =
            email.event == EmailEvent::Activation && email.recipient == Recipient::Partner;
        if counted && let Some(address) = email.to.first() {
            match self.recipient_rate.try_take(address, now, &partners) {
                Ok(taken) => place = taken,
                Err(until) => {
                    let per_hour = self.recipient_rate.per_hour();
                    return Err((RateLimit::Recipient { per_hour }, until));
                }
            }
        }
        let room = self
            .mail_rate
            .try_take(&email.distributor, email.rate_limit, now, &partners);
        if let Err(until) = room {
            if let Some(place) = place {
                self.recipient_rate.give_back(place);
            }
            return Err((RateLimit::Distributor, until));
        }
        Ok(place)
    }

    /// Whether some Partner's deadline is due and not yet reconciled.
    pub fn deadlines_due(&self, clock: &Clock) -> bool {
        self.deadlines.any_due(clock.timestamp())
    }

    /// Waits while some Partner's deadline is due and not yet reconciled (bounded): a webhook
    /// delivery's status write would otherwise queue before the transitions that are late
    /// already.
    pub async fn deadlines_first(&self, clock: &Clock) {
        let started = tokio::time::Instant::now();
        while self.deadlines.any_due(clock.timestamp())
            && started.elapsed() < DEADLINES_FIRST_AT_MOST
        {
            tokio::time::sleep(DEADLINES_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_slots_may_mail_and_half_of_those_while_deadlines_are_due() {
        assert_eq!(mail_slot_counts(16), (8, 4));
        assert_eq!(mail_slot_counts(3), (2, 1));
        assert_eq!(mail_slot_counts(1), (1, 1));
    }
}
