//! Billing statements: what each Distributor was billed for in each UTC calendar month, kept
//! as `BillingStatement` objects that outlive the Partners they list.
//!
//! - [`days`]: the pure arithmetic of billed days (shared with `kubectl partner billing`);
//! - [`compose`]: pure: a statement's parts from what they say and the Partners counted now;
//! - [`naming`]: a statement's object name and labels;
//! - [`store`]: where statements are read and written ([`StatementStore`]: the API server, or
//!   memory in tests);
//! - [`writer`]: the task that keeps them, writes coalesced per Distributor, and the handle a
//!   deletion records its Partner with before the finalizer goes.

pub mod compose;
pub mod days;
pub mod naming;
pub mod store;
pub mod writer;

pub use store::{KubeStore, StatementStore, StoreError};
pub use writer::{Source, StatementWriter};
