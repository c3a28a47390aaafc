//! The connections against the sandbox's SMTP server on loopback.

use std::time::Duration;

use lettre::Message;
use lettre::transport::smtp::client::Tls;
use lettre::transport::smtp::extension::ClientId;
use partner_sandbox::smtp::SmtpSink;

use super::{Server, SmtpConnections};
use crate::mail::MailError;

const DEADLINE: Duration = Duration::from_secs(10);

async fn sink() -> SmtpSink {
    SmtpSink::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
}

fn server(sink: &SmtpSink) -> Server {
    Server {
        host: sink.addr().ip().to_string(),
        port: sink.addr().port(),
        tls: Tls::None,
        hello: ClientId::Domain("localhost".into()),
        credentials: None,
        connect_timeout: DEADLINE,
    }
}

fn message(n: usize, to: &str) -> Message {
    Message::builder()
        .from("noreply@example.com".parse().unwrap())
        .to(to.parse().unwrap())
        .message_id(Some(format!("<{n}@example.com>")))
        .subject(format!("message {n}"))
        .body(format!("body {n}"))
        .unwrap()
}

#[tokio::test]
async fn messages_in_turn_share_one_connection() {
    let sink = sink().await;
    let connections = SmtpConnections::new(server(&sink), DEADLINE, 2);
    for n in 0..5 {
        connections
            .send(&message(n, "a@example.com"))
            .await
            .unwrap();
    }
    assert_eq!(sink.received().len(), 5);
    assert_eq!(sink.accepted_connections(), 1);
    assert_eq!(connections.idle_count(), 1);
}

#[tokio::test]
async fn a_refused_message_leaves_no_connection_behind() {
    let sink = sink().await;
    sink.reject_recipient("gone@example.com", 550);
    let connections = SmtpConnections::new(server(&sink), DEADLINE, 2);
    connections
        .send(&message(0, "a@example.com"))
        .await
        .unwrap();
    let err = connections
        .send(&message(1, "gone@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MailError::Rejected { code: 550, .. }),
        "{err}"
    );
    assert_eq!(connections.idle_count(), 0, "the refused one's is closed");

    connections
        .send(&message(2, "a@example.com"))
        .await
        .unwrap();
    assert_eq!(sink.accepted_connections(), 2);
    assert_eq!(sink.open_connections(), 1);
}

#[tokio::test]
async fn a_connection_idle_past_the_limit_is_closed_and_replaced() {
    let sink = sink().await;
    let connections =
        SmtpConnections::with_idle_limit(server(&sink), DEADLINE, 2, Duration::from_millis(20));
    connections
        .send(&message(0, "a@example.com"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    connections
        .send(&message(1, "a@example.com"))
        .await
        .unwrap();
    assert_eq!(sink.received().len(), 2);
    assert_eq!(sink.accepted_connections(), 2);
    // The first said QUIT and is gone; the second waits for the next message.
    assert_eq!(sink.open_connections(), 1);
    assert_eq!(connections.idle_count(), 1);
}

#[tokio::test]
async fn a_send_dropped_while_checking_leaves_nothing_to_reuse() {
    let sink = sink().await;
    let connections = SmtpConnections::new(server(&sink), DEADLINE, 2);
    connections
        .send(&message(0, "a@example.com"))
        .await
        .unwrap();
    // The server stops answering: the NOOP before reuse waits, and the caller gives up.
    sink.set_silent(true);
    let given_up = message(1, "a@example.com");
    tokio::select! {
        result = connections.send(&given_up) => {
            panic!("a silent server answered: {result:?}")
        }
        () = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    assert_eq!(connections.idle_count(), 0);

    sink.set_silent(false);
    connections
        .send(&message(2, "a@example.com"))
        .await
        .unwrap();
    assert_eq!(sink.accepted_connections(), 2);
    assert_eq!(sink.open_connections(), 1);
    let ids: Vec<_> = sink.received().into_iter().map(|m| m.message_id).collect();
    assert_eq!(
        ids,
        [
            Some("<0@example.com>".into()),
            Some("<2@example.com>".into())
        ]
    );
}
