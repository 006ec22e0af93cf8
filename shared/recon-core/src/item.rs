//! Items (issue 15): a discrepancy as operators work it, with an identity that lives across runs and days.
//!
//! An item's key is its processor, its category family and the identities of the records on each side, so a
//! rerun of a day, or a later day that reports the same record, finds the same item. The lifecycle
//! (`open`, `acknowledged`, `resolved`), the actions on it, the reason codes, aging buckets and escalation by
//! age are defined here; the store keeps items and their append-only history, and the edges show them.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::discrepancy::{Category, Discrepancy, Lifecycle};
use crate::model::Processor;
use crate::severity::Severity;

/// What kind of problem an item is; the category may change between runs within a family (an amount
/// mismatch that becomes a status mismatch is the same pair, the same item).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `missing_in_ledger` or `missing_in_processor`: one record, one side.
    Missing,
    /// A linked pair that disagrees (currency, amount or status).
    Mismatch,
    Duplicate,
    Invalid,
}

impl Family {
    pub fn of(category: Category) -> Family {
        match category {
            Category::MissingInLedger | Category::MissingInProcessor => Family::Missing,
            Category::CurrencyMismatch | Category::AmountMismatch | Category::StatusMismatch => {
                Family::Mismatch
            }
            Category::Duplicate => Family::Duplicate,
            Category::InvalidRecord => Family::Invalid,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Missing => "missing",
            Family::Mismatch => "mismatch",
            Family::Duplicate => "duplicate",
            Family::Invalid => "invalid",
        }
    }
}

/// A source (`raw/{source}/{date}/{fetch_id}/{file}:{line}`) without its fetch id: the same line of the same
/// file whichever fetch staged it.
fn stable_source(source: &str) -> String {
    let parts: Vec<&str> = source.splitn(5, '/').collect();
    match parts.as_slice() {
        ["raw", src, date, _fetch, rest] => format!("{src}/{date}/{rest}"),
        _ => source.to_string(),
    }
}

/// `text` with the staged object's folder (`raw/{source}/{date}/{fetch_id}/`, as `source` names it) written
/// without its fetch id: messages name the staged object, and a new fetch of the same file is the same data.
fn without_fetch_id(text: &str, source: &str) -> String {
    let parts: Vec<&str> = source.splitn(5, '/').collect();
    match parts.as_slice() {
        ["raw", src, date, fetch, _] => {
            text.replace(&format!("raw/{src}/{date}/{fetch}/"), &format!("{src}/{date}/"))
        }
        _ => text.to_string(),
    }
}

/// The item key of a discrepancy reported by a run of `date`, or `None` for a pending one (still in its
/// grace period: not an exception yet). Missing and mismatch items are the same item whatever day reports
/// them (the records carry their identity); a duplicate or an invalid record is an occurrence in one day's
/// data, so its key holds the date.
pub fn item_key(processor: Processor, date: NaiveDate, d: &Discrepancy) -> Option<String> {
    if d.lifecycle == Lifecycle::Pending {
        return None;
    }
    let p = processor.as_str();
    let pid = d.processor_id.as_deref().unwrap_or("");
    let lid = d.ledger_id.as_deref().unwrap_or("");
    let fam = Family::of(d.category);
    Some(match fam {
        Family::Missing if !pid.is_empty() => format!("{p}|missing|p:{pid}"),
        Family::Missing if !lid.is_empty() => format!("{p}|missing|l:{lid}"),
        Family::Mismatch if !pid.is_empty() && !lid.is_empty() => {
            format!("{p}|mismatch|p:{pid}|l:{lid}")
        }
        Family::Duplicate if !pid.is_empty() || !lid.is_empty() => {
            format!("{p}|duplicate|{date}|p:{pid}|l:{lid}")
        }
        _ => {
            // an invalid record (or a discrepancy without ids): where it is and what it says
            let source = d
                .processor_source
                .as_deref()
                .or(d.ledger_source.as_deref())
                .unwrap_or("");
            let mut h = Sha256::new();
            h.update(d.raw.as_deref().unwrap_or("").as_bytes());
            h.update(without_fetch_id(&d.details, source).as_bytes());
            let digest = hex::encode(h.finalize());
            format!(
                "{p}|{}|{date}|{}|{}",
                fam.as_str(),
                stable_source(source),
                digest.get(..16).unwrap_or(&digest)
            )
        }
    })
}

/// The item keys of a run's discrepancies, in order (`None` for pending ones). Keys are unique within the
/// run: a second discrepancy with the same key (a record listed three times has two duplicate copies) gets
/// `#2`, `#3`, ... in report order.
pub fn item_keys(processor: Processor, date: NaiveDate, ds: &[Discrepancy]) -> Vec<Option<String>> {
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    ds.iter()
        .map(|d| {
            let key = item_key(processor, date, d)?;
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            Some(match *n {
                1 => key,
                n => format!("{key}#{n}"),
            })
        })
        .collect()
}

/// An item's state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 3] = [ItemStatus::Open, ItemStatus::Acknowledged, ItemStatus::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Open => "open",
            ItemStatus::Acknowledged => "acknowledged",
            ItemStatus::Resolved => "resolved",
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ItemStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ItemStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown item status {s:?} (open, acknowledged or resolved)"))
    }
}

/// Why an item was resolved. The first eight are an operator's; the last two are recon's own.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    BookedInLedger,
    ProcessorCorrected,
    Timing,
    WrittenOff,
    Refunded,
    DuplicateReversed,
    NotAnIssue,
    Other,
    /// A rerun of the day no longer finds it.
    NotFoundOnRerun,
    /// A later day's run linked the record (the other side booked it late).
    MatchedLater,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::BookedInLedger,
        Reason::ProcessorCorrected,
        Reason::Timing,
        Reason::WrittenOff,
        Reason::Refunded,
        Reason::DuplicateReversed,
        Reason::NotAnIssue,
        Reason::Other,
        Reason::NotFoundOnRerun,
        Reason::MatchedLater,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BookedInLedger => "booked_in_ledger",
            Reason::ProcessorCorrected => "processor_corrected",
            Reason::Timing => "timing",
            Reason::WrittenOff => "written_off",
            Reason::Refunded => "refunded",
            Reason::DuplicateReversed => "duplicate_reversed",
            Reason::NotAnIssue => "not_an_issue",
            Reason::Other => "other",
            Reason::NotFoundOnRerun => "not_found_on_rerun",
            Reason::MatchedLater => "matched_later",
        }
    }

    /// Set by recon itself, never by an operator.
    pub fn is_system(self) -> bool {
        matches!(self, Reason::NotFoundOnRerun | Reason::MatchedLater)
    }

    /// A resolution with this reason must say why in a note.
    pub fn needs_note(self) -> bool {
        matches!(self, Reason::Other | Reason::WrittenOff)
    }

    /// The reasons an operator may give, for messages.
    pub fn operator_list() -> String {
        Reason::ALL
            .iter()
            .filter(|r| !r.is_system())
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Reason::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown reason {s:?} (one of {})", Reason::operator_list()))
    }
}

/// What an operator does to an item.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Acknowledge,
    Assign { to: String },
    Comment { note: String },
    Resolve { reason: Reason, note: Option<String> },
    Reopen { note: Option<String> },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Assign { .. } => "assign",
            Action::Comment { .. } => "comment",
            Action::Resolve { .. } => "resolve",
            Action::Reopen { .. } => "reopen",
        }
    }

    /// Builds an action from its name and options (the CLI's and the CSV import's words), checking what
    /// each needs: `assign` a person, `comment` a note, `resolve` an operator's reason (and a note for
    /// `other` and `written_off`).
    pub fn parse(
        name: &str,
        reason: Option<&str>,
        note: Option<&str>,
        to: Option<&str>,
    ) -> Result<Action, String> {
        let note = note.map(str::trim).filter(|n| !n.is_empty()).map(str::to_string);
        match name.trim() {
            "ack" | "acknowledge" => Ok(Action::Acknowledge),
            "assign" => match to.map(str::trim).filter(|t| !t.is_empty()) {
                Some(t) => Ok(Action::Assign { to: t.to_string() }),
                None => Err("assign needs the person to assign to (--to WHO, or the to column)".into()),
            },
            "comment" => match note {
                Some(n) => Ok(Action::Comment { note: n }),
                None => Err("comment needs a note (--note TEXT, or the note column)".into()),
            },
            "resolve" => {
                let r = reason
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| format!("resolve needs a reason (one of {})", Reason::operator_list()))?;
                let reason: Reason = r.parse()?;
                if reason.is_system() {
                    return Err(format!(
                        "{reason} is recon's own reason, not an operator's (one of {})",
                        Reason::operator_list()
                    ));
                }
                if reason.needs_note() && note.is_none() {
                    return Err(format!("resolving as {reason} needs a note saying why (--note)"));
                }
                Ok(Action::Resolve { reason, note })
            }
            "reopen" => Ok(Action::Reopen { note }),
            other => Err(format!(
                "unknown action {other:?} (ack, assign, comment, resolve or reopen)"
            )),
        }
    }
}

/// Item rules: how long missing items stay match candidates, and escalation by age.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ItemRules {
    /// Days beyond the grace days that an open `missing_*` item stays a match candidate (default 30).
    pub lookback_days: u32,
    /// An item open this many days is at least HIGH (default 3).
    pub high_after_days: u32,
    /// An item open this many days is CRITICAL (default 7).
    pub critical_after_days: u32,
}

impl Default for ItemRules {
    fn default() -> Self {
        ItemRules {
            lookback_days: 30,
            high_after_days: 3,
            critical_after_days: 7,
        }
    }
}

impl ItemRules {
    /// The severity an item of `age_days` has reached by age alone, if any.
    pub fn escalation(&self, age_days: i64) -> Option<Severity> {
        if age_days >= i64::from(self.critical_after_days) {
            Some(Severity::Critical)
        } else if age_days >= i64::from(self.high_after_days) {
            Some(Severity::High)
        } else {
            None
        }
    }
}

/// The aging buckets of open items, in days since first seen.
pub const AGE_BUCKETS: [(&str, i64, i64); 5] = [
    ("0-1", 0, 1),
    ("2-3", 2, 3),
    ("4-7", 4, 7),
    ("8-30", 8, 30),
    ("over 30", 31, i64::MAX),
];

/// The bucket of an age in days (negative ages, an item first seen after the as-of date, count as 0-1).
pub fn age_bucket(age_days: i64) -> &'static str {
    AGE_BUCKETS
        .iter()
        .find(|(_, lo, hi)| age_days.max(0) >= *lo && age_days.max(0) <= *hi)
        .map(|b| b.0)
        .unwrap_or("over 30")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::testkit::{prec, row};

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 15).unwrap_or_default()
    }

    fn missing(p: bool) -> Discrepancy {
        if p {
            Discrepancy::of_processor(
                Category::MissingInLedger,
                &prec("ch_1", 100, 1),
                "raw/stripe/2025-01-15/f1/a.csv:2".into(),
                "x".into(),
                None,
            )
        } else {
            Discrepancy::of_ledger(
                Category::MissingInProcessor,
                &row("L1", Some("ch_1"), 100, 1),
                "raw/ledger/2025-01-15/f1/l.csv:2".into(),
                "x".into(),
                None,
            )
        }
    }

    /// Given a missing record reported on two days, when keyed, then both days give the same item; the two
    /// sides of one processor id are two items.
    #[test]
    fn a_missing_record_is_one_item_whatever_day_reports_it() {
        let other = date().succ_opt().unwrap_or_default();
        let k1 = item_key(Processor::Stripe, date(), &missing(true));
        assert_eq!(k1, item_key(Processor::Stripe, other, &missing(true)));
        assert_eq!(k1.as_deref(), Some("stripe|missing|p:ch_1"));
        assert_ne!(k1, item_key(Processor::Stripe, date(), &missing(false)));
        let mut pending = missing(true);
        pending.lifecycle = Lifecycle::Pending;
        assert_eq!(item_key(Processor::Stripe, date(), &pending), None);
    }

    /// Given an invalid record staged by two fetches, when keyed, then the fetch id does not change its key.
    #[test]
    fn an_invalid_record_keeps_its_key_across_fetches() {
        let inv = |fetch: &str| {
            let mut d = missing(true);
            d.category = Category::InvalidRecord;
            d.processor_id = None;
            d.processor_source = Some(format!("raw/stripe/2025-01-15/{fetch}/a.csv:7"));
            d.raw = Some("bad,row".into());
            // as the parsers write it: the message names the staged object, fetch id included
            d.details = format!("raw/stripe/2025-01-15/{fetch}/a.csv:7: amount \"1.234\" has 3 decimals");
            d
        };
        let a = item_key(Processor::Stripe, date(), &inv("f1"));
        assert_eq!(a, item_key(Processor::Stripe, date(), &inv("f2")));
        assert!(a.is_some_and(|k| k.starts_with("stripe|invalid|2025-01-15|stripe/2025-01-15/a.csv:7|")));
    }

    #[test]
    fn repeated_keys_in_one_run_are_numbered() {
        let mut d = missing(true);
        d.category = Category::Duplicate;
        let keys = item_keys(Processor::Stripe, date(), &[d.clone(), d]);
        assert_eq!(keys[0].as_deref(), Some("stripe|duplicate|2025-01-15|p:ch_1|l:"));
        assert_eq!(
            keys[1].as_deref(),
            Some("stripe|duplicate|2025-01-15|p:ch_1|l:#2")
        );
    }

    #[test]
    fn actions_check_what_they_need() {
        assert!(Action::parse("resolve", None, None, None).is_err());
        assert!(Action::parse("resolve", Some("other"), None, None).is_err());
        assert!(Action::parse("resolve", Some("written_off"), Some("  "), None).is_err());
        assert!(Action::parse("resolve", Some("matched_later"), None, None).is_err());
        assert_eq!(
            Action::parse("resolve", Some("timing"), None, None),
            Ok(Action::Resolve {
                reason: Reason::Timing,
                note: None
            })
        );
        assert!(Action::parse("assign", None, None, Some("")).is_err());
        assert!(Action::parse("comment", None, None, None).is_err());
        assert!(Action::parse("delete", None, None, None).is_err());
    }

    #[test]
    fn escalation_and_buckets_follow_the_rules() {
        let r = ItemRules::default();
        assert_eq!(r.escalation(2), None);
        assert_eq!(r.escalation(3), Some(Severity::High));
        assert_eq!(r.escalation(7), Some(Severity::Critical));
        assert_eq!(age_bucket(0), "0-1");
        assert_eq!(age_bucket(-2), "0-1");
        assert_eq!(age_bucket(3), "2-3");
        assert_eq!(age_bucket(30), "8-30");
        assert_eq!(age_bucket(31), "over 30");
    }
}
