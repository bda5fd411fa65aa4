//! Property tests: hostile bytes never make the reader panic, and every outcome carries a
//! catalogued code.

mod common;

use common::*;
use proptest::prelude::*;
use relais_core::Limits;
use relais_xdm::raw::{RawEntry, RawZip};
use relais_xdm::{fuzz_entry, fuzz_metadata, read_package};
use std::sync::LazyLock;

/// The LDL-SES package twice: deflated by the zip crate, and stored by RawZip (so that
/// mutations reach the central directory, headers and names rather than only deflate data).
static BASES: LazyLock<[Vec<u8>; 2]> = LazyLock::new(|| {
    let files = files();
    let mut stored = RawZip::new();
    for (name, data) in &files {
        stored.push(RawEntry::stored(name, data.clone()));
    }
    [builder().build().unwrap().zip, stored.to_bytes()]
});

static METADATA: LazyLock<Vec<u8>> = LazyLock::new(|| {
    files()
        .into_iter()
        .find(|(n, _)| n == METADATA_PATH)
        .unwrap()
        .1
});

fn known(code: &str) -> bool {
    code.starts_with("XML-") || relais_xdm::codes::ALL.iter().any(|c| c.as_str() == code)
}

fn check_outcome(bytes: &[u8]) -> Result<(), TestCaseError> {
    match read_package(bytes, &Limits::default()) {
        Ok(pkg) => {
            for f in &pkg.findings {
                prop_assert!(known(f.code.as_str()), "uncatalogued finding {}", f.code);
            }
        }
        Err(e) => prop_assert!(known(e.code().as_str()), "uncatalogued error {}", e.code()),
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, v)| Mutation::Insert(p, v)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
    ]
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if data.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(p, b) => {
                let i = p % data.len();
                data[i] ^= b.max(&1);
            }
            Mutation::Truncate(p) => data.truncate(p % data.len()),
            Mutation::Insert(p, v) => {
                let i = p % (data.len() + 1);
                data.splice(i..i, v.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let i = p % data.len();
                let end = (i + n).min(data.len());
                data.drain(i..end);
            }
        }
    }
    data
}

/// Fragments that make metadata mutations meaningful rather than random noise.
const TOKENS: &[&str] = &[
    "<rim:Slot name=\"URI\"><rim:ValueList><rim:Value>../../x</rim:Value></rim:ValueList></rim:Slot>",
    "<rim:Slot name=\"URI\"><rim:ValueList><rim:Value>2|.XML</rim:Value><rim:Value>1|DOC0001</rim:Value></rim:ValueList></rim:Slot>",
    "<rim:Slot name=\"size\"><rim:ValueList><rim:Value>99999999999999999999999</rim:Value></rim:ValueList></rim:Slot>",
    "<rim:Slot name=\"hash\"><rim:ValueList/></rim:Slot>",
    "<rim:Slot name=\"creationTime\"><rim:ValueList><rim:Value> 2019\t</rim:Value><rim:Value>x</rim:Value></rim:ValueList></rim:Slot>",
    "<rim:ExtrinsicObject id=\"x\" status=\" \"/>",
    "<rim:RegistryPackage id=\"\"><rim:Classification classificationNode=\"urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd\"/></rim:RegistryPackage>",
    "<rim:Classification classificationScheme=\"urn:uuid:f0306f51-975f-434e-a61c-c59651d33983\" classifiedObject=\"x\"/>",
    "<rim:Classification classifiedObject=\"\" classificationNode=\"urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd\"/>",
    "<rim:ExternalIdentifier identificationScheme=\"urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427\" value=\"^^^\"/>",
    "<rim:ExternalIdentifier identificationScheme=\"urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab\" registryObject=\"x\" value=\" a&amp;b \"/>",
    "<rim:Association associationType=\"HasMember\" sourceObject=\"\" targetObject=\"x\"/>",
    "<rim:Name><rim:LocalizedString value=\"&#9;t&#10;&#13;\"/></rim:Name>",
    "<!-- c -->",
    "<![CDATA[<x>]]>",
    "&#x10FFFF;",
    "<!DOCTYPE x [<!ENTITY a \"aaaa\">]>",
    "]]>",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_package_bytes_never_panic(base in 0usize..2, mutations in proptest::collection::vec(mutation(), 1..6)) {
        let bytes = apply(BASES[base].clone(), &mutations);
        fuzz_entry(&bytes);
        check_outcome(&bytes)?;
    }

    #[test]
    fn mutated_metadata_never_panics(
        mutations in proptest::collection::vec(mutation(), 0..2),
        splices in proptest::collection::vec((any::<usize>(), 0..TOKENS.len()), 1..4),
    ) {
        let mut xml = apply(METADATA.clone(), &mutations);
        for (pos, t) in splices {
            // Splice at a tag boundary, so that many variants stay well-formed and reach the
            // ebRS reading rather than stopping at the XML parser.
            let boundaries: Vec<usize> = xml.iter().enumerate().filter(|(_, b)| **b == b'<').map(|(i, _)| i).collect();
            let i = if boundaries.is_empty() { 0 } else { boundaries[pos % boundaries.len()] };
            xml.splice(i..i, TOKENS[t].bytes());
        }
        // Parse, write back, parse again: the round trip must be stable.
        fuzz_metadata(&xml);
        // And inside a package whose ZIP layer is intact (correct CRCs).
        let mut f = files();
        set_file(&mut f, METADATA_PATH, xml);
        check_outcome(&RawZip::from_files(&f).to_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_entry(&bytes);
        fuzz_metadata(&bytes);
        check_outcome(&bytes)?;
    }
}

#[test]
fn fuzz_hooks_accept_the_valid_inputs() {
    fuzz_entry(&BASES[0]);
    fuzz_entry(&BASES[1]);
    fuzz_metadata(&METADATA);
    let pkg = read(&BASES[1]);
    assert!(
        pkg.findings.is_empty(),
        "stored base must be a valid package: {:#?}",
        pkg.findings
    );
}
