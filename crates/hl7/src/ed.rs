//! Documents embedded in OBX segments as ED (encapsulated data): the CDA of an MDM or ORU, the
//! mail of an MDM to the LPS, the proposed mail bodies (CORPSMAIL_PS / CORPSMAIL_PATIENT).
//!
//! The ANS guides carry every document as ED with `Base64` encoding (ED-4); RP (reference
//! pointers) carry no bytes and TX values are plain text, so only ED values are extracted.

use crate::codes;
use crate::message::{Message, Segment};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use relais_core::{Finding, Location};
use serde::Serialize;
use std::fmt;

/// A coded value (CE/CWE): code, text, coding system.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CodedValue {
    pub code: String,
    pub text: String,
    pub system: String,
}

/// ED-4, how the data is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum EdEncoding {
    Base64,
    Hex,
    /// `A`: the data is the text itself.
    Ascii,
    /// Anything else, as written.
    Other(String),
}

/// One ED value found in an OBX.
#[derive(Clone, PartialEq, Eq)]
pub struct EmbeddedDocument {
    /// `OBX[n]-5`, n counting OBX segments from 1.
    pub location: String,
    /// OBX-1, when it is a number.
    pub obx_set_id: Option<u32>,
    /// OBX-3 (the document type, `MetaDMPMSS` code, or Message-ID of the mail).
    pub observation_id: CodedValue,
    /// ED-2 as written (`text`, `TEXT`, `AP`...).
    pub data_type: String,
    /// ED-3 as written (`XML`, `PDF`...).
    pub data_subtype: String,
    /// A MIME type derived from ED-2/ED-3 (`text/xml`, `application/pdf`, `text/plain`).
    pub mime: String,
    /// ED-4.
    pub encoding: EdEncoding,
    /// The decoded bytes, or why they could not be decoded.
    pub data: Result<Vec<u8>, Finding>,
    /// Remarks that did not prevent decoding (missing base64 padding).
    pub warnings: Vec<Finding>,
}

impl fmt::Debug for EmbeddedDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The data is a clinical document: show its size only.
        f.debug_struct("EmbeddedDocument")
            .field("location", &self.location)
            .field("obx_set_id", &self.obx_set_id)
            .field("observation_id", &self.observation_id.code)
            .field("mime", &self.mime)
            .field("encoding", &self.encoding)
            .field(
                "data",
                &self.data.as_ref().map(|d| format!("<{} bytes>", d.len())),
            )
            .field("warnings", &self.warnings)
            .finish()
    }
}

impl EmbeddedDocument {
    /// True when ED-3 says XML (a CDA).
    pub fn is_xml(&self) -> bool {
        self.data_subtype.eq_ignore_ascii_case("xml")
    }
}

/// Every ED value of the message's OBX segments, decoded.
pub fn embedded_documents(msg: &Message) -> Vec<EmbeddedDocument> {
    msg.segments_named("OBX")
        .filter(|obx| {
            obx.value(2)
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("ED"))
        })
        .map(|obx| extract(&obx))
        .collect()
}

fn extract(obx: &Segment<'_>) -> EmbeddedDocument {
    let field5 = obx.field(5);
    let comp = |c: usize| {
        field5
            .and_then(|f| f.component(c))
            .map(|c| c.value().trim().to_string())
            .unwrap_or_default()
    };
    let data_type = comp(2);
    let data_subtype = comp(3);
    let encoding = match comp(4).to_ascii_lowercase().as_str() {
        "base64" => EdEncoding::Base64,
        "hex" => EdEncoding::Hex,
        "a" => EdEncoding::Ascii,
        _ => EdEncoding::Other(comp(4)),
    };
    // The data may legitimately hold escapes (line breaks as \X0D\\X0A\): take the whole
    // component unescaped.
    let raw_data = field5
        .and_then(|f| f.component(5))
        .map(|c| c.text())
        .unwrap_or_default();
    let data_location = Location::Hl7Field(obx.location_component(5, 5));
    let mut warnings = Vec::new();
    let data = decode_data(&raw_data, &encoding, &data_location, &mut warnings);
    EmbeddedDocument {
        location: obx.location(5),
        obx_set_id: obx.value(1).and_then(|v| v.trim().parse().ok()),
        observation_id: CodedValue {
            code: obx.component_value(3, 1).unwrap_or_default(),
            text: obx.component_value(3, 2).unwrap_or_default(),
            system: obx.component_value(3, 3).unwrap_or_default(),
        },
        mime: mime_of(&data_type, &data_subtype),
        data_type,
        data_subtype,
        encoding,
        data,
        warnings,
    }
}

// The error is a Finding because `EmbeddedDocument::data` carries one as its error.
#[allow(clippy::result_large_err)]
fn decode_data(
    raw: &str,
    encoding: &EdEncoding,
    location: &Location,
    warnings: &mut Vec<Finding>,
) -> Result<Vec<u8>, Finding> {
    let err = |code, msg: String| Finding::error(code, msg).at(location.clone());
    let cleaned: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if cleaned.is_empty() {
        return Err(err(
            codes::HL7_ED_EMPTY,
            "the ED value carries no data (ED-5 is empty)".into(),
        ));
    }
    match encoding {
        EdEncoding::Ascii => Ok(raw.as_bytes().to_vec()),
        EdEncoding::Hex => hex::decode(&cleaned).map_err(|e| {
            err(
                codes::HL7_ED_ENCODING,
                format!("the ED data is declared Hex but is not valid hexadecimal ({e})"),
            )
        }),
        EdEncoding::Other(name) => Err(err(
            codes::HL7_ED_ENCODING,
            format!(
                "ED-4 is `{}`; the ANS guides require `Base64`",
                crate::message::sanitize(name)
            ),
        )),
        EdEncoding::Base64 => {
            let engine = GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            let decoded = engine.decode(cleaned.as_bytes()).map_err(|e| {
                use base64::DecodeError as E;
                let why = match e {
                    E::InvalidByte(offset, _) => format!("invalid base64 character at offset {offset}"),
                    E::InvalidLength(len) => format!(
                        "{len} base64 characters cannot be a complete encoding: the data is truncated"
                    ),
                    E::InvalidLastSymbol(offset, _) => {
                        format!("invalid last base64 symbol at offset {offset}: the data is truncated or altered")
                    }
                    E::InvalidPadding => "misplaced `=` padding".to_string(),
                };
                err(
                    codes::HL7_ED_BASE64_INVALID,
                    format!("the ED data cannot be decoded: {why}; ask the sender to re-send the complete document"),
                )
            })?;
            if !cleaned.len().is_multiple_of(4) {
                warnings.push(
                    Finding::warning(
                        codes::HL7_ED_BASE64_PADDING,
                        "the base64 data lacks its final `=` padding; decoded anyway, but strict receivers refuse it",
                    )
                    .at(location.clone()),
                );
            }
            Ok(decoded)
        }
    }
}

/// A MIME type from ED-2 (HL7 table 0191 or a MIME top-level type) and ED-3.
fn mime_of(data_type: &str, subtype: &str) -> String {
    let top = match data_type.to_ascii_lowercase().as_str() {
        "text" | "tx" | "ft" => "text",
        "ap" | "application" => "application",
        "im" | "ns" | "sd" | "si" | "image" => "image",
        "au" | "audio" => "audio",
        "multipart" => "multipart",
        "" => "application",
        other => return format!("application/x-hl7-{other}"),
    };
    let sub = subtype.trim().to_ascii_lowercase();
    let sub = if sub.is_empty() {
        if top == "text" {
            "plain".to_string()
        } else {
            "octet-stream".to_string()
        }
    } else {
        sub
    };
    format!("{top}/{sub}")
}

/// True when the bytes start (after a BOM and blanks) with `<`, as an XML document does.
pub(crate) fn looks_like_xml(bytes: &[u8]) -> bool {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<')
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::Limits;

    fn docs(obx5: &str) -> Vec<EmbeddedDocument> {
        let text = format!(
            "MSH|^~\\&|A|B|C|D|1||ORU^R01^ORU_R01|1|P|2.5\rOBX|1|ED|11502-2^CR^LN||{obx5}||||||F"
        );
        embedded_documents(&crate::parse(text.as_bytes(), &Limits::default()).unwrap())
    }

    #[test]
    fn base64_decoded_with_mime() {
        let d = &docs("^TEXT^XML^Base64^PHI+PC9yPg==")[0];
        assert_eq!(d.data.as_deref().unwrap(), b"<r></r>");
        assert_eq!(d.mime, "text/xml");
        assert_eq!(d.location, "OBX[1]-5");
        assert_eq!(d.obx_set_id, Some(1));
        assert_eq!(d.observation_id.code, "11502-2");
        assert!(d.warnings.is_empty());
        assert!(d.is_xml());
    }

    #[test]
    fn whitespace_and_escaped_line_breaks_ignored() {
        let d = &docs("^text^XML^Base64^PHI+\\X0D0A\\PC9y Pg==")[0];
        assert_eq!(d.data.as_deref().unwrap(), b"<r></r>");
    }

    #[test]
    fn missing_padding_warns() {
        let d = &docs("^text^XML^Base64^PHI+PC9yPg")[0];
        assert_eq!(d.data.as_deref().unwrap(), b"<r></r>");
        assert_eq!(d.warnings[0].code, codes::HL7_ED_BASE64_PADDING);
    }

    #[test]
    fn truncated_and_invalid_base64() {
        for bad in ["PHI+PC9yP", "PHI+PC9y*g==", "PHI=PC9y"] {
            let f = docs(&format!("^text^XML^Base64^{bad}"))[0]
                .data
                .clone()
                .unwrap_err();
            assert_eq!(f.code, codes::HL7_ED_BASE64_INVALID, "{bad}");
            assert_eq!(f.location, Location::Hl7Field("OBX[1]-5.5".into()));
        }
    }

    #[test]
    fn other_encodings() {
        assert_eq!(
            docs("^AP^PDF^Hex^255044")[0].data.as_deref().unwrap(),
            b"%PD"
        );
        assert_eq!(docs("^AP^PDF^Hex^255044")[0].mime, "application/pdf");
        assert_eq!(docs("^TEXT^^A^a\\F\\b")[0].data.as_deref().unwrap(), b"a|b");
        assert_eq!(docs("^TEXT^^A^a")[0].mime, "text/plain");
        assert_eq!(
            docs("^TEXT^^UU^abc")[0].data.clone().unwrap_err().code,
            codes::HL7_ED_ENCODING
        );
        assert_eq!(
            docs("^TEXT^^Hex^xyz")[0].data.clone().unwrap_err().code,
            codes::HL7_ED_ENCODING
        );
        assert_eq!(
            docs("^TEXT^XML^Base64^")[0].data.clone().unwrap_err().code,
            codes::HL7_ED_EMPTY
        );
    }

    #[test]
    fn only_ed_values() {
        let text = "MSH|^~\\&|A|B|C|D|1||ORU^R01^ORU_R01|1|P|2.5\rOBX|1|CE|MASQUE_PS^x^MetaDMPMSS||N||||||F\rOBX|2|RP|X||http://x||||||F";
        assert!(
            embedded_documents(&crate::parse(text.as_bytes(), &Limits::default()).unwrap())
                .is_empty()
        );
    }

    #[test]
    fn xml_sniffing() {
        assert!(looks_like_xml(
            b"\xEF\xBB\xBF \r\n<?xml version='1.0'?><a/>"
        ));
        assert!(!looks_like_xml(b"Document"));
    }
}
