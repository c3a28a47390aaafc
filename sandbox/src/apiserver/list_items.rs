//! The items of a list as kube-apiserver encodes them: a built-in kind's items carry no `kind`
//! or `apiVersion` (the list's own say it once), a custom resource's do (they are stored and
//! served as they were written).

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::resources::ResourceType;

/// An item of a list, serialized without its type for a built-in kind.
pub(super) struct Item<'a> {
    pub(super) object: &'a Value,
    pub(super) typed: bool,
}

impl<'a> Item<'a> {
    pub(super) fn of(resource: &ResourceType, object: &'a Value) -> Self {
        Self {
            object,
            typed: resource.validator.is_some(),
        }
    }
}

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(map) = self.object.as_object().filter(|_| !self.typed) else {
            return self.object.serialize(serializer);
        };
        let fields = map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "kind" | "apiVersion"));
        let mut out = serializer.serialize_map(None)?;
        for (key, value) in fields {
            out.serialize_entry(key, value)?;
        }
        out.end()
    }
}

/// Takes the type out of the items of a list already built as JSON.
pub(super) fn untype(items: &mut [Value]) {
    for item in items {
        if let Some(map) = item.as_object_mut() {
            map.remove("kind");
            map.remove("apiVersion");
        }
    }
}
