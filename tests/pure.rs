//! Tests that start nothing: the lifecycle's decisions, the admission corpus against the CRDs,
//! and the CRDs on disk against the ones the binary generates. One test binary, so the suite
//! links the project's dependencies once for all of them.

#[path = "pure/admission.rs"]
mod admission;
#[path = "pure/crds_in_sync.rs"]
mod crds_in_sync;
#[path = "pure/lifecycle.rs"]
mod lifecycle;
