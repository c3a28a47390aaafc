//! The SMTP connections of one [`super::Mailer`]: at most `max_connections`, each carrying one
//! message at a time and kept for the next.
//!
//! Why keep them: a message on a new connection first pays the TCP handshake, the greeting,
//! EHLO and, on a real server, STARTTLS (a TLS handshake), EHLO again and AUTH; about seven
//! round trips before `MAIL FROM`, where a kept connection needs one (a NOOP). Onboarding
//! thousands of Partners at once is bounded by mail, so that is most of a message's time.
//!
//! lettre's own pool is not used: it keeps, or closes on tasks of its own, connections whose
//! send was given up, so against a server that hangs more than `max_connections` could be
//! open. Here a server that hangs holds only the connections in use, by these rules:
//! - A connection is in exactly one place: the idle list, or the one send using it. A send
//!   takes one only while it holds one of `max_connections` permits, and opens one only when
//!   none is idle, so idle and busy connections together never exceed `max_connections`.
//! - A connection goes back to the idle list only once its message was accepted. One whose
//!   send failed, was refused or timed out, or whose send was given up (its future dropped, by
//!   the deadline or by a caller that no longer wants the email, such as a deleted Partner's
//!   reconciliation) is dropped with the send, which closes its socket: the next message opens
//!   a new one. Nothing is closed on a task of its own.
//! - Each message is bounded by the whole-delivery deadline (checking, closing and connecting
//!   included); connecting is also bounded by lettre's timeout, the same duration.
//! - Before reuse, a connection idle for less than [`IDLE_LIMIT`] is asked for a NOOP (given
//!   a quarter of the deadline): one the server dropped meanwhile fails it, and the message
//!   goes over a new connection instead. Nothing of the message was sent, so it cannot arrive
//!   twice. A failure after that (a server that drops the connection right after the NOOP
//!   included) is returned, never retried here: once `DATA` was sent the message may have
//!   arrived, and the lifecycle decides whether to send it again (with the same Message-ID).
//!   Connections idle for longer are closed with QUIT when a send next looks for one, without
//!   being tried: servers drop idle clients (RFC 5321 lets them after five minutes, many do
//!   sooner), and one a firewall forgot may never answer. Until then they are at most
//!   `max_connections` quiet sockets.
//!
//! Errors are lettre's, classified by [`MailError::from_smtp`]. The credentials go to the
//! server alone: no error or log line here holds them.

use std::sync::Mutex;
use std::time::Duration;

use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls};
use lettre::transport::smtp::extension::ClientId;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::mailer::MailError;

/// How long a connection may sit idle and still be reused (after a NOOP). Well under the five
/// minutes RFC 5321 gives servers before they may drop an idle client, and long enough to
/// carry a burst of emails and its stragglers.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Where to connect and how: the parts of the session before `MAIL FROM`.
pub(super) struct Server {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// The name given in EHLO: this machine's, computed once.
    pub hello: ClientId,
    pub credentials: Option<Credentials>,
    /// lettre's bound on connecting (its async client bounds no other step: the deadline does).
    pub connect_timeout: Duration,
}

impl Server {
    /// A new session: connected (with implicit TLS or STARTTLS as configured), greeted and
    /// authenticated.
    ///
    /// The socket is the mailer's own, with `TCP_NODELAY`: lettre writes a message's body and
    /// its closing `.` in two writes, and with Nagle's algorithm the second waits for the
    /// server to acknowledge the first, which a server that answers only after the `.` delays
    /// (40 ms on Linux): every message took that long, whatever the server. With implicit TLS
    /// lettre opens the socket itself (it wraps it before the greeting), without that option.
    async fn connect(&self) -> Result<AsyncSmtpConnection, MailError> {
        let mut connection = match &self.tls {
            Tls::Wrapper(parameters) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(MailError::from_smtp)?,
            _ => {
                let socket = self.socket().await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello)
                    .await
                    .map_err(MailError::from_smtp)?
            }
        };
        self.start_session(&mut connection)
            .await
            .map_err(MailError::from_smtp)?;
        Ok(connection)
    }

    /// A TCP connection to the server, with `TCP_NODELAY`: to the first of its addresses that
    /// answers within the connect timeout.
    async fn socket(&self) -> Result<tokio::net::TcpStream, MailError> {
        let unreachable = |err: std::io::Error| MailError::Connection(err.to_string());
        let connecting = async {
            let mut last = None;
            for address in tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(unreachable)?
            {
                match tokio::net::TcpStream::connect(address).await {
                    Ok(socket) => {
                        socket.set_nodelay(true).map_err(unreachable)?;
                        return Ok(socket);
                    }
                    Err(err) => last = Some(err),
                }
            }
            Err(MailError::Connection(last.map_or_else(
                || format!("{} resolves to no address", self.host),
                |err| err.to_string(),
            )))
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .unwrap_or_else(|_| {
                Err(MailError::Connection(format!(
                    "connection timed out after {:?}",
                    self.connect_timeout
                )))
            })
    }

    /// STARTTLS (when required) and authentication, on a greeted connection.
    async fn start_session(
        &self,
        connection: &mut AsyncSmtpConnection,
    ) -> Result<(), lettre::transport::smtp::Error> {
        if let Tls::Required(parameters) = &self.tls {
            // Fails when the server does not offer STARTTLS: nothing goes out in clear.
            connection.starttls(parameters.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(())
    }
}

/// A connection waiting for the next message, since when.
struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// The connections to one server, open or idle, at most `max_connections` of them.
pub(super) struct SmtpConnections {
    server: Server,
    /// Bounds one message's delivery, from the moment it has a permit.
    deadline: Duration,
    idle_limit: Duration,
    /// One permit per connection that may be in use.
    permits: Semaphore,
    /// Oldest first; never locked across an await.
    idle: Mutex<Vec<Idle>>,
}

impl SmtpConnections {
    pub fn new(server: Server, deadline: Duration, max_connections: u32) -> Self {
        Self::with_idle_limit(server, deadline, max_connections, IDLE_LIMIT)
    }

    fn with_idle_limit(
        server: Server,
        deadline: Duration,
        max_connections: u32,
        idle_limit: Duration,
    ) -> Self {
        Self {
            server,
            deadline,
            idle_limit,
            permits: Semaphore::new(usize::try_from(max_connections).unwrap_or(usize::MAX)),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `message` over a kept connection or a new one, within the deadline.
    pub async fn send(&self, message: &Message) -> Result<(), MailError> {
        let raw = message.formatted();
        // Waiting for a permit is not the message's time: the bound starts once it has one.
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let delivery = self.deliver(message.envelope(), &raw);
        match tokio::time::timeout(self.deadline, delivery).await {
            Ok(result) => result,
            Err(_) => Err(MailError::Timeout(format!(
                "no answer within {:?}",
                self.deadline
            ))),
        }
    }

    /// One message over one connection; the connection is kept only if the message was
    /// accepted (dropping it, on an error or with the future, closes it).
    async fn deliver(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), MailError> {
        let mut connection = self.connection().await?;
        connection
            .send(envelope, raw)
            .await
            .map_err(MailError::from_smtp)?;
        if !connection.has_broken() {
            let mut idle = lock(&self.idle);
            // Stamped under the lock, so the list stays oldest first.
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
        Ok(())
    }

    /// The most recently used idle connection that still answers, or else a new one. Those
    /// idle past the limit are closed on the way.
    async fn connection(&self) -> Result<AsyncSmtpConnection, MailError> {
        let (expired, recent) = self.take_idle();
        let check = self.check_bound();
        if !expired.is_empty() {
            let quits = expired.into_iter().map(|mut connection| async move {
                let _ = connection.quit().await;
            });
            let _ = tokio::time::timeout(check, futures::future::join_all(quits)).await;
        }
        if let Some(mut connection) = recent {
            // A NOOP that fails or is slow drops the connection here, before the new one opens.
            if let Ok(true) = tokio::time::timeout(check, connection.test_connected()).await {
                return Ok(connection);
            }
        }
        self.server.connect().await
    }

    /// Takes the idle connections past the limit, and the most recent one within it.
    fn take_idle(&self) -> (Vec<AsyncSmtpConnection>, Option<AsyncSmtpConnection>) {
        let mut idle = lock(&self.idle);
        let now = Instant::now();
        let expired = idle.partition_point(|c| now.duration_since(c.since) > self.idle_limit);
        let expired = idle.drain(..expired).map(|c| c.connection).collect();
        (expired, idle.pop().map(|c| c.connection))
    }

    /// The longest a kept connection may take to answer a NOOP or a QUIT: a quarter of the
    /// message's time, so most of it is left to connect anew and send.
    fn check_bound(&self) -> Duration {
        self.deadline / 4
    }

    #[cfg(all(test, feature = "sandbox"))]
    fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }
}

/// Locks a mutex, carrying on past a panic of another holder: the list stays usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(all(test, feature = "sandbox"))]
#[path = "connections_tests.rs"]
mod tests;
