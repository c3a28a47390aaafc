//! Conditions in the standard `metav1.Condition` shape, so kstatus, Argo CD and Flux health
//! checks and `kubectl wait --for=condition=Ready` work unchanged.

use chrono::{DateTime, Utc};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A Kubernetes `Time` (second precision, as the API stores it) from a chrono timestamp.
pub fn k8s_time(at: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(at.timestamp()).expect("timestamp in range"))
}

/// A chrono timestamp from a Kubernetes `Time`.
pub fn chrono_time(time: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(time.0.as_second(), time.0.subsec_nanosecond() as u32)
        .expect("timestamp in range")
}

/// Condition types the operator writes.
pub mod types {
    /// Partner and Distributor: everything is in place.
    pub const READY: &str = "Ready";
    /// Partner: its Distributor exists and its namespace may bind to it.
    pub const DISTRIBUTOR_BOUND: &str = "DistributorBound";
    /// Partner: the tenant namespace exists, owned by the Partner, and its `entitlements`
    /// ConfigMap is observed (the activation Secret is checked by the write that precedes the
    /// activation email, not by this condition).
    pub const TENANT_PROVISIONED: &str = "TenantProvisioned";
    /// Partner: the activation email was accepted by the SMTP server.
    pub const ACTIVATION_SENT: &str = "ActivationSent";
    /// Partner: the partner activated its tenant through the emailed link.
    pub const ACTIVATED: &str = "Activated";
    /// Distributor, with webhook endpoints: no endpoint's deliveries are failing.
    pub const WEBHOOKS_DELIVERED: &str = "WebhooksDelivered";
}

/// Sets (or adds) the condition of `type_`, keeping `lastTransitionTime` when the status did not
/// change, so that a condition that merely gets re-asserted causes no status write.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = k8s_time(now);
            }
            existing.status = status;
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation,
            last_transition_time: k8s_time(now),
        }),
    }
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is present and `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
        let mut conditions = vec![];
        set_condition(
            &mut conditions,
            types::READY,
            false,
            "Provisioning",
            "wait",
            Some(1),
            t0,
        );
        set_condition(
            &mut conditions,
            types::READY,
            false,
            "ActivationPending",
            "x",
            Some(2),
            t1,
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(chrono_time(&conditions[0].last_transition_time), t0);
        assert_eq!(conditions[0].reason, "ActivationPending");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set_condition(
            &mut conditions,
            types::READY,
            true,
            "Ready",
            "ok",
            Some(2),
            t1,
        );
        assert_eq!(chrono_time(&conditions[0].last_transition_time), t1);
        assert!(is_condition_true(&conditions, types::READY));
        assert!(!is_condition_true(&conditions, types::ACTIVATION_SENT));
    }
}
