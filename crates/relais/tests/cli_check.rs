//! `relais check` as a user runs it: exit codes, text and JSON reports, hostile inputs.

use relais_xdm::raw::{RawEntry, RawZip, deflated_zeros};
use std::path::Path;
use std::process::{Command, Output};

fn relais(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(args)
        .env("RELAIS_PACK_DIR", relais_testsupport::ans_dir())
        .output()
        .expect("run relais")
}

/// Run `relais check --json --no-schematron FILE` and return (exit code, rule codes found).
fn check_json(path: &Path) -> (i32, Vec<String>, serde_json::Value) {
    let out = relais(&["check", "--json", "--no-schematron", path.to_str().unwrap()]);
    let code = out
        .status
        .code()
        .expect("relais exited normally (no signal, no panic abort)");
    assert_ne!(
        code,
        101,
        "relais panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON report: {e}\n{}", String::from_utf8_lossy(&out.stdout)));
    let mut codes = Vec::new();
    collect_codes(&json, &mut codes);
    (code, codes, json)
}

fn collect_codes(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let (Some(serde_json::Value::String(c)), Some(_)) =
                (m.get("code"), m.get("severity"))
            {
                out.push(c.clone());
            }
            m.values().for_each(|x| collect_codes(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_codes(x, out)),
        _ => {}
    }
}

fn write(dir: &tempfile::TempDir, name: &str, data: &[u8]) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn assert_rejected(path: &Path, code: &str) {
    let (exit, codes, _) = check_json(path);
    assert_eq!(
        exit,
        1,
        "{} should be invalid; codes {codes:?}",
        path.display()
    );
    assert!(
        codes.iter().any(|c| c == code),
        "{}: expected {code}, got {codes:?}",
        path.display()
    );
}

#[test]
fn valid_ans_document_exits_0_and_reports_facts() {
    let path = relais_testsupport::ans_file("cda-examples/LDL-SES_2022.01.xml");
    let (exit, codes, json) = check_json(&path);
    assert_eq!(exit, 0, "{codes:?}");
    let doc = &json["inputs"][0]["documents"][0];
    assert_eq!(doc["type_code"], "11490-0");
    assert_eq!(doc["model"], "LDL-SES 2022.01");
    assert_eq!(doc["patient_id_kind"], "INS-NIR (test)");
    let text = relais(&["check", "--no-schematron", path.to_str().unwrap()]);
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        stdout.contains("VALID") && stdout.contains("model LDL-SES 2022.01"),
        "{stdout}"
    );
    // No patient identity in the report: not the INS, not the birth name.
    assert!(!stdout.contains("279035121518989"), "{stdout}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = relais(&["check", "/no/such/file.eml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.eml"));
    let out = relais(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let out = relais(&["check", "--pack", "/nonexistent-pack", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validation pack"));
}

#[test]
fn zip_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let (stream, crc) = deflated_zeros(1 << 30);
    let mut zip = RawZip::new();
    zip.push(RawEntry::precompressed(
        "IHE_XDM/SUBSET01/DOC0001.XML",
        stream,
        1 << 30,
        crc,
    ));
    let p = write(&dir, "bomb.zip", &zip.to_bytes());
    assert_rejected(&p, "ZIP-BOMB");
}

#[test]
fn zip_path_traversal_and_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["../../etc/evil.txt", "/etc/passwd"].iter().enumerate() {
        let mut zip = RawZip::new();
        zip.push(RawEntry::stored(name, b"x".to_vec()));
        let p = write(&dir, &format!("traversal{i}.zip"), &zip.to_bytes());
        assert_rejected(&p, "ZIP-PATH-TRAVERSAL");
    }
}

#[test]
fn zip_too_many_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut zip = RawZip::new();
    for i in 0..5000 {
        zip.push(RawEntry::stored(
            format!("IHE_XDM/SUBSET01/F{i}.TXT"),
            b"x".to_vec(),
        ));
    }
    let p = write(&dir, "many.zip", &zip.to_bytes());
    assert_rejected(&p, "ZIP-TOO-MANY-ENTRIES");
}

#[test]
fn xml_entity_expansion_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut xml =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        xml.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    xml.push_str("]>\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\">&lol9;</ClinicalDocument>\n");
    let p = write(&dir, "lol.xml", xml.as_bytes());
    assert_rejected(&p, "XML-DTD-FORBIDDEN");
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><ClinicalDocument xmlns=\"urn:hl7-org:v3\">&x;</ClinicalDocument>";
    let p = write(&dir, "xxe.xml", xxe.as_bytes());
    assert_rejected(&p, "XML-DTD-FORBIDDEN");
}

#[test]
fn huge_mail_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.eml");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        f.write_all(b"Message-ID: <huge@ch-demo.mssante.fr>\r\nFrom: a@ch-demo.mssante.fr\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n").unwrap();
        let line = [b'A'; 998];
        for _ in 0..(200 * 1024 * 1024 / 1000) {
            f.write_all(&line).unwrap();
            f.write_all(b"\r\n").unwrap();
        }
    }
    assert_rejected(&p, "MAIL-TOO-LARGE");
}

#[test]
fn deep_mime_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let mut mail = String::from(
        "Message-ID: <deep@ch-demo.mssante.fr>\r\nFrom: a@ch-demo.mssante.fr\r\nMIME-Version: 1.0\r\n",
    );
    let depth = 2000;
    for i in 0..depth {
        mail.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    mail.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
    for i in (0..depth).rev() {
        mail.push_str(&format!("--b{i}--\r\n"));
    }
    let p = write(&dir, "deep.eml", mail.as_bytes());
    assert_rejected(&p, "MAIL-MIME-TOO-DEEP");
}

#[test]
fn truncated_base64_attachment() {
    let dir = tempfile::tempdir().unwrap();
    let mail = "Message-ID: <b64@ch-demo.mssante.fr>\r\nFrom: a@ch-demo.mssante.fr\r\nTo: b@medecin.mssante.fr\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
--x\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfs\r\nJVBERi0xL\r\n--x--\r\n";
    let p = write(&dir, "b64.eml", mail.as_bytes());
    assert_rejected(&p, "MAIL-BASE64-INVALID");
}

#[test]
fn broken_hl7_delimiters() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "bad.hl7", b"MSH|^~|\rPID|1||123\r");
    assert_rejected(&p, "HL7-BAD-DELIMITERS");
}

#[test]
fn garbage_is_unknown_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, "garbage.bin", &[0u8, 159, 146, 150, 1, 2, 3]);
    assert_rejected(&p, "CHECK-UNKNOWN-INPUT");
}

#[test]
fn without_java_schematron_is_reported_not_run() {
    let path = relais_testsupport::ans_file("cda-examples/LDL-SES_2022.01.xml");
    let cache = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_relais"))
            .arg("check")
            .args(extra)
            .arg("--cache-dir")
            .arg(cache.path())
            .arg(&path)
            .env("RELAIS_PACK_DIR", relais_testsupport::ans_dir())
            // No java on the PATH.
            .env("PATH", cache.path())
            .output()
            .expect("run relais")
    };
    let out = run(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("schematron checks will not run"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = json["inputs"][0]["documents"][0]["checks"]
        .as_array()
        .unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("xsd").as_deref(), Some("ran"));
    assert_eq!(status("header").as_deref(), Some("ran"));
    assert_eq!(status("schematron").as_deref(), Some("not-run"));
    let out = run(&["--require-schematron"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schematron checks are required"));
}

#[test]
fn hl7_examples_are_read_with_their_profile() {
    // The ANS HL7 examples carry placeholder text, not real CDA documents, in their ED
    // fields: the report says so (HL7-ED-NOT-XML) instead of failing to parse.
    let dir = relais_testsupport::ans_dir().join("hl7v2-examples");
    for (name, profile) in [
        (
            "message_ORU_CR_Bio_INIT_N1_N3.hl7",
            "ORU^R01 v2.5 (OruFromProducer)",
        ),
        (
            "message_MDM__LPS_MSS_CR_Radio_INIT_N1.er7",
            "MDM^T02 v2.6 (MdmToLps)",
        ),
    ] {
        let (exit, codes, json) = check_json(&dir.join(name));
        let doc = &json["inputs"][0]["documents"][0];
        assert_eq!(doc["format"], "hl7", "{name}");
        assert_eq!(doc["message_type"], profile, "{name}");
        assert_eq!(doc["patient_id_kind"], "INS-NIR (test)", "{name}");
        assert!(
            codes.iter().any(|c| c == "HL7-ED-NOT-XML"),
            "{name}: {codes:?}"
        );
        assert!(exit == 0 || exit == 1, "{name}: exit {exit}");
    }
}
