//! # recon-app
//!
//! The use cases of the pipeline, one per step, written once over small ports so that the Lambdas and the
//! `recon` CLI run the same code: [`fetch`] stages raw inputs and writes manifests, [`run_match`] (`run.rs`) reconciles
//! one processor's day, writes its reports and records the run, [`notify`] composes and sends the
//! operations email. [`pipeline::run_day`] chains them in one process for `recon run`.
//!
//! Ports: [`objects::ObjectStore`] (S3 or a local directory with the same keys), [`notify::Mailer`] (SES or
//! an `.eml` outbox) and the PostgreSQL [`recon_store::Store`].

pub mod alloc;
pub mod fetch;
pub mod items;
pub mod keys;
pub mod notify;
pub mod objects;
pub mod pipeline;
pub mod report;
mod run;
pub mod settings;
pub mod split;
pub mod steps;

pub use run::{
    match_partition, match_split_partition, partition_key, run_match, run_match_with, split_and_match,
    MatchData,
};

use chrono::NaiveDate;
use recon_core::{InvalidRecord, LedgerRow, Processor, ProcessorRecord, RunConfig, RunSummary};
use recon_sources::SourceError;
use recon_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::fetch::Manifest;
use crate::objects::{ObjectError, ObjectStore};
use crate::report::TopItem;

/// Errors of the use cases. [`AppError::error_name`] gives the stable name Step Functions sees.
#[derive(Debug, Error)]
pub enum AppError {
    #[error("no input for {source_name} on {date}: {hint}")]
    NoInput {
        source_name: keys::Source,
        date: NaiveDate,
        hint: String,
    },
    #[error("unreadable input {0}")]
    Unreadable(SourceError),
    #[error(transparent)]
    Api(recon_sources::api::ApiError),
    #[error(transparent)]
    Object(ObjectError),
    #[error(transparent)]
    Store(StoreError),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A dependency throttled, timed out or answered 5xx: retry later (Step Functions backs off).
    #[error("temporarily unavailable: {0}")]
    Transient(String),
    /// A request whose outcome is unknown (it timed out after being sent, or its answer was lost): retry, but
    /// what it did may have happened (an email may have gone out).
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// Something inside recon failed (a task that died, a template that does not render, a file that cannot
    /// be written): what it was doing, and the cause as the source.
    #[error("internal error: {what}")]
    Failed {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AppError {
    /// Stable error names listed in the README and matched by the state machine's `ErrorEquals`.
    pub fn error_name(&self) -> &'static str {
        match self {
            AppError::NoInput { .. } => "SourceUnavailable",
            AppError::Unreadable(_) => "InvalidInput",
            AppError::Api(recon_sources::api::ApiError::Auth { .. }) => "AuthenticationFailed",
            AppError::Api(recon_sources::api::ApiError::DataNotReady { .. }) => "DataNotReady",
            AppError::Api(e) if e.is_retryable() => "Retryable",
            AppError::Api(_) => "SourceUnavailable",
            AppError::Object(e) if e.retryable => "Retryable",
            AppError::Object(_) => "SourceUnavailable",
            AppError::Store(e) if e.is_retryable() => "Retryable",
            AppError::Store(_) => "DatabaseError",
            AppError::InvalidInput(_) => "InvalidInput",
            AppError::Transient(_) | AppError::Uncertain(_) => "Retryable",
            AppError::Internal(_) | AppError::Failed { .. } => "InternalError",
        }
    }

    /// Worth retrying later (a dependency throttled, timed out or answered 5xx): never recorded as a result.
    pub fn is_retryable(&self) -> bool {
        self.error_name() == "Retryable"
    }

    /// An internal failure while doing `what`, caused by `source`.
    pub fn failed(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> AppError {
        AppError::Failed {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// The error and every cause under it, `: `-separated: what a log line, a Step Functions error message
    /// or a failed run's reason says (the causes are sources, not part of each message).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            let part = e.to_string();
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            next = e.source();
        }
        text
    }
}

/// One processor's side of a run, ready to reconcile.
#[derive(Debug, Default)]
pub struct ProcessorSide {
    pub manifests: Vec<Manifest>,
    pub records: Vec<ProcessorRecord>,
    pub invalid: Vec<InvalidRecord>,
    /// Object index -> object key, for locations.
    pub objects: Vec<(u32, String)>,
}

/// The ledger rows of one processor for a run.
#[derive(Debug, Default)]
pub struct LedgerSide {
    pub manifests: Vec<Manifest>,
    pub rows: Vec<LedgerRow>,
    pub invalid: Vec<InvalidRecord>,
    pub objects: Vec<(u32, String)>,
    /// The day's ledger rows whose processor column is unknown or unreadable (the same for every run).
    pub unattributed: Vec<InvalidRecord>,
}

/// What started a run (the runs table's `trigger` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The daily EventBridge schedule.
    Schedule,
    /// `recon start`, or an execution started by hand.
    Manual,
    /// A file dropped in the inbox (`s3-trigger`).
    S3,
    /// `recon run` on this machine.
    Cli,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::S3 => "s3",
            Trigger::Cli => "cli",
        }
    }
}

/// Who started a run and under which idempotency key.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub date: NaiveDate,
    pub processor: Processor,
    pub trigger: Trigger,
    pub execution: Option<String>,
    /// Execution + processor + date: a retry with the same key never records a second run.
    pub idempotency_key: keys::IdempotencyKey,
}

/// What a finished run gives back.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub summary: RunSummary,
    pub report_prefix: String,
    pub report_link: Option<String>,
    pub top: Vec<TopItem>,
    /// True when the idempotency key had been recorded before and nothing new was written.
    pub replayed: bool,
    /// The processor's items after this run (new, still open, resolved since the last run), when it became
    /// the day's current run.
    pub items: Option<recon_store::ItemDigest>,
}

/// Ports a run needs.
pub struct Deps<'a, S: ObjectStore> {
    pub objects: &'a S,
    pub db: &'a Store,
    pub config: &'a RunConfig,
}
