//! The stock `helm` CLI (built from `helm.sh/helm/v4` by `hack/kube-assets.sh`, into the same
//! directory as kube-apiserver), for the tests that install the chart on the real server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub const CHART: &str = "charts/partner-operator";

/// `PARTNER_OPERATOR_HELM` when set, else `helm` in the assets directory (`KUBEBUILDER_ASSETS`
/// may name one without it: then what `hack/kube-assets.sh` prints, which builds it).
pub fn helm_cli() -> PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("PARTNER_OPERATOR_HELM") {
            return PathBuf::from(path);
        }
        let beside = super::servers::kube_assets().join("helm");
        if beside.is_file() {
            return beside;
        }
        let dir = super::servers::run_kube_assets_script().unwrap_or_else(|why| panic!("{why}"));
        let helm = dir.join("helm");
        assert!(helm.is_file(), "hack/kube-assets.sh built no helm");
        helm
    })
    .clone()
}

/// Runs `helm ARGS` from the project's directory, with its own config and cache under `home`
/// (so nothing of the machine's Helm setup is read or written).
pub fn helm(home: &Path, args: &[&str]) -> Output {
    Command::new(helm_cli())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(args)
        .output()
        .expect("helm runs")
}

/// Fails with helm's output unless it succeeded; returns its stdout.
pub fn helm_ok(home: &Path, args: &[&str]) -> String {
    let output = helm(home, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "helm {}: {stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `helm template RELEASE CHART -n NAMESPACE EXTRA...`, parsed (CRDs not included).
pub fn template(home: &Path, release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", release, CHART, "--namespace", namespace];
    args.extend_from_slice(extra);
    let text = helm_ok(home, &args);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|value: &Value| !value.is_null())
        .collect()
}
