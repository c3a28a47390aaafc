//! Kubernetes Events (`events.k8s.io/v1`) on Partners (and Distributors, whose Events go to
//! the `default` namespace, as for every cluster-scoped object).
//!
//! kube's `Recorder` keeps every Event it sent in one cache for minutes, and sweeps the whole
//! cache under a write lock on every publish: with ten thousand Partners that is tens of
//! thousands of entries, swept once per Event, one publish at a time across all
//! reconciliations, and megabytes held for nothing. Our Events are one per transition, so they
//! need no cache: each is named after what it reports (the Partner's uid, the reason and the
//! note), which makes publishing idempotent (a transition reported again after a restart finds
//! its Event, and counts it as seen again instead of adding a second one).

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::lifecycle::EventReason;

/// Who reports: what `kubectl describe` shows as the Event's source.
pub const REPORTING_CONTROLLER: &str = "partner-operator.io/partner-operator";

/// The API server keeps an Event's note to 1 KiB.
const MAX_NOTE_BYTES: usize = 1024;

/// Records one Event about `partner` (a Partner or a Distributor): created the first time, its
/// series counted up after.
pub async fn publish<K: Resource<DynamicType = ()>>(
    client: &Client,
    instance: &str,
    partner: &K,
    reason: EventReason,
    note: &str,
    now: DateTime<Utc>,
) -> kube::Result<()> {
    let namespace = partner.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let name = event_name(partner, reason.as_str(), note);
    let event_time = now.to_rfc3339_opts(SecondsFormat::Micros, true);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": event_time,
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance,
        "action": reason.as_str(),
        "reason": reason.as_str(),
        "note": truncate(note, MAX_NOTE_BYTES),
        "type": if reason.is_warning() { "Warning" } else { "Normal" },
        "regarding": partner.object_ref(&()),
    }))
    .expect("a valid Event");
    let create = PostParams {
        field_manager: Some(crate::tenant::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&create, &event).await {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            // Seen before: count it, as an Event series does.
            let existing = api.get(&name).await?;
            let count = existing.series.as_ref().map_or(1, |s| s.count) + 1;
            let series = json!({"series": {"count": count, "lastObservedTime": event_time}});
            let params = PatchParams {
                field_manager: Some(crate::tenant::FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            api.patch(&name, &params, &Patch::Merge(series))
                .await
                .map(drop)
        }
        result => result.map(drop),
    }
}

/// `<partner>.<16 hex digits>`: stable for one (Partner, reason, note), within 253 characters
/// (a Partner name may itself have 253: it is cut, the hash keeps the name unique).
fn event_name<K: Resource>(partner: &K, reason: &str, note: &str) -> String {
    let mut digest = Sha256::new();
    for part in [partner.uid().unwrap_or_default().as_str(), reason, note] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let hash = hex::encode(&digest.finalize()[..8]);
    let name = partner.name_any();
    let head = name[..name.len().min(253 - 17)].trim_end_matches(['.', '-']);
    format!("{head}.{hash}")
}

fn truncate(note: &str, max: usize) -> &str {
    if note.len() <= max {
        return note;
    }
    let mut end = max;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    &note[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Partner;

    fn partner(uid: &str) -> Partner {
        serde_json::from_value(json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": "contoso", "namespace": "p", "uid": uid},
            "spec": {
                "organizationName": "Contoso",
                "notificationEmail": "a@contoso.example",
                "distributorRef": {"name": "northwind"},
            },
        }))
        .unwrap()
    }

    #[test]
    fn names_are_stable_per_partner_reason_and_note() {
        let a = event_name(&partner("u1"), "TrialExpired", "expired");
        assert_eq!(a, event_name(&partner("u1"), "TrialExpired", "expired"));
        assert_ne!(a, event_name(&partner("u2"), "TrialExpired", "expired"));
        assert_ne!(a, event_name(&partner("u1"), "TrialExpired", "other"));
        assert!(a.starts_with("contoso.") && a.len() == "contoso.".len() + 16);
    }

    #[test]
    fn names_of_long_partners_fit_253_characters() {
        let mut p = partner("u1");
        p.metadata.name = Some(format!("{}-{}", "a".repeat(235), "b".repeat(17)));
        let name = event_name(&p, "TenantProvisioned", "provisioned");
        assert_eq!(name.len(), 235 + 17, "{name}");
        assert!(name.starts_with(&format!("{}.", "a".repeat(235))), "{name}");
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncate(&note, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
