//! The read path: runs as `recon runs` lists them, one run with its discrepancies, the trend of the last
//! runs, and the day's unattributed ledger rows.

use chrono::{DateTime, NaiveDate, Utc};
use recon_core::Processor;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::q;
use crate::{Store, StoreError, Unattributed};

/// The state of a recorded run: `succeeded` or `failed` as recorded, `superseded` once a later run of the
/// same date and processor took its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Succeeded,
    Failed,
    Superseded,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Superseded => "superseded",
        }
    }
}

impl std::str::FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<RunState, String> {
        [RunState::Succeeded, RunState::Failed, RunState::Superseded]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown run status {s:?}"))
    }
}

impl From<recon_core::RunStatus> for RunState {
    fn from(s: recon_core::RunStatus) -> RunState {
        match s {
            recon_core::RunStatus::Succeeded => RunState::Succeeded,
            recon_core::RunStatus::Failed => RunState::Failed,
        }
    }
}

/// A run as `recon runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: Uuid,
    pub run_date: NaiveDate,
    pub processor: String,
    pub status: RunState,
    pub severity: Option<String>,
    pub trigger: String,
    pub processor_count: i64,
    pub ledger_count: i64,
    pub matched_count: i64,
    pub missing_transaction_count: i64,
    pub discrepancy_count: i64,
    pub total_discrepancy_amount: Value,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub summary: Option<Value>,
    pub report_keys: Value,
}

/// A stored discrepancy as `recon show` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DiscrepancyRow {
    pub id: i64,
    pub category: String,
    pub severity: Option<String>,
    pub lifecycle: String,
    pub processor_record_id: Option<String>,
    pub ledger_id: Option<String>,
    pub reference: Option<String>,
    pub amount_at_stake: Decimal,
    pub currency: Option<String>,
    pub details: String,
    pub resolution: Option<String>,
}

impl Store {
    /// The ledger rows of `date` that belong to no processor's run.
    pub async fn unattributed(&self, date: NaiveDate) -> Result<Vec<Unattributed>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT source, field, reason, raw_record FROM unattributed_ledger_rows WHERE run_date = $1
                 ORDER BY source",
                &[&date],
            )
            .await
            .map_err(q("listing the unattributed ledger rows"))?;
        Ok(rows
            .iter()
            .map(|r| Unattributed {
                source: r.get(0),
                field: r.get(1),
                reason: r.get(2),
                raw: r.get(3),
            })
            .collect())
    }

    /// Runs, newest first.
    pub async fn list_runs(
        &self,
        date: Option<NaiveDate>,
        processor: Option<Processor>,
        limit: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let c = self.client().await?;
        let p = processor.map(|p| p.as_str());
        let rows = c
            .query(
                &format!(
                    "SELECT {} FROM reconciliation_runs
                 WHERE ($1::date IS NULL OR run_date = $1) AND ($2::text IS NULL OR processor_name = $2)
                 ORDER BY run_date DESC, started_at DESC, processor_name LIMIT $3",
                    run_columns()
                ),
                &[&date, &p, &limit],
            )
            .await
            .map_err(q("listing runs"))?;
        rows.iter().map(run_row).collect()
    }

    /// One run and its discrepancies (largest amount first).
    pub async fn show_run(&self, run_id: Uuid) -> Result<Option<(RunRow, Vec<DiscrepancyRow>)>, StoreError> {
        let c = self.client().await?;
        let Some(r) = c
            .query_opt(
                &format!("SELECT {} FROM reconciliation_runs WHERE id = $1", run_columns()),
                &[&run_id],
            )
            .await
            .map_err(q("reading the run"))?
        else {
            return Ok(None);
        };
        let rows = c
            .query(
                "SELECT id, category, severity, lifecycle, processor_record_id, ledger_id, reference, amount_at_stake,
                        currency, details, resolution
                 FROM discrepancies WHERE run_id = $1 ORDER BY amount_at_stake DESC, category, id",
                &[&run_id],
            )
            .await
            .map_err(q("reading the run's discrepancies"))?;
        let ds = rows
            .iter()
            .map(|d| DiscrepancyRow {
                id: d.get(0),
                category: d.get(1),
                severity: d.get(2),
                lifecycle: d.get(3),
                processor_record_id: d.get(4),
                ledger_id: d.get(5),
                reference: d.get(6),
                amount_at_stake: d.get(7),
                currency: d.get(8),
                details: d.get(9),
                resolution: d.get(10),
            })
            .collect();
        Ok(Some((run_row(&r)?, ds)))
    }

    /// The last `n` current runs of a processor up to `date`, oldest first, for the trend chart.
    pub async fn trend(
        &self,
        processor: Processor,
        date: NaiveDate,
        n: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let mut runs = self.list_runs(None, Some(processor), 200).await?;
        runs.retain(|r| r.status != RunState::Superseded && r.run_date <= date);
        runs.truncate(usize::try_from(n).unwrap_or(14));
        runs.reverse();
        Ok(runs)
    }
}

/// The columns [`run_row`] reads, in its order (every query of runs selects exactly these); the discrepancy
/// count adds up the count column of every category.
fn run_columns() -> &'static str {
    static COLUMNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        let counts: Vec<String> = recon_core::Category::ALL
            .iter()
            .map(|c| format!("{c}_count"))
            .collect();
        format!(
            "id, run_date, processor_name, status, severity, trigger, processor_count, ledger_count, \
             matched_count, missing_transaction_count, {}, total_discrepancy_amount, error, started_at, summary, \
             report_keys",
            counts.join(" + ")
        )
    })
}

fn run_row(r: &tokio_postgres::Row) -> Result<RunRow, StoreError> {
    let status: String = r.get(3);
    let status = status.parse().map_err(|detail| StoreError::Data {
        what: "reading a run",
        detail,
        source: None,
    })?;
    Ok(RunRow {
        run_id: r.get(0),
        run_date: r.get(1),
        processor: r.get(2),
        status,
        severity: r.get(4),
        trigger: r.get(5),
        processor_count: r.get(6),
        ledger_count: r.get(7),
        matched_count: r.get(8),
        missing_transaction_count: r.get(9),
        discrepancy_count: r.get(10),
        total_discrepancy_amount: r.get(11),
        error: r.get(12),
        started_at: r.get(13),
        summary: r.get(14),
        report_keys: r.get(15),
    })
}
