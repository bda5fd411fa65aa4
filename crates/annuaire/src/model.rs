//! What the Annuaire says about a mailbox, and how to ask it.

use std::fmt;

/// The type of an MSSanté mailbox (BAL), as the Annuaire publishes it (JDV_J139-TypeBAL-RASS).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BalType {
    /// `PER`: personal mailbox of one professional.
    Per,
    /// `ORG`: organisational mailbox (a service, a team).
    Org,
    /// `APP`: applicative mailbox (software sending or receiving automatically).
    App,
    /// `CAB`: mailbox of a practice (cabinet).
    Cab,
    /// Any other code, kept as written.
    Other(String),
}

impl BalType {
    /// Reads a code (case-insensitive, surrounding spaces ignored).
    pub fn from_code(code: &str) -> BalType {
        let c = code.trim();
        match c.to_ascii_uppercase().as_str() {
            "PER" => BalType::Per,
            "ORG" => BalType::Org,
            "APP" => BalType::App,
            "CAB" => BalType::Cab,
            _ => BalType::Other(c.to_string()),
        }
    }

    /// The code as published (`PER`, `ORG`, `APP`, `CAB`, or the unknown code).
    pub fn code(&self) -> &str {
        match self {
            BalType::Per => "PER",
            BalType::Org => "ORG",
            BalType::App => "APP",
            BalType::Cab => "CAB",
            BalType::Other(c) => c,
        }
    }
}

impl fmt::Display for BalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One MSSanté mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The address, as published.
    pub address: String,
    /// Its type.
    pub bal_type: BalType,
}

/// A coded value of the Annuaire (profession, speciality...): code and label, either may be
/// missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coded {
    /// The code (e.g. `10` for a physician, `SM54` for a speciality).
    pub code: Option<String>,
    /// The label (e.g. `Médecin`).
    pub label: Option<String>,
}

impl Coded {
    /// A coded value, or `None` when both parts are empty.
    pub fn new(code: Option<String>, label: Option<String>) -> Option<Coded> {
        if code.is_none() && label.is_none() {
            None
        } else {
            Some(Coded { code, label })
        }
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.label, &self.code) {
            (Some(l), _) => f.write_str(l),
            (None, Some(c)) => write!(f, "code {c}"),
            (None, None) => Ok(()),
        }
    }
}

/// `Type Identifiant PP` of an RPPS number (TRE_G08-TypeIdentifiantPersonne).
pub const ID_TYPE_RPPS: &str = "8";
/// `Type Identifiant PP` of an ADELI number.
pub const ID_TYPE_ADELI: &str = "0";

/// The professional who owns a personal mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// `Type Identifiant PP`: `8` RPPS, `0` ADELI (see [`ID_TYPE_RPPS`]).
    pub id_type: Option<String>,
    /// `Identifiant PP`: the RPPS (11 digits) or ADELI (9 digits) number.
    pub id: Option<String>,
    /// `Identification nationale PP` (idNat_PS): the type digit followed by the number.
    pub national_id: Option<String>,
    /// `Civilité d'exercice` (e.g. `DR`).
    pub civility: Option<String>,
    /// `Nom d'exercice`.
    pub surname: Option<String>,
    /// `Prénom d'exercice`.
    pub given_name: Option<String>,
}

impl Person {
    /// The RPPS number, when the identifier is one.
    pub fn rpps(&self) -> Option<&str> {
        match (&self.id_type, &self.id) {
            (Some(t), Some(id)) if t == ID_TYPE_RPPS => Some(id),
            (None, Some(id)) if id.len() == 11 => Some(id),
            _ => None,
        }
    }

    fn id_label(&self) -> Option<String> {
        let id = self.id.as_ref()?;
        Some(match self.id_type.as_deref() {
            Some(ID_TYPE_RPPS) => format!("RPPS {id}"),
            Some(ID_TYPE_ADELI) => format!("ADELI {id}"),
            _ => format!("id {id}"),
        })
    }

    fn name(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.civility, &self.surname, &self.given_name]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        if parts.is_empty() {
            None
        } else {
            Some(parts.join(" "))
        }
    }
}

/// The organisation a mailbox belongs to (or where its owner works).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Organisation {
    /// `Type identifiant structure` (e.g. FINESS, SIRET, as a code).
    pub id_type: Option<String>,
    /// `Identification Structure`.
    pub id: Option<String>,
    /// `Raison Sociale structure BAL`.
    pub name: Option<String>,
    /// `Enseigne commerciale structure BAL`.
    pub sign: Option<String>,
    /// `Service de rattachement`.
    pub service: Option<String>,
}

/// The postal address of the mailbox's organisation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// Address lines 2 to 5 (complement, distribution, number and street, lieu-dit), those
    /// present.
    pub lines: Vec<String>,
    /// `L6LIGNEACHEMINEMENT`: postal code and town as written for mail (`75002 PARIS`).
    pub delivery_line: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Town, taken from the delivery line without postal code, CEDEX and district number.
    pub city: Option<String>,
    /// Département code.
    pub department: Option<String>,
    /// Country code.
    pub country: Option<String>,
}

/// One mailbox of the Annuaire with what is known about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// The professional, for personal mailboxes.
    pub person: Option<Person>,
    /// `Catégorie profession` (civil, military, student...).
    pub profession_category: Option<Coded>,
    /// `Code Profession` / `Libellé Profession`.
    pub profession: Option<Coded>,
    /// `Code savoir-faire` / `Libellé savoir-faire` (speciality).
    pub speciality: Option<Coded>,
    /// `Dématérialisation`: whether the owner accepts documents by MSSanté instead of paper.
    pub dematerialisation: Option<bool>,
    /// The organisation.
    pub organisation: Option<Organisation>,
    /// Its address.
    pub location: Location,
}

impl Entry {
    /// An entry with only a mailbox (the other parts empty).
    pub fn new(address: impl Into<String>, bal_type: BalType) -> Entry {
        Entry {
            mailbox: Mailbox {
                address: address.into(),
                bal_type,
            },
            person: None,
            profession_category: None,
            profession: None,
            speciality: None,
            dematerialisation: None,
            organisation: None,
            location: Location::default(),
        }
    }
}

/// One line per entry: `address [TYPE] name (RPPS n) - profession, speciality - organisation, town`.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mailbox.address)?;
        if !self.mailbox.bal_type.code().is_empty() {
            write!(f, " [{}]", self.mailbox.bal_type)?;
        }
        if let Some(p) = &self.person {
            if let Some(name) = p.name() {
                write!(f, " {name}")?;
            }
            if let Some(id) = p.id_label() {
                write!(f, " ({id})")?;
            }
        }
        let what: Vec<String> = [&self.profession, &self.speciality]
            .into_iter()
            .flatten()
            .map(|c| c.to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !what.is_empty() {
            write!(f, " - {}", what.join(", "))?;
        }
        let mut place: Vec<&str> = Vec::new();
        if let Some(o) = &self.organisation {
            place.extend(o.service.as_deref());
            place.extend(o.name.as_deref().or(o.sign.as_deref()));
        }
        let town = self
            .location
            .delivery_line
            .as_deref()
            .or(self.location.city.as_deref());
        place.extend(town);
        if !place.is_empty() {
            write!(f, " - {}", place.join(", "))?;
        }
        Ok(())
    }
}

/// A profession or speciality criterion: by code (exact) or by label (start of the label,
/// accent- and case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOrLabel {
    /// The code, compared exactly (e.g. `10`, `SM54`).
    Code(String),
    /// The start of the label (e.g. `medecin`, `cardio`).
    Label(String),
}

impl CodeOrLabel {
    /// For command lines: a value that looks like a code (digits, or 1 to 4 letters followed
    /// by digits, like `SM54`) is a code, anything else a label.
    pub fn parse(value: &str) -> CodeOrLabel {
        let v = value.trim();
        let letters = v.bytes().take_while(u8::is_ascii_alphabetic).count();
        let digits = v.len() - letters;
        let looks_like_code = !v.is_empty()
            && letters <= 4
            && digits > 0
            && v.bytes().skip(letters).all(|b| b.is_ascii_digit());
        if looks_like_code {
            CodeOrLabel::Code(v.to_string())
        } else {
            CodeOrLabel::Label(v.to_string())
        }
    }
}

/// Largest number of entries a search may return.
pub const MAX_LIMIT: usize = 1000;

/// A search in the Annuaire: every criterion given must match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// RPPS or ADELI number, or national identifier (`8` + RPPS), matched exactly.
    pub rpps: Option<String>,
    /// Start of the professional's surname, of the organisation's name or of its service.
    /// In the imported extraction it is accent-, case- and punctuation-insensitive
    /// (`saint jean` finds `SAINT-JEAN`); over LDAP the directory's matching rules decide
    /// (case-insensitive; an accent typed also matches its absence, not the reverse).
    pub name_prefix: Option<String>,
    /// Profession.
    pub profession: Option<CodeOrLabel>,
    /// Speciality (savoir-faire).
    pub speciality: Option<CodeOrLabel>,
    /// Town (accent- and case-insensitive, whole name), or a 5-digit postal code.
    pub city: Option<String>,
    /// Mailbox types wanted; empty means any.
    pub bal_types: Vec<BalType>,
    /// At most this many entries (1 to [`MAX_LIMIT`]).
    pub limit: usize,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            rpps: None,
            name_prefix: None,
            profession: None,
            speciality: None,
            city: None,
            bal_types: Vec::new(),
            limit: 50,
        }
    }
}

/// Why a query cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// No criterion at all.
    #[error("give at least one criterion: RPPS, name prefix, profession, speciality or city")]
    Empty,
    /// The RPPS is not a number.
    #[error("an RPPS, ADELI or national identifier is 9 to 12 digits")]
    BadRpps,
    /// A text criterion has nothing searchable in it.
    #[error("the {0} criterion holds no letter or digit")]
    Blank(&'static str),
    /// The limit is out of range.
    #[error("the limit must be between 1 and {MAX_LIMIT}")]
    BadLimit,
}

impl Query {
    /// A query for one RPPS (or ADELI, or national identifier).
    pub fn by_rpps(rpps: impl Into<String>) -> Query {
        Query {
            rpps: Some(rpps.into()),
            ..Query::default()
        }
    }

    /// A query for a name prefix.
    pub fn by_name_prefix(prefix: impl Into<String>) -> Query {
        Query {
            name_prefix: Some(prefix.into()),
            ..Query::default()
        }
    }

    /// Checks the criteria; returns the RPPS digits when one is given.
    pub fn validate(&self) -> Result<Option<String>, QueryError> {
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(QueryError::BadLimit);
        }
        let has_any = self.rpps.is_some()
            || self.name_prefix.is_some()
            || self.profession.is_some()
            || self.speciality.is_some()
            || self.city.is_some();
        if !has_any {
            return Err(QueryError::Empty);
        }
        let rpps = match &self.rpps {
            Some(r) => {
                let r = r.trim();
                if !(9..=12).contains(&r.len()) || !r.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QueryError::BadRpps);
                }
                Some(r.to_string())
            }
            None => None,
        };
        let blank = |v: &str| crate::fold::key(v).is_empty();
        if self.name_prefix.as_deref().is_some_and(blank) {
            return Err(QueryError::Blank("name"));
        }
        if self.city.as_deref().is_some_and(blank) {
            return Err(QueryError::Blank("city"));
        }
        for (what, c) in [
            ("profession", &self.profession),
            ("speciality", &self.speciality),
        ] {
            match c {
                Some(CodeOrLabel::Label(l)) if blank(l) => return Err(QueryError::Blank(what)),
                Some(CodeOrLabel::Code(c)) if c.trim().is_empty() => {
                    return Err(QueryError::Blank(what));
                }
                _ => {}
            }
        }
        Ok(rpps)
    }
}

/// The entries found, and whether more matched than the limit allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matches {
    /// The entries, at most `limit`.
    pub entries: Vec<Entry>,
    /// More entries matched: refine the query or raise the limit.
    pub truncated: bool,
}

/// One entry per line, then a note when the list was cut at the limit.
impl fmt::Display for Matches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entries.is_empty() {
            return writeln!(f, "no entry matches");
        }
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        if self.truncated {
            writeln!(
                f,
                "(more than {} entries match: refine the query or raise the limit)",
                self.entries.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_or_label() {
        assert_eq!(CodeOrLabel::parse("10"), CodeOrLabel::Code("10".into()));
        assert_eq!(
            CodeOrLabel::parse(" SM54 "),
            CodeOrLabel::Code("SM54".into())
        );
        assert_eq!(
            CodeOrLabel::parse("Médecin"),
            CodeOrLabel::Label("Médecin".into())
        );
        assert_eq!(
            CodeOrLabel::parse("cardio 2"),
            CodeOrLabel::Label("cardio 2".into())
        );
        assert_eq!(CodeOrLabel::parse("SM"), CodeOrLabel::Label("SM".into()));
    }

    #[test]
    fn validation() {
        assert_eq!(Query::default().validate(), Err(QueryError::Empty));
        assert_eq!(
            Query::by_rpps("10999999001").validate(),
            Ok(Some("10999999001".into()))
        );
        assert_eq!(Query::by_rpps("1099*").validate(), Err(QueryError::BadRpps));
        assert_eq!(
            Query::by_name_prefix("*)(").validate(),
            Err(QueryError::Blank("name"))
        );
        let q = Query {
            limit: 0,
            ..Query::by_name_prefix("du")
        };
        assert_eq!(q.validate(), Err(QueryError::BadLimit));
    }

    #[test]
    fn entry_display() {
        let mut e = Entry::new("sophie.martin@chu-fictif.mssante.test", BalType::Per);
        e.person = Some(Person {
            id_type: Some("8".into()),
            id: Some("10999999001".into()),
            national_id: Some("810999999001".into()),
            civility: Some("DR".into()),
            surname: Some("MARTIN".into()),
            given_name: Some("Sophie".into()),
        });
        e.profession = Coded::new(Some("10".into()), Some("Médecin".into()));
        e.speciality = Coded::new(
            Some("SM26".into()),
            Some("Qualifié en Médecine Générale".into()),
        );
        e.organisation = Some(Organisation {
            name: Some("CHU FICTIF".into()),
            ..Organisation::default()
        });
        e.location.delivery_line = Some("99001 VILLE-FICTIVE".into());
        assert_eq!(
            e.to_string(),
            "sophie.martin@chu-fictif.mssante.test [PER] DR MARTIN Sophie (RPPS 10999999001) \
             - Médecin, Qualifié en Médecine Générale - CHU FICTIF, 99001 VILLE-FICTIVE"
        );
        assert_eq!(e.person.as_ref().unwrap().rpps(), Some("10999999001"));
        let org = Entry::new("accueil@chu-fictif.mssante.test", BalType::Org);
        assert_eq!(org.to_string(), "accueil@chu-fictif.mssante.test [ORG]");
        let m = Matches {
            entries: vec![org],
            truncated: true,
        };
        assert_eq!(
            m.to_string(),
            "accueil@chu-fictif.mssante.test [ORG]\n\
             (more than 1 entries match: refine the query or raise the limit)\n"
        );
        assert_eq!(Matches::default().to_string(), "no entry matches\n");
        // A directory that does not publish the mailbox type.
        let unknown = Entry::new("x@y.mssante.test", BalType::Other(String::new()));
        assert_eq!(unknown.to_string(), "x@y.mssante.test");
    }
}
