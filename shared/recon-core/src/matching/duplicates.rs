//! Phase 2, duplicates: a processor record id seen twice, a `ledger_id` seen twice, or a processor id booked
//! twice in the ledger. The first (in candidate order) stays a candidate; the others are `duplicate`s. The
//! ledger's table of processor ids is kept: the exact link probes it.

use super::candidates::{Candidates, Ledg, Origins};
use super::table::{in_batches, prefetch, IndexTable, BATCH};
use super::{hash_bytes, Links};
use crate::discrepancy::{Category, Discrepancy};
use crate::packed::Str;

/// The ledger's processor ids: the first candidate row holding each. The table holds row indexes (with
/// a tag from the id's hash, at most two thirds of its slots full); a probe whose slot agrees compares the
/// id through the candidate's row, which the batched probes ask for a stage ahead ([`Self::prefetch_entry`],
/// [`Self::prefetch_row`], [`Self::prefetch_text`]).
pub(crate) struct TxnIndex<'c> {
    table: IndexTable,
    ledg: &'c Ledg<'c>,
}

impl TxnIndex<'_> {
    /// The ledger candidate holding processor id `key`.
    #[cfg(test)]
    pub fn find(&self, key: &str) -> Option<u32> {
        let stored = crate::packed::plan(key);
        self.find_stored(hash_bytes(stored.bytes()), stored.bytes())
    }

    /// The ledger candidate whose processor id is stored as `stored` (hashed `h`: [`hash_bytes`]): a ledger
    /// row's or a processor record's key, compared as stored, without unpacking (packing is a function of the
    /// text alone: stored fields are equal exactly when their texts are).
    #[inline]
    pub fn find_stored(&self, h: u64, stored: &[u8]) -> Option<u32> {
        self.table.find(h, |j| self.holds(j, stored))
    }

    /// Makes candidate `j` the holder of its processor id, of hash `h` (not held yet).
    fn insert(&mut self, h: u64, j: u32) {
        let ledg = self.ledg;
        self.table.insert(h, j, |i| hash_bytes(txn_stored(ledg, i)));
    }

    /// Asks for the memory a lookup of hash `h` reads first.
    #[inline]
    pub fn prefetch(&self, h: u64) {
        self.table.prefetch(h);
    }

    /// The candidates whose slot agrees with hash `h` (read once [`Self::prefetch`]ed): [`Self::find`] is
    /// the one of them that [`Self::holds`] the key (processor ids are held once: at most one does).
    #[inline]
    pub fn tagged(&self, h: u64) -> impl Iterator<Item = u32> + '_ {
        self.table.tagged(h)
    }

    /// Asks for candidate `j`'s entry in the candidate list; then, once it has arrived, for its row; then,
    /// once that has arrived, for the row's text.
    #[inline]
    pub fn prefetch_entry(&self, j: u32) {
        self.ledg.prefetch_entry(j as usize);
    }

    #[inline]
    pub fn prefetch_row(&self, j: u32) {
        if let Some(l) = self.ledg.get(j as usize) {
            prefetch(l.row);
        }
    }

    #[inline]
    pub fn prefetch_text(&self, j: u32) {
        if let Some(b) = self
            .ledg
            .get(j as usize)
            .and_then(|l| l.row.processor_txn_id_stored().first())
        {
            prefetch(b);
        }
    }

    /// Candidate `j`'s processor id ("" for none).
    #[inline]
    fn txn(&self, j: u32) -> Str<'_> {
        txn_of(self.ledg, j)
    }

    /// Does candidate `j` hold the processor id stored as `stored`?
    #[inline]
    pub fn holds(&self, j: u32, stored: &[u8]) -> bool {
        self.ledg
            .get(j as usize)
            .is_some_and(|l| l.row.processor_txn_id_stored() == stored)
    }
}

/// Ledger candidate `j`'s processor id as stored (empty for none).
#[inline]
fn txn_stored<'c>(ledg: &Ledg<'c>, j: u32) -> &'c [u8] {
    ledg.get(j as usize)
        .map_or(&[], |l| l.row.processor_txn_id_stored())
}

/// Ledger candidate `j`'s processor id ("" for none).
#[inline]
fn txn_of<'c>(ledg: &Ledg<'c>, j: u32) -> Str<'c> {
    ledg.get(j as usize)
        .and_then(|l| l.row.processor_txn_id())
        .unwrap_or(Str::raw(""))
}

/// Processor side: the same record id twice (marked in `dup`, one flag a candidate).
fn processor_side(c: &Candidates<'_>, o: Origins<'_>, batch: usize, dup: &mut [bool]) -> Vec<Discrepancy> {
    let mut found = Vec::new();
    // a table of indexes; the ids stay in the records, hashed and compared as stored
    let mut seen = IndexTable::with_capacity(c.procs.len());
    let pid = |j: u32| -> &[u8] { c.procs.get(j as usize).map_or(&[], |p| p.rec.id_stored()) };
    in_batches(
        0,
        c.procs.len(),
        batch,
        &mut seen,
        |seen, i, batch| {
            let hv = hash_bytes(pid(i as u32));
            seen.prefetch(hv);
            batch.push((i, hv));
        },
        |seen, (i, hv)| {
            let Some(p) = c.procs.get(i) else { return };
            let id = p.rec.id_stored();
            let Some(first) = seen.find(hv, |j| pid(j) == id) else {
                seen.insert(hv, i as u32, |j| hash_bytes(pid(j)));
                return;
            };
            if let Some(d) = dup.get_mut(i) {
                *d = true;
            }
            let carried = c.p_carried(i);
            // an item an earlier run reported (a lookback candidate) stays open as it is: never reported again
            if o.reported(carried) {
                return;
            }
            let first_at = o.source(
                c.p_carried(first as usize),
                c.procs.at(first as usize).rec.location(),
            );
            found.push(Discrepancy::of_processor(
                Category::Duplicate,
                p.rec,
                o.source(carried, p.rec.location()),
                format!(
                    "processor record {} appears again (first at {first_at})",
                    p.rec.id(),
                ),
                o.carried_id(carried),
            ));
        },
    );
    found
}

/// Ledger side: the same `ledger_id` twice, or the same `processor_txn_id` twice.
fn ledger_side<'c>(
    c: &'c Candidates<'_>,
    o: Origins<'_>,
    batch: usize,
    dup: &mut [bool],
) -> (TxnIndex<'c>, Vec<Discrepancy>) {
    let nl = c.ledg.len();
    let mut found = Vec::new();
    let mut tables = (
        IndexTable::with_capacity(nl),
        TxnIndex {
            table: IndexTable::with_capacity(nl),
            ledg: &c.ledg,
        },
    );
    // ledger ids are compared and hashed as stored (packed or not: equal exactly when the ids are)
    let lid = |j: u32| -> &[u8] { c.ledg.get(j as usize).map_or(&[], |l| l.row.ledger_id_stored()) };
    in_batches(
        0,
        nl,
        batch,
        &mut tables,
        |(ids, txns), i, batch| {
            let hv = hash_bytes(lid(i as u32));
            ids.prefetch(hv);
            let t = txn_stored(txns.ledg, i as u32);
            let ht = (!t.is_empty()).then(|| hash_bytes(t));
            if let Some(ht) = ht {
                txns.prefetch(ht);
            }
            batch.push((i, hv, ht));
        },
        |(ids, txns), (i, hv, ht)| {
            let Some(l) = c.ledg.get(i) else { return };
            let row = l.row;
            let id = row.ledger_id_stored();
            let why = if let Some(first) = ids.find(hv, |j| lid(j) == id) {
                let first_at = o.source(
                    c.l_carried(first as usize),
                    c.ledg.at(first as usize).row.location(),
                );
                Some(format!(
                    "ledger_id {} appears again (first at {first_at})",
                    row.ledger_id(),
                ))
            } else {
                ids.insert(hv, i as u32, |j| hash_bytes(lid(j)));
                match ht {
                    Some(ht) => match txns.find_stored(ht, row.processor_txn_id_stored()) {
                        Some(first) => Some(format!(
                            "processor id {} booked twice: ledger {} already holds it",
                            txns.txn(i as u32),
                            c.ledg.at(first as usize).row.ledger_id()
                        )),
                        None => {
                            txns.insert(ht, i as u32);
                            None
                        }
                    },
                    _ => None,
                }
            };
            let Some(why) = why else { return };
            if let Some(d) = dup.get_mut(i) {
                *d = true;
            }
            let carried = c.l_carried(i);
            // an item an earlier run reported (a lookback candidate) stays open as it is: never reported again
            if o.reported(carried) {
                return;
            }
            found.push(Discrepancy::of_ledger(
                Category::Duplicate,
                row,
                o.source(carried, row.location()),
                why,
                o.carried_id(carried),
            ));
        },
    );
    (tables.1, found)
}

/// Finds the duplicates of both sides (on two threads: the tables are independent), marks them in `links`
/// and returns the ledger's processor-id index.
pub(crate) fn find<'c>(
    c: &'c Candidates<'_>,
    o: Origins<'_>,
    links: &mut Links,
    found: &mut Vec<Discrepancy>,
) -> TxnIndex<'c> {
    find_batched(c, o, links, found, BATCH)
}

/// [`find`] preparing `batch` candidates at a time.
pub(crate) fn find_batched<'c>(
    c: &'c Candidates<'_>,
    o: Origins<'_>,
    links: &mut Links,
    found: &mut Vec<Discrepancy>,
    batch: usize,
) -> TxnIndex<'c> {
    // each side marks its own flags in `links` (no second vector of them)
    let (p_dup, l_dup) = (&mut links.p_dup, &mut links.l_dup);
    let (p_found, (txns, l_found)) = std::thread::scope(|s| {
        let p = s.spawn(move || processor_side(c, o, batch, p_dup));
        let l = ledger_side(c, o, batch, l_dup);
        (p.join().ok(), l)
    });
    let p_found = match p_found {
        Some(f) => f,
        None => {
            // the thread died before finishing: from scratch on this one
            links.p_dup.fill(false);
            processor_side(c, o, batch, &mut links.p_dup)
        }
    };
    found.extend(p_found);
    found.extend(l_found);
    txns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::candidates::gather;
    use crate::matching::testkit::{input, prec, row};
    use crate::partition::Selection;

    #[test]
    fn given_an_id_twice_on_each_side_when_searched_then_the_later_one_is_the_duplicate() {
        let records = [prec("p1", 100, 5), prec("p1", 100, 2)];
        let ledger = [
            row("L1", Some("a"), 100, 1),
            row("L2", Some("a"), 100, 2),
            row("L1", None, 1, 3),
        ];
        let (objects, config) = (vec!["p".to_string(), "l".to_string()], Default::default());
        let inp = input(&objects, &records, &ledger, &config);
        let c = gather(&inp, Selection::All);
        let mut links = Links::new(c.procs.len(), c.ledg.len());
        let mut found = Vec::new();
        let o = Origins {
            objects: &objects,
            carried: &[],
        };
        let txns = find(&c, o, &mut links, &mut found);
        // candidate order is by line: the record on line 2 is first, line 5 the duplicate
        assert_eq!(links.p_dup, [false, true]);
        assert_eq!(links.l_dup, [false, true, true]);
        assert_eq!(txns.find("a"), Some(0));
        let details: Vec<&str> = found.iter().map(|d| d.details.as_str()).collect();
        assert_eq!(
            details,
            [
                "processor record p1 appears again (first at p:2)",
                "processor id a booked twice: ledger L1 already holds it",
                "ledger_id L1 appears again (first at l:1)",
            ]
        );
    }
}
