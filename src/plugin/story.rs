//! `kubectl partner status`: a Partner's story so far and its next step.
//!
//! The story is read from the status (every transition leaves a timestamp there), and from
//! the Events for what the status no longer keeps ([`told_by_events`]). The next step
//! is not guessed: it is what the operator's own pure lifecycle ([`crate::lifecycle::plan`])
//! decides when it looks at the Partner at its next deadline, carried forward as if every write
//! succeeded ([`crate::lifecycle::simulate`]), so `status` says what the operator will really
//! do, with the same rules (auto-upgrade from the Partner or its Distributor, the notice's lead
//! time, a refused date, an expiration date that ends Production).

mod facts;
mod history;
mod outlook;
mod told;
mod waiting;

use chrono::{DateTime, Utc};

pub use facts::{activation_word, auto_upgrade, facts, facts_lines};
pub use history::history;
pub use outlook::outlook;
pub use told::{Seen, told_by_events};

use crate::api::{Distributor, Partner, PartnerStatus};

/// What the plugin knows of a Partner's world.
#[derive(Clone, Copy)]
pub struct World<'a> {
    pub partner: &'a Partner,
    /// Its Distributor, when it exists (and could be read).
    pub distributor: Option<&'a Distributor>,
    /// Whether the Partner's namespace may bind to the Distributor.
    pub namespace_allowed: bool,
    pub now: DateTime<Utc>,
}

/// One moment of the story.
#[derive(Clone, Debug, PartialEq)]
pub struct Moment {
    pub at: DateTime<Utc>,
    pub what: String,
}

/// The Partner's status as the plugin reads it: none yet is an empty one.
fn status_of(partner: &Partner) -> PartnerStatus {
    partner.status.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::api::*;

    use crate::lifecycle::fixtures::t0;

    /// The lifecycle's Distributor, with `auto_upgrade` for its trials.
    fn distributor(auto_upgrade: bool) -> Distributor {
        let mut d = crate::lifecycle::fixtures::distributor();
        d.spec.trial.auto_upgrade = auto_upgrade;
        d
    }

    /// The lifecycle's Partner, created at [`t0`] (the story starts from its creation).
    fn partner() -> Partner {
        let mut p = crate::lifecycle::fixtures::partner();
        p.metadata.creation_timestamp =
            serde_json::from_value(serde_json::json!(t0().to_rfc3339())).ok();
        assert!(p.metadata.creation_timestamp.is_some());
        p
    }

    /// `partner` as the operator leaves it at `at`, emails sent.
    fn lived(partner: &Partner, d: &Distributor, at: DateTime<Utc>) -> Partner {
        let world = World {
            partner,
            distributor: Some(d),
            namespace_allowed: true,
            now: at,
        };
        let look = outlook::look_at(&world, partner, at);
        assert!(look.settled());
        look.partner
    }

    fn outlook_of(p: &Partner, d: &Distributor, now: DateTime<Utc>) -> Vec<String> {
        outlook(&World {
            partner: p,
            distributor: Some(d),
            namespace_allowed: true,
            now,
        })
    }

    #[test]
    fn a_conversion_by_hand_is_told_as_the_trials_early_end() {
        let d = distributor(true);
        let trial = lived(&partner(), &d, t0());
        let mut converted = trial.clone();
        converted.spec.subscription.level = crate::api::RequestedLevel::Production;
        let converted = lived(&converted, &d, t0() + Duration::days(2));
        let story: Vec<String> = history(&converted).into_iter().map(|m| m.what).collect();
        assert!(
            story.iter().any(|line| line.ends_with(
                "provisioned; a trial, ended early by the conversion at 2027-03-03T09:00:00Z"
            )),
            "{story:?}"
        );
    }

    #[test]
    fn a_fresh_trial_tells_the_notice_then_the_conversion() {
        let d = distributor(true);
        let p = lived(&partner(), &d, t0());
        assert_eq!(
            outlook_of(&p, &d, t0() + Duration::days(1)),
            [
                "next: 2027-03-12T09:00:00Z (in 10 days)",
                "  the notice: the trial converts to Production on 2027-03-15T09:00:00Z",
                "  email upgrade-notice to admin@contoso.example, ops@northwind.example",
                "then: 2027-03-15T09:00:00Z (in 13 days)",
                "  the trial ends and converts to Production (auto-upgrade on, the Distributor's \
                 default); billing to northwind starts then",
                "  email converted to admin@contoso.example, ops@northwind.example",
            ]
        );
        let story: Vec<String> = history(&p).into_iter().map(|m| m.what).collect();
        let tenant = &p
            .status
            .as_ref()
            .unwrap()
            .tenant
            .as_ref()
            .unwrap()
            .namespace;
        assert!(tenant.starts_with("partners-contoso-"), "{tenant}");
        assert_eq!(
            story,
            [
                "created: Contoso <admin@contoso.example>, for Distributor northwind",
                "bound to Distributor northwind",
                &format!("tenant {tenant} provisioned; trial until 2027-03-15T09:00:00Z"),
                "activation email sent to admin@contoso.example (link valid until 2027-03-08T09:00:00Z)",
            ]
        );
    }

    #[test]
    fn auto_upgrade_off_says_the_trial_expires_and_how_to_keep_it() {
        let d = distributor(true);
        let mut p = partner();
        p.spec.subscription.auto_upgrade = Some(false);
        let p = lived(&p, &d, t0());
        let p = lived(&p, &d, t0() + Duration::days(11));
        let outlook = outlook_of(&p, &d, t0() + Duration::days(12));
        assert_eq!(
            outlook,
            [
                "next: 2027-03-15T09:00:00Z (in 2 days)",
                "  the trial ends and expires, unbilled: auto-upgrade is off \
                 (spec.subscription.autoUpgrade); `kubectl partner convert contoso` or `kubectl \
                 partner auto-upgrade contoso on` before then keeps it",
                "  email trial-expired to admin@contoso.example, ops@northwind.example",
            ]
        );
        let p = lived(&p, &d, t0() + Duration::days(14));
        assert_eq!(
            outlook_of(&p, &d, t0() + Duration::days(15)),
            [
                "nothing is scheduled: the trial expired without conversion (auto-upgrade was off, \
              spec.subscription.autoUpgrade); `kubectl partner convert contoso` converts it to \
              Production"
            ]
        );
        let story: Vec<String> = history(&p).into_iter().map(|m| m.what).collect();
        assert_eq!(
            story[4],
            "notice sent: the trial expires on 2027-03-15T09:00:00Z"
        );
        assert_eq!(
            story[5],
            "trial ended without conversion: Expired, unbilled"
        );
    }

    #[test]
    fn production_with_a_date_tells_its_end_and_without_one_that_nothing_ends_it() {
        let d = distributor(true);
        let p = lived(&partner(), &d, t0());
        let mut converted = p.clone();
        converted.spec.subscription.level = RequestedLevel::Production;
        converted.spec.subscription.expiration_date = Some(t0() + Duration::days(30));
        let converted = lived(&converted, &d, t0() + Duration::days(2));
        assert_eq!(
            outlook_of(&converted, &d, t0() + Duration::days(2)),
            [
                "next: 2027-03-31T09:00:00Z (in 28 days)",
                "  Production ends at its expiration date and billing to northwind ends; \
                 `kubectl partner renew contoso --expires DATE` extends it",
                "  email production-expired to admin@contoso.example, ops@northwind.example",
            ]
        );
        let story: Vec<String> = history(&converted).into_iter().map(|m| m.what).collect();
        assert_eq!(
            story.last().unwrap(),
            "converted to Production by hand; billing to northwind starts (billing period 1)"
        );
        let ended = lived(&converted, &d, t0() + Duration::days(30));
        let story: Vec<String> = history(&ended).into_iter().map(|m| m.what).collect();
        assert_eq!(
            story.last().unwrap(),
            "Production expired at its expiration date; billing period 1 ended"
        );
        let mut open = p.clone();
        open.spec.subscription.level = RequestedLevel::Production;
        let open = lived(&open, &d, t0() + Duration::days(2));
        assert_eq!(
            outlook_of(&open, &d, t0() + Duration::days(2)),
            [
                "nothing is scheduled: Production has no expiration date, billing to northwind goes \
              on (`kubectl partner renew contoso --expires DATE` sets one)"
            ]
        );
    }

    #[test]
    fn held_up_work_is_said_first() {
        let d = distributor(true);
        // Decided but not sent: the activation email failing, then waiting for a slot.
        let world = World {
            partner: &partner(),
            distributor: Some(&d),
            namespace_allowed: true,
            now: t0(),
        };
        let mut p = partner();
        let mut status = outlook::look_at(&world, &p, t0()).plans[0].status.clone();
        status.emails[0].last_error = Some("550 mailbox unavailable".into());
        p.status = Some(status.clone());
        assert_eq!(
            outlook_of(&p, &d, t0())[0],
            "the activation email to admin@contoso.example is failing: 550 mailbox unavailable; \
             the operator retries with backoff"
        );
        status.emails[0].last_error = None;
        p.status = Some(status.clone());
        assert_eq!(
            outlook_of(&p, &d, t0())[0],
            "the activation email to admin@contoso.example is decided and waits for a mail slot: \
             the operator sends it in turn"
        );
        // Held back on purpose: said with the hold's reason.
        let mut held = status.clone();
        held.emails[0].held = Some(EmailHold {
            reason: EmailHoldReason::RateLimited,
            until: Some(t0() + Duration::minutes(30)),
            partner_generation: None,
            distributor_generation: None,
        });
        p.status = Some(held.clone());
        assert_eq!(
            outlook_of(&p, &d, t0())[0],
            "the activation email to admin@contoso.example is held by the Distributor's rate \
             limit; it goes out from 2027-03-01T09:30:00Z (in 30 minutes)"
        );
        held.emails[0].last_error = Some(
            "admin@contoso.example was sent 3 activation emails within the hour, the most the \
             operator sends one address (--email-per-recipient-per-hour); next room at \
             2027-03-01T09:30:00+00:00"
                .into(),
        );
        p.status = Some(held.clone());
        assert_eq!(
            outlook_of(&p, &d, t0())[0],
            "the activation email to admin@contoso.example is held by the operator's limit of \
             activation emails per recipient address; it goes out from 2027-03-01T09:30:00Z (in \
             30 minutes)"
        );
        held.emails[0].held.as_mut().unwrap().reason = EmailHoldReason::Refused;
        held.emails[0].last_error = Some("550 no such user".into());
        p.status = Some(held);
        assert_eq!(
            outlook_of(&p, &d, t0())[0],
            "the activation email to admin@contoso.example was refused for good by the SMTP \
             server: 550 no such user; it is tried again once the Partner's or the Distributor's \
             spec changes"
        );
    }

    #[test]
    fn an_email_held_by_the_rate_limit_is_told_when_it_goes_out() {
        let d = distributor(true);
        let world = World {
            partner: &partner(),
            distributor: Some(&d),
            namespace_allowed: true,
            now: t0(),
        };
        let mut p = partner();
        let mut status = outlook::look_at(&world, &p, t0()).plans[0].status.clone();
        status.emails[0].held = Some(EmailHold {
            reason: EmailHoldReason::RateLimited,
            until: Some(t0() + Duration::minutes(30)),
            partner_generation: None,
            distributor_generation: None,
        });
        p.status = Some(status);
        assert_eq!(
            outlook_of(&p, &d, t0())[1..3],
            [
                "next: 2027-03-01T09:30:00Z (in 30 minutes)",
                "  email activation to admin@contoso.example",
            ]
        );
    }

    #[test]
    fn work_due_and_not_done_and_an_unbound_partner_are_said_first() {
        let d = distributor(true);
        // A deadline passed that the operator has not acted on.
        let settled = lived(&partner(), &d, t0());
        let late = outlook_of(&settled, &d, t0() + Duration::days(15));
        assert!(
            late[0].starts_with(
                "due now, not done yet (is the operator running?): the trial ends and converts"
            ),
            "{late:?}"
        );
        // Unbound: nothing happens, and why.
        let unbound = outlook(&World {
            partner: &partner(),
            distributor: None,
            namespace_allowed: false,
            now: t0(),
        });
        assert_eq!(
            unbound,
            [
                "nothing happens until the Partner is bound to a Distributor (the operator has not looked at it yet)"
            ]
        );
        assert_eq!(activation_word(&partner()), "-");
        assert_eq!(activation_word(&settled), "sent");
        // The link expired unused: said so, not "sent".
        let mut expired = settled.clone();
        let status = expired.status.as_mut().unwrap();
        let activated = status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == crate::api::types::ACTIVATED)
            .expect("an Activated condition");
        activated.reason = crate::lifecycle::reasons::ACTIVATION_LINK_EXPIRED.into();
        assert_eq!(activation_word(&expired), "link expired");
    }
}
