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
    let filter =
        without_bodies(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)));
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

/// `filter`, with kube's client module silenced: below `error` it logs whole response bodies
/// (a list that does not decode is logged with the body of every object in it, at `warn`; an
/// error answer at `debug`), which can carry Secrets' data, users' annotations and addresses;
/// its `error` lines only repeat a failed request's class, which the operator reports itself
/// where the request was made. Added last, so `RUST_LOG` cannot turn it back on with a wider
/// directive (a directive only turns logging on: this one turns the module off, whatever the
/// rest of `filter` says, `off` included).
pub fn without_bodies(filter: EnvFilter) -> EnvFilter {
    filter.add_directive("kube_client::client=off".parse().expect("a directive"))
}

/// Whether log lines on stderr may carry colour (ANSI escape codes).
fn ansi() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn kube_clients_response_bodies_are_never_logged_at_any_level() {
        for level in [
            "trace",
            "debug",
            "info,kube=trace,kube_client::client=trace",
        ] {
            let buffer = Buffer::default();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(without_bodies(EnvFilter::new(level)))
                .with_writer(buffer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                // As kube's client logs a list it could not decode, and an error answer.
                tracing::warn!(target: "kube_client::client", "{{\"items\":[\"BODY\"]}}, Error");
                tracing::debug!(target: "kube_client::client", "Unsuccessful data error parse: BODY");
                tracing::error!(target: "kube_client::client", "failed with status 500");
                tracing::warn!(target: "partner_operator::controller", "its own line");
            });
            let logged = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
            assert!(!logged.contains("BODY"), "{level}: {logged}");
            assert!(
                !logged.contains("failed with status 500"),
                "{level}: {logged}"
            );
            assert!(logged.contains("its own line"), "{level}: {logged}");
        }
        // Nothing is turned on that the filter turned off.
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(without_bodies(EnvFilter::new("off")))
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "kube_client::client::builder", "failed with error");
        });
        assert!(buffer.0.lock().unwrap().is_empty());
    }
}
