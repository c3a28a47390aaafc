//! The console's writes: Add partner's Apply and the Action menu. Each goes through the
//! command's own code (the same checks, the same server-side apply under `kubectl-partner`),
//! so the console and `kubectl partner` behave alike; the answer is JSON the page lays out
//! ([`super::answer`]). The page has seen the row; the write reads the Partner anew and the
//! command's checks decide on what it is now.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::Response;
use kube::api::DeleteParams;
use serde::Deserialize;

use super::Console;
use super::answer::{bad_form, done, error, refused};
use crate::api::Partner;
use crate::plugin::names::{self, Kind};
use crate::plugin::{Ctx, Refusal, add, change};

/// The form of an action on one Partner (each action reads the fields it needs).
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    /// `on`: take fields another manager owns over.
    pub force: String,
    pub expires: String,
    /// Automatic upgrade: `on` or `off`.
    pub value: String,
    /// Delete: the name, typed.
    pub confirm: String,
}

/// Add partner's form.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
pub struct AddForm {
    pub namespace: String,
    pub name: String,
    pub org: String,
    pub email: String,
    pub distributor: String,
    pub auto_upgrade: String,
    pub production: String,
    pub expires: String,
    pub force: String,
}

fn non_empty(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

/// The request's context and the Partner, read anew; or the answer that refuses.
async fn target(console: &Console, form: &Target) -> Result<(Ctx, Partner), Response> {
    let ctx = console
        .ctx_for(&form.namespace, form.force == "on")
        .map_err(|e| bad_form("namespace", e.0))?;
    names::check("NAME", "Partner", &form.name, Kind::Subdomain)
        .map_err(|e| bad_form("name", e.0))?;
    let partner = ctx.partner(&form.name).await.map_err(error)?;
    Ok((ctx, partner))
}

/// `POST /actions/add`.
pub async fn add(State(console): State<Arc<Console>>, Form(form): Form<AddForm>) -> Response {
    let ctx = match console.ctx_for(&form.namespace, form.force == "on") {
        Ok(ctx) => ctx,
        Err(e) => return bad_form("namespace", e.0),
    };
    let new = add::NewPartner {
        name: form.name.trim().to_string(),
        org: form.org.trim().to_string(),
        email: form.email.trim().to_string(),
        distributor: non_empty(&form.distributor).map(String::from),
        no_auto_upgrade: form.auto_upgrade != "on",
        production: form.production == "on",
        expires: non_empty(&form.expires).map(String::from),
    };
    if new.expires.is_some() && !new.production {
        return bad_form(
            "expires",
            "an expiration date is for Production: tick \"Production now\" or leave it empty"
                .into(),
        );
    }
    match add::create(&ctx, &new).await {
        Ok(_) => done(format!(
            "partner {} created: the operator provisions its tenant and emails the activation link",
            ctx.qualified(&new.name)
        )),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /actions/convert`.
pub async fn convert(State(console): State<Arc<Console>>, Form(form): Form<Target>) -> Response {
    let (ctx, partner) = match target(&console, &form).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    match change::request_conversion(&ctx, &partner, non_empty(&form.expires)).await {
        Ok(_) => done(format!(
            "partner {}: conversion to Production requested",
            ctx.qualified(&form.name)
        )),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /actions/auto-upgrade`.
pub async fn auto_upgrade(
    State(console): State<Arc<Console>>,
    Form(form): Form<Target>,
) -> Response {
    let on = match form.value.as_str() {
        "on" => true,
        "off" => false,
        _ => return bad_form("value", "choose on or off".into()),
    };
    let (ctx, partner) = match target(&console, &form).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    match change::set_auto_upgrade(&ctx, &partner, on).await {
        Ok(_) => done(format!(
            "partner {}: automatic upgrade {}",
            ctx.qualified(&form.name),
            form.value
        )),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /actions/renew`.
pub async fn renew(State(console): State<Arc<Console>>, Form(form): Form<Target>) -> Response {
    let (ctx, partner) = match target(&console, &form).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    match change::request_renewal(&ctx, &partner, form.expires.trim()).await {
        Ok(until) => done(format!(
            "partner {}: Production until {} requested",
            ctx.qualified(&form.name),
            crate::plugin::dates::exact(until)
        )),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /actions/resend`.
pub async fn resend(State(console): State<Arc<Console>>, Form(form): Form<Target>) -> Response {
    let (ctx, partner) = match target(&console, &form).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    match change::request_resend(&ctx, &partner).await {
        Ok(_) => done(format!(
            "partner {}: a new activation link is being sent to {}",
            ctx.qualified(&form.name),
            partner.spec.notification_email
        )),
        Err(refusal) => refused(refusal),
    }
}

/// `POST /actions/delete`: only when the name typed is the Partner's.
pub async fn delete(State(console): State<Arc<Console>>, Form(form): Form<Target>) -> Response {
    if form.confirm.trim() != form.name {
        return bad_form(
            "confirm",
            format!("type {:?} to confirm the deletion", form.name),
        );
    }
    let (ctx, partner) = match target(&console, &form).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let q = ctx.qualified(&form.name);
    let tenant = partner.status.as_ref().and_then(|s| s.tenant.as_ref());
    let fate = super::rows::tenant_fate(&partner, tenant.map(|t| t.namespace.as_str()));
    match ctx
        .partners()
        .delete(&form.name, &DeleteParams::default())
        .await
    {
        Ok(_) => done(format!("partner {q} deleted. {fate}")),
        Err(e) => refused(Refusal::from_api(&format!("deleting partner {q}"), e)),
    }
}
