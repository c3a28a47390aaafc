//! `crds/` must hold exactly what `partner-operator crds` prints, so that `kubectl apply -f crds/`
//! and the Helm chart install the API the binary was built with.

#[test]
fn crds_directory_equals_generated_crds() {
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/partner-operator.yaml"
    ))
    .expect("crds/partner-operator.yaml exists");
    let generated = partner_operator::api::crds_yaml();
    assert!(
        on_disk == generated,
        "crds/partner-operator.yaml is stale: run `cargo run -- crds > crds/partner-operator.yaml`"
    );
}

#[test]
fn binary_prints_the_crds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partner-operator"))
        .arg("crds")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        partner_operator::api::crds_yaml()
    );
}
