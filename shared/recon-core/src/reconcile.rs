//! Matching and classification for one run (one date, one processor): spec section 6.
//!
//! Deterministic: whenever two records collide, the one with the smaller [`Location`] (earlier object,
//! earlier line) is "first", so the result does not depend on the order records are handed in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{
    InvalidRecord, Kind, LedgerRow, LedgerStatus, LedgerType, Location, Millis, Processor, ProcessorRecord,
    ProcessorStatus, Side,
};
use crate::money::{Currency, Money};
use crate::severity::{Severity, SeverityConfig};

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
}

/// Matching configuration for a run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RunConfig {
    /// Later runs an unmatched item stays `pending` before becoming `missing_*` (0: report at once).
    pub grace_days: u32,
    /// Allowed absolute difference in minor units per currency before `amount_mismatch` (default 0).
    pub tolerance: BTreeMap<Currency, i64>,
    pub severity: SeverityConfig,
    /// How the run is computed: 1 reconciles it whole; more plans that many partitions, matches them
    /// independently and merges them ([`crate::partition`]), with the same outcome.
    pub partitions: u32,
    /// Start of the run date (UTC midnight, ms): records dated outside it (widened by [`window_lag`]) are
    /// counted in [`Outcome::out_of_window`]. `None`: not checked.
    pub day_start: Option<Millis>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            grace_days: 1,
            tolerance: BTreeMap::new(),
            severity: SeverityConfig::default(),
            partitions: 1,
            day_start: None,
        }
    }
}

/// Everything one run reconciles. Ledger rows must be this processor's; records of every kind may be given
/// (non-reconciled kinds are counted in `excluded_counts`).
#[derive(Clone, Copy, Debug)]
pub struct RunInput<'a> {
    pub processor: Processor,
    /// Object keys that [`Location::object`] indexes.
    pub objects: &'a [String],
    pub records: &'a [ProcessorRecord],
    pub ledger: &'a [LedgerRow],
    pub invalid: &'a [InvalidRecord],
    pub carried: &'a [Carried],
    pub config: &'a RunConfig,
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
}

/// The eight counts of the summary's `discrepancy_counts`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DiscrepancyCounts {
    pub missing_in_ledger: u64,
    pub missing_in_processor: u64,
    pub amount_mismatch: u64,
    pub currency_mismatch: u64,
    pub status_mismatch: u64,
    pub duplicate: u64,
    pub invalid_record: u64,
    pub pending: u64,
}

impl DiscrepancyCounts {
    fn add(&mut self, d: &Discrepancy) {
        if d.lifecycle == Lifecycle::Pending {
            self.pending += 1;
            return;
        }
        *match d.category {
            Category::MissingInLedger => &mut self.missing_in_ledger,
            Category::MissingInProcessor => &mut self.missing_in_processor,
            Category::AmountMismatch => &mut self.amount_mismatch,
            Category::CurrencyMismatch => &mut self.currency_mismatch,
            Category::StatusMismatch => &mut self.status_mismatch,
            Category::Duplicate => &mut self.duplicate,
            Category::InvalidRecord => &mut self.invalid_record,
        } += 1;
    }

    pub fn get(&self, c: Category) -> u64 {
        match c {
            Category::MissingInLedger => self.missing_in_ledger,
            Category::MissingInProcessor => self.missing_in_processor,
            Category::AmountMismatch => self.amount_mismatch,
            Category::CurrencyMismatch => self.currency_mismatch,
            Category::StatusMismatch => self.status_mismatch,
            Category::Duplicate => self.duplicate,
            Category::InvalidRecord => self.invalid_record,
        }
    }

    pub fn total(&self) -> u64 {
        Category::ALL.iter().map(|c| self.get(*c)).sum::<u64>() + self.pending
    }
}

impl std::ops::AddAssign for DiscrepancyCounts {
    /// Counts of two disjoint sets of discrepancies (partitions of one run) added up.
    fn add_assign(&mut self, o: DiscrepancyCounts) {
        let DiscrepancyCounts {
            missing_in_ledger,
            missing_in_processor,
            amount_mismatch,
            currency_mismatch,
            status_mismatch,
            duplicate,
            invalid_record,
            pending,
        } = o;
        self.missing_in_ledger += missing_in_ledger;
        self.missing_in_processor += missing_in_processor;
        self.amount_mismatch += amount_mismatch;
        self.currency_mismatch += currency_mismatch;
        self.status_mismatch += status_mismatch;
        self.duplicate += duplicate;
        self.invalid_record += invalid_record;
        self.pending += pending;
    }
}

/// The result of reconciling one run (or one partition of it: see [`crate::partition`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub processor: Processor,
    pub processor_count: u64,
    pub ledger_count: u64,
    pub matched_count: u64,
    pub clean_count: u64,
    /// Processor-side and ledger-side duplicates and pending items, for the conservation equations.
    pub processor_duplicates: u64,
    pub ledger_duplicates: u64,
    pub processor_pending: u64,
    pub ledger_pending: u64,
    pub counts: DiscrepancyCounts,
    /// Exact totals of amounts at stake per currency (pending items excluded), zero totals omitted.
    pub totals: BTreeMap<Currency, i128>,
    pub excluded_counts: BTreeMap<String, u64>,
    pub severity: Option<Severity>,
    /// Sorted by (category, processor id, ledger id, sources).
    pub discrepancies: Vec<Discrepancy>,
    /// What happened to each carried item, by its id.
    pub carried: Vec<(i64, CarryOutcome)>,
    /// Carried items in this run's counts.
    pub carried_count: u64,
    /// Processor records that did not settle and that no ledger row claims (also in `excluded_counts`).
    #[serde(default)]
    pub not_settled: u64,
    /// Records dated outside the run's window.
    #[serde(default)]
    pub out_of_window: OutOfWindow,
}

/// The `excluded_counts` key of processor records that moved no money and that no ledger row claims.
pub const NOT_SETTLED: &str = "not_settled";

/// Records (either side) whose time lies outside the run date widened by the source's usual lag
/// ([`window_lag`]): reconciled into the run all the same (the operator put them there), but said.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OutOfWindow {
    pub count: u64,
    pub earliest: Option<Millis>,
    pub latest: Option<Millis>,
}

impl OutOfWindow {
    fn see(&mut self, at: Millis) {
        self.count += 1;
        self.earliest = Some(self.earliest.map_or(at, |e| e.min(at)));
        self.latest = Some(self.latest.map_or(at, |l| l.max(at)));
    }

    /// Two disjoint sets of records (partitions of one run) together.
    pub fn merge(&mut self, o: OutOfWindow) {
        self.count += o.count;
        self.earliest = match (self.earliest, o.earliest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.latest = match (self.latest, o.latest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

const DAY_MS: Millis = 86_400_000;

/// Days before and after the run date that a source's records usually carry: `(before, after)`. A processor
/// record may be dated up to `before` days earlier than the day it settles on (PayPal settlement reports list
/// transactions initiated days before they settle; Stripe and Square report the day's activity with a day's
/// margin for time zones); ledger rows are booked up to two days late. `after` is a day everywhere (a
/// record stamped in a local time zone ahead of UTC).
pub fn window_lag(processor: Option<Processor>) -> (i64, i64) {
    match processor {
        Some(Processor::Paypal) => (3, 1),
        Some(Processor::Stripe) | Some(Processor::Square) => (1, 1),
        None => (2, 1),
    }
}

fn in_window(day_start: Millis, lag: (i64, i64), at: Millis) -> bool {
    at >= day_start - lag.0 * DAY_MS && at < day_start + (1 + lag.1) * DAY_MS
}

/// A run whose counts do not add up: a bug, reported loudly, never written as a result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("conservation check failed for {processor}: {detail}")]
pub struct ConservationError {
    pub processor: Processor,
    pub detail: String,
}

/// Index of a processor-side candidate: today's record or a carried one.
#[derive(Clone, Copy)]
struct PRef<'a> {
    rec: &'a ProcessorRecord,
    /// Index into the carried items (u32: candidate lists of millions stay at 16 bytes an entry).
    carried: Option<u32>,
}

#[derive(Clone, Copy)]
struct LRef<'a> {
    row: &'a LedgerRow,
    /// Index into the carried items (u32: candidate lists of millions stay at 16 bytes an entry).
    carried: Option<u32>,
}

const NONE: u32 = u32::MAX;

fn hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(s)
}

fn order_key(carried: Option<u32>, loc: Location) -> (u8, u64, u64) {
    match carried {
        Some(i) => (0, i as u64, 0),
        None => (1, u64::from(loc.object), loc.line),
    }
}

fn source_of(objects: &[String], carried: &[Carried], c: Option<u32>, loc: Location) -> String {
    match c {
        Some(i) => carried
            .get(i as usize)
            .map(|c| c.source.clone())
            .unwrap_or_default(),
        None => {
            let key = objects
                .get(loc.object as usize)
                .map(String::as_str)
                .unwrap_or("?");
            format!("{key}:{}", loc.line)
        }
    }
}

/// The largest amount recon reconciles, in minor units (10^17: a thousand trillion dollars, far beyond any
/// real payment). Every difference of two such amounts fits an `i64`; sums are `i128`. A record beyond it is an
/// `invalid_record`, never a clamped figure.
pub const MAX_MINOR: i64 = 100_000_000_000_000_000;

fn in_range(minor: i64) -> bool {
    minor.unsigned_abs() <= MAX_MINOR.unsigned_abs()
}

fn range_invalid(side: Side, location: Location, amount: Money, id: &str) -> InvalidRecord {
    InvalidRecord {
        side,
        location,
        field: Some("amount".into()),
        reason: format!(
            "amount {} {} of {id} is beyond the largest amount recon reconciles ({} minor units): check the export",
            amount, amount.currency, MAX_MINOR
        ),
        raw: String::new(),
    }
}

/// The first text field of a processor record holding a NUL character (legal in JSON, `\u0000`, but text
/// PostgreSQL cannot store).
fn processor_nul(r: &ProcessorRecord) -> Option<&'static str> {
    let has = |s: &str| s.contains('\0');
    if has(&r.id) {
        Some("id")
    } else if r.reference.as_deref().is_some_and(has) || r.other_references.iter().any(has) {
        Some("reference")
    } else {
        None
    }
}

fn ledger_nul(r: &LedgerRow) -> Option<&'static str> {
    let has = |s: &str| s.contains('\0');
    if has(&r.ledger_id) {
        Some("ledger_id")
    } else if r.processor_txn_id.as_deref().is_some_and(has) {
        Some("processor_txn_id")
    } else if r.order_id.as_deref().is_some_and(has) {
        Some("order_id")
    } else {
        None
    }
}

fn nul_invalid(side: Side, location: Location, field: &str, raw: &str) -> InvalidRecord {
    InvalidRecord {
        side,
        location,
        field: Some(field.into()),
        reason: format!(
            "{field} contains a NUL character (\\0), which no text column can hold: fix the export"
        ),
        raw: raw.to_string(),
    }
}

/// Text as it can be stored and shown: NUL characters written as `\0`.
fn storable(s: &str) -> String {
    s.replace('\0', "\\0")
}

/// The absolute amount at stake of a value known to be in range (both amounts of a pair are at most
/// [`MAX_MINOR`], so a difference is at most twice that).
fn stake_of(v: i128) -> i64 {
    i64::try_from(v.unsigned_abs()).unwrap_or(i64::MAX)
}

/// How well a processor record fits a ledger row that names one of its keys, lower is better: kind, sign and
/// amount agree (0); kind and sign (1); sign (2); kind (3); neither (4).
fn fit(p: &ProcessorRecord, l: &LedgerRow) -> u8 {
    let kind = matches!(
        (l.kind, p.kind),
        (LedgerType::Charge, Kind::Charge)
            | (LedgerType::Refund, Kind::Refund)
            | (LedgerType::Dispute, Kind::Dispute)
    );
    let sign = p.amount.minor.signum() == l.amount.minor.signum();
    let amount = p.amount == l.amount;
    match (kind, sign, amount) {
        (true, true, true) => 0,
        (true, true, false) => 1,
        (false, true, _) => 2,
        (true, false, _) => 3,
        (false, false, _) => 4,
    }
}

/// Is this linked pair's outcome contradictory? Returns the reason and whether it is at least HIGH.
fn status_problem(p: &ProcessorRecord, l: &LedgerRow) -> Option<(String, bool)> {
    let ps = p.status;
    let ls = l.status;
    if ps.is_unsuccessful() && matches!(ls, LedgerStatus::Captured | LedgerStatus::Refunded) {
        return Some((
            format!("processor says {} but ledger says {}", ps.as_str(), ls.as_str()),
            true,
        ));
    }
    if ps == ProcessorStatus::Refunded && ls == LedgerStatus::Captured && p.kind == Kind::Charge {
        return Some(("processor says refunded but ledger says captured".into(), true));
    }
    if ls == LedgerStatus::Failed && matches!(ps, ProcessorStatus::Succeeded | ProcessorStatus::Refunded) {
        return Some((
            format!("ledger says failed but processor says {}", ps.as_str()),
            false,
        ));
    }
    if ls == LedgerStatus::Refunded && p.kind == Kind::Charge && ps == ProcessorStatus::Succeeded {
        return Some((
            "ledger says refunded on a record the processor shows as a plain charge".into(),
            false,
        ));
    }
    None
}

/// Reconciles one run. Fails only when the conservation equations do not hold (a bug, never bad input).
pub fn reconcile(input: RunInput<'_>) -> Result<Outcome, ConservationError> {
    reconcile_part(input, None)
}

/// Reconciles the records of one partition of a [`crate::partition::Plan`] (all of them with `None`).
/// Invalid records belong to partition 0.
pub(crate) fn reconcile_part(
    input: RunInput<'_>,
    part: Option<(&crate::partition::Plan, u32)>,
) -> Result<Outcome, ConservationError> {
    let mine = |of: &[u32], i: usize| match part {
        None => true,
        Some((_, p)) => of.get(i).copied().unwrap_or(0) == p,
    };
    let (plan_records, plan_ledger, plan_carried): (&[u32], &[u32], &[u32]) = match part {
        Some((plan, _)) => (&plan.records, &plan.ledger, &plan.carried),
        None => (&[], &[], &[]),
    };
    let first_partition = matches!(part, None | Some((_, 0)));
    let RunInput {
        processor,
        objects,
        records,
        ledger,
        invalid,
        carried,
        config,
    } = input;
    let mut excluded_counts: BTreeMap<String, u64> = BTreeMap::new();

    // --- candidates: today's reconciled records and carried items, in "first" order --------------------
    let mut procs: Vec<PRef<'_>> = Vec::with_capacity(records.len());
    let mut ledg: Vec<LRef<'_>> = Vec::with_capacity(ledger.len());
    let mut carried_count = 0u64;
    for (i, c) in carried.iter().enumerate() {
        if !mine(plan_carried, i) {
            continue;
        }
        carried_count += 1;
        match &c.record {
            CarriedRecord::Processor(rec) => procs.push(PRef {
                rec,
                carried: Some(i as u32),
            }),
            CarriedRecord::Ledger(row) => ledg.push(LRef {
                row,
                carried: Some(i as u32),
            }),
        }
    }
    let mut out_of_window = OutOfWindow::default();
    let mut out_of_range: Vec<InvalidRecord> = Vec::new();
    let p_lag = window_lag(Some(processor));
    let l_lag = window_lag(None);
    for (n, rec) in records.iter().enumerate() {
        if !mine(plan_records, n) {
            continue;
        }
        if let (Some(day), Some(at)) = (config.day_start, rec.occurred_at) {
            if !in_window(day, p_lag, at) {
                out_of_window.see(at);
            }
        }
        if let Some(field) = processor_nul(rec) {
            out_of_range.push(nul_invalid(
                Side::Processor,
                rec.location,
                field,
                &format!("{rec:?}"),
            ));
        } else if rec.kind.is_reconciled() && !in_range(rec.amount.minor) {
            out_of_range.push(range_invalid(Side::Processor, rec.location, rec.amount, &rec.id));
        } else if rec.kind.is_reconciled() {
            procs.push(PRef { rec, carried: None });
        } else {
            *excluded_counts.entry(rec.kind.as_str().to_string()).or_default() += 1;
        }
    }
    for (n, row) in ledger.iter().enumerate() {
        if !mine(plan_ledger, n) {
            continue;
        }
        if let (Some(day), Some(at)) = (config.day_start, row.booked_at) {
            if !in_window(day, l_lag, at) {
                out_of_window.see(at);
            }
        }
        if let Some(field) = ledger_nul(row) {
            out_of_range.push(nul_invalid(
                Side::Ledger,
                row.location,
                field,
                &format!("{row:?}"),
            ));
        } else if row.kind != LedgerType::Adjustment && !in_range(row.amount.minor) {
            out_of_range.push(range_invalid(
                Side::Ledger,
                row.location,
                row.amount,
                &row.ledger_id,
            ));
        } else if row.kind == LedgerType::Adjustment {
            *excluded_counts
                .entry("ledger_adjustment".to_string())
                .or_default() += 1;
        } else {
            ledg.push(LRef { row, carried: None });
        }
    }
    procs.sort_by_key(|p| order_key(p.carried, p.rec.location));
    ledg.sort_by_key(|l| order_key(l.carried, l.row.location));
    let np = procs.len();
    let nl = ledg.len();

    let mut discrepancies: Vec<Discrepancy> = Vec::new();
    let mut carry_out: Vec<(i64, CarryOutcome)> = Vec::new();
    let psrc = |i: usize| source_of(objects, carried, procs[i].carried, procs[i].rec.location);
    let lsrc = |i: usize| source_of(objects, carried, ledg[i].carried, ledg[i].row.location);
    let carried_id = |c: Option<u32>| c.and_then(|i| carried.get(i as usize)).map(|c| c.id);

    // --- duplicates, both sides at once (two threads: the tables are independent) -----------------------
    // processor side: the same record id twice
    let processor_dups = || {
        let mut p_dup = vec![false; np];
        let mut found = Vec::new();
        // tables of indexes (4 bytes an entry); the strings stay in the records
        let mut seen: HashTable<u32> = HashTable::with_capacity(np);
        let pid = |j: u32| -> &str { &procs[j as usize].rec.id };
        for (i, p) in procs.iter().enumerate() {
            let id: &str = &p.rec.id;
            let hv = hash(id);
            if let Some(&first) = seen.find(hv, |&j| pid(j) == id) {
                p_dup[i] = true;
                let first_src = psrc(first as usize);
                found.push(proc_discrepancy(
                    Category::Duplicate,
                    p.rec,
                    psrc(i),
                    format!(
                        "processor record {} appears again (first at {first_src})",
                        p.rec.id
                    ),
                    carried_id(p.carried),
                ));
            } else {
                seen.insert_unique(hv, i as u32, |&j| hash(pid(j)));
            }
        }
        (p_dup, found)
    };
    // ledger side: the same ledger_id twice, or the same processor_txn_id twice; also returns the first
    // ledger row holding each processor id, which step 1 probes with every processor key
    // the processor-id table holds the id itself beside the row index: a probe that hits compares strings
    // without first reading the candidate list and the row (two dependent cache misses fewer)
    type TxnEntry<'r> = (u32, &'r str);
    let ledger_dups = || {
        let mut l_dup = vec![false; nl];
        let mut found = Vec::new();
        let mut txns: HashTable<TxnEntry<'_>> = HashTable::with_capacity(nl);
        let mut ids: HashTable<u32> = HashTable::with_capacity(nl);
        let lid = |j: u32| -> &str { &ledg[j as usize].row.ledger_id };
        for (i, l) in ledg.iter().enumerate() {
            let id: &str = &l.row.ledger_id;
            let hv = hash(id);
            let why = if let Some(&first) = ids.find(hv, |&j| lid(j) == id) {
                Some(format!(
                    "ledger_id {} appears again (first at {})",
                    l.row.ledger_id,
                    lsrc(first as usize)
                ))
            } else {
                ids.insert_unique(hv, i as u32, |&j| hash(lid(j)));
                match l.row.processor_txn_id.as_deref() {
                    Some(t) => match txns.find(hash(t), |&(_, x)| x == t) {
                        Some(&(first, _)) => Some(format!(
                            "processor id {t} booked twice: ledger {} already holds it",
                            ledg[first as usize].row.ledger_id
                        )),
                        None => {
                            txns.insert_unique(hash(t), (i as u32, t), |&(_, x)| hash(x));
                            None
                        }
                    },
                    None => None,
                }
            };
            if let Some(why) = why {
                l_dup[i] = true;
                found.push(ledger_discrepancy(
                    Category::Duplicate,
                    l.row,
                    lsrc(i),
                    why,
                    carried_id(l.carried),
                ));
            }
        }
        (l_dup, txns, found)
    };
    let ((p_dup, p_found), (mut l_dup, txns, l_found)) = std::thread::scope(|s| {
        let p = s.spawn(processor_dups);
        let l = ledger_dups();
        (p.join().unwrap_or_else(|_| processor_dups()), l)
    });
    discrepancies.extend(p_found);
    discrepancies.extend(l_found);

    // --- step 1: exact key match ---------------------------------------------------------------------------
    // For each ledger row, the processor records holding its processor id as one of their keys. One
    // candidate links. Several (a dispute's withdrawal and its reversal share the `dp_` source; a charge and
    // its failure share the `ch_`): the one whose kind, sign and amount agree with the row links; when more
    // than one fits equally (same fit, same key rank), the row is left unlinked and the ambiguity reported.
    // Input order never decides.
    let mut link_p = vec![NONE; np];
    let mut link_l = vec![NONE; nl];
    let mut ambiguity: FxHashMap<usize, String> = FxHashMap::default(); // ledger index -> note
    let mut p_ambiguity: FxHashMap<usize, String> = FxHashMap::default();
    {
        // best[j] = (rank << 32 | processor index) of ledger row j's best-ranked candidate, hits[j] how many
        // candidates it has. The probes (3-4 per record, each a likely cache miss) run on two threads;
        // `fetch_min` and `fetch_add` are commutative, so the result does not depend on thread timing.
        let best: Vec<AtomicU64> = (0..nl).map(|_| AtomicU64::new(u64::MAX)).collect();
        let hits: Vec<AtomicU32> = (0..nl).map(|_| AtomicU32::new(0)).collect();
        let probe = |from: usize, to: usize| {
            for (i, p) in procs.iter().enumerate().take(to).skip(from) {
                if p_dup[i] {
                    continue;
                }
                for (rank, k) in p.rec.keys.iter().enumerate() {
                    if let Some(&(j, _)) = txns.find(hash(k), |&(_, x)| x == k) {
                        let packed = ((rank as u64) << 32) | i as u64;
                        if let (Some(b), Some(h)) = (best.get(j as usize), hits.get(j as usize)) {
                            b.fetch_min(packed, Ordering::Relaxed);
                            h.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        };
        let half = np / 2;
        std::thread::scope(|s| {
            let other = s.spawn(|| probe(half, np));
            probe(0, half);
            if other.join().is_err() {
                // the thread died before finishing: count from scratch on this one
                for (b, h) in best.iter().zip(&hits) {
                    b.store(u64::MAX, Ordering::Relaxed);
                    h.store(0, Ordering::Relaxed);
                }
                probe(0, np);
            }
        });
        let mut best: Vec<u64> = best.into_iter().map(AtomicU64::into_inner).collect();
        let hits: Vec<u32> = hits.into_iter().map(AtomicU32::into_inner).collect();
        // rows with several candidates: collect them all (a second pass, only on days that have such rows)
        if hits.iter().any(|&h| h > 1) {
            let mut cands: Vec<(u32, u32, u32)> = Vec::new(); // (ledger row, rank, processor index)
            for (i, p) in procs.iter().enumerate() {
                if p_dup[i] {
                    continue;
                }
                for (rank, k) in p.rec.keys.iter().enumerate() {
                    if let Some(&(j, _)) = txns.find(hash(k), |&(_, x)| x == k) {
                        if hits[j as usize] > 1 {
                            cands.push((j, rank as u32, i as u32));
                        }
                    }
                }
            }
            cands.sort_unstable();
            for group in cands.chunk_by(|a, b| a.0 == b.0) {
                let j = group[0].0 as usize;
                let row = ledg[j].row;
                // lowest (fit, rank) wins; equal bests are ambiguous
                let scored = group
                    .iter()
                    .map(|&(_, rank, i)| ((fit(procs[i as usize].rec, row), rank), i));
                let top = scored.clone().map(|(s, _)| s).min();
                let winners: Vec<u32> = scored.filter(|(s, _)| Some(*s) == top).map(|(_, i)| i).collect();
                match winners.as_slice() {
                    [i] => best[j] = u64::from(*i),
                    _ => {
                        best[j] = u64::MAX;
                        let ids: Vec<&str> = winners.iter().map(|&i| &*procs[i as usize].rec.id).collect();
                        let t = row.processor_txn_id.as_deref().unwrap_or("");
                        let note = format!(
                            "ambiguous: processor records {} all hold {t} and fit ledger {} ({} {} {}) equally; \
                             not linked",
                            ids.join(", "),
                            row.ledger_id,
                            row.kind.as_str(),
                            row.amount,
                            row.amount.currency
                        );
                        for &i in &winners {
                            p_ambiguity.insert(i as usize, note.clone());
                        }
                        ambiguity.insert(j, note);
                    }
                }
            }
        }
        for (j, l) in ledg.iter().enumerate() {
            let packed = best[j];
            if l_dup[j] || packed == u64::MAX {
                continue;
            }
            let i = (packed & 0xFFFF_FFFF) as usize;
            if link_p[i] == NONE {
                link_p[i] = j as u32;
                link_l[j] = i as u32;
            } else {
                l_dup[j] = true;
                let other = &ledg[link_p[i] as usize].row.ledger_id;
                let why = format!(
                    "double booking: ledger {} and {} both point at processor record {}",
                    other, l.row.ledger_id, procs[i].rec.id
                );
                discrepancies.push(ledger_discrepancy(
                    Category::Duplicate,
                    l.row,
                    lsrc(j),
                    why,
                    carried_id(l.carried),
                ));
            }
        }
    }

    // --- step 2: fallback on order id + amount + currency, unique on both sides -------------------------
    {
        type FKey = (String, i64, Currency);
        let mut lmap: BTreeMap<FKey, Vec<usize>> = BTreeMap::new();
        for (j, l) in ledg.iter().enumerate() {
            if l_dup[j] || link_l[j] != NONE || l.row.processor_txn_id.is_some() {
                continue;
            }
            if let Some(o) = l.row.order_id.as_deref().filter(|o| !o.is_empty()) {
                lmap.entry((o.to_ascii_lowercase(), l.row.amount.minor, l.row.amount.currency))
                    .or_default()
                    .push(j);
            }
        }
        if !lmap.is_empty() {
            // a record may hold several candidate references (PayPal custom_field and invoice_id, ...): it is
            // a candidate of every group one of them names
            let mut pmap: BTreeMap<FKey, Vec<usize>> = BTreeMap::new();
            let mut groups_of: FxHashMap<usize, u32> = FxHashMap::default();
            for (i, p) in procs.iter().enumerate() {
                if p_dup[i] || link_p[i] != NONE {
                    continue;
                }
                for r in p.rec.references() {
                    let k = (r.to_ascii_lowercase(), p.rec.amount.minor, p.rec.amount.currency);
                    if lmap.contains_key(&k) {
                        pmap.entry(k).or_default().push(i);
                        *groups_of.entry(i).or_default() += 1;
                    }
                }
            }
            for (k, ls) in &lmap {
                let ps = pmap.get(k).map(Vec::as_slice).unwrap_or(&[]);
                match (ls.as_slice(), ps) {
                    ([j], [i]) if groups_of.get(i).copied() == Some(1) => {
                        link_l[*j] = *i as u32;
                        link_p[*i] = *j as u32;
                    }
                    (_, []) => {}
                    _ => {
                        let mut note = format!(
                            "ambiguous fallback on order_id {} {} {}: {} ledger rows and {} processor records \
                             share it",
                            k.0,
                            Money::new(k.1, k.2),
                            k.2,
                            ls.len(),
                            ps.len()
                        );
                        let torn: Vec<&str> = ps
                            .iter()
                            .filter(|i| groups_of.get(i).copied().unwrap_or(0) > 1)
                            .map(|&i| &*procs[i].rec.id)
                            .collect();
                        if !torn.is_empty() {
                            note.push_str(&format!(
                                ", and processor record {} fits other order ids through another reference",
                                torn.join(", ")
                            ));
                        }
                        note.push_str("; not linked");
                        for j in ls {
                            ambiguity.insert(*j, note.clone());
                        }
                        for i in ps {
                            p_ambiguity
                                .entry(*i)
                                .and_modify(|n| {
                                    n.push_str("; ");
                                    n.push_str(&note);
                                })
                                .or_insert_with(|| note.clone());
                        }
                    }
                }
            }
        }
    }

    // --- linked pairs -----------------------------------------------------------------------------------------
    let mut matched = 0u64;
    let mut clean = 0u64;
    for (i, p) in procs.iter().enumerate() {
        let j = link_p[i];
        if j == NONE {
            continue;
        }
        let l = ledg[j as usize];
        matched += 1;
        for c in [p.carried, l.carried].into_iter().flatten() {
            if let Some(item) = carried.get(c as usize) {
                carry_out.push((item.id, CarryOutcome::Matched));
            }
        }
        let (pr, lr) = (p.rec, l.row);
        let tol = config.tolerance.get(&pr.amount.currency).copied().unwrap_or(0);
        let diff = i128::from(pr.amount.minor) - i128::from(lr.amount.minor);
        let problem: Option<(Category, i64, bool, String)> = if pr.amount.currency != lr.amount.currency {
            Some((
                Category::CurrencyMismatch,
                stake_of(i128::from(pr.amount.minor)),
                true,
                format!(
                    "processor {} {} vs ledger {} {}",
                    pr.amount, pr.amount.currency, lr.amount, lr.amount.currency
                ),
            ))
        } else if diff.unsigned_abs() > u128::from(tol.unsigned_abs()) {
            Some((
                Category::AmountMismatch,
                stake_of(diff),
                false,
                format!(
                    "processor {} vs ledger {} {}",
                    pr.amount, lr.amount, pr.amount.currency
                ),
            ))
        } else {
            status_problem(pr, lr).map(|(why, high)| {
                (
                    Category::StatusMismatch,
                    stake_of(i128::from(pr.amount.minor)),
                    high,
                    why,
                )
            })
        };
        let Some((category, stake, floor_high, details)) = problem else {
            clean += 1;
            continue;
        };
        let mut sev = config.severity.by_amount(stake, pr.amount.currency);
        if floor_high || category == Category::CurrencyMismatch {
            sev = sev.max(Severity::High);
        }
        discrepancies.push(Discrepancy {
            category,
            lifecycle: Lifecycle::Open,
            severity: Some(sev),
            processor_id: Some(pr.id.clone()),
            ledger_id: Some(lr.ledger_id.clone()),
            processor_txn_id: lr.processor_txn_id.clone(),
            reference: pr.reference.clone().or_else(|| lr.order_id.clone()),
            kind: Some(pr.kind),
            processor_amount: Some(pr.amount),
            ledger_amount: Some(lr.amount),
            amount_at_stake: stake,
            currency: Some(pr.amount.currency),
            occurred_at: pr.occurred_at,
            processor_source: Some(psrc(i)),
            ledger_source: Some(lsrc(j as usize)),
            details,
            raw: None,
            carried_from: carried_id(p.carried).or(carried_id(l.carried)),
            carry: None,
        });
    }

    // --- unlinked: missing_* or pending ----------------------------------------------------------------------
    let mut p_pending = 0u64;
    let mut l_pending = 0u64;
    let age = |c: Option<u32>| {
        c.and_then(|i| carried.get(i as usize))
            .map(|c| c.age_days)
            .unwrap_or(0)
    };
    let mut not_settled = 0u64;
    for (i, p) in procs.iter().enumerate() {
        if p_dup[i] || link_p[i] != NONE {
            continue;
        }
        if p.carried.is_none() && !p.rec.status.is_settled() {
            // no money moved (pending, failed, denied, reversed, canceled) and no ledger row claims it
            not_settled += 1;
            continue;
        }
        let mut why = "processor has it, ledger does not".to_string();
        if let Some(n) = p_ambiguity.get(&i) {
            why = format!("{why}; {n}");
        }
        let mut d = proc_discrepancy(
            Category::MissingInLedger,
            p.rec,
            psrc(i),
            why,
            carried_id(p.carried),
        );
        if age(p.carried) < config.grace_days {
            d.lifecycle = Lifecycle::Pending;
            d.severity = None;
            d.carry = Some(CarriedRecord::Processor(p.rec.clone()));
            p_pending += 1;
        }
        if let Some(id) = carried_id(p.carried) {
            let o = if d.lifecycle == Lifecycle::Pending {
                CarryOutcome::StillPending
            } else {
                CarryOutcome::Escalated
            };
            carry_out.push((id, o));
        }
        discrepancies.push(d);
    }
    for (j, l) in ledg.iter().enumerate() {
        if l_dup[j] || link_l[j] != NONE {
            continue;
        }
        let mut why = "ledger has it, processor does not".to_string();
        if let Some(n) = ambiguity.get(&j) {
            why = format!("{why}; {n}");
        }
        let mut d = ledger_discrepancy(
            Category::MissingInProcessor,
            l.row,
            lsrc(j),
            why,
            carried_id(l.carried),
        );
        if age(l.carried) < config.grace_days {
            d.lifecycle = Lifecycle::Pending;
            d.severity = None;
            d.carry = Some(CarriedRecord::Ledger(l.row.clone()));
            l_pending += 1;
        }
        if let Some(id) = carried_id(l.carried) {
            let o = if d.lifecycle == Lifecycle::Pending {
                CarryOutcome::StillPending
            } else {
                CarryOutcome::Escalated
            };
            carry_out.push((id, o));
        }
        discrepancies.push(d);
    }
    // carried items that turned out to be duplicates of today's records
    for (i, p) in procs.iter().enumerate() {
        if p_dup[i] {
            if let Some(id) = carried_id(p.carried) {
                carry_out.push((id, CarryOutcome::Duplicate));
            }
        }
    }
    for (j, l) in ledg.iter().enumerate() {
        if l_dup[j] {
            if let Some(id) = carried_id(l.carried) {
                carry_out.push((id, CarryOutcome::Duplicate));
            }
        }
    }

    // --- invalid records ------------------------------------------------------------------------------------
    let invalid = if first_partition { invalid } else { &[] };
    for inv in invalid.iter().chain(&out_of_range) {
        let src = source_of(objects, &[], None, inv.location);
        let field = inv
            .field
            .as_deref()
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        discrepancies.push(Discrepancy {
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
            processor_source: (inv.side == crate::model::Side::Processor).then(|| src.clone()),
            ledger_source: (inv.side == crate::model::Side::Ledger).then(|| src.clone()),
            details: storable(&format!("{src}: {}{field}", inv.reason)),
            raw: Some(storable(&inv.raw)),
            carried_from: None,
            carry: None,
        });
    }

    // --- severities of unlinked and duplicate items, totals, counts -----------------------------------------
    let mut counts = DiscrepancyCounts::default();
    let mut totals: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut severity: Option<Severity> = None;
    let mut p_dups = 0u64;
    let mut l_dups = 0u64;
    for d in &mut discrepancies {
        if d.lifecycle == Lifecycle::Open && d.severity.is_none() {
            let by_amount = d
                .currency
                .map(|c| config.severity.by_amount(d.amount_at_stake, c))
                .unwrap_or(Severity::Low);
            d.severity = Some(if d.category == Category::Duplicate {
                by_amount.max(Severity::High)
            } else {
                by_amount
            });
        }
        if d.category == Category::Duplicate {
            if d.processor_id.is_some() {
                p_dups += 1;
            } else {
                l_dups += 1;
            }
        }
        counts.add(d);
        if d.lifecycle == Lifecycle::Open {
            if let Some(c) = d.currency {
                *totals.entry(c).or_default() += i128::from(d.amount_at_stake);
            }
            severity = severity.max(d.severity);
        }
    }
    totals.retain(|_, v| *v != 0);
    if not_settled > 0 {
        excluded_counts.insert(NOT_SETTLED.to_string(), not_settled);
    }
    let processor_count = np as u64;
    let ledger_count = nl as u64;
    let severity = run_severity(severity, &counts, processor_count);

    // --- conservation ----------------------------------------------------------------------------------------
    let p_rhs = matched + counts.missing_in_ledger + p_dups + p_pending + not_settled;
    let l_rhs = matched + counts.missing_in_processor + l_dups + l_pending;
    if processor_count != p_rhs || ledger_count != l_rhs {
        return Err(ConservationError {
            processor,
            detail: format!(
                "processor_count {processor_count} != matched {matched} + missing_in_ledger {} + duplicates {p_dups} \
                 + pending {p_pending} + not_settled {not_settled}, or ledger_count {ledger_count} != matched {matched} + missing_in_processor {} \
                 + duplicates {l_dups} + pending {l_pending}",
                counts.missing_in_ledger, counts.missing_in_processor
            ),
        });
    }

    sort_discrepancies(&mut discrepancies);
    carry_out.sort();
    Ok(Outcome {
        processor,
        processor_count,
        ledger_count,
        matched_count: matched,
        clean_count: clean,
        processor_duplicates: p_dups,
        ledger_duplicates: l_dups,
        processor_pending: p_pending,
        ledger_pending: l_pending,
        counts,
        totals,
        excluded_counts,
        severity,
        discrepancies,
        carried: carry_out,
        carried_count,
        not_settled,
        out_of_window,
    })
}

/// The run severity: the highest open discrepancy's, raised to CRITICAL when `processor_count >= 10` and
/// more than 1 % of it is missing on either side.
pub(crate) fn run_severity(
    highest: Option<Severity>,
    counts: &DiscrepancyCounts,
    processor_count: u64,
) -> Option<Severity> {
    let missing = counts.missing_in_ledger + counts.missing_in_processor;
    if processor_count >= 10 && missing * 100 > processor_count {
        Some(Severity::Critical)
    } else {
        highest
    }
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

fn proc_discrepancy(
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
        processor_id: Some(p.id.clone()),
        ledger_id: None,
        processor_txn_id: None,
        reference: p.reference.clone(),
        kind: Some(p.kind),
        processor_amount: Some(p.amount),
        ledger_amount: None,
        amount_at_stake: stake_of(i128::from(p.amount.minor)),
        currency: Some(p.amount.currency),
        occurred_at: p.occurred_at,
        processor_source: Some(source),
        ledger_source: None,
        details,
        raw: None,
        carried_from,
        carry: None,
    }
}

fn ledger_discrepancy(
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
        ledger_id: Some(l.ledger_id.clone()),
        processor_txn_id: l.processor_txn_id.clone(),
        reference: l.order_id.clone(),
        kind: Some(kind),
        processor_amount: None,
        ledger_amount: Some(l.amount),
        amount_at_stake: stake_of(i128::from(l.amount.minor)),
        currency: Some(l.amount.currency),
        occurred_at: l.booked_at,
        processor_source: None,
        ledger_source: Some(source),
        details,
        raw: None,
        carried_from,
        carry: None,
    }
}
