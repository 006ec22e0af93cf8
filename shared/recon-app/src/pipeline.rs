//! `recon run`: the whole pipeline for one day in one process — fetch (stage) every processor and the
//! ledger concurrently, match each processor, notify.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;

use chrono::NaiveDate;
use recon_core::{DaySummary, InvalidRecord, LedgerRow, Processor, Severity};
use recon_sources::Keep;
use tracing::{debug, error, info};

use crate::fetch::{stage, ApiSources, Fetched};
use crate::keys::Source;
use crate::notify::{compose, should_notify, Mailer, RunNotice};
use crate::objects::ObjectStore;
use crate::{run_match, AppError, Deps, LedgerSide, ProcessorSide, RunRequest, RunResult};

/// Where and to whom the email goes.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub min_severity: Severity,
    pub from: String,
    pub to: Vec<String>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DayOptions {
    pub date: NaiveDate,
    pub processors: Vec<Processor>,
    pub trigger: crate::Trigger,
    /// Distinguishes this invocation in idempotency keys (`cli:<uuid>`).
    pub execution: String,
    pub notify: Option<NotifySettings>,
    /// With `partitions` > 1 in the run configuration: run each sharded run through the split step, in byte
    /// ranges of about this many bytes (every partition reads only its own files), as the state machine does.
    pub split_bytes: Option<u64>,
}

/// The day's outcome.
#[derive(Debug)]
pub struct DayResult {
    pub summary: DaySummary,
    pub runs: Vec<RunResult>,
    /// Message id (or outbox path) of the email, when one was sent.
    pub email: Option<String>,
}

/// The ledger of a day split by processor.
struct LedgerByProcessor {
    manifests: Vec<crate::fetch::Manifest>,
    rows: BTreeMap<Processor, Vec<LedgerRow>>,
    invalid: BTreeMap<Processor, Vec<InvalidRecord>>,
    unattributed: Vec<InvalidRecord>,
    objects: Vec<(u32, String)>,
}

fn split_ledger(f: Fetched) -> Result<LedgerByProcessor, AppError> {
    let mut out = LedgerByProcessor {
        manifests: vec![f.manifest.clone()],
        rows: BTreeMap::new(),
        invalid: BTreeMap::new(),
        unattributed: Vec::new(),
        objects: Vec::new(),
    };
    for (n, l) in f.loaded.into_iter().enumerate() {
        if !l.format.belongs_to(None) {
            return Err(AppError::Unreadable(recon_sources::SourceError::new(
                &l.key,
                format!(
                    "is a {} file, not a ledger export; move it to the processor's inbox",
                    l.format.as_str()
                ),
            )));
        }
        out.objects
            .push((u32::try_from(n).unwrap_or(u32::MAX), l.key.clone()));
        let rows = l.parsed.ledger;
        match rows.first().map(|r| r.processor) {
            // the usual case, one processor per export: move the rows, never copy them
            Some(p) if !out.rows.contains_key(&p) && rows.iter().all(|r| r.processor == p) => {
                out.rows.insert(p, rows);
            }
            _ => {
                for row in rows {
                    out.rows.entry(row.processor).or_default().push(row);
                }
            }
        }
        for (p, inv) in l.parsed.invalid {
            match p {
                Some(p) => out.invalid.entry(p).or_default().push(inv),
                None => out.unattributed.push(inv),
            }
        }
    }
    Ok(out)
}

fn processor_side(p: Processor, f: Fetched, base: u32) -> Result<ProcessorSide, AppError> {
    let mut side = ProcessorSide {
        manifests: vec![f.manifest.clone()],
        ..ProcessorSide::default()
    };
    for (n, l) in f.loaded.into_iter().enumerate() {
        if !l.format.belongs_to(Some(p)) {
            return Err(AppError::Unreadable(recon_sources::SourceError::new(
                &l.key,
                format!(
                    "is a {} file, not {p} data; move it to the right inbox folder",
                    l.format.as_str()
                ),
            )));
        }
        side.objects
            .push((base + u32::try_from(n).unwrap_or(0), l.key.clone()));
        if side.records.is_empty() {
            side.records = l.parsed.records;
        } else {
            side.records.extend(l.parsed.records);
        }
        side.invalid.extend(l.parsed.invalid.into_iter().map(|(_, i)| i));
    }
    Ok(side)
}

/// Object indexes: ledger files from 0, processor `i`'s files from `(i + 1) * 1000`.
fn base_of(i: usize) -> u32 {
    u32::try_from((i + 1) * 1000).unwrap_or(u32::MAX)
}

/// Runs the day. Returns an error only for what stops every run (the database is unreachable); a processor
/// whose input is unusable gets a failed run and the others go on.
pub async fn run_day<S: ObjectStore, M: Mailer>(
    deps: &Deps<'_, S>,
    apis: &ApiSources,
    mailer: Option<&M>,
    opts: &DayOptions,
) -> Result<DayResult, AppError> {
    let date = opts.date;
    let ledger_fut = stage(deps.objects, apis, Source::Ledger, date, 0, Keep::Records);
    let procs_fut = async {
        let mut v = Vec::new();
        for (i, p) in opts.processors.iter().enumerate() {
            v.push((
                *p,
                stage(
                    deps.objects,
                    apis,
                    Source::from(*p),
                    date,
                    base_of(i),
                    Keep::Records,
                )
                .await,
                base_of(i),
            ));
        }
        v
    };
    let clock = std::time::Instant::now();
    let (ledger, staged) = tokio::join!(ledger_fut, procs_fut);
    debug!(
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "inputs staged and parsed"
    );
    let mut ledger = ledger.and_then(split_ledger).map_err(|e| e.chain());
    if let Err(e) = &ledger {
        error!(date = %date, error = %e, "ledger unusable: every processor run fails");
    }
    let unattributed = ledger.as_ref().map(|l| l.unattributed.len() as u64).unwrap_or(0);
    if let Ok(l) = &ledger {
        for inv in &l.unattributed {
            error!(line = inv.location.line, reason = %inv.reason, "ledger row with unreadable processor; not attributed to any run");
        }
    }

    let mut runs = Vec::new();
    for (p, fetched, base) in staged {
        let req = RunRequest {
            date,
            processor: p,
            trigger: opts.trigger,
            execution: Some(opts.execution.clone()),
            idempotency_key: crate::keys::IdempotencyKey::new(&opts.execution, p, date),
        };
        let input = match (fetched.and_then(|f| processor_side(p, f, base)), &mut ledger) {
            (Err(e), _) => Err(e.chain()),
            (Ok(_), Err(e)) => Err(format!("ledger: {e}")),
            (Ok(side), Ok(l)) => Ok((
                side,
                LedgerSide {
                    manifests: l.manifests.clone(),
                    rows: l.rows.remove(&p).unwrap_or_default(),
                    invalid: l.invalid.remove(&p).unwrap_or_default(),
                    objects: l.objects.clone(),
                    unattributed: l.unattributed.clone(),
                },
            )),
        };
        if let Err(e) = &input {
            error!(processor = %p, date = %date, error = %e, "run fails");
        }
        let split = opts.split_bytes.filter(|_| deps.config.partitions > 1);
        let matched = match (split, input) {
            (Some(range_bytes), Ok((side, l))) => {
                let manifests = (side.manifests.first().cloned(), l.manifests.first().cloned());
                drop((side, l));
                let (Some(pm), Some(lm)) = manifests else {
                    return Err(AppError::Internal("a staged side without its manifest".into()));
                };
                match crate::run::split_and_match(
                    deps,
                    &req,
                    (pm.clone(), lm.clone()),
                    deps.config.partitions,
                    range_bytes,
                )
                .await
                {
                    Ok(parts) => {
                        crate::run::run_match_with(
                            deps,
                            &req,
                            crate::run::MatchData::Partitions {
                                parts,
                                manifests: vec![pm, lm],
                            },
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
            }
            (_, input) => run_match(deps, &req, input).await,
        };
        match matched {
            Ok(r) => runs.push(r),
            // one processor's run that cannot be written never stops the others: it is recorded as failed
            // with the reason (when the database is up; otherwise the error stands)
            // a database that is unavailable is retried whole (nothing was written); any other write failure
            // is recorded as that processor's failed run
            Err(AppError::Store(se)) if se.is_retryable() => return Err(AppError::Store(se)),
            Err(e @ AppError::Store(_)) => {
                let why = e.chain();
                error!(processor = %p, date = %date, error = %why, "recording the run failed; recording it as failed");
                let reason = format!("recording the run failed: {why}");
                runs.push(run_match(deps, &req, Err(reason)).await.map_err(|_| e)?);
            }
            Err(e) => return Err(e),
        }
    }
    let summary = DaySummary {
        date: date.to_string(),
        runs: runs.iter().map(|r| r.summary.clone()).collect(),
        unattributed_invalid_records: unattributed,
    };
    let mut email = None;
    if let (Some(settings), Some(mailer)) = (&opts.notify, mailer) {
        if should_notify(&summary.runs, settings.min_severity) {
            let notices: Vec<RunNotice> = runs
                .iter()
                .map(|r| RunNotice {
                    summary: r.summary.clone(),
                    link: r.report_link.clone(),
                    top: r.top.clone(),
                    items: r.items.clone(),
                })
                .collect();
            let mail = compose(&date.to_string(), &notices, &[], &settings.from, &settings.to)?;
            let id = mailer.send(&mail).await?;
            info!(message = %id, "operations email sent");
            email = Some(id);
        }
    }
    Ok(DayResult { summary, runs, email })
}

/// Re-reads the objects a manifest lists (the match step in AWS, where fetch ran in another invocation).
/// Verifies each object's sha256 against the manifest: staged raw data must not have changed.
pub async fn load_manifest<S: ObjectStore>(
    store: &S,
    manifest: crate::fetch::Manifest,
    first_object: u32,
) -> Result<Fetched, AppError> {
    // several objects read at once, kept in the manifest's order (object indexes follow it)
    let loaded = stream::iter(manifest.objects.iter().cloned().enumerate().map(|(n, o)| {
        let object = first_object.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        load_object(store, o, object)
    }))
    .buffered(crate::fetch::STAGING_CONCURRENCY)
    .try_collect()
    .await?;
    Ok(Fetched {
        manifest,
        manifest_sha256: None,
        loaded,
    })
}

/// Reads one staged object, checking its sha256 against the manifest's, and parses it.
async fn load_object<S: ObjectStore>(
    store: &S,
    o: crate::fetch::StagedObject,
    object: u32,
) -> Result<crate::fetch::Loaded, AppError> {
    // the match step loads the processor's objects, then the ledger's
    let (digest, _, parsed) =
        crate::fetch::hash_and_parse_object(store, &o.key, object, crate::fetch::parts_for(1), Keep::Records)
            .await?;
    if digest != o.sha256 {
        return Err(AppError::InvalidInput(format!(
            "{}: sha256 {digest} differs from the manifest's {}; the staged object changed, fetch again",
            o.key, o.sha256
        )));
    }
    let (format, parsed) = parsed.map_err(AppError::Unreadable)?;
    Ok(crate::fetch::Loaded {
        key: o.key,
        format,
        parsed,
    })
}

/// One processor's run input from its staged data and the day's ledger.
pub fn sides(
    p: Processor,
    processor: Fetched,
    ledger: Fetched,
) -> Result<(ProcessorSide, LedgerSide), AppError> {
    let side = processor_side(p, processor, base_of(0))?;
    let mut l = split_ledger(ledger)?;
    for inv in &l.unattributed {
        error!(line = inv.location.line, reason = %inv.reason, "ledger row with unreadable processor; not attributed to any run");
    }
    Ok((
        side,
        LedgerSide {
            manifests: l.manifests,
            rows: l.rows.remove(&p).unwrap_or_default(),
            invalid: l.invalid.remove(&p).unwrap_or_default(),
            objects: l.objects,
            unattributed: l.unattributed,
        },
    ))
}
