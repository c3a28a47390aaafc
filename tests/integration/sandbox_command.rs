//! `partner-operator sandbox` as a user runs it: the built binary as a subprocess, driven with
//! the stock kubectl, stopped with SIGTERM. Each test that needs a running sandbox runs on the
//! embedded API server and, with `--kube-apiserver`, on the real one.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::process::*;
use support::{Patience, Seen, Server, eventually, eventually_blocking, sigterm};

crate::on_both_servers_blocking!(
    without_operator_serves_the_crds_and_stops_cleanly_on_sigterm,
    with_the_operator_partners_become_ready_and_mail_lands_in_the_outbox,
    run_names_a_missing_crd_and_an_unreachable_server_in_one_line,
);

fn without_operator_serves_the_crds_and_stops_cleanly_on_sigterm(server: Server) {
    let mut sandbox = Sandbox::start_on(server, &["--without-operator"]);
    let crds = stdout(&sandbox.kubectl(&["get", "crds", "-o", "name"]));
    assert!(crds.contains("partners.partner-operator.io"), "{crds}");
    assert!(crds.contains("distributors.partner-operator.io"), "{crds}");
    stdout(&sandbox.kubectl(&["apply", "-f", examples().to_str().unwrap()]));
    // Nobody reconciles: there is no operator process to (its summary, asserted below, says
    // so), and the Partners have no status. No wait would prove more than that.
    let levels = stdout(&sandbox.kubectl(&[
        "get",
        "partners",
        "-A",
        "-o",
        "jsonpath={.items[*].status.subscriptionLevel}",
    ]));
    assert_eq!(levels.trim(), "");
    assert!(!sandbox.dir.path().join("outbox").exists());

    let (status, printed) = sandbox.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(printed.contains("export KUBECONFIG="), "{printed}");
    assert!(printed.contains("--without-operator"), "{printed}");
    assert!(
        !sandbox.kubeconfig().exists(),
        "a kubeconfig pointing at a stopped server was left behind"
    );
    assert_eq!(sandbox.processes_left(), Vec::<String>::new());
}

fn with_the_operator_partners_become_ready_and_mail_lands_in_the_outbox(server: Server) {
    let mut sandbox = Sandbox::start_on(server, &[]);
    stdout(&sandbox.kubectl(&["apply", "-f", examples().to_str().unwrap()]));
    sandbox.wait_for_ready_examples();
    let outbox = sandbox.dir.path().join("outbox");
    let activations = three_activations_in(&outbox, "eml");
    assert_eq!(activations.len(), 3, "{activations:?}");
    // A fresh outbox: numbered from 0001, each message with its readable copy beside it.
    let mut numbered = activations.clone();
    numbered.sort();
    assert_eq!(
        numbered,
        [
            "0001-activation.eml",
            "0002-activation.eml",
            "0003-activation.eml"
        ]
    );
    for eml in &numbered {
        let raw = std::fs::read(outbox.join(eml)).unwrap();
        let txt = std::fs::read_to_string(outbox.join(eml.replace(".eml", ".txt"))).unwrap();
        let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let body = message.body_text(0).unwrap();
        let link = link_in(&body).unwrap_or_else(|| panic!("no link in {eml}:\n{body}"));
        assert!(
            String::from_utf8_lossy(&raw).contains("=3D"),
            "the .eml is quoted-printable"
        );
        // The link whole on one line, as in the decoded .eml; no quoted-printable left.
        assert_eq!(link_in(&txt).as_deref(), Some(link.as_str()), "{txt}");
        assert!(
            txt.lines().any(|line| line.contains(&link)),
            "{link} split in:\n{txt}"
        );
        assert!(!txt.contains("=3D"), "{txt}");
        let subject = message.subject().unwrap();
        for header in [
            "From: Partner Onboarding <onboarding@sandbox.invalid>".to_string(),
            format!("Subject: {subject}"),
            format!("Message-ID: <{}>", message.message_id().unwrap()),
        ] {
            assert!(txt.contains(&header), "{header} in:\n{txt}");
        }
        let to = message.to().unwrap().first().unwrap().address().unwrap();
        assert!(
            txt.lines()
                .any(|line| line.starts_with("To: ") && line.contains(to)),
            "{to} in:\n{txt}"
        );
        assert!(txt.lines().any(|line| line.starts_with("Date: ")), "{txt}");
    }
    let (status, printed) = sandbox.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(printed.contains("outbox"), "{printed}");
    assert_eq!(sandbox.processes_left(), Vec::<String>::new());
}

/// The operator's log, with stderr redirected to a file (not a terminal), is plain text: no ANSI
/// colour codes, whatever the default format would colour at a terminal.
#[test]
fn a_log_redirected_to_a_file_carries_no_ansi_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut sandbox = KillOnDrop(
        Command::new(BINARY)
            .arg("sandbox")
            .arg("--state-dir")
            .arg(dir.path())
            .args(["--webhook-port", "0"])
            .args(["--log-format", "text", "--log-level", "info"])
            // Neither may decide for the test: the filter must let the line below through,
            // and NO_COLOR would turn colour off by itself.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    eventually_blocking(
        "the sandbox's operator logging that its controllers started",
        Patience::SANDBOX_START,
        || {
            if let Some(status) = sandbox.0.try_wait().unwrap() {
                panic!("the sandbox exited ({status}): {}", read_log());
            }
            let log = read_log();
            if log.contains("controllers started") {
                Ok(())
            } else {
                Err(Seen(log))
            }
        },
    );
    sigterm(&sandbox.0);
    let status = sandbox.0.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let log = read_log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains("\x1b["),
        "ANSI escape codes in a redirected log: {log:?}"
    );
}

/// The first link (`http://` or `https://`) in `text`, up to the next whitespace.
fn link_in(text: &str) -> Option<String> {
    let start = text.find("http://").or_else(|| text.find("https://"))?;
    Some(
        text[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .next()?
            .to_string(),
    )
}

/// Sends one message to the SMTP server at `addr` as a plain client would; panics unless the
/// server accepts it.
fn send_mail(addr: &str, subject: &str) {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut expect = |code: &str| {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    };
    expect("220");
    let mut say = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    say("EHLO test");
    expect("250");
    say("MAIL FROM:<someone@example.com>");
    expect("250");
    say("RCPT TO:<you@example.com>");
    expect("250");
    say("DATA");
    expect("354");
    say(&format!(
        "From: someone@example.com\r\nTo: you@example.com\r\nSubject: {subject}\r\n\
         Date: Thu, 26 Nov 2026 00:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n\
         X-Partner-Operator-Event: test\r\n\r\nHello.\r\n."
    ));
    expect("250");
    say("QUIT");
    expect("221");
}

/// Waits until the outbox `dir` holds three activation emails (`NNNN-activation.<extension>`)
/// and returns their names, sorted.
fn three_activations_in(dir: &Path, extension: &str) -> Vec<String> {
    let suffix = format!("-activation.{extension}");
    eventually_blocking(
        format!("three activation emails in {}", dir.display()),
        Patience::RECONCILE,
        || {
            let names: Vec<String> = names_in(dir)
                .into_iter()
                .filter(|name| name.ends_with(&suffix))
                .collect();
            if names.len() >= 3 {
                Ok(names)
            } else {
                Err(names)
            }
        },
    )
}

/// The names in the outbox directory `dir`, sorted (none if it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `--without-operator` still runs the SMTP server, prints its address and the `run` command
/// that mails through it, and writes what it accepts to the outbox. Each run of the sandbox
/// starts a fresh outbox, the previous one kept aside as `outbox.previous` (replacing an older
/// one), so numbering starts at 0001 every run.
#[test]
fn without_operator_an_smtp_server_takes_mail_and_each_run_starts_a_fresh_outbox() {
    let mut sandbox = Sandbox::start(&["--without-operator"]);
    let smtp = sandbox.smtp_addr();
    let summary = sandbox.summary();
    assert!(
        summary.contains(&format!(
            "--smtp-url smtp://{smtp} --smtp-insecure-plaintext"
        )),
        "{summary}"
    );
    let outbox = sandbox.dir.path().join("outbox");
    let previous = sandbox.dir.path().join("outbox.previous");
    assert!(
        summary.contains(&format!("messages in {}", outbox.display())),
        "{summary}"
    );
    assert!(
        summary.contains(&previous.display().to_string()),
        "{summary}"
    );
    send_mail(&smtp, "first");
    send_mail(&smtp, "second");
    let first_run = [
        "0001-test.eml",
        "0001-test.txt",
        "0002-test.eml",
        "0002-test.txt",
    ];
    assert_eq!(names_in(&outbox), first_run);
    let txt = std::fs::read_to_string(outbox.join("0002-test.txt")).unwrap();
    assert!(txt.contains("Subject: second\n"), "{txt}");
    assert!(txt.ends_with("\n\nHello.\n"), "{txt}");
    let (status, _) = sandbox.terminate();
    assert!(status.success(), "exit status {status}");

    // Second run, same state directory: the first run's messages are set aside.
    let dir = std::mem::replace(&mut sandbox.dir, tempfile::tempdir().unwrap());
    let mut sandbox = Sandbox::start_in(dir, Server::Sandbox, &["--without-operator"]);
    assert_eq!(names_in(&previous), first_run);
    assert_eq!(names_in(&outbox), Vec::<String>::new());
    send_mail(&sandbox.smtp_addr(), "third");
    assert_eq!(names_in(&outbox), ["0001-test.eml", "0001-test.txt"]);
    let txt = std::fs::read_to_string(outbox.join("0001-test.txt")).unwrap();
    assert!(txt.contains("Subject: third\n"), "{txt}");
    sandbox.terminate();

    // Third run: the second run's outbox replaces the first's.
    let dir = std::mem::replace(&mut sandbox.dir, tempfile::tempdir().unwrap());
    let sandbox = Sandbox::start_in(dir, Server::Sandbox, &["--without-operator"]);
    assert_eq!(names_in(&previous), ["0001-test.eml", "0001-test.txt"]);
    let txt = std::fs::read_to_string(previous.join("0001-test.txt")).unwrap();
    assert!(txt.contains("Subject: third\n"), "{txt}");
    assert!(!outbox.exists());
    drop(sandbox);
}

/// The recipe without the operator in docs/sandbox.md: the sandbox with `--smtp-port`, and the
/// operator run separately with the `--smtp-url` the sandbox printed; its mail lands in the
/// sandbox's outbox.
#[test]
fn the_documented_recipe_without_the_operator_mails_into_the_sandbox_outbox() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut sandbox = Sandbox::start(&["--without-operator", "--smtp-port", &port]);
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let summary = sandbox.summary();
    let run_line = summary
        .lines()
        .find(|line| line.contains("partner-operator run"))
        .unwrap_or_else(|| panic!("no run command in:\n{summary}"));
    assert!(
        run_line.contains(&format!("--smtp-url {smtp_url} --smtp-insecure-plaintext")),
        "{run_line}"
    );
    assert!(
        summary.contains("--activation-base-url http://127.0.0.1:8081/activate"),
        "{summary}"
    );
    stdout(&sandbox.kubectl(&["apply", "-f", examples().to_str().unwrap()]));
    // As printed, on a free port of the test's (the examples leave the link base to the
    // operator).
    let activation = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _operator = KillOnDrop(
        Command::new(BINARY)
            .args(["run", "--smtp-url", &smtp_url, "--smtp-insecure-plaintext"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg(format!("--activation-addr={activation}"))
            .arg(format!(
                "--activation-base-url=http://{activation}/activate"
            ))
            .env("KUBECONFIG", sandbox.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    sandbox.wait_for_ready_examples();
    let outbox = sandbox.dir.path().join("outbox");
    let activations = three_activations_in(&outbox, "txt");
    assert_eq!(activations.len(), 3, "{activations:?}");
}

#[test]
fn an_incomplete_kube_apiserver_dir_is_a_one_line_error_naming_the_missing_binary() {
    let assets = tempfile::tempdir().unwrap();
    for present in ["etcd", "kube-apiserver"] {
        std::fs::write(assets.path().join(present), b"").unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let refused = Command::new(BINARY)
        .args(["sandbox", "--state-dir"])
        .arg(state.path())
        .arg("--kube-apiserver")
        .arg(assets.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("--kube-apiserver"), "{message}");
    assert!(message.contains("no kube-controller-manager"), "{message}");
    assert!(!state.path().join("kubeconfig").exists());
}

#[test]
fn a_busy_port_and_an_unwritable_state_dir_are_one_line_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    // The API server's port, the SMTP server's and the webhook receiver's, each given the one
    // taken (the others free).
    for flag in ["--port", "--smtp-port", "--webhook-port"] {
        let mut command = Command::new(BINARY);
        command.args(["sandbox", "--without-operator", flag, &port]);
        if flag != "--webhook-port" {
            command.args(["--webhook-port", "0"]);
        }
        let busy = command.arg("--state-dir").arg(dir.path()).output().unwrap();
        assert!(!busy.status.success(), "{flag}");
        let message = String::from_utf8_lossy(&busy.stderr);
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert!(message.contains(&format!("{flag} {port}")), "{message}");
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    let unwritable = file.path().join("state");
    let refused = Command::new(BINARY)
        .args(["sandbox", "--state-dir"])
        .arg(&unwritable)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains("--state-dir"), "{message}");
}

crate::on_both_servers!(run_against_the_sandbox_started_alone);

/// The operator as a separate process (`partner-operator run`), against the API server started
/// alone: the way docs/sandbox.md tells a user to try the `run` command.
async fn run_against_the_sandbox_started_alone(server: Server) {
    use partner_sandbox::smtp::SmtpSink;
    let smtp = SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let mut sandbox = Sandbox::start_on(server, &["--without-operator"]);
    stdout(&sandbox.kubectl(&["apply", "-f", examples().to_str().unwrap()]));
    let mut operator = KillOnDrop(
        Command::new(BINARY)
            .args([
                "run",
                "--smtp-insecure-plaintext",
                "--metrics-addr",
                "127.0.0.1:0",
                "--activation-addr",
                "127.0.0.1:0",
            ])
            .args([
                "--activation-base-url",
                "https://portal.example.com/activate",
            ])
            .env("SMTP_URL", smtp.url())
            .env("KUBECONFIG", sandbox.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    sandbox.wait_for_ready_examples();
    // Three activations; litware, created as Production, has no trial and so no conversion:
    // its activation says Production, and its status records no other email.
    let received = eventually("three emails", Patience::RECONCILE, || async {
        let received = smtp.received();
        if received.len() >= 3 {
            Ok(received)
        } else {
            Err(received)
        }
    })
    .await;
    let events: Vec<_> = received.iter().filter_map(|m| m.event.clone()).collect();
    assert_eq!(
        events,
        ["activation", "activation", "activation"],
        "{events:?}"
    );
    let litware = received
        .iter()
        .find(|m| m.to == ["billing@litware.example"])
        .expect("litware's activation");
    let text = litware.text_body().unwrap();
    assert!(text.contains("Production tenant"), "{text}");
    assert!(!text.to_lowercase().contains("trial"), "{text}");
    let recorded = stdout(&sandbox.kubectl(&[
        "get",
        "partner",
        "litware",
        "-n",
        "northwind-partners",
        "-o",
        "jsonpath={.status.emails[*].event}",
    ]));
    assert_eq!(recorded.trim(), "Activation");

    sigterm(&operator.0);
    let status = operator.0.wait().unwrap();
    assert!(status.success(), "run exited with {status} after SIGTERM");
    sandbox.terminate();
}

fn run_names_a_missing_crd_and_an_unreachable_server_in_one_line(server: Server) {
    let sandbox = Sandbox::start_on(server, &["--without-operator"]);
    stdout(&sandbox.kubectl(&["delete", "crd", "partners.partner-operator.io"]));
    let run_with = |kubeconfig: &Path, extra: &[&str]| {
        let output = Command::new(BINARY)
            .args([
                "run",
                "--smtp-url",
                "smtp://127.0.0.1:1",
                "--smtp-insecure-plaintext",
            ])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--activation-addr", "127.0.0.1:0"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        assert_eq!(message.lines().count(), 1, "{message}");
        message
    };
    let run = |kubeconfig: &Path| run_with(kubeconfig, &[]);
    // An activation link base that could deceive or leak its token is refused at start.
    for base in [
        "http://portal.example/activate",
        "https://portal.example@evil.example/activate",
        "file:///etc/passwd",
    ] {
        let refused = run_with(&sandbox.kubeconfig(), &["--activation-base-url", base]);
        assert!(refused.contains("--activation-base-url"), "{refused}");
        assert!(refused.contains("https://"), "{refused}");
    }
    let missing = run(&sandbox.kubeconfig());
    assert!(
        missing.contains("partners.partner-operator.io"),
        "{missing}"
    );
    assert!(missing.contains("not installed"), "{missing}");

    let unreachable = sandbox.dir.path().join("unreachable");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &unreachable,
        std::fs::read_to_string(sandbox.kubeconfig())
            .unwrap()
            .lines()
            .map(|line| match line.trim_start().starts_with("server:") {
                true => format!("    server: http://127.0.0.1:{port}"),
                false => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let message = run(&unreachable);
    assert!(
        message.contains("cannot reach the Kubernetes API server"),
        "{message}"
    );
}
