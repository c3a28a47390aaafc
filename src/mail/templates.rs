//! The wording of every email: a subject, a plain-text and an HTML body per event.
//!
//! Built-in templates ship inside the binary. An operator who wants their own wording points
//! `--templates-dir` at a directory holding any of `<event>.subject.txt`, `<event>.txt` and
//! `<event>.html` (`<event>` being the kebab-case name, e.g. `upgrade-notice.html`); each file
//! found there replaces the matching built-in one, the rest stay built in.
//!
//! Every template is checked at startup: it must parse, and it must render with a complete set
//! of variables, so a typo such as `{{ partner_organisation }}` stops the operator with the
//! file's name instead of producing broken mail weeks later. Rendering is strict: a variable a
//! template uses but that is not defined is an error, never an empty string.

mod built_in;
mod load;
mod render;
#[cfg(test)]
mod test_vars;
mod vars;

use std::fmt;
use std::path::PathBuf;

use minijinja::Environment;

pub use render::RenderedEmail;
pub(crate) use render::one_line;
pub use vars::{ActivationLink, EmailVars, instant, required_variables};

use crate::api::EmailEvent;

/// Every email event, in lifecycle order.
pub const EVENTS: [EmailEvent; 8] = [
    EmailEvent::Activation,
    EmailEvent::UpgradeNotice,
    EmailEvent::ExpiryNotice,
    EmailEvent::Converted,
    EmailEvent::TrialExpired,
    EmailEvent::ProductionExpired,
    EmailEvent::Renewed,
    EmailEvent::Activated,
];

/// The three parts of an email.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// A template could not be loaded, or an email could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read email template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("email template {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "templates directory {path} holds {file}, which is not an email template (expected <event>.subject.txt, <event>.txt or <event>.html with <event> one of {events})"
    )]
    UnknownFile {
        path: PathBuf,
        file: String,
        events: String,
    },
    #[error("cannot render the {event} email: {variables} not set")]
    MissingVariables {
        event: &'static str,
        variables: String,
    },
    #[error("cannot render email template {name}: {message}")]
    Render { name: String, message: String },
}

/// The loaded, checked templates of every event.
pub struct Templates {
    env: Environment<'static>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// The built-in templates only.
    pub fn built_in() -> Self {
        match Self::load(None) {
            Ok(templates) => templates,
            // The built-in templates are checked by the unit tests; reaching this is a bug.
            Err(err) => panic!("built-in email templates are broken: {err}"),
        }
    }
}
