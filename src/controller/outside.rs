//! The outside world a Partner's plan is carried out against: the API server, the tenant, the
//! mail server, webhook receivers, Events. Behind the [`Outside`] trait, so the executor
//! ([`super::executor`]) is tested against an in-memory fake; [`Kube`] is the real one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::info;

use super::Context;
use super::partner::Error;
use super::webhook_delivery::WebhookDeliveries;
use crate::api::{Partner, PartnerStatus};
use crate::lifecycle::{ActivationToken, Email, PartnerEvent, WebhookSend};
use crate::mail::{ActivationLink, MailError, OutgoingEmail};
use crate::metrics::Metrics;
use crate::status::{self, Persistence, Transacted, Writer};
use crate::tenant::{self, Tenant, tenant_namespace_of};

/// How often the cache is looked at for the Partner's deletion while its email is in flight.
const DELETION_POLL: Duration = Duration::from_millis(200);

/// What became of an email handed to the mail server.
#[derive(Debug)]
pub(super) enum Sending {
    /// The server accepted it.
    Sent,
    /// The server did not take it.
    Failed(MailError),
    /// Given up (its connection closed) because the Partner is being deleted: its record stays
    /// without `sentAt` and goes with the Partner, so it was sent at most once.
    GivenUp,
}

/// Every effect of a Partner's plan, and what the executor needs to know around them.
pub(super) trait Outside: Sync {
    /// The lifecycle's time.
    fn now(&self) -> DateTime<Utc>;
    fn metrics(&self) -> &Metrics;
    /// Every Partner the operator knows (rate limits count their recorded emails on first
    /// use).
    fn partners(&self) -> Vec<Arc<Partner>>;
    /// The Partner as stored (not as a cache shows it).
    async fn read(&self, partner: &Partner) -> kube::Result<Partner>;
    /// Writes the Partner's status as [`status::transact`] does.
    async fn transact<T>(
        &self,
        partner: &mut Partner,
        persistence: Persistence,
        change: impl FnMut(&Partner, &mut PartnerStatus) -> T,
    ) -> kube::Result<Transacted<T>>;
    /// Makes the tenant namespace only, before the status that records it; what it found at
    /// the tenant's name.
    async fn make_tenant(&self, partner: &Partner) -> Result<Tenant, Error>;
    /// Creates the tenant the status describes, or keeps it current (restoring an emailed
    /// activation token); what it found at the tenant's name. `found` is what this
    /// reconciliation already found there.
    async fn ensure_tenant(
        &self,
        partner: &Partner,
        restore: Option<&ActivationToken>,
        found: Option<&Tenant>,
    ) -> Result<Tenant, Error>;
    /// Stores the activation token's hash in the tenant; what it found at the tenant's name.
    async fn store_activation(
        &self,
        partner: &Partner,
        token: &ActivationToken,
    ) -> Result<Tenant, Error>;
    /// Sends one email (with its activation link, if it carries one).
    async fn send_email(&self, partner: &Partner, email: &Email) -> Sending;
    /// Hands a webhook event to its own delivery task; nothing waits for it (but, briefly, a
    /// status write its record can ride along with: [`super::webhook_delivery::RIDE_ALONG_PATIENCE`]).
    fn deliver_webhook(&self, partner: &Partner, send: &WebhookSend);
    /// Hands an Event on the Partner to be recorded, best effort; nothing waits for it.
    fn publish(&self, partner: &Partner, event: &PartnerEvent);
}

/// The real world: the API server through the operator's client and caches, the mailer, the
/// webhook deliveries.
pub(super) struct Kube<'a> {
    pub ctx: &'a Arc<Context>,
    pub api: &'a Api<Partner>,
}

impl Outside for Kube<'_> {
    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.timestamp()
    }

    fn metrics(&self) -> &Metrics {
        &self.ctx.outputs.metrics
    }

    fn partners(&self) -> Vec<Arc<Partner>> {
        self.ctx.caches.partners.state()
    }

    async fn read(&self, partner: &Partner) -> kube::Result<Partner> {
        self.api.get_status(&partner.name_any()).await
    }

    async fn transact<T>(
        &self,
        partner: &mut Partner,
        persistence: Persistence,
        change: impl FnMut(&Partner, &mut PartnerStatus) -> T,
    ) -> kube::Result<Transacted<T>> {
        let transacted = status::transact(
            self.api,
            partner,
            Writer::Operator,
            persistence,
            Some(&self.ctx.caches.watch_progress),
            change,
        )
        .await?;
        if transacted.written {
            self.ctx.caches.own_writes.wrote(partner);
        }
        Ok(transacted)
    }

    async fn make_tenant(&self, partner: &Partner) -> Result<Tenant, Error> {
        let ctx = self.ctx;
        let cached = cached_tenant(ctx, partner);
        let found = tenant::make(
            &ctx.client,
            partner,
            cached.as_deref(),
            &ctx.settings.ownership,
        )
        .await?;
        if found == Tenant::Terminating {
            return Err(Error::TenantTerminating(tenant_namespace_of(partner)));
        }
        if found.is_owned() {
            ctx.caches.own_writes.made_tenant(partner);
        }
        Ok(found)
    }

    async fn ensure_tenant(
        &self,
        partner: &Partner,
        restore: Option<&ActivationToken>,
        found: Option<&Tenant>,
    ) -> Result<Tenant, Error> {
        let ctx = self.ctx;
        let status = partner.status.clone().unwrap_or_default();
        let token = restore.map(|t| {
            (
                token(ctx, partner, &t.message_id),
                t.expires_at,
                superseded_hashes(ctx, partner, t),
            )
        });
        let issued = token
            .as_ref()
            .map(|(token, expires_at, superseded)| tenant::IssuedToken {
                token,
                expires_at: *expires_at,
                superseded,
            });
        let cached = cached_tenant(ctx, partner);
        let found = tenant::ensure(
            &ctx.client,
            partner,
            &status,
            (found, cached.as_deref()),
            &ctx.settings.ownership,
            issued,
        )
        .await?;
        // A namespace of this Partner's that is being deleted: retried with backoff, and its
        // deletion wakes the Partner anyway.
        if found == Tenant::Terminating {
            return Err(Error::TenantTerminating(tenant_namespace_of(partner)));
        }
        if found.is_owned() {
            ctx.caches.own_writes.made_tenant(partner);
            if let Some(data) = tenant::tenant_data(partner, &status, &ctx.settings.ownership.key) {
                let namespace = tenant_namespace_of(partner);
                ctx.caches.own_writes.wrote_entitlements(&namespace, data);
            }
        }
        Ok(found)
    }

    async fn store_activation(
        &self,
        partner: &Partner,
        activation: &ActivationToken,
    ) -> Result<Tenant, Error> {
        let ctx = self.ctx;
        let status = partner.status.clone().unwrap_or_default();
        let superseded = superseded_hashes(ctx, partner, activation);
        Ok(tenant::store_activation(
            &ctx.client,
            partner,
            &status,
            cached_tenant(ctx, partner).as_deref(),
            &ctx.settings.ownership,
            tenant::IssuedToken {
                token: &token(ctx, partner, &activation.message_id),
                expires_at: activation.expires_at,
                superseded: &superseded,
            },
        )
        .await?)
    }

    /// The round trip is raced against the Partner's deletion: a mail server that accepts and
    /// never answers must not hold a deletion up for as long as the send may take. Once the
    /// cache shows the Partner being deleted (or gone, or replaced by another uid), the send is
    /// given up and its connection closed.
    async fn send_email(&self, partner: &Partner, email: &Email) -> Sending {
        let outgoing = outgoing(self.ctx, partner, email);
        let reference = ObjectRef::from_obj(partner);
        let uid = partner.metadata.uid.clone();
        tokio::select! {
            biased;
            result = self.ctx.outputs.mailer.send(&outgoing) => match result {
                Ok(()) => Sending::Sent,
                Err(err) => Sending::Failed(err),
            },
            () = deleted(self.ctx, &reference, uid.as_deref()) => {
                info!(partner = %reference, email = email.event.as_str(), "the Partner is being deleted: its email in flight is given up");
                Sending::GivenUp
            }
        }
    }

    fn deliver_webhook(&self, partner: &Partner, send: &WebhookSend) {
        WebhookDeliveries::start(self.ctx, partner, send);
    }

    fn publish(&self, partner: &Partner, event: &PartnerEvent) {
        self.ctx.publish(partner, event);
    }
}

/// The message of `email`, with the activation link made from the operator's key.
fn outgoing(ctx: &Context, partner: &Partner, email: &Email) -> OutgoingEmail {
    let mut vars = email.vars.clone();
    if let Some(base) = &email.link_base {
        let token = token(ctx, partner, &email.message_id);
        let link = tenant::activation_link(base, &vars.tenant_id, &token);
        vars.activation_link = Some(ActivationLink::new(link));
    }
    OutgoingEmail {
        event: email.event,
        to: email.to.clone(),
        message_id: email.message_id.clone(),
        vars,
    }
}

/// Resolves once the cache shows the Partner being deleted, gone, or replaced by another of
/// the same name (`uid` is the one whose email is in flight).
async fn deleted(ctx: &Context, reference: &ObjectRef<Partner>, uid: Option<&str>) {
    loop {
        let going = ctx.caches.partners.get(reference).is_none_or(|p| {
            p.metadata.deletion_timestamp.is_some() || p.metadata.uid.as_deref() != uid
        });
        if going {
            return;
        }
        tokio::time::sleep(DELETION_POLL).await;
    }
}

/// The hashes of the tokens of the activation emails `activation` replaces.
fn superseded_hashes(
    ctx: &Context,
    partner: &Partner,
    activation: &ActivationToken,
) -> Vec<String> {
    activation
        .superseded
        .iter()
        .map(|id| tenant::token_hash(&token(ctx, partner, id)))
        .collect()
}

/// The activation token of the email `message_id`: the same on every copy of that email.
fn token(ctx: &Context, partner: &Partner, message_id: &str) -> String {
    ctx.settings
        .activation_key
        .token(crate::tenant::tenant_owner_uid(partner), message_id)
}

/// The Namespace by the name of the Partner's tenant (derived from the Partner, not read from
/// its status) as the cache has it.
pub(super) fn cached_tenant(ctx: &Context, partner: &Partner) -> Option<Arc<Namespace>> {
    ctx.caches
        .namespaces
        .get(&ObjectRef::new(&tenant_namespace_of(partner)))
}
