//! `kubectl partner status NAME`: where a Partner stands, and what happens next.

use chrono::{DateTime, Utc};
use clap::Args;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{Api, ListParams};

use super::dates::exact;
use super::output::{one_line, put};
use super::story::{self, World, facts, facts_lines};
use super::{Ctx, Result};
use crate::api::{chrono_time, types};

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The Partner.
    pub name: String,
    /// How many of the latest Events to show.
    #[arg(long, default_value_t = 10)]
    pub events: usize,
}

/// What `status` tells of a Partner, gathered: the console's Partner page shows the same.
pub struct StatusView {
    pub partner: crate::api::Partner,
    pub facts: Vec<(&'static str, String)>,
    pub story: Vec<story::Moment>,
    pub next: Vec<String>,
    /// The conditions that say something is wrong (see [`problems`]).
    pub problems: Vec<crate::api::Condition>,
    pub webhooks_waiting: Vec<String>,
    pub events: std::result::Result<Vec<EventLine>, String>,
}

/// Reads the Partner, its Distributor, its namespace and its latest `events` Events.
pub async fn gather(ctx: &Ctx, name: &str, events: usize) -> Result<StatusView> {
    let partner = ctx.partner(name).await?;
    let distributor = ctx.distributor(&partner.spec.distributor_ref.name).await;
    let status = partner.status.clone().unwrap_or_default();
    // Whether the namespace may bind: from its labels when readable, else as the operator last
    // said in DistributorBound.
    let namespace_allowed = match (
        &distributor,
        Api::<Namespace>::all(ctx.client.clone())
            .get(&ctx.namespace)
            .await,
    ) {
        (Some(d), Ok(ns)) => crate::binding::namespace_allowed(d, &ns),
        _ => crate::api::is_condition_true(&status.conditions, types::DISTRIBUTOR_BOUND),
    };
    let world = World {
        partner: &partner,
        distributor: distributor.as_ref(),
        namespace_allowed,
        now: ctx.now,
    };
    let next = story::outlook(&world);
    let read = read_events(ctx, &partner).await;
    let mut told = story::history(&partner);
    if let Ok((_, seen)) = &read {
        told.extend(story::told_by_events(&partner, seen));
        told.sort_by_key(|m| m.at);
    }
    Ok(StatusView {
        facts: facts(&partner, distributor.as_ref(), ctx.now),
        story: told,
        next,
        problems: problems(&status).into_iter().cloned().collect(),
        webhooks_waiting: webhooks_waiting(&status),
        events: read.map(|(mut lines, _)| {
            let skip = lines.len().saturating_sub(events);
            lines.split_off(skip)
        }),
        partner,
    })
}

pub async fn run(ctx: &Ctx, args: StatusArgs) -> Result<()> {
    let view = gather(ctx, &args.name, args.events).await?;
    let mut out = format!("Partner {}\n", ctx.qualified(&args.name));
    out.push_str(&facts_lines(&view.facts));
    out.push_str("\nStory:\n");
    for moment in &view.story {
        out.push_str(&format!("  {}  {}\n", exact(moment.at), moment.what));
    }
    out.push_str("\nNext:\n");
    for line in &view.next {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&conditions_not_true(&view.problems));
    if !view.webhooks_waiting.is_empty() {
        out.push_str("\nWebhook events not delivered yet:\n");
        for line in &view.webhooks_waiting {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str(&events_section(view.events));
    put!("{out}");
    Ok(())
}

/// The conditions that are not True, but for a partner that has not activated yet (no
/// problem; an expired link is, and is said).
pub fn problems(status: &crate::api::PartnerStatus) -> Vec<&crate::api::Condition> {
    let awaiting = |c: &&crate::api::Condition| {
        c.type_ == types::ACTIVATED && c.reason == crate::lifecycle::reasons::AWAITING_ACTIVATION
    };
    status
        .conditions
        .iter()
        .filter(|c| c.status != "True" && !awaiting(c))
        .collect()
}

fn conditions_not_true(not_true: &[crate::api::Condition]) -> String {
    let mut out = String::new();
    if !not_true.is_empty() {
        out.push_str("\nConditions not True:\n");
        for c in not_true {
            out.push_str(&format!(
                "  {}={} {}: {}\n",
                one_line(&c.type_),
                one_line(&c.status),
                one_line(&c.reason),
                one_line(&c.message)
            ));
        }
    }
    out
}

/// The latest Events, or why they cannot be read.
fn events_section(events: std::result::Result<Vec<EventLine>, String>) -> String {
    let mut out = String::from("\nRecent events:\n");
    match events {
        Ok(events) if events.is_empty() => out.push_str("  none\n"),
        Ok(events) => {
            for (at, type_, reason, count, message) in events {
                let count = if count > 1 {
                    format!(" (x{count})")
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "  {}  {:<7}  {}{count}: {}\n",
                    exact(at),
                    one_line(&type_),
                    one_line(&reason),
                    one_line(&message)
                ));
            }
        }
        Err(why) => out.push_str(&format!("  cannot be read: {why}\n")),
    }
    out
}

/// One line per webhook event an endpoint does not have yet: what, to whom, how it went.
fn webhooks_waiting(status: &crate::api::PartnerStatus) -> Vec<String> {
    status
        .webhooks
        .iter()
        .flat_map(|record| {
            record.pending.iter().map(move |p| {
                let how = match (&p.last_error, p.attempts) {
                    (Some(error), attempts) => format!("{attempts} failed attempts, last: {error}"),
                    (None, _) => "being delivered".to_string(),
                };
                format!(
                    "{} {} to endpoint {}: {how}",
                    exact(record.time),
                    record.type_.short(),
                    p.endpoint
                )
            })
        })
        .collect()
}

/// An Event: when, type, reason, count, message.
pub type EventLine = (DateTime<Utc>, String, String, i32, String);

/// The Partner's Events, oldest first: as lines (at their latest), and as first seen (for the
/// story).
async fn read_events(
    ctx: &Ctx,
    partner: &crate::api::Partner,
) -> std::result::Result<(Vec<EventLine>, Vec<story::Seen>), String> {
    let uid = partner.metadata.uid.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let list = api
        .list(&ListParams::default().fields(&format!("involvedObject.uid={uid}")))
        .await
        .map_err(|e| super::api_error("events", e).0)?;
    let micro = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime| {
        DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond() as u32)
    };
    let seen: Vec<story::Seen> = list
        .items
        .iter()
        .filter_map(|e| {
            let first = [
                e.event_time.as_ref().and_then(micro),
                e.first_timestamp.as_ref().map(chrono_time),
                e.metadata.creation_timestamp.as_ref().map(chrono_time),
            ]
            .into_iter()
            .flatten()
            .next()?;
            Some(story::Seen {
                first,
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
            })
        })
        .collect();
    let mut events: Vec<EventLine> = list
        .items
        .into_iter()
        .filter_map(|e| {
            let at = [
                e.series
                    .as_ref()
                    .and_then(|s| s.last_observed_time.as_ref().and_then(micro)),
                e.event_time.as_ref().and_then(micro),
                e.last_timestamp.as_ref().map(chrono_time),
                e.first_timestamp.as_ref().map(chrono_time),
                e.metadata.creation_timestamp.as_ref().map(chrono_time),
            ]
            .into_iter()
            .flatten()
            .max()?;
            let count = e
                .series
                .as_ref()
                .and_then(|s| s.count)
                .or(e.count)
                .unwrap_or(1);
            Some((
                at,
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                count,
                e.message.unwrap_or_default(),
            ))
        })
        .collect();
    events.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    Ok((events, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PartnerStatus, WebhookDelivery, WebhookEventType, WebhookRecord};

    #[test]
    fn undelivered_webhook_events_say_where_they_stand() {
        let mut failing = WebhookDelivery::to("billing");
        failing.attempts = 3;
        failing.last_error = Some("the endpoint answered HTTP 500".into());
        let status = PartnerStatus {
            webhooks: vec![WebhookRecord {
                id: "u.converted.1".into(),
                type_: WebhookEventType::Converted,
                time: "2027-03-15T09:00:00Z".parse().unwrap(),
                data: serde_json::json!({}),
                pending: vec![failing, WebhookDelivery::to("crm")],
            }],
            ..PartnerStatus::default()
        };
        assert_eq!(
            webhooks_waiting(&status),
            [
                "2027-03-15T09:00:00Z converted to endpoint billing: 3 failed attempts, last: the endpoint answered HTTP 500",
                "2027-03-15T09:00:00Z converted to endpoint crm: being delivered",
            ]
        );
    }
}
