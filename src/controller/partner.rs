//! The Partner reconciler: observe, plan (pure, in [`crate::lifecycle`]), write the status if it
//! changed, perform the side effects, record what they did, requeue at the next deadline.
//!
//! Exactly-once email rests on three rules:
//! - the intent is written to `status.emails` (with a resourceVersion precondition) *before* the
//!   email goes out, so after a crash the same email is retried with the same Message-ID;
//! - an email is only sent from a Partner read fresh from the API server (the status the
//!   operator just wrote, or a GET), never from a cache that may not yet show a delivery;
//! - recording the delivery is retried on conflicts and transient API errors, because a
//!   delivery that is not recorded would be repeated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::{Context, FINALIZER};
use crate::api::{DeletionPolicy, Distributor, EmailEvent, Partner, PartnerStatus, types};
use crate::lifecycle::{self, Effect, Observation, Plan};
use crate::mail::{ActivationLink, EmailVars, MailError, OutgoingEmail};
use crate::tenant;

/// Why a reconciliation failed; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("email {event}: {source}")]
    Mail {
        event: &'static str,
        source: MailError,
    },
    #[error("email {event}: {reason}")]
    Activation { event: &'static str, reason: String },
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("the status kept changing under the operator; retrying")]
    Unsettled,
    #[error("tenant namespace {0} is being deleted; it is created again once it is gone")]
    TenantTerminating(String),
}

/// Plans per reconciliation at most; each step performs effects that the next plan sees.
const MAX_STEPS: usize = 8;
/// How soon a reconciliation that found no free mail slot looks again, if nothing wakes it.
const MAIL_SLOT_RETRY: Duration = Duration::from_secs(2);
/// How soon a Partner whose tenant name is taken looks again, should no namespace event wake it.
const TAKEN_RETRY: Duration = Duration::from_secs(30);
/// Added to every requeue at a deadline, so Partners that share a deadline spread a little.
const MAX_JITTER: Duration = Duration::from_millis(50);

pub async fn reconcile(partner: Arc<Partner>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = std::time::Instant::now();
    let api: Api<Partner> =
        Api::namespaced(ctx.client.clone(), &partner.namespace().unwrap_or_default());
    let reference = ObjectRef::from_obj(&*partner);
    let result = finalizer(&api, FINALIZER, partner, |event| async {
        match event {
            Finalizer::Apply(partner) => apply(&api, &partner, &ctx).await,
            Finalizer::Cleanup(partner) => cleanup(&api, &partner, &ctx).await,
        }
    })
    .await
    .map_err(|err| match err {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        kube::runtime::finalizer::Error::AddFinalizer(e)
        | kube::runtime::finalizer::Error::RemoveFinalizer(e) => Error::Kube(e),
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics
        .observe_reconcile("partner", started.elapsed(), result.is_err());
    if result.is_ok() {
        ctx.succeeded(&reference);
    }
    result
}

pub fn error_policy(partner: Arc<Partner>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(&ObjectRef::from_obj(&*partner));
    warn!(
        partner = %ObjectRef::from_obj(&*partner),
        error = %error,
        retry_in = ?wait,
        "reconciliation failed"
    );
    Action::requeue(wait)
}

async fn apply(api: &Api<Partner>, cached: &Partner, ctx: &Context) -> Result<Action, Error> {
    let mut current = cached.clone();
    // Whether `current` came from the API server in this reconciliation (not from the cache).
    let mut fresh = false;
    // What this reconciliation found at the tenant's name (the cache may not show it yet).
    let mut tenant_found: Option<tenant::Tenant> = None;
    // What this reconciliation wrote to the tenant's `entitlements` (the cache may lag).
    let mut entitlements_written: Option<BTreeMap<String, String>> = None;
    let mut mail_slot = None;
    for _ in 0..MAX_STEPS {
        let distributor = ctx
            .distributors
            .get(&ObjectRef::new(&current.spec.distributor_ref.name));
        let now = ctx.clock.timestamp();
        let cached_entitlements = cached_entitlements(ctx, &current);
        let plan = lifecycle::plan(&Observation {
            partner: &current,
            distributor: distributor.as_deref(),
            namespace_allowed: namespace_allowed(ctx, &current, distributor.as_deref()),
            tenant_exists: match &tenant_found {
                Some(found) => matches!(found, tenant::Tenant::Owned(_)),
                None => tenant_exists(ctx, &current),
            },
            tenant_taken: match &tenant_found {
                Some(found) => *found == tenant::Tenant::Taken,
                None => tenant_taken(ctx, &current),
            },
            entitlements: entitlements_written
                .as_ref()
                .or(cached_entitlements.as_ref()),
            now,
        });
        let level_before = current.status.as_ref().and_then(|s| s.subscription_level);
        let mut level_moved = false;
        if current.status.as_ref() != Some(&plan.status) {
            match write_status(api, &current, &plan.status).await {
                Ok(written) => {
                    crate::crash_points::pass("after-status-write");
                    current = written;
                    fresh = true;
                    level_moved =
                        level_before.is_some() && level_before != plan.status.subscription_level;
                }
                Err(err) if is_conflict(&err) => {
                    // The cache was behind: plan again on what is stored.
                    current = api.get_status(&current.name_any()).await?;
                    fresh = true;
                    continue;
                }
                Err(err) => return Err(err.into()),
            }
        }
        // A transition's Events (e.g. ConvertedToProduction and BillingStarted) go out together.
        let events = plan.effects.iter().filter_map(|effect| match effect {
            Effect::Event { reason, message } => Some((*reason, message)),
            _ => None,
        });
        futures::future::join_all(events.map(|(reason, message)| {
            let warning = matches!(
                reason,
                lifecycle::events::EXPIRATION_DATE_IN_PAST
                    | lifecycle::events::TRIAL_EXPIRED
                    | lifecycle::events::TENANT_NAMESPACE_TAKEN
                    | lifecycle::events::EXPIRATION_DATE_LIMITED
                    | lifecycle::events::PRODUCTION_ENDED_UNBOUND
            );
            info!(partner = %ObjectRef::from_obj(&current), reason, "{message}");
            ctx.publish(&current, warning, reason, message.clone())
        }))
        .await;
        let sends = plan
            .effects
            .iter()
            .any(|e| matches!(e, Effect::SendEmail { .. }));
        let ensures = plan.effects.contains(&Effect::EnsureTenant);
        if !sends && !ensures {
            ctx.mail_slots.forget(&ObjectRef::from_obj(&current));
            finish(ctx, cached, &current, &plan);
            if taken(&current) {
                return Ok(Action::requeue(TAKEN_RETRY));
            }
            return Ok(requeue_at(ctx, plan.next_review));
        }
        if level_moved && sends {
            // A deadline moved the level (the intent to mail is recorded with it). The tenant's
            // entitlements follow now; the emails go out in the next pass, queued behind the
            // other Partners whose deadline is now: a thousand trials ending at once all
            // convert before any of their emails holds a reconciliation slot.
            if ensures {
                let found = ensure_tenant(ctx, &current).await?;
                if !matches!(found, tenant::Tenant::Owned(_)) {
                    tenant_found = Some(found);
                    continue;
                }
            }
            finish(ctx, cached, &current, &plan);
            return Ok(Action::requeue(Duration::ZERO));
        }
        // Taken before the fresh read that precedes sending, held until this reconciliation
        // ends (the emails sent and recorded).
        if sends && mail_slot.is_none() {
            let deadlines_due = ctx.deadlines.any_due(now);
            match ctx
                .mail_slots
                .try_take(&ObjectRef::from_obj(&current), deadlines_due)
            {
                Some(slot) => mail_slot = Some(slot),
                None => {
                    debug!(partner = %ObjectRef::from_obj(&current), "waiting for a mail slot");
                    // Woken when a slot frees; the requeue only covers a wake-up that another
                    // reconciliation of this Partner consumed.
                    finish(ctx, cached, &current, &plan);
                    return Ok(Action::requeue(MAIL_SLOT_RETRY));
                }
            }
        }
        if sends && !fresh {
            current = api.get_status(&current.name_any()).await?;
            fresh = true;
            continue;
        }
        for effect in &plan.effects {
            match effect {
                Effect::EnsureTenant => {
                    let found = ensure_tenant(ctx, &current).await?;
                    let owned = matches!(found, tenant::Tenant::Owned(_));
                    tenant_found = Some(found);
                    if !owned {
                        // Plan again on what was found: no email without the tenant.
                        break;
                    }
                    entitlements_written = written_entitlements(&current);
                }
                Effect::SendEmail {
                    event,
                    message_id,
                    to,
                } => {
                    let Some(distributor) = distributor.as_deref() else {
                        continue;
                    };
                    send(api, &mut current, ctx, distributor, *event, message_id, to).await?;
                }
                Effect::Event { .. } => {}
            }
        }
    }
    Err(Error::Unsettled)
}

/// Creates the tenant `current`'s status describes, or keeps it current; what it found at the
/// tenant's name. A namespace of this Partner's that is being deleted is an error: retried with
/// backoff, and its deletion wakes the Partner anyway.
async fn ensure_tenant(ctx: &Context, current: &Partner) -> Result<tenant::Tenant, Error> {
    let status = current.status.clone().unwrap_or_default();
    // Entitlements missing: the namespace may have been made again, without the activation
    // Secret of a link already emailed; the token is made again from the key and the
    // Message-ID, so that link works again.
    let token = if cached_entitlements(ctx, current).is_none() {
        sent_activation(ctx, current, &status)
    } else {
        None
    };
    let found = tenant::ensure(
        &ctx.client,
        current,
        &status,
        cached_tenant(ctx, current).as_deref(),
        token
            .as_ref()
            .map(|(token, expires_at)| (token.as_str(), *expires_at)),
    )
    .await?;
    if found == tenant::Tenant::Terminating {
        return Err(Error::TenantTerminating(lifecycle::tenant_namespace_of(
            current,
        )));
    }
    Ok(found)
}

/// The token and expiry of the activation link already emailed, if one was.
fn sent_activation(
    ctx: &Context,
    partner: &Partner,
    status: &PartnerStatus,
) -> Option<(String, DateTime<Utc>)> {
    let sent = status
        .emails
        .iter()
        .find(|e| e.event == EmailEvent::Activation && e.sent_at.is_some())?;
    let expires_at = status.activation.as_ref()?.link_expires_at?;
    let token = ctx
        .activation_key
        .token(&partner.uid().unwrap_or_default(), &sent.message_id);
    Some((token, expires_at))
}

/// Whether the Partner reports its tenant's name taken.
fn taken(partner: &Partner) -> bool {
    partner
        .status
        .as_ref()
        .and_then(|s| crate::api::find_condition(&s.conditions, types::READY))
        .is_some_and(|c| c.reason == lifecycle::reasons::TENANT_NAMESPACE_TAKEN)
}

/// Metrics, and a recount of the Distributor when this Partner's counted state moved.
fn finish(ctx: &Context, before: &Partner, after: &Partner, plan: &Plan) {
    record_next_deadline(ctx, after, plan.next_review);
    if counted(before) != counted(after) {
        ctx.recount(&after.spec.distributor_ref.name);
    }
}

/// What a Distributor's counts read from a Partner.
fn counted(partner: &Partner) -> Option<(Option<crate::api::SubscriptionLevel>, bool, usize)> {
    let status = partner.status.as_ref()?;
    Some((
        status.subscription_level,
        crate::api::is_condition_true(&status.conditions, types::DISTRIBUTOR_BOUND),
        status.skus.len(),
    ))
}

/// The Partner's next deadline (`None`: it has none), where mail slots and metrics read it.
fn record_next_deadline(ctx: &Context, partner: &Partner, at: Option<DateTime<Utc>>) {
    ctx.deadlines.set(&ObjectRef::from_obj(partner), at);
    ctx.metrics.set_next_deadline(
        &partner.namespace().unwrap_or_default(),
        &partner.name_any(),
        at,
    );
}

fn requeue_at(ctx: &Context, at: Option<DateTime<Utc>>) -> Action {
    match at.and_then(|at| ctx.clock.real_duration_until(at)) {
        Some(wait) => {
            let jitter = MAX_JITTER.mul_f64(rand::random::<f64>());
            Action::requeue(wait + jitter)
        }
        // No deadline, or a frozen clock that only a jump (which wakes every Partner) moves.
        None => Action::await_change(),
    }
}

fn namespace_allowed(ctx: &Context, partner: &Partner, distributor: Option<&Distributor>) -> bool {
    let Some(distributor) = distributor else {
        return false;
    };
    let namespace = partner.namespace().unwrap_or_default();
    ctx.namespaces
        .get(&ObjectRef::new(&namespace))
        .is_some_and(|ns| lifecycle::namespace_allowed(distributor, &ns))
}

/// The `data` of the tenant's `entitlements` ConfigMap as the cache has it.
fn cached_entitlements(ctx: &Context, partner: &Partner) -> Option<BTreeMap<String, String>> {
    let reference =
        ObjectRef::new(tenant::ENTITLEMENTS).within(&lifecycle::tenant_namespace_of(partner));
    ctx.entitlements
        .get(&reference)
        .map(|cm| cm.data.clone().unwrap_or_default())
}

/// What [`tenant::ensure`] just wrote for `partner`'s status.
fn written_entitlements(partner: &Partner) -> Option<BTreeMap<String, String>> {
    tenant::entitlements_data(partner, partner.status.as_ref()?)
}

/// Whether the cache shows the tenant namespace, this Partner's and live.
fn tenant_exists(ctx: &Context, partner: &Partner) -> bool {
    let found = tenant::classify(
        cached_tenant(ctx, partner).as_deref(),
        &partner.uid().unwrap_or_default(),
    );
    matches!(found, tenant::Tenant::Owned(_))
}

/// Whether the cache shows a namespace by the tenant's name that is not this Partner's.
fn tenant_taken(ctx: &Context, partner: &Partner) -> bool {
    let found = tenant::classify(
        cached_tenant(ctx, partner).as_deref(),
        &partner.uid().unwrap_or_default(),
    );
    found == tenant::Tenant::Taken
}

/// The Namespace by the name of the Partner's tenant (derived from the Partner, not read from
/// its status) as the cache has it.
fn cached_tenant(
    ctx: &Context,
    partner: &Partner,
) -> Option<Arc<k8s_openapi::api::core::v1::Namespace>> {
    ctx.namespaces
        .get(&ObjectRef::new(&lifecycle::tenant_namespace_of(partner)))
}

/// Sends one recorded email and records the outcome in status.
async fn send(
    api: &Api<Partner>,
    current: &mut Partner,
    ctx: &Context,
    distributor: &Distributor,
    event: EmailEvent,
    message_id: &str,
    to: &[String],
) -> Result<(), Error> {
    let status = current.status.clone().unwrap_or_default();
    let tenant = status.tenant.clone();
    // The dates as they were when the email was decided (an older record has none: now's).
    let facts = status
        .emails
        .iter()
        .find(|e| e.message_id == message_id)
        .and_then(|e| e.facts.clone())
        .unwrap_or_else(|| lifecycle::email_facts(&status));
    let mut vars = EmailVars {
        partner_organization: current.spec.organization_name.clone(),
        distributor_organization: distributor.spec.organization_name.clone(),
        distributor_name: distributor.name_any(),
        tenant_id: tenant.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
        tenant_namespace: lifecycle::tenant_namespace_of(current),
        activation_link: None,
        link_expires_at: facts.link_expires_at,
        trial_ends_at: facts.trial_ends_at,
        production_since: facts.production_since,
        expires_at: facts.expires_at,
    };
    if event == EmailEvent::Activation {
        let link = match activation_link(ctx, current, message_id, distributor, &status) {
            Ok(link) => link,
            Err(reason) => {
                record(api, current, |s| {
                    lifecycle::mark_email_failed(s, message_id, &reason)
                })
                .await?;
                ctx.publish(current, true, "EmailDeliveryFailed", reason.clone())
                    .await;
                return Err(Error::Activation {
                    event: event.as_str(),
                    reason,
                });
            }
        };
        let found = tenant::store_activation(
            &ctx.client,
            current,
            &status,
            cached_tenant(ctx, current).as_deref(),
            &link.token,
            vars.link_expires_at
                .unwrap_or_else(|| ctx.clock.timestamp()),
        )
        .await?;
        if !matches!(found, tenant::Tenant::Owned(_)) {
            // No link goes out whose token hash is not stored in the Partner's own tenant.
            return Err(Error::Activation {
                event: event.as_str(),
                reason: format!(
                    "tenant namespace {} is not this Partner's ({found:?})",
                    lifecycle::tenant_namespace_of(current)
                ),
            });
        }
        vars.activation_link = Some(ActivationLink::new(link.url));
    }
    let email = OutgoingEmail {
        event,
        to: to.to_vec(),
        message_id: message_id.to_string(),
        vars,
    };
    let kind = event.as_str();
    match ctx.mailer.send(&email).await {
        Ok(()) => {
            crate::crash_points::pass("after-send");
            ctx.metrics
                .emails_sent
                .get_or_create(&crate::metrics::EmailLabels { kind })
                .inc();
            debug!(partner = %ObjectRef::from_obj(&*current), email = kind, "email sent");
            let at = ctx.clock.timestamp();
            record(api, current, |s| {
                lifecycle::mark_email_sent(s, message_id, at)
            })
            .await?;
            if event == EmailEvent::Activation {
                ctx.publish(
                    current,
                    false,
                    "ActivationSent",
                    format!("activation email sent to {}", to.join(", ")),
                )
                .await;
            }
            Ok(())
        }
        Err(err) => {
            ctx.metrics
                .emails_failed
                .get_or_create(&crate::metrics::EmailLabels { kind })
                .inc();
            let reason = err.to_string();
            record(api, current, |s| {
                lifecycle::mark_email_failed(s, message_id, &reason)
            })
            .await?;
            ctx.publish(
                current,
                true,
                "EmailDeliveryFailed",
                format!("{kind} email to {} not delivered: {reason}", to.join(", ")),
            )
            .await;
            Err(Error::Mail {
                event: kind,
                source: err,
            })
        }
    }
}

struct Link {
    url: String,
    token: String,
}

/// `<baseUrl>?tenant=<id>&token=<token>`, the token made from the Partner and the email's
/// Message-ID: the same link every time this email is sent.
fn activation_link(
    ctx: &Context,
    partner: &Partner,
    message_id: &str,
    distributor: &Distributor,
    status: &PartnerStatus,
) -> Result<Link, String> {
    let base = distributor
        .spec
        .activation
        .base_url
        .clone()
        .or_else(|| ctx.activation_base_url.clone())
        .ok_or_else(|| {
            format!(
                "no activation base URL: set spec.activation.baseUrl on Distributor {:?} or start the operator with --activation-base-url",
                distributor.name_any()
            )
        })?;
    let mut url = url::Url::parse(&base).map_err(|err| {
        format!(
            "spec.activation.baseUrl of Distributor {:?} is not a URL: {err}",
            distributor.name_any()
        )
    })?;
    let token = ctx
        .activation_key
        .token(&partner.uid().unwrap_or_default(), message_id);
    let tenant_id = status.tenant.as_ref().map(|t| t.id.as_str()).unwrap_or("");
    url.query_pairs_mut()
        .append_pair("tenant", tenant_id)
        .append_pair("token", &token);
    Ok(Link {
        url: url.into(),
        token,
    })
}

/// Records an email's outcome in status. Conflicts and transient errors are retried here
/// rather than by the controller: an outcome that is lost would send the email again.
async fn record(
    api: &Api<Partner>,
    current: &mut Partner,
    change: impl Fn(&mut PartnerStatus),
) -> Result<(), Error> {
    let mut wait = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut status = current.status.clone().unwrap_or_default();
        change(&mut status);
        let result = match write_status(api, current, &status).await {
            Ok(written) => {
                *current = written;
                return Ok(());
            }
            Err(err) if is_conflict(&err) => match api.get_status(&current.name_any()).await {
                Ok(latest) => {
                    *current = latest;
                    continue;
                }
                Err(err) => err,
            },
            Err(err) => err,
        };
        if attempt >= 8 {
            return Err(result.into());
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Writes `status` with a merge patch carrying the resourceVersion the status was computed
/// from: if the Partner changed since, the API server answers 409 and nothing is written.
async fn write_status(
    api: &Api<Partner>,
    current: &Partner,
    status: &PartnerStatus,
) -> kube::Result<Partner> {
    let mut new = serde_json::to_value(status).expect("a status serializes");
    // A merge patch keeps fields it does not mention: clear the ones that went away.
    if let (Some(old), Some(new)) = (
        current
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok()),
        new.as_object_mut(),
    ) && let Value::Object(old) = old
    {
        for key in old.keys() {
            new.entry(key.clone()).or_insert(Value::Null);
        }
    }
    let patch = json!({
        "metadata": {"resourceVersion": current.resource_version()},
        "status": new,
    });
    api.patch_status(
        &current.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// The Partner is going: deprovision its tenant per `deletionPolicy`, end its billing, and
/// have its Distributor recount.
async fn cleanup(api: &Api<Partner>, partner: &Partner, ctx: &Context) -> Result<Action, Error> {
    let status = partner.status.clone().unwrap_or_default();
    // The name derived from the Partner, whatever the status says; the namespace is deleted
    // only if it is this Partner's (`tenant::delete` checks).
    let namespace = lifecycle::tenant_namespace_of(partner);
    match partner.spec.tenant.deletion_policy {
        DeletionPolicy::Delete => match tenant::delete(&ctx.client, partner).await? {
            tenant::Tenant::Owned(_) | tenant::Tenant::Terminating => {
                ctx.publish(
                    partner,
                    false,
                    "TenantDeprovisioned",
                    format!("tenant namespace {namespace} deleted"),
                )
                .await;
            }
            tenant::Tenant::Taken => {
                ctx.publish(
                    partner,
                    true,
                    lifecycle::events::TENANT_NAMESPACE_TAKEN,
                    format!("namespace {namespace} is not owned by this Partner: not deleted"),
                )
                .await;
            }
            tenant::Tenant::Absent => {}
        },
        DeletionPolicy::Retain if status.tenant.is_some() => {
            ctx.publish(
                partner,
                false,
                "TenantRetained",
                format!("tenant namespace {namespace} kept (spec.tenant.deletionPolicy: Retain)"),
            )
            .await;
        }
        DeletionPolicy::Retain => {}
    }
    if let Some(billing) = status.billing.as_ref().filter(|b| b.ended_at.is_none()) {
        let now = ctx.clock.timestamp();
        let mut current = partner.clone();
        record(api, &mut current, |s| {
            if let Some(b) = s.billing.as_mut() {
                b.ended_at.get_or_insert(now);
            }
        })
        .await?;
        ctx.publish(
            partner,
            false,
            lifecycle::events::BILLING_ENDED,
            format!(
                "billing to {} ended on {}: the Partner was deleted",
                billing.billed_to,
                now.to_rfc3339()
            ),
        )
        .await;
    }
    record_next_deadline(ctx, partner, None);
    ctx.mail_slots.forget(&ObjectRef::from_obj(partner));
    ctx.recount(&partner.spec.distributor_ref.name);
    Ok(Action::await_change())
}
