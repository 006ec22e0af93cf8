//! # recon-sources
//!
//! Turns what the processors and the internal ledger send into canonical records ([`recon_core::model`]).
//! The format of a file is recognised from its content (header row, JSON keys), never from its name:
//! [`parse_object`] detects and parses one staged object. A file that cannot be read as a whole (unknown
//! format, truncated JSON, not UTF-8) is a [`SourceError`] naming the object key; a single bad record becomes
//! an [`InvalidRecord`] with its line and reason, and the rest of the file is still read.

pub mod api;
pub mod ledger;
pub mod paypal;
pub mod square;
pub mod stripe;
mod text;

use std::io::Read;

use recon_core::{InvalidRecord, LedgerRow, Location, Processor, ProcessorRecord, Side};
use thiserror::Error;

/// A processor record that could not be read: which processor, where, which field, why, and its raw text.
pub(crate) fn bad(
    processor: Processor,
    location: Location,
    field: &str,
    reason: String,
    raw: String,
) -> (Option<Processor>, InvalidRecord) {
    let record = InvalidRecord::new(Side::Processor, location, field, reason, raw);
    (Some(processor), record)
}

/// A file or page that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {reason}")]
pub struct SourceError {
    pub key: String,
    pub reason: String,
}

impl SourceError {
    pub fn new(key: &str, reason: impl Into<String>) -> Self {
        SourceError {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// The formats recon reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    LedgerCsv,
    LedgerJsonLines,
    StripeReportCsv,
    StripeApiPage,
    PaypalApiPage,
    PaypalSettlementCsv,
    SquareApiPage,
    /// `{}`: an API page with nothing in it (Square answers so when a window is empty).
    EmptyJsonPage,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 8] = [
        Format::LedgerCsv,
        Format::LedgerJsonLines,
        Format::StripeReportCsv,
        Format::StripeApiPage,
        Format::PaypalApiPage,
        Format::PaypalSettlementCsv,
        Format::SquareApiPage,
        Format::EmptyJsonPage,
    ];

    /// The format named `name` by [`Format::as_str`].
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::LedgerCsv => "ledger_csv",
            Format::LedgerJsonLines => "ledger_jsonl",
            Format::StripeReportCsv => "stripe_report_csv",
            Format::StripeApiPage => "stripe_api_page",
            Format::PaypalApiPage => "paypal_api_page",
            Format::PaypalSettlementCsv => "paypal_settlement_csv",
            Format::SquareApiPage => "square_api_page",
            Format::EmptyJsonPage => "empty_json_page",
        }
    }

    /// The processor whose data this format carries (`None` for the ledger).
    pub fn processor(self) -> Option<Processor> {
        match self {
            Format::LedgerCsv | Format::LedgerJsonLines | Format::EmptyJsonPage => None,
            Format::StripeReportCsv | Format::StripeApiPage => Some(Processor::Stripe),
            Format::PaypalApiPage | Format::PaypalSettlementCsv => Some(Processor::Paypal),
            Format::SquareApiPage => Some(Processor::Square),
        }
    }

    /// Can a file of this format sit in `processor`'s inbox (`None`: the ledger's)?
    pub fn belongs_to(self, processor: Option<Processor>) -> bool {
        self == Format::EmptyJsonPage || self.processor() == processor
    }
}

/// What a parse keeps of what it reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every record, valid or not (a run matches them).
    #[default]
    Records,
    /// Counts, and the first [`INVALID_EXAMPLES`] invalid records of a processor and of none (a fetch that
    /// only describes what it staged: its memory does not grow with the object).
    Counts,
}

/// How many invalid records with a processor, and how many with none, a parse that counts keeps.
pub const INVALID_EXAMPLES: usize = 20;

/// What a parse read and counted without keeping it ([`Keep::Counts`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Valid records.
    pub records: u64,
    /// Invalid records beyond the examples kept.
    pub invalid: u64,
    /// Of those, the ones of no processor.
    pub unattributed: u64,
}

/// Where a parser puts the invalid records it finds: every one ([`Keep::Records`]), or the first
/// [`INVALID_EXAMPLES`] of each attribution and a count of the rest ([`Keep::Counts`]).
pub(crate) struct Invalids<'a> {
    pub(crate) kept: &'a mut Vec<(Option<Processor>, InvalidRecord)>,
    pub(crate) dropped: &'a mut Dropped,
    pub(crate) keep: Keep,
}

impl Invalids<'_> {
    pub(crate) fn push(&mut self, bad: (Option<Processor>, InvalidRecord)) {
        let examples = |kept: &[(Option<Processor>, InvalidRecord)]| {
            kept.iter()
                .filter(|(p, _)| p.is_none() == bad.0.is_none())
                .count()
        };
        if self.keep == Keep::Records || examples(self.kept) < INVALID_EXAMPLES {
            self.kept.push(bad);
        } else {
            self.dropped.invalid += 1;
            self.dropped.unattributed += u64::from(bad.0.is_none());
        }
    }
}

impl Keep {
    /// Keeps a valid record, or counts it.
    pub(crate) fn record<T>(self, kept: &mut Vec<T>, counted: &mut u64, record: T) {
        match self {
            Keep::Records => kept.push(record),
            Keep::Counts => *counted += 1,
        }
    }
}

/// Everything read from one object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub records: Vec<ProcessorRecord>,
    pub ledger: Vec<LedgerRow>,
    /// Invalid records with the processor they belong to, when it could be read.
    pub invalid: Vec<(Option<Processor>, InvalidRecord)>,
    /// What was counted and not kept ([`Keep::Counts`]; nothing otherwise).
    pub dropped: Dropped,
}

impl Parsed {
    /// Records read, valid or not.
    pub fn record_count(&self) -> u64 {
        (self.records.len() + self.ledger.len() + self.invalid.len()) as u64
            + self.dropped.records
            + self.dropped.invalid
    }

    /// Invalid records read.
    pub fn invalid_count(&self) -> u64 {
        self.invalid.len() as u64 + self.dropped.invalid
    }

    /// Invalid records read that name no processor.
    pub fn unattributed_count(&self) -> u64 {
        self.invalid.iter().filter(|(p, _)| p.is_none()).count() as u64 + self.dropped.unattributed
    }

    /// Adds what `other` read after what this one read (both already numbered in the object's lines).
    pub fn append(&mut self, mut other: Parsed) {
        self.records.append(&mut other.records);
        self.ledger.append(&mut other.ledger);
        self.invalid.append(&mut other.invalid);
        self.dropped.records += other.dropped.records;
        self.dropped.invalid += other.dropped.invalid;
        self.dropped.unattributed += other.dropped.unattributed;
    }

    /// Keeps a record packed from an API page, or, when it could not be packed (its text beyond what a
    /// record holds), reports it as the invalid record `bad` makes of the reason: never dropped.
    pub(crate) fn keep_packed(
        &mut self,
        record: Result<ProcessorRecord, recon_core::TooLarge>,
        bad: impl FnOnce(String) -> (Option<Processor>, InvalidRecord),
    ) {
        match record {
            Ok(r) => self.records.push(r),
            Err(e) => self.invalid.push(bad(e.to_string())),
        }
    }

    /// What a parse with [`Keep::Counts`] keeps of this one: counts, and the first invalid examples.
    pub fn counted(self) -> Parsed {
        let mut out = Parsed {
            dropped: self.dropped,
            ..Parsed::default()
        };
        out.dropped.records += (self.records.len() + self.ledger.len()) as u64;
        let mut invalid = Invalids {
            kept: &mut out.invalid,
            dropped: &mut out.dropped,
            keep: Keep::Counts,
        };
        for bad in self.invalid {
            invalid.push(bad);
        }
        out
    }
}

/// How much of an object [`parse_reader`] reads to recognise its format.
pub const HEAD: usize = 64 * 1024;

/// Recognises the format of an object from its first bytes (or all of it, when shorter than [`HEAD`]).
pub fn detect(key: &str, bytes: &[u8]) -> Result<Format, SourceError> {
    // decoded leniently: a bad byte in some row of the head is that row's problem (the CSV parsers decode
    // row by row), not the file's; JSON pages are decoded whole by their parsers
    let lossy = String::from_utf8_lossy(bytes);
    let text: &str = &lossy;
    let body = text.trim_start_matches('\u{feff}').trim_start();
    let first_line = body.lines().next().unwrap_or("");
    if body.starts_with('{') || body.starts_with('[') {
        if first_line.contains("\"ledger_id\"") {
            return Ok(Format::LedgerJsonLines);
        }
        let compact: String = body.chars().take(4096).filter(|c| !c.is_whitespace()).collect();
        if compact == "{}" {
            return Ok(Format::EmptyJsonPage);
        }
        if compact.contains("\"transaction_details\"") {
            return Ok(Format::PaypalApiPage);
        }
        let first_key = compact
            .strip_prefix("{\"")
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        if first_key == "object" || compact.contains("\"object\":\"list\"") {
            return Ok(Format::StripeApiPage);
        }
        if matches!(first_key, "payments" | "refunds" | "cursor") {
            return Ok(Format::SquareApiPage);
        }
        return Err(SourceError::new(
            key,
            "JSON content of no known kind (expected a Stripe, PayPal or Square API page, or ledger JSON Lines)",
        ));
    }
    if first_line
        .trim_start_matches('\u{feff}')
        .trim_start_matches('"')
        .starts_with("RH")
    {
        return Ok(Format::PaypalSettlementCsv);
    }
    let header = text::header_names(first_line);
    let has = |n: &str| header.iter().any(|h| h == n);
    if has("ledger_id") && has("processor_txn_id") {
        return Ok(Format::LedgerCsv);
    }
    if has("balance_transaction_id") && (has("gross") || has("amount")) {
        return Ok(Format::StripeReportCsv);
    }
    if body.is_empty() {
        return Err(SourceError::new(key, "the file is empty"));
    }
    let starts = first_line.trim_start_matches('"');
    let hint = if ["SH", "CH", "SB", "FH", "SF", "SC", "RF", "RC", "FF"]
        .iter()
        .any(|t| starts.starts_with(t) && starts[2..].starts_with(['"', ',']))
    {
        " It looks like an excerpt of a PayPal report: the file must be the whole report, from its RH row to \
         its FF row."
    } else {
        ""
    };
    Err(SourceError::new(
        key,
        format!(
            "unknown format: the first line {:?} matches none of the formats recon reads: a ledger export \
             (CSV header with ledger_id and processor_txn_id, or JSON Lines with \"ledger_id\"), a Stripe \
             itemized report (CSV header with balance_transaction_id and gross or amount), a PayPal settlement \
             or transaction detail report (first row RH), or an API page as JSON (Stripe list, PayPal \
             transaction_details, Square payments or refunds).{hint}",
            first_line.chars().take(80).collect::<String>()
        ),
    ))
}

/// Detects and parses one object held in memory.
pub fn parse_object(key: &str, object: u32, bytes: &[u8]) -> Result<(Format, Parsed), SourceError> {
    parse_reader(key, object, bytes, Some(bytes.len() as u64), Keep::Records)
}

/// Detects and parses one object as a stream: CSV files are never held in memory whole (JSON pages, which
/// are small, are). `object` is the index that the records' locations will carry.
/// `size` (the object's length, when known) lets the parser reserve room for the records it will find;
/// `keep` says whether it keeps them or counts them.
pub fn parse_reader<R: Read>(
    key: &str,
    object: u32,
    mut reader: R,
    size: Option<u64>,
    keep: Keep,
) -> Result<(Format, Parsed), SourceError> {
    let mut head = Vec::with_capacity(HEAD);
    (&mut reader)
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| SourceError::new(key, format!("cannot read: {e}")))?;
    let format = detect(key, &head)?;
    let crlf = text::crlf_first_line(&head);
    // rows expected = size / average line length of the head (reserving avoids growing huge vectors)
    let lines_in_head = head.iter().filter(|&&b| b == b'\n').count().max(1);
    // with 1/16 headroom: a vector of a million records that has to grow once is copied whole and, for a
    // while, held twice
    let expected = size
        .filter(|_| keep == Keep::Records)
        .map(|s| (s / (head.len() / lines_in_head).max(1) as u64) as usize)
        .map(|n| n + n / 16 + 16)
        .unwrap_or(0);
    let rest = std::io::Cursor::new(head).chain(reader);
    let read_all = |mut r: std::io::Chain<std::io::Cursor<Vec<u8>>, R>| -> Result<String, SourceError> {
        let mut all = Vec::new();
        r.read_to_end(&mut all)
            .map_err(|e| SourceError::new(key, format!("cannot read: {e}")))?;
        text::utf8(key, &all).map(str::to_string)
    };
    let parsed = match format {
        Format::LedgerCsv => ledger::parse_csv_reader(key, object, rest, expected, keep)?,
        Format::LedgerJsonLines => ledger::parse_jsonl(key, object, &read_all(rest)?)?,
        Format::StripeReportCsv => stripe::parse_report_csv_reader(key, object, rest, expected, keep)?,
        Format::StripeApiPage => stripe::parse_api_page(key, object, &read_all(rest)?)?,
        Format::PaypalApiPage => paypal::parse_api_page(key, object, &read_all(rest)?)?,
        Format::PaypalSettlementCsv => paypal::parse_settlement_csv(key, object, rest, crlf, keep)?,
        Format::SquareApiPage => square::parse_page(key, object, &read_all(rest)?)?,
        Format::EmptyJsonPage => Parsed::default(),
    };
    // JSON is read whole anyway; what it parsed to is counted like the CSV parsers count as they read
    let parsed = match keep {
        Keep::Records => parsed,
        Keep::Counts => parsed.counted(),
    };
    Ok((format, parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_format_names_every_format_tried() {
        let excerpt = "\"CH\",\"Transaction ID\",\"Invoice ID\"\n\"SB\",\"1\",\"2\"\n";
        let e = detect("inbox/paypal/2025-03-10/part.csv", excerpt.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for want in [
            "inbox/paypal/2025-03-10/part.csv",
            "ledger export",
            "Stripe itemized report",
            "PayPal settlement or transaction detail report (first row RH)",
            "API page",
            "excerpt of a PayPal report",
        ] {
            assert!(e.contains(want), "{want:?} not in {e}");
        }
        let e = detect("k", b"a,b,c\n1,2,3\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("first row RH") && !e.contains("excerpt"), "{e}");
    }
}
