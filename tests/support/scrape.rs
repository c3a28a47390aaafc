//! The operator's `/metrics`, read whole, for the tests that assert on its figures.

use super::metrics::{sample, try_get};
use super::{Patience, Seen, eventually};

/// `GET path` over plain HTTP/1.0: the status code and the body.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
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
