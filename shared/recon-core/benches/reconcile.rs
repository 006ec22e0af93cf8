//! Criterion benchmark: the core matcher on synthetic days (processor records vs ledger rows).
//! `RECON_BENCH_ROWS` sets the size (default 1,000,000).

use criterion::{criterion_group, criterion_main, Criterion};
use recon_core::{
    reconcile, reconcile_sharded, Currency, Kind, LedgerFields, LedgerRow, LedgerStatus, LedgerType,
    Location, Money, Processor, ProcessorRecord, ProcessorStatus, RecordFields, RunConfig, RunInput,
};

fn day(n: usize) -> (Vec<ProcessorRecord>, Vec<LedgerRow>) {
    let usd = Currency::parse("USD").unwrap_or_else(|e| unreachable!("{e}"));
    let mut p = Vec::with_capacity(n);
    let mut l = Vec::with_capacity(n);
    for i in 0..n {
        let amount = Money::new(1000 + (i as i64 * 7919) % 100_000, usd);
        p.push(
            ProcessorRecord::try_from(RecordFields {
                id: format!("txn_{i:024}").into(),
                keys: [
                    format!("ch_{i:024}"),
                    format!("txn_{i:024}"),
                    format!("pi_{i:024}"),
                ]
                .into_iter()
                .collect(),
                reference: Some(format!("ord_{i}").into()),
                other_references: Default::default(),
                kind: Kind::Charge,
                amount,
                fee: None,
                net: None,
                status: ProcessorStatus::Succeeded,
                occurred_at: None,
                location: Location {
                    object: 0,
                    line: i as u64 + 2,
                },
            })
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        if i % 200 != 0 {
            let key = if i % 10 == 0 {
                format!("pi_{i:024}")
            } else {
                format!("ch_{i:024}")
            };
            l.push(
                LedgerRow::try_from(LedgerFields {
                    ledger_id: format!("L-{i:09}").into(),
                    processor: Processor::Stripe,
                    processor_txn_id: Some(key.into()),
                    order_id: Some(format!("ord_{i}").into()),
                    kind: LedgerType::Charge,
                    amount: if i % 333 == 0 {
                        Money::new(amount.minor + 1, usd)
                    } else {
                        amount
                    },
                    status: LedgerStatus::Captured,
                    booked_at: None,
                    location: Location {
                        object: 1,
                        line: i as u64 + 2,
                    },
                })
                .unwrap_or_else(|e| unreachable!("{e}")),
            );
        }
    }
    (p, l)
}

fn bench(c: &mut Criterion) {
    let n = std::env::var("RECON_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (p, l) = day(n);
    let objects = vec!["activity.csv".to_string(), "ledger.csv".to_string()];
    let config = RunConfig {
        grace_days: 0,
        ..RunConfig::default()
    };
    let input = RunInput {
        processor: Processor::Stripe,
        objects: &objects,
        records: &p,
        ledger: &l,
        invalid: &[],
        carried: &[],
        config: &config,
    };
    let mut g = c.benchmark_group("reconcile");
    g.sample_size(10);
    g.bench_function(format!("match {n} x {}", l.len()), |b| {
        b.iter(|| reconcile(input))
    });
    g.bench_function(format!("match {n} x {} as 4 partitions", l.len()), |b| {
        b.iter(|| reconcile_sharded(input, 4))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
