//! One byte range of a staged object read and parsed on its own: what a split worker of a sharded day does
//! (`crate::split`). A CSV export is cut at line starts by the same rule as the parallel parse
//! ([`super::split`]): range `k` of `n` starts at the first allowed line start after `size / n * k`, so every
//! worker finds the same cuts from the bytes alone. A cut is only right when no line break falls inside a
//! quoted field; each range watches its quoting, and the plan reads an object whole when any of its ranges
//! saw one (the first wrong cut always shows in the range before it, which started right).

use std::io::Read;

use recon_sources::{Format, Parsed, SourceError};
use sha2::Sha256;

use super::split::{csv_head, first_cut, QuoteWatch, WINDOW};
use super::{Hasher, Hashing};
use crate::objects::ObjectStore;
use crate::AppError;

/// What reading one range gave.
#[derive(Debug)]
pub struct RangeRead {
    /// The range's bytes, `start..end` of the object.
    pub start: u64,
    pub end: u64,
    /// The object's size as the store reports it.
    pub size: u64,
    /// sha256 of the range's bytes (of the whole object when the range is the whole object).
    pub sha256: String,
    /// Line breaks in the range's bytes: the next range's first line follows from them.
    pub newlines: u64,
    /// Records parsed, with line numbers counted from the range's own first line (line 2 behind the header
    /// line for a range after the first).
    pub parsed: Result<(Format, Parsed), SourceError>,
}

/// Why a range could not be cut: the object is read whole instead.
#[derive(Debug, PartialEq, Eq)]
pub enum Uncut {
    /// Not a CSV export that can be cut (another format, a quote in its header line).
    NotSplittable,
    /// No allowed line start within a window after the planned cut (a very long line).
    NoCut,
    /// A line break inside a quoted field, or a part read as another format, or unreadable: the cuts cannot
    /// be trusted.
    Multiline,
}

async fn read_window<S: ObjectStore>(store: &S, key: &str, at: u64, len: usize) -> Result<Vec<u8>, AppError> {
    let (mut r, _) = store
        .open_range(key, at, at.saturating_add(len as u64))
        .await
        .map_err(AppError::Object)?;
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(len);
        r.read_to_end(&mut buf).map(|_| buf)
    })
    .await
    .map_err(|e| AppError::failed("reading a window", e))?
    .map_err(|e| AppError::failed(format!("reading {key} at byte {at}"), e))
}

/// The cuts of range `k` of `n` of `key` (`size` bytes): `(start, end, header)`, the header line to read a
/// later range behind.
pub async fn cuts<S: ObjectStore>(
    store: &S,
    key: &str,
    size: u64,
    k: u32,
    n: u32,
) -> Result<Result<(u64, u64, Vec<u8>), Uncut>, AppError> {
    let head = read_window(store, key, 0, WINDOW).await?;
    let Some((_, header, crlf)) = csv_head(&head) else {
        return Ok(Err(Uncut::NotSplittable));
    };
    let at = |j: u32| -> u64 { size / u64::from(n.max(1)) * u64::from(j) };
    let cut = |j: u32| {
        let planned = at(j);
        async move {
            if j == 0 {
                return Ok(Some(0));
            }
            if j >= n {
                return Ok(Some(size));
            }
            let Some(from) = planned.checked_sub(2) else {
                return Ok(None);
            };
            let w = read_window(store, key, from, WINDOW).await?;
            Ok::<_, AppError>(first_cut(&w, crlf).map(|c| from + c as u64))
        }
    };
    let (Some(start), Some(end)) = (cut(k).await?, cut(k + 1).await?) else {
        return Ok(Err(Uncut::NoCut));
    };
    if (k > 0 && start <= header.len() as u64) || start > end || end > size {
        return Ok(Err(Uncut::NoCut));
    }
    Ok(Ok((start, end, header)))
}

/// Reads and parses bytes `start..end` of `key` (behind `header` when the range is not the object's start),
/// hashing them; `Err(Uncut::Multiline)` when its quoting shows the cut cannot be trusted.
pub async fn read<S: ObjectStore>(
    store: &S,
    key: &str,
    object: u32,
    (start, end): (u64, u64),
    header: Option<Vec<u8>>,
) -> Result<Result<RangeRead, Uncut>, AppError> {
    let (reader, size) = store
        .open_range(key, start, end)
        .await
        .map_err(AppError::Object)?;
    if end > size {
        return Err(AppError::InvalidInput(format!(
            "{key}: bytes {start}..{end} asked for, but the object has {size} bytes; it changed since it was \
             staged, fetch again"
        )));
    }
    let key = key.to_string();
    let whole = start == 0 && end == size;
    tokio::task::spawn_blocking(move || {
        let mut h = Hashing {
            inner: reader,
            hasher: if end - start >= super::HASH_ON_THE_SIDE {
                Hasher::side()
            } else {
                Hasher::Inline(<Sha256 as sha2::Digest>::new())
            },
            bytes: 0,
        };
        let mut watch = QuoteWatch::new(&mut h);
        let parsed = match (&header, start) {
            (Some(head), s) if s > 0 => {
                let len = head.len() as u64 + (end - start);
                recon_sources::parse_reader(
                    &key,
                    object,
                    std::io::Cursor::new(head.as_slice()).chain(&mut watch),
                    Some(len),
                    recon_sources::Keep::Records,
                )
            }
            _ => {
                recon_sources::parse_reader(&key, object, &mut watch, Some(end - start), recon_sources::Keep::Records)
            }
        };
        let (newlines, multiline) = (watch.newlines, watch.multiline);
        let rest = std::io::copy(&mut h, &mut std::io::sink());
        let read = h.bytes;
        let digest = h.hasher.finish();
        let (Ok(_), Ok(sha256)) = (rest, digest) else {
            return Err(AppError::InvalidInput(format!(
                "{key}: bytes {start}..{end} could not be read to the end; retry"
            )));
        };
        if read != end - start {
            return Err(AppError::InvalidInput(format!(
                "{key}: bytes {start}..{end} gave {read} bytes; the object changed since it was staged, fetch again"
            )));
        }
        let split_parse_failed = !whole && parsed.is_err();
        if !whole && (multiline || split_parse_failed) {
            return Ok(Err(Uncut::Multiline));
        }
        Ok(Ok(RangeRead {
            start,
            end,
            size,
            sha256,
            newlines,
            parsed,
        }))
    })
    .await
    .map_err(|e| AppError::failed("reading a byte range", e))?
}
