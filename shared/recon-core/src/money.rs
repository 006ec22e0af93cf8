//! Exact money: ISO 4217 currencies with their exponents, amounts as signed integer minor units.
//!
//! Every wire form (Stripe/Square minor-unit integers, PayPal and ledger decimal strings, PayPal STL
//! hundredths) is converted to minor units of the currency's ISO 4217 exponent without any floating point;
//! a value that cannot be represented exactly is an error, never rounded.
//!
//! Over 400 lines: the ISO 4217 table and every wire form's conversion belong together, tests beside them.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why an amount or currency could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("unknown currency code {0:?} (expected an ISO 4217 code such as USD)")]
    UnknownCurrency(String),
    #[error("amount {0:?} is not a decimal number")]
    NotANumber(String),
    #[error("amount {text:?} has {decimals} decimals but {currency} allows at most {exponent}")]
    TooManyDecimals {
        text: String,
        decimals: u32,
        currency: Currency,
        exponent: u8,
    },
    #[error("amount {0:?} is out of range")]
    OutOfRange(String),
    #[error("{what} {value} is not a whole number of {currency} minor units")]
    Inexact {
        what: &'static str,
        value: i64,
        currency: Currency,
    },
}

/// ISO 4217 codes with exponent 0 (zero-decimal).
const ZERO: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF",
    "XOF", "XPF",
];
/// ISO 4217 codes with exponent 3.
const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
/// ISO 4217 codes with exponent 4.
const FOUR: &[&str] = &["CLF", "UYW"];
/// ISO 4217 codes with exponent 2 (every other active currency).
const TWO: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BMD",
    "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CNY",
    "COP", "COU", "CRC", "CUC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD",
    "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS",
    "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD",
    "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB",
    "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS", "VED",
    "VES", "WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// Every code with its exponent, sorted by code (built once).
fn table() -> &'static [([u8; 3], u8)] {
    static TABLE: std::sync::OnceLock<Vec<([u8; 3], u8)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut v: Vec<([u8; 3], u8)> = Vec::new();
        for (list, e) in [(ZERO, 0u8), (TWO, 2), (THREE, 3), (FOUR, 4)] {
            for c in list {
                let b = c.as_bytes();
                if b.len() == 3 {
                    v.push(([b[0], b[1], b[2]], e));
                }
            }
        }
        v.sort_unstable();
        v
    })
}

/// Exponent by code, indexed by the code's three letters in base 26 (`u8::MAX`: not a currency); built once.
fn direct() -> &'static [u8] {
    static DIRECT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DIRECT.get_or_init(|| {
        let mut v = vec![u8::MAX; 26 * 26 * 26];
        for (c, e) in table() {
            if c.iter().all(u8::is_ascii_uppercase) {
                let slot = |x: u8| usize::from(x - b'A');
                if let Some(d) = v.get_mut((slot(c[0]) * 26 + slot(c[1])) * 26 + slot(c[2])) {
                    *d = *e;
                }
            }
        }
        v
    })
}

/// An ISO 4217 currency: its upper-case code and its exponent (decimal places of the minor unit).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// Looks a code up in the ISO 4217 table; case-insensitive (`usd` and `USD` are the same currency).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let b = code.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(MoneyError::UnknownCurrency(code.to_string()));
        }
        let up = [
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ];
        // every row of a report names its currency: one table lookup, no search
        let slot = |c: u8| usize::from(c - b'A');
        let i = (slot(up[0]) * 26 + slot(up[1])) * 26 + slot(up[2]);
        match direct().get(i).copied() {
            Some(e) if e != u8::MAX => Ok(Currency {
                code: up,
                exponent: e,
            }),
            _ => Err(MoneyError::UnknownCurrency(code.to_string())),
        }
    }

    /// The upper-case ISO code.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// The ISO 4217 exponent (0 for JPY, 2 for USD, 3 for KWD).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Every currency this table knows, for tests.
    pub fn all() -> impl Iterator<Item = Currency> {
        ZERO.iter()
            .chain(TWO)
            .chain(THREE)
            .chain(FOUR)
            .filter_map(|c| Currency::parse(c).ok())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

const POW10: [i64; 19] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
];

/// An exact amount: signed minor units of `currency` (ISO exponent).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Parses a signed decimal string in major units (`"125.00"`, `"-20"`, `"1200"`), with at most the
    /// currency's exponent of decimals. Leading `+`, surrounding spaces are accepted; exponents, thousands
    /// separators and empty strings are not.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        parse_scaled(text, currency, currency.exponent, "amount").map(|minor| Money { minor, currency })
    }

    /// Converts an integer in units of 10^-`wire_exponent` (a processor's own minor units) exactly.
    pub fn from_scaled(value: i64, wire_exponent: u8, currency: Currency) -> Result<Self, MoneyError> {
        let e = currency.exponent;
        let minor = if wire_exponent == e {
            Some(value)
        } else if wire_exponent < e {
            value.checked_mul(POW10[usize::from(e - wire_exponent)])
        } else {
            let d = POW10[usize::from(wire_exponent - e)];
            if value % d != 0 {
                return Err(MoneyError::Inexact {
                    what: "amount",
                    value,
                    currency,
                });
            }
            Some(value / d)
        };
        minor
            .map(|m| Money { minor: m, currency })
            .ok_or(MoneyError::OutOfRange(value.to_string()))
    }

    pub fn abs(self) -> Self {
        Money {
            minor: self.minor.saturating_abs(),
            currency: self.currency,
        }
    }

    /// The exact value as a `Decimal` with the currency's scale (for SQL `numeric`).
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.minor, u32::from(self.currency.exponent))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_minor(i128::from(self.minor), self.currency.exponent))
    }
}

/// Formats minor units as a decimal string with exactly `exponent` decimals (`12345, 2` -> `"123.45"`).
pub fn format_minor(minor: i128, exponent: u8) -> String {
    let neg = minor < 0;
    let digits = minor.unsigned_abs().to_string();
    let e = usize::from(exponent);
    let body = if e == 0 {
        digits
    } else if digits.len() > e {
        format!("{}.{}", &digits[..digits.len() - e], &digits[digits.len() - e..])
    } else {
        format!("0.{}{}", "0".repeat(e - digits.len()), digits)
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// Parses decimal `text` into an integer scaled by 10^`scale`; at most `scale` decimals.
pub fn parse_scaled(
    text: &str,
    currency: Currency,
    scale: u8,
    _what: &'static str,
) -> Result<i64, MoneyError> {
    let t = crate::model::trim(text);
    let bytes = t.as_bytes();
    let (neg, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let nan = || MoneyError::NotANumber(text.to_string());
    if rest.is_empty() {
        return Err(nan());
    }
    let (int_part, frac_part) = match rest.iter().position(|&b| b == b'.') {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(nan());
    }
    if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return Err(nan());
    }
    if frac_part.len() > usize::from(scale) {
        return Err(MoneyError::TooManyDecimals {
            text: text.to_string(),
            decimals: u32::try_from(frac_part.len()).unwrap_or(u32::MAX),
            currency,
            exponent: scale,
        });
    }
    let range = || MoneyError::OutOfRange(text.to_string());
    let mut v: i64 = 0;
    for &d in int_part.iter().chain(frac_part) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or_else(range)?;
    }
    let pad = usize::from(scale) - frac_part.len();
    v = v.checked_mul(POW10[pad]).ok_or_else(range)?;
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::parse(c).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(cur("JPY").exponent(), 0);
        assert_eq!(cur("usd").exponent(), 2);
        assert_eq!(cur("KWD").exponent(), 3);
        assert_eq!(cur("ISK").exponent(), 0);
        assert_eq!(cur("CLF").exponent(), 4);
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("US").is_err());
    }

    #[test]
    fn parses_major_units_exactly() {
        assert_eq!(
            Money::parse_major("125.00", cur("USD")),
            Ok(Money::new(12500, cur("USD")))
        );
        assert_eq!(
            Money::parse_major("-20", cur("USD")),
            Ok(Money::new(-2000, cur("USD")))
        );
        assert_eq!(
            Money::parse_major("1200", cur("JPY")),
            Ok(Money::new(1200, cur("JPY")))
        );
        assert_eq!(
            Money::parse_major("1.234", cur("KWD")),
            Ok(Money::new(1234, cur("KWD")))
        );
        assert_eq!(
            Money::parse_major("0.1", cur("USD")),
            Ok(Money::new(10, cur("USD")))
        );
        assert!(matches!(
            Money::parse_major("1.5", cur("JPY")),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert!(Money::parse_major("", cur("USD")).is_err());
        assert!(Money::parse_major("1e3", cur("USD")).is_err());
        assert!(Money::parse_major("1,000.00", cur("USD")).is_err());
        assert!(Money::parse_major("99999999999999999999", cur("USD")).is_err());
    }

    #[test]
    fn converts_processor_minor_units() {
        // Stripe ISK is two-decimal on the wire, zero-decimal in ISO.
        assert_eq!(
            Money::from_scaled(10000, 2, cur("ISK")),
            Ok(Money::new(100, cur("ISK")))
        );
        assert!(Money::from_scaled(150, 2, cur("ISK")).is_err());
        // PayPal STL: hundredths for every currency, JPY included.
        assert_eq!(
            Money::from_scaled(120000, 2, cur("JPY")),
            Ok(Money::new(1200, cur("JPY")))
        );
        assert_eq!(
            Money::from_scaled(1234, 3, cur("KWD")),
            Ok(Money::new(1234, cur("KWD")))
        );
        assert_eq!(
            Money::from_scaled(5, 2, cur("KWD")),
            Ok(Money::new(50, cur("KWD")))
        );
    }

    #[test]
    fn formats_with_the_currency_exponent() {
        assert_eq!(Money::new(123456, cur("USD")).to_string(), "1234.56");
        assert_eq!(Money::new(-5, cur("USD")).to_string(), "-0.05");
        assert_eq!(Money::new(1200, cur("JPY")).to_string(), "1200");
        assert_eq!(Money::new(1, cur("KWD")).to_string(), "0.001");
        assert_eq!(Money::new(12500, cur("USD")).to_decimal().to_string(), "125.00");
    }
}
