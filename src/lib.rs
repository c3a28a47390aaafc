//! partner-operator: onboard the partners of a software distributor as tenants, declaratively.
//!
//! The README and the docs/ pages it lists say what it does and how to run it. Modules, one
//! concept each:
//! - [`api`]: the custom resources (`Distributor`, `Partner`) and their conditions;
//! - [`binding`]: which namespaces may hold a Distributor's Partners;
//! - [`clock`]: the injectable clock every deadline is measured on;
//! - [`controller`]: the reconcilers (Partner, Distributor) and their wiring;
//! - [`crash_points`]: places where a test may have the process die, to prove crash safety;
//! - [`leader`]: leader election on a Lease, so that one replica of several reconciles;
//! - [`lifecycle`]: the pure subscription state machine (what must happen to a Partner, and when);
//! - [`mail`]: the lifecycle emails, their templates and their delivery over SMTP;
//! - [`metrics`]: Prometheus metrics and the health endpoints;
//! - [`operator`]: the `run` command: settings checked up front, then the controllers;
//! - [`sandbox`]: the `sandbox` command: the whole system on one machine, an API server and an
//!   SMTP server on loopback (from the `partner-sandbox` crate, the test ground) with the operator
//!   (only with the default `sandbox` feature);
//! - [`shutdown`]: one shutdown signal that many tasks wait for;
//! - [`statements`]: monthly billing statements that outlive the Partners they list;
//! - [`telemetry`]: structured logging;
//! - [`tenant`]: a Partner's tenant namespace, entitlements and activation secret;

pub mod activation;
pub mod api;
pub mod binding;
pub mod bounded_http;
pub mod clock;
pub mod controller;
pub mod crash_points;
pub mod leader;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod operator;
pub mod plugin;
pub mod published_clock;
pub mod requests_in_flight;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod shutdown;
pub mod statements;
pub mod status;
pub mod telemetry;
pub mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
pub mod watch_progress;
pub mod webhooks;
