//! A rough leak check of the libxml2 FFI: resident memory stays flat over 1000 validations.
//! Alone in its test binary so that no other test allocates meanwhile.

use relais_cda::XsdValidator;

/// Resident set size of this process, in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[test]
fn thousand_validations_do_not_grow_memory() {
    let xsd = relais_testsupport::ans_file("xsd/CDA_extended.xsd");
    let validator = XsdValidator::load(&xsd).expect("load");
    let valid = std::fs::read(relais_testsupport::ans_file(
        "cda-examples/BIO-TROD_2024.01_Angine.xml",
    ))
    .unwrap();
    let text = String::from_utf8(valid.clone()).unwrap();
    // An invalid variant exercises the error path (messages collected, redacted).
    let invalid = text
        .replacen(
            "<realmCode code=\"FR\"/>",
            "<realmCode code=\"FR\"/><bogus/><bogus2/>",
            1,
        )
        .into_bytes();
    assert_ne!(invalid, valid);
    let run = |n: usize| {
        for i in 0..n {
            let doc = if i % 2 == 0 { &valid } else { &invalid };
            let findings = validator.validate(doc);
            assert_eq!(findings.is_empty(), i % 2 == 0);
        }
    };
    run(200); // warm-up: allocator pools, libxml2 dictionaries
    let before = rss_bytes();
    run(1000);
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    // One leaked parsed document per call would be tens of MB here (the document is 25 KB of
    // XML, a libxml2 tree is several times that): allow 8 MB of allocator noise.
    assert!(
        growth < 8 * 1024 * 1024,
        "RSS grew by {growth} bytes over 1000 validations ({before} -> {after})"
    );
}
