//! The Partners page: the rows of the watch's store that pass the search and the filter,
//! sorted, rendered on the server in one pass (no request to the API server per page).

use std::sync::Arc;

use axum::extract::{Query as QueryParams, State};
use axum::response::Html;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use minijinja::context;
use serde::Serialize;

use super::rows::{COLUMNS, PAGE_SIZE, PageRow, Query};
use super::{Console, Scope};

/// A column heading: its link sorts by it, the other way when it already does.
#[derive(Serialize)]
struct Column {
    label: &'static str,
    href: String,
    current: bool,
    desc: bool,
}

fn columns(query: &Query) -> Vec<Column> {
    let current = if query.sort.is_empty() {
        "organization"
    } else {
        query.sort.as_str()
    };
    COLUMNS
        .iter()
        .map(|(key, label)| {
            let is_current = *key == current;
            let desc = is_current && !query.descending();
            let href = format!(
                "/?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("q", &query.q)
                    .append_pair("level", &query.level)
                    .append_pair("sort", key)
                    .append_pair("desc", if desc { "1" } else { "" })
                    .finish()
            );
            Column {
                label,
                href,
                current: is_current,
                desc: is_current && query.descending(),
            }
        })
        .collect()
}

/// What the header says the console shows.
pub fn scope_line(console: &Console) -> String {
    match &console.scope {
        Scope::Namespace(ns) => format!("namespace {ns}"),
        Scope::All => "every namespace".into(),
    }
}

/// The rows, the total, and the names of the Distributors that accept `namespace` (every
/// one when the namespace could not be read), read from the store at now.
pub fn read_rows(
    console: &Console,
    query: &Query,
    namespace: Option<&Namespace>,
) -> (Vec<PageRow>, usize, Vec<String>) {
    let now = crate::plugin::now().unwrap_or_else(|_| chrono::Utc::now());
    console.store.read(|partners, distributors| {
        let accepting = distributors
            .iter()
            .filter(|(_, d)| namespace.is_none_or(|ns| crate::binding::namespace_allowed(d, ns)))
            .map(|(name, _)| name.clone())
            .collect();
        (
            query.rows(partners, distributors, now),
            partners.len(),
            accepting,
        )
    })
}

/// The namespace Add partner creates in, for its Distributors; none when the user may not read
/// it (or the API server is slow to say).
async fn add_namespace(console: &Console) -> Option<Namespace> {
    let api = Api::<Namespace>::all(console.ctx.client.clone());
    let read = api.get_opt(&console.ctx.namespace);
    tokio::time::timeout(std::time::Duration::from_secs(2), read)
        .await
        .ok()?
        .ok()
        .flatten()
}

/// `GET /`: the Partners page.
pub async fn partners(
    State(console): State<Arc<Console>>,
    QueryParams(query): QueryParams<Query>,
) -> Html<String> {
    let namespace = add_namespace(&console).await;
    Html(render(&console, &query, namespace.as_ref()))
}

/// Which rows of the matching ones a page shows, and its links.
#[derive(Serialize)]
struct Paging {
    /// From 1; 0 when nothing matches.
    first: usize,
    last: usize,
    matching: usize,
    previous: Option<String>,
    next: Option<String>,
    /// Whether this is the last page: a row that appears live is added to it.
    room: bool,
}

/// The page of `rows` that `query` asks for.
fn paginate(mut rows: Vec<PageRow>, query: &Query) -> (Vec<PageRow>, Paging) {
    let matching = rows.len();
    let pages = matching.div_ceil(PAGE_SIZE).max(1);
    let page = query.page().min(pages);
    let start = (page - 1) * PAGE_SIZE;
    let end = (start + PAGE_SIZE).min(matching);
    let shown: Vec<PageRow> = rows.drain(start..end).collect();
    let paging = Paging {
        first: if matching == 0 { 0 } else { start + 1 },
        last: end,
        matching,
        previous: (page > 1).then(|| query.href(page - 1)),
        next: (page < pages).then(|| query.href(page + 1)),
        room: page == pages,
    };
    (shown, paging)
}

/// The Partners page for `query`.
pub fn render(console: &Console, query: &Query, namespace: Option<&Namespace>) -> String {
    let (rows, total, distributors) = read_rows(console, query, namespace);
    let (rows, paging) = paginate(rows, query);
    let sorted_by = COLUMNS
        .iter()
        .find(|(key, _)| *key == query.sort)
        .map_or("Organization", |(_, label)| label);
    console.templates.render(
        "partners.html",
        context! {
            csrf => console.door.csrf(),
            title => "Partners",
            page => "partners",
            scope => scope_line(console),
            error => console.store.error(),
            listed => console.store.listed(),
            query => query,
            levels => ["Trial", "Production", "Expired", "Pending"],
            columns => columns(query),
            sorted_by => format!("sorted by {sorted_by}"),
            rows => rows,
            paging => paging,
            page_size => PAGE_SIZE,
            total => total,
            all => console.scope == Scope::All,
            namespace => &console.ctx.namespace,
            distributors => distributors,
        },
    )
}

/// One row as the page has it, for a live update.
pub fn render_row(console: &Console, row: &PageRow) -> String {
    console.templates.render(
        "row.html",
        context! { r => row, all => console.scope == Scope::All },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Partner;

    fn partner(i: usize) -> Partner {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "partner-operator.io/v1alpha1", "kind": "Partner",
            "metadata": {"name": format!("partner-{i:05}"), "namespace": "partners"},
            "spec": {"organizationName": format!("Partner <{i}> & Co"),
                "notificationEmail": "a@b.example", "distributorRef": {"name": "northwind"}},
            "status": {
                "subscriptionLevel": if i.is_multiple_of(3) { "Production" } else { "Trial" },
                "expiresAt": "2027-03-15T09:00:00Z",
                "activation": {"sentAt": "2027-03-01T09:00:00Z",
                    "linkExpiresAt": "2099-03-08T09:00:00Z"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                    "message": "", "lastTransitionTime": "2027-03-01T09:00:00Z"}],
            },
        }))
        .expect("a Partner")
    }

    /// The figure in docs/plugin.md: 10,000 Partners rendered, searched and sorted.
    #[tokio::test]
    async fn ten_thousand_partners_render_at_once() {
        let console = Console::unconnected(Scope::Namespace("partners".into()));
        console.store.replace((0..10_000).map(partner).collect());
        let started = std::time::Instant::now();
        let html = render(&console, &Query::default(), None);
        let all = started.elapsed();
        assert_eq!(html.matches("<tr id=\"row--partners--").count(), PAGE_SIZE);
        assert!(html.contains("1–100 of 10000 partners"), "the count");
        let last = render(
            &console,
            &Query {
                page: "100".into(),
                ..Query::default()
            },
            None,
        );
        assert!(last.contains("9901–10000 of 10000 partners"));
        assert!(
            last.contains(r#"data-room="true""#),
            "rows appear on the last page"
        );
        assert!(html.contains(r#"data-room="false""#));
        let started = std::time::Instant::now();
        let search = Query {
            q: "<42".into(),
            sort: "expires".into(),
            desc: "1".into(),
            ..Query::default()
        };
        let found = render(&console, &search, None);
        let searched = started.elapsed();
        assert_eq!(found.matches("<tr id=\"row--").count(), 100);
        assert!(found.contains("1–100 of 111 partners (10000 in all)"));
        let one = Query {
            q: "<42>".into(),
            ..Query::default()
        };
        assert!(render(&console, &one, None).contains("Partner &lt;42&gt; &amp; Co"));
        crate::plugin::output::note(&format!(
            "10,000 partners: the page in {} ms ({} KiB), a search in {} ms",
            all.as_millis(),
            html.len() / 1024,
            searched.as_millis()
        ));
        // Unoptimized test builds are several times slower than the plugin users run.
        assert!(all < std::time::Duration::from_secs(10), "{all:?}");
    }
}
