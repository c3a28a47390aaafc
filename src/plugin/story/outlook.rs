//! The next step: what is held up, what is due and not done, and what the operator does at the
//! next deadlines, carried forward by the operator's own lifecycle ([`lifecycle::simulate`]).

use chrono::{DateTime, Utc};

use super::waiting::{nothing_scheduled, unsent_line};
use super::{World, auto_upgrade, status_of};
use crate::api::{
    EmailEvent, EmailRecord, Partner, PartnerStatus, ProductionReason, SubscriptionLevel,
    find_condition, types,
};
use crate::lifecycle::{self, Effect, Observation, Simulation};
use crate::plugin::dates::{exact, exact_and_relative};

/// How many looks the operator gets at one moment to finish what it decided: the emails of a
/// pass of their own go out in the second.
const LOOKS: usize = 8;

/// The operator's looks at the Partner at `at`, every write succeeding, until it has nothing
/// left to do. The tenant is taken to be as the status says (the operator keeps it so), and the
/// operator to have a link base, as one that sends activation emails does (whether a link can
/// be made is what the ActivationSent condition says).
pub(super) fn look_at(world: &World, partner: &Partner, at: DateTime<Utc>) -> Simulation {
    let status = status_of(partner);
    let entitlements = crate::tenant::entitlements_data(partner, &status);
    lifecycle::simulate(
        &Observation {
            partner,
            distributor: world.distributor,
            namespace_allowed: world.namespace_allowed,
            tenant_exists: status.tenant.is_some(),
            tenant_taken: false,
            entitlements: entitlements.as_ref(),
            default_activation_base_url: Some("https://activation.invalid/"),
            now: at,
        },
        LOOKS,
    )
}

/// The emails sent in `run`, one line per kind of email (each recipient gets a message of its
/// own).
fn recipients(run: &Simulation) -> Vec<(EmailEvent, Vec<String>)> {
    let mut out: Vec<(EmailEvent, Vec<String>)> = vec![];
    for email in run.effects().filter_map(|e| match e {
        Effect::SendEmail(email) => Some(email),
        _ => None,
    }) {
        match out.iter_mut().find(|(e, _)| *e == email.event) {
            Some((_, all_to)) => {
                for to in &email.to {
                    if !all_to.contains(to) {
                        all_to.push(to.clone());
                    }
                }
            }
            None => out.push((email.event, email.to.clone())),
        }
    }
    out
}

/// The next step: what is held up now, then the next deadlines (up to two) and what the
/// operator does at each, or why nothing is scheduled.
pub fn outlook(world: &World) -> Vec<String> {
    let partner = world.partner;
    let status = status_of(partner);
    if status.subscription_level.unwrap_or_default() == SubscriptionLevel::Pending {
        let why = find_condition(&status.conditions, types::DISTRIBUTOR_BOUND)
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "the operator has not looked at it yet".into());
        return vec![format!(
            "nothing happens until the Partner is bound to a Distributor ({why})"
        )];
    }
    let mut lines = held_up(world, &status);
    // What the operator would change if it looked now: due work it has not done yet.
    let now = look_at(world, partner, world.now);
    let due = describe(world, &status, &now.plans[0].status, &[]);
    if !due.is_empty() {
        lines.push(format!(
            "due now, not done yet (is the operator running?): {}",
            due.join("; ")
        ));
    }
    lines.extend(deadlines(world, now));
    lines
}

/// What is held up now: the emails decided earlier that have not gone out, and a refused
/// conversion.
fn held_up(world: &World, status: &PartnerStatus) -> Vec<String> {
    let mut lines = vec![];
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
    lines
}

/// The next two deadlines after `now` at which something this tells happens (a deadline that
/// only turns a condition, such as the activation link's expiry, is passed over), or why none
/// is ahead.
fn deadlines(world: &World, now: Simulation) -> Vec<String> {
    let name = world.partner.metadata.name.clone().unwrap_or_default();
    let mut lines = vec![];
    let mut next_review = now.next_review();
    let mut current = now.partner;
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
        let run = look_at(world, &current, at);
        let what = describe(world, &before, &run.plans[0].status, &recipients(&run));
        next_review = run.next_review();
        current = run.partner;
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

/// What one look of the operator changes: sentences, then the emails it sends.
fn describe(
    world: &World,
    before: &PartnerStatus,
    after: &PartnerStatus,
    recipients: &[(EmailEvent, Vec<String>)],
) -> Vec<String> {
    let partner = world.partner;
    let name = partner.metadata.name.clone().unwrap_or_default();
    let distributor = &partner.spec.distributor_ref.name;
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
