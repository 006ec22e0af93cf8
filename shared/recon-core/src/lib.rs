//! # recon-core
//!
//! The pure reconciliation domain: exact money ([`money`]), the canonical record ([`model`]), what a run
//! reconciles ([`run`]) and carries from earlier runs ([`carry`]), matching in phases ([`matching`]), its
//! discrepancies ([`discrepancy`]) and outcome ([`outcome`]), sharding ([`partition`]), severity
//! ([`severity`]) and the run summary ([`summary`]).
//!
//! No I/O, no async, no AWS, no SQL: sources parse into [`model`] types, [`reconcile`] turns one run's records
//! into an [`Outcome`], and the edges persist and report it. Everything here is deterministic: the same
//! records in any order give the same outcome. Modules depend one way: model, carry, run, discrepancy,
//! outcome, partition, matching.

pub mod carry;
pub mod discrepancy;
pub mod item;
pub mod matching;
pub mod model;
pub mod money;
pub mod outcome;
pub mod packed;
pub mod partition;
pub mod run;
pub mod severity;
pub mod summary;

pub use carry::{Carried, CarriedRecord, CarryOutcome};
pub use discrepancy::{Category, Discrepancy, Lifecycle};
pub use item::{age_bucket, item_key, item_keys, Action, Family, ItemRules, ItemStatus, Reason, AGE_BUCKETS};
pub use matching::candidates::MAX_MINOR;
pub use matching::{reconcile, reconcile_partition, reconcile_sharded};
pub use model::{
    InvalidRecord, KeyList, Keys, Kind, LedgerFields, LedgerRow, LedgerStatus, LedgerType, Location, Millis,
    NewLedgerRow, NewRecord, Processor, ProcessorRecord, ProcessorStatus, RecordFields, Side, TooLarge,
    MAX_RECORD_TEXT,
};
pub use money::{Currency, Money, MoneyError};
pub use outcome::{merge, ConservationError, DiscrepancyCounts, OutOfWindow, Outcome, NOT_SETTLED};
pub use packed::Str;
pub use partition::{carried_hashes, ledger_hashes, plan, processor_hashes, Plan, Planner, Selection};
pub use run::{window_lag, RunConfig, RunInput};
pub use severity::{Severity, SeverityConfig, Thresholds};
pub use summary::{DaySummary, OpenItems, RunStatus, RunSummary};
