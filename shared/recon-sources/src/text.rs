//! Small text helpers shared by the parsers.

use chrono::{DateTime, NaiveDateTime};
use recon_core::Millis;

use std::io::Read as _;

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
    let s = trim(s);
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
pub(crate) fn raw_record<'a>(rec: impl IntoIterator<Item = &'a str> + Copy) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b' '))
        .from_writer(Vec::new());
    if w.write_record(rec).is_err() {
        return rec.into_iter().collect::<Vec<_>>().join(",");
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
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || h > 23 || min > 59 || sec > 59 {
        return None;
    }
    let seconds = days_from_civil(y, m, d) * 86_400 + i64::from(h * 3600 + min * 60 + sec);
    Some(seconds * 1000)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a valid proleptic Gregorian date of years 0 to 9999 (H. Hinnant's
/// `days_from_civil`, with March as the first month so that the leap day ends the year; chrono's figure,
/// without its general-purpose date machinery: it showed in the parse profile).
fn days_from_civil(y: u32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Does the first line end with CRLF? (for [`line_of`])
pub(crate) fn crlf_first_line(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|&b| b == b'\n')
        .is_some_and(|i| i > 0 && bytes[i - 1] == b'\r')
}

/// A flexible CSV reader over `reader` and the header's columns (names normalised).
pub(crate) fn csv_with_header<'a, R: std::io::Read + 'a>(
    key: &str,
    reader: R,
) -> Result<(csv::Reader<Input<'a>>, Columns), SourceError> {
    let boxed: Box<dyn std::io::Read + 'a> = Box::new(reader);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(Tee::new(boxed));
    let header = rdr
        .headers()
        .map_err(|e| SourceError::new(key, format!("cannot read the header: {e}")))?
        .clone();
    Ok((rdr, Columns::new(&header)))
}

pub use recon_core::model::trim;

/// A reader that keeps what it has handed out since the last [`Tee::forget`], so that a CSV record that
/// swallowed several physical lines (an unbalanced quote) can be read again line by line.
pub(crate) struct Tee<R> {
    inner: R,
    kept: Vec<u8>,
    /// Absolute offset of `kept[0]`.
    base: u64,
}

impl<R> Tee<R> {
    pub(crate) fn new(inner: R) -> Self {
        Tee {
            inner,
            kept: Vec::new(),
            base: 0,
        }
    }

    /// The bytes `from..to` (absolute offsets), when still kept.
    pub(crate) fn span(&self, from: u64, to: u64) -> Option<&[u8]> {
        let a = usize::try_from(from.checked_sub(self.base)?).ok()?;
        let b = usize::try_from(to.checked_sub(self.base)?).ok()?;
        self.kept.get(a..b)
    }

    /// Nothing before `offset` will be asked for again.
    #[cfg(test)]
    pub(crate) fn forget(&mut self, offset: u64) {
        let dead = usize::try_from(offset.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.kept.len());
        // drop the dead prefix in large steps: a drain per record would copy the buffer every time
        if dead >= (4 << 20) || (dead > 0 && dead == self.kept.len()) {
            self.kept.drain(..dead);
            self.base += dead as u64;
        }
    }
}

impl<R: std::io::Read> std::io::Read for Tee<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.kept.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

/// An invalid record for a whole row (`field` = `row`).
fn row_invalid(
    side: recon_core::Side,
    object: u32,
    line: u64,
    reason: String,
    raw: String,
) -> recon_core::InvalidRecord {
    recon_core::InvalidRecord {
        side,
        location: recon_core::Location { object, line },
        field: Some("row".into()),
        reason,
        raw,
    }
}

/// A row a parser could not use: the processor it belongs to (when readable) and why.
pub(crate) type BadRow = (Option<recon_core::Processor>, recon_core::InvalidRecord);

/// The byte stream a CSV parser reads (boxed: a recovery re-reads kept bytes chained with the rest).
pub(crate) type Input<'a> = Tee<Box<dyn std::io::Read + 'a>>;

/// Does a record's text hold, after its first line, a line with as many separators as a whole row?
fn looks_swallowed(bytes: &[u8], ncols: usize) -> bool {
    let lead = bytes.iter().take_while(|&&c| c == b'\n' || c == b'\r').count();
    bytes[lead..]
        .split(|&c| c == b'\n')
        .skip(1)
        .any(|l| ncols > 1 && l.iter().filter(|&&c| c == b',').count() + 1 >= ncols)
}

/// How many unbalanced quotes one file may recover from before it is refused as a whole.
const MAX_RECOVERIES: u32 = 1_000;

/// Reads every record after the header of `rdr`, handing each to `row` with its 1-based physical line (the
/// line its first byte is on). `row` keeps a valid record itself and returns `Err` for one it cannot use. A
/// record that spans several physical lines (a quote opened and never closed swallows the lines after it)
/// and does not validate is one invalid record for its first physical line; reading resumes at the line
/// after it, so no other row is lost.
///
/// A line with no `"` and no `\r` but its final CRLF is cut at its commas here (most rows of a report);
/// any other record is read by csv-core from the same buffer, as the csv crate reads every record (the
/// crate's loop is kept in the tests as the oracle this one is checked against). An unquoted line is handed
/// to `row` as fields borrowed from the buffer; a quoted record as csv-core's unquoted copy of it. A failure
/// to read the stream fails the object, naming it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn for_each_row<'a>(
    key: &str,
    rdr: csv::Reader<Input<'a>>,
    ncols: usize,
    side: recon_core::Side,
    object: u32,
    invalid: &mut crate::Invalids<'_>,
    processor_of: &dyn Fn(&Row<'_>) -> Option<recon_core::Processor>,
    row: &mut dyn FnMut(&Row<'_>, u64) -> Result<(), BadRow>,
) -> Result<(), SourceError> {
    // the header was read through the csv crate; the bytes it took in beyond the header are in the tee
    let start = rdr.position().byte();
    let tee = rdr.into_inner();
    let header_lines = tee
        .span(tee.base, start)
        .map_or(0, |h| memchr::memchr_iter(b'\n', h).count());
    let taken = tee
        .span(start, tee.base + tee.kept.len() as u64)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            SourceError::new(
                key,
                "the bytes read behind the header were not kept: nothing of the file was read",
            )
        })?;
    let mut src = Buffered::new(taken, tee.inner);
    let cannot_read =
        |e: std::io::Error| SourceError::new(key, format!("cannot read: {e}; fetch the object again"));
    // physical line of src.buf[src.pos]
    let mut line = 1 + header_lines as u64;
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(64);
    let mut core = csv_core::Reader::new();
    let mut recoveries = 0u32;
    loop {
        // line breaks between records are skipped (csv-core skips empty lines the same way)
        if src.pos == src.end && !src.fill().map_err(cannot_read)? {
            return Ok(());
        }
        match src.buf[src.pos] {
            b'\n' => {
                line += 1;
                src.pos += 1;
                continue;
            }
            b'\r' => {
                src.pos += 1;
                continue;
            }
            _ => {}
        }
        let eol = src.line_end().map_err(cannot_read)?;
        let body_end = if eol > src.pos && src.buf[eol - 1] == b'\r' {
            eol - 1
        } else {
            eol
        };
        let body = &src.buf[src.pos..body_end];
        let mut from = src.pos;
        let record_line = line;
        spans.clear();
        let quoted = memchr::memchr2(b'"', b'\r', body).is_some();
        let mut written = 0;
        let to = if quoted {
            let (to, n) = src.quoted_record(&mut core, &mut spans).map_err(cannot_read)?;
            written = n;
            // a refill moves the record's bytes to the front of the buffer
            from = src.pos;
            line += memchr::memchr_iter(b'\n', &src.buf[from..to]).count() as u64;
            to
        } else {
            split_commas(body, &mut spans);
            if eol < src.end {
                line += 1;
                eol + 1
            } else {
                eol
            }
        };
        src.pos = to;
        let bytes: &[u8] = if quoted {
            &src.fields[..written]
        } else {
            &src.buf[from..body_end]
        };
        // decoded row by row: a row with bytes that are not UTF-8 is an invalid record of the processor its
        // columns name, wherever it is in the file
        let text = std::str::from_utf8(bytes).ok().filter(|t| {
            spans
                .iter()
                .all(|&(a, b)| t.is_char_boundary(a) && t.is_char_boundary(b))
        });
        let Some(text) = text else {
            let field = spans
                .iter()
                .position(|&(a, b)| bytes.get(a..b).is_none_or(|f| std::str::from_utf8(f).is_err()))
                .unwrap_or(0)
                + 1;
            let lossy = OwnedRow::of(
                spans
                    .iter()
                    .map(|&(a, b)| String::from_utf8_lossy(bytes.get(a..b).unwrap_or(&[]))),
            );
            invalid.push((
                processor_of(&lossy.row()),
                row_invalid(side, object, record_line, format!(
                    "field {field} is not UTF-8: re-export the file as UTF-8 (the row is shown with the bad bytes \
                     replaced by U+FFFD)"
                ), raw_record(&lossy.row())),
            ));
            continue;
        };
        let rec = Row { text, spans: &spans };
        let span = &src.buf[from..to];
        // where the record's first physical line ends, when it goes on past it (a line break only at the
        // very end is the record's own terminator): only a quoted record can
        let first_break = quoted
            .then(|| memchr::memchr(b'\n', span))
            .flatten()
            .filter(|&nl| !span[nl..].iter().all(|&c| c == b'\n' || c == b'\r'));
        // a record over several lines whose continuation lines look like whole rows swallowed them, even
        // when its fields happen to validate (a free-text last column takes anything)
        let swallowed = first_break.is_some() && looks_swallowed(span, ncols);
        let bad = if swallowed {
            None
        } else {
            match row(&rec, record_line) {
                Ok(()) => continue,
                Err(bad) => Some(bad),
            }
        };
        let nl = match (first_break, bad) {
            (Some(nl), _) => nl,
            (None, Some(bad)) => {
                invalid.push(bad);
                continue;
            }
            (None, None) => continue,
        };
        recoveries += 1;
        if recoveries > MAX_RECOVERIES {
            return Err(SourceError::new(
                key,
                format!("more than {MAX_RECOVERIES} rows open a quoted field they never close: not a usable CSV file"),
            ));
        }
        let first = String::from_utf8_lossy(&span[..nl]).trim_end().to_string();
        // the first line alone, for the processor its columns name
        let mut one = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(first.as_bytes());
        let mut alone = csv::StringRecord::new();
        let processor = match one.read_record(&mut alone) {
            Ok(true) => processor_of(&OwnedRow::of(alone.iter()).row()),
            _ => None,
        };
        invalid.push((
            processor,
            row_invalid(side, object, record_line, "a quoted field opened on this line is not closed before the line \
                         ends: the row is skipped and reading resumes at the next line; fix the quote and send the \
                         file again"
                .into(), first),
        ));
        // read again from the next physical line
        src.pos = from + nl + 1;
        line = record_line + 1;
    }
}

/// The spans of the fields of an unquoted line between its commas: eight bytes at a time (a mask of the bytes
/// that are commas, exact per byte), the tail one at a time.
fn split_commas(body: &[u8], spans: &mut Vec<(usize, usize)>) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const COMMAS: u64 = 0x2c2c_2c2c_2c2c_2c2c;
    let mut start = 0;
    let words = body.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        // a byte of x is zero where the byte is a comma; the high bit of each byte of `hit` is set exactly there
        let x = u64::from_le_bytes(bytes) ^ COMMAS;
        let mut hit = !(((x & LOW7) + LOW7) | x | LOW7);
        while hit != 0 {
            let at = k * 8 + (hit.trailing_zeros() / 8) as usize;
            spans.push((start, at));
            start = at + 1;
            hit &= hit - 1;
        }
    }
    let base = body.len() - tail.len();
    for (i, &c) in tail.iter().enumerate() {
        if c == b',' {
            spans.push((start, base + i));
            start = base + i + 1;
        }
    }
    spans.push((start, body.len()));
}

/// One CSV record's fields, borrowed from the reader's buffer: field `i` is `text[spans[i].0..spans[i].1]`.
pub(crate) struct Row<'r> {
    text: &'r str,
    spans: &'r [(usize, usize)],
}

impl<'r> Row<'r> {
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<&'r str> {
        let &(a, b) = self.spans.get(i)?;
        self.text.get(a..b)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'r str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl<'a, 'r> IntoIterator for &'a Row<'r> {
    type Item = &'r str;
    type IntoIter = Box<dyn Iterator<Item = &'r str> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// A record's fields held by value (a row shown with its bad bytes replaced, a line read alone), to be
/// looked at as a [`Row`].
struct OwnedRow {
    text: String,
    spans: Vec<(usize, usize)>,
}

impl OwnedRow {
    fn of<S: AsRef<str>>(fields: impl IntoIterator<Item = S>) -> OwnedRow {
        let mut o = OwnedRow {
            text: String::new(),
            spans: Vec::new(),
        };
        for f in fields {
            let a = o.text.len();
            o.text.push_str(f.as_ref());
            o.spans.push((a, o.text.len()));
        }
        o
    }

    fn row(&self) -> Row<'_> {
        Row {
            text: &self.text,
            spans: &self.spans,
        }
    }
}

/// The rows of a CSV stream in one buffer, refilled from the stream: the bytes of the record being read
/// stay in it (`pos` is where that record starts) so that a record spanning lines can be looked at whole.
struct Buffered<'a> {
    inner: Box<dyn std::io::Read + 'a>,
    buf: Vec<u8>,
    /// Where the unread bytes start and end in `buf`.
    pos: usize,
    end: usize,
    eof: bool,
    /// csv-core's output for a quoted record: its fields' bytes and where each ends (kept between records).
    fields: Vec<u8>,
    ends: Vec<usize>,
}

/// What one refill asks the stream for, at least.
const CHUNK: usize = 1 << 20;

impl<'a> Buffered<'a> {
    fn new(taken: Vec<u8>, inner: Box<dyn std::io::Read + 'a>) -> Self {
        let end = taken.len();
        Buffered {
            inner,
            buf: taken,
            pos: 0,
            end,
            eof: false,
            fields: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// Reads more of the stream behind the unread bytes (moved to the front first); `false` at its end.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < self.end + CHUNK {
            self.buf.resize(self.end + CHUNK, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the line starting at `pos` ends (its `\n`, or the end of the stream), refilling as needed; the
    /// bytes already searched are not searched again (a line of many buffers costs its length, not its
    /// length squared).
    fn line_end(&mut self) -> std::io::Result<usize> {
        let mut from = self.pos;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[from..self.end]) {
                return Ok(from + i);
            }
            let searched = self.end - self.pos;
            if !self.fill()? {
                return Ok(self.end);
            }
            from = self.pos + searched;
        }
    }

    /// Reads the record starting at `pos` with csv-core (quotes, line breaks inside them, a lone `\r` ending
    /// it) into `fields`, its fields' spans into `spans`; returns where it ends in `buf` (after its
    /// terminator, when csv-core took it) and how many bytes of `fields` it wrote.
    fn quoted_record(
        &mut self,
        core: &mut csv_core::Reader,
        spans: &mut Vec<(usize, usize)>,
    ) -> std::io::Result<(usize, usize)> {
        core.reset();
        let mut at = self.pos;
        let (mut nout, mut nends) = (0usize, 0usize);
        loop {
            let input: &[u8] = if at < self.end {
                &self.buf[at..self.end]
            } else {
                &[]
            };
            let (res, nin, o, e) = core.read_record(input, &mut self.fields[nout..], &mut self.ends[nends..]);
            at += nin;
            nout += o;
            nends += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty => {
                    if at >= self.end && !self.eof {
                        let before = self.pos;
                        self.fill()?;
                        at -= before - self.pos;
                    }
                }
                csv_core::ReadRecordResult::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
            }
        }
        let mut from = 0usize;
        for &e in &self.ends[..nends] {
            spans.push((from, e));
            from = e;
        }
        Ok((at, nout))
    }
}

/// The csv crate's loop this module read every row with before: the oracle of the differential test.
#[cfg(test)]
mod oracle {
    use super::*;

    /// Reads every record after the header of `rdr`, handing each to `row` with its 1-based physical line.
    /// `row` keeps a valid record itself and returns `Err` for one it cannot use. A record that spans several
    /// physical lines (a quote opened and never closed swallows the lines after it) and does not validate is
    /// one invalid record for its first physical line; reading resumes at the line after it, so no other row
    /// is lost.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_each_row_csv<'a>(
        key: &str,
        mut rdr: csv::Reader<Input<'a>>,
        ncols: usize,
        crlf: bool,
        side: recon_core::Side,
        object: u32,
        invalid: &mut crate::Invalids<'_>,
        processor_of: &dyn Fn(&csv::StringRecord) -> Option<recon_core::Processor>,
        row: &mut dyn FnMut(&csv::StringRecord, u64) -> Result<(), BadRow>,
    ) -> Result<(), SourceError> {
        let mut rec = csv::StringRecord::new();
        // physical line of line 1 of the current reader, minus one (readers restart after a recovery)
        let mut offset = 0u64;
        let mut recoveries = 0u32;
        loop {
            let start = rdr.position().byte();
            rdr.get_mut().forget(start);
            // the previous record's buffers are reused for this one
            let mut bytes = std::mem::take(&mut rec).into_byte_record();
            match rdr.read_byte_record(&mut bytes) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    // decoded row by row: a row with bytes that are not UTF-8 is an invalid record of the processor
                    // its columns name, wherever it is in the file
                    match csv::StringRecord::from_byte_record(bytes) {
                        Ok(r) => rec = r,
                        Err(e) => {
                            let field = e.utf8_error().field() + 1;
                            let bytes = e.into_byte_record();
                            let lossy: csv::StringRecord = bytes
                                .iter()
                                .map(|f| String::from_utf8_lossy(f).into_owned())
                                .collect();
                            let line = offset + line_of(bytes.position(), crlf);
                            invalid.push((
                            processor_of(&lossy),
                            row_invalid(side, object, line, format!(
                                    "field {field} is not UTF-8: re-export the file as UTF-8 (the row is shown with \
                                     the bad bytes replaced by U+FFFD)"
                                ), raw_record(&lossy)),
                        ));
                            continue;
                        }
                    }
                }
                Err(e) => {
                    let line = offset + line_of(e.position(), crlf);
                    invalid.push((
                        None,
                        row_invalid(side, object, line, record_error(&e), String::new()),
                    ));
                    continue;
                }
            }
            let line = offset + line_of(rec.position(), crlf);
            let from = rec.position().map(csv::Position::byte).unwrap_or(start);
            let to = rdr.position().byte();
            // a record over several lines whose continuation lines look like whole rows swallowed them, even
            // when its fields happen to validate (a free-text last column takes anything)
            // (the loop as it was checked `rdr.position().line() > rec.position().line() + 1` first, which
            // missed the last record of a file without a final line break; the check itself needs no guard,
            // and the new reader makes it for every record that goes on past its first line)
            let multi = true;
            let swallowed = multi
                && rdr
                    .get_ref()
                    .span(from, to)
                    .is_some_and(|b| looks_swallowed(b, ncols));
            let bad = if swallowed {
                None
            } else {
                match row(&rec, line) {
                    Ok(()) => continue,
                    Err(bad) => Some(bad),
                }
            };
            // where the record's first physical line ends (its span starts before the previous line break)
            let cut = rdr.get_ref().span(from, to).and_then(|b| {
                let lead = b.iter().take_while(|&&c| c == b'\n' || c == b'\r').count();
                let body = &b[lead..];
                let nl = body.iter().position(|&c| c == b'\n')?;
                // a line break only at the very end (before trailing CR/LF) is the record's own terminator
                let after = &body[nl..];
                if after.iter().all(|&c| c == b'\n' || c == b'\r') {
                    return None;
                }
                Some((
                    from + (lead + nl + 1) as u64,
                    String::from_utf8_lossy(&body[..nl]).trim_end().to_string(),
                ))
            });
            let (cut, first) = match (cut, bad) {
                (Some(c), _) => c,
                (None, Some(bad)) => {
                    invalid.push(bad);
                    continue;
                }
                (None, None) => continue,
            };
            recoveries += 1;
            if recoveries > MAX_RECOVERIES {
                return Err(SourceError::new(
                key,
                format!("more than {MAX_RECOVERIES} rows open a quoted field they never close: not a usable CSV file"),
            ));
            }
            // the first line alone, for the processor its columns name
            let mut one = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(first.as_bytes());
            let processor = match one.read_record(&mut rec) {
                Ok(true) => processor_of(&rec),
                _ => None,
            };
            {
                invalid.push((
                processor,
                row_invalid(side, object, line, "a quoted field opened on this line is not closed before the line ends: the row is \
                             skipped and reading resumes at the next line; fix the quote and send the file again"
                        .into(), first),
            ));
            }
            // read again from the next physical line: what the reader had taken in, then the rest of the stream
            let tee = rdr.into_inner();
            let tail = tee
                .span(cut, tee.base + tee.kept.len() as u64)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let rest: Box<dyn std::io::Read + 'a> = Box::new(std::io::Cursor::new(tail).chain(tee.inner));
            rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .buffer_capacity(1 << 20)
                .from_reader(Tee::new(rest));
            offset = line;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `fast_utc` computed before (chrono's dates; a leap second is left to the general path, as then).
    fn by_chrono(s: &str) -> Option<Millis> {
        let b = s.as_bytes();
        let shaped = (b.len() == 19 || (b.len() == 20 && b[19] == b'Z'))
            && b[4] == b'-'
            && b[7] == b'-'
            && (b[10] == b' ' || b[10] == b'T')
            && b[13] == b':'
            && b[16] == b':';
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
        let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
        let t = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
        shaped.then(|| t.and_utc().timestamp_millis())
    }

    #[test]
    fn the_fast_reading_knows_leap_days_and_refuses_impossible_dates() {
        for (s, ok) in [
            ("2024-02-29 12:00:00", true),
            ("2000-02-29T00:00:00Z", true),
            ("2023-02-29 00:00:00", false),
            ("1900-02-29 00:00:00", false),
            ("2025-04-31 00:00:00", false),
            ("2025-13-01 00:00:00", false),
            ("2025-00-10 00:00:00", false),
            ("2025-06-00 00:00:00", false),
            ("2025-06-02 24:00:00", false),
            ("2025-06-02 23:60:00", false),
            ("2025-06-02 23:59:60", false),
            ("0000-01-01 00:00:00", true),
            ("9999-12-31 23:59:59", true),
            ("1969-12-31 23:59:59", true),
        ] {
            assert_eq!(fast_utc(s.as_bytes()).is_some(), ok, "{s}");
            assert_eq!(fast_utc(s.as_bytes()), by_chrono(s), "{s}");
        }
        assert_eq!(fast_utc(b"1970-01-01 00:00:01"), Some(1000));
        assert_eq!(fast_utc(b"1969-12-31 23:59:59"), Some(-1000));
        // a leap second takes the general path (which reads it), as it always did
        assert_eq!(timestamp("2016-12-31 23:59:60"), Ok(1_483_228_800_000));
    }

    proptest! {
        /// Every string of the shape (any digits, so impossible months, days and times too) reads as chrono
        /// reads it.
        #[test]
        fn the_fast_reading_agrees_with_chrono(
            y in 0u32..10_000, m in 0u32..100, d in 0u32..100, h in 0u32..100, mi in 0u32..100,
            sec in 0u32..100, t in prop::bool::ANY, z in prop::bool::ANY,
        ) {
            let s = format!("{y:04}-{m:02}-{d:02}{}{h:02}:{mi:02}:{sec:02}{}",
                            if t { 'T' } else { ' ' }, if z { "Z" } else { "" });
            prop_assert_eq!(fast_utc(s.as_bytes()), by_chrono(&s), "{}", s);
        }

        /// Valid dates are where they are concentrated: every day of every year.
        #[test]
        fn every_valid_day_reads_as_chrono_reads_it(y in 0u32..10_000, m in 1u32..=12, d in 1u32..=31) {
            let s = format!("{y:04}-{m:02}-{d:02} 13:14:15");
            prop_assert_eq!(fast_utc(s.as_bytes()), by_chrono(&s), "{}", s);
        }
    }
}

/// The row reader against the csv crate's loop it replaced, on small files of every awkward byte (quotes
/// opened and never closed, quotes inside fields, lone carriage returns, bytes that are not UTF-8, NUL),
/// read a few bytes at a time so that records straddle every refill of the buffer.
#[cfg(test)]
mod differential {
    use super::*;
    use proptest::prelude::*;
    use recon_core::{Processor, Side};

    /// At most `n` bytes a read.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    type Kept = (Vec<String>, u64);
    type Bad = (Option<Processor>, u64, Option<String>, String, String);

    fn read(text: &[u8], step: usize, new: bool) -> (Vec<Kept>, Vec<Bad>, Result<(), String>) {
        let mut rows = Vec::new();
        let mut kept = Vec::new();
        let mut dropped = crate::Dropped::default();
        let (rdr, cols) = match csv_with_header("k", Trickle(text, step)) {
            Ok(r) => r,
            Err(e) => return (rows, Vec::new(), Err(e.to_string())),
        };
        let ncols = cols.len();
        // the same decisions for both readers, over the fields as strings
        let processor_of = |f: &[&str]| {
            f.first()
                .filter(|f| f.starts_with('a'))
                .map(|_| Processor::Stripe)
        };
        let mut row = |f: Vec<&str>, line: u64| -> Result<(), BadRow> {
            if f.len() != ncols || f.iter().any(|x| x.contains('b')) {
                let bad = row_invalid(
                    Side::Ledger,
                    0,
                    line,
                    "refused".into(),
                    raw_record(&OwnedRow::of(&f).row()),
                );
                return Err((processor_of(&f), bad));
            }
            rows.push((f.iter().map(|x| x.to_string()).collect(), line));
            Ok(())
        };
        let mut invalid = crate::Invalids {
            kept: &mut kept,
            dropped: &mut dropped,
            keep: crate::Keep::Records,
        };
        let crlf = crlf_first_line(text);
        let result = if new {
            let p = |r: &Row<'_>| processor_of(&r.iter().collect::<Vec<_>>());
            let mut f = |r: &Row<'_>, line| row(r.iter().collect(), line);
            for_each_row("k", rdr, ncols, Side::Ledger, 0, &mut invalid, &p, &mut f)
        } else {
            let p = |r: &csv::StringRecord| processor_of(&r.iter().collect::<Vec<_>>());
            let mut f = |r: &csv::StringRecord, line| row(r.iter().collect(), line);
            oracle::for_each_row_csv("k", rdr, ncols, crlf, Side::Ledger, 0, &mut invalid, &p, &mut f)
        };
        let bad = kept
            .into_iter()
            .map(|(p, i)| (p, i.location.line, i.field, i.reason, i.raw))
            .collect();
        (rows, bad, result.map_err(|e| e.to_string()))
    }

    /// A file: the header, then lines joined by one line ending throughout (a lone CR only in an LF file:
    /// the csv crate counted a record after one in a CRLF file a line late, which the new reader does not).
    fn file() -> impl Strategy<Value = Vec<u8>> {
        (any::<bool>(), any::<bool>()).prop_flat_map(|(crlf, last)| {
            let mut bytes = vec![b'a', b'b', b'c', b',', b',', b'"', b'"', 0xff, 0x00, 0xc3, 0xa9];
            if !crlf {
                bytes.push(b'\r');
            }
            let line = prop::collection::vec(prop::sample::select(bytes), 1..12)
                .prop_filter("a line ends with a character", |l| l.last() != Some(&b'\r'));
            prop::collection::vec(line, 0..24).prop_map(move |lines| {
                let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                let mut text = b"x,y,z".to_vec();
                for l in &lines {
                    text.extend_from_slice(eol);
                    text.extend_from_slice(l);
                }
                if last {
                    text.extend_from_slice(eol);
                }
                text
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        #[test]
        fn the_row_reader_reads_what_the_csv_crate_read(text in file(), step in 1usize..9) {
            let old = read(&text, 4096, false);
            let new = read(&text, step, true);
            prop_assert_eq!(new, old, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    proptest! {
        /// The word-at-a-time comma split cuts where `split` on commas cuts, whatever the bytes around them
        /// (0x2c with high bits set, 0xac, 0x2d, NUL and 0xff included).
        #[test]
        fn the_comma_split_cuts_where_split_cuts(
            body in prop::collection::vec(prop::sample::select(vec![b',', b'a', 0x2c | 0x80, 0x2d, 0x2b, 0, 0xff, 0x0c]), 0..70)
        ) {
            let mut spans = Vec::new();
            split_commas(&body, &mut spans);
            let got: Vec<&[u8]> = spans.iter().map(|&(a, b)| &body[a..b]).collect();
            let want: Vec<&[u8]> = body.split(|&c| c == b',').collect();
            prop_assert_eq!(got, want);
        }
    }

    /// Where the csv crate's lines were off, the new reader gives the physical line: a record after blank
    /// lines, and a record after a CRLF line in a file whose first line ends with LF.
    #[test]
    fn lines_are_physical_after_blank_lines_and_mixed_endings() {
        let text = b"x,y,z\n\n\na,1,2\r\na,3,4\n\r\na,5,6";
        let (rows, bad, result) = read(text, 3, true);
        assert_eq!(result, Ok(()));
        assert!(bad.is_empty(), "{bad:?}");
        let lines: Vec<u64> = rows.iter().map(|r| r.1).collect();
        assert_eq!(lines, [4, 5, 7]);
    }

    /// A stream that fails part way fails the object, naming it, instead of reporting rows as unreadable.
    #[test]
    fn a_stream_that_fails_fails_the_object() {
        struct Broken(usize);
        impl std::io::Read for Broken {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let text = b"x,y,z\na,1,2\na,3,4\n";
                if self.0 >= text.len() {
                    return Err(std::io::Error::other("connection reset"));
                }
                let n = out.len().min(4).min(text.len() - self.0);
                out[..n].copy_from_slice(&text[self.0..self.0 + n]);
                self.0 += n;
                Ok(n)
            }
        }
        let Ok((rdr, cols)) = csv_with_header("inbox/ledger/d/l.csv", Broken(0)) else {
            unreachable!("the header reads")
        };
        let (mut kept, mut dropped) = (Vec::new(), crate::Dropped::default());
        let mut invalid = crate::Invalids {
            kept: &mut kept,
            dropped: &mut dropped,
            keep: crate::Keep::Records,
        };
        let mut n = 0;
        let e = for_each_row(
            "inbox/ledger/d/l.csv",
            rdr,
            cols.len(),
            recon_core::Side::Ledger,
            0,
            &mut invalid,
            &|_| None,
            &mut |_, _| {
                n += 1;
                Ok(())
            },
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("inbox/ledger/d/l.csv") && e.contains("connection reset"),
            "{e}"
        );
        assert_eq!(n, 2);
    }
}
