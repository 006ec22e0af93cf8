#![no_main]
//! Money parsing: never a panic, and whatever parses formats back to the same value.
use libfuzzer_sys::fuzz_target;
use recon_core::{Currency, Money};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for code in ["USD", "JPY", "KWD", "CLF"] {
            if let Ok(c) = Currency::parse(code) {
                if let Ok(m) = Money::parse_major(text, c) {
                    assert_eq!(Money::parse_major(&m.to_string(), c), Ok(m));
                }
            }
        }
        let _ = Currency::parse(text);
    }
});
