//! The operator's first write to a Partner: its finalizer, and the uid its tenant is made for
//! ([`TENANT_OWNER_UID_LABEL`]), in one patch under the operator's field manager.
//!
//! The label is what lets a Partner restored with a new uid keep its tenant (see
//! [`crate::tenant::tenant_owner_uid`]); it is written in the patch the finalizer needs anyway,
//! so it costs no request of its own. A Partner that already carries it (restored, or moved)
//! keeps the value it has. The patch is a JSON patch that tests the resourceVersion it was
//! made from: a Partner changed meanwhile is claimed on the next pass, from what was written.

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::api::Partner;
use crate::tenant::{FIELD_MANAGER, TENANT_OWNER_UID_LABEL};

/// The JSON patch that claims `partner` for the operator with `finalizer`, or `None` when it
/// carries both the finalizer and the label already, or is being deleted (a finalizer is never
/// added to a Partner on its way out).
pub fn claim_patch(partner: &Partner, finalizer: &str) -> Option<Value> {
    if partner.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let has_finalizer = partner.finalizers().iter().any(|f| f == finalizer);
    let labels = partner.metadata.labels.as_ref();
    let has_label = labels.is_some_and(|l| l.get(TENANT_OWNER_UID_LABEL).is_some());
    if has_finalizer && has_label {
        return None;
    }
    let mut ops = vec![json!({
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": partner.resource_version(),
    })];
    if !has_finalizer {
        let mut finalizers = partner.finalizers().to_vec();
        finalizers.push(finalizer.to_string());
        ops.push(json!({"op": "add", "path": "/metadata/finalizers", "value": finalizers}));
    }
    if !has_label {
        let uid = partner.uid().unwrap_or_default();
        match labels {
            Some(_) => ops.push(json!({
                "op": "add",
                "path": format!("/metadata/labels/{}", TENANT_OWNER_UID_LABEL.replace('/', "~1")),
                "value": uid,
            })),
            None => ops.push(json!({
                "op": "add",
                "path": "/metadata/labels",
                "value": {TENANT_OWNER_UID_LABEL: uid},
            })),
        }
    }
    Some(Value::Array(ops))
}

/// Claims `partner` (see [`claim_patch`]); returns it as written, or as it was when nothing
/// needed writing; `None` when it is gone. A patch whose test failed (the Partner changed since
/// the copy it was made from: a cache that trails) is made once more from the Partner as read
/// now; should that fail too, it is an error, retried with backoff.
pub async fn claim(
    api: &Api<Partner>,
    partner: &Partner,
    finalizer: &str,
) -> kube::Result<Option<Partner>> {
    match patch(api, partner, finalizer).await {
        Err(kube::Error::Api(status)) if changed_meanwhile(status.code) => {
            let Some(current) = api.get_opt(&partner.name_any()).await? else {
                return Ok(None);
            };
            patch(api, &current, finalizer).await
        }
        other => other,
    }
}

/// A failed `test` of the resourceVersion: 422 on kube-apiserver; 409 is a conflict.
fn changed_meanwhile(code: u16) -> bool {
    code == 409 || code == 422
}

async fn patch(
    api: &Api<Partner>,
    partner: &Partner,
    finalizer: &str,
) -> kube::Result<Option<Partner>> {
    let Some(patch) = claim_patch(partner, finalizer) else {
        return Ok(Some(partner.clone()));
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api
        .patch(&partner.name_any(), &params, &Patch::<()>::Json(patch))
        .await
    {
        Ok(claimed) => Ok(Some(claimed)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner(labels: Value, finalizers: Value, deleting: bool) -> Partner {
        serde_json::from_value(json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {
                "name": "contoso", "namespace": "team-a", "uid": "uid-1", "resourceVersion": "7",
                "labels": labels, "finalizers": finalizers,
                "deletionTimestamp": deleting.then_some("2027-03-01T09:00:00Z"),
            },
            "spec": {
                "organizationName": "P",
                "notificationEmail": "a@p.example",
                "distributorRef": {"name": "d"},
            },
        }))
        .unwrap()
    }

    fn applied(partner: &Partner, patch: Value) -> Value {
        let mut doc = serde_json::to_value(partner).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        doc
    }

    #[test]
    fn a_new_partner_gets_the_finalizer_and_its_own_uid_in_one_patch() {
        let new = partner(Value::Null, Value::Null, false);
        let doc = applied(&new, claim_patch(&new, "f").unwrap());
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        assert_eq!(
            doc["metadata"]["labels"][TENANT_OWNER_UID_LABEL],
            json!("uid-1")
        );
        let labelled = partner(json!({"app": "x"}), json!(["other"]), false);
        let doc = applied(&labelled, claim_patch(&labelled, "f").unwrap());
        assert_eq!(doc["metadata"]["finalizers"], json!(["other", "f"]));
        assert_eq!(doc["metadata"]["labels"]["app"], json!("x"));
        assert_eq!(
            doc["metadata"]["labels"][TENANT_OWNER_UID_LABEL],
            json!("uid-1")
        );
    }

    #[test]
    fn a_restored_partner_keeps_the_uid_its_tenant_was_made_for() {
        let restored = partner(json!({TENANT_OWNER_UID_LABEL: "uid-0"}), Value::Null, false);
        let doc = applied(&restored, claim_patch(&restored, "f").unwrap());
        assert_eq!(
            doc["metadata"]["labels"][TENANT_OWNER_UID_LABEL],
            json!("uid-0")
        );
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        let claimed = partner(
            json!({TENANT_OWNER_UID_LABEL: "uid-0"}),
            json!(["f"]),
            false,
        );
        assert!(claim_patch(&claimed, "f").is_none());
        let deleting = partner(Value::Null, Value::Null, true);
        assert!(claim_patch(&deleting, "f").is_none());
    }

    #[test]
    fn the_patch_tests_the_version_it_was_made_from() {
        let new = partner(Value::Null, Value::Null, false);
        let mut doc = serde_json::to_value(&new).unwrap();
        doc["metadata"]["resourceVersion"] = json!("8");
        let patch: json_patch::Patch =
            serde_json::from_value(claim_patch(&new, "f").unwrap()).unwrap();
        assert!(json_patch::patch(&mut doc, &patch).is_err());
    }
}
