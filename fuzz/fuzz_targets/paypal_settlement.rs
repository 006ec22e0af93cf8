#![no_main]
//! The PayPal STL/TRR parser, after a real CH header row.
use libfuzzer_sys::fuzz_target;

const HEAD: &str = "\"RH\",2024/08/21 02:44:19 -0700,\"A\",\"X\",009,\n\"CH\",\"Transaction ID\",\"Invoice ID\",\"PayPal Reference ID\",\"PayPal Reference ID Type\",\"Transaction Event Code\",\"Transaction Initiation Date\",\"Transaction Completion Date\",\"Transaction  Debit or Credit\",\"Gross Transaction Amount\",\"Gross Transaction Currency\",\"Fee Debit or Credit\",\"Fee Amount\",\"Fee Currency\",\"Custom Field\"\n";

fuzz_target!(|data: &[u8]| {
    let mut all = HEAD.as_bytes().to_vec();
    all.extend_from_slice(data);
    let _ = recon_sources::paypal::parse_settlement_csv("fuzz/STL.CSV", 0, all.as_slice(), false, recon_sources::Keep::Records);
});
