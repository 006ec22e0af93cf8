//! The internal ledger export: CSV with header (UTF-8, optional BOM, CRLF or LF, quoted fields) or JSON Lines
//! with the same field names.
//!
//! `ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at`
//!
//! Over 400 lines: the CSV and JSON Lines readers share every field rule, and their tests (encodings, line
//! endings, quoting, bad fields) sit beside them.

use recon_core::{Currency, InvalidRecord, LedgerRow, Location, Money, NewLedgerRow, Processor, Side};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::text::{csv_with_header, for_each_row, raw_record, timestamp, BadRow, Row};
use crate::{Invalids, Keep, Parsed, SourceError};

/// A ledger row's fields as text, before validation.
struct Fields<'a> {
    ledger_id: &'a str,
    processor: &'a str,
    processor_txn_id: &'a str,
    order_id: &'a str,
    kind: &'a str,
    amount: &'a str,
    currency: &'a str,
    status: &'a str,
    booked_at: &'a str,
}

/// The failing field and why.
type Bad = (&'static str, String);

fn validate<'a>(f: &Fields<'a>, location: Location) -> Result<LedgerRow, (Option<Processor>, Bad)> {
    let processor: Option<Processor> = f.processor.parse().ok();
    let fail = |field: &'static str, why: String| (processor, (field, why));
    let Some(processor) = processor else {
        return Err((
            None,
            (
                "processor",
                format!("processor {:?} is not stripe, paypal or square", f.processor),
            ),
        ));
    };
    let ledger_id = crate::text::trim(f.ledger_id);
    if ledger_id.is_empty() {
        return Err(fail("ledger_id", "ledger_id is empty".into()));
    }
    let kind = crate::text::trim(f.kind).parse().map_err(|e| fail("type", e))?;
    let status = crate::text::trim(f.status)
        .parse()
        .map_err(|e| fail("status", e))?;
    let currency =
        Currency::parse(crate::text::trim(f.currency)).map_err(|e| fail("currency", e.to_string()))?;
    if crate::text::trim(f.currency) != currency.code() {
        return Err(fail(
            "currency",
            format!("currency {:?} must be an upper-case ISO 4217 code", f.currency),
        ));
    }
    let amount = Money::parse_major(f.amount, currency).map_err(|e| fail("amount", e.to_string()))?;
    let booked_at = match crate::text::trim(f.booked_at) {
        "" => None,
        t => Some(timestamp(t).map_err(|e| fail("booked_at", e))?),
    };
    let opt = |s: &'a str| {
        let s = crate::text::trim(s);
        (!s.is_empty()).then_some(s)
    };
    LedgerRow::new(NewLedgerRow {
        ledger_id,
        processor,
        processor_txn_id: opt(f.processor_txn_id),
        order_id: opt(f.order_id),
        kind,
        amount,
        status,
        booked_at,
        location,
    })
    .map_err(|e| match e {
        // (a ledger row has no fee or net: `Net` is a processor record's)
        recon_core::TooLarge::Line(_) | recon_core::TooLarge::Net { .. } => fail("row", e.to_string()),
        // the text is the three fields together: the longest is named
        recon_core::TooLarge::Text { .. } => {
            let fields = [
                ("ledger_id", ledger_id.len()),
                ("processor_txn_id", f.processor_txn_id.len()),
                ("order_id", f.order_id.len()),
            ];
            let longest = fields
                .iter()
                .max_by_key(|(_, n)| *n)
                .map_or("ledger_id", |(f, _)| *f);
            fail(longest, e.to_string())
        }
    })
}

fn invalid(location: Location, (field, reason): Bad, raw: String) -> InvalidRecord {
    InvalidRecord::new(Side::Ledger, location, field, reason, raw)
}

/// Parses a ledger CSV export held in memory.
pub fn parse_csv(key: &str, object: u32, text: &str) -> Result<Parsed, SourceError> {
    parse_csv_reader(key, object, text.as_bytes(), 0, Keep::Records)
}

/// Parses a ledger CSV export as a stream. Line numbers are 1-based lines of the file (the header is line 1).
pub fn parse_csv_reader<R: std::io::Read>(
    key: &str,
    object: u32,
    reader: R,
    expected_rows: usize,
    keep: Keep,
) -> Result<Parsed, SourceError> {
    let (rdr, cols) = csv_with_header(key, reader)?;
    let idx = [
        cols.require(key, "ledger_id")?,
        cols.require(key, "processor")?,
        cols.require(key, "processor_txn_id")?,
        cols.require(key, "order_id")?,
        cols.require(key, "type")?,
        cols.require(key, "amount")?,
        cols.require(key, "currency")?,
        cols.require(key, "status")?,
        cols.require(key, "booked_at")?,
    ];
    let mut out = Parsed::default();
    out.ledger.reserve(expected_rows);
    let ncols = cols.len();
    let ledger = &mut out.ledger;
    let mut counted = 0u64;
    let mut row = |rec: &Row<'_>, line: u64| -> Result<(), BadRow> {
        let location = Location { object, line };
        if rec.len() != ncols {
            let processor = rec.get(idx[1]).and_then(|p| p.parse().ok());
            let why = format!("has {} fields, the header has {}", rec.len(), ncols);
            return Err((processor, invalid(location, ("row", why), raw_record(rec))));
        }
        let g = |i: usize| rec.get(idx[i]).unwrap_or("");
        let fields = Fields {
            ledger_id: g(0),
            processor: g(1),
            processor_txn_id: g(2),
            order_id: g(3),
            kind: g(4),
            amount: g(5),
            currency: g(6),
            status: g(7),
            booked_at: g(8),
        };
        match validate(&fields, location) {
            Ok(row) => {
                keep.record(ledger, &mut counted, row);
                Ok(())
            }
            Err((p, bad)) => Err((p, invalid(location, bad, raw_record(rec)))),
        }
    };
    let processor_of = |rec: &Row<'_>| rec.get(idx[1]).and_then(|p| p.parse().ok());
    for_each_row(
        key,
        rdr,
        ncols,
        Side::Ledger,
        object,
        &mut Invalids {
            kept: &mut out.invalid,
            dropped: &mut out.dropped,
            keep,
        },
        &processor_of,
        &mut row,
    )?;
    out.dropped.records += counted;
    Ok(out)
}

#[derive(Deserialize)]
struct JsonRow<'a> {
    #[serde(borrow)]
    ledger_id: Option<&'a RawValue>,
    processor: Option<&'a RawValue>,
    processor_txn_id: Option<&'a RawValue>,
    order_id: Option<&'a RawValue>,
    #[serde(rename = "type")]
    kind: Option<&'a RawValue>,
    amount: Option<&'a RawValue>,
    currency: Option<&'a RawValue>,
    status: Option<&'a RawValue>,
    booked_at: Option<&'a RawValue>,
}

/// A JSON value as text: strings unquoted, numbers as written (never through a float), null as empty.
fn json_text(v: Option<&RawValue>) -> Result<String, String> {
    let Some(v) = v else { return Ok(String::new()) };
    let raw = v.get().trim();
    if raw == "null" {
        return Ok(String::new());
    }
    if raw.starts_with('"') {
        return serde_json::from_str::<String>(raw).map_err(|e| e.to_string());
    }
    if raw.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.') {
        return Ok(raw.to_string());
    }
    Err(format!("{raw} is not a string or a plain number"))
}

/// Parses ledger JSON Lines (one object per line; blank lines ignored). Line numbers are 1-based.
pub fn parse_jsonl(key: &str, object: u32, text: &str) -> Result<Parsed, SourceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let _ = key;
    let mut out = Parsed::default();
    for (n, line) in text.lines().enumerate() {
        let location = Location {
            object,
            line: n as u64 + 1,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row: JsonRow<'_> = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                out.invalid.push((
                    None,
                    invalid(
                        location,
                        ("row", format!("not a JSON object: {e}")),
                        line.to_string(),
                    ),
                ));
                continue;
            }
        };
        let texts: Result<Vec<String>, Bad> = [
            ("ledger_id", row.ledger_id),
            ("processor", row.processor),
            ("processor_txn_id", row.processor_txn_id),
            ("order_id", row.order_id),
            ("type", row.kind),
            ("amount", row.amount),
            ("currency", row.currency),
            ("status", row.status),
            ("booked_at", row.booked_at),
        ]
        .into_iter()
        .map(|(name, v)| json_text(v).map_err(|e| (name, e)))
        .collect();
        let t = match texts {
            Ok(t) => t,
            Err(bad) => {
                out.invalid.push((None, invalid(location, bad, line.to_string())));
                continue;
            }
        };
        let fields = Fields {
            ledger_id: &t[0],
            processor: &t[1],
            processor_txn_id: &t[2],
            order_id: &t[3],
            kind: &t[4],
            amount: &t[5],
            currency: &t[6],
            status: &t[7],
            booked_at: &t[8],
        };
        match validate(&fields, location) {
            Ok(r) => out.ledger.push(r),
            Err((p, bad)) => out.invalid.push((p, invalid(location, bad, line.to_string()))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_core::{LedgerStatus, LedgerType};

    const CSV: &str =
        "\u{feff}ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\r\n\
L-1,stripe,ch_1,ord_1,charge,125.00,USD,captured,2025-01-15T10:21:33Z\r\n\
L-2,stripe,re_1,\"ord_1, part\",refund,-20.00,USD,refunded,2025-01-15T11:02:00Z\r\n\
L-3,paypal,,ord_2,charge,1200,JPY,captured,2025-01-15T12:00:00Z\r\n\
L-4,stripe,ch_4,ord_4,charge,1.234,USD,captured,2025-01-15T12:00:00Z\r\n\
L-5,venmo,x,ord_5,charge,1.00,USD,captured,2025-01-15T12:00:00Z\r\n\
L-6,square,sq_6,ord_6,charge,0.125,KWD,captured,2025-01-15T12:00:00Z\r\n\
L-7,stripe,ch_7,ord_7,charge,,USD,captured,2025-01-15T12:00:00Z\r\n";

    #[test]
    fn parses_csv_with_bom_crlf_and_quotes() {
        let p = parse_csv("inbox/ledger/l.csv", 3, CSV).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.ledger.len(), 4);
        assert_eq!(p.ledger[0].amount().minor, 12500);
        assert_eq!(p.ledger[1].order_id().as_deref(), Some("ord_1, part"));
        assert_eq!(p.ledger[1].kind, LedgerType::Refund);
        assert_eq!(p.ledger[1].status, LedgerStatus::Refunded);
        assert_eq!(p.ledger[2].processor_txn_id(), None);
        assert_eq!(p.ledger[2].amount().minor, 1200);
        assert_eq!(p.ledger[3].amount().minor, 125);
        assert_eq!(p.ledger[3].amount().currency.code(), "KWD");
        assert_eq!(p.ledger[0].location(), Location { object: 3, line: 2 });
        let bad: Vec<_> = p
            .invalid
            .iter()
            .map(|(pr, i)| (*pr, i.location.line, i.field.clone()))
            .collect();
        assert_eq!(
            bad,
            vec![
                (Some(Processor::Stripe), 5, Some("amount".into())),
                (None, 6, Some("processor".into())),
                (Some(Processor::Stripe), 8, Some("amount".into())),
            ]
        );
        assert!(p.invalid[0].1.raw.contains("L-4"));
    }

    /// A row's ledger_id, processor_txn_id and order_id are kept in 65,535 bytes together: a longer row is
    /// an invalid record naming its longest field and the sizes, its neighbours are kept.
    #[test]
    fn a_row_with_more_text_than_a_row_keeps_is_reported() {
        let long = "o".repeat(70_000);
        let csv = format!(
            "ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n\
             L-1,stripe,ch_1,ord_1,charge,1.00,USD,captured,2025-06-02T00:00:00Z\n\
             L-2,stripe,ch_2,{long},charge,2.00,USD,captured,2025-06-02T00:00:01Z\n\
             L-3,stripe,ch_3,ord_3,charge,3.00,USD,captured,2025-06-02T00:00:02Z\n"
        );
        let p = parse_csv("k", 0, &csv).unwrap_or_else(|e| unreachable!("{e}"));
        let ids: Vec<String> = p.ledger.iter().map(|r| r.ledger_id().to_string()).collect();
        assert_eq!(ids, ["L-1", "L-3"]);
        assert_eq!(p.invalid.len(), 1);
        let (processor, bad) = &p.invalid[0];
        assert_eq!((*processor, bad.location.line), (Some(Processor::Stripe), 3));
        assert_eq!(bad.field.as_deref(), Some("order_id"));
        assert!(
            bad.reason.contains("70007 bytes") && bad.reason.contains("at most 65535"),
            "{}",
            bad.reason
        );
        assert!(bad.raw.contains("L-2"), "the row's text is kept");
    }

    #[test]
    fn parses_json_lines_with_numbers_kept_exact() {
        let text = "{\"ledger_id\":\"L-1\",\"processor\":\"stripe\",\"processor_txn_id\":\"ch_1\",\"order_id\":\"o\",\"type\":\"charge\",\"amount\":\"0.10\",\"currency\":\"USD\",\"status\":\"captured\",\"booked_at\":\"2025-01-15T10:21:33Z\"}\n\
{\"ledger_id\":\"L-2\",\"processor\":\"stripe\",\"processor_txn_id\":null,\"order_id\":\"o\",\"type\":\"charge\",\"amount\":1200,\"currency\":\"JPY\",\"status\":\"captured\",\"booked_at\":\"2025-01-15T10:21:33Z\"}\n\
{\"ledger_id\":\"L-3\", truncated\n";
        let p = parse_jsonl("k", 0, text).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.ledger.len(), 2);
        assert_eq!(p.ledger[0].amount().minor, 10);
        assert_eq!(p.ledger[1].amount().minor, 1200);
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].1.location.line, 3);
    }
}

#[cfg(test)]
mod quote_tests {
    use super::*;

    fn ledger(n: usize, broken: Option<usize>, eol: &str) -> String {
        let mut s = format!(
            "ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at{eol}"
        );
        for i in 0..n {
            let order = if Some(i) == broken {
                format!("\"ord_{i}")
            } else {
                format!("ord_{i}")
            };
            let p = ["stripe", "paypal", "square"][i % 3];
            s.push_str(&format!(
                "L{i},{p},txn_{i},{order},charge,1{i}.00,USD,captured,2025-01-15T10:00:00Z{eol}"
            ));
        }
        s
    }

    #[test]
    fn an_unbalanced_quote_costs_one_row_not_the_rest_of_the_file() {
        for eol in ["\n", "\r\n"] {
            let text = ledger(30, Some(5), eol);
            let p = parse_csv_reader("inbox/ledger/d/l.csv", 0, text.as_bytes(), 0, Keep::Records)
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(p.ledger.len(), 29, "{eol:?}: {:?}", p.invalid);
            assert_eq!(p.invalid.len(), 1, "{:#?}", p.invalid);
            let (processor, bad) = &p.invalid[0];
            assert_eq!(*processor, Some(Processor::Square), "row 5 is square's");
            assert_eq!(bad.location.line, 7, "header is line 1, row i is line i + 2");
            assert!(bad.raw.starts_with("L5,square,txn_5,\"ord_5"), "{}", bad.raw);
            assert!(bad.reason.contains("not closed"), "{}", bad.reason);
            let lines: Vec<u64> = p.ledger.iter().map(|r| r.location().line).collect();
            assert!(lines.contains(&8) && lines.contains(&31), "{lines:?}");
        }
    }

    #[test]
    fn two_unbalanced_quotes_and_a_legitimate_multiline_field() {
        let mut text = ledger(10, Some(2), "\n");
        text.push_str(
            "L98,stripe,txn_98,\"ord_98\nsecond line\",charge,1.00,USD,captured,2025-01-15T10:00:00Z\n",
        );
        text.push_str("L99,stripe,txn_99,\"ord_99,charge,1.00,USD,captured,2025-01-15T10:00:00Z\n");
        text.push_str("L100,square,txn_100,ord_100,charge,1.00,USD,captured,2025-01-15T10:00:00Z\n");
        let p = parse_csv_reader("k", 0, text.as_bytes(), 0, Keep::Records)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let ids: Vec<String> = p.ledger.iter().map(|r| r.ledger_id().to_string()).collect();
        assert!(
            ids.iter().any(|i| i == "L98"),
            "a quoted line break inside a valid row is kept"
        );
        assert!(ids.iter().any(|i| i == "L100"));
        assert_eq!(p.ledger.len(), 11, "{:?}", p.invalid);
        let bad_lines: Vec<u64> = p.invalid.iter().map(|(_, b)| b.location.line).collect();
        assert_eq!(bad_lines, vec![4, 14]);
        let l100 = p
            .ledger
            .iter()
            .find(|r| r.ledger_id() == "L100")
            .map(|r| r.location().line);
        assert_eq!(l100, Some(15));
    }
}

#[cfg(test)]
mod utf8_tests {
    use super::*;

    fn with_bad_byte_at_row(rows: usize, bad: usize) -> Vec<u8> {
        let mut s =
            b"ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n".to_vec();
        for i in 0..rows {
            let p = ["stripe", "paypal", "square"][i % 3];
            s.extend_from_slice(format!("L{i},{p},txn_{i},ord_").as_bytes());
            if i == bad {
                s.push(0xff);
            }
            s.extend_from_slice(format!("{i},charge,1.00,USD,captured,2025-01-15T10:00:00Z\n").as_bytes());
        }
        s
    }

    #[test]
    fn a_bad_byte_is_that_rows_problem_wherever_it_is() {
        // near the start (inside the detection head) and far past it: the same outcome
        for (rows, bad) in [(10, 4), (5_000, 4_000)] {
            let bytes = with_bad_byte_at_row(rows, bad);
            let (format, p) = crate::parse_object("inbox/ledger/d/l.csv", 0, &bytes)
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(format, crate::Format::LedgerCsv);
            assert_eq!(p.ledger.len(), rows - 1);
            assert_eq!(p.invalid.len(), 1);
            let (processor, inv) = &p.invalid[0];
            let want: Processor = ["stripe", "paypal", "square"][bad % 3]
                .parse()
                .unwrap_or(Processor::Stripe);
            assert_eq!(*processor, Some(want), "the row's own processor column");
            assert_eq!(inv.location.line, bad as u64 + 2);
            assert!(inv.reason.contains("not UTF-8"));
        }
    }
}
