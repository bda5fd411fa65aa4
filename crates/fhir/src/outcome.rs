//! What the server's answer means for the document: filed, refused for good, or try again.
//!
//! The rules, and why:
//!
//! | answer | verdict | why |
//! |---|---|---|
//! | 200/201 with a `transaction-response` Bundle, every entry 2xx | [`Outcome::Filed`] | the transaction is atomic: all entries are in |
//! | 2xx without such a Bundle | [`Outcome::Rejected`] `FHIR-RESPONSE` | the server may or may not have filed it; a human checks, then re-files (conditional create keeps a re-filing from doubling it) |
//! | 3xx | [`Outcome::Rejected`] `FHIR-REDIRECT` | a transaction is never redirected: `base_url` is wrong |
//! | 401, 403 | [`Outcome::Rejected`] `FHIR-AUTH` | the token or certificate is refused: a configuration problem that retrying with the same credentials cannot fix, and that must not hide behind an endless backoff |
//! | 408, 429 | [`Outcome::Retry`] | the server says "later" |
//! | other 4xx | [`Outcome::Rejected`] `FHIR-<status>` | the server refuses this bundle; sending it again gets the same answer |
//! | 5xx | [`Outcome::Retry`] | the server is in trouble; the document waits in the outbox |
//! | no answer (connection, TLS, timeout) | [`Outcome::Retry`] | see [`crate::client`] |
//!
//! Texts taken from an `OperationOutcome` keep the issue severity, code, coded details and
//! FHIRPath locations, never `diagnostics` or `details.text`: servers often quote the offending
//! values there, which can be patient data, and the texts go to the journal and the review queue.

use serde::Deserialize;

use crate::bundle::{DOCUMENT_REFERENCE_ENTRY, ENTRY_COUNT, PATIENT_ENTRY};

/// Longest text kept from a server's answer.
const MAX_TEXT: usize = 400;

/// The verdict on one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server holds the document.
    Filed(Filed),
    /// Refused for good: a human must look. `code` is stable (`FHIR-AUTH`, `FHIR-400`...).
    Rejected {
        /// Stable code for the journal and the review queue.
        code: String,
        /// What the server said, without patient data.
        text: String,
    },
    /// Not filed now; the same transaction may be sent again later.
    Retry {
        /// Why, for the journal.
        text: String,
    },
}

/// Where the server filed the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    /// HTTP status of the transaction (200 or 201).
    pub status: u16,
    /// Location of the DocumentReference (`DocumentReference/<id>/_history/<v>`), if given.
    pub document_reference: Option<String>,
    /// Whether the DocumentReference was created by this transaction (`201`), or already there
    /// (`200`: the conditional create matched, e.g. a replay after a lost answer).
    pub created: bool,
    /// Location of the Patient, if given.
    pub patient: Option<String>,
    /// Whether the Patient was created by this transaction.
    pub patient_created: bool,
}

impl Filed {
    /// One line for the journal.
    pub fn detail(&self) -> String {
        let what = self
            .document_reference
            .as_deref()
            .unwrap_or("DocumentReference (no location given)");
        if self.created {
            format!("FHIR transaction {}: {what} created", self.status)
        } else {
            format!("FHIR transaction {}: {what} was already filed", self.status)
        }
    }
}

/// An HTTP answer as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body, up to the client's limit.
    pub body: Vec<u8>,
    /// Whether the body was longer than the limit and cut.
    pub truncated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseBundle {
    resource_type: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    entry: Vec<ResponseEntry>,
}

#[derive(Debug, Deserialize)]
struct ResponseEntry {
    response: Option<EntryResponse>,
}

#[derive(Debug, Deserialize)]
struct EntryResponse {
    status: String,
    location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationOutcome {
    resource_type: String,
    #[serde(default)]
    issue: Vec<Issue>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    severity: Option<String>,
    code: Option<String>,
    details: Option<Details>,
    #[serde(default)]
    expression: Vec<String>,
    #[serde(default)]
    location: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Details {
    #[serde(default)]
    coding: Vec<DetailsCoding>,
}

#[derive(Debug, Deserialize)]
struct DetailsCoding {
    code: Option<String>,
}

/// Classifies the server's answer to a transaction of the bundles built by this crate.
pub fn classify(resp: &RawResponse) -> Outcome {
    let status = resp.status;
    match status {
        200..=299 => classify_success(resp),
        300..=399 => Outcome::Rejected {
            code: "FHIR-REDIRECT".into(),
            text: format!(
                "the server answered {status} (redirect) to the transaction; check base_url \
                 (a transaction is posted to the FHIR base itself){}",
                issue_summary(resp)
            ),
        },
        401 | 403 => Outcome::Rejected {
            code: "FHIR-AUTH".into(),
            text: format!(
                "the FHIR server refused the credentials ({status}{}); check bearer_token_file \
                 or client_cert/client_key and the rights of this client on the server, then \
                 re-file the documents waiting for review{}",
                if status == 401 {
                    " Unauthorized"
                } else {
                    " Forbidden"
                },
                issue_summary(resp)
            ),
        },
        408 | 429 => Outcome::Retry {
            text: format!(
                "the FHIR server answered {status} ({}){}{}",
                if status == 408 {
                    "request timeout"
                } else {
                    "too many requests"
                },
                retry_after(resp),
                issue_summary(resp)
            ),
        },
        400..=499 => Outcome::Rejected {
            code: format!("FHIR-{status}"),
            text: format!(
                "the FHIR server refused the transaction ({status}){}",
                issue_summary(resp)
            ),
        },
        _ => Outcome::Retry {
            text: format!(
                "the FHIR server answered {status}{}{}",
                retry_after(resp),
                issue_summary(resp)
            ),
        },
    }
}

fn classify_success(resp: &RawResponse) -> Outcome {
    let unusable = |why: &str| Outcome::Rejected {
        code: "FHIR-RESPONSE".into(),
        text: format!(
            "the FHIR server answered {} but {why}; the document may or may not be filed: check \
             the server, then re-file (the conditional create keeps it from being filed twice)",
            resp.status
        ),
    };
    if resp.truncated {
        return unusable("its answer is larger than Relais reads");
    }
    let bundle: ResponseBundle = match serde_json::from_slice(&resp.body) {
        Ok(b) => b,
        Err(_) => return unusable("its answer is not a FHIR JSON Bundle"),
    };
    if bundle.resource_type != "Bundle" || bundle.kind.as_deref() != Some("transaction-response") {
        return unusable("its answer is not a transaction-response Bundle");
    }
    if bundle.entry.len() != ENTRY_COUNT {
        return unusable(&format!(
            "its transaction-response has {} entries for the {ENTRY_COUNT} sent",
            bundle.entry.len()
        ));
    }
    let mut statuses = Vec::with_capacity(ENTRY_COUNT);
    for (i, entry) in bundle.entry.iter().enumerate() {
        let Some(r) = &entry.response else {
            return unusable(&format!(
                "entry {i} of its transaction-response has no status"
            ));
        };
        let code = leading_status(&r.status);
        match code {
            Some(c @ 200..=299) => statuses.push(c),
            _ => {
                return unusable(&format!(
                    "entry {i} of its transaction-response has status {:?}",
                    truncate(&r.status, 40)
                ));
            }
        }
    }
    let location = |i: usize| {
        bundle.entry[i]
            .response
            .as_ref()
            .and_then(|r| r.location.clone())
            .map(|l| truncate(&l, 200))
    };
    Outcome::Filed(Filed {
        status: resp.status,
        document_reference: location(DOCUMENT_REFERENCE_ENTRY),
        created: statuses[DOCUMENT_REFERENCE_ENTRY] == 201,
        patient: location(PATIENT_ENTRY),
        patient_created: statuses[PATIENT_ENTRY] == 201,
    })
}

/// `"201 Created"` → 201.
fn leading_status(s: &str) -> Option<u16> {
    s.trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .filter(|d| d.len() == 3)
        .and_then(|d| d.parse().ok())
}

/// `; retry after N` when the server said so (its value is a number or a date: no patient data).
fn retry_after(resp: &RawResponse) -> String {
    match &resp.retry_after {
        Some(v) => format!("; it asks to retry after {}", truncate(v, 40)),
        None => String::new(),
    }
}

/// `: error invalid at Bundle.entry[2]... (+2 more issues)` from an OperationOutcome body, or
/// nothing when the body is not one.
fn issue_summary(resp: &RawResponse) -> String {
    let Ok(oo) = serde_json::from_slice::<OperationOutcome>(&resp.body) else {
        return String::new();
    };
    if oo.resource_type != "OperationOutcome" || oo.issue.is_empty() {
        return String::new();
    }
    // The first error (or fatal) issue, else the first issue.
    let first = oo
        .issue
        .iter()
        .find(|i| matches!(i.severity.as_deref(), Some("fatal" | "error")))
        .unwrap_or(&oo.issue[0]);
    let mut s = format!(
        ": {} {}",
        word(first.severity.as_deref().unwrap_or("issue")),
        word(first.code.as_deref().unwrap_or("unknown"))
    );
    let codes: Vec<String> = first
        .details
        .iter()
        .flat_map(|d| d.coding.iter())
        .filter_map(|c| c.code.as_deref().map(word))
        .collect();
    if !codes.is_empty() {
        s.push_str(&format!(" [{}]", codes.join(", ")));
    }
    let paths: Vec<String> = first
        .expression
        .iter()
        .chain(first.location.iter())
        .map(|p| path(p))
        .collect();
    if !paths.is_empty() {
        s.push_str(&format!(" at {}", paths.join(", ")));
    }
    if oo.issue.len() > 1 {
        s.push_str(&format!(" (+{} more issues)", oo.issue.len() - 1));
    }
    s.push_str("; the server's diagnostics are not copied here (they may quote patient data)");
    truncate(&s, MAX_TEXT)
}

/// A code as a word: letters, digits and `-_.` only (anything else could be data).
fn word(s: &str) -> String {
    truncate(
        &s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect::<String>(),
        60,
    )
}

/// A FHIRPath location, without the literals a `where(...)` could hold.
fn path(s: &str) -> String {
    let kept: String = s
        .chars()
        .take_while(|c| !matches!(c, '\'' | '"' | '('))
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'))
        .collect();
    truncate(&kept, 120)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            content_type: Some("application/fhir+json".into()),
            retry_after: None,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn tr(statuses: &[&str]) -> String {
        let entries: Vec<String> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(r#"{{"response":{{"status":"{s}","location":"T/{i}/_history/1"}}}}"#)
            })
            .collect();
        format!(
            r#"{{"resourceType":"Bundle","type":"transaction-response","entry":[{}]}}"#,
            entries.join(",")
        )
    }

    #[test]
    fn filed_created_and_already_there() {
        let o = classify(&resp(
            200,
            &tr(&["201 Created", "201 Created", "201 Created"]),
        ));
        let Outcome::Filed(f) = o else {
            panic!("{o:?}")
        };
        assert!(f.created && f.patient_created);
        assert_eq!(f.document_reference.as_deref(), Some("T/2/_history/1"));
        assert!(f.detail().contains("created"));

        let o = classify(&resp(200, &tr(&["200 OK", "201", "200 OK"])));
        let Outcome::Filed(f) = o else {
            panic!("{o:?}")
        };
        assert!(!f.created && !f.patient_created);
        assert!(f.detail().contains("already filed"));
    }

    #[test]
    fn unusable_success_goes_to_review() {
        for body in [
            "<html>ok</html>",
            r#"{"resourceType":"Bundle","type":"batch-response","entry":[]}"#,
            &tr(&["201 Created", "201 Created"]),
            &tr(&["201 Created", "400 Bad Request", "201 Created"]),
        ] {
            match classify(&resp(200, body)) {
                Outcome::Rejected { code, .. } => assert_eq!(code, "FHIR-RESPONSE", "{body}"),
                o => panic!("{body}: {o:?}"),
            }
        }
    }

    #[test]
    fn statuses() {
        let oo = r#"{"resourceType":"OperationOutcome","issue":[
            {"severity":"warning","code":"informational","diagnostics":"x"},
            {"severity":"error","code":"invalid","diagnostics":"INS 279035121518989 unknown",
             "details":{"coding":[{"code":"MSG_BAD"}],"text":"Dupont"},
             "expression":["Bundle.entry[0].resource.identifier.where(value='279035121518989')"]}]}"#;
        match classify(&resp(400, oo)) {
            Outcome::Rejected { code, text } => {
                assert_eq!(code, "FHIR-400");
                assert!(
                    text.contains(
                        "error invalid [MSG_BAD] at Bundle.entry[0].resource.identifier.where"
                    ),
                    "{text}"
                );
                assert!(text.contains("+1 more issues"), "{text}");
                assert!(!text.contains("279035121518989"), "{text}");
                assert!(!text.contains("Dupont"), "{text}");
            }
            o => panic!("{o:?}"),
        }
        for s in [401, 403] {
            match classify(&resp(s, "")) {
                Outcome::Rejected { code, .. } => assert_eq!(code, "FHIR-AUTH"),
                o => panic!("{s}: {o:?}"),
            }
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(&resp(s, "")), Outcome::Retry { .. }),
                "{s}"
            );
        }
        let mut r = resp(503, "");
        r.retry_after = Some("120".into());
        match classify(&r) {
            Outcome::Retry { text } => assert!(text.contains("retry after 120"), "{text}"),
            o => panic!("{o:?}"),
        }
        for (s, c) in [
            (404, "FHIR-404"),
            (412, "FHIR-412"),
            (422, "FHIR-422"),
            (301, "FHIR-REDIRECT"),
        ] {
            match classify(&resp(s, "not json")) {
                Outcome::Rejected { code, .. } => assert_eq!(code, c),
                o => panic!("{s}: {o:?}"),
            }
        }
    }

    #[test]
    fn long_texts_are_cut() {
        let long = "x".repeat(5000);
        let oo = format!(
            r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"{long}","expression":["{long}"]}}]}}"#
        );
        match classify(&resp(422, &oo)) {
            Outcome::Rejected { text, .. } => assert!(text.len() < 700, "{}", text.len()),
            o => panic!("{o:?}"),
        }
    }
}
