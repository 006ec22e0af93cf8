//! Severity rules (spec section 6): by amount at stake, with per-currency thresholds, plus category floors.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::Currency;

/// `LOW < MEDIUM < HIGH < CRITICAL`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "LOW" => Ok(Severity::Low),
            "MEDIUM" => Ok(Severity::Medium),
            "HIGH" => Ok(Severity::High),
            "CRITICAL" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (LOW, MEDIUM, HIGH or CRITICAL)"
            )),
        }
    }
}

/// Amount thresholds in *major* units: at or above `medium`, `high`, `critical`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Thresholds {
    pub medium: i64,
    pub high: i64,
    pub critical: i64,
}

/// Severity configuration: default thresholds, the multiplier for zero-decimal currencies and overrides.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SeverityConfig {
    pub default: Thresholds,
    /// Zero-decimal (JPY-like) currencies use thresholds multiplied by this (default 100).
    pub zero_decimal_multiplier: i64,
    pub per_currency: BTreeMap<Currency, Thresholds>,
}

impl Default for SeverityConfig {
    fn default() -> Self {
        SeverityConfig {
            default: Thresholds {
                medium: 100,
                high: 1_000,
                critical: 10_000,
            },
            zero_decimal_multiplier: 100,
            per_currency: BTreeMap::new(),
        }
    }
}

impl SeverityConfig {
    /// Severity of `minor` units at stake in `currency` by amount alone.
    pub fn by_amount(&self, minor: i64, currency: Currency) -> Severity {
        let t = match self.per_currency.get(&currency) {
            Some(t) => *t,
            None if currency.exponent() == 0 => {
                let m = self.zero_decimal_multiplier;
                Thresholds {
                    medium: self.default.medium.saturating_mul(m),
                    high: self.default.high.saturating_mul(m),
                    critical: self.default.critical.saturating_mul(m),
                }
            }
            None => self.default,
        };
        let scale = 10_i64.saturating_pow(u32::from(currency.exponent()));
        let at = |major: i64| minor >= major.saturating_mul(scale);
        if at(t.critical) {
            Severity::Critical
        } else if at(t.high) {
            Severity::High
        } else if at(t.medium) {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::parse(c).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn thresholds_scale_with_the_currency() {
        let s = SeverityConfig::default();
        assert_eq!(s.by_amount(9_999, cur("USD")), Severity::Low);
        assert_eq!(s.by_amount(10_000, cur("USD")), Severity::Medium);
        assert_eq!(s.by_amount(100_000, cur("USD")), Severity::High);
        assert_eq!(s.by_amount(1_000_000, cur("USD")), Severity::Critical);
        assert_eq!(s.by_amount(9_999, cur("JPY")), Severity::Low);
        assert_eq!(s.by_amount(10_000, cur("JPY")), Severity::Medium);
        assert_eq!(s.by_amount(1_000_000, cur("JPY")), Severity::Critical);
        assert_eq!(s.by_amount(100_000, cur("KWD")), Severity::Medium);
    }

    #[test]
    fn per_currency_overrides_apply() {
        let mut s = SeverityConfig::default();
        s.per_currency.insert(
            cur("EUR"),
            Thresholds {
                medium: 1,
                high: 2,
                critical: 3,
            },
        );
        assert_eq!(s.by_amount(250, cur("EUR")), Severity::High);
    }
}
