//! The sandbox: a whole system on one machine.
//!
//! The parts a cluster and a mail provider would supply, run in-process on loopback so the
//! operator can be tried and tested end to end without either:
//! - [`smtp`]: an SMTP server that keeps every message it accepts.

pub mod smtp;
