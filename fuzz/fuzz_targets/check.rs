#![no_main]
//! libFuzzer target `check`: see crates/fuzz for the entry point.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relais_fuzz::run("check", data);
});
