//! The logs of what a test runs in-process (the operator, the sandbox's servers), captured per
//! test by libtest: they are printed only when the test fails (or with `--nocapture`).
//!
//! A process has one subscriber, and every test of the binary shares it: it writes through
//! libtest's capture and, once a test has asked for [`capture_for_secrets`], to a buffer too,
//! whichever test installs it first.

use std::io::IsTerminal;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// What is logged unless `RUST_LOG` says otherwise.
pub const DEFAULT_FILTER: &str = "partner_operator=debug,partner_sandbox=info,kube=warn";

/// What goes to the buffer [`assert_not_logged`] reads: everything the operator, the sandbox
/// and kube say.
const SECRETS_FILTER: &str = "partner_operator=debug,partner_sandbox=debug,kube=debug";

/// Whether a test called [`capture_for_secrets`]: from then on the buffer takes the logs.
pub(super) static SECRETS_CAPTURED: AtomicBool = AtomicBool::new(false);

/// Installs, once per test binary, a subscriber that writes through libtest's capture
/// (`with_test_writer`): each line lands in the output of the test whose thread (or whose
/// runtime's worker thread) logged it. The operator's own `telemetry::init` then keeps it.
pub fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        let to_test_output = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(filter);
        let to_buffer = tracing_subscriber::fmt::layer()
            .with_writer(|| LogBuffer)
            .with_ansi(false)
            .with_filter(
                EnvFilter::new(SECRETS_FILTER)
                    .and(filter_fn(|_| SECRETS_CAPTURED.load(Ordering::Relaxed))),
            );
        let _ = tracing_subscriber::registry()
            .with(to_test_output)
            .with(to_buffer)
            .try_init();
    });
}

/// Everything the tests of a binary logged since one called [`capture_for_secrets`], for
/// [`assert_not_logged`].
pub(super) static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

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
