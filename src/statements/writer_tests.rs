use std::sync::Mutex;

use super::*;
use crate::statements::store::MemoryStore;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[derive(Clone, Default)]
struct Partners {
    list: Arc<Mutex<Vec<Arc<Partner>>>>,
    /// The caches are still listing.
    listing: Arc<std::sync::atomic::AtomicBool>,
}

impl Source for Partners {
    fn synced(&self) -> bool {
        !self.listing.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn partners(&self) -> Vec<Arc<Partner>> {
        self.list.lock().unwrap().clone()
    }
    fn distributors(&self) -> Vec<String> {
        vec!["northwind".into(), "southwind".into()]
    }
}

impl Partners {
    fn set(&self, partners: Vec<Partner>) {
        *self.list.lock().unwrap() = partners.into_iter().map(Arc::new).collect();
    }
}

fn partner(uid: &str, name: &str, started: &str, ended: Option<&str>) -> Partner {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "partner-operator.io/v1alpha1",
        "kind": "Partner",
        "metadata": {"name": name, "namespace": "partners", "uid": uid},
        "spec": {
            "organizationName": name,
            "notificationEmail": "a@b.example",
            "distributorRef": {"name": "northwind"},
        },
        "status": {
            "skus": ["ESSENTIALS", "GOVERNANCE"],
            "billing": {
                "billedTo": "northwind",
                "startedAt": started,
                "endedAt": ended,
                "periods": [{"startedAt": started, "endedAt": ended}],
            },
        },
    }))
    .unwrap()
}

fn statement(store: &MemoryStore, name: &str) -> crate::api::BillingStatementSpec {
    store.all().get(name).expect(name).spec.clone()
}

fn saves(store: &MemoryStore) -> usize {
    *store.saves.lock().unwrap()
}

/// Lets the writer run until it waits again (time is paused: ticks come at once).
async fn settle() {
    tokio::time::sleep(GATHER * 3).await;
}

#[tokio::test(start_paused = true)]
async fn partners_are_counted_in_one_write_per_tick_and_none_when_nothing_changed() {
    let clock = Clock::manual(at("2027-03-10T12:00:00Z"));
    let store = MemoryStore::default();
    let partners = Partners::default();
    partners.set(vec![
        partner("u1", "contoso", "2027-03-05T09:00:00Z", None),
        partner(
            "u2",
            "litware",
            "2027-02-01T00:00:00Z",
            Some("2027-03-03T10:00:00Z"),
        ),
    ]);
    let _writer = StatementWriter::start(store.clone(), partners.clone(), clock.clone());
    settle().await;
    let march = statement(&store, "northwind.2027-03");
    assert_eq!(march.partner_count, 2);
    // contoso: the 5th to the 10th, litware the 1st to the 3rd; two SKUs each.
    assert_eq!(march.seat_days, (6 + 3) * 2);
    assert_eq!(march.counted_through.unwrap().to_string(), "2027-03-10");
    // A Distributor without billing gets its (empty) statement too.
    assert_eq!(statement(&store, "southwind.2027-03").partner_count, 0);
    let written = saves(&store);
    assert_eq!(written, 2);
    assert_eq!(
        *store.reads.lock().unwrap(),
        1,
        "every Distributor's two months are read in one list"
    );
    tokio::time::sleep(TICK * 3).await;
    assert_eq!(saves(&store), written, "nothing changed, nothing written");
    assert_eq!(*store.reads.lock().unwrap(), 1, "and never read again");
    // A day passes: contoso's running period adds a day, in one write.
    clock.advance(chrono::Duration::days(1));
    settle().await;
    assert_eq!(
        statement(&store, "northwind.2027-03").seat_days,
        (7 + 3) * 2
    );
    assert_eq!(saves(&store), written + 2, "one write per Distributor");
}

#[tokio::test(start_paused = true)]
async fn a_deleted_partner_is_written_before_it_goes_and_stays() {
    let clock = Clock::manual(at("2027-03-10T12:00:00Z"));
    let store = MemoryStore::default();
    let partners = Partners::default();
    let contoso = partner(
        "u1",
        "contoso",
        "2027-03-05T09:00:00Z",
        Some("2027-03-10T12:00:00Z"),
    );
    partners.set(vec![]);
    let writer = StatementWriter::start(store.clone(), partners.clone(), clock.clone());
    settle().await;
    let before = saves(&store);
    // Ten deletions at once: gathered into one write.
    let deleted: Vec<Partner> = (0..10)
        .map(|i| {
            partner(
                &format!("u{i}"),
                &format!("p{i}"),
                "2027-03-05T09:00:00Z",
                Some("2027-03-10T12:00:00Z"),
            )
        })
        .collect();
    let results = futures::future::join_all(deleted.iter().map(|p| writer.record_deleted(p))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(saves(&store), before + 1, "one write for the burst");
    let march = statement(&store, "northwind.2027-03");
    assert_eq!(march.partner_count, 10);
    assert!(march.partners.iter().all(|p| p.deleted && p.days == 6));
    // Recording again (a retry after a crash) writes nothing.
    writer.record_deleted(&contoso).await.unwrap();
    assert_eq!(saves(&store), before + 1);
    // A Partner never billed returns at once.
    let mut trial = contoso.clone();
    trial.status.as_mut().unwrap().billing = None;
    writer.record_deleted(&trial).await.unwrap();
    // Ticks over a cache without them keep them.
    clock.advance(chrono::Duration::days(2));
    settle().await;
    assert_eq!(statement(&store, "northwind.2027-03").partner_count, 10);
}

#[tokio::test(start_paused = true)]
async fn a_month_is_closed_after_its_end_and_never_written_again() {
    let clock = Clock::manual(at("2027-03-31T23:00:00Z"));
    let store = MemoryStore::default();
    let partners = Partners::default();
    partners.set(vec![partner("u1", "contoso", "2027-03-31T23:59:00Z", None)]);
    let writer = StatementWriter::start(store.clone(), partners.clone(), clock.clone());
    settle().await;
    // Converted at 23:59 on the last day: that day is billed; the month is still open.
    clock.set(at("2027-04-01T00:10:00Z"));
    settle().await;
    let march = statement(&store, "northwind.2027-03");
    assert!(
        !march.closed,
        "closed only {CLOSE_AFTER} into the new month"
    );
    assert_eq!(march.seat_days, 2);
    clock.set(at("2027-04-01T01:00:00Z"));
    settle().await;
    let march = statement(&store, "northwind.2027-03");
    assert!(march.closed);
    assert_eq!(march.closed_at, Some(at("2027-04-01T01:00:00Z")));
    assert_eq!(march.counted_through.unwrap().to_string(), "2027-03-31");
    assert_eq!((march.partner_count, march.seat_days), (1, 2));
    let april = statement(&store, "northwind.2027-04");
    assert_eq!(april.seat_days, 2, "April 1st, two SKUs");
    // Deleted in April: April's statement gets it, March's stays as it was closed.
    let deleted = partner(
        "u1",
        "contoso",
        "2027-03-31T23:59:00Z",
        Some("2027-04-03T00:00:00Z"),
    );
    clock.set(at("2027-04-03T00:00:00Z"));
    writer.record_deleted(&deleted).await.unwrap();
    partners.set(vec![]);
    clock.advance(chrono::Duration::days(3));
    settle().await;
    assert_eq!(statement(&store, "northwind.2027-03"), march);
    let april = statement(&store, "northwind.2027-04");
    assert!(april.partners[0].deleted);
    assert_eq!(april.seat_days, 4);
}

/// The first count comes as soon as the caches are complete, not at the next tick: a
/// restarted operator reads its statements while it settles.
#[tokio::test(start_paused = true)]
async fn the_first_count_follows_the_caches_being_complete() {
    let clock = Clock::manual(at("2027-03-10T12:00:00Z"));
    let store = MemoryStore::default();
    let partners = Partners::default();
    partners.set(vec![partner("u1", "contoso", "2027-03-05T09:00:00Z", None)]);
    partners
        .listing
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let _writer = StatementWriter::start(store.clone(), partners.clone(), clock);
    tokio::time::sleep(TICK / 2).await;
    assert_eq!(
        *store.reads.lock().unwrap(),
        0,
        "nothing read while listing"
    );
    partners
        .listing
        .store(false, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(UNTIL_SYNCED * 2).await;
    assert_eq!(*store.reads.lock().unwrap(), 1, "read once complete");
    assert_eq!(statement(&store, "northwind.2027-03").partner_count, 1);
}
