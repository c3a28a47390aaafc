//! Behaviours the sandbox still does not share with kube-apiserver, each listed in
//! `docs/sandbox-fidelity.md`: these probes show the difference, and fail once it is gone.

use super::*;

/// Kinds the sandbox does not serve (Pods, Jobs, ...): kube-apiserver lists them; the sandbox
/// answers 404 saying it does not serve them.
pub(super) async fn unserved_kinds(http: Http, ns: String) -> Value {
    let pods = http.get(&format!("/api/v1/namespaces/{ns}/pods")).await;
    let jobs = http
        .get(&format!("/apis/batch/v1/namespaces/{ns}/jobs"))
        .await;
    json!({"pods": pods.outcome(), "jobs": jobs.outcome()})
}
