//! An object as a watch decodes it: typed, or, when its body does not fit the type, only its
//! metadata and why.
//!
//! A list decodes all or nothing: one Partner whose stored body the operator's types refuse (a
//! date kube-apiserver's `date-time` format took but chrono does not, stored before the schema
//! was tightened; a field a newer version of the CRD added) would fail every relist, and with it
//! every Partner. Watching [`Decoded<Partner>`] instead keeps the failure on that one object:
//! the controller leaves it alone and reports it (see `controller::unreadable`).
//!
//! Distributors alike: one whose status is out of range (`status.partners.pending:
//! 4294967296`, written by an administrator through the status subresource) once failed every
//! relist of Distributors, so the operator never filled its caches and reconciled no Partner at
//! all. A Distributor's status is all recomputed by the operator from its Partners, so one
//! whose status alone does not decode is read without it ([`Decoded::WithoutStatus`]) and its
//! status written anew; one whose spec does not decode is [`Decoded::Unreadable`].
//!
//! The error says where the body did not fit (`status.partners.pending: invalid value: ...`)
//! and never holds the body: it goes to logs and Events.
//!
//! It decodes what the operator's caches keep: `managedFields` and annotations, which no
//! decision reads, are dropped as each object is decoded.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// One object of kind `K` as received from the API server.
// Lives only between the watch and the code that takes it apart: no need to box the larger side.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Decoded<K> {
    Typed(K),
    /// The body decoded as `K` only without its `status`, which is left empty (only for kinds
    /// whose status the operator recomputes whole, [`Lenient::STATUS_RECOMPUTED`]); and why.
    WithoutStatus {
        object: K,
        error: String,
    },
    /// The body did not decode as `K`: its metadata (which every object has) and the error.
    Unreadable {
        metadata: ObjectMeta,
        error: String,
    },
}

/// A kind the operator watches through [`Decoded`].
pub trait Lenient: DeserializeOwned {
    /// Whether the operator recomputes the whole `status` of this kind from other objects, so
    /// that one whose status does not decode may be read as having none. Never for a Partner:
    /// its status holds facts (a trial's start, the emails sent) that nothing else does.
    const STATUS_RECOMPUTED: bool = false;
}

impl Lenient for crate::api::Partner {}

impl Lenient for crate::api::Distributor {
    const STATUS_RECOMPUTED: bool = true;
}

/// `value` as a `K`, or where and why it does not fit (the path of the field, never its body).
fn typed<K: DeserializeOwned>(value: &serde_json::Value) -> Result<K, String> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}

impl<'de, K: Lenient> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        // Dropped before the typed copy is made: a list page of Partners with 256 kB of
        // annotations each would otherwise be held twice over until the cache trims it.
        if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            metadata.remove("managedFields");
            metadata.remove("annotations");
        }
        let error = match typed::<K>(&value) {
            Ok(typed) => return Ok(Self::Typed(typed)),
            Err(error) => error,
        };
        if K::STATUS_RECOMPUTED
            && let Some(fields) = value.as_object_mut()
            && fields.remove("status").is_some()
            && let Ok(object) = typed::<K>(&value)
        {
            return Ok(Self::WithoutStatus { object, error });
        }
        // Metadata is the API server's own and always decodes; if even it does not, the
        // object cannot be named, and failing the list is all that is left.
        let metadata =
            ObjectMeta::deserialize(&value["metadata"]).map_err(serde::de::Error::custom)?;
        Ok(Self::Unreadable { metadata, error })
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Decoded<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Typed(object) | Self::WithoutStatus { object, .. } => object.meta(),
            Self::Unreadable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Typed(object) | Self::WithoutStatus { object, .. } => object.meta_mut(),
            Self::Unreadable { metadata, .. } => metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::Partner;

    fn partner(expiration_date: &str) -> serde_json::Value {
        json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {
                "organizationName": "P",
                "notificationEmail": "a@p.example",
                "distributorRef": {"name": "d"},
                "subscription": {"expirationDate": expiration_date},
            },
        })
    }

    #[test]
    fn what_no_decision_reads_is_dropped_as_it_is_decoded() {
        let mut object = partner("2027-06-30T00:00:00Z");
        object["metadata"]["annotations"] = json!({"example.com/bulk": "x".repeat(1000)});
        object["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply"}]);
        object["metadata"]["labels"] = json!({"team": "a"});
        let Decoded::Typed(p) = serde_json::from_value::<Decoded<Partner>>(object).unwrap() else {
            panic!("readable");
        };
        assert!(p.metadata.annotations.is_none() && p.metadata.managed_fields.is_none());
        assert_eq!(p.metadata.labels.unwrap()["team"], "a");
    }

    #[test]
    fn one_object_that_does_not_fit_the_type_leaves_the_rest_of_a_list_readable() {
        let list = json!([
            partner("2027-06-30T00:00:00Z"),
            partner("2027-06-30T00:00:00,5Z")
        ]);
        let decoded: Vec<Decoded<Partner>> = serde_json::from_value(list).unwrap();
        assert!(
            matches!(&decoded[0], Decoded::Typed(p) if p.spec.subscription.expiration_date.is_some())
        );
        let Decoded::Unreadable { metadata, error } = &decoded[1] else {
            panic!("{:?}", decoded[1]);
        };
        assert_eq!(metadata.uid.as_deref(), Some("u"));
        assert!(
            error.starts_with("spec.subscription.expirationDate: "),
            "{error}"
        );
        assert_eq!(decoded[1].meta().name.as_deref(), Some("p"));
    }

    fn distributor(pending: u64, trial_days: u64) -> serde_json::Value {
        json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Distributor",
            "metadata": {"name": "d", "uid": "u"},
            "spec": {
                "organizationName": "D",
                "notificationEmail": "a@d.example",
                "skus": ["ESSENTIALS"],
                "trial": {"days": trial_days},
            },
            "status": {"partners": {"pending": pending, "trial": 0, "production": 0, "expired": 0}},
        })
    }

    #[test]
    fn a_distributor_whose_status_does_not_decode_is_read_without_it() {
        use crate::api::Distributor;
        let list = json!([distributor(1, 14), distributor(4_294_967_296, 14)]);
        let decoded: Vec<Decoded<Distributor>> = serde_json::from_value(list).unwrap();
        assert!(matches!(&decoded[0], Decoded::Typed(d) if d.status.is_some()));
        let Decoded::WithoutStatus { object, error } = &decoded[1] else {
            panic!("{:?}", decoded[1]);
        };
        assert!(object.status.is_none());
        assert_eq!(object.spec.trial.days, 14);
        assert!(error.starts_with("status.partners.pending: "), "{error}");
        assert!(!error.contains("ESSENTIALS"), "{error}");
    }

    #[test]
    fn a_distributor_whose_spec_does_not_decode_is_unreadable_and_a_partner_never_loses_its_status()
    {
        use crate::api::Distributor;
        let decoded: Decoded<Distributor> =
            serde_json::from_value(distributor(1, 4_294_967_296)).unwrap();
        let Decoded::Unreadable { error, .. } = decoded else {
            panic!("{decoded:?}");
        };
        assert!(error.starts_with("spec.trial.days: "), "{error}");
        let mut bad_status = partner("2027-06-30T00:00:00Z");
        bad_status["status"] = json!({"skus": 5});
        let decoded: Decoded<Partner> = serde_json::from_value(bad_status).unwrap();
        assert!(matches!(decoded, Decoded::Unreadable { .. }), "{decoded:?}");
    }
}
