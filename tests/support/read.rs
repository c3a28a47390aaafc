//! What the tests read: a Partner's conditions and level, the Events about it, the activation
//! link in an email, the end of a log, a file of the project.

use kube::Api;
use partner_operator::api::{Partner, SubscriptionLevel, types};
use partner_sandbox::smtp::ReceivedEmail;

use super::harness::{Harness, PORTAL};

/// The Events (`events.k8s.io/v1`) in `namespace` with `reason`.
pub async fn events(
    h: &Harness,
    namespace: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(h.client.clone(), namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// The condition of `type_` (one of [`types`]) on `partner`: its status and reason.
pub fn condition(partner: &Partner, type_: &str) -> Option<(String, String)> {
    partner
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn is_ready(partner: &Partner) -> bool {
    condition(partner, types::READY).is_some_and(|(s, _)| s == "True")
}

/// The subscription level in `partner`'s status; `Pending` until it has one.
pub fn level(partner: &Partner) -> SubscriptionLevel {
    partner
        .status
        .as_ref()
        .and_then(|s| s.subscription_level)
        .unwrap_or_default()
}

/// Whether `partner` is at `level` and Ready.
pub fn is_ready_at(partner: &Partner, level_: SubscriptionLevel) -> bool {
    level(partner) == level_ && is_ready(partner)
}

/// The `token` parameter of the activation link in an email's text.
pub fn activation_link(email: &ReceivedEmail) -> url::Url {
    let text = email.text_body().expect("a text part");
    let start = text.find(PORTAL).expect("the link is in the text");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    url::Url::parse(&link).expect("a URL")
}

/// The token of the activation link in an email.
pub fn activation_token(email: &ReceivedEmail) -> String {
    activation_link(email)
        .query_pairs()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .expect("the link carries a token")
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A path in the project's directory.
pub fn project(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
