//! What one run reconciles ([`RunInput`]) and how ([`RunConfig`]), and the date window its records are
//! expected in ([`window_lag`]).

use std::collections::BTreeMap;

use crate::carry::Carried;
use crate::model::{InvalidRecord, LedgerRow, Millis, Processor, ProcessorRecord};
use crate::money::Currency;
use crate::severity::SeverityConfig;

/// Matching configuration for a run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RunConfig {
    /// Later runs an unmatched item stays `pending` before becoming `missing_*` (0: report at once).
    pub grace_days: u32,
    /// Allowed absolute difference in minor units per currency before `amount_mismatch` (default 0).
    pub tolerance: BTreeMap<Currency, i64>,
    pub severity: SeverityConfig,
    /// How the run is computed: 1 reconciles it whole; more plans that many partitions, matches them
    /// independently and merges them ([`crate::partition`]), with the same outcome.
    pub partitions: u32,
    /// Start of the run date (UTC midnight, ms): records dated outside it (widened by [`window_lag`]) are
    /// counted in [`crate::Outcome::out_of_window`]. `None`: not checked.
    pub day_start: Option<Millis>,
    /// Items' lookback (how long open missing items stay match candidates) and escalation by age; used where
    /// runs are loaded and recorded.
    pub items: crate::item::ItemRules,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            grace_days: 1,
            tolerance: BTreeMap::new(),
            severity: SeverityConfig::default(),
            partitions: 1,
            day_start: None,
            items: crate::item::ItemRules::default(),
        }
    }
}

/// Everything one run reconciles. Ledger rows must be this processor's; records of every kind may be given
/// (non-reconciled kinds are counted in `excluded_counts`).
#[derive(Clone, Copy, Debug)]
pub struct RunInput<'a> {
    pub processor: Processor,
    /// Object keys that [`crate::Location::object`] indexes.
    pub objects: &'a [String],
    pub records: &'a [ProcessorRecord],
    pub ledger: &'a [LedgerRow],
    pub invalid: &'a [InvalidRecord],
    pub carried: &'a [Carried],
    pub config: &'a RunConfig,
}

pub(crate) const DAY_MS: Millis = 86_400_000;

/// Days before and after the run date that a source's records usually carry: `(before, after)`. A processor
/// record may be dated up to `before` days earlier than the day it settles on (PayPal settlement reports list
/// transactions initiated days before they settle; Stripe and Square report the day's activity with a day's
/// margin for time zones); ledger rows are booked up to two days late. `after` is a day everywhere (a
/// record stamped in a local time zone ahead of UTC).
pub fn window_lag(processor: Option<Processor>) -> (i64, i64) {
    match processor {
        Some(Processor::Paypal) => (3, 1),
        Some(Processor::Stripe) | Some(Processor::Square) => (1, 1),
        None => (2, 1),
    }
}

/// Is `at` inside the run date starting at `day_start`, widened by `lag`?
pub(crate) fn in_window(day_start: Millis, lag: (i64, i64), at: Millis) -> bool {
    at >= day_start - lag.0 * DAY_MS && at < day_start + (1 + lag.1) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_day_widened_by_the_lag() {
        let day = 20 * DAY_MS;
        let lag = window_lag(Some(Processor::Stripe));
        assert!(in_window(day, lag, day));
        assert!(in_window(day, lag, day - DAY_MS));
        assert!(!in_window(day, lag, day - DAY_MS - 1));
        assert!(in_window(day, lag, day + 2 * DAY_MS - 1));
        assert!(!in_window(day, lag, day + 2 * DAY_MS));
        assert!(in_window(
            day,
            window_lag(Some(Processor::Paypal)),
            day - 3 * DAY_MS
        ));
    }
}
