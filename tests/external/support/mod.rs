//! The part of the tests' ground (`tests/support/`) the external tools' tests stand on, and
//! what only they use: Helm, the whole-trial scenario, a subprocess's log shown on failure.

#[path = "../../support/harness.rs"]
pub mod harness;
pub mod helm;
#[path = "../../support/http.rs"]
pub mod http;
#[path = "../../support/logs.rs"]
pub mod logs;
#[path = "../../support/metrics.rs"]
pub mod metrics;
#[path = "../../support/process.rs"]
pub mod process;
pub mod promtool;
#[path = "../../support/python.rs"]
pub mod python;
#[path = "../../support/read.rs"]
pub mod read;
pub mod reader;
pub mod scenarios;
#[path = "../../support/servers.rs"]
pub mod servers;
#[path = "../../support/wait.rs"]
pub mod wait;
pub mod webdriver;
#[path = "../../support/webhooks.rs"]
pub mod webhooks;

pub use harness::{Harness, PORTAL};
pub use read::{
    activation_link, activation_token, condition, events, is_ready, is_ready_at, last_lines, level,
    project,
};
pub use servers::{Backend, Server};
pub use wait::{Patience, Seen, eventually, eventually_blocking};

/// The typed names the tests compare with: subscription levels, condition types, condition
/// reasons and Event reasons.
pub use partner_operator::api::{SubscriptionLevel, types};
pub use partner_operator::lifecycle::{EventReason, reasons};
/// The Partners and Distributors every suite applies.
pub use partner_operator::testing::{distributor, partner};

use std::path::PathBuf;

use process::Sandbox;

impl Sandbox {
    /// Where the sandbox's webhook receiver takes deliveries, as its summary says.
    pub fn webhooks_url(&mut self) -> String {
        let summary = self.summary();
        summary
            .lines()
            .find_map(|line| line.strip_prefix("webhooks"))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no webhooks line in {summary}"))
            .to_string()
    }
}

/// A log file whose end a failing test shows (printed when dropped while panicking, which
/// libtest prints with the failure only). Declare it after the directory holding the file.
pub struct LogOnFailure(pub PathBuf);

impl Drop for LogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!(
                "--- the end of {} ---\n{}",
                self.0.display(),
                last_lines(&log, 200)
            );
        }
    }
}
