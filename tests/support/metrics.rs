//! The operator's `/metrics`, `/healthz` and `/readyz`, read over plain HTTP.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Patience, Seen, eventually};

/// `GET path` over plain HTTP/1.0: the status code and the body.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// `GET path`, or why it could not be done (nothing listening yet, say).
async fn try_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
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

/// Scrapes until `series` reads `value` (the Distributor's figures follow its Partners after
/// its own, debounced, reconciliation), then returns the whole scrape; fails with the last
/// scrape if it never does.
pub async fn scrape_until(addr: std::net::SocketAddr, series: &str, value: f64) -> String {
    eventually(
        format!("{series} = {value}"),
        Patience::RECONCILE,
        || async {
            match try_get(addr, "/metrics").await {
                Ok((200, metrics)) if sample(&metrics, series) == Some(value) => Ok(metrics),
                Ok((status, metrics)) => Err(Seen(format!("{status}\n{metrics}"))),
                Err(e) => Err(Seen(e.to_string())),
            }
        },
    )
    .await
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
