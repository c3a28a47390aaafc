//! The activation service under test: an operator serving it on a free loopback port, and the
//! link its emails carry.

use std::net::SocketAddr;

use partner_operator::activation::ServiceOptions;
use partner_sandbox::smtp::ReceivedEmail;

use super::{Harness, Patience, Server, eventually};

/// Servers up, the operator running with its activation service on a free loopback port, the
/// links pointing at it.
pub async fn start(
    server: Server,
    options: impl FnOnce(&mut ServiceOptions),
) -> (Harness, SocketAddr) {
    super::secrets::capture_for_secrets();
    let mut h = Harness::start_servers(server).await;
    let addr = super::metrics::free_port();
    let mut service = ServiceOptions::new(addr);
    options(&mut service);
    let mut run = h.run_options();
    run.activation_base_url = Some(format!("http://{addr}/activate"));
    run.activation_service = Some(service);
    h.start_operator_with(run);
    eventually(
        "the activation service listening",
        Patience::RECONCILE,
        || async { tokio::net::TcpStream::connect(addr).await.is_ok() },
    )
    .await;
    (h, addr)
}

/// The link in an activation email: path and query (the target of a request), tenant, token.
pub fn link(email: &ReceivedEmail) -> (String, String, String) {
    let text = email.text_body().expect("a text part");
    let start = text
        .find("http://127.0.0.1:")
        .expect("the link is in the text");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let url = url::Url::parse(&link).expect("a URL");
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .expect("the link carries it")
    };
    (
        format!("{}?{}", url.path(), url.query().unwrap()),
        param("tenant"),
        param("token"),
    )
}
