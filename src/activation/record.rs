//! The activation service's writes: the activation recorded in the tenant's Secret (exactly
//! once), then on the Partner's status, then marked recorded; and at start, the activations a
//! stopped process recorded in a tenant but not yet on its Partner.

use base64::Engine;
use chrono::{DateTime, SubsecRound, Utc};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::info;

use super::check::{self, Stored};
use super::outcome::{Names, rfc3339};
use super::{FIELD_MANAGER, Service};
use crate::api::{Distributor, Partner};
use crate::status::{self, Persistence, Writer};
use crate::tenant::{
    ACTIVATION, OWNER_UID_LABEL, PARTNER_NAME_LABEL, PARTNER_NAMESPACE_LABEL, tenant_namespace_of,
};

impl Service {
    /// Who a page names: the partner's organization, and the distributor as its branding
    /// presents it (by its name alone when it cannot be read).
    pub(super) async fn names(&self, partner: &Partner) -> Names {
        let name = &partner.spec.distributor_ref.name;
        // A list by name: the operator's role lists and watches Distributors, and gets none.
        let distributor = Api::<Distributor>::all(self.client.clone())
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .ok()
            .and_then(|list| list.items.into_iter().next());
        let Some(distributor) = distributor else {
            return Names {
                organization: partner.spec.organization_name.clone(),
                distributor: name.clone(),
                branding: Default::default(),
            };
        };
        let branding = distributor.spec.branding;
        Names {
            organization: partner.spec.organization_name.clone(),
            distributor: branding
                .display_name
                .clone()
                .unwrap_or(distributor.spec.organization_name),
            branding,
        }
    }

    /// Writes `activatedAt` into the Secret if it is still the one judged: whether it won.
    pub(super) async fn record_secret(
        &self,
        secret: &Secret,
        at: DateTime<Utc>,
    ) -> kube::Result<bool> {
        let value = base64::engine::general_purpose::STANDARD.encode(rfc3339(at));
        let patch = json!({
            "metadata": {"resourceVersion": secret.resource_version()},
            "data": {check::ACTIVATED_AT: value},
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        let namespace = secret.namespace().unwrap_or_default();
        match Api::<Secret>::namespaced(self.client.clone(), &namespace)
            .patch(ACTIVATION, &params, &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Marks the activation in `secret`'s tenant as recorded on the Partner too.
    pub(super) async fn mark_recorded(&self, secret: &Secret) -> kube::Result<()> {
        let value = base64::engine::general_purpose::STANDARD.encode("true");
        let patch = json!({"data": {check::ACTIVATION_RECORDED: value}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), &secret.namespace().unwrap_or_default())
            .patch(ACTIVATION, &params, &Patch::Merge(patch))
            .await
            .map(drop)
    }

    /// Finishes every activation recorded in a tenant's `activation` Secret but not marked
    /// recorded on its Partner (a process that stopped between the two writes): one paginated
    /// list of those Secrets (by name, with the tenant ownership label); a Partner is read only
    /// for an activation not marked. Returns how many it finished.
    pub async fn finish_recorded(&self) -> kube::Result<usize> {
        let api = Api::<Secret>::all(self.client.clone());
        let mut params = ListParams::default()
            .fields(&format!("metadata.name={ACTIVATION}"))
            .labels(OWNER_UID_LABEL)
            .limit(100);
        let mut finished = 0;
        loop {
            let page = api.list(&params).await?;
            for secret in &page.items {
                if self.finish(secret).await? {
                    finished += 1;
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return Ok(finished),
            }
        }
    }

    /// Finishes the activation in `secret`, if it holds one not marked recorded.
    pub(super) async fn finish(&self, secret: &Secret) -> kube::Result<bool> {
        let data = secret.data.clone().unwrap_or_default();
        let Some(at) = Stored::from_data(&data).activated_at else {
            return Ok(false);
        };
        if data.contains_key(check::ACTIVATION_RECORDED) {
            return Ok(false);
        }
        let annotations = secret.annotations();
        let (Some(owner), Some(namespace), Some(name)) = (
            secret.labels().get(OWNER_UID_LABEL),
            annotations.get(PARTNER_NAMESPACE_LABEL),
            annotations.get(PARTNER_NAME_LABEL),
        ) else {
            return Ok(false);
        };
        let partner = match Api::<Partner>::namespaced(self.client.clone(), namespace)
            .get_status(name)
            .await
        {
            Ok(partner) => partner,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(err) => return Err(err),
        };
        if crate::tenant::tenant_owner_uid(&partner) != owner.as_str()
            || secret.namespace().as_deref() != Some(tenant_namespace_of(&partner).as_str())
        {
            return Ok(false);
        }
        // Labels and annotations can be forged where admission policies do not run: the
        // namespace must carry the operator's proof that it is this Partner's tenant.
        let tenant = Api::<Namespace>::all(self.client.clone())
            .get_opt(&tenant_namespace_of(&partner))
            .await?;
        if !tenant.is_some_and(|ns| crate::tenant::proven(&ns, &partner, &self.ownership)) {
            return Ok(false);
        }
        let recorded = partner
            .status
            .as_ref()
            .and_then(|s| s.activation.as_ref())
            .and_then(|a| a.activated_at);
        if recorded.is_none() {
            self.record_status(&partner, at).await?;
            info!(
                partner = %kube::runtime::reflector::ObjectRef::from_obj(&partner),
                "an activation recorded in the tenant is now recorded on the Partner"
            );
        }
        self.mark_recorded(secret).await?;
        Ok(true)
    }

    /// Writes `status.activation.activatedAt` on the Partner as the activation service (to the
    /// second, as the Secret records it); retried, as it completes an activation already
    /// recorded.
    pub(super) async fn record_status(
        &self,
        partner: &Partner,
        at: DateTime<Utc>,
    ) -> kube::Result<()> {
        let api = Api::<Partner>::namespaced(
            self.client.clone(),
            &partner.namespace().unwrap_or_default(),
        );
        let at = at.trunc_subsecs(0);
        let mut current = partner.clone();
        status::transact(
            &api,
            &mut current,
            Writer::ActivationService,
            Persistence::Outcome,
            None,
            |_, status| {
                status.activation.get_or_insert_default().activated_at = Some(at);
            },
        )
        .await?;
        Ok(())
    }
}
