//! The compiler alone (no Java): every schematron of the ANS pack, and the error cases.

use relais_schematron::{CompileError, CompileOptions, compile, compile_bytes, fuzz_compile};
use std::path::{Path, PathBuf};

fn pack_schematrons() -> Vec<PathBuf> {
    let dir = relais_testsupport::ans_dir().join("schematrons");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("schematrons dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sch"))
        .collect();
    v.sort();
    for extra in [
        "profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch",
        "profils/CI-SIS_Modeles_ANS.sch",
        "profils/IHE.sch",
        "profils/CI-SIS_ModelesDeContenusCDA.sch",
        "profils/terminologies/schematron/terminologie.sch",
    ] {
        v.push(dir.join(extra));
    }
    v
}

#[test]
fn every_pack_schematron_compiles_to_well_formed_xslt() {
    let files = pack_schematrons();
    assert!(
        files.len() >= 60,
        "expected the ~60 ANS schematrons, found {}",
        files.len()
    );
    let mut total_rules = 0;
    for sch in &files {
        let compiled = relais_schematron::compile::compile_file(sch, &CompileOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", sch.display()));
        let doc = relais_core::xml::parse(&compiled.xslt, &relais_core::Limits::default())
            .unwrap_or_else(|e| {
                panic!("{}: generated XSLT is not well-formed: {e}", sch.display())
            });
        assert_eq!(doc.root_element().tag_name().name(), "stylesheet");
        // Every abstract pattern instance had its parameters substituted.
        for param in ["$xpath_elt", "$vue_elt", "$path_jdv", "$nullFlavor"] {
            assert!(
                !compiled.xslt.contains(param),
                "{}: {param} left in the output",
                sch.display()
            );
        }
        assert!(compiled.rules > 0, "{}: no rule compiled", sch.display());
        assert_eq!(compiled.table.sites.len(), compiled.rules);
        total_rules += compiled.rules;
    }
    assert!(
        total_rules > 2000,
        "only {total_rules} rules in the whole pack"
    );
}

#[test]
fn ldl_ses_patterns_phase_and_variables() {
    let sch = relais_testsupport::ans_file("schematrons/CI-SIS_LDL-SES_2022.01.sch");
    let compiled = relais_schematron::compile::compile_file(&sch, &CompileOptions::default())
        .expect("compile");
    assert_eq!(compiled.phase, "CI-SIS_LDL-SES_2022.01");
    let mut patterns = compiled.patterns.clone();
    patterns.sort();
    assert_eq!(
        patterns,
        [
            "Entete_LDL-SES",
            "JDV_ModaliteEntree_LDL-SES",
            "S_ResultatsEvenements_LDL-SES",
            "variables"
        ]
    );
    // Pattern-level let of "variables" is a global variable, used by the JDV instance.
    assert!(compiled.xslt.contains(
        r#"<xsl:variable name="JDV_ModaliteEntree_LDL-SES" select="'../jeuxDeValeurs/JDV_ModaliteEntree_CISIS.xml'"/>"#
    ));
    assert!(
        compiled
            .xslt
            .contains("document($JDV_ModaliteEntree_LDL-SES)")
    );
    // The JDV instance's context is the parameter value.
    assert!(compiled.table.sites.iter().any(|s| {
        s.pattern == "JDV_ModaliteEntree_LDL-SES"
            && s.context
                .ends_with("cda:observation[cda:code/@code='ORG-070']/cda:value")
    }));
    // The three files: schema, abstract patterns, includes.
    assert!(
        compiled
            .files
            .iter()
            .any(|f| f.ends_with("abstract/dansJeuDeValeurs.sch"))
    );
    assert!(compiled.missing.is_empty());
    // xml:base points at the schematron itself for the public compile().
    let xslt = compile(&sch, None).expect("compile");
    assert!(xslt.contains("xml:base=\"file:///"), "xml:base missing");
}

#[test]
fn structuration_minimale_calls_shared_abstract_rules_instead_of_copying_them() {
    let sch = relais_testsupport::ans_file(
        "schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch",
    );
    let compiled = relais_schematron::compile::compile_file(&sch, &CompileOptions::default())
        .expect("compile");
    assert_eq!(
        compiled.phase, "#ALL",
        "no phase in this schema: every pattern runs"
    );
    assert!(
        compiled.files.len() > 100,
        "datatype rules are included: {}",
        compiled.files.len()
    );
    let calls = compiled.xslt.matches("<xsl:call-template").count();
    assert!(calls > 400, "only {calls} calls of abstract rules");
    // Copying every datatype rule into every template made a 21 MB stylesheet that Saxon took
    // ~9 s to compile.
    assert!(
        compiled.xslt.len() < 5_000_000,
        "stylesheet grew to {} bytes",
        compiled.xslt.len()
    );
    // voc-...471 is referenced by a rule but not shipped in the pack: that is for the engine
    // to report (SCH-RULE-ERROR), not a compile error.
    assert!(
        compiled
            .xslt
            .contains("voc-1.2.250.1.213.1.1.5.471-DYNAMIC.xml")
    );
}

#[test]
fn compilation_is_deterministic_and_the_digest_follows_included_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("main.sch"),
        r#"<schema xmlns="http://purl.oclc.org/dsdl/schematron"><include href="p.sch"/></schema>"#,
    )
    .expect("write");
    let p = dir.path().join("p.sch");
    std::fs::write(&p, r#"<pattern xmlns="http://purl.oclc.org/dsdl/schematron" id="p"><rule context="a"><assert test="b">x</assert></rule></pattern>"#).expect("write");
    let main = dir.path().join("main.sch");
    let opts = CompileOptions::default();
    let a = relais_schematron::compile::compile_file(&main, &opts).expect("compile");
    let b = relais_schematron::compile::compile_file(&main, &opts).expect("compile");
    assert_eq!(a.xslt, b.xslt);
    assert_eq!(a.digest, b.digest);
    std::fs::write(&p, r#"<pattern xmlns="http://purl.oclc.org/dsdl/schematron" id="p"><rule context="a"><assert test="c">x</assert></rule></pattern>"#).expect("write");
    let c = relais_schematron::compile::compile_file(&main, &opts).expect("compile");
    assert_ne!(a.digest, c.digest, "an included file changed");
    let d = relais_schematron::compile::compile_file(
        &main,
        &CompileOptions {
            phase: Some("#ALL".into()),
            ..CompileOptions::default()
        },
    )
    .expect("compile");
    assert_ne!(c.digest, d.digest, "the phase is part of the key");

    let big = relais_testsupport::ans_file(
        "schematrons/profils/structurationMinimale/ASIP-STRUCT-MIN-StrucMin.sch",
    );
    let x = relais_schematron::compile::compile_file(&big, &opts).expect("compile");
    let y = relais_schematron::compile::compile_file(&big, &opts).expect("compile");
    assert!(
        x.xslt == y.xslt,
        "StrucMin output differs between two compilations"
    );
}

fn err(sch: &str) -> CompileError {
    compile_bytes(sch.as_bytes(), &CompileOptions::default()).expect_err("must not compile")
}

const NS: &str = r#"xmlns="http://purl.oclc.org/dsdl/schematron""#;

#[test]
fn compile_errors_say_what_is_wrong() {
    assert!(matches!(
        err("<schema/>"),
        CompileError::NotSchematron { .. }
    ));
    assert!(matches!(err("not xml"), CompileError::Xml { .. }));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS}><pattern id="x" is-a="nope"/></schema>"#
        )),
        CompileError::UnknownAbstractPattern { .. }
    ));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS}><pattern><rule context="a"><extends rule="nope"/></rule></pattern></schema>"#
        )),
        CompileError::UnknownAbstractRule { .. }
    ));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS}><pattern><rule abstract="true" id="a"><extends rule="b"/></rule><rule abstract="true" id="b"><extends rule="a"/></rule><rule context="x"><extends rule="a"/></rule></pattern></schema>"#
        )),
        CompileError::ExtendsCycle { .. }
    ));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS}><ns prefix="rsch" uri="urn:x"/></schema>"#
        )),
        CompileError::ReservedPrefix { .. }
    ));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS}><let name="a b" value="1"/></schema>"#
        )),
        CompileError::InvalidName { .. }
    ));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS}><pattern><rule context="a"><assert>no test</assert></rule></pattern></schema>"#
        )),
        CompileError::MissingAttribute { .. }
    ));
    assert!(matches!(
        err(&format!(
            r#"<schema {NS} defaultPhase="nope"><phase id="p"/></schema>"#
        )),
        CompileError::UnknownPhase { .. }
    ));
    assert!(matches!(
        err(&format!(r#"<schema {NS}><include href="x.sch"/></schema>"#)),
        CompileError::IncludeUnavailable { .. }
    ));
    assert!(matches!(
        err(r#"<!DOCTYPE schema [<!ENTITY x "y">]><schema/>"#),
        CompileError::Xml { .. }
    ));
    let missing = compile(Path::new("/nonexistent/dir/x.sch"), None).expect_err("missing file");
    assert!(matches!(missing, CompileError::Read { .. }), "{missing}");
}

#[test]
fn hostile_text_is_escaped_in_the_stylesheet() {
    // Quotes, braces, markup and an XSLT-looking message must stay data.
    let sch = format!(
        r#"<schema {NS}><pattern id="p&quot;{{x}}"><rule context="a[@b = &quot;]&quot;]"><assert test="c &lt; 1 and '{{' = '}}'" id="i&amp;d">&lt;xsl:message terminate="yes"/&gt; {{oops}}</assert></rule></pattern></schema>"#
    );
    let compiled = compile_bytes(sch.as_bytes(), &CompileOptions::default()).expect("compiles");
    relais_core::xml::parse(&compiled.xslt, &relais_core::Limits::default()).expect("well-formed");
    assert!(!compiled.xslt.contains("<xsl:message"));
    assert_eq!(compiled.table.sites[0].pattern, "p\"{x}");
    assert_eq!(compiled.table.checks[1].id.as_deref(), Some("i&d"));
}

#[test]
fn fuzz_entry_point_survives_garbage_and_mutations() {
    let seed = format!(
        r#"<schema {NS} defaultPhase="p"><ns prefix="c" uri="urn:c"/><let name="g" value="1"/><phase id="p"><active pattern="a"/></phase><pattern abstract="true" id="ab"><rule context="$x"><assert test="$y">m <value-of select="$x"/></assert></rule></pattern><pattern id="a" is-a="ab"><param name="x" value="c:a"/><param name="y" value="false()"/></pattern><pattern><rule abstract="true" id="r"><report test="1">r</report></rule><rule context="c:b"><extends rule="r"/><let name="l" value="2"/></rule></pattern></schema>"#
    );
    fuzz_compile(seed.as_bytes());
    let bytes = seed.as_bytes();
    // Every truncation, and a few byte flips at every position.
    for cut in 0..bytes.len() {
        fuzz_compile(&bytes[..cut]);
    }
    for i in (0..bytes.len()).step_by(3) {
        for b in [b'<', b'"', b'$', b'{', 0u8, 0xFF] {
            let mut m = bytes.to_vec();
            m[i] = b;
            fuzz_compile(&m);
        }
    }
    fuzz_compile(&[]);
    fuzz_compile(&[0xFF; 64]);
}
