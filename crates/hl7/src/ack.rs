//! Building the HL7 ACK that answers a received message (original-mode acknowledgement).
//!
//! Shape per ig-lps-mss: MSH with sender and receiver swapped and MSH-9 `ACK^<trigger>^ACK`, MSA
//! with the code and the original MSH-10, and on error an ERR segment: HL7 table 0357 codes
//! (100…207) in ERR-3; application codes (the LPS's 900…906, or a Relais rule code) in ERR-5
//! with ERR-3 `207^Application error`.

use crate::escape::escape;
use crate::message::{Delimiters, Field, Message};
use serde::Serialize;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// MSA-1, the acknowledgement code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error (the message is wrong; do not resend as is).
    AE,
    /// Application reject (circumstantial; may be resent later).
    AR,
    /// Commit accept (enhanced mode).
    CA,
    /// Commit error (enhanced mode).
    CE,
    /// Commit reject (enhanced mode).
    CR,
}

impl AckCode {
    /// The code as written in MSA-1.
    pub fn as_str(&self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// Read an MSA-1 value.
    pub fn parse(v: &str) -> Option<AckCode> {
        Some(match v.trim() {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    /// True for AA and CA.
    pub fn is_accept(&self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }
}

impl fmt::Display for AckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HL7 table 0357 (messageErrorCondition) codes and labels.
const TABLE_0357: &[(&str, &str)] = &[
    ("0", "Message accepted"),
    ("100", "Segment sequence error"),
    ("101", "Required field missing"),
    ("102", "Data type error"),
    ("103", "Table value not found"),
    ("198", "Non-conformant cardinality"),
    ("199", "Other HL7 Error"),
    ("200", "Unsupported message type"),
    ("201", "Unsupported event code"),
    ("202", "Unsupported processing id"),
    ("203", "Unsupported version id"),
    ("204", "Unknown key identifier"),
    ("205", "Duplicate key identifier"),
    ("206", "Application record locked"),
    ("207", "Application error"),
];

/// Build the ACK of `msg`, timestamped now, with a fresh control id.
///
/// `error` is `(code, text)`: a table 0357 code (`"203"`) goes to ERR-3; any other code (the
/// LPS application codes `900`…`906`, or a Relais rule code) goes to ERR-5 with ERR-3
/// `207^Application error`. The text is escaped; it must not contain patient data.
/// The result uses `\r` segment terminators; encode it with [`crate::encode_for_wire`].
pub fn build_ack(msg: &Message, code: AckCode, error: Option<(&str, &str)>) -> String {
    build_ack_at(msg, code, error, &now_timestamp(), &next_control_id())
}

/// [`build_ack`] with an explicit MSH-7 timestamp and MSH-10 control id (for tests and replays).
pub fn build_ack_at(
    msg: &Message,
    code: AckCode,
    error: Option<(&str, &str)>,
    timestamp: &str,
    control_id: &str,
) -> String {
    let d = Delimiters::default();
    let msh = msg.msh();
    let f = |n: usize| {
        msh.field(n)
            .map(|f| reencode(&f, msg.delimiters()))
            .unwrap_or_default()
    };
    let trigger = msh
        .component_value(9, 2)
        .map(|t| escape(&t, &d))
        .unwrap_or_default();
    let mut version = f(12);
    if version.is_empty() {
        version = "2.5".into();
    }
    let mut out = String::new();
    let fields: [&str; 18] = [
        "MSH",
        "^~\\&",
        &f(5),
        &f(6),
        &f(3),
        &f(4),
        &escape(timestamp, &d),
        "",
        &format!("ACK^{trigger}^ACK"),
        &escape(control_id, &d),
        &f(11),
        &version,
        "",
        "",
        "",
        "",
        &f(17),
        &f(18),
    ];
    out.push_str(&fields.join("|"));
    out.push('\r');
    out.push_str(&format!(
        "MSA|{}|{}",
        code.as_str(),
        escape(&msg.control_id(), &d)
    ));
    if let Some((err_code, text)) = error {
        let err_code = err_code.trim();
        let severity = if code.is_accept() { "W" } else { "E" };
        let text = escape(text, &d);
        let ecode = escape(err_code, &d);
        out.push('\r');
        if TABLE_0357.iter().any(|(c, _)| *c == err_code) {
            out.push_str(&format!(
                "ERR|||{ecode}^{text}^messageErrorCondition|{severity}"
            ));
        } else {
            out.push_str(&format!(
                "ERR|||207^Application error^messageErrorCondition|{severity}|{ecode}^{text}^applicationErrorCode"
            ));
        }
    }
    out
}

/// Rewrite a field with the standard delimiters (the original may use others), re-escaping leaves.
fn reencode(field: &Field<'_>, original: Delimiters) -> String {
    let d = Delimiters::default();
    if original == d {
        return field.raw().to_string();
    }
    field
        .repetitions()
        .map(|r| {
            r.components()
                .map(|c| {
                    c.subcomponents()
                        .map(|s| escape(&s, &d))
                        .collect::<Vec<_>>()
                        .join("&")
                })
                .collect::<Vec<_>>()
                .join("^")
        })
        .collect::<Vec<_>>()
        .join("~")
}

/// Now as an HL7 timestamp `YYYYMMDDHHMMSS+0000` (UTC).
fn now_timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A control id unique within this process and across restarts: `R` + milliseconds + counter,
/// at most 20 characters (the ST length of MSH-10).
fn next_control_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000;
    format!("R{millis}{n:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let ts = now_timestamp();
        assert_eq!(ts.len(), 19);
        assert!(ts.starts_with("20"));
    }

    #[test]
    fn control_ids_unique_and_short() {
        let a = next_control_id();
        let b = next_control_id();
        assert_ne!(a, b);
        assert!(a.len() <= 20);
    }

    #[test]
    fn ack_code_round_trip() {
        for c in [
            AckCode::AA,
            AckCode::AE,
            AckCode::AR,
            AckCode::CA,
            AckCode::CE,
            AckCode::CR,
        ] {
            assert_eq!(AckCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(AckCode::parse("XX"), None);
    }
}
