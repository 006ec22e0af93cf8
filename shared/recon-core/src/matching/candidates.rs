//! Phase 1, candidates: which of the run's records take part in matching. Today's records of reconciled
//! kinds and the carried items, put in "first" order (carried items, then by object and line), so that
//! input order never decides anything later. Records that cannot be matched are set aside here: kinds that
//! are never reconciled (counted in `excluded_counts`), amounts beyond [`MAX_MINOR`] and text no column can
//! hold (both become `invalid_record`s). Records dated outside the run's window are counted.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::carry::{Carried, CarriedRecord};
use crate::model::{InvalidRecord, LedgerRow, LedgerType, Location, ProcessorRecord, Side};
use crate::money::Money;
use crate::outcome::OutOfWindow;
use crate::partition::Selection;
use crate::run::{in_window, window_lag, RunInput};

/// The largest amount recon reconciles, in minor units (10^17: a thousand trillion dollars, far beyond any
/// real payment). Every difference of two such amounts fits an `i64`; sums are `i128`. A record beyond it is an
/// `invalid_record`, never a clamped figure.
pub const MAX_MINOR: i64 = 100_000_000_000_000_000;

/// A processor-side candidate: today's record or a carried one (which carried item it stands for, if any,
/// is [`Candidates::p_carried`]).
#[derive(Clone, Copy)]
pub(crate) struct PRef<'a> {
    pub rec: &'a ProcessorRecord,
}

impl<'a> From<&'a ProcessorRecord> for PRef<'a> {
    fn from(rec: &'a ProcessorRecord) -> Self {
        PRef { rec }
    }
}

/// A ledger-side candidate.
#[derive(Clone, Copy)]
pub(crate) struct LRef<'a> {
    pub row: &'a LedgerRow,
}

impl<'a> From<&'a LedgerRow> for LRef<'a> {
    fn from(row: &'a LedgerRow) -> Self {
        LRef { row }
    }
}

/// One side's candidates in "first" order: the carried ones (references; a few) and then today's records,
/// kept as their indexes in the day's records: 4 bytes a candidate where a reference took 8, and none when
/// today's candidates are the day's records, all of them in order (`every`: the usual ledger). Candidate
/// `i` is handed out as a `W` ([`PRef`], [`LRef`]).
pub(crate) struct Listed<'a, T, W> {
    carried: Vec<&'a T>,
    records: &'a [T],
    today: Vec<u32>,
    every: bool,
    wrap: std::marker::PhantomData<W>,
}

/// The processor side's candidates.
pub(crate) type Procs<'a> = Listed<'a, ProcessorRecord, PRef<'a>>;
/// The ledger side's candidates.
pub(crate) type Ledg<'a> = Listed<'a, LedgerRow, LRef<'a>>;

impl<'a, T, W: From<&'a T>> Listed<'a, T, W> {
    fn new(records: &'a [T]) -> Self {
        Listed {
            carried: Vec::new(),
            records,
            today: Vec::with_capacity(records.len()),
            every: false,
            wrap: std::marker::PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.carried.len() + self.today_len()
    }

    fn today_len(&self) -> usize {
        match self.every {
            true => self.records.len(),
            false => self.today.len(),
        }
    }

    /// Today's candidate `k` (after the carried ones): its index in the day's records.
    #[inline]
    fn today(&self, k: usize) -> Option<usize> {
        match self.every {
            true => (k < self.records.len()).then_some(k),
            false => self.today.get(k).map(|&n| n as usize),
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Candidate `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<W> {
        let rec = match self.carried.get(i) {
            Some(&r) => r,
            None => self.records.get(self.today(i - self.carried.len())?)?,
        };
        Some(W::from(rec))
    }

    /// Candidate `i`, which must be one (`i < len()`): a candidate index the phases hold, like indexing a
    /// slice.
    #[inline]
    pub fn at(&self, i: usize) -> W {
        let rec = match self.carried.get(i) {
            Some(&r) => r,
            None => {
                let k = i - self.carried.len();
                &self.records[if self.every { k } else { self.today[k] as usize }]
            }
        };
        W::from(rec)
    }

    /// Every candidate, in order.
    pub fn iter(&self) -> impl Iterator<Item = W> + use<'_, 'a, T, W> {
        let today = (0..self.today_len()).filter_map(|k| self.records.get(self.today(k)?));
        self.carried.iter().copied().chain(today).map(W::from)
    }

    /// Asks for the memory [`Self::get`] reads first for candidate `i` (its entry in the list).
    #[inline]
    pub fn prefetch_entry(&self, i: usize) {
        match i.checked_sub(self.carried.len()) {
            Some(k) if !self.every => super::table::prefetch_at(&self.today, k),
            Some(_) => {}
            None => super::table::prefetch_at(&self.carried, i),
        }
    }

    fn push_carried(&mut self, rec: &'a T) {
        self.carried.push(rec);
    }

    fn push_today(&mut self, n: usize) {
        self.today.push(n as u32);
    }

    /// Today's candidates by object and line (a stable sort: input order never decides).
    fn sort_today(&mut self, location: impl Fn(&T) -> Location) {
        let records = self.records;
        let at = |n: &u32| {
            records.get(*n as usize).map(|r| {
                let l = location(r);
                (l.object, l.line)
            })
        };
        self.today.sort_by_key(at);
        // every record, in order: no list needed
        if self.today.len() == self.records.len()
            && self.today.iter().enumerate().all(|(k, &n)| k == n as usize)
        {
            self.today = Vec::new();
            self.every = true;
        }
    }
}

/// The candidates of one run (or partition), in "first" order: the carried items first (by their index),
/// then today's records by object and line.
pub(crate) struct Candidates<'a> {
    pub procs: Procs<'a>,
    pub ledg: Ledg<'a>,
    /// The carried item behind each of the first `p_carried.len()` processor candidates (the rest are
    /// today's records): kept apart so that a candidate is one reference, not two words.
    p_carried: Vec<u32>,
    l_carried: Vec<u32>,
    pub excluded_counts: BTreeMap<String, u64>,
    pub out_of_window: OutOfWindow,
    /// Records refused here (amount out of range, NUL in a text field).
    pub refused: Vec<InvalidRecord>,
    pub carried_count: u64,
}

impl Candidates<'_> {
    /// The carried item processor candidate `i` stands for (`None`: today's record).
    #[inline]
    pub fn p_carried(&self, i: usize) -> Option<u32> {
        self.p_carried.get(i).copied()
    }

    /// The carried item ledger candidate `j` stands for.
    #[inline]
    pub fn l_carried(&self, j: usize) -> Option<u32> {
        self.l_carried.get(j).copied()
    }

    /// The carried items behind the first processor candidates, in candidate order.
    pub fn p_carried_list(&self) -> &[u32] {
        &self.p_carried
    }

    pub fn l_carried_list(&self) -> &[u32] {
        &self.l_carried
    }
}

/// Where candidates came from: the run's object keys and carried items, for sources and carry ids.
#[derive(Clone, Copy)]
pub(crate) struct Origins<'a> {
    pub objects: &'a [String],
    pub carried: &'a [Carried],
}

impl Origins<'_> {
    /// `key:line` of a record, or the original source of a carried one.
    pub fn source(&self, carried: Option<u32>, loc: Location) -> String {
        match carried {
            Some(i) => self
                .carried
                .get(i as usize)
                .map(|c| c.source.clone())
                .unwrap_or_default(),
            None => {
                let key = self
                    .objects
                    .get(loc.object as usize)
                    .map(String::as_str)
                    .unwrap_or("?");
                format!("{key}:{}", loc.line)
            }
        }
    }

    /// The store id of a carried candidate.
    pub fn carried_id(&self, carried: Option<u32>) -> Option<i64> {
        carried.and_then(|i| self.carried.get(i as usize)).map(|c| c.id)
    }

    /// Was the candidate reported missing by an earlier run (an open item within its lookback)?
    pub fn reported(&self, carried: Option<u32>) -> bool {
        carried
            .and_then(|i| self.carried.get(i as usize))
            .is_some_and(|c| c.reported)
    }

    /// Days a candidate has been unmatched (0 for today's records).
    pub fn age(&self, carried: Option<u32>) -> u32 {
        carried
            .and_then(|i| self.carried.get(i as usize))
            .map(|c| c.age_days)
            .unwrap_or(0)
    }
}

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
    let has = |s: crate::Str<'_>| s.contains('\0');
    if has(r.id()) {
        Some("id")
    // the other references cannot hold one: packing drops those that do, as it drops such keys
    } else if r.reference().is_some_and(has) {
        Some("reference")
    } else {
        None
    }
}

fn ledger_nul(r: &LedgerRow) -> Option<&'static str> {
    // one scan of the row's text (its three fields, one after the other) in the usual case of none
    if !r.text_has_nul() {
        return None;
    }
    let has = |s: crate::Str<'_>| s.contains('\0');
    if has(r.ledger_id()) {
        Some("ledger_id")
    } else if r.processor_txn_id().is_some_and(has) {
        Some("processor_txn_id")
    } else if r.order_id().is_some_and(has) {
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

/// The carried items reported missing earlier whose record is listed again today (the same processor record
/// id, or the same `ledger_id`): today's record takes their place, so a re-listed record is never a
/// duplicate of its own open item; so do pending carries of the same record. Checked over the whole input,
/// whatever the partition, and only when such items are carried.
fn relisted(carried: &[Carried], records: &[ProcessorRecord], ledger: &[LedgerRow]) -> FxHashSet<usize> {
    let mut p: FxHashMap<crate::Str<'_>, usize> = FxHashMap::default();
    let mut l: FxHashMap<crate::Str<'_>, usize> = FxHashMap::default();
    for (i, c) in carried.iter().enumerate().filter(|(_, c)| c.reported) {
        match &c.record {
            CarriedRecord::Processor(r) => p.insert(r.id(), i),
            CarriedRecord::Ledger(r) => l.insert(r.ledger_id(), i),
        };
    }
    let mut out = FxHashSet::default();
    if p.is_empty() && l.is_empty() {
        return out;
    }
    // a pending carry of the same record (listed again, and pending again) takes its place too
    for c in carried.iter().filter(|c| !c.reported) {
        let hit = match &c.record {
            CarriedRecord::Processor(r) => p.get(&*r.id()),
            CarriedRecord::Ledger(r) => l.get(&*r.ledger_id()),
        };
        out.extend(hit.copied());
    }
    if !p.is_empty() {
        out.extend(records.iter().filter_map(|r| p.get(&*r.id()).copied()));
    }
    if !l.is_empty() {
        out.extend(ledger.iter().filter_map(|r| l.get(&*r.ledger_id()).copied()));
    }
    out
}

/// The candidates of the selected records of `input`.
pub(crate) fn gather<'a>(input: &RunInput<'a>, sel: Selection<'_>) -> Candidates<'a> {
    let RunInput {
        processor,
        records,
        ledger,
        carried,
        config,
        ..
    } = *input;
    let mut c = Candidates {
        procs: Listed::new(records),
        ledg: Listed::new(ledger),
        excluded_counts: BTreeMap::new(),
        out_of_window: OutOfWindow::default(),
        p_carried: Vec::new(),
        l_carried: Vec::new(),
        refused: Vec::new(),
        carried_count: 0,
    };
    let relisted = relisted(carried, records, ledger);
    for (i, item) in carried.iter().enumerate() {
        if !sel.carried(i) || relisted.contains(&i) {
            continue;
        }
        if !item.reported {
            c.carried_count += 1;
        }
        // in ascending index: the carried candidates' order
        match &item.record {
            CarriedRecord::Processor(rec) => {
                c.procs.push_carried(rec);
                c.p_carried.push(i as u32);
            }
            CarriedRecord::Ledger(row) => {
                c.ledg.push_carried(row);
                c.l_carried.push(i as u32);
            }
        }
    }
    let p_lag = window_lag(Some(processor));
    let l_lag = window_lag(None);
    for (n, rec) in records.iter().enumerate() {
        if !sel.record(n) {
            continue;
        }
        if let (Some(day), Some(at)) = (config.day_start, rec.occurred_at()) {
            if !in_window(day, p_lag, at) {
                c.out_of_window.see(at);
            }
        }
        if let Some(field) = processor_nul(rec) {
            c.refused.push(nul_invalid(
                Side::Processor,
                rec.location(),
                field,
                &format!("{rec:?}"),
            ));
        } else if rec.kind.is_reconciled() && !in_range(rec.amount().minor) {
            c.refused.push(range_invalid(
                Side::Processor,
                rec.location(),
                rec.amount(),
                &rec.id(),
            ));
        } else if rec.kind.is_reconciled() {
            c.procs.push_today(n);
        } else {
            *c.excluded_counts
                .entry(rec.kind.as_str().to_string())
                .or_default() += 1;
        }
    }
    for (n, row) in ledger.iter().enumerate() {
        if !sel.ledger_row(n) {
            continue;
        }
        if let (Some(day), Some(at)) = (config.day_start, row.booked_at()) {
            if !in_window(day, l_lag, at) {
                c.out_of_window.see(at);
            }
        }
        if let Some(field) = ledger_nul(row) {
            c.refused.push(nul_invalid(
                Side::Ledger,
                row.location(),
                field,
                &format!("{row:?}"),
            ));
        } else if row.kind == LedgerType::Adjustment {
            *c.excluded_counts
                .entry("ledger_adjustment".to_string())
                .or_default() += 1;
        } else if !in_range(row.amount().minor) {
            c.refused.push(range_invalid(
                Side::Ledger,
                row.location(),
                row.amount(),
                &row.ledger_id(),
            ));
        } else {
            c.ledg.push_today(n);
        }
    }
    // today's records after the carried ones, by object and line (a stable sort: input order never decides)
    c.procs.sort_today(ProcessorRecord::location);
    c.ledg.sort_today(LedgerRow::location);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::testkit::{input, prec, row};
    use crate::model::Kind;

    #[test]
    fn given_records_in_any_order_when_gathered_then_they_are_in_location_order() {
        let records = [prec("b", 100, 2), prec("a", 100, 1)];
        let (objects, config) = (Vec::new(), Default::default());
        let c = gather(&input(&objects, &records, &[], &config), Selection::All);
        let ids: Vec<String> = c.procs.iter().map(|p| p.rec.id().to_string()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    /// Today's candidates are kept as indexes, or as nothing when they are every record in order: either
    /// way, carried items first, then by location, each candidate handed out the same by `get`, `at` and
    /// `iter`.
    #[test]
    fn candidates_read_back_the_same_whether_listed_or_every_record() {
        let mut fee = prec("fee", 100, 3);
        fee.kind = Kind::Fee;
        let carried = vec![Carried {
            id: 7,
            age_days: 1,
            source: "k:9".into(),
            record: CarriedRecord::Processor(prec("old", 100, 9)),
            reported: false,
        }];
        let cases: [(Vec<ProcessorRecord>, &[&str], bool); 4] = [
            (vec![prec("a", 1, 1), prec("b", 1, 2)], &["a", "b"], true),
            (vec![prec("b", 1, 2), prec("a", 1, 1)], &["a", "b"], false),
            (vec![prec("a", 1, 1), fee, prec("c", 1, 4)], &["a", "c"], false),
            (vec![], &[], true),
        ];
        let (objects, config) = (Vec::new(), Default::default());
        for (records, want, every) in cases {
            for with_carried in [false, true] {
                let mut inp = input(&objects, &records, &[], &config);
                if with_carried {
                    inp.carried = &carried;
                }
                let c = gather(&inp, Selection::All);
                assert_eq!(c.procs.every, every, "{want:?}");
                let mut expect: Vec<&str> = want.to_vec();
                if with_carried {
                    expect.insert(0, "old");
                }
                let listed: Vec<String> = c.procs.iter().map(|p| p.rec.id().to_string()).collect();
                let got: Vec<String> = (0..c.procs.len())
                    .filter_map(|i| c.procs.get(i))
                    .map(|p| p.rec.id().to_string())
                    .collect();
                let at: Vec<String> = (0..c.procs.len())
                    .map(|i| c.procs.at(i).rec.id().to_string())
                    .collect();
                assert_eq!(listed, expect);
                assert_eq!(got, expect);
                assert_eq!(at, expect);
                assert!(c.procs.get(c.procs.len()).is_none());
            }
        }
    }

    #[test]
    fn given_a_payout_and_an_adjustment_when_gathered_then_they_are_counted_not_matched() {
        let mut payout = prec("po_1", 100, 1);
        payout.kind = Kind::Payout;
        let mut adj = row("L1", Some("x"), 100, 1);
        adj.kind = LedgerType::Adjustment;
        let (records, ledger) = ([payout], [adj]);
        let (objects, config) = (Vec::new(), Default::default());
        let c = gather(&input(&objects, &records, &ledger, &config), Selection::All);
        assert!(c.procs.is_empty() && c.ledg.is_empty());
        assert_eq!(c.excluded_counts.get("payout"), Some(&1));
        assert_eq!(c.excluded_counts.get("ledger_adjustment"), Some(&1));
    }

    #[test]
    fn given_an_amount_beyond_the_range_or_a_nul_when_gathered_then_it_is_refused() {
        let records = [
            prec("p\0", 100, 1),
            prec("big", MAX_MINOR + 1, 2),
            prec("ok", MAX_MINOR, 3),
        ];
        let (objects, config) = (Vec::new(), Default::default());
        let c = gather(&input(&objects, &records, &[], &config), Selection::All);
        assert_eq!(c.procs.len(), 1);
        let fields: Vec<_> = c.refused.iter().map(|r| r.field.as_deref()).collect();
        assert_eq!(fields, [Some("id"), Some("amount")]);
    }

    #[test]
    fn given_a_nul_in_any_ledger_text_field_when_gathered_then_the_row_is_refused_naming_it() {
        use crate::matching::testkit::with_row;
        let ledger = [
            row("l\0", Some("t1"), 100, 1),
            row("l2", Some("t\0"), 100, 2),
            with_row(&row("l3", Some("t3"), 100, 3), |f| {
                f.order_id = Some("o\0".into())
            }),
            with_row(&row("l4", None, 100, 4), |f| f.order_id = Some("o4".into())),
        ];
        let (objects, config) = (Vec::new(), Default::default());
        let c = gather(&input(&objects, &[], &ledger, &config), Selection::All);
        assert_eq!(c.ledg.len(), 1);
        let fields: Vec<_> = c.refused.iter().map(|r| r.field.as_deref()).collect();
        assert_eq!(
            fields,
            [Some("ledger_id"), Some("processor_txn_id"), Some("order_id")]
        );
    }
}
