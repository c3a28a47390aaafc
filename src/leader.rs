//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! reconciles (and so only one sends email).
//!
//! A replica that does not hold the Lease waits, doing nothing but trying to take it. The one
//! that holds it runs the controllers and renews the Lease before it runs out. Losing the Lease
//! (a renewal failed for longer than the Lease lasts and another replica took it) stops the
//! controllers at once and ends the process with an error, as controller-runtime does: a fresh
//! start is the one state known to be clean, and Kubernetes restarts the pod as a standby. On
//! shutdown the leader stops its controllers first and then releases the Lease, so a standby
//! takes over at once instead of after the Lease runs out.
//!
//! Lease times are real time (wall clock), never the operator's [`crate::clock::Clock`]: the
//! Lease is a promise between processes, not a business deadline.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tracing::{info, warn};

/// Where the Lease lives and how long it lasts.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique among the replicas: the pod name in a cluster.
    pub identity: String,
    /// How long a Lease holds without renewal; a standby takes over after this at most.
    pub lease_duration: Duration,
    /// The holder renews this long before the Lease would run out.
    pub renew_before: Duration,
}

impl LeaderElection {
    /// Defaults as a Deployment would run them: the Lease `partner-operator` in the pod's
    /// namespace, named after the pod, 15 s with renewal 5 s before the end.
    pub fn new(lease_namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            lease_name: "partner-operator".into(),
            lease_namespace: lease_namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_before: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("--lease-duration must be longer than the renewal margin ({0:?})")]
    Durations(Duration),
    #[error("cannot use the Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("lost the Lease {0}: another replica leads now; stopping")]
    Lost(String),
}

/// The Lease, once held.
pub struct Leadership {
    manager: LeaseManager,
    lease: String,
}

/// Waits until this replica holds the Lease (`Ok(Some)`), or until `shutdown` resolves
/// (`Ok(None)`).
pub async fn acquire(
    client: Client,
    election: &LeaderElection,
    shutdown: impl Future<Output = ()>,
) -> Result<Option<Leadership>, LeaderError> {
    let seconds = |d: Duration| d.as_secs().max(1);
    let (duration, grace) = (
        seconds(election.lease_duration),
        seconds(election.renew_before),
    );
    if duration <= grace {
        return Err(LeaderError::Durations(election.renew_before));
    }
    let lease = format!("{}/{}", election.lease_namespace, election.lease_name);
    let fail = |source| LeaderError::Lease {
        namespace: election.lease_namespace.clone(),
        name: election.lease_name.clone(),
        source,
    };
    // The grace must be set before the duration: the builder insists duration > grace.
    let manager = LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.lease_namespace)
        .with_identity(&election.identity)
        .with_field_manager("partner-operator")
        .with_grace(grace)
        .with_duration(duration)
        .build()
        .await
        .map_err(fail)?;
    info!(%lease, identity = %election.identity, "waiting to lead");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            changed = manager.changed() => match changed {
                Ok(true) => {
                    info!(%lease, "leading");
                    return Ok(Some(Leadership { manager, lease }));
                }
                Ok(false) => {}
                Err(err) => {
                    warn!(%lease, error = %err, "cannot read or take the Lease; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = &mut shutdown => return Ok(None),
        }
    }
}

impl Leadership {
    /// Keeps the Lease renewed; returns only when it is lost.
    pub async fn hold(&self) -> LeaderError {
        loop {
            match self.manager.changed().await {
                Ok(true) => {}
                Ok(false) => return LeaderError::Lost(self.lease.clone()),
                Err(err) => {
                    // Not lost yet: the Lease holds until it runs out, and a renewal may still
                    // succeed. If it does not, `changed` reports the loss.
                    warn!(lease = %self.lease, error = %err, "cannot renew the Lease; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Gives the Lease up, so a standby takes over without waiting for it to run out.
    pub async fn release(self) {
        match self.manager.release().await {
            Ok(()) => info!(lease = %self.lease, "released the Lease"),
            Err(err) => warn!(lease = %self.lease, error = %err, "could not release the Lease"),
        }
    }
}
