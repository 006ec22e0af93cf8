//! Items carried from earlier runs (spec section 7): a record that went unmatched and is still within its
//! grace period is handed to the next run as a match candidate, and the run says what became of it.

use serde::{Deserialize, Serialize};

use crate::model::{LedgerRow, ProcessorRecord};

/// A record that went unmatched in an earlier run and is still in its grace period.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum CarriedRecord {
    Processor(ProcessorRecord),
    Ledger(LedgerRow),
}

/// A pending item carried forward from an earlier run (spec section 7).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Carried {
    /// The store's id of the pending discrepancy.
    pub id: i64,
    /// Days between the run that first saw it and this run's date.
    pub age_days: u32,
    /// Where the record came from originally (object key and line).
    pub source: String,
    pub record: CarriedRecord,
    /// Already reported as `missing_*` by an earlier run and still open: a match candidate for the item's
    /// lookback days (issue 15). Linked today, its item is resolved `matched_later`; left unlinked, nothing
    /// is reported again (its item stays open) and it is not counted in this run.
    pub reported: bool,
}

/// What happened to a carried item in this run.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub enum CarryOutcome {
    /// Linked today: the earlier discrepancy is resolved as a timing difference.
    Matched,
    /// Grace period over: reported as `missing_*` in this run.
    Escalated,
    /// Still unmatched and still within grace: pending again in this run.
    StillPending,
    /// The same record arrived again today; the carried copy is superseded by it.
    Duplicate,
    /// An item reported missing earlier was linked today: resolved `matched_later` by this run.
    MatchedLater,
    /// An item reported missing earlier is still unlinked (or listed again today): it stays as it is.
    StillOpen,
}
