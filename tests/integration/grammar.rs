//! Admission and the operator share one grammar for dates and email addresses: over a corpus of
//! values (the ones kube-apiserver's own formats are lenient about included), the API server
//! takes exactly those that `api::grammar` parses. Dates are tried in a Partner's spec and in
//! its status (whoever writes the status is held to the grammar too), addresses in a Partner's
//! and a Distributor's spec. On the sandbox and on kube-apiserver.

use crate::support;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use partner_operator::api::grammar::{parse_date_time, parse_email};
use partner_operator::api::{Distributor, Partner};
use serde_json::{Value, json};
use support::*;

crate::on_both_servers!(admission_takes_exactly_the_operators_grammar,);

const DATES: &[&str] = &[
    "2027-06-30T00:00:00Z",
    "2027-06-30T00:00:00.5Z",
    "2027-06-30T00:00:00.123456789Z",
    "2027-06-30T02:00:00+02:00",
    "2027-06-30T00:00:00-00:00",
    "2027-06-29T19:00:00-05:00",
    "2028-02-29T12:00:00Z",
    // Years 1970 to 2999 only.
    "1970-01-01T00:00:00Z",
    "2999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
    "9999-12-31T00:00:00Z",
    // kube-apiserver's `date-time` format takes these; chrono does not.
    "2027-06-30T00:00:00+99:99",
    "2027-06-30T00:00:00,5Z",
    "2027-06-30T00:00:00Zt-x",
    // Lenient elsewhere, or plainly wrong.
    "2027-06-30t00:00:00z",
    "2027-06-30 00:00:00Z",
    "2027-06-30T00:00Z",
    "2027-06-30T00:00:00",
    "2027-02-30T00:00:00Z",
    "2027-02-29T00:00:00Z",
    "2027-06-30T24:00:00Z",
    "2027-06-30T23:59:60Z",
    "2027-06-30T00:00:00.Z",
    "2027-06-30T00:00:00.1234567890Z",
    "2027-13-01T00:00:00Z",
    "2027-06-30",
    "20270630T000000Z",
    "tomorrow",
];

const EMAILS: &[&str] = &[
    "admin@contoso.example",
    "a@b",
    "o'brien+trial@x-y.example",
    "UPPER.case@EXAMPLE.COM",
    "a!#$&*/=?^_`{|}~-@x.example",
    // A source route through the host after the @.
    "a!#$%&*/=?^_`{|}~-@x.example",
    "victim%elsewhere.example@x.example",
    // Go's `mail.ParseAddress` (kube-apiserver's `email` format) takes these.
    "Eve <eve@x.example>",
    "\"a b\"@x.example",
    "a@[127.0.0.1]",
    "(comment)a@x.example",
    "a@münchen.example",
    // SMTP's limit on the part before the @: 64 characters.
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.example",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.example",
    // Wrong anywhere.
    "a..b@x.example",
    ".a@x.example",
    "a.@x.example",
    "a@-x.example",
    "a@x-.example",
    "a@x..example",
    "a@",
    "@x.example",
    "plain",
    "a@x.example\r\nBcc: c@y.example",
];

fn untyped<K: kube::Resource<DynamicType = ()>>(
    h: &Harness,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<K>(&());
    match namespace {
        Some(ns) => Api::namespaced_with(h.client.clone(), ns, &resource),
        None => Api::all_with(h.client.clone(), &resource),
    }
}

/// Whether the server takes `object` (a dry run: nothing is stored).
async fn takes(api: &Api<DynamicObject>, object: Value) -> bool {
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api
        .create(&params, &serde_json::from_value(object).unwrap())
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 422 => false,
        Err(err) => panic!("{err}"),
    }
}

/// Whether the server takes `status` on the stored Partner `p` (a dry run).
async fn takes_status(api: &Api<DynamicObject>, status: Value) -> bool {
    let params = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    match api
        .patch_status("p", &params, &Patch::Merge(json!({"status": status})))
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 422 => false,
        Err(err) => panic!("{err}"),
    }
}

async fn admission_takes_exactly_the_operators_grammar(server: Server) {
    let h = Harness::start_servers(server).await;
    h.namespace("ns", &[]).await;
    h.apply(partner("ns", "p", "northwind")).await;
    let partners = untyped::<Partner>(&h, Some("ns"));
    let distributors = untyped::<Distributor>(&h, None);

    let mut disagreements = Vec::new();
    for date in DATES {
        let operator = parse_date_time(date).is_ok();
        let mut object = partner("ns", "q", "northwind");
        object["spec"]["subscription"] = json!({"expirationDate": date});
        let spec = takes(&partners, object).await;
        let status = takes_status(&partners, json!({"expiresAt": date})).await;
        let condition = takes_status(
            &partners,
            json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                "message": "", "lastTransitionTime": date}]}),
        )
        .await;
        if [spec, status, condition] != [operator; 3] {
            disagreements.push(format!(
                "date {date:?}: operator {operator}, spec {spec}, status {status}, condition {condition}"
            ));
        }
    }
    for email in EMAILS {
        let operator = parse_email(email).is_ok();
        let mut object = partner("ns", "q", "northwind");
        object["spec"]["notificationEmail"] = json!(email);
        let in_partner = takes(&partners, object).await;
        let mut object = distributor("northwind", true);
        object["spec"]["notificationEmail"] = json!(email);
        let in_distributor = takes(&distributors, object).await;
        let mut object = distributor("northwind", true);
        object["spec"]["email"] = json!({"replyTo": email});
        let in_reply_to = takes(&distributors, object).await;
        if [in_partner, in_distributor, in_reply_to] != [operator; 3] {
            disagreements.push(format!(
                "email {email:?}: operator {operator}, Partner {in_partner}, Distributor \
                 {in_distributor}, Reply-To {in_reply_to}"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    // The corpus has both kinds of value.
    assert!(DATES.iter().any(|d| parse_date_time(d).is_ok()));
    assert!(DATES.iter().any(|d| parse_date_time(d).is_err()));
    assert!(EMAILS.iter().any(|e| parse_email(e).is_ok()));
    assert!(EMAILS.iter().any(|e| parse_email(e).is_err()));
}
