//! The write path: a run and all its discrepancies recorded in one transaction (bulk binary `COPY`),
//! idempotently per execution + processor + date, superseding the previous current run of the same date and
//! processor; carried items resolved; the pending items a rerun of an older day re-finds.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::pin_mut;
use recon_core::{Discrepancy, ItemRules, Outcome, Processor, RunStatus, RunSummary};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use crate::error::q;
use crate::items::ItemDigest;
use crate::{Store, StoreError};

/// Everything needed to record one run.
#[derive(Debug)]
pub struct NewRun<'a> {
    pub run_id: Uuid,
    pub date: NaiveDate,
    pub processor: Processor,
    pub trigger: &'a str,
    pub execution: Option<&'a str>,
    pub idempotency_key: &'a str,
    pub grace_days: u32,
    pub summary: &'a RunSummary,
    /// `None` for a failed run.
    pub outcome: Option<&'a Outcome>,
    pub manifests: Value,
    pub report_keys: Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// First-seen dates of the carried items, by carried id.
    pub first_seen: &'a HashMap<i64, NaiveDate>,
    /// The day's ledger rows that belong to no processor's run (kept once per source location).
    pub unattributed: &'a [Unattributed],
    /// Escalation by age of the processor's open items (issue 15).
    pub rules: ItemRules,
}

/// A ledger row whose processor column is unknown or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Unattributed {
    /// Object key and line.
    pub source: String,
    pub field: Option<String>,
    pub reason: String,
    pub raw: String,
}

/// The result of [`Store::record_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written now; the previous current run (if any) is superseded.
    New { run_id: Uuid, superseded: Option<Uuid> },
    /// Kept in history behind the day's current run (superseded by it at once), never displacing it: a failed
    /// attempt on a day whose current run succeeded, or a run made from older input than the current run's.
    Attempt { run_id: Uuid, current: Uuid },
    /// The same idempotency key was recorded before: nothing written, here is the earlier run.
    Existing {
        run_id: Uuid,
        summary: Option<Box<RunSummary>>,
    },
}

/// When a run's newest input was fetched: the latest `fetched_at` of its manifests (RFC 3339 UTC with
/// milliseconds, so text order is time order). `None` for a run without manifests.
fn newest_input(manifests: &Value) -> Option<String> {
    manifests
        .as_array()?
        .iter()
        .filter_map(|m| m.get("fetched_at")?.as_str())
        .max()
        .map(str::to_string)
}

fn dec(minor: i64, currency: recon_core::Currency) -> Decimal {
    recon_core::Money::new(minor, currency).to_decimal()
}

impl Store {
    /// The run recorded under `key`, if any.
    pub async fn find_by_key(&self, key: &str) -> Result<Option<(Uuid, Option<RunSummary>)>, StoreError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT id, summary FROM reconciliation_runs WHERE idempotency_key = $1",
                &[&key],
            )
            .await
            .map_err(q("looking up the idempotency key"))?;
        Ok(row.map(|r| {
            let summary: Option<Value> = r.get(1);
            (r.get(0), summary.and_then(|s| serde_json::from_value(s).ok()))
        }))
    }

    /// Records a run and its discrepancies in one transaction. Idempotent on `idempotency_key`.
    pub async fn record_run(&self, run: &NewRun<'_>) -> Result<Recorded, StoreError> {
        let done = self
            .record_run_with(run, |_, _| async { Ok::<(), std::convert::Infallible>(()) })
            .await?;
        match done {
            Ok((recorded, _, _)) => Ok(recorded),
            Err(never) => match never {},
        }
    }

    /// [`Self::record_run`], with `finish` called inside the transaction before it commits: with the run's
    /// summary as recorded (its day-over-day item figures filled in for a run that became current) and that
    /// run's item digest. The run becomes visible only once `finish` succeeded (the reports it writes exist
    /// before the row that points at them); when `finish` fails, nothing is written and its error is returned.
    /// Not called for a key recorded before.
    pub async fn record_run_with<E, F, Fut>(
        &self,
        run: &NewRun<'_>,
        finish: F,
    ) -> Result<Result<(Recorded, RunSummary, Option<ItemDigest>), E>, StoreError>
    where
        F: FnOnce(RunSummary, Option<ItemDigest>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let mut obj = self.client().await?;
        let tx = obj
            .transaction()
            .await
            .map_err(q("starting the run transaction"))?;
        let p = run.processor.as_str();
        // runs of one processor and date are recorded one at a time: a second waits (bounded) for the first
        // to commit, then supersedes it, instead of failing on the one-current-run index
        tx.batch_execute("SET LOCAL lock_timeout = '60s'")
            .await
            .map_err(q("setting the lock timeout"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('recon-run'), hashtext($1))",
            &[&format!("{p}/{}", run.date)],
        )
        .await
        .map_err(q("waiting for another run of the same processor and date"))?;
        // a retry of the same execution records nothing new (also when it was recorded while this one waited)
        if let Some(r) = tx
            .query_opt(
                "SELECT id, summary FROM reconciliation_runs WHERE idempotency_key = $1",
                &[&run.idempotency_key],
            )
            .await
            .map_err(q("checking the idempotency key"))?
        {
            let summary: Option<Value> = r.get(1);
            let summary: Option<RunSummary> = summary.and_then(|s| serde_json::from_value(s).ok());
            let known = summary.clone().unwrap_or_else(|| run.summary.clone());
            return Ok(Ok((
                Recorded::Existing {
                    run_id: r.get(0),
                    summary: summary.map(Box::new),
                },
                known,
                None,
            )));
        }
        // the current run of this date and processor, locked; it becomes superseded
        let current: Option<(Uuid, String, Value)> = tx
            .query_opt(
                "SELECT id, status, input_manifests FROM reconciliation_runs
                 WHERE run_date = $1 AND processor_name = $2 AND status <> 'superseded' FOR UPDATE",
                &[&run.date, &p],
            )
            .await
            .map_err(q("locking the current run"))?
            .map(|r| (r.get(0), r.get(1), r.get(2)));
        // the current run stays current, and this one is kept as history behind it (superseded at once), when
        // this one failed and the current one succeeded, or when this one was made from older input (two
        // executions of one day finishing in the other order): the day's figures are those of its newest
        // complete input, whatever order runs finish in
        let kept = match &current {
            Some((id, status, _)) if status == "succeeded" && run.summary.status == RunStatus::Failed => {
                Some(*id)
            }
            Some((id, _, inputs)) if newest_input(inputs) > newest_input(&run.manifests) => Some(*id),
            _ => None,
        };
        let old: Option<Uuid> = if kept.is_some() {
            None
        } else {
            current.map(|c| c.0)
        };
        if let Some(old) = old {
            // items of current runs that the superseded run had resolved are open again (the new run takes
            // them again); items of superseded runs never come back
            tx.execute(
                "UPDATE discrepancies SET lifecycle = 'pending', resolution = NULL, resolved_by = NULL,
                        resolved_at = NULL, resolution_note = NULL, resolved_in_run = NULL
                 WHERE resolved_in_run = $1 AND resolved_by = 'recon' AND resolution <> 'superseded'
                   AND run_id IN (SELECT id FROM reconciliation_runs WHERE status <> 'superseded' AND id <> $1)",
                &[&old],
            )
            .await
            .map_err(q("reopening items the superseded run had resolved"))?;
            tx.execute(
                "UPDATE reconciliation_runs SET status = 'superseded' WHERE id = $1",
                &[&old],
            )
            .await
            .map_err(q("superseding the previous run"))?;
        }
        let s = run.summary;
        let c = &s.discrepancy_counts;
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let status = match kept {
            Some(_) => crate::RunState::Superseded.as_str(),
            None => crate::RunState::from(s.status).as_str(),
        };
        let severity = s.severity.map(|v| v.as_str());
        let totals = serde_json::to_value(&s.total_discrepancy_amount).unwrap_or(Value::Null);
        let excluded = serde_json::to_value(&s.excluded_counts).unwrap_or(Value::Null);
        let summary = serde_json::to_value(s).unwrap_or(Value::Null);
        let carried_n = i(run.outcome.map(|o| o.carried_count).unwrap_or(0));
        let grace = i32::try_from(run.grace_days).map_err(|_| StoreError::Data {
            what: "recording the run",
            detail: format!("grace_days {} is out of range", run.grace_days),
            source: None,
        })?;
        tx.execute(
            "INSERT INTO reconciliation_runs (id, run_date, processor_name, status, severity, trigger, execution_arn,
                idempotency_key, grace_days, processor_count, ledger_count, matched_count, clean_count,
                missing_in_ledger_count, missing_in_processor_count, amount_mismatch_count, currency_mismatch_count,
                status_mismatch_count, duplicate_count, invalid_record_count, pending_count, carried_forward_count,
                missing_transaction_count, total_discrepancy_amount, excluded_counts, input_manifests, report_keys,
                summary, error, started_at, finished_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,
                     $27,$28,$29,$30,$31)",
            &[
                &run.run_id,
                &run.date,
                &p,
                &status,
                &severity,
                &run.trigger,
                &run.execution,
                &run.idempotency_key,
                &grace,
                &i(s.processor_count),
                &i(s.ledger_count),
                &i(s.matched_count),
                &i(s.clean_count),
                &i(c.missing_in_ledger),
                &i(c.missing_in_processor),
                &i(c.amount_mismatch),
                &i(c.currency_mismatch),
                &i(c.status_mismatch),
                &i(c.duplicate),
                &i(c.invalid_record),
                &i(c.pending),
                &carried_n,
                &i(c.missing_in_ledger + c.missing_in_processor),
                &totals,
                &excluded,
                &run.manifests,
                &run.report_keys,
                &summary,
                &s.error,
                &run.started_at,
                &run.finished_at,
            ],
        )
        .await
        .map_err(q("inserting the run"))?;
        if let Some(good) = kept {
            tx.execute(
                "UPDATE reconciliation_runs SET superseded_by = $2 WHERE id = $1",
                &[&run.run_id, &good],
            )
            .await
            .map_err(q("keeping the failed attempt behind the current run"))?;
        }
        if let Some(old) = old {
            tx.execute(
                "UPDATE reconciliation_runs SET superseded_by = $2 WHERE id = $1",
                &[&old, &run.run_id],
            )
            .await
            .map_err(q("linking the superseded run"))?;
            // the superseded run's own pending items, and items of superseded runs it had resolved, are
            // closed: the new run re-derives them (never pending forever)
            tx.execute(
                "UPDATE discrepancies SET lifecycle = 'resolved', resolution = 'superseded', resolved_by = 'recon',
                        resolved_at = now(), resolution_note = $3, resolved_in_run = $2
                 WHERE (run_id = $1 AND lifecycle = 'pending')
                    OR (resolved_in_run = $1 AND resolved_by = 'recon'
                        AND run_id IN (SELECT id FROM reconciliation_runs WHERE status = 'superseded'))",
                &[&old, &run.run_id, &format!("run superseded by {}", run.run_id)],
            )
            .await
            .map_err(q("closing the superseded run's pending items"))?;
        }
        if let Some(o) = run.outcome {
            for (cur, total) in &o.totals {
                let scale = u32::from(cur.exponent());
                let d = Decimal::from_i128_with_scale(*total, scale);
                tx.execute(
                    "INSERT INTO run_currency_totals (run_id, currency, total_discrepancy_amount) VALUES ($1, $2, $3)",
                    &[&run.run_id, &cur.code(), &d],
                )
                .await
                .map_err(q("inserting currency totals"))?;
            }
            let clock = std::time::Instant::now();
            copy_discrepancies(&tx, run, &o.discrepancies).await?;
            tracing::debug!(
                rows = o.discrepancies.len(),
                elapsed_ms = clock.elapsed().as_millis() as u64,
                "discrepancies copied"
            );
            match kept {
                None => {
                    crate::carry::resolve_carried(&tx, run, &o.carried).await?;
                    crate::carry::inherit_later_resolutions(&tx, run).await?;
                }
                // a run kept as history resolves nothing, and its own pending items are closed at once
                Some(current) => {
                    tx.execute(
                        "UPDATE discrepancies SET lifecycle = 'resolved', resolution = 'superseded',
                                resolved_by = 'recon', resolved_at = now(), resolution_note = $3, resolved_in_run = $2
                         WHERE run_id = $1 AND lifecycle = 'pending'",
                        &[&run.run_id, &current, &format!("kept behind the current run {current}")],
                    )
                    .await
                    .map_err(q("closing the pending items of a run kept as history"))?;
                }
            }
        }
        // items: the run that became current opens, finds again, closes and escalates them, and its summary
        // gets the day-over-day figures
        let mut summary_out = run.summary.clone();
        let mut digest = None;
        let clock = std::time::Instant::now();
        if kept.is_none() {
            crate::items::sync(&tx, run.run_id, old).await?;
            if run.outcome.is_some() {
                let escalated =
                    crate::items::escalate(&tx, run.processor, run.date, run.run_id, &run.rules).await?;
                let (f, d) = crate::items::day_over_day(&*tx, run.processor, run.date, run.run_id).await?;
                summary_out.new_count = f.new;
                summary_out.still_open_count = f.still_open;
                summary_out.resolved_since_last_count = f.resolved_since;
                summary_out.open_items = f.open;
                summary_out.oldest_open_age_days = f.oldest;
                summary_out.escalated_count = escalated;
                digest = Some(d);
                let stored = serde_json::to_value(&summary_out).unwrap_or(Value::Null);
                tx.execute(
                    "UPDATE reconciliation_runs SET summary = $2 WHERE id = $1",
                    &[&run.run_id, &stored],
                )
                .await
                .map_err(q("storing the run's day-over-day figures"))?;
            }
        }
        for u in run.unattributed {
            tx.execute(
                "INSERT INTO unattributed_ledger_rows (run_date, source, field, reason, raw_record, first_run_id)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_date, source) DO NOTHING",
                &[&run.date, &u.source, &u.field, &u.reason, &u.raw, &run.run_id],
            )
            .await
            .map_err(q("keeping the unattributed ledger rows"))?;
        }
        tracing::debug!(
            elapsed_ms = clock.elapsed().as_millis() as u64,
            "items brought up to date"
        );
        if let Err(e) = finish(summary_out.clone(), digest.clone()).await {
            // nothing of this run is kept (the transaction rolls back when dropped)
            return Ok(Err(e));
        }
        tx.commit().await.map_err(q("committing the run"))?;
        let recorded = match kept {
            Some(current) => Recorded::Attempt {
                run_id: run.run_id,
                current,
            },
            None => Recorded::New {
                run_id: run.run_id,
                superseded: old,
            },
        };
        Ok(Ok((recorded, summary_out, digest)))
    }

    /// Which of these run ids are recorded.
    pub async fn existing_runs(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT id FROM reconciliation_runs WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(q("looking up run ids"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

async fn copy_discrepancies(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &NewRun<'_>,
    ds: &[Discrepancy],
) -> Result<(), StoreError> {
    let sink = tx
        .copy_in(
            "COPY discrepancies (run_id, run_date, processor_name, category, severity, processor_record_id, ledger_id,
                processor_txn_id, reference, kind, processor_amount, processor_currency, ledger_amount, ledger_currency,
                amount_at_stake, currency, occurred_at, processor_source, ledger_source, details, raw_record,
                lifecycle, first_seen_date, carried_from, carry, item_key) FROM STDIN BINARY",
        )
        .await
        .map_err(q("starting COPY of discrepancies"))?;
    let types = [
        Type::UUID,
        Type::DATE,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::NUMERIC,
        Type::TEXT,
        Type::NUMERIC,
        Type::TEXT,
        Type::NUMERIC,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::INT8,
        Type::JSON,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let p = run.processor.as_str();
    let keys = recon_core::item_keys(run.processor, run.date, ds);
    for (d, item_key) in ds.iter().zip(&keys) {
        let severity = d.severity.map(|s| s.as_str());
        let kind = d.kind.map(|k| k.as_str());
        let pa = d.processor_amount.map(|m| m.to_decimal());
        let pc = d.processor_amount.map(|m| m.currency.code().to_string());
        let la = d.ledger_amount.map(|m| m.to_decimal());
        let lc = d.ledger_amount.map(|m| m.currency.code().to_string());
        let stake = d
            .currency
            .map(|c| dec(d.amount_at_stake, c))
            .unwrap_or(Decimal::ZERO);
        let cur = d.currency.map(|c| c.code().to_string());
        let occurred = d.occurred_at.and_then(DateTime::<Utc>::from_timestamp_millis);
        let first_seen = d
            .carried_from
            .and_then(|id| run.first_seen.get(&id).copied())
            .unwrap_or(run.date);
        // serialised straight into the COPY buffer (no JSON tree per row); a record that cannot be serialised
        // fails the COPY, never a silently empty carry
        let carry = d.carry.as_ref().map(Json);
        let row: [&(dyn ToSql + Sync); 26] = [
            &run.run_id,
            &run.date,
            &p,
            &d.category.as_str(),
            &severity,
            &d.processor_id.as_deref(),
            &d.ledger_id.as_deref(),
            &d.processor_txn_id.as_deref(),
            &d.reference.as_deref(),
            &kind,
            &pa,
            &pc,
            &la,
            &lc,
            &stake,
            &cur,
            &occurred,
            &d.processor_source,
            &d.ledger_source,
            &d.details,
            &d.raw,
            &d.lifecycle.as_str(),
            &first_seen,
            &d.carried_from,
            &carry,
            item_key,
        ];
        writer
            .as_mut()
            .write(&row)
            .await
            .map_err(q("writing discrepancies"))?;
    }
    writer
        .finish()
        .await
        .map_err(q("finishing COPY of discrepancies"))?;
    Ok(())
}
