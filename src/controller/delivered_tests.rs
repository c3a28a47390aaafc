use super::*;
use crate::api::{WebhookDelivery, WebhookEventType, WebhookRecord};
use crate::lifecycle::fixtures::{partner, t0};

/// The fixture Partner with event `id` pending for `endpoints`.
fn with_pending(id: &str, endpoints: &[&str]) -> Partner {
    let mut p = partner();
    p.status
        .get_or_insert_default()
        .webhooks
        .push(WebhookRecord {
            id: id.to_string(),
            type_: WebhookEventType::Provisioned,
            time: t0(),
            data: serde_json::Value::Null,
            pending: endpoints.iter().map(|e| WebhookDelivery::to(e)).collect(),
        });
    p
}

fn uid(p: &Partner) -> String {
    p.uid().unwrap()
}

#[test]
fn a_delivery_is_held_until_a_status_shows_it_recorded() {
    let ledger = Delivered::default();
    let p = with_pending("e1", &["billing", "crm"]);
    ledger.add(&ObjectRef::from_obj(&p), &uid(&p), "e1", "billing");
    assert!(ledger.holds(&p, "e1", "billing"));
    assert!(!ledger.holds(&p, "e1", "crm"));

    // A status written without it (another write) keeps it held.
    assert!(!ledger.settle(&p));
    assert!(ledger.holds(&p, "e1", "billing"));

    // The plan records it; once stored, it is forgotten.
    let recorded = ledger.of(&p).recorded_on(&p);
    let pending = &recorded.status.as_ref().unwrap().webhooks[0].pending;
    assert_eq!(pending, &[WebhookDelivery::to("crm")]);
    assert!(ledger.settle(&recorded));
    assert!(ledger.of(&p).is_empty());
}

#[test]
fn a_partner_created_again_under_the_same_name_has_none_of_its_predecessors() {
    let ledger = Delivered::default();
    let old = with_pending("e1", &["billing"]);
    ledger.add(&ObjectRef::from_obj(&old), &uid(&old), "e1", "billing");
    let mut new = with_pending("e1", &["billing"]);
    new.metadata.uid = Some("another-uid".into());
    assert!(ledger.of(&new).is_empty());
    assert!(!ledger.holds(&new, "e1", "billing"));
    // Its first write drops the predecessor's.
    ledger.settle(&new);
    assert!(ledger.of(&old).is_empty());
}

#[test]
fn a_delivery_is_due_once_it_waited_long_enough() {
    let ledger = Delivered::default();
    let p = with_pending("e1", &["billing"]);
    ledger.add(&ObjectRef::from_obj(&p), &uid(&p), "e1", "billing");
    assert!(!ledger.of(&p).due());
    let mut entries = ledger.entries.lock().unwrap();
    for delivery in entries.values_mut().flatten() {
        delivery.at -= RECORD_WITHIN;
    }
    drop(entries);
    assert!(ledger.of(&p).due());
}

#[test]
fn an_event_gone_from_the_status_is_forgotten() {
    let ledger = Delivered::default();
    let p = with_pending("e1", &["billing"]);
    ledger.add(&ObjectRef::from_obj(&p), &uid(&p), "e1", "billing");
    assert!(ledger.settle(&partner()));
    assert!(ledger.of(&p).is_empty());
}
