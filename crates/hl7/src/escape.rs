//! HL7 escape sequences (`\F\ \S\ \T\ \R\ \E\ \Xhh..\ \.br\ \H\ \N\`), both ways.
//!
//! hl7-parser 0.3 ships a decoder (`Separators::decode`), but it cannot be used here: it slices
//! the text with character positions as if they were byte positions, so any escape after a
//! non-ASCII character (`é`, `’`, common in French messages) yields wrong text or panics, and it
//! writes `\X41\`, `\H\` or `\N\` out literally. The decoder below works on byte positions, decodes
//! hexadecimal escapes and drops highlighting and formatting commands it does not render.

use crate::message::Delimiters;
use std::borrow::Cow;

/// Replace the escape sequences of a raw HL7 value by the text they stand for.
///
/// Unknown or unterminated sequences are kept as written, so nothing is silently lost.
pub fn unescape<'a>(raw: &'a str, delimiters: &Delimiters) -> Cow<'a, str> {
    let esc = delimiters.escape;
    if !raw.contains(esc) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + esc.len_utf8()..];
        let Some(len) = after.find(esc) else {
            // Unterminated: keep the remainder as written.
            out.push_str(&rest[start..]);
            return Cow::Owned(out);
        };
        let seq = &after[..len];
        if !decode_sequence(seq, delimiters, &mut out) {
            out.push(esc);
            out.push_str(seq);
            out.push(esc);
        }
        rest = &after[len + esc.len_utf8()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decode one sequence (the text between two escape characters) into `out`; false when unknown.
fn decode_sequence(seq: &str, d: &Delimiters, out: &mut String) -> bool {
    match seq {
        "F" => out.push(d.field),
        "S" => out.push(d.component),
        "T" => out.push(d.subcomponent),
        "R" => out.push(d.repetition),
        "E" => out.push(d.escape),
        // Highlighting on/off: no text of its own.
        "H" | "N" => {}
        ".br" => out.push('\n'),
        _ if seq.starts_with(".sp") => out.push('\n'),
        // Other formatting commands of FT values (.in, .ti, .sk, .ce, .fi, .nf): layout only.
        _ if seq.starts_with('.') && seq.len() <= 8 => {}
        _ if seq.starts_with('X') => {
            let Ok(bytes) = hex::decode(&seq[1..]) else {
                return false;
            };
            if bytes.is_empty() {
                return false;
            }
            match std::str::from_utf8(&bytes) {
                Ok(text) => out.push_str(text),
                // Not UTF-8: the bytes are in the message's 8-bit character set; ISO 8859-1 is
                // the one the ANS profiles allow besides UTF-8 (8859/15 differs on 8 symbols).
                Err(_) => out.extend(bytes.iter().map(|&b| b as char)),
            }
        }
        // Character-set switches (\Cxxyy\, \Mxxyyzz\) and locally defined escapes (\Z..\).
        _ if (seq.starts_with('C') || seq.starts_with('M'))
            && seq.len() > 1
            && seq[1..].bytes().all(|b| b.is_ascii_hexdigit()) => {}
        _ if seq.starts_with('Z') => {}
        _ => return false,
    }
    true
}

/// Escape a text so that it can sit in one HL7 component or subcomponent.
pub fn escape(text: &str, d: &Delimiters) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let code = if c == d.escape {
            Some("E")
        } else if c == d.field {
            Some("F")
        } else if c == d.component {
            Some("S")
        } else if c == d.subcomponent {
            Some("T")
        } else if c == d.repetition {
            Some("R")
        } else if c == '\r' {
            Some("X0D")
        } else if c == '\n' {
            Some("X0A")
        } else {
            None
        };
        match code {
            Some(code) => {
                out.push(d.escape);
                out.push_str(code);
                out.push(d.escape);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Delimiters {
        Delimiters::default()
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(unescape(r"a\F\b\S\c\T\d\R\e\E\f", &d()), r"a|b^c&d~e\f");
    }

    #[test]
    fn escapes_after_non_ascii_text() {
        // hl7-parser 0.3 panics on this input (byte/char index confusion).
        assert_eq!(unescape(r"éé\F\x’\S\y", &d()), "éé|x’^y");
    }

    #[test]
    fn hex_escapes() {
        assert_eq!(unescape(r"a\X41\b\X0D0A\c", &d()), "aAb\r\nc");
        assert_eq!(unescape(r"\XC3A9\", &d()), "é");
        assert_eq!(
            unescape(r"\XE9\", &d()),
            "é",
            "8-bit byte read as ISO 8859-1"
        );
        assert_eq!(
            unescape(r"\XZZ\", &d()),
            r"\XZZ\",
            "invalid hex kept as written"
        );
    }

    #[test]
    fn formatting_and_highlight() {
        assert_eq!(
            unescape(r"\H\bold\N\ line\.br\next\.sp2\x\.in+4\y", &d()),
            "bold line\nnext\nxy"
        );
    }

    #[test]
    fn unknown_and_unterminated_kept() {
        assert_eq!(unescape(r"a\Q\b", &d()), r"a\Q\b");
        assert_eq!(unescape(r"a\F", &d()), r"a\F");
        assert_eq!(unescape(r"\\", &d()), r"\\");
    }

    #[test]
    fn no_escape_borrows() {
        assert!(matches!(unescape("plain", &d()), Cow::Borrowed("plain")));
    }

    #[test]
    fn escape_round_trips() {
        let text = "a|b^c&d~e\\f\r\ng é";
        let escaped = escape(text, &d());
        assert_eq!(escaped, r"a\F\b\S\c\T\d\R\e\E\f\X0D\\X0A\g é");
        assert_eq!(unescape(&escaped, &d()), text);
    }

    #[test]
    fn other_delimiters() {
        let d = Delimiters {
            field: '#',
            component: '@',
            repetition: '*',
            escape: '!',
            subcomponent: '%',
        };
        assert_eq!(unescape("a!F!b!S!c!E!", &d), "a#b@c!");
        assert_eq!(escape("a#b!", &d), "a!F!b!E!");
    }
}
