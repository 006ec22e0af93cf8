//! Small text helpers shared by the parsers.

use chrono::{DateTime, NaiveDateTime};
use recon_core::Millis;

use crate::SourceError;

/// The whole object as UTF-8, or an error naming the first bad byte.
pub(crate) fn utf8<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a str, SourceError> {
    std::str::from_utf8(bytes).map_err(|e| {
        SourceError::new(
            key,
            format!(
                "not UTF-8 (first invalid byte at offset {}); re-export the file as UTF-8",
                e.valid_up_to()
            ),
        )
    })
}

/// Header names of a CSV first line, BOM removed, whitespace inside names normalised.
pub(crate) fn header_names(line: &str) -> Vec<String> {
    let line = line.trim_start_matches('\u{feff}');
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let mut rec = csv::StringRecord::new();
    match rdr.read_record(&mut rec) {
        Ok(true) => rec.iter().map(normalise_header).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn normalise_header(h: &str) -> String {
    h.trim_start_matches('\u{feff}')
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// RFC 3339 (`Z`, `+00:00` or `+0000`), or `YYYY-MM-DD HH:MM:SS` taken as UTC.
pub(crate) fn timestamp(s: &str) -> Result<Millis, String> {
    let s = s.trim();
    if let Some(t) = fast_utc(s.as_bytes()) {
        return Ok(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.timestamp_millis());
    }
    // PayPal reports: 2024/08/20 00:01:17 -0700
    if let Ok(t) = DateTime::parse_from_str(s, "%Y/%m/%d %H:%M:%S %z") {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(format!(
        "{s:?} is not a timestamp (expected RFC 3339, YYYY-MM-DD HH:MM:SS or YYYY/MM/DD HH:MM:SS -0700)"
    ))
}

/// Field positions located by header name.
pub(crate) struct Columns {
    names: Vec<String>,
}

impl Columns {
    pub(crate) fn new(header: &csv::StringRecord) -> Self {
        Columns {
            names: header.iter().map(normalise_header).collect(),
        }
    }
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
    pub(crate) fn require(&self, key: &str, name: &str) -> Result<usize, SourceError> {
        self.find(name)
            .ok_or_else(|| SourceError::new(key, format!("the header has no {name:?} column")))
    }
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// The raw text of a CSV record, for invalid-record reports.
pub(crate) fn raw_record(rec: &csv::StringRecord) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b' '))
        .from_writer(Vec::new());
    if w.write_record(rec).is_err() {
        return rec.iter().collect::<Vec<_>>().join(",");
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

/// 1-based file line of a csv record. The csv crate counts a CRLF-terminated header's line break one
/// record late, so records of a CRLF file come out one line short; `crlf` corrects that.
pub(crate) fn line_of(pos: Option<&csv::Position>, crlf: bool) -> u64 {
    // the first record of a file is counted right; every later one is one short after a CRLF
    pos.map(|p| p.line() + u64::from(crlf && p.record() > 0))
        .unwrap_or(0)
}

/// A UTF-8 problem inside one record, reported for that record.
pub(crate) fn record_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8", err.field() + 1),
        _ => format!("unreadable CSV row: {e}"),
    }
}

/// `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SSZ` (the shapes of the Stripe report and the ledger export)
/// without going through a format parser; anything else returns `None` and takes the general path.
fn fast_utc(b: &[u8]) -> Option<Millis> {
    let n = b.len();
    if !(n == 19 || (n == 20 && b[19] == b'Z'))
        || b[4] != b'-'
        || b[7] != b'-'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if b[10] != b' ' && b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |a, &d| {
            d.is_ascii_digit().then(|| a * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    let t = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(t.and_utc().timestamp_millis())
}

/// Does the first line end with CRLF? (for [`line_of`])
pub(crate) fn crlf_first_line(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .is_some_and(|i| i > 0 && bytes[i - 1] == b'\r')
}

/// A flexible CSV reader over `reader` and the header's columns (names normalised).
pub(crate) fn csv_with_header<R: std::io::Read>(
    key: &str,
    reader: R,
) -> Result<(csv::Reader<R>, Columns), SourceError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(reader);
    let header = rdr
        .headers()
        .map_err(|e| SourceError::new(key, format!("cannot read the header: {e}")))?
        .clone();
    Ok((rdr, Columns::new(&header)))
}

/// `str::trim`, with a fast path for the usual field that has nothing to trim.
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}
