//! The object layout of spec section 3, built and parsed in one place:
//!
//! ```text
//! inbox/{source}/{YYYY-MM-DD}/{file}                      dropped files (operators, SFTP sync, S3 drops)
//! raw/{source}/{YYYY-MM-DD}/{fetch_id}/{object}           staged inputs, unchanged, never overwritten
//! raw/{source}/{YYYY-MM-DD}/{fetch_id}/manifest.json      what a fetch staged
//! reports/{YYYY-MM-DD}/{processor}/{run_id}/{file}        a run's reports
//! work/{YYYY-MM-DD}/{processor}/{run}/partition-…json     a sharded run's partition outcomes
//! ```
//!
//! and the names in it: [`Source`] (three processors and the ledger) and the [`IdempotencyKey`] of a run.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use recon_core::Processor;
use serde::{Deserialize, Serialize};

/// What is staged: a processor's activity or the internal ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Stripe,
    Paypal,
    Square,
    Ledger,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Stripe, Source::Paypal, Source::Square, Source::Ledger];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Stripe => "stripe",
            Source::Paypal => "paypal",
            Source::Square => "square",
            Source::Ledger => "ledger",
        }
    }

    /// The processor, unless this is the ledger.
    pub fn processor(self) -> Option<Processor> {
        match self {
            Source::Stripe => Some(Processor::Stripe),
            Source::Paypal => Some(Processor::Paypal),
            Source::Square => Some(Processor::Square),
            Source::Ledger => None,
        }
    }
}

impl From<Processor> for Source {
    fn from(p: Processor) -> Source {
        match p {
            Processor::Stripe => Source::Stripe,
            Processor::Paypal => Source::Paypal,
            Processor::Square => Source::Square,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Source, String> {
        Source::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?}: expected stripe, paypal, square or ledger"))
    }
}

/// Marks a prefix whose objects are never overwritten.
pub const RAW: &str = "raw/";
/// A fetch's manifest, in its folder.
pub const MANIFEST: &str = "manifest.json";
/// Left in a fetch folder whose fetch stopped before its manifest.
pub const INCOMPLETE: &str = "INCOMPLETE.txt";
/// Left in a report folder whose run was never recorded.
pub const NOT_RECORDED: &str = "NOT-RECORDED.txt";

/// Is `key` raw data (never overwritten)?
pub fn is_raw(key: &str) -> bool {
    key.starts_with(RAW)
}

/// `inbox/{source}/{date}/`.
pub fn inbox_day(source: Source, date: NaiveDate) -> String {
    format!("inbox/{source}/{date}/")
}

/// `raw/{source}/{date}/`.
pub fn raw_day(source: Source, date: NaiveDate) -> String {
    format!("{RAW}{source}/{date}/")
}

/// `raw/{source}/{date}/{fetch_id}/manifest.json`: where a fetch writes its manifest, and the only key a
/// manifest reference may name.
pub fn manifest(source: Source, date: NaiveDate, fetch_id: &str) -> String {
    format!("{}{MANIFEST}", raw_fetch(source, date, fetch_id))
}

/// `raw/{source}/{date}/{fetch_id}/`.
pub fn raw_fetch(source: Source, date: NaiveDate, fetch_id: &str) -> String {
    format!("{RAW}{source}/{date}/{fetch_id}/")
}

/// `reports/{date}/{processor}/`.
pub fn reports_day(date: NaiveDate, processor: Processor) -> String {
    format!("reports/{date}/{processor}/")
}

/// `reports/{date}/{processor}/{run_id}/`.
pub fn report_run(date: NaiveDate, processor: Processor, run_id: &str) -> String {
    format!("reports/{date}/{processor}/{run_id}/")
}

/// `work/{date}/{processor}/{run}/partition-{index}-of-{count}.json`: where partition `index` of a sharded
/// run keeps its outcome (`run`: a name safe in a key, derived from the idempotency key).
pub fn partition(date: NaiveDate, processor: Processor, run: &str, index: u32, count: u32) -> String {
    format!("work/{date}/{processor}/{run}/partition-{index:05}-of-{count:05}.json")
}

/// `work/{date}/{processor}/{run}/split/`: where the split step of a sharded run keeps its files (each
/// range's node hashes, the plan, and each partition's records by range).
pub fn split_dir(date: NaiveDate, processor: Processor, run: &str) -> String {
    format!("work/{date}/{processor}/{run}/split/")
}

/// `notifications/{date}/{execution digest}-{kind}.txt`: the record that an execution's email of `kind`
/// (`report`, `failure`) is being or was sent, written before sending (at most one email each).
pub fn notification(date: NaiveDate, execution: &str, kind: &str) -> String {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(execution.as_bytes()));
    format!(
        "notifications/{date}/{}-{kind}.txt",
        digest.get(..24).unwrap_or(&digest)
    )
}

/// A dropped file's key, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxKey {
    pub source: Source,
    pub date: NaiveDate,
    /// The path under the day's folder (`a.csv`, `sub/a.csv`).
    pub file: String,
}

/// Parses `inbox/{source}/{YYYY-MM-DD}/{file}`: exactly the layout, lower-case source names, a real date
/// written with two-digit month and day, a file name that is not a folder marker. The trigger and the fetch
/// both validate with it, so a drop the trigger accepts is one the fetch stages.
pub fn parse_inbox(key: &str) -> Result<InboxKey, String> {
    let layout = || format!("{key:?} is not inbox/{{stripe|paypal|square|ledger}}/{{YYYY-MM-DD}}/{{file}}");
    let mut parts = key.splitn(4, '/');
    let (Some("inbox"), Some(source), Some(day), Some(file)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(layout());
    };
    let source: Source = source.parse()?;
    let date = (day.len() == 10)
        .then(|| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| format!("{day:?} in {key:?} is not a YYYY-MM-DD date"))?;
    if file.is_empty() || file.ends_with('/') {
        return Err(format!("{key:?} is a folder, not a file"));
    }
    Ok(InboxKey {
        source,
        date,
        file: file.to_string(),
    })
}

/// The idempotency key of a run: execution, processor and date. A retry with the same key never records a
/// second run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(execution: &str, processor: Processor, date: NaiveDate) -> IdempotencyKey {
        IdempotencyKey(format!("{execution}:{processor}:{date}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The sha256 of the key, in hex: a name for the run that is safe in object keys, and the proof a
    /// partition's outcome carries of whose it is.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 15).unwrap_or_default()
    }

    #[test]
    fn inbox_keys_parse_and_build_alike() {
        let k = parse_inbox("inbox/stripe/2025-01-15/sub/report.csv");
        let want = InboxKey {
            source: Source::Stripe,
            date: day(),
            file: "sub/report.csv".into(),
        };
        assert_eq!(k, Ok(want));
        assert_eq!(inbox_day(Source::Stripe, day()), "inbox/stripe/2025-01-15/");
        assert_eq!(
            parse_inbox("inbox/ledger/2025-01-15/l.csv").map(|k| k.source),
            Ok(Source::Ledger)
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (key, why) in [
            ("inbox/venmo/2025-01-15/x.csv", "unknown source"),
            ("inbox/STRIPE/2025-01-15/x.csv", "unknown source"),
            ("inbox/+stripe/2025-01-15/x.csv", "unknown source"),
            ("inbox/stripe/2025-3-1/x.csv", "not a YYYY-MM-DD date"),
            ("inbox/stripe/15-01-2025/x.csv", "not a YYYY-MM-DD date"),
            ("inbox/stripe/2025-02-30/x.csv", "not a YYYY-MM-DD date"),
            ("raw/stripe/2025-01-15/x.csv", "is not inbox/"),
            ("inbox/stripe/2025-01-15/", "is a folder"),
            ("inbox/ledger/2025-01-15/d/", "is a folder"),
            ("inbox/stripe", "is not inbox/"),
        ] {
            let e = parse_inbox(key).err().unwrap_or_default();
            assert!(e.contains(why), "{key}: {e}");
        }
    }

    #[test]
    fn the_other_keys_follow_the_layout() {
        assert_eq!(
            raw_fetch(Source::Paypal, day(), "f1"),
            "raw/paypal/2025-01-15/f1/"
        );
        assert!(is_raw(&raw_day(Source::Ledger, day())));
        assert_eq!(
            report_run(day(), Processor::Square, "r1"),
            "reports/2025-01-15/square/r1/"
        );
        assert_eq!(
            partition(day(), Processor::Stripe, "x", 3, 16),
            "work/2025-01-15/stripe/x/partition-00003-of-00016.json"
        );
        assert_eq!(
            IdempotencyKey::new("cli:1", Processor::Stripe, day()).as_str(),
            "cli:1:stripe:2025-01-15"
        );
    }
}
