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

use crate::api::{DeletionPolicy, EmailEvent};

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
/// [`required_variables`]; the others may be unset (`none` in a template).
///
/// Every instant is told the same way, by [`instant`]: `12 December 2026 at 20:48 UTC` (the
/// template says "on" or "until" before it). The variables keep their historical names
/// (`trial_ends_on`, `expires_on`), so templates written for earlier versions still load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmailVars {
    /// `spec.organizationName` of the Partner (template variable `partner_organization`):
    /// partner-supplied, plain text in the text part, escaped in the HTML part.
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
    /// `trial_ends_on`: needed by the notices and `trial-expired`; `activation` needs it or
    /// `production_since` (a Partner that starts in Production has no trial).
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// `production_since`: needed by `converted` and `renewed`; set in an `activation` of a
    /// Partner that starts in Production.
    pub production_since: Option<DateTime<Utc>>,
    /// `expires_on`: the end of Production; needed by `production-expired`. Unset in
    /// Production means the subscription has no end date.
    pub expires_at: Option<DateTime<Utc>>,
    /// The distributor's public reply address (the Distributor's `spec.email.replyTo`), if it
    /// sets one: the message's `Reply-To`, so a partner who answers reaches the distributor
    /// (template variable `reply_to`). The `From` stays the operator's configured sender.
    pub reply_to: Option<String>,
    /// The Partner's `spec.tenant.deletionPolicy`: what becomes of the tenant and its data
    /// when the Partner is deleted (template variable `deletion_policy`, `"Delete"` or
    /// `"Retain"`). Told by the expiry emails.
    pub deletion_policy: DeletionPolicy,
    /// Whether this message is the distributor's copy of a partner notice (template variable
    /// `to_distributor`): the templates then say so before the partner's text.
    pub to_distributor: bool,
}

/// Stands for "one of these" in [`required_variables`].
const TRIAL_OR_PRODUCTION: &str = "trial_ends_on or production_since";

/// The optional variables an event's templates cannot do without. An entry
/// `"a or b"` is satisfied by either.
pub fn required_variables(event: EmailEvent) -> &'static [&'static str] {
    match event {
        EmailEvent::Activation => &["activation_link", "link_expires_at", TRIAL_OR_PRODUCTION],
        EmailEvent::UpgradeNotice | EmailEvent::ExpiryNotice | EmailEvent::TrialExpired => {
            &["trial_ends_on"]
        }
        EmailEvent::Converted => &["production_since"],
        EmailEvent::ProductionExpired => &["expires_on"],
        EmailEvent::Renewed => &["production_since"],
        EmailEvent::Activated => &[],
    }
}

/// How every email tells an instant: the date and the time of day in UTC, e.g.
/// `12 December 2026 at 20:48 UTC`.
pub fn instant(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y at %H:%M UTC").to_string()
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
                TRIAL_OR_PRODUCTION => {
                    self.trial_ends_at.is_none() && self.production_since.is_none()
                }
                _ => false,
            })
            .collect()
    }

    fn context(&self) -> minijinja::Value {
        let policy = match self.deletion_policy {
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::Retain => "Retain",
        };
        context! {
            partner_organization => &self.partner_organization,
            distributor_organization => &self.distributor_organization,
            distributor_name => &self.distributor_name,
            tenant_id => &self.tenant_id,
            tenant_namespace => &self.tenant_namespace,
            activation_link => self.activation_link.as_ref().map(ActivationLink::expose),
            link_expires_at => self.link_expires_at.map(instant),
            trial_ends_on => self.trial_ends_at.map(instant),
            production_since => self.production_since.map(instant),
            expires_on => self.expires_at.map(instant),
            reply_to => &self.reply_to,
            deletion_policy => policy,
            to_distributor => self.to_distributor,
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
            reply_to: Some("partners@example.org".into()),
            deletion_policy: DeletionPolicy::Delete,
            to_distributor: false,
        }
    }

    /// The shapes of variables the lifecycle gives, so that startup renders every branch a
    /// template may take: a trial (no Production yet), Production with and without an end
    /// (no trial), either deletion policy, with and without a reply address, to the partner
    /// and to the distributor.
    fn samples() -> [Self; 5] {
        let full = Self::sample();
        [
            Self {
                production_since: None,
                ..full.clone()
            },
            Self {
                trial_ends_at: None,
                deletion_policy: DeletionPolicy::Retain,
                ..full.clone()
            },
            Self {
                trial_ends_at: None,
                expires_at: None,
                reply_to: None,
                ..full.clone()
            },
            Self {
                to_distributor: true,
                ..full.clone()
            },
            full,
        ]
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
        "activated.subject.txt",
        "activated.txt",
        "activated.html",
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
        // Said here rather than left to minijinja's default (which also escapes `.html`):
        // every value in an HTML body is escaped, partner-supplied names included; the
        // subject and the text body are plain text and keep them as written.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(html_formatter);
        for (name, from, source) in sources.iter() {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|err| TemplateError::Invalid {
                    path: origin(*from, name),
                    message: describe(&err),
                })?;
        }
        let samples = EmailVars::samples();
        for event in EVENTS {
            for sample in samples.iter().filter(|s| s.missing(event).is_empty()) {
                let context = sample.context();
                for part in PARTS {
                    let name = format!("{}.{part}", event.as_str());
                    let rendered = env.get_template(&name).and_then(|t| t.render(&context));
                    if let Err(err) = rendered {
                        let from = sources
                            .iter()
                            .find(|(n, _, _)| *n == name)
                            .and_then(|(_, from, _)| *from);
                        return Err(TemplateError::Invalid {
                            path: origin(from, &name),
                            message: describe(&err),
                        });
                    }
                }
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

/// A subject (or a header's display name) on one line: user-supplied names must not add
/// header lines.
pub(crate) fn one_line(subject: &str) -> String {
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

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A trial partner: no Production yet.
    fn trial() -> EmailVars {
        EmailVars {
            partner_organization: "Contoso".into(),
            distributor_organization: "Northwind".into(),
            link_expires_at: Some(at("2026-12-02T10:00:00Z")),
            trial_ends_at: Some(at("2026-12-12T20:48:37Z")),
            production_since: None,
            expires_at: Some(at("2026-12-12T20:48:37Z")),
            reply_to: Some("ops@northwind.example".into()),
            ..EmailVars::sample()
        }
    }

    /// A partner that started in Production: no trial at all.
    fn production(expires_at: Option<DateTime<Utc>>) -> EmailVars {
        EmailVars {
            trial_ends_at: None,
            production_since: Some(at("2026-11-02T09:30:00Z")),
            expires_at,
            ..trial()
        }
    }

    /// The HTML body with its tags taken out and its lines joined, to look for sentences.
    fn html_text(html: &str) -> String {
        let mut text = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Both bodies of `email`, the HTML one as text.
    fn bodies(email: &RenderedEmail) -> [String; 2] {
        [
            email.text.split_whitespace().collect::<Vec<_>>().join(" "),
            html_text(&email.html),
        ]
    }

    #[test]
    fn instants_are_told_with_date_and_time_in_utc() {
        assert_eq!(
            instant(at("2026-12-12T20:48:37Z")),
            "12 December 2026 at 20:48 UTC"
        );
        assert_eq!(
            instant(at("2026-03-02T07:05:00+02:00")),
            "2 March 2026 at 05:05 UTC"
        );
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
    fn partner_text_is_plain_in_the_text_part_and_escaped_in_the_html_part() {
        let templates = Templates::built_in();
        let vars = EmailVars {
            partner_organization: "<b>Contoso</b> \"IT\"".into(),
            production_since: Some(at("2026-11-02T09:30:00Z")),
            ..trial()
        };
        for event in EVENTS {
            let email = templates.render(event, &vars).unwrap();
            if event == EmailEvent::Activated {
                // To the distributor, naming the partner.
                assert!(email.text.contains(
                    "Your partner \"<b>Contoso</b> \"IT\"\" (the organization name given"
                ));
                assert!(email.text.contains("activated its tenant"));
                assert!(
                    email
                        .html
                        .contains("&lt;b&gt;Contoso&lt;/b&gt; &quot;IT&quot;")
                );
                assert!(!email.html.contains("<b>"));
                continue;
            }
            assert!(
                email.text.starts_with(
                    "Hello,\n\nThis message is about the tenant of \"<b>Contoso</b> \"IT\"\" (the organization name given"
                ),
                "{event:?}: {}",
                email.text
            );
            assert!(
                email
                    .html
                    .contains("the tenant of “&lt;b&gt;Contoso&lt;/b&gt; &quot;IT&quot;”"),
                "{event:?}: {}",
                email.html
            );
            assert!(!email.html.contains("<b>"), "{event:?}");
            assert!(email.subject.contains("<b>Contoso</b>"), "{event:?}");
        }
    }

    #[test]
    fn subjects_do_not_start_with_partner_text() {
        let templates = Templates::built_in();
        let vars = EmailVars {
            production_since: Some(at("2026-11-02T09:30:00Z")),
            ..trial()
        };
        let copy = EmailVars {
            to_distributor: true,
            ..vars.clone()
        };
        for event in EVENTS {
            // The operator's own words lead; the partner's name comes last, quoted and
            // attributed.
            let subject = templates.render(event, &vars).unwrap().subject;
            assert!(
                ["Activate ", "Trial ", "Tenant ", "Production "]
                    .iter()
                    .any(|lead| subject.starts_with(lead)),
                "{subject}"
            );
            assert!(subject.ends_with(" (partner \"Contoso\")"), "{subject}");
            if event == EmailEvent::Activated {
                // The distributor's own news, never a copy of a partner's message.
                continue;
            }
            // The distributor's copy says that it is one.
            let copy = templates.render(event, &copy).unwrap().subject;
            assert_eq!(copy, format!("Copy of a partner notice: {subject}"));
        }
        let converted = templates.render(EmailEvent::Converted, &production(None));
        assert_eq!(
            converted.unwrap().subject,
            "Tenant now in Production (partner \"Contoso\")"
        );
    }

    #[test]
    fn every_email_names_the_partner_as_registered_and_offers_a_reply_to_the_distributor() {
        let templates = Templates::built_in();
        for (event, vars) in [
            (EmailEvent::Activation, trial()),
            (EmailEvent::Activation, production(None)),
            (EmailEvent::UpgradeNotice, trial()),
            (EmailEvent::ExpiryNotice, trial()),
            (EmailEvent::Converted, production(None)),
            (EmailEvent::TrialExpired, trial()),
            (
                EmailEvent::ProductionExpired,
                production(Some(at("2027-06-30T00:00:00Z"))),
            ),
        ] {
            let email = templates.render(event, &vars).unwrap();
            for body in bodies(&email) {
                assert!(
                    body.starts_with(
                        "Hello, This message is about the tenant of \u{201c}Contoso\u{201d}"
                    ) || body.starts_with("Hello, This message is about the tenant of \"Contoso\""),
                    "{event:?}: {body}"
                );
                assert!(
                    body.contains(
                        "Questions? Reply to this email to reach Northwind at ops@northwind.example."
                    ),
                    "{event:?}: {body}"
                );
                assert!(!body.contains("Hello Contoso"), "{event:?}: {body}");
                // No date without its time.
                assert!(!body.contains("2026-"), "{event:?}: {body}");
            }
            // Without an address to reply to, no sentence offers one.
            let no_reply = EmailVars {
                reply_to: None,
                ..vars
            };
            let email = templates.render(event, &no_reply).unwrap();
            for body in bodies(&email) {
                assert!(!body.contains("Reply to"), "{event:?}: {body}");
            }
        }
    }

    #[test]
    fn every_date_is_an_instant() {
        let templates = Templates::built_in();
        let trial_end = "on 12 December 2026 at 20:48 UTC";
        let expect = [
            (EmailEvent::Activation, trial(), trial_end),
            (
                EmailEvent::Activation,
                trial(),
                "valid until 2 December 2026 at 10:00 UTC",
            ),
            (EmailEvent::UpgradeNotice, trial(), trial_end),
            (EmailEvent::ExpiryNotice, trial(), trial_end),
            (EmailEvent::TrialExpired, trial(), trial_end),
            (
                EmailEvent::Converted,
                production(None),
                "moved to Production on 2 November 2026 at 09:30 UTC",
            ),
            (
                EmailEvent::Converted,
                production(Some(at("2027-06-30T00:00:00Z"))),
                "runs until 30 June 2027 at 00:00 UTC",
            ),
            (
                EmailEvent::ProductionExpired,
                production(Some(at("2027-06-30T00:00:00Z"))),
                "expired on 30 June 2027 at 00:00 UTC",
            ),
        ];
        for (event, vars, said) in expect {
            let email = templates.render(event, &vars).unwrap();
            for body in bodies(&email) {
                assert!(body.contains(said), "{event:?} lacks {said:?}: {body}");
            }
        }
        let upgrade = templates
            .render(EmailEvent::UpgradeNotice, &trial())
            .unwrap();
        assert_eq!(
            upgrade.subject,
            "Trial converts to Production on 12 December 2026 at 20:48 UTC (partner \"Contoso\")"
        );
        let expiry = templates
            .render(EmailEvent::ExpiryNotice, &trial())
            .unwrap();
        assert_eq!(
            expiry.subject,
            "Trial expires on 12 December 2026 at 20:48 UTC (partner \"Contoso\")"
        );
    }

    #[test]
    fn expiry_emails_say_what_becomes_of_the_tenant_and_its_data() {
        let templates = Templates::built_in();
        let kept = "The tenant and its data are kept, with its entitlements marked as expired, \
                    until your partner record at Northwind is deleted.";
        let deleted = "Deleting that record also deletes the tenant (namespace partners-example) \
                       and all of its data.";
        let retained = "Deleting that record does not delete the tenant (namespace \
                        partners-example) or its data: they are kept.";
        let ended = production(Some(at("2027-06-30T00:00:00Z")));
        for (event, vars) in [
            (EmailEvent::ExpiryNotice, trial()),
            (EmailEvent::TrialExpired, trial()),
            (EmailEvent::ProductionExpired, ended),
        ] {
            for (policy, says, not) in [
                (DeletionPolicy::Delete, deleted, retained),
                (DeletionPolicy::Retain, retained, deleted),
            ] {
                let vars = EmailVars {
                    deletion_policy: policy,
                    ..vars.clone()
                };
                let email = templates.render(event, &vars).unwrap();
                for body in bodies(&email) {
                    let lower = body.to_lowercase();
                    assert!(lower.contains(&kept.to_lowercase()), "{event:?}: {body}");
                    assert!(body.contains(says), "{event:?} {policy:?}: {body}");
                    assert!(!body.contains(not), "{event:?} {policy:?}: {body}");
                }
            }
        }
        // The others do not talk about deleting anything.
        for (event, vars) in [
            (EmailEvent::Activation, trial()),
            (EmailEvent::UpgradeNotice, trial()),
            (EmailEvent::Converted, production(None)),
        ] {
            let email = templates.render(event, &vars).unwrap();
            for body in bodies(&email) {
                assert!(!body.contains("delete"), "{event:?}: {body}");
            }
        }
    }

    #[test]
    fn an_activation_in_production_says_production_and_never_trial() {
        let templates = Templates::built_in();
        for (expires_at, until) in [
            (
                Some(at("2027-06-30T00:00:00Z")),
                "runs until 30 June 2027 at 00:00 UTC.",
            ),
            (None, "has no end date."),
        ] {
            let email = templates
                .render(EmailEvent::Activation, &production(expires_at))
                .unwrap();
            assert_eq!(email.subject, "Activate your tenant (partner \"Contoso\")");
            for body in bodies(&email) {
                assert!(
                    body.contains(&format!(
                        "Northwind has set up a Production tenant for you. Your Production \
                         subscription started on 2 November 2026 at 09:30 UTC and {until}"
                    )),
                    "{body}"
                );
                assert!(!body.to_lowercase().contains("trial"), "{body}");
                assert!(body.contains("valid until 2 December 2026 at 10:00 UTC"));
            }
            assert!(!email.subject.to_lowercase().contains("trial"));
        }
        // A trial's activation says so.
        let email = templates.render(EmailEvent::Activation, &trial()).unwrap();
        for body in bodies(&email) {
            assert!(
                body.contains(
                    "Northwind has set up a trial tenant for you. Your trial ends on 12 December \
                     2026 at 20:48 UTC."
                ),
                "{body}"
            );
            assert!(!body.contains("Production"), "{body}");
        }
    }

    #[test]
    fn the_converted_email_reads_well() {
        let templates = Templates::built_in();
        let email = templates
            .render(EmailEvent::Converted, &production(None))
            .unwrap();
        for body in bodies(&email) {
            assert!(
                body.contains(
                    "Your tenant moved to Production on 2 November 2026 at 09:30 UTC. Billing to \
                     Northwind started then. Your Production subscription has no end date."
                ),
                "{body}"
            );
            assert!(!body.contains("is in Production since"), "{body}");
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
                .contains("converts to Production on 14 March 2026 at 10:00 UTC")
        );
        assert!(
            upgrade
                .text
                .contains("Billing to Example Distribution starts then")
        );
        let expiry = templates.render(EmailEvent::ExpiryNotice, &vars).unwrap();
        assert!(
            expiry
                .subject
                .contains("expires on 14 March 2026 at 10:00 UTC")
        );
        let activation = templates.render(EmailEvent::Activation, &vars).unwrap();
        assert_eq!(
            activation.subject,
            "Activate your tenant (partner \"Acme <IT> & Co\")"
        );
        assert!(activation.text.contains("https://example.invalid/activate"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let no_link = EmailVars {
            activation_link: None,
            ..vars()
        };
        let err = Templates::built_in()
            .render(EmailEvent::Activation, &no_link)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot render the activation email: activation_link not set"
        );

        // An activation needs the trial's end or the start of Production, not both.
        let neither = EmailVars {
            trial_ends_at: None,
            production_since: None,
            ..vars()
        };
        let err = Templates::built_in()
            .render(EmailEvent::Activation, &neither)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot render the activation email: trial_ends_on or production_since not set"
        );
        assert!(
            required_variables(EmailEvent::Activation)
                .contains(&"trial_ends_on or production_since")
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
            "Tenant now in Production (partner \"Evil Bcc: victim@example.com Inc\")"
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

    #[test]
    fn an_override_is_checked_in_every_branch() {
        // A typo in the Production branch of an activation override is caught at startup,
        // although the trial branch renders.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("activation.txt"),
            "{% if production_since %}{{ expires_onn }}{% else %}{{ trial_ends_on }}{% endif %}\n",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("activation.txt"), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }
}
