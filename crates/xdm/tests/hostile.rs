//! Archives refused as a whole: each fatal code, from an archive built for the purpose.

mod common;

use common::*;
use relais_core::{Limits, Location};
use relais_xdm::raw::{RawEntry, RawZip, deflated_zeros};
use relais_xdm::{XdmError, read_package};

/// A valid package plus one hostile entry.
fn package_plus(entry: RawEntry) -> Vec<u8> {
    let mut z = RawZip::from_files(&files());
    z.push(entry);
    z.to_bytes()
}

#[test]
fn raw_zip_of_the_package_reads_like_the_zip_crate_one() {
    // RawZip is the tool of every test below: it must write archives the reader accepts.
    let pkg = read(&RawZip::from_files(&files()).to_bytes());
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    assert_eq!(pkg.documents().next().unwrap().content, ldl_ses());
}

#[test]
fn not_a_zip() {
    for input in [
        &b""[..],
        b"hello, not a zip",
        &ldl_ses()[..],
        &[0x50, 0x4b, 0x03, 0x04, 0, 0],
    ] {
        let err = refuse(input);
        assert_eq!(err.code(), "XDM-NOT-A-ZIP", "{err}");
        assert!(matches!(err, XdmError::NotAZip { .. }));
    }
    // A real archive cut in half has lost its central directory.
    let zip = builder().build().unwrap().zip;
    assert_eq!(refuse(&zip[..zip.len() / 2]).code(), "XDM-NOT-A-ZIP");
}

#[test]
fn archive_over_max_zip_bytes() {
    let zip = builder().build().unwrap().zip;
    let limits = Limits {
        max_zip_bytes: 1000,
        ..Limits::default()
    };
    let err = read_package(&zip, &limits).unwrap_err();
    assert_eq!(err.code(), "ZIP-TOO-LARGE");
    assert!(read_package(&zip, &Limits::default()).is_ok());
}

#[test]
fn five_thousand_entries() {
    let mut z = RawZip::from_files(&files());
    for i in 0..5000 {
        z.push(RawEntry::stored(
            format!("IHE_XDM/SUBSET01/X{i:05}.TXT"),
            Vec::new(),
        ));
    }
    let err = refuse(&z.to_bytes());
    assert_eq!(err.code(), "ZIP-TOO-MANY-ENTRIES");
    assert!(
        matches!(
            err,
            XdmError::TooManyEntries {
                count: 5006,
                limit: 1000
            }
        ),
        "{err:?}"
    );
    // The check after parsing the directory agrees with the end-record pre-check.
    let limits = Limits {
        max_zip_entries: 5,
        ..Limits::default()
    };
    let err = read_package(&builder().build().unwrap().zip, &limits).unwrap_err();
    assert_eq!(err.code(), "ZIP-TOO-MANY-ENTRIES");
}

#[test]
fn path_traversal_in_every_form() {
    for name in [
        "../evil",
        "IHE_XDM/SUBSET01/../../../evil",
        "/etc/passwd",
        "C:\\Windows\\evil.dll",
        "C:/evil",
        "..\\..\\evil",
        "IHE_XDM\\..\\..\\evil",
        "\\\\server\\share\\evil",
    ] {
        let err = refuse(&package_plus(RawEntry::stored(name, b"x".to_vec())));
        assert_eq!(err.code(), "ZIP-PATH-TRAVERSAL", "{name:?}: {err}");
        let finding = err.to_finding();
        assert_eq!(finding.location, Location::ZipEntry(name.to_string()));
        assert!(
            !finding.message.contains(name),
            "the message must not quote the entry name"
        );
    }
}

#[test]
fn declared_bomb_refused_before_inflating() {
    // 1 GiB of zeros in about 1 MB, header honest about the size.
    let (stream, crc) = deflated_zeros(1 << 30);
    assert!(
        stream.len() < 2 << 20,
        "bomb payload is {} bytes",
        stream.len()
    );
    let err = refuse(&package_plus(RawEntry::precompressed(
        "IHE_XDM/SUBSET01/BOMB.XML",
        stream,
        1 << 30,
        crc,
    )));
    assert_eq!(err.code(), "ZIP-BOMB");
    assert!(err.to_string().contains("declared"), "{err}");
}

#[test]
fn lying_header_bomb_stops_at_the_cap() {
    // Same payload, header claiming 1000 bytes: found while inflating, at byte 1001.
    let (stream, crc) = deflated_zeros(1 << 30);
    let err = refuse(&package_plus(
        RawEntry::precompressed("IHE_XDM/SUBSET01/BOMB.XML", stream, 1 << 30, crc)
            .declare_size(1000),
    ));
    assert_eq!(err.code(), "ZIP-BOMB", "{err}");
    assert!(
        err.to_string()
            .contains("inflates beyond the 1000 bytes its header declares"),
        "{err}"
    );
}

#[test]
fn ratio_bomb_under_the_size_limits() {
    // 10 MiB of zeros: under every size limit, but a ratio of about 1000.
    let (stream, crc) = deflated_zeros(10 << 20);
    let err = refuse(&package_plus(RawEntry::precompressed(
        "IHE_XDM/SUBSET01/Z.XML",
        stream,
        10 << 20,
        crc,
    )));
    assert_eq!(err.code(), "ZIP-BOMB");
    assert!(err.to_string().contains("ratio"), "{err}");
    // With the ratio limit raised, the same entry is read (and reported as unreferenced).
    let (stream, crc) = deflated_zeros(10 << 20);
    let limits = Limits {
        max_zip_ratio: 5000,
        ..Limits::default()
    };
    let zip = package_plus(RawEntry::precompressed(
        "IHE_XDM/SUBSET01/Z.XML",
        stream,
        10 << 20,
        crc,
    ));
    let pkg = read_package(&zip, &limits).expect("within the raised limits");
    assert!(codes(&pkg).contains(&"XDM-UNREFERENCED-FILE".to_string()));
}

#[test]
fn total_size_limit_declared_and_actual() {
    let limits = Limits {
        max_zip_total_bytes: 1 << 20,
        ..Limits::default()
    };
    let big = vec![b'a'; 600 * 1024];
    // Declared sizes add up above the total.
    let mut z = RawZip::new();
    z.push(RawEntry::stored("A.BIN", big.clone()));
    z.push(RawEntry::stored("B.BIN", big.clone()));
    let err = read_package(&z.to_bytes(), &limits).unwrap_err();
    assert_eq!(err.code(), "ZIP-BOMB");
    assert!(err.to_string().contains("total"), "{err}");
    // The second entry lies about its size to stay under the total: caught while reading.
    let mut z = RawZip::new();
    z.push(RawEntry::deflated("A.BIN", &big));
    z.push(RawEntry::deflated("B.BIN", &big).declare_size(10));
    let err = read_package(&z.to_bytes(), &limits).unwrap_err();
    assert_eq!(err.code(), "ZIP-BOMB");
    assert!(err.to_string().contains("its header declares"), "{err}");
}

#[test]
fn per_entry_limit() {
    let limits = Limits {
        max_zip_entry_bytes: 1000,
        ..Limits::default()
    };
    let err = read_package(&builder().build().unwrap().zip, &limits).unwrap_err();
    assert_eq!(err.code(), "ZIP-BOMB");
    assert!(err.to_string().contains("per-entry"), "{err}");
}

#[test]
fn encrypted_entry() {
    let err = refuse(&package_plus(
        RawEntry::stored("IHE_XDM/SUBSET01/SECRET.XML", b"x".to_vec()).encrypted(),
    ));
    assert_eq!(err.code(), "ZIP-ENCRYPTED");
    assert_eq!(err.entry_path(), Some("IHE_XDM/SUBSET01/SECRET.XML"));
}

#[test]
fn unsupported_compression() {
    for method in [
        12u16, /* bzip2 */
        14,    /* LZMA */
        93,    /* zstd */
        1,     /* shrink */
    ] {
        let entry =
            RawEntry::stored("IHE_XDM/SUBSET01/X.XML", b"xxxx".to_vec()).with_method(method);
        let err = refuse(&package_plus(entry));
        assert_eq!(
            err.code(),
            "ZIP-UNSUPPORTED-COMPRESSION",
            "method {method}: {err}"
        );
    }
}

#[test]
fn duplicate_entry_names() {
    let mut z = RawZip::from_files(&files());
    z.push(RawEntry::stored(DOC1_PATH, b"<other/>".to_vec()));
    assert_eq!(refuse(&z.to_bytes()).code(), "ZIP-DUPLICATE-ENTRY");
}

#[test]
fn corrupt_entries() {
    // Wrong CRC.
    let mut entry = RawEntry::deflated("IHE_XDM/SUBSET01/X.XML", b"<x/>");
    entry.crc32 ^= 1;
    assert_eq!(refuse(&package_plus(entry)).code(), "ZIP-CORRUPT");
    // Deflate data that is not deflate.
    let entry = RawEntry::precompressed("IHE_XDM/SUBSET01/X.XML", vec![0xff; 64], 100, 0);
    assert_eq!(refuse(&package_plus(entry)).code(), "ZIP-CORRUPT");
    // Header declares more than the content holds.
    let entry = RawEntry::deflated("IHE_XDM/SUBSET01/X.XML", b"<x/>").declare_size(50);
    assert_eq!(refuse(&package_plus(entry)).code(), "ZIP-CORRUPT");
}

#[test]
fn every_fatal_error_has_a_cataloged_code() {
    let all: Vec<&str> = relais_xdm::codes::ALL.iter().map(|c| c.as_str()).collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "duplicate codes in the catalogue");
    for e in [
        refuse(b"x"),
        refuse(&package_plus(RawEntry::stored("../x", Vec::new()))),
        refuse(&package_plus(RawEntry::stored("E", Vec::new()).encrypted())),
    ] {
        assert!(
            all.contains(&e.code().as_str()),
            "{} not in codes::ALL",
            e.code()
        );
        assert!(e.to_finding().is_error());
    }
}
