use super::*;

fn partner(uid: &str) -> Partner {
    serde_json::from_value(json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": "contoso", "namespace": "team-a", "uid": uid},
        "spec": {
            "organizationName": "P",
            "notificationEmail": "a@p.example",
            "distributorRef": {"name": "d"},
        },
    }))
    .unwrap()
}

fn namespace(owner: Option<&str>, proof: Option<&str>, terminating: bool) -> Namespace {
    serde_json::from_value(json!({
        "metadata": {
            "name": tenant_namespace_of(&partner("p-uid")),
            "uid": "ns-uid",
            "labels": owner.map(|o| json!({OWNER_UID_LABEL: o})).unwrap_or(json!({})),
            "annotations": proof.map(|p| json!({OWNERSHIP_PROOF_ANNOTATION: p})).unwrap_or(json!({})),
            "deletionTimestamp": terminating.then_some("2027-03-01T09:00:00Z"),
        },
    }))
    .unwrap()
}

#[test]
fn only_a_namespace_labelled_with_the_partners_uid_and_proven_is_its_tenant() {
    let key = OwnershipKey::from_bytes(&[b'k'; 32]).unwrap();
    let p = partner("p-uid");
    let proof = proof_of(&p, &key);
    let owned = namespace(Some("p-uid"), Some(&proof), false);
    assert_eq!(
        classify(Some(&owned), &p, &key),
        Tenant::Owned("ns-uid".into())
    );
    assert_eq!(
        classify(Some(&owned), &partner("other"), &key),
        Tenant::Taken
    );
    assert_eq!(classify(Some(&owned), &partner(""), &key), Tenant::Taken);
    // The label alone, as anyone who gets past the admission policy could set it.
    for forged in [None, Some("v1:00"), Some(&proof[..proof.len() - 2])] {
        let labelled = namespace(Some("p-uid"), forged, false);
        assert_eq!(
            classify(Some(&labelled), &p, &key),
            Tenant::Taken,
            "{forged:?}"
        );
    }
    let other_key = OwnershipKey::from_bytes(&[b'o'; 32]).unwrap();
    assert_eq!(classify(Some(&owned), &p, &other_key), Tenant::Taken);
    assert_eq!(
        classify(Some(&namespace(None, Some(&proof), false)), &p, &key),
        Tenant::Taken
    );
    let going = namespace(Some("p-uid"), Some(&proof), true);
    assert_eq!(classify(Some(&going), &p, &key), Tenant::Terminating);
    assert_eq!(
        classify(Some(&namespace(Some("p-uid"), None, true)), &p, &key),
        Tenant::Taken
    );
    assert_eq!(classify(None, &p, &key), Tenant::Absent);
}

#[test]
fn labels_of_long_names_fit_and_the_annotations_keep_them_whole() {
    let name = format!("{}.{}", "p".repeat(200), "q".repeat(52));
    let partner: Partner = serde_json::from_value(json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": name, "namespace": "ns", "uid": "p-uid"},
        "spec": {
            "organizationName": "P",
            "notificationEmail": "a@p.example",
            "distributorRef": {"name": "d".repeat(253)},
        },
    }))
    .unwrap();
    let labels = tenant_labels(&partner, "tenant-id");
    assert!(labels.values().all(|v| v.len() <= 63), "{labels:?}");
    assert_eq!(labels[OWNER_UID_LABEL], "p-uid");
    assert_eq!(labels[PARTNER_NAMESPACE_LABEL], "ns");
    assert_eq!(labels[PARTNER_NAME_LABEL], label_value(&name));
    let annotations = tenant_annotations(&partner);
    assert_eq!(annotations[PARTNER_NAME_LABEL], name);
    assert_eq!(annotations[TENANT_DISTRIBUTOR_LABEL], "d".repeat(253));
}

#[test]
fn the_entitlements_digest_covers_every_key_the_operator_writes_and_no_other() {
    let key = OwnershipKey::from_bytes(&[b'k'; 32]).unwrap();
    let p = partner("p-uid");
    let status: PartnerStatus = serde_json::from_value(json!({
        "subscriptionLevel": "Trial",
        "tenant": {"id": "t-1", "namespace": "n", "provisionedAt": "2027-03-01T09:00:00Z"},
    }))
    .unwrap();
    let written = tenant_data(&p, &status, &key).unwrap();
    let keys: Vec<&str> = written.keys().map(String::as_str).collect();
    let mut operators = ENTITLEMENTS_KEYS.to_vec();
    operators.sort_unstable();
    assert_eq!(keys, operators);

    let digest = entitlements_digest(&written);
    let mut theirs = written.clone();
    theirs.insert("addedByTheTenant".into(), "x".into());
    assert_eq!(entitlements_digest(&theirs), digest);
    for key in ENTITLEMENTS_KEYS {
        let mut changed = written.clone();
        changed.get_mut(key).unwrap().push('x');
        assert_ne!(entitlements_digest(&changed), digest, "{key}");
        let mut emptied = written.clone();
        emptied.insert(key.to_string(), String::new());
        let mut removed = written.clone();
        removed.remove(key);
        assert_ne!(
            entitlements_digest(&emptied),
            entitlements_digest(&removed),
            "{key}"
        );
    }
}
