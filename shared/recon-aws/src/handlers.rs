//! The functions' input/output types and handlers. Each `functions/<step>` crate is a thin wrapper over
//! one of these: the same use cases the CLI runs, over S3, SES, Secrets Manager and RDS.

use chrono::NaiveDate;
use recon_app::fetch::{stage, Manifest};
use recon_app::notify::{compose, should_notify, Mailer, RunNotice};
use recon_app::objects::ObjectStore;
use recon_app::pipeline::{load_manifest, sides};
use recon_app::report::TopItem;
use recon_app::{run_match, AppError, Deps, RunRequest};
use recon_core::{Processor, RunStatus, RunSummary};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{info, warn};

use crate::lambda::{Env, FnError};
use crate::{execution_name, start_execution, Started};

/// An object in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub bucket: String,
    pub key: String,
}

/// Input of the fetch functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchInput {
    /// The day; `null` or absent means yesterday (UTC), as for the daily schedule.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub processor: Option<String>,
    /// Set when an S3 drop started the execution: the file is in `inbox/` and is staged instead of the API.
    #[serde(default)]
    pub source: Option<SourceRef>,
}

/// Stages a source (`stripe`, `paypal`, `square`, `ledger`) for a day and returns its manifest.
#[tracing::instrument(name = "fetch", skip_all, fields(source = source_name, date = ?input.date))]
pub async fn fetch(env: &Env, source_name: &str, input: FetchInput) -> Result<Manifest, FnError> {
    let date = input.date.unwrap_or_else(yesterday);
    if let Some(s) = &input.source {
        let expected = format!("inbox/{source_name}/{date}/");
        if source_name != "ledger" && !s.key.starts_with(&expected) {
            return Err(AppError::InvalidInput(format!("{} is not under {expected}", s.key)).into());
        }
    }
    let fetched = stage(&env.objects, &env.apis, source_name, date, 0).await?;
    info!(source = source_name, date = %date, records = fetched.manifest.record_count, key = %fetched.manifest.manifest_key, "staged");
    Ok(fetched.manifest)
}

/// Yesterday, UTC.
pub fn yesterday() -> NaiveDate {
    let today = chrono::Utc::now().date_naive();
    today.pred_opt().unwrap_or(today)
}

/// Input of the match function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchInput {
    pub date: NaiveDate,
    pub processor: Processor,
    /// The processor's manifest and the ledger's (order does not matter; `null`s are ignored).
    pub manifests: Vec<Option<Manifest>>,
    /// Set when the processor's fetch failed: the run is recorded as failed with this reason.
    #[serde(default)]
    pub error: Option<String>,
    /// The Step Functions execution (ARN or name): with processor and date, the idempotency key.
    #[serde(default)]
    pub execution: Option<String>,
    /// `schedule`, `manual` or `s3` (default `manual`).
    #[serde(default)]
    pub trigger: Option<String>,
    /// Sharded run, one Distributed Map iteration: match only this partition and keep its outcome in S3.
    #[serde(default)]
    pub partition: Option<PartitionTask>,
    /// Sharded run, the merge: what every partition returned. The run is recorded from their outcomes.
    #[serde(default)]
    pub partitions: Option<Vec<PartitionDone>>,
}

/// Which partition an iteration matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTask {
    pub index: u32,
    pub count: u32,
}

/// What a partition iteration returns (small: the Map's results must fit a state's payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDone {
    pub index: u32,
    pub count: u32,
    /// Where its outcome is.
    pub key: String,
    pub processor_count: u64,
    pub ledger_count: u64,
    pub discrepancies: u64,
}

/// The match function's answer: a run summary, or one partition's receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchOutput {
    Run(Box<RunSummary>),
    Partition(PartitionDone),
}

/// The match step: a whole run (the default), one partition of a sharded run (`partition`), or the merge
/// of a sharded run (`partitions`).
pub async fn match_step(env: &Env, input: MatchInput) -> Result<MatchOutput, FnError> {
    if let Some(task) = input.partition {
        return match_one_partition(env, input, task)
            .await
            .map(MatchOutput::Partition);
    }
    if input.partitions.is_some() && input.error.is_none() {
        return merge_partitions(env, input)
            .await
            .map(|s| MatchOutput::Run(Box::new(s)));
    }
    r#match(env, input).await.map(|s| MatchOutput::Run(Box::new(s)))
}

fn request(input: &MatchInput) -> RunRequest {
    let p = input.processor;
    let execution = input
        .execution
        .clone()
        .unwrap_or_else(|| format!("manual:{}", uuid_like()));
    RunRequest {
        date: input.date,
        processor: p,
        trigger: input.trigger.clone().unwrap_or_else(|| "manual".into()),
        execution: Some(execution.clone()),
        idempotency_key: format!("{execution}:{p}:{}", input.date),
    }
}

/// The processor's and the ledger's manifests of a match input.
fn manifests_of(input: &MatchInput) -> Result<(Manifest, Manifest), AppError> {
    let p = input.processor;
    let (mut ledger, mut processor) = (None, None);
    for m in input.manifests.iter().flatten() {
        if m.source_name == "ledger" {
            ledger = Some(m.clone());
        } else if m.source_name == p.as_str() {
            processor = Some(m.clone());
        }
    }
    match (processor, ledger) {
        (Some(pm), Some(lm)) => Ok((pm, lm)),
        (None, _) => Err(AppError::InvalidInput(format!(
            "no {p} manifest in the match input for {}",
            input.date
        ))),
        (_, None) => Err(AppError::InvalidInput(format!(
            "no ledger manifest in the match input for {p} on {}",
            input.date
        ))),
    }
}

async fn match_one_partition(
    env: &Env,
    input: MatchInput,
    task: PartitionTask,
) -> Result<PartitionDone, FnError> {
    let db = env.db()?;
    db.migrate().await.map_err(AppError::Store)?;
    let req = request(&input);
    let (pm, lm) = manifests_of(&input)?;
    let pf = load_manifest(&env.objects, pm, 1000).await?;
    let lf = load_manifest(&env.objects, lm, 0).await?;
    let data = sides(input.processor, pf, lf)?;
    let deps = Deps {
        objects: &env.objects,
        db,
        config: &env.config,
    };
    let outcome = recon_app::match_partition(&deps, &req, data, task.index, task.count).await?;
    let key = recon_app::partition_key(&req, task.index, task.count);
    let body = serde_json::to_vec(&outcome).map_err(|e| AppError::Internal(format!("{key}: {e}")))?;
    env.objects
        .put(&key, body, "application/json")
        .await
        .map_err(AppError::Object)?;
    info!(processor = %input.processor, date = %input.date, partition = task.index, partitions = task.count,
          key = %key, discrepancies = outcome.discrepancies.len(), "partition matched");
    Ok(PartitionDone {
        index: task.index,
        count: task.count,
        key,
        processor_count: outcome.processor_count,
        ledger_count: outcome.ledger_count,
        discrepancies: outcome.discrepancies.len() as u64,
    })
}

async fn merge_partitions(env: &Env, input: MatchInput) -> Result<RunSummary, FnError> {
    let db = env.db()?;
    db.migrate().await.map_err(AppError::Store)?;
    let req = request(&input);
    let done = input.partitions.clone().unwrap_or_default();
    let count = done.first().map(|d| d.count).unwrap_or(0);
    let mut seen: Vec<u32> = done.iter().map(|d| d.index).collect();
    seen.sort_unstable();
    if count == 0 || done.iter().any(|d| d.count != count) || seen != (0..count).collect::<Vec<u32>>() {
        return Err(AppError::InvalidInput(format!(
            "merge of {} on {}: expected partitions 0..{count} once each, got {seen:?}; rerun the partitions",
            input.processor, input.date
        ))
        .into());
    }
    let (pm, lm) = manifests_of(&input)?;
    let mut parts = Vec::with_capacity(done.len());
    for d in &done {
        let expected = recon_app::partition_key(&req, d.index, d.count);
        if d.key != expected {
            return Err(AppError::InvalidInput(format!(
                "partition {} of {} is at {}, not {expected}: it belongs to another run",
                d.index, d.count, d.key
            ))
            .into());
        }
        let bytes = env.objects.get(&d.key).await.map_err(AppError::Object)?;
        let o: recon_core::Outcome = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::InvalidInput(format!("{}: not a partition outcome: {e}", d.key)))?;
        parts.push(o);
    }
    let deps = Deps {
        objects: &env.objects,
        db,
        config: &env.config,
    };
    let result = recon_app::run_match_with(
        &deps,
        &req,
        recon_app::MatchData::Partitions {
            parts,
            manifests: vec![pm, lm],
        },
    )
    .await?;
    Ok(result.summary)
}

/// Reconciles one processor's day from staged data; records the run and writes the reports.
pub async fn r#match(env: &Env, input: MatchInput) -> Result<RunSummary, FnError> {
    let db = env.db()?;
    db.migrate().await.map_err(AppError::Store)?;
    let p = input.processor;
    let req = request(&input);
    let data = match manifests_of(&input) {
        _ if input.error.is_some() => Err(input.error.clone().unwrap_or_default()),
        Ok((pm, lm)) => {
            let pf = load_manifest(&env.objects, pm, 1000).await;
            let lf = load_manifest(&env.objects, lm, 0).await;
            match (pf, lf) {
                (Ok(pf), Ok(lf)) => sides(p, pf, lf).map_err(|e| e.to_string()),
                (Err(e), _) => Err(e.to_string()),
                (_, Err(e)) => Err(format!("ledger: {e}")),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    let deps = Deps {
        objects: &env.objects,
        db,
        config: &env.config,
    };
    let result = run_match(&deps, &req, data).await?;
    Ok(result.summary)
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

/// A processor whose branch failed before a run could be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub processor: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub cause: Option<String>,
}

/// Input of the notify function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyInput {
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// Run summaries; an entry that is not a whole summary (`{processor, status: "failed", error}`, as the
    /// state machine writes for a crashed match) counts as a failure of that processor.
    #[serde(default)]
    pub runs: Vec<serde_json::Value>,
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// A failure of the whole pipeline (Step Functions `{Error, Cause}`), reported for `processors`.
    #[serde(default)]
    pub pipeline_error: Option<serde_json::Value>,
    #[serde(default)]
    pub processors: Vec<String>,
}

/// Output of the notify function: the SES message id, or `skipped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub message_id: Option<String>,
    pub skipped: bool,
}

/// Sends the operations email when a run reached `NOTIFY_MIN_SEVERITY` or anything failed.
#[tracing::instrument(name = "notify", skip_all, fields(date = ?input.date))]
pub async fn notify(env: &Env, input: NotifyInput) -> Result<NotifyOutput, FnError> {
    let date = input.date.unwrap_or_else(yesterday);
    let mut runs: Vec<RunSummary> = Vec::new();
    let mut failures = input.failures.clone();
    for v in input.runs {
        match serde_json::from_value::<RunSummary>(v.clone()) {
            Ok(r) => runs.push(r),
            Err(_) => failures.push(Failure {
                processor: v["processor"].as_str().unwrap_or("").to_string(),
                error: v["error"]
                    .as_str()
                    .unwrap_or("the run did not finish")
                    .to_string(),
                cause: None,
            }),
        }
    }
    if let Some(e) = &input.pipeline_error {
        let why = format!(
            "the reconciliation stopped: {}: {}",
            e["Error"].as_str().unwrap_or("error"),
            e["Cause"].as_str().unwrap_or("")
        );
        let names: Vec<String> = if input.processors.is_empty() {
            Processor::ALL.iter().map(|p| p.as_str().to_string()).collect()
        } else {
            input.processors.clone()
        };
        for p in names {
            failures.push(Failure {
                processor: p,
                error: why.clone(),
                cause: None,
            });
        }
    }
    for f in &failures {
        let processor: Processor = f.processor.parse().map_err(AppError::InvalidInput)?;
        let reason = match &f.cause {
            Some(c) if !c.is_empty() => format!("{}: {c}", f.error),
            _ => f.error.clone(),
        };
        runs.push(RunSummary::failed(String::new(), processor, reason));
    }
    if !should_notify(&runs, env.min_severity) {
        info!(date = %date, "nothing reaches the threshold; no email");
        return Ok(NotifyOutput {
            message_id: None,
            skipped: true,
        });
    }
    let mut notices = Vec::new();
    for r in runs {
        let (link, top) = if r.status == RunStatus::Succeeded && !r.run_id.is_empty() {
            let key = format!("reports/{}/{}/{}/report.html", date, r.processor, r.run_id);
            let link = recon_app::objects::ObjectStore::link(&env.objects, &key)
                .await
                .ok();
            (link, top_from_db(env, &r).await)
        } else {
            (None, Vec::new())
        };
        notices.push(RunNotice {
            summary: r,
            link,
            top,
        });
    }
    let email = compose(&date.to_string(), &notices, &env.sender, &env.operations)?;
    let id = env.mailer.send(&email).await?;
    info!(message_id = %id, "operations email sent");
    Ok(NotifyOutput {
        message_id: Some(id),
        skipped: false,
    })
}

async fn top_from_db(env: &Env, r: &RunSummary) -> Vec<TopItem> {
    let (Some(db), Ok(id)) = (env.db.as_ref(), r.run_id.parse()) else {
        return Vec::new();
    };
    match db.show_run(id).await {
        Ok(Some((_, ds))) => ds
            .into_iter()
            .filter(|d| d.severity.is_some())
            .take(10)
            .map(|d| TopItem {
                processor: r.processor.as_str().to_string(),
                category: d.category,
                severity: d.severity,
                processor_id: d.processor_record_id,
                ledger_id: d.ledger_id,
                reference: d.reference,
                amount: d.amount_at_stake.to_string(),
                currency: d.currency,
                details: d.details,
                rank: (None, 0),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A dropped object: bucket, key, ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub bucket: String,
    pub key: String,
    pub etag: String,
}

/// Objects named by an S3 event: an EventBridge "Object Created" event or a classic S3 notification.
pub fn dropped_objects(event: &serde_json::Value) -> Vec<Dropped> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    if let Some(detail) = event.get("detail") {
        return vec![Dropped {
            bucket: s(&detail["bucket"]["name"]),
            key: s(&detail["object"]["key"]),
            etag: s(&detail["object"]["etag"]),
        }];
    }
    event
        .get("Records")
        .and_then(|r| r.as_array())
        .map(|records| {
            records
                .iter()
                .map(|r| Dropped {
                    bucket: s(&r["s3"]["bucket"]["name"]),
                    // classic notifications URL-encode keys (spaces as '+')
                    key: urldecode(&s(&r["s3"]["object"]["key"])),
                    etag: s(&r["s3"]["object"]["eTag"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn urldecode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// Validates `inbox/{processor}/{YYYY-MM-DD}/{file}`.
pub fn parse_inbox_key(key: &str) -> Result<(Processor, NaiveDate), String> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["inbox", p, d, file] if !file.is_empty() => {
            let processor: Processor = p.parse()?;
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| format!("{d:?} is not a YYYY-MM-DD date"))?;
            Ok((processor, date))
        }
        _ => Err(format!(
            "{key:?} is not inbox/{{stripe|paypal|square}}/{{YYYY-MM-DD}}/{{file}}"
        )),
    }
}

/// What the trigger did with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerOutcome {
    pub key: String,
    /// `started`, `duplicate` or `skipped`.
    pub outcome: String,
    pub execution: Option<String>,
    pub reason: Option<String>,
}

/// Starts one execution per dropped file; a duplicate event is a no-op; a bad key is logged and skipped.
pub async fn s3_trigger(env: &Env, event: serde_json::Value) -> Result<Vec<TriggerOutcome>, FnError> {
    let arn = env
        .state_machine_arn
        .clone()
        .ok_or_else(|| AppError::InvalidInput("STATE_MACHINE_ARN is not set".into()))?;
    let mut out = Vec::new();
    for d in dropped_objects(&event) {
        match parse_inbox_key(&d.key) {
            Err(reason) => {
                warn!(key = %d.key, %reason, "not a settlement drop; skipped");
                out.push(TriggerOutcome {
                    key: d.key,
                    outcome: "skipped".into(),
                    execution: None,
                    reason: Some(reason),
                });
            }
            Ok((p, date)) => {
                let etag = d.etag.trim_matches('"').to_string();
                let name = execution_name(&["s3", p.as_str(), &date.to_string(), &etag]);
                let input = json!({"date": date, "processors": [p], "source": {"bucket": d.bucket, "key": d.key}, "trigger": "s3"});
                let started = start_execution(&env.aws.sfn, &arn, &name, &input).await?;
                let outcome = match started {
                    Started::New { execution_arn } => {
                        info!(key = %d.key, execution = %execution_arn, "execution started");
                        TriggerOutcome {
                            key: d.key,
                            outcome: "started".into(),
                            execution: Some(execution_arn),
                            reason: None,
                        }
                    }
                    Started::AlreadyExists => {
                        info!(key = %d.key, name = %name, "duplicate event: execution exists");
                        TriggerOutcome {
                            key: d.key,
                            outcome: "duplicate".into(),
                            execution: Some(name),
                            reason: None,
                        }
                    }
                };
                out.push(outcome);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_keys_are_validated() {
        assert!(parse_inbox_key("inbox/stripe/2025-01-15/report.csv").is_ok());
        assert!(parse_inbox_key("inbox/venmo/2025-01-15/x.csv").is_err());
        assert!(parse_inbox_key("inbox/stripe/15-01-2025/x.csv").is_err());
        assert!(parse_inbox_key("raw/stripe/2025-01-15/x.csv").is_err());
        assert!(parse_inbox_key("inbox/stripe/2025-01-15/").is_err());
    }

    #[test]
    fn classic_keys_are_url_decoded() {
        let ev = json!({"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"inbox/paypal/2025-01-15/STL+2025%2B1.CSV","eTag":"abc"}}}]});
        assert_eq!(
            dropped_objects(&ev)[0].key,
            "inbox/paypal/2025-01-15/STL 2025+1.CSV"
        );
    }
}
