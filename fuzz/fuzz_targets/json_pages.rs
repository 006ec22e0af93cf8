#![no_main]
//! Stripe, PayPal and Square API page parsers on any text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = recon_sources::stripe::parse_api_page("fuzz/page.json", 0, text);
        let _ = recon_sources::paypal::parse_api_page("fuzz/page.json", 0, text);
        let _ = recon_sources::square::parse_page("fuzz/page.json", 0, text);
    }
});
