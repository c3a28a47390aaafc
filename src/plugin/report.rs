//! `kubectl partner billing DISTRIBUTOR [--month YYYY-MM] [-o table|csv|json]`.

use clap::{Args, ValueEnum};
use kube::api::Api;

use super::billing::{Month, report};
use super::output::{self, put};
use super::{Ctx, Error, Result, api_error};
use crate::api::Partner;

#[derive(Args, Debug)]
pub struct BillingArgs {
    /// The Distributor billed.
    pub distributor: String,
    /// The month, YYYY-MM (default: the current month, UTC).
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = BillingOutput::Table)]
    pub output: BillingOutput,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillingOutput {
    Table,
    Csv,
    Json,
}

/// The month's report of `distributor`, from every Partner the user may list: what `billing`
/// prints and the console's Billing page shows.
pub async fn billing(ctx: &Ctx, distributor: &str, month: Month) -> Result<super::billing::Report> {
    let partners = Api::<Partner>::all(ctx.client.clone())
        .list(&Default::default())
        .await
        .map_err(|e| api_error("listing partners", e))?
        .items;
    let billed_here = partners.iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.billing.as_ref())
            .is_some_and(|b| b.billed_to == distributor)
    });
    if !billed_here && ctx.distributor(distributor).await.is_none() {
        return Err(Error(format!(
            "distributor {distributor:?} not found (and no Partner is billed to it)"
        )));
    }
    Ok(report(distributor, &partners, month, ctx.now))
}

pub async fn run(ctx: &Ctx, args: BillingArgs) -> Result<()> {
    let month = match &args.month {
        Some(value) => Month::parse(value)?,
        None => Month::of(ctx.now),
    };
    let report = billing(ctx, &args.distributor, month).await?;
    match args.output {
        BillingOutput::Table => put!("{}", report.table()),
        BillingOutput::Csv => put!("{}", report.csv()),
        BillingOutput::Json => {
            output::out_json(&serde_json::to_string_pretty(&report).expect("a report serializes"))
        }
    }
    Ok(())
}
