//! The version options of a list or a watch (`resourceVersion`, `resourceVersionMatch`),
//! checked as kube-apiserver checks them.

use super::errors::ApiError;
use super::routing::Request;

const MATCH: &str = "resourceVersionMatch";

impl Request<'_> {
    /// kube-apiserver's `ValidateListOptions`: 422 naming `resourceVersionMatch` when it is
    /// given without a version, with a continue token, with a value it does not know, or (for
    /// a watch) without `sendInitialEvents`.
    pub(super) fn check_list_options(&self, watch: bool) -> Result<(), ApiError> {
        let query = self.query;
        let mut errors: Vec<String> = vec![];
        let forbidden = |detail: &str| format!("{MATCH}: Forbidden: {detail}");
        let given = query.resource_version_match.as_deref();
        if watch {
            if query.send_initial_events && given != Some("NotOlderThan") {
                errors.push(forbidden(
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if let Some(value) = given {
                if !query.send_initial_events {
                    errors.push(forbidden(
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if value != "NotOlderThan" {
                    errors.push(format!(
                        "{MATCH}: Unsupported value: {value:?}: supported values: \"NotOlderThan\""
                    ));
                }
            }
        } else if let Some(value) = given {
            if query.resource_version.is_none() {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if query.continue_token.is_some() {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if !matches!(value, "Exact" | "NotOlderThan") {
                errors.push(format!(
                    "{MATCH}: Unsupported value: {value:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                ));
            }
            if value == "Exact" && query.resource_version.as_deref() == Some("0") {
                errors.push(forbidden(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(ApiError::invalid_request(
                "ListOptions.meta.k8s.io",
                MATCH,
                &errors[0],
            )),
            _ => Err(ApiError::invalid_request(
                "ListOptions.meta.k8s.io",
                MATCH,
                &format!("[{}]", errors.join(", ")),
            )),
        }
    }
}
