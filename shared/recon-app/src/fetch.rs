//! The fetch step: stage raw inputs under `raw/{source}/{date}/{fetch_id}/` unchanged, then write the
//! manifest. Inbox files take precedence over an API for that processor and date.

use chrono::{NaiveDate, SecondsFormat, Utc};
use std::io::Read;

use recon_sources::api::{ApiError, RawPage};
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
pub const UNATTRIBUTED_KEPT: usize = 20;

/// An inbox entry that was not staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

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
    if relative == "manifest.json" {
        format!("{prefix}files/{relative}")
    } else {
        format!("{prefix}{relative}")
    }
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

/// What a fetch staged, before its manifest is written.
struct Staged<'a> {
    source_name: &'a str,
    date: NaiveDate,
    fetch_id: String,
    prefix: String,
    source: &'static str,
    cursors: Vec<String>,
    objects: Vec<StagedObject>,
    loaded: Vec<Loaded>,
    failure: Option<SourceError>,
    skipped: Vec<Skipped>,
}

impl Staged<'_> {
    /// Writes the manifest (always, so a failed fetch's raw objects stay described), then reports the first
    /// unreadable object, if any.
    async fn finish<S: ObjectStore>(self, store: &S) -> Result<Fetched, AppError> {
        let Staged {
            source_name,
            date,
            fetch_id,
            prefix,
            source,
            cursors,
            objects,
            loaded,
            failure,
            skipped,
        } = self;
        let unattributed = if source_name == "ledger" {
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
        let unattributed_count = if source_name == "ledger" {
            loaded
                .iter()
                .map(|l| l.parsed.invalid.iter().filter(|(p, _)| p.is_none()).count() as u64)
                .sum()
        } else {
            0
        };
        let manifest = Manifest {
            source_name: source_name.to_string(),
            date: date.to_string(),
            fetch_id,
            source: source.into(),
            record_count: objects.iter().map(|o| o.records).sum(),
            invalid_count: objects.iter().map(|o| o.invalid).sum(),
            objects,
            window: Window::of(date),
            fetched_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            cursors,
            manifest_key: format!("{prefix}manifest.json"),
            skipped,
            unattributed,
            unattributed_count,
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
}

/// API access configured for this process ([`crate::settings::ApiSettings::sources`]).
#[derive(Default)]
pub struct ApiSources {
    pub http: Option<reqwest::Client>,
    pub policy: recon_sources::api::RetryPolicy,
    pub stripe: Option<recon_sources::api::stripe::StripeConfig>,
    pub paypal: Option<recon_sources::api::paypal::PaypalClient>,
    pub square: Option<recon_sources::api::square::SquareConfig>,
    pub ledger: Option<recon_sources::api::ledger::LedgerApiConfig>,
}

impl ApiSources {
    /// Is an API configured for this source (`stripe`, `paypal`, `square`, `ledger`)?
    pub fn configured(&self, source_name: &str) -> bool {
        match source_name {
            "stripe" => self.stripe.is_some(),
            "paypal" => self.paypal.is_some(),
            "square" => self.square.is_some(),
            "ledger" => self.ledger.is_some(),
            _ => false,
        }
    }

    async fn fetch(&self, source_name: &str, date: NaiveDate) -> Result<Vec<RawPage>, ApiError> {
        use recon_sources::api::{http_client, ledger, square, stripe};
        let http = self.http.clone().unwrap_or_else(http_client);
        match source_name {
            "stripe" => match &self.stripe {
                Some(c) => stripe::fetch_day(&http, c, &self.policy, date).await,
                None => Ok(Vec::new()),
            },
            "paypal" => match &self.paypal {
                Some(c) => c.fetch_day(date).await,
                None => Ok(Vec::new()),
            },
            "square" => match &self.square {
                Some(c) => square::fetch_day(&http, c, &self.policy, date).await,
                None => Ok(Vec::new()),
            },
            "ledger" => match &self.ledger {
                Some(c) => ledger::fetch_day(&http, c, &self.policy, date).await,
                None => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        }
    }
}

/// Stages a source for a day: the files dropped in its inbox when there are any (they take precedence),
/// else the pages of its API when one is configured.
pub async fn stage<S: ObjectStore>(
    store: &S,
    apis: &ApiSources,
    source_name: &str,
    date: NaiveDate,
    first_object: u32,
) -> Result<Fetched, AppError> {
    mark_unfinished_fetches(store, source_name, date).await;
    let inbox = format!("inbox/{source_name}/{date}/");
    let has_files = !store.list(&inbox).await.map_err(AppError::Object)?.is_empty();
    if has_files || !apis.configured(source_name) {
        return stage_inbox(store, source_name, date, first_object).await;
    }
    let pages = apis.fetch(source_name, date).await.map_err(AppError::Api)?;
    stage_pages(store, source_name, date, first_object, pages).await
}

/// A fetch that crashed before writing its manifest leaves raw objects no run uses. Raw data is never
/// deleted; such a folder (older than [`crate::objects::ABANDONED_AFTER`]) gets an `INCOMPLETE.txt` saying so.
/// Best effort: a failure here is logged, never fatal.
pub async fn mark_unfinished_fetches<S: ObjectStore>(store: &S, source_name: &str, date: NaiveDate) {
    let prefix = format!("raw/{source_name}/{date}/");
    let Ok(keys) = store.list(&prefix).await else {
        return;
    };
    for (fetch_id, files) in crate::objects::folders(&prefix, &keys) {
        if files
            .iter()
            .any(|f| *f == "manifest.json" || *f == "INCOMPLETE.txt")
            || !crate::objects::older_than_grace(fetch_id)
        {
            continue;
        }
        let note = format!(
            "fetch {fetch_id} of {source_name} for {date} stopped before writing its manifest: these {} objects are \
             kept unchanged but no run used them. Rerun the day to fetch again.\n",
            files.len()
        );
        let key = format!("{prefix}{fetch_id}/INCOMPLETE.txt");
        match store.put(&key, note.into_bytes(), "text/plain").await {
            Ok(()) => tracing::warn!(%key, "unfinished fetch marked"),
            Err(e) => tracing::warn!(%key, error = %e, "could not mark an unfinished fetch"),
        }
    }
}

/// Stages API pages exactly as received (each written before it is parsed), then the manifest.
pub async fn stage_pages<S: ObjectStore>(
    store: &S,
    source_name: &str,
    date: NaiveDate,
    first_object: u32,
    pages: Vec<RawPage>,
) -> Result<Fetched, AppError> {
    let fetch_id = uuid::Uuid::now_v7().to_string();
    let prefix = format!("raw/{source_name}/{date}/{fetch_id}/");
    let mut objects = Vec::new();
    let mut loaded = Vec::new();
    let mut cursors = Vec::new();
    let mut failure = None;
    for (n, page) in pages.into_iter().enumerate() {
        let key = format!("{prefix}{}", page.name);
        let len = page.body.len() as u64;
        let content_type = if page.name.ends_with(".jsonl") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        store
            .put(&key, page.body.clone(), content_type)
            .await
            .map_err(AppError::Object)?;
        let object = first_object + u32::try_from(n).unwrap_or(0);
        let (digest, _, parsed) = hash_and_parse(&key, object, page.body.as_slice(), Some(len));
        if let Some(c) = &page.next_cursor {
            cursors.push(c.clone());
        }
        let (format, parsed) = match parsed {
            Ok((f, p)) => (Some(f), Some(p)),
            Err(e) => {
                failure.get_or_insert(e);
                (None, None)
            }
        };
        objects.push(StagedObject {
            key: key.clone(),
            origin: page.request,
            sha256: digest,
            bytes: len,
            format: format.map(|f| f.as_str().to_string()),
            records: parsed.as_ref().map(|p| p.record_count() as u64).unwrap_or(0),
            invalid: parsed.as_ref().map(|p| p.invalid.len() as u64).unwrap_or(0),
        });
        if let (Some(format), Some(parsed)) = (format, parsed) {
            loaded.push(Loaded { key, format, parsed });
        }
    }
    let staged = Staged {
        source_name,
        date,
        fetch_id,
        prefix,
        source: "api",
        cursors,
        objects,
        loaded,
        failure,
        skipped: Vec::new(),
    };
    staged.finish(store).await
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
    let mut skipped = Vec::new();
    let mut n = 0u32;
    for inbox_key in &files {
        let relative = inbox_key.strip_prefix(&inbox).unwrap_or(inbox_key);
        let reason = match skip_reason(relative) {
            Some(r) => Some(r.to_string()),
            None if !store.is_regular(inbox_key).await.map_err(AppError::Object)? => Some(
                "not a regular file (a symbolic link, device or folder): refused, its content unread; put the file \
                 itself there"
                    .to_string(),
            ),
            None => None,
        };
        if let Some(reason) = reason {
            tracing::warn!(key = %inbox_key, %reason, "inbox entry not staged");
            skipped.push(Skipped {
                key: inbox_key.clone(),
                reason,
            });
            continue;
        }
        let raw_key = raw_key_of(&prefix, relative);
        // stage first, unchanged, then read back what was staged
        store.copy(inbox_key, &raw_key).await.map_err(AppError::Object)?;
        let (reader, size) = store.open(&raw_key).await.map_err(AppError::Object)?;
        let object = first_object.saturating_add(n);
        n += 1;
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
    if objects.is_empty() && !skipped.is_empty() {
        let list: Vec<String> = skipped
            .iter()
            .map(|s| format!("{} ({})", s.key, s.reason))
            .collect();
        return Err(AppError::NoInput {
            source_name: source_name.to_string(),
            date,
            hint: format!("nothing in {inbox} could be staged: {}", list.join("; ")),
        });
    }
    let staged = Staged {
        source_name,
        date,
        fetch_id,
        prefix,
        source: "file",
        cursors: Vec::new(),
        objects,
        loaded,
        failure,
        skipped,
    };
    staged.finish(store).await
}
