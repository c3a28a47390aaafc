use proptest::prelude::*;

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn march() -> Month {
    Month::parse("2027-03").unwrap()
}

fn partner(uid: &str, name: &str, skus: &[&str], periods: &[(&str, Option<&str>)]) -> Partner {
    let periods: Vec<_> = periods
        .iter()
        .map(|(s, e)| serde_json::json!({"startedAt": s, "endedAt": e}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": name, "namespace": "partners", "uid": uid},
        "spec": {
            "organizationName": format!("{name}, Inc."),
            "notificationEmail": "a@b.example",
            "distributorRef": {"name": "northwind"},
        },
        "status": {
            "skus": skus,
            "billing": {
                "billedTo": "northwind",
                "startedAt": periods.last().map(|p| p["startedAt"].clone()),
                "periods": periods,
            },
        },
    }))
    .unwrap()
}

fn entry(uid: &str, days: u32, skus: &[&str]) -> StatementPartner {
    StatementPartner {
        uid: uid.into(),
        namespace: "partners".into(),
        name: format!("p-{uid}"),
        organization: "Org".into(),
        skus: skus.iter().map(|s| s.to_string()).collect(),
        days,
        first_day: march().first,
        last_day: march().first,
        periods: vec![],
        deleted: false,
    }
}

#[test]
fn an_entry_counts_the_days_of_the_month_and_lists_the_periods_touching_it() {
    let renewed = partner(
        "u1",
        "litware",
        &["ESSENTIALS"],
        &[
            ("2027-01-01T00:00:00Z", Some("2027-02-01T00:00:00Z")),
            ("2027-03-10T12:00:00Z", Some("2027-03-20T10:00:00Z")),
            ("2027-03-20T15:00:00Z", None),
        ],
    );
    let e = entry_of(&renewed, march(), at("2027-03-25T08:00:00Z"), false).unwrap();
    // The 10th to the 25th; the 20th once.
    assert_eq!(e.days, 16);
    assert_eq!(e.first_day.to_string(), "2027-03-10");
    assert_eq!(e.last_day.to_string(), "2027-03-25");
    assert_eq!(
        e.periods.len(),
        2,
        "the January period does not touch March"
    );
    // Counted after the month: up to its end, not beyond.
    let e = entry_of(&renewed, march(), at("2027-05-01T00:00:00Z"), false).unwrap();
    assert_eq!(e.days, 22);
    // Converted at 23:59 on the last day: that day is billed.
    let late = partner(
        "u2",
        "late",
        &["ESSENTIALS"],
        &[("2027-03-31T23:59:00Z", None)],
    );
    let e = entry_of(&late, march(), at("2027-04-01T00:00:05Z"), false).unwrap();
    assert_eq!((e.days, e.last_day.to_string().as_str()), (1, "2027-03-31"));
    // A Partner never billed in March has no entry.
    let april = partner("u3", "april", &["E"], &[("2027-04-01T00:00:00Z", None)]);
    assert!(entry_of(&april, march(), at("2027-04-02T00:00:00Z"), false).is_none());
}

#[test]
fn periods_beyond_the_cap_are_merged_into_the_last_kept() {
    let starts: Vec<String> = (0..100)
        .map(|i| format!("2027-03-{:02}T{:02}:00:00Z", 1 + i / 24, i % 24))
        .collect();
    let ends: Vec<String> = (0..100)
        .map(|i| format!("2027-03-{:02}T{:02}:30:00Z", 1 + i / 24, i % 24))
        .collect();
    let periods: Vec<_> = starts
        .iter()
        .zip(&ends)
        .map(|(s, e)| (s.as_str(), Some(e.as_str())))
        .collect();
    let p = partner("u", "busy", &["E"], &periods);
    let e = entry_of(&p, march(), at("2027-04-01T00:00:00Z"), false).unwrap();
    assert_eq!(e.days, 5);
    assert_eq!(e.periods.len(), MAX_PERIODS);
    assert_eq!(e.periods.last().unwrap().ended_at, Some(at(&ends[99])));
}

#[test]
fn a_deleted_entry_is_final_and_a_recreated_partner_is_listed_apart() {
    let counting = Counting::at(march(), at("2027-03-20T08:00:00Z"), false);
    let mut deleted = entry("old-uid", 10, &["E"]);
    deleted.deleted = true;
    let first = compose("northwind", march(), &[], vec![deleted.clone()], counting);
    // The cache still shows it a moment, counted as if it ran on: the deleted entry stands.
    let mut late = entry("old-uid", 19, &["E"]);
    late.name = deleted.name.clone();
    let recreated = StatementPartner {
        name: deleted.name.clone(),
        ..entry("new-uid", 2, &["E"])
    };
    let second = compose(
        "northwind",
        march(),
        &first,
        vec![late, recreated],
        counting,
    );
    assert_eq!(second.len(), 1);
    let part = &second[0];
    assert_eq!(part.partner_count, 2);
    assert_eq!(
        part.partners
            .iter()
            .map(|p| (p.uid.as_str(), p.days))
            .collect::<Vec<_>>(),
        [("new-uid", 2), ("old-uid", 10)]
    );
    assert_eq!(part.seat_days, 12);
    assert_eq!(part.counted_through.unwrap().to_string(), "2027-03-20");
    assert!(!part.closed);
}

#[test]
fn ten_thousand_partners_split_into_parts_under_the_size_limit() {
    let fresh: Vec<_> = (0..10_000)
        .map(|i| {
            let mut e = entry(
                &uuid::Uuid::new_v4().to_string(),
                31,
                &["ESSENTIALS", "GOVERNANCE"],
            );
            e.name = format!("partner-{i:05}-of-a-fairly-long-name");
            e.organization = format!("Managed Services Provider number {i}, Limited");
            e.periods = vec![BillingPeriod {
                started_at: at("2027-02-01T00:00:00Z"),
                ended_at: None,
            }];
            e
        })
        .collect();
    let counting = Counting::at(march(), at("2027-04-01T00:00:00Z"), true);
    let parts = compose("northwind", march(), &[], fresh, counting);
    assert!(parts.len() > 1 && parts.len() < 10, "{} parts", parts.len());
    let mut total = 0;
    for (i, part) in parts.iter().enumerate() {
        let bytes = serde_json::to_vec(part).unwrap().len();
        assert!(bytes < PART_BYTES + 1000, "part {i}: {bytes} bytes");
        assert_eq!(part.part, i as u32);
        assert!(part.closed);
        total += part.partner_count;
    }
    assert_eq!(total, 10_000);
    let seat_days: u32 = parts.iter().map(|p| p.seat_days).sum();
    assert_eq!(seat_days, 10_000 * 31 * 2);
}

fn arb_entry() -> impl Strategy<Value = StatementPartner> {
    (
        0u8..40,
        1u32..=31,
        proptest::sample::subsequence(vec!["A", "B", "C"], 0..=3),
        any::<bool>(),
        0usize..3000,
    )
        .prop_map(|(uid, days, skus, deleted, padding)| StatementPartner {
            organization: "x".repeat(padding),
            deleted,
            ..entry(&format!("uid-{uid}"), days, &skus)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever came before: no entry is lost, each uid is listed once, a deleted entry never
    /// changes, no new entry takes a part over the size budget, the totals are the
    /// entries' sums, and composing again with nothing new changes nothing (no empty write).
    #[test]
    fn composing_keeps_every_entry_once_and_is_stable(
        before in proptest::collection::vec(arb_entry(), 0..60),
        fresh in proptest::collection::vec(arb_entry(), 0..60),
        close in any::<bool>(),
    ) {
        let counting = Counting::at(march(), at("2027-03-15T00:00:00Z"), close);
        const BUDGET: usize = 20_000;
        let mut first_of_uid = std::collections::BTreeMap::new();
        for e in &before {
            first_of_uid.entry(e.uid.clone()).or_insert(e.clone());
        }
        let before: Vec<_> = first_of_uid.values().cloned().collect();
        // One entry per Partner, as the writer counts them.
        let mut seen = std::collections::BTreeSet::new();
        let fresh: Vec<_> = fresh.into_iter().filter(|e| seen.insert(e.uid.clone())).collect();
        let existing = compose_within("northwind", march(), &[], before.clone(), counting, BUDGET);
        let parts = compose_within("northwind", march(), &existing, fresh.clone(), counting, BUDGET);
        let listed: Vec<&StatementPartner> = parts.iter().flat_map(|p| &p.partners).collect();
        let mut uids: Vec<_> = listed.iter().map(|e| e.uid.clone()).collect();
        uids.sort();
        let count = uids.len();
        uids.dedup();
        prop_assert_eq!(count, uids.len(), "a uid listed twice");
        for e in before.iter().chain(&fresh) {
            prop_assert!(uids.contains(&e.uid), "{} lost", e.uid);
        }
        for e in &before {
            if e.deleted {
                prop_assert!(listed.contains(&e), "deleted entry {} changed", e.uid);
            }
        }
        let known: std::collections::BTreeSet<_> = before.iter().map(|e| e.uid.clone()).collect();
        for part in &parts {
            // A new entry never takes a part over the budget (one already listed may grow).
            let grown_only = part.partners.iter().all(|e| known.contains(&e.uid));
            prop_assert!(
                part.partners.len() == 1 || grown_only || weight(&part.partners) <= BUDGET
            );
            prop_assert_eq!(&part.totals, &totals(&part.partners));
            prop_assert_eq!(part.seat_days, part.totals.iter().map(|t| t.partner_days).sum::<u32>());
            prop_assert_eq!(part.partner_count as usize, part.partners.len());
        }
        // Each entry stays in its part.
        for (i, part) in existing.iter().enumerate() {
            for e in &part.partners {
                prop_assert!(parts[i].partners.iter().any(|p| p.uid == e.uid), "{} moved", e.uid);
            }
        }
        let again = compose_within("northwind", march(), &parts, fresh, counting, BUDGET);
        prop_assert_eq!(again, parts);
    }
}
