//! The public-sample fixture days (`tests/fixtures/public/`, written from what Stripe, PayPal and Square
//! publish: API reference examples, report layouts, SDK fixtures): every row's kind, sign, status and what
//! recon does with it, in one table; then each day reconciled whole, with no false discrepancy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use recon_core::{
    reconcile, Kind, LedgerRow, Processor, ProcessorRecord, ProcessorStatus, RunConfig, RunInput,
};

const DATE_START: i64 = 1_741_564_800_000; // 2025-03-10T00:00:00Z

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/public")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

struct Day {
    records: Vec<ProcessorRecord>,
    ledger: Vec<LedgerRow>,
    objects: Vec<String>,
}

fn load(case: &str, processor: Processor) -> Day {
    let base = root().join(case).join("inbox");
    let mut day = Day {
        records: Vec::new(),
        ledger: Vec::new(),
        objects: Vec::new(),
    };
    let dirs = [
        base.join(processor.as_str()).join("2025-03-10"),
        base.join("ledger/2025-03-10"),
    ];
    for dir in dirs {
        for f in files(&dir) {
            let key = f.display().to_string();
            let bytes = std::fs::read(&f).unwrap();
            let (_, parsed) = recon_sources::parse_object(&key, day.objects.len() as u32, &bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(parsed.invalid.is_empty(), "{key}: {:?}", parsed.invalid);
            day.records.extend(parsed.records);
            day.ledger.extend(parsed.ledger);
            day.objects.push(key);
        }
    }
    day
}

/// What recon does with a row.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    /// Reconciled one-to-one and, on these days, matched to its ledger row.
    Matched,
    /// A reconciled kind that moved no money and that no ledger row claims: `excluded_counts.not_settled`.
    NotSettled,
    /// Counted under `excluded_counts[kind]`.
    Excluded,
}
use Fate::*;
use Kind::*;
use ProcessorStatus::{Canceled, Failed, Pending, Reversed, Succeeded};

/// (record id, kind, sign of the amount, status, fate), in file order.
type Row = (&'static str, Kind, i8, ProcessorStatus, Fate);

const STRIPE_API: &[Row] = &[
    ("txn_1R0pub0001LkdIwHu7ixBT", Dispute, 1, Succeeded, Matched), // dispute_reversal, listed first
    ("txn_1R0pub0002LkdIwHu7ixBT", Dispute, -1, Succeeded, Matched), // dispute withdrawal
    ("txn_1R0pub0003LkdIwHu7ixBT", Refund, -1, Succeeded, Matched),
    // the charge refunded later: the expanded source says refunded, the movement is a capture
    ("txn_1R0pub0004LkdIwHu7ixBT", Charge, 1, Succeeded, Matched),
    ("txn_1R0pub0005LkdIwHu7ixBT", Charge, 1, Succeeded, Matched), // type payment
    ("txn_1R0pub0006LkdIwHu7ixBT", Refund, -1, Succeeded, Matched), // payment_refund (source pending)
    ("txn_1R0pub0007LkdIwHu7ixBT", Charge, 1, Succeeded, Matched), // JPY, source disputed: true
    ("txn_1R0pub0008LkdIwHu7ixBT", Charge, 1, Succeeded, Matched), // KWD, partly refunded
    ("txn_1R0pub0009LkdIwHu7ixBT", Refund, 1, Succeeded, Matched), // refund_failure: money back
    ("txn_1R0pub0010LkdIwHu7ixBT", Payout, -1, Succeeded, Excluded),
    ("txn_1R0pub0011LkdIwHu7ixBT", Payout, 1, Succeeded, Excluded), // payout_cancel
    ("txn_1R0pub0012LkdIwHu7ixBT", Payout, 1, Succeeded, Excluded), // payout_failure
    ("txn_1R0pub0013LkdIwHu7ixBT", Transfer, -1, Succeeded, Excluded),
    ("txn_1R0pub0014LkdIwHu7ixBT", Fee, 1, Succeeded, Excluded), // application_fee (platform_earning)
    ("txn_1R0pub0015LkdIwHu7ixBT", Fee, -1, Succeeded, Excluded), // stripe_fee
    ("txn_1R0pub0016LkdIwHu7ixBT", Adjustment, -1, Succeeded, Excluded),
    ("txn_1R0pub0017LkdIwHu7ixBT", Funding, 1, Succeeded, Excluded), // topup
    ("txn_1R0pub0018LkdIwHu7ixBT", Charge, 1, Succeeded, Matched),   // five days early: out of window
];

const PAYPAL_API: &[Row] = &[
    ("1FN09943UT8450224/T0006", Charge, 1, Succeeded, Matched), // order number in invoice_id only
    ("2MP00000000000001/T0001", Transfer, -1, Succeeded, Excluded), // MassPay sent
    ("3PS00000000000001/T0000", Transfer, -1, Succeeded, Excluded), // payment sent
    ("4DN00000000000001/T0006", Charge, 1, Failed, NotSettled), // denied
    ("5RV00000000000001/T0006", Charge, 1, Reversed, NotSettled), // reversed
    ("6PN00000000000001/T0006", Charge, 1, Pending, NotSettled),
    ("7RF00000000000001/T1107", Refund, -1, Succeeded, Matched),
    ("8FE00000000000001/T0106", Fee, -1, Succeeded, Excluded),
    ("9CV00000000000001/T0200", Conversion, -1, Succeeded, Excluded),
    ("9CV00000000000002/T0200", Conversion, 1, Succeeded, Excluded),
    ("AFD00000000000001/T0300", Funding, 1, Succeeded, Excluded),
    ("BWD00000000000001/T0400", Payout, -1, Succeeded, Excluded),
    ("CCD00000000000001/T0700", Funding, 1, Succeeded, Excluded),
    ("DBN00000000000001/T0800", Adjustment, 1, Succeeded, Excluded),
    ("ECB00000000000001/T1201", Dispute, -1, Succeeded, Matched),
    ("FCR00000000000001/T1202", Dispute, 1, Succeeded, Matched),
    ("GHD00000000000001/T1110", Hold, -1, Succeeded, Excluded),
    ("GHD00000000000002/T1111", Hold, 1, Succeeded, Excluded),
    ("HAU00000000000001/T1300", Authorization, 1, Succeeded, Excluded),
    ("ITH00000000000001/T1503", Hold, -1, Succeeded, Excluded),
    ("JRS00000000000001/T2101", Hold, -1, Succeeded, Excluded),
    ("KBC00000000000001/T1600", Funding, 1, Succeeded, Excluded),
    ("LAC00000000000001/T1900", Adjustment, -1, Succeeded, Excluded),
    ("MIT00000000000001/T2000", Transfer, -1, Succeeded, Excluded),
    ("NTR00000000000001/T2201", Transfer, 1, Succeeded, Excluded),
    ("OMR00000000000001/T1114", Transfer, 1, Succeeded, Excluded), // MassPay reversal
];

const PAYPAL_TRR: &[Row] = &[
    ("1TR00000000000001/T0006", Charge, 1, Succeeded, Matched),
    ("2TR00000000000001/T0000", Transfer, -1, Succeeded, Excluded), // T0000 DR: money sent
    ("3TR00000000000001/T0006", Charge, 1, Failed, NotSettled),     // D
    ("4TR00000000000001/T0006", Charge, 1, Reversed, NotSettled),   // V
    ("5TR00000000000001/T1107", Refund, -1, Succeeded, Matched),
    ("6TR00000000000001/T1201", Dispute, -1, Succeeded, Matched),
    ("7TR00000000000001/T0400", Payout, -1, Succeeded, Excluded),
    ("8TR00000000000001/T0106", Fee, -1, Succeeded, Excluded),
    ("9TR00000000000001/T0006", Charge, 1, Pending, NotSettled), // JPY, P
];

const PAYPAL_STL: &[Row] = &[
    ("1ST00000000000001/T0006", Charge, 1, Succeeded, Matched),
    ("2ST00000000000001/T0001", Transfer, -1, Succeeded, Excluded), // MassPay DR
    ("3ST00000000000001/T0000", Transfer, -1, Succeeded, Excluded),
    ("4ST00000000000001/T1107", Refund, -1, Succeeded, Matched),
    ("5ST00000000000001/T0400", Payout, -1, Succeeded, Excluded),
    ("6ST00000000000001/T0104", Fee, -1, Succeeded, Excluded),
    ("7ST00000000000001/T0006", Charge, 1, Succeeded, Matched), // JPY by fallback
];

const SQUARE: &[Row] = &[
    ("sqPubC0MPLETED000000000000001", Charge, 1, Succeeded, Matched),
    ("sqPubAPPR0VED0000000000000001", Charge, 1, Pending, NotSettled), // authorized, not captured
    ("sqPubCANCELED0000000000000001", Charge, 1, Canceled, NotSettled),
    ("sqPubFAILED000000000000000001", Charge, 1, Failed, NotSettled),
    ("sqPubFALLBACK0RD0000000000001", Charge, 1, Succeeded, Matched), // by order_id
    ("sqPubFALLBACKREF000000000001", Charge, 1, Succeeded, Matched), // by order_id after a free-text reference_id
    ("sqPubC0MPLETED000000000000001_r1", Refund, -1, Succeeded, Matched), // partial refund 1 of 2
    ("sqPubC0MPLETED000000000000001_r2", Refund, -1, Succeeded, Matched),
    (
        "sqPubC0MPLETED000000000000001_r3",
        Refund,
        -1,
        Pending,
        NotSettled,
    ),
    ("sqPubC0MPLETED000000000000001_r4", Refund, -1, Failed, NotSettled), // REJECTED
    ("sqPubC0MPLETED000000000000001_r5", Refund, -1, Failed, NotSettled),
];

fn check(case: &str, processor: Processor, table: &[Row]) {
    let day = load(case, processor);
    let got: Vec<Row> = day
        .records
        .iter()
        .zip(table)
        .map(|(r, want)| {
            let fate = if !r.kind.is_reconciled() {
                Excluded
            } else if r.status.is_settled() {
                Matched
            } else {
                NotSettled
            };
            (want.0, r.kind, r.amount().minor.signum() as i8, r.status, fate)
        })
        .collect();
    let ids: Vec<String> = day.records.iter().map(|r| r.id().to_string()).collect();
    let want_ids: Vec<&str> = table.iter().map(|r| r.0).collect();
    assert_eq!(ids, want_ids, "{case}: records in file order");
    assert_eq!(got, table, "{case}: kind, sign, status and fate of every row");

    // reconciled whole: every reconciled, settled record matched, nothing else reported
    let config = RunConfig {
        grace_days: 0,
        day_start: Some(DATE_START),
        ..RunConfig::default()
    };
    let ledger: Vec<LedgerRow> = day
        .ledger
        .iter()
        .filter(|l| l.processor == processor)
        .cloned()
        .collect();
    let o = reconcile(RunInput {
        processor,
        objects: &day.objects,
        records: &day.records,
        ledger: &ledger,
        invalid: &[],
        carried: &[],
        config: &config,
    })
    .unwrap();
    assert!(o.discrepancies.is_empty(), "{case}: {:#?}", o.discrepancies);
    let count = |f: Fate| table.iter().filter(|r| r.4 == f).count() as u64;
    assert_eq!(o.matched_count, count(Matched), "{case}");
    assert_eq!(o.clean_count, count(Matched), "{case}");
    assert_eq!(o.not_settled, count(NotSettled), "{case}");
    assert_eq!(
        o.excluded_counts.get("not_settled").copied().unwrap_or(0),
        count(NotSettled)
    );
    assert_eq!(o.processor_count, count(Matched) + count(NotSettled), "{case}");
    for r in table.iter().filter(|r| r.4 == Excluded) {
        assert!(
            o.excluded_counts.contains_key(r.1.as_str()),
            "{case}: {} counted under {}",
            r.0,
            r.1.as_str()
        );
    }
    let excluded: u64 = o
        .excluded_counts
        .iter()
        .filter(|(k, _)| *k != "not_settled")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(excluded, count(Excluded), "{case}");
}

#[test]
fn stripe_balance_transactions_of_every_type() {
    check("stripe-api", Processor::Stripe, STRIPE_API);
}

#[test]
fn paypal_transaction_search_of_every_t_code_group() {
    check("paypal-api", Processor::Paypal, PAYPAL_API);
}

#[test]
fn paypal_transaction_detail_report_with_statuses_and_directions() {
    check("paypal-trr", Processor::Paypal, PAYPAL_TRR);
}

#[test]
fn paypal_settlement_report_with_debits() {
    check("paypal-stl", Processor::Paypal, PAYPAL_STL);
}

#[test]
fn square_payments_and_refunds_in_every_status() {
    check("square", Processor::Square, SQUARE);
}
