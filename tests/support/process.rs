//! The built binary as a subprocess, as a user runs it, and the stock kubectl against it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_partner-operator");

/// `partner-operator sandbox` running as a subprocess; killed when dropped.
pub struct Sandbox {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts it with a fresh state directory and waits for its kubeconfig.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(BINARY)
            .arg("sandbox")
            .arg("--state-dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            // The log goes to a file: an unread pipe would fill and stall the sandbox.
            .stderr(std::fs::File::create(dir.path().join("sandbox.log")).unwrap())
            .spawn()
            .unwrap();
        let sandbox = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sandbox.kubeconfig().exists() {
            assert!(Instant::now() < deadline, "no kubeconfig after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        sandbox
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

    /// SIGTERM, then the exit status and what was printed.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        sigterm(&self.child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stdout = String::new();
                self.child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut stdout)
                    .unwrap();
                return (status, stdout);
            }
            assert!(
                Instant::now() < deadline,
                "still running 20 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
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

/// Sends SIGTERM, as `kill` or a container runtime would.
pub fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
