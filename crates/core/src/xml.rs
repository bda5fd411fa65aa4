//! The one way Relais parses XML.
//!
//! Health documents arrive from outside the hospital: a `<!DOCTYPE>` can carry entity
//! expansion bombs ("billion laughs") or external entities reading local files (XXE). CDA,
//! ebRS metadata and value sets never need a DTD, so any DTD is refused outright, before any
//! entity could be expanded. Size and node count are bounded by [`Limits`].

use crate::limits::Limits;
use crate::{Finding, Location, RuleCode};

/// The XML is not well-formed.
pub const XML_NOT_WELL_FORMED: RuleCode = RuleCode::new("XML-NOT-WELL-FORMED");
/// The XML carries a DTD (`<!DOCTYPE`), refused to rule out entity expansion and XXE.
pub const XML_DTD_FORBIDDEN: RuleCode = RuleCode::new("XML-DTD-FORBIDDEN");
/// The XML is larger than the configured limits (bytes or nodes).
pub const XML_TOO_LARGE: RuleCode = RuleCode::new("XML-TOO-LARGE");
/// The XML is not in an encoding Relais reads (UTF-8, UTF-16 with BOM, ISO-8859-1).
pub const XML_ENCODING: RuleCode = RuleCode::new("XML-ENCODING");

/// Why an XML input was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML document is {size} bytes, above the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("XML document has more than {limit} nodes")]
    TooManyNodes { limit: u32 },
    #[error(
        "XML document declares a DTD (<!DOCTYPE>); DTDs are refused to prevent entity expansion and external entity (XXE) attacks"
    )]
    DtdForbidden,
    #[error("XML document is not in a supported encoding: {0}")]
    Encoding(String),
    #[error("XML document is not well-formed: {message}")]
    NotWellFormed {
        message: String,
        line: u32,
        column: u32,
    },
}

impl XmlError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            XmlError::TooLarge { .. } | XmlError::TooManyNodes { .. } => XML_TOO_LARGE,
            XmlError::DtdForbidden => XML_DTD_FORBIDDEN,
            XmlError::Encoding(_) => XML_ENCODING,
            XmlError::NotWellFormed { .. } => XML_NOT_WELL_FORMED,
        }
    }

    /// This error as a finding (location: line and column when known).
    pub fn to_finding(&self) -> Finding {
        let f = Finding::error(self.code(), self.to_string());
        match self {
            XmlError::NotWellFormed { line, column, .. } => f.at(Location::Line {
                line: *line,
                column: *column,
            }),
            _ => f,
        }
    }
}

/// Decode XML bytes to text: UTF-8 (with or without BOM), UTF-16 with BOM, or ISO-8859-1 /
/// Windows-1252 when the declaration says so (older lab systems still emit it).
pub fn decode(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, XmlError> {
    use std::borrow::Cow;
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest).map(Cow::Borrowed).map_err(|e| {
            XmlError::Encoding(format!("invalid UTF-8 at byte {}", e.valid_up_to() + 3))
        });
    }
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let le = bytes[0] == 0xFF;
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        return String::from_utf16(&units)
            .map(Cow::Owned)
            .map_err(|_| XmlError::Encoding("invalid UTF-16".into()));
    }
    let head = &bytes[..bytes.len().min(200)];
    let head_lc = String::from_utf8_lossy(head).to_ascii_lowercase();
    let declared_latin = head_lc.starts_with("<?xml")
        && (head_lc.contains("iso-8859-1")
            || head_lc.contains("windows-1252")
            || head_lc.contains("latin1"));
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(_) if declared_latin => Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect())),
        Err(e) => Err(XmlError::Encoding(format!(
            "invalid UTF-8 at byte {} and no ISO-8859-1 declaration",
            e.valid_up_to()
        ))),
    }
}

/// Parse XML text into a read-only tree, refusing DTDs and bounding size and node count.
pub fn parse<'a>(text: &'a str, limits: &Limits) -> Result<roxmltree::Document<'a>, XmlError> {
    if text.len() as u64 > limits.max_xml_bytes {
        return Err(XmlError::TooLarge {
            size: text.len() as u64,
            limit: limits.max_xml_bytes,
        });
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_xml_nodes,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => XmlError::DtdForbidden,
        roxmltree::Error::NodesLimitReached => XmlError::TooManyNodes {
            limit: limits.max_xml_nodes,
        },
        other => {
            let pos = other.pos();
            XmlError::NotWellFormed {
                message: other.to_string(),
                line: pos.row,
                column: pos.col,
            }
        }
    })
}

/// An XPath-like path of an element, for locations: `/ClinicalDocument/recordTarget[1]/...`.
/// Positions are given among same-named siblings, 1-based, as XPath counts.
pub fn path_of(node: roxmltree::Node<'_, '_>) -> String {
    let mut parts = Vec::new();
    let mut cur = Some(node);
    while let Some(n) = cur {
        if n.is_element() {
            let name = n.tag_name().name();
            let same: Vec<_> = n
                .parent()
                .map(|p| {
                    p.children()
                        .filter(|c| c.is_element() && c.tag_name() == n.tag_name())
                        .collect()
                })
                .unwrap_or_default();
            if same.len() > 1 {
                let idx = same.iter().position(|c| *c == n).unwrap_or(0) + 1;
                parts.push(format!("{name}[{idx}]"));
            } else {
                parts.push(name.to_string());
            }
        }
        cur = n.parent();
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_billion_laughs() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        let err = parse(bomb, &Limits::default()).unwrap_err();
        assert_eq!(err, XmlError::DtdForbidden);
        assert_eq!(err.code(), XML_DTD_FORBIDDEN);
    }

    #[test]
    fn refuses_external_entity() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(
            parse(xxe, &Limits::default()).unwrap_err(),
            XmlError::DtdForbidden
        );
    }

    #[test]
    fn not_well_formed_has_position() {
        let err = parse("<a>\n<b></a>", &Limits::default()).unwrap_err();
        match err {
            XmlError::NotWellFormed { line, .. } => assert_eq!(line, 2),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn node_limit() {
        let limits = Limits {
            max_xml_nodes: 10,
            ..Limits::default()
        };
        let xml = format!("<r>{}</r>", "<a/>".repeat(50));
        assert_eq!(parse(&xml, &limits).unwrap_err().code(), XML_TOO_LARGE);
    }

    #[test]
    fn latin1_declared() {
        let bytes = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r>\xE9</r>";
        let text = decode(bytes).unwrap();
        let doc = parse(&text, &Limits::default()).unwrap();
        assert_eq!(doc.root_element().text(), Some("\u{e9}"));
    }

    #[test]
    fn path_counts_siblings() {
        let doc = parse("<r><a/><a><b/></a></r>", &Limits::default()).unwrap();
        let b = doc.descendants().find(|n| n.has_tag_name("b")).unwrap();
        assert_eq!(path_of(b), "/r/a[2]/b");
    }
}
