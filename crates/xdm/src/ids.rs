//! Identifiers for the objects a package writer must name: `urn:uuid:` ids and `2.25` OIDs.
//!
//! They are derived from a seed with SHA-1 (RFC 9562 version-5 layout), so the same seed always
//! gives the same id: packages built twice from the same input are byte-identical, which keeps
//! tests and journal comparisons simple. Callers wanting fresh ids pass a seed that includes a
//! timestamp or message id.

use sha1::{Digest, Sha1};

/// Namespace mixed into every seed so that our ids do not collide with other v5 users.
const NAMESPACE: &[u8] = b"relais-xdm/ids/1";

fn uuid_bytes(seed: &str) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(NAMESPACE);
    h.update(seed.as_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50; // version 5
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    b
}

/// A `urn:uuid:xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx` derived from `seed`.
pub fn name_based_uuid(seed: &str) -> String {
    let b = uuid_bytes(seed);
    let hex = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An OID under the `2.25` arc (ITU-T X.667: the UUID as one decimal number) derived from
/// `seed`, suitable as a submission set `uniqueId`.
pub fn name_based_oid(seed: &str) -> String {
    format!("2.25.{}", u128::from_be_bytes(uuid_bytes(seed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape_and_stability() {
        let a = name_based_uuid("x");
        assert_eq!(a, name_based_uuid("x"));
        assert_ne!(a, name_based_uuid("y"));
        let u = a.strip_prefix("urn:uuid:").unwrap();
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('5'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    #[test]
    fn oid_is_decimal_under_2_25() {
        let oid = name_based_oid("x");
        let rest = oid.strip_prefix("2.25.").unwrap();
        assert!(rest.bytes().all(|b| b.is_ascii_digit()));
        assert!(!rest.starts_with('0'));
    }
}
