//! The INS (Identifiant national de santé): its kinds, OIDs and value checks.
//!
//! The INS matricule is the person's NIR (or NIA while waiting for one): 13 characters then a
//! 2-digit control key. In a CDA it is a `recordTarget/patientRole/id` whose root names the kind.

use serde::Serialize;
use std::fmt;

/// The OID arc under which the INS kinds (and a few related identifiers) are registered.
pub const INS_ARC: &str = "1.2.250.1.213.1.4.";

/// OIDs of the same arc that are legitimately found in `patientRole/id` and are not INS: the NIR
/// (.13) and NIA (.14) used as social security number (médico-social models such as CSE-CS24).
pub const NON_INS_KNOWN_OIDS: &[&str] = &["1.2.250.1.213.1.4.13", "1.2.250.1.213.1.4.14"];

/// Which INS a patient identifier is, from its OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum InsKind {
    /// INS-NIR, the qualified production identifier (1.2.250.1.213.1.4.8).
    NirQualified,
    /// INS-NIA, the waiting number of a person without NIR yet (1.2.250.1.213.1.4.9).
    Nia,
    /// INS-NIR of test (1.2.250.1.213.1.4.10), used by the ANS examples.
    NirTest,
    /// INS-NIR of demonstration (1.2.250.1.213.1.4.11).
    Demo,
}

impl InsKind {
    /// Every kind, in OID order.
    pub const ALL: [InsKind; 4] = [
        InsKind::NirQualified,
        InsKind::Nia,
        InsKind::NirTest,
        InsKind::Demo,
    ];

    /// The OID of this kind (the `root` of the CDA identifier, the assigning authority in XDS).
    pub fn oid(self) -> &'static str {
        match self {
            InsKind::NirQualified => "1.2.250.1.213.1.4.8",
            InsKind::Nia => "1.2.250.1.213.1.4.9",
            InsKind::NirTest => "1.2.250.1.213.1.4.10",
            InsKind::Demo => "1.2.250.1.213.1.4.11",
        }
    }

    /// The kind named by an OID, if it is one of the four INS OIDs.
    pub fn from_oid(oid: &str) -> Option<InsKind> {
        InsKind::ALL.into_iter().find(|k| k.oid() == oid.trim())
    }

    /// True for identifiers of production (NIR or NIA), false for test and demonstration ones.
    pub fn is_production(self) -> bool {
        matches!(self, InsKind::NirQualified | InsKind::Nia)
    }
}

impl fmt::Display for InsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InsKind::NirQualified => "INS-NIR",
            InsKind::Nia => "INS-NIA",
            InsKind::NirTest => "INS-NIR (test)",
            InsKind::Demo => "INS-NIR (demo)",
        })
    }
}

/// An INS: its kind and its matricule (15 characters).
///
/// `Debug` does not print the matricule: it is patient data.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Ins {
    pub kind: InsKind,
    pub value: String,
}

impl fmt::Debug for Ins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ins")
            .field("kind", &self.kind)
            .field(
                "value",
                &format_args!("<{} chars>", self.value.chars().count()),
            )
            .finish()
    }
}

/// What is wrong with an INS matricule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsValueProblem {
    /// Not 15 characters of the NIR alphabet (digits, `2A`/`2B` as Corsican department).
    Format,
    /// Well formed, but the 2-digit key is not 97 - (first 13 digits mod 97).
    Key,
}

/// Checks an INS matricule: 15 characters, digits except a Corsican department `2A`/`2B` at
/// positions 6-7, and the control key. For the key, `2A` counts as 19 and `2B` as 18, as INSEE
/// does. Returns `None` when the value is correct.
pub fn check_ins_value(value: &str) -> Option<InsValueProblem> {
    let b = value.as_bytes();
    if b.len() != 15 {
        return Some(InsValueProblem::Format);
    }
    // The Corsican departments 2A and 2B count as 19 and 18 in the key computation.
    let mut digits = [0u8; 15];
    digits.copy_from_slice(b);
    match &b[5..7] {
        b"2A" | b"2a" => digits[5..7].copy_from_slice(b"19"),
        b"2B" | b"2b" => digits[5..7].copy_from_slice(b"18"),
        _ => {}
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Some(InsValueProblem::Format);
    }
    let number = |s: &[u8]| s.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    let body = number(&digits[..13]);
    let key = number(&digits[13..]);
    if 97 - (body % 97) == key {
        None
    } else {
        Some(InsValueProblem::Key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_round_trip() {
        for k in InsKind::ALL {
            assert_eq!(InsKind::from_oid(k.oid()), Some(k));
        }
        assert_eq!(InsKind::from_oid("1.2.250.1.213.1.4.99"), None);
        assert_eq!(InsKind::from_oid("1.2.250.1.213.1.4.13"), None);
    }

    #[test]
    fn ans_test_ins_is_valid() {
        assert_eq!(check_ins_value("279035121518989"), None);
        assert_eq!(check_ins_value("277076322082910"), None);
    }

    #[test]
    fn wrong_key_and_format() {
        assert_eq!(
            check_ins_value("279035121518988"),
            Some(InsValueProblem::Key)
        );
        assert_eq!(
            check_ins_value("27903512151898"),
            Some(InsValueProblem::Format)
        );
        assert_eq!(
            check_ins_value("2790351215189X9"),
            Some(InsValueProblem::Format)
        );
        assert_eq!(check_ins_value(""), Some(InsValueProblem::Format));
        assert_eq!(
            check_ins_value("é79035121518989"),
            Some(InsValueProblem::Format)
        );
    }

    #[test]
    fn corsica() {
        // 1 85 05 2A 004 123 + key computed with 2A -> 19.
        let body: u64 = 1_850_519_004_123;
        let key = 97 - body % 97;
        let v = format!("185052A004123{key:02}");
        assert_eq!(check_ins_value(&v), None);
        let wrong = format!("185052A004123{:02}", (key % 97) + 1);
        assert_eq!(check_ins_value(&wrong), Some(InsValueProblem::Key));
        // A letter elsewhere is not accepted.
        assert_eq!(
            check_ins_value("1850A2A00412301"),
            Some(InsValueProblem::Format)
        );
    }

    #[test]
    fn debug_hides_value() {
        let ins = Ins {
            kind: InsKind::NirTest,
            value: "279035121518989".into(),
        };
        let s = format!("{ins:?}");
        assert!(!s.contains("2790351"), "{s}");
    }
}
