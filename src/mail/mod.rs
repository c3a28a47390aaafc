//! Lifecycle emails: their wording ([`templates`]) and their delivery over SMTP ([`mailer`]).
//!
//! The lifecycle decides *that* an email is due and records the intent in status; this module
//! only renders and sends it, over SMTP connections kept between messages (`connections`).
//! Each email carries the deterministic Message-ID of [`crate::lifecycle::message_id`], so a
//! message sent again after a crash is recognisable as the same one.

mod connections;
pub mod mailer;
pub mod templates;

pub use mailer::{ConfigError, MailError, Mailer, MailerConfig, OutgoingEmail, Security};
pub use templates::{ActivationLink, EmailVars, RenderedEmail, TemplateError, Templates};
