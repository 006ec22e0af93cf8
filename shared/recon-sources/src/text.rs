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
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(format!(
        "{s:?} is not a timestamp (expected RFC 3339 or YYYY-MM-DD HH:MM:SS)"
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

/// 1-based line numbers from the csv crate's byte positions (its own line count is off by one after CRLF).
/// Positions must be asked for in increasing order; the text is scanned once in all.
pub(crate) struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        LineCounter {
            text: text.as_bytes(),
            at: 0,
            line: 1,
        }
    }

    pub(crate) fn line_of(&mut self, pos: Option<&csv::Position>) -> u64 {
        let Some(pos) = pos else { return 0 };
        let mut start = usize::try_from(pos.byte())
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        // a record's position may point at the '\n' of the previous CRLF
        while start < self.text.len() && (self.text[start] == b'\n' || self.text[start] == b'\r') {
            start += 1;
        }
        if start < self.at {
            return self.line;
        }
        self.line += memchr::memchr_iter(b'\n', &self.text[self.at..start]).count() as u64;
        self.at = start;
        self.line
    }
}
