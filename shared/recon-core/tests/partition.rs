//! Sharding: reconciling a run as `n` partitions and merging gives exactly the unpartitioned outcome, for
//! arbitrary days (duplicates on both sides, double bookings, ambiguous fallbacks, carried items, invalid
//! records, records booked by their second or third key) and any `n`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use recon_core::*;

fn cur(c: &str) -> Currency {
    Currency::parse(c).unwrap_or_else(|e| unreachable!("{e}"))
}

type P = (u8, u8, i64, u8, u8, u8);

fn record(n: usize, &(id, kind, amt, c, reference, _): &P) -> ProcessorRecord {
    let curs = ["USD", "JPY", "EUR"];
    ProcessorRecord::try_from(RecordFields {
        id: format!("txn_{id}").into(),
        keys: [format!("ch_{id}"), format!("txn_{id}"), format!("pi_{}", id / 2)]
            .iter()
            .collect(),
        reference: (reference < 4).then(|| format!("Ord{reference}").into()),
        other_references: Default::default(),
        kind: [Kind::Charge, Kind::Refund, Kind::Dispute, Kind::Payout][kind as usize % 4],
        amount: Money::new(amt, cur(curs[c as usize % 3])),
        fee: None,
        net: None,
        status: [ProcessorStatus::Succeeded, ProcessorStatus::Failed][(id % 5 == 0) as usize],
        occurred_at: None,
        location: Location {
            object: 1000,
            line: n as u64 + 2,
        },
    })
    .unwrap()
}

fn row(n: usize, &(id, kind, amt, c, reference, key): &P) -> LedgerRow {
    let curs = ["USD", "JPY", "EUR"];
    let txn = match key % 5 {
        0 => Some(format!("ch_{id}")),
        1 => Some(format!("pi_{}", id / 2)),
        2 => Some(format!("txn_{id}")),
        3 => Some(String::new()),
        _ => None,
    };
    LedgerRow::try_from(LedgerFields {
        ledger_id: format!("L{}", id % 17).into(),
        processor: Processor::Stripe,
        processor_txn_id: txn.filter(|t| !t.is_empty()).map(Into::into),
        order_id: (reference < 4).then(|| format!("ORD{reference}").into()),
        kind: [
            LedgerType::Charge,
            LedgerType::Refund,
            LedgerType::Dispute,
            LedgerType::Adjustment,
        ][kind as usize % 4],
        amount: Money::new(amt, cur(curs[c as usize % 3])),
        status: [
            LedgerStatus::Captured,
            LedgerStatus::Refunded,
            LedgerStatus::Failed,
        ][key as usize % 3],
        booked_at: None,
        location: Location {
            object: 0,
            line: n as u64 + 2,
        },
    })
    .unwrap()
}

fn arb() -> impl Strategy<Value = P> {
    (
        0u8..24,
        0u8..5,
        (-3i64..4).prop_map(|a| a * 100),
        0u8..4,
        0u8..6,
        0u8..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn partitioned_equals_unpartitioned(
        ps in prop::collection::vec(arb(), 0..40),
        ls in prop::collection::vec(arb(), 0..40),
        cs in prop::collection::vec((arb(), any::<bool>(), 0u32..3), 0..6),
        invalid in 0usize..3,
        grace in 0u32..3,
        n in 1u32..9,
    ) {
        let records: Vec<ProcessorRecord> = ps.iter().enumerate().map(|(i, p)| record(i, p)).collect();
        let ledger: Vec<LedgerRow> = ls.iter().enumerate().map(|(i, l)| row(i, l)).collect();
        let carried: Vec<Carried> = cs
            .iter()
            .enumerate()
            .map(|(i, (p, side, age))| Carried {
                id: 100 + i as i64,
                age_days: *age,
                source: format!("raw/earlier.csv:{i}"),
                // every third carried item was reported missing earlier (a lookback candidate)
                reported: i % 3 == 2,
                record: if *side {
                    CarriedRecord::Processor(record(500 + i, p))
                } else {
                    CarriedRecord::Ledger(row(500 + i, p))
                },
            })
            .collect();
        let invalid: Vec<InvalidRecord> = (0..invalid)
            .map(|i| InvalidRecord {
                side: Side::Ledger,
                location: Location { object: 0, line: 900 + i as u64 },
                field: Some("amount".into()),
                reason: "not a number".into(),
                raw: "x".into(),
            })
            .collect();
        let objects = vec!["raw/ledger.csv".to_string(); 1001];
        let config = RunConfig { grace_days: grace, ..RunConfig::default() };
        let input = RunInput {
            processor: Processor::Stripe,
            objects: &objects,
            records: &records,
            ledger: &ledger,
            invalid: &invalid,
            carried: &carried,
            config: &config,
        };
        let whole = reconcile(input).unwrap();
        let sharded = reconcile_sharded(input, n).unwrap();
        prop_assert_eq!(&whole, &sharded);
        // each partition on its own conserves too, and the plan covers every record once
        let plan = plan(&input, n);
        prop_assert_eq!(plan.sizes().iter().sum::<u64>() as usize, records.len() + ledger.len() + carried.len());
        let parts: Vec<Outcome> = (0..n).map(|i| reconcile_partition(input, &plan, i).unwrap()).collect();
        prop_assert_eq!(merge(Processor::Stripe, parts), whole.clone());

        // the split step: the plan from node hashes given range by range in another order is the same plan
        let mut given = Vec::new();
        for (i, c) in carried.iter().enumerate().rev() {
            given.push((2, i, carried_hashes(c)));
        }
        for (i, r) in ledger.iter().enumerate().rev() {
            given.push((1, i, ledger_hashes(r)));
        }
        for (i, r) in records.iter().enumerate() {
            given.push((0, i, processor_hashes(r)));
        }
        for rounds in 1..=3 {
            let mut planner = Planner::new(0, rounds);
            for _ in 0..planner.passes() {
                for (_, _, hashes) in &given {
                    planner.add(hashes.iter().copied());
                }
                prop_assert_eq!(planner.end_pass(), Ok(()));
            }
            let got = planner.finish(n).unwrap_or_default();
            for (slot, (side, i, _)) in given.iter().enumerate() {
                let want = [&plan.records, &plan.ledger, &plan.carried][*side][*i];
                prop_assert_eq!(got[slot], want, "rounds {}", rounds);
            }
        }
        // and a partition worker that holds only its partition's records (invalid ones in partition 0)
        // reconciles them to the same outcome
        let parts: Vec<Outcome> = (0..n)
            .map(|i| {
                let records: Vec<ProcessorRecord> = records.iter().zip(&plan.records).filter(|(_, p)| **p == i).map(|(r, _)| r.clone()).collect();
                let ledger: Vec<LedgerRow> = ledger.iter().zip(&plan.ledger).filter(|(_, p)| **p == i).map(|(r, _)| r.clone()).collect();
                let carried: Vec<Carried> = carried.iter().zip(&plan.carried).filter(|(_, p)| **p == i).map(|(r, _)| r.clone()).collect();
                let invalid: Vec<InvalidRecord> = if i == 0 { invalid.clone() } else { Vec::new() };
                let alone = Plan {
                    partitions: n,
                    records: vec![i; records.len()],
                    ledger: vec![i; ledger.len()],
                    carried: vec![i; carried.len()],
                };
                let input = RunInput {
                    processor: Processor::Stripe,
                    objects: &objects,
                    records: &records,
                    ledger: &ledger,
                    invalid: &invalid,
                    carried: &carried,
                    config: &config,
                };
                reconcile_partition(input, &alone, i).unwrap()
            })
            .collect();
        prop_assert_eq!(merge(Processor::Stripe, parts), whole);
    }
}

#[test]
fn a_charge_booked_by_its_payment_intent_lands_with_it() {
    // the ledger books the charge by pi_, the duplicate ledger_id sits on another key: all one component
    let usd = cur("USD");
    let records = vec![ProcessorRecord::try_from(RecordFields {
        id: "txn_1".into(),
        keys: ["ch_1", "txn_1", "pi_1"].iter().collect(),
        reference: Some("ord_1".into()),
        other_references: Default::default(),
        kind: Kind::Charge,
        amount: Money::new(100, usd),
        fee: None,
        net: None,
        status: ProcessorStatus::Succeeded,
        occurred_at: None,
        location: Location { object: 1, line: 2 },
    })
    .unwrap()];
    let ledger: Vec<LedgerRow> = ["pi_1", "ch_1"]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            LedgerRow::try_from(LedgerFields {
                ledger_id: format!("L{i}").into(),
                processor: Processor::Stripe,
                processor_txn_id: Some((*k).into()),
                order_id: None,
                kind: LedgerType::Charge,
                amount: Money::new(100, usd),
                status: LedgerStatus::Captured,
                booked_at: None,
                location: Location {
                    object: 0,
                    line: i as u64 + 2,
                },
            })
            .unwrap()
        })
        .collect();
    let objects = vec!["l.csv".to_string(), "p.csv".to_string()];
    let config = RunConfig::default();
    let input = RunInput {
        processor: Processor::Stripe,
        objects: &objects,
        records: &records,
        ledger: &ledger,
        invalid: &[],
        carried: &[],
        config: &config,
    };
    for n in 1..16 {
        let plan = plan(&input, n);
        assert_eq!(plan.ledger[0], plan.records[0]);
        assert_eq!(plan.ledger[1], plan.records[0]);
        let o = reconcile_sharded(input, n).unwrap();
        assert_eq!(o.matched_count, 1);
        assert_eq!(o.counts.duplicate, 1, "double booking found in every split");
        assert_eq!(o, reconcile(input).unwrap());
    }
}
