//! Keys a JSON body gives twice. serde_json keeps the last value without a word; kube-apiserver
//! refuses such a body under `fieldValidation=Strict` and warns of it otherwise, naming each
//! field (`data.k`), so the server looks for them before it decodes a body.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The fields a JSON document gives more than once, as `a.b[0].c`; none for a body that is
/// not JSON (it fails to decode later, saying why).
pub(super) fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let found = RefCell::new(vec![]);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let walker = Walker {
        path: String::new(),
        found: &found,
    };
    match walker.deserialize(&mut deserializer) {
        Ok(()) => found.into_inner(),
        Err(_) => vec![],
    }
}

/// Walks a document, noting the keys a map repeats.
struct Walker<'a> {
    path: String,
    found: &'a RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Walker<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = match self.path.as_str() {
                "" => key.clone(),
                parent => format!("{parent}.{key}"),
            };
            if !seen.insert(key) {
                self.found.borrow_mut().push(path.clone());
            }
            map.next_value_seed(Walker {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(Walker {
                path: format!("{}[{index}]", self.path),
                found: self.found,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::duplicate_fields;

    #[test]
    fn names_each_repeated_key_by_its_path() {
        let body = br#"{"data": {"k": "1", "k": "2"}, "spec": {"items": [{"a": 1, "a": 2}]}}"#;
        assert_eq!(duplicate_fields(body), ["data.k", "spec.items[0].a"]);
        assert!(duplicate_fields(br#"{"a": {"k": 1}, "b": {"k": 1}}"#).is_empty());
        assert!(duplicate_fields(b"not json").is_empty());
    }
}
