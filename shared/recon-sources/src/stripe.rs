//! Stripe: balance-transaction API pages (`GET /v1/balance_transactions`, plain or expanded `source`) and the
//! itemized balance-change / payout reconciliation report CSVs (columns located by header name, major units).
//!
//! Match keys, best first: the source (`ch_`/`py_`/`re_`/`dp_`), the `txn_` id, for disputes the disputed
//! charge (ledgers often book a chargeback against the charge), for charges the payment intent (`pi_`).
//! A refund's parent charge is never a key.
//!
//! Over 400 lines: both Stripe formats share the kind table and the key rules, and the tests of their edge
//! cases (every balance transaction type, failures, disputes, metadata references) sit beside them.

use recon_core::{
    Currency, InvalidRecord, Kind, Location, Money, NewRecord, Processor, ProcessorRecord, ProcessorStatus,
    Side,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::text::{csv_with_header, for_each_row, raw_record, timestamp, BadRow, Row};
use crate::{Invalids, Keep, Parsed, SourceError};

/// Stripe's own minor-unit exponent for a currency (differs from ISO for ISK, MGA, ...).
pub fn stripe_exponent(c: Currency) -> u8 {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF",
        "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];
    if ZERO.contains(&c.code()) {
        0
    } else if THREE.contains(&c.code()) {
        3
    } else {
        2
    }
}

/// Kind from `reporting_category` (preferred) or `type` (and, for the old `adjustment` type of disputes, the
/// `dp_` source). The table is in the README ("Stripe balance transactions").
pub fn kind_of(reporting_category: Option<&str>, txn_type: Option<&str>) -> Kind {
    kind_of_source(reporting_category, txn_type, "")
}

/// [`kind_of`], knowing the source id.
pub fn kind_of_source(reporting_category: Option<&str>, txn_type: Option<&str>, source: &str) -> Kind {
    match reporting_category
        .map(crate::text::trim)
        .filter(|s| !s.is_empty())
    {
        // a charge_failure reverses a charge (negative), a refund_failure a refund (positive): both are
        // money the ledger must know of, linked by their shared source id, sign and amount
        Some("charge" | "charge_failure") => Kind::Charge,
        Some("refund" | "refund_failure") => Kind::Refund,
        Some("dispute" | "dispute_reversal") => Kind::Dispute,
        Some("payout" | "payout_reversal") => Kind::Payout,
        Some("fee" | "network_cost" | "tax" | "platform_earning" | "platform_earning_refund") => Kind::Fee,
        Some("other_adjustment" | "partial_capture_reversal") => Kind::Adjustment,
        Some("topup" | "topup_reversal") => Kind::Funding,
        Some("transfer" | "transfer_reversal" | "connect_collection_transfer") => Kind::Transfer,
        Some(
            "risk_reserved_funds"
            | "connect_reserved_funds"
            | "issuing_authorization_hold"
            | "issuing_authorization_release",
        ) => Kind::Hold,
        Some(_) => Kind::Other,
        None => match txn_type.unwrap_or("") {
            "charge" | "payment" | "payment_failure_refund" | "payment_reversal" => Kind::Charge,
            "refund" | "payment_refund" | "refund_failure" => Kind::Refund,
            "adjustment" if source.starts_with("dp_") => Kind::Dispute,
            "adjustment" => Kind::Adjustment,
            "payout" | "payout_cancel" | "payout_failure" => Kind::Payout,
            "stripe_fee" | "stripe_fx_fee" | "application_fee" | "application_fee_refund" | "tax_fee" => {
                Kind::Fee
            }
            "transfer"
            | "transfer_cancel"
            | "transfer_failure"
            | "transfer_refund"
            | "connect_collection_transfer" => Kind::Transfer,
            "topup" | "topup_reversal" => Kind::Funding,
            "reserve_transaction"
            | "reserved_funds"
            | "payment_network_reserve_hold"
            | "payment_network_reserve_release"
            | "payout_minimum_balance_hold"
            | "payout_minimum_balance_release"
            | "issuing_authorization_hold"
            | "issuing_authorization_release" => Kind::Hold,
            _ => Kind::Other,
        },
    }
}

static METADATA_KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Sets the metadata keys tried as references after `order_id` (the `STRIPE_REFERENCE_METADATA_KEYS`
/// setting), once per process, before the first parse; later calls change nothing.
pub fn set_reference_metadata_keys(extra: &[String]) {
    let _ = METADATA_KEYS.set(with_order_id(extra));
}

fn with_order_id(extra: &[String]) -> Vec<String> {
    let mut keys = vec!["order_id".to_string()];
    for k in extra.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        if !keys.iter().any(|x| x == k) {
            keys.push(k.to_string());
        }
    }
    keys
}

/// The metadata keys whose values are candidate references, best first: `order_id`, then those set by
/// [`set_reference_metadata_keys`].
pub fn reference_metadata_keys() -> &'static [String] {
    METADATA_KEYS.get_or_init(|| with_order_id(&[]))
}

/// `f` of the first candidate reference and the others without repeats of the first (up to 8 on the
/// stack, more in a vector).
fn with_refs<'a, T>(
    mut refs: impl Iterator<Item = &'a str>,
    f: impl FnOnce(Option<&'a str>, &[&'a str]) -> T,
) -> T {
    let first = refs.next();
    let mut kept: [&str; 8] = [""; 8];
    let mut n = 0usize;
    let mut more: Vec<&str> = Vec::new();
    for r in refs.filter(|r| Some(*r) != first) {
        if n < kept.len() {
            kept[n] = r;
            n += 1;
        } else {
            if more.is_empty() {
                more.extend_from_slice(&kept);
            }
            more.push(r);
        }
    }
    if more.is_empty() {
        f(first, &kept[..n])
    } else {
        f(first, &more)
    }
}

/// The record's keys, best first (repeats are dropped when it is packed).
fn keys<'a>(
    source: &'a str,
    txn: &'a str,
    disputed_charge: Option<&'a str>,
    intent: Option<&'a str>,
    kind: Kind,
) -> ([&'a str; 4], usize) {
    let disputed = if kind == Kind::Dispute {
        disputed_charge
    } else {
        None
    };
    let intent = if kind == Kind::Charge { intent } else { None };
    let mut parts: [&str; 4] = [source, txn, "", ""];
    let mut n = 2;
    for k in [disputed, intent].into_iter().flatten() {
        parts[n] = k;
        n += 1;
    }
    (parts, n)
}

fn bad(location: Location, field: &str, reason: String, raw: String) -> (Option<Processor>, InvalidRecord) {
    crate::bad(Processor::Stripe, location, field, reason, raw)
}

/// The field an invalid record names when a record's values cannot be packed: the net when it is not the
/// gross less the fee, else `whole` (the record as a whole: its text beyond what a record keeps, or its line).
fn packing_field<'a>(e: &recon_core::TooLarge, whole: &'a str) -> &'a str {
    match e {
        recon_core::TooLarge::Net { .. } => "net",
        _ => whole,
    }
}

/// Parses a Stripe itemized report CSV (balance change from activity, payout reconciliation).
pub fn parse_report_csv(key: &str, object: u32, text: &str) -> Result<Parsed, SourceError> {
    parse_report_csv_reader(key, object, text.as_bytes(), 0, Keep::Records)
}

/// Parses a Stripe itemized report CSV as a stream.
pub fn parse_report_csv_reader<R: std::io::Read>(
    key: &str,
    object: u32,
    reader: R,
    expected_rows: usize,
    keep: Keep,
) -> Result<Parsed, SourceError> {
    let (rdr, cols) = csv_with_header(key, reader)?;
    let c_id = cols.require(key, "balance_transaction_id")?;
    let c_cur = cols.require(key, "currency")?;
    let c_gross = cols
        .find("gross")
        .or(cols.find("amount"))
        .ok_or_else(|| SourceError::new(key, "no gross column"))?;
    let c_fee = cols.find("fee");
    let c_net = cols.find("net");
    let c_cat = cols.require(key, "reporting_category")?;
    let c_created = cols.find("created_utc").or(cols.find("created"));
    let c_source = cols.find("source_id");
    let c_charge = cols.find("charge_id");
    let c_intent = cols.find("payment_intent_id");
    // candidate reference columns: payment_metadata[k] for every configured metadata key (order_id first)
    let c_refs: Vec<usize> = reference_metadata_keys()
        .iter()
        .filter_map(|k| cols.find(&format!("payment_metadata[{k}]")))
        .chain(cols.find("order_id"))
        .collect();

    let mut out = Parsed::default();
    out.records.reserve(expected_rows);
    let ncols = cols.len();
    let records = &mut out.records;
    let mut counted = 0u64;
    let mut row = |rec: &Row<'_>, line: u64| -> Result<(), BadRow> {
        let location = Location { object, line };
        if rec.len() != ncols {
            let why = format!("has {} fields, the header has {}", rec.len(), ncols);
            return Err(bad(location, "row", why, raw_record(rec)));
        }
        let get = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .map(crate::text::trim)
                .filter(|s| !s.is_empty())
        };
        let id = get(Some(c_id)).unwrap_or("");
        let source = get(c_source).unwrap_or("");
        let kind = kind_of_source(get(Some(c_cat)), None, source);
        if !kind.is_reconciled() && source.is_empty() && id.is_empty() {
            // e.g. a fee row without a source: counted as excluded, never invalid
        } else if id.is_empty() {
            return Err(bad(
                location,
                "balance_transaction_id",
                "balance_transaction_id is empty".into(),
                raw_record(rec),
            ));
        }
        let currency = Currency::parse(get(Some(c_cur)).unwrap_or(""))
            .map_err(|e| bad(location, "currency", e.to_string(), raw_record(rec)))?;
        let money = |c: Option<usize>, name: &str| -> Result<Option<i64>, (String, String)> {
            match get(c) {
                None => Ok(None),
                Some(t) => Money::parse_major(t, currency)
                    .map(|m| Some(m.minor))
                    .map_err(|e| (name.to_string(), e.to_string())),
            }
        };
        let amounts = (|| {
            Ok::<_, (String, String)>((
                money(Some(c_gross), "gross")?,
                money(c_fee, "fee")?,
                money(c_net, "net")?,
            ))
        })();
        let (gross, fee, net) = match amounts {
            Ok((Some(g), f, n)) => (g, f, n),
            Ok((None, _, _)) => {
                return Err(bad(location, "gross", "gross is empty".into(), raw_record(rec)));
            }
            Err((field, why)) => return Err(bad(location, &field, why, raw_record(rec))),
        };
        let occurred_at = match get(c_created) {
            None => None,
            Some(t) => Some(timestamp(t).map_err(|e| bad(location, "created_utc", e, raw_record(rec)))?),
        };
        let (keys, n) = keys(source, id, get(c_charge), get(c_intent), kind);
        let record = with_refs(
            c_refs.iter().filter_map(|&c| get(Some(c))),
            |reference, others| {
                ProcessorRecord::new(NewRecord {
                    id,
                    keys: &keys[..n],
                    reference,
                    other_references: others,
                    kind,
                    amount: Money::new(gross, currency),
                    fee,
                    net,
                    status: ProcessorStatus::Succeeded,
                    occurred_at,
                    location,
                })
            },
        )
        .map_err(|e| bad(location, packing_field(&e, "row"), e.to_string(), raw_record(rec)))?;
        keep.record(records, &mut counted, record);
        Ok(())
    };
    let stripe = |_: &Row<'_>| Some(Processor::Stripe);
    for_each_row(
        key,
        rdr,
        ncols,
        Side::Processor,
        object,
        &mut Invalids {
            kept: &mut out.invalid,
            dropped: &mut out.dropped,
            keep,
        },
        &stripe,
        &mut row,
    )?;
    out.dropped.records += counted;
    Ok(out)
}

#[derive(Deserialize)]
struct Page<'a> {
    object: Option<String>,
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    #[allow(dead_code)]
    has_more: Option<bool>,
}

#[derive(Deserialize)]
struct BalanceTransaction {
    id: String,
    amount: i64,
    currency: String,
    created: Option<i64>,
    fee: Option<i64>,
    net: Option<i64>,
    reporting_category: Option<String>,
    #[serde(rename = "type")]
    txn_type: Option<String>,
    source: Option<Value>,
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    match v.get(name) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// Parses one `GET /v1/balance_transactions` page as received. Locations are 0-based indexes in `data`.
pub fn parse_api_page(key: &str, object: u32, text: &str) -> Result<Parsed, SourceError> {
    let page: Page<'_> = serde_json::from_str(text).map_err(|e| {
        SourceError::new(
            key,
            format!("not a complete Stripe list page ({e}); the download may be truncated: fetch it again"),
        )
    })?;
    if page.object.as_deref().is_some_and(|o| o != "list") {
        return Err(SourceError::new(
            key,
            format!("expected a Stripe list object, got {:?}", page.object),
        ));
    }
    let mut out = Parsed::default();
    for (i, raw) in page.data.iter().enumerate() {
        let location = Location {
            object,
            line: i as u64,
        };
        let t: BalanceTransaction = match serde_json::from_str(raw.get()) {
            Ok(t) => t,
            Err(e) => {
                out.invalid.push(bad(
                    location,
                    "data",
                    format!("not a balance transaction: {e}"),
                    raw.get().to_string(),
                ));
                continue;
            }
        };
        let currency = match Currency::parse(&t.currency) {
            Ok(c) => c,
            Err(e) => {
                out.invalid
                    .push(bad(location, "currency", e.to_string(), raw.get().to_string()));
                continue;
            }
        };
        let e = stripe_exponent(currency);
        let conv = |v: i64| Money::from_scaled(v, e, currency).map(|m| m.minor);
        let (amount, fee, net) = match (
            conv(t.amount),
            t.fee.map(conv).transpose(),
            t.net.map(conv).transpose(),
        ) {
            (Ok(a), Ok(f), Ok(n)) => (a, f, n),
            (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
                out.invalid
                    .push(bad(location, "amount", err.to_string(), raw.get().to_string()));
                continue;
            }
        };
        // A balance transaction is a money movement that happened: a charge/payment balance transaction is
        // a capture that succeeded. An expanded `source` describes the object as it is *now* (`refunded`,
        // `amount_refunded`, `status`, `disputed`, `captured` change after the fact, and the refund or
        // dispute has balance transactions of its own), so only its identifiers and metadata are read.
        let (source_id, disputed, intent, metadata) = match &t.source {
            Some(Value::String(s)) => (s.clone(), None, None, None),
            Some(obj @ Value::Object(_)) => (
                str_field(obj, "id").unwrap_or("").to_string(),
                str_field(obj, "charge").map(String::from),
                str_field(obj, "payment_intent").map(String::from),
                obj.get("metadata").and_then(Value::as_object),
            ),
            _ => (String::new(), None, None, None),
        };
        if [Some(source_id.as_str()), disputed.as_deref(), intent.as_deref()]
            .into_iter()
            .flatten()
            .any(|k| k.contains('\0'))
        {
            out.invalid.push(bad(
                location,
                "source",
                "an identifier contains a NUL character (\\u0000), which no text column can hold".into(),
                raw.get().to_string(),
            ));
            continue;
        }
        // seconds to milliseconds, checked: a time no i64 holds is an invalid record, never a clamped one
        let occurred_at = match t.created.map(|s| s.checked_mul(1000)) {
            None => None,
            Some(Some(ms)) => Some(ms),
            Some(None) => {
                out.invalid.push(bad(
                    location,
                    "created",
                    format!(
                        "created {:?} is beyond any time recon can hold: check the export",
                        t.created
                    ),
                    raw.get().to_string(),
                ));
                continue;
            }
        };
        let kind = kind_of_source(t.reporting_category.as_deref(), t.txn_type.as_deref(), &source_id);
        let (keys, n) = keys(&source_id, &t.id, disputed.as_deref(), intent.as_deref(), kind);
        let refs = reference_metadata_keys()
            .iter()
            .filter_map(|k| metadata.and_then(|m| m.get(k)).and_then(Value::as_str))
            .map(crate::text::trim)
            .filter(|r| !r.is_empty());
        let record = with_refs(refs, |reference, others| {
            ProcessorRecord::new(NewRecord {
                id: &t.id,
                keys: &keys[..n],
                reference,
                other_references: others,
                kind,
                amount: Money::new(amount, currency),
                fee,
                net,
                status: ProcessorStatus::Succeeded,
                occurred_at,
                location,
            })
        });
        let field = record.as_ref().err().map_or("data", |e| packing_field(e, "data"));
        out.keep_packed(record, |why| bad(location, field, why, raw.get().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{"object":"list","url":"/v1/balance_transactions","has_more":true,"data":[
 {"id":"txn_3PqR8sLkdIwHu7ix0aB1cD2e","object":"balance_transaction","amount":4999,"available_on":1718928000,"balance_type":"payments","created":1718395512,"currency":"usd","description":"Order A10023","exchange_rate":null,"fee":175,"fee_details":[{"amount":175,"application":null,"currency":"usd","description":"Stripe processing fees","type":"stripe_fee"}],"net":4824,"reporting_category":"charge","source":{"id":"ch_3PqR8sLkdIwHu7ix0Xy9Zw8v","object":"charge","payment_intent":"pi_3PqR8sLkdIwHu7ix0Q1w2E3r","metadata":{"order_id":"ord_A10023"},"status":"succeeded"},"status":"available","type":"charge"},
 {"id":"txn_3PqS1aLkdIwHu7ix1Qw2Er3t","object":"balance_transaction","amount":-4999,"available_on":1718496000,"created":1718481010,"currency":"usd","description":null,"exchange_rate":null,"fee":0,"fee_details":[],"net":-4999,"reporting_category":"refund","source":"re_3PqR8sLkdIwHu7ix0p9Oi8Uy","status":"available","type":"refund"},
 {"id":"txn_1PqT2bLkdIwHu7ixRt5Yu6Io","object":"balance_transaction","amount":-4999,"created":1718567400,"currency":"usd","fee":1500,"net":-6499,"reporting_category":"dispute","source":"dp_1PqT2bLkdIwHu7ixAs7Df8Gh","status":"available","type":"adjustment"},
 {"id":"txn_isk","object":"balance_transaction","amount":10000,"created":1718567400,"currency":"isk","fee":0,"net":10000,"reporting_category":"charge","source":"ch_isk","status":"available","type":"charge"},
 {"id":"txn_jpy","object":"balance_transaction","amount":1200,"created":1718567400,"currency":"jpy","fee":0,"net":1200,"reporting_category":"charge","source":"ch_jpy","status":"available","type":"charge"},
 {"id":"txn_kwd","object":"balance_transaction","amount":12340,"created":1718567400,"currency":"kwd","fee":0,"net":12340,"reporting_category":"charge","source":"ch_kwd","status":"available","type":"charge"},
 {"id":"txn_bad","object":"balance_transaction","amount":1,"created":1718567400,"currency":"zzz","fee":0,"net":1,"reporting_category":"charge","source":"ch_bad","status":"available","type":"charge"},
 {"id":"txn_1PqU3cLkdIwHu7ixJk9Lz0Xc","object":"balance_transaction","amount":-123456,"created":1718668800,"currency":"usd","fee":0,"net":-123456,"reporting_category":"payout","source":"po_1PqU3cLkdIwHu7ixVb1Nm2Qw","status":"available","type":"payout"}]}"#;

    #[test]
    fn api_page_lands_on_exact_amounts_and_keys() {
        let p = parse_api_page("raw/stripe/page-00001.json", 0, PAGE).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 7);
        let c = &p.records[0];
        assert_eq!(c.kind, Kind::Charge);
        assert_eq!(c.amount().minor, 4999);
        assert_eq!(
            c.keys().iter().collect::<Vec<_>>(),
            [
                "ch_3PqR8sLkdIwHu7ix0Xy9Zw8v",
                "txn_3PqR8sLkdIwHu7ix0aB1cD2e",
                "pi_3PqR8sLkdIwHu7ix0Q1w2E3r"
            ]
        );
        assert_eq!(c.reference().as_deref(), Some("ord_A10023"));
        assert_eq!(p.records[1].kind, Kind::Refund);
        assert_eq!(p.records[1].amount().minor, -4999);
        assert_eq!(p.records[2].kind, Kind::Dispute);
        assert_eq!(p.records[3].amount().to_string(), "100"); // ISK: 10000 Stripe minor units = 100 krona
        assert_eq!(p.records[4].amount().to_string(), "1200");
        assert_eq!(p.records[5].amount().to_string(), "12.340");
        assert_eq!(p.records[6].kind, Kind::Payout);
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].1.location.line, 6);
    }

    #[test]
    fn a_balance_transaction_is_a_movement_whatever_its_source_says_now() {
        // the charge was refunded and disputed after the capture; the refund has its own balance transaction
        let page = r#"{"object":"list","data":[
 {"id":"txn_c","object":"balance_transaction","amount":2000,"created":1741568400,"currency":"usd","fee":88,"net":1912,"reporting_category":"charge","type":"charge","status":"pending",
  "source":{"id":"ch_1","object":"charge","amount":2000,"amount_refunded":2000,"captured":true,"disputed":true,"refunded":true,"status":"succeeded","payment_intent":"pi_1","metadata":{"order_id":"ord_1","order_number":"N-1"}}},
 {"id":"txn_r","object":"balance_transaction","amount":-2000,"created":1741568400,"currency":"usd","fee":0,"net":-2000,"reporting_category":"refund","type":"refund",
  "source":{"id":"re_1","object":"refund","charge":"ch_1","payment_intent":"pi_1","status":"failed"}},
 {"id":"txn_p","object":"balance_transaction","amount":500,"created":1741568400,"currency":"usd","fee":0,"net":500,"reporting_category":"charge","type":"payment",
  "source":{"id":"py_1","object":"charge","status":"pending"}},
 {"id":"txn_d","object":"balance_transaction","amount":-500,"created":1741568400,"currency":"usd","fee":0,"net":-500,"type":"adjustment","source":"dp_9"}]}"#;
        let p = parse_api_page("k", 0, page).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(p.records.iter().all(|r| r.status == ProcessorStatus::Succeeded));
        assert_eq!(p.records[0].reference().as_deref(), Some("ord_1"));
        assert_eq!(
            p.records[1].keys().iter().collect::<Vec<_>>(),
            ["re_1", "txn_r"],
            "a refund never holds its charge"
        );
        assert_eq!(
            p.records[3].kind,
            Kind::Dispute,
            "an old-style dispute: type adjustment, dp_ source"
        );
    }

    #[test]
    fn every_listed_type_and_category_has_a_kind() {
        for (cat, kind) in [
            ("charge", Kind::Charge),
            ("charge_failure", Kind::Charge),
            ("refund", Kind::Refund),
            ("refund_failure", Kind::Refund),
            ("dispute", Kind::Dispute),
            ("dispute_reversal", Kind::Dispute),
            ("payout", Kind::Payout),
            ("payout_reversal", Kind::Payout),
            ("fee", Kind::Fee),
            ("platform_earning", Kind::Fee),
            ("other_adjustment", Kind::Adjustment),
            ("topup", Kind::Funding),
            ("transfer", Kind::Transfer),
            ("risk_reserved_funds", Kind::Hold),
            ("issuing_transaction", Kind::Other),
        ] {
            assert_eq!(kind_of(Some(cat), None), kind, "{cat}");
        }
        for (t, kind) in [
            ("charge", Kind::Charge),
            ("payment", Kind::Charge),
            ("refund", Kind::Refund),
            ("payment_refund", Kind::Refund),
            ("payout", Kind::Payout),
            ("payout_cancel", Kind::Payout),
            ("payout_failure", Kind::Payout),
            ("transfer", Kind::Transfer),
            ("application_fee", Kind::Fee),
            ("stripe_fee", Kind::Fee),
            ("adjustment", Kind::Adjustment),
            ("topup", Kind::Funding),
            ("reserve_transaction", Kind::Hold),
            ("advance", Kind::Other),
        ] {
            assert_eq!(kind_of(None, Some(t)), kind, "{t}");
        }
    }

    /// Parses `page`, asserting that only `txn_ok` is kept and that the one other balance transaction is an
    /// invalid record naming `field`.
    fn only_txn_ok_kept_and_one_invalid_naming(page: &str, field: &str) -> Parsed {
        let p = parse_api_page("k", 0, page).unwrap_or_else(|e| unreachable!("{e}"));
        let ids: Vec<String> = p.records.iter().map(|r| r.id().to_string()).collect();
        assert_eq!(ids, ["txn_ok"]);
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].1.field.as_deref(), Some(field));
        p
    }

    /// A `created` whose milliseconds no i64 holds is an invalid record, never a clamped timestamp.
    #[test]
    fn a_created_beyond_range_is_an_invalid_record() {
        let page = r#"{"object":"list","has_more":false,"data":[
 {"id":"txn_far","object":"balance_transaction","amount":100,"created":9223372036854776,"currency":"usd","fee":0,"net":100,"reporting_category":"charge","source":"ch_far","status":"available","type":"charge"},
 {"id":"txn_ok","object":"balance_transaction","amount":100,"created":1718567400,"currency":"usd","fee":0,"net":100,"reporting_category":"charge","source":"ch_ok","status":"available","type":"charge"}]}"#;
        let p = only_txn_ok_kept_and_one_invalid_naming(page, "created");
        assert_eq!(p.records[0].occurred_at(), Some(1_718_567_400_000));
    }

    #[test]
    fn truncated_page_fails_as_a_whole() {
        let err = parse_api_page("raw/stripe/x/page-00002.json", 0, &PAGE[..300]);
        assert!(matches!(err, Err(SourceError { ref key, .. }) if key == "raw/stripe/x/page-00002.json"));
    }

    #[test]
    fn report_csv_by_header_name() {
        let csv = "created_utc,balance_transaction_id,currency,gross,fee,net,reporting_category,source_id,charge_id,payment_intent_id,description,payment_metadata[order_id]\n\
2025-06-02 00:00:00,txn_1,usd,26.12,1.05,25.07,charge,ch_1,ch_1,pi_1,\"Order 1042, express shipping\",ord_1\n\
2025-06-02 00:00:01,txn_2,jpy,-4000,0,-4000,dispute,dp_2,ch_old,,Chargeback withdrawal,ord_2\n\
2025-06-02 00:00:02,txn_3,usd,-1.50,0.00,-1.50,fee,,,,Billing,\n\
2025-06-02 00:00:03,txn_4,usd,12.345,0,12.345,charge,ch_4,ch_4,pi_4,,ord_4\n";
        let p = parse_report_csv("k", 0, csv).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 3);
        assert_eq!(p.records[0].amount().minor, 2612);
        assert_eq!(p.records[0].reference().as_deref(), Some("ord_1"));
        assert_eq!(
            p.records[1].keys().iter().collect::<Vec<_>>(),
            ["dp_2", "txn_2", "ch_old"]
        );
        assert_eq!(p.records[1].amount().to_string(), "-4000");
        assert_eq!(p.records[2].kind, Kind::Fee);
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].1.location.line, 5);
    }

    /// Stripe's net is the gross less the fee (`net = amount - fee`, in the API reference and the report's
    /// column description): a row whose three figures disagree is an invalid record naming `net`, never
    /// kept with one of them; a row with only the fee or only the net keeps what it has.
    #[test]
    fn a_row_whose_net_is_not_gross_less_fee_is_an_invalid_record() {
        let csv = "created_utc,balance_transaction_id,currency,gross,fee,net,reporting_category,source_id\n\
2025-06-02 00:00:00,txn_1,usd,26.12,1.05,25.07,charge,ch_1\n\
2025-06-02 00:00:01,txn_2,usd,26.12,1.05,25.06,charge,ch_2\n\
2025-06-02 00:00:02,txn_3,usd,-40.00,,-40.00,refund,re_3\n\
2025-06-02 00:00:03,txn_4,usd,10.00,0.59,,charge,ch_4\n";
        let p = parse_report_csv("k", 0, csv).unwrap_or_else(|e| unreachable!("{e}"));
        let got: Vec<_> = p
            .records
            .iter()
            .map(|r| (r.id().to_string(), r.fee(), r.net()))
            .collect();
        assert_eq!(
            got,
            [
                ("txn_1".to_string(), Some(105), Some(2507)),
                ("txn_3".to_string(), None, Some(-4000)),
                ("txn_4".to_string(), Some(59), None)
            ]
        );
        assert_eq!(p.invalid.len(), 1);
        let (_, bad) = &p.invalid[0];
        assert_eq!((bad.location.line, bad.field.as_deref()), (3, Some("net")));
        assert!(
            bad.reason.contains("2506") && bad.reason.contains("2612") && bad.reason.contains("105"),
            "{}",
            bad.reason
        );

        let page = r#"{"object":"list","has_more":false,"data":[
 {"id":"txn_bad","object":"balance_transaction","amount":4999,"created":1718395512,"currency":"usd","fee":175,"net":4825,"reporting_category":"charge","source":"ch_bad","status":"available","type":"charge"},
 {"id":"txn_ok","object":"balance_transaction","amount":4999,"created":1718395512,"currency":"usd","fee":175,"net":4824,"reporting_category":"charge","source":"ch_ok","status":"available","type":"charge"}]}"#;
        only_txn_ok_kept_and_one_invalid_naming(page, "net");
    }

    /// A balance transaction whose references exceed what a record keeps is an invalid record naming the
    /// page's `data` entry (an API page has no row), its neighbour kept.
    #[test]
    fn a_balance_transaction_beyond_what_a_record_keeps_names_its_data_entry() {
        let long = "o".repeat(70_000);
        let page = format!(
            r#"{{"object":"list","has_more":false,"data":[
 {{"id":"txn_long","object":"balance_transaction","amount":100,"created":1718395512,"currency":"usd","fee":0,"net":100,"reporting_category":"charge","source":{{"id":"ch_long","object":"charge","metadata":{{"order_id":"{long}"}}}},"status":"available","type":"charge"}},
 {{"id":"txn_ok","object":"balance_transaction","amount":100,"created":1718395512,"currency":"usd","fee":0,"net":100,"reporting_category":"charge","source":"ch_ok","status":"available","type":"charge"}}]}}"#
        );
        let p = only_txn_ok_kept_and_one_invalid_naming(&page, "data");
        assert!(
            p.invalid[0].1.reason.contains("at most 65535"),
            "{}",
            p.invalid[0].1.reason
        );
    }

    /// A row whose id, keys and references exceed what a record keeps (an order reference of 70,000 bytes)
    /// is an invalid record of its line, with the sizes named; the rows around it are kept.
    #[test]
    fn a_row_with_more_reference_text_than_a_record_keeps_is_reported() {
        let long = "o".repeat(70_000);
        let csv = format!(
            "created_utc,balance_transaction_id,currency,gross,reporting_category,source_id,payment_metadata[order_id]\n\
             2025-06-02 00:00:00,txn_1,usd,1.00,charge,ch_1,ord_1\n\
             2025-06-02 00:00:01,txn_2,usd,2.00,charge,ch_2,{long}\n\
             2025-06-02 00:00:02,txn_3,usd,3.00,charge,ch_3,ord_3\n"
        );
        let p = parse_report_csv("k", 0, &csv).unwrap_or_else(|e| unreachable!("{e}"));
        let ids: Vec<String> = p.records.iter().map(|r| r.id().to_string()).collect();
        assert_eq!(ids, ["txn_1", "txn_3"]);
        assert_eq!(p.invalid.len(), 1);
        let (processor, bad) = &p.invalid[0];
        assert_eq!((*processor, bad.location.line), (Some(Processor::Stripe), 3));
        assert!(bad.reason.contains("at most 65535"), "{}", bad.reason);
        assert!(bad.raw.contains("txn_2"), "the row's text is kept");
    }
}

#[cfg(test)]
mod quote_tests {
    use super::*;

    #[test]
    fn an_unbalanced_quote_in_a_report_costs_one_row() {
        let mut csv = String::from("created_utc,balance_transaction_id,currency,gross,fee,net,reporting_category,source_id,description\n");
        for i in 0..200 {
            let desc = if i == 17 {
                "\"Order 17, gift".to_string()
            } else {
                format!("Order {i}")
            };
            csv.push_str(&format!(
                "2025-06-02 00:00:00,txn_{i},usd,1.00,0,1.00,charge,ch_{i},{desc}\n"
            ));
        }
        let p = parse_report_csv("k", 0, &csv).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 199);
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].1.location.line, 19);
        assert_eq!(p.invalid[0].0, Some(Processor::Stripe));
    }
}
