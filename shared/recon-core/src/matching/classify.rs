//! Phase 5, classify a linked pair: the first that applies of `currency_mismatch` (HIGH at least),
//! `amount_mismatch` (difference beyond the currency's tolerance) and `status_mismatch` (outcomes that
//! contradict each other); otherwise the pair is clean.

use std::collections::BTreeMap;

use crate::discrepancy::{stake_of, Category};
use crate::model::{Kind, LedgerRow, LedgerStatus, ProcessorRecord, ProcessorStatus};
use crate::money::Currency;

/// What is wrong with a linked pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub category: Category,
    /// Minor units at stake: the difference for an amount mismatch, the processor amount otherwise.
    pub stake: i64,
    /// At least HIGH whatever the amount.
    pub at_least_high: bool,
    pub details: String,
}

/// The problem of a linked pair, if it has one.
pub(crate) fn classify(
    p: &ProcessorRecord,
    l: &LedgerRow,
    tolerance: &BTreeMap<Currency, i64>,
) -> Option<Problem> {
    let (pa, la) = (p.amount(), l.amount());
    if pa.currency != la.currency {
        return Some(Problem {
            category: Category::CurrencyMismatch,
            stake: stake_of(i128::from(pa.minor)),
            at_least_high: true,
            details: format!(
                "processor {} {} vs ledger {} {}",
                pa, pa.currency, la, la.currency
            ),
        });
    }
    let tol = tolerance.get(&pa.currency).copied().unwrap_or(0);
    let diff = i128::from(pa.minor) - i128::from(la.minor);
    if diff.unsigned_abs() > u128::from(tol.unsigned_abs()) {
        return Some(Problem {
            category: Category::AmountMismatch,
            stake: stake_of(diff),
            at_least_high: false,
            details: format!("processor {} vs ledger {} {}", pa, la, pa.currency),
        });
    }
    status_problem(p, l).map(|(details, at_least_high)| Problem {
        category: Category::StatusMismatch,
        stake: stake_of(i128::from(pa.minor)),
        at_least_high,
        details,
    })
}

/// Is this linked pair's outcome contradictory? Returns the reason and whether it is at least HIGH.
fn status_problem(p: &ProcessorRecord, l: &LedgerRow) -> Option<(String, bool)> {
    let (ps, ls) = (p.status, l.status);
    if ps.is_unsuccessful() && matches!(ls, LedgerStatus::Captured | LedgerStatus::Refunded) {
        let why = format!("processor says {} but ledger says {}", ps.as_str(), ls.as_str());
        return Some((why, true));
    }
    if ps == ProcessorStatus::Refunded && ls == LedgerStatus::Captured && p.kind == Kind::Charge {
        return Some(("processor says refunded but ledger says captured".into(), true));
    }
    if ls == LedgerStatus::Failed && matches!(ps, ProcessorStatus::Succeeded | ProcessorStatus::Refunded) {
        return Some((
            format!("ledger says failed but processor says {}", ps.as_str()),
            false,
        ));
    }
    if ls == LedgerStatus::Refunded && p.kind == Kind::Charge && ps == ProcessorStatus::Succeeded {
        let why = "ledger says refunded on a record the processor shows as a plain charge";
        return Some((why.into(), false));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::testkit::{cur, prec, row};
    use crate::money::Money;

    fn tolerance(minor: i64) -> BTreeMap<Currency, i64> {
        BTreeMap::from([(cur("USD"), minor)])
    }

    #[test]
    fn given_equal_amounts_and_statuses_when_classified_then_the_pair_is_clean() {
        assert_eq!(
            classify(&prec("p", 500, 1), &row("L", None, 500, 1), &BTreeMap::new()),
            None
        );
    }

    #[test]
    fn given_a_difference_when_classified_then_it_is_an_amount_mismatch_of_the_difference() {
        let p = classify(&prec("p", 500, 1), &row("L", None, 450, 1), &BTreeMap::new());
        let p = p.unwrap_or_else(|| unreachable!("a mismatch"));
        assert_eq!(p.category, Category::AmountMismatch);
        assert_eq!(p.stake, 50);
        assert_eq!(p.details, "processor 5.00 vs ledger 4.50 USD");
    }

    #[test]
    fn given_a_difference_within_tolerance_when_classified_then_it_is_clean_and_one_more_cent_is_not() {
        let (p, l) = (prec("p", 500, 1), row("L", None, 498, 1));
        assert_eq!(classify(&p, &l, &tolerance(2)), None);
        let over = classify(&p, &l, &tolerance(1)).map(|x| x.category);
        assert_eq!(over, Some(Category::AmountMismatch));
    }

    #[test]
    fn given_another_currency_when_classified_then_currency_mismatch_comes_first() {
        let l = row("L", None, 450, 1)
            .with(|f| f.amount = Money::new(450, cur("EUR")))
            .unwrap_or_else(|e| unreachable!("{e}"));
        let p = classify(&prec("p", 500, 1), &l, &BTreeMap::new()).map(|x| (x.category, x.at_least_high));
        assert_eq!(p, Some((Category::CurrencyMismatch, true)));
    }

    #[test]
    fn given_a_failed_charge_the_ledger_captured_when_classified_then_it_is_a_high_status_mismatch() {
        let mut p = prec("p", 500, 1);
        p.status = ProcessorStatus::Failed;
        let got = classify(&p, &row("L", None, 500, 1), &BTreeMap::new());
        let got = got.map(|x| (x.category, x.at_least_high, x.details));
        let want = "processor says failed but ledger says captured".to_string();
        assert_eq!(got, Some((Category::StatusMismatch, true, want)));
    }

    #[test]
    fn given_a_ledger_failure_the_processor_settled_when_classified_then_it_is_a_status_mismatch() {
        let mut l = row("L", None, 500, 1);
        l.status = LedgerStatus::Failed;
        let got = classify(&prec("p", 500, 1), &l, &BTreeMap::new()).map(|x| x.at_least_high);
        assert_eq!(got, Some(false));
    }
}
