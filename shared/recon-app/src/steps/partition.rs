//! A sharded day (the state machine's Distributed Map): each iteration matches one partition and keeps its
//! outcome under `work/`; the merge reads every partition's outcome and records the run, exactly as a whole
//! match would have.

use serde::{Deserialize, Serialize};
use tracing::info;

use super::r#match::{manifests_of, request, MatchInput};
use super::{Ports, StartExecution};
use crate::notify::Mailer;
use crate::objects::ObjectStore;
use crate::pipeline::{load_manifest, sides};
use crate::{AppError, Deps};
use recon_core::RunSummary;

/// Which partition an iteration matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTask {
    pub index: u32,
    pub count: u32,
    /// The day went through the split step: read only this partition's files under `work/`.
    #[serde(default)]
    pub split: bool,
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

/// What the merge gets from each partition iteration: its receipt, or its failure (the iteration's Catch in
/// the state machine), or nothing (an interpreter that lets a failed iteration through as `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Receipt {
    Done(PartitionDone),
    Failed(PartitionFailed),
}

/// A partition iteration that failed, with its cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFailed {
    pub index: u32,
    pub count: u32,
    pub error: String,
}

/// Why a sharded run cannot be merged, when a partition failed or returned nothing: each such partition with
/// its cause. `None` when every partition has a receipt.
pub(crate) fn failed_partitions(receipts: &[Option<Receipt>]) -> Option<String> {
    let why: Vec<String> = receipts
        .iter()
        .enumerate()
        .filter_map(|(n, r)| match r {
            Some(Receipt::Done(_)) => None,
            Some(Receipt::Failed(f)) => Some(format!("partition {} of {} failed: {}", f.index, f.count, f.error)),
            None => Some(format!(
                "partition {n} returned no receipt (its invocation failed; the execution history has the cause)"
            )),
        })
        .collect();
    (!why.is_empty()).then(|| why.join("; "))
}

/// What a partition keeps under `work/`: its outcome with what proves whose it is (its index and count, and
/// the digest of the run's idempotency key); the merge checks all three.
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    index: u32,
    count: u32,
    run: String,
    outcome: recon_core::Outcome,
}

/// Matches partition `task` and keeps its outcome in the store.
pub(crate) async fn match_one_partition<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: MatchInput,
    task: PartitionTask,
) -> Result<PartitionDone, AppError> {
    let db = ports.db().await?;
    let req = request(&input);
    let (pm, lm) = manifests_of(&ports.objects, &input).await?;
    let config = ports.settings.run_config();
    let deps = Deps {
        objects: &ports.objects,
        db,
        config: &config,
    };
    let outcome = if task.split {
        let plan = crate::split::load_plan(&ports.objects, &req).await?;
        if plan.partitions != task.count {
            return Err(AppError::InvalidInput(format!(
                "partition {} of {}: the split plan of {} on {} has {} partitions; rerun the split",
                task.index, task.count, input.processor, input.date, plan.partitions
            )));
        }
        crate::match_split_partition(&deps, &req, &plan, task.index, (pm, lm)).await?
    } else {
        let pf = load_manifest(&ports.objects, pm, 1000).await?;
        let lf = load_manifest(&ports.objects, lm, 0).await?;
        let data = sides(input.processor, pf, lf)?;
        crate::match_partition(&deps, &req, data, task.index, task.count).await?
    };
    let key = crate::partition_key(&req, task.index, task.count);
    let (processor_count, ledger_count, found) = (
        outcome.processor_count,
        outcome.ledger_count,
        outcome.discrepancies.len() as u64,
    );
    let kept = Kept {
        index: task.index,
        count: task.count,
        run: req.idempotency_key.digest(),
        outcome,
    };
    let body = serde_json::to_vec(&kept).map_err(|e| AppError::failed(format!("encoding {key}"), e))?;
    ports
        .objects
        .put(&key, body, "application/json")
        .await
        .map_err(AppError::Object)?;
    info!(processor = %input.processor, date = %input.date, partition = task.index, partitions = task.count,
          key = %key, discrepancies = found, "partition matched");
    Ok(PartitionDone {
        index: task.index,
        count: task.count,
        key,
        processor_count,
        ledger_count,
        discrepancies: found,
    })
}

/// Merges every partition's outcome and records the run.
pub(crate) async fn merge_partitions<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: MatchInput,
) -> Result<RunSummary, AppError> {
    let db = ports.db().await?;
    let req = request(&input);
    let done: Vec<PartitionDone> = (input.partitions.iter().flatten().flatten())
        .filter_map(|r| match r {
            Receipt::Done(d) => Some(d.clone()),
            Receipt::Failed(_) => None,
        })
        .collect();
    let count = done.first().map(|d| d.count).unwrap_or(0);
    let mut seen: Vec<u32> = done.iter().map(|d| d.index).collect();
    seen.sort_unstable();
    if count == 0 || done.iter().any(|d| d.count != count) || seen != (0..count).collect::<Vec<u32>>() {
        return Err(AppError::InvalidInput(format!(
            "merge of {} on {}: expected partitions 0..{count} once each, got {seen:?}; rerun the partitions",
            input.processor, input.date
        )));
    }
    let (pm, lm) = manifests_of(&ports.objects, &input).await?;
    let mut parts = Vec::with_capacity(done.len());
    for d in &done {
        let expected = crate::partition_key(&req, d.index, d.count);
        if d.key != expected {
            return Err(AppError::InvalidInput(format!(
                "partition {} of {} is at {}, not {expected}: it belongs to another run",
                d.index, d.count, d.key
            )));
        }
        let bytes = ports.objects.get(&d.key).await.map_err(AppError::Object)?;
        let kept: Kept = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::InvalidInput(format!("{}: not a partition outcome: {e}", d.key)))?;
        if (kept.index, kept.count) != (d.index, d.count) || kept.run != req.idempotency_key.digest() {
            return Err(AppError::InvalidInput(format!(
                "{} holds partition {} of {} of another run or place, not partition {} of {} of this run; rerun the \
                 partitions",
                d.key, kept.index, kept.count, d.index, d.count
            )));
        }
        parts.push(kept.outcome);
    }
    let config = ports.settings.run_config();
    let deps = Deps {
        objects: &ports.objects,
        db,
        config: &config,
    };
    let result = crate::run_match_with(
        &deps,
        &req,
        crate::MatchData::Partitions {
            parts,
            manifests: vec![pm, lm],
        },
    )
    .await?;
    Ok(result.summary)
}
