//! Address helpers: domains and MSSanté patient addresses (`<INS>@patient.mssante.fr`).
//!
//! A patient address carries the patient's INS in its local part: treat it as patient data
//! (never log it; [`redact`] gives a loggable form).

/// The domain of MSSanté patient mailboxes.
pub const PATIENT_DOMAIN: &str = "patient.mssante.fr";

/// Strips surrounding spaces and one pair of angle brackets (`<a@b.fr>` → `a@b.fr`).
fn bare(addr: &str) -> &str {
    let a = addr.trim();
    a.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a)
        .trim()
}

/// The domain of an address (after the last `@`), if the address has a non-empty local part
/// and domain. Accepts `a@b.fr` and `<a@b.fr>`.
pub fn domain_of(addr: &str) -> Option<&str> {
    let a = bare(addr);
    let at = a.rfind('@')?;
    let (local, domain) = (&a[..at], &a[at + 1..]);
    (!local.is_empty() && !domain.is_empty() && !domain.contains(char::is_whitespace))
        .then_some(domain)
}

/// True when the address is on the MSSanté patient domain (compared ignoring case).
pub fn is_patient_address(addr: &str) -> bool {
    domain_of(addr).is_some_and(|d| d.eq_ignore_ascii_case(PATIENT_DOMAIN))
}

/// The INS of a patient address when its local part is a well-formed matricule INS (15
/// characters: 13 of the NIR, Corsica written `2A`/`2B`, and a 2-digit key). The key is not
/// verified here.
pub fn patient_ins_of(addr: &str) -> Option<&str> {
    if !is_patient_address(addr) {
        return None;
    }
    let a = bare(addr);
    let local = &a[..a.rfind('@')?];
    let b = local.as_bytes();
    let well_formed = b.len() == 15
        && b.iter().enumerate().all(|(i, &c)| {
            c.is_ascii_digit() || (i == 6 && b[5] == b'2' && matches!(c, b'A' | b'B'))
        });
    well_formed.then_some(local)
}

/// A loggable form of an address: patient addresses become `<patient>@patient.mssante.fr`.
pub fn redact(addr: &str) -> String {
    if is_patient_address(addr) {
        format!("<patient>@{PATIENT_DOMAIN}")
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(domain_of("servicey@chb.mssante.fr"), Some("chb.mssante.fr"));
        assert_eq!(domain_of(" <a@b.fr> "), Some("b.fr"));
        assert_eq!(domain_of("\"x@y\"@b.fr"), Some("b.fr"));
        assert_eq!(domain_of("no-at"), None);
        assert_eq!(domain_of("@b.fr"), None);
        assert_eq!(domain_of("a@"), None);
    }

    #[test]
    fn patient_addresses() {
        let a = "146026322000196@patient.mssante.fr";
        assert!(is_patient_address(a));
        assert!(is_patient_address("146026322000196@PATIENT.MSSANTE.FR"));
        assert_eq!(patient_ins_of(a), Some("146026322000196"));
        assert_eq!(patient_ins_of("1460263A2000196@patient.mssante.fr"), None);
        assert_eq!(patient_ins_of("18502A2000196xx@patient.mssante.fr"), None);
        assert_eq!(
            patient_ins_of("185022A00019612@patient.mssante.fr"),
            Some("185022A00019612")
        );
        assert_eq!(patient_ins_of("146026322000196@chb.mssante.fr"), None);
        assert!(!is_patient_address("dr.x@chb.mssante.fr"));
        assert_eq!(redact(a), "<patient>@patient.mssante.fr");
        assert_eq!(redact("dr.x@chb.mssante.fr"), "dr.x@chb.mssante.fr");
    }
}
