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

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};

use crate::api::EmailEvent;

/// Every email event, in lifecycle order.
pub const EVENTS: [EmailEvent; 7] = [
    EmailEvent::Activation,
    EmailEvent::UpgradeNotice,
    EmailEvent::ExpiryNotice,
    EmailEvent::Converted,
    EmailEvent::TrialExpired,
    EmailEvent::ProductionExpired,
    EmailEvent::Renewed,
];

/// The three parts of an email.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// The activation link, which carries the tenant's one-time token.
///
/// Anyone holding the link can activate the tenant, so it is kept out of every log line,
/// `Debug` output and error message: `Debug` and `Display` print a placeholder, and the only
/// way to read the link is [`ActivationLink::expose`], which the templates use.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationLink(String);

impl ActivationLink {
    pub fn new(link: impl Into<String>) -> Self {
        Self(link.into())
    }

    /// The link itself, for the email body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ActivationLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationLink(<redacted>)")
    }
}

/// The variables a template may use. Which of the optional ones an event needs is fixed by
/// [`required_variables`]; the others may be unset.
///
/// In templates, dates are rendered as `YYYY-MM-DD` (UTC) and the link expiry as
/// `YYYY-MM-DD HH:MM UTC`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmailVars {
    /// `spec.organizationName` of the Partner (template variable `partner_organization`).
    pub partner_organization: String,
    /// `spec.organizationName` of the Distributor (`distributor_organization`).
    pub distributor_organization: String,
    /// `metadata.name` of the Distributor (`distributor_name`).
    pub distributor_name: String,
    /// `tenant_id`.
    pub tenant_id: String,
    /// `tenant_namespace`.
    pub tenant_namespace: String,
    /// `activation_link`: needed by `activation`.
    pub activation_link: Option<ActivationLink>,
    /// `link_expires_at`: needed by `activation`.
    pub link_expires_at: Option<DateTime<Utc>>,
    /// `trial_ends_on`: needed by `activation`, the notices and `trial-expired`.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// `production_since`: needed by `converted` and `renewed`.
    pub production_since: Option<DateTime<Utc>>,
    /// `expires_on`: the Production expiration date; needed by `production-expired`.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The optional variables an event's templates cannot do without.
pub fn required_variables(event: EmailEvent) -> &'static [&'static str] {
    match event {
        EmailEvent::Activation => &["activation_link", "link_expires_at", "trial_ends_on"],
        EmailEvent::UpgradeNotice | EmailEvent::ExpiryNotice | EmailEvent::TrialExpired => {
            &["trial_ends_on"]
        }
        EmailEvent::Converted => &["production_since"],
        EmailEvent::ProductionExpired => &["expires_on"],
        EmailEvent::Renewed => &["production_since"],
    }
}

fn date(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|at| at.format("%Y-%m-%d").to_string())
}

impl EmailVars {
    /// The names of the variables `event` needs that are unset.
    fn missing(&self, event: EmailEvent) -> Vec<&'static str> {
        required_variables(event)
            .iter()
            .copied()
            .filter(|name| match *name {
                "activation_link" => self.activation_link.is_none(),
                "link_expires_at" => self.link_expires_at.is_none(),
                "trial_ends_on" => self.trial_ends_at.is_none(),
                "production_since" => self.production_since.is_none(),
                "expires_on" => self.expires_at.is_none(),
                _ => false,
            })
            .collect()
    }

    fn context(&self) -> minijinja::Value {
        context! {
            partner_organization => &self.partner_organization,
            distributor_organization => &self.distributor_organization,
            distributor_name => &self.distributor_name,
            tenant_id => &self.tenant_id,
            tenant_namespace => &self.tenant_namespace,
            activation_link => self.activation_link.as_ref().map(ActivationLink::expose),
            link_expires_at => self
                .link_expires_at
                .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string()),
            trial_ends_on => date(self.trial_ends_at),
            production_since => date(self.production_since),
            expires_on => date(self.expires_at),
        }
    }

    /// A complete set of variables, to check at startup that every template renders.
    fn sample() -> Self {
        let at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        Self {
            partner_organization: "Example MSP".into(),
            distributor_organization: "Example Distribution".into(),
            distributor_name: "example".into(),
            tenant_id: "00000000-0000-0000-0000-000000000000".into(),
            tenant_namespace: "partners-example".into(),
            activation_link: Some(ActivationLink::new("https://example.invalid/activate")),
            link_expires_at: Some(at),
            trial_ends_at: Some(at),
            production_since: Some(at),
            expires_at: Some(at),
        }
    }
}

/// An email rendered from the templates.
#[derive(Clone, PartialEq)]
pub struct RenderedEmail {
    /// One line: line breaks and other control characters are replaced by spaces.
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl fmt::Debug for RenderedEmail {
    /// The bodies may hold the activation link: only the subject is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedEmail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

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

/// Where a template came from, to name it in errors.
fn origin(dir: Option<&Path>, name: &str) -> PathBuf {
    match dir {
        Some(dir) => dir.join(name),
        None => PathBuf::from(format!("<built-in>/{name}")),
    }
}

/// The built-in source of the template `name` (`<event>.<part>`).
fn built_in(name: &str) -> &'static str {
    macro_rules! templates {
        ($($file:literal),* $(,)?) => {
            match name {
                $($file => include_str!(concat!("templates/", $file)),)*
                _ => "",
            }
        };
    }
    templates!(
        "activation.subject.txt",
        "activation.txt",
        "activation.html",
        "upgrade-notice.subject.txt",
        "upgrade-notice.txt",
        "upgrade-notice.html",
        "expiry-notice.subject.txt",
        "expiry-notice.txt",
        "expiry-notice.html",
        "converted.subject.txt",
        "converted.txt",
        "converted.html",
        "trial-expired.subject.txt",
        "trial-expired.txt",
        "trial-expired.html",
        "production-expired.subject.txt",
        "production-expired.txt",
        "production-expired.html",
        "renewed.subject.txt",
        "renewed.txt",
        "renewed.html",
    )
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

    /// The built-in templates, each replaced by the file of the same name in `dir` if there
    /// is one. A file in `dir` that is not a template name is refused, so a misspelt
    /// override (`activaton.html`) is not silently ignored.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let names: Vec<String> = EVENTS
            .iter()
            .flat_map(|event| {
                PARTS
                    .iter()
                    .map(move |part| format!("{}.{part}", event.as_str()))
            })
            .collect();
        let mut sources: Vec<(String, Option<&Path>, String)> = names
            .iter()
            .map(|name| (name.clone(), None, built_in(name).to_owned()))
            .collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::Read {
                path: dir.to_owned(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| TemplateError::Read {
                    path: dir.to_owned(),
                    source,
                })?;
                let file = entry.file_name().to_string_lossy().into_owned();
                // Kubernetes mounts a ConfigMap with hidden `..data` links and directories.
                if file.starts_with('.') || entry.path().is_dir() {
                    continue;
                }
                let Some(slot) = sources.iter_mut().find(|(name, _, _)| *name == file) else {
                    return Err(TemplateError::UnknownFile {
                        path: dir.to_owned(),
                        file,
                        events: EVENTS.map(EmailEvent::as_str).join(", "),
                    });
                };
                let path = entry.path();
                slot.2 = std::fs::read_to_string(&path)
                    .map_err(|source| TemplateError::Read { path, source })?;
                slot.1 = Some(dir);
            }
        }

        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Keep a template's final newline out of subjects; bodies keep their own layout.
        env.set_keep_trailing_newline(false);
        env.set_formatter(html_formatter);
        for (name, from, source) in sources.iter() {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|err| TemplateError::Invalid {
                    path: origin(*from, name),
                    message: describe(&err),
                })?;
        }
        let sample = EmailVars::sample().context();
        for (name, from, _) in &sources {
            let rendered = env.get_template(name).and_then(|t| t.render(&sample));
            if let Err(err) = rendered {
                return Err(TemplateError::Invalid {
                    path: origin(*from, name),
                    message: describe(&err),
                });
            }
        }
        Ok(Self { env })
    }

    /// Renders the subject and both bodies of `event`. The HTML body escapes every variable.
    pub fn render(
        &self,
        event: EmailEvent,
        vars: &EmailVars,
    ) -> Result<RenderedEmail, TemplateError> {
        let missing = vars.missing(event);
        if !missing.is_empty() {
            return Err(TemplateError::MissingVariables {
                event: event.as_str(),
                variables: missing.join(", "),
            });
        }
        let context = vars.context();
        let render = |part: &str| {
            let name = format!("{}.{part}", event.as_str());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&context))
                .map_err(|err| TemplateError::Render {
                    name,
                    message: describe(&err),
                })
        };
        Ok(RenderedEmail {
            subject: one_line(&render("subject.txt")?),
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

/// A template error in one line, with its line number. Never includes the rendered values,
/// which may hold the activation link.
fn describe(err: &minijinja::Error) -> String {
    let mut message = format!("{}", err.kind());
    if let Some(detail) = err.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if let Some(line) = err.line() {
        message.push_str(&format!(" (line {line})"));
    }
    message
}

/// Escapes strings in HTML templates like minijinja does, except `/`: escaping it is allowed
/// but makes links in the HTML source unreadable (`https:&#x2f;&#x2f;...`), and some mail
/// clients show that source to their users.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#x27;"),
                    c => escaped.push(c),
                }
            }
            out.write_str(&escaped).map_err(|err| {
                minijinja::Error::new(minijinja::ErrorKind::WriteFailure, err.to_string())
            })
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// A subject on one line: user-supplied names must not add header lines.
fn one_line(subject: &str) -> String {
    subject
        .split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> EmailVars {
        EmailVars {
            partner_organization: "Acme <IT> & Co".into(),
            ..EmailVars::sample()
        }
    }

    #[test]
    fn every_built_in_template_renders() {
        let templates = Templates::built_in();
        for event in EVENTS {
            let email = templates.render(event, &vars()).unwrap();
            assert!(!email.subject.is_empty(), "{event:?}");
            assert!(email.text.contains("Acme <IT> & Co"), "{event:?}");
            assert!(email.html.contains("Acme &lt;IT&gt; &amp; Co"), "{event:?}");
            assert!(!email.html.contains("<IT>"), "{event:?}");
            assert!(!email.html.contains("&#x2f;"), "{event:?}");
        }
    }

    #[test]
    fn wording_names_the_dates_and_the_distributor() {
        let templates = Templates::built_in();
        let at = "2026-03-14T10:00:00Z".parse().unwrap();
        let vars = EmailVars {
            trial_ends_at: Some(at),
            ..vars()
        };
        let upgrade = templates.render(EmailEvent::UpgradeNotice, &vars).unwrap();
        assert!(
            upgrade
                .subject
                .contains("converts to Production on 2026-03-14")
        );
        assert!(
            upgrade
                .text
                .contains("Billing to Example Distribution starts then")
        );
        let expiry = templates.render(EmailEvent::ExpiryNotice, &vars).unwrap();
        assert!(expiry.subject.contains("expires on 2026-03-14"));
        let activation = templates.render(EmailEvent::Activation, &vars).unwrap();
        assert_eq!(activation.subject, "Activate your Acme <IT> & Co tenant");
        assert!(activation.text.contains("https://example.invalid/activate"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let vars = EmailVars {
            activation_link: None,
            ..vars()
        };
        let err = Templates::built_in()
            .render(EmailEvent::Activation, &vars)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot render the activation email: activation_link not set"
        );
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let vars = EmailVars {
            partner_organization: "Evil\r\nBcc: victim@example.com\tInc".into(),
            ..vars()
        };
        let email = Templates::built_in()
            .render(EmailEvent::Converted, &vars)
            .unwrap();
        assert_eq!(
            email.subject,
            "Evil Bcc: victim@example.com Inc: your tenant is now in Production"
        );
    }

    #[test]
    fn the_link_is_redacted_in_debug_output() {
        let vars = vars();
        let debug = format!("{vars:?}");
        assert!(debug.contains("ActivationLink(<redacted>)"));
        assert!(!debug.contains("example.invalid"));
        let email = Templates::built_in()
            .render(EmailEvent::Activation, &vars)
            .unwrap();
        assert!(!format!("{email:?}").contains("example.invalid"));
    }
}
