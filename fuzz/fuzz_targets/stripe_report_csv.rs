#![no_main]
//! The Stripe itemized report parser, with the benchmark kit's header.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        let csv = format!("balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,charge_id,payment_intent_id,description,payment_metadata[order_id]\n{body}");
        let _ = recon_sources::stripe::parse_report_csv("fuzz/activity.csv", 0, &csv);
    }
});
