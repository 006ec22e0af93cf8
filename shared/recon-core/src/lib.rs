//! # recon-core
//!
//! The pure reconciliation domain: exact money ([`money`]), the canonical record ([`model`]), matching and
//! classification ([`reconcile`]), severity ([`severity`]) and the run summary ([`summary`]).
//!
//! No I/O, no async, no AWS, no SQL: sources parse into [`model`] types, [`reconcile::reconcile`] turns one
//! run's records into an [`reconcile::Outcome`], and the edges persist and report it. Everything here is
//! deterministic: the same records in any order give the same outcome.

pub mod model;
pub mod money;
pub mod partition;
pub mod reconcile;
pub mod severity;
pub mod summary;

pub use model::{
    InvalidRecord, Keys, Kind, LedgerRow, LedgerStatus, LedgerType, Location, Millis, Processor,
    ProcessorRecord, ProcessorStatus, Side,
};
pub use money::{Currency, Money, MoneyError};
pub use partition::{merge, plan, reconcile_partition, reconcile_sharded, Plan};
pub use reconcile::{
    reconcile, Carried, CarriedRecord, CarryOutcome, Category, ConservationError, Discrepancy,
    DiscrepancyCounts, Lifecycle, OutOfWindow, Outcome, RunConfig, RunInput, NOT_SETTLED,
};
pub use severity::{Severity, SeverityConfig, Thresholds};
pub use summary::{DaySummary, RunStatus, RunSummary};
