//! CustomResourceDefinitions: defaults, CEL cost budgets, updates and removal.

use super::*;

/// A namespaced CRD of group `fidelity.example`, version `v1`, for `kind` (plural: the kind in
/// lower case with an `s`), whose `spec` has `spec_properties`, with `columns` as its printer
/// columns when given.
pub(super) fn fidelity_crd(kind: &str, columns: Option<Value>, spec_properties: Value) -> Value {
    let singular = kind.to_lowercase();
    let plural = format!("{singular}s");
    let mut version = json!({
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": spec_properties}}}},
    });
    if let Some(columns) = columns {
        version["additionalPrinterColumns"] = columns;
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.fidelity.example")},
        "spec": {
            "group": "fidelity.example", "scope": "Namespaced",
            "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List")},
            "versions": [version],
        },
    })
}

pub(super) fn widget_crd(columns: Value, spec_properties: Value) -> Value {
    fidelity_crd("Widget", Some(columns), spec_properties)
}

/// A custom resource created without a field its schema defaults: whether the creating field
/// manager's `managedFields` entry owns the defaulted field.
pub(super) async fn defaults_owned_by_the_creator(http: Http, ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = fidelity_crd(
        "Doodad",
        None,
        json!({
            "size": {"type": "integer", "default": 3},
            "color": {"type": "string"},
        }),
    );
    let created_crd = http.post(crds, crd).await;
    let doodads = format!("/apis/fidelity.example/v1/namespaces/{ns}/doodads");
    http.until(&doodads, Patience::API_SERVER, |r| r.code == 200)
        .await;
    let created = http
        .post(
            &format!("{doodads}?fieldManager=creator"),
            json!({"apiVersion": "fidelity.example/v1", "kind": "Doodad", "metadata": {"name": "d"}, "spec": {"color": "red"}}),
        )
        .await;
    let owned = |field: &str| {
        created.body["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["manager"] == "creator")
            .any(|entry| !entry["fieldsV1"]["f:spec"][field].is_null())
    };
    let answer = json!({
        "crd": created_crd.code,
        "create": created.code,
        "size": created.body["spec"]["size"],
        "given field owned": owned("f:color"),
        "defaulted field owned": owned("f:size"),
    });
    http.delete(&format!("{crds}/doodads.fidelity.example"))
        .await;
    answer
}

/// A CRD whose CEL rule could cost too much on the largest object its schema allows: a
/// uniqueness check over 1,000 strings of up to 253 characters.
pub(super) async fn crd_rule_cost_budget(http: Http, _ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = fidelity_crd(
        "Gadget",
        None,
        json!({"names": {
            "type": "array", "maxItems": 1000,
            "items": {"type": "string", "maxLength": 253},
            "x-kubernetes-validations": [{"rule": "self.all(x, self.exists_one(y, y == x))"}],
        }}),
    );
    let created = http.post(crds, crd).await;
    if created.code == 201 {
        http.delete(&format!("{crds}/gadgets.fidelity.example"))
            .await;
    }
    json!({"create": created.code})
}

pub(super) async fn crd_updates_and_removal(http: Http, ns: String) -> Value {
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd_path = format!("{crds}/widgets.fidelity.example");
    let widgets = format!("/apis/fidelity.example/v1/namespaces/{ns}/widgets");
    let created = http
        .post(
            crds,
            widget_crd(json!([]), json!({"size": {"type": "integer"}})),
        )
        .await;
    let served = http
        .until(&widgets, Patience::API_SERVER, |r| r.code == 200)
        .await;
    let widget = http
        .post(
            &widgets,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3, "color": "red"}}),
        )
        .await;
    let columns_of = |r: &Reply| {
        json!(
            r.body["columnDefinitions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["name"].clone())
                .collect::<Vec<_>>()
        )
    };
    let before = http.get_as(&widgets, TABLE).await;
    let current = http.get(&crd_path).await;
    let mut updated = widget_crd(
        json!([{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]),
        json!({"size": {"type": "integer", "maximum": 10}, "color": {"type": "string", "enum": ["red", "blue"]}}),
    );
    updated["metadata"]["resourceVersion"] = current.body["metadata"]["resourceVersion"].clone();
    let update = http.put(&crd_path, updated).await;
    let after = http.get(&widgets).await;
    let table = within(Patience::API_SERVER, || async {
        let table = http.get_as(&widgets, TABLE).await;
        if columns_of(&table).to_string().contains("Size") {
            Ok(table)
        } else {
            Err(table)
        }
    })
    .await
    .unwrap_or_else(|last| last);
    let too_big = http
        .post(
            &widgets,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Widget", "metadata": {"name": "big"}, "spec": {"size": 11, "color": "green"}}),
        )
        .await;
    let kept = http
        .post(
            &widgets,
            json!({"apiVersion": "fidelity.example/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"color": "blue"}}),
        )
        .await;
    let deleted = http.delete(&crd_path).await;
    let gone = http
        .until(&widgets, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let crd_gone = http
        .until(&crd_path, Patience::API_SERVER, |r| r.code == 404)
        .await;
    let recreated = http
        .post(
            crds,
            widget_crd(json!([]), json!({"size": {"type": "integer"}})),
        )
        .await;
    let empty = http
        .until(&widgets, Patience::API_SERVER, |r| r.code == 200)
        .await;
    json!({
        "create": created.outcome(), "served": served.outcome(),
        "widget": [widget.outcome(), widget.body["spec"]],
        "columnsBefore": columns_of(&before), "update": update.outcome(), "listAfter": [after.outcome(), names(&after)],
        "columnsAfter": columns_of(&table), "sizeCell": table.body["rows"][0]["cells"][1],
        "newSchema": too_big.outcome(), "newField": [kept.outcome(), kept.body["spec"]],
        "deleteCrd": deleted.outcome(), "resourceGone": gone.outcome(), "crdGone": crd_gone.outcome(),
        "recreated": recreated.outcome(), "objectsGone": [empty.outcome(), names(&empty)],
    })
}

/// A CRD of group `refused.example` whose versions have `schemas`; what creating it answers.
async fn refused_crd(http: &Http, plural: &str, schemas: &[Value]) -> Value {
    let versions: Vec<Value> = schemas
        .iter()
        .enumerate()
        .map(|(i, schema)| {
            json!({"name": format!("v{}", i + 1), "served": true, "storage": i == 0,
                "schema": {"openAPIV3Schema": schema}})
        })
        .collect();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.refused.example")},
        "spec": {"group": "refused.example", "scope": "Namespaced",
            "names": {"plural": plural, "kind": "Refused"}, "versions": versions}});
    let created = http
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        )
        .await;
    created.outcome()
}

/// A field without a `type`: the schema is not structural.
pub(super) async fn crd_untyped_field(http: Http, _ns: String) -> Value {
    let schema = json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}});
    refused_crd(&http, "untypedfields", &[schema]).await
}

/// List items without a `type`.
pub(super) async fn crd_untyped_list_items(http: Http, _ns: String) -> Value {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"maxLength": 3}}}}}});
    refused_crd(&http, "untypeditems", &[schema]).await
}

/// A root that is not an object.
pub(super) async fn crd_root_not_an_object(http: Http, _ns: String) -> Value {
    refused_crd(&http, "stringroots", &[json!({"type": "string"})]).await
}

/// Fields that keep unknown fields or take an int or a string need no `type`.
pub(super) async fn crd_exempt_untyped_fields(http: Http, _ns: String) -> Value {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": true},
        "extra": {"x-kubernetes-preserve-unknown-fields": true}}}}});
    let answer = refused_crd(&http, "exempts", &[schema]).await;
    http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/exempts.refused.example")
        .await;
    answer
}

/// A CEL rule at the root that does not compile.
pub(super) async fn crd_rule_not_compiling(http: Http, _ns: String) -> Value {
    let schema = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.nope("}]});
    refused_crd(&http, "badrules", &[schema]).await
}

/// A CEL rule deeper in the schema that does not compile, after one that does.
pub(super) async fn crd_nested_rule_not_compiling(http: Http, _ns: String) -> Value {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [{"rule": "true"}, {"rule": "self.a +"}],
        "properties": {"a": {"type": "string"}}}}});
    refused_crd(&http, "badnestedrules", &[schema]).await
}

/// Versions with schemas of their own: the error names the version's.
pub(super) async fn crd_version_schema_refused(http: Http, _ns: String) -> Value {
    let good = json!({"type": "object"});
    let bad = json!({"type": "object", "properties": {"spec": {"properties": {}}}});
    refused_crd(&http, "badversions", &[good, bad]).await
}
