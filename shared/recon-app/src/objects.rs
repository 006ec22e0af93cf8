//! The object store port (S3 keys of spec section 3) and its local-directory twin.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// An object could not be read or written.
#[derive(Debug, Error)]
#[error("object store: {op} {key}: {reason}")]
pub struct ObjectError {
    pub op: &'static str,
    pub key: String,
    pub reason: String,
    /// Worth retrying (throttling, timeouts, 5xx).
    pub retryable: bool,
}

/// Put/get/list by key. Implemented by the local directory here and by S3 in the AWS adapter.
pub trait ObjectStore: Send + Sync {
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, ObjectError>> + Send;
    /// A blocking reader over the object and its size when known, for streaming parsers (read it from a
    /// blocking task).
    fn open(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<(Box<dyn Read + Send>, Option<u64>), ObjectError>> + Send;
    /// A blocking reader over bytes `from..to` of the object (cut at its end) and the object's whole size: a
    /// split worker reads only its byte range.
    fn open_range(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<(Box<dyn Read + Send>, u64), ObjectError>> + Send;
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), ObjectError>> + Send;
    /// Writes an object only if no object has that key: `Ok(true)` when written, `Ok(false)` when one was
    /// there already (nothing written). An idempotency record: the first of two racing writers wins.
    fn put_new(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<bool, ObjectError>> + Send;
    /// Keys under `prefix`, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, ObjectError>> + Send;
    /// Copies an object unchanged (server-side where possible).
    fn copy(&self, from: &str, to: &str) -> impl Future<Output = Result<(), ObjectError>> + Send;
    /// A link a person can open (a file path locally, a presigned URL on S3).
    fn link(&self, key: &str) -> impl Future<Output = Result<String, ObjectError>> + Send;
    /// Where this store is, for messages (`./.recon/store`, `s3://bucket`).
    fn describe(&self) -> String;
    /// Does an object exist at `key` (a dropped file that was deleted again, or never written, does not)?
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, ObjectError>> + Send;
    /// Is the object a regular file inside the store (not a symbolic link, device or folder)? S3 objects
    /// always are.
    fn is_regular(&self, key: &str) -> impl Future<Output = Result<bool, ObjectError>> + Send {
        let _ = key;
        async { Ok(true) }
    }
    /// The object as a regular file on this machine, when the store keeps it so (the local store): a large
    /// CSV object is then parsed in parts on every core. `None` (S3): read it as a stream from [`Self::open`].
    fn local_path(&self, key: &str) -> Option<PathBuf> {
        let _ = key;
        None
    }
}

/// Is `name` one of [`LocalStore`]'s own temporary files (`.tmp-{uuid}-{name}`, written then renamed)?
fn own_temp_file(name: &str) -> bool {
    name.strip_prefix(".tmp-")
        .and_then(|r| r.get(..36))
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
}

/// A local directory laid out with the S3 keys.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key` when it is a regular file inside the store; an error naming it otherwise (its
    /// content is never read).
    fn regular(&self, op: &'static str, key: &str) -> Result<PathBuf, ObjectError> {
        let p = self.path(op, key)?;
        let refuse = |why: String| ObjectError {
            op,
            key: key.into(),
            reason: why,
            retryable: false,
        };
        let meta = std::fs::symlink_metadata(&p).map_err(io(op, key))?;
        if !meta.file_type().is_file() {
            return Err(refuse(
                "not a regular file (a symbolic link, device or folder): refused, its content unread; put the \
                 file itself there"
                    .into(),
            ));
        }
        let inside = match (std::fs::canonicalize(&p), std::fs::canonicalize(&self.root)) {
            (Ok(f), Ok(r)) => f.starts_with(r),
            _ => false,
        };
        if !inside {
            return Err(refuse(
                "resolves outside the store: refused, its content unread".into(),
            ));
        }
        Ok(p)
    }

    /// Every operation goes through here once (a copy twice): the `recon::objects` trace counts the requests
    /// the S3 store would make for the same work (`scripts/bench-split.py` counts them per step).
    fn path(&self, op: &'static str, key: &str) -> Result<PathBuf, ObjectError> {
        tracing::trace!(target: "recon::objects", op, key, "object request");
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|p| p == ".." || p == ".") {
            return Err(ObjectError {
                op,
                key: key.into(),
                reason: "not a valid object key".into(),
                retryable: false,
            });
        }
        Ok(self.root.join(key))
    }
}

fn io<'a>(op: &'static str, key: &'a str) -> impl Fn(std::io::Error) -> ObjectError + 'a {
    move |e| ObjectError {
        op,
        key: key.to_string(),
        reason: e.to_string(),
        retryable: false,
    }
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        // never followed: a symbolic link to a directory is listed as an entry, not walked
        if entry.file_type()?.is_dir() {
            walk(&path, root, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let key = rel.to_string_lossy().replace('\\', "/");
            if !key.split('/').any(own_temp_file) {
                out.push(key);
            }
        }
    }
    Ok(())
}

/// Moves a fully written temporary file to its key. Raw data (`raw/...`) is never overwritten: the move
/// fails when the key exists (a hard link is atomic and refuses an existing name); other keys are replaced.
async fn publish(tmp: &Path, dst: &Path, key: &str, op: &'static str) -> Result<(), ObjectError> {
    publish_as(tmp, dst, key, op, crate::keys::is_raw(key)).await
}

/// [`publish`], refusing an existing key when `no_replace`.
async fn publish_as(
    tmp: &Path,
    dst: &Path,
    key: &str,
    op: &'static str,
    no_replace: bool,
) -> Result<(), ObjectError> {
    if no_replace {
        let linked = tokio::fs::hard_link(tmp, dst).await;
        let _ = tokio::fs::remove_file(tmp).await;
        return linked.map_err(|e| ObjectError {
            op,
            key: key.into(),
            reason: if e.kind() == std::io::ErrorKind::AlreadyExists {
                ALREADY_EXISTS.into()
            } else {
                e.to_string()
            },
            retryable: false,
        });
    }
    tokio::fs::rename(tmp, dst).await.map_err(io(op, key))
}

impl LocalStore {
    /// Writes `bytes` to a temporary file, then moves it to `key` (refusing an existing key when
    /// `no_replace`).
    async fn write(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &str,
        no_replace: bool,
    ) -> Result<(), ObjectError> {
        let p = self.path("put", key)?;
        let dir = p
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir).await.map_err(io("put", key))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{}-{name}", uuid::Uuid::new_v4()));
        tokio::fs::write(&tmp, bytes).await.map_err(io("put", key))?;
        publish_as(&tmp, &p, key, "put", no_replace).await
    }
}

/// The reason of a refused write to an existing key.
const ALREADY_EXISTS: &str = "already exists: raw data is never overwritten";

impl ObjectStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Vec<u8>, ObjectError> {
        let p = self.regular("get", key)?;
        tokio::fs::read(&p).await.map_err(io("get", key))
    }

    async fn open(&self, key: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), ObjectError> {
        let p = self.regular("open", key)?;
        let f = std::fs::File::open(&p).map_err(io("open", key))?;
        let size = f.metadata().ok().map(|m| m.len());
        Ok((Box::new(f), size))
    }

    async fn open_range(
        &self,
        key: &str,
        from: u64,
        to: u64,
    ) -> Result<(Box<dyn Read + Send>, u64), ObjectError> {
        use std::io::{Seek, SeekFrom};
        let p = self.regular("open", key)?;
        let mut f = std::fs::File::open(&p).map_err(io("open", key))?;
        let size = f.metadata().map_err(io("open", key))?.len();
        f.seek(SeekFrom::Start(from.min(size))).map_err(io("open", key))?;
        Ok((Box::new(f.take(to.saturating_sub(from))), size))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), ObjectError> {
        self.write(key, bytes, content_type, crate::keys::is_raw(key))
            .await
    }

    async fn put_new(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<bool, ObjectError> {
        match self.write(key, bytes, content_type, true).await {
            Ok(()) => Ok(true),
            Err(e) if e.reason == ALREADY_EXISTS => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let dir_key = prefix.trim_end_matches('/');
        let dir = self.path("list", dir_key)?;
        let root = self.root.clone();
        let mut out = Vec::new();
        walk(&dir, &root, &mut out).map_err(io("list", prefix))?;
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), ObjectError> {
        let src = self.regular("copy", from)?;
        let dst = self.path("copy", to)?;
        let dir = dst
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir).await.map_err(io("copy", to))?;
        let name = dst
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let tmp = dir.join(format!(".tmp-{}-{name}", uuid::Uuid::new_v4()));
        tokio::fs::copy(&src, &tmp).await.map_err(io("copy", from))?;
        publish(&tmp, &dst, to, "copy").await
    }

    async fn exists(&self, key: &str) -> Result<bool, ObjectError> {
        let p = self.path("stat", key)?;
        match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("stat", key)(e)),
        }
    }

    async fn is_regular(&self, key: &str) -> Result<bool, ObjectError> {
        match self.regular("stat", key) {
            Ok(_) => Ok(true),
            Err(e) if e.reason.contains("refused") => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.regular("open", key).ok()
    }

    async fn link(&self, key: &str) -> Result<String, ObjectError> {
        let p = self.path("link", key)?;
        Ok(std::path::absolute(&p).unwrap_or(p).to_string_lossy().to_string())
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// How old an unfinished fetch or an unrecorded report folder must be before it is marked (a younger one
/// may belong to a run still in progress).
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Was this UUIDv7 (a fetch id or run id) made more than [`ABANDONED_AFTER`] ago?
pub fn older_than_grace(id: &str) -> bool {
    let Ok(u) = uuid::Uuid::parse_str(id) else {
        return false;
    };
    let Some(ts) = u.get_timestamp() else { return false };
    let (secs, _) = ts.to_unix();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now.saturating_sub(secs) > ABANDONED_AFTER.as_secs()
}

/// The distinct folder names one level under `prefix` among `keys`, with the file names seen in each.
pub fn folders<'a>(prefix: &str, keys: &'a [String]) -> std::collections::BTreeMap<&'a str, Vec<&'a str>> {
    let mut out: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for k in keys {
        if let Some((folder, rest)) = k.strip_prefix(prefix).and_then(|r| r.split_once('/')) {
            out.entry(folder).or_default().push(rest);
        }
    }
    out
}
