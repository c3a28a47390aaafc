//! The mailer against the loopback SMTP server: real messages over a real socket.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use partner_operator::api::{DeletionPolicy, EmailEvent};
use partner_operator::lifecycle;
use partner_operator::mail::{
    ActivationLink, EmailVars, MailError, Mailer, MailerConfig, OutgoingEmail, Templates,
};
use partner_sandbox::smtp::SmtpSink;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const UID: &str = "3f6d2a1c-8a4e-4d7b-9a51-2b8c0e7d9f10";
const TOKEN: &str = "c0ffee00deadbeef1234567890abcdef";
const WAIT: Duration = Duration::from_secs(10);

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn link() -> String {
    format!("https://portal.example.com/activate?tenant=t-1&token={TOKEN}")
}

fn vars() -> EmailVars {
    EmailVars {
        partner_organization: "Acme Systemhaus Müller & Söhne".into(),
        distributor_organization: "Example Distribution".into(),
        distributor_name: "example".into(),
        tenant_id: "7e1b9c1e-0d0a-5d8e-9d43-3c3f0a1b2c3d".into(),
        tenant_namespace: "partners-acme".into(),
        activation_link: Some(ActivationLink::new(link())),
        link_expires_at: Some(at("2026-12-02T10:00:00Z")),
        trial_ends_at: Some(at("2026-12-09T10:00:00Z")),
        production_since: None,
        expires_at: None,
        reply_to: Some("partners@example.com".into()),
        deletion_policy: DeletionPolicy::Delete,
        to_distributor: false,
    }
}

fn email(event: EmailEvent, to: &[&str]) -> OutgoingEmail {
    OutgoingEmail {
        event,
        to: to.iter().map(|s| s.to_string()).collect(),
        message_id: lifecycle::message_id(UID, event),
        vars: vars(),
    }
}

async fn sink(outbox: Option<&Path>) -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().unwrap(), outbox.map(Path::to_owned))
        .await
        .unwrap()
}

fn mailer_for(url: &str, templates: Templates) -> Mailer {
    let config = MailerConfig::from_url(url, true)
        .unwrap()
        .with_from("Example Distribution <noreply@example.com>")
        .unwrap();
    Mailer::new(config, templates).unwrap()
}

fn mailer(sink: &SmtpSink) -> Mailer {
    mailer_for(&sink.url(), Templates::built_in())
}

#[tokio::test]
async fn activation_arrives_as_multipart_with_link_and_stable_message_id() {
    let outbox = tempfile::tempdir().unwrap();
    let sink = sink(Some(outbox.path())).await;
    let url = format!("smtp://ops%40example.com:p%40ss%3Aword@{}", sink.addr());
    let mailer = mailer_for(&url, Templates::built_in());

    let to = ["owner@acme.example", "billing@acme.example"];
    mailer
        .send(&email(EmailEvent::Activation, &to))
        .await
        .unwrap();

    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.to, to);
    assert_eq!(got.from, "noreply@example.com");
    assert_eq!(got.auth_user.as_deref(), Some("ops@example.com"));
    assert_eq!(
        got.subject.as_deref(),
        Some("Activate your tenant (partner \"Acme Systemhaus Müller & Söhne\")")
    );
    assert_eq!(
        got.message_id.as_deref(),
        Some(lifecycle::message_id(UID, EmailEvent::Activation).as_str())
    );
    assert_eq!(got.event.as_deref(), Some("activation"));
    assert_eq!(got.content_type().as_deref(), Some("multipart/alternative"));
    assert!(got.header("Date").is_some());
    assert_eq!(
        got.header("From").as_deref(),
        Some("\"Example Distribution\" <noreply@example.com>")
    );
    assert_eq!(
        got.header("Reply-To").as_deref(),
        Some("\"Example Distribution\" <partners@example.com>")
    );

    let text = got.text_body().unwrap();
    assert!(text.contains(&link()), "{text}");
    assert!(text.contains("2 December 2026 at 10:00 UTC"), "{text}");
    let html = got.html_body().unwrap();
    assert!(
        html.contains(&link().replace('&', "&amp;")),
        "the link is in the HTML, escaped: {html}"
    );
    assert!(html.contains("Müller &amp; Söhne"), "{html}");

    let files = outbox_files(outbox.path());
    assert_eq!(files, ["0001-activation.eml"]);
    let stored = std::fs::read(outbox.path().join(&files[0])).unwrap();
    assert_eq!(stored, got.raw);
    // Beside it, what `cat` should show: the headers decoded, the text body with the link whole.
    let readable = std::fs::read_to_string(outbox.path().join("0001-activation.txt")).unwrap();
    assert!(
        readable.contains(&format!("\n\n{}", text.replace("\r\n", "\n"))),
        "{readable}"
    );
    assert!(readable.contains(&link()), "{readable}");
    assert!(!readable.contains("=3D"), "{readable}");
    assert!(
        readable.starts_with("From: Example Distribution <noreply@example.com>\n"),
        "{readable}"
    );
    for header in ["\nTo: ", "\nSubject: ", "\nDate: ", "\nMessage-ID: <"] {
        assert!(readable.contains(header), "{header} in {readable}");
    }
}

#[tokio::test]
async fn the_same_event_sent_twice_keeps_its_message_id() {
    let sink = sink(None).await;
    let mailer = mailer(&sink);
    let email = email(EmailEvent::UpgradeNotice, &["owner@acme.example"]);
    mailer.send(&email).await.unwrap();
    mailer.send(&email).await.unwrap();
    let received = sink.wait_for(2, WAIT).await.unwrap();
    assert_eq!(received[0].message_id, received[1].message_id);
    assert_eq!(
        received[0].subject.as_deref(),
        Some(
            "Trial converts to Production on 9 December 2026 at 10:00 UTC (partner \"Acme Systemhaus Müller & Söhne\")"
        )
    );
    let text = received[0].text_body().unwrap();
    assert!(text.contains("Billing to Example Distribution starts then"));
}

/// The `.eml` files in the outbox, each checked to have its readable `.txt` beside it.
fn outbox_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    files.sort();
    for file in &files {
        let txt = dir.join(file.replace(".eml", ".txt"));
        assert!(txt.exists(), "no {} beside {file}", txt.display());
    }
    files
}

#[tokio::test]
async fn outbox_files_are_numbered_per_message_and_survive_a_restart() {
    let outbox = tempfile::tempdir().unwrap();
    {
        let sink = sink(Some(outbox.path())).await;
        let mailer = mailer(&sink);
        mailer
            .send(&email(EmailEvent::Activation, &["a@acme.example"]))
            .await
            .unwrap();
        let mut expiry = email(EmailEvent::ExpiryNotice, &["a@acme.example"]);
        expiry.vars.activation_link = None;
        mailer.send(&expiry).await.unwrap();
        sink.wait_for(2, WAIT).await.unwrap();
    }
    let sink = sink(Some(outbox.path())).await;
    let mut converted = email(EmailEvent::Converted, &["a@acme.example"]);
    converted.vars.production_since = Some(at("2026-12-09T10:00:00Z"));
    mailer(&sink).send(&converted).await.unwrap();
    sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(
        outbox_files(outbox.path()),
        [
            "0001-activation.eml",
            "0002-expiry-notice.eml",
            "0003-converted.eml"
        ]
    );
}

#[tokio::test]
async fn an_override_replaces_only_its_own_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("activation.subject.txt"),
        "Welcome aboard, {{ partner_organization }}\n",
    )
    .unwrap();
    // A line starting with a dot checks dot-stuffing on the way and unstuffing on arrival.
    std::fs::write(
        dir.path().join("activation.txt"),
        "Open {{ activation_link }}\n.hidden line\n..two dots\n",
    )
    .unwrap();
    let templates = Templates::load(Some(dir.path())).unwrap();
    let sink = sink(None).await;
    let mailer = mailer_for(&sink.url(), templates);
    mailer
        .send(&email(EmailEvent::Activation, &["owner@acme.example"]))
        .await
        .unwrap();
    let got = &sink.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(
        got.subject.as_deref(),
        Some("Welcome aboard, Acme Systemhaus Müller & Söhne")
    );
    let text = got.text_body().unwrap().replace("\r\n", "\n");
    assert!(text.contains(&format!("Open {}", link())), "{text}");
    assert!(text.contains("\n.hidden line\n..two dots"), "{text:?}");
    // The HTML body is still the built-in one.
    assert!(got.html_body().unwrap().contains("Activate your tenant"));
}

#[test]
fn a_broken_override_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upgrade-notice.html");
    std::fs::write(&file, "<p>{% if trial_ends_on %}converts</p>\n").unwrap();
    let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("line"), "{err}");

    // A misspelt variable is caught at load time too, not when the email is due.
    std::fs::remove_file(&file).unwrap();
    let file = dir.path().join("converted.txt");
    std::fs::write(&file, "Since {{ production_sinse }}\n").unwrap();
    let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("undefined"), "{err}");

    // So is a misspelt file name, which would otherwise be ignored.
    std::fs::remove_file(&file).unwrap();
    std::fs::write(dir.path().join("activaton.html"), "x").unwrap();
    let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("activaton.html"), "{err}");
}

/// Credentials go only over TLS, or in clear to this machine alone.
#[test]
fn credentials_are_sent_in_clear_only_to_a_loopback_host() {
    let err = MailerConfig::from_url("smtp://user:s3cr3t-pw@mail.example.com:25", true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("credentials would be sent in clear to mail.example.com"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-pw"), "{err}");
    for url in [
        "smtp://user:pw@127.0.0.1:2525",
        "smtp://user:pw@localhost:2525",
        "smtp://user:pw@[::1]:2525",
    ] {
        assert!(MailerConfig::from_url(url, true).is_ok(), "{url}");
    }
    // Without credentials, or over TLS, any host.
    assert!(MailerConfig::from_url("smtp://mail.example.com:25", true).is_ok());
    assert!(MailerConfig::from_url("smtp://user:pw@mail.example.com", false).is_ok());
    assert!(MailerConfig::from_url("smtps://user:pw@mail.example.com", true).is_ok());
}

#[test]
fn a_malformed_smtp_url_is_one_error_without_the_password() {
    for url in [
        "smtp://user:s3cr3t-pw@mail.example.com:notaport",
        "http://user:s3cr3t-pw@mail.example.com",
        "smtp://user:s3cr3t-pw@",
        "smtp://user:s3cr3t-pw@mail.example.com/path",
        "smtp://user:s3cr3t-pw@mail.example.com?timeout=forever",
        "smtp://user:s3cr3t-pw@mail.example.com?bogus=1",
        "smtp://user:s3cr3t-pw@mail.example.com?password_file=/nonexistent/s3cr3t-pw",
        "s3cr3t-pw",
    ] {
        let err = MailerConfig::from_url(url, false).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid SMTP URL") || err.contains("password"),
            "{err}"
        );
        if !url.contains("password_file") {
            assert!(!err.contains("s3cr3t-pw"), "{url} -> {err}");
        }
    }
    let err = MailerConfig::from_url("http://u:s3cr3t-pw@h", false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid SMTP URL: scheme must be smtp or smtps, not \"http\""
    );

    let config = MailerConfig::from_url("smtps://u:s3cr3t-pw@mail.example.com", false).unwrap();
    assert!(!format!("{config:?}").contains("s3cr3t-pw"));
    assert_eq!(config.port, 465);
    assert!(config.has_password());
}

#[tokio::test]
async fn credentials_can_come_from_mounted_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("username"), "relay-user\n").unwrap();
    std::fs::write(dir.path().join("password"), "s3cr3t-pw\n").unwrap();
    let sink = sink(None).await;
    let url = format!(
        "{}?username_file={}&password_file={}&timeout=5s",
        sink.url(),
        dir.path().join("username").display(),
        dir.path().join("password").display()
    );
    let config = MailerConfig::from_url(&url, true).unwrap();
    assert_eq!(config.username.as_deref(), Some("relay-user"));
    assert_eq!(config.timeout, Duration::from_secs(5));
    Mailer::new(config, Templates::built_in())
        .unwrap()
        .send(&email(EmailEvent::Activation, &["owner@acme.example"]))
        .await
        .unwrap();
    let got = &sink.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(got.auth_user.as_deref(), Some("relay-user"));
}

#[tokio::test]
async fn a_server_that_is_down_gives_a_transient_error_then_recovers() {
    let sink = sink(None).await;
    let mailer = mailer(&sink);
    let activation = email(EmailEvent::Activation, &["owner@acme.example"]);
    sink.set_down(true);
    let err = mailer.send(&activation).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        matches!(err, MailError::Deferred { code: 421, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN));
    assert!(sink.received().is_empty());

    sink.set_down(false);
    mailer.send(&activation).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn no_server_at_all_is_a_transient_error() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mailer = mailer_for(&format!("smtp://{addr}?timeout=3"), Templates::built_in());
    let err = mailer
        .send(&email(EmailEvent::Activation, &["owner@acme.example"]))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, MailError::Connection(_)), "{err}");
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_nothing_is_delivered() {
    let sink = sink(None).await;
    sink.reject_recipient("gone@acme.example", 550);
    let mailer = mailer(&sink);
    let err = mailer
        .send(&email(
            EmailEvent::Activation,
            &["owner@acme.example", "gone@acme.example"],
        ))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(
        matches!(err, MailError::Rejected { code: 550, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(sink.received().is_empty());

    sink.reject_recipient("busy@acme.example", 450);
    let err = mailer
        .send(&email(EmailEvent::Activation, &["busy@acme.example"]))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        matches!(err, MailError::Deferred { code: 450, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn starttls_is_required_unless_plaintext_is_allowed() {
    let sink = sink(None).await;
    let config = MailerConfig::from_url(&sink.url(), false).unwrap();
    let err = Mailer::new(config, Templates::built_in())
        .unwrap()
        .send(&email(EmailEvent::Activation, &["owner@acme.example"]))
        .await
        .unwrap_err();
    assert!(
        sink.received().is_empty(),
        "nothing may go out in clear: {err}"
    );
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, MailError::Session(_)), "{err}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
}

#[tokio::test]
async fn line_breaks_in_an_organization_do_not_inject_headers() {
    let sink = sink(None).await;
    let mut email = email(EmailEvent::Activation, &["owner@acme.example"]);
    email.vars.partner_organization = "Evil\r\nBcc: victim@example.com\r\nX-Injected: yes".into();
    // The distributor's name goes into the Reply-To header: it cannot add lines either.
    email.vars.distributor_organization = "Dist\r\nX-Also-Injected: yes".into();
    mailer(&sink).send(&email).await.unwrap();
    let got = &sink.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(got.to, ["owner@acme.example"]);
    assert_eq!(got.header("Bcc"), None);
    assert_eq!(got.header("X-Injected"), None);
    assert_eq!(got.header("X-Also-Injected"), None);
    let reply_to = got.header("Reply-To").unwrap();
    assert!(reply_to.ends_with("<partners@example.com>"), "{reply_to}");
    assert_eq!(
        got.subject.as_deref(),
        Some("Activate your tenant (partner \"Evil Bcc: victim@example.com X-Injected: yes\")")
    );
}

#[tokio::test]
async fn bad_input_fails_before_any_connection() {
    let sink = sink(None).await;
    let mailer = mailer(&sink);
    let err = mailer
        .send(&email(EmailEvent::Activation, &["not an address"]))
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("not an address"), "{err}");

    let mut no_link = email(EmailEvent::Activation, &["owner@acme.example"]);
    no_link.vars.activation_link = None;
    let err = mailer.send(&no_link).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("activation_link not set"), "{err}");

    let mut bad_reply_to = email(EmailEvent::Converted, &["owner@acme.example"]);
    bad_reply_to.vars.production_since = Some(at("2026-12-09T10:00:00Z"));
    bad_reply_to.vars.reply_to = Some("not a reply address".into());
    let err = mailer.send(&bad_reply_to).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("not a reply address"), "{err}");
    assert!(sink.received().is_empty());
}

/// The server speaks plain SMTP to any client, not only to lettre.
#[tokio::test]
async fn the_server_follows_the_protocol() {
    let outbox = tempfile::tempdir().unwrap();
    let sink = sink(Some(outbox.path())).await;
    let stream = tokio::net::TcpStream::connect(sink.addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut expect = async |send: &str, code: &str| {
        if !send.is_empty() {
            write.write_all(send.as_bytes()).await.unwrap();
        }
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.unwrap();
            assert!(
                line.starts_with(code),
                "{send:?} -> {line:?}, expected {code}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    };
    expect("", "220").await;
    expect("MAIL FROM:<a@example.com>\r\n", "503").await;
    expect("HELO client\r\n", "250").await;
    expect("NOOP\r\n", "250").await;
    expect("AUTH LOGIN\r\n", "334").await;
    expect("dXNlcg==\r\n", "334").await;
    expect("cGFzcw==\r\n", "235").await;
    expect("RCPT TO:<b@example.com>\r\n", "503").await;
    expect("MAIL FROM:<a@example.com>\r\n", "250").await;
    expect("RSET\r\n", "250").await;
    expect("DATA\r\n", "503").await;
    expect("MAIL FROM:<a@example.com>\r\n", "250").await;
    expect("RCPT TO:<b@example.com>\r\n", "250").await;
    expect("DATA\r\n", "354").await;
    let message = "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.com>\r\n\r\n..leading dot\r\nbody\r\n.\r\n";
    expect(message, "250").await;
    expect("QUIT\r\n", "221").await;

    let got = &sink.wait_for(1, WAIT).await.unwrap()[0];
    assert_eq!(got.from, "a@example.com");
    assert_eq!(got.to, ["b@example.com"]);
    assert_eq!(got.auth_user.as_deref(), Some("user"));
    assert_eq!(got.subject.as_deref(), Some("Grüße"));
    assert_eq!(got.message_id.as_deref(), Some("<m1@example.com>"));
    assert_eq!(got.event, None);
    assert!(got.raw.ends_with(b"\r\n\r\n.leading dot\r\nbody\r\n"));
    assert_eq!(outbox_files(outbox.path()), ["0001-message.eml"]);
}

#[tokio::test]
async fn waiting_for_more_than_arrives_times_out_with_a_count() {
    let sink = sink(None).await;
    let err = sink
        .wait_for(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.received, 0);
    assert!(err.to_string().contains("expected 1 messages"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_transiently() {
    // Connections complete in the backlog, but nobody ever greets them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}?timeout=0.2", silent.local_addr().unwrap());
    let err = mailer_for(&url, Templates::built_in())
        .send(&email(EmailEvent::Activation, &["owner@acme.example"]))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, MailError::Timeout(_)), "{err:?}");
}

#[test]
fn the_activation_link_never_shows_in_debug_output() {
    let email = email(EmailEvent::Activation, &["owner@acme.example"]);
    let debug = format!("{email:?} {:#?}", email.vars);
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

/// What the text part says, and the HTML part once its tags are taken out, in one line.
fn said(got: &partner_sandbox::smtp::ReceivedEmail) -> [String; 2] {
    let text = got.text_body().unwrap();
    let html = got.html_body().unwrap();
    let mut stripped = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => stripped.push(c),
            _ => {}
        }
    }
    let html = stripped
        .replace("&amp;", "&")
        .replace("&mdash;", "—")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"");
    [text, html].map(|body| body.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Every email of every kind, as received: from the configured sender, answered to the
/// distributor, greeting the partner by name, every date an instant in UTC, the expiry emails
/// saying what becomes of the tenant, a Production activation without a word of trial.
#[tokio::test]
async fn every_email_says_exactly_what_happens() {
    let sink = sink(None).await;
    let mailer = mailer(&sink);
    let trial = vars();
    let in_production = |expires_at: Option<DateTime<Utc>>| EmailVars {
        trial_ends_at: None,
        production_since: Some(at("2026-12-09T10:00:00Z")),
        expires_at,
        ..vars()
    };
    let ended = in_production(Some(at("2027-06-30T23:59:00Z")));
    let retained = |vars: EmailVars| EmailVars {
        deletion_policy: DeletionPolicy::Retain,
        ..vars
    };
    let link_end = "valid until 2 December 2026 at 10:00 UTC";
    let kept = "The tenant and its data are kept, with its entitlements marked as expired, until \
                your partner record at Example Distribution is deleted.";
    let deleted = "Deleting that record also deletes the tenant (namespace partners-acme) and all \
                   of its data.";
    let not_deleted = "Deleting that record does not delete the tenant (namespace partners-acme) \
                       or its data: they are kept.";
    let cases: Vec<(EmailEvent, EmailVars, &str, Vec<&str>)> = vec![
        (
            EmailEvent::Activation,
            trial.clone(),
            "Activate your tenant (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Example Distribution has set up a trial tenant for you.",
                "Your trial ends on 9 December 2026 at 10:00 UTC.",
                link_end,
            ],
        ),
        (
            EmailEvent::Activation,
            in_production(None),
            "Activate your tenant (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Example Distribution has set up a Production tenant for you.",
                "Your Production subscription started on 9 December 2026 at 10:00 UTC and has no \
                 end date.",
                link_end,
            ],
        ),
        (
            EmailEvent::Activation,
            in_production(Some(at("2027-06-30T23:59:00Z"))),
            "Activate your tenant (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Your Production subscription started on 9 December 2026 at 10:00 UTC and runs \
                 until 30 June 2027 at 23:59 UTC.",
                link_end,
            ],
        ),
        (
            EmailEvent::UpgradeNotice,
            trial.clone(),
            "Trial converts to Production on 9 December 2026 at 10:00 UTC (partner \"Acme \
             Systemhaus Müller & Söhne\")",
            vec![
                "Your trial tenant converts to Production on 9 December 2026 at 10:00 UTC.",
                "Billing to Example Distribution starts then.",
            ],
        ),
        (
            EmailEvent::ExpiryNotice,
            trial.clone(),
            "Trial expires on 9 December 2026 at 10:00 UTC (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Your trial tenant expires on 9 December 2026 at 10:00 UTC.",
                "Once the trial has expired, the tenant and its data are kept",
                deleted,
            ],
        ),
        (
            EmailEvent::ExpiryNotice,
            retained(trial.clone()),
            "Trial expires on 9 December 2026 at 10:00 UTC (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![not_deleted],
        ),
        (
            EmailEvent::Converted,
            in_production(None),
            "Tenant now in Production (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Your tenant moved to Production on 9 December 2026 at 10:00 UTC. Billing to \
                 Example Distribution started then.",
                "Your Production subscription has no end date.",
            ],
        ),
        (
            EmailEvent::Converted,
            ended.clone(),
            "Tenant now in Production (partner \"Acme Systemhaus Müller & Söhne\")",
            vec!["Your Production subscription runs until 30 June 2027 at 23:59 UTC."],
        ),
        (
            EmailEvent::TrialExpired,
            trial.clone(),
            "Trial expired (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Your trial tenant expired on 9 December 2026 at 10:00 UTC.",
                kept,
                deleted,
            ],
        ),
        (
            EmailEvent::TrialExpired,
            retained(trial.clone()),
            "Trial expired (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![kept, not_deleted],
        ),
        (
            EmailEvent::ProductionExpired,
            ended.clone(),
            "Production subscription expired (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Your Production subscription expired on 30 June 2027 at 23:59 UTC. Billing to \
                 Example Distribution ended then.",
                kept,
                deleted,
            ],
        ),
        (
            EmailEvent::ProductionExpired,
            retained(ended.clone()),
            "Production subscription expired (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                kept,
                not_deleted,
                "To renew it, ask Example Distribution for a new expiration date.",
            ],
        ),
        (
            EmailEvent::Renewed,
            ended,
            "Production subscription renewed (partner \"Acme Systemhaus Müller & Söhne\")",
            vec![
                "Your Production subscription was renewed on 9 December 2026 at 10:00 UTC. A \
                 new billing period to Example Distribution started then.",
                "Your Production subscription now runs until 30 June 2027 at 23:59 UTC.",
            ],
        ),
    ];
    for (n, (event, vars, _, _)) in cases.iter().enumerate() {
        let mut email = email(*event, &["owner@acme.example"]);
        email.message_id = format!("<case-{n}@example.com>");
        email.vars = vars.clone();
        mailer.send(&email).await.unwrap();
    }
    let received = sink.wait_for(cases.len(), WAIT).await.unwrap();
    assert_eq!(received.len(), cases.len());
    for (n, (event, vars, subject, sentences)) in cases.iter().enumerate() {
        let got = received
            .iter()
            .find(|got| got.message_id.as_deref() == Some(&format!("<case-{n}@example.com>")))
            .unwrap();
        let case = format!("{event:?} #{n}");
        assert_eq!(got.event.as_deref(), Some(event.as_str()), "{case}");
        assert_eq!(got.subject.as_deref(), Some(*subject), "{case}");
        // The operator's words lead; the partner's name comes last.
        assert!(got.subject.as_deref().unwrap().starts_with(['A', 'T', 'P']));
        assert!(got.subject.as_deref().unwrap().ends_with("\")"));
        assert_eq!(got.from, "noreply@example.com", "{case}");
        assert_eq!(
            got.header("From").as_deref(),
            Some("\"Example Distribution\" <noreply@example.com>"),
            "{case}"
        );
        assert_eq!(
            got.header("Reply-To").as_deref(),
            Some("\"Example Distribution\" <partners@example.com>"),
            "{case}"
        );
        for body in said(got) {
            // The partner's name is attributed, never the greeting's own words.
            assert!(
                body.starts_with(
                    "Hello, This message is about the tenant of \"Acme Systemhaus Müller & Söhne\" \
                     (the organization name given when the partner was registered)."
                ) || body.starts_with(
                    "Hello, This message is about the tenant of \u{201c}Acme Systemhaus Müller & \
                     Söhne\u{201d} (the organization name given when the partner was registered)."
                ),
                "{case}: {body}"
            );
            assert!(
                body.contains(
                    "Questions? Reply to this email to reach Example Distribution at \
                     partners@example.com."
                ),
                "{case}: {body}"
            );
            for sentence in sentences {
                assert!(body.contains(sentence), "{case} lacks {sentence:?}: {body}");
            }
            // Every date comes with its time in UTC.
            assert!(!body.contains("2026-"), "{case}: {body}");
            let expiry = matches!(
                event,
                EmailEvent::ExpiryNotice | EmailEvent::TrialExpired | EmailEvent::ProductionExpired
            );
            assert_eq!(
                body.contains(kept) || body.contains("the tenant and its data are kept"),
                expiry,
                "{case}: {body}"
            );
            if vars.trial_ends_at.is_none() {
                assert!(!body.to_lowercase().contains("trial"), "{case}: {body}");
            }
        }
        // The partner's name is escaped in the HTML source.
        assert!(
            got.html_body().unwrap().contains("Müller &amp; Söhne"),
            "{case}"
        );
    }
}

/// `count` activations, each to an address of its own.
fn activations(count: usize) -> Vec<OutgoingEmail> {
    (0..count)
        .map(|n| email(EmailEvent::Activation, &[&format!("owner{n}@acme.example")]))
        .collect()
}

#[tokio::test]
async fn messages_share_at_most_max_connections() {
    let sink = sink(None).await;
    let mailer = mailer_for(
        &format!("{}?max_connections=2", sink.url()),
        Templates::built_in(),
    );
    let emails = activations(40);
    // Half at once, then half one after the other.
    let (at_once, in_turn) = emails.split_at(20);
    let results = futures::future::join_all(at_once.iter().map(|e| mailer.send(e))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for email in in_turn {
        mailer.send(email).await.unwrap();
    }
    assert_eq!(sink.wait_for(40, WAIT).await.unwrap().len(), 40);
    eprintln!(
        "{} messages over {} SMTP connections (at most {} open at once)",
        emails.len(),
        sink.accepted_connections(),
        sink.peak_connections()
    );
    assert!(sink.peak_connections() <= 2, "{}", sink.peak_connections());
    assert!(
        sink.accepted_connections() <= 2,
        "{} connections for 40 messages",
        sink.accepted_connections()
    );
}

#[tokio::test]
async fn a_server_that_closes_between_messages_is_survived() {
    let sink = sink(None).await;
    sink.set_one_message_per_connection(true);
    let mailer = mailer(&sink);
    for email in &activations(3) {
        mailer.send(email).await.unwrap();
    }
    let received = sink.wait_for(3, WAIT).await.unwrap();
    assert_eq!(received.len(), 3, "each once");
    assert_eq!(sink.accepted_connections(), 3);

    // Kept again once the server keeps them.
    sink.set_one_message_per_connection(false);
    for email in &activations(3) {
        mailer.send(email).await.unwrap();
    }
    assert_eq!(sink.wait_for(6, WAIT).await.unwrap().len(), 6);
    assert_eq!(sink.accepted_connections(), 4);
}

#[tokio::test]
async fn a_send_given_up_midway_leaves_no_connection_to_reuse() {
    let sink = sink(None).await;
    let mailer = mailer(&sink);
    let emails = activations(3);
    mailer.send(&emails[0]).await.unwrap();
    // The server takes the next message and never confirms it; the caller gives the send up
    // once the message is there, as a deleted Partner's reconciliation does.
    sink.hang_unconfirmed(1);
    tokio::select! {
        result = mailer.send(&emails[1]) => panic!("confirmed: {result:?}"),
        received = sink.wait_for(2, WAIT) => assert_eq!(received.unwrap().len(), 2),
    }
    mailer.send(&emails[2]).await.unwrap();
    assert_eq!(sink.wait_for(3, WAIT).await.unwrap().len(), 3);
    assert_eq!(
        sink.accepted_connections(),
        2,
        "the third message went over a new connection"
    );
    assert_eq!(sink.open_connections(), 1, "the given-up one is closed");
}
