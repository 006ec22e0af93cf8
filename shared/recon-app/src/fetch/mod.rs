//! The fetch step: stage raw inputs under `raw/{source}/{date}/{fetch_id}/` unchanged, then write the
//! manifest. Inbox files take precedence over an API for that processor and date.

use chrono::{NaiveDate, SecondsFormat, Utc};
use std::io::Read;

use recon_sources::{Format, Keep, Parsed, SourceError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{self, Source};
use crate::objects::ObjectStore;
use crate::AppError;

mod api;
mod inbox;
pub mod ranges;
pub(crate) mod split;

pub use split::{hash_and_parse_file, parts_for};

pub use api::{stage_pages, ApiSources};
pub use inbox::{stage_inbox, STAGING_CONCURRENCY};

/// One staged object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedObject {
    /// `raw/...` key of the unchanged copy.
    pub key: String,
    /// Where it came from (`inbox/...` key, or the API request).
    pub origin: String,
    pub sha256: String,
    pub bytes: u64,
    pub format: Option<String>,
    /// Records read (valid + invalid), for the manifest.
    pub records: u64,
    pub invalid: u64,
}

/// `raw/{source}/{date}/{fetch_id}/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `stripe`, `paypal`, `square` or `ledger`.
    pub source_name: Source,
    pub date: String,
    pub fetch_id: String,
    /// `api` or `file`.
    pub source: StagedFrom,
    pub objects: Vec<StagedObject>,
    pub record_count: u64,
    pub invalid_count: u64,
    pub window: Window,
    pub fetched_at: String,
    /// API cursor information (empty for files).
    pub cursors: Vec<String>,
    pub manifest_key: String,
    /// What was in the inbox and not staged, with the reason (a warning in the run summary).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Ledger rows whose processor column is unknown or unreadable: the first [`UNATTRIBUTED_KEPT`] (raw text cut
    /// to 300 characters: manifests travel in Step Functions payloads) and how many there are. Every run of the
    /// day, whole or sharded, warns of them from here.
    #[serde(default)]
    pub unattributed: Vec<recon_store::Unattributed>,
    #[serde(default)]
    pub unattributed_count: u64,
}

/// What a fetch returns to the state machine: where its manifest is, the manifest's sha256 and the counts. Its
/// size does not grow with the day (spec section 2: states pass S3 keys and counts), whereas the manifest lists
/// every staged object; the match step reads the manifest from the store and checks it against this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRef {
    pub source_name: Source,
    pub date: String,
    pub fetch_id: String,
    pub manifest_key: String,
    /// sha256 of the manifest object as written.
    pub manifest_sha256: String,
    pub source: StagedFrom,
    pub object_count: u64,
    pub record_count: u64,
    pub invalid_count: u64,
    pub skipped_count: u64,
    pub unattributed_count: u64,
    pub fetched_at: String,
}

impl ManifestRef {
    /// The reference of `manifest`, whose stored bytes hash to `sha256`.
    pub fn of(manifest: &Manifest, sha256: String) -> ManifestRef {
        ManifestRef {
            source_name: manifest.source_name,
            date: manifest.date.clone(),
            fetch_id: manifest.fetch_id.clone(),
            manifest_key: manifest.manifest_key.clone(),
            manifest_sha256: sha256,
            source: manifest.source,
            object_count: manifest.objects.len() as u64,
            record_count: manifest.record_count,
            invalid_count: manifest.invalid_count,
            skipped_count: manifest.skipped.len() as u64,
            unattributed_count: manifest.unattributed_count,
            fetched_at: manifest.fetched_at.clone(),
        }
    }

    /// Reads the manifest this refers to, refusing one that is not where a fetch of this source and date
    /// writes it, whose bytes changed since the fetch (sha256), or that describes another fetch.
    pub async fn load<S: ObjectStore>(&self, store: &S) -> Result<Manifest, AppError> {
        let key = &self.manifest_key;
        let date = NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").map_err(|e| {
            AppError::InvalidInput(format!(
                "the {} manifest reference's date {:?}: {e}",
                self.source_name, self.date
            ))
        })?;
        if uuid::Uuid::parse_str(&self.fetch_id).is_err() {
            return Err(AppError::InvalidInput(format!(
                "the {} manifest reference's fetch_id {:?} is not a fetch id (a UUID)",
                self.source_name, self.fetch_id
            )));
        }
        let expected = keys::manifest(self.source_name, date, &self.fetch_id);
        if *key != expected {
            return Err(AppError::InvalidInput(format!(
                "the {} manifest key {key} is not {expected}: a manifest reference names its own fetch; start the \
                 day again",
                self.source_name
            )));
        }
        let body = store.get(key).await.map_err(AppError::Object)?;
        let digest = hex::encode(Sha256::digest(&body));
        if digest != self.manifest_sha256 {
            return Err(AppError::InvalidInput(format!(
                "{key}: sha256 {digest} differs from the fetch's {}; the manifest changed after the fetch, fetch again",
                self.manifest_sha256
            )));
        }
        let manifest: Manifest = serde_json::from_slice(&body)
            .map_err(|e| AppError::InvalidInput(format!("{key} is not a manifest ({e}); fetch again")))?;
        if manifest.source_name != self.source_name
            || manifest.date != self.date
            || manifest.fetch_id != self.fetch_id
            || manifest.manifest_key != *key
        {
            return Err(AppError::InvalidInput(format!(
                "{key} describes {} {} fetch {}, not the reference's {} {} fetch {}; fetch again",
                manifest.source_name,
                manifest.date,
                manifest.fetch_id,
                self.source_name,
                self.date,
                self.fetch_id
            )));
        }
        Ok(manifest)
    }
}

/// Where a fetch took its data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StagedFrom {
    /// The source's API, page by page.
    Api,
    /// Files dropped in the source's inbox.
    File,
}

/// A ledger row of no processor as it is kept: its object key and line, field, reason and raw text (NUL
/// written as `\0`).
pub(crate) fn unattributed_of(key: &str, inv: &recon_core::InvalidRecord) -> recon_store::Unattributed {
    recon_store::Unattributed {
        source: format!("{key}:{}", inv.location.line),
        field: inv.field.clone(),
        reason: inv.reason.replace('\0', "\\0"),
        raw: inv.raw.replace('\0', "\\0"),
    }
}

/// How many unattributed ledger rows a manifest carries.
pub const UNATTRIBUTED_KEPT: usize = recon_sources::INVALID_EXAMPLES;

/// An inbox entry that was not staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// The UTC day reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

impl Window {
    pub fn of(date: NaiveDate) -> Self {
        let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let end = date
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let f = |t: Option<chrono::DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        Window {
            start: f(start),
            end: f(end),
        }
    }
}

/// A staged object and what was parsed from it.
#[derive(Debug)]
pub struct Loaded {
    pub key: String,
    pub format: Format,
    pub parsed: Parsed,
}

/// A staged source: its manifest and, when parsed in the same process, the parsed objects.
#[derive(Debug)]
pub struct Fetched {
    pub manifest: Manifest,
    /// sha256 of the manifest object as this process wrote it (for its [`ManifestRef`]); `None` when the
    /// manifest was read back from the store.
    pub manifest_sha256: Option<String>,
    pub loaded: Vec<Loaded>,
}

/// Below this size an object is hashed on the parser's own thread (a page of an API answer); above it, on a
/// thread of its own while the parser reads on.
const HASH_ON_THE_SIDE: u64 = 4 << 20;

/// How many read buffers may wait for the hashing thread (each at most the reader's buffer, 1 MiB).
const HASH_QUEUE: usize = 4;

/// A reader that hashes what passes through it: inline, or by handing a copy of each read to a hashing
/// thread (the parser then never waits for sha256; the digest covers exactly the bytes read, in order).
struct Hashing<R> {
    inner: R,
    bytes: u64,
    hasher: Hasher,
}

enum Hasher {
    Inline(Sha256),
    Side {
        to_hash: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
        spare: std::sync::mpsc::Receiver<Vec<u8>>,
        thread: std::thread::JoinHandle<Sha256>,
    },
}

impl Hasher {
    fn side() -> Hasher {
        let (to_hash, queue) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE);
        let (give_back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE + 2);
        let thread = std::thread::spawn(move || {
            let mut h = Sha256::new();
            for buf in queue {
                h.update(&buf);
                // a buffer nobody takes back is dropped
                let _ = give_back.try_send(buf);
            }
            h
        });
        Hasher::Side {
            to_hash: Some(to_hash),
            spare,
            thread,
        }
    }

    fn update(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Hasher::Inline(h) => {
                h.update(bytes);
                Ok(())
            }
            Hasher::Side { to_hash, spare, .. } => {
                let mut buf = spare.try_recv().unwrap_or_default();
                buf.clear();
                buf.extend_from_slice(bytes);
                let sent = to_hash.as_ref().map(|t| t.send(buf));
                match sent {
                    Some(Ok(())) => Ok(()),
                    _ => Err(std::io::Error::other("the hashing thread stopped")),
                }
            }
        }
    }

    /// The hex sha256 of everything passed to [`Self::update`].
    fn finish(self) -> Result<String, String> {
        match self {
            Hasher::Inline(h) => Ok(hex::encode(h.finalize())),
            Hasher::Side {
                mut to_hash, thread, ..
            } => {
                // the channel closes: the thread hashes what is queued and returns
                to_hash.take();
                thread
                    .join()
                    .map(|h| hex::encode(h.finalize()))
                    .map_err(|_| "the hashing thread failed".to_string())
            }
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n])?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Parses a staged object as a stream and hashes it in the same pass (a large object on a second thread).
/// Returns the sha256, the size and the parse result. When the digest cannot be computed, the object is
/// unreadable (an error naming it): it is never staged without its digest.
pub fn hash_and_parse<R: Read>(
    key: &str,
    object: u32,
    reader: R,
    size: Option<u64>,
    keep: Keep,
) -> (String, u64, Result<(Format, Parsed), SourceError>) {
    let hasher = match size {
        Some(s) if s >= HASH_ON_THE_SIDE => Hasher::side(),
        _ => Hasher::Inline(Sha256::new()),
    };
    let mut h = Hashing {
        inner: std::io::BufReader::with_capacity(1 << 20, reader),
        hasher,
        bytes: 0,
    };
    let parsed = recon_sources::parse_reader(key, object, &mut h, size, keep);
    // whatever the parser did not need still counts for the digest
    let rest = std::io::copy(&mut h, &mut std::io::sink());
    let bytes = h.bytes;
    match (h.hasher.finish(), rest) {
        (Ok(digest), Ok(_)) => (digest, bytes, parsed),
        (Err(why), _) => (
            String::new(),
            bytes,
            Err(SourceError::new(key, format!("cannot hash the object: {why}"))),
        ),
        (_, Err(e)) => (
            String::new(),
            bytes,
            Err(SourceError::new(key, format!("cannot read: {e}"))),
        ),
    }
}

/// Hashes and parses a staged object on a blocking thread: from its file, in up to `parts` parts, where the
/// store keeps it as a local file; else as the stream [`ObjectStore::open`] gives.
pub(crate) async fn hash_and_parse_object<S: ObjectStore>(
    store: &S,
    key: &str,
    object: u32,
    parts: usize,
    keep: Keep,
) -> Result<split::HashedParse, AppError> {
    let k = key.to_string();
    let task = match store.local_path(key) {
        Some(path) => {
            tokio::task::spawn_blocking(move || hash_and_parse_file(&k, object, &path, parts, keep))
        }
        None => {
            let (reader, size) = store.open(key).await.map_err(AppError::Object)?;
            tokio::task::spawn_blocking(move || hash_and_parse(&k, object, reader, size, keep))
        }
    };
    task.await
        .map_err(|e| AppError::failed(format!("parser task for {key}"), e))
}

/// What a fetch staged, before its manifest is written.
struct Staged {
    source_name: Source,
    date: NaiveDate,
    fetch_id: String,
    prefix: String,
    source: StagedFrom,
    cursors: Vec<String>,
    objects: Vec<StagedObject>,
    loaded: Vec<Loaded>,
    failure: Option<SourceError>,
    skipped: Vec<Skipped>,
}

impl Staged {
    /// A new fetch of `source_name` for `date`, under a fresh fetch id.
    fn new(source_name: Source, date: NaiveDate, source: StagedFrom) -> Staged {
        let fetch_id = uuid::Uuid::now_v7().to_string();
        Staged {
            source_name,
            date,
            prefix: keys::raw_fetch(source_name, date, &fetch_id),
            fetch_id,
            source,
            cursors: Vec::new(),
            objects: Vec::new(),
            loaded: Vec::new(),
            failure: None,
            skipped: Vec::new(),
        }
    }

    /// One staged object: its manifest entry (`sha256`, `bytes`), what its parse kept when it parsed (counts
    /// only, for a fetch that parsed with [`Keep::Counts`]), the first failure otherwise.
    fn add(
        &mut self,
        key: String,
        origin: String,
        (sha256, bytes): (String, u64),
        parsed: Result<(Format, Parsed), SourceError>,
    ) {
        let (format, parsed) = match parsed {
            Ok((f, p)) => (Some(f), Some(p)),
            Err(e) => {
                self.failure.get_or_insert(e);
                (None, None)
            }
        };
        self.objects.push(StagedObject {
            key: key.clone(),
            origin,
            sha256,
            bytes,
            format: format.map(|f| f.as_str().to_string()),
            records: parsed.as_ref().map(Parsed::record_count).unwrap_or(0),
            invalid: parsed.as_ref().map(Parsed::invalid_count).unwrap_or(0),
        });
        if let (Some(format), Some(parsed)) = (format, parsed) {
            self.loaded.push(Loaded { key, format, parsed });
        }
    }

    /// Writes the manifest (always, so a failed fetch's raw objects stay described), then reports the first
    /// unreadable object, if any.
    async fn finish<S: ObjectStore>(self, store: &S) -> Result<Fetched, AppError> {
        let Staged {
            source_name,
            date,
            fetch_id,
            prefix: _,
            source,
            cursors,
            objects,
            loaded,
            failure,
            skipped,
        } = self;
        let unattributed = if source_name == Source::Ledger {
            loaded
                .iter()
                .flat_map(|l| {
                    l.parsed
                        .invalid
                        .iter()
                        .filter(|(p, _)| p.is_none())
                        .map(|(_, inv)| {
                            let mut u = unattributed_of(&l.key, inv);
                            u.reason = u.reason.chars().take(300).collect();
                            u.raw = u.raw.chars().take(300).collect();
                            u
                        })
                })
                .take(UNATTRIBUTED_KEPT)
                .collect()
        } else {
            Vec::new()
        };
        let unattributed_count = if source_name == Source::Ledger {
            loaded.iter().map(|l| l.parsed.unattributed_count()).sum()
        } else {
            0
        };
        let manifest_key = keys::manifest(source_name, date, &fetch_id);
        let manifest = Manifest {
            source_name,
            date: date.to_string(),
            fetch_id,
            source,
            record_count: objects.iter().map(|o| o.records).sum(),
            invalid_count: objects.iter().map(|o| o.invalid).sum(),
            objects,
            window: Window::of(date),
            fetched_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            cursors,
            manifest_key,
            skipped,
            unattributed,
            unattributed_count,
        };
        let body =
            serde_json::to_vec_pretty(&manifest).map_err(|e| AppError::failed("encoding the manifest", e))?;
        let manifest_sha256 = Some(hex::encode(Sha256::digest(&body)));
        store
            .put(&manifest.manifest_key, body, "application/json")
            .await
            .map_err(AppError::Object)?;
        if let Some(e) = failure {
            return Err(AppError::Unreadable(e));
        }
        Ok(Fetched {
            manifest,
            manifest_sha256,
            loaded,
        })
    }
}

/// Stages a source for a day: the files dropped in its inbox when there are any (they take precedence),
/// else the pages of its API when one is configured.
pub async fn stage<S: ObjectStore>(
    store: &S,
    apis: &ApiSources,
    source_name: Source,
    date: NaiveDate,
    first_object: u32,
    keep: Keep,
) -> Result<Fetched, AppError> {
    mark_unfinished_fetches(store, source_name, date).await;
    let inbox = keys::inbox_day(source_name, date);
    let has_files = !store.list(&inbox).await.map_err(AppError::Object)?.is_empty();
    if has_files || !apis.configured(source_name) {
        return stage_inbox(store, source_name, date, first_object, keep).await;
    }
    let pages = apis.fetch(source_name, date).await.map_err(AppError::Api)?;
    stage_pages(store, source_name, date, first_object, pages, keep).await
}

/// A fetch that crashed before writing its manifest leaves raw objects no run uses. Raw data is never
/// deleted; such a folder (older than [`crate::objects::ABANDONED_AFTER`]) gets an `INCOMPLETE.txt` saying so.
/// Best effort: a failure here is logged, never fatal.
pub async fn mark_unfinished_fetches<S: ObjectStore>(store: &S, source_name: Source, date: NaiveDate) {
    let prefix = keys::raw_day(source_name, date);
    let Ok(keys) = store.list(&prefix).await else {
        return;
    };
    for (fetch_id, files) in crate::objects::folders(&prefix, &keys) {
        if files
            .iter()
            .any(|f| *f == keys::MANIFEST || *f == keys::INCOMPLETE)
            || !crate::objects::older_than_grace(fetch_id)
        {
            continue;
        }
        let note = format!(
            "fetch {fetch_id} of {source_name} for {date} stopped before writing its manifest: these {} objects are \
             kept unchanged but no run used them. Rerun the day to fetch again.\n",
            files.len()
        );
        let key = format!("{prefix}{fetch_id}/{}", keys::INCOMPLETE);
        match store.put(&key, note.into_bytes(), "text/plain").await {
            Ok(()) => tracing::warn!(%key, "unfinished fetch marked"),
            Err(e) => tracing::warn!(%key, error = %e, "could not mark an unfinished fetch"),
        }
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    /// A ledger export of `rows` rows (about 100 bytes each), one of them invalid.
    fn ledger(rows: usize) -> Vec<u8> {
        let mut s = String::from(
            "ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n",
        );
        for i in 0..rows {
            let amount = if i == rows / 2 {
                "12.3.4".to_string()
            } else {
                format!("{}.{:02}", i % 977, i % 100)
            };
            s.push_str(&format!(
                "L-{i:08},stripe,txn_{i:024},ord_{i},charge,{amount},USD,captured,2025-06-02T10:00:00Z\n"
            ));
        }
        s.into_bytes()
    }

    /// Given objects below and above the size hashed on the side, when each is hashed and parsed with its
    /// size known (a second thread for the large one) and unknown (inline), then both give the sha256 of the
    /// bytes, their length and the same records.
    #[test]
    fn hashing_on_a_second_thread_gives_the_digest_and_records_of_hashing_inline() {
        for rows in [10, 60_000] {
            let bytes = ledger(rows);
            let want = hex::encode(Sha256::digest(&bytes));
            let size = bytes.len() as u64;
            assert_eq!(size >= HASH_ON_THE_SIDE, rows > 10, "{size}");
            let (d1, n1, p1) =
                hash_and_parse("raw/ledger/l.csv", 0, bytes.as_slice(), Some(size), Keep::Records);
            let (d2, n2, p2) = hash_and_parse("raw/ledger/l.csv", 0, bytes.as_slice(), None, Keep::Records);
            assert_eq!((d1.as_str(), n1), (want.as_str(), size));
            assert_eq!((d2.as_str(), n2), (want.as_str(), size));
            let (p1, p2) = (p1.map(|p| p.1), p2.map(|p| p.1));
            assert_eq!(p1, p2);
            let parsed = p1.unwrap_or_default();
            assert_eq!((parsed.ledger.len(), parsed.invalid.len()), (rows - 1, 1));
        }
    }

    /// Given a reader that fails after the parser's part (a stream cut mid-object), the object is unreadable:
    /// never staged with the digest of what happened to arrive.
    #[test]
    fn an_object_whose_bytes_cannot_all_be_read_is_unreadable() {
        struct Cut<'a>(&'a [u8]);
        impl Read for Cut<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("connection reset"));
                }
                let n = self.0.read(buf)?;
                Ok(n)
            }
        }
        let bytes = ledger(60_000);
        let size = bytes.len() as u64;
        let (_, _, parsed) = hash_and_parse("raw/ledger/l.csv", 0, Cut(&bytes), Some(size), Keep::Records);
        let e = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("raw/ledger/l.csv") && e.contains("connection reset"),
            "{e}"
        );
    }
}
