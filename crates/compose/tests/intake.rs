//! Intakes that cannot be used are refused with specific, stable problems that never quote
//! patient data; builds are deterministic.

mod common;
use common::*;
use relais_compose::{
    BuildError, Code, Intake, IntakeError, IntakePolicy, Timestamp, build_cda, compose,
};

/// Values of the sample patient that must never appear in an error text.
const PATIENT_DATA: &[&str] = &[
    "279035121518989",
    "RELAIS-TEST",
    "CAMILLE",
    "ANNE",
    "1979",
    "51215",
    "RT00012345",
    "allée des Essais",
];

fn assert_no_patient_data(text: &str) {
    for v in PATIENT_DATA {
        assert!(!text.contains(v), "patient data {v:?} in: {text}");
    }
}

/// Validate `intake`, expect a problem `code` at `field`, and no patient data in the text.
fn expect_problem(intake: &Intake, policy: IntakePolicy, code: &str, field: &str) -> IntakeError {
    let err = intake
        .validate_with(&policy)
        .expect_err(&format!("{code} expected"));
    assert!(
        err.problems
            .iter()
            .any(|p| p.code == code && p.field == field),
        "expected {code} at {field}, got:\n{err}"
    );
    assert_no_patient_data(&err.to_string());
    assert_no_patient_data(&format!("{err:?}"));
    err
}

fn ldl() -> Intake {
    sample(LDL_N1_JSON)
}

#[test]
fn every_sample_is_valid() {
    for name in [LDL_N1_JSON, LDL_N1_TOML, LDL_N3_JSON, CR_BIO_TOML] {
        let intake = sample(name);
        intake
            .validate_with(&IntakePolicy { require_ins: true })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn identity_problems() {
    let none = IntakePolicy::default();
    let mut i = ldl();
    i.patient.birth_place_code = None;
    expect_problem(
        &i,
        none,
        "INTAKE-INS-TRAIT-MISSING",
        "patient.birth_place_code",
    );

    let mut i = ldl();
    i.patient.birth_given_names.clear();
    expect_problem(
        &i,
        none,
        "INTAKE-INS-TRAIT-MISSING",
        "patient.birth_given_names",
    );

    let mut i = ldl();
    i.patient.birth_family_name = "  ".into();
    expect_problem(
        &i,
        none,
        "INTAKE-INS-TRAIT-MISSING",
        "patient.birth_family_name",
    );

    let mut i = ldl();
    i.patient.ins.as_mut().unwrap().value = "279035121518988".into();
    let e = expect_problem(&i, none, "INTAKE-INS-INVALID", "patient.ins.value");
    assert!(e.to_string().contains("key"), "{e}");

    let mut i = ldl();
    i.patient.ins.as_mut().unwrap().value = "27903512151".into();
    expect_problem(&i, none, "INTAKE-INS-INVALID", "patient.ins.value");

    let mut i = ldl();
    i.patient.birth_place_code = Some("5121".into());
    expect_problem(
        &i,
        none,
        "INTAKE-BIRTHPLACE-FORMAT",
        "patient.birth_place_code",
    );

    let mut i = ldl();
    i.patient.birth_given_names = vec!["CAMILLE ANNE".into()];
    expect_problem(
        &i,
        none,
        "INTAKE-NAME-FORMAT",
        "patient.birth_given_names[0]",
    );

    let mut i = ldl();
    i.patient.birth_date = Timestamp::parse("1979-03-15T08:00:00+01:00").unwrap();
    expect_problem(&i, none, "INTAKE-DATE-FORMAT", "patient.birth_date");

    // No INS: valid by default (X-MSS-INS: N), refused when the site requires a qualified INS.
    let mut i = ldl();
    i.patient.ins = None;
    i.validate().expect("an IPP alone is enough by default");
    expect_problem(
        &i,
        IntakePolicy { require_ins: true },
        "INTAKE-INS-REQUIRED",
        "patient.ins",
    );
    i.patient.ipp = None;
    expect_problem(&i, none, "INTAKE-PATIENT-ID-MISSING", "patient");

    let mut i = ldl();
    i.patient.ipp.as_mut().unwrap().assigner_oid = "2.999.33.1.1.".into();
    expect_problem(&i, none, "INTAKE-OID-FORMAT", "patient.ipp.assigner_oid");
}

#[test]
fn professional_and_organisation_problems() {
    let none = IntakePolicy::default();
    let mut i = ldl();
    i.author.rpps = "899999000011".into();
    let e = expect_problem(&i, none, "INTAKE-RPPS-FORMAT", "author.rpps");
    assert!(e.to_string().contains("11 digits"), "{e}");

    let mut i = ldl();
    i.recipients[0].rpps = Some("9999900003X".into());
    expect_problem(&i, none, "INTAKE-RPPS-FORMAT", "recipients[0].rpps");

    let mut i = ldl();
    i.author.profession = Code::new("G15_10/SM27", "");
    expect_problem(
        &i,
        none,
        "INTAKE-VALUE-MISSING",
        "author.profession.display",
    );

    let mut i = ldl();
    i.organization.finess = "1999000017".into();
    expect_problem(&i, none, "INTAKE-FINESS-FORMAT", "organization.finess");

    let mut i = ldl();
    i.author.mssante = Some("Dr Claude <claude@ch-demo.mssante.fr>".into());
    expect_problem(&i, none, "INTAKE-ADDRESS-FORMAT", "author.mssante");
}

#[test]
fn document_type_problems() {
    let none = IntakePolicy::default();
    let mut i = ldl();
    i.document.type_code = "12345-6".into();
    let e = expect_problem(&i, none, "INTAKE-TYPE-UNKNOWN", "document.type_code");
    assert!(e.to_string().contains("ASS_X04"), "{e}");

    // A CI-SIS type Relais has no label for: the intake must give it.
    let mut i = ldl();
    i.document.type_code = "10213-7".into();
    i.encounter.end = Some(i.encounter.start);
    expect_problem(
        &i,
        none,
        "INTAKE-TYPE-DISPLAY-MISSING",
        "document.type_display",
    );
    i.document.type_display = Some("Attestation".into());
    i.validate()
        .expect("with its label, any CI-SIS type is built at level 1");

    // Structured sections are for discharge letters only.
    let mut i = sample(LDL_N3_JSON);
    i.document.type_code = "11502-2".into();
    expect_problem(&i, none, "INTAKE-STRUCTURED-UNSUPPORTED", "ldl_ses");

    let mut i = ldl();
    i.document.title = "Lettre\u{0007}".into();
    expect_problem(&i, none, "INTAKE-TEXT-INVALID", "document.title");
    let mut i = ldl();
    i.document.title = "Lettre\nde liaison".into();
    expect_problem(&i, none, "INTAKE-TEXT-INVALID", "document.title");
}

#[test]
fn encounter_and_recipient_problems() {
    let none = IntakePolicy::default();
    let mut i = ldl();
    i.encounter.end = None;
    expect_problem(&i, none, "INTAKE-DISCHARGE-MISSING", "encounter.end");

    let mut i = ldl();
    i.encounter.end = Some(Timestamp::parse("2025-03-01").unwrap());
    expect_problem(&i, none, "INTAKE-DATES-INCONSISTENT", "encounter.end");

    let mut i = sample(CR_BIO_TOML);
    i.encounter.kind = relais_compose::codes::EncounterKind::AMB;
    expect_problem(
        &i,
        none,
        "INTAKE-CONTENT-TYPE-MISSING",
        "encounter.content_type",
    );

    let mut i = ldl();
    i.recipients.clear();
    expect_problem(&i, none, "INTAKE-RECIPIENT-MISSING", "recipients");

    let mut i = ldl();
    i.recipients[0].mssante = None;
    i.recipients[0].rpps = None;
    expect_problem(&i, none, "INTAKE-RECIPIENT-MISSING", "recipients[0]");

    let mut i = sample(LDL_N3_JSON);
    let m = &mut i.ldl_ses.as_mut().unwrap().discharge_medications[0];
    m.code.as_mut().unwrap().system = None;
    expect_problem(
        &i,
        none,
        "INTAKE-VALUE-MISSING",
        "ldl_ses.discharge_medications[0].code.system",
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let mut i = ldl();
    i.author.rpps = "1".into();
    i.organization.finess = "x".into();
    i.patient.birth_place_code = None;
    let e = i.validate().unwrap_err();
    for code in [
        "INTAKE-RPPS-FORMAT",
        "INTAKE-FINESS-FORMAT",
        "INTAKE-INS-TRAIT-MISSING",
    ] {
        assert!(e.has(code), "{code} in {e}");
    }
    assert_eq!(e.problems.len(), 3, "{e}");
}

#[test]
fn syntax_errors_say_where_and_never_what() {
    let json = std::fs::read_to_string(
        relais_testsupport::workspace_root().join("samples/outbound/ldl-ses-n1.json"),
    )
    .unwrap();
    for (label, broken, expect) in [
        (
            "wrong type",
            json.replace(
                r#""birth_family_name": "RELAIS-TEST""#,
                r#""birth_family_name": ["RELAIS-TEST"]"#,
            ),
            "expected a string",
        ),
        (
            "unknown field",
            json.replace(r#""sex": "F""#, r#""sexe": "F""#),
            "unknown field `sexe`",
        ),
        (
            "bad enum value",
            json.replace(r#""sex": "F""#, r#""sex": "ANNE""#),
            "expected one of",
        ),
        (
            "bad date",
            json.replace("1979-03-15", "15/03/1979"),
            "not a date or date-time",
        ),
        (
            "time without offset",
            json.replace("2025-03-12T11:00:00+01:00", "2025-03-12T11:00:00"),
            "UTC offset",
        ),
        ("not JSON", "{ \"document\": ".to_string(), "line 1"),
    ] {
        let err = Intake::from_json(broken.as_bytes()).expect_err(label);
        let text = err.to_string();
        assert!(err.has("INTAKE-SYNTAX"), "{label}: {text}");
        assert!(text.contains(expect), "{label}: {text}");
        assert_no_patient_data(&text);
    }

    let toml = std::fs::read_to_string(
        relais_testsupport::workspace_root().join("samples/outbound/ldl-ses-n1.toml"),
    )
    .unwrap();
    let err = Intake::from_toml(&toml.replace(r#"sex = "F""#, r#"sex = "CAMILLE""#)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line 16"), "{text}");
    assert_no_patient_data(&text);
    let err = Intake::from_toml("patient = 3").unwrap_err();
    assert!(err.has("INTAKE-SYNTAX"), "{err}");
}

#[test]
fn debug_output_hides_patient_data() {
    for name in [LDL_N1_JSON, LDL_N3_JSON] {
        let text = format!("{:?}", sample(name));
        assert_no_patient_data(&text);
        assert!(!text.contains("Décompensation"), "clinical text in Debug");
    }
}

#[test]
fn a_file_that_is_not_a_pdf_is_refused() {
    let err = build_cda(&ldl(), b"Bonjour, voici la lettre", &context("not-pdf")).unwrap_err();
    assert!(matches!(err, BuildError::NotPdf), "{err}");
}

#[test]
fn context_errors_name_the_setting() {
    let mut ctx = context("ctx");
    ctx.document_root_oid = "CH-DEMO".into();
    let err = build_cda(&ldl(), &letter_pdf(), &ctx).unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Context {
                field: "document_root_oid",
                ..
            }
        ),
        "{err}"
    );
    let mut ctx = context("ctx");
    ctx.now = Timestamp::parse("2025-03-12").unwrap();
    assert!(matches!(
        build_cda(&ldl(), &letter_pdf(), &ctx).unwrap_err(),
        BuildError::Context { field: "now", .. }
    ));
}

#[test]
fn builds_are_deterministic_and_ids_come_from_the_seed() {
    let pdf = letter_pdf();
    for name in [LDL_N1_JSON, LDL_N3_JSON, CR_BIO_TOML] {
        let intake = sample(name);
        let a = compose(&intake, &pdf, &context("seed-1"), &mail_options()).unwrap();
        let b = compose(&intake, &pdf, &context("seed-1"), &mail_options()).unwrap();
        assert_eq!(a.cda.xml, b.cda.xml, "{name}: CDA");
        assert_eq!(a.package.zip, b.package.zip, "{name}: XDM");
        assert_eq!(a.mail.raw, b.mail.raw, "{name}: mail");
        let c = compose(&intake, &pdf, &context("seed-2"), &mail_options()).unwrap();
        assert_ne!(a.mail.message_id, c.mail.message_id, "{name}: Message-ID");
        assert_ne!(a.package.zip, c.package.zip, "{name}: submission set ids");
    }
    // Without the DPI's numbers, the CDA id and setId derive from the seed.
    let mut intake = ldl();
    intake.document.id = None;
    intake.document.set_id = None;
    let a = build_cda(&intake, &pdf, &context("seed-1")).unwrap();
    let b = build_cda(&intake, &pdf, &context("seed-2")).unwrap();
    assert_ne!(a.unique_id, b.unique_id);
    assert_ne!(a.unique_id, a.set_id);
    assert!(a.unique_id.starts_with("2.999.33.1.2^"));
}

#[test]
fn medecin_traitant_needs_rpps_and_name() {
    let mut i = ldl();
    i.gp.as_mut().expect("sample gp").rpps = None;
    expect_problem(
        &i,
        IntakePolicy::default(),
        "INTAKE-VALUE-MISSING",
        "gp.rpps",
    );
    let mut i = ldl();
    i.gp.as_mut().unwrap().family_name = None;
    expect_problem(
        &i,
        IntakePolicy::default(),
        "INTAKE-VALUE-MISSING",
        "gp.family_name",
    );
}
