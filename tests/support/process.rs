//! The built binary as a subprocess, as a user runs it, and the stock kubectl against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::servers::{Server, kube_assets};
use super::{Patience, Seen, eventually_blocking};

pub const BINARY: &str = env!("CARGO_BIN_EXE_partner-operator");

/// `partner-operator sandbox` running as a subprocess; killed when dropped.
pub struct Sandbox {
    pub child: Child,
    pub dir: tempfile::TempDir,
    /// What [`Sandbox::summary`] has read of its stdout so far.
    pub(super) printed: String,
}

impl Sandbox {
    /// Starts it with a fresh state directory and waits for its kubeconfig.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on(Server::Sandbox, extra)
    }

    /// As [`Sandbox::start`], on the embedded API server or, with `--kube-apiserver`, on the
    /// real one.
    pub fn start_on(server: Server, extra: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), server, extra)
    }

    /// As [`Sandbox::start_on`], with `dir` as its state directory (e.g. one an earlier sandbox
    /// used).
    pub fn start_in(dir: tempfile::TempDir, server: Server, extra: &[&str]) -> Self {
        let mut command = Command::new(BINARY);
        command.arg("sandbox").arg("--state-dir").arg(dir.path());
        let patience = match server {
            Server::Sandbox => Patience::SANDBOX_START,
            Server::Kube => {
                command.arg("--kube-apiserver").arg(kube_assets());
                Patience::CONTROL_PLANE_START
            }
        };
        // Many sandboxes run at once: the webhook receiver takes any free port unless the test
        // names one (the examples' Distributor delivers to the default; see
        // [`Sandbox::webhooks_url`]).
        if !extra.contains(&"--webhook-port") {
            command.args(["--webhook-port", "0"]);
        }
        let child = command
            .args(extra)
            .stdout(Stdio::piped())
            // The log goes to a file: an unread pipe would fill and stall the sandbox.
            .stderr(std::fs::File::create(dir.path().join("sandbox.log")).unwrap())
            .spawn()
            .unwrap();
        let mut sandbox = Self {
            child,
            dir,
            printed: String::new(),
        };
        eventually_blocking("the sandbox's kubeconfig", patience, || {
            if let Some(status) = sandbox.child.try_wait().unwrap() {
                panic!("the sandbox exited ({status}): {}", sandbox.log());
            }
            if sandbox.kubeconfig().exists() {
                Ok(())
            } else {
                Err(Seen(sandbox.log()))
            }
        });
        sandbox
    }

    /// The summary the sandbox prints at start, up to its `stop` line (it is printed once the
    /// kubeconfig is written).
    pub fn summary(&mut self) -> String {
        if !self.printed.contains("\nstop ") {
            let mut reader = BufReader::new(self.child.stdout.as_mut().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    let log = std::fs::read_to_string(self.dir.path().join("sandbox.log"));
                    panic!("the sandbox closed its stdout: {}\n{log:?}", self.printed);
                }
                self.printed.push_str(&line);
                if line.starts_with("stop ") {
                    break;
                }
            }
        }
        self.printed.clone()
    }

    /// What the sandbox logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sandbox.log")).unwrap_or_default()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .unwrap()
    }

    /// `kubectl wait` until every example Partner is Ready.
    pub fn wait_for_ready_examples(&self) {
        stdout(&self.kubectl(&[
            "wait",
            "--for=condition=Ready",
            "partners",
            "--all",
            "-n",
            "northwind-partners",
            "--timeout=60s",
        ]));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // A failing test shows what the sandbox logged, with its other output (libtest prints
        // it with the failure only).
        if std::thread::panicking() {
            eprintln!(
                "--- the end of the sandbox's log ---\n{}",
                super::last_lines(&self.log(), 200)
            );
        }
    }
}

/// kubectl's stdout, after asserting it succeeded.
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The project's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Runs each named `fn(Server)` (a test that blocks on subprocesses) as two tests,
/// `<name>::sandbox` and `<name>::kube_apiserver`.
#[macro_export]
macro_rules! on_both_servers_blocking {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sandbox() {
                super::$name($crate::support::Server::Sandbox)
            }
            #[test]
            fn kube_apiserver() {
                super::$name($crate::support::Server::Kube)
            }
        }
    )*};
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
