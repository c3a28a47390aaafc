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
    // A failure is kept too: the script runs once per test binary, and every test that needs
    // the wheels fails with the same one line.
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    PYTHON
        .get_or_init(venv)
        .clone()
        .unwrap_or_else(|line| panic!("{line}"))
}

/// The venv's python, or the one line `hack/test-venv.sh` printed: what could not be
/// installed, and why.
fn venv() -> Result<String, String> {
    if let Ok(python) = std::env::var("PARTNER_OPERATOR_PYTHON") {
        return Ok(python);
    }
    let script = project("hack/test-venv.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash runs");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr.lines().rev().find(|line| !line.trim().is_empty());
        return Err(format!(
            "the tests' Python wheels: {}",
            line.unwrap_or("hack/test-venv.sh failed without a word")
                .trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.lines().last().unwrap_or_default().trim().to_string())
}
