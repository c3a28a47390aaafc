//! The chart's Grafana dashboard and alerting rules, as Helm renders them: every metric their
//! queries name is one the operator serves (read from the metrics registry's own exposition),
//! and `promtool test rules` (Prometheus' own evaluator) proves each alert fires when it should
//! and stays quiet when it should not (`tests/prometheus/rules_test.yaml`).

use crate::support;

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value;
use support::helm;
use support::promtool::promtool_ok;

const RELEASE: &str = "po";
const NAMESPACE: &str = "partner-operator";

/// The chart rendered by the stock `helm` CLI with the dashboard and the rules enabled.
fn rendered() -> Vec<Value> {
    let home = tempfile::tempdir().unwrap();
    helm::template(
        home.path(),
        RELEASE,
        NAMESPACE,
        &[
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
        ],
    )
}

fn of_kind(manifests: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = manifests.iter().filter(|m| m["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered");
    found[0].clone()
}

/// The dashboard's JSON, from the ConfigMap the Grafana sidecar loads.
fn dashboard(manifests: &[Value]) -> Value {
    let map = of_kind(manifests, "ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    serde_json::from_str(map["data"]["partner-operator.json"].as_str().unwrap())
        .expect("the dashboard is JSON")
}

/// Every PromQL query of the dashboard: its panels' targets and its variables' queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            queries.push(query.to_string());
        }
    }
    queries
}

/// Every rule's expression in the PrometheusRule.
fn rule_expressions(rule: &Value) -> Vec<String> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .map(|rule| rule["expr"].as_str().unwrap().to_string())
        .collect()
}

/// The metric names a PromQL query selects: identifiers that are neither functions, keywords,
/// label names (in `{…}`, `by (…)`, `on (…)` and the like) nor Grafana variables. For Grafana's
/// `label_values(METRIC, LABEL)`, the METRIC.
fn metric_names(query: &str) -> BTreeSet<String> {
    let label_values = Regex::new(r"label_values\(\s*([^,]+),[^)]*\)").unwrap();
    let strings = Regex::new(r#""(?:[^"\\]|\\.)*""#).unwrap();
    let braces = Regex::new(r"\{[^}]*\}|\[[^\]]*\]").unwrap();
    let grouping =
        Regex::new(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)").unwrap();
    let variables = Regex::new(r"\$\w+").unwrap();
    // Numbers (with a duration's unit, as after `offset`) are matched to be passed over.
    let identifier = Regex::new(r"[0-9][A-Za-z0-9_.]*|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?").unwrap();
    let keywords = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    let mut text = label_values.replace_all(query, "$1").into_owned();
    for pattern in [&strings, &braces, &grouping, &variables] {
        text = pattern.replace_all(&text, " ").into_owned();
    }
    identifier
        .captures_iter(&text)
        .filter(|c| c.get(1).is_some() && c.get(2).is_none())
        .map(|c| c[1].to_string())
        .filter(|name| !keywords.contains(&name.to_lowercase().as_str()))
        .collect()
}

/// The sample names the operator's registry serves, from its own text exposition (with a series
/// in every family): a counter's `_total`, a gauge's own name, a histogram's `_bucket`, `_sum`
/// and `_count`.
fn served_names() -> BTreeSet<String> {
    let exposition = partner_operator::metrics::Metrics::with_a_series_each().encode();
    let mut served = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "gauge" => &[""],
            "histogram" => &["_bucket", "_sum", "_count"],
            other => panic!("the operator serves a {other}, which this test does not know"),
        };
        served.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    served
}

#[test]
fn the_name_extraction_sees_what_a_query_selects() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (controller, le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))) / on (job) group_left(x) b offset 5m unless c > bool 1e3"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["a_bucket", "b", "c"].map(String::from))
    );
    assert_eq!(
        metric_names("label_values(partner_operator_partners, distributor)"),
        BTreeSet::from(["partner_operator_partners".to_string()])
    );
}

#[test]
fn the_dashboard_and_the_rules_name_only_metrics_the_operator_serves() {
    let manifests = rendered();
    let served = served_names();
    assert!(
        served.contains("partner_operator_reconciliations_total"),
        "{served:?}"
    );
    let mut queries = dashboard_queries(&dashboard(&manifests));
    queries.extend(rule_expressions(&of_kind(&manifests, "PrometheusRule")));
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no metric found in {query}");
        for name in &names {
            assert!(
                served.contains(name),
                "{name} is not served by the operator, in: {query}"
            );
        }
        used.extend(names);
    }
    // What the dashboard is for: partners, seats, emails, webhooks, reconciliation.
    for name in [
        "partner_operator_partners",
        "partner_operator_seats",
        "partner_operator_emails_sent_total",
        "partner_operator_emails_held_total",
        "partner_operator_emails_failed_total",
        "partner_operator_webhooks_pending",
        "partner_operator_webhook_attempts_failed_total",
        "partner_operator_reconcile_duration_seconds_bucket",
        "partner_operator_reconcile_errors_total",
        "partner_operator_partner_next_deadline_timestamp_seconds",
        "partner_operator_activation_rate_limited_total",
    ] {
        assert!(used.contains(name), "nothing shows {name}");
    }
}

#[test]
fn the_dashboard_and_the_rules_are_off_by_default() {
    let home = tempfile::tempdir().unwrap();
    let kinds: BTreeSet<String> = helm::template(home.path(), RELEASE, NAMESPACE, &[])
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !kinds.contains("ConfigMap") && !kinds.contains("PrometheusRule"),
        "{kinds:?}"
    );
}

#[test]
fn promtool_passes_the_rules_unit_tests_on_the_shipped_rules() {
    let rule = of_kind(&rendered(), "PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    // A PrometheusRule's spec is a Prometheus rule file.
    let rules = serde_yaml::to_string(&rule["spec"]).unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    std::fs::copy(
        support::project("tests/prometheus/rules_test.yaml"),
        dir.path().join("rules_test.yaml"),
    )
    .unwrap();
    let checked = promtool_ok(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool_ok(dir.path(), &["test", "rules", "rules_test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    // Every alert the chart ships is seen firing by some unit test.
    let tests: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("rules_test.yaml")).unwrap())
            .unwrap();
    let fired: BTreeSet<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_array().unwrap())
        .filter(|check| !check["exp_alerts"].as_array().unwrap().is_empty())
        .map(|check| check["alertname"].as_str().unwrap())
        .collect();
    for rule in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let alert = rule["alert"].as_str().unwrap();
        assert!(fired.contains(alert), "no unit test sees {alert} fire");
    }
}
