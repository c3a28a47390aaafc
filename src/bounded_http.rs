//! The HTTP server of the operator's doors that anyone may knock on without credentials (the
//! activation service, and `/metrics`, `/healthz`, `/readyz`): it bounds connections, bytes
//! and time before a handler looks at who is asking, so idle or trickling clients cannot take
//! the descriptors the API server, SMTP and webhook connections need.
//!
//! - Connections: at most [`connection_cap`] at once (the setting, and never more than the
//!   process's descriptor limit minus [`DESCRIPTOR_RESERVE`], kept for the API server, SMTP and
//!   webhook connections). Beyond it the listener stops accepting: further clients wait in the
//!   kernel's backlog, holding none of the process's descriptors.
//! - Time: a request's head must arrive within [`HEADER_TIMEOUT`], and the same bound applies
//!   to a kept-alive connection waiting for its next request (hyper's header-read timer starts
//!   when it waits for a head); a request's body and answer within [`REQUEST_TIMEOUT`].
//! - Bytes: a request's head (request line and headers) at most [`MAX_HEAD_BYTES`]; the query
//!   and the body are capped by each door's router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Descriptors left to the rest of the operator whatever the setting.
pub const DESCRIPTOR_RESERVE: u64 = 256;
/// The head of a request, and the wait for the next one on a kept-alive connection.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's body and its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A request's head, in bytes (hyper's smallest read buffer).
pub const MAX_HEAD_BYTES: usize = 8192;
/// Headers in a request.
pub const MAX_HEADERS: usize = 32;

/// Connections served at once: `setting`, at most the descriptor limit `nofile` minus
/// [`DESCRIPTOR_RESERVE`], and at least one.
pub fn connection_cap(setting: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(DESCRIPTOR_RESERVE);
    setting
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// This process's (soft) limit of open descriptors.
pub fn descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    }
}

/// Serves `router` on `listener`, at most `cap` connections at once, until `shutdown`; then
/// lets the requests under way finish (for at most [`REQUEST_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cap: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(cap));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore stays open"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors (the rest of the process used them) or a connection
                    // reset before it was accepted: wait a little rather than spin.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
        );
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .keep_alive(true);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(error = %err, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_the_rest_of_the_operator() {
        assert_eq!(connection_cap(512, 1_048_576), 512);
        assert_eq!(connection_cap(512, 1024), 512);
        assert_eq!(connection_cap(2000, 1024), 768);
        assert_eq!(connection_cap(512, 300), 44);
        assert_eq!(connection_cap(512, 100), 1);
        assert!(descriptor_limit() > 0);
    }
}
