//! Staging the files dropped in a source's inbox: every file kept whole under its relative path, folder
//! markers, partial uploads and anything that is not a regular file said and skipped.

use chrono::NaiveDate;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use recon_sources::Keep;

use crate::keys::{self, Source};
use crate::objects::ObjectStore;
use crate::AppError;

use super::{Fetched, Skipped, Staged, StagedFrom};

/// Inbox files staged at once (object store round trips overlap; a day of 10,000 dropped pages is staged in
/// minutes, not a quarter of an hour).
pub const STAGING_CONCURRENCY: usize = 8;

/// Why an inbox key is not staged, if it is not: a folder marker (an empty key ending in `/`, as the S3
/// console makes), a partial upload (`.tmp-` name), or not a regular file (a symbolic link or device:
/// refused, never read).
fn skip_reason(relative: &str) -> Option<&'static str> {
    if relative.is_empty() || relative.ends_with('/') {
        return Some("a folder marker, not a file");
    }
    if relative.split('/').any(|p| p.starts_with(".tmp-")) {
        return Some(
            "a temporary file (.tmp- name): an upload still in progress? rename it and rerun the day",
        );
    }
    None
}

/// The raw key of a dropped file: its path relative to the inbox folder, kept whole (`a/b.csv` and `a_b.csv`
/// stay apart); `manifest.json` at the top is staged as `files/manifest.json`, never over the manifest.
fn raw_key_of(prefix: &str, relative: &str) -> String {
    if relative == keys::MANIFEST {
        format!("{prefix}files/{relative}")
    } else {
        format!("{prefix}{relative}")
    }
}

/// Why an inbox entry is not staged, if it is not (reads its metadata only).
async fn why_not_staged<S: ObjectStore>(
    store: &S,
    inbox: &str,
    inbox_key: String,
) -> Result<Option<String>, AppError> {
    let relative = inbox_key.strip_prefix(inbox).unwrap_or(&inbox_key);
    if let Some(r) = skip_reason(relative) {
        return Ok(Some(r.to_string()));
    }
    if !store.is_regular(&inbox_key).await.map_err(AppError::Object)? {
        return Ok(Some(
            "not a regular file (a symbolic link, device or folder): refused, its content unread; put the file \
             itself there"
                .to_string(),
        ));
    }
    Ok(None)
}

/// A staged file: its raw key, inbox key, sha256 and size, and what was parsed from it.
type Staging = (
    String,
    String,
    (String, u64),
    Result<(recon_sources::Format, recon_sources::Parsed), recon_sources::SourceError>,
);

/// How many parts a large CSV file of `source` is parsed in (each at least [`super::split::MIN_PART`]):
/// the ledger half the cores, a processor's file every core. `recon run` stages the ledger beside the
/// processors, whose files come one after another: the ledger's one thread and a processor file's threads
/// keep every core busy, and a core is not left idle for the rest of a processor file once the smaller
/// ledger is done (measured at 1M rows on 2 cores, 8 alternating first runs each: the processor file in one
/// part 1.89 s, in two 1.78 s, peak memory unchanged; both files in two, 1.86 s).
fn parse_parts(source: Source) -> usize {
    match source {
        Source::Ledger => super::parts_for(2),
        _ => super::parts_for(1),
    }
}

/// Stages one inbox file unchanged under `prefix`, then reads back what was staged (hash and parse).
async fn stage_one<S: ObjectStore>(
    store: &S,
    prefix: &str,
    inbox: &str,
    inbox_key: String,
    object: u32,
    parts: usize,
    keep: Keep,
) -> Result<Staging, AppError> {
    let relative = inbox_key.strip_prefix(inbox).unwrap_or(&inbox_key);
    let raw_key = raw_key_of(prefix, relative);
    let clock = std::time::Instant::now();
    store.copy(&inbox_key, &raw_key).await.map_err(AppError::Object)?;
    let copied = clock.elapsed().as_millis() as u64;
    let (digest, len, parsed) = super::hash_and_parse_object(store, &raw_key, object, parts, keep).await?;
    tracing::debug!(key = %raw_key, bytes = len, copy_ms = copied, elapsed_ms = clock.elapsed().as_millis() as u64,
                    "staged, hashed and parsed");
    Ok((raw_key, inbox_key, (digest, len), parsed))
}

/// Stages every file dropped in `inbox/{source_name}/{date}/` under a new fetch id and parses it.
/// `first_object` is the object index the first file's records carry (object indexes must be unique within
/// a run); `keep` whether its records are kept or only counted. Fails when the inbox is empty or a file
/// cannot be read as a whole.
pub async fn stage_inbox<S: ObjectStore>(
    store: &S,
    source_name: Source,
    date: NaiveDate,
    first_object: u32,
    keep: Keep,
) -> Result<Fetched, AppError> {
    let inbox = keys::inbox_day(source_name, date);
    let files = store.list(&inbox).await.map_err(AppError::Object)?;
    if files.is_empty() {
        return Err(AppError::NoInput {
            source_name,
            date,
            hint: format!(
                "nothing in {}/{inbox} and no API configured for it: drop the day's file there or configure the API credentials",
                store.describe()
            ),
        });
    }
    let mut staged = Staged::new(source_name, date, StagedFrom::File);
    // which entries are staged, and why the others are not: checked STAGING_CONCURRENCY at a time, decided in
    // the listing's order
    let reasons: Vec<Option<String>> =
        stream::iter(files.iter().cloned().map(|k| why_not_staged(store, &inbox, k)))
            .buffered(STAGING_CONCURRENCY)
            .try_collect()
            .await?;
    let mut to_stage = Vec::new();
    for (inbox_key, reason) in files.into_iter().zip(reasons) {
        match reason {
            Some(reason) => {
                tracing::warn!(key = %inbox_key, %reason, "inbox entry not staged");
                staged.skipped.push(Skipped {
                    key: inbox_key,
                    reason,
                });
            }
            None => to_stage.push(inbox_key),
        }
    }
    // each file staged first, unchanged, then read back from what was staged; several at a time, added to the
    // manifest in the listing's order (object indexes follow it)
    let prefix = staged.prefix.clone();
    let parts = parse_parts(source_name);
    let done: Vec<Staging> = stream::iter(to_stage.into_iter().enumerate().map(|(n, k)| {
        let object = first_object.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        stage_one(store, &prefix, &inbox, k, object, parts, keep)
    }))
    .buffered(STAGING_CONCURRENCY)
    .try_collect()
    .await?;
    for (raw_key, inbox_key, digest, parsed) in done {
        staged.add(raw_key, inbox_key, digest, parsed);
    }
    if staged.objects.is_empty() && !staged.skipped.is_empty() {
        let list: Vec<String> = staged
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.key, s.reason))
            .collect();
        return Err(AppError::NoInput {
            source_name,
            date,
            hint: format!("nothing in {inbox} could be staged: {}", list.join("; ")),
        });
    }
    staged.finish(store).await
}
