//! Rendering an email: the subject on one line, both bodies, the HTML one escaped.

use std::fmt;

use minijinja::AutoEscape;

use super::{EmailVars, TemplateError, Templates};
use crate::api::EmailEvent;

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

impl Templates {
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
pub(super) fn describe(err: &minijinja::Error) -> String {
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
pub(super) fn html_formatter(
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
    use crate::api::EmailEvent;
    use crate::mail::templates::test_vars::vars;
    use crate::mail::templates::{EmailVars, Templates, required_variables};

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
}
