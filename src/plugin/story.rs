//! `kubectl partner status`: a Partner's story so far and its next step.
//!
//! The story is read from the status (every transition leaves a timestamp there). The next step
//! is not guessed: it is what the operator's own pure lifecycle ([`lifecycle::plan`]) decides
//! when it looks at the Partner at its next deadline, so `status` says what the operator will
//! really do, with the same rules (auto-upgrade from the Partner or its Distributor, the
//! notice's lead time, a refused date, an expiration date that ends Production).

use chrono::{DateTime, Utc};

use super::dates::{exact, exact_and_relative};
use crate::api::{
    Distributor, EmailEvent, EmailHoldReason, EmailRecord, Partner, PartnerStatus,
    ProductionReason, Recipient, RequestedLevel, SubscriptionLevel, find_condition, types,
};
use crate::lifecycle::{self, Effect, Observation, Plan};

/// The condition a future activation service sets once the partner followed its link.
pub const ACTIVATED: &str = "Activated";

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

fn status_of(partner: &Partner) -> PartnerStatus {
    partner.status.clone().unwrap_or_default()
}

/// Whether the trial converts by itself, and who says so.
pub fn auto_upgrade(
    partner: &Partner,
    distributor: Option<&Distributor>,
) -> (Option<bool>, &'static str) {
    match partner.spec.subscription.auto_upgrade {
        Some(on) => (Some(on), "spec.subscription.autoUpgrade"),
        None => (
            distributor.map(|d| d.spec.trial.auto_upgrade),
            "the Distributor's default",
        ),
    }
}

/// The activation as one word: `activated`, `sent`, `held` (by the Distributor's email policy
/// or a refusal for good), `failing`, `pending`, or `-` before there is a tenant.
pub fn activation_word(partner: &Partner) -> &'static str {
    let status = status_of(partner);
    if find_condition(&status.conditions, ACTIVATED).is_some_and(|c| c.status == "True") {
        return "activated";
    }
    if status
        .activation
        .as_ref()
        .is_some_and(|a| a.sent_at.is_some())
    {
        return "sent";
    }
    let unsent = |e: &&EmailRecord| e.event == EmailEvent::Activation && e.sent_at.is_none();
    if status
        .emails
        .iter()
        .filter(unsent)
        .any(|e| e.held.is_some())
    {
        return "held";
    }
    let failing = status
        .emails
        .iter()
        .filter(unsent)
        .any(|e| e.last_error.is_some());
    match (failing, status.tenant.is_some()) {
        (true, _) => "failing",
        (false, true) => "pending",
        (false, false) => "-",
    }
}

/// The facts `add` and `status` print first, label and value.
pub fn facts(
    partner: &Partner,
    distributor: Option<&Distributor>,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let status = status_of(partner);
    let level = status.subscription_level.unwrap_or_default();
    let mut facts = vec![
        (
            "organization",
            format!(
                "{} <{}>",
                partner.spec.organization_name, partner.spec.notification_email
            ),
        ),
        (
            "distributor",
            match distributor {
                Some(d) => format!(
                    "{} ({})",
                    partner.spec.distributor_ref.name, d.spec.organization_name
                ),
                None => partner.spec.distributor_ref.name.clone(),
            },
        ),
    ];
    let ready = find_condition(&status.conditions, types::READY);
    let readiness = match ready {
        Some(c) if c.status == "True" => "Ready".to_string(),
        Some(c) => format!("not Ready: {}", c.reason),
        None => "not looked at yet".to_string(),
    };
    facts.push(("level", format!("{level}, {readiness}")));
    if let Some(tenant) = &status.tenant {
        facts.push(("tenant", format!("{} (id {})", tenant.namespace, tenant.id)));
    }
    if level == SubscriptionLevel::Trial
        && let Some(trial) = &status.trial
    {
        facts.push(("trial ends", exact_and_relative(trial.ends_at, now)));
    }
    if level == SubscriptionLevel::Production {
        facts.push((
            "expires",
            match status.expires_at {
                Some(at) => exact_and_relative(at, now),
                None => "never (no expiration date)".into(),
            },
        ));
    }
    if matches!(level, SubscriptionLevel::Trial | SubscriptionLevel::Expired)
        && status.production.is_none()
    {
        let (on, source) = auto_upgrade(partner, distributor);
        let word = match on {
            Some(true) => "on",
            Some(false) => "off",
            None => "the Distributor's default",
        };
        facts.push(("auto-upgrade", format!("{word} ({source})")));
    }
    if let Some(billing) = &status.billing {
        facts.push((
            "billing",
            match billing.ended_at {
                None => format!(
                    "to {} since {}",
                    billing.billed_to,
                    exact_and_relative(billing.started_at, now)
                ),
                Some(ended) => format!(
                    "to {} ended {}",
                    billing.billed_to,
                    exact_and_relative(ended, now)
                ),
            },
        ));
    }
    let activation = match (activation_word(partner), &status.activation) {
        ("sent", Some(a)) => format!(
            "email sent to {} at {}",
            partner.spec.notification_email,
            a.sent_at.map(exact).unwrap_or_default()
        ),
        (word, _) => word.to_string(),
    };
    facts.push(("activation", activation));
    facts
}

/// Facts as aligned `label: value` lines.
pub fn facts_lines(facts: &[(&str, String)]) -> String {
    let width = facts.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 1;
    facts
        .iter()
        .map(|(label, value)| format!("{:<width$} {value}\n", format!("{label}:")))
        .collect()
}

/// The story so far, oldest first.
pub fn history(partner: &Partner) -> Vec<Moment> {
    let status = status_of(partner);
    let mut story = vec![];
    let mut say = |at: DateTime<Utc>, what: String| story.push(Moment { at, what });
    if let Some(created) = &partner.metadata.creation_timestamp {
        say(
            crate::api::chrono_time(created),
            format!(
                "created: {} <{}>, for Distributor {}",
                partner.spec.organization_name,
                partner.spec.notification_email,
                partner.spec.distributor_ref.name
            ),
        );
    }
    if let Some(bound) = find_condition(&status.conditions, types::DISTRIBUTOR_BOUND) {
        let at = crate::api::chrono_time(&bound.last_transition_time);
        if bound.status == "True" {
            say(
                at,
                format!("bound to Distributor {}", partner.spec.distributor_ref.name),
            );
        } else {
            say(
                at,
                format!("not bound: {}: {}", bound.reason, bound.message),
            );
        }
    }
    if let Some(tenant) = &status.tenant {
        let trial = match &status.trial {
            Some(trial) => format!("; trial until {}", exact(trial.ends_at)),
            None => String::new(),
        };
        say(
            tenant.provisioned_at,
            format!("tenant {} provisioned{trial}", tenant.namespace),
        );
    }
    if let Some(activation) = &status.activation
        && let Some(sent) = activation.sent_at
    {
        let until = activation
            .link_expires_at
            .map(|at| format!(" (link valid until {})", exact(at)))
            .unwrap_or_default();
        say(
            sent,
            format!(
                "activation email sent to {}{until}",
                partner.spec.notification_email
            ),
        );
    }
    if let Some(activated) = find_condition(&status.conditions, ACTIVATED)
        && activated.status == "True"
    {
        say(
            crate::api::chrono_time(&activated.last_transition_time),
            "activated by the partner".into(),
        );
    }
    if let Some(at) = status.upgrade_notice_sent_at {
        let ends = status
            .trial
            .as_ref()
            .map(|t| exact(t.ends_at))
            .unwrap_or_default();
        let what = if sent_event(&status, EmailEvent::ExpiryNotice) {
            format!("notice sent: the trial expires on {ends}")
        } else {
            format!("notice sent: the trial converts to Production on {ends}")
        };
        say(at, what);
    }
    let production = status.production.clone();
    let billing = status.billing.clone();
    let periods = billing
        .as_ref()
        .map(|b| {
            if b.periods.is_empty() {
                vec![crate::api::BillingPeriod {
                    started_at: b.started_at,
                    ended_at: b.ended_at,
                }]
            } else {
                b.periods.clone()
            }
        })
        .unwrap_or_default();
    let billed_to = billing
        .as_ref()
        .map(|b| b.billed_to.clone())
        .unwrap_or_default();
    for (i, period) in periods.iter().enumerate() {
        let n = i + 1;
        let how = if i > 0 {
            "Production renewed".to_string()
        } else {
            match production.as_ref().map(|p| p.reason) {
                _ if status.trial.is_none() => {
                    "started in Production (created as Production)".into()
                }
                Some(ProductionReason::AutoUpgrade) => {
                    "converted to Production automatically at the trial's end (auto-upgrade)".into()
                }
                Some(ProductionReason::Manual) => "converted to Production by hand".into(),
                Some(ProductionReason::Renewal) | None => "entered Production".into(),
            }
        };
        say(
            period.started_at,
            format!("{how}; billing to {billed_to} starts (billing period {n})"),
        );
        if let Some(ended) = period.ended_at {
            let why = if status
                .emails
                .iter()
                .any(|e| e.event == EmailEvent::ProductionExpired && e.period as usize == i)
            {
                "Production expired at its expiration date"
            } else {
                "Production ended"
            };
            say(ended, format!("{why}; billing period {n} ended"));
        }
    }
    if status.subscription_level == Some(SubscriptionLevel::Expired)
        && production.is_none()
        && let Some(trial) = &status.trial
    {
        say(
            trial.ends_at,
            "trial ended without conversion: Expired, unbilled".into(),
        );
    }
    story.sort_by_key(|m| m.at);
    story
}

fn sent_event(status: &PartnerStatus, event: EmailEvent) -> bool {
    status.emails.iter().any(|e| e.event == event)
}

/// The operator's plan for the Partner as it would be at `at`.
fn plan_at(world: &World, partner: &Partner, at: DateTime<Utc>) -> Plan {
    let status = status_of(partner);
    let entitlements = crate::tenant::entitlements_data(partner, &status);
    lifecycle::plan(&Observation {
        partner,
        distributor: world.distributor,
        namespace_allowed: world.namespace_allowed,
        tenant_exists: status.tenant.is_some(),
        tenant_taken: false,
        entitlements: entitlements.as_ref(),
        // Whether a link can be made is what the ActivationSent condition says; here the
        // operator is assumed to have a link base, as one that sends activation emails does.
        default_activation_base_url: Some("https://activation.invalid/"),
        now: at,
    })
}

/// `partner` with `status`, every email in it sent at `at`.
fn settled(partner: &Partner, mut status: PartnerStatus, at: DateTime<Utc>) -> Partner {
    let ids: Vec<String> = status
        .emails
        .iter()
        .filter(|e| e.sent_at.is_none())
        .map(|e| e.message_id.clone())
        .collect();
    for id in ids {
        lifecycle::mark_email_sent(&mut status, &id, at);
    }
    let mut partner = partner.clone();
    partner.status = Some(status);
    partner
}

/// What one look of the operator changes: sentences, then the emails it sends.
fn describe(
    world: &World,
    before: &PartnerStatus,
    plan: &Plan,
    recipients: &[(EmailEvent, Vec<String>)],
) -> Vec<String> {
    let partner = world.partner;
    let name = partner.metadata.name.clone().unwrap_or_default();
    let distributor = &partner.spec.distributor_ref.name;
    let after = &plan.status;
    let mut lines = vec![];
    let (level_before, level_after) = (
        before.subscription_level.unwrap_or_default(),
        after.subscription_level.unwrap_or_default(),
    );
    let (_, source) = auto_upgrade(partner, world.distributor);
    use SubscriptionLevel::*;
    match (level_before, level_after) {
        (Trial, Production) => lines.push(match after.production.as_ref().map(|p| p.reason) {
            Some(ProductionReason::AutoUpgrade) => format!(
                "the trial ends and converts to Production (auto-upgrade on, {source}); \
                 billing to {distributor} starts then"
            ),
            _ => format!("converts to Production (by hand); billing to {distributor} starts then"),
        }),
        (Trial, Expired) => lines.push(format!(
            "the trial ends and expires, unbilled: auto-upgrade is off ({source}); \
             `kubectl partner convert {name}` or `kubectl partner auto-upgrade {name} on` \
             before then keeps it"
        )),
        (Production, Expired) => lines.push(format!(
            "Production ends at its expiration date and billing to {distributor} ends; \
             `kubectl partner renew {name} --expires DATE` extends it"
        )),
        (Expired, Production) => lines.push(format!(
            "returns to Production; billing to {distributor} starts again"
        )),
        _ => {}
    }
    let mut told = vec![];
    for record in new_records(before, after) {
        // One record per recipient: the notice is told once.
        if told.contains(&record.event) {
            continue;
        }
        told.push(record.event);
        match record.event {
            EmailEvent::UpgradeNotice => lines.push(format!(
                "the notice: the trial converts to Production on {}",
                after
                    .trial
                    .as_ref()
                    .map(|t| exact(t.ends_at))
                    .unwrap_or_default()
            )),
            EmailEvent::ExpiryNotice => lines.push(format!(
                "the notice: the trial expires on {}",
                after
                    .trial
                    .as_ref()
                    .map(|t| exact(t.ends_at))
                    .unwrap_or_default()
            )),
            _ => {}
        }
    }
    for (event, to) in recipients {
        lines.push(format!("email {} to {}", event.as_str(), to.join(", ")));
    }
    lines
}

fn new_records<'a>(before: &PartnerStatus, after: &'a PartnerStatus) -> Vec<&'a EmailRecord> {
    after
        .emails
        .iter()
        .filter(|e| !before.emails.iter().any(|b| b.message_id == e.message_id))
        .collect()
}

/// The emails a plan sends, in this pass or the next (after a level moved).
fn recipients(
    world: &World,
    partner: &Partner,
    plan: &Plan,
    at: DateTime<Utc>,
) -> Vec<(EmailEvent, Vec<String>)> {
    let sends = |plan: &Plan| -> Vec<(EmailEvent, Vec<String>)> {
        plan.effects
            .iter()
            .filter_map(|e| match e {
                Effect::SendEmail(email) => Some((email.event, email.to.clone())),
                _ => None,
            })
            .collect()
    };
    let mut all = sends(plan);
    if plan.effects.contains(&Effect::SendEmailsNextPass) {
        let mut next = partner.clone();
        next.status = Some(plan.status.clone());
        all.extend(sends(&plan_at(world, &next, at)));
    }
    // Each recipient gets a message of its own: one line per kind of email.
    let mut out: Vec<(EmailEvent, Vec<String>)> = vec![];
    for (event, to) in all {
        match out.iter_mut().find(|(e, _)| *e == event) {
            Some((_, all_to)) => {
                for t in to {
                    if !all_to.contains(&t) {
                        all_to.push(t);
                    }
                }
            }
            None => out.push((event, to)),
        }
    }
    out
}

/// The next step: what is held up now, then the next deadlines (up to two) and what the
/// operator does at each, or why nothing is scheduled.
pub fn outlook(world: &World) -> Vec<String> {
    let partner = world.partner;
    let name = partner.metadata.name.clone().unwrap_or_default();
    let status = status_of(partner);
    let level = status.subscription_level.unwrap_or_default();
    let mut lines = vec![];

    if level == SubscriptionLevel::Pending {
        let why = find_condition(&status.conditions, types::DISTRIBUTOR_BOUND)
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "the operator has not looked at it yet".into());
        lines.push(format!(
            "nothing happens until the Partner is bound to a Distributor ({why})"
        ));
        return lines;
    }
    for record in status.emails.iter().filter(|e| e.sent_at.is_none()) {
        let line = unsent_line(world, record);
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    if let Some(ready) = find_condition(&status.conditions, types::READY)
        && ready.reason == lifecycle::reasons::EXPIRATION_DATE_IN_PAST
    {
        lines.push(format!("a conversion is refused: {}", ready.message));
    }

    // What the operator would change if it looked now: due work it has not done yet.
    let now_plan = plan_at(world, partner, world.now);
    let due = describe(world, &status, &now_plan, &[]);
    if !due.is_empty() {
        lines.push(format!(
            "due now, not done yet (is the operator running?): {}",
            due.join("; ")
        ));
    }

    let mut current = settled(partner, now_plan.status.clone(), world.now);
    let mut next_review = now_plan.next_review;
    // The next two deadlines at which something this tells happens (a deadline that only
    // turns a condition, such as the activation link's expiry, is passed over).
    let mut step = 0;
    for _ in 0..8 {
        if step == 2 {
            break;
        }
        let Some(at) = next_review else {
            if step == 0 {
                lines.push(nothing_scheduled(world, &current, &name));
            }
            break;
        };
        let before = status_of(&current);
        let plan = plan_at(world, &current, at);
        let to = recipients(world, &current, &plan, at);
        let what = describe(world, &before, &plan, &to);
        next_review = plan.next_review;
        current = settled(&current, plan.status, at);
        if what.is_empty() {
            continue;
        }
        let label = if step == 0 { "next" } else { "then" };
        lines.push(format!("{label}: {}", exact_and_relative(at, world.now)));
        lines.extend(what.into_iter().map(|w| format!("  {w}")));
        step += 1;
    }
    lines
}

/// Why an email decided earlier has not gone out: held back on purpose (the Distributor's
/// rate limit, a recipient domain it does not allow, a refusal for good), failing and retried,
/// or waiting for a mail slot.
fn unsent_line(world: &World, record: &EmailRecord) -> String {
    let to = match record.recipient {
        Some(Recipient::Partner) => format!(" to {}", world.partner.spec.notification_email),
        Some(Recipient::Distributor) => match world.distributor {
            Some(d) => format!(" to {}", d.spec.notification_email),
            None => " to the distributor".into(),
        },
        None => String::new(),
    };
    let event = record.event.as_str();
    let error = record.last_error.as_deref().unwrap_or("no reason given");
    match (&record.held, &record.last_error) {
        (Some(hold), _) => match hold.reason {
            EmailHoldReason::RateLimited => format!(
                "the {event} email{to} is held by {}{}",
                if error.contains(crate::lifecycle::emails::RECIPIENT_LIMIT_FLAG) {
                    "the operator's limit of activation emails per recipient address"
                } else {
                    "the Distributor's rate limit"
                },
                hold.until
                    .map(|at| format!("; it goes out from {}", exact_and_relative(at, world.now)))
                    .unwrap_or_default()
            ),
            EmailHoldReason::RecipientNotAllowed => format!(
                "the {event} email{to} is held: {error} (the Distributor's \
                 spec.email.allowedRecipientDomains)"
            ),
            EmailHoldReason::Refused => format!(
                "the {event} email{to} was refused for good by the SMTP server: {error}; it is \
                 tried again once the Partner's or the Distributor's spec changes"
            ),
        },
        (None, Some(error)) => {
            format!("the {event} email{to} is failing: {error}; the operator retries with backoff")
        }
        (None, None) => format!(
            "the {event} email{to} is decided and waits for a mail slot: the operator sends it \
             in turn"
        ),
    }
}

/// Why no deadline is ahead.
fn nothing_scheduled(world: &World, partner: &Partner, name: &str) -> String {
    let status = status_of(partner);
    let distributor = &partner.spec.distributor_ref.name;
    match status.subscription_level.unwrap_or_default() {
        SubscriptionLevel::Production => format!(
            "nothing is scheduled: Production has no expiration date, billing to {distributor} \
             goes on (`kubectl partner renew {name} --expires DATE` sets one)"
        ),
        SubscriptionLevel::Expired if status.production.is_none() => {
            let (_, source) = auto_upgrade(partner, world.distributor);
            let refused = partner.spec.subscription.level == RequestedLevel::Production;
            if refused {
                format!(
                    "nothing is scheduled: the trial expired and its conversion is refused \
                     (see the Ready condition); `kubectl partner convert {name} --expires DATE` \
                     with a future date converts it"
                )
            } else {
                format!(
                    "nothing is scheduled: the trial expired without conversion (auto-upgrade was \
                     off, {source}); `kubectl partner convert {name}` converts it to Production"
                )
            }
        }
        SubscriptionLevel::Expired => format!(
            "nothing is scheduled: Production expired; `kubectl partner renew {name} --expires \
             DATE` renews it"
        ),
        _ => "nothing is scheduled".into(),
    }
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
        let mut p = settled(partner, plan_at(&world, partner, at).status, at);
        // A second look: emails decided in a pass of their own.
        let world = World {
            partner: &p,
            ..world
        };
        p = settled(&p, plan_at(&world, &p, at).status, at);
        p
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
        let mut status = plan_at(&world, &p, t0()).status;
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
    }
}
