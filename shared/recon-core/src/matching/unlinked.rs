//! Phase 6, the unlinked: a candidate left without a partner is `missing_in_ledger` (processor side) or
//! `missing_in_processor` (ledger side), or `pending` while younger than the grace period, in which case its
//! record is carried into later runs. A processor record that moved no money and that nothing claims is
//! counted as `not_settled` instead. The same rules for both sides, in one function.

use rustc_hash::FxHashMap;

use super::candidates::{Candidates, LRef, Origins, PRef};
use super::{Links, NONE};
use crate::carry::{CarriedRecord, CarryOutcome};
use crate::discrepancy::{Category, Discrepancy, Lifecycle};

/// One side's view of a candidate, as the unlinked rules need it.
trait Candidate {
    /// What the side's report says is missing.
    const WHY: &'static str;
    /// Did the record's money move? Only today's processor records can say no.
    fn settled(&self, carried: Option<u32>) -> bool;
    fn missing(&self, carried: Option<u32>, o: Origins<'_>, details: String) -> Discrepancy;
    fn carry(&self) -> CarriedRecord;
}

impl Candidate for PRef<'_> {
    const WHY: &'static str = "processor has it, ledger does not";
    fn settled(&self, carried: Option<u32>) -> bool {
        carried.is_some() || self.rec.status.is_settled()
    }
    fn missing(&self, carried: Option<u32>, o: Origins<'_>, details: String) -> Discrepancy {
        let source = o.source(carried, self.rec.location());
        Discrepancy::of_processor(
            Category::MissingInLedger,
            self.rec,
            source,
            details,
            o.carried_id(carried),
        )
    }
    fn carry(&self) -> CarriedRecord {
        CarriedRecord::Processor(self.rec.clone())
    }
}

impl Candidate for LRef<'_> {
    const WHY: &'static str = "ledger has it, processor does not";
    fn settled(&self, _carried: Option<u32>) -> bool {
        true
    }
    fn missing(&self, carried: Option<u32>, o: Origins<'_>, details: String) -> Discrepancy {
        let source = o.source(carried, self.row.location());
        Discrepancy::of_ledger(
            Category::MissingInProcessor,
            self.row,
            source,
            details,
            o.carried_id(carried),
        )
    }
    fn carry(&self) -> CarriedRecord {
        CarriedRecord::Ledger(self.row.clone())
    }
}

/// What the unlinked of both sides came to.
#[derive(Default, Debug, PartialEq, Eq)]
pub(crate) struct Unlinked {
    pub processor_pending: u64,
    pub ledger_pending: u64,
    pub not_settled: u64,
    /// Carried items reported missing by an earlier run and still unlinked: not this run's records.
    pub processor_still_open: u64,
    pub ledger_still_open: u64,
}

/// One side: returns (pending, not settled, reported earlier and still unlinked).
#[allow(clippy::too_many_arguments)]
fn side<C: Candidate>(
    cands: impl Iterator<Item = C>,
    carried: &[u32],
    dup: &[bool],
    link: &[u32],
    notes: &FxHashMap<usize, String>,
    grace_days: u32,
    o: Origins<'_>,
    found: &mut Vec<Discrepancy>,
    carry_out: &mut Vec<(i64, CarryOutcome)>,
) -> (u64, u64, u64) {
    let (mut pending, mut not_settled, mut still_open) = (0u64, 0u64, 0u64);
    for (i, c) in cands.enumerate() {
        // the carried candidates come first
        let from = carried.get(i).copied();
        if o.reported(from) && (dup[i] || link[i] == NONE) {
            // reported by an earlier run and still unlinked: its item stays open, nothing is reported again,
            // and it is not one of this run's records
            if let Some(id) = o.carried_id(from) {
                carry_out.push((id, CarryOutcome::StillOpen));
            }
            still_open += 1;
            continue;
        }
        if dup[i] {
            // a carried item that turned out to be a duplicate of today's record
            if let Some(id) = o.carried_id(from) {
                carry_out.push((id, CarryOutcome::Duplicate));
            }
            continue;
        }
        if link[i] != NONE {
            continue;
        }
        if !c.settled(from) {
            // no money moved (pending, failed, denied, reversed, canceled) and no ledger row claims it
            not_settled += 1;
            continue;
        }
        let why = match notes.get(&i) {
            Some(n) => format!("{}; {n}", C::WHY),
            None => C::WHY.to_string(),
        };
        let mut d = c.missing(from, o, why);
        // the record is kept with the discrepancy: carried while pending, a match candidate while its item
        // is open (the lookback)
        d.carry = Some(c.carry());
        if o.age(from) < grace_days {
            d.lifecycle = Lifecycle::Pending;
            pending += 1;
        }
        if let Some(id) = o.carried_id(from) {
            let outcome = match d.lifecycle {
                Lifecycle::Pending => CarryOutcome::StillPending,
                Lifecycle::Open => CarryOutcome::Escalated,
            };
            carry_out.push((id, outcome));
        }
        found.push(d);
    }
    (pending, not_settled, still_open)
}

/// Reports the unlinked candidates of both sides.
pub(crate) fn report(
    c: &Candidates<'_>,
    links: &Links,
    grace_days: u32,
    o: Origins<'_>,
    found: &mut Vec<Discrepancy>,
    carry_out: &mut Vec<(i64, CarryOutcome)>,
) -> Unlinked {
    let (processor_pending, not_settled, processor_still_open) = side(
        c.procs.iter(),
        c.p_carried_list(),
        &links.p_dup,
        &links.link_p,
        &links.p_note,
        grace_days,
        o,
        found,
        carry_out,
    );
    let (ledger_pending, _, ledger_still_open) = side(
        c.ledg.iter(),
        c.l_carried_list(),
        &links.l_dup,
        &links.link_l,
        &links.l_note,
        grace_days,
        o,
        found,
        carry_out,
    );
    Unlinked {
        processor_pending,
        ledger_pending,
        not_settled,
        processor_still_open,
        ledger_still_open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::candidates::gather;
    use crate::matching::testkit::{input, prec, row};
    use crate::model::ProcessorStatus;
    use crate::partition::Selection;

    fn run(
        records: &[crate::ProcessorRecord],
        ledger: &[crate::LedgerRow],
        grace: u32,
    ) -> (Unlinked, Vec<Discrepancy>) {
        let (objects, config) = (vec!["p".to_string(), "l".to_string()], Default::default());
        let c = gather(&input(&objects, records, ledger, &config), Selection::All);
        let links = Links::new(c.procs.len(), c.ledg.len());
        let (mut found, mut carry_out) = (Vec::new(), Vec::new());
        let o = Origins {
            objects: &objects,
            carried: &[],
        };
        let u = report(&c, &links, grace, o, &mut found, &mut carry_out);
        (u, found)
    }

    #[test]
    fn given_no_grace_when_reported_then_both_sides_are_missing() {
        let (u, found) = run(&[prec("p", 500, 3)], &[row("L", Some("x"), 700, 4)], 0);
        assert_eq!(u, Unlinked::default());
        let got: Vec<_> = found
            .iter()
            .map(|d| (d.category, d.lifecycle, d.details.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Category::MissingInLedger,
                    Lifecycle::Open,
                    "processor has it, ledger does not"
                ),
                (
                    Category::MissingInProcessor,
                    Lifecycle::Open,
                    "ledger has it, processor does not"
                ),
            ]
        );
        assert_eq!(found[0].processor_source.as_deref(), Some("p:3"));
    }

    #[test]
    fn given_a_grace_day_when_reported_then_both_are_pending_and_carried() {
        let (u, found) = run(&[prec("p", 500, 3)], &[row("L", Some("x"), 700, 4)], 1);
        assert_eq!((u.processor_pending, u.ledger_pending), (1, 1));
        assert!(found
            .iter()
            .all(|d| d.lifecycle == Lifecycle::Pending && d.carry.is_some()));
    }

    #[test]
    fn given_a_failed_record_nobody_claims_when_reported_then_it_is_not_settled_not_missing() {
        let mut p = prec("p", 500, 3);
        p.status = ProcessorStatus::Failed;
        let (u, found) = run(&[p], &[], 0);
        assert_eq!(u.not_settled, 1);
        assert!(found.is_empty());
    }
}
