//! The split step of a sharded day: no partition worker reads the whole day.
//!
//! 1. [`ranges`]: the staged objects of both sides cut into byte ranges of about `range_bytes` (a CSV export
//!    larger than two ranges; any other object is one range).
//! 2. [`scan`], one worker per range: reads only its bytes, parses them and keeps each record's node hashes
//!    (`recon_core::processor_hashes`/`ledger_hashes`) under `work/…/split/nodes/`.
//! 3. [`plan`], one worker: joins every range's node hashes and the carried items' into the partition plan
//!    (`recon_core::Planner`: the same plan as planning the whole day; the node files are read once a pass, a
//!    round of strings at a time, so that its memory is about 12 bytes a record plus one round's strings) and
//!    keeps, for each range, each record's
//!    partition, and the carried items' (by id). An object any of whose ranges could not be cut safely (a line
//!    break inside a quoted field, a very long line, another format) is scanned again whole here.
//! 4. [`scatter`], one worker per range: reads its bytes again (refused if they differ from the scan's:
//!    sha256), and writes one file per partition with that range's records of the partition (invalid records
//!    in partition 0), line numbers those of the object.
//! 5. [`partition_sides`]: a partition worker reads only its own files (one per range) and gets the sides a
//!    whole run would have, restricted to its partition; its outcome is merged as before.
//!
//! A whole-object range is checked against the manifest's sha256; a range of a cut object cannot be (the
//! digest is of the whole object): its size is checked against the manifest and its bytes must be the same in
//! the scan and the scatter.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use recon_core::{Carried, InvalidRecord, LedgerRow, Processor, ProcessorRecord};
use recon_sources::{Format, Parsed};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::fetch::ranges::{self, RangeRead, Uncut};
use crate::fetch::{Fetched, Loaded, Manifest};
use crate::objects::ObjectStore;
use crate::{keys, AppError, RunRequest};

/// Which side a range belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitSide {
    Processor,
    Ledger,
}

impl SplitSide {
    fn name(self) -> &'static str {
        match self {
            SplitSide::Processor => "processor",
            SplitSide::Ledger => "ledger",
        }
    }

    /// The object index records of this side's object `position` carry (as the whole run numbers them).
    fn object(self, position: u32) -> u32 {
        match self {
            SplitSide::Processor => 1000u32.saturating_add(position),
            SplitSide::Ledger => position,
        }
    }
}

/// One byte range of a staged object: a split worker's task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeTask {
    pub side: SplitSide,
    /// The object's place in its manifest.
    pub position: u32,
    pub key: String,
    /// Its size and sha256 as staged (the manifest's).
    pub bytes: u64,
    pub sha256: String,
    /// Range `range` of `ranges` (1: the whole object).
    pub range: u32,
    pub ranges: u32,
}

impl RangeTask {
    fn name(&self) -> String {
        format!(
            "{}-{:05}-{:05}-of-{:05}",
            self.side.name(),
            self.position,
            self.range,
            self.ranges
        )
    }
}

/// The ranges of a processor's and the ledger's staged objects.
pub fn ranges(processor: &Manifest, ledger: &Manifest, range_bytes: u64) -> Vec<RangeTask> {
    let range_bytes = range_bytes.max(1);
    let mut out = Vec::new();
    for (side, m) in [(SplitSide::Processor, processor), (SplitSide::Ledger, ledger)] {
        for (position, o) in m.objects.iter().enumerate() {
            let csv = matches!(o.format.as_deref(), Some("ledger_csv" | "stripe_report_csv"));
            let n = match csv {
                true => u32::try_from((o.bytes / range_bytes).max(1)).unwrap_or(u32::MAX),
                false => 1,
            };
            let n = if n < 2 { 1 } else { n };
            for range in 0..n {
                out.push(RangeTask {
                    side,
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                    key: o.key.clone(),
                    bytes: o.bytes,
                    sha256: o.sha256.clone(),
                    range,
                    ranges: n,
                });
            }
        }
    }
    out
}

/// What scanning a range found (small: a Map iteration's result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scanned {
    pub task: RangeTask,
    /// `None`: the range could not be cut safely; the plan reads the object whole.
    pub cut: Option<ScannedCut>,
}

/// A range that was cut and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedCut {
    pub start: u64,
    pub end: u64,
    pub sha256: String,
    pub newlines: u64,
    pub format: String,
    /// Records planned (this processor's valid records of the range), in the node file.
    pub planned: u64,
    pub invalid: u64,
}

fn run_dir(req: &RunRequest) -> String {
    let digest = req.idempotency_key.digest();
    keys::split_dir(req.date, req.processor, digest.get(..16).unwrap_or(&digest))
}

/// Reads a range as its task says (cutting it first unless it is the whole object).
async fn read_task<S: ObjectStore>(
    store: &S,
    task: &RangeTask,
    at: Option<(u64, u64)>,
) -> Result<Result<RangeRead, Uncut>, AppError> {
    let object = task.side.object(task.position);
    if task.ranges <= 1 {
        let read = ranges::read(store, &task.key, object, (0, task.bytes), None).await?;
        if let Ok(r) = &read {
            if r.size != task.bytes || r.sha256 != task.sha256 {
                return Err(AppError::InvalidInput(format!(
                    "{}: {} bytes with sha256 {}, the manifest says {} bytes with {}; the staged object changed, \
                     fetch again",
                    task.key, r.size, r.sha256, task.bytes, task.sha256
                )));
            }
        }
        return Ok(read);
    }
    let (start, end, header) = match at {
        Some((s, e)) => {
            let head = ranges::cuts(store, &task.key, task.bytes, 0, task.ranges).await?;
            match head {
                Ok((_, _, h)) => (s, e, h),
                Err(u) => return Ok(Err(u)),
            }
        }
        None => match ranges::cuts(store, &task.key, task.bytes, task.range, task.ranges).await? {
            Ok(c) => c,
            Err(u) => return Ok(Err(u)),
        },
    };
    let read = ranges::read(store, &task.key, object, (start, end), Some(header)).await?;
    if let Ok(r) = &read {
        if r.size != task.bytes {
            return Err(AppError::InvalidInput(format!(
                "{}: {} bytes, the manifest says {}; the staged object changed, fetch again",
                task.key, r.size, task.bytes
            )));
        }
    }
    Ok(read)
}

/// The records of a parse that belong to this run, in order: every processor record, or the ledger rows of
/// `processor`.
fn planned_hashes(side: SplitSide, processor: Processor, parsed: &Parsed) -> Vec<Vec<u64>> {
    match side {
        SplitSide::Processor => parsed.records.iter().map(recon_core::processor_hashes).collect(),
        SplitSide::Ledger => parsed
            .ledger
            .iter()
            .filter(|r| r.processor == processor)
            .map(recon_core::ledger_hashes)
            .collect(),
    }
}

fn encode_nodes(lists: &[Vec<u64>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + lists.len() * 25);
    out.extend_from_slice(&(lists.len() as u64).to_le_bytes());
    for l in lists {
        // a length of 4 bytes: a record's hashes are never cut short (that could part records that meet)
        out.extend_from_slice(&u32::try_from(l.len()).unwrap_or(u32::MAX).to_le_bytes());
        for h in l.iter().take(u32::MAX as usize) {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    out
}

fn bad_file(key: &str) -> AppError {
    AppError::InvalidInput(format!("{key}: not a split file of this run; rerun the split"))
}

/// Feeds a node file's records to the planner, in order; returns how many.
fn decode_nodes(key: &str, bytes: &[u8], planner: &mut recon_core::Planner) -> Result<u64, AppError> {
    let u64_at = |i: usize| -> Option<u64> {
        bytes
            .get(i..i + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let n = u64_at(0).ok_or_else(|| bad_file(key))?;
    let mut at = 8usize;
    for _ in 0..n {
        let k = bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| bad_file(key))? as usize;
        at += 4;
        if bytes.len() < at.saturating_add(k.saturating_mul(8)) {
            return Err(bad_file(key));
        }
        // every hash is there (the length was checked above)
        planner.add((0..k).filter_map(|j| u64_at(at + 8 * j)));
        at += 8 * k;
    }
    if at != bytes.len() {
        return Err(bad_file(key));
    }
    Ok(n)
}

/// Scans one range: keeps its records' node hashes under the run's split folder.
pub async fn scan<S: ObjectStore>(store: &S, req: &RunRequest, task: RangeTask) -> Result<Scanned, AppError> {
    let read = match read_task(store, &task, None).await? {
        Ok(r) => r,
        Err(why) => {
            debug!(key = %task.key, range = task.range, ?why, "range not cut: the plan reads the object whole");
            return Ok(Scanned { task, cut: None });
        }
    };
    let (format, parsed) = read.parsed.map_err(AppError::Unreadable)?;
    let lists = planned_hashes(task.side, req.processor, &parsed);
    let key = format!("{}nodes/{}.bin", run_dir(req), task.name());
    store
        .put(&key, encode_nodes(&lists), "application/octet-stream")
        .await
        .map_err(AppError::Object)?;
    Ok(Scanned {
        cut: Some(ScannedCut {
            start: read.start,
            end: read.end,
            sha256: read.sha256,
            newlines: read.newlines,
            format: format.as_str().to_string(),
            planned: lists.len() as u64,
            invalid: parsed.invalid.len() as u64,
        }),
        task,
    })
}

/// A range as the plan settled it: what its scatter worker writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScatterTask {
    pub task: RangeTask,
    pub cut: ScannedCut,
    /// The object's line number of the range's first line.
    pub first_line: u64,
}

/// What the plan keeps: the ranges to scatter, and the carried items' partitions (by the store's id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitPlan {
    pub run: String,
    pub partitions: u32,
    pub ranges: Vec<ScatterTask>,
    pub carried: BTreeMap<i64, u32>,
}

/// Plans the partitions from every range's node hashes and the carried items (see the module doc).
pub async fn plan<S: ObjectStore>(
    store: &S,
    req: &RunRequest,
    scanned: Vec<Scanned>,
    carried: &[Carried],
    partitions: u32,
) -> Result<SplitPlan, AppError> {
    let partitions = partitions.max(1);
    // by object, ranges in order; an object with a range that was not cut is scanned again whole
    let mut objects: BTreeMap<(SplitSide, u32), Vec<Scanned>> = BTreeMap::new();
    for s in scanned {
        objects.entry((s.task.side, s.task.position)).or_default().push(s);
    }
    let mut settled: Vec<ScatterTask> = Vec::new();
    for ((side, position), mut parts) in objects {
        parts.sort_by_key(|s| s.task.range);
        let n = parts.first().map_or(0, |p| p.task.ranges);
        let all_there = parts.len() == n as usize
            && parts
                .iter()
                .enumerate()
                .all(|(i, p)| p.task.range as usize == i && p.task.ranges == n);
        if !all_there {
            return Err(AppError::InvalidInput(format!(
                "the split of {} object {position} on {} is missing ranges (got {} of {n}); rerun the split",
                side.name(),
                req.date,
                parts.len()
            )));
        }
        let cuts: Option<Vec<ScannedCut>> = parts.iter().map(|p| p.cut.clone()).collect();
        let contiguous = cuts.as_ref().is_some_and(|c| {
            c.first().is_some_and(|f| f.start == 0)
                && c.windows(2)
                    .all(|w| w[0].end == w[1].start && w[0].format == w[1].format)
                && c.last()
                    .is_some_and(|l| Some(l.end) == parts.first().map(|p| p.task.bytes))
        });
        match cuts.filter(|_| contiguous) {
            Some(cuts) => {
                let mut first_line = 1u64;
                for (p, cut) in parts.into_iter().zip(cuts) {
                    let next = first_line.saturating_add(cut.newlines);
                    settled.push(ScatterTask {
                        task: p.task,
                        cut,
                        first_line,
                    });
                    first_line = next;
                }
            }
            None => {
                let Some(first) = parts.into_iter().next() else {
                    continue;
                };
                info!(key = %first.task.key, "an object the split could not cut safely: scanned whole");
                let task = RangeTask {
                    range: 0,
                    ranges: 1,
                    ..first.task
                };
                let again = scan(store, req, task).await?;
                let Some(cut) = again.cut else {
                    return Err(AppError::Internal(format!(
                        "{}: a whole object was not read",
                        again.task.key
                    )));
                };
                settled.push(ScatterTask {
                    task: again.task,
                    cut,
                    first_line: 1,
                });
            }
        }
    }
    let dir = run_dir(req);
    let records = settled.iter().map(|s| s.cut.planned as usize).sum::<usize>() + carried.len();
    let mut planner = recon_core::Planner::new(records, recon_core::Planner::rounds_for(records));
    let mut slots = Vec::with_capacity(settled.len());
    // the node files are read once a pass: the planner holds one round of strings at a time
    for pass in 0..planner.passes() {
        for s in &settled {
            let key = format!("{dir}nodes/{}.bin", s.task.name());
            let bytes = store.get(&key).await.map_err(AppError::Object)?;
            let n = decode_nodes(&key, &bytes, &mut planner)?;
            if n != s.cut.planned {
                return Err(bad_file(&key));
            }
            if pass == 0 {
                slots.push(n);
            }
        }
        for c in carried {
            planner.add(recon_core::carried_hashes(c));
        }
        planner
            .end_pass()
            .map_err(|why| AppError::InvalidInput(format!("{dir}nodes/: {why}; rerun the split")))?;
    }
    let mut assigned = planner
        .finish(partitions)
        .map_err(AppError::Internal)?
        .into_iter();
    for (s, n) in settled.iter().zip(slots) {
        let mine: Vec<u8> = assigned
            .by_ref()
            .take(n as usize)
            .flat_map(|p| p.to_le_bytes())
            .collect();
        let key = format!("{dir}plan/{}.bin", s.task.name());
        store
            .put(&key, mine, "application/octet-stream")
            .await
            .map_err(AppError::Object)?;
    }
    let carried: BTreeMap<i64, u32> = carried.iter().map(|c| c.id).zip(assigned).collect();
    let plan = SplitPlan {
        run: req.idempotency_key.digest(),
        partitions,
        ranges: settled,
        carried,
    };
    let body = serde_json::to_vec(&plan).map_err(|e| AppError::failed("encoding the split plan", e))?;
    store
        .put(&format!("{dir}plan.json"), body, "application/json")
        .await
        .map_err(AppError::Object)?;
    info!(processor = %req.processor, date = %req.date, partitions, ranges = plan.ranges.len(), "split planned");
    Ok(plan)
}

/// The split plan of a run, as [`plan`] kept it.
pub async fn load_plan<S: ObjectStore>(store: &S, req: &RunRequest) -> Result<SplitPlan, AppError> {
    let key = format!("{}plan.json", run_dir(req));
    let bytes = store.get(&key).await.map_err(AppError::Object)?;
    let plan: SplitPlan = serde_json::from_slice(&bytes).map_err(|_| bad_file(&key))?;
    if plan.run != req.idempotency_key.digest() {
        return Err(bad_file(&key));
    }
    Ok(plan)
}

/// Each object's records of one partition, with its key and format.
type ByObject = BTreeMap<(SplitSide, u32), (String, Option<Format>, Parsed)>;

/// One range's records of one partition.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartFile {
    run: String,
    format: String,
    records: Vec<ProcessorRecord>,
    ledger: Vec<LedgerRow>,
    invalid: Vec<(Option<Processor>, InvalidRecord)>,
}

fn part_key(dir: &str, index: u32, task: &RangeTask) -> String {
    format!("{dir}partition-{index:05}/{}.json", task.name())
}

/// Writes one range's records into one file per partition.
pub async fn scatter<S: ObjectStore>(
    store: &S,
    req: &RunRequest,
    partitions: u32,
    s: &ScatterTask,
) -> Result<(), AppError> {
    let dir = run_dir(req);
    let read = match read_task(store, &s.task, Some((s.cut.start, s.cut.end))).await? {
        Ok(r) => r,
        Err(why) => {
            return Err(AppError::InvalidInput(format!(
                "{}: bytes {}..{} read differently than when scanned ({why:?}); rerun the split",
                s.task.key, s.cut.start, s.cut.end
            )))
        }
    };
    if read.sha256 != s.cut.sha256 {
        return Err(AppError::InvalidInput(format!(
            "{}: bytes {}..{} changed between the scan and the split (sha256); fetch again",
            s.task.key, s.cut.start, s.cut.end
        )));
    }
    let (format, mut parsed) = read.parsed.map_err(AppError::Unreadable)?;
    // line numbers of the object (a later range's own lines start at 2, behind the header line)
    if s.task.ranges > 1 && s.task.range > 0 {
        crate::fetch::split::shift_lines(&mut parsed, s.first_line.saturating_sub(2)).map_err(|e| {
            AppError::InvalidInput(format!(
                "{}: bytes {}..{}: {e}",
                s.task.key, s.cut.start, s.cut.end
            ))
        })?;
    }
    let plan_key = format!("{dir}plan/{}.bin", s.task.name());
    let assigned = store.get(&plan_key).await.map_err(AppError::Object)?;
    let assigned: Vec<u32> = assigned
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok().map(u32::from_le_bytes))
        .collect();
    let run = req.idempotency_key.digest();
    let mut files: Vec<PartFile> = (0..partitions)
        .map(|_| PartFile {
            run: run.clone(),
            format: format.as_str().to_string(),
            ..PartFile::default()
        })
        .collect();
    let wrong = || {
        AppError::InvalidInput(format!(
            "{plan_key}: the plan does not fit the records of {} bytes {}..{}; rerun the split",
            s.task.key, s.cut.start, s.cut.end
        ))
    };
    let mut of = assigned.iter();
    match s.task.side {
        SplitSide::Processor => {
            for r in parsed.records {
                let p = *of.next().ok_or_else(wrong)?;
                files.get_mut(p as usize).ok_or_else(wrong)?.records.push(r);
            }
        }
        SplitSide::Ledger => {
            for r in parsed.ledger.into_iter().filter(|r| r.processor == req.processor) {
                let p = *of.next().ok_or_else(wrong)?;
                files.get_mut(p as usize).ok_or_else(wrong)?.ledger.push(r);
            }
        }
    }
    if of.next().is_some() {
        return Err(wrong());
    }
    // invalid records with partition 0 (a ledger row of another processor belongs to that one's run)
    let mine = |p: &Option<Processor>| match s.task.side {
        SplitSide::Processor => true,
        SplitSide::Ledger => p.is_none_or(|p| p == req.processor),
    };
    if let Some(first) = files.first_mut() {
        first.invalid = parsed.invalid.into_iter().filter(|(p, _)| mine(p)).collect();
    }
    stream::iter(files.into_iter().enumerate().map(|(i, f)| {
        let key = part_key(&dir, i as u32, &s.task);
        async move {
            let body = serde_json::to_vec(&f).map_err(|e| AppError::failed(format!("encoding {key}"), e))?;
            store
                .put(&key, body, "application/json")
                .await
                .map_err(AppError::Object)
        }
    }))
    .buffer_unordered(8)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// Partition `index`'s sides, read from its own files only (one per range), as the whole run's loads
/// would give them restricted to the partition; and the carried items of the partition.
pub async fn partition_sides<S: ObjectStore>(
    store: &S,
    req: &RunRequest,
    plan: &SplitPlan,
    index: u32,
    (pm, lm): (Manifest, Manifest),
    carried: Vec<Carried>,
) -> Result<(Fetched, Fetched, Vec<Carried>), AppError> {
    let dir = run_dir(req);
    let mut by_object: ByObject = BTreeMap::new();
    for (side, m) in [(SplitSide::Processor, &pm), (SplitSide::Ledger, &lm)] {
        for (i, o) in m.objects.iter().enumerate() {
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            by_object.insert((side, position), (o.key.clone(), None, Parsed::default()));
        }
    }
    // owned items: the stream's future stays Send for any borrow (a Lambda handler's requirement)
    let wanted: Vec<(usize, String)> = plan
        .ranges
        .iter()
        .enumerate()
        .map(|(n, s)| (n, part_key(&dir, index, &s.task)))
        .collect();
    let run = req.idempotency_key.digest();
    // each file folded into its object's records as it arrives, in plan order (at most 8 read ahead): the
    // worker never holds more than its partition's records and those few files
    let mut read = stream::iter(wanted.into_iter().map(|(n, key)| {
        let run = run.clone();
        async move {
            let bytes = store.get(&key).await.map_err(AppError::Object)?;
            let f: PartFile = serde_json::from_slice(&bytes).map_err(|_| bad_file(&key))?;
            if f.run != run {
                return Err(bad_file(&key));
            }
            Ok::<_, AppError>((n, f))
        }
    }))
    .buffered(8);
    while let Some((n, mut f)) = read.try_next().await? {
        let Some(s) = plan.ranges.get(n) else {
            continue;
        };
        let Some((_, format, parsed)) = by_object.get_mut(&(s.task.side, s.task.position)) else {
            return Err(AppError::InvalidInput(format!(
                "{}: the split plan names an object the manifest does not list; rerun the split",
                s.task.key
            )));
        };
        let got = Format::from_name(&f.format).ok_or_else(|| bad_file(&s.task.key))?;
        *format = Some(got);
        parsed.records.append(&mut f.records);
        parsed.ledger.append(&mut f.ledger);
        parsed.invalid.append(&mut f.invalid);
    }
    let fetched = |side: SplitSide, m: Manifest, by_object: &mut ByObject| -> Result<Fetched, AppError> {
        let mut loaded = Vec::with_capacity(m.objects.len());
        for i in 0..m.objects.len() {
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            let Some((key, format, parsed)) = by_object.remove(&(side, position)) else {
                continue;
            };
            let format = format.ok_or_else(|| {
                AppError::InvalidInput(format!(
                    "{key}: no range of it in the split plan; rerun the split"
                ))
            })?;
            loaded.push(Loaded { key, format, parsed });
        }
        Ok(Fetched {
            manifest: m,
            manifest_sha256: None,
            loaded,
        })
    };
    let p = fetched(SplitSide::Processor, pm, &mut by_object)?;
    let l = fetched(SplitSide::Ledger, lm, &mut by_object)?;
    let mut mine = Vec::new();
    for c in carried {
        match plan.carried.get(&c.id) {
            Some(&part) if part == index => mine.push(c),
            Some(_) => {}
            None => {
                return Err(AppError::InvalidInput(format!(
                    "carried item {} of {} on {} is not in the split plan: the open items changed since the plan; \
                     rerun the sharded run",
                    c.id, req.processor, req.date
                )))
            }
        }
    }
    Ok((p, l, mine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::split::tests::file;
    use crate::fetch::{StagedFrom, StagedObject, Window};
    use crate::keys::Source;
    use crate::objects::{LocalStore, ObjectError};
    use proptest::prelude::*;
    use std::sync::Mutex;

    /// The local store, noting every key read.
    struct Noted {
        inner: LocalStore,
        read: Mutex<Vec<String>>,
    }

    impl Noted {
        fn note(&self, key: &str) {
            if let Ok(mut r) = self.read.lock() {
                r.push(key.to_string());
            }
        }
        fn take(&self) -> Vec<String> {
            self.read
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default()
        }
    }

    impl ObjectStore for Noted {
        async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
            self.note(key);
            self.inner.get(key).await
        }
        async fn open(&self, key: &str) -> Result<(Box<dyn std::io::Read + Send>, Option<u64>), ObjectError> {
            self.note(key);
            self.inner.open(key).await
        }
        async fn open_range(
            &self,
            key: &str,
            from: u64,
            to: u64,
        ) -> Result<(Box<dyn std::io::Read + Send>, u64), ObjectError> {
            self.note(key);
            self.inner.open_range(key, from, to).await
        }
        async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), ObjectError> {
            self.inner.put(key, bytes, content_type).await
        }
        async fn put_new(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<bool, ObjectError> {
            self.inner.put_new(key, bytes, content_type).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
            self.inner.list(prefix).await
        }
        async fn copy(&self, from: &str, to: &str) -> Result<(), ObjectError> {
            self.inner.copy(from, to).await
        }
        async fn link(&self, key: &str) -> Result<String, ObjectError> {
            self.inner.link(key).await
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
        async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
            self.inner.exists(key).await
        }
    }

    fn manifest(source: Source, objects: Vec<StagedObject>) -> Manifest {
        Manifest {
            source_name: source,
            date: "2025-06-02".into(),
            fetch_id: "00000000-0000-0000-0000-000000000000".into(),
            source: StagedFrom::File,
            record_count: 0,
            invalid_count: 0,
            objects,
            window: Window {
                start: "2025-06-02T00:00:00Z".into(),
                end: "2025-06-03T00:00:00Z".into(),
            },
            fetched_at: "2025-06-03T06:00:00Z".into(),
            cursors: Vec::new(),
            manifest_key: format!("raw/{source}/2025-06-02/x/manifest.json"),
            skipped: Vec::new(),
            unattributed: Vec::new(),
            unattributed_count: 0,
        }
    }

    fn staged(key: &str, bytes: &[u8], format: &str) -> StagedObject {
        use sha2::Digest;
        StagedObject {
            key: key.into(),
            origin: key.into(),
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
            format: Some(format.into()),
            records: 0,
            invalid: 0,
        }
    }

    type Everything = (Vec<ProcessorRecord>, Vec<LedgerRow>, Vec<InvalidRecord>);

    fn sorted(mut e: Everything) -> Everything {
        // two records can share a line (a bare LF inside a CRLF line ends a record): the id decides
        e.0.sort_by_key(|r| (r.location().object, r.location().line, r.id().to_string()));
        e.1.sort_by_key(|r| (r.location().object, r.location().line, r.ledger_id().to_string()));
        e.2.sort_by_key(|r| {
            (
                r.location.object,
                r.location.line,
                r.raw.clone(),
                r.reason.clone(),
            )
        });
        e
    }

    /// Splits a Stripe report and a ledger export (`kinds`: the row shapes of the parallel parse's tests,
    /// quoted line breaks included) into ranges of `range_bytes` and `n` partitions; returns every
    /// partition's records together, and whether each partition worker read only its own files.
    async fn split_day(stripe: &[u8], ledger: &[u8], range_bytes: u64, n: u32) -> (Everything, bool) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let store = Noted {
            inner: LocalStore::new(dir.path()),
            read: Mutex::new(Vec::new()),
        };
        let (sk, lk) = ("raw/stripe/2025-06-02/x/s.csv", "raw/ledger/2025-06-02/x/l.csv");
        for (k, b) in [(sk, stripe), (lk, ledger)] {
            store
                .put(k, b.to_vec(), "text/csv")
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
        let pm = manifest(Source::Stripe, vec![staged(sk, stripe, "stripe_report_csv")]);
        let lm = manifest(Source::Ledger, vec![staged(lk, ledger, "ledger_csv")]);
        let date = chrono::NaiveDate::from_ymd_opt(2025, 6, 2).unwrap_or_default();
        let req = RunRequest {
            date,
            processor: Processor::Stripe,
            trigger: crate::Trigger::Cli,
            execution: None,
            idempotency_key: keys::IdempotencyKey::new("test", Processor::Stripe, date),
        };
        let mut scanned = Vec::new();
        for t in ranges(&pm, &lm, range_bytes) {
            scanned.push(
                scan(&store, &req, t)
                    .await
                    .unwrap_or_else(|e| unreachable!("{e}")),
            );
        }
        let plan = plan(&store, &req, scanned, &[], n)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        for s in &plan.ranges {
            scatter(&store, &req, n, s)
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));
        }
        let mut all: Everything = Default::default();
        let mut only_own = true;
        store.take();
        for i in 0..n {
            let (p, l, _) = partition_sides(&store, &req, &plan, i, (pm.clone(), lm.clone()), Vec::new())
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));
            let own = format!("{}partition-{i:05}/", run_dir(&req));
            only_own &= store.take().iter().all(|k| k.starts_with(&own));
            for f in [p, l] {
                for o in f.loaded {
                    all.0.extend(o.parsed.records);
                    all.1.extend(o.parsed.ledger);
                    all.2.extend(o.parsed.invalid.into_iter().map(|(_, i)| i));
                }
            }
        }
        (sorted(all), only_own)
    }

    fn one_piece(stripe: &[u8], ledger: &[u8]) -> Everything {
        let mut e: Everything = Default::default();
        for (k, o, b) in [
            ("raw/stripe/2025-06-02/x/s.csv", 1000, stripe),
            ("raw/ledger/2025-06-02/x/l.csv", 0, ledger),
        ] {
            let (_, p) =
                recon_sources::parse_reader(k, o, b, Some(b.len() as u64), recon_sources::Keep::Records)
                    .unwrap_or_else(|e| unreachable!("{e}"));
            e.0.extend(p.records);
            e.1.extend(p.ledger);
            e.2.extend(p.invalid.into_iter().map(|(_, i)| i));
        }
        sorted(e)
    }

    /// The first record of each kind that differs, for a readable failure.
    fn first_difference(a: &Everything, b: &Everything) -> String {
        fn first<T: std::fmt::Debug + PartialEq>(what: &str, x: &[T], y: &[T]) -> String {
            match x.iter().zip(y).find(|(p, q)| p != q) {
                Some((p, q)) => format!("{what}: split {p:?}\n whole {q:?}\n"),
                None if x.len() != y.len() => format!("{what}: {} split, {} whole\n", x.len(), y.len()),
                None => String::new(),
            }
        }
        first("record", &a.0, &b.0) + &first("ledger row", &a.1, &b.1) + &first("invalid", &a.2, &b.2)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_split_day_holds_every_record_of_the_whole_once_with_its_line() {
        // plain rows, a quoted comma, "" inside quotes, a bad amount, an empty line, non-UTF-8
        let kinds: Vec<u8> = (0..300)
            .map(|i| [0, 0, 10, 0, 14, 0, 17, 15, 0, 11][i % 10])
            .collect();
        let (s, l) = (file(true, &kinds, false, false), file(false, &kinds, true, false));
        let (got, only_own) = runtime().block_on(split_day(&s, &l, 2000, 3));
        assert!(only_own, "a partition worker read another partition's files");
        assert!(got.0.len() > 100 && !got.2.is_empty());
        assert_eq!(got, one_piece(&s, &l));
    }

    #[test]
    fn a_quoted_line_break_makes_the_object_read_whole() {
        let mut kinds: Vec<u8> = vec![0; 300];
        kinds[150] = 12;
        let (s, l) = (
            file(true, &kinds, false, false),
            file(false, &kinds, false, false),
        );
        let (got, _) = runtime().block_on(split_day(&s, &l, 1500, 2));
        assert_eq!(got, one_piece(&s, &l));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Given any mix of the row shapes, ranges of any size and any number of partitions, the partitions
        /// together hold exactly the records of the whole parse, with the same line numbers.
        #[test]
        fn splitting_never_changes_what_is_read(
            sk in prop::collection::vec(prop::sample::select(vec![0u8, 0, 0, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21]), 1..120),
            lk in prop::collection::vec(prop::sample::select(vec![0u8, 0, 0, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21]), 1..120),
            crlf in any::<bool>(),
            range_bytes in 200u64..4000,
            n in 1u32..5,
        ) {
            let (s, l) = (file(true, &sk, crlf, false), file(false, &lk, !crlf, false));
            let (got, only_own) = runtime().block_on(split_day(&s, &l, range_bytes, n));
            prop_assert!(only_own);
            let want = one_piece(&s, &l);
            prop_assert!(got == want, "{}", first_difference(&got, &want));
        }
    }
}
