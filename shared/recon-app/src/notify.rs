//! The notify step: when a run reaches the threshold or failed, compose the operations email (HTML and
//! plain-text parts) and hand it to a [`Mailer`] — SES in AWS, an `.eml` outbox locally.

use std::future::Future;
use std::path::PathBuf;

use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use minijinja::{context, Environment};
use recon_core::{Category, RunStatus, RunSummary, Severity};
use serde::Serialize;

use crate::report::TopItem;
use crate::AppError;

/// A composed email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl Email {
    /// RFC 5322 bytes (multipart/alternative), as written to an `.eml` file or sent raw.
    pub fn to_rfc5322(&self) -> Result<Vec<u8>, AppError> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| AppError::InvalidInput(format!("SENDER_EMAIL {:?}: {e}", self.from)))?;
        let mut b = Message::builder().from(from).subject(self.subject.clone());
        for t in &self.to {
            let m: Mailbox = t
                .parse()
                .map_err(|e| AppError::InvalidInput(format!("OPERATIONS_EMAIL {t:?}: {e}")))?;
            b = b.to(m);
        }
        let msg = b
            .multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                self.html.clone(),
            ))
            .map_err(|e| AppError::failed("building the email", e))?;
        Ok(msg.formatted())
    }
}

/// Sends an email; returns a message id.
pub trait Mailer: Send + Sync {
    fn send(&self, email: &Email) -> impl Future<Output = Result<String, AppError>> + Send;
}

/// Writes each email as an `.eml` file into a directory (the local stand-in for SES).
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    pub dir: PathBuf,
}

impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<String, AppError> {
        let bytes = email.to_rfc5322()?;
        let id = uuid::Uuid::now_v7().to_string();
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| AppError::failed(format!("creating outbox {}", self.dir.display()), e))?;
        let path = self.dir.join(format!("{id}.eml"));
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|e| AppError::failed(format!("writing {}", path.display()), e))?;
        Ok(path.display().to_string())
    }
}

/// Should these runs be notified at `min` severity? Also when an item escalated by age in a run (issue 15),
/// even if the run alone would not alert.
pub fn should_notify(runs: &[RunSummary], min: Severity) -> bool {
    runs.iter().any(|r| {
        r.status == RunStatus::Failed || r.severity.is_some_and(|s| s >= min) || r.escalated_count > 0
    })
}

/// What the email shows of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunNotice {
    pub summary: RunSummary,
    /// Link to the run's `report.html`.
    pub link: Option<String>,
    pub top: Vec<TopItem>,
    /// The run's items: new today, still open, resolved since the last run (none for a failed run).
    pub items: Option<recon_store::ItemDigest>,
}

/// Something the email reports beside the runs, with the reason: a name in the execution's input that is no
/// processor (`NOT RECONCILED`), or the day's report email that could not be sent (`NOT SENT`). The email names
/// it; it never stops the email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub name: String,
    /// `NOT RECONCILED` or `NOT SENT`.
    pub status: &'static str,
    pub reason: String,
}

impl Problem {
    pub const NOT_RECONCILED: &'static str = "NOT RECONCILED";
    pub const NOT_SENT: &'static str = "NOT SENT";
}

/// Composes the operations email for a day.
pub fn compose(
    date: &str,
    notices: &[RunNotice],
    problems: &[Problem],
    from: &str,
    to: &[String],
) -> Result<Email, AppError> {
    let failed: Vec<&str> = notices
        .iter()
        .filter(|n| n.summary.status == RunStatus::Failed)
        .map(|n| n.summary.processor.as_str())
        .chain(
            problems
                .iter()
                .filter(|p| p.status == Problem::NOT_RECONCILED)
                .map(|p| p.name.as_str()),
        )
        .collect();
    let worst = notices.iter().filter_map(|n| n.summary.severity).max();
    let mut headline = match (failed.is_empty(), worst) {
        (false, _) => format!("FAILED for {}", failed.join(", ")),
        (true, Some(s)) => format!("{s} discrepancies"),
        (true, None) => "no discrepancies".to_string(),
    };
    // items that escalated by age send the email on a day that alone would not: say so first
    let escalated: u64 = notices.iter().map(|n| n.summary.escalated_count).sum();
    if escalated > 0 {
        let open: u64 = notices.iter().map(|n| n.summary.open_items.count).sum();
        headline = format!(
            "{escalated} open item{} escalated by age ({open} open); {headline} today",
            if escalated == 1 { "" } else { "s" }
        );
    }
    if problems.iter().any(|p| p.status == Problem::NOT_SENT) {
        headline += " (the report email was not sent)";
    }
    let mut top: Vec<TopItem> = notices.iter().flat_map(|n| n.top.iter().cloned()).collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.rank));
    top.truncate(10);
    #[derive(Serialize)]
    struct R<'a> {
        processor: &'a str,
        status: &'a str,
        severity: Option<String>,
        error: Option<&'a str>,
        processor_count: u64,
        ledger_count: u64,
        matched_count: u64,
        clean_count: u64,
        counts: Vec<(&'static str, u64)>,
        totals: &'a std::collections::BTreeMap<String, String>,
        excluded: &'a std::collections::BTreeMap<String, u64>,
        out_of_window: Option<String>,
        warnings: &'a [String],
        link: Option<&'a str>,
        items: Option<&'a recon_store::ItemDigest>,
        new_count: u64,
        still_open_count: u64,
        resolved_count: u64,
        escalated_count: u64,
        open_line: String,
    }
    let runs: Vec<R<'_>> = notices
        .iter()
        .map(|n| {
            let s = &n.summary;
            let c = &s.discrepancy_counts;
            let counts = Category::ALL
                .into_iter()
                .map(|k| (k.as_str(), c.get(k)))
                .chain([("pending", c.pending)])
                .filter(|(_, v)| *v > 0)
                .collect();
            R {
                processor: s.processor.as_str(),
                status: s.status.as_str(),
                severity: s.severity.map(|v| v.to_string()),
                error: s.error.as_deref(),
                processor_count: s.processor_count,
                ledger_count: s.ledger_count,
                matched_count: s.matched_count,
                clean_count: s.clean_count,
                counts,
                totals: &s.total_discrepancy_amount,
                excluded: &s.excluded_counts,
                out_of_window: crate::report::out_of_window_line(date, s),
                warnings: &s.warnings,
                link: n.link.as_deref(),
                items: n.items.as_ref(),
                new_count: s.new_count,
                still_open_count: s.still_open_count,
                resolved_count: s.resolved_since_last_count,
                escalated_count: s.escalated_count,
                open_line: crate::report::open_items_line(s),
            }
        })
        .collect();
    let mut env = Environment::new();
    let terr = |e: minijinja::Error| AppError::failed("email template", e);
    // `.html`: auto-escaped; `.txt`: plain text
    env.add_template("email.html", include_str!("../templates/email.html"))
        .map_err(terr)?;
    env.add_template("email.txt", include_str!("../templates/email.txt"))
        .map_err(terr)?;
    let ctx =
        context! { date => date, headline => &headline, problems => problems, runs => runs, top => top };
    let html = env
        .get_template("email.html")
        .and_then(|t| t.render(&ctx))
        .map_err(terr)?;
    let text = env
        .get_template("email.txt")
        .and_then(|t| t.render(&ctx))
        .map_err(terr)?;
    Ok(Email {
        from: from.to_string(),
        to: to.to_vec(),
        subject: format!("[recon] {date}: {headline}"),
        html,
        text,
    })
}
