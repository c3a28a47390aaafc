//! The differential fidelity suite: every API behaviour the operator, kubectl, Helm and the tests
//! rely on, run against the embedded sandbox server and the real kube-apiserver, comparing the
//! status codes, reasons and fields that matter (never timestamps, uids or resourceVersions).
//!
//! Each behaviour is a probe: an async function that talks raw HTTP to a server and returns a
//! comparable JSON value. A probe either must give the same value on both servers, or is a known
//! divergence, listed in `docs/sandbox-fidelity.md`, whose test asserts the servers still differ:
//! fixing one forces the document to change.

mod apply;
mod apply_lists;
mod builtins;
mod crds;
mod crud;
mod deletion;
mod discovery;
mod gaps;
mod http;
mod kinds;
mod lists;
mod managed_fields;
mod namespaces;
mod protobuf;
mod schemas;
mod validation;
mod watch;
mod writes;

use apply::*;
use apply_lists::*;
use builtins::*;
use crds::*;
use crud::*;
use deletion::*;
use discovery::*;
use gaps::*;
use http::*;
use kinds::json_patch_failed_test;
use lists::*;
use managed_fields::*;
use namespaces::*;
use protobuf::*;
use schemas::*;
use validation::*;
use watch::*;
use writes::*;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::http::{Method, Request};
use kube::Client;
use partner_operator::clock::Clock;
use serde_json::{Value, json};

use crate::support::{Backend, Patience, Server, within};

// ---------------------------------------------------------------------------------------------
// The probes
// ---------------------------------------------------------------------------------------------

type ProbeFuture = Pin<Box<dyn Future<Output = Value> + Send>>;

/// One behaviour: what it is called, and (if the sandbox still differs) the divergence's id.
struct Probe {
    id: String,
    known_divergence: Option<&'static str>,
    run: Box<dyn Fn(Http, String) -> ProbeFuture + Send + Sync>,
}

macro_rules! probes {
    ($($id:ident $(= $known:literal)?),* $(,)?) => {
        vec![$(Probe {
            id: stringify!($id).to_string(),
            known_divergence: probes!(@known $($known)?),
            run: Box::new(|http, ns| Box::pin($id(http, ns))),
        }),*]
    };
    (@known) => { None };
    (@known $known:literal) => { Some($known) };
}

/// Divergences that remain, as listed in `docs/sandbox-fidelity.md`.
fn all_probes() -> Vec<Probe> {
    let mut probes = named_probes();
    probes.extend(kinds::every_served_kind());
    probes
}

/// The behaviours probed one function each.
fn named_probes() -> Vec<Probe> {
    probes![
        crud_and_optimistic_concurrency,
        create_conflicts_and_missing_targets,
        generate_name,
        status_dropped_on_create_custom_resource,
        status_dropped_on_create_builtin,
        invalid_names,
        invalid_labels_and_annotations,
        invalid_labels_on_custom_resources,
        admission_messages,
        server_side_apply_conflicts_and_force,
        server_side_apply_managed_fields,
        server_side_apply_is_idempotent,
        server_side_apply_on_status,
        server_side_apply_atomic_lists,
        create_with_server_owned_fields,
        updates_of_custom_resources,
        merge_json_and_strategic_patches,
        status_subresource_and_generation,
        finalizers_and_deletion,
        delete_preconditions,
        namespace_termination,
        list_chunking,
        selectors,
        unsupported_field_selector,
        watch_events_and_filters,
        watch_bookmarks_never_run_ahead,
        watch_too_old_resource_version,
        watch_initial_events_bookmark,
        watch_as_table,
        get_and_list_as_table,
        built_in_tables,
        discovery,
        discovery_of_unserved_subresources = "unserved-subresources",
        openapi_v3,
        dry_run,
        field_validation_custom_resource,
        field_validation_builtin,
        events_in_both_apis,
        event_series_patched_through_events_api,
        chart_kinds,
        built_in_defaults = "builtin-defaults",
        crd_rule_cost_budget = "cel-cost-budget",
        defaults_owned_by_the_creator,
        garbage_collection,
        leases,
        secrets,
        immutable_config_maps,
        crd_updates_and_removal,
        apply_requires_field_manager,
        delete_collection,
        protobuf_request_body,
        protobuf_secret_create_and_update,
        table_pages,
        table_include_object,
        reads_at_a_future_version,
        version,
        watch_start_versions,
        watch_bookmarks_when_allowed,
        watch_object_leaving_a_selector,
        delete_orphaning_dependents,
        delete_in_the_foreground,
        delete_with_invalid_options,
        dependents_of_absent_owners,
        delete_answers,
        generation_on_deletion,
        namespace_name_label,
        undeletable_namespaces,
        list_version_options,
        list_at_an_exact_past_version,
        continued_lists_are_a_snapshot,
        more_built_in_tables,
        ssa_shared_field_ownership,
        managed_fields_reset,
        nulls_in_custom_resources,
        crd_untyped_field,
        crd_untyped_list_items,
        crd_root_not_an_object,
        crd_exempt_untyped_fields,
        crd_rule_not_compiling,
        crd_nested_rule_not_compiling,
        crd_version_schema_refused,
        cel_rule_messages,
        namespace_terminating_conditions,
        unserved_kinds = "unserved-kinds",
        duplicate_json_keys,
        managed_fields_own_their_maps,
        ssa_shared_field_dropped_by_both,
        ssa_fields_taken_or_removed_by_updates,
        managed_fields_reset_with_an_empty_entry,
        managed_fields_migration,
        managed_fields_written_badly,
        apply_with_managed_fields,
        managed_fields_of_an_apply,
        apply_agreeing_without_a_change,
        managed_fields_order,
        update_managers_capped,
        apply_conflict_messages,
        ssa_shared_list_items,
        apply_of_nothing,
        create_with_managed_fields,
        apply_conflicts_on_status,
        managed_fields_of_ports,
        ssa_sets_merge_as_sets,
        server_side_apply_after_client_side,
        ssa_list_types_of_custom_resources,
        managed_fields_of_mounts,
        ssa_atomic_subjects,
        null_with_a_default,
        null_without_a_default,
        null_where_nullable,
        null_object_with_defaults_inside,
        null_list_item_with_a_default,
        null_list_item_without_a_default,
        whole_float_in_an_integer,
        whole_float_read_by_a_rule = "cel-whole-floats",
        fraction_in_an_integer,
        whole_float_in_a_number,
        fraction_in_a_number,
        string_in_an_integer,
        rules_run_after_a_pattern_error,
        rules_run_after_a_bound_error,
        rules_skipped_after_an_enum_error,
        rules_skipped_after_a_type_error,
        rule_fails_alone,
        json_patch_failed_test = "json-patch-test-message",
        rule_on_an_unchanged_value = "cel-ratcheting",
        deployment_scale,
    ]
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// Runs every probe on `server`, each in a namespace of its own: `(id, value)`.
async fn run_all<'p>(backend: &Backend, probes: &'p [Probe]) -> Vec<(&'p str, Value)> {
    let http = Http {
        client: backend.client(),
        once: client_without_retries(&backend.kubeconfig_yaml()).await,
    };
    let mut results = vec![];
    for chunk in probes.chunks(4) {
        let runs = chunk.iter().map(|probe| {
            let http = http.clone();
            async move {
                let ns = format!("fid-{}", probe.id.replace('_', "-"));
                let created = http
                    .post("/api/v1/namespaces", json!({"metadata": {"name": ns}}))
                    .await;
                assert_eq!(created.code, 201, "namespace {ns}: {:?}", created.body);
                let value = tokio::time::timeout(Duration::from_secs(120), (probe.run)(http, ns))
                    .await
                    .unwrap_or_else(|_| json!("timed out"));
                (probe.id.as_str(), value)
            }
        });
        results.extend(futures::future::join_all(runs).await);
    }
    results
}

/// A client that answers with what the server said: kube-rs retries a 429, 503 or 504 up to
/// 15 times, following its `Retry-After`, and a probe of those answers must see them.
async fn client_without_retries(kubeconfig: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("a kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a usable kubeconfig");
    config.default_retry = false;
    Client::try_from(config).expect("a client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sandbox_behaves_as_kube_apiserver() {
    let probes = all_probes();
    let (sandbox, kube) = tokio::join!(
        Backend::start(Server::Sandbox, Clock::system()),
        Backend::start(Server::Kube, Clock::system())
    );
    let (on_sandbox, on_kube) = tokio::join!(run_all(&sandbox, &probes), run_all(&kube, &probes));
    let mut failures = vec![];
    let mut same = 0;
    let mut differ = 0;
    for ((probe, (_, s)), (_, k)) in probes.iter().zip(&on_sandbox).zip(&on_kube) {
        let equal = s == k;
        if equal {
            same += 1;
        } else {
            differ += 1;
        }
        match (probe.known_divergence, equal) {
            (None, false) => failures.push(format!(
                "{}: the servers differ\n  kube-apiserver: {k}\n  sandbox:        {s}",
                probe.id
            )),
            (Some(id), true) => failures.push(format!(
                "{}: known divergence {id} is gone (both: {s}); unmark the probe and remove it from docs/sandbox-fidelity.md",
                probe.id
            )),
            (Some(id), false) => eprintln!(
                "{}: known divergence {id}\n  kube-apiserver: {k}\n  sandbox:        {s}",
                probe.id
            ),
            _ => {}
        }
    }
    eprintln!(
        "{} behaviours compared: {same} the same, {differ} different",
        probes.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let doc = read_doc();
    assert!(
        doc.contains(&format!("Behaviours compared: {}", probes.len())),
        "docs/sandbox-fidelity.md must say `Behaviours compared: {}`",
        probes.len()
    );
    assert!(
        doc.contains(&format!("Still different: {differ}")),
        "docs/sandbox-fidelity.md must say `Still different: {differ}`"
    );
}

fn read_doc() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/sandbox-fidelity.md"
    ))
    .expect("docs/sandbox-fidelity.md exists")
}

/// The document lists exactly the known divergences the suite checks, each once.
#[test]
fn the_document_lists_exactly_the_known_divergences() {
    let known: BTreeSet<&str> = all_probes()
        .iter()
        .filter_map(|p| p.known_divergence)
        .collect();
    let doc = read_doc();
    let listed: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        listed.len(),
        listed_set.len(),
        "an id is listed twice: {listed:?}"
    );
    assert_eq!(
        listed_set, known,
        "docs/sandbox-fidelity.md's table and the probes marked as known divergences"
    );
    let probes = all_probes();
    let ids: Vec<&str> = probes.iter().map(|p| p.id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "probe ids are unique");
}
