//! What the steps hand each other through Step Functions stays small whatever the day's size (spec section 2:
//! states pass S3 keys and counts; a state's input or output is limited to 256 KiB). A 10,000-page Stripe day
//! through the fetch and match steps on a local store: the fetch returns its manifest's reference (key,
//! sha256, counts), never the object list, and the match reads the manifest from the store, refusing one that
//! changed or that is not the fetch's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::NaiveDate;
use recon_app::keys::Source;
use recon_app::steps::fetch::{fetch, FetchInput};
use recon_app::steps::r#match::{match_step, ManifestInput, MatchInput, MatchOutput};
use recon_core::{Processor, RunStatus};
use recon_tests::local::ports;
use recon_tests::TestDb;

const PAGES: usize = 10_000;
/// The most a fetch's answer may weigh: far below 256 KiB, and the same for one page or ten thousand.
const SMALL: usize = 1024;

/// A Stripe day of `pages` pages of one charge each in the inbox, and the ledger booking each charge.
fn paged_day(root: &std::path::Path, date: NaiveDate, pages: usize) {
    let stripe = root.join(format!("inbox/stripe/{date}"));
    let ledger = root.join(format!("inbox/ledger/{date}"));
    std::fs::create_dir_all(&stripe).unwrap();
    std::fs::create_dir_all(&ledger).unwrap();
    let start = date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let mut csv =
        String::from("ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n");
    for n in 1..=pages {
        let created = start + n as i64;
        let page = serde_json::json!({
            "object": "list", "url": "/v1/balance_transactions", "has_more": n < pages,
            "data": [{
                "id": format!("txn_1Pg{n:07}"), "object": "balance_transaction", "amount": 1000 + n as i64,
                "available_on": created + 86_400, "balance_type": "payments", "created": created,
                "currency": "usd", "description": null, "exchange_rate": null, "fee": 0, "fee_details": [],
                "net": 1000 + n as i64, "reporting_category": "charge", "source": format!("ch_1Pg{n:07}"),
                "status": "available", "type": "charge"
            }]
        });
        let name = stripe.join(format!("balance_transactions-page-{n:05}.json"));
        std::fs::write(name, serde_json::to_vec(&page).unwrap()).unwrap();
        let booked = chrono::DateTime::from_timestamp(created, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let amount = 1000 + n;
        csv += &format!(
            "L-{n:07},stripe,ch_1Pg{n:07},ord_{n},charge,{}.{:02},USD,captured,{booked}\n",
            amount / 100,
            amount % 100
        );
    }
    std::fs::write(ledger.join("ledger.csv"), csv).unwrap();
}

#[tokio::test]
async fn a_ten_thousand_page_day_passes_keys_and_counts_between_steps() {
    let date = NaiveDate::from_ymd_opt(2025, 2, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    paged_day(dir.path(), date, PAGES);
    let db = TestDb::new().await;
    let ports = ports(dir.path(), Some(db.store()));
    let input = |p: &str| FetchInput {
        date: Some(date),
        processor: Some(p.into()),
        source: None,
    };
    let stripe = fetch(&ports, Source::Stripe, input("stripe"), None)
        .await
        .unwrap();
    let ledger = fetch(&ports, Source::Ledger, input("ledger"), None)
        .await
        .unwrap();
    assert_eq!(
        (stripe.object_count, stripe.record_count),
        (PAGES as u64, PAGES as u64)
    );
    for out in [&stripe, &ledger] {
        let size = serde_json::to_vec(out).unwrap().len();
        assert!(
            size <= SMALL,
            "a fetch answered {size} bytes for {PAGES} pages: {out:?}"
        );
    }

    let match_input = MatchInput {
        date,
        processor: Processor::Stripe,
        manifests: vec![
            Some(ManifestInput::Ref(stripe.clone())),
            Some(ManifestInput::Ref(ledger.clone())),
        ],
        error: None,
        execution: Some("payloads".into()),
        trigger: None,
        partition: None,
        partitions: None,
        split: None,
    };
    let size = serde_json::to_vec(&match_input).unwrap().len();
    assert!(size <= 2 * SMALL, "the match input is {size} bytes");
    let run = match match_step(&ports, match_input.clone()).await.unwrap() {
        MatchOutput::Run(run) => run,
        other => panic!("expected a run, got {other:?}"),
    };
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        (run.processor_count, run.matched_count),
        (PAGES as u64, PAGES as u64),
        "{run:?}"
    );
    let size = serde_json::to_vec(&run).unwrap().len();
    assert!(size <= 4 * SMALL, "the match output is {size} bytes");

    // the manifest changed after the fetch: refused, naming it
    let key = dir.path().join(&stripe.manifest_key);
    let original = std::fs::read(&key).unwrap();
    let mut body = original.clone();
    body.extend_from_slice(b"\n");
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, body).unwrap();
    let mut changed = match_input.clone();
    changed.execution = Some("payloads-changed".into());
    let run = match match_step(&ports, changed).await.unwrap() {
        MatchOutput::Run(run) => run,
        other => panic!("expected a run, got {other:?}"),
    };
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains(&stripe.manifest_key) && error.contains("sha256"),
        "{error}"
    );

    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, original).unwrap();

    // a reference whose key is outside its fetch's folder: refused, nothing outside is read
    let mut elsewhere = match_input;
    elsewhere.execution = Some("payloads-elsewhere".into());
    let mut forged = ledger.clone();
    forged.manifest_key = "../../etc/manifest.json".into();
    elsewhere.manifests[1] = Some(ManifestInput::Ref(forged));
    let run = match match_step(&ports, elsewhere).await.unwrap() {
        MatchOutput::Run(run) => run,
        other => panic!("expected a run, got {other:?}"),
    };
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.unwrap_or_default();
    assert!(error.contains("is not raw/ledger/2025-02-03/"), "{error}");
}
