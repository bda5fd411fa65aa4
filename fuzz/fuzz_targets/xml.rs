#![no_main]
//! libFuzzer target `xml`: see crates/fuzz for the entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relais_fuzz::run("xml", data);
});
