//! Sharding one run into `n` partitions that can be matched independently (spec section 12), and the merge
//! of their outcomes, which is identical to reconciling the run whole.
//!
//! A record can interact with another only through a shared string: a match key (processor keys and the
//! ledger's `processor_txn_id`), a record id (processor duplicates), a `ledger_id` (ledger duplicates) or a
//! fallback order reference (compared case-insensitively). [`plan`] joins the records that share one of those
//! strings (64-bit hashes) with a union-find; records that can interact therefore always share a component,
//! and a component goes to partition `hash(smallest node of the component) % n`. Routing by one key alone
//! would not do: a Stripe charge is booked by its `ch_` *or* its `pi_`, and only the processor record knows
//! both.
//!
//! Hash collisions only join components that need not be joined (more work in one partition, never a
//! different result). The partition of a record depends only on the set of records, not their order, so
//! every worker that plans the same inputs gets the same plan. Records of kinds that are never matched
//! (payouts, fees, ledger adjustments) join only by their own id (they can stand for a carried item listed
//! again); invalid records go to partition 0.

use std::hash::{BuildHasher, Hasher};

use crate::carry::CarriedRecord;
use crate::model::{LedgerRow, ProcessorRecord};
use crate::run::RunInput;

/// The partition of every record of a run: `records[i]` for `input.records[i]`, and likewise for the ledger
/// rows and carried items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub partitions: u32,
    pub records: Vec<u32>,
    pub ledger: Vec<u32>,
    pub carried: Vec<u32>,
}

impl Plan {
    /// Records (processor, ledger, carried) in each partition: how even the split is.
    pub fn sizes(&self) -> Vec<u64> {
        let mut v = vec![0u64; self.partitions as usize];
        for p in self.records.iter().chain(&self.ledger).chain(&self.carried) {
            if let Some(c) = v.get_mut(*p as usize) {
                *c += 1;
            }
        }
        v
    }
}

/// Which records one matching pass takes: all of them, or one partition of a [`Plan`].
#[derive(Clone, Copy, Debug)]
pub enum Selection<'p> {
    All,
    Part { plan: &'p Plan, index: u32 },
}

impl Selection<'_> {
    fn takes(self, of: impl Fn(&Plan) -> &[u32], i: usize) -> bool {
        match self {
            Selection::All => true,
            Selection::Part { plan, index } => of(plan).get(i).copied().unwrap_or(0) == index,
        }
    }

    /// Is processor record `i` of the input in this selection?
    pub fn record(self, i: usize) -> bool {
        self.takes(|p| &p.records, i)
    }

    /// Is ledger row `i` in it?
    pub fn ledger_row(self, i: usize) -> bool {
        self.takes(|p| &p.ledger, i)
    }

    /// Is carried item `i` in it?
    pub fn carried(self, i: usize) -> bool {
        self.takes(|p| &p.carried, i)
    }

    /// Invalid records belong to partition 0 (and to the whole run).
    pub fn holds_invalid(self) -> bool {
        matches!(self, Selection::All | Selection::Part { index: 0, .. })
    }
}

/// No hash: an empty table slot, and a component without strings (a hash of this value is taken as one
/// less: a collision, which only joins what need not be joined).
const NONE: u64 = u64::MAX;

/// The hashes of one round's strings, each with the first record that has it: open addressing, linear
/// probing, at most 85 % full (14 to 16 bytes a string).
struct Table {
    hashes: Vec<u64>,
    records: Vec<u32>,
    len: usize,
}

/// Where a hash's probe starts in a table of `slots` slots (the hash mixed, then scaled onto the table).
fn home(h: u64, slots: usize) -> usize {
    let x = (h ^ (h >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((u128::from(x) * slots as u128) >> 64) as usize
}

impl Table {
    fn with_capacity(strings: usize) -> Table {
        let slots = strings.saturating_mul(20) / 17 + 16;
        Table {
            hashes: vec![NONE; slots],
            records: vec![0; slots],
            len: 0,
        }
    }

    /// The record that brought `h` first; `None` when `h` is new (then `record` brought it).
    fn first(&mut self, h: u64, record: u32) -> Option<u32> {
        if (self.len + 1).saturating_mul(20) > self.hashes.len().saturating_mul(17) {
            self.grow();
        }
        let slots = self.hashes.len();
        let mut at = home(h, slots);
        loop {
            match self.hashes[at] {
                NONE => {
                    self.hashes[at] = h;
                    self.records[at] = record;
                    self.len += 1;
                    return None;
                }
                x if x == h => return Some(self.records[at]),
                _ => at = if at + 1 == slots { 0 } else { at + 1 },
            }
        }
    }

    /// A table half as large again, every string put back in it.
    fn grow(&mut self) {
        let old = std::mem::replace(self, Table::with_capacity(self.len.saturating_mul(3) / 2 + 16));
        for (h, r) in old.hashes.into_iter().zip(old.records) {
            if h != NONE {
                self.first(h, r);
            }
        }
    }
}

/// Which round of a plan joins the records that share string `h` (mixed otherwise than [`home`]: the strings
/// of one round spread over the whole table).
fn round_of(h: u64, rounds: u32) -> u32 {
    let mut x = h ^ 0xD6E8_FEB8_6659_FD93;
    x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^= x >> 32;
    ((u128::from(x) * u128::from(rounds.max(1))) >> 64) as u32
}

/// Tags keep the kinds of strings apart where equal text must not mean "the same thing".
const TAG_KEY: u8 = 1;
const TAG_LEDGER_ID: u8 = 2;
const TAG_REFERENCE: u8 = 3;

fn h(tag: u8, s: &str) -> u64 {
    let mut st = rustc_hash::FxBuildHasher.build_hasher();
    st.write_u8(tag);
    st.write(s.as_bytes());
    st.write_u8(0xff);
    st.finish()
}

/// The fallback reference compares case-insensitively: hash its lower-case form without allocating.
fn h_lower(tag: u8, s: &str) -> u64 {
    let mut st = rustc_hash::FxBuildHasher.build_hasher();
    st.write_u8(tag);
    let mut buf = [0u8; 64];
    for chunk in s.as_bytes().chunks(64) {
        let n = chunk.len();
        buf[..n].copy_from_slice(chunk);
        buf[..n].make_ascii_lowercase();
        st.write(&buf[..n]);
    }
    st.write_u8(0xff);
    st.finish()
}

/// A record's or row's field, when it holds text.
fn filled(s: Option<crate::Str<'_>>) -> Option<crate::Str<'_>> {
    s.filter(|s| !s.is_empty())
}

fn processor_nodes(r: &ProcessorRecord) -> impl Iterator<Item = u64> + '_ {
    // the record id shares the key tag: a Stripe id (`txn_`) is one of its keys anyway
    r.keys()
        .iter()
        .map(|k| h(TAG_KEY, &k))
        .chain(filled(Some(r.id())).map(|id| h(TAG_KEY, &id)))
        .chain(r.references().map(|x| h_lower(TAG_REFERENCE, &x)))
}

fn ledger_nodes(r: &LedgerRow) -> impl Iterator<Item = u64> {
    let txn = filled(r.processor_txn_id());
    let order = match txn {
        Some(_) => None,
        None => filled(r.order_id()),
    };
    [
        filled(Some(r.ledger_id())).map(|id| h(TAG_LEDGER_ID, &id)),
        txn.map(|t| h(TAG_KEY, &t)),
        order.map(|o| h_lower(TAG_REFERENCE, &o)),
    ]
    .into_iter()
    .flatten()
}

/// Mixes a component's smallest hash into a partition number.
fn partition_of(min_hash: u64, n: u32) -> u32 {
    let mut x = min_hash ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % u64::from(n.max(1))) as u32
}

/// The node hashes of a processor record for the plan: what a split worker computes for each record of its
/// byte range.
pub fn processor_hashes(r: &ProcessorRecord) -> Vec<u64> {
    if r.kind.is_reconciled() {
        processor_nodes(r).collect()
    } else {
        unmatched_processor_nodes(r).collect()
    }
}

/// A record of a kind that is never matched can still stand for a carried item listed again (by its id):
/// it stays with that item.
fn unmatched_processor_nodes(r: &ProcessorRecord) -> impl Iterator<Item = u64> + '_ {
    filled(Some(r.id())).map(|id| h(TAG_KEY, &id)).into_iter()
}

/// Likewise a ledger adjustment, by its `ledger_id`.
fn unmatched_ledger_nodes(r: &LedgerRow) -> impl Iterator<Item = u64> {
    filled(Some(r.ledger_id()))
        .map(|id| h(TAG_LEDGER_ID, &id))
        .into_iter()
}

/// The node hashes of a ledger row.
pub fn ledger_hashes(r: &LedgerRow) -> Vec<u64> {
    if r.kind == crate::model::LedgerType::Adjustment {
        unmatched_ledger_nodes(r).collect()
    } else {
        ledger_nodes(r).collect()
    }
}

/// The node hashes of a carried item.
pub fn carried_hashes(c: &crate::carry::Carried) -> Vec<u64> {
    match &c.record {
        CarriedRecord::Processor(r) => processor_nodes(r).collect(),
        CarriedRecord::Ledger(r) => ledger_nodes(r).collect(),
    }
}

/// Builds a plan from records' node hashes given one record at a time, from any number of places (the split
/// step's byte ranges), in the same order on every pass: a record's partition depends only on the set of all
/// records, so [`Planner::finish`] gives every record the partition [`plan`] would, whatever the order and
/// the number of rounds.
///
/// The records are given [`Planner::passes`] times. Pass `k` of the first `rounds` joins the records that share
/// a string of round `k` (a union-find over records, 4 bytes each; a table of that round's strings, dropped at
/// the end of the pass); the last pass takes each component's smallest hash (8 bytes a record). So the
/// memory is about 12 bytes a record plus the strings of one round, 14 to 16 bytes each: more rounds, less
/// memory, one more reading of the hashes each.
pub struct Planner {
    rounds: u32,
    pass: u32,
    /// Records given in this pass.
    at: usize,
    parent: Vec<u32>,
    table: Table,
    /// In the last pass: the smallest hash of each component, at its root.
    min: Vec<u64>,
}

impl Planner {
    /// A planner for about `records` records, joining them in `rounds` rounds (at least 1).
    pub fn new(records: usize, rounds: u32) -> Planner {
        let rounds = rounds.max(1);
        Planner {
            rounds,
            pass: 0,
            at: 0,
            parent: Vec::with_capacity(records),
            table: Table::with_capacity(Self::strings_per_round(records, rounds)),
            min: Vec::new(),
        }
    }

    /// The strings one round is expected to hold (three a record: a processor record has its id, keys and
    /// references, a ledger row its id and key; the table grows beyond).
    fn strings_per_round(records: usize, rounds: u32) -> usize {
        records.saturating_mul(3) / rounds.max(1) as usize
    }

    /// Rounds for `records` records such that one round's table (about 42 bytes a record in all) takes no
    /// more than what the records themselves take (12 bytes each), or 256 MiB.
    pub fn rounds_for(records: usize) -> u32 {
        let tables = records as u128 * 42;
        let budget = (records as u128 * 12).max(256 << 20);
        u32::try_from(tables.div_ceil(budget)).unwrap_or(u32::MAX).max(1)
    }

    /// How many times every record must be given.
    pub fn passes(&self) -> u32 {
        self.rounds + 1
    }

    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let up = self.parent[x as usize];
            if up == x {
                return x;
            }
            let upup = self.parent[up as usize];
            self.parent[x as usize] = upup;
            x = upup;
        }
    }

    /// Gives the next record of this pass by its node hashes (none: a record that is never matched, partition
    /// 0). Records beyond the first pass's count are ignored (and [`Self::end_pass`] refuses the pass).
    pub fn add(&mut self, hashes: impl IntoIterator<Item = u64>) {
        self.at += 1;
        // beyond u32::MAX records a record has no number: not kept, and [`Self::end_pass`] refuses the pass
        let Ok(record) = u32::try_from(self.at - 1) else {
            return;
        };
        if self.pass == 0 {
            self.parent.push(record);
        }
        if self.at > self.parent.len() {
            return;
        }
        if self.pass < self.rounds {
            for h in hashes {
                let h = h.min(NONE - 1);
                if round_of(h, self.rounds) != self.pass {
                    continue;
                }
                if let Some(other) = self.table.first(h, record) {
                    let (a, b) = (self.find(record), self.find(other));
                    // the root is the smaller record: deterministic, and the finds halve their paths
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    self.parent[hi as usize] = lo;
                }
            }
        } else if self.pass == self.rounds {
            let root = self.find(record) as usize;
            for h in hashes {
                let h = h.min(NONE - 1);
                self.min[root] = self.min[root].min(h);
            }
        }
    }

    /// Ends a pass. Refused when the pass gave another number of records than the first one did (the
    /// records changed between passes).
    pub fn end_pass(&mut self) -> Result<(), String> {
        if self.at != self.parent.len() {
            return Err(format!(
                "pass {} of the plan gave {} records, the first gave {} (a plan takes at most {} records)",
                self.pass + 1,
                self.at,
                self.parent.len(),
                u32::MAX
            ));
        }
        self.pass += 1;
        self.at = 0;
        // the round's table is dropped before the next one is made: never two at once
        self.table = Table::with_capacity(0);
        if self.pass < self.rounds {
            self.table = Table::with_capacity(Self::strings_per_round(self.parent.len(), self.rounds));
        } else if self.pass == self.rounds {
            self.min = vec![NONE; self.parent.len()];
        }
        Ok(())
    }

    /// The partition of every record, in the order they were given; refused before every pass has ended.
    /// The union-find's vector becomes the answer in place.
    pub fn finish(mut self, n: u32) -> Result<Vec<u32>, String> {
        if self.pass != self.passes() {
            return Err(format!(
                "the plan ended after {} of its {} passes",
                self.pass,
                self.passes()
            ));
        }
        let n = n.max(1);
        // every slot pointed at its root (a root at itself), then turned into its root's partition
        for r in 0..self.parent.len() {
            let root = self.find(r as u32);
            self.parent[r] = root;
        }
        let Planner { mut parent, min, .. } = self;
        for slot in parent.iter_mut() {
            let m = min[*slot as usize];
            *slot = if m == NONE { 0 } else { partition_of(m, n) };
        }
        Ok(parent)
    }
}

/// Assigns every record of `input` to one of `n` partitions (n = 0 is taken as 1).
pub fn plan(input: &RunInput<'_>, n: u32) -> Plan {
    let n = n.max(1);
    let records = input.records.len() + input.ledger.len() + input.carried.len();
    let mut p = Planner::new(records, Planner::rounds_for(records));
    for _ in 0..p.passes() {
        for r in input.records {
            if r.kind.is_reconciled() {
                p.add(processor_nodes(r));
            } else {
                p.add(unmatched_processor_nodes(r));
            }
        }
        for r in input.ledger {
            if r.kind == crate::model::LedgerType::Adjustment {
                p.add(unmatched_ledger_nodes(r));
            } else {
                p.add(ledger_nodes(r));
            }
        }
        for c in input.carried {
            match &c.record {
                CarriedRecord::Processor(r) => p.add(processor_nodes(r)),
                CarriedRecord::Ledger(r) => p.add(ledger_nodes(r)),
            };
        }
        // the same records every pass: refused only beyond u32::MAX records
        let _ = p.end_pass();
    }
    // a plan refused puts every record in partition 0: the whole run there, still the whole run's outcome
    let mut all = p.finish(n).unwrap_or_else(|_| vec![0; records]);
    let mut ledger = all.split_off(input.records.len());
    let carried = ledger.split_off(input.ledger.len());
    Plan {
        partitions: n,
        records: all,
        ledger,
        carried,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given more strings than the tables were sized for (they grow), a chain of records added out of order
    /// is one component and every other record stands alone, in one round or several.
    #[test]
    fn a_planner_past_its_table_growths_joins_what_shares_a_string() {
        let chain = 70_007u64;
        let hash = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        for rounds in [1, 3] {
            let mut p = Planner::new(0, rounds);
            for _ in 0..p.passes() {
                // record k links strings i and i + 1, i taken in a scattered order
                for k in 0..chain {
                    let i = k * 7919 % chain;
                    p.add([hash(i), hash(i + 1)]);
                }
                for i in 0..chain {
                    p.add([hash(1 << 40 | i)]);
                }
                p.add([]);
                assert_eq!(p.end_pass(), Ok(()));
            }
            let parts = p.finish(13).unwrap_or_default();
            let chained = (0..=chain).map(hash).min().map(|m| partition_of(m, 13));
            let chain = chain as usize;
            assert!(
                parts[..chain].iter().all(|&x| Some(x) == chained),
                "rounds {rounds}"
            );
            for (i, &x) in parts[chain..2 * chain].iter().enumerate() {
                assert_eq!(x, partition_of(hash(1 << 40 | i as u64), 13), "record {i} alone");
            }
            assert_eq!(parts.get(2 * chain), Some(&0));
            // a few partitions, not one: the singles are spread
            assert!(parts[chain..2 * chain].iter().any(|&x| x != parts[chain]));
        }
    }

    /// A pass that gives another number of records than the first, or a plan finished early, is refused.
    #[test]
    fn a_pass_of_other_records_or_a_plan_finished_early_is_refused() {
        let mut p = Planner::new(2, 2);
        p.add([1]);
        p.add([2]);
        assert_eq!(p.end_pass(), Ok(()));
        p.add([1]);
        assert!(p
            .end_pass()
            .is_err_and(|e| e.contains("gave 1 records, the first gave 2")));
        let mut p = Planner::new(1, 1);
        p.add([1]);
        assert_eq!(p.end_pass(), Ok(()));
        assert!(p.finish(4).is_err_and(|e| e.contains("after 1 of its 2 passes")));
    }

    #[test]
    fn rounds_grow_with_the_records_and_stay_few() {
        assert_eq!(Planner::rounds_for(0), 1);
        assert_eq!(Planner::rounds_for(1_000_000), 1);
        assert_eq!(Planner::rounds_for(10_000_000), 2);
        assert_eq!(Planner::rounds_for(200_000_000), 4);
    }
}
