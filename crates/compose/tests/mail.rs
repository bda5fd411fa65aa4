//! The built mail and package read back with the project's inbound readers: the mail parses
//! with `relais_mssante::parse_mail` with the right `X-MSS-*` headers and attachment roles, and
//! the XDM METADATA.XML describes its document exactly (hash, size, every slot of the
//! CDA-header → metadata mapping).

mod common;
use common::*;
use relais_compose::{
    BuildError, BuiltMail, Intake, Recipient, build_cda, build_mail, build_package, compose,
    pdf_file_name, subject,
};
use relais_core::Limits;
use relais_mssante::{AttachmentRole, InsFlag, ParsedMail, parse_mail};
use sha1::{Digest, Sha1};

const INS: &str = "279035121518989";
const INS_TEST_OID: &str = "1.2.250.1.213.1.4.10";

fn build(intake: &Intake, seed: &str) -> (relais_compose::Composed, Vec<u8>) {
    let pdf = letter_pdf();
    let composed = compose(intake, &pdf, &context(seed), &mail_options())
        .unwrap_or_else(|e| panic!("{seed}: {e}"));
    (composed, pdf)
}

fn parse(mail: &BuiltMail) -> ParsedMail {
    parse_mail(&mail.raw, &Limits::default()).expect("the built mail parses")
}

#[test]
fn mail_headers_follow_the_mssante_conventions() {
    let intake = sample(LDL_N1_JSON);
    let (c, pdf) = build(&intake, "mail-headers");
    let m = parse(&c.mail);
    assert!(m.findings.is_empty(), "{:#?}", m.findings);
    assert!(
        !c.mail
            .raw
            .windows(2)
            .any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "every line ends with CRLF"
    );
    assert_eq!(m.message_id.as_deref(), Some(c.mail.message_id.as_str()));
    assert!(c.mail.message_id.ends_with("@ch-demo.mssante.fr"));
    assert_eq!(m.from, ["medecine-interne@ch-demo.mssante.fr"]);
    assert_eq!(m.to, ["jean.generaliste-demo@medecin.mssante.fr"]);
    assert_eq!(
        m.disposition_notification_to.as_deref(),
        Some("medecine-interne@ch-demo.mssante.fr")
    );
    assert_eq!(m.mss.codecda, ["11490-0"]);
    assert_eq!(m.mss.ins, Some(InsFlag::Qualified));
    assert_eq!(m.mss.nil.as_deref(), Some("Relais 0.1.0"));
    assert_eq!(m.mss.mes, None, "X-MSS-MES only on mail to a patient");
    assert_eq!(
        m.subject.as_deref(),
        Some("XDM/1.0/DDM+Lettre de liaison RELAIS-TEST CAMILLE 15/03/1979")
    );
    assert_eq!(m.subject.as_deref(), Some(subject(&intake).as_str()));
    let s = m.subject_info.as_ref().expect("DDM subject");
    assert_eq!(s.libelle.as_deref(), Some("Lettre de liaison"));
    assert_eq!(s.nom.as_deref(), Some("RELAIS-TEST"));
    assert_eq!(s.prenom.as_deref(), Some("CAMILLE"));
    assert_eq!(s.birth_date.as_deref(), Some("15/03/1979"));
    assert_eq!(m.date.as_deref(), Some("2025-03-12T14:05:00Z"));
    let body = m.body_text.as_deref().expect("a text body");
    assert!(body.contains("Lettre de liaison à la sortie - médecine interne"));

    // Attachments: the XDM archive and the PDF, by content.
    let roles: Vec<AttachmentRole> = m.attachments.iter().map(|a| a.role).collect();
    assert_eq!(roles, [AttachmentRole::Xdm, AttachmentRole::Pdf]);
    let xdm = &m.attachments[0];
    assert_eq!(xdm.filename.as_deref(), Some("IHE_XDM.ZIP"));
    assert_eq!(xdm.content_type, "application/zip");
    assert_eq!(xdm.data, c.package.zip);
    let att = &m.attachments[1];
    assert_eq!(att.content_type, "application/pdf");
    assert_eq!(att.data, pdf);
    // AAAAMMJJ_<type, 40 characters at most>_<NOM>_<prénom>_<n° dossier>.pdf
    assert_eq!(
        att.filename.as_deref(),
        Some("20250312_Lettre_de_liaison_a_la_sortie_d_un_etabl_RELAIS-TEST_CAMILLE_V25000456.pdf")
    );
    assert_eq!(
        att.filename.as_deref(),
        Some(pdf_file_name(&intake, &context("x")).as_str())
    );

    // SMTP envelope and DSN request.
    assert_eq!(c.mail.envelope_from, "medecine-interne@ch-demo.mssante.fr");
    assert_eq!(
        c.mail.recipients,
        ["jean.generaliste-demo@medecin.mssante.fr"]
    );
    assert!(c.mail.dsn_requested);
    assert!(!c.mail.envelope_id.is_empty() && c.mail.envelope_id.is_ascii());
}

#[test]
fn xdm_metadata_describes_the_document_exactly() {
    let intake = sample(LDL_N1_JSON);
    let (c, _) = build(&intake, "metadata");
    let pkg = relais_xdm::read_package(&c.package.zip, &Limits::default()).expect("package");
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    let names: Vec<&str> = pkg.entries.iter().map(|e| e.as_str()).collect();
    for expected in [
        "README.TXT",
        "INDEX.HTM",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let docs: Vec<_> = pkg.documents().collect();
    assert_eq!(docs.len(), 1);
    let (doc, e) = (docs[0], &docs[0].entry);
    assert_eq!(doc.content, c.cda.xml, "the package carries the built CDA");
    assert_eq!(
        e.hash.as_deref(),
        Some(hex::encode(Sha1::digest(&c.cda.xml)).as_str())
    );
    assert_eq!(e.size, Some(c.cda.xml.len() as u64));
    assert_eq!(e.uri.as_deref(), Some("DOC0001.XML"));

    // The CDA-header → XDS metadata mapping, slot by slot.
    assert_eq!(
        e.patient_id.as_ref().map(|p| p.to_hl7()),
        Some(format!("{INS}^^^&{INS_TEST_OID}&ISO^NH"))
    );
    assert_eq!(
        e.source_patient_id.as_ref().map(|p| p.to_hl7()),
        Some("RT00012345^^^&2.999.33.1.1&ISO^PI".to_string())
    );
    assert_eq!(
        e.source_patient_info,
        [
            "PID-3|RT00012345^^^&2.999.33.1.1&ISO^PI",
            "PID-5|RELAIS-TEST^CAMILLE^^^^^L",
            "PID-7|19790315",
            "PID-8|F",
        ]
    );
    assert_eq!(e.unique_id, "2.999.33.1.2^LDL-2025-000123");
    assert_eq!(e.unique_id, c.cda.unique_id);
    assert_eq!(e.mime_type, "text/xml");
    let code =
        |c: &Option<relais_xdm::Coded>| c.as_ref().map(|c| (c.code.clone(), c.scheme.clone()));
    assert_eq!(
        code(&e.type_code),
        Some(("11490-0".into(), "2.16.840.1.113883.6.1".into()))
    );
    assert_eq!(
        code(&e.class_code),
        Some(("10".into(), "1.2.250.1.213.1.1.4.1".into()))
    );
    assert_eq!(
        code(&e.format_code),
        Some((
            "urn:ihe:iti:xds-sd:pdf:2008".into(),
            "1.3.6.1.4.1.19376.1.2.3".into()
        ))
    );
    assert_eq!(
        code(&e.healthcare_facility_type_code),
        Some(("SA01".into(), "1.2.250.1.71.4.2.4".into()))
    );
    assert_eq!(
        code(&e.practice_setting_code),
        Some(("ETABLISSEMENT".into(), "1.2.250.1.213.1.1.4.9".into()))
    );
    assert_eq!(e.confidentiality_codes.len(), 1);
    assert_eq!(e.confidentiality_codes[0].code, "N");
    assert_eq!(e.language_code.as_deref(), Some("fr-FR"));
    // CDA times are local (+01:00); XDS times are UTC.
    assert_eq!(e.creation_time.as_deref(), Some("20250312133000"));
    assert_eq!(e.service_start_time.as_deref(), Some("20250303081500"));
    assert_eq!(e.service_stop_time.as_deref(), Some("20250312100000"));
    assert_eq!(
        e.title.as_deref(),
        Some("Lettre de liaison à la sortie - médecine interne")
    );
    assert_eq!(
        e.legal_authenticator.as_deref(),
        Some("899999000011^AUTEUR-DEMO^Claude^^^MME^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    );
    assert_eq!(e.authors.len(), 1);
    let a = &e.authors[0];
    assert_eq!(a.person, e.legal_authenticator);
    assert_eq!(
        a.institutions,
        ["Centre hospitalier RELAIS-DEMO^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1999000017"]
    );
    assert_eq!(
        a.specialties,
        ["G15_10/SM27^Médecin - Médecine interne (SM)^1.2.250.1.213.1.1.4.5"]
    );
    assert_eq!(
        a.telecoms,
        ["^^Internet^claude.auteur-demo@ch-demo.mssante.fr"]
    );

    let metadata = pkg.subsets[0].metadata.as_ref().expect("METADATA.XML");
    let ss = metadata.submission_set.as_ref().expect("submission set");
    assert_eq!(ss.source_id, "2.999.33.1.9");
    assert!(ss.unique_id.starts_with("2.25."));
    assert_eq!(ss.patient_id, e.patient_id);
    assert_eq!(ss.submission_time.as_deref(), Some("20250312140500"));
    assert_eq!(
        code(&ss.content_type_code),
        Some(("03".into(), "1.2.250.1.213.2.2".into()))
    );
    assert_eq!(ss.authors, e.authors);
    assert_eq!(
        ss.intended_recipients,
        [
            "|899999000037^GENERALISTE-DEMO^Jean^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|^^Internet^jean.generaliste-demo@medecin.mssante.fr"
        ]
    );

    let readme = pkg.readme.as_deref().expect("README.TXT");
    assert!(readme.contains("Relais 0.1.0"), "{readme}");
}

#[test]
fn level_3_package_has_the_ldl_ses_format_code() {
    let (c, pdf) = build(&sample(LDL_N3_JSON), "n3-format");
    let pkg = relais_xdm::read_package(&c.package.zip, &Limits::default()).expect("package");
    let e = &pkg.documents().next().expect("doc").entry;
    assert_eq!(
        e.format_code.as_ref().map(|f| f.code.as_str()),
        Some("urn:asip:ci-sis:ldl-ses:2017")
    );
    // The level 3 document carries the PDF in its copy section.
    let cda = relais_cda::read(&c.cda.xml, &Limits::default()).expect("cda");
    assert_eq!(cda.level(), Some(relais_cda::Level::N3));
    assert_eq!(cda.embedded_pdf().expect("pdf copy").expect("pdf"), pdf);
}

#[test]
fn lab_report_mail_names_its_type_and_every_recipient() {
    let (c, _) = build(&sample(CR_BIO_TOML), "cr-bio-mail");
    let m = parse(&c.mail);
    assert_eq!(m.mss.codecda, ["11502-2"]);
    assert_eq!(
        m.to,
        [
            "medecine-interne@ch-demo.mssante.fr",
            "claude.auteur-demo@ch-demo.mssante.fr"
        ]
    );
    let pdf = m
        .attachments_with(AttachmentRole::Pdf)
        .next()
        .expect("the PDF");
    assert_eq!(
        pdf.filename.as_deref(),
        Some("20250311_CR_d_examens_biologiques_RELAIS-TEST_CAMILLE.pdf")
    );
    assert!(
        m.subject
            .as_deref()
            .is_some_and(|s| s.starts_with("XDM/1.0/DDM+CR d'examens biologiques "))
    );
}

#[test]
fn patient_without_ins_is_said_by_x_mss_ins_n() {
    let mut intake = sample(LDL_N1_JSON);
    intake.patient.ins = None;
    intake.patient.birth_place_code = None;
    let (c, _) = build(&intake, "no-ins");
    assert_eq!(parse(&c.mail).mss.ins, Some(InsFlag::NotQualified));
    // The package names the patient by the IPP.
    let e = &c.package.metadata.entries[0];
    assert_eq!(
        e.patient_id.as_ref().map(|p| p.to_hl7()),
        Some("RT00012345^^^&2.999.33.1.1&ISO^PI".to_string())
    );
}

#[test]
fn mail_to_the_patient_carries_x_mss_mes_fin() {
    let mut intake = sample(LDL_N1_JSON);
    intake.recipients.push(Recipient {
        mssante: Some(format!("{INS}@patient.mssante.fr")),
        rpps: None,
        family_name: None,
        given_name: None,
        civility: None,
        title: None,
    });
    let (c, _) = build(&intake, "to-patient");
    assert_eq!(parse(&c.mail).mss.mes.as_deref(), Some("FIN"));
    let pdf = letter_pdf();
    let ctx = context("to-patient");
    let mut opts = mail_options();
    opts.patient_may_reply = true;
    let mail = build_mail(&intake, &c.package.zip, &pdf, &ctx, &opts).unwrap();
    assert_eq!(parse(&mail).mss.mes, None);
}

#[test]
fn read_receipt_and_dsn_follow_the_options() {
    let intake = sample(LDL_N1_JSON);
    let pdf = letter_pdf();
    let ctx = context("options");
    let cda = build_cda(&intake, &pdf, &ctx).unwrap();
    let pkg = build_package(&intake, &cda.xml, &ctx).unwrap();
    let mut opts = mail_options();
    opts.request_read_receipt = false;
    opts.request_dsn = false;
    let mail = build_mail(&intake, &pkg.zip, &pdf, &ctx, &opts).unwrap();
    assert_eq!(parse(&mail).disposition_notification_to, None);
    assert!(!mail.dsn_requested);
}

#[test]
fn recipient_known_only_by_rpps_must_be_resolved_first() {
    let mut intake = sample(LDL_N1_JSON);
    intake.recipients[0].mssante = None;
    let pdf = letter_pdf();
    let ctx = context("unresolved");
    // The CDA and the package can be built (the recipient is written by RPPS)…
    let cda = build_cda(&intake, &pdf, &ctx).unwrap();
    let pkg = build_package(&intake, &cda.xml, &ctx).unwrap();
    // …the mail cannot until the Annuaire gave an address.
    let err = build_mail(&intake, &pkg.zip, &pdf, &ctx, &mail_options()).unwrap_err();
    assert!(
        matches!(err, BuildError::UnresolvedRecipient { index: 0 }),
        "{err}"
    );
    assert!(err.to_string().contains("Annuaire"));
}

#[test]
fn mail_options_are_checked() {
    let intake = sample(LDL_N1_JSON);
    let pdf = letter_pdf();
    let ctx = context("bad-options");
    let cda = build_cda(&intake, &pdf, &ctx).unwrap();
    let pkg = build_package(&intake, &cda.xml, &ctx).unwrap();
    let mut opts = mail_options();
    opts.from = "Service <medecine@ch-demo.mssante.fr>".into();
    let err = build_mail(&intake, &pkg.zip, &pdf, &ctx, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Context {
                field: "MailOptions.from",
                ..
            }
        ),
        "{err}"
    );
    let mut opts = mail_options();
    opts.nil = "Relais\r\nBcc: x@y.fr".into();
    let err = build_mail(&intake, &pkg.zip, &pdf, &ctx, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Context {
                field: "MailOptions.nil",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn discharge_letter_names_the_medecin_traitant_and_its_recipients() {
    let (c, _) = build(&sample(LDL_N1_JSON), "gp");
    let cda = relais_cda::read(&c.cda.xml, &Limits::default()).expect("cda");
    let gp = cda
        .header
        .participants
        .iter()
        .find(|p| {
            p.function_code
                .as_ref()
                .is_some_and(|f| f.code.as_deref() == Some("PCP"))
        })
        .expect("participant PCP");
    assert_eq!(gp.party.rpps.as_deref(), Some("99999000037"));
    let recipients: Vec<Option<&str>> = cda
        .header
        .information_recipients
        .iter()
        .map(|r| r.rpps.as_deref())
        .collect();
    assert_eq!(recipients, [Some("99999000037")]);
}
