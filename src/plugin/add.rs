//! `kubectl partner add NAME --org ... --email ...`: the portal's "Add partner".

use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use serde_json::json;

use super::story::{facts, facts_lines};
use super::{
    Ctx, Error, Progress, Refusal, Result, WaitArgs, api_error, dates, names, observed, output,
};
use crate::api::{Partner, find_condition, grammar, types};
use crate::lifecycle::reasons;

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The Partner's name (lower-case letters, digits, '-' and '.').
    pub name: String,
    /// The partner's organization name, as its emails show it.
    #[arg(long, value_name = "NAME")]
    pub org: String,
    /// Where the partner receives its activation link and notices.
    #[arg(long, value_name = "ADDRESS")]
    pub email: String,
    /// The Distributor (default: the one that accepts Partners from the namespace).
    #[arg(long, value_name = "NAME")]
    pub distributor: Option<String>,
    /// The trial does not convert to Production by itself at its end.
    #[arg(long)]
    pub no_auto_upgrade: bool,
    /// Start in Production, without a trial.
    #[arg(long)]
    pub production: bool,
    /// With --production: when Production ends (2027-06-30, RFC 3339, or +90d).
    #[arg(long, value_name = "DATE", requires = "production")]
    pub expires: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Ready reasons that will not turn into Ready by waiting a little.
const FAILED: [&str; 6] = [
    reasons::DISTRIBUTOR_NOT_FOUND,
    reasons::NAMESPACE_NOT_ALLOWED,
    reasons::TENANT_NAMESPACE_TAKEN,
    reasons::EMAIL_DELIVERY_FAILED,
    reasons::EXPIRATION_DATE_IN_PAST,
    reasons::EXPIRED,
];

fn check_org(org: &str) -> Result<()> {
    let pattern = regex::Regex::new(crate::api::ORGANIZATION_NAME_PATTERN).expect("a pattern");
    let length = org.chars().count();
    if (1..=256).contains(&length) && pattern.is_match(org) {
        Ok(())
    } else {
        Err(Error(format!(
            "--org: {org:?} is not an organization name (1 to 256 characters, no control \
             characters, no \"=?\")"
        )))
    }
}

/// A Partner to create: what the portal's "Add partner" form and `add`'s flags say.
#[derive(Clone, Debug, Default)]
pub struct NewPartner {
    pub name: String,
    pub org: String,
    pub email: String,
    /// None: the one Distributor that accepts the namespace.
    pub distributor: Option<String>,
    pub no_auto_upgrade: bool,
    pub production: bool,
    pub expires: Option<String>,
}

/// A refused argument: the spec field it would be written to, and the line naming its flag.
fn argument(field: &str, line: String) -> Refusal {
    Refusal::Argument {
        field: field.to_string(),
        line,
    }
}

/// Checks `new` and creates it by server-side apply: what `add` does before it waits, and
/// what the console's Apply does.
pub async fn create(ctx: &Ctx, new: &NewPartner) -> std::result::Result<Partner, Refusal> {
    names::check("NAME", "Partner", &new.name, names::Kind::Subdomain)
        .map_err(|e| argument("metadata.name", e.0))?;
    check_org(&new.org).map_err(|e| argument("spec.organizationName", e.0))?;
    grammar::parse_email(&new.email).map_err(|e| {
        argument(
            "spec.notificationEmail",
            format!("--email: {:?} is {e}", new.email),
        )
    })?;
    let expires = new
        .expires
        .as_deref()
        .map(|value| dates::parse_future_date("--expires", value, ctx.now))
        .transpose()
        .map_err(|e| argument("spec.subscription.expirationDate", e))?;
    let name = &new.name;
    let distributor = match &new.distributor {
        Some(d) => {
            names::check("--distributor", "Distributor", d, names::Kind::Subdomain)
                .map_err(|e| argument("spec.distributorRef.name", e.0))?;
            d.clone()
        }
        None => accepting_distributor(ctx)
            .await
            .map_err(|e| argument("spec.distributorRef.name", e.0))?,
    };
    let existing = ctx
        .partners()
        .get_opt(name)
        .await
        .map_err(|e| Refusal::from_api(&format!("partner {}", ctx.qualified(name)), e))?;
    if existing.is_some() {
        return Err(argument(
            "metadata.name",
            format!(
                "partner {name:?} already exists in namespace {:?}",
                ctx.namespace
            ),
        ));
    }
    let mut changes: Vec<(&[&str], serde_json::Value)> = vec![
        (&["spec", "organizationName"], json!(new.org)),
        (&["spec", "notificationEmail"], json!(new.email)),
        (&["spec", "distributorRef", "name"], json!(distributor)),
    ];
    if new.no_auto_upgrade {
        changes.push((&["spec", "subscription", "autoUpgrade"], json!(false)));
    }
    if new.production {
        changes.push((&["spec", "subscription", "level"], json!("Production")));
    }
    if let Some(at) = expires {
        changes.push((
            &["spec", "subscription", "expirationDate"],
            json!(dates::exact(at)),
        ));
    }
    ctx.try_apply(name, None, &changes, false).await
}

pub async fn run(ctx: &Ctx, args: AddArgs) -> Result<()> {
    let new = NewPartner {
        name: args.name.clone(),
        org: args.org,
        email: args.email,
        distributor: args.distributor,
        no_auto_upgrade: args.no_auto_upgrade,
        production: args.production,
        expires: args.expires,
    };
    let created = create(ctx, &new).await?;
    let name = &new.name;
    output::out(&format!("partner {} created\n", ctx.qualified(name)));
    if !args.wait.wait {
        return Ok(());
    }
    let partner = ctx
        .wait_for(name, args.wait.timeout, |p| ready_or_failed(ctx, p))
        .await?;
    let distributor = ctx.distributor(&created.spec.distributor_ref.name).await;
    output::out(&facts_lines(&facts(
        &partner,
        distributor.as_ref(),
        ctx.now,
    )));
    Ok(())
}

fn ready_or_failed(ctx: &Ctx, partner: &Partner) -> Progress<Partner> {
    if !observed(partner) {
        return Progress::Waiting("the operator has not looked at it yet".into());
    }
    let conditions = &partner.status.as_ref().expect("observed").conditions;
    match find_condition(conditions, types::READY) {
        Some(ready) if ready.status == "True" => Progress::Done(partner.clone()),
        Some(ready) if FAILED.contains(&ready.reason.as_str()) => Progress::Failed(format!(
            "partner {} is not Ready: {}: {}{}",
            ctx.qualified(partner.metadata.name.as_deref().unwrap_or_default()),
            ready.reason,
            ready.message,
            if ready.reason == reasons::EMAIL_DELIVERY_FAILED {
                " (the operator retries)"
            } else {
                ""
            }
        )),
        Some(ready) => Progress::Waiting(format!("{}: {}", ready.reason, ready.message)),
        None => Progress::Waiting("no Ready condition yet".into()),
    }
}

/// The one Distributor that accepts Partners from the namespace.
pub async fn accepting_distributor(ctx: &Ctx) -> Result<String> {
    let unknown = |why: String| {
        Error(format!(
            "--distributor: cannot tell which Distributor accepts namespace {:?} ({why}); name it",
            ctx.namespace
        ))
    };
    let namespace = Api::<Namespace>::all(ctx.client.clone())
        .get(&ctx.namespace)
        .await
        .map_err(|e| unknown(api_error("namespace", e).0))?;
    let distributors = ctx
        .distributors()
        .list(&Default::default())
        .await
        .map_err(|e| unknown(api_error("distributors", e).0))?;
    let accepting: Vec<String> = distributors
        .items
        .iter()
        .filter(|d| crate::binding::namespace_allowed(d, &namespace))
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    match accepting.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error(format!(
            "--distributor: no Distributor accepts Partners from namespace {:?}; name one, or \
             label the namespace partner-operator.io/distributor=<name>",
            ctx.namespace
        ))),
        several => Err(Error(format!(
            "--distributor: namespace {:?} is accepted by {}; name one",
            ctx.namespace,
            several.join(", ")
        ))),
    }
}
