//! Criterion benchmark: the parsers alone, on the benchmark kit's formats (Stripe itemized activity report
//! and ledger CSV). The rows of `tests/fixtures/kit-3000` are repeated up to `RECON_BENCH_ROWS` rows per file
//! (default 1,000,000): parse speed does not depend on the rows being distinct.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn grow(path: &str, rows: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| unreachable!("{path}: {e}"));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let body: Vec<&str> = lines.collect();
    let mut out = String::with_capacity(rows * 160);
    out.push_str(header);
    out.push('\n');
    for i in 0..rows {
        out.push_str(body[i % body.len()]);
        out.push('\n');
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let rows = std::env::var("RECON_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let kit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/kit-3000/inbox");
    let stripe = grow(&format!("{kit}/stripe/2025-06-02/activity.csv"), rows);
    let ledger = grow(&format!("{kit}/ledger/2025-06-02/ledger.csv"), rows);
    let mut g = c.benchmark_group("parse");
    g.sample_size(10);
    for (name, key, bytes) in [
        ("stripe itemized report", "raw/stripe/activity.csv", &stripe),
        ("ledger csv", "raw/ledger/ledger.csv", &ledger),
    ] {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("{name} {rows} rows"), |b| {
            b.iter(|| {
                let (_, parsed) =
                    recon_sources::parse_object(key, 0, bytes).unwrap_or_else(|e| unreachable!("{e}"));
                assert_eq!(parsed.record_count(), rows as u64);
                parsed
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
