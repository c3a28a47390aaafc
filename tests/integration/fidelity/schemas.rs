//! How a custom resource's values meet its schema: `null`s (a chart rendering an empty value),
//! numbers with a fraction of zero (a template's arithmetic), and which schema errors still let
//! the CEL rules run.

use super::*;

const GAUGES_CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// Installs the `Gauge` CRD (once, whichever probe comes first) and waits until it is served:
/// the collection path of gauges in `ns`.
async fn gauges(http: &Http, ns: &str) -> String {
    let crd = fidelity_crd(
        "Gauge",
        None,
        json!({
            "count": {"type": "integer", "maximum": 1000},
            "ratio": {"type": "number"},
            "size": {"type": "integer", "default": 3},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "mode": {"type": "string", "enum": ["A", "B"]},
            "note": {"type": "string", "nullable": true},
            "tags": {"type": "array", "items": {"type": "string"}},
            "sizes": {"type": "array", "items": {"type": "integer", "default": 1}},
            "limits": {"type": "object", "properties": {"max": {"type": "integer", "default": 9}}},
        }),
    );
    let mut crd = crd;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = json!([
        {"rule": "!has(self.count) || self.count < 100", "message": "count must be below 100"}
    ]);
    http.post(GAUGES_CRD, crd).await;
    let path = format!("/apis/fidelity.example/v1/namespaces/{ns}/gauges");
    http.until(&path, Patience::API_SERVER, |r| r.code == 200)
        .await;
    path
}

/// Creates a gauge whose spec is `spec`: its outcome, the stored spec and the error message.
async fn gauge(http: Http, ns: String, spec: Value) -> Value {
    let path = gauges(&http, &ns).await;
    let created = http
        .post(
            &path,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Gauge", "metadata": {"name": "g"}, "spec": spec}),
        )
        .await;
    let stored = http.get(&format!("{path}/g")).await;
    json!({
        "outcome": created.outcome(),
        "spec": serde_json::to_string(&stored.body["spec"]).unwrap(),
        "message": created.body["message"],
    })
}

pub(super) async fn null_with_a_default(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"size": null})).await
}

pub(super) async fn null_without_a_default(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"name": null, "count": null, "tags": null})).await
}

pub(super) async fn null_where_nullable(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"note": null})).await
}

pub(super) async fn null_object_with_defaults_inside(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"limits": null})).await
}

pub(super) async fn null_list_item_with_a_default(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"sizes": [2, null]})).await
}

pub(super) async fn null_list_item_without_a_default(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"tags": ["a", null]})).await
}

pub(super) async fn whole_float_in_an_integer(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"size": 5.0, "sizes": [4.0]})).await
}

/// A whole float in an integer field a CEL rule reads: the rule sees a float.
pub(super) async fn whole_float_read_by_a_rule(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"count": 2.0})).await
}

pub(super) async fn fraction_in_an_integer(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"count": 2.5})).await
}

pub(super) async fn whole_float_in_a_number(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"ratio": 1.0})).await
}

pub(super) async fn fraction_in_a_number(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"ratio": 0.25})).await
}

pub(super) async fn string_in_an_integer(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"count": "2"})).await
}

/// A pattern error does not keep the CEL rules from running: both are reported.
pub(super) async fn rules_run_after_a_pattern_error(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"name": "BAD", "count": 200})).await
}

/// A bound error (`maximum`) does not either.
pub(super) async fn rules_run_after_a_bound_error(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"count": 5000})).await
}

/// A value outside an `enum` does: the rules are not checked, and the server says so.
pub(super) async fn rules_skipped_after_an_enum_error(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"mode": "C", "count": 200})).await
}

/// A value of the wrong type does too.
pub(super) async fn rules_skipped_after_a_type_error(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"name": 5, "count": 200})).await
}

/// A rule that fails alone.
pub(super) async fn rule_fails_alone(http: Http, ns: String) -> Value {
    gauge(http, ns, json!({"count": 150})).await
}

/// A `null` for a field its schema does not make nullable: kube-apiserver drops it.
pub(super) async fn nulls_in_custom_resources(http: Http, ns: String) -> Value {
    let mut object = partner("nulls");
    object["spec"]["activation"] = Value::Null;
    let created = http.post(&partners(&ns), object).await;
    json!([
        created.outcome(),
        created.body["spec"].get("activation").is_some()
    ])
}
