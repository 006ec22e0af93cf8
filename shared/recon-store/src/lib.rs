//! # recon-store
//!
//! The only crate with SQL. A [`Store`] wraps a deadpool-postgres pool and offers what the use cases need:
//! apply the migrations in `migrations/` (refinery, forward-only), load the pending items to carry forward,
//! record a run with all its discrepancies in **one transaction** (bulk binary `COPY`), idempotently per
//! execution + processor + date, superseding the previous run of the same date and processor, and read runs
//! back for `recon runs` / `recon show` and the report's trend chart.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::pin_mut;
use recon_core::{Carried, CarriedRecord, CarryOutcome, Discrepancy, Outcome, Processor, RunSummary};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::NoTls;
use uuid::Uuid;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// What went wrong talking to the database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached or the connection broke: retry later, nothing was written.
    #[error("database unavailable ({0}); nothing was written, retry when PostgreSQL answers")]
    Unavailable(String),
    #[error("database error while {0}: {1}")]
    Query(&'static str, String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// Worth retrying (connection problems, serialisation conflicts).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLSTATEs worth retrying: connection exceptions (class 08), the server shutting down or starting
/// (57P01-57P03), too many connections (53300), a lock or statement timeout (55P03, 57014), serialization
/// failure and deadlock (40001, 40P01), and a unique race on the one-current-run index (23505).
pub fn retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "55P03" | "57014" | "40001" | "40P01" | "23505"
        )
}

fn q(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        if e.is_closed() || e.as_db_error().is_none() {
            StoreError::Unavailable(format!("{what}: {e}"))
        } else {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            if retryable_sqlstate(&code) {
                StoreError::Unavailable(format!("{what}: {e} (SQLSTATE {code})"))
            } else {
                let detail = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                StoreError::Query(what, detail)
            }
        }
    }
}

/// How to reach PostgreSQL. Debug output never shows the password.
#[derive(Clone)]
pub struct DbConfig {
    pub pg: tokio_postgres::Config,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.pg.get_hosts())
            .field("port", &self.pg.get_ports())
            .field("dbname", &self.pg.get_dbname())
            .field("user", &self.pg.get_user())
            .field("password", &"<redacted>")
            .finish()
    }
}

impl DbConfig {
    /// From a `postgres://` URL or key=value string.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        tokio_postgres::Config::from_str(url)
            .map(|pg| DbConfig { pg })
            .map_err(|_| {
                StoreError::Config("DATABASE_URL is not a valid PostgreSQL connection string".into())
            })
    }

    /// From separate parts (the seed's `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`).
    pub fn from_parts(host: &str, port: u16, dbname: &str, user: &str, password: Option<&str>) -> Self {
        let mut pg = tokio_postgres::Config::new();
        pg.host(host).port(port).dbname(dbname).user(user);
        if let Some(p) = password {
            pg.password(p);
        }
        DbConfig { pg }
    }
}

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
    /// The same idempotency key was recorded before: nothing written, here is the earlier run.
    Existing {
        run_id: Uuid,
        summary: Option<Box<RunSummary>>,
    },
}

/// A carried item with the date it was first seen.
#[derive(Debug, Clone)]
pub struct CarriedItem {
    pub carried: Carried,
    pub first_seen: NaiveDate,
}

/// A run as `recon runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: Uuid,
    pub run_date: NaiveDate,
    pub processor: String,
    pub status: String,
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

/// The database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

fn dec(minor: i64, currency: recon_core::Currency) -> Decimal {
    recon_core::Money::new(minor, currency).to_decimal()
}

impl Store {
    /// Builds the pool (no connection is made yet).
    pub fn new(config: &DbConfig) -> Result<Self, StoreError> {
        let mgr = Manager::from_config(
            config.pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(4)
            .build()
            .map_err(|e| StoreError::Config(format!("cannot build the connection pool: {e}")))?;
        Ok(Store { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Creates the configured database when the server answers but the database does not exist yet
    /// (local convenience for `recon run` on a fresh machine). Connects to the `postgres` database to do so.
    pub async fn create_database_if_missing(config: &DbConfig) -> Result<bool, StoreError> {
        let Some(name) = config.pg.get_dbname().map(str::to_string) else {
            return Ok(false);
        };
        match config.pg.connect(NoTls).await {
            Ok(_) => return Ok(false),
            Err(e) if e.code().map(|c| c.code()) == Some("3D000") => {}
            Err(e) => return Err(q("connecting")(e)),
        }
        let mut admin = config.pg.clone();
        admin.dbname("postgres");
        let (client, conn) = admin
            .connect(NoTls)
            .await
            .map_err(q("connecting to the postgres database"))?;
        let task = tokio::spawn(conn);
        let ident = name.replace('"', "\"\"");
        let created = client
            .batch_execute(&format!("CREATE DATABASE \"{ident}\""))
            .await;
        drop(client);
        let _ = task.await;
        match created {
            Ok(()) => Ok(true),
            Err(e) if e.code().map(|c| c.code()) == Some("42P04") => Ok(false),
            Err(e) => Err(q("creating the database")(e)),
        }
    }

    /// Applies pending migrations (serialised by an advisory lock, so concurrent starts are safe).
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut obj = self.client().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        client
            .execute("SELECT pg_advisory_lock(727274)", &[])
            .await
            .map_err(q("locking for migrations"))?;
        let report = embedded::migrations::runner().run_async(client).await;
        client
            .execute("SELECT pg_advisory_unlock(727274)", &[])
            .await
            .map_err(q("unlocking after migrations"))?;
        let report = report.map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect())
    }

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

    /// Pending items of earlier current runs of `processor`, plus those the current run of `date` had taken
    /// (a rerun takes them again). Ordered by id, so the matcher sees them in a stable order.
    pub async fn load_carried(
        &self,
        processor: Processor,
        date: NaiveDate,
    ) -> Result<Vec<CarriedItem>, StoreError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT d.id, d.first_seen_date, d.carry, COALESCE(d.processor_source, d.ledger_source, '')
                 FROM discrepancies d JOIN reconciliation_runs r ON r.id = d.run_id
                 WHERE r.processor_name = $1 AND r.status = 'succeeded' AND r.run_date < $2 AND d.carry IS NOT NULL
                   AND (d.lifecycle = 'pending'
                        OR d.resolved_in_run IN (SELECT id FROM reconciliation_runs
                                                 WHERE run_date = $2 AND processor_name = $1 AND status <> 'superseded'))
                 ORDER BY d.id",
                &[&processor.as_str(), &date],
            )
            .await
            .map_err(q("loading pending items to carry forward"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            let first_seen: NaiveDate = r.get(1);
            let carry: Value = r.get(2);
            let record: CarriedRecord = serde_json::from_value(carry)
                .map_err(|e| StoreError::Query("reading a carried item", format!("discrepancy {id}: {e}")))?;
            let age = (date - first_seen).num_days().max(0);
            out.push(CarriedItem {
                carried: Carried {
                    id,
                    age_days: u32::try_from(age).unwrap_or(u32::MAX),
                    source: r.get(3),
                    record,
                },
                first_seen,
            });
        }
        Ok(out)
    }

    /// Records a run and its discrepancies in one transaction. Idempotent on `idempotency_key`.
    pub async fn record_run(&self, run: &NewRun<'_>) -> Result<Recorded, StoreError> {
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
            return Ok(Recorded::Existing {
                run_id: r.get(0),
                summary: summary.and_then(|s| serde_json::from_value(s).ok()).map(Box::new),
            });
        }
        // the current run of this date and processor, locked; it becomes superseded
        let old: Option<Uuid> = tx
            .query_opt(
                "SELECT id FROM reconciliation_runs WHERE run_date = $1 AND processor_name = $2 AND status <> 'superseded'
                 FOR UPDATE",
                &[&run.date, &p],
            )
            .await
            .map_err(q("locking the current run"))?
            .map(|r| r.get(0));
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
        let status = match s.status {
            recon_core::RunStatus::Succeeded => "succeeded",
            recon_core::RunStatus::Failed => "failed",
        };
        let severity = s.severity.map(|v| v.as_str());
        let totals = serde_json::to_value(&s.total_discrepancy_amount).unwrap_or(Value::Null);
        let excluded = serde_json::to_value(&s.excluded_counts).unwrap_or(Value::Null);
        let summary = serde_json::to_value(s).unwrap_or(Value::Null);
        let carried_n = i(run.outcome.map(|o| o.carried_count).unwrap_or(0));
        let grace = i32::try_from(run.grace_days).map_err(|_| {
            StoreError::Query(
                "recording the run",
                format!("grace_days {} is out of range", run.grace_days),
            )
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
            copy_discrepancies(&tx, run, &o.discrepancies).await?;
            resolve_carried(&tx, run, &o.carried).await?;
            inherit_later_resolutions(&tx, run).await?;
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
        tx.commit().await.map_err(q("committing the run"))?;
        Ok(Recorded::New {
            run_id: run.run_id,
            superseded: old,
        })
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
                "SELECT id, run_date, processor_name, status, severity, trigger, processor_count, ledger_count,
                        matched_count, missing_transaction_count,
                        missing_in_ledger_count + missing_in_processor_count + amount_mismatch_count
                          + currency_mismatch_count + status_mismatch_count + duplicate_count + invalid_record_count,
                        total_discrepancy_amount, error, started_at, summary, report_keys
                 FROM reconciliation_runs
                 WHERE ($1::date IS NULL OR run_date = $1) AND ($2::text IS NULL OR processor_name = $2)
                 ORDER BY run_date DESC, started_at DESC, processor_name LIMIT $3",
                &[&date, &p, &limit],
            )
            .await
            .map_err(q("listing runs"))?;
        Ok(rows.iter().map(run_row).collect())
    }

    /// One run and its discrepancies (largest amount first).
    pub async fn show_run(&self, run_id: Uuid) -> Result<Option<(RunRow, Vec<DiscrepancyRow>)>, StoreError> {
        let c = self.client().await?;
        let Some(r) = c
            .query_opt(
                "SELECT id, run_date, processor_name, status, severity, trigger, processor_count, ledger_count,
                        matched_count, missing_transaction_count,
                        missing_in_ledger_count + missing_in_processor_count + amount_mismatch_count
                          + currency_mismatch_count + status_mismatch_count + duplicate_count + invalid_record_count,
                        total_discrepancy_amount, error, started_at, summary, report_keys
                 FROM reconciliation_runs WHERE id = $1",
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
        Ok(Some((run_row(&r), ds)))
    }

    /// The last `n` current runs of a processor up to `date`, oldest first, for the trend chart.
    pub async fn trend(
        &self,
        processor: Processor,
        date: NaiveDate,
        n: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        let mut runs = self.list_runs(None, Some(processor), 200).await?;
        runs.retain(|r| r.status != "superseded" && r.run_date <= date);
        runs.truncate(usize::try_from(n).unwrap_or(14));
        runs.reverse();
        Ok(runs)
    }
}

fn run_row(r: &tokio_postgres::Row) -> RunRow {
    RunRow {
        run_id: r.get(0),
        run_date: r.get(1),
        processor: r.get(2),
        status: r.get(3),
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
                lifecycle, first_seen_date, carried_from, carry) FROM STDIN BINARY",
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
        Type::JSONB,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let p = run.processor.as_str();
    for d in ds {
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
        let carry = d.carry.as_ref().and_then(|c| serde_json::to_value(c).ok());
        let row: [&(dyn ToSql + Sync); 25] = [
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

/// A pending item is one item whatever run re-derives it: its identity is the processor, the side and the
/// record's id. When a rerun of an older day finds pending an item that a current run of a *later* day already
/// matched, escalated or carried on, the new copy takes that resolution at once (the earliest such later
/// run's), so later days' figures never depend on whether an earlier day was rerun.
async fn inherit_later_resolutions(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &NewRun<'_>,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE discrepancies n
            SET lifecycle = 'resolved', resolution = o.resolution, resolved_by = 'recon', resolved_at = now(),
                resolution_note = o.resolution_note, resolved_in_run = o.resolved_in_run
           FROM (SELECT DISTINCT ON (nd.id) nd.id AS nid, od.resolution, od.resolution_note, od.resolved_in_run
                   FROM discrepancies nd
                   JOIN discrepancies od
                     ON od.id <> nd.id AND od.processor_name = nd.processor_name AND od.carry IS NOT NULL
                    AND od.lifecycle = 'resolved' AND od.resolved_by = 'recon' AND od.resolution <> 'superseded'
                    AND ((nd.processor_record_id IS NOT NULL AND od.processor_record_id = nd.processor_record_id
                          AND od.ledger_id IS NULL)
                      OR (nd.processor_record_id IS NULL AND od.ledger_id = nd.ledger_id
                          AND od.processor_record_id IS NULL))
                   JOIN reconciliation_runs lr
                     ON lr.id = od.resolved_in_run AND lr.status <> 'superseded' AND lr.run_date > nd.run_date
                  WHERE nd.run_id = $1 AND nd.lifecycle = 'pending'
                  ORDER BY nd.id, lr.run_date) o
          WHERE n.id = o.nid",
        &[&run.run_id],
    )
    .await
    .map_err(q("carrying later days' resolutions over to a rerun's pending items"))?;
    Ok(())
}

async fn resolve_carried(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &NewRun<'_>,
    carried: &[(i64, CarryOutcome)],
) -> Result<(), StoreError> {
    if carried.is_empty() {
        return Ok(());
    }
    let mut by: BTreeMap<&str, (Vec<i64>, String)> = BTreeMap::new();
    for (id, o) in carried {
        let (res, note) = match o {
            CarryOutcome::Matched => ("timing_difference", format!("matched in the run of {}", run.date)),
            CarryOutcome::Escalated => (
                "escalated",
                format!(
                    "grace period over: reported as missing in the run of {}",
                    run.date
                ),
            ),
            CarryOutcome::StillPending => (
                "carried_forward",
                format!("still pending in the run of {}", run.date),
            ),
            CarryOutcome::Duplicate => (
                "duplicate",
                format!("the record arrived again in the run of {}", run.date),
            ),
        };
        by.entry(res).or_insert_with(|| (Vec::new(), note)).0.push(*id);
    }
    for (res, (ids, note)) in by {
        tx.execute(
            "UPDATE discrepancies SET lifecycle = 'resolved', resolution = $2, resolved_by = 'recon',
                    resolved_at = now(), resolution_note = $3, resolved_in_run = $4
             WHERE id = ANY($1)",
            &[&ids, &res, &note, &run.run_id],
        )
        .await
        .map_err(q("resolving carried items"))?;
    }
    Ok(())
}
