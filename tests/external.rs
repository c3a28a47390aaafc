//! Tests that drive tools from outside the project: Helm (its Go library and its CLI), RBAC on
//! the real kube-apiserver, a headless browser, the walkthrough through kubectl, and chaos
//! against the release binary. One test binary, so the suite links the project's dependencies
//! once for all of them.

#[path = "external/support/mod.rs"]
mod support;

#[path = "external/browser.rs"]
mod browser;
#[path = "external/chaos.rs"]
mod chaos;
#[path = "external/console.rs"]
mod console;
#[path = "external/e2e_walkthrough.rs"]
mod e2e_walkthrough;
#[path = "external/helm_chart.rs"]
mod helm_chart;
#[path = "external/helm_real.rs"]
mod helm_real;
#[path = "external/observability.rs"]
mod observability;
#[path = "external/rbac.rs"]
mod rbac;
