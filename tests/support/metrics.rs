//! The operator's `/metrics`, `/healthz` and `/readyz`, read over plain HTTP.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Patience, Seen, eventually};

/// `GET path`, or why it could not be done (nothing listening yet, say).
pub(super) async fn try_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of the sample `name{labels}` (labels exactly as exported).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

/// How many reconciliations `controller` has run (0 before its first), once `/metrics`
/// answers.
pub async fn reconciliations(addr: std::net::SocketAddr, controller: &str) -> f64 {
    let series = format!(r#"partner_operator_reconciliations_total{{controller="{controller}"}}"#);
    eventually("/metrics answering", Patience::RECONCILE, || async {
        match try_get(addr, "/metrics").await {
            Ok((200, metrics)) => Ok(sample(&metrics, &series).unwrap_or(0.0)),
            Ok((status, metrics)) => Err(Seen(format!("{status}\n{metrics}"))),
            Err(e) => Err(Seen(e.to_string())),
        }
    })
    .await
}

pub fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}
