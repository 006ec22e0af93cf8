#![no_main]
//! The ledger CSV and JSON Lines parsers, with a valid header so rows get exercised.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let csv = format!("ledger_id,processor,processor_txn_id,order_id,type,amount,currency,status,booked_at\n{body}");
        let _ = recon_sources::ledger::parse_csv("fuzz/ledger.csv", 0, &csv);
        let _ = recon_sources::ledger::parse_jsonl("fuzz/ledger.jsonl", 0, body);
    }
});
