//! The tenant's record of its Partner's lifecycle: what cannot be recomputed (the tenant and
//! when it was provisioned, the trial, the level and its end, the activation, the notice,
//! Production and billing, the emails decided), kept in the tenant's `entitlements` ConfigMap
//! beside the entitlements, under the operator's proof.
//!
//! The status says all of it too, but a status does not outlive everything a cluster goes
//! through: Velero restores custom resources without it unless asked, whoever may write the
//! status subresource can empty it or set `tenant: null`, and a Partner restored elsewhere is
//! a new object. The tenant namespace is what a backup of the tenant carries, and the record
//! holds there with an HMAC (under the ownership key, over the Partner's namespace and name,
//! the tenant's name and the record as stored), so a record somebody else wrote or changed
//! (a tenant's own workloads may write in their namespace) is never believed.
//!
//! The record follows the status, in the same write as the entitlements. It leaves out what
//! was *sent* when (an email accepted by the SMTP server, the activation email's `sentAt`), so
//! a message sent costs no write of its own: a record says which emails were decided. A Partner
//! that resumes from it takes them as sent (see `lifecycle::resume`): after a restore nothing
//! is sent twice, and an activation link that may not have gone out is sent again on request
//! (`kubectl partner resend`).

use std::collections::BTreeMap;

use crate::api::{Partner, PartnerStatus};

use super::OwnershipKey;

/// The key of the record (JSON) in the `entitlements` ConfigMap.
pub const RECORD_KEY: &str = "lifecycleRecord";
/// The key of the record's proof.
pub const RECORD_PROOF_KEY: &str = "lifecycleRecordProof";

/// What the tenant keeps of a Partner's status: every field but the observed generation, the
/// SKUs (the Distributor's), the webhook events pending (deliveries, at least once), the
/// deletion and the conditions, which are all recomputed; and of the emails, not when one was
/// sent, nor why one failed or waits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantRecord(pub PartnerStatus);

impl TenantRecord {
    /// The record of `status`; `None` before the tenant is provisioned.
    pub fn of(status: &PartnerStatus) -> Option<Self> {
        status.tenant.as_ref()?;
        let mut emails = status.emails.clone();
        for email in &mut emails {
            email.sent_at = None;
            email.last_error = None;
            email.held = None;
        }
        let mut activation = status.activation.clone();
        if let Some(activation) = activation.as_mut() {
            activation.sent_at = None;
        }
        Some(Self(PartnerStatus {
            subscription_level: status.subscription_level,
            tenant: status.tenant.clone(),
            trial: status.trial.clone(),
            expires_at: status.expires_at,
            activation,
            upgrade_notice_sent_at: status.upgrade_notice_sent_at,
            production: status.production.clone(),
            billing: status.billing.clone(),
            emails,
            ..PartnerStatus::default()
        }))
    }

    /// The record as stored: the status's JSON form (its fields in a fixed order, so the same
    /// record is always the same string).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a status serializes")
    }

    /// The record an `entitlements` ConfigMap's `data` holds, as the plan reads it: whether it
    /// is proven was checked when the data was observed ([`verified`]).
    pub fn read(data: &BTreeMap<String, String>) -> Option<Self> {
        let record = data.get(RECORD_KEY)?;
        serde_json::from_str(record).ok().map(Self)
    }
}

/// Adds the record's proof to `data` (the `entitlements` of the tenant `tenant` of `partner`,
/// holding its record), as it is written.
pub fn prove(
    data: &mut BTreeMap<String, String>,
    partner: &Partner,
    tenant: &str,
    key: &OwnershipKey,
) {
    let Some(record) = data.get(RECORD_KEY) else {
        return;
    };
    let proof = key.record_proof(
        partner.metadata.namespace.as_deref().unwrap_or_default(),
        partner.metadata.name.as_deref().unwrap_or_default(),
        tenant,
        record,
    );
    data.insert(RECORD_PROOF_KEY.to_string(), proof);
}

/// `data` as observed in the tenant `tenant` of `partner`, with its record only if the record
/// is under the operator's proof; else without it (and `false`), so the plan writes it again
/// from the status and never believes it.
pub fn verified(
    mut data: BTreeMap<String, String>,
    partner: &Partner,
    tenant: &str,
    key: &OwnershipKey,
) -> (BTreeMap<String, String>, bool) {
    let Some(record) = data.get(RECORD_KEY) else {
        return (data, true);
    };
    let proven = data.get(RECORD_PROOF_KEY).is_some_and(|proof| {
        key.verify_record(
            partner.metadata.namespace.as_deref().unwrap_or_default(),
            partner.metadata.name.as_deref().unwrap_or_default(),
            tenant,
            record,
            proof,
        )
    });
    if !proven {
        data.remove(RECORD_KEY);
        data.remove(RECORD_PROOF_KEY);
    }
    (data, proven)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::api::{
        ActivationStatus, EmailEvent, EmailRecord, SubscriptionLevel, TenantStatus, TrialStatus,
    };

    fn partner() -> Partner {
        serde_json::from_value(json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": "contoso", "namespace": "team-a", "uid": "uid-1"},
            "spec": {
                "organizationName": "P",
                "notificationEmail": "a@p.example",
                "distributorRef": {"name": "d"},
            },
        }))
        .unwrap()
    }

    fn status() -> PartnerStatus {
        let at = Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap();
        let mut status = PartnerStatus {
            observed_generation: Some(3),
            subscription_level: Some(SubscriptionLevel::Trial),
            tenant: Some(TenantStatus {
                id: "id".into(),
                namespace: "team-a-contoso-1".into(),
                provisioned_at: at,
            }),
            trial: Some(TrialStatus {
                started_at: at,
                ends_at: at + chrono::Duration::days(14),
            }),
            activation: Some(ActivationStatus {
                sent_at: Some(at),
                ..Default::default()
            }),
            emails: vec![EmailRecord {
                event: EmailEvent::Activation,
                recipient: None,
                period: 0,
                message_id: "<m@p>".into(),
                sent_at: Some(at),
                last_error: Some("refused".into()),
                facts: None,
                held: None,
            }],
            ..Default::default()
        };
        crate::api::set_condition(&mut status.conditions, "Ready", true, "Ready", "", None, at);
        status
    }

    #[test]
    fn the_record_keeps_the_facts_and_leaves_what_is_recomputed_or_sent() {
        let record = TenantRecord::of(&status()).unwrap();
        assert_eq!(record.0.observed_generation, None);
        assert!(record.0.conditions.is_empty());
        assert_eq!(record.0.trial, status().trial);
        assert_eq!(record.0.emails[0].last_error, None);
        assert_eq!(record.0.emails[0].sent_at, None);
        assert_eq!(record.0.emails[0].message_id, "<m@p>");
        assert_eq!(record.0.activation.as_ref().unwrap().sent_at, None);
        assert!(TenantRecord::of(&PartnerStatus::default()).is_none());
        // What was sent when does not change the record.
        let mut unsent = status();
        unsent.emails[0].sent_at = None;
        unsent.activation.as_mut().unwrap().sent_at = None;
        assert_eq!(TenantRecord::of(&unsent).unwrap(), record);
        let mut converted = status();
        converted.subscription_level = Some(SubscriptionLevel::Production);
        assert_ne!(TenantRecord::of(&converted).unwrap(), record);
        let data = BTreeMap::from([(RECORD_KEY.to_string(), record.to_json())]);
        assert_eq!(TenantRecord::read(&data), Some(record));
    }

    #[test]
    fn only_a_record_under_the_operators_proof_is_believed() {
        let key = OwnershipKey::from_bytes(&[b'k'; 32]).unwrap();
        let p = partner();
        let tenant = "team-a-contoso-1";
        let mut data = BTreeMap::from([
            ("level".to_string(), "Trial".to_string()),
            (
                RECORD_KEY.to_string(),
                TenantRecord::of(&status()).unwrap().to_json(),
            ),
        ]);
        prove(&mut data, &p, tenant, &key);
        assert_eq!(
            verified(data.clone(), &p, tenant, &key),
            (data.clone(), true)
        );
        let stripped = BTreeMap::from([("level".to_string(), "Trial".to_string())]);
        // Another tenant, another key, a changed record, no proof.
        assert_eq!(
            verified(data.clone(), &p, "team-a-contoso-2", &key),
            (stripped.clone(), false)
        );
        let other = OwnershipKey::from_bytes(&[b'o'; 32]).unwrap();
        assert_eq!(
            verified(data.clone(), &p, tenant, &other),
            (stripped.clone(), false)
        );
        let mut forged = data.clone();
        forged.insert(
            RECORD_KEY.into(),
            data[RECORD_KEY].replace("2027-03-15", "2099-03-15"),
        );
        assert_ne!(forged[RECORD_KEY], data[RECORD_KEY]);
        assert_eq!(
            verified(forged.clone(), &p, tenant, &key),
            (stripped.clone(), false)
        );
        forged.remove(RECORD_PROOF_KEY);
        assert_eq!(
            verified(forged, &p, tenant, &key),
            (stripped.clone(), false)
        );
        assert_eq!(
            verified(stripped.clone(), &p, tenant, &key),
            (stripped, true)
        );
    }
}
