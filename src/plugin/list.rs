//! `kubectl partner list [-A] [-o wide|json|yaml]`.

use clap::Args;
use kube::api::Api;
use serde::Serialize;
use std::collections::BTreeMap;

use super::dates::{days_left, exact};
use super::output::{self, noteln, put};
use super::story::{activation_word, auto_upgrade};
use super::{Ctx, Output, Result, api_error, table};
use crate::api::{Distributor, Partner, SubscriptionLevel, find_condition, types};

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Partners in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// wide (more columns), json or yaml (the rows as data).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

/// One line of the list.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub organization: String,
    pub distributor: String,
    pub level: String,
    pub activation: String,
    /// Started days left (`14d`, `1d`), `expired`, or `-` when the level has no end.
    pub days_left: String,
    pub expires_at: Option<String>,
    /// `on`, `off`, or `default` when the Distributor cannot be read.
    pub auto_upgrade: String,
    pub billing_since: Option<String>,
    pub tenant: Option<String>,
    pub ready: String,
}

pub fn row(
    partner: &Partner,
    distributor: Option<&Distributor>,
    now: chrono::DateTime<chrono::Utc>,
) -> Row {
    let status = partner.status.clone().unwrap_or_default();
    let level = status.subscription_level.unwrap_or_default();
    let days = match (level, status.expires_at) {
        (SubscriptionLevel::Expired, _) => "expired".to_string(),
        (SubscriptionLevel::Trial | SubscriptionLevel::Production, Some(at)) => days_left(at, now),
        _ => "-".to_string(),
    };
    let ready = match find_condition(&status.conditions, types::READY) {
        Some(c) if c.status == "True" => "True".to_string(),
        Some(c) => format!("False ({})", c.reason),
        None => "-".to_string(),
    };
    Row {
        namespace: partner.metadata.namespace.clone().unwrap_or_default(),
        name: partner.metadata.name.clone().unwrap_or_default(),
        organization: partner.spec.organization_name.clone(),
        distributor: partner.spec.distributor_ref.name.clone(),
        level: level.to_string(),
        activation: activation_word(partner).to_string(),
        days_left: days,
        // Once Expired, when it expired: the end of the last billing period, else of the trial.
        expires_at: status.expires_at.or_else(|| expired_at(&status)).map(exact),
        auto_upgrade: match auto_upgrade(partner, distributor).0 {
            Some(true) => "on",
            Some(false) => "off",
            None => "default",
        }
        .to_string(),
        billing_since: status
            .billing
            .as_ref()
            .filter(|b| b.ended_at.is_none())
            .map(|b| exact(b.started_at)),
        tenant: status.tenant.map(|t| t.namespace),
        ready,
    }
}

/// When an Expired Partner's level ended: its last billing period's end, else its trial's.
fn expired_at(status: &crate::api::PartnerStatus) -> Option<chrono::DateTime<chrono::Utc>> {
    if status.subscription_level != Some(SubscriptionLevel::Expired) {
        return None;
    }
    let billing_end = status.billing.as_ref().and_then(|b| b.ended_at);
    billing_end.or_else(|| status.trial.as_ref().map(|t| t.ends_at))
}

pub fn render(rows: &[Row], all_namespaces: bool, wide: bool) -> String {
    let mut header = vec![];
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "ORGANIZATION",
        "DISTRIBUTOR",
        "LEVEL",
        "ACTIVATION",
        "DAYS LEFT",
        "AUTO-UPGRADE",
        "BILLING SINCE",
    ]);
    if wide {
        header.extend(["EXPIRES", "READY", "TENANT"]);
    }
    let mut lines = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for row in rows {
        let mut line = vec![];
        if all_namespaces {
            line.push(row.namespace.clone());
        }
        line.extend([
            row.name.clone(),
            row.organization.clone(),
            row.distributor.clone(),
            row.level.clone(),
            row.activation.clone(),
            row.days_left.clone(),
            row.auto_upgrade.clone(),
            dash(&row.billing_since),
        ]);
        if wide {
            line.extend([dash(&row.expires_at), row.ready.clone(), dash(&row.tenant)]);
        }
        lines.push(line);
    }
    table::render(&lines)
}

pub async fn run(ctx: &Ctx, args: ListArgs) -> Result<()> {
    let api: Api<Partner> = if args.all_namespaces {
        Api::all(ctx.client.clone())
    } else {
        ctx.partners()
    };
    let mut partners = api
        .list(&Default::default())
        .await
        .map_err(|e| api_error("listing partners", e))?
        .items;
    partners.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    // Distributors tell the default auto-upgrade; a user who may not read them sees `default`.
    let distributors: BTreeMap<String, Distributor> = ctx
        .distributors()
        .list(&Default::default())
        .await
        .map(|list| {
            list.items
                .into_iter()
                .filter_map(|d| Some((d.metadata.name.clone()?, d)))
                .collect()
        })
        .unwrap_or_default();
    let rows: Vec<Row> = partners
        .iter()
        .map(|p| row(p, distributors.get(&p.spec.distributor_ref.name), ctx.now))
        .collect();
    match args.output {
        Some(Output::Json) => {
            output::out_json(&serde_json::to_string_pretty(&rows).expect("rows serialize"))
        }
        Some(Output::Yaml) => put!("{}", serde_yaml::to_string(&rows).expect("rows serialize")),
        output => {
            if rows.is_empty() {
                if args.all_namespaces {
                    noteln!("No partners found.");
                } else {
                    noteln!("No partners found in namespace {}.", ctx.namespace);
                }
            } else {
                put!(
                    "{}",
                    render(&rows, args.all_namespaces, output == Some(Output::Wide))
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(status: serde_json::Value) -> Partner {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "partner-operator.io/v1alpha1",
            "kind": "Partner",
            "metadata": {"name": "contoso", "namespace": "partners"},
            "spec": {
                "organizationName": "Contoso",
                "notificationEmail": "a@b.example",
                "distributorRef": {"name": "northwind"},
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_expired_partner_shows_when_it_expired() {
        let now = "2027-04-01T00:00:00Z".parse().unwrap();
        let trial = expired(serde_json::json!({
            "subscriptionLevel": "Expired",
            "trial": {"startedAt": "2027-03-01T09:00:00Z", "endsAt": "2027-03-15T09:00:00Z"},
        }));
        let row = row(&trial, None, now);
        assert_eq!(row.expires_at.as_deref(), Some("2027-03-15T09:00:00Z"));
        assert_eq!(row.days_left, "expired");
        let production = expired(serde_json::json!({
            "subscriptionLevel": "Expired",
            "trial": {"startedAt": "2027-01-01T09:00:00Z", "endsAt": "2027-01-15T09:00:00Z"},
            "billing": {"billedTo": "northwind", "startedAt": "2027-01-15T09:00:00Z",
                        "endedAt": "2027-03-10T00:00:00Z"},
        }));
        let row = super::row(&production, None, now);
        assert_eq!(row.expires_at.as_deref(), Some("2027-03-10T00:00:00Z"));
    }
}
