//! The sandbox: a whole working system on one machine, with no cluster.
//!
//! The parts a cluster and a mail provider would supply, run in-process on loopback so the
//! operator can be tried and tested end to end without either:
//! - [`apiserver`]: a Kubernetes API server, faithful to kube-apiserver for what we touch;
//! - [`smtp`]: an SMTP server that keeps every message it accepts;
//! - [`command`]: `partner-operator sandbox`, which runs both with the operator.

pub mod apiserver;
pub mod command;
pub mod smtp;
