//! The structured body of a level 3 discharge letter, model LDL-SES 2022.01
//! (templateId 1.2.250.1.213.1.1.1.29).
//!
//! The model's schematron requires four sections, all written here:
//!
//! | section | templateIds | content |
//! |---|---|---|
//! | FR-Statut-du-document-LDL-SES | 1.2.250.1.213.1.1.2.35(.1) | entry FR-Statut-document (JDV_StatutDoc_CISIS) |
//! | FR-Raison-de-la-recommandation-non-code | 1.3.6.1.4.1.19376.1.5.3.1.3.1, 1.2.250.1.213.1.1.2.127 | the reason for the stay, as text |
//! | FR-Resultats-evenements-LDL-SES | …1.5.3.1.1.21.2.9, …1.7.3.1.1.13.7, 1.2.250.1.213.1.1.2.163(.1) | the mandatory entries: admission and discharge modes, medical summary, search for multi-resistant organisms, transfusion, blood derivatives; and the optional ones when given |
//! | FR-Traitements-a-la-sortie | 1.3.6.1.4.1.19376.1.5.3.1.3.22, 1.2.250.1.213.1.1.2.146 | one entry FR-Traitement per medication, or "no known medication" |
//!
//! and, when given, FR-Resultats-examens-non-code (results awaited) and FR-Plan-de-soins
//! (follow-up) as text sections. Structure, codes and templateIds follow the ANS example
//! `LDL-SES_2022.01.xml`; the entry codes come from the TA_ASIP terminology.

use crate::BuildContext;
use crate::codes::{self, ACT_CODE, LOINC, SNOMED, TA_ASIP};
use crate::intake::{Intake, LdlSes, Medication};
use crate::timestamp::Timestamp;
use crate::xml::XmlOut;

/// The value of a simple observation.
enum Value<'a> {
    /// A coded value: (code, display, system).
    Coded(&'a str, &'a str, &'a str),
    /// A string.
    Text(&'a str),
    /// A boolean.
    Bool(bool),
}

/// One row of the narrative of the section FR-Resultats-evenements: the label, the id of the
/// `content` an entry references, the text shown.
struct Row {
    label: &'static str,
    id: &'static str,
    text: String,
}

pub(crate) fn sections(x: &mut XmlOut, intake: &Intake, l: &LdlSes, ctx: &BuildContext) {
    let created = intake.document.created.unwrap_or(ctx.now);
    let admission = intake.encounter.start;
    // Validation makes `end` mandatory for a discharge letter; the creation time otherwise.
    let discharge = intake.encounter.end.unwrap_or(created);
    status_section(x, l, ctx, &created);
    text_section(
        x,
        ctx,
        "section-reason",
        &["1.3.6.1.4.1.19376.1.5.3.1.3.1", "1.2.250.1.213.1.1.2.127"],
        ("42349-1", "Raison de la recommandation"),
        "Motif de l'hospitalisation",
        &l.reason,
    );
    events_section(x, l, ctx, &admission, &discharge);
    medications_section(x, l, ctx);
    if let Some(t) = &l.pending_results {
        text_section(
            x,
            ctx,
            "section-results",
            &["1.3.6.1.4.1.19376.1.5.3.1.3.27", "1.2.250.1.213.1.1.2.150"],
            ("30954-2", "Résultats d'examens"),
            "Résultats d'examens / Autres informations attendus",
            t,
        );
    }
    if let Some(t) = &l.follow_up {
        text_section(
            x,
            ctx,
            "section-care-plan",
            &[
                "2.16.840.1.113883.10.20.1.10",
                "1.3.6.1.4.1.19376.1.5.3.1.3.36",
                "1.2.250.1.213.1.1.2.158",
            ],
            ("18776-5", "Plan de soins"),
            "Suites à donner",
            t,
        );
    }
}

fn section_start(
    x: &mut XmlOut,
    ctx: &BuildContext,
    purpose: &str,
    templates: &[&str],
    code: (&str, &str),
    title: &str,
) {
    x.open("component", &[]);
    x.open("section", &[]);
    for t in templates {
        x.empty("templateId", &[("root", t)]);
    }
    x.empty("id", &[("root", &ctx.uuid(purpose))]);
    x.empty(
        "code",
        &[
            ("code", code.0),
            ("displayName", code.1),
            ("codeSystem", LOINC),
            ("codeSystemName", "LOINC"),
        ],
    );
    x.leaf("title", &[], title);
}

fn section_end(x: &mut XmlOut) {
    x.close("section");
    x.close("component");
}

/// Lines of a multi-line text, blank lines dropped.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// A section whose content is text only: one paragraph per line.
fn text_section(
    x: &mut XmlOut,
    ctx: &BuildContext,
    purpose: &str,
    templates: &[&str],
    code: (&str, &str),
    title: &str,
    text: &str,
) {
    section_start(x, ctx, purpose, templates, code, title);
    x.open("text", &[]);
    for line in lines(text) {
        x.leaf("paragraph", &[], line);
    }
    x.close("text");
    section_end(x);
}

fn status_section(x: &mut XmlOut, l: &LdlSes, ctx: &BuildContext, created: &Timestamp) {
    let (code, display) = l.status.code();
    section_start(
        x,
        ctx,
        "section-status",
        &["1.2.250.1.213.1.1.2.35", "1.2.250.1.213.1.1.2.35.1"],
        ("33557-0", "Etat d'achèvement"),
        "Statut du document",
    );
    x.open("text", &[]);
    x.open("table", &[("border", "0")]);
    x.open("tbody", &[]);
    x.open("tr", &[]);
    x.leaf("td", &[], "Statut du document");
    x.open("td", &[]);
    x.leaf("content", &[("ID", "statut-document")], display);
    x.close("td");
    x.close("tr");
    x.close("tbody");
    x.close("table");
    x.close("text");
    simple_observation(
        x,
        ctx,
        "entry-status",
        &["1.2.250.1.213.1.1.3.48.16", "1.2.250.1.213.1.1.3.48.16.1"],
        ("GEN-065", "Statut du document"),
        "statut-document",
        created,
        Value::Coded(code, display, SNOMED),
    );
    section_end(x);
}

fn yes_no(b: bool) -> String {
    if b { "Oui" } else { "Non" }.to_string()
}

fn events_section(
    x: &mut XmlOut,
    l: &LdlSes,
    ctx: &BuildContext,
    admission: &Timestamp,
    discharge: &Timestamp,
) {
    let (adm_code, adm_display, adm_system) = l.admission_mode.code();
    let (dis_code, dis_display, dis_system) = l.discharge_destination.code();
    let mut rows = vec![
        Row {
            label: "Modalité et date d'entrée",
            id: "modalite-entree",
            text: format!("{}, {adm_display}", admission.dd_mm_yyyy()),
        },
        Row {
            label: "Modalité et date de sortie",
            id: "modalite-sortie",
            text: format!("{}, {dis_display}", discharge.dd_mm_yyyy()),
        },
        Row {
            label: "Synthèse médicale",
            id: "synthese",
            text: l.summary.clone(),
        },
    ];
    let optional = |label, id, v: &Option<String>| {
        v.as_ref().map(|t| Row {
            label,
            id,
            text: t.clone(),
        })
    };
    rows.extend(optional(
        "Evénements indésirables survenus pendant l'hospitalisation",
        "evenements-indesirables",
        &l.adverse_events,
    ));
    rows.push(Row {
        label: "Recherche de micro-organismes multi-résistants ou émergents effectuée",
        id: "recherche-bmr",
        text: yes_no(l.multiresistant_screening),
    });
    rows.extend(optional(
        "Identification de micro-organismes multirésistants",
        "identification-bmr",
        &l.multiresistant_organisms,
    ));
    rows.push(Row {
        label: "Transfusion de produits sanguins",
        id: "transfusion",
        text: yes_no(l.transfusion),
    });
    rows.extend(optional(
        "Accidents transfusionnels",
        "accidents-transfusionnels",
        &l.transfusion_accidents,
    ));
    rows.push(Row {
        label: "Administration de dérivés du sang",
        id: "derives-sang",
        text: yes_no(l.blood_derivatives),
    });
    rows.extend(optional(
        "Evénements indésirables suite à l'administration de dérivés du sang",
        "derives-sang-evenements",
        &l.blood_derivatives_adverse_events,
    ));

    section_start(
        x,
        ctx,
        "section-events",
        &[
            "1.3.6.1.4.1.19376.1.5.3.1.1.21.2.9",
            "1.3.6.1.4.1.19376.1.7.3.1.1.13.7",
            "1.2.250.1.213.1.1.2.163",
            "1.2.250.1.213.1.1.2.163.1",
        ],
        ("42545-4", "Evènements observés"),
        "Synthèse médicale du séjour",
    );
    x.open("text", &[]);
    x.open("table", &[("border", "0")]);
    x.open("tbody", &[]);
    for row in &rows {
        x.open("tr", &[]);
        x.leaf("td", &[], row.label);
        x.open("td", &[]);
        x.open("content", &[("ID", row.id)]);
        let mut first = true;
        for line in lines(&row.text) {
            if !first {
                x.empty("br", &[]);
            }
            x.text(line);
            first = false;
        }
        x.close("content");
        x.close("td");
        x.close("tr");
    }
    x.close("tbody");
    x.close("table");
    x.close("text");

    let o = |x: &mut XmlOut, purpose, template, code, text_id, when: &Timestamp, value| {
        simple_observation(x, ctx, purpose, &[template], code, text_id, when, value);
    };
    o(
        x,
        "entry-admission",
        "1.2.250.1.213.1.1.3.48.6",
        ("ORG-070", "Modalité d'entrée"),
        "modalite-entree",
        admission,
        Value::Coded(adm_code, adm_display, adm_system),
    );
    o(
        x,
        "entry-discharge",
        "1.2.250.1.213.1.1.3.48.7",
        ("ORG-074", "Modalité de sortie"),
        "modalite-sortie",
        discharge,
        Value::Coded(dis_code, dis_display, dis_system),
    );
    o(
        x,
        "entry-summary",
        "1.2.250.1.213.1.1.3.48.9",
        ("MED-142", "Synthèse médicale"),
        "synthese",
        discharge,
        Value::Text(&l.summary),
    );
    if let Some(t) = &l.adverse_events {
        o(
            x,
            "entry-adverse-events",
            "1.2.250.1.213.1.1.3.48.3",
            (
                "MED-143",
                "Evènements indésirables survenus pendant l'hospitalisation",
            ),
            "evenements-indesirables",
            discharge,
            Value::Text(t),
        );
    }
    o(
        x,
        "entry-bmr-search",
        "1.2.250.1.213.1.1.3.48.8",
        (
            "MED-309",
            "Recherche de microorganismes multi-résistants ou émergents effectuée",
        ),
        "recherche-bmr",
        discharge,
        Value::Bool(l.multiresistant_screening),
    );
    if let Some(t) = &l.multiresistant_organisms {
        o(
            x,
            "entry-bmr-identified",
            "1.2.250.1.213.1.1.3.48.5",
            (
                "MED-144",
                "Identification de micro-organismes multirésistants",
            ),
            "identification-bmr",
            discharge,
            Value::Text(t),
        );
    }
    o(
        x,
        "entry-transfusion",
        "1.2.250.1.213.1.1.3.48.10",
        ("MED-145", "Transfusion de produits sanguins"),
        "transfusion",
        discharge,
        Value::Bool(l.transfusion),
    );
    if let Some(t) = &l.transfusion_accidents {
        o(
            x,
            "entry-transfusion-accidents",
            "1.2.250.1.213.1.1.3.48.1",
            ("MED-146", "Accidents transfusionnels"),
            "accidents-transfusionnels",
            discharge,
            Value::Text(t),
        );
    }
    o(
        x,
        "entry-blood-derivatives",
        "1.2.250.1.213.1.1.3.48.2",
        ("MED-147", "Administration de dérivés du sang"),
        "derives-sang",
        discharge,
        Value::Bool(l.blood_derivatives),
    );
    if let Some(t) = &l.blood_derivatives_adverse_events {
        o(
            x,
            "entry-blood-derivatives-events",
            "1.2.250.1.213.1.1.3.48.4",
            (
                "MED-148",
                "Evènements indésirables suite à l'administration de dérivés du sang",
            ),
            "derives-sang-evenements",
            discharge,
            Value::Text(t),
        );
    }
    section_end(x);
}

/// An entry FR-Simple-Observation (IHE PCC 1.3.6.1.4.1.19376.1.5.3.1.4.13, CI-SIS
/// 1.2.250.1.213.1.1.3.48) specialised by `templates`, with a TA_ASIP code.
#[allow(clippy::too_many_arguments)]
fn simple_observation(
    x: &mut XmlOut,
    ctx: &BuildContext,
    purpose: &str,
    templates: &[&str],
    code: (&str, &str),
    text_id: &str,
    when: &Timestamp,
    value: Value<'_>,
) {
    x.open("entry", &[]);
    x.open("observation", &[("classCode", "OBS"), ("moodCode", "EVN")]);
    x.empty("templateId", &[("root", "1.3.6.1.4.1.19376.1.5.3.1.4.13")]);
    x.empty("templateId", &[("root", "1.2.250.1.213.1.1.3.48")]);
    for t in templates {
        x.empty("templateId", &[("root", t)]);
    }
    x.empty("id", &[("root", &ctx.uuid(purpose))]);
    x.empty(
        "code",
        &[
            ("code", code.0),
            ("displayName", code.1),
            ("codeSystem", TA_ASIP),
            ("codeSystemName", "TA_ASIP"),
        ],
    );
    x.open("text", &[]);
    x.empty("reference", &[("value", &format!("#{text_id}"))]);
    x.close("text");
    x.empty("statusCode", &[("code", "completed")]);
    x.empty("effectiveTime", &[("value", &when.to_cda())]);
    match value {
        Value::Coded(code, display, system) => x.empty(
            "value",
            &[
                ("xsi:type", "CD"),
                ("code", code),
                ("displayName", display),
                ("codeSystem", system),
            ],
        ),
        Value::Text(t) => x.leaf("value", &[("xsi:type", "ST")], t),
        Value::Bool(b) => x.empty(
            "value",
            &[
                ("xsi:type", "BL"),
                ("value", if b { "true" } else { "false" }),
            ],
        ),
    }
    x.close("observation");
    x.close("entry");
}

fn medications_section(x: &mut XmlOut, l: &LdlSes, ctx: &BuildContext) {
    section_start(
        x,
        ctx,
        "section-discharge-medications",
        &["1.3.6.1.4.1.19376.1.5.3.1.3.22", "1.2.250.1.213.1.1.2.146"],
        ("10183-2", "Traitements à la sortie"),
        "Traitements à la sortie",
    );
    x.open("text", &[]);
    if l.discharge_medications.is_empty() {
        x.open("paragraph", &[]);
        x.leaf(
            "content",
            &[("ID", "med-none")],
            codes::NO_KNOWN_MEDICATION.1,
        );
        x.close("paragraph");
    } else {
        x.open("table", &[("border", "0")]);
        x.open("thead", &[]);
        x.open("tr", &[]);
        for h in [
            "Médicament",
            "Dose",
            "Fréquence",
            "Voie",
            "Début",
            "Fin",
            "Commentaire",
        ] {
            x.leaf("th", &[], h);
        }
        x.close("tr");
        x.close("thead");
        x.open("tbody", &[]);
        for (i, m) in l.discharge_medications.iter().enumerate() {
            x.open("tr", &[]);
            x.open("td", &[]);
            x.leaf("content", &[("ID", &format!("med-{}", i + 1))], &m.name);
            x.close("td");
            let date = |t: &Option<Timestamp>| t.map(|t| t.dd_mm_yyyy()).unwrap_or_default();
            for cell in [
                m.dose.clone().unwrap_or_default(),
                m.frequency.clone().unwrap_or_default(),
                m.route.clone().unwrap_or_default(),
                date(&m.start),
                date(&m.end),
                m.comment.clone().unwrap_or_default(),
            ] {
                x.leaf("td", &[], &cell);
            }
            x.close("tr");
        }
        x.close("tbody");
        x.close("table");
    }
    x.close("text");
    if l.discharge_medications.is_empty() {
        medication_entry(x, ctx, 0, None);
    }
    for (i, m) in l.discharge_medications.iter().enumerate() {
        medication_entry(x, ctx, i + 1, Some(m));
    }
    section_end(x);
}

/// An entry FR-Traitement; `None` is the "no known medication" entry.
fn medication_entry(x: &mut XmlOut, ctx: &BuildContext, n: usize, m: Option<&Medication>) {
    let text_id = match m {
        Some(_) => format!("med-{n}"),
        None => "med-none".to_string(),
    };
    x.open("entry", &[]);
    x.open(
        "substanceAdministration",
        &[("classCode", "SBADM"), ("moodCode", "EVN")],
    );
    for t in [
        "1.2.250.1.213.1.1.3.42",
        "2.16.840.1.113883.10.20.1.24",
        "1.3.6.1.4.1.19376.1.5.3.1.4.7",
        "1.3.6.1.4.1.19376.1.5.3.1.4.7.1",
    ] {
        x.empty("templateId", &[("root", t)]);
    }
    x.empty(
        "id",
        &[("root", &ctx.uuid(&format!("entry-medication-{n}")))],
    );
    x.empty(
        "code",
        &[
            ("code", "DRUG"),
            ("displayName", "Médicament"),
            ("codeSystem", ACT_CODE),
            ("codeSystemName", "HL7:ActCode"),
        ],
    );
    x.open("text", &[]);
    x.empty("reference", &[("value", &format!("#{text_id}"))]);
    x.close("text");
    x.empty("statusCode", &[("code", "completed")]);
    if let Some(m) = m
        && (m.start.is_some() || m.end.is_some())
    {
        x.open("effectiveTime", &[("xsi:type", "IVL_TS")]);
        match &m.start {
            Some(s) => x.empty("low", &[("value", &s.to_cda())]),
            None => x.empty("low", &[("nullFlavor", "UNK")]),
        }
        match &m.end {
            Some(e) => x.empty("high", &[("value", &e.to_cda())]),
            None => x.empty("high", &[("nullFlavor", "UNK")]),
        }
        x.close("effectiveTime");
    }
    x.open("consumable", &[]);
    x.open("manufacturedProduct", &[]);
    for t in [
        "1.2.250.1.213.1.1.3.43",
        "2.16.840.1.113883.10.20.1.53",
        "1.3.6.1.4.1.19376.1.5.3.1.4.7.2",
    ] {
        x.empty("templateId", &[("root", t)]);
    }
    x.open("manufacturedMaterial", &[]);
    // The product code is a CIS code (E_produitDeSante_fr); any other code (ATC, CIP, "no
    // known medication") goes as a translation of a code without value.
    let given = match m {
        Some(m) => m.code.as_ref().map(|c| {
            (
                c.code.as_str(),
                c.display.as_str(),
                c.system.as_deref().unwrap_or_default(),
            )
        }),
        None => Some(codes::NO_KNOWN_MEDICATION),
    };
    match given {
        Some((code, display, system)) if system == codes::CIS => x.open(
            "code",
            &[
                ("code", code),
                ("displayName", display),
                ("codeSystem", system),
            ],
        ),
        _ => x.open("code", &[("nullFlavor", "NA")]),
    }
    x.open("originalText", &[]);
    x.empty("reference", &[("value", &format!("#{text_id}"))]);
    x.close("originalText");
    if let Some((code, display, system)) = given
        && system != codes::CIS
    {
        x.empty(
            "translation",
            &[
                ("code", code),
                ("displayName", display),
                ("codeSystem", system),
            ],
        );
    }
    x.close("code");
    let name = m
        .map(|m| m.name.as_str())
        .unwrap_or(codes::NO_KNOWN_MEDICATION.1);
    x.leaf("name", &[], name);
    x.close("manufacturedMaterial");
    x.close("manufacturedProduct");
    x.close("consumable");
    x.close("substanceAdministration");
    x.close("entry");
}
