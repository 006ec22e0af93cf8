#![no_main]
//! Any bytes through format detection and whichever parser it picks: never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = recon_sources::parse_object("fuzz/object", 0, data);
});
