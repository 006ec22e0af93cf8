//! Matching and classification of one run (one date, one processor): spec section 6, in phases, each in its
//! own file with its tests beside it:
//!
//! 1. [`candidates`]: which records take part, in "first" order; out-of-range and unstorable records refused;
//! 2. [`duplicates`]: the same record twice on either side;
//! 3. [`exact`]: a ledger row's `processor_txn_id` against the processor records' keys;
//! 4. [`fallback`]: order id + amount + currency, when unique on both sides;
//! 5. [`classify`]: a linked pair is clean or a currency, amount or status mismatch;
//! 6. [`unlinked`]: the rest is missing on one side, pending or not settled;
//!
//! then [`crate::outcome`] counts the run and checks conservation. The phases share one [`Links`].
//!
//! Deterministic: whenever two records collide, the one with the smaller [`crate::Location`] (earlier
//! object, earlier line) is "first", so the result does not depend on the order records are handed in.

pub(crate) mod candidates;
pub(crate) mod classify;
pub(crate) mod duplicates;
pub(crate) mod exact;
pub(crate) mod fallback;
pub(crate) mod table;
pub(crate) mod unlinked;

use rustc_hash::FxHashMap;

use crate::carry::CarryOutcome;
use crate::discrepancy::Discrepancy;
use crate::outcome::{conclude, merge, ConservationError, Outcome, Tally};
use crate::partition::{plan, Plan, Selection};
use crate::run::RunConfig;
use crate::run::RunInput;
use crate::severity::Severity;
use candidates::{Candidates, Origins};

/// "No partner" in [`Links`].
pub(crate) const NONE: u32 = u32::MAX;

/// The hash of a field as stored ([`crate::packed`]): for tables whose keys are all compared as stored.
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(b)
}

/// What the phases decide about the candidates, indexed like [`candidates::Candidates`]' two lists.
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// Duplicates (never linked).
    pub p_dup: Vec<bool>,
    pub l_dup: Vec<bool>,
    /// The partner's index, or [`NONE`].
    pub link_p: Vec<u32>,
    pub link_l: Vec<u32>,
    /// Why a candidate could not be linked (ambiguity), said in its report.
    pub p_note: FxHashMap<usize, String>,
    pub l_note: FxHashMap<usize, String>,
}

impl Links {
    /// The duplicates' flags of `np` processor and `nl` ledger candidates; no links yet: the exact link
    /// ([`exact::link`]) makes the lists of links, after the duplicates' tables are freed.
    pub fn flags(np: usize, nl: usize) -> Links {
        Links {
            p_dup: vec![false; np],
            l_dup: vec![false; nl],
            ..Links::default()
        }
    }

    /// No duplicates, no links.
    #[cfg(test)]
    pub fn new(np: usize, nl: usize) -> Links {
        Links {
            p_dup: vec![false; np],
            l_dup: vec![false; nl],
            link_p: vec![NONE; np],
            link_l: vec![NONE; nl],
            p_note: FxHashMap::default(),
            l_note: FxHashMap::default(),
        }
    }

    /// Links processor candidate `i` with ledger candidate `j`.
    pub fn link(&mut self, i: usize, j: usize) {
        self.link_p[i] = j as u32;
        self.link_l[j] = i as u32;
    }
}

/// Reconciles one run. Fails only when the conservation equations do not hold (a bug, never bad input).
pub fn reconcile(input: RunInput<'_>) -> Result<Outcome, ConservationError> {
    reconcile_selected(input, Selection::All)
}

/// Reconciles partition `index` of `plan` (which must have been made from the same input).
pub fn reconcile_partition(
    input: RunInput<'_>,
    plan: &Plan,
    index: u32,
) -> Result<Outcome, ConservationError> {
    reconcile_selected(input, Selection::Part { plan, index })
}

/// Plans, reconciles every partition (two at a time) and merges: the same outcome as [`reconcile`],
/// computed the way a sharded run computes it.
pub fn reconcile_sharded(input: RunInput<'_>, n: u32) -> Result<Outcome, ConservationError> {
    let plan = plan(&input, n);
    let mut parts = Vec::with_capacity(plan.partitions as usize);
    let mut next = 0u32;
    while next < plan.partitions {
        let pair = std::thread::scope(|s| {
            let second =
                (next + 1 < plan.partitions).then(|| s.spawn(|| reconcile_partition(input, &plan, next + 1)));
            let first = reconcile_partition(input, &plan, next);
            let second = second.map(|h| {
                h.join()
                    .unwrap_or_else(|_| reconcile_partition(input, &plan, next + 1))
            });
            (first, second)
        });
        parts.push(pair.0?);
        if let Some(s) = pair.1 {
            parts.push(s?);
        }
        next += 2;
    }
    Ok(merge(input.processor, parts))
}

/// The phases, in order, over the selected records.
fn reconcile_selected(input: RunInput<'_>, sel: Selection<'_>) -> Result<Outcome, ConservationError> {
    let o = Origins {
        objects: input.objects,
        carried: input.carried,
    };
    let c = candidates::gather(&input, sel);
    let mut links = Links::flags(c.procs.len(), c.ledg.len());
    let mut found: Vec<Discrepancy> = Vec::new();
    let mut carry_out = Vec::new();

    let txns = duplicates::find(&c, o, &mut links, &mut found);
    exact::link(&c, &txns, o, &mut links, &mut found);
    drop(txns);
    fallback::link(&c, &mut links);
    let (matched, clean) = pairs(&c, &links, input.config, o, &mut found, &mut carry_out);
    let unlinked = unlinked::report(&c, &links, input.config.grace_days, o, &mut found, &mut carry_out);

    let invalid = if sel.holds_invalid() { input.invalid } else { &[] };
    for inv in invalid.iter().chain(&c.refused) {
        found.push(Discrepancy::of_invalid(inv, o.source(None, inv.location)));
    }
    conclude(
        Tally {
            processor: input.processor,
            processor_count: c.procs.len() as u64 - unlinked.processor_still_open,
            ledger_count: c.ledg.len() as u64 - unlinked.ledger_still_open,
            matched,
            clean,
            processor_pending: unlinked.processor_pending,
            ledger_pending: unlinked.ledger_pending,
            not_settled: unlinked.not_settled,
            carried_count: c.carried_count,
            excluded_counts: c.excluded_counts,
            out_of_window: c.out_of_window,
            discrepancies: found,
            carried: carry_out,
        },
        &input.config.severity,
    )
}

/// Phase 5 over every linked pair ([`classify`]): a discrepancy for each problem, carried items marked matched. Returns
/// (matched, clean).
fn pairs(
    c: &Candidates<'_>,
    links: &Links,
    config: &RunConfig,
    o: Origins<'_>,
    found: &mut Vec<Discrepancy>,
    carry_out: &mut Vec<(i64, CarryOutcome)>,
) -> (u64, u64) {
    let (mut matched, mut clean) = (0u64, 0u64);
    // the partners are in ledger order, not this one: each is asked for ahead of its turn, its place in the
    // candidate list first and its row once that place has arrived
    let partner = |i: usize| links.link_p.get(i).filter(|&&j| j != NONE).map(|&j| j as usize);
    for (i, p) in c.procs.iter().enumerate() {
        if let Some(j) = partner(i + 2 * table::AHEAD) {
            c.ledg.prefetch_entry(j);
        }
        if let Some(l) = partner(i + table::AHEAD).and_then(|j| c.ledg.get(j)) {
            table::prefetch(l.row);
        }
        let j = links.link_p[i];
        if j == NONE {
            continue;
        }
        let l = c.ledg.at(j as usize);
        let (pc, lc) = (c.p_carried(i), c.l_carried(j as usize));
        matched += 1;
        for x in [pc, lc] {
            if let Some(id) = o.carried_id(x) {
                let outcome = match o.reported(x) {
                    true => CarryOutcome::MatchedLater,
                    false => CarryOutcome::Matched,
                };
                carry_out.push((id, outcome));
            }
        }
        let Some(problem) = classify::classify(p.rec, l.row, &config.tolerance) else {
            clean += 1;
            continue;
        };
        let mut sev = config.severity.by_amount(problem.stake, p.rec.amount().currency);
        if problem.at_least_high {
            sev = sev.max(Severity::High);
        }
        found.push(Discrepancy::of_pair(
            problem.category,
            sev,
            p.rec,
            l.row,
            problem.stake,
            (o.source(pc, p.rec.location()), o.source(lc, l.row.location())),
            problem.details,
            o.carried_id(pc).or(o.carried_id(lc)),
        ));
    }
    (matched, clean)
}

/// Records and inputs for the phases' tests.
#[cfg(test)]
pub(crate) mod testkit {
    use crate::model::{
        Kind, LedgerFields, LedgerRow, LedgerStatus, LedgerType, Location, Processor, ProcessorRecord,
        ProcessorStatus, RecordFields,
    };
    use crate::money::{Currency, Money};
    use crate::run::{RunConfig, RunInput};

    pub fn cur(c: &str) -> Currency {
        Currency::parse(c).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// A settled USD charge `id` (its only key) on line `line` of object 0.
    pub fn prec(id: &str, minor: i64, line: u64) -> ProcessorRecord {
        pack(RecordFields {
            id: id.into(),
            keys: [id].iter().collect(),
            reference: None,
            other_references: Default::default(),
            kind: Kind::Charge,
            amount: Money::new(minor, cur("USD")),
            fee: None,
            net: None,
            status: ProcessorStatus::Succeeded,
            occurred_at: None,
            location: Location { object: 0, line },
        })
    }

    /// A record packed from its owned fields.
    pub fn pack(f: RecordFields) -> ProcessorRecord {
        ProcessorRecord::try_from(f).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// `r` with `change` made to its fields.
    pub fn with_row(r: &LedgerRow, change: impl FnOnce(&mut LedgerFields)) -> LedgerRow {
        r.with(change).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// `p` with `change` made to its fields.
    pub fn with(p: &ProcessorRecord, change: impl FnOnce(&mut RecordFields)) -> ProcessorRecord {
        p.with(change).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// A captured USD charge booked against processor id `txn`, on line `line` of object 1.
    pub fn row(id: &str, txn: Option<&str>, minor: i64, line: u64) -> LedgerRow {
        LedgerRow::try_from(LedgerFields {
            ledger_id: id.into(),
            processor: Processor::Stripe,
            processor_txn_id: txn.map(Into::into),
            order_id: None,
            kind: LedgerType::Charge,
            amount: Money::new(minor, cur("USD")),
            status: LedgerStatus::Captured,
            booked_at: None,
            location: Location { object: 1, line },
        })
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    pub fn input<'a>(
        objects: &'a [String],
        records: &'a [ProcessorRecord],
        ledger: &'a [LedgerRow],
        config: &'a RunConfig,
    ) -> RunInput<'a> {
        RunInput {
            processor: Processor::Stripe,
            objects,
            records,
            ledger,
            invalid: &[],
            carried: &[],
            config,
        }
    }

    /// The links of the duplicate, exact and fallback phases over `records` and `ledger`, and what they found.
    pub fn linked(
        records: &[ProcessorRecord],
        ledger: &[LedgerRow],
    ) -> (super::Links, Vec<crate::discrepancy::Discrepancy>) {
        linked_batched(records, ledger, super::table::BATCH)
    }

    /// [`linked`], the probes prepared `batch` candidates at a time.
    pub fn linked_batched(
        records: &[ProcessorRecord],
        ledger: &[LedgerRow],
        batch: usize,
    ) -> (super::Links, Vec<crate::discrepancy::Discrepancy>) {
        use super::candidates::{gather, Origins};
        let (objects, config) = (vec!["p".to_string(), "l".to_string()], RunConfig::default());
        let c = gather(
            &input(&objects, records, ledger, &config),
            crate::partition::Selection::All,
        );
        let mut links = super::Links::new(c.procs.len(), c.ledg.len());
        let mut found = Vec::new();
        let o = Origins {
            objects: &objects,
            carried: &[],
        };
        let txns = super::duplicates::find_batched(&c, o, &mut links, &mut found, batch);
        super::exact::link_batched(&c, &txns, o, &mut links, &mut found, batch);
        super::fallback::link(&c, &mut links);
        (links, found)
    }
}

#[cfg(test)]
mod batch_tests {
    use super::testkit::{cur, linked_batched, pack, row};
    use crate::model::{Kind, Location, ProcessorStatus, RecordFields};
    use crate::money::Money;
    use proptest::prelude::*;

    /// What the linking phases decide, with the probes prepared `batch` candidates at a time.
    fn decided(
        records: &[crate::ProcessorRecord],
        ledger: &[crate::LedgerRow],
        batch: usize,
    ) -> (super::Links, Vec<String>) {
        let (links, found) = linked_batched(records, ledger, batch);
        (links, found.iter().map(|d| format!("{d:?}")).collect())
    }

    fn sorted(notes: &rustc_hash::FxHashMap<usize, String>) -> Vec<(usize, String)> {
        let mut v: Vec<_> = notes.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Hundreds of records over many batches, with ids repeated on both sides and keys shared by several
        /// records (contested rows): whatever the batch size, the phases decide what handling one candidate
        /// after another decides.
        #[test]
        fn batched_probes_decide_what_one_at_a_time_decides(
            recs in prop::collection::vec((0u16..260, prop::collection::vec(0u16..40, 0..3), 0u8..2, 1i64..4), 0..300),
            rows in prop::collection::vec((0u16..260, prop::option::of(0u16..300), 1i64..4), 0..300),
        ) {
            let records: Vec<_> = recs.iter().enumerate().map(|(n, (id, shared, kind, minor))| {
                let id = format!("txn_{id}");
                let mut keys = vec![id.clone()];
                keys.extend(shared.iter().map(|k| format!("ch_{k}")));
                pack(RecordFields {
                    id: id.as_str().into(),
                    keys: keys.iter().map(String::as_str).collect(),
                    reference: None,
                    other_references: Default::default(),
                    kind: if *kind == 0 { Kind::Charge } else { Kind::Refund },
                    amount: Money::new(*minor * 100, cur("USD")),
                    fee: None,
                    net: None,
                    status: ProcessorStatus::Succeeded,
                    occurred_at: None,
                    location: Location { object: 0, line: n as u64 + 2 },
                })
            }).collect();
            let ledger: Vec<_> = rows.iter().enumerate().map(|(n, (id, txn, minor))| {
                // a processor id among the records' ids (below 260) or their shared keys
                let txn = txn.map(|t| if t < 260 { format!("txn_{t}") } else { format!("ch_{}", t - 260) });
                row(&format!("L{id}"), txn.as_deref(), *minor * 100, n as u64 + 2)
            }).collect();
            let (one, one_found) = decided(&records, &ledger, 1);
            for batch in [3, super::table::BATCH] {
                let (l, found) = decided(&records, &ledger, batch);
                prop_assert_eq!(&l.p_dup, &one.p_dup);
                prop_assert_eq!(&l.l_dup, &one.l_dup);
                prop_assert_eq!(&l.link_p, &one.link_p);
                prop_assert_eq!(&l.link_l, &one.link_l);
                prop_assert_eq!(sorted(&l.p_note), sorted(&one.p_note));
                prop_assert_eq!(sorted(&l.l_note), sorted(&one.l_note));
                prop_assert_eq!(&found, &one_found);
            }
        }
    }
}
