//! How a Partner's status is written: one primitive, [`transact`], for every writer (the
//! reconciler's plan, the outcome of an email or a webhook delivery, an activation).
//!
//! A transaction computes the new status from the latest Partner, writes it only if it differs,
//! with the resourceVersion it was computed from as a precondition, and on a conflict reads the
//! Partner again and computes again: no writer overwrites what another wrote meanwhile, and no
//! write changes nothing. Each writer owns its own fields ([`Writer`]). How a status is
//! written is in [`apply`].

mod apply;

use std::time::Duration;

use kube::{Api, ResourceExt};

pub use apply::write;

use crate::api::{Partner, PartnerStatus};
use crate::watch_progress::WatchProgress;

/// The activation service's field manager: it owns `status.activation.activatedAt`.
pub const ACTIVATION_SERVICE_MANAGER: &str = "partner-operator-activation";

/// The fields of a Partner's status the activation service writes and the operator's other
/// writers neither apply nor remove (paths inside the status).
const ACTIVATION_SERVICE_FIELDS: &[&[&str]] = &[&["activation", "activatedAt"]];

/// Who writes a Partner's status; each owns its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The reconciler and webhook delivery, under the operator's field manager: the whole
    /// status but the activation service's fields.
    Operator,
    /// The activation service, under its own field manager: `status.activation.activatedAt`.
    ActivationService,
}

/// How hard a transaction tries when the API server fails it (conflicts are always computed
/// again, up to [`MAX_CONFLICTS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// A status the next reconciliation computes again anyway (the plan's): an error ends the
    /// transaction, and the controller's backoff retries.
    Recomputed,
    /// The record of something done (an email sent, a webhook delivered, a link activated):
    /// lost, it would be done again, so transient errors are retried here.
    Outcome,
}

/// Conflicts one transaction computes again after before it gives up (the status keeps
/// changing under it).
const MAX_CONFLICTS: u32 = 8;
/// Errors an [`Persistence::Outcome`] transaction retries, waiting from [`FIRST_WAIT`]
/// doubling up to [`MAX_WAIT`].
const MAX_ERRORS: u32 = 7;
const FIRST_WAIT: Duration = Duration::from_millis(50);
const MAX_WAIT: Duration = Duration::from_secs(2);
/// How long a write waits for the Partner watch to deliver the copy it was computed from
/// before it is made anyway (see [`WatchProgress`]).
const WATCH_CACHE_PATIENCE: Duration = Duration::from_millis(500);

/// What a transaction did.
#[derive(Debug)]
pub struct Transacted<T> {
    /// What the change returned, computed on the Partner as finally written or read.
    pub value: T,
    /// Whether the status was written (it differed).
    pub written: bool,
}

/// Computes `change` on the latest status of `partner` and writes the result as `writer`, if it
/// differs; `partner` is left as written (or as read after a conflict). The change may run more
/// than once: it must depend only on what it is given. With `watch`, a write first waits for
/// the watch to have delivered the copy it was computed from, so that the API server makes it
/// once.
pub async fn transact<T>(
    api: &Api<Partner>,
    partner: &mut Partner,
    writer: Writer,
    persistence: Persistence,
    watch: Option<&WatchProgress>,
    mut change: impl FnMut(&Partner, &mut PartnerStatus) -> T,
) -> kube::Result<Transacted<T>> {
    let (mut conflicts, mut errors, mut wait) = (0, 0, FIRST_WAIT);
    loop {
        let stored = partner.status.clone().unwrap_or_default();
        let mut status = stored.clone();
        let value = change(partner, &mut status);
        // No status and an empty one are the same: nothing to write.
        if status == stored {
            return Ok(Transacted {
                value,
                written: false,
            });
        }
        if let Some(watch) = watch {
            watch
                .caught_up(partner.resource_version().as_deref(), WATCH_CACHE_PATIENCE)
                .await;
        }
        let failure = match write_as(api, partner, &status, writer).await {
            Ok(written) => {
                *partner = written;
                return Ok(Transacted {
                    value,
                    written: true,
                });
            }
            Err(err) if is_conflict(&err) && conflicts < MAX_CONFLICTS => {
                conflicts += 1;
                match api.get_status(&partner.name_any()).await {
                    Ok(latest) => {
                        *partner = latest;
                        continue;
                    }
                    Err(err) => err,
                }
            }
            Err(err) => err,
        };
        errors += 1;
        if persistence == Persistence::Recomputed || errors > MAX_ERRORS {
            return Err(failure);
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_WAIT);
    }
}

/// One write of `status` on `partner` as `writer`, with `partner`'s resourceVersion as a
/// precondition.
async fn write_as(
    api: &Api<Partner>,
    partner: &Partner,
    status: &PartnerStatus,
    writer: Writer,
) -> kube::Result<Partner> {
    match writer {
        Writer::Operator => {
            apply::write_changes(api, partner, status, ACTIVATION_SERVICE_FIELDS).await
        }
        Writer::ActivationService => {
            apply::apply_only(
                api,
                partner,
                status,
                ACTIVATION_SERVICE_MANAGER,
                ACTIVATION_SERVICE_FIELDS,
            )
            .await
        }
    }
}

/// Whether the API server refused a write for its precondition.
pub fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}
