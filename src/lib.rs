//! partner-operator: onboard the partners of a software distributor as tenants, declaratively.
//!
//! See `DESIGN.md`-level overview in the README. Modules, one concept each:
//! - [`api`]: the custom resources (`Distributor`, `Partner`) and their conditions;
//! - [`clock`]: the injectable clock every deadline is measured on;

pub mod api;
pub mod clock;
