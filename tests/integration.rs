//! The operator, its mailer, its activation service, its plugin and the sandbox, run against the
//! embedded API server and the real kube-apiserver (the harness in `support`). One test binary,
//! so the suite links the project's dependencies once for all of them.

mod support;

#[path = "integration/activation.rs"]
mod activation;
#[path = "integration/activation_doors.rs"]
mod activation_doors;
#[path = "integration/apiserver_kube.rs"]
mod apiserver_kube;
#[path = "integration/apiserver_kubectl.rs"]
mod apiserver_kubectl;
#[path = "integration/distributor_view.rs"]
mod distributor_view;
#[path = "integration/fidelity/mod.rs"]
mod fidelity;
#[path = "integration/grammar.rs"]
mod grammar;
#[path = "integration/mail.rs"]
mod mail;
#[path = "integration/mail_safety.rs"]
mod mail_safety;
#[path = "integration/operator.rs"]
mod operator;
#[path = "integration/operator_faults.rs"]
mod operator_faults;
#[path = "integration/operator_leader.rs"]
mod operator_leader;
#[path = "integration/operator_metrics.rs"]
mod operator_metrics;
#[path = "integration/plugin.rs"]
mod plugin;
#[path = "integration/plugin_safety.rs"]
mod plugin_safety;
#[path = "integration/policy.rs"]
mod policy;
#[path = "integration/restore.rs"]
mod restore;
#[path = "integration/sandbox_command.rs"]
mod sandbox_command;
#[path = "integration/statements.rs"]
mod statements;
#[path = "integration/tenant_convergence.rs"]
mod tenant_convergence;
#[path = "integration/tenant_isolation.rs"]
mod tenant_isolation;
#[path = "integration/unreadable.rs"]
mod unreadable;
#[path = "integration/webhooks.rs"]
mod webhooks;
