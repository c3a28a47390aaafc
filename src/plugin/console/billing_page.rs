//! The Billing page: per Distributor and month, the billable partner-days per SKU and per
//! Partner, the same report as `kubectl partner billing` (the same
//! [`crate::plugin::report::billing`]), with a bar per SKU and the CSV to download.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::Console;
use super::pages::scope_line;
use crate::plugin::billing::{Month, Report};
use crate::plugin::names::{self, Kind};
use crate::plugin::{Error, report};

/// `?distributor=&month=`.
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(default)]
pub struct Ask {
    pub distributor: String,
    /// `YYYY-MM`; empty: this month.
    pub month: String,
}

/// A SKU's bar: its share of the largest SKU's partner-days, in percent.
#[derive(Serialize)]
struct Bar {
    sku: String,
    partners: usize,
    partner_days: usize,
    percent: usize,
}

fn bars(report: &Report) -> Vec<Bar> {
    let most = report
        .skus
        .iter()
        .map(|s| s.partner_days)
        .max()
        .unwrap_or(0)
        .max(1);
    report
        .skus
        .iter()
        .map(|s| Bar {
            sku: s.sku.clone(),
            partners: s.partners,
            partner_days: s.partner_days,
            percent: s.partner_days * 100 / most,
        })
        .collect()
}

/// The report asked for, when a Distributor is named.
async fn read(console: &Console, ask: &Ask) -> Option<Result<Report, Error>> {
    if ask.distributor.is_empty() {
        return None;
    }
    Some(
        async {
            names::check(
                "distributor",
                "Distributor",
                &ask.distributor,
                Kind::Subdomain,
            )?;
            let ctx = console.ctx_for(&console.ctx.namespace, false)?;
            let month = match ask.month.as_str() {
                "" => Month::of(ctx.now),
                value => Month::parse(value)?,
            };
            report::billing(&ctx, &ask.distributor, month).await
        }
        .await,
    )
}

/// `GET /billing`.
pub async fn page(State(console): State<Arc<Console>>, Query(ask): Query<Ask>) -> Html<String> {
    let found = read(&console, &ask).await;
    let distributors: Vec<String> = console
        .store
        .read(|_, distributors| distributors.keys().cloned().collect());
    let (report, error) = match found {
        Some(Ok(report)) => (Some(report), None),
        Some(Err(e)) => (None, Some(e.0)),
        None => (None, None),
    };
    let csv = format!(
        "/billing.csv?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("distributor", &ask.distributor)
            .append_pair("month", report.as_ref().map_or("", |r| r.month.as_str()))
            .finish()
    );
    Html(console.templates.render(
        "billing.html",
        context! {
            csrf => console.door.csrf(),
            title => "Billing",
            page => "billing",
            scope => scope_line(&console),
            ask => &ask,
            distributors => distributors,
            bars => report.as_ref().map(bars),
            report => report,
            failure => error,
            csv => csv,
        },
    ))
}

/// `GET /billing.csv`: the report's CSV, as `kubectl partner billing -o csv` prints it.
pub async fn csv(State(console): State<Arc<Console>>, Query(ask): Query<Ask>) -> Response {
    match read(&console, &ask).await {
        Some(Ok(report)) => {
            let file = format!(
                "attachment; filename=\"billing-{}-{}.csv\"",
                report.distributor, report.month
            );
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (header::CONTENT_DISPOSITION, file),
                ],
                report.csv(),
            )
                .into_response()
        }
        Some(Err(e)) => (StatusCode::BAD_REQUEST, e.0).into_response(),
        None => (StatusCode::BAD_REQUEST, "name a distributor").into_response(),
    }
}
