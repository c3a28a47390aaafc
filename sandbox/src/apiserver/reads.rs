//! The reads: get and list (label and field selectors, `limit` and `continue`), as JSON or as
//! kubectl's `Table`.

use axum::response::IntoResponse;

use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::list_items::Item;
use super::routing::Request;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{Page, PageQuery};
use super::tables;

impl Request<'_> {
    pub(super) fn get(&self, wants_table: bool) -> ApiResult {
        self.check_version_reached()?;
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
                self.include()?,
            );
            return Ok(axum::Json(table).into_response());
        }
        Ok(axum::Json(&*object).into_response())
    }

    /// A read at a `resourceVersion` is served once the server has reached it: kube-apiserver's
    /// watch cache waits a few seconds for it, then answers 504. Here every write is already
    /// seen, so a version ahead of the store's is one that does not exist yet.
    fn check_version_reached(&self) -> Result<(), ApiError> {
        let requested = self
            .query
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let current = self.state.store.revision();
        if requested > current {
            return Err(ApiError::resource_version_too_large(requested, current));
        }
        Ok(())
    }

    /// What a `Table`'s rows carry of their objects (`includeObject`).
    pub(super) fn include(&self) -> Result<tables::Include, ApiError> {
        tables::Include::parse(self.query.include_object.as_deref()).map_err(ApiError::bad_request)
    }

    pub(super) fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let labels = LabelSelector::parse(self.query.label_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(self.query.field_selector.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        // Namespaces are not in a namespace: kube-apiserver refuses to select them by one.
        let is_namespace = self.resource.kind == "Namespace" && self.resource.group.is_empty();
        let supported = |f: &str| {
            f == "metadata.name"
                || (f == "metadata.namespace" && !is_namespace)
                || self.resource.selectable_fields.iter().any(|s| s == f)
        };
        if let Some(field) = fields.fields().find(|f| !supported(f)) {
            return Err(ApiError::bad_request(super::selectors::unsupported_field(
                self.resource,
                field,
            )));
        }
        Ok((labels, fields))
    }

    pub(super) fn list(&self, wants_table: bool) -> ApiResult {
        let page = self.page()?;
        let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
        if let (true, Some(last)) = (page.more, page.items.last()) {
            list_meta["continue"] = json!(continue_token(page.revision, last));
            if let Some(rest) = page.rest {
                list_meta["remainingItemCount"] = json!(rest);
            }
        }
        let items = page.items;
        let revision = page.revision;
        if wants_table {
            // A Table carries the list's metadata, the continue token with it: `kubectl get`
            // asks for 500 rows at a time and follows it for the rest.
            let mut table = tables::table(
                self.resource,
                &items,
                revision,
                (self.state.now)(),
                self.include()?,
            );
            table["metadata"] = list_meta;
            return Ok(axum::Json(table).into_response());
        }
        if self.resource.validator.is_some() && list_meta.get("continue").is_none() {
            // A custom resource list always says where to continue (nowhere, at the end).
            list_meta["continue"] = json!("");
        }
        let list = json!({
            "kind": format!("{}List", self.resource.kind),
            "apiVersion": self.resource.api_version(),
            "metadata": list_meta,
            "items": items.iter().map(|o| Item::of(self.resource, o)).collect::<Vec<_>>(),
        });
        Ok(axum::Json(list).into_response())
    }

    /// The page a list asks for: its selectors, version, continue token and limit.
    fn page(&self) -> Result<Page, ApiError> {
        let (labels, fields) = self.selectors()?;
        self.check_list_options(false)?;
        self.check_version_reached()?;
        let continued = self.continue_from()?;
        let query = PageQuery {
            namespace: self.target.namespace.as_deref(),
            at: continued
                .as_ref()
                .map(|p| p.version)
                .or(self.exact_version()),
            after: continued
                .as_ref()
                .map(|p| (p.namespace.as_str(), p.name.as_str())),
            limit: self.query.limit.filter(|limit| *limit > 0),
            // As kube-apiserver: counted only for a list without selectors.
            count_rest: labels.is_empty() && fields.is_empty(),
        };
        self.state
            .store
            .list_page(&self.key(), &query, |o| {
                labels.matches(o) && fields.matches(o)
            })
            .map_err(|_| match continued {
                Some(_) => ApiError::expired_list(CONTINUE_EXPIRED),
                None => {
                    ApiError::expired_list("The resourceVersion for the provided list is too old.")
                }
            })
    }

    /// The version a first page is read at with `resourceVersionMatch=Exact`; a continued
    /// page is read at its first page's (410 once the changes since are no longer kept).
    fn exact_version(&self) -> Option<u64> {
        (self.query.resource_version_match.as_deref() == Some("Exact"))
            .then(|| self.query.resource_version.as_deref()?.parse::<u64>().ok())
            .flatten()
    }

    /// Pagination: the continue token is the version of the first page and the
    /// `namespace/name` of the last item returned; the store lists in (namespace, name) order,
    /// and a page resumes after that pair, as the objects were at that version.
    fn continue_from(&self) -> Result<Option<Continued>, ApiError> {
        let Some(token) = &self.query.continue_token else {
            return Ok(None);
        };
        let invalid = || ApiError::bad_request("invalid continue token");
        let key = hex::decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)?;
        let mut parts = key.splitn(3, '/');
        let (Some(version), Some(namespace), Some(name)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        Ok(Some(Continued {
            version: version.parse().map_err(|_| invalid())?,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }))
    }
}

/// kube-apiserver's words for a continue token whose version is no longer kept.
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

/// Where a continued list resumes.
struct Continued {
    version: u64,
    namespace: String,
    name: String,
}

fn continue_token(version: u64, last: &Value) -> String {
    hex::encode(format!(
        "{version}/{}/{}",
        last["metadata"]["namespace"].as_str().unwrap_or_default(),
        last["metadata"]["name"].as_str().unwrap_or_default()
    ))
}
