//! Phase 3, the exact link: a ledger row links to the processor record holding its `processor_txn_id` as
//! one of its keys. One candidate links. Several (a dispute's withdrawal and its reversal share the `dp_`
//! source; a charge and its failure share the `ch_`): the one whose kind, sign and amount agree with the
//! row links ([`fit`]); when more than one fits equally (same fit, same key rank), the row is left unlinked
//! and the ambiguity noted. Two rows naming the same record: the later is a double booking (`duplicate`).
//! Input order never decides.

use std::sync::atomic::{AtomicU32, Ordering};

use super::candidates::{Candidates, Origins};
use super::duplicates::TxnIndex;
use super::table::{prefetch_at, BATCH};
use super::{hash_bytes, Links, NONE};
use crate::discrepancy::{Category, Discrepancy};
use crate::model::{Kind, LedgerRow, LedgerType, ProcessorRecord};

/// How well a processor record fits a ledger row that names one of its keys, lower is better: kind, sign and
/// amount agree (0); kind and sign (1); sign (2); kind (3); neither (4).
pub(crate) fn fit(p: &ProcessorRecord, l: &LedgerRow) -> u8 {
    let kind = matches!(
        (l.kind, p.kind),
        (LedgerType::Charge, Kind::Charge)
            | (LedgerType::Refund, Kind::Refund)
            | (LedgerType::Dispute, Kind::Dispute)
    );
    let sign = p.amount().minor.signum() == l.amount().minor.signum();
    let amount = p.amount() == l.amount();
    match (kind, sign, amount) {
        (true, true, true) => 0,
        (true, true, false) => 1,
        (false, true, _) => 2,
        (true, false, _) => 3,
        (false, false, _) => 4,
    }
}

/// A ledger candidate that more than one processor candidate names (in [`probe_all`]'s result).
const CONTESTED: u32 = NONE - 1;

/// For each ledger candidate, the one processor candidate that names it by a key, [`NONE`] when none does,
/// or [`CONTESTED`] when more than one does (the best of them is chosen by [`settle_contested`], which looks
/// at every one): 4 bytes a row. A record names a row by one key at most (its keys are distinct, the row
/// holds one processor id), so a row is contested exactly when a second record finds it taken. The probes
/// (3-4 per record, each a likely cache miss) run on two threads; whichever comes first, a row named once
/// holds its one record and a row named more than once ends [`CONTESTED`] (every later arrival writes it),
/// so the result does not depend on thread timing.
fn probe_all(c: &Candidates<'_>, txns: &TxnIndex<'_>, p_dup: &[bool], batch: usize) -> Vec<u32> {
    let (np, nl) = (c.procs.len(), c.ledg.len());
    let named: Vec<AtomicU32> = (0..nl).map(|_| AtomicU32::new(NONE)).collect();
    // in batches of records, each stage asking for what the next one reads: the keys hashed and their slots
    // asked for; the candidates whose slot agrees, their list entries asked for; their rows; their ids'
    // texts and their entries; the keys compared and the entries written
    let probe = |from: usize, to: usize| {
        let mut keys: Vec<(&[u8], u32, u64)> = Vec::with_capacity(4 * batch);
        let mut tagged: Vec<(u32, u32)> = Vec::with_capacity(4 * batch);
        let mut start = from;
        while start < to {
            let end = start.saturating_add(batch.max(1)).min(to);
            keys.clear();
            tagged.clear();
            for i in start..end {
                let Some(p) = c.procs.get(i).filter(|_| !p_dup.get(i).copied().unwrap_or(true)) else {
                    continue;
                };
                // keys hashed and compared as stored: packing is a function of the text alone, the same for
                // a record's keys and a row's processor id
                for k in p.rec.keys().stored() {
                    let h = hash_bytes(k);
                    txns.prefetch(h);
                    keys.push((k, i as u32, h));
                }
            }
            for (e, &(.., h)) in keys.iter().enumerate() {
                for j in txns.tagged(h) {
                    txns.prefetch_entry(j);
                    tagged.push((e as u32, j));
                }
            }
            for &(_, j) in &tagged {
                txns.prefetch_row(j);
            }
            for &(_, j) in &tagged {
                txns.prefetch_text(j);
                prefetch_at(&named, j as usize);
            }
            for &(e, j) in &tagged {
                let Some(&(k, i, _)) = keys.get(e as usize) else {
                    continue;
                };
                if !txns.holds(j, k) {
                    continue;
                }
                if let Some(n) = named.get(j as usize) {
                    if n.compare_exchange(NONE, i, Ordering::Relaxed, Ordering::Relaxed)
                        .is_err()
                    {
                        n.store(CONTESTED, Ordering::Relaxed);
                    }
                }
            }
            start = end;
        }
    };
    let half = np / 2;
    std::thread::scope(|s| {
        let other = s.spawn(|| probe(half, np));
        probe(0, half);
        if other.join().is_err() {
            // the thread died before finishing: probe from scratch on this one
            for n in &named {
                n.store(NONE, Ordering::Relaxed);
            }
            probe(0, np);
        }
    });
    named.into_iter().map(AtomicU32::into_inner).collect()
}

/// Rows with several candidates: every candidate collected (a second pass, only on days that have such
/// rows) and the best fit chosen; equal bests are ambiguous and noted on both sides.
fn settle_contested(c: &Candidates<'_>, txns: &TxnIndex<'_>, named: &mut [u32], links: &mut Links) {
    let mut cands: Vec<(u32, u32, u32)> = Vec::new(); // (ledger row, rank, processor index)
    for (i, p) in c.procs.iter().enumerate() {
        if links.p_dup[i] {
            continue;
        }
        for (rank, k) in p.rec.keys().stored().enumerate() {
            if let Some(j) = txns.find_stored(hash_bytes(k), k) {
                if named.get(j as usize) == Some(&CONTESTED) {
                    cands.push((j, rank as u32, i as u32));
                }
            }
        }
    }
    cands.sort_unstable();
    for group in cands.chunk_by(|a, b| a.0 == b.0) {
        let j = group[0].0 as usize;
        let row = c.ledg.at(j).row;
        // lowest (fit, rank) wins; equal bests are ambiguous
        let scored = group
            .iter()
            .map(|&(_, rank, i)| ((fit(c.procs.at(i as usize).rec, row), rank), i));
        let top = scored.clone().map(|(s, _)| s).min();
        let winners: Vec<u32> = scored.filter(|(s, _)| Some(*s) == top).map(|(_, i)| i).collect();
        match winners.as_slice() {
            [i] => named[j] = *i,
            _ => {
                named[j] = NONE;
                let ids: Vec<crate::Str<'_>> =
                    winners.iter().map(|&i| c.procs.at(i as usize).rec.id()).collect();
                let t = row.processor_txn_id().unwrap_or(crate::Str::raw(""));
                let note = format!(
                    "ambiguous: processor records {} all hold {t} and fit ledger {} ({} {} {}) equally; \
                     not linked",
                    ids.join(", "),
                    row.ledger_id(),
                    row.kind.as_str(),
                    row.amount(),
                    row.amount().currency
                );
                for &i in &winners {
                    links.p_note.insert(i as usize, note.clone());
                }
                links.l_note.insert(j, note);
            }
        }
    }
}

/// Links every ledger candidate that names a processor record's key.
pub(crate) fn link(
    c: &Candidates<'_>,
    txns: &TxnIndex<'_>,
    o: Origins<'_>,
    links: &mut Links,
    found: &mut Vec<Discrepancy>,
) {
    link_batched(c, txns, o, links, found, BATCH);
}

/// [`link`] probing `batch` processor candidates at a time.
pub(crate) fn link_batched(
    c: &Candidates<'_>,
    txns: &TxnIndex<'_>,
    o: Origins<'_>,
    links: &mut Links,
    found: &mut Vec<Discrepancy>,
    batch: usize,
) {
    let mut named = probe_all(c, txns, &links.p_dup, batch);
    if named.contains(&CONTESTED) {
        settle_contested(c, txns, &mut named, links);
    }
    // the first links: the rows' named records become the ledger side's links (the list kept, not a copy),
    // the records' side made now (neither was held while the duplicates' tables were: 8 bytes a candidate
    // less at the match's peak)
    links.link_p = vec![NONE; c.procs.len()];
    links.link_l = named;
    for (j, l) in c.ledg.iter().enumerate() {
        let i = links.link_l[j];
        links.link_l[j] = NONE;
        // a contested row left as it is (not settled) stays unlinked, like an ambiguous one
        if links.l_dup[j] || i == NONE || i == CONTESTED {
            continue;
        }
        let i = i as usize;
        if links.link_p[i] == NONE {
            links.link(i, j);
        } else {
            links.l_dup[j] = true;
            let carried = c.l_carried(j);
            // an item an earlier run reported (a lookback candidate) stays open as it is: never reported again
            if o.reported(carried) {
                continue;
            }
            let other = c.ledg.at(links.link_p[i] as usize).row.ledger_id();
            let why = format!(
                "double booking: ledger {} and {} both point at processor record {}",
                other,
                l.row.ledger_id(),
                c.procs.at(i).rec.id()
            );
            found.push(Discrepancy::of_ledger(
                Category::Duplicate,
                l.row,
                o.source(carried, l.row.location()),
                why,
                o.carried_id(carried),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::testkit::{linked, prec, row, with};
    use crate::model::ProcessorStatus;

    #[test]
    fn fit_prefers_kind_sign_and_amount() {
        let l = row("L1", Some("ch_1"), 500, 1);
        let mut failure = prec("f", -500, 1);
        failure.kind = Kind::Refund;
        failure.status = ProcessorStatus::Failed;
        assert_eq!(fit(&prec("c", 500, 1), &l), 0);
        assert_eq!(fit(&prec("c", 400, 1), &l), 1);
        assert_eq!(fit(&failure, &l), 4);
    }

    #[test]
    fn given_a_charge_and_its_failure_on_one_key_when_linked_then_the_charge_wins() {
        let mut failure = with(&prec("txn_f", -500, 1), |p| {
            p.keys = ["txn_f", "ch_1"].iter().collect()
        });
        failure.kind = Kind::Refund;
        let charge = with(&prec("txn_c", 500, 2), |p| {
            p.keys = ["txn_c", "ch_1"].iter().collect()
        });
        let (links, _) = linked(&[failure, charge], &[row("L1", Some("ch_1"), 500, 1)]);
        assert_eq!(links.link_l, [1]);
    }

    #[test]
    fn given_two_equal_fits_when_linked_then_nothing_links_and_both_sides_say_why() {
        let a = with(&prec("a", 500, 1), |p| p.keys = ["a", "dp_1"].iter().collect());
        let b = with(&prec("b", 500, 2), |p| p.keys = ["b", "dp_1"].iter().collect());
        let (links, _) = linked(&[b, a], &[row("L1", Some("dp_1"), 500, 1)]);
        assert_eq!(links.link_l, [NONE]);
        assert!(links.l_note[&0].contains("processor records a, b all hold dp_1"));
        assert_eq!(links.p_note.len(), 2);
    }

    #[test]
    fn given_two_rows_naming_one_record_when_linked_then_the_second_is_a_double_booking() {
        let (links, found) = linked(
            &[prec("ch_1", 500, 1)],
            &[row("L1", Some("ch_1"), 500, 1), row("L2", Some("ch_1"), 500, 2)],
        );
        // L2 is a duplicate already (processor id booked twice); the double-booking rule needs two ids
        assert_eq!(links.link_l[0], 0);
        assert!(links.l_dup[1]);
        assert_eq!(found.len(), 1);
        let p = with(&prec("txn_1", 500, 1), |p| {
            p.keys = ["txn_1", "ch_1"].iter().collect()
        });
        let (links, found) = linked(
            &[p],
            &[row("L1", Some("txn_1"), 500, 1), row("L2", Some("ch_1"), 500, 2)],
        );
        assert_eq!(links.link_p, [0]);
        assert!(found[0].details.starts_with("double booking: ledger L1 and L2"));
    }
}
