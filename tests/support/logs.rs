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
