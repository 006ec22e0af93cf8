//! Criterion benchmarks: the write side of a run. `reports`: the run's `discrepancies.csv`, `report.html` and
//! `summary.json` as `recon run` writes them. `record`: the run in PostgreSQL (one transaction: the run row,
//! the binary COPY of its discrepancies, its items with their events, the day-over-day figures), as a day's
//! first run (every item opened) and as a rerun of the same day (the earlier run superseded, every item found
//! again).
//!
//! Every measured run starts from the same database: `recon_bench_write`, copied before each run from a
//! template migrated once (a rerun's first run recorded before the clock starts). Needs `DATABASE_URL`: a
//! server where it may drop and create `recon_bench_write` and `recon_bench_write_template` (both dropped at
//! the end); without it `record` says so and measures nothing. `RECON_BENCH_DISCREPANCIES` sets the
//! discrepancies a run records (default 16,000, as on `make bench`'s 1M-row day): three quarters missing in
//! the ledger, a quarter amount mismatches, out of six times as many processor records.

// a bench that cannot prepare or record its run stops, loudly
#![allow(clippy::panic)]

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use recon_app::report;
use recon_core::{
    reconcile, Currency, ItemRules, Kind, LedgerFields, LedgerRow, LedgerStatus, LedgerType, Location, Money,
    Outcome, Processor, ProcessorRecord, ProcessorStatus, RecordFields, RunConfig, RunInput, RunSummary,
};
use recon_store::{DbConfig, NewRun, Store};
use std::collections::HashMap;

const DATABASE: &str = "recon_bench_write";
/// The day every measured run records (its first run, or a rerun superseding the one recorded before).
const DATE: NaiveDate = match NaiveDate::from_ymd_opt(2025, 6, 2) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// A day of `6 * d` charges whose every 8th record has no ledger row and every 24th (from the 4th) a ledger
/// amount one cent off: `d` discrepancies.
fn outcome(d: usize) -> Outcome {
    let usd = Currency::parse("USD").unwrap_or_else(|e| unreachable!("{e}"));
    let n = 6 * d;
    let (mut p, mut l) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let amount = Money::new(1000 + (i as i64 * 7919) % 100_000, usd);
        let ch = format!("ch_{i:020}");
        p.push(
            ProcessorRecord::try_from(RecordFields {
                id: format!("txn_{i:020}").into(),
                keys: [ch.clone(), format!("pi_{i:020}")].into_iter().collect(),
                reference: Some(format!("ord_{i}").into()),
                other_references: Default::default(),
                kind: Kind::Charge,
                amount,
                fee: None,
                net: None,
                status: ProcessorStatus::Succeeded,
                occurred_at: Some(1_748_822_400_000 + i as i64),
                location: Location {
                    object: 0,
                    line: i as u64 + 2,
                },
            })
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        if i % 8 != 0 {
            let booked = if i % 24 == 3 {
                Money::new(amount.minor + 1, usd)
            } else {
                amount
            };
            l.push(
                LedgerRow::try_from(LedgerFields {
                    ledger_id: format!("L-{i:09}").into(),
                    processor: Processor::Stripe,
                    processor_txn_id: Some(ch.into()),
                    order_id: Some(format!("ord_{i}").into()),
                    kind: LedgerType::Charge,
                    amount: booked,
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
    let objects = vec!["activity.csv".to_string(), "ledger.csv".to_string()];
    let config = RunConfig {
        grace_days: 0,
        ..RunConfig::default()
    };
    reconcile(RunInput {
        processor: Processor::Stripe,
        objects: &objects,
        records: &p,
        ledger: &l,
        invalid: &[],
        carried: &[],
        config: &config,
    })
    .unwrap_or_else(|e| unreachable!("the synthetic day conserves its records: {e}"))
}

/// Records `o` as a succeeded run of `date`, under a new run id and idempotency key.
async fn record(store: &Store, date: NaiveDate, o: &Outcome) {
    let id = uuid::Uuid::now_v7();
    let key = id.to_string();
    let summary = RunSummary::succeeded(key.clone(), o);
    let first_seen = HashMap::new();
    let new = NewRun {
        run_id: id,
        date,
        processor: Processor::Stripe,
        trigger: "cli",
        execution: Some(&key),
        idempotency_key: &key,
        grace_days: 0,
        summary: &summary,
        outcome: Some(o),
        manifests: serde_json::json!([]),
        report_keys: serde_json::json!({}),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        first_seen: &first_seen,
        unattributed: &[],
        rules: ItemRules::default(),
    };
    if let Err(e) = store.record_run(&new).await {
        panic!("recording the bench run failed: {e:?}");
    }
}

/// A connection to the server's `postgres` database (`DATABASE_URL`'s own may not exist yet).
async fn admin_client(url: &str) -> Result<tokio_postgres::Client, String> {
    let mut admin = DbConfig::from_url(url).map_err(|e| e.to_string())?;
    admin.pg.dbname("postgres");
    let (client, conn) = admin
        .pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

/// Runs `statements` one at a time on the server's `postgres` database (`CREATE DATABASE` and `DROP DATABASE`
/// cannot share a batch: it runs as one transaction).
async fn admin(url: &str, statements: &[String]) -> Result<(), String> {
    let client = admin_client(url).await?;
    for sql in statements {
        client
            .batch_execute(sql)
            .await
            .map_err(|e| format!("{sql}: {e:?}"))?;
    }
    Ok(())
}

/// The store on `name` of the server `url` names.
fn store_on(url: &str, name: &str) -> Result<Store, String> {
    let mut cfg = DbConfig::from_url(url).map_err(|e| e.to_string())?;
    cfg.pg.dbname(name);
    Store::new(&cfg).map_err(|e| e.to_string())
}

/// [`DATABASE`] as the template left it: dropped, then copied from `{DATABASE}_template` (migrated once), so
/// that every measured run finds the same database.
async fn fresh(url: &str) -> Result<Store, String> {
    admin(
        url,
        &[
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{DATABASE}_template'"),
            format!("CREATE DATABASE {DATABASE} TEMPLATE {DATABASE}_template"),
        ],
    )
    .await?;
    store_on(url, DATABASE)
}

/// Creates `{DATABASE}_template` (dropped first) with the schema migrated.
async fn template(url: &str) -> Result<(), String> {
    drop_databases(url).await?;
    admin(url, &[format!("CREATE DATABASE {DATABASE}_template")]).await?;
    store_on(url, &format!("{DATABASE}_template"))?
        .migrate()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}

async fn drop_databases(url: &str) -> Result<(), String> {
    admin(
        url,
        &[
            format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
            format!("DROP DATABASE IF EXISTS {DATABASE}_template WITH (FORCE)"),
        ],
    )
    .await
}

/// `RECON_BENCH_DISCREPANCIES`, 16,000 by default.
fn discrepancies() -> usize {
    std::env::var("RECON_BENCH_DISCREPANCIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16_000)
}

fn reports(c: &mut Criterion) {
    let d = discrepancies();
    let o = outcome(d);
    let summary = RunSummary::succeeded("01a2518c-a6a2-71ce-92d2-b30f90a5af97".into(), &o);
    let date = DATE.to_string();
    let mut g = c.benchmark_group("reports");
    g.sample_size(10);
    g.bench_function(format!("discrepancies.csv, {d} discrepancies"), |b| {
        b.iter(|| report::discrepancies_csv(&o.discrepancies))
    });
    g.bench_function(format!("report.html, {d} discrepancies"), |b| {
        b.iter(|| report::render_html(&date, &summary, Some(&o), &[], &[], None))
    });
    g.bench_function(format!("summary.json, {d} discrepancies"), |b| {
        b.iter(|| serde_json::to_vec_pretty(&summary))
    });
    g.finish();
}

fn record_runs(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("record: DATABASE_URL is not set, nothing measured (make bench-core sets it)");
        return;
    };
    let d = discrepancies();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    if let Err(e) = rt.block_on(template(&url)) {
        panic!("record: cannot prepare {DATABASE}_template on DATABASE_URL's server: {e}");
    }
    let ready = |earlier: Option<&Outcome>| {
        rt.block_on(async {
            let store = fresh(&url).await?;
            if let Some(o) = earlier {
                record(&store, DATE, o).await;
            }
            Ok::<Store, String>(store)
        })
        .unwrap_or_else(|e| panic!("record: cannot prepare {DATABASE}: {e}"))
    };
    let o = outcome(d);
    let mut g = c.benchmark_group("record");
    g.sample_size(10);
    // the store is handed back, so that closing its connections is not measured
    g.bench_function(format!("first run, {d} discrepancies"), |b| {
        b.iter_batched(
            || ready(None),
            |store| {
                rt.block_on(record(&store, DATE, &o));
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(format!("rerun, {d} discrepancies"), |b| {
        b.iter_batched(
            || ready(Some(&o)),
            |store| {
                rt.block_on(record(&store, DATE, &o));
                store
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    if let Err(e) = rt.block_on(drop_databases(&url)) {
        eprintln!("record: could not drop {DATABASE} and its template: {e}");
    }
}

criterion_group!(benches, reports, record_runs);
criterion_main!(benches);
