//! Sharding one run into `n` partitions that can be matched independently (spec section 12), and the merge
//! of their outcomes, which is identical to reconciling the run whole.
//!
//! A record can interact with another only through a shared string: a match key (processor keys and the
//! ledger's `processor_txn_id`), a record id (processor duplicates), a `ledger_id` (ledger duplicates) or a
//! fallback order reference (compared case-insensitively). [`plan`] joins every record to the nodes of those
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

use hashbrown::HashTable;

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

const NO_NODE: u32 = u32::MAX;

/// Union-find over the hashed strings records share.
struct Graph {
    index: HashTable<u32>,
    hashes: Vec<u64>,
    parent: Vec<u32>,
    rank: Vec<u8>,
}

impl Graph {
    fn with_capacity(n: usize) -> Self {
        Graph {
            index: HashTable::with_capacity(n),
            hashes: Vec::with_capacity(n),
            parent: Vec::with_capacity(n),
            rank: Vec::with_capacity(n),
        }
    }

    fn node(&mut self, h: u64) -> u32 {
        let hashes = &self.hashes;
        if let Some(&i) = self.index.find(h, |&i| hashes[i as usize] == h) {
            return i;
        }
        let i = self.hashes.len() as u32;
        self.hashes.push(h);
        self.parent.push(i);
        self.rank.push(0);
        let hashes = &self.hashes;
        self.index.insert_unique(h, i, |&j| hashes[j as usize]);
        i
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let up = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = up;
            x = up;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return a;
        }
        let (hi, lo) = if self.rank[a as usize] >= self.rank[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[lo as usize] = hi;
        if self.rank[hi as usize] == self.rank[lo as usize] {
            self.rank[hi as usize] = self.rank[hi as usize].saturating_add(1);
        }
        hi
    }

    /// Joins the nodes of `hashes` and returns one of them (or [`NO_NODE`] when there are none).
    fn record(&mut self, hashes: impl IntoIterator<Item = u64>) -> u32 {
        let mut first = NO_NODE;
        for h in hashes {
            let n = self.node(h);
            first = if first == NO_NODE { n } else { self.union(first, n) };
        }
        first
    }
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

fn nonempty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

fn processor_nodes(r: &ProcessorRecord) -> impl Iterator<Item = u64> + '_ {
    // the record id shares the key tag: a Stripe id (`txn_`) is one of its keys anyway
    r.keys
        .iter()
        .map(|k| h(TAG_KEY, k))
        .chain(nonempty(&r.id).map(|id| h(TAG_KEY, id)))
        .chain(r.references().map(|x| h_lower(TAG_REFERENCE, x)))
}

fn ledger_nodes(r: &LedgerRow) -> impl Iterator<Item = u64> + '_ {
    let txn = r.processor_txn_id.as_deref().and_then(nonempty);
    let order = match txn {
        Some(_) => None,
        None => r.order_id.as_deref().and_then(nonempty),
    };
    nonempty(&r.ledger_id)
        .map(|id| h(TAG_LEDGER_ID, id))
        .into_iter()
        .chain(txn.map(|t| h(TAG_KEY, t)))
        .chain(order.map(|o| h_lower(TAG_REFERENCE, o)))
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
    nonempty(&r.id).map(|id| h(TAG_KEY, id)).into_iter()
}

/// Likewise a ledger adjustment, by its `ledger_id`.
fn unmatched_ledger_nodes(r: &LedgerRow) -> impl Iterator<Item = u64> + '_ {
    nonempty(&r.ledger_id).map(|id| h(TAG_LEDGER_ID, id)).into_iter()
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

/// Builds a plan from records' node hashes given one record at a time, in any order and from any number of
/// places (the split step's byte ranges): a record's partition depends only on the set of all records, so
/// [`Planner::finish`] gives every record the partition [`plan`] would.
pub struct Planner {
    g: Graph,
    slots: Vec<u32>,
}

impl Planner {
    /// A planner with room for about `records` records.
    pub fn with_capacity(records: usize) -> Planner {
        Planner {
            g: Graph::with_capacity(records.saturating_mul(2)),
            slots: Vec::with_capacity(records),
        }
    }

    /// Adds a record by its node hashes (empty: a record that is never matched, partition 0); returns its slot.
    pub fn add(&mut self, hashes: impl IntoIterator<Item = u64>) -> usize {
        let node = self.g.record(hashes);
        self.slots.push(node);
        self.slots.len() - 1
    }

    /// The partition of every slot, in the order they were added. Needs no memory beyond what the planner
    /// holds: the hash index is dropped first, each component's smallest hash is kept in its root's own hash
    /// (a root's value only ever decreases and a non-root's is never written, so every node's own hash is
    /// still there when it is folded in), and the slots become their partitions in place.
    pub fn finish(self, n: u32) -> Vec<u32> {
        let n = n.max(1);
        let Planner { g, mut slots } = self;
        let Graph {
            index,
            mut hashes,
            parent,
            rank,
        } = g;
        drop((index, rank));
        let mut g = Graph {
            index: HashTable::new(),
            hashes: Vec::new(),
            parent,
            rank: Vec::new(),
        };
        for i in 0..hashes.len() {
            let r = g.find(i as u32) as usize;
            if r != i {
                hashes[r] = hashes[r].min(hashes[i]);
            }
        }
        for slot in &mut slots {
            *slot = if *slot == NO_NODE {
                0
            } else {
                partition_of(hashes[g.find(*slot) as usize], n)
            };
        }
        slots
    }
}

/// Assigns every record of `input` to one of `n` partitions (n = 0 is taken as 1).
pub fn plan(input: &RunInput<'_>, n: u32) -> Plan {
    let n = n.max(1);
    let mut p = Planner::with_capacity(input.records.len() + input.ledger.len() + input.carried.len());
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
    let mut all = p.finish(n);
    let ledger = all.split_off(input.records.len());
    let mut ledger = ledger;
    let carried = ledger.split_off(input.ledger.len());
    Plan {
        partitions: n,
        records: all,
        ledger,
        carried,
    }
}
