//! The run summary of spec section 8, exactly as `summary.json` and `recon run --format json` print it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Processor;
use crate::money::format_minor;
use crate::reconcile::{DiscrepancyCounts, Outcome};
use crate::severity::Severity;

/// `succeeded` or `failed` (a run that is written is never `running` in a summary).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
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
