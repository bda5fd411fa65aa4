//! A package built by `PackageBuilder` reads back to the same metadata, without findings.

mod common;

use common::*;
use proptest::prelude::*;
use relais_core::Limits;
use relais_xdm::{
    Author, Coded, Cx, DocumentEntry, PackageBuilder, Slot, SubmissionSet, check_metadata,
    parse_metadata, uuids, write_metadata_xml,
};
use sha1::{Digest, Sha1};

#[test]
fn ldl_ses_package_round_trips_without_findings() {
    let cda = ldl_ses();
    let built = builder().build().expect("build");
    assert!(
        built.findings.is_empty(),
        "builder findings: {:#?}",
        built.findings
    );

    let pkg = read(&built.zip);
    assert!(
        pkg.findings.is_empty(),
        "findings on our own package: {:#?}",
        pkg.findings
    );
    assert!(pkg.is_valid());
    assert_eq!(
        pkg.entries,
        [
            "README.TXT",
            "INDEX.HTM",
            "IHE_XDM/",
            "IHE_XDM/SUBSET01/",
            METADATA_PATH,
            DOC1_PATH
        ]
    );
    assert_eq!(pkg.subsets.len(), 1);
    let subset = &pkg.subsets[0];
    assert_eq!(subset.dir, "IHE_XDM/SUBSET01");
    assert_eq!(subset.metadata.as_ref(), Some(&built.metadata));

    // The document is the CDA, byte for byte, with the computed hash and size.
    assert_eq!(subset.documents.len(), 1);
    let doc = &subset.documents[0];
    assert_eq!(doc.zip_path, DOC1_PATH);
    assert_eq!(doc.content, cda);
    assert_eq!(
        doc.entry.hash.as_deref(),
        Some(hex::encode(Sha1::digest(&cda)).as_str())
    );
    assert_eq!(doc.entry.size, Some(cda.len() as u64));
    assert_eq!(doc.entry.uri.as_deref(), Some("DOC0001.XML"));

    // What the caller gave comes back unchanged (the builder only completes).
    let given = ldl_ses_entry();
    let got = &doc.entry;
    assert_eq!(got.unique_id, given.unique_id);
    assert_eq!(got.patient_id, given.patient_id);
    assert_eq!(
        got.patient_id.as_ref().unwrap().to_hl7(),
        "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    );
    assert_eq!(got.type_code, given.type_code);
    assert_eq!(got.class_code, given.class_code);
    assert_eq!(got.format_code, given.format_code);
    assert_eq!(got.authors, given.authors);
    assert_eq!(got.source_patient_info, given.source_patient_info);
    assert_eq!(got.title, given.title);
    assert_eq!(got.object_type, uuids::DOCUMENT_ENTRY_STABLE);
    assert!(got.entry_uuid.starts_with("urn:uuid:"));

    let ss = subset
        .metadata
        .as_ref()
        .unwrap()
        .submission_set
        .as_ref()
        .unwrap();
    let given_ss = submission_set();
    assert_eq!(ss.unique_id, given_ss.unique_id);
    assert_eq!(ss.source_id, given_ss.source_id);
    assert_eq!(ss.patient_id, given_ss.patient_id);
    assert_eq!(ss.content_type_code, given_ss.content_type_code);
    assert_eq!(ss.intended_recipients, given_ss.intended_recipients);

    // HasMember association from the submission set to the entry.
    let md = subset.metadata.as_ref().unwrap();
    assert_eq!(md.associations.len(), 1);
    assert_eq!(
        md.associations[0].association_type,
        uuids::ASSOCIATION_HAS_MEMBER
    );
    assert_eq!(md.associations[0].source, ss.entry_uuid);
    assert_eq!(md.associations[0].target, got.entry_uuid);

    // README names the product; INDEX links the document.
    let readme = pkg.readme.as_deref().unwrap();
    assert!(
        readme.contains("Relais 0.1.0") && readme.contains("Relais contributors"),
        "{readme}"
    );
    let index = pkg.index_htm.as_deref().unwrap();
    assert!(
        index.contains("href=\"IHE_XDM/SUBSET01/DOC0001.XML\""),
        "{index}"
    );
    assert!(
        index.contains(">Lettre de liaison à la sortie de l'établissement de santé</a>"),
        "{index}"
    );
}

#[test]
fn metadata_xml_is_ebrs_with_the_xds_uuids() {
    let md = builder().metadata();
    let xml = write_metadata_xml(&md);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "SubmitObjectsRequest");
    assert_eq!(root.tag_name().namespace(), Some(uuids::NS_LCM));
    let schemes: Vec<&str> = doc
        .descendants()
        .filter_map(|n| {
            n.attribute("classificationScheme")
                .or(n.attribute("identificationScheme"))
        })
        .collect();
    for scheme in [
        uuids::DOCUMENT_ENTRY_CLASS_CODE,
        uuids::DOCUMENT_ENTRY_TYPE_CODE,
        uuids::DOCUMENT_ENTRY_FORMAT_CODE,
        uuids::DOCUMENT_ENTRY_CONFIDENTIALITY_CODE,
        uuids::DOCUMENT_ENTRY_HEALTHCARE_FACILITY_TYPE_CODE,
        uuids::DOCUMENT_ENTRY_PRACTICE_SETTING_CODE,
        uuids::DOCUMENT_ENTRY_AUTHOR,
        uuids::DOCUMENT_ENTRY_PATIENT_ID,
        uuids::DOCUMENT_ENTRY_UNIQUE_ID,
        uuids::SUBMISSION_SET_PATIENT_ID,
        uuids::SUBMISSION_SET_SOURCE_ID,
        uuids::SUBMISSION_SET_UNIQUE_ID,
        uuids::SUBMISSION_SET_CONTENT_TYPE_CODE,
        uuids::SUBMISSION_SET_AUTHOR,
    ] {
        assert!(
            schemes.contains(&scheme),
            "{scheme} missing from METADATA.XML"
        );
    }
    assert!(
        doc.descendants()
            .any(|n| n.attribute("classificationNode") == Some(uuids::SUBMISSION_SET_NODE))
    );
    assert!(
        doc.descendants()
            .any(|n| n.attribute("objectType") == Some(uuids::DOCUMENT_ENTRY_STABLE))
    );
    // Slots of the entry, by their XDS names.
    let slot_names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name((uuids::NS_RIM, "Slot")))
        .filter_map(|n| n.attribute("name"))
        .collect();
    for name in [
        "creationTime",
        "hash",
        "languageCode",
        "legalAuthenticator",
        "serviceStartTime",
        "serviceStopTime",
        "size",
        "sourcePatientId",
        "sourcePatientInfo",
        "URI",
        "submissionTime",
        "intendedRecipient",
        "codingScheme",
        "authorPerson",
        "authorInstitution",
        "authorSpecialty",
        "SubmissionSetStatus",
    ] {
        assert!(slot_names.contains(&name), "slot {name} missing");
    }
}

#[test]
fn builds_are_deterministic() {
    assert_eq!(
        builder().build().unwrap().zip,
        builder().build().unwrap().zip
    );
}

#[test]
fn several_documents_get_numbered_files_by_mime_type() {
    let pdf = b"%PDF-1.4\n% not a real PDF, content is opaque to XDM\n%%EOF\n".to_vec();
    let mut pdf_entry = ldl_ses_entry();
    pdf_entry.unique_id = "1.2.250.1.999.1.2.3.4".into();
    pdf_entry.mime_type = "application/pdf".into();
    pdf_entry.format_code = Some(Coded::new(
        "urn:ihe:iti:xds-sd:pdf:2008",
        "1.3.6.1.4.1.19376.1.2.3",
        "PDF",
    ));
    let built = builder().document(pdf_entry, pdf.clone()).build().unwrap();
    let pkg = read(&built.zip);
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    let docs: Vec<_> = pkg.documents().collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].zip_path, "IHE_XDM/SUBSET01/DOC0002.PDF");
    assert_eq!(docs[1].content, pdf);
    assert_eq!(
        pkg.subsets[0].metadata.as_ref().unwrap().associations.len(),
        2
    );
}

#[test]
fn builder_fills_the_submission_set_patient_and_ids() {
    let mut ss = submission_set();
    ss.patient_id = None;
    ss.unique_id.clear();
    let built = PackageBuilder::new(product(), ss)
        .document(ldl_ses_entry(), ldl_ses())
        .build()
        .unwrap();
    let ss = built.metadata.submission_set.as_ref().unwrap();
    assert_eq!(ss.patient_id, ldl_ses_entry().patient_id);
    assert!(ss.unique_id.starts_with("2.25."), "{}", ss.unique_id);
    assert!(read(&built.zip).findings.is_empty());
}

#[test]
fn builder_reports_what_the_caller_left_out() {
    let mut entry = ldl_ses_entry();
    entry.type_code = None;
    let built = builder_with(entry).build().unwrap();
    assert!(
        built
            .findings
            .iter()
            .any(|f| f.code == "XDM-SLOT-MISSING" && f.message.contains("typeCode"))
    );
    assert!(
        PackageBuilder::new(product(), submission_set())
            .build()
            .is_err()
    );
}

fn builder_with(entry: DocumentEntry) -> PackageBuilder {
    PackageBuilder::new(product(), submission_set()).document(entry, ldl_ses())
}

#[test]
fn special_characters_survive_the_xml() {
    let mut entry = ldl_ses_entry();
    entry.title = Some("Compte rendu <urgent> & \"suivi\" l'été\ttab".into());
    entry.comments = Some("ligne 1\nligne 2\r\nligne 3".into());
    entry.other_slots = vec![Slot {
        name: "referenceIdList".into(),
        values: vec!["123^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession".into()],
    }];
    entry.event_codes = vec![Coded {
        code: "A&B".into(),
        scheme: "1.2.3".into(),
        display: None,
    }];
    let built = builder_with(entry).build().unwrap();
    let pkg = read(&built.zip);
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    assert_eq!(pkg.subsets[0].metadata.as_ref(), Some(&built.metadata));
}

// ---------------------------------------------------------------------------------------------
// Property: any metadata the model can hold is written and read back unchanged.

fn text() -> impl Strategy<Value = String> {
    // No leading/trailing whitespace (values are trimmed on reading); XML-special characters
    // and non-ASCII included.
    "[A-Za-z0-9&<>\"'^|.:/éÆ€-]([A-Za-z0-9 &<>\"'^|.:/éÆ€\t-]{0,14}[A-Za-z0-9&<>\"'.é-])?"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn cx() -> impl Strategy<Value = Cx> {
    (
        "[A-Za-z0-9.]{1,12}",
        proptest::option::of("[0-9.]{1,12}"),
        proptest::option::of("[A-Z]{2}"),
    )
        .prop_map(|(id, aa, t)| Cx {
            id,
            assigning_authority: aa,
            id_type: t,
        })
}

fn coded() -> impl Strategy<Value = Coded> {
    (text(), text(), opt_text()).prop_map(|(code, scheme, display)| Coded {
        code,
        scheme,
        display,
    })
}

fn author() -> impl Strategy<Value = Author> {
    (
        opt_text(),
        proptest::collection::vec(text(), 0..3),
        proptest::collection::vec(text(), 0..2),
        proptest::collection::vec(text(), 0..2),
        proptest::collection::vec(text(), 0..2),
    )
        .prop_map(
            |(person, institutions, roles, specialties, telecoms)| Author {
                person,
                institutions,
                roles,
                specialties,
                telecoms,
            },
        )
}

fn entry() -> impl Strategy<Value = DocumentEntry> {
    (
        (
            text(),
            text(),
            proptest::option::of(cx()),
            proptest::option::of(cx()),
        ),
        (
            proptest::option::of(coded()),
            proptest::option::of(coded()),
            proptest::collection::vec(coded(), 0..3),
            proptest::collection::vec(coded(), 0..3),
        ),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        (
            proptest::collection::vec(author(), 0..3),
            proptest::collection::vec(text(), 0..4),
        ),
    )
        .prop_map(
            |(
                (uid, mime, pid, spid),
                (class, ty, conf, events),
                (title, comments, lang, created),
                (authors, info),
            )| {
                DocumentEntry {
                    unique_id: uid,
                    mime_type: mime,
                    patient_id: pid,
                    source_patient_id: spid,
                    class_code: class,
                    type_code: ty,
                    confidentiality_codes: conf,
                    event_codes: events,
                    title,
                    comments,
                    language_code: lang,
                    creation_time: created,
                    authors,
                    source_patient_info: info,
                    ..DocumentEntry::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_metadata_round_trips(
        entries in proptest::collection::vec((entry(), proptest::collection::vec(any::<u8>(), 0..64)), 1..4),
        ss_title in opt_text(),
        recipients in proptest::collection::vec(text(), 0..3),
    ) {
        let ss = SubmissionSet { title: ss_title, intended_recipients: recipients, ..submission_set() };
        let builder = PackageBuilder::with_documents(product(), ss, entries);
        let built = builder.build().unwrap();
        let pkg = read(&built.zip);
        prop_assert_eq!(pkg.subsets[0].metadata.as_ref(), Some(&built.metadata));
        // And the same through the lower-level functions.
        let xml = write_metadata_xml(&built.metadata);
        let (parsed, _) = parse_metadata(xml.as_bytes(), METADATA_PATH, &Limits::default());
        prop_assert_eq!(parsed.as_ref(), Some(&built.metadata));
        prop_assert_eq!(check_metadata(&built.metadata, METADATA_PATH), built.findings);
    }
}

#[test]
fn every_ans_cda_example_in_one_package() {
    let examples = relais_testsupport::ans_cda_examples();
    let mut b = PackageBuilder::new(product(), submission_set());
    let mut contents = Vec::new();
    for (i, path) in examples.iter().enumerate() {
        let content = std::fs::read(path).unwrap();
        let mut e = ldl_ses_entry();
        e.unique_id = format!("1.2.250.1.999.9.{i}");
        b = b.document(e, content.clone());
        contents.push(content);
    }
    let built = b.build().unwrap();
    let pkg = read(&built.zip);
    assert!(pkg.findings.is_empty(), "{:#?}", pkg.findings);
    let docs: Vec<_> = pkg.documents().collect();
    assert_eq!(docs.len(), examples.len());
    for (i, (doc, content)) in docs.iter().zip(&contents).enumerate() {
        assert_eq!(&doc.content, content);
        assert_eq!(
            doc.zip_path,
            format!("IHE_XDM/SUBSET01/DOC{:04}.XML", i + 1)
        );
    }
    assert_eq!(pkg.subsets[0].metadata.as_ref(), Some(&built.metadata));
}
