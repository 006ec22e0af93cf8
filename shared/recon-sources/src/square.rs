//! Square: `GET /v2/payments` and `GET /v2/refunds` pages. Amounts are int64 in ISO minor units; Money
//! carries `currency` (payments) or `currency_code` (payouts). Refunds arrive positive and are negated.
//! Keys: the payment or refund id (a refund's `payment_id` is its parent's and is never a key). Reference:
//! `reference_id`, then `order_id`.

use recon_core::{
    Currency, InvalidRecord, Kind, Location, Money, NewRecord, Processor, ProcessorRecord, ProcessorStatus,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::text::timestamp;
use crate::{Parsed, SourceError};

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    payments: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    refunds: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct MoneyJson {
    amount: i64,
    currency: Option<String>,
    currency_code: Option<String>,
}

#[derive(Deserialize)]
struct Fee {
    amount_money: MoneyJson,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    created_at: Option<String>,
    status: Option<String>,
    total_money: Option<MoneyJson>,
    amount_money: Option<MoneyJson>,
    #[serde(default)]
    processing_fee: Vec<Fee>,
    reference_id: Option<String>,
    order_id: Option<String>,
}

fn bad(location: Location, field: &str, reason: String, raw: String) -> (Option<Processor>, InvalidRecord) {
    crate::bad(Processor::Square, location, field, reason, raw)
}

fn money(m: &MoneyJson) -> Result<Money, String> {
    let code = m
        .currency
        .as_deref()
        .or(m.currency_code.as_deref())
        .ok_or("no currency")?;
    let c = Currency::parse(code).map_err(|e| e.to_string())?;
    Ok(Money::new(m.amount, c))
}

fn status_of(refund: bool, s: Option<&str>) -> Result<ProcessorStatus, String> {
    match (refund, s.unwrap_or("")) {
        (_, "COMPLETED") => Ok(ProcessorStatus::Succeeded),
        (false, "APPROVED") | (_, "PENDING") => Ok(ProcessorStatus::Pending),
        (false, "CANCELED") => Ok(ProcessorStatus::Canceled),
        (_, "FAILED") | (true, "REJECTED") => Ok(ProcessorStatus::Failed),
        (_, other) => Err(format!(
            "status {other:?} is not a Square {} status",
            if refund { "refund" } else { "payment" }
        )),
    }
}

/// Parses one ListPayments or ListPaymentRefunds page as received (`{}` is an empty page).
pub fn parse_page(key: &str, object: u32, text: &str) -> Result<Parsed, SourceError> {
    let page: Page<'_> = serde_json::from_str(text).map_err(|e| {
        SourceError::new(
            key,
            format!("not a complete Square page ({e}); the download may be truncated: fetch it again"),
        )
    })?;
    let mut out = Parsed::default();
    let items = page
        .payments
        .iter()
        .flatten()
        .map(|r| (false, r))
        .chain(page.refunds.iter().flatten().map(|r| (true, r)));
    for (i, (refund, raw)) in items.enumerate() {
        let location = Location {
            object,
            line: i as u64,
        };
        let raw_text = || raw.get().to_string();
        let it: Item = match serde_json::from_str(raw.get()) {
            Ok(v) => v,
            Err(e) => {
                out.invalid.push(bad(
                    location,
                    if refund { "refunds" } else { "payments" },
                    e.to_string(),
                    raw_text(),
                ));
                continue;
            }
        };
        let field = if refund { "amount_money" } else { "total_money" };
        let m = if refund {
            it.amount_money.as_ref()
        } else {
            it.total_money.as_ref().or(it.amount_money.as_ref())
        };
        let amount = match m.ok_or_else(|| format!("{field} is missing")).and_then(money) {
            Ok(a) if refund => match a.minor.checked_neg() {
                Some(minor) => Money::new(minor, a.currency),
                None => {
                    let why = format!("{} {} cannot be negated: check the export", a.minor, a.currency);
                    out.invalid.push(bad(location, field, why, raw_text()));
                    continue;
                }
            },
            Ok(a) => a,
            Err(e) => {
                out.invalid.push(bad(location, field, e, raw_text()));
                continue;
            }
        };
        // every fee in the payment's currency, summed in checked arithmetic; refunds return processing fees
        // as negative amounts; the first fee that cannot be kept makes the whole record invalid (never a record
        // and an invalid record both)
        let range =
            || "the processing fees or the net amount are beyond the range recon can hold: check the export";
        let mut fee = Ok(0i64);
        for f in &it.processing_fee {
            fee = fee.and_then(|sum: i64| match money(&f.amount_money) {
                Ok(m) if m.currency == amount.currency => sum.checked_add(m.minor).ok_or_else(|| range().to_string()),
                Ok(m) => Err(format!(
                    "fee in {} on a {} payment: recon keeps a fee in the payment's currency only; check the payment in Square",
                    m.currency, amount.currency
                )),
                Err(e) => Err(e),
            });
        }
        let fee_net = fee.and_then(|fee| {
            let fee = if refund { fee.checked_neg() } else { Some(fee) };
            fee.and_then(|fee| amount.minor.checked_sub(fee).map(|net| (fee, net)))
                .ok_or_else(|| range().to_string())
        });
        let (fee, net) = match fee_net {
            Ok(v) => v,
            Err(why) => {
                out.invalid.push(bad(location, "processing_fee", why, raw_text()));
                continue;
            }
        };
        let status = match status_of(refund, it.status.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                out.invalid.push(bad(location, "status", e, raw_text()));
                continue;
            }
        };
        let occurred_at = match it.created_at.as_deref().map(timestamp).transpose() {
            Ok(t) => t,
            Err(e) => {
                out.invalid.push(bad(location, "created_at", e, raw_text()));
                continue;
            }
        };
        // candidate references: reference_id (the seller's own), then order_id
        let mut refs = [it.reference_id.as_deref(), it.order_id.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let reference = refs.next();
        let others: Vec<&str> = refs.filter(|r| Some(*r) != reference).collect();
        let record = ProcessorRecord::new(NewRecord {
            id: &it.id,
            keys: &[it.id.as_str()],
            reference,
            other_references: &others,
            kind: if refund { Kind::Refund } else { Kind::Charge },
            amount,
            fee: (!it.processing_fee.is_empty()).then_some(fee),
            net: (!it.processing_fee.is_empty()).then_some(net),
            status,
            occurred_at,
            location,
        });
        out.keep_packed(record, |why| bad(location, "id", why, raw_text()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payment with a fee in another currency is one invalid record and no record (it was both); fees
    /// whose sum or net amount no i64 holds, and a refund amount that cannot be negated, are invalid records,
    /// never wrapped figures.
    #[test]
    fn fees_in_another_currency_or_beyond_range_make_one_invalid_record() {
        let page = r#"{"payments":[
{"id":"fx1","created_at":"2021-10-13T19:34:33.524Z","total_money":{"amount":555,"currency":"USD"},"processing_fee":[{"amount_money":{"amount":34,"currency":"EUR"}},{"amount_money":{"amount":5,"currency":"GBP"}}],"status":"COMPLETED"},
{"id":"sum1","created_at":"2021-10-13T19:34:33.524Z","total_money":{"amount":555,"currency":"USD"},"processing_fee":[{"amount_money":{"amount":9223372036854775807,"currency":"USD"}},{"amount_money":{"amount":9223372036854775807,"currency":"USD"}}],"status":"COMPLETED"},
{"id":"net1","created_at":"2021-10-13T19:34:33.524Z","total_money":{"amount":-9223372036854775807,"currency":"USD"},"processing_fee":[{"amount_money":{"amount":2,"currency":"USD"}}],"status":"COMPLETED"},
{"id":"ok1","created_at":"2021-10-13T19:34:33.524Z","total_money":{"amount":100,"currency":"USD"},"processing_fee":[{"amount_money":{"amount":3,"currency":"USD"}}],"status":"COMPLETED"}],
"refunds":[{"id":"r1","status":"COMPLETED","amount_money":{"amount":-9223372036854775808,"currency":"USD"},"created_at":"2021-10-14T10:00:00.000Z"}]}"#;
        let p = parse_page("k", 0, page).unwrap_or_else(|e| unreachable!("{e}"));
        let ids: Vec<String> = p.records.iter().map(|r| r.id().to_string()).collect();
        assert_eq!(ids, ["ok1"]);
        assert_eq!((p.records[0].fee(), p.records[0].net()), (Some(3), Some(97)));
        let fields: Vec<(u64, Option<&str>)> = p
            .invalid
            .iter()
            .map(|(_, i)| (i.location.line, i.field.as_deref()))
            .collect();
        assert_eq!(
            fields,
            [
                (0, Some("processing_fee")),
                (1, Some("processing_fee")),
                (2, Some("processing_fee")),
                (4, Some("amount_money"))
            ],
            "{:?}",
            p.invalid
        );
    }

    #[test]
    fn payments_and_refunds() {
        let payments = r#"{"payments":[{"id":"bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY","created_at":"2021-10-13T19:34:33.524Z","updated_at":"2021-10-13T19:34:37.261Z","amount_money":{"amount":555,"currency":"USD"},"total_money":{"amount":555,"currency":"USD"},"approved_money":{"amount":555,"currency":"USD"},"processing_fee":[{"effective_at":"2021-10-13T21:34:35.000Z","type":"INITIAL","amount_money":{"amount":34,"currency":"USD"}}],"status":"COMPLETED","source_type":"CARD","card_details":{"status":"CAPTURED"},"location_id":"L88917AVBK2S5","order_id":"d7eKah653Z579f3gVtjlxpSlmUcZY","reference_id":"A10023"},
{"id":"jpy1","created_at":"2021-10-13T20:00:00.000Z","total_money":{"amount":1200,"currency":"JPY"},"status":"FAILED","order_id":"o-jp"},
{"id":"bad1","created_at":"2021-10-13T20:00:00.000Z","total_money":{"amount":1,"currency":"ZZZ"},"status":"COMPLETED"}],"cursor":"abc"}"#;
        let p = parse_page("k", 0, payments).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 2);
        assert_eq!(
            (
                p.records[0].amount().minor,
                p.records[0].fee(),
                p.records[0].net()
            ),
            (555, Some(34), Some(521))
        );
        assert_eq!(p.records[0].reference().as_deref(), Some("A10023"));
        assert_eq!(p.records[1].status, ProcessorStatus::Failed);
        assert_eq!(p.records[1].reference().as_deref(), Some("o-jp"));
        assert_eq!(p.invalid.len(), 1);
        let refunds = r#"{"refunds":[{"id":"bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY_r1","status":"COMPLETED","amount_money":{"amount":100,"currency":"USD"},"processing_fee":[{"amount_money":{"amount":-6,"currency":"USD"}}],"payment_id":"bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY","order_id":"d7eK","created_at":"2021-10-14T10:00:00.000Z","location_id":"L1"}]}"#;
        let r = parse_page("k", 0, refunds).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (r.records[0].kind, r.records[0].amount().minor),
            (Kind::Refund, -100)
        );
        assert_eq!(
            r.records[0].keys().iter().collect::<Vec<_>>(),
            ["bP9mAsEMYPUGjjGNaNO5ZDVyLhSZY_r1"]
        );
        assert!(parse_page("k", 0, "{}")
            .map(|p| p.records.is_empty())
            .unwrap_or(false));
        assert!(parse_page("k", 0, r#"{"payments":[{"id":"x""#).is_err());
    }
}
