//! Phase 2, duplicates: a processor record id seen twice, a `ledger_id` seen twice, or a processor id booked
//! twice in the ledger. The first (in candidate order) stays a candidate; the others are `duplicate`s. The
//! ledger's table of processor ids is kept: the exact link probes it.

use hashbrown::HashTable;

use super::candidates::{Candidates, Origins};
use super::{hash, Links};
use crate::discrepancy::{Category, Discrepancy};

/// The ledger's processor ids: the first candidate row holding each. The table holds row indexes (4 bytes a
/// bucket, at most half of them full); each candidate's id sits in a dense list beside it, so a probe that
/// hits compares strings without first reading the row (a cache miss fewer than through the row).
pub(crate) struct TxnIndex<'a> {
    table: HashTable<u32>,
    /// Candidate `j`'s processor id ("" for none).
    txn: Vec<&'a str>,
}

impl TxnIndex<'_> {
    /// The ledger candidate holding processor id `key`.
    #[inline]
    pub fn find(&self, key: &str) -> Option<u32> {
        let txn = &self.txn;
        self.table
            .find(hash(key), |&j| txn.get(j as usize) == Some(&key))
            .copied()
    }

    /// Makes candidate `j` the holder of processor id `key` (not held yet).
    fn insert(&mut self, j: u32, key: &str) {
        let txn = &self.txn;
        self.table.insert_unique(hash(key), j, |&j| {
            hash(txn.get(j as usize).copied().unwrap_or(""))
        });
    }
}

/// Processor side: the same record id twice.
fn processor_side(c: &Candidates<'_>, o: Origins<'_>) -> (Vec<bool>, Vec<Discrepancy>) {
    let mut dup = vec![false; c.procs.len()];
    let mut found = Vec::new();
    // a table of indexes (4 bytes an entry); the strings stay in the records
    let mut seen: HashTable<u32> = HashTable::with_capacity(c.procs.len());
    let pid = |j: u32| -> &str { c.procs[j as usize].rec.id() };
    for (i, p) in c.procs.iter().enumerate() {
        let id: &str = p.rec.id();
        let hv = hash(id);
        if let Some(&first) = seen.find(hv, |&j| pid(j) == id) {
            dup[i] = true;
            // an item an earlier run reported (a lookback candidate) stays open as it is: never reported again
            if o.reported(p.carried) {
                continue;
            }
            let first = &c.procs[first as usize];
            found.push(Discrepancy::of_processor(
                Category::Duplicate,
                p.rec,
                o.source(p.carried, p.rec.location),
                format!(
                    "processor record {} appears again (first at {})",
                    p.rec.id(),
                    o.source(first.carried, first.rec.location)
                ),
                o.carried_id(p.carried),
            ));
        } else {
            seen.insert_unique(hv, i as u32, |&j| hash(pid(j)));
        }
    }
    (dup, found)
}

/// Ledger side: the same `ledger_id` twice, or the same `processor_txn_id` twice.
fn ledger_side<'a>(c: &Candidates<'a>, o: Origins<'_>) -> (Vec<bool>, TxnIndex<'a>, Vec<Discrepancy>) {
    let nl = c.ledg.len();
    let mut dup = vec![false; nl];
    let mut found = Vec::new();
    let mut txns = TxnIndex {
        table: HashTable::with_capacity(nl),
        txn: Vec::with_capacity(nl),
    };
    let mut ids: HashTable<u32> = HashTable::with_capacity(nl);
    let lid = |j: u32| -> &str { c.ledg[j as usize].row.ledger_id() };
    for (i, l) in c.ledg.iter().enumerate() {
        let row = l.row;
        txns.txn.push(row.processor_txn_id().unwrap_or(""));
        let id: &str = row.ledger_id();
        let hv = hash(id);
        let why = if let Some(&first) = ids.find(hv, |&j| lid(j) == id) {
            let first = &c.ledg[first as usize];
            Some(format!(
                "ledger_id {} appears again (first at {})",
                row.ledger_id(),
                o.source(first.carried, first.row.location)
            ))
        } else {
            ids.insert_unique(hv, i as u32, |&j| hash(lid(j)));
            match row.processor_txn_id() {
                Some(t) => match txns.find(t) {
                    Some(first) => Some(format!(
                        "processor id {t} booked twice: ledger {} already holds it",
                        c.ledg[first as usize].row.ledger_id()
                    )),
                    None => {
                        txns.insert(i as u32, t);
                        None
                    }
                },
                None => None,
            }
        };
        if let Some(why) = why {
            dup[i] = true;
            // an item an earlier run reported (a lookback candidate) stays open as it is: never reported again
            if o.reported(l.carried) {
                continue;
            }
            found.push(Discrepancy::of_ledger(
                Category::Duplicate,
                row,
                o.source(l.carried, row.location),
                why,
                o.carried_id(l.carried),
            ));
        }
    }
    (dup, txns, found)
}

/// Finds the duplicates of both sides (on two threads: the tables are independent), marks them in `links`
/// and returns the ledger's processor-id index.
pub(crate) fn find<'a>(
    c: &Candidates<'a>,
    o: Origins<'_>,
    links: &mut Links,
    found: &mut Vec<Discrepancy>,
) -> TxnIndex<'a> {
    let ((p_dup, p_found), (l_dup, txns, l_found)) = std::thread::scope(|s| {
        let p = s.spawn(|| processor_side(c, o));
        let l = ledger_side(c, o);
        (p.join().unwrap_or_else(|_| processor_side(c, o)), l)
    });
    links.p_dup = p_dup;
    links.l_dup = l_dup;
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
