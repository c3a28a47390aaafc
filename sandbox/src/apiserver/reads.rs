//! The reads: get and list (label and field selectors, `limit` and `continue`), as JSON or as
//! kubectl's `Table`.

use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::routing::Request;
use super::selectors::{FieldSelector, LabelSelector};
use super::tables;

impl Request<'_> {
    pub(super) fn get(&self, wants_table: bool) -> ApiResult {
        let object = self
            .state
            .store
            .get(&self.key(), self.namespace(), self.name())
            .ok_or_else(|| ApiError::not_found(self.resource, self.name()))?;
        if wants_table {
            let table = tables::table(
                self.resource,
                &[object],
                self.state.store.revision(),
                (self.state.now)(),
            );
            return Ok(axum::Json(table).into_response());
        }
        Ok(axum::Json(&*object).into_response())
    }

    pub(super) fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.query.label_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(self.query.field_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        if let Some(field) = fields.fields().find(|f| {
            !matches!(*f, "metadata.name" | "metadata.namespace")
                && !self.resource.selectable_fields.iter().any(|s| s == f)
        }) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        Ok((labels, fields))
    }

    pub(super) fn list(&self, wants_table: bool) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        // Pagination: the continue token is the `namespace/name` of the last item returned; the
        // store lists in (namespace, name) order, and a page resumes after that pair.
        let after = match &self.query.continue_token {
            None => None,
            Some(token) => {
                let key = hex::decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                let (namespace, name) = key
                    .split_once('/')
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                Some((namespace.to_string(), name.to_string()))
            }
        };
        let (items, revision) = self
            .state
            .store
            .list(&self.key(), self.target.namespace.as_deref());
        let mut matching = items
            .into_iter()
            .filter(|o| {
                after
                    .as_ref()
                    .is_none_or(|(ns, name)| object_pair(o) > (ns.as_str(), name.as_str()))
            })
            .filter(|o| labels.matches(o) && fields.matches(o));
        let items: Vec<_> = match self.query.limit.filter(|limit| *limit > 0) {
            Some(limit) => matching.by_ref().take(limit).collect(),
            None => matching.by_ref().collect(),
        };
        let mut list_meta = json!({"resourceVersion": revision.to_string()});
        if let Some(next) = matching.next() {
            let last = object_key(items.last().unwrap_or(&next));
            list_meta["continue"] = json!(hex::encode(last));
            // As kube-apiserver: counted only for a list without selectors.
            if labels.is_empty() && fields.is_empty() {
                list_meta["remainingItemCount"] = json!(1 + matching.count());
            }
        }
        if wants_table {
            return Ok(axum::Json(tables::table(
                self.resource,
                &items,
                revision,
                (self.state.now)(),
            ))
            .into_response());
        }
        let list = json!({
            "kind": format!("{}List", self.resource.kind),
            "apiVersion": self.resource.api_version(),
            "metadata": list_meta,
            "items": items.iter().map(|o| &**o).collect::<Vec<_>>(),
        });
        Ok(axum::Json(list).into_response())
    }
}

/// `(namespace, name)`: the order the store lists objects in.
fn object_pair(object: &Value) -> (&str, &str) {
    (
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

fn object_key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}
