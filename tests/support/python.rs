//! The Python the tests drive: Helm's Go library (`helm-python-sdk`) and the Standard Webhooks
//! reference library (`standardwebhooks`).

use std::process::Command;
use std::sync::OnceLock;

use super::project;

/// `PARTNER_OPERATOR_PYTHON` when set (it must have both wheels), else the project's own
/// virtual environment with them (`target/test-venv`, from `hack/test-venv.sh`, which creates
/// it on first use, as `.ci/run` does up front), so `cargo test` works on a fresh machine too,
/// without installing into the machine's Python.
pub fn python() -> String {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Ok(python) = std::env::var("PARTNER_OPERATOR_PYTHON") {
                return python;
            }
            let script = project("hack/test-venv.sh");
            let output = Command::new("bash")
                .arg(&script)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("bash runs");
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().rev().find(|line| !line.trim().is_empty());
                panic!(
                    "the tests' Python wheels (helm-python-sdk, standardwebhooks) could not be \
                     installed into target/test-venv: {}; run {} to see the whole error",
                    last.unwrap_or("no output").trim(),
                    script.display()
                );
            }
            let stdout = String::from_utf8_lossy(&output.stdout);
            stdout.lines().last().unwrap_or_default().trim().to_string()
        })
        .clone()
}
