//! Recording one processor's run: reconcile the staged sides (whole, one partition, or the merge of every
//! partition), write the reports, record the run and its discrepancies in one transaction; a run that
//! cannot be made is recorded as failed with the reason.

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use recon_core::{
    reconcile, reconcile_sharded, Carried, Outcome, Processor, RunConfig, RunInput, RunSummary,
};
use recon_store::{NewRun, Recorded};
use serde_json::json;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::fetch::{self, Manifest};
use crate::objects::ObjectStore;
use crate::{keys, objects, report, AppError, Deps, LedgerSide, ProcessorSide, RunRequest, RunResult};

/// How many unattributed ledger rows a summary's warnings list one by one (all are stored).
const UNATTRIBUTED_LISTED: usize = 20;

/// The day's unattributed ledger rows, every one, as stored: source (`key:line`), field, reason, raw text.
fn unattributed_rows(l: &LedgerSide) -> Vec<recon_store::Unattributed> {
    let objects = object_table(&[&l.objects]);
    l.unattributed
        .iter()
        .map(|inv| {
            let key = objects
                .get(inv.location.object as usize)
                .map(String::as_str)
                .unwrap_or("?");
            fetch::unattributed_of(key, inv)
        })
        .collect()
}

/// Object indexes must be unique within a run: a processor's objects are numbered from 1000 and the ledger's
/// from 0, so a ledger of 1,000 objects or more (a large day from the ledger API, 500 rows a page) overlaps them,
/// and a discrepancy's source would name a ledger page for a processor record. Then the processor side (its
/// records, invalid records and object list) is moved past the ledger's last index.
fn keep_objects_apart(p: &mut ProcessorSide, l: &LedgerSide) {
    let range = |objects: &[(u32, String)]| {
        let min = objects.iter().map(|(i, _)| *i).min()?;
        Some((min, objects.iter().map(|(i, _)| *i).max()?))
    };
    let (Some((p_min, p_max)), Some((l_min, l_max))) = (range(&p.objects), range(&l.objects)) else {
        return;
    };
    if p_max < l_min || l_max < p_min {
        return;
    }
    let Some(shift) = (l_max + 1).checked_sub(p_min) else {
        return;
    };
    // indexes stay below u32::MAX: the ledger's last index plus the processor's object count
    if p_max.checked_add(shift).is_none() {
        return;
    }
    for r in &mut p.records {
        r.set_object(r.location().object + shift);
    }
    for inv in &mut p.invalid {
        inv.location.object += shift;
    }
    for (i, _) in &mut p.objects {
        *i += shift;
    }
}

fn object_table(sides: &[&[(u32, String)]]) -> Vec<String> {
    let max = sides
        .iter()
        .flat_map(|s| s.iter().map(|(i, _)| *i))
        .max()
        .map(|m| m as usize + 1)
        .unwrap_or(0);
    let mut v = vec![String::new(); max];
    for side in sides {
        for (i, k) in side.iter() {
            if let Some(slot) = v.get_mut(*i as usize) {
                slot.clone_from(k);
            }
        }
    }
    v
}

/// Reconciles one processor's day: the match step. Every log line inside carries the run id, processor and
/// date (span fields). `input` is the staged, parsed data, or the reason it is
/// unusable (the run is then recorded as failed with that reason). Returns the section 8 summary.
pub async fn run_match<S: ObjectStore>(
    deps: &Deps<'_, S>,
    req: &RunRequest,
    input: Result<(ProcessorSide, LedgerSide), String>,
) -> Result<RunResult, AppError> {
    run_match_with(deps, req, MatchData::Input(input)).await
}

/// What the match step reconciles: the parsed sides, or the outcomes of every partition of a sharded run
/// (written by [`match_partition`]), which are merged.
pub enum MatchData {
    Input(Result<(ProcessorSide, LedgerSide), String>),
    Partitions {
        parts: Vec<Outcome>,
        manifests: Vec<Manifest>,
    },
}

/// Where partition `index` of `count` of a run keeps its outcome until the merge: under `work/`, beside
/// the layout of spec section 3 (the bucket's lifecycle rule expires it).
pub fn partition_key(req: &RunRequest, index: u32, count: u32) -> String {
    let digest = req.idempotency_key.digest();
    keys::partition(
        req.date,
        req.processor,
        digest.get(..16).unwrap_or(&digest),
        index,
        count,
    )
}

/// One partition of a sharded run (an iteration of the state machine's Distributed Map): plans the
/// partitions over the whole day, matches only partition `index` and returns its outcome, for the merge.
/// Every partition plans the same inputs (including the same carried items) and so gets the same plan.
pub async fn match_partition<S: ObjectStore>(
    deps: &Deps<'_, S>,
    req: &RunRequest,
    input: (ProcessorSide, LedgerSide),
    index: u32,
    count: u32,
) -> Result<Outcome, AppError> {
    partition_in_range(req, index, count)?;
    let carried = carried_for(deps.db, deps.config, req).await?;
    let date = req.date;
    partition_outcome(deps, req, input, carried, (index, count), move |input| {
        let plan = recon_core::plan(&input, count);
        info!(processor = %input.processor, date = %date, partition = index, partitions = count,
          sizes = ?plan.sizes(), "partition plan");
        recon_core::reconcile_partition(input, &plan, index)
    })
    .await
}

/// Partition `index` of `count` reconciled by `matcher` on the blocking pool, its failures named.
async fn partition_outcome<S: ObjectStore, E: std::fmt::Display + Send + 'static>(
    deps: &Deps<'_, S>,
    req: &RunRequest,
    input: (ProcessorSide, LedgerSide),
    carried: Vec<Carried>,
    (index, count): (u32, u32),
    matcher: impl FnOnce(RunInput<'_>) -> Result<Outcome, E> + Send + 'static,
) -> Result<Outcome, AppError> {
    let what = format!("partition {index} of {count}");
    on_sides(
        req.processor,
        input,
        carried,
        day_config(deps.config, req.date),
        matcher,
    )
    .await
    .map_err(|e| AppError::failed(format!("matcher task for {what}"), e))?
    .map_err(|e| AppError::Internal(format!("{what}: {e}")))
}

/// One partition of a split day: reads only the partition's files the split step wrote (see
/// [`crate::split`]) and reconciles them; the outcome is what [`match_partition`] gives for that partition.
pub async fn match_split_partition<S: ObjectStore>(
    deps: &Deps<'_, S>,
    req: &RunRequest,
    plan: &crate::split::SplitPlan,
    index: u32,
    manifests: (Manifest, Manifest),
) -> Result<Outcome, AppError> {
    let count = plan.partitions;
    partition_in_range(req, index, count)?;
    let carried = carried_for(deps.db, deps.config, req).await?;
    let (pf, lf, carried) =
        crate::split::partition_sides(deps.objects, req, plan, index, manifests, carried).await?;
    let input = crate::pipeline::sides(req.processor, pf, lf)?;
    partition_outcome(deps, req, input, carried, (index, count), move |input| {
        // every record here is of this partition
        let alone = recon_core::Plan {
            partitions: count,
            records: vec![index; input.records.len()],
            ledger: vec![index; input.ledger.len()],
            carried: vec![index; input.carried.len()],
        };
        recon_core::reconcile_partition(input, &alone, index)
    })
    .await
}

/// A sharded run through the split step in this process, as the state machine runs it in several
/// invocations: split the staged objects into ranges of about `range_bytes`, scan them, plan, scatter each
/// range into partition files, match each partition from its own files only; returns the partitions'
/// outcomes for the merge.
pub async fn split_and_match<S: ObjectStore>(
    deps: &Deps<'_, S>,
    req: &RunRequest,
    (pm, lm): (Manifest, Manifest),
    partitions: u32,
    range_bytes: u64,
) -> Result<Vec<Outcome>, AppError> {
    use futures_util::{StreamExt, TryStreamExt};
    let tasks = crate::split::ranges(&pm, &lm, range_bytes);
    let scanned: Vec<crate::split::Scanned> = futures_util::stream::iter(
        tasks
            .into_iter()
            .map(|t| crate::split::scan(deps.objects, req, t)),
    )
    .buffer_unordered(2)
    .try_collect()
    .await?;
    let carried = carried_for(deps.db, deps.config, req).await?;
    let plan = crate::split::plan(deps.objects, req, scanned, &carried, partitions).await?;
    drop(carried);
    futures_util::stream::iter(
        plan.ranges
            .iter()
            .map(|s| crate::split::scatter(deps.objects, req, plan.partitions, s)),
    )
    .buffer_unordered(2)
    .try_collect::<Vec<()>>()
    .await?;
    let mut parts = Vec::with_capacity(plan.partitions as usize);
    for index in 0..plan.partitions {
        parts.push(match_split_partition(deps, req, &plan, index, (pm.clone(), lm.clone())).await?);
    }
    Ok(parts)
}

/// The items a run of `req` carries in (pending and lookback candidates), as the matcher takes them.
pub(crate) async fn carried_for(
    db: &recon_store::Store,
    config: &RunConfig,
    req: &RunRequest,
) -> Result<Vec<Carried>, AppError> {
    Ok(db
        .load_carried(
            req.processor,
            req.date,
            config.grace_days,
            config.items.lookback_days,
        )
        .await
        .map_err(AppError::Store)?
        .into_iter()
        .map(|c| c.carried)
        .collect())
}

/// A partition index must be below the count.
fn partition_in_range(req: &RunRequest, index: u32, count: u32) -> Result<(), AppError> {
    if count == 0 || index >= count {
        return Err(AppError::InvalidInput(format!(
            "partition {index} of {count} for {} on {}: the index must be below the count",
            req.processor, req.date
        )));
    }
    Ok(())
}

/// The run configuration for one date: the shared one, with the date's window set.
fn day_config(config: &RunConfig, date: NaiveDate) -> RunConfig {
    let mut c = config.clone();
    c.day_start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
    c
}

/// Runs `matcher` over one processor's sides and the carried items on a blocking thread; the records are
/// freed afterwards on a thread of their own (a million records take a while to free: off the critical path).
async fn on_sides<T: Send + 'static>(
    processor: Processor,
    (p, l): (ProcessorSide, LedgerSide),
    carried: Vec<Carried>,
    config: RunConfig,
    matcher: impl FnOnce(RunInput<'_>) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let mut p = p;
    keep_objects_apart(&mut p, &l);
    let objects = object_table(&[&p.objects, &l.objects]);
    let mut invalid = p.invalid;
    invalid.extend(l.invalid);
    let (records, rows) = (p.records, l.rows);
    tokio::task::spawn_blocking(move || {
        let result = matcher(RunInput {
            processor,
            objects: &objects,
            records: &records,
            ledger: &rows,
            invalid: &invalid,
            carried: &carried,
            config: &config,
        });
        std::thread::spawn(move || drop((records, rows, invalid, carried)));
        result
    })
    .await
}

/// Reports are written before their run is recorded; a crash in between leaves a report folder of a run that
/// does not exist. Such folders (older than [`objects::ABANDONED_AFTER`]) get a `NOT-RECORDED.txt` saying so.
/// Best effort: a failure here is logged, never fatal.
async fn mark_unrecorded_reports<S: ObjectStore>(deps: &Deps<'_, S>, req: &RunRequest) {
    let prefix = keys::reports_day(req.date, req.processor);
    let Ok(keys) = deps.objects.list(&prefix).await else {
        return;
    };
    let folders = objects::folders(&prefix, &keys);
    let candidates: Vec<Uuid> = folders
        .iter()
        .filter(|(id, files)| objects::older_than_grace(id) && !files.contains(&keys::NOT_RECORDED))
        .filter_map(|(id, _)| Uuid::parse_str(id).ok())
        .collect();
    if candidates.is_empty() {
        return;
    }
    let Ok(known) = deps.db.existing_runs(&candidates).await else {
        return;
    };
    for id in candidates.into_iter().filter(|id| !known.contains(id)) {
        let key = format!("{prefix}{id}/{}", keys::NOT_RECORDED);
        let note = format!(
            "run {id} wrote these reports but was never recorded (the process stopped before its database \
             transaction committed): they describe no run. The day's current run is in `recon runs --date {}`.\n",
            req.date
        );
        match deps.objects.put(&key, note.into_bytes(), "text/plain").await {
            Ok(()) => warn!(%key, "report folder of an unrecorded run marked"),
            Err(e) => warn!(%key, error = %e, "could not mark a report folder"),
        }
    }
}

/// Reconciles one processor's day from [`MatchData`]; see [`run_match`].
#[tracing::instrument(name = "run", skip_all, fields(processor = %req.processor, date = %req.date, run_id = tracing::field::Empty))]
pub async fn run_match_with<S: ObjectStore>(
    deps: &Deps<'_, S>,
    req: &RunRequest,
    input: MatchData,
) -> Result<RunResult, AppError> {
    let started_at = Utc::now();
    let clock = std::time::Instant::now();
    let earlier = deps
        .db
        .find_by_key(req.idempotency_key.as_str())
        .await
        .map_err(AppError::Store)?;
    if let Some((id, Some(summary))) = earlier {
        info!(run_id = %id, processor = %req.processor, date = %req.date, "run already recorded for this execution");
        let prefix = keys::report_run(req.date, req.processor, &id.to_string());
        return Ok(RunResult {
            summary,
            report_prefix: prefix,
            report_link: None,
            top: Vec::new(),
            replayed: true,
            items: None,
        });
    }
    let run_id = Uuid::now_v7();
    tracing::Span::current().record("run_id", tracing::field::display(run_id));
    let prefix = keys::report_run(req.date, req.processor, &run_id.to_string());
    let carried_items = match &input {
        MatchData::Input(Ok(_)) | MatchData::Partitions { .. } => deps
            .db
            .load_carried(
                req.processor,
                req.date,
                deps.config.grace_days,
                deps.config.items.lookback_days,
            )
            .await
            .map_err(AppError::Store)?,
        MatchData::Input(Err(_)) => Vec::new(),
    };
    let first_seen: HashMap<i64, NaiveDate> = carried_items
        .iter()
        .map(|c| (c.carried.id, c.first_seen))
        .collect();
    let carried: Vec<Carried> = carried_items.into_iter().map(|c| c.carried).collect();

    let mut all_unattributed: Vec<recon_store::Unattributed> = Vec::new();
    let (summary, outcome, manifests) = match input {
        MatchData::Partitions { parts, manifests } => {
            let n = parts.len();
            let o = recon_core::merge(req.processor, parts);
            info!(partitions = n, "partition outcomes merged");
            (RunSummary::succeeded(run_id.to_string(), &o), Some(o), manifests)
        }
        MatchData::Input(Err(error)) => (
            RunSummary::failed(run_id.to_string(), req.processor, error),
            None,
            Vec::new(),
        ),
        MatchData::Input(Ok((p, l))) => {
            let manifests: Vec<Manifest> = p.manifests.iter().chain(&l.manifests).cloned().collect();
            all_unattributed = unattributed_rows(&l);
            let result = on_sides(
                req.processor,
                (p, l),
                carried,
                day_config(deps.config, req.date),
                |input| match input.config.partitions {
                    n if n > 1 => reconcile_sharded(input, n),
                    _ => reconcile(input),
                },
            )
            .await
            .map_err(|e| AppError::failed("matcher task", e))?;
            match result {
                Ok(o) => (RunSummary::succeeded(run_id.to_string(), &o), Some(o), manifests),
                Err(e) => {
                    warn!(error = %e, "conservation check failed; the run is recorded as failed");
                    (
                        RunSummary::failed(run_id.to_string(), req.processor, e.to_string()),
                        None,
                        manifests,
                    )
                }
            }
        }
    };
    debug!(elapsed_ms = clock.elapsed().as_millis() as u64, "matched");
    // unattributed ledger rows come with the ledger's manifest: the same warnings for a whole and a sharded
    // run; a whole run stores every one of them (from its ledger side), a sharded one those its manifest lists
    let listed: Vec<recon_store::Unattributed> = manifests
        .iter()
        .flat_map(|m| m.unattributed.iter().cloned())
        .collect();
    let total: u64 = manifests.iter().map(|m| m.unattributed_count).sum();
    let unattributed = if all_unattributed.is_empty() {
        listed.clone()
    } else {
        all_unattributed
    };
    let mut summary = summary;
    summary.warnings = manifests
        .iter()
        .flat_map(|m| &m.skipped)
        .map(|s| format!("{} was not staged: {}", s.key, s.reason))
        .chain(listed.iter().take(UNATTRIBUTED_LISTED).map(|u| {
            format!(
                "ledger row {} belongs to no processor's run: {} (raw: {})",
                u.source, u.reason, u.raw
            )
        }))
        .chain((total > UNATTRIBUTED_LISTED as u64).then(|| {
            format!(
                "and {} more ledger rows that belong to no processor's run (table unattributed_ledger_rows)",
                total - UNATTRIBUTED_LISTED as u64
            )
        }))
        .collect();
    let manifest_keys: Vec<String> = manifests.iter().map(|m| m.manifest_key.clone()).collect();

    mark_unrecorded_reports(deps, req).await;
    let summary_key = format!("{prefix}summary.json");
    let csv_key = format!("{prefix}discrepancies.csv");
    let html_key = format!("{prefix}report.html");
    let trend = deps
        .db
        .trend(req.processor, req.date, 30)
        .await
        .unwrap_or_default();
    let new = NewRun {
        run_id,
        date: req.date,
        processor: req.processor,
        trigger: req.trigger.as_str(),
        execution: req.execution.as_deref(),
        idempotency_key: req.idempotency_key.as_str(),
        grace_days: deps.config.grace_days,
        summary: &summary,
        outcome: outcome.as_ref(),
        manifests: serde_json::to_value(&manifests).unwrap_or_default(),
        report_keys: json!({"summary": summary_key, "discrepancies": csv_key, "report": html_key}),
        started_at,
        finished_at: Utc::now(),
        first_seen: &first_seen,
        unattributed: &unattributed,
        rules: deps.config.items,
    };
    // the reports are written inside the run's transaction, once its item figures are known, and before it
    // commits: the database row never points at reports that do not exist
    let write_reports = |summary: RunSummary, items: Option<recon_store::ItemDigest>| {
        let (outcome, trend, manifest_keys) = (outcome.as_ref(), &trend, &manifest_keys);
        let (summary_key, csv_key, html_key) = (&summary_key, &csv_key, &html_key);
        async move {
            let body = serde_json::to_vec_pretty(&summary)
                .map_err(|e| AppError::failed("encoding summary.json", e))?;
            deps.objects
                .put(summary_key, body, "application/json")
                .await
                .map_err(AppError::Object)?;
            let ds = outcome.map(|o| o.discrepancies.as_slice()).unwrap_or(&[]);
            deps.objects
                .put(csv_key, report::discrepancies_csv(ds)?, "text/csv")
                .await
                .map_err(AppError::Object)?;
            let html = report::render_html(
                &req.date.to_string(),
                &summary,
                outcome,
                trend,
                manifest_keys,
                items.as_ref(),
            )?;
            deps.objects
                .put(html_key, html.into_bytes(), "text/html")
                .await
                .map_err(AppError::Object)?;
            debug!(elapsed_ms = clock.elapsed().as_millis() as u64, "reports written");
            Ok::<(), AppError>(())
        }
    };
    let (recorded, summary, items) = deps
        .db
        .record_run_with(&new, write_reports)
        .await
        .map_err(AppError::Store)??;
    match recorded {
        Recorded::Existing {
            run_id: id,
            summary: Some(s),
        } => {
            let prefix = keys::report_run(req.date, req.processor, &id.to_string());
            return Ok(RunResult {
                summary: *s,
                report_prefix: prefix,
                report_link: None,
                top: Vec::new(),
                replayed: true,
                items: None,
            });
        }
        Recorded::Attempt { current, .. } => {
            warn!(run_id = %run_id, current = %current, processor = %req.processor, date = %req.date,
                  "this attempt failed; the day's succeeded run stays current");
        }
        Recorded::Existing { .. } | Recorded::New { .. } => {}
    }
    debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "run recorded in the database"
    );
    info!(run_id = %run_id, processor = %req.processor, date = %req.date, status = ?summary.status,
          severity = ?summary.severity, "run recorded");
    let top = outcome
        .as_ref()
        .map(|o: &Outcome| report::top(req.processor.as_str(), &o.discrepancies, 10))
        .unwrap_or_default();
    let link = deps.objects.link(&html_key).await.ok();
    Ok(RunResult {
        summary,
        report_prefix: prefix,
        report_link: link,
        top,
        replayed: false,
        items,
    })
}

#[cfg(test)]
mod object_tests {
    use super::*;
    use recon_core::{InvalidRecord, Location, Side};

    /// Given a ledger of 1,201 objects (indexes 0..=1200) and a processor's 3 objects numbered from 1000, when
    /// the run's object table is built, then each processor record's index names its own object, not a ledger
    /// page.
    #[test]
    fn a_ledger_of_a_thousand_objects_never_takes_a_processor_objects_index() {
        let ledger = LedgerSide {
            objects: (0..=1200)
                .map(|i| (i, format!("raw/ledger/page-{i:05}.json")))
                .collect(),
            ..Default::default()
        };
        let at = |object| Location { object, line: 7 };
        let mut side = ProcessorSide {
            manifests: Vec::new(),
            records: Vec::new(),
            invalid: vec![InvalidRecord::new(
                Side::Processor,
                at(1001),
                "amount",
                "bad".into(),
                "x".into(),
            )],
            objects: (1000..1003)
                .map(|i| (i, format!("raw/stripe/page-{i:05}.json")))
                .collect(),
        };
        keep_objects_apart(&mut side, &ledger);
        let table = object_table(&[&side.objects, &ledger.objects]);
        let object = side.invalid[0].location.object as usize;
        assert_eq!(table[object], "raw/stripe/page-01001.json");
        assert_eq!(table[1001], "raw/ledger/page-01001.json");
        // no overlap: nothing moves
        let mut apart = side.objects.clone();
        let small = LedgerSide {
            objects: vec![(0, "raw/ledger/l.csv".into())],
            ..Default::default()
        };
        let mut s2 = ProcessorSide {
            manifests: Vec::new(),
            records: Vec::new(),
            invalid: Vec::new(),
            objects: std::mem::take(&mut apart),
        };
        let before = s2.objects.clone();
        keep_objects_apart(&mut s2, &small);
        assert_eq!(s2.objects, before);
    }
}
