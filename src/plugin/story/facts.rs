//! What `add`, `list` and `status` print first about a Partner: who it is, its level and
//! dates, its billing, its activation.

use chrono::{DateTime, Utc};

use super::status_of;
use crate::api::{
    Distributor, EmailEvent, EmailRecord, Partner, PartnerStatus, SubscriptionLevel,
    find_condition, types,
};
use crate::plugin::dates::{exact, exact_and_relative};

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
    let activated = find_condition(&status.conditions, types::ACTIVATED);
    if activated.is_some_and(|c| c.status == "True") {
        return "activated";
    }
    // Sent, but the link stopped working: a resend request brings a new one.
    if activated.is_some_and(|c| c.reason == crate::lifecycle::reasons::ACTIVATION_LINK_EXPIRED) {
        return "link expired";
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
    let mut facts = who(partner, distributor, &status);
    facts.extend(level_facts(partner, distributor, &status, now));
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

/// Who the Partner is, to whom it is bound, and whether it is Ready.
fn who(
    partner: &Partner,
    distributor: Option<&Distributor>,
    status: &PartnerStatus,
) -> Vec<(&'static str, String)> {
    let level = status.subscription_level.unwrap_or_default();
    let readiness = match find_condition(&status.conditions, types::READY) {
        Some(c) if c.status == "True" => "Ready".to_string(),
        Some(c) => format!("not Ready: {}", c.reason),
        None => "not looked at yet".to_string(),
    };
    vec![
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
        ("level", format!("{level}, {readiness}")),
    ]
}

/// The tenant, and the dates and billing of the level it is at.
fn level_facts(
    partner: &Partner,
    distributor: Option<&Distributor>,
    status: &PartnerStatus,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let level = status.subscription_level.unwrap_or_default();
    let mut facts = vec![];
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
