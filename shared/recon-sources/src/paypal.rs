//! PayPal: Transaction Search pages (`GET /v1/reporting/transactions`) and the settlement report (STL; the
//! transaction detail report TRR has the same row types and more columns).
//!
//! A record's identity is `transaction_id` + event code (PayPal repeats transaction ids across event codes);
//! its only match key is its own transaction id (a refund's `paypal_reference_id` is its parent's and is
//! never a key). Reference: `custom_field`, then `invoice_id`.
//!
//! Over 400 lines: the T-code table, both formats (search pages and STL) and the tests of their edge cases
//! sit together, because the table is what both formats are read by.

use recon_core::{
    Currency, InvalidRecord, Kind, Location, Money, NewRecord, Processor, ProcessorRecord, ProcessorStatus,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::text::{line_of, normalise_header, raw_record, record_error, timestamp};
use crate::{Invalids, Keep, Parsed, SourceError};

/// Kind from a T-code and the direction of the money (`credit`: money in, the `CR` of a report or a positive
/// Transaction Search amount). T-codes say what happened, not which way: T00xx is a payment sent *or*
/// received, T1107 a refund issued or received. The table, by group, is in the README ("PayPal T-codes").
pub fn kind_of(event_code: &str, credit: bool) -> Kind {
    let code = event_code.trim();
    let group = code.get(..3).unwrap_or("");
    match code {
        // T11: reversals and refunds, one by one
        "T1101" => return Kind::Payout,
        "T1102" | "T1113" | "T1114" | "T1115" | "T1118" => return Kind::Transfer,
        "T1104" => return Kind::Funding,
        "T1105" | "T1110" | "T1111" => return Kind::Hold,
        "T1106" | "T1116" | "T1119" => return Kind::Dispute,
        "T1107" => return if credit { Kind::Transfer } else { Kind::Refund },
        "T1108" | "T1109" => return Kind::Fee,
        // T12: chargebacks are disputes, the rest adjustments
        "T1201" | "T1202" | "T1205" | "T1207" | "T1208" => return Kind::Dispute,
        _ => {}
    }
    match group {
        "T00" => {
            if credit {
                Kind::Charge
            } else {
                Kind::Transfer
            }
        }
        "T01" => Kind::Fee,
        "T02" => Kind::Conversion,
        "T03" | "T07" | "T16" | "T30" => Kind::Funding,
        "T04" | "T06" | "T17" | "T18" => Kind::Payout,
        "T05" | "T10" | "T20" | "T22" => Kind::Transfer,
        "T08" | "T09" | "T11" | "T12" | "T14" | "T19" => Kind::Adjustment,
        "T13" => Kind::Authorization,
        "T15" | "T21" | "T50" => Kind::Hold,
        _ => Kind::Other,
    }
}

/// `S` success, `P` pending, `D` denied, `V` reversed, `F` (TRR) failed; absent = settled money (success).
pub fn status_of(code: Option<&str>) -> Result<ProcessorStatus, String> {
    match code.map(str::trim).unwrap_or("") {
        "" | "S" => Ok(ProcessorStatus::Succeeded),
        "P" => Ok(ProcessorStatus::Pending),
        "D" | "F" => Ok(ProcessorStatus::Failed),
        "V" => Ok(ProcessorStatus::Reversed),
        other => Err(format!("transaction status {other:?} is not S, P, D, V or F")),
    }
}

fn bad(location: Location, field: &str, reason: String, raw: String) -> (Option<Processor>, InvalidRecord) {
    crate::bad(Processor::Paypal, location, field, reason, raw)
}

/// The candidate references: `custom_field` first, then `invoice_id` (merchants put the order number in
/// either; PayPal's own sample has free text in `custom_field` and the order in `invoice_id`).
fn references<'a>(custom: Option<&'a str>, invoice: Option<&'a str>) -> (Option<&'a str>, Option<&'a str>) {
    let custom = custom.map(str::trim).filter(|s| !s.is_empty());
    let invoice = invoice.map(str::trim).filter(|s| !s.is_empty());
    match (custom, invoice) {
        (Some(c), Some(i)) => (Some(c), Some(i)),
        (c, i) => (c.or(i), None),
    }
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    transaction_details: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Detail {
    transaction_info: Info,
}

#[derive(Deserialize)]
struct MoneyJson {
    currency_code: String,
    value: String,
}

#[derive(Deserialize)]
struct Info {
    transaction_id: String,
    transaction_event_code: Option<String>,
    transaction_initiation_date: Option<String>,
    transaction_amount: MoneyJson,
    fee_amount: Option<MoneyJson>,
    transaction_status: Option<String>,
    invoice_id: Option<String>,
    custom_field: Option<String>,
}

/// Parses one Transaction Search page as received. Locations are 0-based indexes in `transaction_details`.
pub fn parse_api_page(key: &str, object: u32, text: &str) -> Result<Parsed, SourceError> {
    let page: Page<'_> = serde_json::from_str(text).map_err(|e| {
        SourceError::new(key, format!("not a complete PayPal transaction search page ({e}); the download may be truncated: fetch it again"))
    })?;
    let mut out = Parsed::default();
    for (i, raw) in page.transaction_details.iter().enumerate() {
        let location = Location {
            object,
            line: i as u64,
        };
        let raw_text = || raw.get().to_string();
        let d: Detail = match serde_json::from_str(raw.get()) {
            Ok(d) => d,
            Err(e) => {
                out.invalid.push(bad(
                    location,
                    "transaction_info",
                    format!("not a transaction: {e}"),
                    raw_text(),
                ));
                continue;
            }
        };
        let t = d.transaction_info;
        let currency = match Currency::parse(&t.transaction_amount.currency_code) {
            Ok(c) => c,
            Err(e) => {
                out.invalid.push(bad(
                    location,
                    "transaction_amount.currency_code",
                    e.to_string(),
                    raw_text(),
                ));
                continue;
            }
        };
        let amount = match Money::parse_major(&t.transaction_amount.value, currency) {
            Ok(m) => m,
            Err(e) => {
                out.invalid.push(bad(
                    location,
                    "transaction_amount.value",
                    e.to_string(),
                    raw_text(),
                ));
                continue;
            }
        };
        let fee = match &t.fee_amount {
            None => None,
            Some(f) => {
                match Currency::parse(&f.currency_code).and_then(|c| Money::parse_major(&f.value, c)) {
                    Ok(m) if m.currency != amount.currency => {
                        let why = format!(
                            "fee in {} on a {} transaction: recon keeps a fee in the transaction's currency only; \
                             check the transaction in PayPal",
                            m.currency, amount.currency
                        );
                        out.invalid.push(bad(location, "fee_amount", why, raw_text()));
                        continue;
                    }
                    Ok(m) => Some(m.minor),
                    Err(e) => {
                        out.invalid
                            .push(bad(location, "fee_amount", e.to_string(), raw_text()));
                        continue;
                    }
                }
            }
        };
        let status = match status_of(t.transaction_status.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                out.invalid
                    .push(bad(location, "transaction_status", e, raw_text()));
                continue;
            }
        };
        let occurred_at = match t.transaction_initiation_date.as_deref() {
            None => None,
            Some(s) => match timestamp(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    out.invalid
                        .push(bad(location, "transaction_initiation_date", e, raw_text()));
                    continue;
                }
            },
        };
        // PayPal reports the fee negative on a sale; it is kept as a positive cost, and the net is checked
        let (fee, net) = match fee.map(|f| fee_and_net(amount.minor, f)) {
            None => (None, None),
            Some(Ok((fee, net))) => (Some(fee), Some(net)),
            Some(Err(why)) => {
                out.invalid.push(bad(location, "fee_amount", why, raw_text()));
                continue;
            }
        };
        let code = t.transaction_event_code.unwrap_or_default();
        let (reference, other) = references(t.custom_field.as_deref(), t.invoice_id.as_deref());
        let record = ProcessorRecord::new(NewRecord {
            id: &format!("{}/{}", t.transaction_id, code),
            keys: &[t.transaction_id.as_str()],
            reference,
            other_references: other.as_slice(),
            kind: kind_of(&code, amount.minor >= 0),
            amount,
            fee,
            net,
            status,
            occurred_at,
            location,
        });
        out.keep_packed(record, |why| bad(location, "transaction_id", why, raw_text()));
    }
    Ok(out)
}

/// Parses a PayPal settlement (STL) or transaction detail (TRR) report as a stream. Only `SB` rows carry
/// transactions; their columns come from the `CH` row (header whitespace normalised: older files spell
/// `Transaction  Debit or Credit` with two spaces). Amounts are unsigned hundredths for every currency
/// (JPY included), signed by the `CR`/`DR` column.
pub fn parse_settlement_csv<R: std::io::Read>(
    key: &str,
    object: u32,
    reader: R,
    crlf: bool,
    keep: Keep,
) -> Result<Parsed, SourceError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut out = Parsed::default();
    let mut invalid = Invalids {
        kept: &mut out.invalid,
        dropped: &mut out.dropped,
        keep,
    };
    let mut counted = 0u64;
    let mut cols: Option<Vec<String>> = None;
    let mut saw_footer = false;
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = line_of(e.position(), crlf);
                invalid.push(bad(
                    Location { object, line },
                    "row",
                    record_error(&e),
                    String::new(),
                ));
                continue;
            }
        }
        let line = line_of(rec.position(), crlf);
        let location = Location { object, line };
        let kind = rec.get(0).map(str::trim).unwrap_or("");
        match kind {
            "CH" => cols = Some(rec.iter().map(normalise_header).collect()),
            "SB" => {
                let Some(c) = &cols else {
                    return Err(SourceError::new(
                        key,
                        format!("line {line}: an SB row before any CH column header row"),
                    ));
                };
                match settlement_row(c, &rec, location) {
                    Ok(Some(r)) => keep.record(&mut out.records, &mut counted, r),
                    Ok(None) => {}
                    Err((field, why)) => invalid.push(bad(location, &field, why, raw_record(&rec))),
                }
            }
            "FF" | "RF" => saw_footer = true,
            _ => {}
        }
    }
    if cols.is_none() {
        return Err(SourceError::new(
            key,
            "no CH column header row: not a complete PayPal settlement report",
        ));
    }
    if !saw_footer {
        return Err(SourceError::new(
            key,
            "no RF/FF footer row: the report is truncated; download it again",
        ));
    }
    out.dropped.records += counted;
    Ok(out)
}

/// The fee as a positive cost and the net amount, from a gross amount and PayPal's signed fee (negative when
/// debited), in checked arithmetic: a figure no i64 holds is an error, never a wrapped one.
fn fee_and_net(gross: i64, signed_fee: i64) -> Result<(i64, i64), String> {
    match (signed_fee.checked_neg(), gross.checked_add(signed_fee)) {
        (Some(fee), Some(net)) => Ok((fee, net)),
        _ => Err(format!(
            "the net amount of gross {gross} and fee {signed_fee} (minor units) is beyond the range recon can hold: \
             check the export"
        )),
    }
}

fn settlement_row(
    cols: &[String],
    rec: &csv::StringRecord,
    location: Location,
) -> Result<Option<ProcessorRecord>, (String, String)> {
    let get = |name: &str| {
        cols.iter()
            .position(|c| c == name)
            .and_then(|i| rec.get(i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let req = |name: &str| get(name).ok_or_else(|| (name.to_string(), format!("{name:?} is empty")));
    let id = req("transaction id")?;
    let code = get("transaction event code").unwrap_or("");
    let currency = Currency::parse(req("gross transaction currency")?)
        .map_err(|e| ("gross transaction currency".to_string(), e.to_string()))?;
    let signed = |amount_col: &str, sign_col: &str| -> Result<Option<i64>, (String, String)> {
        let Some(a) = get(amount_col) else { return Ok(None) };
        let n: i64 = a.parse().map_err(|_| {
            (
                amount_col.to_string(),
                format!("{a:?} is not an unsigned integer of hundredths"),
            )
        })?;
        if n < 0 {
            return Err((
                amount_col.to_string(),
                format!("{a:?} must be unsigned (the sign is in {sign_col:?})"),
            ));
        }
        let m = Money::from_scaled(n, 2, currency).map_err(|e| (amount_col.to_string(), e.to_string()))?;
        match get(sign_col) {
            Some("CR") => Ok(Some(m.minor)),
            Some("DR") => Ok(Some(-m.minor)),
            other => Err((sign_col.to_string(), format!("{other:?} is neither CR nor DR"))),
        }
    };
    let gross = signed("gross transaction amount", "transaction debit or credit")?.ok_or_else(|| {
        (
            "gross transaction amount".to_string(),
            "gross amount is empty".to_string(),
        )
    })?;
    if let Some(fc) = get("fee currency") {
        if !fc.eq_ignore_ascii_case(currency.code()) {
            return Err((
                "fee currency".to_string(),
                format!(
                    "fee in {fc} on a {currency} transaction: recon keeps a fee in the transaction's currency only; \
                     check the transaction in PayPal"
                ),
            ));
        }
    }
    // a fee debited from the merchant is a positive cost
    let (fee, net) = match signed("fee amount", "fee debit or credit")? {
        None => (None, None),
        Some(f) => {
            let (fee, net) = fee_and_net(gross, f).map_err(|why| ("fee amount".to_string(), why))?;
            (Some(fee), Some(net))
        }
    };
    let status =
        status_of(get("transactional status")).map_err(|e| ("transactional status".to_string(), e))?;
    let occurred_at = match get("transaction initiation date") {
        None => None,
        Some(s) => Some(timestamp(s).map_err(|e| ("transaction initiation date".to_string(), e))?),
    };
    let (reference, other) = references(get("custom field"), get("invoice id"));
    ProcessorRecord::new(NewRecord {
        id: &format!("{id}/{code}"),
        keys: &[id],
        reference,
        other_references: other.as_slice(),
        kind: kind_of(code, gross >= 0),
        amount: Money::new(gross, currency),
        fee,
        net,
        status,
        occurred_at,
        location,
    })
    .map(Some)
    .map_err(|e| ("transaction id".to_string(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{"transaction_details":[
 {"transaction_info":{"paypal_account_id":"6XJTZ6XKY5BQL","transaction_id":"3W487768B3782210S","transaction_event_code":"T0006","transaction_initiation_date":"2024-06-14T19:25:12+0000","transaction_updated_date":"2024-06-14T19:25:12+0000","transaction_amount":{"currency_code":"USD","value":"49.99"},"fee_amount":{"currency_code":"USD","value":"-2.24"},"transaction_status":"S","invoice_id":"INV-A10023","custom_field":"order_A10023","protection_eligibility":"01"}},
 {"transaction_info":{"paypal_account_id":"6XJTZ6XKY5BQL","transaction_id":"5P914601XX9466815","paypal_reference_id":"3W487768B3782210S","paypal_reference_id_type":"TXN","transaction_event_code":"T1107","transaction_initiation_date":"2024-06-14T22:02:40+0000","transaction_amount":{"currency_code":"USD","value":"-49.99"},"transaction_status":"S","invoice_id":"INV-A10023"}},
 {"transaction_info":{"transaction_id":"7JP00000000000001","transaction_event_code":"T0006","transaction_initiation_date":"2024-06-14T10:00:00+00:00","transaction_amount":{"currency_code":"JPY","value":"1200"},"transaction_status":"D"}},
 {"transaction_info":{"transaction_id":"7JP00000000000002","transaction_event_code":"T0006","transaction_amount":{"currency_code":"JPY","value":"1200.5"},"transaction_status":"S"}}],
 "account_number":"XZXSPECPDZHZU","start_date":"2024-06-14T07:00:00+0000","end_date":"2024-06-15T06:59:59+0000","last_refreshed_datetime":"2024-06-15T03:59:59+0000","page":1,"total_items":4,"total_pages":1}"#;

    /// A fee in another currency than the amount, or one whose net amount no i64 holds, makes the record an
    /// invalid record: never a net figure mixing two currencies, never a wrapped sum.
    #[test]
    fn a_fee_in_another_currency_or_beyond_range_is_an_invalid_record() {
        let page = r#"{"transaction_details":[
 {"transaction_info":{"transaction_id":"FX1","transaction_event_code":"T0006","transaction_amount":{"currency_code":"USD","value":"49.99"},"fee_amount":{"currency_code":"EUR","value":"-2.24"},"transaction_status":"S"}},
 {"transaction_info":{"transaction_id":"BIG1","transaction_event_code":"T0006","transaction_amount":{"currency_code":"USD","value":"92233720368547758.07"},"fee_amount":{"currency_code":"USD","value":"0.01"},"transaction_status":"S"}},
 {"transaction_info":{"transaction_id":"OK1","transaction_event_code":"T0006","transaction_amount":{"currency_code":"USD","value":"10.00"},"fee_amount":{"currency_code":"USD","value":"-0.59"},"transaction_status":"S"}}]}"#;
        let p = parse_api_page("k", 0, page).unwrap_or_else(|e| unreachable!("{e}"));
        let ids: Vec<String> = p.records.iter().map(|r| r.id().to_string()).collect();
        assert_eq!(ids, ["OK1/T0006"]);
        assert_eq!(p.invalid.len(), 2, "{:?}", p.invalid);
        assert!(p
            .invalid
            .iter()
            .all(|(_, i)| i.field.as_deref() == Some("fee_amount")));
        assert!(p.invalid[0].1.reason.contains("EUR"), "{}", p.invalid[0].1.reason);
    }

    /// In the settlement report, a fee in another currency than the gross amount is an invalid record (its
    /// hundredths were read in the gross currency).
    #[test]
    fn a_settlement_fee_in_another_currency_is_an_invalid_record() {
        let fx = STL.replacen(r#""DR",224,"USD""#, r#""DR",224,"EUR""#, 1);
        assert_ne!(fx, STL);
        let p = parse_settlement_csv("k", 0, fx.as_bytes(), false, Keep::Records)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 2, "{:?}", p.invalid);
        assert_eq!(p.invalid[0].1.field.as_deref(), Some("fee currency"));
        assert!(p.invalid[0].1.reason.contains("EUR"), "{}", p.invalid[0].1.reason);
    }

    /// In the settlement report, a fee whose net amount no i64 holds is an invalid record, never a wrapped sum.
    #[test]
    fn a_settlement_fee_beyond_range_is_an_invalid_record() {
        let big = STL.replacen(
            r#""CR",4999,"USD","DR",224"#,
            r#""CR",9223372036854775807,"USD","CR",224"#,
            1,
        );
        assert_ne!(big, STL);
        let p = parse_settlement_csv("k", 0, big.as_bytes(), false, Keep::Records)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 2, "{:?}", p.invalid);
        assert_eq!(p.invalid.len(), 2);
        assert_eq!(p.invalid[0].1.field.as_deref(), Some("fee amount"));
    }

    #[test]
    fn api_page_signed_decimal_strings() {
        let p = parse_api_page("k", 0, PAGE).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 3);
        let sale = &p.records[0];
        assert_eq!(
            (sale.kind, sale.amount().minor, sale.fee(), sale.net()),
            (Kind::Charge, 4999, Some(224), Some(4775))
        );
        assert_eq!(sale.reference().as_deref(), Some("order_A10023"));
        assert_eq!(sale.id(), "3W487768B3782210S/T0006");
        let refund = &p.records[1];
        assert_eq!((refund.kind, refund.amount().minor), (Kind::Refund, -4999));
        assert_eq!(
            refund.keys().iter().collect::<Vec<_>>(),
            ["5P914601XX9466815"],
            "never the parent's id"
        );
        assert_eq!(refund.reference().as_deref(), Some("INV-A10023"));
        assert_eq!(p.records[2].status, ProcessorStatus::Failed);
        assert_eq!(p.records[2].amount().to_string(), "1200");
        assert_eq!(p.invalid.len(), 1);
    }

    const STL: &str = "\"RH\",2024/08/21 02:44:19 -0700,\"A\",\"ACCT\",009,\n\
\"FH\",01\n\
\"SH\",2024/08/20 00:00:00 -0700,2024/08/20 23:59:59 -0700,\"ACCT\",\"\"\n\
\"CH\",\"Transaction ID\",\"Invoice ID\",\"PayPal Reference ID\",\"PayPal Reference ID Type\",\"Transaction Event Code\",\"Transaction Initiation Date\",\"Transaction Completion Date\",\"Transaction  Debit or Credit\",\"Gross Transaction Amount\",\"Gross Transaction Currency\",\"Fee Debit or Credit\",\"Fee Amount\",\"Fee Currency\",\"Custom Field\",\"Consumer ID\",\"Payment Tracking ID\",\"Store ID\",\"Bank Reference ID\",\"Credit Transactional Fee\",\"Credit Promotional Fee\",\"Credit Term\"\n\
\"SB\",\"3W487768B3782210S\",\"INV-A10023\",\"\",\"\",\"T0006\",2024/08/20 00:01:17 -0700,2024/08/20 00:01:17 -0700,\"CR\",4999,\"USD\",\"DR\",224,\"USD\",\"order_A10023\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n\
\"SB\",\"9JP00000000000001\",\"\",\"\",\"\",\"T0006\",2024/08/20 01:00:00 -0700,2024/08/20 01:00:00 -0700,\"CR\",120000,\"JPY\",\"\",,\"\",\"ord_jp\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n\
\"SB\",\"5P914601XX9466815\",\"INV-A10023\",\"3W487768B3782210S\",\"TXN\",\"T1107\",2024/08/20 05:00:00 -0700,2024/08/20 05:00:00 -0700,\"DR\",4999,\"USD\",\"CR\",0,\"USD\",\"order_A10023\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n\
\"SB\",\"BAD0000000000001\",\"\",\"\",\"\",\"T0006\",2024/08/20 06:00:00 -0700,2024/08/20 06:00:00 -0700,\"XX\",100,\"USD\",\"\",,\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"\n\
\"SF\",\"USD\",0,0,0,0,\"CR\",0,\"CR\",0,\"CR\",0,\"CR\",0,\"CR\",0,\"CR\",0,8\n\
\"SC\",3\n\
\"RF\",3\n\
\"RC\",3\n\
\"FF\",3\n";

    /// Counted (the fetch step's parse), the report gives the same counts and keeps no record.
    #[test]
    fn a_settlement_report_counted_gives_the_counts_of_one_kept() {
        let kept = parse_settlement_csv("k", 0, STL.as_bytes(), false, Keep::Records)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let counted = parse_settlement_csv("k", 0, STL.as_bytes(), false, Keep::Counts)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(counted.records.is_empty());
        assert_eq!((counted.record_count(), counted.invalid_count()), (4, 1));
        assert_eq!((kept.record_count(), kept.invalid_count()), (4, 1));
        assert_eq!(counted.invalid, kept.invalid);
    }

    #[test]
    fn settlement_report_hundredths_with_cr_dr() {
        let p = parse_settlement_csv("k", 0, STL.as_bytes(), false, Keep::Records)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 3, "{:?}", p.invalid);
        assert_eq!(
            (p.records[0].amount().minor, p.records[0].fee()),
            (4999, Some(224))
        );
        assert_eq!(p.records[1].amount().to_string(), "1200"); // JPY is x100 in STL too
        assert_eq!(p.records[1].fee(), None);
        assert_eq!(
            (p.records[2].kind, p.records[2].amount().minor),
            (Kind::Refund, -4999)
        );
        assert_eq!(p.records[0].occurred_at(), Some(1_724_137_277_000)); // 2024-08-20T07:01:17Z
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].1.location.line, 8);
        assert_eq!(
            p.invalid[0].1.field.as_deref(),
            Some("transaction debit or credit")
        );
    }

    #[test]
    fn settlement_report_with_crlf_counts_lines_the_same() {
        let crlf = STL.replace('\n', "\r\n");
        let p = parse_settlement_csv("k", 0, crlf.as_bytes(), true, Keep::Records)
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(p.records.len(), 3);
        assert_eq!(p.invalid[0].1.location.line, 8);
    }

    #[test]
    fn t_codes_are_read_with_their_direction() {
        for (code, credit, kind) in [
            ("T0000", true, Kind::Charge),
            ("T0000", false, Kind::Transfer),
            ("T0001", false, Kind::Transfer),
            ("T0006", true, Kind::Charge),
            ("T0006", false, Kind::Transfer),
            ("T0106", false, Kind::Fee),
            ("T0200", false, Kind::Conversion),
            ("T0300", true, Kind::Funding),
            ("T0400", false, Kind::Payout),
            ("T0500", false, Kind::Transfer),
            ("T0600", false, Kind::Payout),
            ("T0700", true, Kind::Funding),
            ("T0800", true, Kind::Adjustment),
            ("T0900", true, Kind::Adjustment),
            ("T1000", false, Kind::Transfer),
            ("T1106", false, Kind::Dispute),
            ("T1107", false, Kind::Refund),
            ("T1107", true, Kind::Transfer),
            ("T1108", true, Kind::Fee),
            ("T1110", false, Kind::Hold),
            ("T1111", true, Kind::Hold),
            ("T1114", true, Kind::Transfer),
            ("T1200", false, Kind::Adjustment),
            ("T1201", false, Kind::Dispute),
            ("T1202", true, Kind::Dispute),
            ("T1300", true, Kind::Authorization),
            ("T1400", true, Kind::Adjustment),
            ("T1503", false, Kind::Hold),
            ("T1600", true, Kind::Funding),
            ("T1700", false, Kind::Payout),
            ("T1800", false, Kind::Payout),
            ("T1900", false, Kind::Adjustment),
            ("T2000", false, Kind::Transfer),
            ("T2101", false, Kind::Hold),
            ("T2201", true, Kind::Transfer),
            ("T9900", true, Kind::Other),
            ("", true, Kind::Other),
        ] {
            assert_eq!(kind_of(code, credit), kind, "{code} credit={credit}");
        }
    }

    #[test]
    fn both_references_are_candidates() {
        let p = parse_api_page("k", 0, PAGE).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            p.records[0].references().collect::<Vec<_>>(),
            ["order_A10023", "INV-A10023"]
        );
        assert_eq!(p.records[1].references().collect::<Vec<_>>(), ["INV-A10023"]);
    }

    #[test]
    fn truncated_settlement_report_fails_whole() {
        let cut = &STL[..STL.find("\"SF\"").unwrap_or(0)];
        assert!(
            parse_settlement_csv("inbox/paypal/x/STL.CSV", 0, cut.as_bytes(), false, Keep::Records).is_err()
        );
    }
}
