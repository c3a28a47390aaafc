//! The logs of what a test runs in-process (the operator, the sandbox's servers), captured per
//! test by libtest: they are printed only when the test fails (or with `--nocapture`).

use std::io::IsTerminal;
use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// What is logged unless `RUST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str = "partner_operator=debug,partner_sandbox=info,kube=warn";

/// Installs, once per test binary, a subscriber that writes through libtest's capture
/// (`with_test_writer`): each line lands in the output of the test whose thread (or whose
/// runtime's worker thread) logged it. The operator's own `telemetry::init` then keeps it.
pub fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(std::io::stdout().is_terminal())
            .try_init();
    });
}

/// Everything the tests of a binary logged, for [`assert_not_logged`], when they call
/// [`capture_for_secrets`] instead of [`capture`].
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogBuffer;

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs go to a buffer at debug level, everything the operator, the sandbox and kube say
/// (before `Harness` installs its own subscriber, which then keeps this one), so a test can
/// check that a secret is nowhere in them.
pub fn capture_for_secrets() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("partner_operator=debug,partner_sandbox=debug,kube=debug")
            .with_writer(|| LogBuffer)
            .with_ansi(false)
            .try_init();
    });
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
