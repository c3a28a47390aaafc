//! The commands that change a Partner: `convert`, `auto-upgrade`, `renew`,
//! `resend-activation`. Each refuses what the portal would not offer, with the reason, and
//! writes by server-side apply ([`super::ssa`]).

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;

use super::dates::{exact, exact_and_relative, parse_future_date};
use super::output::{noteln, putln};
use super::{Ctx, Error, Progress, Refusal, Result, WaitArgs, observed, ssa};
use crate::api::{Partner, SubscriptionLevel, find_condition, types};
use crate::lifecycle::reasons;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The Partner.
    pub name: String,
    /// When Production ends (2027-06-30, RFC 3339, or +90d); default: no end.
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct AutoUpgradeArgs {
    /// The Partner.
    pub name: String,
    /// on: the trial converts to Production at its end; off: it expires.
    pub value: OnOff,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// The Partner.
    pub name: String,
    /// The new end of Production (2027-06-30, RFC 3339, or +90d).
    #[arg(long, value_name = "DATE")]
    pub expires: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Args, Debug)]
pub struct ResendArgs {
    /// The Partner.
    pub name: String,
    #[command(flatten)]
    pub wait: WaitArgs,
}

fn level_of(partner: &Partner) -> SubscriptionLevel {
    partner
        .status
        .as_ref()
        .and_then(|s| s.subscription_level)
        .unwrap_or_default()
}

/// Whether the Partner's Production subscription ever started (an Expired one that did is an
/// ended Production subscription, not an expired trial).
fn was_production(partner: &Partner) -> bool {
    partner
        .status
        .as_ref()
        .is_some_and(|s| s.production.is_some())
}

fn ready_message(partner: &Partner) -> String {
    partner
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_else(|| "no Ready condition".into())
}

/// Checks that `partner` may be converted, and writes the conversion (with `expires`, when
/// Production ends): what `convert` does before it waits, and the console's Convert.
pub async fn request_conversion(
    ctx: &Ctx,
    partner: &Partner,
    expires: Option<&str>,
) -> std::result::Result<Partner, Refusal> {
    let name = partner.metadata.name.as_deref().unwrap_or_default();
    let q = ctx.qualified(name);
    match level_of(partner) {
        SubscriptionLevel::Trial => {}
        SubscriptionLevel::Expired if !was_production(partner) => {}
        SubscriptionLevel::Production => {
            return Err(Error(format!(
                "partner {q} cannot be converted: its subscription level is Production, not \
                 Trial (`kubectl partner renew {name} --expires DATE` sets a new expiration date)"
            ))
            .into());
        }
        SubscriptionLevel::Expired => {
            return Err(Error(format!(
                "partner {q} cannot be converted: its Production subscription expired, it is no \
                 trial (`kubectl partner renew {name} --expires DATE` renews it)"
            ))
            .into());
        }
        SubscriptionLevel::Pending => {
            return Err(Error(format!(
                "partner {q} cannot be converted: its subscription level is Pending, not Trial \
                 ({})",
                ready_message(partner)
            ))
            .into());
        }
    }
    let expires = expires
        .map(|v| parse_future_date("--expires", v, ctx.now))
        .transpose()
        .map_err(|line| Refusal::Argument {
            field: "spec.subscription.expirationDate".into(),
            line,
        })?;
    let mut changes: Vec<(&[&str], serde_json::Value)> =
        vec![(&["spec", "subscription", "level"], json!("Production"))];
    if let Some(at) = expires {
        changes.push((
            &["spec", "subscription", "expirationDate"],
            json!(exact(at)),
        ));
    }
    ctx.try_apply(name, Some(partner), &changes, false).await
}

pub async fn convert(ctx: &Ctx, args: ConvertArgs) -> Result<()> {
    let name = &args.name;
    let partner = ctx.partner(name).await?;
    let q = ctx.qualified(name);
    request_conversion(ctx, &partner, args.expires.as_deref()).await?;
    if !args.wait.wait {
        putln!("partner {q}: conversion to Production requested");
        return Ok(());
    }
    let converted = ctx
        .wait_for(name, args.wait.timeout, |p| {
            if !observed(p) {
                return Progress::Waiting("the operator has not looked at the change yet".into());
            }
            match level_of(p) {
                SubscriptionLevel::Production => Progress::Done(p.clone()),
                _ if ready_reason(p) == Some(reasons::EXPIRATION_DATE_IN_PAST) => Progress::Failed(
                    format!("partner {q}: conversion refused: {}", ready_message(p)),
                ),
                level => Progress::Waiting(format!("{level}: {}", ready_message(p))),
            }
        })
        .await?;
    let status = converted.status.clone().unwrap_or_default();
    putln!("partner {q} converted to Production");
    print_production(&status, ctx.now);
    Ok(())
}

fn ready_reason(partner: &Partner) -> Option<&str> {
    partner
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .map(|c| c.reason.as_str())
}

fn print_production(status: &crate::api::PartnerStatus, now: DateTime<Utc>) {
    if let Some(billing) = &status.billing {
        let period = billing.periods.len().max(1);
        putln!(
            "  billing:  to {} since {} (billing period {period})",
            billing.billed_to,
            exact_and_relative(billing.started_at, now)
        );
    }
    match status.expires_at {
        Some(at) => putln!("  expires:  {}", exact_and_relative(at, now)),
        None => putln!("  expires:  never (no expiration date)"),
    }
}

/// Writes `spec.subscription.autoUpgrade`: `auto-upgrade`'s write, and the console's.
pub async fn set_auto_upgrade(
    ctx: &Ctx,
    partner: &Partner,
    on: bool,
) -> std::result::Result<Partner, Refusal> {
    let name = partner.metadata.name.as_deref().unwrap_or_default();
    ctx.try_apply(
        name,
        Some(partner),
        &[(&["spec", "subscription", "autoUpgrade"], json!(on))],
        false,
    )
    .await
}

pub async fn auto_upgrade(ctx: &Ctx, args: AutoUpgradeArgs) -> Result<()> {
    let name = &args.name;
    let partner = ctx.partner(name).await?;
    let q = ctx.qualified(name);
    let on = args.value == OnOff::On;
    set_auto_upgrade(ctx, &partner, on).await?;
    let word = if on { "on" } else { "off" };
    let status = partner.status.clone().unwrap_or_default();
    match (level_of(&partner), &status.trial) {
        (SubscriptionLevel::Trial, Some(trial)) => {
            let then = if on {
                "converts to Production"
            } else {
                "expires, unless converted before"
            };
            putln!(
                "partner {q}: auto-upgrade {word}: the trial ends on {} and then {then}",
                exact_and_relative(trial.ends_at, ctx.now)
            );
        }
        (level, _) => putln!(
            "partner {q}: auto-upgrade {word} (its level is {level}: auto-upgrade matters only \
             during a trial)"
        ),
    }
    Ok(())
}

/// Checks that `partner` may be renewed and writes its new expiration date `expires`: what
/// `renew` does before it waits, and the console's Renew. The date written.
pub async fn request_renewal(
    ctx: &Ctx,
    partner: &Partner,
    expires: &str,
) -> std::result::Result<DateTime<Utc>, Refusal> {
    let name = partner.metadata.name.as_deref().unwrap_or_default();
    let q = ctx.qualified(name);
    let level = level_of(partner);
    match level {
        SubscriptionLevel::Production => {}
        SubscriptionLevel::Expired if was_production(partner) => {}
        SubscriptionLevel::Expired => {
            return Err(Error(format!(
                "partner {q} cannot be renewed: its trial expired, it never was in Production \
                 (`kubectl partner convert {name}` converts it)"
            ))
            .into());
        }
        _ => {
            return Err(Error(format!(
                "partner {q} cannot be renewed: its subscription level is {level}, not Production \
                 (`kubectl partner convert {name} --expires DATE` converts a trial)"
            ))
            .into());
        }
    }
    let until =
        parse_future_date("--expires", expires, ctx.now).map_err(|line| Refusal::Argument {
            field: "spec.subscription.expirationDate".into(),
            line,
        })?;
    ctx.try_apply(
        name,
        Some(partner),
        &[(
            &["spec", "subscription", "expirationDate"],
            json!(exact(until)),
        )],
        false,
    )
    .await?;
    Ok(until)
}

pub async fn renew(ctx: &Ctx, args: RenewArgs) -> Result<()> {
    let name = &args.name;
    let partner = ctx.partner(name).await?;
    let q = ctx.qualified(name);
    let level = level_of(&partner);
    let periods_before = partner
        .status
        .as_ref()
        .and_then(|s| s.billing.as_ref())
        .map_or(0, |b| b.periods.len().max(1));
    let until = request_renewal(ctx, &partner, &args.expires).await?;
    if !args.wait.wait {
        putln!("partner {q}: Production until {} requested", exact(until));
        return Ok(());
    }
    let renewed = ctx
        .wait_for(name, args.wait.timeout, |p| {
            let status = p.status.clone().unwrap_or_default();
            match (observed(p), level_of(p)) {
                (false, _) => {
                    Progress::Waiting("the operator has not looked at the change yet".into())
                }
                (true, SubscriptionLevel::Production) if status.expires_at == Some(until) => {
                    Progress::Done(p.clone())
                }
                (true, level) => Progress::Failed(format!(
                    "partner {q} was not renewed: it is {level} ({})",
                    ready_message(p)
                )),
            }
        })
        .await?;
    let status = renewed.status.clone().unwrap_or_default();
    let periods = status
        .billing
        .as_ref()
        .map_or(0, |b| b.periods.len().max(1));
    if level == SubscriptionLevel::Expired && periods > periods_before {
        putln!("partner {q} renewed: Production again, a new billing period");
    } else {
        putln!("partner {q}: Production extended");
    }
    print_production(&status, ctx.now);
    Ok(())
}

/// The Partner API field a resend request is written to, and where the operator says it
/// handled it.
const RESEND_FIELD: &str = "spec.activation.resendRequest";

/// Checks that `partner` awaits activation and writes a resend request: what
/// `resend-activation` does before it waits, and the console's Resend. The request written.
pub async fn request_resend(ctx: &Ctx, partner: &Partner) -> std::result::Result<String, Refusal> {
    let name = partner.metadata.name.as_deref().unwrap_or_default();
    let q = ctx.qualified(name);
    let status = partner.status.clone().unwrap_or_default();
    if find_condition(&status.conditions, types::ACTIVATED).is_some_and(|c| c.status == "True") {
        return Err(Error(format!(
            "partner {q} is already activated: there is no activation email to resend"
        ))
        .into());
    }
    let request = exact(ctx.now);
    let api = dynamic_partners(ctx);
    let current = api
        .get(name)
        .await
        .map_err(|e| Refusal::from_api(&format!("partner {q}"), e))?;
    let current = serde_json::to_value(&current).expect("an object serializes");
    write_resend_request(ctx, &api, name, &q, &current, &request).await?;
    Ok(request)
}

/// Partners read and written as plain JSON: the resend field may be newer than this build's
/// types.
fn dynamic_partners(ctx: &Ctx) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<Partner>(&());
    Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &resource)
}

pub async fn resend_activation(ctx: &Ctx, args: ResendArgs) -> Result<()> {
    let name = &args.name;
    let partner = ctx.partner(name).await?;
    let q = ctx.qualified(name);
    let request = request_resend(ctx, &partner).await?;
    let api = dynamic_partners(ctx);
    if !args.wait.wait {
        putln!("partner {q}: activation resend requested ({request})");
        return Ok(());
    }
    let handled = resend_handled(&api, name, &q, &request, args.wait.timeout).await?;
    let sent = handled["status"]["activation"]["sentAt"]
        .as_str()
        .unwrap_or("-");
    putln!(
        "partner {q}: activation email resent to {} (sent at {sent})",
        partner.spec.notification_email
    );
    Ok(())
}

/// Writes `spec.activation.resendRequest` (by server-side apply, as plain JSON: the field may
/// be newer than this build's types), and makes sure the API server kept it.
async fn write_resend_request(
    ctx: &Ctx,
    api: &Api<DynamicObject>,
    name: &str,
    q: &str,
    current: &serde_json::Value,
    request: &str,
) -> std::result::Result<(), Refusal> {
    let config = ssa::applied_config(
        name,
        &ctx.namespace,
        Some(current),
        &[(&["spec", "activation", "resendRequest"], json!(request))],
    );
    let mut params = PatchParams::apply(ssa::FIELD_MANAGER);
    params.force = ctx.force_conflicts;
    params.field_validation = Some(kube::api::ValidationDirective::Strict);
    let unsupported = |detail: &str| {
        Error(format!(
            "partner {q}: this cluster's Partner API has no {RESEND_FIELD} (its CRD predates \
             activation resends: install the current CRDs){detail}"
        ))
    };
    let written = match api.patch(name, &params, &Patch::Apply(&config)).await {
        Ok(object) => serde_json::to_value(&object).expect("an object serializes"),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let conflicts = ssa::conflicts(&status);
            let line = ssa::conflict_line(q, &conflicts);
            return Err(Refusal::Conflict { conflicts, line });
        }
        // The embedded server answers 400 (unknown field, strict validation); kube-apiserver
        // cannot even build the apply's typed object and answers 500 (`.spec.activation: field
        // not declared in schema`).
        Err(kube::Error::Api(status))
            if status.message.contains("spec.activation")
                || status.message.contains("resendRequest") =>
        {
            let first = status
                .message
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            return Err(unsupported(&format!(": {first}")).into());
        }
        Err(e) => {
            return Err(Refusal::from_api(
                &format!("the API server refused partner {q}"),
                e,
            ));
        }
    };
    if written["spec"]["activation"]["resendRequest"] != json!(request) {
        return Err(unsupported(": the API server dropped the field").into());
    }
    Ok(())
}

/// Waits until the operator handled the resend `request`; the Partner as it then is.
async fn resend_handled(
    api: &Api<DynamicObject>,
    name: &str,
    q: &str,
    request: &str,
    timeout: std::time::Duration,
) -> Result<serde_json::Value> {
    noteln!("waiting for {q}: the operator to handle the resend request");
    tokio::time::timeout(timeout, async {
        loop {
            if let Ok(object) = api.get(name).await {
                let object = serde_json::to_value(&object).expect("an object serializes");
                if object["status"]["activation"]["resendHandled"] == json!(request) {
                    return object;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
    .await
    .map_err(|_| {
        Error(format!(
            "timed out after {}s waiting for the operator to handle the resend request of {q}",
            timeout.as_secs()
        ))
    })
}
