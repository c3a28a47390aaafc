//! Secrets kept out of the logs: everything logged, read back for a token or a key.

use std::sync::atomic::Ordering;

use super::logs::{LOGS, SECRETS_CAPTURED, capture};

/// Logs go to a buffer at debug level too, everything the operator, the sandbox and kube say
/// from now on (the other tests' as well), so a test can check that a secret is nowhere in
/// them.
pub fn capture_for_secrets() {
    SECRETS_CAPTURED.store(true, Ordering::Relaxed);
    capture();
}

/// Fails if `secret` is in what [`capture_for_secrets`] captured (or nothing was captured).
pub fn assert_not_logged(secret: &str) {
    let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "the logs were captured");
    assert!(
        !logs.contains(secret),
        "a secret is in the logs: {}",
        logs.lines()
            .find(|l| l.contains(secret))
            .unwrap_or_default()
    );
}
