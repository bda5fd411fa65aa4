//! Helpers shared by the `relais` binary's tests.

use base64::Engine as _;

/// MIME base64 (RFC 2045): 76 characters a line, each line ending in CRLF.
pub fn base64_mime(data: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / 38 + 2);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}
