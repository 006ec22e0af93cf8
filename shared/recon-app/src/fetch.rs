//! The fetch step: stage raw inputs under `raw/{source}/{date}/{fetch_id}/` unchanged, then write the
//! manifest. Inbox files take precedence over an API for that processor and date.

use chrono::{NaiveDate, SecondsFormat, Utc};
use std::io::Read;

use recon_sources::{Format, Parsed, SourceError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::objects::ObjectStore;
use crate::AppError;

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
    pub source_name: String,
    pub date: String,
    pub fetch_id: String,
    /// `api` or `file`.
    pub source: String,
    pub objects: Vec<StagedObject>,
    pub record_count: u64,
    pub invalid_count: u64,
    pub window: Window,
    pub fetched_at: String,
    /// API cursor information (empty for files).
    pub cursors: Vec<String>,
    pub manifest_key: String,
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
    pub loaded: Vec<Loaded>,
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Parses a staged object as a stream and hashes it in the same pass. Returns the sha256, the size and
/// the parse result.
pub fn hash_and_parse<R: Read>(
    key: &str,
    object: u32,
    reader: R,
    size: Option<u64>,
) -> (String, u64, Result<(Format, Parsed), SourceError>) {
    let mut h = Hashing {
        inner: std::io::BufReader::with_capacity(1 << 20, reader),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let parsed = recon_sources::parse_reader(key, object, &mut h, size);
    // whatever the parser did not need still counts for the digest
    let _ = std::io::copy(&mut h, &mut std::io::sink());
    (hex::encode(h.hasher.finalize()), h.bytes, parsed)
}

/// Stages every file dropped in `inbox/{source_name}/{date}/` under a new fetch id and parses it.
/// `first_object` is the object index the first file's records carry (object indexes must be unique within
/// a run). Fails when the inbox is empty or a file cannot be read as a whole.
pub async fn stage_inbox<S: ObjectStore>(
    store: &S,
    source_name: &str,
    date: NaiveDate,
    first_object: u32,
) -> Result<Fetched, AppError> {
    let inbox = format!("inbox/{source_name}/{date}/");
    let files = store.list(&inbox).await.map_err(AppError::Object)?;
    if files.is_empty() {
        return Err(AppError::NoInput {
            source_name: source_name.to_string(),
            date,
            hint: format!(
                "nothing in {}/{inbox} and no API configured for it: drop the day's file there or configure the API credentials",
                store.describe()
            ),
        });
    }
    let fetch_id = uuid::Uuid::now_v7().to_string();
    let prefix = format!("raw/{source_name}/{date}/{fetch_id}/");
    let mut objects = Vec::new();
    let mut loaded = Vec::new();
    let mut failure: Option<SourceError> = None;
    for (n, inbox_key) in files.iter().enumerate() {
        let name = inbox_key
            .strip_prefix(&inbox)
            .unwrap_or(inbox_key)
            .replace('/', "_");
        let raw_key = format!("{prefix}{name}");
        // stage first, unchanged, then read back what was staged
        store.copy(inbox_key, &raw_key).await.map_err(AppError::Object)?;
        let (reader, size) = store.open(&raw_key).await.map_err(AppError::Object)?;
        let object = first_object + u32::try_from(n).unwrap_or(u32::MAX - first_object);
        let k = raw_key.clone();
        let (digest, len, parsed) =
            tokio::task::spawn_blocking(move || hash_and_parse(&k, object, reader, size))
                .await
                .map_err(|e| AppError::Internal(format!("parser task for {raw_key}: {e}")))?;
        let (format, parsed) = match parsed {
            Ok((f, p)) => (Some(f), Some(p)),
            Err(e) => {
                failure.get_or_insert(e);
                (None, None)
            }
        };
        objects.push(StagedObject {
            key: raw_key.clone(),
            origin: inbox_key.clone(),
            sha256: digest,
            bytes: len,
            format: format.map(|f| f.as_str().to_string()),
            records: parsed.as_ref().map(|p| p.record_count() as u64).unwrap_or(0),
            invalid: parsed.as_ref().map(|p| p.invalid.len() as u64).unwrap_or(0),
        });
        if let (Some(format), Some(parsed)) = (format, parsed) {
            loaded.push(Loaded {
                key: raw_key,
                format,
                parsed,
            });
        }
    }
    let manifest = Manifest {
        source_name: source_name.to_string(),
        date: date.to_string(),
        fetch_id,
        source: "file".into(),
        record_count: objects.iter().map(|o| o.records).sum(),
        invalid_count: objects.iter().map(|o| o.invalid).sum(),
        objects,
        window: Window::of(date),
        fetched_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        cursors: Vec::new(),
        manifest_key: format!("{prefix}manifest.json"),
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| AppError::Internal(e.to_string()))?;
    store
        .put(&manifest.manifest_key, body, "application/json")
        .await
        .map_err(AppError::Object)?;
    if let Some(e) = failure {
        return Err(AppError::Unreadable(e));
    }
    Ok(Fetched { manifest, loaded })
}
