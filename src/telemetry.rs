//! Structured logs: JSON for log pipelines, text for people at a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    #[default]
    Text,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive (`info`,
/// `partner_operator=debug,kube=info`); `RUST_LOG`, when set, wins so a running deployment can be
/// debugged without editing its arguments. Text is coloured only when stderr is a terminal
/// (and `NO_COLOR` is unset): a log redirected to a file or a pipe carries no ANSI escape codes.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi())
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Whether log lines on stderr may carry colour (ANSI escape codes).
fn ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
