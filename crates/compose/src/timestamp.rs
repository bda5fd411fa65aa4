//! Dates and date-times as the intake gives them and as the CDA, XDS and the mail write them.
//!
//! A DPI writes `2025-03-12T14:30:00+01:00` (RFC 3339) or `2025-03-12`; some write the HL7 form
//! `20250312143000+0100`. All are accepted. A time of day without a UTC offset is refused: a
//! French hospital's clock changes offset twice a year, and a CDA time must say which one it
//! used. Calendar checks (31 February…) and offset arithmetic are the `time` crate's.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Why a text is not a timestamp. The messages never repeat the text (it may be a birth date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not one of the accepted forms.
    #[error(
        "not a date or date-time: write YYYY-MM-DD, or YYYY-MM-DDThh:mm[:ss] followed by Z or a \
         UTC offset such as +01:00 (HL7 forms YYYYMMDD and YYYYMMDDhhmm[ss]+hhmm are accepted too)"
    )]
    Format,
    /// A time of day without a UTC offset.
    #[error("a time of day needs its UTC offset (e.g. +01:00 in winter, +02:00 in summer, or Z)")]
    MissingOffset,
    /// Well formed, but not a real date, time or offset (e.g. 31 February, 25:00, +15:00).
    #[error("not a valid calendar date, time of day or UTC offset")]
    OutOfRange,
}

/// A date (`2025-03-12`) or a date-time with its UTC offset (`2025-03-12T14:30:00+01:00`).
///
/// `Debug` and `Display` print the value: do not log a patient's birth date with them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp(Repr);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Repr {
    Date(Date),
    DateTime(OffsetDateTime),
}

impl Timestamp {
    /// A calendar date.
    pub fn date(year: i32, month: u8, day: u8) -> Result<Timestamp, TimestampError> {
        let month = Month::try_from(month).map_err(|_| TimestampError::OutOfRange)?;
        Date::from_calendar_date(year, month, day)
            .map(|d| Timestamp(Repr::Date(d)))
            .map_err(|_| TimestampError::OutOfRange)
    }

    /// The instant `unix_seconds` seen at `offset_minutes` east of UTC (e.g. 60 for Paris in
    /// winter). This is how the engine gives [`crate::BuildContext::now`].
    pub fn from_unix(unix_seconds: i64, offset_minutes: i16) -> Result<Timestamp, TimestampError> {
        let offset = offset_from_minutes(i32::from(offset_minutes))?;
        let t = OffsetDateTime::from_unix_timestamp(unix_seconds)
            .map_err(|_| TimestampError::OutOfRange)?;
        Ok(Timestamp(Repr::DateTime(t.to_offset(offset))))
    }

    /// The current time of the system clock, in UTC.
    pub fn now_utc() -> Timestamp {
        Timestamp(Repr::DateTime(OffsetDateTime::now_utc()))
    }

    /// Parse one of the accepted forms (see the module documentation).
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let t = text.trim();
        if t.len() >= 10 && t.as_bytes().get(4) == Some(&b'-') {
            parse_iso(t)
        } else {
            parse_hl7(t)
        }
    }

    /// True for a date without a time of day.
    pub fn is_date_only(&self) -> bool {
        matches!(self.0, Repr::Date(_))
    }

    /// The calendar date (local to the timestamp's own offset).
    fn calendar_date(&self) -> Date {
        match self.0 {
            Repr::Date(d) => d,
            Repr::DateTime(t) => t.date(),
        }
    }

    /// `(year, month, day)` as written.
    pub fn ymd(&self) -> (i32, u8, u8) {
        let d = self.calendar_date();
        (d.year(), u8::from(d.month()), d.day())
    }

    /// The HL7 TS form of the CDA: `YYYYMMDD` for a date, `YYYYMMDDhhmmss+hhmm` otherwise.
    pub fn to_cda(&self) -> String {
        match self.0 {
            Repr::Date(d) => ymd_compact(d),
            Repr::DateTime(t) => {
                let off = t.offset();
                let total = off.whole_minutes();
                let sign = if total < 0 { '-' } else { '+' };
                let total = total.unsigned_abs();
                format!(
                    "{}{:02}{:02}{:02}{sign}{:02}{:02}",
                    ymd_compact(t.date()),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    total / 60,
                    total % 60
                )
            }
        }
    }

    /// `YYYYMMDD` (the date part, as written).
    pub fn yyyymmdd(&self) -> String {
        ymd_compact(self.calendar_date())
    }

    /// `DD/MM/YYYY`, the French form used in the mail subject.
    pub fn dd_mm_yyyy(&self) -> String {
        let (y, m, d) = self.ymd();
        format!("{d:02}/{m:02}/{y:04}")
    }

    /// Seconds since 1970-01-01T00:00:00Z (a date counts from its midnight UTC).
    pub fn unix_seconds(&self) -> i64 {
        match self.0 {
            Repr::Date(d) => PrimitiveDateTime::new(d, Time::MIDNIGHT)
                .assume_utc()
                .unix_timestamp(),
            Repr::DateTime(t) => t.unix_timestamp(),
        }
    }

    /// True when `self` is strictly before `other`. When either is a date only, the calendar
    /// dates are compared (an admission on the 3rd is not after a discharge at 10:00 the 3rd).
    pub fn is_before(&self, other: &Timestamp) -> bool {
        match (self.0, other.0) {
            (Repr::DateTime(a), Repr::DateTime(b)) => a < b,
            _ => self.calendar_date() < other.calendar_date(),
        }
    }
}

fn ymd_compact(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

fn offset_from_minutes(minutes: i32) -> Result<UtcOffset, TimestampError> {
    if minutes.abs() > 14 * 60 {
        return Err(TimestampError::OutOfRange);
    }
    let h = i8::try_from(minutes / 60).map_err(|_| TimestampError::OutOfRange)?;
    let m = i8::try_from(minutes % 60).map_err(|_| TimestampError::OutOfRange)?;
    UtcOffset::from_hms(h, m, 0).map_err(|_| TimestampError::OutOfRange)
}

/// The number written by the ASCII digits `s` (which must all be digits).
fn digits(s: &str) -> Result<u32, TimestampError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Format);
    }
    s.parse().map_err(|_| TimestampError::Format)
}

fn make_date(y: &str, m: &str, d: &str) -> Result<Date, TimestampError> {
    let year = i32::try_from(digits(y)?).map_err(|_| TimestampError::OutOfRange)?;
    let month = u8::try_from(digits(m)?).map_err(|_| TimestampError::OutOfRange)?;
    let day = u8::try_from(digits(d)?).map_err(|_| TimestampError::OutOfRange)?;
    let month = Month::try_from(month).map_err(|_| TimestampError::OutOfRange)?;
    Date::from_calendar_date(year, month, day).map_err(|_| TimestampError::OutOfRange)
}

fn make_time(h: &str, mi: &str, s: Option<&str>) -> Result<Time, TimestampError> {
    let hour = u8::try_from(digits(h)?).map_err(|_| TimestampError::OutOfRange)?;
    let minute = u8::try_from(digits(mi)?).map_err(|_| TimestampError::OutOfRange)?;
    let second = match s {
        Some(s) => u8::try_from(digits(s)?).map_err(|_| TimestampError::OutOfRange)?,
        None => 0,
    };
    Time::from_hms(hour, minute, second).map_err(|_| TimestampError::OutOfRange)
}

/// `+hh:mm`, `+hhmm`, `-…`, or `Z`.
fn parse_offset(s: &str, colon: bool) -> Result<UtcOffset, TimestampError> {
    if s == "Z" {
        return Ok(UtcOffset::UTC);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(TimestampError::Format),
    };
    let (h, m) = match (colon, rest.len()) {
        (true, 5) if rest.as_bytes()[2] == b':' => (&rest[..2], &rest[3..]),
        (false, 4) => (&rest[..2], &rest[2..]),
        _ => return Err(TimestampError::Format),
    };
    let minutes =
        i32::try_from(digits(h)? * 60 + digits(m)?).map_err(|_| TimestampError::OutOfRange)?;
    if digits(m)? > 59 {
        return Err(TimestampError::OutOfRange);
    }
    offset_from_minutes(sign * minutes)
}

/// `YYYY-MM-DD` or `YYYY-MM-DD[T ]hh:mm[:ss[.fff]](Z|±hh:mm)`.
fn parse_iso(t: &str) -> Result<Timestamp, TimestampError> {
    if !t.is_ascii() {
        return Err(TimestampError::Format);
    }
    let b = t.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(TimestampError::Format);
    }
    let date = make_date(&t[..4], &t[5..7], &t[8..10])?;
    if t.len() == 10 {
        return Ok(Timestamp(Repr::Date(date)));
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(TimestampError::Format);
    }
    let rest = &t[11..];
    // Split the time of day from the offset.
    let zone_at = rest
        .find(['Z', 'z', '+', '-'])
        .ok_or(TimestampError::MissingOffset)?;
    let (clock, zone) = rest.split_at(zone_at);
    let zone = if zone.eq_ignore_ascii_case("z") {
        "Z"
    } else {
        zone
    };
    let clock = clock.split('.').next().unwrap_or_default();
    let parts: Vec<&str> = clock.split(':').collect();
    let time = match parts.as_slice() {
        [h, m] if h.len() == 2 && m.len() == 2 => make_time(h, m, None)?,
        [h, m, s] if h.len() == 2 && m.len() == 2 && s.len() == 2 => make_time(h, m, Some(s))?,
        _ => return Err(TimestampError::Format),
    };
    let offset = parse_offset(zone, true)?;
    Ok(Timestamp(Repr::DateTime(
        PrimitiveDateTime::new(date, time).assume_offset(offset),
    )))
}

/// `YYYYMMDD` or `YYYYMMDDhhmm[ss]±hhmm`.
fn parse_hl7(t: &str) -> Result<Timestamp, TimestampError> {
    if !t.is_ascii() || t.len() < 8 {
        return Err(TimestampError::Format);
    }
    let date = make_date(&t[..4], &t[4..6], &t[6..8])?;
    if t.len() == 8 {
        return Ok(Timestamp(Repr::Date(date)));
    }
    let rest = &t[8..];
    let zone_at = rest.find(['+', '-']).ok_or(TimestampError::MissingOffset)?;
    let (clock, zone) = rest.split_at(zone_at);
    let time = match clock.len() {
        4 => make_time(&clock[..2], &clock[2..4], None)?,
        6 => make_time(&clock[..2], &clock[2..4], Some(&clock[4..6]))?,
        _ => return Err(TimestampError::Format),
    };
    let offset = parse_offset(zone, false)?;
    Ok(Timestamp(Repr::DateTime(
        PrimitiveDateTime::new(date, time).assume_offset(offset),
    )))
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

/// RFC 3339 (`2025-03-12T14:30:00+01:00`) or `2025-03-12`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")?;
        if let Repr::DateTime(t) = self.0 {
            let total = t.offset().whole_minutes();
            let sign = if total < 0 { '-' } else { '+' };
            let total = total.unsigned_abs();
            write!(
                f,
                "T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
                t.hour(),
                t.minute(),
                t.second(),
                total / 60,
                total % 60
            )?;
        }
        Ok(())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// From a string in one of the accepted forms, or a TOML date / date-time written without
/// quotes (`birth_date = 1979-03-15`).
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl<'de> serde::de::Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a date (YYYY-MM-DD) or a date-time with its UTC offset")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
        Timestamp::parse(v).map_err(E::custom)
    }

    /// The toml crate hands a native date-time as a one-entry map whose value is its RFC 3339
    /// text.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Timestamp, A::Error> {
        let Some((_, text)) = map.next_entry::<String, String>()? else {
            return Err(serde::de::Error::custom(TimestampError::Format));
        };
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_and_hl7_forms() {
        let t = Timestamp::parse("2025-03-12T14:30:00+01:00").unwrap();
        assert_eq!(t.to_cda(), "20250312143000+0100");
        assert_eq!(t.to_string(), "2025-03-12T14:30:00+01:00");
        assert_eq!(Timestamp::parse("20250312143000+0100").unwrap(), t);
        assert_eq!(Timestamp::parse("2025-03-12 14:30+01:00").unwrap(), t);
        assert_eq!(
            Timestamp::parse("2025-03-12T13:30:00.250Z")
                .unwrap()
                .to_cda(),
            "20250312133000+0000"
        );
        assert_eq!(t.unix_seconds(), 1_741_786_200);
        let d = Timestamp::parse("1979-03-15").unwrap();
        assert!(d.is_date_only());
        assert_eq!(d.to_cda(), "19790315");
        assert_eq!(d.dd_mm_yyyy(), "15/03/1979");
        assert_eq!(Timestamp::parse("19790315").unwrap(), d);
        assert_eq!(
            Timestamp::parse("2025-07-01T08:00-02:30").unwrap().to_cda(),
            "20250701080000-0230"
        );
    }

    #[test]
    fn refusals() {
        for (text, err) in [
            ("2025-02-30", TimestampError::OutOfRange),
            ("2025-03-12T25:00:00+01:00", TimestampError::OutOfRange),
            ("2025-03-12T14:30:00", TimestampError::MissingOffset),
            ("20250312143000", TimestampError::MissingOffset),
            ("2025-03-12T14:30:00+15:00", TimestampError::OutOfRange),
            ("12/03/2025", TimestampError::Format),
            ("", TimestampError::Format),
            ("2025-3-12", TimestampError::Format),
            ("２０２５-03-12", TimestampError::Format),
        ] {
            assert_eq!(Timestamp::parse(text), Err(err), "{text}");
        }
    }

    #[test]
    fn toml_native_dates_are_accepted() {
        #[derive(Deserialize)]
        struct T {
            d: Timestamp,
            t: Timestamp,
        }
        let v: T = toml::from_str("d = 1979-03-15\nt = 2025-03-12T14:30:00+01:00").unwrap();
        assert_eq!(v.d.to_cda(), "19790315");
        assert_eq!(v.t.to_cda(), "20250312143000+0100");
        let e = toml::from_str::<T>("d = 1979-03-15\nt = 2025-03-12T14:30:00")
            .err()
            .unwrap();
        assert!(e.to_string().contains("UTC offset"), "{e}");
        let j: T =
            serde_json::from_str(r#"{"d": "1979-03-15", "t": "2025-03-12T13:30:00Z"}"#).unwrap();
        assert_eq!(j.t.to_cda(), "20250312133000+0000");
    }

    #[test]
    fn from_unix_and_order() {
        let t = Timestamp::from_unix(1_741_786_200, 60).unwrap();
        assert_eq!(t.to_cda(), "20250312143000+0100");
        let day = Timestamp::parse("2025-03-12").unwrap();
        assert!(!day.is_before(&t) && !t.is_before(&day));
        assert!(Timestamp::parse("2025-03-11").unwrap().is_before(&t));
        assert!(Timestamp::from_unix(0, 15 * 60).is_err());
    }
}
