//! Days of Stripe and ledger files in a local store, run through the real pipeline (shared by the store and
//! items tests).

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use chrono::NaiveDate;
use recon_app::notify::OutboxMailer;
use recon_app::objects::LocalStore;
use recon_app::pipeline::{run_day, DayOptions, DayResult, NotifySettings};
use recon_app::Deps;
use recon_core::{Processor, RunConfig};
use recon_store::{DbConfig, Store};
use recon_tests::TestDb;

pub async fn store(db: &TestDb) -> Store {
    let s = Store::new(&DbConfig::from_url(&db.url).unwrap()).unwrap();
    s.migrate().await.unwrap();
    s
}

pub fn write(root: &Path, key: &str, text: &str) {
    let p = root.join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub const LEDGER_HEADER: &str =
    "ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n";
pub const STRIPE_HEADER: &str = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,charge_id,payment_intent_id,payment_metadata[order_id]\n";

/// Runs Stripe for `date` with `grace` days and the default item rules, no email.
pub async fn day(db: &Store, root: &Path, date: &str, grace: u32, execution: &str) -> DayResult {
    let config = RunConfig {
        grace_days: grace,
        ..RunConfig::default()
    };
    day_with(db, root, date, &config, execution, None).await
}

/// Runs Stripe for `date` with `config`; with `outbox`, the operations email goes there as `.eml`.
pub async fn day_with(
    db: &Store,
    root: &Path,
    date: &str,
    config: &RunConfig,
    execution: &str,
    outbox: Option<&Path>,
) -> DayResult {
    let objects = LocalStore::new(root);
    let deps = Deps {
        objects: &objects,
        db,
        config,
    };
    let opts = DayOptions {
        date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
        processors: vec![Processor::Stripe],
        trigger: recon_app::Trigger::Cli,
        execution: execution.into(),
        split_bytes: None,
        notify: outbox.map(|_| NotifySettings {
            min_severity: recon_core::Severity::High,
            from: "recon@example.com".into(),
            to: vec!["ops@example.com".into()],
        }),
    };
    let mailer = outbox.map(|d| OutboxMailer { dir: d.to_path_buf() });
    run_day(
        &deps,
        &recon_app::fetch::ApiSources::default(),
        mailer.as_ref(),
        &opts,
    )
    .await
    .unwrap()
}

/// A universe of transactions, each on the processor side on some day and in the ledger on some day
/// (either may be absent), written as the inbox of four days from 2025-01-15.
pub fn write_days(root: &Path, txns: &[(Option<u8>, Option<u8>, u32)]) {
    for d in 0..4u8 {
        let date = format!("2025-01-{}", 15 + d);
        let mut p = STRIPE_HEADER.to_string();
        let mut l = LEDGER_HEADER.to_string();
        for (k, &(pd, ld, cents)) in txns.iter().enumerate() {
            let amount = format!("{}.{:02}", 100 + cents / 100, cents % 100);
            if pd == Some(d) {
                p.push_str(&format!(
                    "txn_{k},{date} 10:00:00,usd,{amount},0,{amount},charge,ch_{k},ch_{k},pi_{k},o{k}\n"
                ));
            }
            if ld == Some(d) {
                l.push_str(&format!(
                    "L{k},stripe,ch_{k},o{k},charge,{amount},USD,captured,{date}T10:00:00Z\n"
                ));
            }
        }
        write(root, &format!("inbox/stripe/{date}/p.csv"), &p);
        write(root, &format!("inbox/ledger/{date}/l.csv"), &l);
    }
}

/// A one-shot SQL query's first column.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    let (c, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.query_one(sql, &[]).await.unwrap().get(0)
}
