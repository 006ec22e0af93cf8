//! The AWS adapters against moto server (started by `make test`): S3 staging and reports, SES v2 mail read
//! back from moto, Secrets Manager, the S3 trigger's StartExecution with a duplicate event deduplicated, and
//! the whole day through S3 + SES + PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use chrono::NaiveDate;
use recon_app::fetch::ApiSources;
use recon_app::notify::{Email, Mailer};
use recon_app::objects::ObjectStore;
use recon_app::pipeline::{run_day, DayOptions, NotifySettings};
use recon_app::settings::Settings;
use recon_app::steps::trigger::{s3_trigger, S3Drop};
use recon_app::steps::Ports;
use recon_app::Deps;
use recon_aws::lambda::AwsPorts;
use recon_aws::{Aws, S3Store, SesMailer, SfnExecutions};
use recon_core::{Processor, RunConfig, RunStatus, Severity};
use recon_store::{DbConfig, Store};
use recon_tests::TestDb;
use serde_json::{json, Value};

#[path = "common/moto.rs"]
mod moto;
use moto::{aws, bucket, endpoint};

async fn upload_dir(store: &S3Store, root: &Path, dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            Box::pin(upload_dir(store, root, &path)).await;
        } else {
            let key = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            store
                .put(&key, std::fs::read(&path).unwrap(), "application/octet-stream")
                .await
                .unwrap();
        }
    }
}

async fn moto_data() -> Value {
    let body = reqwest::get(format!("{}/moto-api/data.json", endpoint()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Raw messages moto recorded whose text contains `needle`.
async fn sent_raw(needle: &str) -> Vec<String> {
    let data = moto_data().await;
    let mut out = Vec::new();
    for kind in ["RawMessage", "Message"] {
        if let Some(list) = data["ses"][kind].as_array() {
            for m in list {
                let text = m.to_string();
                if text.contains(needle) {
                    out.push(m["raw_data"].as_str().map(String::from).unwrap_or(text));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn ses_mail_is_sent_with_both_parts_and_read_back_from_moto() {
    let aws = aws().await;
    aws.ses
        .create_email_identity()
        .email_identity("recon@example.com")
        .send()
        .await
        .unwrap();
    let mailer = SesMailer {
        client: aws.ses.clone(),
        configuration_set: None,
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let email = Email {
        from: "recon@example.com".into(),
        to: vec!["ops@example.com".into(), "finance@example.com".into()],
        subject: format!("[recon] 2025-01-15: HIGH discrepancies {tag}"),
        html: "<p>stripe <b>CRITICAL</b></p>".into(),
        text: "stripe CRITICAL".into(),
    };
    let id = mailer.send(&email).await.unwrap();
    assert!(!id.is_empty());
    let raw = sent_raw(&tag).await;
    assert_eq!(raw.len(), 1, "one message recorded");
    // unfold folded header lines (RFC 5322)
    let m = &raw[0].replace("\r\n ", " ").replace("\n ", " ");
    assert!(
        m.contains(&format!("Subject: [recon] 2025-01-15: HIGH discrepancies {tag}")),
        "{m}"
    );
    assert!(m.contains("ops@example.com") && m.contains("finance@example.com"));
    assert!(m.contains("text/plain") && m.contains("text/html") && m.contains("multipart/alternative"));
}

#[tokio::test]
async fn database_and_processor_secrets_are_read_and_stay_secret() {
    let aws = aws().await;
    let name = format!("recon/db-{}", uuid::Uuid::new_v4().simple());
    let arn = aws
        .secrets
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username":"recon_app","password":"s3cr3t-pw","host":"db.internal","port":5433,"dbname":"recon","engine":"postgres"}"#)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let mut db = recon_app::settings::DatabaseSettings {
        url: Some("postgres://ignored@elsewhere/x".into()),
        ..Default::default()
    };
    recon_aws::secrets::database(&aws.secrets, &arn, &mut db)
        .await
        .unwrap();
    let cfg = db.config().unwrap();
    assert_eq!(cfg.pg.get_hosts().len(), 1);
    assert_eq!(cfg.pg.get_user(), Some("recon_app"));
    assert_eq!(cfg.pg.get_ports(), [5433]);
    assert_eq!(cfg.pg.get_dbname(), Some("recon"));
    assert!(
        !format!("{cfg:?}").contains("s3cr3t"),
        "Debug must not show the password"
    );
    let pname = format!("recon/processors-{}", uuid::Uuid::new_v4().simple());
    let parn = aws
        .secrets
        .create_secret()
        .name(&pname)
        .secret_string(
            r#"{"stripe_api_key":"sk_live_abc","paypal_client_id":"id","paypal_client_secret":"pp-secret"}"#,
        )
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let mut p = recon_app::settings::ApiSettings::default();
    recon_aws::secrets::processors(&aws.secrets, &parn, &mut p)
        .await
        .unwrap();
    assert!(p.stripe_api_key.is_some() && p.paypal_client_id.as_deref() == Some("id"));
    assert!(p.sources().stripe.is_some() && p.sources().paypal.is_some());
    let dbg = format!("{p:?}");
    assert!(
        !dbg.contains("sk_live_abc") && !dbg.contains("pp-secret"),
        "{dbg}"
    );
    let missing = recon_aws::secrets::database(
        &aws.secrets,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
        &mut db,
    )
    .await;
    assert!(missing.unwrap_err().to_string().contains("cannot read secret"));
}

/// A function's ports on moto: default settings (no grace period, mail to ops@example.com).
async fn env_for(aws: &Aws, bucket: &str, state_machine_arn: Option<String>, db: Option<Store>) -> AwsPorts {
    let mut settings = Settings::from_vars(|_| None).unwrap();
    settings.grace_days = 0;
    settings.notify.to = vec!["ops@example.com".into()];
    Ports::new(
        S3Store::new(aws.s3.clone(), bucket),
        SesMailer {
            client: aws.ses.clone(),
            configuration_set: None,
        },
        SfnExecutions {
            client: aws.sfn.clone(),
            state_machine_arn,
        },
        db,
        settings,
    )
}

#[tokio::test]
async fn s3_trigger_starts_one_execution_per_drop_and_ignores_the_duplicate() {
    let aws = aws().await;
    let sm = aws
        .sfn
        .create_state_machine()
        .name(format!("recon-test-{}", uuid::Uuid::new_v4().simple()))
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/recon-states")
        .send()
        .await
        .unwrap();
    // the dropped file exists in the bucket the trigger is configured with
    let name = bucket(&aws).await;
    S3Store::new(aws.s3.clone(), &name)
        .put(
            "inbox/paypal/2025-01-15/STL-20250115.01.009.CSV",
            b"x".to_vec(),
            "text/csv",
        )
        .await
        .unwrap();
    let env = env_for(&aws, &name, Some(sm.state_machine_arn().to_string()), None).await;
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/s3-trigger/eventbridge-put.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let event: S3Drop = serde_json::from_value(event).unwrap();
    let first = s3_trigger(&env, event.clone()).await.unwrap();
    assert_eq!(first[0].outcome, "started", "{first:?}");
    let again = s3_trigger(&env, event).await.unwrap();
    assert_eq!(again[0].outcome, "duplicate", "{again:?}");
    let execs = aws
        .sfn
        .list_executions()
        .state_machine_arn(sm.state_machine_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(execs.executions().len(), 1);
    let input: Value = serde_json::from_str(
        aws.sfn
            .describe_execution()
            .execution_arn(execs.executions()[0].execution_arn())
            .send()
            .await
            .unwrap()
            .input()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(input["date"], "2025-01-15");
    assert_eq!(input["processors"], json!(["paypal"]));
    assert_eq!(
        input["source"]["key"],
        "inbox/paypal/2025-01-15/STL-20250115.01.009.CSV"
    );
    let bad: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/s3-trigger/bad-key.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let skipped = s3_trigger(&env, serde_json::from_value(bad).unwrap())
        .await
        .unwrap();
    assert_eq!(skipped[0].outcome, "skipped");
}

#[tokio::test]
async fn the_demo_day_runs_through_s3_ses_and_postgres() {
    let aws = aws().await;
    aws.ses
        .create_email_identity()
        .email_identity("recon@example.com")
        .send()
        .await
        .unwrap();
    let name = bucket(&aws).await;
    let s3 = S3Store::new(aws.s3.clone(), &name);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/demo");
    upload_dir(&s3, &demo, &demo.join("inbox")).await;
    let db = TestDb::new().await;
    let store = Store::new(&DbConfig::from_url(&db.url).unwrap()).unwrap();
    store.migrate().await.unwrap();
    let config = RunConfig {
        grace_days: 0,
        ..RunConfig::default()
    };
    let deps = Deps {
        objects: &s3,
        db: &store,
        config: &config,
    };
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let opts = DayOptions {
        date: NaiveDate::from_ymd_opt(2025, 1, 15).unwrap(),
        processors: Processor::ALL.to_vec(),
        trigger: recon_app::Trigger::Manual,
        execution: format!("test-{tag}"),
        split_bytes: None,
        notify: Some(NotifySettings {
            min_severity: Severity::High,
            from: "recon@example.com".into(),
            to: vec![format!("ops-{tag}@example.com")],
        }),
    };
    let mailer = SesMailer {
        client: aws.ses.clone(),
        configuration_set: None,
    };
    let day = run_day(&deps, &ApiSources::default(), Some(&mailer), &opts)
        .await
        .unwrap();
    assert!(
        day.summary.runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{:?}",
        day.summary
    );
    let stripe = &day.summary.runs[0];
    assert_eq!(
        stripe.total_discrepancy_amount.get("USD").map(String::as_str),
        Some("4478.00")
    );
    // reports in S3 with the spec's keys; raw copies byte-identical
    let reports = s3
        .list(&format!("reports/2025-01-15/stripe/{}/", stripe.run_id))
        .await
        .unwrap();
    assert_eq!(reports.len(), 3, "{reports:?}");
    let raw = s3.list("raw/ledger/2025-01-15/").await.unwrap();
    let staged_ledger = raw.iter().find(|k| k.ends_with("ledger.csv")).unwrap();
    assert_eq!(
        s3.get(staged_ledger).await.unwrap(),
        std::fs::read(demo.join("inbox/ledger/2025-01-15/ledger.csv")).unwrap()
    );
    // the email went out through SES with a presigned link to the report
    let mail = sent_raw(&format!("ops-{tag}@example.com")).await;
    assert_eq!(mail.len(), 1);
    // the link is a presigned S3 URL (quoted-printable may fold it, so look for its unfolded pieces)
    let unfolded = mail[0].replace("=\r\n", "").replace("=\n", "");
    assert!(
        unfolded.contains("report.html") && unfolded.contains("X-Amz-Signature"),
        "{}",
        &unfolded[..unfolded.len().min(3000)]
    );
}

#[tokio::test]
async fn recon_start_starts_a_named_execution() {
    let aws = aws().await;
    let sm = aws
        .sfn
        .create_state_machine()
        .name(format!("recon-start-{}", uuid::Uuid::new_v4().simple()))
        .definition(r#"{"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/recon-states")
        .send()
        .await
        .unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/recon");
    // the binary is built by the workspace test run; build it when this test runs alone
    if !bin.exists() {
        let ok = std::process::Command::new("cargo")
            .args(["build", "-q", "-p", "recon-cli"])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let out = std::process::Command::new(&bin)
        .args([
            "start",
            "--date",
            "2025-01-15",
            "--processors",
            "stripe,paypal",
            "--state-machine-arn",
            sm.state_machine_arn(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let execs = aws
        .sfn
        .list_executions()
        .state_machine_arn(sm.state_machine_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(execs.executions().len(), 1);
    let e = &execs.executions()[0];
    assert!(
        e.name().starts_with("manual-2025-01-15-stripe-paypal-"),
        "{}",
        e.name()
    );
    let input: Value = serde_json::from_str(
        aws.sfn
            .describe_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .unwrap()
            .input()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        input,
        json!({"date": "2025-01-15", "processors": ["stripe", "paypal"], "trigger": "manual"})
    );
}

/// A sharded run as the state machine's Distributed Map runs it, against S3 (moto) and PostgreSQL: the
/// benchmark kit's day staged by the fetch functions, each partition matched by its own `match` call (its
/// outcome kept in S3), then the merge call records the run. Same summary as the whole run; a retried merge
/// records nothing new; an incomplete set of partitions is refused, naming what is missing.
#[tokio::test]
async fn a_sharded_match_through_s3_records_the_same_run_as_the_whole_match() {
    use recon_app::keys::Source;
    use recon_app::steps::fetch::{fetch, FetchInput};
    use recon_app::steps::partition::{PartitionFailed, PartitionTask, Receipt};
    use recon_app::steps::r#match::{
        match_step, ManifestInput, MatchInput, MatchOutput, SplitAnswer, SplitCall,
    };
    let aws = aws().await;
    let name = bucket(&aws).await;
    let s3 = S3Store::new(aws.s3.clone(), &name);
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/kit-3000");
    upload_dir(&s3, &kit, &kit.join("inbox")).await;
    let db = TestDb::new().await;
    let store = Store::new(&DbConfig::from_url(&db.url).unwrap()).unwrap();
    store.migrate().await.unwrap();
    let env = env_for(&aws, &name, None, Some(store)).await;
    let date = NaiveDate::from_ymd_opt(2025, 6, 2).unwrap();
    let fetch_input = |p: &str| FetchInput {
        date: Some(date),
        processor: Some(p.into()),
        source: None,
    };
    let ledger = fetch(&env, Source::Ledger, fetch_input("ledger"), None)
        .await
        .unwrap();
    let stripe = fetch(&env, Source::Stripe, fetch_input("stripe"), None)
        .await
        .unwrap();
    let input = |execution: &str| MatchInput {
        date,
        processor: Processor::Stripe,
        manifests: vec![
            Some(ManifestInput::Ref(stripe.clone())),
            Some(ManifestInput::Ref(ledger.clone())),
        ],
        error: None,
        execution: Some(execution.into()),
        trigger: Some(recon_app::Trigger::Manual),
        partition: None,
        partitions: None,
        split: None,
    };
    let run = |o: MatchOutput| match o {
        MatchOutput::Run(s) => *s,
        other => panic!("expected a run summary, got {other:?}"),
    };
    let whole = run(match_step(&env, input("whole")).await.unwrap());
    assert_eq!(whole.status, RunStatus::Succeeded, "{whole:?}");

    let n = 5;
    let mut receipts = Vec::new();
    for index in (0..n).rev() {
        let mut i = input("sharded");
        i.partition = Some(PartitionTask {
            index,
            count: n,
            split: false,
        });
        match match_step(&env, i).await.unwrap() {
            MatchOutput::Partition(d) => receipts.push(d),
            other => panic!("expected a partition receipt, got {other:?}"),
        }
    }
    assert_eq!(
        receipts.iter().map(|r| r.processor_count).sum::<u64>(),
        whole.processor_count,
        "{receipts:?}"
    );
    let mut merge = input("sharded");
    let done = |r: &[recon_app::steps::partition::PartitionDone]| {
        r.iter()
            .cloned()
            .map(|d| Some(Receipt::Done(d)))
            .collect::<Vec<_>>()
    };
    merge.partitions = Some(done(&receipts));
    let merged = run(match_step(&env, merge.clone()).await.unwrap());
    let strip = |s: &recon_core::RunSummary| {
        let mut v = serde_json::to_value(s).unwrap();
        v["run_id"] = Value::Null;
        v
    };
    assert_eq!(strip(&merged), strip(&whole));

    // the same day through the split step (ranges read by ranged GETs; each partition worker reads only its
    // own files): the same summary
    let split_call = |call: SplitCall| {
        let mut i = input("split");
        i.split = Some(call);
        i
    };
    let answer = |o: MatchOutput| match o {
        MatchOutput::Split(a) => a,
        other => panic!("expected a split answer, got {other:?}"),
    };
    let ranges = match answer(
        match_step(&env, split_call(SplitCall::Ranges { range_bytes: 40_000 }))
            .await
            .unwrap(),
    ) {
        SplitAnswer::Ranges { ranges } => ranges,
        other => panic!("{other:?}"),
    };
    assert!(ranges.len() > 10, "{ranges:?}");
    let mut scanned = Vec::new();
    for range in ranges {
        match answer(
            match_step(&env, split_call(SplitCall::Scan { range }))
                .await
                .unwrap(),
        ) {
            SplitAnswer::Scanned(s) => scanned.push(s),
            other => panic!("{other:?}"),
        }
    }
    assert!(scanned.iter().all(|s| s.cut.is_some()), "{scanned:?}");
    let planned = answer(
        match_step(
            &env,
            split_call(SplitCall::Plan {
                partitions: 3,
                scanned,
            }),
        )
        .await
        .unwrap(),
    );
    let SplitAnswer::Planned { partitions, scatter } = planned else {
        panic!("{planned:?}")
    };
    for range in scatter {
        match_step(&env, split_call(SplitCall::Scatter { partitions, range }))
            .await
            .unwrap();
    }
    let mut split_receipts = Vec::new();
    for index in 0..partitions {
        let mut i = input("split");
        i.partition = Some(PartitionTask {
            index,
            count: partitions,
            split: true,
        });
        match match_step(&env, i).await.unwrap() {
            MatchOutput::Partition(d) => split_receipts.push(d),
            other => panic!("expected a partition receipt, got {other:?}"),
        }
    }
    let mut merge_split = input("split");
    merge_split.partitions = Some(done(&split_receipts));
    let merged_split = run(match_step(&env, merge_split).await.unwrap());
    assert_eq!(strip(&merged_split), strip(&whole));

    // a retried merge (Step Functions retry) returns the recorded run
    let again = run(match_step(&env, merge).await.unwrap());
    assert_eq!(again.run_id, merged.run_id);
    // a partition missing: refused, nothing recorded
    let mut short = input("short");
    short.partitions = Some(done(&receipts[1..]));
    let err = match_step(&env, short).await.unwrap_err();
    assert!(err.to_string().contains("expected partitions 0..5"), "{}", err);
    // a partition failed (its Catch hands the cause over) or came back null: the run is recorded failed with
    // the cause
    let mut failed = input("failed");
    let mut parts = done(&receipts[2..]);
    parts.push(Some(Receipt::Failed(PartitionFailed {
        index: 1,
        count: n,
        error: "SourceUnavailable: object store: put work/...: HTTP 403 AccessDenied".into(),
    })));
    parts.push(None);
    failed.partitions = Some(parts);
    let run = run(match_step(&env, failed).await.unwrap());
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("partition 1 of 5 failed: SourceUnavailable") && error.contains("403"),
        "{error}"
    );
    assert!(error.contains("returned no receipt"), "{error}");
}
