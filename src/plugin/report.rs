//! `kubectl partner billing DISTRIBUTOR [--month YYYY-MM] [-o table|csv|json]`.

use clap::{Args, ValueEnum};
use kube::api::Api;

use super::billing::{Month, with_statement};
use super::output::{self, put};
use super::{Ctx, Error, Result, api_error};
use crate::api::{BillingStatement, Partner};
use crate::statements::naming;

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

/// The month's report of `distributor`: a closed month from its statement alone, else the
/// Partners the user may list beside the statement's deleted ones. What `billing` prints and
/// the console's Billing page shows.
pub async fn billing(ctx: &Ctx, distributor: &str, month: Month) -> Result<super::billing::Report> {
    let parts = statement_parts(ctx, distributor, month).await?;
    let partners = if parts.iter().any(|p| p.spec.closed) {
        vec![]
    } else {
        Api::<Partner>::all(ctx.client.clone())
            .list(&Default::default())
            .await
            .map_err(|e| api_error("listing partners", e))?
            .items
    };
    let billed_here = !parts.is_empty()
        || partners.iter().any(|p| {
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
    Ok(with_statement(
        distributor,
        &partners,
        &parts,
        month,
        ctx.now,
    ))
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

/// The parts of `distributor`'s statement of `month` (none when the month has none).
async fn statement_parts(
    ctx: &Ctx,
    distributor: &str,
    month: Month,
) -> Result<Vec<BillingStatement>> {
    let params = kube::api::ListParams::default().labels(&naming::selector(distributor, month));
    let listed = Api::<BillingStatement>::all(ctx.client.clone())
        .list(&params)
        .await;
    let mut parts = match listed {
        Ok(list) => list.items,
        // A cluster whose CRDs predate statements: the Partners alone.
        Err(kube::Error::Api(status)) if status.code == 404 => vec![],
        Err(e) => return Err(api_error("listing billing statements", e)),
    };
    parts.retain(|s| s.spec.distributor == distributor && s.spec.month == month.to_string());
    Ok(parts)
}
