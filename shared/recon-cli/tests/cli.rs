//! The built `recon` binary on fixture stores, against a real PostgreSQL (a fresh database per test).
//!
//! One file, over 400 lines: every test drives the same binary over the same kind of store; grouped by
//! command (run, runs, show, migrate) and by what is refused.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use recon_tests::TestDb;
use serde_json::Value;

const RECON: &str = env!("CARGO_BIN_EXE_recon");

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

fn demo_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/demo");
    copy_dir(&demo, dir.path());
    dir
}

fn write(root: &Path, key: &str, bytes: &[u8]) {
    let p = root.join(key);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn recon(db: &TestDb, store: &Path, args: &[&str]) -> Output {
    Command::new(RECON)
        .args([
            "run",
            "--store",
            store.to_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .args(args)
        .env("RECON_OUTBOX", store.join("outbox"))
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn assert_conservation(run: &Value) {
    let c = &run["discrepancy_counts"];
    assert!(n(run, "processor_count") >= n(run, "matched_count") + n(c, "missing_in_ledger"));
    assert!(n(run, "ledger_count") >= n(run, "matched_count") + n(c, "missing_in_processor"));
    let dups = n(c, "duplicate");
    let extra = n(run, "processor_count") - n(run, "matched_count") - n(c, "missing_in_ledger")
        + n(run, "ledger_count")
        - n(run, "matched_count")
        - n(c, "missing_in_processor");
    let not_settled = run["excluded_counts"]["not_settled"].as_u64().unwrap_or(0);
    assert_eq!(
        extra,
        dups + n(c, "pending") + not_settled,
        "conservation in {run}"
    );
}

const KEYS: [&str; 8] = [
    "missing_in_ledger",
    "missing_in_processor",
    "amount_mismatch",
    "currency_mismatch",
    "status_mismatch",
    "duplicate",
    "invalid_record",
    "pending",
];

#[tokio::test]
async fn demo_day_prints_the_summary_json_with_every_category() {
    let db = TestDb::new().await;
    let store = demo_store();
    let out = recon(
        &db,
        store.path(),
        &[
            "--date",
            "2025-01-15",
            "--processors",
            "stripe",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["date"], "2025-01-15");
    assert_eq!(v["unattributed_invalid_records"], 1);
    let run = &v["runs"][0];
    for k in [
        "run_id",
        "processor",
        "status",
        "severity",
        "processor_count",
        "ledger_count",
        "matched_count",
        "clean_count",
        "discrepancy_counts",
        "total_discrepancy_amount",
        "excluded_counts",
        "error",
    ] {
        assert!(run.get(k).is_some(), "{k} missing");
    }
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["error"], Value::Null);
    for k in &KEYS[..7] {
        assert!(n(&run["discrepancy_counts"], k) > 0, "{k} is zero in the demo");
    }
    assert_eq!(run["total_discrepancy_amount"]["USD"], "4478.00");
    assert_eq!(run["excluded_counts"]["payout"], 1);
    assert_conservation(run);
    // the reports exist where the layout says
    let id = run["run_id"].as_str().unwrap();
    for f in ["summary.json", "discrepancies.csv", "report.html"] {
        assert!(
            store
                .path()
                .join(format!("reports/2025-01-15/stripe/{id}/{f}"))
                .is_file(),
            "{f}"
        );
    }
    // raw inputs are byte-identical copies, with their sha256 in the manifest
    let raw = std::fs::read_dir(store.path().join("raw/stripe/2025-01-15"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: Value = serde_json::from_slice(&std::fs::read(raw.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"], "file");
    for o in manifest["objects"].as_array().unwrap() {
        let staged = std::fs::read(store.path().join(o["key"].as_str().unwrap())).unwrap();
        let original = std::fs::read(store.path().join(o["origin"].as_str().unwrap())).unwrap();
        assert_eq!(staged, original);
        assert_eq!(o["sha256"].as_str().unwrap().len(), 64);
    }
}

#[tokio::test]
async fn running_twice_leaves_one_current_run_and_the_table_names_the_report() {
    let db = TestDb::new().await;
    let store = demo_store();
    for _ in 0..2 {
        let out = recon(
            &db,
            store.path(),
            &[
                "--date",
                "2025-01-15",
                "--processors",
                "stripe",
                "--grace-days",
                "0",
            ],
        );
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("stripe") && text.contains("CRITICAL"), "{text}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("report.html"));
    }
    // an email was written to the outbox (CRITICAL >= HIGH), with both parts
    let eml = std::fs::read_dir(store.path().join("outbox"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mail = std::fs::read_to_string(eml).unwrap();
    assert!(
        mail.contains("multipart/alternative") && mail.contains("text/html") && mail.contains("text/plain")
    );
    assert!(mail.contains("Subject: [recon] 2025-01-15"));
    let runs = Command::new(RECON)
        .args(["runs", "--database-url", &db.url, "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&runs.stdout).unwrap();
    let current: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "superseded")
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(v.as_array().unwrap().len(), 2);
    let show = Command::new(RECON)
        .args([
            "show",
            current[0]["run_id"].as_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("missing_in_processor"));
}

#[tokio::test]
async fn a_truncated_page_fails_only_that_processor_naming_the_object() {
    let db = TestDb::new().await;
    let store = demo_store();
    let page = store
        .path()
        .join("inbox/stripe/2025-01-15/balance_transactions-page-00002.json");
    let text = std::fs::read(&page).unwrap();
    std::fs::write(&page, &text[..text.len() / 2]).unwrap();
    // paypal's inbox holds a Stripe page by mistake: its run fails for its own reason, independently
    write(
        store.path(),
        "inbox/paypal/2025-01-15/report.json",
        b"{\"object\":\"list\",\"data\":[]}",
    );
    let out = recon(
        &db,
        store.path(),
        &[
            "--date",
            "2025-01-15",
            "--processors",
            "stripe,paypal",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let stripe = &v["runs"][0];
    assert_eq!(stripe["status"], "failed");
    assert_eq!(stripe["severity"], Value::Null);
    let err = stripe["error"].as_str().unwrap();
    assert!(
        err.contains("raw/stripe/2025-01-15/")
            && err.contains("page-00002.json")
            && err.contains("truncated"),
        "{err}"
    );
    for k in KEYS {
        assert_eq!(stripe["discrepancy_counts"][k], 0);
    }
    assert_eq!(stripe["processor_count"], 0);
    assert_eq!(v["runs"][1]["processor"], "paypal");
    let perr = v["runs"][1]["error"].as_str().unwrap();
    assert!(
        perr.contains("inbox/paypal") || perr.contains("raw/paypal"),
        "{perr}"
    );
    assert!(perr.contains("not paypal data"), "{perr}");
}

#[tokio::test]
async fn bad_ledger_rows_become_invalid_records_and_the_rest_is_reconciled() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "inbox/stripe/2025-06-02/activity.csv", b"balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,charge_id,payment_intent_id,description,payment_metadata[order_id]\n\
txn_1,2025-06-02 00:00:00,2025-06-04 00:00:00,usd,26.12,1.05,25.07,charge,ch_1,ch_1,pi_1,\"Order 1042, express shipping\",ord_1\n\
txn_2,2025-06-02 00:00:01,2025-06-04 00:00:00,jpy,4000,144,3856,charge,ch_2,ch_2,pi_2,,ord_2\n\
txn_3,2025-06-02 00:00:02,2025-06-03 00:00:00,usd,-11.75,0.00,-11.75,refund,re_3,ch_old,,,ord_3\n\
txn_4,2025-06-02 00:00:03,2025-06-03 00:00:00,usd,-500.00,0.00,-500.00,payout,po_4,,,STRIPE PAYOUT,\n");
    write(
        dir.path(),
        "inbox/ledger/2025-06-02/ledger.csv",
        "\u{feff}ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\r\n\
L-1,stripe,ch_1,ord_1,charge,26.12,USD,captured,2025-06-02T00:00:38Z\r\n\
L-2,stripe,pi_2,ord_2,charge,4000,JPY,captured,2025-06-02T00:01:00Z\r\n\
L-3,stripe,re_3,ord_3,refund,-11.75,USD,refunded,2025-06-02T00:02:00Z\r\n\
L-4,stripe,ch_9,ord_9,charge,1O.00,USD,captured,2025-06-02T00:03:00Z\r\n\
L-5,stripe,ch_8,ord_8,charge,10.00,usd,captured,2025-06-02T00:04:00Z\r\n\
L-6,stripe,ch_7,ord_7,charge\r\n"
            .as_bytes(),
    );
    let out = recon(
        &db,
        dir.path(),
        &[
            "--date",
            "2025-06-02",
            "--processors",
            "stripe",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = &json(&out)["runs"][0];
    assert_eq!(run["processor_count"], 3);
    assert_eq!(run["ledger_count"], 3);
    assert_eq!(run["matched_count"], 3);
    assert_eq!(run["clean_count"], 3);
    assert_eq!(run["discrepancy_counts"]["invalid_record"], 3);
    assert_eq!(run["excluded_counts"]["payout"], 1);
    assert_eq!(run["severity"], "HIGH");
    let csv = std::fs::read_to_string(dir.path().join(format!(
        "reports/2025-06-02/stripe/{}/discrepancies.csv",
        run["run_id"].as_str().unwrap()
    )))
    .unwrap();
    assert!(
        csv.contains("ledger.csv:5"),
        "line numbers count the header and CRLF lines: {csv}"
    );
    assert!(csv.contains("1O.00"), "raw text kept: {csv}");
}

#[tokio::test]
async fn unknown_format_fails_the_processor_and_names_the_file() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "inbox/stripe/2025-06-02/notes.txt",
        b"hello,world\n1,2\n",
    );
    write(
        dir.path(),
        "inbox/ledger/2025-06-02/ledger.csv",
        b"ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n",
    );
    let out = recon(
        &db,
        dir.path(),
        &[
            "--date",
            "2025-06-02",
            "--processors",
            "stripe",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = json(&out)["runs"][0]["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("notes.txt") && err.contains("unknown format"),
        "{err}"
    );
}

#[tokio::test]
async fn demo_day_reconciles_all_three_processors_from_api_pages_and_report_files() {
    let db = TestDb::new().await;
    let store = demo_store();
    let out = recon(
        &db,
        store.path(),
        &[
            "--date",
            "2025-01-15",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let runs = v["runs"].as_array().unwrap();
    let by = |p: &str| {
        runs.iter()
            .find(|r| r["processor"] == p)
            .unwrap_or_else(|| panic!("no {p} run"))
    };
    for r in runs {
        assert_eq!(r["status"], "succeeded");
        assert_conservation(r);
    }
    // PayPal settlement report: JPY in hundredths matched by the fallback, EUR amount mismatch
    let paypal = by("paypal");
    assert_eq!(
        (
            n(paypal, "processor_count"),
            n(paypal, "matched_count"),
            n(paypal, "clean_count")
        ),
        (5, 4, 3)
    );
    assert_eq!(
        paypal["total_discrepancy_amount"],
        serde_json::json!({"EUR": "9.00", "USD": "710.00"})
    );
    assert_eq!(paypal["excluded_counts"]["payout"], 1);
    // Square pages from two locations plus refunds (negated), a failed payment booked as captured, a
    // double booking
    let square = by("square");
    assert_eq!(
        (
            n(square, "processor_count"),
            n(square, "ledger_count"),
            n(square, "matched_count")
        ),
        (5, 6, 5)
    );
    assert_eq!(square["discrepancy_counts"]["status_mismatch"], 1);
    assert_eq!(square["discrepancy_counts"]["duplicate"], 1);
    assert_eq!(square["severity"], "CRITICAL");
    assert_eq!(square["total_discrepancy_amount"]["USD"], "12594.00");
}

#[tokio::test]
async fn apis_are_fetched_when_the_inbox_is_empty_and_a_bad_key_fails_only_its_processor() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    let page = r#"{"object":"list","url":"/v1/balance_transactions","has_more":false,"data":[{"id":"txn_1","object":"balance_transaction","amount":12500,"available_on":1737072000,"balance_type":"payments","created":1736935200,"currency":"usd","description":null,"exchange_rate":null,"fee":393,"fee_details":[],"net":12107,"reporting_category":"charge","source":{"id":"ch_1","object":"charge","payment_intent":"pi_1","metadata":{"order_id":"ord_1"},"status":"succeeded"},"status":"available","type":"charge"}]}"#;
    Mock::given(method("GET"))
        .and(path("/v1/balance_transactions"))
        .respond_with(ResponseTemplate::new(200).set_body_string(page))
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path("/v2/locations"))
        .respond_with(ResponseTemplate::new(401).set_body_string(r#"{"errors":[{"category":"AUTHENTICATION_ERROR","code":"UNAUTHORIZED","detail":"This request could not be authorized."}]}"#))
        .mount(&server).await;
    Mock::given(method("GET")).and(path("/ledger/entries"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"ledger_id\":\"L-1\",\"processor\":\"stripe\",\"processor_txn_id\":\"pi_1\",\"order_id\":\"ord_1\",\"type\":\"charge\",\"amount\":\"125.00\",\"currency\":\"USD\",\"status\":\"captured\",\"booked_at\":\"2025-01-15T10:00:00Z\"}\n"))
        .mount(&server).await;
    let out = Command::new(RECON)
        .args([
            "run",
            "--store",
            dir.path().to_str().unwrap(),
            "--database-url",
            &db.url,
        ])
        .args([
            "--date",
            "2025-01-15",
            "--processors",
            "stripe,square",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ])
        .env("PROCESSOR_API_BASE_URL", server.uri())
        .env("INTERNAL_API_BASE_URL", server.uri())
        .env("STRIPE_API_KEY", "sk_test_very_secret")
        .env("SQUARE_ACCESS_TOKEN", "EAAA_very_secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let stripe = &v["runs"][0];
    assert_eq!(stripe["status"], "succeeded", "{stripe}");
    assert_eq!((n(stripe, "matched_count"), n(stripe, "clean_count")), (1, 1));
    let square = &v["runs"][1];
    assert_eq!(square["status"], "failed");
    let err = square["error"].as_str().unwrap();
    assert!(
        err.contains("authentication failed") && err.contains("/v2/locations"),
        "{err}"
    );
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !everything.contains("very_secret"),
        "a secret leaked: {everything}"
    );
    // the API page is staged as received with an api manifest
    let raw = std::fs::read_dir(dir.path().join("raw/stripe/2025-01-15"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: Value = serde_json::from_slice(&std::fs::read(raw.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"], "api");
    assert_eq!(
        std::fs::read_to_string(raw.join("page-00001.json")).unwrap(),
        page
    );
}

/// The benchmark kit's day, whole and as 1, 4 and 9 partitions, in process and through the split step (byte
/// ranges, partition files): the same figures (equal to the generator's `expected.json`) and the same
/// discrepancies.csv, byte for byte.
/// The benchmark kit's small day (`tests/fixtures/kit-3000`): its `expected.json`, and a store holding its inbox.
fn kit_store() -> (Value, tempfile::TempDir) {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/kit-3000");
    let expected: Value = serde_json::from_slice(&std::fs::read(kit.join("expected.json")).unwrap()).unwrap();
    let store = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(store.path().join("inbox")).unwrap();
    copy_dir(&kit.join("inbox"), &store.path().join("inbox"));
    (expected, store)
}

/// A run's figures are the kit's `expected.json` ones (`what` names the case in a failure).
fn assert_kit_figures(run: &Value, expected: &Value, what: &str) {
    for k in [
        "processor_count",
        "ledger_count",
        "matched_count",
        "clean_count",
        "excluded_counts",
        "total_discrepancy_amount",
    ] {
        assert_eq!(run[k], expected[k], "{k} {what}");
    }
    for (k, v) in expected["discrepancy_counts"].as_object().unwrap() {
        assert_eq!(&run["discrepancy_counts"][k], v, "{k} {what}");
    }
}

#[tokio::test]
async fn the_kit_day_gives_the_same_result_whole_and_partitioned() {
    let mut results = Vec::new();
    // "n/bytes": n partitions through the split step, in byte ranges of about that many bytes
    for parts in ["1", "4", "9", "4/40000", "9/15000", "1/30000"] {
        let (parts, split) = parts.split_once('/').map_or((parts, None), |(p, b)| (p, Some(b)));
        let db = TestDb::new().await;
        let (expected, store) = kit_store();
        let out = recon(
            &db,
            store.path(),
            &[
                "--date",
                "2025-06-02",
                "--processors",
                "stripe",
                "--grace-days",
                "0",
                "--format",
                "json",
                "--no-notify",
                "--partitions",
                parts,
            ]
            .into_iter()
            .chain(split.map(|b| ["--split-bytes", b]).into_iter().flatten())
            .collect::<Vec<_>>(),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut run = json(&out)["runs"][0].clone();
        assert_kit_figures(&run, &expected, &format!("with {parts} partitions"));
        let id = run["run_id"].as_str().unwrap().to_string();
        let csv = std::fs::read(
            store
                .path()
                .join(format!("reports/2025-06-02/stripe/{id}/discrepancies.csv")),
        )
        .unwrap();
        run["run_id"] = Value::Null;
        results.push((run, csv));
    }
    for w in results.windows(2) {
        assert_eq!(w[0].0, w[1].0, "summary");
        // sources name the staged objects, whose fetch ids differ between runs: compare without them
        let strip = |b: &[u8]| {
            let t = String::from_utf8_lossy(b).to_string();
            t.split('/')
                .map(|seg| {
                    if seg.len() > 20 && seg.contains('-') {
                        "FETCH"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        let (a, b) = (strip(&w[0].1), strip(&w[1].1));
        assert_eq!(a.lines().count(), b.lines().count());
        for (x, y) in a.lines().zip(b.lines()) {
            assert_eq!(x, y, "discrepancies.csv differs");
        }
    }
}

/// A public-sample fixture day (`tests/fixtures/public/{case}`) through the CLI: its summary.
async fn public_day(case: &str, processor: &str) -> Value {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/public")
        .join(case);
    copy_dir(&src, dir.path());
    let out = recon(
        &db,
        dir.path(),
        &[
            "--date",
            "2025-03-10",
            "--processors",
            processor,
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let run = v["runs"][0].clone();
    assert_conservation(&run);
    for k in KEYS {
        assert!(run["discrepancy_counts"][k].is_u64(), "{k} in {run}");
    }
    run
}

fn no_discrepancy(run: &Value) {
    for k in KEYS {
        assert_eq!(run["discrepancy_counts"][k], 0, "{k} in {run}");
    }
    assert_eq!(run["severity"], Value::Null, "{run}");
    assert_eq!(run["total_discrepancy_amount"], serde_json::json!({}), "{run}");
}

#[tokio::test]
async fn public_stripe_day_refunded_charge_and_won_dispute_are_clean() {
    let run = public_day("stripe-api", "stripe").await;
    no_discrepancy(&run);
    assert_eq!((n(&run, "processor_count"), n(&run, "matched_count")), (10, 10));
    assert_eq!(
        run["excluded_counts"],
        serde_json::json!({"adjustment": 1, "fee": 2, "funding": 1, "payout": 3, "transfer": 1})
    );
    assert_eq!(run["out_of_window_count"], 1);
    assert_eq!(run["out_of_window_earliest"], "2025-03-05");
    assert_eq!(run["out_of_window_latest"], "2025-03-05");
}

#[tokio::test]
async fn public_paypal_search_day_reads_direction_and_both_references() {
    let run = public_day("paypal-api", "paypal").await;
    no_discrepancy(&run);
    assert_eq!(
        (
            n(&run, "processor_count"),
            n(&run, "ledger_count"),
            n(&run, "matched_count")
        ),
        (7, 4, 4)
    );
    assert_eq!(run["excluded_counts"]["not_settled"], 3);
    assert_eq!(run["excluded_counts"]["transfer"], 5);
    assert_eq!(run["out_of_window_count"], 0);
}

#[tokio::test]
async fn public_paypal_trr_day_counts_denied_and_reversed_as_not_settled() {
    let run = public_day("paypal-trr", "paypal").await;
    no_discrepancy(&run);
    assert_eq!((n(&run, "processor_count"), n(&run, "matched_count")), (6, 3));
    assert_eq!(
        run["excluded_counts"],
        serde_json::json!({"fee": 1, "not_settled": 3, "payout": 1, "transfer": 1})
    );
}

#[tokio::test]
async fn public_paypal_stl_day_debits_are_not_charges() {
    let run = public_day("paypal-stl", "paypal").await;
    no_discrepancy(&run);
    assert_eq!((n(&run, "processor_count"), n(&run, "matched_count")), (3, 3));
    assert_eq!(
        run["excluded_counts"],
        serde_json::json!({"fee": 1, "payout": 1, "transfer": 2})
    );
}

#[tokio::test]
async fn public_square_day_every_status_and_partial_refunds() {
    let run = public_day("square", "square").await;
    no_discrepancy(&run);
    assert_eq!(
        (
            n(&run, "processor_count"),
            n(&run, "ledger_count"),
            n(&run, "matched_count")
        ),
        (11, 5, 5)
    );
    assert_eq!(run["excluded_counts"], serde_json::json!({"not_settled": 6}));
}

#[tokio::test]
async fn an_unbalanced_quote_in_the_ledger_costs_one_row_not_the_rest_of_the_day() {
    let args = [
        "--date",
        "2025-01-15",
        "--grace-days",
        "0",
        "--format",
        "json",
        "--no-notify",
    ];
    let db = TestDb::new().await;
    let base = json(&recon(&db, demo_store().path(), &args));
    let db = TestDb::new().await;
    let store = demo_store();
    let key = store.path().join("inbox/ledger/2025-01-15/ledger.csv");
    let text = std::fs::read_to_string(&key).unwrap();
    let broken = text.replacen(",ord_1005,", ",\"ord_1005,", 1);
    assert_ne!(broken, text);
    std::fs::write(&key, broken).unwrap();
    let out = recon(&db, store.path(), &args);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let strip = |r: &Value| {
        let mut r = r.clone();
        r["run_id"] = Value::Null;
        // warnings name the staged key, whose fetch id differs from run to run
        r["warnings"] = Value::Null;
        r
    };
    // PayPal's and Square's rows come after the broken one in the file: every one is still reconciled
    for i in [1, 2] {
        assert_eq!(
            strip(&v["runs"][i]),
            strip(&base["runs"][i]),
            "{}",
            v["runs"][i]["processor"]
        );
    }
    let (s, b) = (
        &v["runs"][0]["discrepancy_counts"],
        &base["runs"][0]["discrepancy_counts"],
    );
    assert_eq!(n(s, "invalid_record"), n(b, "invalid_record") + 1);
    assert_eq!(
        n(s, "missing_in_ledger"),
        n(b, "missing_in_ledger") + 1,
        "its charge has no booking now"
    );
}

#[test]
fn implausible_dates_and_grace_days_are_refused_up_front() {
    for args in [
        vec!["run", "--date=-0001-01-01"],
        vec!["run", "--date", "2025-1-5"],
        vec!["run", "--date", "2025-01-15", "--grace-days", "4294967295"],
        vec!["start", "--date", "99999-01-01", "--state-machine-arn", "arn:x"],
    ] {
        let out = Command::new(RECON).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid value"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn two_runs_of_one_day_at_once_both_succeed_and_one_is_current() {
    let db = TestDb::new().await;
    let store = demo_store();
    let spawn = || {
        Command::new(RECON)
            .args([
                "run",
                "--store",
                store.path().to_str().unwrap(),
                "--database-url",
                &db.url,
            ])
            .args([
                "--date",
                "2025-01-15",
                "--grace-days",
                "0",
                "--format",
                "json",
                "--no-notify",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json(&out)["runs"].as_array().map(Vec::len), Some(3));
    }
    let out = Command::new(RECON)
        .args([
            "runs",
            "--date",
            "2025-01-15",
            "--database-url",
            &db.url,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let runs = json(&out);
    let runs = runs.as_array().cloned().unwrap_or_default();
    let current = runs.iter().filter(|r| r["status"] != "superseded").count();
    assert_eq!((current, runs.len()), (3, 6), "{runs:?}");
}

#[tokio::test]
async fn staging_keeps_every_file_apart_and_says_what_it_did_not_stage() {
    let db = TestDb::new().await;
    let store = demo_store();
    let root = store.path();
    let day = "inbox/ledger/2025-01-15";
    let header = "ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n";
    write(root, &format!("{day}/a/b.csv"), header.as_bytes());
    write(
        root,
        &format!("{day}/a_b.csv"),
        header.replace('\n', "\r\n").as_bytes(),
    );
    write(root, &format!("{day}/manifest.json"), header.as_bytes());
    write(root, &format!("{day}/.tmp-upload.csv"), header.as_bytes());
    std::os::unix::fs::symlink("/etc/passwd", root.join(format!("{day}/passwd.csv"))).unwrap();
    let out = recon(
        &db,
        root,
        &[
            "--date",
            "2025-01-15",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("root:"), "the link's target is never read");
    let v = json(&out);
    for run in v["runs"].as_array().unwrap() {
        let w: Vec<String> = run["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .filter(|w| w.contains("was not staged"))
            .collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|w| w.contains(".tmp-upload.csv") && w.contains("temporary")));
        assert!(w
            .iter()
            .any(|w| w.contains("passwd.csv") && w.contains("not a regular file")));
    }
    // the ledger's manifest: every file under its own relative path, none over the manifest
    let raw = root.join("raw/ledger/2025-01-15");
    let fetch = std::fs::read_dir(&raw).unwrap().next().unwrap().unwrap().path();
    let m: Value = serde_json::from_slice(&std::fs::read(fetch.join("manifest.json")).unwrap()).unwrap();
    let keys: Vec<&str> = m["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for suffix in ["/a/b.csv", "/a_b.csv", "/files/manifest.json", "/ledger.csv"] {
        assert!(keys.iter().any(|k| k.ends_with(suffix)), "{suffix} in {keys:?}");
    }
    assert_eq!(m["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read(fetch.join("a_b.csv")).unwrap(),
        header.replace('\n', "\r\n").as_bytes()
    );
    assert!(!fetch.join("passwd.csv").exists());
}

#[tokio::test]
async fn raw_data_is_never_overwritten_locally() {
    use recon_app::objects::{LocalStore, ObjectStore};
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::new(dir.path());
    s.put("raw/ledger/2025-01-15/f1/a.csv", b"one".to_vec(), "text/csv")
        .await
        .unwrap();
    let again = s
        .put("raw/ledger/2025-01-15/f1/a.csv", b"two".to_vec(), "text/csv")
        .await;
    assert!(again.is_err());
    assert_eq!(s.get("raw/ledger/2025-01-15/f1/a.csv").await.unwrap(), b"one");
    // reports may be rewritten
    s.put("reports/x/summary.json", b"1".to_vec(), "application/json")
        .await
        .unwrap();
    s.put("reports/x/summary.json", b"2".to_vec(), "application/json")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_nul_character_is_one_invalid_record_and_every_processor_still_runs() {
    let args = [
        "--date",
        "2025-01-15",
        "--grace-days",
        "0",
        "--format",
        "json",
        "--no-notify",
    ];
    let db = TestDb::new().await;
    let base = json(&recon(&db, demo_store().path(), &args));
    let db = TestDb::new().await;
    let store = demo_store();
    let ledger = store.path().join("inbox/ledger/2025-01-15/ledger.csv");
    let text = std::fs::read_to_string(&ledger).unwrap();
    std::fs::write(&ledger, text.replacen(",ord_1005,", ",ord_10\u{0}05,", 1)).unwrap();
    let page = store
        .path()
        .join("inbox/stripe/2025-01-15/balance_transactions-page-00001.json");
    let text = std::fs::read_to_string(&page).unwrap();
    let changed = text.replacen(
        "\"txn_3QhDemo0013LkdIwHu7ix0aB1\"",
        "\"txn_3QhDemo0013Lkd\\u0000Iw\"",
        1,
    );
    assert_ne!(changed, text);
    std::fs::write(&page, changed).unwrap();
    let out = recon(&db, store.path(), &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(3));
    let (s, b) = (
        &v["runs"][0]["discrepancy_counts"],
        &base["runs"][0]["discrepancy_counts"],
    );
    assert_eq!(n(s, "invalid_record"), n(b, "invalid_record") + 2, "{s}");
    for i in [1, 2] {
        assert_eq!(v["runs"][i]["status"], "succeeded");
        assert_eq!(
            v["runs"][i]["discrepancy_counts"],
            base["runs"][i]["discrepancy_counts"]
        );
    }
}

#[tokio::test]
async fn unattributed_ledger_rows_are_kept_shown_and_listed() {
    let db = TestDb::new().await;
    let store = demo_store();
    let out = recon(
        &db,
        store.path(),
        &["--date", "2025-01-15", "--grace-days", "0", "--format", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["unattributed_invalid_records"], 1);
    for run in v["runs"].as_array().unwrap() {
        let w = run["warnings"].to_string();
        assert!(
            w.contains("belongs to no processor's run") && w.contains("venmo"),
            "{w}"
        );
        assert!(w.contains("ledger.csv:"), "names the key and line: {w}");
    }
    // the report and the email show it
    let report = std::fs::read_dir(store.path().join("reports/2025-01-15/stripe"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("report.html");
    assert!(std::fs::read_to_string(report).unwrap().contains("venmo"));
    let outbox = store.path().join("outbox");
    let eml = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(std::fs::read_to_string(eml).unwrap().contains("venmo"));
    // recon show lists it from the database
    let run_id = v["runs"][0]["run_id"].as_str().unwrap().to_string();
    let shown = Command::new(RECON)
        .args(["show", &run_id, "--database-url", &db.url, "--format", "json"])
        .output()
        .unwrap();
    let shown = json(&shown);
    let rows = shown["unattributed_ledger_rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 1, "{shown}");
    assert!(rows[0]["raw"].as_str().unwrap().contains("venmo"));
    assert!(rows[0]["source"].as_str().unwrap().contains("ledger.csv:"));
}

#[tokio::test]
async fn a_connection_cut_mid_copy_writes_nothing_and_a_rerun_completes() {
    let db = TestDb::new().await;
    // migrate directly first, so that the cut hits the run's COPY
    let ok = Command::new(RECON)
        .args(["migrate", "--database-url", &db.url])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    // postgres://user@host:port/db -> the same through the proxy
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, hostport) = authority
        .rsplit_once('@')
        .map_or(("", authority), |(u, h)| (u, h));
    let (host, port) = hostport
        .rsplit_once(':')
        .map_or((hostport, 5432u16), |(h, p)| (h, p.parse().unwrap()));
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    let target: std::net::SocketAddr = format!("{host}:{port}").parse().unwrap();
    let proxy = recon_tests::CutProxy::start(target, b"FROM STDIN");
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    let proxied = format!("{scheme}://{at}127.0.0.1:{}/{path}", proxy.port);
    let store = demo_store();
    let args = [
        "--date",
        "2025-01-15",
        "--grace-days",
        "0",
        "--format",
        "json",
        "--no-notify",
    ];
    let cut = Command::new(RECON)
        .args([
            "run",
            "--store",
            store.path().to_str().unwrap(),
            "--database-url",
            &proxied,
        ])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        cut.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&cut.stderr)
    );
    let err = String::from_utf8_lossy(&cut.stderr);
    assert!(err.contains("unavailable") || err.contains("retry"), "{err}");
    let listed = Command::new(RECON)
        .args([
            "runs",
            "--date",
            "2025-01-15",
            "--database-url",
            &db.url,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        json(&listed).as_array().map(Vec::len),
        Some(0),
        "nothing of the cut run is visible"
    );
    let again = recon(&db, store.path(), &args);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(json(&again)["runs"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_run_killed_midway_leaves_nothing_half_done_and_a_rerun_completes() {
    let db = TestDb::new().await;
    let store = demo_store();
    let args = [
        "--date",
        "2025-01-15",
        "--grace-days",
        "0",
        "--format",
        "json",
        "--no-notify",
    ];
    // kill -9 at several points of a run: before, during and after its writes
    for delay_ms in [5u64, 40, 120, 300] {
        let mut child = Command::new(RECON)
            .args([
                "run",
                "--store",
                store.path().to_str().unwrap(),
                "--database-url",
                &db.url,
            ])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let out = Command::new(RECON)
            .args([
                "runs",
                "--date",
                "2025-01-15",
                "--database-url",
                &db.url,
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        if out.status.code() == Some(0) {
            let runs = json(&out);
            for r in runs.as_array().unwrap() {
                assert_ne!(r["status"], "running", "no half-written run is ever visible: {r}");
            }
        }
    }
    let again = recon(&db, store.path(), &args);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let v = json(&again);
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(3));
    let out = Command::new(RECON)
        .args([
            "runs",
            "--date",
            "2025-01-15",
            "--database-url",
            &db.url,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let runs = json(&out);
    let current: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "superseded")
        .collect();
    assert_eq!(current.len(), 3, "one current run per processor: {runs}");
    // every staged raw folder has its manifest or was never completed: the rerun's inputs are intact
    for r in v["runs"].as_array().unwrap() {
        assert_eq!(r["status"], "succeeded");
    }
}

#[tokio::test]
async fn leftovers_of_a_crashed_run_are_marked_on_the_next_run() {
    let db = TestDb::new().await;
    let store = demo_store();
    let root = store.path();
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200;
    let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, two_hours_ago, 0)).to_string();
    let young = uuid::Uuid::now_v7().to_string();
    for id in [&old, &young] {
        write(
            root,
            &format!("reports/2025-01-15/stripe/{id}/summary.json"),
            b"{}",
        );
        write(
            root,
            &format!("raw/ledger/2025-01-15/{id}/ledger.csv"),
            b"ledger_id\n",
        );
    }
    let out = recon(
        &db,
        root,
        &[
            "--date",
            "2025-01-15",
            "--grace-days",
            "0",
            "--format",
            "json",
            "--no-notify",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root
        .join(format!("reports/2025-01-15/stripe/{old}/NOT-RECORDED.txt"))
        .exists());
    assert!(root
        .join(format!("raw/ledger/2025-01-15/{old}/INCOMPLETE.txt"))
        .exists());
    // a young folder may belong to a run in progress: left alone
    assert!(!root
        .join(format!("reports/2025-01-15/stripe/{young}/NOT-RECORDED.txt"))
        .exists());
    assert!(!root
        .join(format!("raw/ledger/2025-01-15/{young}/INCOMPLETE.txt"))
        .exists());
    // the recorded run's folder is not marked, and the raw copy is untouched
    let run_id = json(&out)["runs"][0]["run_id"].as_str().unwrap().to_string();
    assert!(root
        .join(format!("reports/2025-01-15/stripe/{run_id}/report.html"))
        .exists());
    assert!(!root
        .join(format!("reports/2025-01-15/stripe/{run_id}/NOT-RECORDED.txt"))
        .exists());
    assert_eq!(
        std::fs::read(root.join(format!("raw/ledger/2025-01-15/{old}/ledger.csv"))).unwrap(),
        b"ledger_id\n"
    );
}

/// `recon step FUNCTION --input EVENT`: the answer JSON of one Lambda step run here.
fn step(db: &TestDb, store: &Path, function: &str, event: &Value) -> Value {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(event).unwrap()).unwrap();
    let out = Command::new(RECON)
        .args(["step", function, "--input", file.path().to_str().unwrap()])
        .args(["--store", store.to_str().unwrap(), "--database-url", &db.url])
        .env("GRACE_DAYS", "0")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{function} {event}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

/// The kit day as the state machine runs a sharded day, every Lambda step a process of its own (`recon step`,
/// what `make bench-split` measures): the fetches, the split's ranges, a scan per range, the plan, a scatter
/// per range, a worker per partition reading only its own files, the merge: the figures of `expected.json`.
#[tokio::test]
async fn the_kit_day_step_by_step_in_separate_processes() {
    let db = TestDb::new().await;
    let (expected, store) = kit_store();
    let s = store.path();
    let day = serde_json::json!({"date": "2025-06-02"});
    let ledger = step(&db, s, "fetch-ledger", &day);
    let report = step(&db, s, "fetch-stripe", &day);
    let base = serde_json::json!({"date": "2025-06-02", "processor": "stripe", "manifests": [report, ledger],
        "execution": "steps"});
    let with = |key: &str, v: Value| {
        let mut e = base.clone();
        e[key] = v;
        e
    };
    let ranges = step(
        &db,
        s,
        "match",
        &with(
            "split",
            serde_json::json!({"step": "ranges", "range_bytes": 20000}),
        ),
    );
    let ranges = ranges["ranges"].as_array().unwrap().clone();
    assert!(ranges.len() > 4, "{ranges:?}");
    let scanned: Vec<Value> = ranges
        .iter()
        .map(|r| {
            step(
                &db,
                s,
                "match",
                &with("split", serde_json::json!({"step": "scan", "range": r})),
            )
        })
        .collect();
    let plan = serde_json::json!({"step": "plan", "partitions": 3, "scanned": scanned});
    let planned = step(&db, s, "match", &with("split", plan));
    for r in planned["scatter"].as_array().unwrap() {
        let scatter = serde_json::json!({"step": "scatter", "partitions": 3, "range": r});
        step(&db, s, "match", &with("split", scatter));
    }
    let receipts: Vec<Value> = (0..3)
        .map(|i| {
            let task = serde_json::json!({"index": i, "count": 3, "split": true});
            step(&db, s, "match", &with("partition", task))
        })
        .collect();
    let run = step(&db, s, "match", &with("partitions", Value::from(receipts)));
    assert_kit_figures(&run, &expected, "step by step");
}

/// An event that is not the step's input is refused naming what does not fit; nothing runs.
#[test]
fn a_step_event_that_does_not_fit_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let file = store.path().join("event.json");
    std::fs::write(
        &file,
        br#"{"date": "2025-06-02", "processor": "venmo", "manifests": []}"#,
    )
    .unwrap();
    let out = Command::new(RECON)
        .args(["step", "match", "--input", file.to_str().unwrap()])
        .args(["--store", store.path().to_str().unwrap()])
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("does not fit the step's input") && err.contains("venmo"),
        "{err}"
    );
}
