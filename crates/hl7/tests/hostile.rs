//! Hostile input: broken delimiter lines, truncation, huge messages, random bytes.

mod common;

use common::*;
use proptest::prelude::*;
use relais_core::Limits;
use relais_hl7::{Hl7Error, embedded_documents, fuzz_entry, parse, validate_profile};
use std::time::{Duration, Instant};

fn code_of(bytes: &[u8]) -> String {
    parse(bytes, &Limits::default())
        .unwrap_err()
        .code()
        .to_string()
}

#[test]
fn broken_delimiter_lines_on_a_real_message() {
    let good = String::from_utf8(example(INIT)).unwrap();
    let body = &good["MSH|^~\\&".len()..];
    for head in [
        "MSH|^~",
        "MSH|^~\\",
        "MSH|^^\\&",
        "MSH|^~\\~",
        "MSH|^~a&",
        "MSH|1~\\&",
        "MSH|^~\\& ",
        "MSH|^~\t&",
        "MSH\r^~\\&",
    ] {
        let text = format!("{head}{body}");
        assert_eq!(code_of(text.as_bytes()), "HL7-BAD-DELIMITERS", "{head:?}");
    }
    // Truncated right after the delimiters.
    assert_eq!(code_of(b"MSH|^~"), "HL7-BAD-DELIMITERS");
    assert_eq!(code_of(b"MSH"), "HL7-BAD-DELIMITERS");
    let err = parse(b"MSH|^~\\&&|A", &Limits::default()).unwrap_err();
    assert!(matches!(err, Hl7Error::BadDelimiters { .. }));
    assert!(err.to_string().contains("MSH-2"), "{err}");
}

#[test]
fn not_hl7() {
    assert_eq!(code_of(b""), "HL7-NOT-HL7");
    assert_eq!(code_of(b"\x0b\x1c\r"), "HL7-NOT-HL7");
    assert_eq!(
        code_of(b"<?xml version='1.0'?><ClinicalDocument/>"),
        "HL7-NOT-HL7"
    );
    assert_eq!(code_of(b"PID|||123"), "HL7-NOT-HL7");
    let batch = parse(b"FHS|^~\\&|A\rBHS|^~\\&\rMSH|^~\\&|A", &Limits::default()).unwrap_err();
    assert!(batch.to_string().contains("batch"), "{batch}");
}

/// Cut the replacement MDM at many points: each prefix is refused with a code or parsed; a
/// parsed prefix validates without panicking, and a message cut before its metadata reports it.
#[test]
fn truncated_messages() {
    let full = example(RPLC);
    let mut cuts: Vec<usize> = (0..full.len()).step_by(997).collect();
    cuts.extend([3, 4, 7, 8, 9, 100, 200]);
    for cut in cuts {
        let prefix = &full[..cut];
        match parse(prefix, &Limits::default()) {
            Ok(m) => {
                let _ = validate_profile(&m);
                let _ = embedded_documents(&m);
            }
            Err(e) => {
                let code = e.code().to_string();
                assert!(
                    [
                        "HL7-BAD-DELIMITERS",
                        "HL7-NOT-HL7",
                        "HL7-SEGMENT-SYNTAX",
                        "HL7-ENCODING"
                    ]
                    .contains(&code.as_str()),
                    "cut {cut}: {code}"
                );
            }
        }
    }
    // Cut in the middle of the CDA's base64: the document is reported invalid or the structure
    // incomplete, never silently accepted.
    let text = String::from_utf8(full.clone()).unwrap();
    let inside = text.find("PENsaW5pY2FsRG9jdW1lbnQ").unwrap() + 100_001;
    let m = parse(&full[..inside], &Limits::default()).unwrap();
    let f = validate_profile(&m);
    assert!(
        has(&f, "HL7-METADATA-MISSING", "HL7 OBX"),
        "{:?}",
        summary(&f)
    );
    assert!(has(&f, "HL7-SEGMENT-MISSING", "HL7 PRT"));
    // A cut that leaves a non-multiple-of-4 base64 makes the document itself invalid.
    let m = parse(&full[..inside + 1], &Limits::default()).unwrap();
    let docs = embedded_documents(&m);
    assert!(docs[0].data.is_err() || !docs[0].warnings.is_empty());
}

/// A 100 MB input is refused on its size, before any scanning.
#[test]
fn hundred_megabytes_refused_cheaply() {
    let mut huge = example(INIT);
    huge.resize(100 * 1024 * 1024, b'A');
    let start = Instant::now();
    let err = parse(&huge, &Limits::default()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(err.code(), "HL7-TOO-LARGE");
    assert_eq!(
        err,
        Hl7Error::TooLarge {
            size: 100 * 1024 * 1024,
            limit: Limits::default().max_hl7_bytes
        }
    );

    // A configured limit applies the same way.
    let small = Limits {
        max_hl7_bytes: 1000,
        ..Limits::default()
    };
    assert_eq!(
        parse(&example(ORU), &small).unwrap_err().code(),
        "HL7-TOO-LARGE"
    );
}

/// Under the byte limit but made only of delimiters: refused before hl7-parser allocates a node
/// for each of them.
#[test]
fn delimiter_bomb_refused() {
    let mut bomb = b"MSH|^~\\&|A\rNTE|".to_vec();
    bomb.extend(std::iter::repeat_n(b'^', 2_000_000));
    let start = Instant::now();
    assert_eq!(code_of(&bomb), "HL7-TOO-LARGE");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn escapes_after_accents_do_not_panic() {
    // hl7-parser's own decoder panics on this; ours decodes it.
    let m = parse(
        "MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6\rNTE|1||éé\\F\\x\\H\\y\\XE9\\".as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        m.segment("NTE", 1).unwrap().value(3).as_deref(),
        Some("éé|xyé")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_entry(&data);
    }

    #[test]
    fn random_text_after_msh_never_panics(tail in "[ -~\r\n\u{e9}|^~&\\\\]{0,400}") {
        let data = format!("MSH|^~\\&|{tail}");
        fuzz_entry(data.as_bytes());
        if let Ok(m) = parse(data.as_bytes(), &Limits::default()) {
            // Every segment is reachable and every field readable.
            for seg in m.segments() {
                for n in 1..=seg.field_count() + 1 {
                    let _ = seg.value(n);
                }
            }
        }
    }

    #[test]
    fn mutated_examples_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
    ) {
        let name = [INIT, ORU, Z02, ACK, A01][which];
        let mut data = example(name);
        for (at, byte) in edits {
            let i = at.index(data.len());
            // Alternate overwrite, insertion of a delimiter, deletion.
            match byte % 3 {
                0 => data[i] = byte,
                1 => data.insert(i, b"|^~\\&\r\n"[usize::from(byte) % 7]),
                _ => { data.remove(i); }
            }
        }
        fuzz_entry(&data);
    }
}
