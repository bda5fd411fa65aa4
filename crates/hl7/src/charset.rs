//! Character sets of HL7 messages (MSH-18): the ANS guides allow `UNICODE UTF-8` and `8859/15`;
//! older French systems still send `8859/1`. Both ISO 8859 sets are decoded here (they differ on
//! eight code points, handled by a table), so no encoding crate is needed.

use serde::Serialize;

/// How the bytes of a message were turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-8 (MSH-18 `UNICODE UTF-8`, empty, or ASCII).
    Utf8,
    /// ISO 8859-1 (MSH-18 `8859/1`).
    Latin1,
    /// ISO 8859-15 (MSH-18 `8859/15`).
    Latin9,
}

/// What an MSH-18 value asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// Empty, ASCII or a UTF-8 name.
    Utf8,
    Latin1,
    Latin9,
    /// A character set Relais does not decode.
    Other,
}

/// Classify an MSH-18 value (first repetition, trimmed, case-insensitive).
pub(crate) fn classify(msh18: &str) -> Declared {
    let v = msh18.trim().to_ascii_uppercase();
    match v.as_str() {
        "" | "ASCII" | "UNICODE UTF-8" | "UTF-8" | "UTF8" | "UNICODE" => Declared::Utf8,
        "8859/1" | "ISO-8859-1" | "ISO8859-1" | "ISO IR100" => Declared::Latin1,
        "8859/15" | "ISO-8859-15" | "ISO8859-15" => Declared::Latin9,
        _ => Declared::Other,
    }
}

/// The eight code points where ISO 8859-15 differs from ISO 8859-1.
const LATIN9_DIFF: [(u8, char); 8] = [
    (0xA4, '€'),
    (0xA6, 'Š'),
    (0xA8, 'š'),
    (0xB4, 'Ž'),
    (0xB8, 'ž'),
    (0xBC, 'Œ'),
    (0xBD, 'œ'),
    (0xBE, 'Ÿ'),
];

/// Decode ISO 8859-1 or ISO 8859-15 bytes (never fails: every byte is a character).
pub(crate) fn decode_8bit(bytes: &[u8], latin9: bool) -> String {
    bytes
        .iter()
        .map(|&b| {
            if latin9 && let Some((_, c)) = LATIN9_DIFF.iter().find(|(x, _)| *x == b) {
                return *c;
            }
            b as char
        })
        .collect()
}

/// Encode text for the wire in the character set its own MSH-18 declares: UTF-8, or ISO 8859-1 /
/// 8859-15 when declared. Characters the 8-bit set cannot represent become `?`.
///
/// Use it on what [`crate::build_ack`] returns before framing it with [`crate::mllp::MllpCodec`].
pub fn encode_for_wire(text: &str) -> Vec<u8> {
    let declared = declared_charset_of_text(text);
    match classify(&declared) {
        Declared::Latin1 => text
            .chars()
            .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
            .collect(),
        Declared::Latin9 => text
            .chars()
            .map(|c| {
                if let Some((b, _)) = LATIN9_DIFF.iter().find(|(_, x)| *x == c) {
                    *b
                } else if (c as u32) < 256
                    && !LATIN9_DIFF.iter().any(|(b, _)| u32::from(*b) == c as u32)
                {
                    c as u8
                } else {
                    b'?'
                }
            })
            .collect(),
        Declared::Utf8 | Declared::Other => text.as_bytes().to_vec(),
    }
}

/// MSH-18 (first repetition) read from the first line of a text message, or "".
fn declared_charset_of_text(text: &str) -> String {
    let first = text.split(['\r', '\n']).next().unwrap_or("");
    let Some(rest) = first.strip_prefix("MSH") else {
        return String::new();
    };
    let mut chars = rest.chars();
    let (Some(field), Some(_component), Some(repetition)) =
        (chars.next(), chars.next(), chars.next())
    else {
        return String::new();
    };
    rest.split(field)
        .nth(17)
        .and_then(|f| f.split(repetition).next())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin9_differs_from_latin1() {
        assert_eq!(decode_8bit(&[0x41, 0xE9, 0xA4], false), "Aé¤");
        assert_eq!(decode_8bit(&[0x41, 0xE9, 0xA4], true), "Aé€");
    }

    #[test]
    fn classify_values() {
        assert_eq!(classify("UNICODE UTF-8"), Declared::Utf8);
        assert_eq!(classify(" 8859/15 "), Declared::Latin9);
        assert_eq!(classify("8859/1"), Declared::Latin1);
        assert_eq!(classify(""), Declared::Utf8);
        assert_eq!(classify("ISO IR87"), Declared::Other);
    }

    #[test]
    fn wire_encoding_follows_msh18() {
        let latin = "MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|8859/15\rMSA|AA|1|é€";
        let bytes = encode_for_wire(latin);
        assert!(bytes.ends_with(&[0xE9, 0xA4]));
        let utf8 = "MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|UNICODE UTF-8\rMSA|AA|1|é";
        assert!(encode_for_wire(utf8).ends_with("é".as_bytes()));
        let latin1 = "MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|8859/1\rMSA|AA|1|€";
        assert!(encode_for_wire(latin1).ends_with(b"?"));
    }
}
