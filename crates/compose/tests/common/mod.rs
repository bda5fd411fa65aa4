//! Shared by the relais-compose tests: the sample intakes, a build context, test PDFs, and the
//! project's checker on the ANS validation pack.
#![allow(dead_code)]

use relais_check::{CheckOptions, Checker, SchematronMode};
use relais_compose::{BuildContext, Intake, MailOptions, ProductInfo, Timestamp};
use relais_testsupport::{ans_dir, workspace_root};
use std::sync::OnceLock;

/// The sample intakes of `samples/outbound/`.
pub const LDL_N1_JSON: &str = "ldl-ses-n1.json";
pub const LDL_N1_TOML: &str = "ldl-ses-n1.toml";
pub const LDL_N3_JSON: &str = "ldl-ses-n3.json";
pub const CR_BIO_TOML: &str = "cr-bio-n1.toml";

/// Read a sample intake, JSON or TOML by its extension.
pub fn sample(name: &str) -> Intake {
    let path = workspace_root().join("samples/outbound").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let intake = if name.ends_with(".toml") {
        Intake::from_toml(std::str::from_utf8(&bytes).expect("UTF-8 TOML"))
    } else {
        Intake::from_json(&bytes)
    };
    intake.unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The build context of the tests: fixed time (12 March 2025, 15:05 in Paris), fixed seed.
pub fn context(seed: &str) -> BuildContext {
    BuildContext::new(
        ProductInfo {
            name: "Relais".into(),
            version: "0.1.0".into(),
            vendor: "Relais contributors".into(),
            contact: None,
        },
        "2.999.33.1.2",
        "2.999.33.1.9",
        Timestamp::parse("2025-03-12T15:05:00+01:00").expect("time"),
        seed,
    )
}

/// The mail options of the tests: the ward's applicative mailbox.
pub fn mail_options() -> MailOptions {
    let mut o = MailOptions::new("medecine-interne@ch-demo.mssante.fr", "Relais 0.1.0");
    o.from_name = Some("Médecine interne - CH RELAIS-DEMO".into());
    o
}

/// A one-page PDF 1.4 (Helvetica, WinAnsi) with the given ASCII lines and a correct
/// cross-reference table.
pub fn pdf(lines: &[&str]) -> Vec<u8> {
    let mut content = String::from("BT\n/F1 12 Tf\n16 TL\n56 780 Td\n");
    for line in lines {
        assert!(
            line.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && !b"()\\".contains(&b))
        );
        content.push_str(&format!("({line}) Tj\nT*\n"));
    }
    content.push_str("ET\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
    ];
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The PDF of a sample letter.
pub fn letter_pdf() -> Vec<u8> {
    pdf(&[
        "Lettre de liaison - document de demonstration Relais",
        "Patiente fictive, aucune donnee reelle.",
    ])
}

/// The project's checker on the ANS pack with the schematrons required: fails loudly when Java
/// or Saxon-HE is missing (bash tests/setup.sh installs them).
pub fn full_checker() -> &'static Checker {
    static C: OnceLock<Checker> = OnceLock::new();
    C.get_or_init(|| {
        Checker::new(CheckOptions {
            pack: Some(ans_dir()),
            schematron: SchematronMode::Require,
            cache_dir: Some(workspace_root().join("target/test-schematron-cache")),
            ..CheckOptions::default()
        })
        .expect(
            "the schematron checks need Java 17 and Saxon-HE (/usr/share/java/Saxon-HE.jar): \
             run bash tests/setup.sh",
        )
    })
}

/// A schematron engine on the ANS pack, for the profile schematrons the checker does not run.
pub fn schematron_engine() -> &'static relais_schematron::SchematronEngine {
    static E: OnceLock<relais_schematron::SchematronEngine> = OnceLock::new();
    E.get_or_init(|| {
        relais_schematron::SchematronEngine::start(relais_schematron::EngineConfig {
            pack_dir: ans_dir(),
            cache_dir: workspace_root().join("target/test-schematron-cache"),
            java: None,
            saxon_jar: None,
        })
        .unwrap_or_else(|e| {
            panic!("schematrons need Java 17 and Saxon-HE (bash tests/setup.sh installs them): {e}")
        })
    })
}
