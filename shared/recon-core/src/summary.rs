//! The run summary of spec section 8, exactly as `summary.json` and `recon run --format json` print it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Processor;
use crate::money::format_minor;
use crate::outcome::{DiscrepancyCounts, Outcome};
use crate::severity::Severity;

/// `succeeded` or `failed` (a run that is written is never `running` in a summary).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

/// One processor's run.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub processor: Processor,
    pub status: RunStatus,
    pub severity: Option<Severity>,
    pub processor_count: u64,
    pub ledger_count: u64,
    pub matched_count: u64,
    pub clean_count: u64,
    pub discrepancy_counts: DiscrepancyCounts,
    /// Exact decimal strings with the currency's exponent, non-zero totals only.
    pub total_discrepancy_amount: BTreeMap<String, String>,
    pub excluded_counts: BTreeMap<String, u64>,
    pub error: Option<String>,
    /// Records (both sides) dated outside the run date widened by the source's usual lag, with the
    /// earliest and latest of their dates (`YYYY-MM-DD`, UTC); reconciled into the run all the same.
    #[serde(default)]
    pub out_of_window_count: u64,
    #[serde(default)]
    pub out_of_window_earliest: Option<String>,
    #[serde(default)]
    pub out_of_window_latest: Option<String>,
    /// What the operator should know that is not a discrepancy: inbox entries not staged, with the reason.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Day over day (issue 15), for this processor's items as of the run's date: items this run reported
    /// first (its date's first report of them)...
    #[serde(default)]
    pub new_count: u64,
    /// ... open items first reported earlier ...
    #[serde(default)]
    pub still_open_count: u64,
    /// ... items resolved since the processor's previous run (by an operator, or by this run) ...
    #[serde(default)]
    pub resolved_since_last_count: u64,
    /// ... every open item (all dates): count and amount at stake per currency ...
    #[serde(default)]
    pub open_items: OpenItems,
    /// ... the oldest open item's age in days (since first seen), `null` when none is open ...
    #[serde(default)]
    pub oldest_open_age_days: Option<i64>,
    /// ... and items whose age raised their severity in this run (escalation rules): the email goes out for
    /// them even when the run alone would not alert.
    #[serde(default)]
    pub escalated_count: u64,
}

/// Open items: how many, and the amount at stake per currency (exact decimal strings).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct OpenItems {
    pub count: u64,
    pub amount: BTreeMap<String, String>,
}

/// `YYYY-MM-DD` (UTC) of a time in milliseconds since the epoch.
pub fn utc_date(ms: crate::model::Millis) -> String {
    // days to civil date (proleptic Gregorian), after Howard Hinnant's algorithm
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

impl RunSummary {
    pub fn succeeded(run_id: String, o: &Outcome) -> Self {
        RunSummary {
            run_id,
            processor: o.processor,
            status: RunStatus::Succeeded,
            severity: o.severity,
            processor_count: o.processor_count,
            ledger_count: o.ledger_count,
            matched_count: o.matched_count,
            clean_count: o.clean_count,
            discrepancy_counts: o.counts,
            total_discrepancy_amount: o
                .totals
                .iter()
                .map(|(c, v)| (c.code().to_string(), format_minor(*v, c.exponent())))
                .collect(),
            excluded_counts: o.excluded_counts.clone(),
            error: None,
            out_of_window_count: o.out_of_window.count,
            out_of_window_earliest: o.out_of_window.earliest.map(utc_date),
            out_of_window_latest: o.out_of_window.latest.map(utc_date),
            warnings: Vec::new(),
            new_count: 0,
            still_open_count: 0,
            resolved_since_last_count: 0,
            open_items: OpenItems::default(),
            oldest_open_age_days: None,
            escalated_count: 0,
        }
    }

    /// A failed run: zero counts, severity null, the error naming what failed.
    pub fn failed(run_id: String, processor: Processor, error: String) -> Self {
        RunSummary {
            run_id,
            processor,
            status: RunStatus::Failed,
            severity: None,
            processor_count: 0,
            ledger_count: 0,
            matched_count: 0,
            clean_count: 0,
            discrepancy_counts: DiscrepancyCounts::default(),
            total_discrepancy_amount: BTreeMap::new(),
            excluded_counts: BTreeMap::new(),
            error: Some(error),
            out_of_window_count: 0,
            out_of_window_earliest: None,
            out_of_window_latest: None,
            warnings: Vec::new(),
            new_count: 0,
            still_open_count: 0,
            resolved_since_last_count: 0,
            open_items: OpenItems::default(),
            oldest_open_age_days: None,
            escalated_count: 0,
        }
    }
}

/// The whole day.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DaySummary {
    pub date: String,
    pub runs: Vec<RunSummary>,
    /// Invalid ledger rows whose processor column could not be read.
    pub unattributed_invalid_records: u64,
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_736_899_200_000), "2025-01-15");
        assert_eq!(utc_date(1_736_899_200_000 - 1), "2025-01-14");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(-86_400_000), "1969-12-31");
    }
}
