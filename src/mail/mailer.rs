//! Sending one lifecycle email over SMTP with lettre, over connections kept between messages
//! (the `connections` module says why, and how a server that hangs stays contained).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use percent_encoding::percent_decode_str;

use super::connections::{Server, SmtpConnections};
use super::templates::{EmailVars, TemplateError, Templates, one_line};
use crate::api::EmailEvent;

/// One email to send: which event, to whom, with which Message-ID and variables.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingEmail {
    pub event: EmailEvent,
    pub to: Vec<String>,
    /// From [`crate::lifecycle::message_id`]: the same on every retry.
    pub message_id: String,
    pub vars: EmailVars,
}

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte (usually port 465).
    ImplicitTls,
    /// `smtp://`: plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// `smtp://` with plaintext explicitly allowed: for a relay on loopback or a sidecar.
    Plaintext,
}

/// Where and how to send mail, from `--smtp-url` and `--mail-from`.
#[derive(Clone)]
pub struct MailerConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    password: Option<String>,
    /// The longest one message may take, connecting included (also lettre's bound on
    /// connecting).
    pub timeout: Duration,
    pub from: Mailbox,
    /// Most connections open at once, in use or kept idle: also how many emails are sent at
    /// once.
    pub max_connections: u32,
}

impl fmt::Debug for MailerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("from", &self.from.to_string())
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The `--smtp-url` could not be used. Never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("cannot read SMTP {what} from {path}: {source}")]
    CredentialFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid sender address {address:?}: {reason}")]
    From { address: String, reason: String },
}

/// Whether `host` names this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Short: a send holds a mail slot (one of `max_connections`) for as long as it takes, and a
/// message that did not go out is retried with backoff.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_FROM: &str = "partner-operator <partner-operator@localhost>";

impl MailerConfig {
    /// Reads an SMTP URL:
    ///
    /// `smtp://[user[:password]@]host[:port][?param=value&...]` (STARTTLS required unless
    /// `insecure_plaintext`; port 587 by default) or `smtps://...` (implicit TLS; port 465).
    /// User and password are percent-decoded. Parameters:
    /// - `username_file`, `password_file`: read the credential from a file, as mounted from a
    ///   Kubernetes Secret (a trailing newline is dropped). Read once, at startup.
    /// - `timeout`: seconds (`10`, `10s`) one message may take in all, connecting included;
    ///   10 by default.
    /// - `from`: the sender; `--mail-from` sets it too (see [`MailerConfig::with_from`]).
    /// - `max_connections`: SMTP connections open at once, in use or kept for the next
    ///   message, which is also how many emails are sent at once; 4 by default.
    pub fn from_url(url: &str, insecure_plaintext: bool) -> Result<Self, ConfigError> {
        // The URL may hold a password, so no error below quotes it: only the part at fault.
        let parsed = url::Url::parse(url).map_err(|err| ConfigError::Url(err.to_string()))?;
        let security = match parsed.scheme() {
            "smtps" => Security::ImplicitTls,
            "smtp" if insecure_plaintext => Security::Plaintext,
            "smtp" => Security::StartTls,
            other => {
                return Err(ConfigError::Url(format!(
                    "scheme must be smtp or smtps, not {other:?}"
                )));
            }
        };
        let host = match parsed.host_str() {
            Some(host) if !host.is_empty() => host.trim_matches(['[', ']']).to_owned(),
            _ => return Err(ConfigError::Url("no host".into())),
        };
        let port = parsed.port().unwrap_or(match security {
            Security::ImplicitTls => 465,
            Security::StartTls | Security::Plaintext => 587,
        });
        if parsed.path() != "" && parsed.path() != "/" {
            return Err(ConfigError::Url("a path is not allowed".into()));
        }
        let mut login = Login::in_url(&parsed)?;
        let mut config = Self {
            host,
            port,
            security,
            username: None,
            password: None,
            timeout: DEFAULT_TIMEOUT,
            from: DEFAULT_FROM.parse().expect("the default sender is valid"),
            max_connections: 4,
        };
        for (key, value) in parsed.query_pairs() {
            config.set_parameter(&key, &value, &mut login)?;
        }
        login.check(&config.host, security)?;
        config.username = login.username;
        config.password = login.password;
        Ok(config)
    }

    /// Applies one parameter of the URL's query (see [`MailerConfig::from_url`]); the
    /// credential files fill `login`.
    fn set_parameter(
        &mut self,
        key: &str,
        value: &str,
        login: &mut Login,
    ) -> Result<(), ConfigError> {
        match key {
            "username_file" => {
                if login.username.is_some() {
                    return Err(ConfigError::Url(
                        "give the user either in the URL or in username_file, not both".into(),
                    ));
                }
                login.username = Some(read_secret("user", value)?);
            }
            "password_file" => {
                if login.password.is_some() {
                    return Err(ConfigError::Url(
                        "give the password either in the URL or in password_file, not both".into(),
                    ));
                }
                login.password = Some(read_secret("password", value)?);
            }
            "timeout" => self.timeout = timeout(value)?,
            "from" => self.from = sender(value)?,
            "max_connections" => {
                self.max_connections = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ConfigError::Url(format!(
                        "max_connections must be a positive number, not {value:?}"
                    ))
                })?;
            }
            other => {
                return Err(ConfigError::Url(format!(
                    "unknown parameter {other:?} (known: username_file, password_file, timeout, from, max_connections)"
                )));
            }
        }
        Ok(())
    }

    /// Sets the sender, as `addr@example.com` or `Name <addr@example.com>`.
    pub fn with_from(mut self, from: &str) -> Result<Self, ConfigError> {
        self.from = sender(from)?;
        Ok(self)
    }

    /// Whether credentials are configured; the password itself never leaves this type except
    /// towards the SMTP server.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

/// The user and password of the SMTP URL, given in it or in files.
#[derive(Default)]
struct Login {
    username: Option<String>,
    password: Option<String>,
}

impl Login {
    /// The user and password written in the URL itself, percent-decoded.
    fn in_url(parsed: &url::Url) -> Result<Self, ConfigError> {
        let decode = |what: &str, raw: &str| {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ConfigError::Url(format!("{what} is not valid UTF-8 once decoded")))
        };
        let username = match parsed.username() {
            "" => None,
            raw => Some(decode("user", raw)?),
        };
        let password = match parsed.password() {
            None => None,
            Some(raw) => Some(decode("password", raw)?),
        };
        Ok(Self { username, password })
    }

    /// Refuses a password without a user, and credentials that would travel in clear:
    /// credentials travel only over TLS, or in clear to this machine alone.
    fn check(&self, host: &str, security: Security) -> Result<(), ConfigError> {
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::Url("a password is given but no user".into()));
        }
        if self.username.is_some() && security == Security::Plaintext && !is_loopback(host) {
            return Err(ConfigError::Url(format!(
                "credentials would be sent in clear to {host}: without TLS (--smtp-insecure-plaintext) \
                 only a loopback host may be given a user and password"
            )));
        }
        Ok(())
    }
}

/// The `timeout` parameter: seconds, with or without an `s`, above 0 and at most an hour.
fn timeout(value: &str) -> Result<Duration, ConfigError> {
    let seconds = value
        .strip_suffix('s')
        .unwrap_or(value)
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .ok_or_else(|| {
            ConfigError::Url(format!(
                "timeout must be a number of seconds between 0 and 3600, not {value:?}"
            ))
        })?;
    Ok(Duration::from_secs_f64(seconds))
}

/// A sender, as `addr@example.com` or `Name <addr@example.com>`.
fn sender(from: &str) -> Result<Mailbox, ConfigError> {
    from.parse().map_err(|err| ConfigError::From {
        address: from.to_owned(),
        reason: format!("{err}"),
    })
}

fn read_secret(what: &'static str, path: &str) -> Result<String, ConfigError> {
    let path = PathBuf::from(path);
    let content = std::fs::read_to_string(&path).map_err(|source| ConfigError::CredentialFile {
        what,
        path: path.clone(),
        source,
    })?;
    Ok(content.trim_end_matches(['\r', '\n']).to_owned())
}

/// Sending failed. `Display` never contains a secret: neither the SMTP password nor the
/// activation link (the server's reply text is included, and servers do not echo bodies).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the email could not be rendered: {0}")]
    Template(#[from] TemplateError),
    #[error("invalid recipient address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("the email has no recipient")]
    NoRecipient,
    #[error("the email could not be built: {0}")]
    Build(String),
    /// The server refused for good (5xx).
    #[error("the SMTP server refused the email ({code}): {message}")]
    Rejected { code: u16, message: String },
    /// The server asked to try later (4xx).
    #[error("the SMTP server deferred the email ({code}): {message}")]
    Deferred { code: u16, message: String },
    #[error("timed out talking to the SMTP server: {0}")]
    Timeout(String),
    /// Connecting failed or the connection broke.
    #[error("cannot reach the SMTP server: {0}")]
    Connection(String),
    /// The server was reached but the session could not go on: TLS failed, STARTTLS is not
    /// offered although required, an unreadable reply. Counted as transient: it is the
    /// server's or the network's configuration, which is fixed without touching the email.
    #[error("the SMTP session failed: {0}")]
    Session(String),
}

impl MailError {
    /// Whether sending the same email again cannot succeed: a 5xx reply, a bad address or a
    /// template problem. Everything else (no connection, timeout, 4xx, TLS) may pass later.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Template(_)
                | Self::Address { .. }
                | Self::NoRecipient
                | Self::Build(_)
                | Self::Rejected { .. }
        )
    }

    pub fn is_transient(&self) -> bool {
        !self.is_permanent()
    }

    pub(super) fn from_smtp(err: lettre::transport::smtp::Error) -> Self {
        let message = error_chain(&err);
        match err.status() {
            Some(code) if err.is_permanent() => Self::Rejected {
                code: code.into(),
                message,
            },
            Some(code) => Self::Deferred {
                code: code.into(),
                message,
            },
            None if err.is_timeout() => Self::Timeout(message),
            None if err.is_client() || err.is_response() || err.is_tls() => Self::Session(message),
            None => Self::Connection(message),
        }
    }
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// `X-Partner-Operator-Event: <event>`: lets a mail filter or a test tell the events apart
/// without parsing the subject, which an operator may reword.
#[derive(Clone, Debug)]
struct EventHeader(&'static str);

impl Header for EventHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Partner-Operator-Event")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Err("the event header is only written".into())
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.to_owned())
    }
}

/// Sends lifecycle emails through one SMTP server, over at most `max_connections` connections,
/// each kept for the next message once its message was accepted.
pub struct Mailer {
    /// Each message is bounded by the whole-delivery deadline `config.timeout`: lettre's own
    /// timeout covers connecting, not every wait (a server that accepts the connection and
    /// never greets would hold a send forever).
    connections: SmtpConnections,
    templates: Templates,
    from: Mailbox,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(config: MailerConfig, templates: Templates) -> Result<Self, ConfigError> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned())
                .map_err(|err| ConfigError::Url(format!("TLS setup for {host}: {err}")))
        };
        let tls = match config.security {
            Security::ImplicitTls => Tls::Wrapper(tls(&config.host)?),
            Security::StartTls => Tls::Required(tls(&config.host)?),
            Security::Plaintext => Tls::None,
        };
        let credentials = match (&config.username, &config.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.clone(), password.clone())),
            _ => None,
        };
        let server = Server {
            host: config.host,
            port: config.port,
            tls,
            hello: ClientId::default(),
            credentials,
            connect_timeout: config.timeout,
        };
        Ok(Self {
            connections: SmtpConnections::new(server, config.timeout, config.max_connections),
            templates,
            from: config.from,
        })
    }

    /// Renders and sends `email`: multipart/alternative (text, then HTML), with its
    /// Message-ID, so the receiver can recognise a retry as the same message. It comes from the
    /// configured sender; `Reply-To` is the distributor's public reply address when it set one.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = self.build(email)?;
        self.connections.send(&message).await
    }

    fn build(&self, email: &OutgoingEmail) -> Result<Message, MailError> {
        if email.to.is_empty() {
            return Err(MailError::NoRecipient);
        }
        let rendered = self.templates.render(email.event, &email.vars)?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(email.message_id.clone()))
            .date_now()
            .subject(rendered.subject)
            .header(EventHeader(email.event.as_str()));
        if let Some(reply_to) = &email.vars.reply_to {
            // Answers reach the distributor (named by its organization), not the operator's
            // sender. The name is put on one line first, as the subject is.
            let address =
                crate::api::grammar::parse_email(reply_to).map_err(|err| MailError::Address {
                    address: reply_to.clone(),
                    reason: err.to_string(),
                })?;
            let name = Some(one_line(&email.vars.distributor_organization))
                .filter(|name| !name.is_empty());
            builder = builder.reply_to(Mailbox::new(name, address));
        }
        for to in &email.to {
            // Bare addresses only (the grammar admission holds them to): a display name from a
            // Partner would go into a header as its author wrote it.
            let address =
                crate::api::grammar::parse_email(to).map_err(|err| MailError::Address {
                    address: to.clone(),
                    reason: err.to_string(),
                })?;
            builder = builder.to(Mailbox::new(None, address));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|err| MailError::Build(err.to_string()))
    }
}
