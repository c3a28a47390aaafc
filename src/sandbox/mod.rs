//! The sandbox: a whole working system on one machine, with no cluster. An embedded Kubernetes
//! API server on loopback ([`apiserver`]), the project's CRDs installed, and (with the operator
//! wired in) an SMTP server that keeps every message.

pub mod apiserver;
