#![no_main]
//! libFuzzer target `zip`: see crates/fuzz for the entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relais_fuzz::run("zip", data);
});
