//! partner-operator: onboard the partners of a software distributor as tenants, declaratively.
//!
//! See `DESIGN.md`-level overview in the README. Modules, one concept each:
//! - [`api`]: the custom resources (`Distributor`, `Partner`) and their conditions;
//! - [`clock`]: the injectable clock every deadline is measured on;
//! - [`lifecycle`]: the pure subscription state machine (what must happen to a Partner, and when);
//! - [`metrics`]: Prometheus metrics and the health endpoints;
//! - [`telemetry`]: structured logging;

pub mod api;
pub mod clock;
pub mod lifecycle;
pub mod metrics;
pub mod telemetry;
