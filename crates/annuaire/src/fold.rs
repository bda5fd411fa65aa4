//! Search keys: the accent- and case-insensitive form of names, professions and cities.
//!
//! The extraction writes names as their owners registered them ("LEFÈVRE", "Lefevre",
//! "SAINT-JEAN", "D'ARTAGNAN"); users type "lefevre", "saint jean", "dartagnan" or
//! "d artagnan". A key is the text decomposed (Unicode NFD), stripped of combining marks,
//! lower-cased, with the ligatures œ/æ spelled out and every run of other characters
//! (spaces, hyphens, apostrophes, punctuation) turned into one space. Keys only hold
//! `[a-z0-9 ]`, so they compare byte-wise in SQLite with no collation and no LIKE escaping.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The search key of `text` (see the module documentation).
pub fn key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        let spelled: &str = match c {
            'œ' | 'Œ' => "oe",
            'æ' | 'Æ' => "ae",
            'ß' => "ss",
            _ => "",
        };
        if !spelled.is_empty() {
            push_word(&mut out, &mut pending_space, spelled);
            continue;
        }
        if c.is_ascii_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c.to_ascii_lowercase());
        } else if c.is_alphanumeric() {
            // A letter with no ASCII base (Greek, Cyrillic...): keep its lower case so that
            // it still matches itself.
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

fn push_word(out: &mut String, pending_space: &mut bool, word: &str) {
    if *pending_space && !out.is_empty() {
        out.push(' ');
    }
    *pending_space = false;
    out.push_str(word);
}

/// The smallest string greater than every string that starts with `prefix`, for an
/// index-friendly prefix range `key >= prefix AND key < upper_bound(prefix)`.
pub fn upper_bound(prefix: &str) -> String {
    let mut s = prefix.to_string();
    s.push(char::MAX);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_case_and_punctuation() {
        assert_eq!(key("LEFÈVRE"), "lefevre");
        assert_eq!(key("Lefèvre"), "lefevre");
        assert_eq!(key("  Saint-Jean  "), "saint jean");
        assert_eq!(key("D'ARTAGNAN"), "d artagnan");
        assert_eq!(key("Hélène"), "helene");
        assert_eq!(key("ŒUVRE"), "oeuvre");
        assert_eq!(key("Médecine générale"), "medecine generale");
        assert_eq!(key("*)(uid=*"), "uid");
        assert_eq!(key(""), "");
        assert_eq!(key("--"), "");
        assert_eq!(key("Ça"), "ca");
    }

    #[test]
    fn upper_bound_orders_after_every_extension() {
        let ub = upper_bound("dur");
        assert!("dur" < ub.as_str());
        assert!("durand" < ub.as_str());
        assert!("dur zzz" < ub.as_str());
        assert!("dus" > ub.as_str());
    }
}
