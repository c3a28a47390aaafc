//! An object as a watch decodes it: typed, or, when its body does not fit the type, only its
//! metadata and why.
//!
//! A list decodes all or nothing: one Partner whose stored body the operator's types refuse (a
//! date kube-apiserver's `date-time` format took but chrono does not, stored before the schema
//! was tightened; a field a newer version of the CRD added) would fail every relist, and with it
//! every Partner. Watching [`Decoded<Partner>`] instead keeps the failure on that one object:
//! the controller leaves it alone and reports it (see `controller::unreadable`).
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
    /// The body did not decode as `K`: its metadata (which every object has) and the error.
    Unreadable {
        metadata: ObjectMeta,
        error: String,
    },
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Decoded<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        // Dropped before the typed copy is made: a list page of Partners with 256 kB of
        // annotations each would otherwise be held twice over until the cache trims it.
        if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            metadata.remove("managedFields");
            metadata.remove("annotations");
        }
        match K::deserialize(&value) {
            Ok(typed) => Ok(Self::Typed(typed)),
            Err(error) => {
                // Metadata is the API server's own and always decodes; if even it does not,
                // the object cannot be named, and failing the list is all that is left.
                let metadata = ObjectMeta::deserialize(&value["metadata"])
                    .map_err(serde::de::Error::custom)?;
                Ok(Self::Unreadable {
                    metadata,
                    error: error.to_string(),
                })
            }
        }
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
            Self::Typed(object) => object.meta(),
            Self::Unreadable { metadata, .. } => metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Typed(object) => object.meta_mut(),
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
        assert!(!error.is_empty());
        assert_eq!(decoded[1].meta().name.as_deref(), Some("p"));
    }
}
