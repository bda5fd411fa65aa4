//! Parsing bytes into a [`Message`], and typed, read-only access to it.
//!
//! hl7-parser does the ER7 tokenising (segments, fields, repetitions, components,
//! subcomponents). Around it this module adds what a daemon facing the outside needs: size and
//! delimiter-count bounds checked before any parsing, MLLP/BOM stripping, CR/LF/CRLF segment
//! terminators, character sets per MSH-18, a strict check of the MSH delimiter line, and a check
//! that the whole input was parsed (hl7-parser silently stops at the first segment it cannot read).
//! The parsed tree is then copied into compact offset tables so that [`Message`] owns its text and
//! carries no lifetime.

use crate::charset::{self, Declared, TextEncoding};
use crate::error::Hl7Error;
use crate::escape::unescape;
use relais_core::Limits;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// Most delimiter characters (field, component, repetition, subcomponent, segment terminator)
/// accepted in one message. hl7-parser allocates a node per field, repetition, component and
/// subcomponent (about 200 bytes each), so an 80 MB message made of `|||||` would need gigabytes;
/// this bound caps that at a few hundred megabytes while leaving room for a large lab report
/// (thousands of OBX) and for base64 documents, which contain no delimiter.
pub const MAX_DELIMITERS: usize = 400_000;

/// OIDs of the INS assigning authorities: INS-NIR, INS-NIA, INS-NIR test, INS-NIR demo.
pub const INS_OIDS: [&str; 4] = [
    "1.2.250.1.213.1.4.8",
    "1.2.250.1.213.1.4.9",
    "1.2.250.1.213.1.4.10",
    "1.2.250.1.213.1.4.11",
];

/// The five delimiter characters declared by MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

impl Delimiters {
    /// True for the usual `|^~\&`, which the ANS guides require.
    pub fn is_standard(&self) -> bool {
        *self == Delimiters::default()
    }

    /// MSH-2 as written: component, repetition, escape, subcomponent.
    pub fn encoding_characters(&self) -> String {
        [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
        ]
        .iter()
        .collect()
    }

    fn to_parser(self) -> hl7_parser::message::Separators {
        hl7_parser::message::Separators {
            field: self.field,
            component: self.component,
            subcomponent: self.subcomponent,
            repetition: self.repetition,
            escape: self.escape,
            lenient_newlines: false,
        }
    }
}

/// Byte offsets into the message text.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(range: &std::ops::Range<usize>) -> Span {
        // Offsets fit in u32: `parse` refuses texts longer than u32::MAX.
        Span {
            start: range.start as u32,
            end: range.end as u32,
        }
    }
}

/// One node of the tree: its text and the range of its children in the next level's table.
#[derive(Debug, Clone, Copy)]
struct Node {
    span: Span,
    first: u32,
    count: u32,
}

#[derive(Debug, Clone)]
struct SegNode {
    node: Node,
    name: Span,
    occurrence: u32,
}

/// A parsed HL7v2 message. It owns its text (segments joined by `\r`, already decoded from the
/// wire character set) and gives typed access to the fields Relais uses.
///
/// Its `Debug` output shows the message type, control id and segment count only: message
/// content is patient data and must never reach logs.
#[derive(Clone)]
pub struct Message {
    text: String,
    delimiters: Delimiters,
    encoding: TextEncoding,
    declared_charset: String,
    encoding_mismatch: bool,
    segs: Vec<SegNode>,
    fields: Vec<Node>,
    reps: Vec<Node>,
    comps: Vec<Node>,
    subs: Vec<Span>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.message_type();
        f.debug_struct("Message")
            .field(
                "type",
                &format_args!("{}^{}^{}", t.code, t.trigger, t.structure),
            )
            .field("control_id", &self.control_id())
            .field("segments", &self.segs.len())
            .finish_non_exhaustive()
    }
}

/// Parse an HL7v2 (ER7) message.
///
/// Accepts CR, LF or CRLF segment terminators, MLLP framing (`0x0B … 0x1C 0x0D`) and a UTF-8
/// BOM. Refuses, before any parsing, inputs over `limits.max_hl7_bytes`; then anything not
/// starting with `MSH`, a malformed delimiter line, bytes that are not in the character set MSH-18
/// declares (ISO 8859-1 / 8859-15 are decoded), an unparsable segment and a second `MSH`.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Message, Hl7Error> {
    if bytes.len() as u64 > limits.max_hl7_bytes {
        return Err(Hl7Error::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_hl7_bytes,
        });
    }
    let b = strip_framing(bytes);
    if b.starts_with(b"\xFF\xFE") || b.starts_with(b"\xFE\xFF") {
        return Err(Hl7Error::Encoding {
            reason: "the message is UTF-16 (byte order mark); send it as UTF-8 or ISO 8859-15"
                .into(),
        });
    }
    if !b.starts_with(b"MSH") {
        let hint = if b.starts_with(b"FHS") || b.starts_with(b"BHS") {
            " (batch files with FHS/BHS headers are not accepted: send one message at a time)"
        } else if b.first() == Some(&b'<') {
            " (this looks like XML)"
        } else {
            ""
        };
        return Err(Hl7Error::NotHl7 { hint: hint.into() });
    }
    let delimiters = check_delimiters(b)?;

    // Character set, from MSH-18 read on the raw first line.
    let declared = raw_msh18(b, delimiters);
    let (text, encoding, mismatch) = decode(b, &declared)?;

    // Bound the work hl7-parser will do before it starts.
    let d = delimiters;
    let count = text
        .chars()
        .filter(|&c| {
            c == d.field
                || c == d.component
                || c == d.repetition
                || c == d.subcomponent
                || c == '\r'
                || c == '\n'
        })
        .count();
    if count > MAX_DELIMITERS {
        return Err(Hl7Error::TooManyDelimiters {
            count,
            limit: MAX_DELIMITERS,
        });
    }

    let normalized = normalize_terminators(&text);
    if normalized.len() > u32::MAX as usize {
        return Err(Hl7Error::TooLarge {
            size: normalized.len() as u64,
            limit: u64::from(u32::MAX),
        });
    }
    let mut msg = build(&normalized, delimiters)?;
    msg.text = normalized;
    msg.encoding = encoding;
    msg.declared_charset = declared.trim().to_string();
    msg.encoding_mismatch = mismatch;
    Ok(msg)
}

/// Remove MLLP framing bytes, surrounding CR/LF and a UTF-8 BOM.
fn strip_framing(bytes: &[u8]) -> &[u8] {
    let mut b = bytes;
    while let [first, rest @ ..] = b {
        if matches!(first, 0x0B | b'\r' | b'\n') {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if matches!(last, 0x1C | b'\r' | b'\n') {
            b = rest;
        } else {
            break;
        }
    }
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

/// Check MSH-1/MSH-2: five distinct, printable, non-alphanumeric ASCII characters, MSH-2 exactly
/// four characters long.
fn check_delimiters(b: &[u8]) -> Result<Delimiters, Hl7Error> {
    const EXPECTED: &str = "MSH-1 and MSH-2 must read like `MSH|^~\\&|` (field separator, then the component, repetition, escape and subcomponent characters)";
    let bad = |reason: String| Hl7Error::BadDelimiters {
        reason: format!("{reason}; {EXPECTED}"),
    };
    let chars: Vec<u8> = b.iter().skip(3).take(5).copied().collect();
    if let Some(pos) = chars.iter().position(|&c| c == b'\r' || c == b'\n') {
        return Err(bad(format!(
            "the delimiter line is truncated after {pos} character(s)"
        )));
    }
    if chars.len() < 5 {
        return Err(bad(format!(
            "the delimiter line is truncated after {} character(s)",
            chars.len()
        )));
    }
    for &c in &chars {
        if !(0x21..=0x7E).contains(&c) {
            return Err(bad("a delimiter is not a printable ASCII character".into()));
        }
        if c.is_ascii_alphanumeric() {
            return Err(bad(format!(
                "`{}` is alphanumeric and cannot be a delimiter",
                c as char
            )));
        }
    }
    for i in 0..5 {
        for j in i + 1..5 {
            if chars[i] == chars[j] {
                return Err(bad(format!(
                    "`{}` is used for two different delimiters",
                    chars[i] as char
                )));
            }
        }
    }
    if let Some(&next) = b.get(8)
        && next != chars[0]
        && next != b'\r'
        && next != b'\n'
    {
        return Err(bad(
            "MSH-2 is longer than four characters (the HL7 v2.7 truncation character is not supported)".into(),
        ));
    }
    Ok(Delimiters {
        field: chars[0] as char,
        component: chars[1] as char,
        repetition: chars[2] as char,
        escape: chars[3] as char,
        subcomponent: chars[4] as char,
    })
}

/// MSH-18 (first repetition) from the raw bytes of the first segment.
fn raw_msh18(b: &[u8], d: Delimiters) -> String {
    let end = b
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(b.len());
    let line = &b[..end];
    let field = line.split(|&c| c == d.field as u8).nth(17).unwrap_or(&[]);
    let first = field
        .split(|&c| c == d.repetition as u8)
        .next()
        .unwrap_or(&[]);
    String::from_utf8_lossy(first).into_owned()
}

/// Decode the bytes per MSH-18. Returns the text, how it was decoded and whether the bytes were
/// UTF-8 although an ISO 8859 set was declared.
fn decode(b: &[u8], declared: &str) -> Result<(String, TextEncoding, bool), Hl7Error> {
    let shown = sanitize(declared);
    match charset::classify(declared) {
        Declared::Utf8 => match std::str::from_utf8(b) {
            Ok(s) => Ok((s.to_string(), TextEncoding::Utf8, false)),
            Err(e) => Err(Hl7Error::Encoding {
                reason: format!(
                    "invalid UTF-8 at byte {} while MSH-18 declares `{}`; a sender using ISO 8859 must declare `8859/15` or `8859/1` in MSH-18",
                    e.valid_up_to(),
                    if shown.is_empty() {
                        "nothing (UTF-8 assumed)".to_string()
                    } else {
                        shown
                    }
                ),
            }),
        },
        kind @ (Declared::Latin1 | Declared::Latin9) => match std::str::from_utf8(b) {
            Ok(s) if !s.is_ascii() => Ok((s.to_string(), TextEncoding::Utf8, true)),
            _ => {
                let latin9 = kind == Declared::Latin9;
                let enc = if latin9 {
                    TextEncoding::Latin9
                } else {
                    TextEncoding::Latin1
                };
                Ok((charset::decode_8bit(b, latin9), enc, false))
            }
        },
        Declared::Other => {
            if b.is_ascii() {
                Ok((
                    String::from_utf8_lossy(b).into_owned(),
                    TextEncoding::Utf8,
                    false,
                ))
            } else {
                Err(Hl7Error::Encoding {
                    reason: format!(
                        "MSH-18 declares `{shown}`, a character set Relais does not decode; use `UNICODE UTF-8` or `8859/15` as the ANS guides require"
                    ),
                })
            }
        }
    }
}

/// A short, printable rendering of a code-like value for error messages (never patient data).
pub(crate) fn sanitize(v: &str) -> String {
    let mut s: String = v
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect();
    if v.trim().chars().count() > 40 {
        s.push('…');
    }
    s
}

/// Join the segments with `\r`, whatever terminator they came with, and drop blank lines.
fn normalize_terminators(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split(['\r', '\n']) {
        if line.trim().is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\r');
        }
        out.push_str(line);
    }
    out
}

/// Run hl7-parser on the normalised text and copy its tree into offset tables.
fn build(text: &str, delimiters: Delimiters) -> Result<Message, Hl7Error> {
    let syntax = |segment: usize| {
        Hl7Error::SegmentSyntax {
        segment,
        reason: "a segment must start with a three-character upper-case name (PID, OBX, ...) followed by the field separator".into(),
    }
    };
    let parsed = hl7_parser::Message::parse(text).map_err(|_| syntax(1))?;
    if parsed.separators.field != delimiters.field || parsed.separators.escape != delimiters.escape
    {
        return Err(syntax(1));
    }
    debug_assert_eq!(parsed.separators, delimiters.to_parser());
    if parsed.raw_value().len() != text.len() {
        // hl7-parser stops quietly at the first segment it cannot read.
        return Err(syntax(parsed.segments.len() + 1));
    }

    let mut msg = Message {
        text: String::new(),
        delimiters,
        encoding: TextEncoding::Utf8,
        declared_charset: String::new(),
        encoding_mismatch: false,
        segs: Vec::with_capacity(parsed.segments.len()),
        fields: Vec::new(),
        reps: Vec::new(),
        comps: Vec::new(),
        subs: Vec::new(),
    };
    let mut occurrences: HashMap<&str, u32> = HashMap::new();
    for (i, seg) in parsed.segments.iter().enumerate() {
        let name = seg.name;
        let valid_name = name.len() == 3
            && name.as_bytes()[0].is_ascii_uppercase()
            && name
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid_name {
            return Err(syntax(i + 1));
        }
        if i > 0 && name == "MSH" {
            return Err(Hl7Error::MultipleMessages { segment: i + 1 });
        }
        let occ = occurrences.entry(name).or_insert(0);
        *occ += 1;
        let fields_first = msg.fields.len() as u32;
        for field in &seg.fields {
            let reps_first = msg.reps.len() as u32;
            for rep in &field.repeats {
                let comps_first = msg.comps.len() as u32;
                for comp in &rep.components {
                    let subs_first = msg.subs.len() as u32;
                    msg.subs
                        .extend(comp.subcomponents.iter().map(|s| Span::of(&s.range)));
                    msg.comps.push(Node {
                        span: Span::of(&comp.range),
                        first: subs_first,
                        count: comp.subcomponents.len() as u32,
                    });
                }
                msg.reps.push(Node {
                    span: Span::of(&rep.range),
                    first: comps_first,
                    count: rep.components.len() as u32,
                });
            }
            msg.fields.push(Node {
                span: Span::of(&field.range),
                first: reps_first,
                count: field.repeats.len() as u32,
            });
        }
        msg.segs.push(SegNode {
            node: Node {
                span: Span::of(&seg.range),
                first: fields_first,
                count: seg.fields.len() as u32,
            },
            name: Span {
                start: seg.range.start as u32,
                end: seg.range.start as u32 + 3,
            },
            occurrence: *occ,
        });
    }
    Ok(msg)
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

impl Message {
    fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// The message text: segments joined by `\r`, decoded from the wire character set.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The delimiters declared by MSH-1/MSH-2.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// How the bytes were decoded.
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// MSH-18 as declared (first repetition, trimmed), possibly empty.
    pub fn declared_charset(&self) -> &str {
        &self.declared_charset
    }

    /// True when MSH-18 declares ISO 8859 but the bytes were (non-ASCII) UTF-8, read as UTF-8.
    pub fn encoding_mismatch(&self) -> bool {
        self.encoding_mismatch
    }

    /// Number of segments, MSH included.
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// Every segment, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> + '_ {
        (0..self.segs.len()).map(move |index| Segment { msg: self, index })
    }

    /// The segments with this name, in order.
    pub fn segments_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Segment<'a>> + 'a {
        self.segments().filter(move |s| s.name() == name)
    }

    /// The `occurrence`-th segment with this name (1-based).
    pub fn segment(&self, name: &str, occurrence: usize) -> Option<Segment<'_>> {
        self.segments()
            .find(|s| s.name() == name && s.occurrence() == occurrence)
    }

    /// The segment at this position in the message (0-based; 0 is MSH).
    pub fn segment_at(&self, index: usize) -> Option<Segment<'_>> {
        (index < self.segs.len()).then_some(Segment { msg: self, index })
    }

    /// The MSH segment (always present in a parsed message).
    pub fn msh(&self) -> Segment<'_> {
        Segment {
            msg: self,
            index: 0,
        }
    }

    /// MSH-9: message code, trigger event, message structure.
    pub fn message_type(&self) -> MessageType {
        let msh = self.msh();
        MessageType {
            code: msh.component_value(9, 1).unwrap_or_default(),
            trigger: msh.component_value(9, 2).unwrap_or_default(),
            structure: msh.component_value(9, 3).unwrap_or_default(),
        }
    }

    /// MSH-12.1, the HL7 version (`2.5`, `2.6`).
    pub fn version(&self) -> String {
        self.msh().component_value(12, 1).unwrap_or_default()
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> String {
        self.msh().value(10).unwrap_or_default()
    }

    /// MSH-11.1, the processing id (`P`, `T`, `D`).
    pub fn processing_id(&self) -> String {
        self.msh().component_value(11, 1).unwrap_or_default()
    }

    /// MSH-3, the sending application.
    pub fn sending_application(&self) -> Hd {
        Hd::from_field(self.msh().field(3))
    }

    /// MSH-4, the sending facility.
    pub fn sending_facility(&self) -> Hd {
        Hd::from_field(self.msh().field(4))
    }

    /// MSH-5, the receiving application.
    pub fn receiving_application(&self) -> Hd {
        Hd::from_field(self.msh().field(5))
    }

    /// MSH-6, the receiving facility.
    pub fn receiving_facility(&self) -> Hd {
        Hd::from_field(self.msh().field(6))
    }

    /// MSH-21, the message profile identifiers (one per repetition).
    pub fn profile_ids(&self) -> Vec<ProfileId> {
        let Some(field) = self.msh().field(21) else {
            return Vec::new();
        };
        field
            .repetitions()
            .filter(|r| !r.is_empty())
            .map(|r| ProfileId {
                entity_id: r.component_value(1),
                namespace_id: r.component_value(2),
            })
            .collect()
    }

    /// True when a MSH-21 repetition has this namespace id (whitespace-insensitive, as the
    /// guides' own examples write `1.1^ CISIS_CDA_HL7_LPS`).
    pub fn has_profile(&self, namespace_id: &str) -> bool {
        self.profile_ids()
            .iter()
            .any(|p| p.namespace_id.trim() == namespace_id)
    }

    /// The patient of the first PID segment.
    pub fn pid(&self) -> Option<Patient> {
        let pid = self.segment("PID", 1)?;
        let ids = pid
            .field(3)
            .map(|f| {
                f.repetitions()
                    .filter(|r| !r.is_empty())
                    .map(|r| PatientId::from_cx(&r))
                    .collect()
            })
            .unwrap_or_default();
        let names = pid
            .field(5)
            .map(|f| {
                f.repetitions()
                    .filter(|r| !r.is_empty())
                    .map(|r| PersonName {
                        family: r.component_value(1),
                        given: r.component_value(2),
                        second_given: r.component_value(3),
                        name_type: r.component_value(7),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Patient {
            ids,
            names,
            birth_date: pid.component_value(7, 1),
            sex: pid.component_value(8, 1),
            identity_reliability: pid.component_value(32, 1),
        })
    }

    /// TXA-12, the unique document id, read per the guides' rule (`ext^^root^ISO`, or `root`).
    pub fn document_id(&self) -> Option<DocumentId> {
        DocumentId::from_field(self.segment("TXA", 1)?.field(12)?)
    }

    /// TXA-13, the id of the document a T10 replaces.
    pub fn parent_document_id(&self) -> Option<DocumentId> {
        DocumentId::from_field(self.segment("TXA", 1)?.field(13)?)
    }
}

/// MSH-9, the message type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MessageType {
    /// MSH-9.1: `MDM`, `ORU`, `ACK`, `ADT`, `ZAM`.
    pub code: String,
    /// MSH-9.2: `T02`, `R01`, `A01`...
    pub trigger: String,
    /// MSH-9.3: `MDM_T02`, `ORU_R01`, `ACK`...
    pub structure: String,
}

/// A hierarchic designator (HD): an application, facility or assigning authority.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Hd {
    pub namespace_id: String,
    /// Usually an OID.
    pub universal_id: String,
    /// Usually `ISO`.
    pub universal_id_type: String,
}

impl Hd {
    fn from_field(field: Option<Field<'_>>) -> Hd {
        let Some(f) = field else {
            return Hd::default();
        };
        Hd {
            namespace_id: f.component(1).map(|c| c.value()).unwrap_or_default(),
            universal_id: f.component(2).map(|c| c.value()).unwrap_or_default(),
            universal_id_type: f.component(3).map(|c| c.value()).unwrap_or_default(),
        }
    }

    /// An HD held in subcomponents of one component (CX-4, XCN-9).
    fn from_component(comp: Option<Component<'_>>) -> Hd {
        let Some(c) = comp else {
            return Hd::default();
        };
        Hd {
            namespace_id: c.subcomponent(1).unwrap_or_default(),
            universal_id: c.subcomponent(2).unwrap_or_default(),
            universal_id_type: c.subcomponent(3).unwrap_or_default(),
        }
    }

    /// True when no part is filled.
    pub fn is_empty(&self) -> bool {
        self.namespace_id.is_empty()
            && self.universal_id.is_empty()
            && self.universal_id_type.is_empty()
    }
}

/// One MSH-21 repetition (EI): `1.1^CISIS_CDA_HL7_LPS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileId {
    /// EI-1, the volet version (`1.1`, `2.1`, `2.11`).
    pub entity_id: String,
    /// EI-2, the profile name (`CISIS_CDA_HL7_LPS`, `CISIS_CDA_HL7_V2`, `IHE_FRANCE-2.11-PAM`).
    pub namespace_id: String,
}

/// A document id as TXA-12/TXA-13 carry it: the CDA `ClinicalDocument/id` root and extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentId {
    pub root: String,
    pub extension: Option<String>,
}

impl DocumentId {
    fn from_field(f: Field<'_>) -> Option<DocumentId> {
        let ei1 = f.component(1).map(|c| c.value()).unwrap_or_default();
        let ei3 = f.component(3).map(|c| c.value()).unwrap_or_default();
        if ei1.is_empty() && ei3.is_empty() {
            return None;
        }
        Some(if ei3.is_empty() {
            DocumentId {
                root: ei1,
                extension: None,
            }
        } else {
            DocumentId {
                root: ei3,
                extension: non_empty(ei1),
            }
        })
    }
}

/// The patient of a PID segment. Patient data: its `Debug` output is redacted; never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct Patient {
    /// PID-3, one entry per repetition.
    pub ids: Vec<PatientId>,
    /// PID-5, one entry per repetition.
    pub names: Vec<PersonName>,
    /// PID-7.1 as written (`YYYYMMDD[HHMM...]`).
    pub birth_date: Option<String>,
    /// PID-8 (`F`, `M`, `U`...).
    pub sex: Option<String>,
    /// PID-32, identity reliability (`VALI`, `PROV`, `VIDE`, `DOUTE`, `FICTI`).
    pub identity_reliability: Option<String>,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patient")
            .field("ids", &self.ids)
            .field("names", &format_args!("<{} redacted>", self.names.len()))
            .field(
                "birth_date",
                &self.birth_date.as_ref().map(|_| "<redacted>"),
            )
            .field("sex", &self.sex.as_ref().map(|_| "<redacted>"))
            .field("identity_reliability", &self.identity_reliability)
            .finish()
    }
}

impl Patient {
    /// The INS identifiers of PID-3.
    pub fn ins(&self) -> impl Iterator<Item = &PatientId> {
        self.ids.iter().filter(|id| id.is_ins())
    }
}

/// One PID-3 repetition (CX). Its `Debug` output hides the identifier itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientId {
    /// CX-1, the identifier (for an INS: the 15-character matricule).
    pub id: String,
    /// CX-4, the assigning authority (for an INS: `ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO`).
    pub assigning_authority: Hd,
    /// CX-5, the identifier type (`INS`, `PI`, `NH`...).
    pub id_type: String,
}

impl fmt::Debug for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientId")
            .field(
                "id",
                &format_args!("<redacted, {} chars>", self.id.chars().count()),
            )
            .field("assigning_authority", &self.assigning_authority)
            .field("id_type", &self.id_type)
            .finish()
    }
}

impl PatientId {
    fn from_cx(r: &Repetition<'_>) -> PatientId {
        PatientId {
            id: r.component_value(1),
            assigning_authority: Hd::from_component(r.component(4)),
            id_type: r.component_value(5),
        }
    }

    /// True for an INS: type `INS`, or an INS assigning authority OID.
    pub fn is_ins(&self) -> bool {
        self.id_type == "INS" || INS_OIDS.contains(&self.assigning_authority.universal_id.as_str())
    }
}

/// One PID-5 repetition (XPN). Patient data.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName {
    pub family: String,
    pub given: String,
    /// XPN-3: further given names.
    pub second_given: String,
    /// XPN-7: `L` (legal / birth name in PAM-FR), `D` (used name)...
    pub name_type: String,
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonName")
            .field("name_type", &self.name_type)
            .finish_non_exhaustive()
    }
}

/// A segment of a [`Message`].
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    msg: &'a Message,
    index: usize,
}

impl fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Segment({}[{}])", self.name(), self.occurrence())
    }
}

impl<'a> Segment<'a> {
    fn data(&self) -> &'a SegNode {
        &self.msg.segs[self.index]
    }

    /// The segment name (`PID`).
    pub fn name(&self) -> &'a str {
        self.msg.slice(self.data().name)
    }

    /// Position in the message, 0-based (0 is MSH).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Rank among the segments of the same name, 1-based (`OBX[3]`).
    pub fn occurrence(&self) -> usize {
        self.data().occurrence as usize
    }

    /// The raw text of the segment, escapes included.
    pub fn raw(&self) -> &'a str {
        self.msg.slice(self.data().node.span)
    }

    /// Number of fields present (the highest field number written).
    pub fn field_count(&self) -> usize {
        self.data().node.count as usize
    }

    /// Field `n` (1-based, `MSH-1` is the field separator), if written.
    pub fn field(&self, n: usize) -> Option<Field<'a>> {
        let node = self.data().node;
        if n == 0 || n > node.count as usize {
            return None;
        }
        Some(Field {
            msg: self.msg,
            node: node.first as usize + n - 1,
            literal: self.index == 0 && n <= 2,
        })
    }

    /// The unescaped value of field `n` (its first repetition, component and subcomponent), or
    /// `None` when empty.
    pub fn value(&self, n: usize) -> Option<String> {
        non_empty(self.field(n)?.value())
    }

    /// The unescaped value of component `c` of field `n` (first repetition), `None` when empty.
    pub fn component_value(&self, n: usize, c: usize) -> Option<String> {
        non_empty(self.field(n)?.component(c)?.value())
    }

    /// `SEG[k]` for locations.
    pub fn location_prefix(&self) -> String {
        format!("{}[{}]", self.name(), self.occurrence())
    }

    /// `SEG[k]-n`, the location of field `n`.
    pub fn location(&self, n: usize) -> String {
        format!("{}-{n}", self.location_prefix())
    }

    /// `SEG[k]-n.c`, the location of a component.
    pub fn location_component(&self, n: usize, c: usize) -> String {
        format!("{}-{n}.{c}", self.location_prefix())
    }
}

/// A field of a segment.
#[derive(Clone, Copy)]
pub struct Field<'a> {
    msg: &'a Message,
    node: usize,
    /// MSH-1 and MSH-2 hold delimiters, not escaped text.
    literal: bool,
}

impl<'a> Field<'a> {
    fn data(&self) -> Node {
        self.msg.fields[self.node]
    }

    /// The raw text, escapes and delimiters included.
    pub fn raw(&self) -> &'a str {
        self.msg.slice(self.data().span)
    }

    /// True when nothing is written.
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }

    /// The repetitions (`~`-separated).
    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'a>> + 'a {
        let n = self.data();
        let msg = self.msg;
        (n.first as usize..(n.first + n.count) as usize).map(move |node| Repetition { msg, node })
    }

    /// Repetition `r` (1-based).
    pub fn repetition(&self, r: usize) -> Option<Repetition<'a>> {
        let n = self.data();
        (r >= 1 && r <= n.count as usize).then(|| Repetition {
            msg: self.msg,
            node: n.first as usize + r - 1,
        })
    }

    /// Component `c` (1-based) of the first repetition.
    pub fn component(&self, c: usize) -> Option<Component<'a>> {
        self.repetition(1)?.component(c)
    }

    /// The unescaped first subcomponent of the first component of the first repetition.
    pub fn value(&self) -> String {
        if self.literal {
            return self.raw().to_string();
        }
        self.component(1).map(|c| c.value()).unwrap_or_default()
    }
}

/// One repetition of a field.
#[derive(Clone, Copy)]
pub struct Repetition<'a> {
    msg: &'a Message,
    node: usize,
}

impl<'a> Repetition<'a> {
    fn data(&self) -> Node {
        self.msg.reps[self.node]
    }

    /// The raw text.
    pub fn raw(&self) -> &'a str {
        self.msg.slice(self.data().span)
    }

    /// True when nothing is written.
    pub fn is_empty(&self) -> bool {
        self.raw().is_empty()
    }

    /// The components (`^`-separated).
    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + 'a {
        let n = self.data();
        let msg = self.msg;
        (n.first as usize..(n.first + n.count) as usize).map(move |node| Component { msg, node })
    }

    /// Component `c` (1-based).
    pub fn component(&self, c: usize) -> Option<Component<'a>> {
        let n = self.data();
        (c >= 1 && c <= n.count as usize).then(|| Component {
            msg: self.msg,
            node: n.first as usize + c - 1,
        })
    }

    /// The unescaped value of component `c`, or "".
    pub fn component_value(&self, c: usize) -> String {
        self.component(c).map(|c| c.value()).unwrap_or_default()
    }
}

/// One component of a repetition.
#[derive(Clone, Copy)]
pub struct Component<'a> {
    msg: &'a Message,
    node: usize,
}

impl<'a> Component<'a> {
    fn data(&self) -> Node {
        self.msg.comps[self.node]
    }

    /// The raw text (subcomponent separators and escapes included).
    pub fn raw(&self) -> &'a str {
        self.msg.slice(self.data().span)
    }

    /// The unescaped subcomponents (`&`-separated).
    pub fn subcomponents(&self) -> impl Iterator<Item = String> + 'a {
        let n = self.data();
        let msg = self.msg;
        (n.first as usize..(n.first + n.count) as usize)
            .map(move |i| unescape(msg.slice(msg.subs[i]), &msg.delimiters).into_owned())
    }

    /// Subcomponent `s` (1-based), unescaped; `None` when absent or empty.
    pub fn subcomponent(&self, s: usize) -> Option<String> {
        let n = self.data();
        if s == 0 || s > n.count as usize {
            return None;
        }
        let span = self.msg.subs[n.first as usize + s - 1];
        non_empty(unescape(self.msg.slice(span), &self.msg.delimiters).into_owned())
    }

    /// The unescaped first subcomponent (the whole component when it has no subcomponents).
    pub fn value(&self) -> String {
        self.subcomponent(1).unwrap_or_default()
    }

    /// The whole component unescaped, subcomponent separators kept as written.
    pub fn text(&self) -> String {
        unescape(self.raw(), &self.msg.delimiters).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Message, Hl7Error> {
        parse(s.as_bytes(), &Limits::default())
    }

    const SMALL: &str = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101||ADT^A01^ADT_A01|42|P|2.5|||||FRA|UNICODE UTF-8|||2.11^IHE_FRANCE-2.11-PAM\rPID|||123^^^HOSP&1.2.3&ISO^PI~279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS||DOE\\S\\X^JANE^^^^^L||19790328|F||||||||||||||||||||||||VALI";

    #[test]
    fn terminators_all_accepted() {
        for term in ["\r", "\n", "\r\n", "\n\n"] {
            let text = SMALL.replace('\r', term);
            let m = p(&text).unwrap();
            assert_eq!(m.segment_count(), 2, "terminator {term:?}");
            assert_eq!(m.text(), SMALL);
        }
    }

    #[test]
    fn typed_header_access() {
        let m = p(SMALL).unwrap();
        assert_eq!(
            m.message_type(),
            MessageType {
                code: "ADT".into(),
                trigger: "A01".into(),
                structure: "ADT_A01".into()
            }
        );
        assert_eq!(m.version(), "2.5");
        assert_eq!(m.control_id(), "42");
        assert_eq!(m.sending_application().namespace_id, "APP");
        assert_eq!(m.receiving_facility().namespace_id, "RFAC");
        assert_eq!(m.profile_ids()[0].namespace_id, "IHE_FRANCE-2.11-PAM");
        assert_eq!(m.msh().value(1).as_deref(), Some("|"));
        assert_eq!(m.msh().value(2).as_deref(), Some("^~\\&"));
    }

    #[test]
    fn pid_access_unescapes_and_redacts() {
        let m = p(SMALL).unwrap();
        let pat = m.pid().unwrap();
        assert_eq!(pat.ids.len(), 2);
        assert_eq!(pat.ids[0].id_type, "PI");
        assert!(!pat.ids[0].is_ins());
        assert_eq!(
            pat.ids[1].assigning_authority.universal_id,
            "1.2.250.1.213.1.4.10"
        );
        assert!(pat.ids[1].is_ins());
        assert_eq!(pat.names[0].family, "DOE^X");
        assert_eq!(pat.birth_date.as_deref(), Some("19790328"));
        assert_eq!(pat.identity_reliability.as_deref(), Some("VALI"));
        let debug = format!("{pat:?} {m:?}");
        for secret in ["279035121518989", "DOE", "JANE", "19790328"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }

    #[test]
    fn silent_truncation_of_hl7_parser_is_caught() {
        let err = p("MSH|^~\\&|a\rPID|x\rxx\rPV1|1").unwrap_err();
        assert_eq!(
            err,
            Hl7Error::SegmentSyntax {
                segment: 3,
                reason: err_reason(&err)
            }
        );
        assert_eq!(
            p("MSH|^~\\&|a\rpid|x").unwrap_err().code(),
            crate::codes::HL7_SEGMENT_SYNTAX
        );
    }

    fn err_reason(e: &Hl7Error) -> String {
        match e {
            Hl7Error::SegmentSyntax { reason, .. } => reason.clone(),
            _ => String::new(),
        }
    }

    #[test]
    fn delimiter_line_checks() {
        use crate::codes::HL7_BAD_DELIMITERS as BAD;
        for bad in [
            "MSH|^~",
            "MSH|^~\r",
            "MSH|^^\\&|",
            "MSH|^~\\A|",
            "MSH|^~\\&#|x",
            "MSH ^~\\&|",
            "MSH|^~\\|&|",
        ] {
            assert_eq!(p(bad).unwrap_err().code(), BAD, "{bad:?}");
        }
        let m = p("MSH#@*!%#A#B").unwrap();
        assert_eq!(m.delimiters().component, '@');
        assert_eq!(m.msh().value(3).as_deref(), Some("A"));
        assert!(!m.delimiters().is_standard());
    }

    #[test]
    fn framing_and_bom_stripped() {
        let mut framed = vec![0x0B];
        framed.extend_from_slice(b"\xEF\xBB\xBF");
        framed.extend_from_slice(SMALL.as_bytes());
        framed.extend_from_slice(&[0x1C, 0x0D]);
        assert_eq!(
            parse(&framed, &Limits::default()).unwrap().segment_count(),
            2
        );
    }

    #[test]
    fn charsets() {
        let latin = b"MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|8859/1\rNTE|1||\xE9t\xE9";
        let m = parse(latin, &Limits::default()).unwrap();
        assert_eq!(m.encoding(), TextEncoding::Latin1);
        assert_eq!(
            m.segment("NTE", 1).unwrap().value(3).as_deref(),
            Some("été")
        );

        let latin9 = b"MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|8859/15\rNTE|1||\xA4";
        assert_eq!(
            parse(latin9, &Limits::default())
                .unwrap()
                .segment("NTE", 1)
                .unwrap()
                .value(3)
                .as_deref(),
            Some("€")
        );

        let mislabelled = "MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|8859/1\rNTE|1||été";
        let m = p(mislabelled).unwrap();
        assert!(m.encoding_mismatch());
        assert_eq!(
            m.segment("NTE", 1).unwrap().value(3).as_deref(),
            Some("été")
        );

        let bad_utf8 = b"MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|UNICODE UTF-8\rNTE|1||\xE9t\xE9";
        assert_eq!(
            parse(bad_utf8, &Limits::default()).unwrap_err().code(),
            crate::codes::HL7_ENCODING
        );
        let unknown = b"MSH|^~\\&|A|B|C|D|1||ACK|1|P|2.6|||||FRA|ISO IR87\rNTE|1||\xE9";
        assert_eq!(
            parse(unknown, &Limits::default()).unwrap_err().code(),
            crate::codes::HL7_ENCODING
        );
        assert_eq!(
            parse(b"\xFF\xFEM\0S\0H\0", &Limits::default())
                .unwrap_err()
                .code(),
            crate::codes::HL7_ENCODING
        );
    }

    #[test]
    fn second_msh_refused() {
        let two = format!("{SMALL}\r{SMALL}");
        assert_eq!(
            p(&two).unwrap_err().code(),
            crate::codes::HL7_MULTIPLE_MESSAGES
        );
    }

    #[test]
    fn too_many_delimiters() {
        let text = format!("MSH|^~\\&|A\rNTE{}", "|".repeat(MAX_DELIMITERS + 1));
        assert_eq!(p(&text).unwrap_err().code(), crate::codes::HL7_TOO_LARGE);
    }

    #[test]
    fn accessors_out_of_range_are_none() {
        let m = p(SMALL).unwrap();
        let pid = m.segment("PID", 1).unwrap();
        assert!(pid.field(0).is_none());
        assert!(pid.field(999).is_none());
        assert!(pid.component_value(3, 99).is_none());
        assert!(pid.field(3).unwrap().repetition(0).is_none());
        assert!(
            pid.field(3)
                .unwrap()
                .component(1)
                .unwrap()
                .subcomponent(0)
                .is_none()
        );
        assert!(m.segment("PID", 2).is_none());
        assert_eq!(pid.location(3), "PID[1]-3");
    }
}
