//! Where statements are kept: [`StatementStore`], the API server in production ([`KubeStore`])
//! and a map in tests ([`MemoryStore`]), so the writer is tested without a server.

#[cfg(any(test, feature = "testing"))]
use std::collections::BTreeMap;
use std::future::Future;
#[cfg(any(test, feature = "testing"))]
use std::sync::{Arc, Mutex};

use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use super::days::Month;
use super::naming;
use crate::api::{BillingStatement, BillingStatementSpec};

/// The field manager of the operator's statement writes.
pub const FIELD_MANAGER: &str = "partner-operator";

/// Why a statement could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Written meanwhile by someone else (409): read again, then write.
    #[error("the statement changed meanwhile")]
    Conflict,
    #[error("{0}")]
    Failed(String),
}

impl From<kube::Error> for StoreError {
    fn from(err: kube::Error) -> Self {
        match err {
            // 404: deleted meanwhile (a replace of what is gone): read again too.
            kube::Error::Api(status) if status.code == 409 || status.code == 404 => Self::Conflict,
            kube::Error::Api(status) => Self::Failed(format!(
                "the API server refused a statement ({}): {}",
                status.code, status.message
            )),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Reads and writes statements.
pub trait StatementStore: Send + Sync + 'static {
    /// Every part of `distributor`'s statement of `month`, in any order.
    fn parts(
        &self,
        distributor: &str,
        month: Month,
    ) -> impl Future<Output = Result<Vec<BillingStatement>, StoreError>> + Send;

    /// Every part of every Distributor's statements of `months`, in one read.
    fn of_months(
        &self,
        months: &[Month],
    ) -> impl Future<Output = Result<Vec<BillingStatement>, StoreError>> + Send;

    /// Creates `statement` (no `resourceVersion`) or replaces it (guarded by its
    /// `resourceVersion`), and returns it as stored.
    fn save(
        &self,
        statement: BillingStatement,
    ) -> impl Future<Output = Result<BillingStatement, StoreError>> + Send;
}

/// A new statement object: `spec` under its name and labels.
pub fn new_statement(spec: BillingStatementSpec) -> BillingStatement {
    let month = Month::parse(&spec.month).expect("a composed month");
    let name = naming::object_name(&spec.distributor, month, spec.part);
    let mut statement = BillingStatement::new(&name, spec);
    statement.metadata = ObjectMeta {
        name: Some(name),
        labels: Some(naming::labels(&statement.spec.distributor, month)),
        ..ObjectMeta::default()
    };
    statement
}

/// The API server.
#[derive(Clone)]
pub struct KubeStore {
    api: Api<BillingStatement>,
}

impl KubeStore {
    pub fn new(client: Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }
}

impl StatementStore for KubeStore {
    async fn parts(
        &self,
        distributor: &str,
        month: Month,
    ) -> Result<Vec<BillingStatement>, StoreError> {
        let params = ListParams::default().labels(&naming::selector(distributor, month));
        let mut parts = self.api.list(&params).await?.items;
        // A label value may stand for several names (a digest): the spec says whose it is.
        parts.retain(|s| s.spec.distributor == distributor && s.spec.month == month.to_string());
        Ok(parts)
    }

    async fn of_months(&self, months: &[Month]) -> Result<Vec<BillingStatement>, StoreError> {
        let months: Vec<String> = months.iter().map(Month::to_string).collect();
        let selector = format!("{} in ({})", naming::MONTH_LABEL, months.join(","));
        let params = ListParams::default().labels(&selector);
        let mut all = self.api.list(&params).await?.items;
        all.retain(|s| months.contains(&s.spec.month));
        Ok(all)
    }

    async fn save(&self, statement: BillingStatement) -> Result<BillingStatement, StoreError> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let name = statement.metadata.name.clone().unwrap_or_default();
        let saved = match statement.metadata.resource_version {
            None => self.api.create(&params, &statement).await?,
            Some(_) => self.api.replace(&name, &params, &statement).await?,
        };
        Ok(saved)
    }
}

/// Statements in memory (for tests), with the API server's optimistic concurrency and the admission rule
/// that a closed statement never changes.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, BillingStatement>>>,
    /// Saves made, successful or not.
    pub saves: Arc<Mutex<usize>>,
    /// Reads made (each stands for one request to the API server).
    pub reads: Arc<Mutex<usize>>,
}

#[cfg(any(test, feature = "testing"))]
impl MemoryStore {
    /// Every statement, by name.
    pub fn all(&self) -> BTreeMap<String, BillingStatement> {
        self.objects.lock().unwrap().clone()
    }
}

#[cfg(any(test, feature = "testing"))]
impl StatementStore for MemoryStore {
    async fn parts(
        &self,
        distributor: &str,
        month: Month,
    ) -> Result<Vec<BillingStatement>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.spec.distributor == distributor && s.spec.month == month.to_string())
            .cloned()
            .collect())
    }

    async fn of_months(&self, months: &[Month]) -> Result<Vec<BillingStatement>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        let months: Vec<String> = months.iter().map(Month::to_string).collect();
        Ok(self
            .objects
            .lock()
            .unwrap()
            .values()
            .filter(|s| months.contains(&s.spec.month))
            .cloned()
            .collect())
    }

    async fn save(&self, mut statement: BillingStatement) -> Result<BillingStatement, StoreError> {
        *self.saves.lock().unwrap() += 1;
        let mut objects = self.objects.lock().unwrap();
        let name = statement.metadata.name.clone().unwrap_or_default();
        let stored = objects.get(&name);
        let version = stored.and_then(|s| s.metadata.resource_version.clone());
        if statement.metadata.resource_version != version {
            return Err(StoreError::Conflict);
        }
        if stored.is_some_and(|s| s.spec.closed && s.spec != statement.spec) {
            return Err(StoreError::Failed(
                "a closed BillingStatement cannot change".into(),
            ));
        }
        let next: u64 = version.map_or(0, |v| v.parse().unwrap_or(0)) + 1;
        statement.metadata.resource_version = Some(next.to_string());
        objects.insert(name, statement.clone());
        Ok(statement)
    }
}
