//! Helpers shared by the integration tests: the ANS documents and programmatic edits of them.
#![allow(dead_code)]

use relais_core::{Finding, Limits, Location};

/// The text of an ANS CDA example.
pub fn example(name: &str) -> String {
    let path = relais_testsupport::ans_file(&format!("cda-examples/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The discharge letter example, the base of the invalid variants.
pub fn ldl_ses() -> String {
    example("LDL-SES_2022.01.xml")
}

/// `text` with the first occurrence of `from` replaced; panics when `from` is absent, so that a
/// test cannot silently test the unmodified document.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the document does not contain {from:?}"
    );
    text.replacen(from, to, 1)
}

/// `text` without the first element found at `path` (local names, from the root's children),
/// located with roxmltree: e.g. `["recordTarget", "patientRole", "patient", "birthTime"]`.
pub fn remove_element(text: &str, path: &[&str]) -> String {
    let doc = roxmltree::Document::parse(text).expect("the base document parses");
    let mut node = doc.root_element();
    for name in path {
        node = node
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == *name)
            .unwrap_or_else(|| panic!("no element {name} on the path {path:?}"));
    }
    let range = node.range();
    format!("{}{}", &text[..range.start], &text[range.end..])
}

/// Every element at `path` removed (all matches of the last step, under the first matches of the
/// previous steps).
pub fn remove_all(text: &str, path: &[&str]) -> String {
    let mut out = text.to_string();
    loop {
        let doc = roxmltree::Document::parse(&out).expect("parses");
        let (last, parents) = path.split_last().expect("non-empty path");
        let mut node = doc.root_element();
        for name in parents {
            node = node
                .children()
                .find(|c| c.is_element() && c.tag_name().name() == *name)
                .expect("parent");
        }
        let Some(target) = node
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == *last)
        else {
            return out;
        };
        let range = target.range();
        out = format!("{}{}", &out[..range.start], &out[range.end..]);
    }
}

/// Reads text that must be a CDA document.
pub fn read_ok(text: &str) -> relais_cda::CdaDocument {
    relais_cda::read(text.as_bytes(), &Limits::default()).expect("the variant still reads as CDA")
}

/// Header findings of a text.
pub fn header_findings(text: &str) -> Vec<Finding> {
    relais_cda::check_header(&read_ok(text))
}

pub fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings.iter().filter(|f| f.is_error()).collect()
}

/// The findings with that code; panics (listing what was found) when there is none.
pub fn with_code<'a>(findings: &'a [Finding], code: &str) -> Vec<&'a Finding> {
    let v: Vec<&Finding> = findings.iter().filter(|f| f.code == code).collect();
    assert!(
        !v.is_empty(),
        "expected a {code} finding, got: {:#?}",
        summary(findings)
    );
    v
}

pub fn summary(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} {} @ {} — {}", f.severity, f.code, f.location, f.message))
        .collect()
}

pub fn xpath(f: &Finding) -> &str {
    match &f.location {
        Location::XPath(x) => x,
        other => panic!("expected an XPath location, got {other:?}"),
    }
}

/// `text` with the value of attribute `attr` of the first element at `path` set to `value`.
pub fn set_attribute(text: &str, path: &[&str], attr: &str, value: &str) -> String {
    let doc = roxmltree::Document::parse(text).expect("the base document parses");
    let mut node = doc.root_element();
    for name in path {
        node = node
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == *name)
            .unwrap_or_else(|| panic!("no element {name} on the path {path:?}"));
    }
    let a = node
        .attributes()
        .find(|a| a.name() == attr)
        .unwrap_or_else(|| panic!("no attribute {attr}"));
    let range = a.range_value();
    format!("{}{}{}", &text[..range.start], value, &text[range.end..])
}
