//! The notify step (`notify`): sends the operations email when a run reached `NOTIFY_MIN_SEVERITY` or
//! anything failed; returns the message id, or `skipped`.

use chrono::NaiveDate;
use recon_core::{Processor, RunStatus, RunSummary};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{yesterday, Ports, StartExecution};
use crate::keys;
use crate::notify::{compose, should_notify, Mailer, Problem, RunNotice};
use crate::objects::ObjectStore;
use crate::report::TopItem;
use crate::AppError;

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
    /// The Step Functions execution: with the kind of email (`report`, or `failure` with `pipeline_error`),
    /// what makes a retried notify send nothing twice.
    #[serde(default)]
    pub execution: Option<String>,
}

/// Output of the notify function: the SES message id, or `skipped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyOutput {
    pub message_id: Option<String>,
    pub skipped: bool,
    /// This execution's email of this kind was sent (or attempted without an answer) before: not sent again.
    #[serde(default)]
    pub already_sent: bool,
}

/// The runs of a notify input, failures included as failed runs; a failure of a name that is no processor
/// (an execution asked for `venmo`) is a problem the email names, never an error that stops the email.
fn runs_of(input: NotifyInput) -> (Vec<RunSummary>, Vec<Problem>) {
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
    let mut problems = Vec::new();
    if let Some(e) = &input.pipeline_error {
        let (error, cause) = (
            e["Error"].as_str().unwrap_or("error"),
            e["Cause"].as_str().unwrap_or(""),
        );
        if runs.is_empty() && failures.is_empty() {
            // the pipeline stopped before any run: every processor it was asked for failed
            let why = format!("the reconciliation stopped: {error}: {cause}");
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
        } else {
            // the runs were recorded and only the report email failed: the runs keep their own figures and
            // status, and this email says the report was not sent
            problems.push(Problem {
                name: "the report email".into(),
                status: Problem::NOT_SENT,
                reason: format!("{error}: {cause}; this email carries the day's runs instead"),
            });
        }
    }
    for f in &failures {
        let reason = match &f.cause {
            Some(c) if !c.is_empty() => format!("{}: {c}", f.error),
            _ => f.error.clone(),
        };
        match f.processor.parse::<Processor>() {
            Ok(processor) => runs.push(RunSummary::failed(String::new(), processor, reason)),
            Err(unknown) => problems.push(Problem {
                name: f.processor.clone(),
                status: Problem::NOT_RECONCILED,
                reason: format!(
                    "{unknown}: nothing was reconciled for it ({reason}); fix the execution's input"
                ),
            }),
        }
    }
    (runs, problems)
}

/// Sends the operations email when a run reached `NOTIFY_MIN_SEVERITY` or anything failed.
#[tracing::instrument(name = "notify", skip_all, fields(date = ?input.date))]
pub async fn notify<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: NotifyInput,
) -> Result<NotifyOutput, AppError> {
    let date = input.date.unwrap_or_else(yesterday);
    let kind = if input.pipeline_error.is_some() {
        "failure"
    } else {
        "report"
    };
    let execution = input.execution.clone();
    let (runs, problems) = runs_of(input);
    let settings = &ports.settings.notify;
    if problems.is_empty() && !should_notify(&runs, settings.min_severity) {
        info!(date = %date, "nothing reaches the threshold; no email");
        return Ok(NotifyOutput {
            message_id: None,
            skipped: true,
            already_sent: false,
        });
    }
    let mut notices = Vec::new();
    for r in runs {
        let (link, top, items) = if r.status == RunStatus::Succeeded && !r.run_id.is_empty() {
            let key = format!("{}report.html", keys::report_run(date, r.processor, &r.run_id));
            let link = ports.objects.link(&key).await.ok();
            (
                link,
                top_from_db(ports, &r).await,
                items_from_db(ports, &r, date).await,
            )
        } else {
            (None, Vec::new(), None)
        };
        notices.push(RunNotice {
            summary: r,
            link,
            top,
            items,
        });
    }
    let email = compose(
        &date.to_string(),
        &notices,
        &problems,
        &settings.from,
        &settings.to,
    )?;
    let marker = execution.as_deref().map(|e| keys::notification(date, e, kind));
    if let Some(marker) = &marker {
        if !claim(&ports.objects, marker).await? {
            info!(%marker, "this execution's email was sent before; not sending it again");
            return Ok(NotifyOutput {
                message_id: None,
                skipped: true,
                already_sent: true,
            });
        }
    }
    let sent = ports.mailer.send(&email).await;
    if let Some(marker) = &marker {
        // what the record says now: sent, or not sent (a retry may send), or unknown (left as "sending": a
        // retry sends nothing, at most one email)
        let state = match &sent {
            Ok(id) => Some(format!("sent {id}")),
            Err(AppError::Uncertain(_)) => None,
            Err(_) => Some(NOT_SENT.to_string()),
        };
        if let Some(state) = state {
            let _ = ports.objects.put(marker, state.into_bytes(), "text/plain").await;
        }
    }
    let id = sent?;
    info!(message_id = %id, "operations email sent");
    Ok(NotifyOutput {
        message_id: Some(id),
        skipped: false,
        already_sent: false,
    })
}

/// What the idempotency record of an email says when the last attempt certainly did not send it.
const NOT_SENT: &str = "not sent";

/// Takes the right to send: writes the record when there is none (`true`), or takes over one whose last
/// attempt certainly failed (`true`); a record of a sent email, or of an attempt with no answer, is `false`.
async fn claim<S: ObjectStore>(objects: &S, marker: &str) -> Result<bool, AppError> {
    if objects
        .put_new(marker, b"sending".to_vec(), "text/plain")
        .await
        .map_err(AppError::Object)?
    {
        return Ok(true);
    }
    let state = objects.get(marker).await.map_err(AppError::Object)?;
    if state != NOT_SENT.as_bytes() {
        return Ok(false);
    }
    objects
        .put(marker, b"sending".to_vec(), "text/plain")
        .await
        .map_err(AppError::Object)?;
    Ok(true)
}

/// The item digest of a recorded run, for the email (none when the database cannot say).
async fn items_from_db<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    r: &RunSummary,
    date: chrono::NaiveDate,
) -> Option<recon_store::ItemDigest> {
    let (db, id) = (ports.db_if_any()?, r.run_id.parse().ok()?);
    db.item_digest(r.processor, date, id).await.ok()
}

/// The ten most severe items of a recorded run, for the email (none when the database cannot say).
async fn top_from_db<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    r: &RunSummary,
) -> Vec<TopItem> {
    let (Some(db), Ok(id)) = (ports.db_if_any(), r.run_id.parse()) else {
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
