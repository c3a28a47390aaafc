//! Prometheus' `promtool`, built from its upstream Go module by `hack/promtool.sh` (once per pin
//! and machine, cached like the control plane), for the tests of the chart's alerting rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `PARTNER_OPERATOR_PROMTOOL` when set, else what `hack/promtool.sh` prints (it builds promtool
/// when missing). Panics, naming the command, when promtool cannot be had: a test that needs it
/// fails rather than skips.
pub fn promtool() -> PathBuf {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("PARTNER_OPERATOR_PROMTOOL") {
                return PathBuf::from(path);
            }
            build().unwrap_or_else(|why| panic!("{why}"))
        })
        .clone()
}

/// Runs `hack/promtool.sh`; on failure, one line saying what to run, then its output.
fn build() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/promtool.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("promtool cannot be built: `bash {}`: {e}", script.display()))?;
    let progress = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "promtool cannot be built: `{}` failed ({}); run it to see why\n{progress}",
            script.display(),
            output.status
        ));
    }
    eprint!("{progress}");
    let path = PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    );
    if !path.is_file() {
        return Err(format!(
            "promtool cannot be built: `{}` printed no binary ({})",
            script.display(),
            path.display()
        ));
    }
    Ok(path)
}

/// Runs `promtool ARGS` in `dir`; fails with its output unless it succeeded.
pub fn promtool_ok(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(promtool())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("promtool runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "promtool {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
