//! A write's answer as the page shows it: done with a sentence, or refused with the refusal
//! laid out where the user acts on it: an invalid value next to its field, a missing
//! permission named, fields another manager owns listed with that manager, for the user to
//! take over on purpose or leave.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::plugin::{Error, Refusal};

/// The form field a spec path is entered in.
pub fn form_field(path: &str) -> Option<&'static str> {
    let fields = [
        ("metadata.name", "name"),
        ("spec.organizationName", "org"),
        ("spec.notificationEmail", "email"),
        ("spec.distributorRef", "distributor"),
        ("spec.subscription.expirationDate", "expires"),
        ("spec.subscription.autoUpgrade", "value"),
        ("spec.subscription.level", "production"),
    ];
    fields
        .iter()
        .find(|(spec, _)| path.starts_with(spec))
        .map(|(_, field)| *field)
}

/// A line without the flag the commands name (`--email: "x" is ...` → `"x" is ...`).
fn without_flag(line: &str) -> &str {
    match line.split_once(": ") {
        Some((flag, rest)) if flag.starts_with("--") && !flag.contains(' ') => rest,
        _ => line,
    }
}

/// Done: 200 with `message`.
pub fn done(message: String) -> Response {
    Json(json!({"ok": true, "message": message})).into_response()
}

/// Refused before any write (a bad form, a name that does not match).
pub fn bad_form(field: &str, message: String) -> Response {
    let mut fields = Map::new();
    fields.insert(field.into(), Value::String(message.clone()));
    let body = json!({"ok": false, "message": message, "fields": fields});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// A plugin error that names no field.
pub fn error(error: Error) -> Response {
    refused(Refusal::Other(error))
}

/// The refusal, laid out for the page.
pub fn refused(refusal: Refusal) -> Response {
    let message = refusal.line().to_string();
    let mut fields = Map::new();
    let mut body = json!({"ok": false, "message": message});
    let status = match &refusal {
        Refusal::Argument { field, line } => {
            let name = form_field(field).unwrap_or("form");
            fields.insert(name.into(), Value::String(without_flag(line).into()));
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Refusal::Invalid { causes, .. } => {
            for (path, why) in causes {
                let name = form_field(path).unwrap_or("form");
                fields.insert(name.into(), Value::String(format!("{path}: {why}")));
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Refusal::Forbidden { permission, .. } => {
            body["forbidden"] = json!(permission.as_ref().map_or_else(
                || "Your Kubernetes credentials may not do this.".to_string(),
                |p| format!(
                    "Your Kubernetes credentials lack the permission to {p}: ask your cluster's \
                     administrator for a Role that grants it."
                ),
            ));
            StatusCode::FORBIDDEN
        }
        Refusal::Conflict { conflicts, .. } => {
            body["conflicts"] = conflicts
                .iter()
                .map(|c| json!({"field": c.field, "manager": c.manager}))
                .collect();
            body["message"] = json!(conflict_sentence(conflicts));
            StatusCode::CONFLICT
        }
        Refusal::Other(_) => StatusCode::BAD_REQUEST,
    };
    body["fields"] = Value::Object(fields);
    (status, Json(body)).into_response()
}

/// What the page asks before a take-over.
fn conflict_sentence(conflicts: &[crate::plugin::ssa::Conflict]) -> String {
    let owned: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{} is managed by {:?}", c.field, c.manager))
        .collect();
    format!(
        "{}. Changing it here fights that manager (a GitOps tool sets it back): change it \
         where that manager takes it from, or take it over on purpose.",
        owned.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_lands_on_its_field() {
        assert_eq!(form_field("spec.notificationEmail"), Some("email"));
        assert_eq!(form_field("spec.distributorRef.name"), Some("distributor"));
        assert_eq!(form_field("status.x"), None);
        assert_eq!(
            without_flag("--email: \"x\" is not an email address"),
            "\"x\" is not an email address"
        );
        assert_eq!(without_flag("partner a: b"), "partner a: b");
    }
}
