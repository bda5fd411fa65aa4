//! A readable rendering of a CDA R2 document: the CI-SIS header as a table, then each
//! section's title and narrative text.
//!
//! Server-side, from the XML tree: no XSLT, no script, and every string from the document goes
//! through maud's escaping. The narrative block's structure (paragraphs, lists, tables, line
//! breaks, emphasis) is mapped to the matching HTML elements; anything else keeps its text only.
//! Links (`linkHtml`) are shown as text, never followed: a document cannot make the console
//! load anything.

use maud::{Markup, html};
use relais_cda::InsKind;
use relais_core::Limits;
use roxmltree::Node;

const V3: &str = "urn:hl7-org:v3";
/// Deepest narrative nesting rendered; deeper content is shown as plain text.
const MAX_DEPTH: usize = 24;
/// Most sections rendered (nested ones included).
const MAX_SECTIONS: usize = 500;

/// Renders the CDA document `xml`; when it cannot be read, says so (escaped).
pub(crate) fn render(xml: &[u8], limits: &Limits, pdf_href: Option<&str>) -> Markup {
    let text = match std::str::from_utf8(xml) {
        Ok(t) => t,
        Err(_) => return html! { p.warn { "The document is not UTF-8 text: it cannot be shown." } },
    };
    let doc = match relais_core::xml::parse(text, limits) {
        Ok(d) => d,
        Err(e) => return html! { p.warn { "The document cannot be read as XML: " (e) } },
    };
    let Some(root) = doc.descendants().find(|n| is(n, "ClinicalDocument")) else {
        return html! { p.warn { "No ClinicalDocument element in this XML." } };
    };
    let mut sections = 0usize;
    html! {
        div.cda {
            @if let Some(title) = child(root, "title") {
                h3.cda-title { (text_of(title)) }
            }
            (header(root))
            @match body(root) {
                Some(b) if child(b, "nonXMLBody").is_some() => {
                    @let nx = child(b, "nonXMLBody").and_then(|n| child(n, "text"));
                    @let media = nx.and_then(|t| t.attribute("mediaType")).unwrap_or("unknown");
                    p.note {
                        "Level 1 document: the body is a file of type " code { (media) } "."
                        @if let Some(href) = pdf_href {
                            " " a.button href=(href) target="_blank" rel="noopener" { "Open the PDF" }
                        }
                    }
                }
                Some(b) => {
                    @if let Some(sb) = child(b, "structuredBody") {
                        @for comp in children(sb, "component") {
                            @if let Some(sec) = child(comp, "section") {
                                (section(sec, 0, &mut sections))
                            }
                        }
                    }
                }
                None => { p.warn { "The document has no body." } }
            }
        }
    }
}

fn is(n: &Node, name: &str) -> bool {
    n.is_element() && n.tag_name().name() == name && n.tag_name().namespace() == Some(V3)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| is(c, name))
}

fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(move |c| is(c, name))
}

fn path<'a, 'i>(n: Node<'a, 'i>, names: &[&str]) -> Option<Node<'a, 'i>> {
    names.iter().try_fold(n, |cur, name| child(cur, name))
}

fn body<'a, 'i>(root: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    child(root, "component")
}

/// The text content of an element, whitespace collapsed.
fn text_of(n: Node) -> String {
    let raw: String = n
        .descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect();
    raw.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `YYYYMMDDHHMMSS+ZZZZ` (any prefix of it) as `YYYY-MM-DD HH:MM`.
pub(crate) fn hl7_date(v: &str) -> String {
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    let tz = &v[digits.len()..];
    let mut out = String::new();
    let d = digits.as_str();
    if d.len() >= 4 {
        out.push_str(&d[..4]);
    }
    if d.len() >= 6 {
        out.push('-');
        out.push_str(&d[4..6]);
    }
    if d.len() >= 8 {
        out.push('-');
        out.push_str(&d[6..8]);
    }
    if d.len() >= 12 {
        out.push(' ');
        out.push_str(&d[8..10]);
        out.push(':');
        out.push_str(&d[10..12]);
    }
    if out.is_empty() {
        return v.to_string();
    }
    if !tz.is_empty() && d.len() >= 12 {
        out.push(' ');
        out.push_str(tz);
    }
    out
}

fn person_name(n: Node) -> String {
    let mut parts = Vec::new();
    for kind in ["prefix", "given", "family", "suffix"] {
        for p in children(n, kind) {
            let t = text_of(p);
            if !t.is_empty() {
                parts.push(t);
            }
        }
    }
    if parts.is_empty() {
        text_of(n)
    } else {
        parts.join(" ")
    }
}

/// A patient's name with the CI-SIS qualifiers spelled out (birth name, used name, birth
/// given names...), each part escaped.
fn patient_name(n: Node) -> Markup {
    let label = |kind: &str, q: Option<&str>| match (kind, q) {
        ("family", Some("BR")) => "birth name",
        ("family", Some("SP" | "CL")) => "used name",
        ("family", _) => "name",
        ("given", Some("BR")) => "first birth given name",
        ("given", Some("CL")) => "used given name",
        ("given", _) => "given names",
        _ => "",
    };
    let parts: Vec<(&str, String)> = n
        .children()
        .filter(|c| is(c, "family") || is(c, "given"))
        .map(|c| {
            (
                label(c.tag_name().name(), c.attribute("qualifier")),
                text_of(c),
            )
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    html! {
        @if parts.is_empty() {
            (text_of(n))
        } @else {
            @for (i, (label, value)) in parts.iter().enumerate() {
                @if i > 0 { ", " }
                span.muted { (label) " " } strong { (value) }
            }
        }
    }
}

fn ii(n: Node) -> String {
    match (n.attribute("root"), n.attribute("extension")) {
        (Some(r), Some(e)) => format!("{e} ({r})"),
        (Some(r), None) => r.to_string(),
        (None, Some(e)) => e.to_string(),
        (None, None) => "-".into(),
    }
}

fn patient_ids(role: Node) -> Vec<(String, String)> {
    children(role, "id")
        .map(|id| {
            let root = id.attribute("root").unwrap_or("");
            let label = match InsKind::from_oid(root) {
                Some(kind) => kind.to_string(),
                None => "Local id".to_string(),
            };
            (label, ii(id))
        })
        .collect()
}

fn header(root: Node) -> Markup {
    let code = child(root, "code");
    let patient_role = path(root, &["recordTarget", "patientRole"]);
    let patient = patient_role.and_then(|r| child(r, "patient"));
    let authors: Vec<Node> = children(root, "author").collect();
    let custodian = path(
        root,
        &[
            "custodian",
            "assignedCustodian",
            "representedCustodianOrganization",
            "name",
        ],
    );
    let legal = path(
        root,
        &[
            "legalAuthenticator",
            "assignedEntity",
            "assignedPerson",
            "name",
        ],
    );
    let encounter_time = path(
        root,
        &["componentOf", "encompassingEncounter", "effectiveTime"],
    );
    html! {
        table.kv {
            @if let Some(c) = code {
                tr { th { "Document type" } td {
                    (c.attribute("displayName").unwrap_or("")) " "
                    span.muted { "(" (c.attribute("code").unwrap_or("?")) ")" }
                } }
            }
            @if let Some(t) = child(root, "effectiveTime").and_then(|t| t.attribute("value")) {
                tr { th { "Created" } td { (hl7_date(t)) } }
            }
            @if let Some(id) = child(root, "id") {
                tr { th { "Document id" } td.mono { (ii(id)) } }
            }
            @if let Some(set) = child(root, "setId") {
                tr { th { "Set id, version" } td.mono {
                    (ii(set)) ", version "
                    (child(root, "versionNumber").and_then(|v| v.attribute("value")).unwrap_or("1"))
                } }
            }
            @if let Some(c) = child(root, "confidentialityCode").and_then(|c| c.attribute("code")) {
                tr { th { "Confidentiality" } td { (c) } }
            }
            @if let Some(p) = patient {
                tr { th { "Patient" } td {
                    @for n in children(p, "name") { div { (patient_name(n)) } }
                    @if let Some(g) = child(p, "administrativeGenderCode").and_then(|g| g.attribute("code")) {
                        span.muted { "sex " (g) }
                    }
                    @if let Some(b) = child(p, "birthTime").and_then(|b| b.attribute("value")) {
                        span.muted { ", born " (hl7_date(b)) }
                    }
                } }
            }
            @if let Some(r) = patient_role {
                @for (label, value) in patient_ids(r) {
                    tr { th { (label) } td.mono { (value) } }
                }
            }
            @for a in &authors {
                @let aa = child(*a, "assignedAuthor");
                tr { th { "Author" } td {
                    @if let Some(n) = aa.and_then(|x| path(x, &["assignedPerson", "name"])) {
                        (person_name(n))
                    }
                    @if let Some(id) = aa.and_then(|x| child(x, "id")) {
                        " " span.muted.mono { (ii(id)) }
                    }
                    @if let Some(org) = aa.and_then(|x| path(x, &["representedOrganization", "name"])) {
                        div.muted { (text_of(org)) }
                    }
                    @if let Some(t) = child(*a, "time").and_then(|t| t.attribute("value")) {
                        div.muted { "on " (hl7_date(t)) }
                    }
                } }
            }
            @if let Some(c) = custodian {
                tr { th { "Custodian" } td { (text_of(c)) } }
            }
            @if let Some(l) = legal {
                tr { th { "Legal authenticator" } td { (person_name(l)) } }
            }
            @if let Some(t) = encounter_time {
                tr { th { "Encounter" } td {
                    (child(t, "low").and_then(|l| l.attribute("value")).map(hl7_date).unwrap_or_default())
                    " – "
                    (child(t, "high").and_then(|h| h.attribute("value")).map(hl7_date).unwrap_or_default())
                } }
            }
        }
    }
}

fn section(sec: Node, depth: usize, count: &mut usize) -> Markup {
    *count += 1;
    if *count > MAX_SECTIONS {
        return html! {};
    }
    html! {
        section.cda-section {
            @if let Some(t) = child(sec, "title") {
                h4 { (text_of(t)) }
            } @else if let Some(c) = child(sec, "code").and_then(|c| c.attribute("displayName")) {
                h4 { (c) }
            }
            @if let Some(text) = child(sec, "text") {
                div.narrative { (narrative_children(text, depth)) }
            }
            @if depth < MAX_DEPTH {
                @for comp in children(sec, "component") {
                    @if let Some(inner) = child(comp, "section") {
                        (section(inner, depth + 1, count))
                    }
                }
            }
        }
    }
}

fn narrative_children(n: Node, depth: usize) -> Markup {
    html! {
        @for c in n.children() {
            (narrative(c, depth + 1))
        }
    }
}

/// One node of a CDA narrative block (`section/text`) as HTML.
fn narrative(n: Node, depth: usize) -> Markup {
    if n.is_text() {
        return html! { (n.text().unwrap_or("")) };
    }
    if !n.is_element() {
        return html! {};
    }
    if depth > MAX_DEPTH {
        return html! { (text_of(n)) };
    }
    let inner = || narrative_children(n, depth);
    let style = n.attribute("styleCode").unwrap_or("").to_ascii_lowercase();
    match n.tag_name().name() {
        "paragraph" => html! { p { (inner()) } },
        "br" => html! { br; },
        "list" => {
            if n.attribute("listType") == Some("ordered") {
                html! { ol { (inner()) } }
            } else {
                html! { ul { (inner()) } }
            }
        }
        "item" => html! { li { (inner()) } },
        "table" => html! { table.narrative-table { (inner()) } },
        "caption" => {
            let in_table = n.parent().is_some_and(|p| is(&p, "table"));
            if in_table {
                html! { caption { (inner()) } }
            } else {
                html! { strong { (inner()) } }
            }
        }
        "thead" => html! { thead { (inner()) } },
        "tbody" => html! { tbody { (inner()) } },
        "tfoot" => html! { tfoot { (inner()) } },
        "tr" => html! { tr { (inner()) } },
        "th" => html! { th { (inner()) } },
        "td" => html! { td { (inner()) } },
        "sub" => html! { sub { (inner()) } },
        "sup" => html! { sup { (inner()) } },
        "colgroup" | "col" | "renderMultiMedia" => html! {},
        "footnote" => html! { small.muted { " [" (inner()) "]" } },
        "content" | "linkHtml" | "footnoteRef" => {
            if style.contains("bold") {
                html! { strong { (inner()) } }
            } else if style.contains("italics") {
                html! { em { (inner()) } }
            } else if style.contains("underline") {
                html! { u { (inner()) } }
            } else {
                html! { span { (inner()) } }
            }
        }
        _ => inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_str(xml: &str) -> String {
        render(xml.as_bytes(), &Limits::default(), Some("/pdf")).into_string()
    }

    #[test]
    fn header_and_sections_are_rendered_and_escaped() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <id root="1.2.3" extension="D1"/>
  <code code="11490-0" displayName="Lettre de liaison"/>
  <title>Lettre &lt;script&gt;alert(1)&lt;/script&gt;</title>
  <effectiveTime value="20250312101500+0100"/>
  <recordTarget><patientRole>
    <id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>
    <patient><name><given>Camille</given><family qualifier="BR">RELAIS-TEST</family></name>
      <birthTime value="19790315"/></patient>
  </patientRole></recordTarget>
  <component><structuredBody>
    <component><section><title>Motif</title>
      <text><paragraph>Suivi <content styleCode="Bold">important</content></paragraph>
        <list listType="ordered"><item>un</item><item>deux</item></list>
        <table><thead><tr><th>A</th></tr></thead><tbody><tr><td>&lt;b&gt;1</td></tr></tbody></table>
        <linkHtml href="javascript:alert(1)">lien</linkHtml>
      </text>
      <component><section><title>Sous-section</title><text>ok</text></section></component>
    </section></component>
  </structuredBody></component>
</ClinicalDocument>"#;
        let out = render_str(xml);
        assert!(
            out.contains("Lettre &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        assert!(!out.contains("<script>"));
        assert!(out.contains("2025-03-12 10:15 +0100"));
        assert!(out.contains("INS-NIR (test)"));
        assert!(
            out.contains("given names </span><strong>Camille</strong>")
                && out.contains("birth name </span><strong>RELAIS-TEST</strong>"),
            "{out}"
        );
        assert!(out.contains("<strong>important</strong>"));
        assert!(out.contains("<ol><li>un</li><li>deux</li></ol>"));
        assert!(out.contains("<td>&lt;b&gt;1</td>"));
        assert!(out.contains("<h4>Sous-section</h4>"));
        assert!(
            !out.contains("javascript:"),
            "links are never rendered as links"
        );
    }

    #[test]
    fn level_one_offers_the_pdf_and_bad_input_is_said() {
        let xml = r#"<ClinicalDocument xmlns="urn:hl7-org:v3"><title>T</title>
          <component><nonXMLBody><text mediaType="application/pdf" representation="B64">JVBE</text></nonXMLBody></component>
        </ClinicalDocument>"#;
        let out = render_str(xml);
        assert!(
            out.contains("application/pdf") && out.contains("href=\"/pdf\""),
            "{out}"
        );
        assert!(render_str("<not xml").contains("cannot be read as XML"));
        assert!(render_str("<a/>").contains("No ClinicalDocument"));
    }

    #[test]
    fn dates() {
        assert_eq!(hl7_date("20250312"), "2025-03-12");
        assert_eq!(hl7_date("202503121015+0100"), "2025-03-12 10:15 +0100");
        assert_eq!(hl7_date("x"), "x");
    }
}
