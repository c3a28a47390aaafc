//! Why a write was refused, kept apart by kind so each face of the plugin can say it its own
//! way: the commands print one line ([`Refusal::line`], the same line as before), the console
//! puts an invalid value next to its field, names the permission a 403 lacks, and asks before
//! taking a field over from another manager.

use super::Error;
use super::ssa::Conflict;

/// A refused write.
#[derive(Debug)]
pub enum Refusal {
    /// An argument the plugin checked before any request: the spec field it is written to
    /// (`spec.notificationEmail`) and the one line naming the flag.
    Argument { field: String, line: String },
    /// The API server said the object is invalid (422): each cause's field and message.
    Invalid {
        causes: Vec<(String, String)>,
        line: String,
    },
    /// The user's credentials may not do this (403); `permission` is what is missing
    /// (`patch partners.partner-operator.io in namespace "x"`) when the message says it.
    Forbidden {
        permission: Option<String>,
        line: String,
    },
    /// Fields another manager owns (a GitOps tool): taken over only when asked to.
    Conflict {
        conflicts: Vec<Conflict>,
        line: String,
    },
    /// Anything else, as the commands print it.
    Other(Error),
}

impl Refusal {
    /// The one line the commands print.
    pub fn line(&self) -> &str {
        match self {
            Self::Argument { line, .. }
            | Self::Invalid { line, .. }
            | Self::Forbidden { line, .. }
            | Self::Conflict { line, .. } => line,
            Self::Other(error) => &error.0,
        }
    }

    /// From the API server's answer to a request about `what`.
    pub fn from_api(what: &str, err: kube::Error) -> Self {
        let (code, causes, message) = match &err {
            kube::Error::Api(status) => (
                status.code,
                status
                    .details
                    .iter()
                    .flat_map(|d| &d.causes)
                    .map(|c| {
                        (
                            c.field.trim_start_matches('.').to_string(),
                            c.message.clone(),
                        )
                    })
                    .collect::<Vec<_>>(),
                status.message.clone(),
            ),
            _ => (0, vec![], String::new()),
        };
        let line = super::api_error(what, err).0;
        match code {
            422 if !causes.is_empty() => Self::Invalid { causes, line },
            403 => Self::Forbidden {
                permission: missing_permission(&message),
                line,
            },
            _ => Self::Other(Error(line)),
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Other(error) => error,
            other => Error(other.line().to_string()),
        }
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Self::Other(error)
    }
}

/// The permission a kube-apiserver 403 names: `User "u" cannot patch resource "partners" in
/// API group "partner-operator.io" in the namespace "ns"`.
pub fn missing_permission(message: &str) -> Option<String> {
    let pattern = regex::Regex::new(
        r#"cannot (\S+) resource "([^"]+)" in API group "([^"]*)"(?: in the namespace "([^"]+)")?"#,
    )
    .expect("a pattern");
    let found = pattern.captures(message)?;
    let group = &found[3];
    let resource = if group.is_empty() {
        found[2].to_string()
    } else {
        format!("{}.{group}", &found[2])
    };
    let scope = found.get(4).map_or("cluster-wide".to_string(), |ns| {
        format!("in namespace {:?}", ns.as_str())
    });
    Some(format!("{} {resource} {scope}", &found[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_names_the_verb_the_resource_and_the_namespace() {
        let message = r#"partners.partner-operator.io "contoso" is forbidden: User "system:serviceaccount:a:viewer" cannot patch resource "partners" in API group "partner-operator.io" in the namespace "northwind-partners""#;
        assert_eq!(
            missing_permission(message).as_deref(),
            Some(r#"patch partners.partner-operator.io in namespace "northwind-partners""#)
        );
        let cluster =
            r#"User "u" cannot list resource "namespaces" in API group "" at the cluster scope"#;
        assert_eq!(
            missing_permission(cluster).as_deref(),
            Some("list namespaces cluster-wide")
        );
        assert_eq!(missing_permission("forbidden"), None);
    }
}
