//! The match step (`match`): reconciles one processor's day from the staged data its manifests list,
//! writes the reports, records the run (idempotent per execution + processor + date) and returns the run
//! summary. The same function runs one partition of a sharded day and the merge ([`super::partition`]).

use chrono::NaiveDate;
use recon_core::{Processor, RunSummary};
use serde::{Deserialize, Serialize};

use super::partition::{
    failed_partitions, match_one_partition, merge_partitions, PartitionDone, PartitionTask, Receipt,
};
use super::{Ports, StartExecution};
use crate::fetch::{Manifest, ManifestRef};
use crate::keys::{IdempotencyKey, Source};
use crate::notify::Mailer;
use crate::objects::ObjectStore;
use crate::pipeline::{load_manifest, sides};
use crate::{run_match, AppError, Deps, RunRequest, Trigger};

/// Input of the match function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchInput {
    /// The day; `null` means yesterday (UTC), as for the fetches of the daily schedule (the state machine
    /// records a failed ledger fetch before any fetch has named the day).
    #[serde(deserialize_with = "date_or_yesterday")]
    pub date: NaiveDate,
    pub processor: Processor,
    /// The processor's manifest and the ledger's (order does not matter; `null`s are ignored): the references
    /// the fetches returned, or the manifests themselves.
    pub manifests: Vec<Option<ManifestInput>>,
    /// Set when the processor's fetch failed: the run is recorded as failed with this reason.
    #[serde(default)]
    pub error: Option<String>,
    /// The Step Functions execution (ARN or name): with processor and date, the idempotency key.
    #[serde(default)]
    pub execution: Option<String>,
    /// `schedule`, `manual` or `s3` (default `manual`).
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// Sharded run, one Distributed Map iteration: match only this partition and keep its outcome in S3.
    #[serde(default)]
    pub partition: Option<PartitionTask>,
    /// Sharded run, the merge: what every partition returned. The run is recorded from their outcomes.
    #[serde(default)]
    pub partitions: Option<Vec<Option<Receipt>>>,
    /// Sharded run through the split step: which of its steps this invocation does ([`crate::split`]).
    #[serde(default)]
    pub split: Option<SplitCall>,
}

/// One step of the split of a sharded day (each a Lambda invocation; scan and scatter one per range).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SplitCall {
    /// The byte ranges of the staged objects, about `range_bytes` each.
    Ranges { range_bytes: u64 },
    /// Scan one range.
    Scan { range: crate::split::RangeTask },
    /// Plan the partitions from every range's scan.
    Plan {
        partitions: u32,
        scanned: Vec<crate::split::Scanned>,
    },
    /// Write one range's records into the partitions' files.
    Scatter {
        partitions: u32,
        range: crate::split::ScatterTask,
    },
}

/// What a split step answers (small: the ranges are the next Map's items).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SplitAnswer {
    Ranges {
        ranges: Vec<crate::split::RangeTask>,
    },
    Scanned(crate::split::Scanned),
    Planned {
        partitions: u32,
        scatter: Vec<crate::split::ScatterTask>,
    },
    Scattered {
        scattered: crate::split::RangeTask,
    },
}

fn date_or_yesterday<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    Ok(Option::<NaiveDate>::deserialize(d)?.unwrap_or_else(super::yesterday))
}

/// A manifest in a match input: the reference a fetch returns (what the state machine passes: its size does not
/// grow with the day), read from the store and checked ([`ManifestRef::load`]); or the manifest itself (a
/// hand-written event).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ManifestInput {
    Ref(ManifestRef),
    Inline(Box<Manifest>),
}

impl ManifestInput {
    fn source_name(&self) -> Source {
        match self {
            ManifestInput::Ref(r) => r.source_name,
            ManifestInput::Inline(m) => m.source_name,
        }
    }

    /// The manifest: a reference's read from the store and checked, an inline one as it is.
    async fn resolve<S: ObjectStore>(&self, store: &S) -> Result<Manifest, AppError> {
        match self {
            ManifestInput::Ref(r) => r.load(store).await,
            ManifestInput::Inline(m) => Ok((**m).clone()),
        }
    }
}

/// The match function's answer: a run summary, or one partition's receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchOutput {
    Run(Box<RunSummary>),
    Partition(PartitionDone),
    Split(SplitAnswer),
}

/// The match step: a whole run (the default), one partition of a sharded run (`partition`), or the merge
/// of a sharded run (`partitions`).
pub async fn match_step<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: MatchInput,
) -> Result<MatchOutput, AppError> {
    if let Some(call) = input.split.clone() {
        return split_step(ports, &input, call).await.map(MatchOutput::Split);
    }
    if let Some(task) = input.partition {
        return match_one_partition(ports, input, task)
            .await
            .map(MatchOutput::Partition);
    }
    if let (Some(receipts), None) = (&input.partitions, &input.error) {
        // a failed partition: the run is recorded failed with each failed partition's cause
        if let Some(why) = failed_partitions(receipts) {
            let input = MatchInput {
                error: Some(why),
                ..input
            };
            return whole(ports, input).await.map(|s| MatchOutput::Run(Box::new(s)));
        }
        return merge_partitions(ports, input)
            .await
            .map(|s| MatchOutput::Run(Box::new(s)));
    }
    whole(ports, input).await.map(|s| MatchOutput::Run(Box::new(s)))
}

/// One step of the split of a sharded day.
async fn split_step<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: &MatchInput,
    call: SplitCall,
) -> Result<SplitAnswer, AppError> {
    let req = request(input);
    let store = &ports.objects;
    match call {
        SplitCall::Ranges { range_bytes } => {
            let (pm, lm) = manifests_of(store, input).await?;
            Ok(SplitAnswer::Ranges {
                ranges: crate::split::ranges(&pm, &lm, range_bytes),
            })
        }
        SplitCall::Scan { range } => crate::split::scan(store, &req, range)
            .await
            .map(SplitAnswer::Scanned),
        SplitCall::Plan { partitions, scanned } => {
            let db = ports.db().await?;
            let config = ports.settings.run_config();
            let carried = crate::run::carried_for(db, &config, &req).await?;
            let plan = crate::split::plan(store, &req, scanned, &carried, partitions).await?;
            Ok(SplitAnswer::Planned {
                partitions: plan.partitions,
                scatter: plan.ranges,
            })
        }
        SplitCall::Scatter { partitions, range } => {
            crate::split::scatter(store, &req, partitions, &range).await?;
            Ok(SplitAnswer::Scattered {
                scattered: range.task,
            })
        }
    }
}

/// The run request of a match input.
pub(crate) fn request(input: &MatchInput) -> RunRequest {
    let p = input.processor;
    let execution = input
        .execution
        .clone()
        .unwrap_or_else(|| format!("manual:{}", uuid::Uuid::now_v7().simple()));
    RunRequest {
        date: input.date,
        processor: p,
        trigger: input.trigger.unwrap_or(Trigger::Manual),
        idempotency_key: IdempotencyKey::new(&execution, p, input.date),
        execution: Some(execution),
    }
}

/// The processor's and the ledger's manifests of a match input, read from the store when the input holds
/// references.
pub(crate) async fn manifests_of<S: ObjectStore>(
    store: &S,
    input: &MatchInput,
) -> Result<(Manifest, Manifest), AppError> {
    let p = input.processor;
    let (mut ledger, mut processor) = (None, None);
    for m in input.manifests.iter().flatten() {
        if m.source_name() == Source::Ledger {
            ledger = Some(m);
        } else if m.source_name() == Source::from(p) {
            processor = Some(m);
        }
    }
    match (processor, ledger) {
        (Some(pm), Some(lm)) => {
            let (pm, lm) = (pm.resolve(store).await?, lm.resolve(store).await?);
            consistent(input, &[&pm, &lm])?;
            Ok((pm, lm))
        }
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

/// A match input whose manifests do not describe this run is refused, never reconciled into false figures:
/// each manifest is of the run's date, and no object is listed twice (within a manifest or across them).
fn consistent(input: &MatchInput, manifests: &[&Manifest]) -> Result<(), AppError> {
    let mut seen = std::collections::BTreeSet::new();
    for m in manifests {
        if m.date != input.date.to_string() {
            return Err(AppError::InvalidInput(format!(
                "the {} manifest {} is for {}, not {}: the match input mixes days; start the day again",
                m.source_name, m.manifest_key, m.date, input.date
            )));
        }
        for o in &m.objects {
            if !seen.insert(o.key.as_str()) {
                return Err(AppError::InvalidInput(format!(
                    "object {} is listed twice in the match input ({}): its records would count twice; start the \
                     day again",
                    o.key, m.manifest_key
                )));
            }
        }
    }
    Ok(())
}

/// Reconciles one processor's day from staged data; records the run (a failed run when the input could
/// not be read) and writes the reports.
async fn whole<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    input: MatchInput,
) -> Result<RunSummary, AppError> {
    let db = ports.db().await?;
    let p = input.processor;
    let req = request(&input);
    let manifests = match &input.error {
        Some(_) => None,
        None => Some(manifests_of(&ports.objects, &input).await),
    };
    let data = match manifests {
        None => Err(input.error.clone().unwrap_or_default()),
        // a storage hiccup is retried by Step Functions, never recorded as the day's result
        Some(Err(e)) if e.is_retryable() => return Err(e),
        Some(Ok((pm, lm))) => {
            let pf = load_manifest(&ports.objects, pm, 1000).await;
            let lf = load_manifest(&ports.objects, lm, 0).await;
            match (pf, lf) {
                // a storage hiccup is retried by Step Functions, never recorded as the day's result
                (Err(e), _) | (_, Err(e)) if e.is_retryable() => return Err(e),
                (Ok(pf), Ok(lf)) => sides(p, pf, lf).map_err(|e| e.chain()),
                (Err(e), _) => Err(e.chain()),
                (_, Err(e)) => Err(format!("ledger: {}", e.chain())),
            }
        }
        Some(Err(e)) => Err(e.chain()),
    };
    let config = ports.settings.run_config();
    let deps = Deps {
        objects: &ports.objects,
        db,
        config: &config,
    };
    let result = run_match(&deps, &req, data).await?;
    Ok(result.summary)
}
