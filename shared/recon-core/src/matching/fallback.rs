//! Phase 4, the fallback link: a ledger row without a `processor_txn_id` links by order id + amount +
//! currency (order id case-insensitive) to the one processor record holding that reference, when the key is
//! unique on both sides. A record may hold several candidate references (PayPal `custom_field` and
//! `invoice_id`, ...): it is a candidate of every group one of them names, and a record that fits two groups
//! links to neither. Anything not unique is noted as ambiguous and left unlinked.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::candidates::Candidates;
use super::{Links, NONE};
use crate::money::{Currency, Money};

type FKey = (String, i64, Currency);

/// Links what the fallback can link; notes every ambiguity on the rows and records it concerns.
pub(crate) fn link(c: &Candidates<'_>, links: &mut Links) {
    let mut lmap: BTreeMap<FKey, Vec<usize>> = BTreeMap::new();
    for (j, l) in c.ledg.iter().enumerate() {
        if links.l_dup[j] || links.link_l[j] != NONE || l.row.processor_txn_id().is_some() {
            continue;
        }
        if let Some(o) = l.row.order_id().filter(|o| !o.is_empty()) {
            lmap.entry((
                o.to_ascii_lowercase(),
                l.row.amount().minor,
                l.row.amount().currency,
            ))
            .or_default()
            .push(j);
        }
    }
    if lmap.is_empty() {
        return;
    }
    let mut pmap: BTreeMap<FKey, Vec<usize>> = BTreeMap::new();
    let mut groups_of: FxHashMap<usize, u32> = FxHashMap::default();
    for (i, p) in c.procs.iter().enumerate() {
        if links.p_dup[i] || links.link_p[i] != NONE {
            continue;
        }
        for r in p.rec.references() {
            let k = (
                r.to_ascii_lowercase(),
                p.rec.amount().minor,
                p.rec.amount().currency,
            );
            if lmap.contains_key(&k) {
                pmap.entry(k).or_default().push(i);
                *groups_of.entry(i).or_default() += 1;
            }
        }
    }
    for (k, ls) in &lmap {
        let ps = pmap.get(k).map(Vec::as_slice).unwrap_or(&[]);
        match (ls.as_slice(), ps) {
            ([j], [i]) if groups_of.get(i).copied() == Some(1) => links.link(*i, *j),
            (_, []) => {}
            _ => {
                let mut note = format!(
                    "ambiguous fallback on order_id {} {} {}: {} ledger rows and {} processor records share it",
                    k.0,
                    Money::new(k.1, k.2),
                    k.2,
                    ls.len(),
                    ps.len()
                );
                let torn: Vec<crate::Str<'_>> = ps
                    .iter()
                    .filter(|i| groups_of.get(i).copied().unwrap_or(0) > 1)
                    .map(|&i| c.procs.at(i).rec.id())
                    .collect();
                if !torn.is_empty() {
                    note.push_str(&format!(
                        ", and processor record {} fits other order ids through another reference",
                        torn.join(", ")
                    ));
                }
                note.push_str("; not linked");
                for j in ls {
                    links.l_note.insert(*j, note.clone());
                }
                for i in ps {
                    links
                        .p_note
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::testkit::{linked, prec, row, with};

    fn by_order(id: &str, order: &str, minor: i64, line: u64) -> crate::model::LedgerRow {
        crate::matching::testkit::with_row(&row(id, None, minor, line), |r| r.order_id = Some(order.into()))
    }

    fn referenced(id: &str, reference: &str, minor: i64, line: u64) -> crate::model::ProcessorRecord {
        with(&prec(id, minor, line), |p| p.reference = Some(reference.into()))
    }

    #[test]
    fn given_a_unique_order_id_in_another_case_when_linked_then_it_links() {
        let (links, _) = linked(
            &[referenced("p", "ORD-1", 500, 1)],
            &[by_order("L", "ord-1", 500, 1)],
        );
        assert_eq!(links.link_l, [0]);
    }

    #[test]
    fn given_another_amount_when_linked_then_the_fallback_does_not_link() {
        let (links, _) = linked(
            &[referenced("p", "ORD-1", 400, 1)],
            &[by_order("L", "ORD-1", 500, 1)],
        );
        assert_eq!(links.link_l, [NONE]);
        assert!(links.l_note.is_empty());
    }

    #[test]
    fn given_two_records_on_one_order_when_linked_then_neither_links_and_the_note_says_so() {
        let (links, _) = linked(
            &[referenced("a", "O", 500, 1), referenced("b", "O", 500, 2)],
            &[by_order("L", "O", 500, 1)],
        );
        assert_eq!(links.link_l, [NONE]);
        assert!(
            links.l_note[&0].starts_with("ambiguous fallback on order_id o 5.00 USD: 1 ledger rows and 2")
        );
        assert_eq!(links.p_note.len(), 2);
    }

    #[test]
    fn given_a_record_whose_two_references_name_two_rows_when_linked_then_neither_row_links() {
        let p = with(&referenced("p", "O1", 500, 1), |p| {
            p.other_references = ["O2"].iter().collect()
        });
        let (links, _) = linked(
            &[p],
            &[by_order("L1", "O1", 500, 1), by_order("L2", "O2", 500, 2)],
        );
        assert_eq!(links.link_l, [NONE, NONE]);
        assert!(links.p_note[&0].contains("fits other order ids"));
    }
}
