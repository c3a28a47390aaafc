//! Named places where the operator can be made to die, for crash-safety tests.
//!
//! Off unless `PARTNER_OPERATOR_CRASH_POINTS` is set (read once) to a comma-separated list of
//! `point=probability`, e.g. `after-send=0.2,after-status-write=0.1`: at each pass through a
//! listed point the process aborts with that probability, as a SIGKILL at that instant would
//! end it. The chaos test (`tests/external/chaos.rs`) kills the operator at random times and,
//! through these, exactly where a crash does the most harm:
//! - `after-status-write`: a status is written, the tenant write or email it plans is not done;
//! - `after-send`: the SMTP server accepted an email, its delivery is not recorded.
//!
//! (A crash between recording an email's intent and sending it is `after-status-write` too:
//! the intent is written with the status that plans it.)

use std::collections::HashMap;
use std::sync::LazyLock;

/// The environment variable that turns crash points on.
pub const ENV: &str = "PARTNER_OPERATOR_CRASH_POINTS";

static POINTS: LazyLock<HashMap<String, f64>> = LazyLock::new(|| {
    std::env::var(ENV)
        .map(|value| parse(&value))
        .unwrap_or_default()
});

fn parse(value: &str) -> HashMap<String, f64> {
    value
        .split(',')
        .filter_map(|item| {
            let (name, probability) = item.trim().split_once('=')?;
            Some((name.to_string(), probability.parse().ok()?))
        })
        .collect()
}

/// Passes through the crash point `name`: aborts the process if it is on and the dice say so.
pub fn pass(name: &str) {
    if let Some(probability) = POINTS.get(name)
        && rand::random::<f64>() < *probability
    {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn points_and_probabilities_are_read_and_nonsense_is_skipped() {
        let points = super::parse("after-send=0.5, after-status-write=1,broken,x=y");
        assert_eq!(points.len(), 2);
        assert_eq!(points["after-send"], 0.5);
        assert_eq!(points["after-status-write"], 1.0);
        // Without the variable set, passing is a no-op.
        super::pass("after-send");
    }
}
