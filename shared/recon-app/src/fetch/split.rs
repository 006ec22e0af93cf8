//! A large CSV object in a local store parsed in parts on every core: cut at line starts, each part read
//! from its own file handle behind the header line, the parts' records joined in file order with their file
//! line numbers. The object is still hashed whole, in order (part 0's reader feeds the digest to the end).
//!
//! A cut is only safe where the sequential reader starts a record. That holds at every line start when no
//! line break falls inside a quoted field (a legitimate multi-line field, or a quote opened and never
//! closed, whose recovery re-reads the following lines). Each part watches the CSV quoting of its bytes as
//! the parser reads them ([`QuoteWatch`]); when any part saw a line break inside quotes, or any part failed,
//! the parts are dropped and the object is parsed again sequentially: the result is always the sequential
//! reader's.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use recon_sources::{Format, Keep, Parsed, SourceError};

use super::{hash_and_parse, Hasher, Hashing};

/// Objects smaller than two parts of this size are parsed on one thread.
pub const MIN_PART: u64 = 32 << 20;

/// How far past a planned cut the next line start is looked for.
pub(crate) const WINDOW: usize = 64 * 1024;

/// How many parts a large CSV object is parsed in when `files` objects are parsed at once: the cores shared
/// among them. `recon run` stages the ledger and a processor at once: the ledger in half the cores, the
/// processor's file in all of them (`inbox::parse_parts`; splitting both cost CPU, their records appended
/// and more threads than cores, and gained less); the match step loads its objects one after the other.
pub fn parts_for(files: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / files.max(1)).max(1)
}

/// [`hash_and_parse`] of a file, in up to `parts` parts (each at least [`MIN_PART`]) when it is a large CSV
/// export.
pub fn hash_and_parse_file(key: &str, object: u32, path: &Path, parts: usize, keep: Keep) -> HashedParse {
    let (digest, bytes, parsed, _) = hash_and_parse_parts(key, object, path, parts, MIN_PART, keep);
    (digest, bytes, parsed)
}

/// A staged object's sha256, its size and what was parsed from it.
pub(crate) type HashedParse = (String, u64, Result<(Format, Parsed), SourceError>);

fn unreadable(key: &str, e: std::io::Error) -> (String, u64, Result<(Format, Parsed), SourceError>, bool) {
    (
        String::new(),
        0,
        Err(SourceError::new(key, format!("cannot read: {e}"))),
        false,
    )
}

/// [`hash_and_parse_file`] with at most `parts` parts of at least `min_part` bytes; the last value says
/// whether the parts stood (`false`: parsed in one piece).
pub(crate) fn hash_and_parse_parts(
    key: &str,
    object: u32,
    path: &Path,
    parts: usize,
    min_part: u64,
    keep: Keep,
) -> (String, u64, Result<(Format, Parsed), SourceError>, bool) {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return unreadable(key, e),
    };
    let size = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return unreadable(key, e),
    };
    let parts = parts.min(usize::try_from(size / min_part.max(1)).unwrap_or(usize::MAX));
    // each thread's range in PIECES pieces when the file has line starts enough for them, else in one
    let plan = if parts >= 2 {
        plan(&mut file, size, parts, PIECES).or_else(|| plan(&mut file, size, parts, 1))
    } else {
        None
    };
    let rewind = file.seek(SeekFrom::Start(0));
    let Some(plan) = plan.filter(|_| rewind.is_ok()) else {
        let (d, n, p) = hash_and_parse(key, object, file, Some(size), keep);
        return (d, n, p, false);
    };
    let in_parts = std::thread::scope(|s| {
        let others: Vec<_> = (1..plan.threads())
            .map(|t| {
                let plan = &plan;
                s.spawn(move || {
                    (t * plan.pieces..(t + 1) * plan.pieces)
                        .map(|k| parse_part(key, object, path, plan, k, keep))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // part 0 on this thread, through the reader that hashes the whole object
        let mut h = Hashing {
            inner: BufReader::with_capacity(1 << 20, file),
            hasher: Hasher::side(),
            bytes: 0,
        };
        let mut first = QuoteWatch::new((&mut h).take(plan.cuts[1]));
        // room for every part's records in the first part's vectors: the others are appended
        let parsed = recon_sources::parse_reader(key, object, &mut first, Some(size), keep);
        let mut all = vec![Part {
            parsed,
            newlines: first.newlines,
            multiline: first.multiline,
        }];
        // this thread's later pieces, read on through the same hashing reader behind the header line
        for k in 1..plan.pieces {
            let (from, to) = (plan.cuts[k], plan.cuts[k + 1]);
            all.push(parse_behind_header(
                key,
                object,
                &plan,
                (&mut h).take(to - from),
                to - from,
                keep,
            ));
        }
        let rest = std::io::copy(&mut h, &mut std::io::sink());
        let digest = h.hasher.finish();
        let bytes = h.bytes;
        for t in others {
            match t.join() {
                Ok(p) => all.extend(p),
                Err(_) => return (digest, bytes, rest, None),
            }
        }
        (digest, bytes, rest, Some(all))
    });
    let (digest, bytes, rest, all) = in_parts;
    let digest = match (digest, rest) {
        (Ok(d), Ok(_)) => d,
        (Err(why), _) => {
            let e = SourceError::new(key, format!("cannot hash the object: {why}"));
            return (String::new(), bytes, Err(e), false);
        }
        (_, Err(e)) => {
            let e = SourceError::new(key, format!("cannot read: {e}"));
            return (String::new(), bytes, Err(e), false);
        }
    };
    if let Some(parsed) = all.and_then(|a| join(a, plan.format)) {
        return (digest, bytes, Ok((plan.format, parsed)), true);
    }
    // not splittable after all: the sequential reader decides (the digest is already known)
    tracing::debug!(
        key,
        "a line break inside a quoted field, or a part failed: parsed again in one piece"
    );
    let parsed = File::open(path)
        .map_err(|e| SourceError::new(key, format!("cannot read: {e}")))
        .and_then(|f| {
            recon_sources::parse_reader(
                key,
                object,
                BufReader::with_capacity(1 << 20, f),
                Some(size),
                keep,
            )
        });
    (digest, bytes, parsed, false)
}

/// How many pieces each thread parses its range in, one after the other. The pieces' records are appended
/// behind the first piece's (which has room for the whole object's) and each piece is freed once appended:
/// while they are joined, a piece's records are held twice, not a whole thread's (measured at 5M rows on
/// two cores: a thread's 2.5M records copied at once took the peak from 1216 to 1349 MiB).
const PIECES: usize = 8;

/// Where the pieces start (`cuts[0] = 0`, `cuts[n] = size`), how many of them each thread parses, the
/// header line each later piece is read behind, and the format.
struct Plan {
    cuts: Vec<u64>,
    pieces: usize,
    header: Vec<u8>,
    format: Format,
}

impl Plan {
    /// The threads the object is parsed on.
    fn threads(&self) -> usize {
        (self.cuts.len() - 1) / self.pieces
    }
}

/// Plans `parts` parts of a CSV export, each of `pieces` pieces, cut at line starts; `None` when the object
/// is no splittable format, its header line holds a quote, or no line start follows a planned cut.
fn plan(file: &mut File, size: u64, parts: usize, pieces: usize) -> Option<Plan> {
    let parts = parts.checked_mul(pieces.max(1))?;
    let mut head = vec![0u8; WINDOW];
    let n = read_at(file, 0, &mut head)?;
    head.truncate(n);
    let (format, header, crlf) = csv_head(&head)?;
    let header_end = header.len();
    let mut cuts = vec![0u64];
    let mut window = vec![0u8; WINDOW];
    for k in 1..parts {
        // two bytes before the planned cut too: the line ending before a cut is looked at
        let at = (size / parts as u64 * k as u64).checked_sub(2)?;
        let n = read_at(file, at, &mut window)?;
        let w = window.get(..n)?;
        let cut = at + first_cut(w, crlf)? as u64;
        if cut <= header_end as u64 || cut <= *cuts.last()? || cut >= size {
            return None;
        }
        cuts.push(cut);
    }
    cuts.push(size);
    Some(Plan {
        cuts,
        pieces: pieces.max(1),
        header,
        format,
    })
}

/// The format, header line and line ending (CRLF?) of a CSV export that can be cut at line starts, from its
/// first bytes; `None` for any other format, or a header line holding a quote.
pub(crate) fn csv_head(head: &[u8]) -> Option<(Format, Vec<u8>, bool)> {
    let format = recon_sources::detect("", head).ok()?;
    if !matches!(format, Format::LedgerCsv | Format::StripeReportCsv) {
        return None;
    }
    let header_end = memchr::memchr(b'\n', head)? + 1;
    let header = head.get(..header_end)?.to_vec();
    if memchr::memchr(b'"', &header).is_some() {
        return None;
    }
    let crlf = header.ends_with(b"\r\n");
    Some((format, header, crlf))
}

/// In a window that starts two bytes before a planned cut: where the first allowed cut is (the offset of
/// the line start after it), if the window holds one.
pub(crate) fn first_cut(w: &[u8], crlf: bool) -> Option<usize> {
    memchr::memchr_iter(b'\n', w)
        .find(|&i| i >= 2 && clean_end(w, i, crlf))
        .map(|i| i + 1)
}

/// May a part end with the line break at `w[i]`? Only after a line that is not empty and ends as the header
/// does (CRLF or LF): the `csv` reader numbers the record after an empty line, or after a line ending of the
/// other kind, one line off, and a part read behind the header would number it right; the parts must give
/// exactly the sequential reader's line numbers.
fn clean_end(w: &[u8], i: usize, crlf: bool) -> bool {
    let (a, b) = (w[i - 2], w[i - 1]);
    match crlf {
        true => b == b'\r' && a != b'\r' && a != b'\n',
        false => b != b'\r' && b != b'\n',
    }
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> Option<usize> {
    file.seek(SeekFrom::Start(at)).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(n)
}

/// One part's parse, the line breaks it holds and whether one of them fell inside a quoted field.
struct Part {
    parsed: Result<(Format, Parsed), SourceError>,
    newlines: u64,
    multiline: bool,
}

/// Piece `k` (k >= 1): its bytes read behind the header line, from a file handle of its own.
fn parse_part(key: &str, object: u32, path: &Path, plan: &Plan, k: usize, keep: Keep) -> Part {
    let failed = |e: std::io::Error| Part {
        parsed: Err(SourceError::new(key, format!("cannot read: {e}"))),
        newlines: 0,
        multiline: false,
    };
    let (from, to) = (plan.cuts[k], plan.cuts[k + 1]);
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    if let Err(e) = file.seek(SeekFrom::Start(from)) {
        return failed(e);
    }
    let piece = BufReader::with_capacity(1 << 20, file).take(to - from);
    parse_behind_header(key, object, plan, piece, to - from, keep)
}

/// A piece's parse: its `len` bytes from `piece`, read behind the header line. Whatever the parser left of
/// the piece is read to its end (a reader shared with the next piece must stand at that piece's start).
fn parse_behind_header<R: Read>(key: &str, object: u32, plan: &Plan, piece: R, len: u64, keep: Keep) -> Part {
    let mut watch = QuoteWatch::new(piece);
    let parsed = recon_sources::parse_reader(
        key,
        object,
        std::io::Cursor::new(plan.header.as_slice()).chain(&mut watch),
        Some(plan.header.len() as u64 + len),
        keep,
    );
    let parsed = match std::io::copy(&mut watch, &mut std::io::sink()) {
        Ok(0) => parsed,
        Ok(_) => Err(SourceError::new(
            key,
            "a part was not read to its end".to_string(),
        )),
        Err(e) => Err(SourceError::new(key, format!("cannot read: {e}"))),
    };
    Part {
        parsed,
        newlines: watch.newlines,
        multiline: watch.multiline,
    }
}

/// The parts joined in file order with file line numbers; `None` when they cannot stand for the
/// sequential parse (a part failed, saw a line break inside quotes, or was read as another format).
fn join(parts: Vec<Part>, format: Format) -> Option<Parsed> {
    if parts.iter().any(|p| p.multiline) {
        return None;
    }
    let mut out: Option<Parsed> = None;
    // the file line of the current part's first line
    let mut first_line = 1u64;
    for p in parts {
        let (f, mut parsed) = p.parsed.ok()?;
        if f != format {
            return None;
        }
        match &mut out {
            None => out = Some(parsed),
            Some(all) => {
                // in the part's own stream its first line is line 2 (behind the header line)
                // a line beyond what a record keeps: the sequential parse reports it
                shift_lines(&mut parsed, first_line.checked_sub(2)?).ok()?;
                all.append(parsed);
                // the piece just copied is freed: handed back now, before the next is copied
                crate::alloc::release_freed();
            }
        }
        first_line = first_line.checked_add(p.newlines)?;
    }
    out
}

/// Moves every line number of a part read behind the header line by `shift` (its first line's line in the
/// object, less 2); line 0 (no line) stays. A line beyond what a record keeps ([`recon_core::TooLarge`]) is
/// an error.
pub(crate) fn shift_lines(parsed: &mut Parsed, shift: u64) -> Result<(), recon_core::TooLarge> {
    let moved = |line: u64| {
        if line == 0 {
            return Ok(0);
        }
        line.checked_add(shift).ok_or(recon_core::TooLarge::Line(line))
    };
    for r in &mut parsed.records {
        r.set_line(moved(r.location().line)?)?;
    }
    for r in &mut parsed.ledger {
        r.set_line(moved(r.location().line)?)?;
    }
    for (_, r) in &mut parsed.invalid {
        r.location.line = moved(r.location.line)?;
    }
    Ok(())
}

/// CSV quoting as the `csv` reader sees it (a quote opens a quoted field only at a field's start; `""`
/// inside one is a quote; CR, LF and CRLF end a record outside quotes).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    InField,
    Quoted,
    QuoteInQuoted,
}

/// A reader that counts the line breaks passing through it and notes one inside a quoted field.
pub(crate) struct QuoteWatch<R> {
    inner: R,
    state: Quoting,
    pub(crate) newlines: u64,
    pub(crate) multiline: bool,
}

impl<R> QuoteWatch<R> {
    pub(crate) fn new(inner: R) -> Self {
        QuoteWatch {
            inner,
            state: Quoting::FieldStart,
            newlines: 0,
            multiline: false,
        }
    }

    /// Follows the quoting from quote to quote (a quote outside a quoted field counts only at a field's
    /// start; inside one, the next quote or line break decides).
    fn watch(&mut self, b: &[u8]) {
        self.newlines += memchr::memchr_iter(b'\n', b).count() as u64;
        if self.multiline {
            return;
        }
        let at_field_start = |prev: Option<&u8>, state: Quoting| match prev {
            Some(c) => matches!(c, b',' | b'\n' | b'\r'),
            None => state == Quoting::FieldStart,
        };
        let mut i = 0;
        while i < b.len() {
            match self.state {
                Quoting::FieldStart | Quoting::InField => {
                    let Some(q) = memchr::memchr(b'"', &b[i..]) else {
                        // no quote left in this buffer: where the next one would stand follows from its last byte
                        if let Some(&last) = b.last() {
                            let start = matches!(last, b',' | b'\n' | b'\r');
                            self.state = if start || (b.len() == i && self.state == Quoting::FieldStart) {
                                Quoting::FieldStart
                            } else {
                                Quoting::InField
                            };
                        }
                        return;
                    };
                    let q = i + q;
                    let opens = at_field_start(q.checked_sub(1).and_then(|p| b.get(p)), self.state);
                    self.state = if opens { Quoting::Quoted } else { Quoting::InField };
                    i = q + 1;
                }
                Quoting::Quoted => match memchr::memchr2(b'"', b'\n', &b[i..]) {
                    None => return,
                    Some(j) if b[i + j] == b'\n' => {
                        self.multiline = true;
                        return;
                    }
                    Some(j) => {
                        self.state = Quoting::QuoteInQuoted;
                        i += j + 1;
                    }
                },
                Quoting::QuoteInQuoted => {
                    self.state = match b[i] {
                        b'"' => Quoting::Quoted,
                        b',' | b'\n' | b'\r' => Quoting::FieldStart,
                        _ => Quoting::InField,
                    };
                    i += 1;
                }
            }
        }
    }
}

impl<R: Read> Read for QuoteWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.watch(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEDGER: &str =
        "ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at";
    const STRIPE: &str =
        "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,\
                          description";

    /// One line of a ledger export or a Stripe report, picked by `kind`: valid rows and every shape the
    /// sequential reader treats specially (quotes, a quote inside a field, a line break inside quotes, a
    /// quote never closed, bad amounts, bytes that are not UTF-8, a lone CR, an empty line).
    pub(crate) fn line(stripe: bool, kind: u8, i: usize) -> Vec<u8> {
        let s = match (stripe, kind) {
            (false, 0..=9) => format!(
                "L-{i},stripe,txn_{i},ord_{i},charge,{}.{:02},USD,captured,2025-06-02T10:00:00Z",
                i % 97,
                i % 100
            ),
            (true, 0..=9) => {
                // a valid row: its net is the gross less the fee
                let gross = (i % 97) * 100 + i % 100;
                let net = gross as i64 - 30;
                let sign = if net < 0 { "-" } else { "" };
                format!(
                    "txn_{i},2025-06-02 10:00:00,usd,{}.{:02},0.30,{sign}{}.{:02},charge,ch_{i},Payment {i}",
                    gross / 100,
                    gross % 100,
                    net.unsigned_abs() / 100,
                    net.unsigned_abs() % 100
                )
            }
            (false, 10) => format!(
                "L-{i},stripe,txn_{i},\"ord_{i}, part\",refund,-1.00,USD,refunded,2025-06-02T10:00:00Z"
            ),
            (true, 10) => format!(
                "txn_{i},2025-06-02 10:00:00,usd,1.00,0.30,0.70,charge,ch_{i},\"Invoice \"\"{i}\"\", paid\""
            ),
            (false, 11) => {
                format!("L-{i},stripe,txn_{i},ord 5\" screen,charge,1.00,USD,captured,2025-06-02T10:00:00Z")
            }
            (true, 11) => {
                format!("txn_{i},2025-06-02 10:00:00,usd,1.00,0.30,0.70,charge,ch_{i},a 5\" screen")
            }
            (false, 12) => {
                format!("L-{i},stripe,txn_{i},\"ord\n{i}\",charge,1.00,USD,captured,2025-06-02T10:00:00Z")
            }
            (true, 12) => {
                format!("txn_{i},2025-06-02 10:00:00,usd,1.00,0.30,0.70,charge,ch_{i},\"two\nlines\"")
            }
            (false, 13) => {
                format!("L-{i},stripe,txn_{i},\"ord_{i},charge,1.00,USD,captured,2025-06-02T10:00:00Z")
            }
            (true, 13) => {
                format!("txn_{i},2025-06-02 10:00:00,usd,1.00,0.30,0.70,charge,ch_{i},\"never closed")
            }
            (false, 14) => {
                format!("L-{i},stripe,txn_{i},ord_{i},charge,1.2.3,USD,captured,2025-06-02T10:00:00Z")
            }
            (true, 14) => format!("txn_{i},2025-06-02 10:00:00,usd,abc,0.30,0.70,charge,ch_{i},x"),
            (_, 15) => {
                let mut b = line(stripe, 0, i);
                b.extend_from_slice(b",\xff\xfe");
                return b;
            }
            (false, 16) => {
                format!("L-{i},stripe,txn_{i},ord\r{i},charge,1.00,USD,captured,2025-06-02T10:00:00Z")
            }
            (true, 16) => format!("txn_{i},2025-06-02 10:00:00,usd,1.00,0.30,0.70,charge,ch_{i},a\rb"),
            (_, 17) => String::new(),
            // a line ending of the other kind: CR LF in an LF file (CR CR LF in a CRLF one), a bare LF inside
            (_, 19) => {
                let mut b = line(stripe, 0, i);
                b.push(b'\r');
                return b;
            }
            (_, 20) => {
                let mut b = line(stripe, 0, i);
                b.push(b'\n');
                b.extend(line(stripe, 0, i + 100_000));
                return b;
            }
            _ => format!("L-{i},only,three"),
        };
        s.into_bytes()
    }

    pub(crate) fn file(stripe: bool, kinds: &[u8], crlf: bool, bom: bool) -> Vec<u8> {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut out = Vec::new();
        if bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        out.extend_from_slice(if stripe { STRIPE } else { LEDGER }.as_bytes());
        out.extend_from_slice(eol);
        for (i, &k) in kinds.iter().enumerate() {
            out.extend(line(stripe, k, i));
            out.extend_from_slice(eol);
        }
        out
    }

    /// Parsed in parts and in one piece: the same digest, size and records (line numbers included).
    fn same_as_one_piece(bytes: &[u8], parts: usize) -> bool {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("f.csv");
        std::fs::write(&path, bytes).unwrap_or_else(|e| unreachable!("{e}"));
        let (d1, n1, p1, split) = hash_and_parse_parts("raw/x/f.csv", 3, &path, parts, 1, Keep::Records);
        let (d2, n2, p2) = hash_and_parse("raw/x/f.csv", 3, bytes, Some(bytes.len() as u64), Keep::Records);
        assert_eq!((d1, n1), (d2, n2));
        if let (Ok((_, a)), Ok((_, b))) = (&p1, &p2) {
            for (x, y) in a.invalid.iter().zip(&b.invalid) {
                assert_eq!(x, y, "first invalid record that differs");
            }
            for (x, y) in a.records.iter().zip(&b.records) {
                assert_eq!(x, y, "first record that differs");
            }
            for (x, y) in a.ledger.iter().zip(&b.ledger) {
                assert_eq!(x, y, "first ledger row that differs");
            }
        }
        assert_eq!(p1, p2);
        split
    }

    /// Given files of plain rows (quotes that close on their line, bad rows, a lone CR), when parsed in 2
    /// to 5 parts, then the parts stand and give exactly the sequential reader's records, invalid records
    /// and line numbers.
    #[test]
    fn rows_on_one_line_each_are_parsed_in_parts_as_in_one_piece() {
        let kinds: Vec<u8> = (0..400u32)
            .map(|i| [0, 0, 0, 10, 11, 14, 15, 16, 17, 18, 19, 20][(i * 7 % 12) as usize])
            .collect();
        for stripe in [false, true] {
            for (crlf, bom) in [(false, false), (true, true), (true, false)] {
                for parts in 2..=5 {
                    let bytes = file(stripe, &kinds, crlf, bom);
                    assert!(
                        same_as_one_piece(&bytes, parts),
                        "stripe {stripe} crlf {crlf} parts {parts}"
                    );
                }
            }
        }
    }

    /// Given a file with line starts enough, each thread's range is cut in [`PIECES`] pieces (the first
    /// thread reading its later pieces on through the hashing reader) and the pieces give the sequential
    /// reader's records; given too few lines for pieces, the threads' ranges are parsed whole.
    #[test]
    fn each_thread_parses_its_range_in_pieces_when_the_file_has_lines_enough() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        for (lines, pieces) in [(400usize, PIECES), (6, 1)] {
            for stripe in [false, true] {
                let kinds: Vec<u8> = (0..lines).map(|i| [0u8, 10, 14][i % 3]).collect();
                let bytes = file(stripe, &kinds, false, false);
                let path = dir.path().join("f.csv");
                std::fs::write(&path, &bytes).unwrap_or_else(|e| unreachable!("{e}"));
                let mut f = File::open(&path).unwrap_or_else(|e| unreachable!("{e}"));
                let size = bytes.len() as u64;
                let planned = plan(&mut f, size, 2, PIECES).or_else(|| plan(&mut f, size, 2, 1));
                let planned = planned.unwrap_or_else(|| unreachable!("{lines} lines plan in two parts"));
                assert_eq!((planned.pieces, planned.threads()), (pieces, 2), "{lines} lines");
                assert_eq!(planned.cuts.len(), 2 * pieces + 1);
                assert!(same_as_one_piece(&bytes, 2), "{lines} lines, stripe {stripe}");
            }
        }
    }

    /// Given a line break inside a quoted field (a multi-line description, or a quote never closed), the
    /// parts are dropped and the sequential reader decides.
    #[test]
    fn a_line_break_inside_quotes_falls_back_to_one_piece() {
        for bad in [12u8, 13] {
            for stripe in [false, true] {
                let mut kinds = vec![0u8; 300];
                kinds[250] = bad;
                let bytes = file(stripe, &kinds, false, false);
                assert!(!same_as_one_piece(&bytes, 2), "kind {bad} stripe {stripe}");
            }
        }
    }

    /// The quoting of `bytes` byte by byte, as the `csv` reader reads it: is a line break inside quotes?
    fn multiline_reference(bytes: &[u8]) -> bool {
        let mut state = Quoting::FieldStart;
        for &c in bytes {
            state = match (state, c) {
                (Quoting::FieldStart, b'"') => Quoting::Quoted,
                (Quoting::FieldStart | Quoting::InField, b',' | b'\n' | b'\r') => Quoting::FieldStart,
                (Quoting::FieldStart | Quoting::InField, _) => Quoting::InField,
                (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
                (Quoting::Quoted, b'\n') => return true,
                (Quoting::Quoted, _) => Quoting::Quoted,
                (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
                (Quoting::QuoteInQuoted, b',' | b'\n' | b'\r') => Quoting::FieldStart,
                (Quoting::QuoteInQuoted, _) => Quoting::InField,
            };
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The watcher jumps from quote to quote, over reads cut anywhere: it sees what a byte-by-byte reading
        /// sees, and counts every line break.
        #[test]
        fn the_quote_watch_agrees_with_a_byte_by_byte_reading(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b'a')], 0..64),
            cuts in proptest::collection::vec(1usize..8, 1..16),
        ) {
            let mut w = QuoteWatch::new(());
            let (mut at, mut k) = (0, 0);
            while at < bytes.len() {
                let n = cuts[k % cuts.len()].min(bytes.len() - at);
                w.watch(&bytes[at..at + n]);
                at += n;
                k += 1;
            }
            prop_assert_eq!(w.multiline, multiline_reference(&bytes));
            prop_assert_eq!(w.newlines, bytes.iter().filter(|&&c| c == b'\n').count() as u64);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Any mix of rows, line endings and part counts: the result is the sequential reader's.
        #[test]
        fn parts_never_change_what_is_read(
            kinds in proptest::collection::vec(0u8..21, 1..200),
            stripe in any::<bool>(),
            crlf in any::<bool>(),
            bom in any::<bool>(),
            parts in 2usize..6,
            one_line_rows in any::<bool>(),
        ) {
            // half the cases without a line break inside quotes, so that their parts stand
            let kinds: Vec<u8> = kinds
                .into_iter()
                .map(|k| if one_line_rows && matches!(k, 12 | 13) { 0 } else { k })
                .collect();
            let bytes = file(stripe, &kinds, crlf, bom);
            let split = same_as_one_piece(&bytes, parts);
            // parts of more than 200 bytes: every planned cut finds its own line start (lines are shorter)
            prop_assert!(split || !one_line_rows || bytes.len() / parts <= 200);
        }
    }

    /// The first [`recon_sources::INVALID_EXAMPLES`] invalid records of a processor and of none, in order.
    fn examples(
        all: &[(Option<recon_core::Processor>, recon_core::InvalidRecord)],
    ) -> Vec<&recon_core::InvalidRecord> {
        let first = |none: bool| {
            all.iter()
                .filter(move |(p, _)| p.is_none() == none)
                .take(recon_sources::INVALID_EXAMPLES)
                .map(|(_, r)| r)
        };
        let mut out: Vec<&recon_core::InvalidRecord> = first(true).chain(first(false)).collect();
        out.sort_by_key(|r| r.location.line);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// A parse that counts (the fetch step's) reads what a parse that keeps reads: the same digest, the
        /// same counts of records, invalid and unattributed records, and as examples the first invalid
        /// records of a processor and of none, in file order; it keeps no record.
        #[test]
        fn counting_reads_what_keeping_reads(
            kinds in proptest::collection::vec(prop_oneof![3 => 0u8..1, 2 => 13u8..16, 1 => 17u8..22], 1..300),
            stripe in any::<bool>(),
            crlf in any::<bool>(),
            parts in 1usize..4,
        ) {
            let bytes = file(stripe, &kinds, crlf, false);
            let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
            let path = dir.path().join("f.csv");
            std::fs::write(&path, &bytes).unwrap_or_else(|e| unreachable!("{e}"));
            let (d1, n1, kept, _) = hash_and_parse_parts("raw/x/f.csv", 3, &path, parts, 1, Keep::Records);
            let (d2, n2, counted, _) = hash_and_parse_parts("raw/x/f.csv", 3, &path, parts, 1, Keep::Counts);
            prop_assert_eq!((d1, n1), (d2, n2));
            let (Ok((f1, kept)), Ok((f2, counted))) = (kept, counted) else {
                return Err(TestCaseError::fail("a file of these rows parses"));
            };
            prop_assert_eq!(f1, f2);
            prop_assert!(counted.records.is_empty() && counted.ledger.is_empty());
            prop_assert_eq!(counted.record_count(), kept.record_count());
            prop_assert_eq!(counted.invalid_count(), kept.invalid_count());
            prop_assert_eq!(counted.unattributed_count(), kept.unattributed_count());
            let shown: Vec<&recon_core::InvalidRecord> = counted.invalid.iter().map(|(_, r)| r).collect();
            prop_assert_eq!(shown, examples(&kept.invalid));
        }
    }
}

#[cfg(test)]
mod timing {
    /// `SPLIT_FILE=path cargo test --release -p recon-app --lib split_timing -- --ignored --nocapture`: one
    /// file hashed and parsed in one piece and in parts, timed (a measurement, never a test of speed).
    #[test]
    #[ignore]
    fn split_timing() {
        let Some(path) = std::env::var_os("SPLIT_FILE") else {
            return;
        };
        let path = std::path::PathBuf::from(path);
        for parts in [1, 2, 1, 2, 1, 2] {
            let t = std::time::Instant::now();
            let (_, _, p, split) = super::hash_and_parse_parts(
                "f",
                0,
                &path,
                parts,
                super::MIN_PART,
                recon_sources::Keep::Records,
            );
            let n = p.map(|p| p.1.record_count()).unwrap_or(0);
            eprintln!("parts {parts} (stood: {split}): {n} records in {:?}", t.elapsed());
        }
    }
}
