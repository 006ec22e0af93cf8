//! The outcome of a run: counts, exact totals, the run severity and the conservation check that every
//! record is accounted for exactly once; and the merge of a sharded run's partitions into one outcome.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::carry::CarryOutcome;
use crate::discrepancy::{sort_discrepancies, Category, Discrepancy, Lifecycle};
use crate::model::{Millis, Processor};
use crate::money::Currency;
use crate::severity::{Severity, SeverityConfig};

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
    fn slot(&mut self, c: Category) -> &mut u64 {
        match c {
            Category::MissingInLedger => &mut self.missing_in_ledger,
            Category::MissingInProcessor => &mut self.missing_in_processor,
            Category::AmountMismatch => &mut self.amount_mismatch,
            Category::CurrencyMismatch => &mut self.currency_mismatch,
            Category::StatusMismatch => &mut self.status_mismatch,
            Category::Duplicate => &mut self.duplicate,
            Category::InvalidRecord => &mut self.invalid_record,
        }
    }

    fn add(&mut self, d: &Discrepancy) {
        if d.lifecycle == Lifecycle::Pending {
            self.pending += 1;
        } else {
            *self.slot(d.category) += 1;
        }
    }

    pub fn get(&self, c: Category) -> u64 {
        let mut copy = *self;
        *copy.slot(c)
    }

    pub fn total(&self) -> u64 {
        Category::ALL.iter().map(|c| self.get(*c)).sum::<u64>() + self.pending
    }
}

impl std::ops::AddAssign for DiscrepancyCounts {
    /// Counts of two disjoint sets of discrepancies (partitions of one run) added up.
    fn add_assign(&mut self, o: DiscrepancyCounts) {
        for c in Category::ALL {
            *self.slot(c) += o.get(c);
        }
        self.pending += o.pending;
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
/// ([`crate::window_lag`]): reconciled into the run all the same (the operator put them there), but said.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OutOfWindow {
    pub count: u64,
    pub earliest: Option<Millis>,
    pub latest: Option<Millis>,
}

impl OutOfWindow {
    pub(crate) fn see(&mut self, at: Millis) {
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

/// A run whose counts do not add up: a bug, reported loudly, never written as a result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("conservation check failed for {processor}: {detail}")]
pub struct ConservationError {
    pub processor: Processor,
    pub detail: String,
}

/// What the matching phases found, before it is counted.
pub(crate) struct Tally {
    pub processor: Processor,
    /// Reconciled candidates on each side (today's records and carried items).
    pub processor_count: u64,
    pub ledger_count: u64,
    pub matched: u64,
    pub clean: u64,
    pub processor_pending: u64,
    pub ledger_pending: u64,
    pub not_settled: u64,
    pub carried_count: u64,
    pub excluded_counts: BTreeMap<String, u64>,
    pub out_of_window: OutOfWindow,
    pub discrepancies: Vec<Discrepancy>,
    pub carried: Vec<(i64, CarryOutcome)>,
}

/// Counts a run: severities of the items that have none yet (by amount; a duplicate at least HIGH), counts,
/// totals, the run severity, then the conservation equations (spec section 6):
/// `processor_count = matched + missing_in_ledger + duplicates + pending + not_settled` and
/// `ledger_count = matched + missing_in_processor + duplicates + pending`.
pub(crate) fn conclude(t: Tally, severity_config: &SeverityConfig) -> Result<Outcome, ConservationError> {
    let Tally {
        processor,
        processor_count,
        ledger_count,
        matched,
        clean,
        processor_pending: p_pending,
        ledger_pending: l_pending,
        not_settled,
        carried_count,
        mut excluded_counts,
        out_of_window,
        mut discrepancies,
        mut carried,
    } = t;
    let mut counts = DiscrepancyCounts::default();
    let mut totals: BTreeMap<Currency, i128> = BTreeMap::new();
    let mut severity: Option<Severity> = None;
    let (mut p_dups, mut l_dups) = (0u64, 0u64);
    for d in &mut discrepancies {
        if d.lifecycle == Lifecycle::Open && d.severity.is_none() {
            let by_amount = d
                .currency
                .map(|c| severity_config.by_amount(d.amount_at_stake, c))
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
    let severity = run_severity(severity, &counts, processor_count);

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
    carried.sort();
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
        carried,
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

/// Merges the outcomes of every partition of one run into the run's outcome: counts, totals and excluded
/// counts add up, discrepancies and carry outcomes are put in the unpartitioned order, and the run severity
/// is decided again over the whole run (the 1 % rule needs the whole run's counts). An empty list gives
/// the outcome of an empty run of `processor`.
pub fn merge(processor: Processor, parts: Vec<Outcome>) -> Outcome {
    let mut out = Outcome {
        processor,
        processor_count: 0,
        ledger_count: 0,
        matched_count: 0,
        clean_count: 0,
        processor_duplicates: 0,
        ledger_duplicates: 0,
        processor_pending: 0,
        ledger_pending: 0,
        counts: Default::default(),
        totals: BTreeMap::new(),
        excluded_counts: BTreeMap::new(),
        severity: None,
        discrepancies: Vec::new(),
        carried: Vec::new(),
        carried_count: 0,
        not_settled: 0,
        out_of_window: Default::default(),
    };
    for p in parts {
        out.processor_count += p.processor_count;
        out.ledger_count += p.ledger_count;
        out.matched_count += p.matched_count;
        out.clean_count += p.clean_count;
        out.processor_duplicates += p.processor_duplicates;
        out.ledger_duplicates += p.ledger_duplicates;
        out.processor_pending += p.processor_pending;
        out.ledger_pending += p.ledger_pending;
        out.counts += p.counts;
        for (c, v) in p.totals {
            *out.totals.entry(c).or_default() += v;
        }
        for (k, v) in p.excluded_counts {
            *out.excluded_counts.entry(k).or_default() += v;
        }
        out.discrepancies.extend(p.discrepancies);
        out.carried.extend(p.carried);
        out.carried_count += p.carried_count;
        out.not_settled += p.not_settled;
        out.out_of_window.merge(p.out_of_window);
    }
    out.totals.retain(|_, v| *v != 0);
    let highest = out
        .discrepancies
        .iter()
        .filter(|d| d.lifecycle == Lifecycle::Open)
        .filter_map(|d| d.severity)
        .max();
    out.severity = run_severity(highest, &out.counts, out.processor_count);
    sort_discrepancies(&mut out.discrepancies);
    out.carried.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_category() {
        let mut a = DiscrepancyCounts {
            amount_mismatch: 2,
            pending: 1,
            ..Default::default()
        };
        a += DiscrepancyCounts {
            amount_mismatch: 1,
            duplicate: 4,
            ..Default::default()
        };
        assert_eq!(a.get(Category::AmountMismatch), 3);
        assert_eq!(a.get(Category::Duplicate), 4);
        assert_eq!(a.total(), 8);
    }

    #[test]
    fn more_than_one_percent_missing_is_critical() {
        let counts = DiscrepancyCounts {
            missing_in_ledger: 2,
            ..Default::default()
        };
        assert_eq!(
            run_severity(Some(Severity::Low), &counts, 100),
            Some(Severity::Critical)
        );
        assert_eq!(
            run_severity(Some(Severity::Low), &counts, 200),
            Some(Severity::Low)
        );
        // fewer than 10 records: the 1 % rule does not apply
        assert_eq!(run_severity(None, &counts, 9), None);
    }

    #[test]
    fn a_tally_that_loses_a_record_is_refused() {
        let t = Tally {
            processor: Processor::Stripe,
            processor_count: 3,
            ledger_count: 2,
            matched: 2,
            clean: 2,
            processor_pending: 0,
            ledger_pending: 0,
            not_settled: 0,
            carried_count: 0,
            excluded_counts: BTreeMap::new(),
            out_of_window: OutOfWindow::default(),
            discrepancies: Vec::new(),
            carried: Vec::new(),
        };
        let e = conclude(t, &SeverityConfig::default()).err();
        assert!(e.is_some_and(|e| e.detail.contains("processor_count 3")));
    }
}
