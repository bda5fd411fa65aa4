//! Helpers shared by the integration tests: the ANS examples, and edits of them.
#![allow(dead_code)]

use relais_core::{Finding, Limits, Severity};
use relais_hl7::Message;

/// The names of the ANS HL7v2 examples, sorted.
pub fn example_names() -> Vec<String> {
    let dir = relais_testsupport::ans_dir().join("hl7v2-examples");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read hl7v2-examples")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no HL7 example in the ANS material");
    v
}

/// The bytes of one ANS example.
pub fn example(name: &str) -> Vec<u8> {
    std::fs::read(relais_testsupport::ans_file(&format!(
        "hl7v2-examples/{name}"
    )))
    .expect("read example")
}

/// One ANS example as text, segments split.
pub fn segments(name: &str) -> Vec<String> {
    String::from_utf8(example(name))
        .expect("examples are UTF-8")
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

pub const INIT: &str = "message_MDM__LPS_MSS_CR_Radio_INIT_N1.er7";
pub const RPLC: &str = "message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7";
pub const ORU: &str = "message_ORU_CR_Bio_INIT_N1_N3.hl7";
pub const ACK: &str = "ack.er7";
pub const Z02: &str = "ZAM_Z02_reception_MSS.hl7";
pub const Z03: &str = "ZAM_Z03_lecture_MSS.hl7";
pub const A01: &str = "admission.er7";
pub const A03: &str = "sortie.er7";

pub fn parse(bytes: &[u8]) -> Message {
    relais_hl7::parse(bytes, &Limits::default()).expect("parses")
}

pub fn parse_segments(segs: &[String]) -> Message {
    parse(segs.join("\r").as_bytes())
}

/// Set field `n` of the `occ`-th segment named `name` (MSH counts MSH-1 as the separator).
pub fn set_field(segs: &mut [String], name: &str, occ: usize, n: usize, value: &str) {
    let idx = segs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.starts_with(name))
        .nth(occ - 1)
        .map(|(i, _)| i)
        .expect("segment present");
    let mut parts: Vec<String> = segs[idx].split('|').map(str::to_string).collect();
    let pos = if name == "MSH" { n - 1 } else { n };
    while parts.len() <= pos {
        parts.push(String::new());
    }
    parts[pos] = value.to_string();
    segs[idx] = parts.join("|");
}

/// Remove the `occ`-th segment named `name`.
pub fn remove(segs: &mut Vec<String>, name: &str, occ: usize) {
    let idx = segs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.starts_with(name))
        .nth(occ - 1)
        .map(|(i, _)| i)
        .expect("segment present");
    segs.remove(idx);
}

/// Findings as `(severity, code, location)` for compact assertions.
pub fn summary(findings: &[Finding]) -> Vec<(Severity, String, String)> {
    findings
        .iter()
        .map(|f| (f.severity, f.code.to_string(), f.location.to_string()))
        .collect()
}

/// The error findings only.
pub fn errors(findings: &[Finding]) -> Vec<(String, String)> {
    findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| (f.code.to_string(), f.location.to_string()))
        .collect()
}

/// True when some finding has this code and location (`HL7 TXA[1]-12`).
pub fn has(findings: &[Finding], code: &str, location: &str) -> bool {
    findings
        .iter()
        .any(|f| f.code == code && f.location.to_string() == location)
}
