//! The parsers' fast paths agree with the general ones: `Keys::from_parts` with `collect()`, the currency
//! lookup table with the ISO list.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use recon_core::{Currency, Keys};

proptest! {
    #[test]
    fn keys_from_parts_equals_collect(parts in prop::collection::vec("[ a-c\\x00]{0,4}", 0..12)) {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let collected: Keys = refs.iter().collect();
        prop_assert_eq!(Keys::from_parts(&refs), collected);
    }
}

#[test]
fn every_three_letter_code_parses_as_the_iso_list_says() {
    let known: std::collections::BTreeMap<String, u8> = Currency::all()
        .map(|c| (c.code().to_string(), c.exponent()))
        .collect();
    assert!(known.len() > 150);
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            for c in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b, c]).unwrap();
                let parsed = Currency::parse(&code).ok().map(|c| c.exponent());
                assert_eq!(parsed, known.get(&code).copied(), "{code}");
                let lower = code.to_ascii_lowercase();
                assert_eq!(
                    Currency::parse(&lower).ok().map(|c| c.exponent()),
                    parsed,
                    "{lower}"
                );
            }
        }
    }
    assert!(
        Currency::parse("US").is_err() && Currency::parse("U$D").is_err() && Currency::parse("ÜSD").is_err()
    );
}
