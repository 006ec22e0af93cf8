//! The store against a real PostgreSQL: migrations, one run per idempotency key, supersede with history,
//! carry-forward across days, exact per-currency totals.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use chrono::NaiveDate;
use common::{count, day, store, write, write_days, LEDGER_HEADER, STRIPE_HEADER};
use recon_core::{Processor, RunStatus};
use recon_store::{DbConfig, Store};
use recon_tests::TestDb;

#[tokio::test]
async fn migrations_apply_once() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    assert!(
        s.migrate().await.unwrap().is_empty(),
        "second migrate applies nothing"
    );
    let n = count(&db, "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('reconciliation_runs','discrepancies','run_currency_totals')").await;
    assert_eq!(n, 3);
}

#[tokio::test]
async fn same_execution_records_one_run_and_reruns_supersede() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "inbox/stripe/2025-01-15/a.csv", &format!("{STRIPE_HEADER}txn_1,2025-01-15 10:00:00,usd,10.00,0.59,9.41,charge,ch_1,ch_1,pi_1,o1\ntxn_2,2025-01-15 11:00:00,jpy,1200,0,1200,charge,ch_2,ch_2,pi_2,o2\n"));
    write(
        dir.path(),
        "inbox/ledger/2025-01-15/l.csv",
        &format!("{LEDGER_HEADER}L1,stripe,ch_1,o1,charge,10.01,USD,captured,2025-01-15T10:00:00Z\n"),
    );
    let a = day(&s, dir.path(), "2025-01-15", 0, "exec-1").await;
    let b = day(&s, dir.path(), "2025-01-15", 0, "exec-1").await; // a Step Functions retry
    assert_eq!(a.summary.runs[0].run_id, b.summary.runs[0].run_id);
    assert!(b.runs[0].replayed);
    assert_eq!(count(&db, "SELECT count(*) FROM reconciliation_runs").await, 1);
    let c = day(&s, dir.path(), "2025-01-15", 0, "exec-2").await; // a new run of the same day
    assert_ne!(a.summary.runs[0].run_id, c.summary.runs[0].run_id);
    assert_eq!(count(&db, "SELECT count(*) FROM reconciliation_runs").await, 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM reconciliation_runs WHERE status <> 'superseded'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM reconciliation_runs WHERE superseded_by IS NOT NULL"
        )
        .await,
        1
    );
    // exact per-currency totals: 0.01 USD amount mismatch, 1200 JPY missing in ledger
    let (cl, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = cl
        .query("SELECT currency, t.total_discrepancy_amount::text FROM run_currency_totals t JOIN reconciliation_runs r ON r.id = t.run_id WHERE r.status = 'succeeded' ORDER BY currency", &[])
        .await
        .unwrap();
    let totals: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        totals,
        vec![("JPY".into(), "1200".into()), ("USD".into(), "0.01".into())]
    );
    let seed = cl
        .query_one("SELECT processor_name, missing_transaction_count, total_discrepancy_amount::text FROM reconciliation_runs WHERE status = 'succeeded'", &[])
        .await
        .unwrap();
    assert_eq!(seed.get::<_, String>(0), "stripe");
    assert_eq!(seed.get::<_, i64>(1), 1);
    assert_eq!(seed.get::<_, String>(2), r#"{"JPY": "1200", "USD": "0.01"}"#);
}

/// A failed attempt never displaces the day's succeeded run: it is kept in history (superseded by the good
/// run at once, its error kept), and a later good run replaces the current one as before.
#[tokio::test]
async fn a_failed_attempt_never_displaces_a_succeeded_run() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let stripe =
        format!("{STRIPE_HEADER}txn_1,2025-01-15 10:00:00,usd,10.00,0.59,9.41,charge,ch_1,ch_1,pi_1,o1\n");
    write(dir.path(), "inbox/stripe/2025-01-15/a.csv", &stripe);
    let ledger = "inbox/ledger/2025-01-15/l.csv";
    let rows = format!("{LEDGER_HEADER}L1,stripe,ch_1,o1,charge,10.00,USD,captured,2025-01-15T10:00:00Z\n");
    write(dir.path(), ledger, &rows);
    let good = day(&s, dir.path(), "2025-01-15", 0, "exec-1").await;
    assert_eq!(good.summary.runs[0].status, RunStatus::Succeeded);
    // the ledger goes missing: the next attempt fails
    std::fs::remove_file(dir.path().join(ledger)).unwrap();
    let failed = day(&s, dir.path(), "2025-01-15", 0, "exec-2").await;
    assert_eq!(failed.summary.runs[0].status, RunStatus::Failed);
    let current = format!(
        "SELECT count(*) FROM reconciliation_runs WHERE status <> 'superseded' AND id = '{}'",
        good.summary.runs[0].run_id
    );
    assert_eq!(count(&db, &current).await, 1, "the succeeded run stays current");
    let kept = format!(
        "SELECT count(*) FROM reconciliation_runs WHERE id = '{}' AND status = 'superseded' AND error IS NOT NULL
           AND superseded_by = '{}'",
        failed.summary.runs[0].run_id, good.summary.runs[0].run_id
    );
    assert_eq!(
        count(&db, &kept).await,
        1,
        "the failed attempt is kept, behind the good run"
    );
    // a later good run replaces the current one as before
    write(dir.path(), ledger, &rows);
    let again = day(&s, dir.path(), "2025-01-15", 0, "exec-3").await;
    let current = format!(
        "SELECT count(*) FROM reconciliation_runs WHERE status = 'succeeded' AND id = '{}'",
        again.summary.runs[0].run_id
    );
    assert_eq!(count(&db, &current).await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM reconciliation_runs WHERE status <> 'superseded'"
        )
        .await,
        1
    );
}

/// Records a succeeded run of stripe on 2025-01-15 whose inputs were fetched at `fetched_at`, as the match
/// step would (an empty outcome: the figures do not matter here, only which run is current).
async fn record_with_input(s: &Store, key: &str, fetched_at: &str) -> (uuid::Uuid, recon_store::Recorded) {
    let o = recon_core::merge(Processor::Stripe, Vec::new());
    let id = uuid::Uuid::now_v7();
    let summary = recon_core::RunSummary::succeeded(id.to_string(), &o);
    let first_seen = std::collections::HashMap::new();
    let new = recon_store::NewRun {
        run_id: id,
        date: NaiveDate::from_ymd_opt(2025, 1, 15).unwrap(),
        processor: Processor::Stripe,
        trigger: "s3",
        execution: Some(key),
        idempotency_key: key,
        grace_days: 0,
        summary: &summary,
        outcome: Some(&o),
        manifests: serde_json::json!([
            {"source_name": "stripe", "fetched_at": fetched_at},
            {"source_name": "ledger", "fetched_at": "2025-01-16T06:00:00.000Z"}
        ]),
        report_keys: serde_json::json!({}),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        first_seen: &first_seen,
        unattributed: &[],
        rules: recon_core::ItemRules::default(),
    };
    (id, s.record_run(&new).await.unwrap())
}

/// Two executions of one day finishing in the other order (a drop of page 1 alone, then of the whole day a
/// second later): the run made from the newest input is current, whichever records last; the older one is kept
/// as history behind it at once.
#[tokio::test]
async fn the_run_of_the_newest_input_is_current_whatever_order_runs_record_in() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let (complete, _) = record_with_input(&s, "exec-complete", "2025-01-16T06:10:01.000Z").await;
    let (partial, recorded) = record_with_input(&s, "exec-partial", "2025-01-16T06:10:00.000Z").await;
    assert_eq!(
        recorded,
        recon_store::Recorded::Attempt {
            run_id: partial,
            current: complete
        }
    );
    let current = count(
        &db,
        &format!(
            "SELECT count(*) FROM reconciliation_runs WHERE status <> 'superseded' AND id = '{complete}'"
        ),
    )
    .await;
    assert_eq!(current, 1, "the run of the newest input stays current");
    // a run of still newer input replaces it as usual
    let (newest, recorded) = record_with_input(&s, "exec-later", "2025-01-16T07:00:00.000Z").await;
    assert_eq!(
        recorded,
        recon_store::Recorded::New {
            run_id: newest,
            superseded: Some(complete)
        }
    );
}

#[tokio::test]
async fn pending_items_carry_forward_and_resolve_as_timing_differences() {
    let db = TestDb::new().await;
    let s = store(&db).await;
    let dir = tempfile::tempdir().unwrap();
    // day 1: the ledger books ch_2 that Stripe reports only the next day; ch_3 never arrives
    write(
        dir.path(),
        "inbox/stripe/2025-01-14/a.csv",
        &format!("{STRIPE_HEADER}txn_1,2025-01-14 10:00:00,usd,10.00,0.59,9.41,charge,ch_1,ch_1,pi_1,o1\n"),
    );
    write(dir.path(), "inbox/ledger/2025-01-14/l.csv", &format!("{LEDGER_HEADER}L1,stripe,ch_1,o1,charge,10.00,USD,captured,2025-01-14T10:00:00Z\nL2,stripe,ch_2,o2,charge,20.00,USD,captured,2025-01-14T23:59:00Z\nL3,stripe,ch_3,o3,charge,30.00,USD,captured,2025-01-14T23:59:30Z\n"));
    write(
        dir.path(),
        "inbox/stripe/2025-01-15/a.csv",
        &format!("{STRIPE_HEADER}txn_2,2025-01-15 00:00:10,usd,20.00,0.88,19.12,charge,ch_2,ch_2,pi_2,o2\n"),
    );
    write(dir.path(), "inbox/ledger/2025-01-15/l.csv", LEDGER_HEADER);
    let d1 = day(&s, dir.path(), "2025-01-14", 1, "e1").await;
    let r1 = &d1.summary.runs[0];
    assert_eq!(r1.status, RunStatus::Succeeded);
    assert_eq!(r1.discrepancy_counts.pending, 2);
    assert_eq!(r1.discrepancy_counts.missing_in_processor, 0);
    let d2 = day(&s, dir.path(), "2025-01-15", 1, "e2").await;
    let r2 = &d2.summary.runs[0];
    assert_eq!(r2.matched_count, 1, "{r2:?}");
    assert_eq!(r2.clean_count, 1);
    assert_eq!(
        r2.discrepancy_counts.missing_in_processor, 1,
        "ch_3 is escalated after its grace day"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM discrepancies WHERE resolution = 'timing_difference' AND lifecycle = 'resolved'").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM discrepancies WHERE resolution = 'escalated'"
        )
        .await,
        1
    );
    // rerunning day 2 reopens what the superseded run had resolved and takes it again: same figures
    let d2b = day(&s, dir.path(), "2025-01-15", 1, "e3").await;
    assert_eq!(d2b.summary.runs[0].matched_count, 1);
    assert_eq!(d2b.summary.runs[0].discrepancy_counts.missing_in_processor, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM discrepancies WHERE lifecycle = 'pending'"
        )
        .await,
        0
    );
}

/// The figures of one day's current run that must not depend on the history of reruns.
fn figures(r: &recon_core::RunSummary) -> String {
    format!(
        "{} p={} l={} m={} c={} {:?} {:?} {:?}",
        r.processor,
        r.processor_count,
        r.ledger_count,
        r.matched_count,
        r.clean_count,
        r.discrepancy_counts,
        r.total_discrepancy_amount,
        r.severity
    )
}

async fn current_figures(db: &TestDb, s: &Store, days: u8) -> Vec<String> {
    let _ = db;
    let mut out = Vec::new();
    for d in 0..days {
        let date = NaiveDate::from_ymd_opt(2025, 1, 15 + u32::from(d)).unwrap();
        let runs = s
            .list_runs(Some(date), Some(Processor::Stripe), 50)
            .await
            .unwrap();
        let current: Vec<_> = runs
            .iter()
            .filter(|r| r.status != recon_store::RunState::Superseded)
            .collect();
        assert_eq!(current.len(), 1, "one current run of {date}");
        let summary: recon_core::RunSummary =
            serde_json::from_value(current[0].summary.clone().unwrap()).unwrap();
        out.push(format!("{date} {}", figures(&summary)));
    }
    out
}

#[tokio::test]
async fn rerunning_an_older_day_leaves_later_days_figures_alone() {
    // the faults issue's reproduction: run 15th, 16th, rerun 15th, run 17th (one clean pair), grace 1
    let txns = [
        (Some(0), Some(1), 250_000), // charged on the 15th, booked on the 16th: timing
        (None, Some(0), 145_000),    // booked on the 15th, never charged: escalated on the 16th
        (Some(2), Some(2), 1_000),   // the 17th's clean pair
    ];
    let reference = {
        let db = TestDb::new().await;
        let s = store(&db).await;
        let dir = tempfile::tempdir().unwrap();
        write_days(dir.path(), &txns);
        for (i, d) in ["2025-01-15", "2025-01-16", "2025-01-17"].iter().enumerate() {
            day(&s, dir.path(), d, 1, &format!("ref-{i}")).await;
        }
        current_figures(&db, &s, 3).await
    };
    let db = TestDb::new().await;
    let s = store(&db).await;
    let dir = tempfile::tempdir().unwrap();
    write_days(dir.path(), &txns);
    day(&s, dir.path(), "2025-01-15", 1, "e1").await;
    day(&s, dir.path(), "2025-01-16", 1, "e2").await;
    day(&s, dir.path(), "2025-01-15", 1, "e3").await; // rerun of an older day
    let r17 = day(&s, dir.path(), "2025-01-17", 1, "e4").await;
    assert_eq!(
        r17.summary.runs[0].total_discrepancy_amount,
        std::collections::BTreeMap::new(),
        "the 17th has one clean pair and nothing at stake"
    );
    assert_eq!(current_figures(&db, &s, 3).await, reference);
    day(&s, dir.path(), "2025-01-16", 1, "e5").await; // and rerunning the 16th afterwards
    day(&s, dir.path(), "2025-01-17", 1, "e6").await;
    assert_eq!(current_figures(&db, &s, 3).await, reference);
    // nothing stays pending in a superseded run, and the view shows current runs only
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM discrepancies d JOIN reconciliation_runs r ON r.id = d.run_id
             WHERE r.status = 'superseded' AND d.lifecycle = 'pending'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM missing_transactions m JOIN reconciliation_runs r ON r.id = m.run_id
             WHERE r.status = 'superseded'"
        )
        .await,
        0
    );
}

/// Any sequence of runs and reruns over four days (each day first run in date order, reruns of any day
/// already run interleaved) leaves every day's current figures equal to running the days once in order.
#[test]
fn reruns_in_any_sequence_give_the_figures_of_one_pass_in_date_order() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let txn = (prop::option::of(0u8..4), prop::option::of(0u8..4), 0u32..3);
    let strategy = (
        prop::collection::vec(txn, 1..8),
        prop::collection::vec(prop::collection::vec(0u8..4, 0..3), 4),
        0u32..3,
    );
    runner
        .run(&strategy, |(txns, reruns, grace)| {
            rt.block_on(async {
                let reference = {
                    let db = TestDb::new().await;
                    let s = store(&db).await;
                    let dir = tempfile::tempdir().unwrap();
                    write_days(dir.path(), &txns);
                    for d in 0..4u8 {
                        day(
                            &s,
                            dir.path(),
                            &format!("2025-01-{}", 15 + d),
                            grace,
                            &format!("r{d}"),
                        )
                        .await;
                    }
                    current_figures(&db, &s, 4).await
                };
                let db = TestDb::new().await;
                let s = store(&db).await;
                let dir = tempfile::tempdir().unwrap();
                write_days(dir.path(), &txns);
                let mut n = 0;
                for d in 0..4u8 {
                    day(
                        &s,
                        dir.path(),
                        &format!("2025-01-{}", 15 + d),
                        grace,
                        &format!("x{n}"),
                    )
                    .await;
                    n += 1;
                    for &e in &reruns[d as usize] {
                        let e = e.min(d); // only days already run
                        day(
                            &s,
                            dir.path(),
                            &format!("2025-01-{}", 15 + e),
                            grace,
                            &format!("x{n}"),
                        )
                        .await;
                        n += 1;
                    }
                }
                let got = current_figures(&db, &s, 4).await;
                prop_assert_eq!(
                    got,
                    reference,
                    "txns {:?} reruns {:?} grace {}",
                    &txns,
                    &reruns,
                    grace
                );
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test]
async fn a_statement_timeout_and_a_terminated_connection_are_retryable() {
    let db = TestDb::new().await;
    let plain = store(&db).await;
    let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);

    // a statement cancelled by statement_timeout (57014) while another transaction holds the table
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20statement_timeout%3D300", db.url);
    let timed = Store::new(&DbConfig::from_url(&url).unwrap()).unwrap();
    c.batch_execute("BEGIN; LOCK TABLE reconciliation_runs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let err = timed.find_by_key("k").await.expect_err("the statement times out");
    assert!(err.is_retryable(), "{err}");
    c.batch_execute("ROLLBACK").await.unwrap();

    // the server ends the session under it (pg_terminate_backend, a fast shutdown)
    assert!(plain.find_by_key("k").await.is_ok());
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap();
    // the pool may notice the closed connection and open a new one (then the query succeeds); when the query
    // meets the dead session, the error is retryable
    if let Err(err) = plain.find_by_key("k").await {
        assert!(err.is_retryable(), "{err}");
    }
    assert!(recon_store::retryable_sqlstate("57P01") && recon_store::retryable_sqlstate("08006"));
    assert!(!recon_store::retryable_sqlstate("22P02"));
}

/// A database that accepts connections but never answers: the store gives up within its connect timeout with
/// a retryable error (Step Functions retries; the Lambda never hangs until it is killed).
#[tokio::test]
async fn a_database_that_never_answers_is_a_retryable_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // accept and hold every connection, answering nothing
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            open.push(sock);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/recon");
    let s = Store::new(&DbConfig::from_url(&url).unwrap()).unwrap();
    // a bound on the test itself, far above the store's own timeout: without the timeout this never returns
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), s.list_runs(None, None, 1)).await;
    let err = out.expect("the store gave up by itself").unwrap_err();
    assert!(err.is_retryable(), "{err}");
    held.abort();
}
