//! The CI-SIS subject convention `XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>`.
//!
//! The subject carries patient identity, so [`DdmSubject`]'s `Debug` hides it: only the libellé
//! (the document title) is shown. Consumers that need the patient use the CDA header, never the
//! subject: names of several words cannot be told apart from the libellé here.

use std::fmt;

/// The marker that opens the convention.
pub const DDM_MARKER: &str = "XDM/1.0/DDM+";

/// A subject that follows the `XDM/1.0/DDM+` convention, split into its parts.
///
/// The split is a heuristic: the last word is the prénom, the one before the NOM, everything
/// before them the libellé; a trailing date (`12/10/1988`, `12-10-1988`, `1988-10-12`,
/// `19881012`) is the birth date. The raw text after the marker is always kept in `remainder`.
#[derive(Clone, PartialEq, Eq)]
pub struct DdmSubject {
    /// Text before the marker (`TR:`, `[KO Intégration système !][902]`), trimmed, if any.
    pub prefix: Option<String>,
    /// Everything after `XDM/1.0/DDM+`, untouched. Patient data: never log it.
    pub remainder: String,
    /// The document title, when at least three words precede the optional date.
    pub libelle: Option<String>,
    /// Patient family name (heuristic). Patient data: never log it.
    pub nom: Option<String>,
    /// Patient given name (heuristic). Patient data: never log it.
    pub prenom: Option<String>,
    /// Birth date as written in the subject. Patient data: never log it.
    pub birth_date: Option<String>,
}

impl fmt::Debug for DdmSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DdmSubject")
            .field("prefix", &self.prefix)
            .field("libelle", &self.libelle)
            .field("nom", &self.nom.as_ref().map(|_| "<redacted>"))
            .field("prenom", &self.prenom.as_ref().map(|_| "<redacted>"))
            .field(
                "birth_date",
                &self.birth_date.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl DdmSubject {
    /// Parses a (decoded) subject. `None` when the marker is absent (compared ignoring ASCII
    /// case, anywhere in the subject so that `TR:` or KO prefixes are accepted).
    pub fn parse(subject: &str) -> Option<DdmSubject> {
        let at = find_ignore_ascii_case(subject, DDM_MARKER)?;
        let prefix = subject[..at].trim();
        let remainder = &subject[at + DDM_MARKER.len()..];
        let mut words: Vec<&str> = remainder.split_whitespace().collect();
        let birth_date = match words.last() {
            Some(last) if looks_like_date(last) => {
                let d = last.to_string();
                words.pop();
                Some(d)
            }
            _ => None,
        };
        let (libelle, nom, prenom) = if words.len() >= 3 {
            let prenom = words[words.len() - 1].to_string();
            let nom = words[words.len() - 2].to_string();
            let libelle = words[..words.len() - 2].join(" ");
            (Some(libelle), Some(nom), Some(prenom))
        } else {
            (None, None, None)
        };
        Some(DdmSubject {
            prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
            remainder: remainder.to_string(),
            libelle,
            nom,
            prenom,
            birth_date,
        })
    }
}

fn find_ignore_ascii_case(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// `dd/mm/yyyy`, `dd-mm-yyyy`, `dd.mm.yyyy` (one-digit day/month allowed), `yyyy-mm-dd`,
/// `yyyymmdd`, with plausible day and month numbers.
fn looks_like_date(word: &str) -> bool {
    let plausible = |d: &str, m: &str, y: &str| {
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(all_digits(d) && all_digits(m) && all_digits(y)) || y.len() != 4 || d.len() > 2 {
            return false;
        }
        let (d, m): (u32, u32) = match (d.parse(), m.parse()) {
            (Ok(d), Ok(m)) => (d, m),
            _ => return false,
        };
        (1..=31).contains(&d) && (1..=12).contains(&m)
    };
    if word.len() == 8 && word.bytes().all(|b| b.is_ascii_digit()) {
        return plausible(&word[6..8], &word[4..6], &word[..4]);
    }
    for sep in ['/', '-', '.'] {
        let parts: Vec<&str> = word.split(sep).collect();
        if parts.len() == 3 {
            if parts[0].len() == 4 {
                return parts[1].len() <= 2 && plausible(parts[2], parts[1], parts[0]);
            }
            return parts[1].len() <= 2 && plausible(parts[0], parts[1], parts[2]);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ans_example_is_split() {
        let s = DdmSubject::parse(
            "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988",
        )
        .unwrap();
        assert_eq!(s.prefix, None);
        assert_eq!(s.libelle.as_deref(), Some("ECHOGRAPHIE ABDOMINOPELVIENNE"));
        assert_eq!(s.nom.as_deref(), Some("CORSE"));
        assert_eq!(s.prenom.as_deref(), Some("FIGATELLIX"));
        assert_eq!(s.birth_date.as_deref(), Some("12/10/1988"));
        assert_eq!(
            s.remainder,
            "ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"
        );
    }

    #[test]
    fn prefix_and_missing_date_are_kept() {
        let s = DdmSubject::parse("[KO Intégration système !][902] XDM/1.0/DDM+CR DUPONT Marie")
            .unwrap();
        assert_eq!(s.prefix.as_deref(), Some("[KO Intégration système !][902]"));
        assert_eq!(s.libelle.as_deref(), Some("CR"));
        assert_eq!(s.birth_date, None);
    }

    #[test]
    fn short_remainders_keep_only_the_raw_text() {
        let s = DdmSubject::parse("XDM/1.0/DDM+DUPONT 19881012").unwrap();
        assert_eq!(s.birth_date.as_deref(), Some("19881012"));
        assert_eq!((s.libelle, s.nom, s.prenom), (None, None, None));
        assert_eq!(s.remainder, "DUPONT 19881012");
        assert!(DdmSubject::parse("Compte rendu").is_none());
        assert!(DdmSubject::parse("").is_none());
    }

    #[test]
    fn dates_are_recognised() {
        for d in [
            "12/10/1988",
            "1/2/1988",
            "12-10-1988",
            "1988-10-12",
            "19881012",
            "12.10.1988",
        ] {
            assert!(looks_like_date(d), "{d}");
        }
        for d in [
            "32/10/1988",
            "12/13/1988",
            "Marie",
            "1988",
            "12/10/88",
            "99999999",
        ] {
            assert!(!looks_like_date(d), "{d}");
        }
    }

    #[test]
    fn debug_hides_patient_data() {
        let s = DdmSubject::parse("XDM/1.0/DDM+CR DUPONT Marie 12/10/1988").unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("DUPONT") && !shown.contains("Marie") && !shown.contains("1988"));
        assert!(shown.contains("CR"));
    }
}
