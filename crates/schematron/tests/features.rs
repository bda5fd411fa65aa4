//! Schematron constructs one by one, on a small schema written for the purpose and run through
//! the real engine (Saxon): abstract patterns with clashing parameter names, rule order, lets
//! at every level, phases, abstract rules (inlined and called), includes of both shapes,
//! `document()` relative to the schema, messages with markup, tabs and newlines, `subject`,
//! roles, rule errors, missing includes.

mod common;

use relais_core::{Location, Severity};
use relais_schematron::{ResultKind, SchematronError, SchematronResult, codes};
use std::path::{Path, PathBuf};

const MAIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2" defaultPhase="main">
  <ns prefix="t" uri="urn:test"/>
  <let name="limit" value="3"/>
  <include href="abstract/count.sch"/>
  <include href="wrapper.sch"/>
  <include href="missing/nowhere.sch"/>
  <phase id="main">
    <active pattern="vars"/>
    <active pattern="order"/>
    <active pattern="inst"/>
    <active pattern="wrapped"/>
    <active pattern="msgs"/>
    <active pattern="attrs"/>
    <active pattern="broken"/>
  </phase>
  <phase id="only-order"><active pattern="order"/></phase>
  <pattern id="vars"><let name="codes" value="'codes.xml'"/></pattern>
  <pattern id="order">
    <rule context="t:item[@kind = 'special']">
      <report test="true()" id="first">special item <value-of select="@n"/></report>
    </rule>
    <rule context="t:item">
      <assert test="false()" id="second" role="warning">ordinary item <value-of select="@n"/></assert>
    </rule>
  </pattern>
  <pattern id="inst" is-a="count">
    <param name="elt" value="t:item"/>
    <param name="elt_max" value="$limit"/>
  </pattern>
  <pattern id="msgs">
    <rule context="t:root">
      <let name="n" value="count(t:item)"/>
      <assert test="$n = 0" flag="f1" id="msg">Tab[	] newline[
] <name/> has <emph><value-of select="$n"/></emph> items in <dir>dir</dir><span class="x">span</span>; first: <name path="t:item[1]"/>; codes: <value-of select="document($codes)//t:code/@v"/></assert>
      <assert test="false()" subject="t:item[2]">subject points at the second item</assert>
    </rule>
  </pattern>
  <pattern id="attrs">
    <rule context="t:item/@n[. = '3']">
      <report test="true()">attribute three</report>
    </rule>
  </pattern>
  <pattern id="broken">
    <rule context="t:root">
      <assert test="count(doc('no-such-file.xml')//t:code) = 1">never true</assert>
      <assert test="count(t:item) = 0">still evaluated after the broken check</assert>
    </rule>
  </pattern>
  <pattern id="unused">
    <rule context="/"><assert test="false()">only with #ALL</assert></rule>
  </pattern>
</schema>
"#;

const COUNT: &str = r#"<pattern xmlns="http://purl.oclc.org/dsdl/schematron" abstract="true" id="count">
  <rule context="t:root">
    <assert test="count($elt) &lt;= $elt_max" id="count">at most $elt_max of $elt, found <value-of select="count($elt)"/></assert>
  </rule>
</pattern>
"#;

const WRAPPER: &str = r#"<schema xmlns="http://purl.oclc.org/dsdl/schematron">
  <pattern id="wrapped">
    <rule abstract="true" id="base">
      <let name="nv" value="@n"/>
      <assert test="$nv" id="has-n">item without @n</assert>
    </rule>
    <rule abstract="true" id="uses-caller">
      <assert test="string($x) != '4'">item four seen through the caller's variable</assert>
    </rule>
    <rule abstract="true" id="reads-limit">
      <assert test="$limit = 3">limit shadowed by the caller: <value-of select="$limit"/></assert>
    </rule>
    <rule context="t:root">
      <let name="limit" value="1"/>
      <extends rule="reads-limit"/>
    </rule>
    <rule context="t:item">
      <extends rule="base"/>
      <let name="x" value="@n"/>
      <extends rule="uses-caller"/>
      <report test="$x = '2'" role="info">item two</report>
    </rule>
  </pattern>
</schema>
"#;

const CODES: &str = r#"<t:codes xmlns:t="urn:test"><t:code v="A"/><t:code v="B"/></t:codes>"#;

const DOC: &str = r#"<root xmlns="urn:test"><item n="1"/><item n="2" kind="special"/><item n="3"/><item n="4"/><item/></root>"#;

fn schema_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("abstract")).expect("mkdir");
    std::fs::write(root.join("main.sch"), MAIN).expect("write");
    std::fs::write(root.join("abstract/count.sch"), COUNT).expect("write");
    std::fs::write(root.join("wrapper.sch"), WRAPPER).expect("write");
    std::fs::write(root.join("codes.xml"), CODES).expect("write");
    let main = root.join("main.sch");
    (dir, main)
}

fn run(phase: Option<&str>) -> Vec<SchematronResult> {
    let (_dir, main) = schema_dir();
    common::engine()
        .run(&main, phase, DOC.as_bytes())
        .expect("validation runs")
}

fn find<'a>(
    results: &'a [SchematronResult],
    pattern: &str,
    text_start: &str,
) -> Vec<&'a SchematronResult> {
    results
        .iter()
        .filter(|r| r.pattern == pattern && r.text.trim_start().starts_with(text_start))
        .collect()
}

#[test]
fn first_matching_rule_of_a_pattern_wins() {
    let results = run(None);
    let special = find(&results, "order", "special item");
    assert_eq!(special.len(), 1);
    assert_eq!(special[0].location, "/root/item[2]");
    assert_eq!(special[0].kind, ResultKind::Report);
    assert_eq!(special[0].id.as_deref(), Some("first"));
    let ordinary: Vec<&str> = find(&results, "order", "ordinary item")
        .iter()
        .map(|r| r.location.as_str())
        .collect();
    // Item 2 matched the first rule, so the second rule does not see it.
    assert_eq!(
        ordinary,
        [
            "/root/item[1]",
            "/root/item[3]",
            "/root/item[4]",
            "/root/item[5]"
        ]
    );
    let f = find(&results, "order", "ordinary item")[0].to_finding("main.sch");
    assert_eq!(
        (f.code, f.severity),
        (codes::SCH_REPORT, Severity::Warning),
        "role warning"
    );
}

#[test]
fn abstract_pattern_parameters_substitute_longest_name_first() {
    let results = run(None);
    let count = find(&results, "inst", "at most");
    assert_eq!(count.len(), 1, "{results:#?}");
    // `$elt_max` became `$limit` (a schema-level let, 3), not `t:item_max`.
    assert_eq!(count[0].text.trim(), "at most $limit of t:item, found 5");
    assert_eq!(count[0].test, "count(t:item) <= $limit");
    assert_eq!(count[0].location, "/root");
}

#[test]
fn abstract_rules_are_called_or_inlined_and_see_the_right_variables() {
    let results = run(None);
    let without_n = find(&results, "wrapped", "item without @n");
    assert_eq!(without_n.len(), 1);
    assert_eq!(without_n[0].location, "/root/item[5]");
    assert_eq!(without_n[0].id.as_deref(), Some("has-n"));
    // This abstract rule reads the caller's $x: it must have been inlined to work.
    let four = find(&results, "wrapped", "item four");
    assert_eq!(four.len(), 1);
    assert_eq!(four[0].location, "/root/item[4]");
    // The caller's $limit (1) shadows the global one (3) inside the abstract rule.
    let shadowed = find(&results, "wrapped", "limit shadowed");
    assert_eq!(shadowed.len(), 1, "{results:#?}");
    assert_eq!(shadowed[0].text.trim(), "limit shadowed by the caller: 1");
    let two = find(&results, "wrapped", "item two");
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].to_finding("main.sch").severity, Severity::Info);
}

#[test]
fn messages_evaluate_value_of_name_and_markup_and_keep_tabs_and_newlines() {
    let results = run(None);
    let msg = find(&results, "msgs", "Tab[");
    assert_eq!(msg.len(), 1, "{results:#?}");
    let m = msg[0];
    // Tabs and newlines survive the worker protocol as written...
    assert_eq!(
        m.text,
        "Tab[\t] newline[\n] root has 5 items in dirspan; first: item; codes: A B"
    );
    assert_eq!(m.flag.as_deref(), Some("f1"));
    // ...and the finding's assertion text has whitespace collapsed.
    let f = m.to_finding("main.sch");
    assert_eq!(
        f.assertion.as_deref(),
        Some("Tab[ ] newline[ ] root has 5 items in dirspan; first: item; codes: A B")
    );
    assert_eq!(f.code, codes::SCH_ASSERT_FAILED);
    assert_eq!(f.source.as_deref(), Some("main.sch#msgs"));
    assert_eq!(f.location, Location::XPath("/root".into()));

    let subject = find(&results, "msgs", "subject points");
    assert_eq!(subject[0].location, "/root/item[2]");
}

#[test]
fn attribute_contexts_are_visited() {
    let results = run(None);
    let attr = find(&results, "attrs", "attribute three");
    assert_eq!(attr.len(), 1);
    assert_eq!(attr[0].location, "/root/item[3]/@n");
}

#[test]
fn an_error_in_one_check_does_not_stop_the_others() {
    let results = run(None);
    let broken: Vec<_> = results.iter().filter(|r| r.pattern == "broken").collect();
    assert_eq!(broken.len(), 2, "{broken:#?}");
    assert_eq!(broken[0].kind, ResultKind::Error);
    assert!(
        broken[0].text.contains("no-such-file.xml"),
        "{}",
        broken[0].text
    );
    let f = broken[0].to_finding("main.sch");
    assert_eq!(
        (f.code, f.severity),
        (codes::SCH_RULE_ERROR, Severity::Warning)
    );
    assert_eq!(broken[1].kind, ResultKind::Assert);
    assert!(broken[1].text.contains("still evaluated"));
}

#[test]
fn missing_includes_are_reported_not_fatal() {
    let results = run(None);
    let missing: Vec<_> = results
        .iter()
        .filter(|r| r.kind == ResultKind::MissingInclude)
        .collect();
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].text.ends_with("missing/nowhere.sch"),
        "{}",
        missing[0].text
    );
    let (_dir, main) = schema_dir();
    let findings = common::engine()
        .validate(&main, DOC.as_bytes())
        .expect("runs");
    let f = findings
        .iter()
        .find(|f| f.code == codes::SCH_INCLUDE_MISSING)
        .expect("missing include finding");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("nowhere.sch"));
}

#[test]
fn phases_choose_patterns() {
    let default = run(None);
    assert!(default.iter().all(|r| r.pattern != "unused"));
    let only = run(Some("only-order"));
    assert!(
        only.iter()
            .filter(|r| r.kind != ResultKind::MissingInclude)
            .all(|r| r.pattern == "order")
    );
    assert_eq!(only.iter().filter(|r| r.pattern == "order").count(), 5);
    let all = run(Some("#ALL"));
    let unused = find(&all, "unused", "only with #ALL");
    assert_eq!(unused.len(), 1);
    assert_eq!(unused[0].location, "/");

    let (_dir, main) = schema_dir();
    match common::engine().run(&main, Some("nope"), DOC.as_bytes()) {
        Err(SchematronError::Compile(e)) => assert!(e.to_string().contains("only-order"), "{e}"),
        other => panic!("expected an unknown phase error, got {other:?}"),
    }
}

#[test]
fn a_stylesheet_saxon_rejects_is_reported_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sch = dir.path().join("bad.sch");
    std::fs::write(
        &sch,
        r#"<schema xmlns="http://purl.oclc.org/dsdl/schematron"><pattern id="p"><rule context="*"><assert test="$undeclared">x</assert></rule></pattern></schema>"#,
    )
    .expect("write");
    match common::engine().validate(&sch, DOC.as_bytes()) {
        Err(SchematronError::Stylesheet { message, .. }) => {
            assert!(message.contains("undeclared"), "{message}")
        }
        other => panic!("expected a stylesheet error, got {other:?}"),
    }
    // The worker is still usable afterwards.
    let (_d, main) = schema_dir();
    assert!(common::engine().validate(&main, DOC.as_bytes()).is_ok());
}

#[test]
fn engine_is_unavailable_without_java_or_saxon() {
    let cache = tempfile::tempdir().expect("tempdir");
    let base = relais_schematron::EngineConfig {
        pack_dir: relais_testsupport::ans_dir(),
        cache_dir: cache.path().to_path_buf(),
        java: None,
        saxon_jar: None,
    };
    let no_java = relais_schematron::EngineConfig {
        java: Some(PathBuf::from("/nonexistent/bin/java")),
        ..base.clone()
    };
    match relais_schematron::SchematronEngine::start(no_java) {
        Err(SchematronError::Unavailable { reason }) => {
            assert!(reason.contains("/nonexistent/bin/java"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let no_saxon = relais_schematron::EngineConfig {
        saxon_jar: Some(PathBuf::from("/nonexistent/Saxon-HE.jar")),
        ..base.clone()
    };
    match relais_schematron::SchematronEngine::start(no_saxon) {
        Err(SchematronError::Unavailable { reason }) => {
            assert!(reason.contains("Saxon-HE"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // A "java" that exits at once: the worker never says READY.
    let broken_java = relais_schematron::EngineConfig {
        java: Some(PathBuf::from("/bin/false")),
        cache_dir: common::cache_dir(),
        ..base
    };
    match relais_schematron::SchematronEngine::start(broken_java) {
        Err(SchematronError::Unavailable { reason }) => {
            assert!(reason.contains("did not start"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn schematron_paths_resolve_against_the_pack() {
    let e = common::engine();
    let relative = e
        .stylesheet(Path::new("CI-SIS_LDL-SES_2022.01.sch"), None)
        .expect("compile");
    let absolute = e
        .stylesheet(
            &relais_testsupport::ans_file("schematrons/CI-SIS_LDL-SES_2022.01.sch"),
            None,
        )
        .expect("compile");
    assert_eq!(relative, absolute);
    assert!(matches!(
        e.stylesheet(Path::new("no/such.sch"), None),
        Err(SchematronError::Compile(_))
    ));
}
