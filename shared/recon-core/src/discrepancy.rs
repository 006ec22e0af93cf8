//! A discrepancy: its category, lifecycle, and how one is made from a processor record, a ledger row, a
//! linked pair or an invalid record. The order discrepancies are reported in is here too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::carry::CarriedRecord;
use crate::model::{InvalidRecord, Kind, LedgerRow, LedgerType, Millis, ProcessorRecord, Side};
use crate::money::{Currency, Money};
use crate::severity::Severity;

/// Discrepancy categories, in the spec's table order (the order also decides a linked pair's category).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    MissingInLedger,
    MissingInProcessor,
    CurrencyMismatch,
    AmountMismatch,
    StatusMismatch,
    Duplicate,
    InvalidRecord,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::MissingInLedger,
        Category::MissingInProcessor,
        Category::CurrencyMismatch,
        Category::AmountMismatch,
        Category::StatusMismatch,
        Category::Duplicate,
        Category::InvalidRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::MissingInLedger => "missing_in_ledger",
            Category::MissingInProcessor => "missing_in_processor",
            Category::CurrencyMismatch => "currency_mismatch",
            Category::AmountMismatch => "amount_mismatch",
            Category::StatusMismatch => "status_mismatch",
            Category::Duplicate => "duplicate",
            Category::InvalidRecord => "invalid_record",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown discrepancy category {s:?}"))
    }
}

/// Lifecycle of a discrepancy as the core produces it: `open`, or `pending` while in its grace period.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Open,
    Pending,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Open => "open",
            Lifecycle::Pending => "pending",
        }
    }
}

/// One discrepancy.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Discrepancy {
    pub category: Category,
    pub lifecycle: Lifecycle,
    /// `None` while pending.
    pub severity: Option<Severity>,
    pub processor_id: Option<Box<str>>,
    pub ledger_id: Option<Box<str>>,
    /// The ledger row's `processor_txn_id`.
    pub processor_txn_id: Option<Box<str>>,
    pub reference: Option<Box<str>>,
    pub kind: Option<Kind>,
    pub processor_amount: Option<Money>,
    pub ledger_amount: Option<Money>,
    /// Absolute amount at stake in minor units of `currency` (0 for invalid records).
    pub amount_at_stake: i64,
    pub currency: Option<Currency>,
    pub occurred_at: Option<Millis>,
    /// Object key and line of the processor side / ledger side.
    pub processor_source: Option<String>,
    pub ledger_source: Option<String>,
    pub details: String,
    /// Raw text of an invalid record.
    pub raw: Option<String>,
    /// The carried item this discrepancy continues, if any.
    pub carried_from: Option<i64>,
    /// For pending items: the record to carry into later runs.
    pub carry: Option<CarriedRecord>,
}

impl Discrepancy {
    /// The amount at stake as exact money, when a currency applies.
    pub fn stake(&self) -> Option<Money> {
        self.currency.map(|c| Money::new(self.amount_at_stake, c))
    }

    /// A discrepancy about one processor record alone (missing in the ledger, a duplicate); its severity is
    /// decided when the run is counted.
    pub(crate) fn of_processor(
        category: Category,
        p: &ProcessorRecord,
        source: String,
        details: String,
        carried_from: Option<i64>,
    ) -> Discrepancy {
        Discrepancy {
            category,
            lifecycle: Lifecycle::Open,
            severity: None,
            processor_id: Some(p.id().into()),
            ledger_id: None,
            processor_txn_id: None,
            reference: p.reference().map(Into::into),
            kind: Some(p.kind),
            processor_amount: Some(p.amount()),
            ledger_amount: None,
            amount_at_stake: stake_of(i128::from(p.amount().minor)),
            currency: Some(p.amount().currency),
            occurred_at: p.occurred_at(),
            processor_source: Some(source),
            ledger_source: None,
            details,
            raw: None,
            carried_from,
            carry: None,
        }
    }

    /// A discrepancy about one ledger row alone.
    pub(crate) fn of_ledger(
        category: Category,
        l: &LedgerRow,
        source: String,
        details: String,
        carried_from: Option<i64>,
    ) -> Discrepancy {
        let kind = match l.kind {
            LedgerType::Charge => Kind::Charge,
            LedgerType::Refund => Kind::Refund,
            LedgerType::Dispute => Kind::Dispute,
            LedgerType::Adjustment => Kind::Adjustment,
        };
        Discrepancy {
            category,
            lifecycle: Lifecycle::Open,
            severity: None,
            processor_id: None,
            ledger_id: Some(l.ledger_id().into()),
            processor_txn_id: l.processor_txn_id().map(Into::into),
            reference: l.order_id().map(Into::into),
            kind: Some(kind),
            processor_amount: None,
            ledger_amount: Some(l.amount()),
            amount_at_stake: stake_of(i128::from(l.amount().minor)),
            currency: Some(l.amount().currency),
            occurred_at: l.booked_at(),
            processor_source: None,
            ledger_source: Some(source),
            details,
            raw: None,
            carried_from,
            carry: None,
        }
    }

    /// A linked pair that disagrees (`category` is a mismatch), with its severity already decided.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of_pair(
        category: Category,
        severity: Severity,
        p: &ProcessorRecord,
        l: &LedgerRow,
        stake: i64,
        sources: (String, String),
        details: String,
        carried_from: Option<i64>,
    ) -> Discrepancy {
        Discrepancy {
            category,
            lifecycle: Lifecycle::Open,
            severity: Some(severity),
            processor_id: Some(p.id().into()),
            ledger_id: Some(l.ledger_id().into()),
            processor_txn_id: l.processor_txn_id().map(Into::into),
            reference: p
                .reference()
                .map(Into::into)
                .or_else(|| l.order_id().map(Into::into)),
            kind: Some(p.kind),
            processor_amount: Some(p.amount()),
            ledger_amount: Some(l.amount()),
            amount_at_stake: stake,
            currency: Some(p.amount().currency),
            occurred_at: p.occurred_at(),
            processor_source: Some(sources.0),
            ledger_source: Some(sources.1),
            details,
            raw: None,
            carried_from,
            carry: None,
        }
    }

    /// An `invalid_record` (always HIGH, nothing at stake: the amount could not be read) found at `source`.
    pub(crate) fn of_invalid(inv: &InvalidRecord, source: String) -> Discrepancy {
        let field = inv
            .field
            .as_deref()
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        Discrepancy {
            category: Category::InvalidRecord,
            lifecycle: Lifecycle::Open,
            severity: Some(Severity::High),
            processor_id: None,
            ledger_id: None,
            processor_txn_id: None,
            reference: None,
            kind: None,
            processor_amount: None,
            ledger_amount: None,
            amount_at_stake: 0,
            currency: None,
            occurred_at: None,
            processor_source: (inv.side == Side::Processor).then(|| source.clone()),
            ledger_source: (inv.side == Side::Ledger).then(|| source.clone()),
            details: storable(&format!("{source}: {}{field}", inv.reason)),
            raw: Some(storable(&inv.raw)),
            carried_from: None,
            carry: None,
        }
    }
}

/// The absolute amount at stake of a value known to be in range (both amounts of a pair are at most
/// [`crate::MAX_MINOR`], so a difference is at most twice that).
pub(crate) fn stake_of(v: i128) -> i64 {
    i64::try_from(v.unsigned_abs()).unwrap_or(i64::MAX)
}

/// Text as it can be stored and shown: NUL characters written as `\0`.
fn storable(s: &str) -> String {
    s.replace('\0', "\\0")
}

/// The order discrepancies are reported in: category, processor id, ledger id, sources, then details (a total
/// order, so partitioned and unpartitioned runs list them identically).
pub(crate) fn sort_discrepancies(ds: &mut [Discrepancy]) {
    ds.sort_by(|a, b| {
        (
            a.category,
            &a.processor_id,
            &a.ledger_id,
            &a.processor_source,
            &a.ledger_source,
            &a.details,
        )
            .cmp(&(
                b.category,
                &b.processor_id,
                &b.ledger_id,
                &b.processor_source,
                &b.ledger_source,
                &b.details,
            ))
    });
}
