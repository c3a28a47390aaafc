use chrono::{DateTime, TimeZone, Utc};

use super::Observation;
use crate::api::*;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap()
}

pub fn distributor() -> Distributor {
    let mut d = Distributor::new(
        "northwind",
        DistributorSpec {
            organization_name: "Northwind".into(),
            notification_email: "ops@northwind.example".into(),
            skus: vec![Sku("ESSENTIALS".into())],
            partner_namespaces: None,
            trial: TrialPolicy::default(),
            activation: ActivationPolicy::default(),
            email: EmailPolicy::default(),
            webhooks: WebhookPolicy::default(),
            branding: Default::default(),
        },
    );
    d.spec.activation.base_url = Some("https://portal.example/activate".into());
    d
}

pub fn partner() -> Partner {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": "contoso", "namespace": "partners", "uid": "uid-1", "generation": 1},
        "spec": {
            "organizationName": "Contoso",
            "notificationEmail": "admin@contoso.example",
            "distributorRef": {"name": "northwind"},
        },
    }))
    .expect("a Partner")
}

/// A bound Partner whose tenant exists as its status says, at `now`.
pub fn observe<'a>(
    partner: &'a Partner,
    distributor: &'a Distributor,
    entitlements: Option<&'a std::collections::BTreeMap<String, String>>,
    now: DateTime<Utc>,
) -> Observation<'a> {
    Observation {
        partner,
        distributor: Some(distributor),
        namespace_allowed: true,
        tenant_exists: partner.status.as_ref().is_some_and(|s| s.tenant.is_some()),
        tenant_taken: false,
        entitlements,
        default_activation_base_url: None,
        now,
    }
}

/// `partner` as the operator leaves it after looking at it through `obs` (its effects done:
/// emails sent, its tenant as its status says).
pub fn settle(obs: &Observation) -> Partner {
    let run = super::simulate(obs, 8);
    assert!(run.settled(), "did not settle: {:?}", run.plans.last());
    run.partner
}
