//! The tests' one notion of time: [`eventually`] waits until something holds, for as long as a
//! named [`Patience`] allows, and fails saying what it awaited and what it saw last.
//! [`eventually_blocking`] is the same for tests that drive subprocesses without a runtime;
//! [`within`] and [`within_blocking`] are the loop under both, returning the last observation
//! instead of failing, for tests whose assertion is on what was observed.
//!
//! A test never sleeps to prove that nothing happened: it waits for a positive signal that the
//! system settled (see `Harness::settled`) and then asserts. A sleep is only for real time to
//! pass on purpose (pacing writes, chaos timing), and says so where it is.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// How long a test waits for one kind of thing, by name: the failure says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patience {
    pub name: &'static str,
    pub limit: Duration,
}

impl Patience {
    /// The operator acting on one change: reconciliations, their writes, an email.
    pub const RECONCILE: Self = Self::new("a reconciliation", 20);
    /// An API server acting on its own: a Namespace emptied and removed (kube-apiserver's
    /// namespace controller), a CRD's new schema served, a watch delivering.
    pub const API_SERVER: Self = Self::new("the API server", 30);
    /// A deleted tenant going: its Partner's finalizer, then the Namespace emptied.
    pub const DELETION: Self = Self::new("a deletion", 60);
    /// A whole trial on a real clock, with its emails, after chaos: everything to converge.
    pub const TRIAL: Self = Self::new("a whole trial", 90);
    /// `partner-operator sandbox` on its embedded API server: kubeconfig written.
    pub const SANDBOX_START: Self = Self::new("the sandbox starting", 30);
    /// A cold etcd and kube-apiserver on two busy cores.
    pub const CONTROL_PLANE_START: Self = Self::new("a control plane starting", 120);
    /// A process (or kubectl) ending once it has what it waited for, or after SIGTERM.
    pub const PROCESS_EXIT: Self = Self::new("a process ending", 30);
    /// A walkthrough step through the user's tools: kubectl, the sandbox, its operator, mail.
    pub const WALKTHROUGH: Self = Self::new("a walkthrough step", 60);

    pub(super) const fn new(name: &'static str, seconds: u64) -> Self {
        Self {
            name,
            limit: Duration::from_secs(seconds),
        }
    }
}

impl Display for Patience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self.limit, self.name)
    }
}

/// What one look at an awaited condition found: done (with what it found), or not yet (with
/// what was seen instead, for the failure message).
///
/// `bool` for a plain condition; `Ok(found)` / `Err(seen)` to return a value and to report
/// the last observation.
pub trait Outcome {
    type Done;
    type Seen: Debug;
    fn done(self) -> Result<Self::Done, Self::Seen>;
}

impl Outcome for bool {
    type Done = ();
    type Seen = &'static str;
    fn done(self) -> Result<(), &'static str> {
        if self { Ok(()) } else { Err("not yet") }
    }
}

/// A long observation (a scrape, a log) printed as it is in a failure, not escaped.
pub struct Seen(pub String);

impl Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<T, E: Debug> Outcome for Result<T, E> {
    type Done = T;
    type Seen = E;
    fn done(self) -> Result<T, E> {
        self
    }
}

/// Looks at `check` every 50 ms until it is done, and returns what it found; fails once
/// `patience` has passed, naming `what` and the last observation.
pub async fn eventually<O, F, Fut>(what: impl Display, patience: Patience, check: F) -> O::Done
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    within(patience, check)
        .await
        .unwrap_or_else(|seen| panic!("{what}: not within {patience}; last seen: {seen:#?}"))
}

/// The loop under [`eventually`], for a test that records what it saw rather than failing
/// (the fidelity suite compares two servers' replies, a timeout included): what `check` found,
/// or, once `patience` has passed, what it saw last.
pub async fn within<O, F, Fut>(patience: Patience, mut check: F) -> Result<O::Done, O::Seen>
where
    O: Outcome,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let deadline = tokio::time::Instant::now() + patience.limit;
    loop {
        let seen = match check().await.done() {
            Ok(done) => return Ok(done),
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`], blocking the thread (for tests that drive subprocesses).
pub fn eventually_blocking<O, F>(what: impl Display, patience: Patience, check: F) -> O::Done
where
    O: Outcome,
    F: FnMut() -> O,
{
    within_blocking(patience, check)
        .unwrap_or_else(|seen| panic!("{what}: not within {patience}; last seen: {seen:#?}"))
}

/// [`within`], blocking the thread.
pub fn within_blocking<O, F>(patience: Patience, mut check: F) -> Result<O::Done, O::Seen>
where
    O: Outcome,
    F: FnMut() -> O,
{
    let deadline = Instant::now() + patience.limit;
    loop {
        let seen = match check().done() {
            Ok(done) => return Ok(done),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(seen);
        }
        std::thread::sleep(POLL);
    }
}
