//! Strict checking and lenient decoding of MIME base64 bodies.
//!
//! mail-parser decodes base64 leniently: a truncated last group is silently dropped and, on an
//! illegal character, the part falls back to its raw encoded text. A document silently cut short
//! must not reach the DPI, so the raw encoded body of every base64 part is checked here.

/// What is wrong with a base64 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base64Problem {
    /// A byte outside the base64 alphabet, padding and whitespace.
    IllegalByte { offset: usize },
    /// Alphabet characters after the `=` padding.
    DataAfterPadding,
    /// More than two `=`, or padding that does not complete the last group.
    BadPadding,
    /// The last group is incomplete and not padded: the body was cut short.
    Truncated,
}

impl Base64Problem {
    /// A plain-English description (no content of the part).
    pub fn describe(&self) -> String {
        match self {
            Base64Problem::IllegalByte { offset } => format!(
                "the base64 body holds a byte outside the base64 alphabet at encoded offset {offset}"
            ),
            Base64Problem::DataAfterPadding => {
                "the base64 body goes on after its `=` padding".to_string()
            }
            Base64Problem::BadPadding => "the base64 padding is wrong".to_string(),
            Base64Problem::Truncated => {
                "the base64 body ends in the middle of a group: the attachment was cut short"
                    .to_string()
            }
        }
    }
}

fn is_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Checks a raw base64 body (line breaks allowed) strictly.
pub fn check(encoded: &[u8]) -> Option<Base64Problem> {
    let mut symbols = 0usize;
    let mut pads = 0usize;
    for (offset, &b) in encoded.iter().enumerate() {
        if is_alphabet(b) {
            if pads > 0 {
                return Some(Base64Problem::DataAfterPadding);
            }
            symbols += 1;
        } else if b == b'=' {
            pads += 1;
        } else if !is_space(b) {
            return Some(Base64Problem::IllegalByte { offset });
        }
    }
    let rest = symbols % 4;
    match (rest, pads) {
        (0, 0) => None,
        (2, 2) | (3, 1) => None,
        (_, 0) => Some(Base64Problem::Truncated),
        _ => Some(Base64Problem::BadPadding),
    }
}

fn value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes as much as can be decoded: bytes outside the alphabet are skipped, decoding stops
/// at the first `=`, an incomplete last group yields its complete bytes.
pub fn decode_lenient(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() / 4 * 3 + 3);
    let mut acc = 0u32;
    let mut n = 0u8;
    for &b in encoded {
        if b == b'=' {
            break;
        }
        let Some(v) = value(b) else { continue };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_bodies_pass() {
        assert_eq!(check(b""), None);
        assert_eq!(check(b"VGVzdA==\r\n"), None);
        assert_eq!(check(b"VGVz\r\ndA=="), None);
        assert_eq!(check(b"VGVzdDE="), None);
        assert_eq!(check(b"VGVzdDEy"), None);
    }

    #[test]
    fn each_problem_is_named() {
        assert_eq!(check(b"VGVzdDEyV"), Some(Base64Problem::Truncated));
        assert_eq!(check(b"VGVzdA"), Some(Base64Problem::Truncated));
        assert_eq!(check(b"VGVzdA="), Some(Base64Problem::BadPadding));
        assert_eq!(check(b"VGVzd==="), Some(Base64Problem::BadPadding));
        assert_eq!(
            check(b"VGVzdA==VGVz"),
            Some(Base64Problem::DataAfterPadding)
        );
        assert_eq!(
            check(b"VGV*zdA=="),
            Some(Base64Problem::IllegalByte { offset: 3 })
        );
    }

    #[test]
    fn lenient_decoding_keeps_what_it_can() {
        assert_eq!(decode_lenient(b"VGVzdA=="), b"Test");
        assert_eq!(decode_lenient(b"VGV*zd\nA"), b"Test");
        assert_eq!(decode_lenient(b"VGVzdDEy"), b"Test12");
        assert_eq!(decode_lenient(b"VGVzdDEyV"), b"Test12");
    }
}
