//! Dry runs and field validation, on custom and built-in resources.

use super::*;

pub(super) async fn dry_run(http: Http, ns: String) -> Value {
    let created = http
        .post(
            &format!("{}?dryRun=All", cms(&ns)),
            cm("dry", json!({"k": "v"})),
        )
        .await;
    let after_create = http.get(&format!("{}/dry", cms(&ns))).await;
    http.post(&cms(&ns), cm("real", json!({"k": "v"}))).await;
    let path = format!("{}/real", cms(&ns));
    let patched = http
        .patch(
            &format!("{path}?dryRun=All"),
            MERGE,
            json!({"data": {"k": "w"}}),
        )
        .await;
    let deleted = http
        .call(
            Method::DELETE,
            &format!("{path}?dryRun=All"),
            "application/json",
            "application/json",
            None,
        )
        .await;
    let after = http.get(&path).await;
    let invalid = http
        .post(
            &format!("{}?dryRun=All", partners(&ns)),
            json!({"metadata": {"name": "p"}, "spec": {}}),
        )
        .await;
    let bad_value = http
        .post(
            &format!("{}?dryRun=Bogus", cms(&ns)),
            cm("bogus", json!({})),
        )
        .await;
    json!({
        "create": [created.outcome(), created.body["data"], created.body["metadata"]["uid"].is_string()],
        "afterCreate": after_create.outcome(), "patch": [patched.outcome(), patched.body["data"]],
        "delete": deleted.outcome(), "after": [after.outcome(), after.body["data"]],
        "invalid": invalid.outcome(), "unknownDryRunValue": bad_value.outcome(),
    })
}

pub(super) fn partner_with_unknown(name: &str) -> Value {
    let mut p = partner(name);
    p["spec"]["unknownField"] = json!(1);
    p["metadata"]["unknownMeta"] = json!(1);
    p
}

pub(super) async fn field_validation_custom_resource(http: Http, ns: String) -> Value {
    let base = partners(&ns);
    let strict = http
        .post(
            &format!("{base}?fieldValidation=Strict"),
            partner_with_unknown("s"),
        )
        .await;
    let warn = http
        .post(
            &format!("{base}?fieldValidation=Warn"),
            partner_with_unknown("w"),
        )
        .await;
    let default = http.post(&base, partner_with_unknown("d")).await;
    let ignore = http
        .post(
            &format!("{base}?fieldValidation=Ignore"),
            partner_with_unknown("i"),
        )
        .await;
    let summary = |r: &Reply| {
        json!([
            r.outcome(),
            r.warnings.len(),
            r.body["spec"].get("unknownField").is_some()
        ])
    };
    json!({
        "strict": [strict.outcome(), strict.body["message"]],
        "warn": summary(&warn), "default": summary(&default), "ignore": summary(&ignore),
        "bogus": http.post(&format!("{base}?fieldValidation=Bogus"), partner("b")).await.outcome(),
    })
}

pub(super) async fn field_validation_builtin(http: Http, ns: String) -> Value {
    let with_unknown = |name: &str| {
        let mut object = cm(name, json!({}));
        object["spec"] = json!({"x": 1});
        object
    };
    let strict = http
        .post(
            &format!("{}?fieldValidation=Strict", cms(&ns)),
            with_unknown("s"),
        )
        .await;
    let default = http.post(&cms(&ns), with_unknown("d")).await;
    json!({
        "strict": [strict.outcome(), strict.body["message"]],
        "default": [default.outcome(), default.warnings.len(), default.body.get("spec").is_some()],
    })
}

/// The message of a CEL rule that fails: the value, then the rule's message.
pub(super) async fn cel_rule_messages(http: Http, ns: String) -> Value {
    let mut object = partner("cel");
    object["spec"]["organizationName"] = json!("   ");
    let created = http.post(&partners(&ns), object).await;
    json!([created.outcome(), created.body["message"]])
}

/// A JSON body that gives a key twice: under `fieldValidation=Strict` kube-apiserver refuses
/// it naming the field; otherwise the last value is kept.
pub(super) async fn duplicate_json_keys(http: Http, ns: String) -> Value {
    let body = |name: &str| {
        Value::String(format!(
            r#"{{"metadata":{{"name":"{name}"}},"data":{{"k":"1","k":"2"}}}}"#
        ))
    };
    let post = |query: &'static str, name: &'static str| {
        let http = http.clone();
        let path = format!("{}{query}", cms(&ns));
        let body = body(name);
        async move {
            let reply = http
                .call(
                    Method::POST,
                    &path,
                    "application/json",
                    "application/json",
                    Some(&body),
                )
                .await;
            json!([reply.outcome(), reply.body["data"], reply.body["message"]])
        }
    };
    json!({"strict": post("?fieldValidation=Strict", "strict").await,
        "default": post("", "lenient").await})
}
