//! The Lambda steps of the state machine, one file each, written over the ports so that every function
//! runs the same code on S3, SES and Step Functions in AWS and on a local directory, an `.eml` outbox and
//! [`MemoryExecutions`] in its tests:
//!
//! - [`fetch`]: stage one source's day (inbox drop or API) and return its manifest;
//! - [`r#match`]: reconcile one processor's day, record the run and write the reports;
//! - [`partition`]: one partition of a sharded run, and the merge of all of them;
//! - [`notify`]: the operations email;
//! - [`trigger`]: an S3 drop starts an execution.
//!
//! A function's `main` builds the [`Ports`] once per cold start and calls its step per event.

pub mod fetch;
pub mod r#match;
pub mod notify;
pub mod partition;
pub mod trigger;

use std::future::Future;
use std::sync::Mutex;

use chrono::NaiveDate;
use recon_store::Store;
use tokio::sync::OnceCell;

use crate::fetch::ApiSources;
use crate::notify::Mailer;
use crate::objects::ObjectStore;
use crate::settings::Settings;
use crate::AppError;

/// The result of [`StartExecution::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    New {
        execution_arn: String,
    },
    /// An execution of that name exists already (a duplicate event): nothing started.
    AlreadyExists,
}

/// Starts a state machine execution by name (names are unique per state machine for 90 days, which makes
/// a duplicate start a no-op). Step Functions in AWS; [`MemoryExecutions`] in tests.
pub trait StartExecution: Send + Sync {
    fn start(
        &self,
        name: &str,
        input: &serde_json::Value,
    ) -> impl Future<Output = Result<Started, AppError>> + Send;
}

/// Executions kept in memory: the local stand-in for Step Functions.
#[derive(Debug, Default)]
pub struct MemoryExecutions {
    pub started: Mutex<Vec<(String, serde_json::Value)>>,
}

impl StartExecution for MemoryExecutions {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<Started, AppError> {
        let mut started = self
            .started
            .lock()
            .map_err(|_| AppError::Internal("the execution list is poisoned".into()))?;
        if started.iter().any(|(n, _)| n == name) {
            return Ok(Started::AlreadyExists);
        }
        started.push((name.to_string(), input.clone()));
        Ok(Started::New {
            execution_arn: format!("memory:{name}"),
        })
    }
}

/// An execution name from parts: Step Functions allows 80 characters of `[A-Za-z0-9-_]`.
pub fn execution_name(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let joined = parts.join("-");
    let clean: String = joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 80 {
        return clean;
    }
    let digest = hex::encode(Sha256::digest(joined.as_bytes()));
    format!("{}-{}", &clean[..55], &digest[..24])
}

/// What a step works with: the object store, the mailer, the executions it may start, the database (for
/// the steps that record runs), the API clients and the settings. Built once per cold start.
pub struct Ports<S: ObjectStore, M: Mailer, X: StartExecution> {
    pub objects: S,
    pub mailer: M,
    pub executions: X,
    db: Option<Store>,
    migrated: OnceCell<()>,
    pub apis: ApiSources,
    pub settings: Settings,
}

impl<S: ObjectStore, M: Mailer, X: StartExecution> Ports<S, M, X> {
    /// The ports; the API clients are built from `settings` (credentials already filled in).
    pub fn new(objects: S, mailer: M, executions: X, db: Option<Store>, settings: Settings) -> Self {
        Ports {
            objects,
            mailer,
            executions,
            db,
            migrated: OnceCell::new(),
            apis: settings.apis.sources(),
            settings,
        }
    }

    /// The database, migrated on first use (once per cold start; a failed attempt is tried again on the
    /// next invocation).
    pub async fn db(&self) -> Result<&Store, AppError> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| AppError::Internal("this function was built without a database".into()))?;
        self.migrated
            .get_or_try_init(|| async { db.migrate().await.map(|_| ()) })
            .await
            .map_err(AppError::Store)?;
        Ok(db)
    }

    /// The database when this function has one, unmigrated (read-only use).
    pub fn db_if_any(&self) -> Option<&Store> {
        self.db.as_ref()
    }
}

/// Yesterday, UTC: the day a scheduled run reconciles.
pub fn yesterday() -> NaiveDate {
    let today = chrono::Utc::now().date_naive();
    today.pred_opt().unwrap_or(today)
}
