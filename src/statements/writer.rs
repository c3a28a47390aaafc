//! The statement writer: one task that keeps every Distributor's statements, with writes
//! coalesced per Distributor.
//!
//! - Every [`TICK`] (and whenever the clock jumps) it counts the Partners in the cache and
//!   writes each statement part whose content changed: at most one write per part per tick,
//!   however many Partners changed, and none when nothing did (an open period adds a day once a
//!   day). The current month's statement is made for every Distributor, billed or not, so a
//!   month without billing reads as such.
//! - [`CLOSE_AFTER`] into a new month, the previous month's statement is counted one last time
//!   up to the month's end and closed; admission refuses any change to it from then on. The
//!   wait lets a deadline at the month's last instant (an automatic conversion at 23:59:59)
//!   reach the Partner's status first.
//! - A Partner being deleted is recorded by [`StatementWriter::record_deleted`] before its
//!   finalizer goes: the records of the Partners deleted within [`GATHER`] of each other are
//!   written together, and each caller returns once its Partner is in the statement (or with
//!   the error, and the reconciliation is retried, so a crash in between loses nothing).
//!
//! Nothing is counted until the caches are complete: closing a month over a partial list
//! would leave Partners out of it for good.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::compose::{Counting, compose, entry_of};
use super::days::Month;
use super::store::{StatementStore, StoreError, new_statement};
use crate::api::{BillingStatement, Partner, StatementPartner};
use crate::clock::Clock;

/// How often the Partners are counted into the statements.
pub const TICK: Duration = Duration::from_secs(5);
/// How often the writer looks whether the caches are complete, until its first count: a
/// restarted operator reads the statements it keeps while it settles, not later, when the
/// cluster is otherwise idle.
const UNTIL_SYNCED: Duration = Duration::from_millis(100);
/// How long deletions are gathered into one write.
pub const GATHER: Duration = Duration::from_millis(100);
/// How long into a month the previous month's statement is closed.
pub const CLOSE_AFTER: chrono::Duration = chrono::Duration::hours(1);
/// How long a deletion waits for its record to be written before it fails (and is retried).
const RECORD_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at a write that conflicted with another writer (each after reading again).
const ATTEMPTS: usize = 3;

/// What the writer counts: the Partners and Distributors as the operator's caches hold them.
pub trait Source: Send + Sync + 'static {
    /// Whether every cache is complete.
    fn synced(&self) -> bool;
    fn partners(&self) -> Vec<Arc<Partner>>;
    fn distributors(&self) -> Vec<String>;
}

/// The handle the Partner reconciler records deletions with.
#[derive(Clone)]
pub struct StatementWriter {
    records: mpsc::UnboundedSender<Record>,
    clock: Clock,
}

/// A deleted Partner's entries, by month, and who waits for them to be written.
struct Record {
    distributor: String,
    entries: Vec<(Month, StatementPartner)>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl StatementWriter {
    /// Starts the writer over `store` and `source`; it stops when every handle is dropped.
    pub fn start(store: impl StatementStore, source: impl Source, clock: Clock) -> Self {
        let (records, received) = mpsc::unbounded_channel();
        let task = Task {
            store,
            source,
            clock: clock.clone(),
            known: HashMap::new(),
        };
        tokio::spawn(task.run(received));
        Self { records, clock }
    }

    /// Writes `partner`'s billing into its Distributor's open statements (this month's and, if
    /// not closed yet, last month's) and returns once it is stored. `partner` is as the
    /// deletion left it: its billing ended. A Partner never billed returns at once.
    pub async fn record_deleted(&self, partner: &Partner) -> Result<(), StoreError> {
        let Some(billing) = partner.status.as_ref().and_then(|s| s.billing.as_ref()) else {
            return Ok(());
        };
        let now = self.clock.timestamp();
        let month = Month::of(now);
        let entries: Vec<_> = [month.previous(), month]
            .into_iter()
            .filter_map(|m| entry_of(partner, m, now, true).map(|e| (m, e)))
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let (done, written) = oneshot::channel();
        let record = Record {
            distributor: billing.billed_to.clone(),
            entries,
            done,
        };
        let gone = || StoreError::Failed("the statement writer stopped".into());
        self.records.send(record).map_err(|_| gone())?;
        match tokio::time::timeout(RECORD_TIMEOUT, written).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(StoreError::Failed(
                "the billing statement was not written within 30 s".into(),
            )),
        }
    }
}

/// The writer's state: the statements as last read or written, per Distributor and month.
struct Task<S, P> {
    store: S,
    source: P,
    clock: Clock,
    known: HashMap<(String, Month), Vec<BillingStatement>>,
}

impl<S: StatementStore, P: Source> Task<S, P> {
    async fn run(mut self, mut records: mpsc::UnboundedReceiver<Record>) {
        let mut jumps = self.clock.jumps();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut until_synced = tokio::time::interval(UNTIL_SYNCED);
        let mut counted = false;
        loop {
            tokio::select! {
                _ = tick.tick() => counted |= self.count().await,
                _ = until_synced.tick(), if !counted => counted |= self.count().await,
                changed = jumps.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    counted |= self.count().await;
                }
                record = records.recv() => {
                    let Some(first) = record else { return };
                    let gathered = gather(first, &mut records).await;
                    self.record(gathered).await;
                }
            }
        }
    }

    /// Counts every Partner into its Distributor's statements, and closes last month's once
    /// [`CLOSE_AFTER`] has passed. Whether it counted: not before the caches are complete.
    async fn count(&mut self) -> bool {
        if !self.source.synced() {
            return false;
        }
        let now = self.clock.timestamp();
        let month = Month::of(now);
        let previous = month.previous();
        let close = now >= month.start() + CLOSE_AFTER;
        let mut this_month = entries_by_distributor(&self.source.partners(), month, now);
        let mut last_month = entries_by_distributor(&self.source.partners(), previous, now);
        let distributors: BTreeSet<String> = self
            .source
            .distributors()
            .into_iter()
            .chain(this_month.keys().cloned())
            .collect();
        if let Err(err) = self.load(&distributors, [month, previous]).await {
            warn!(error = %err, "could not read the billing statements");
            return true;
        }
        for distributor in distributors {
            let fresh = this_month.remove(&distributor).unwrap_or_default();
            let counting = Counting::at(month, now, false);
            self.write_logged(&distributor, month, fresh, counting, true)
                .await;
            // Last month's statement is finished only if the operator kept one.
            let fresh = last_month.remove(&distributor).unwrap_or_default();
            let counting = Counting::at(previous, now, close);
            self.write_logged(&distributor, previous, fresh, counting, false)
                .await;
        }
        self.known.retain(|(_, m), _| *m == month || *m == previous);
        true
    }

    async fn write_logged(
        &mut self,
        distributor: &str,
        month: Month,
        fresh: Vec<StatementPartner>,
        counting: Counting,
        create: bool,
    ) {
        if let Err(err) = self
            .write(distributor, month, fresh, counting, create)
            .await
        {
            warn!(distributor, %month, error = %err, "could not write the billing statement");
        }
    }

    /// Writes the records of Partners deleted together, per Distributor and month, and tells
    /// each caller how it went.
    async fn record(&mut self, records: Vec<Record>) {
        let now = self.clock.timestamp();
        let mut by_month: BTreeMap<(String, String), (Month, Vec<StatementPartner>)> =
            BTreeMap::new();
        for record in &records {
            for (month, entry) in &record.entries {
                by_month
                    .entry((record.distributor.clone(), month.to_string()))
                    .or_insert_with(|| (*month, vec![]))
                    .1
                    .push(entry.clone());
            }
        }
        let mut failed: HashMap<String, StoreError> = HashMap::new();
        for ((distributor, _), (month, entries)) in by_month {
            let counting = Counting::at(month, now, false);
            if let Err(err) = self
                .write(&distributor, month, entries, counting, true)
                .await
            {
                failed.insert(distributor, err);
            }
        }
        for record in records {
            let result = failed
                .get(&record.distributor)
                .map_or(Ok(()), |err| Err(err.clone()));
            let _ = record.done.send(result);
        }
    }

    /// Writes `fresh` into `distributor`'s statement of `month`, unless it is closed. With
    /// `create` false, a statement that does not exist is left so.
    async fn write(
        &mut self,
        distributor: &str,
        month: Month,
        fresh: Vec<StatementPartner>,
        counting: Counting,
        create: bool,
    ) -> Result<(), StoreError> {
        for attempt in 1..=ATTEMPTS {
            let parts = self.parts(distributor, month).await?;
            if parts.iter().any(|p| p.spec.closed) || (parts.is_empty() && !create) {
                return Ok(());
            }
            match self
                .save(distributor, month, &parts, fresh.clone(), counting)
                .await
            {
                Err(StoreError::Conflict) if attempt < ATTEMPTS => {
                    debug!(distributor, %month, "statement changed meanwhile: reading it again");
                }
                result => return result,
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Reads the statements of `months` of every Distributor in one list, unless all of them
    /// are known: a restarted operator would otherwise list each Distributor's two months on
    /// its first count, requests on a cluster otherwise idle.
    async fn load(
        &mut self,
        distributors: &BTreeSet<String>,
        months: [Month; 2],
    ) -> Result<(), StoreError> {
        let keys: Vec<(String, Month)> = distributors
            .iter()
            .flat_map(|d| months.map(|m| (d.clone(), m)))
            .filter(|key| !self.known.contains_key(key))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let all = self.store.of_months(&months).await?;
        for (distributor, month) in keys {
            let parts = all
                .iter()
                .filter(|s| s.spec.distributor == distributor && s.spec.month == month.to_string())
                .cloned()
                .collect();
            self.known.insert((distributor, month), parts);
        }
        Ok(())
    }

    /// The parts as last known, else as stored.
    async fn parts(
        &mut self,
        distributor: &str,
        month: Month,
    ) -> Result<Vec<BillingStatement>, StoreError> {
        let key = (distributor.to_string(), month);
        if let Some(parts) = self.known.get(&key) {
            return Ok(parts.clone());
        }
        let parts = self.store.parts(distributor, month).await?;
        self.known.insert(key, parts.clone());
        Ok(parts)
    }

    /// Composes the statement and saves each part that changed. A conflict forgets what was
    /// known, so the next attempt reads again.
    async fn save(
        &mut self,
        distributor: &str,
        month: Month,
        parts: &[BillingStatement],
        fresh: Vec<StatementPartner>,
        counting: Counting,
    ) -> Result<(), StoreError> {
        let key = (distributor.to_string(), month);
        let specs: Vec<_> = parts.iter().map(|p| p.spec.clone()).collect();
        let mut stored: BTreeMap<u32, BillingStatement> =
            parts.iter().map(|p| (p.spec.part, p.clone())).collect();
        for spec in compose(distributor, month, &specs, fresh, counting) {
            let object = match stored.get(&spec.part) {
                Some(current) if current.spec == spec => continue,
                Some(current) => BillingStatement {
                    spec,
                    ..current.clone()
                },
                None => new_statement(spec),
            };
            match self.store.save(object).await {
                Ok(saved) => {
                    stored.insert(saved.spec.part, saved);
                }
                Err(err) => {
                    self.known.remove(&key);
                    return Err(err);
                }
            }
        }
        self.known.insert(key, stored.into_values().collect());
        Ok(())
    }
}

/// `first` and the records that come within [`GATHER`] of it.
async fn gather(first: Record, records: &mut mpsc::UnboundedReceiver<Record>) -> Vec<Record> {
    let mut gathered = vec![first];
    let until = tokio::time::Instant::now() + GATHER;
    while let Ok(Some(record)) = tokio::time::timeout_at(until, records.recv()).await {
        gathered.push(record);
    }
    gathered
}

/// The entries of `month`, counted at `now`, by the Distributor billed.
fn entries_by_distributor(
    partners: &[Arc<Partner>],
    month: Month,
    now: DateTime<Utc>,
) -> HashMap<String, Vec<StatementPartner>> {
    let mut by: HashMap<String, Vec<StatementPartner>> = HashMap::new();
    for partner in partners {
        let billed_to = partner
            .status
            .as_ref()
            .and_then(|s| s.billing.as_ref())
            .map(|b| b.billed_to.clone());
        let Some(billed_to) = billed_to else { continue };
        if let Some(entry) = entry_of(partner, month, now, false) {
            by.entry(billed_to).or_default().push(entry);
        }
    }
    by
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
