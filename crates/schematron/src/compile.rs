//! Schematron → XSLT (XPath 2 rules, stylesheet marked 3.0 for `xsl:try`).
//!
//! The generated stylesheet follows the usual shape of Schematron implementations, written here
//! from the ISO 19757-3 semantics rather than from any existing skeleton:
//!
//! * every `<ns>` becomes a namespace declaration of the stylesheet;
//! * schema-, phase- and pattern-level `<let>`s become global `xsl:variable`s (the ANS schemas
//!   declare their value-set paths in a pattern called `variables` and use them from others);
//! * every active pattern becomes its own mode that walks the whole document; its rules become
//!   templates of that mode with decreasing priorities, so that the first rule of the pattern
//!   matching a node wins and later rules do not see that node;
//! * rule-level `<let>`s become local variables;
//! * `<extends rule>` copies the abstract rule into the rule, except when the abstract rule
//!   shares no variable with it: then it becomes a named template called from every rule that
//!   extends it. Art-Decor schemas (the header rules) extend datatype rules hundreds of times;
//!   copying them made a 21 MB stylesheet that Saxon took seconds to compile, calling them a
//!   2 MB one;
//! * a failed `<assert>` or a fired `<report>` writes one `rsch:r` element: the numbers of its
//!   site (pattern and rule context) and check (test, id, role, flag) in the [`Table`] returned
//!   with the stylesheet, the location of the node as an XPath, and the message with
//!   `<value-of>` and `<name>` evaluated;
//! * each check runs inside `xsl:try` (the one XSLT 3.0 instruction used; Saxon-HE 9.9 has it):
//!   a dynamic error, such as a value set missing from the pack, yields a result marked as an
//!   error for that check instead of aborting the whole validation.
//!
//! Relative URIs in XPath (`document('../jeuxDeValeurs/X.xml')`, `doc('include/voc.xml')`)
//! resolve against the stylesheet's static base URI: [`CompileOptions::base_uri`] sets it with
//! `xml:base`, so the stylesheet can be written anywhere.

use crate::error::CompileError;
use crate::model::{self, Elem, Loaded, Node, SCH_NS, XSL_NS};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Namespace of the result elements written by the generated stylesheet.
pub const RESULT_NS: &str = "urn:relais:schematron:result";
/// Namespace of the helper functions of the generated stylesheet.
const FN_NS: &str = "urn:relais:schematron:functions";
/// Identifies the generator in cache keys: the compiler's own source is part of it, so a
/// change of the compiler never reuses stylesheets compiled by an older one.
const GENERATOR: &str = concat!(
    "relais-schematron-xslt/3\n",
    include_str!("compile.rs"),
    include_str!("model.rs")
);
/// Prefixes the generated stylesheet uses for itself.
const RESERVED: [&str; 4] = ["xsl", "rsch", "rschf", "rscherr"];
/// Namespace of the error variables of `xsl:catch`.
const ERR_NS: &str = "http://www.w3.org/2005/xqt-errors";

/// Options of one compilation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// Phase to run: `None` uses the schema's `defaultPhase` (all patterns when it has none),
    /// `Some("#ALL")` runs every pattern.
    pub phase: Option<String>,
    /// Static base URI of the stylesheet (`xml:base`), against which relative `document()` and
    /// `doc()` URIs resolve. `None` writes no `xml:base` (they then resolve against wherever the
    /// stylesheet file is).
    pub base_uri: Option<String>,
}

/// The result of a compilation.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The XSLT 2.0 stylesheet.
    pub xslt: String,
    /// Hex SHA-256 over every input file, the options and the generator version: the cache key.
    pub digest: String,
    /// Every file read (the schema first, then its includes).
    pub files: Vec<PathBuf>,
    /// Included files that do not exist (their rules are not in the stylesheet).
    pub missing: Vec<PathBuf>,
    /// The phase actually compiled (`#ALL` when every pattern runs).
    pub phase: String,
    /// Identifiers of the patterns that run, in order.
    pub patterns: Vec<String>,
    /// Number of rule templates generated.
    pub rules: usize,
    /// What the numbers in the results stand for.
    pub table: Table,
    /// Oddities that did not stop the compilation (phase naming a missing pattern, duplicate
    /// variable...).
    pub warnings: Vec<String>,
}

/// Compile the schema at `path` (includes resolved from the file system).
pub fn compile_file(path: &Path, options: &CompileOptions) -> Result<Compiled, CompileError> {
    let loaded = model::load(path, &mut model::FileSource)?;
    generate(&loaded, path, options)
}

/// The cache key of `loaded` compiled with `options` (same as [`Compiled::digest`]).
pub fn digest_of(loaded: &Loaded, options: &CompileOptions) -> String {
    let mut h = Sha256::new();
    h.update(GENERATOR.as_bytes());
    h.update([0]);
    h.update(loaded.digest);
    h.update(
        options
            .phase
            .as_deref()
            .unwrap_or("\u{0}default")
            .as_bytes(),
    );
    h.update([0]);
    h.update(options.base_uri.as_deref().unwrap_or("").as_bytes());
    hex::encode(h.finalize())
}

/// Generate the XSLT of an already loaded schema.
pub fn generate(
    loaded: &Loaded,
    path: &Path,
    options: &CompileOptions,
) -> Result<Compiled, CompileError> {
    let root = &loaded.root;
    if !root.is_sch("schema") {
        let found = match (&root.ns, root.name.as_str()) {
            (Some(ns), name) => format!("{name} xmlns=\"{ns}\""),
            (None, name) => name.to_string(),
        };
        return Err(CompileError::NotSchematron {
            path: path.to_path_buf(),
            found,
        });
    }
    let mut warnings: Vec<String> = loaded
        .missing
        .iter()
        .map(|m| {
            format!(
                "included file {} does not exist; its rules are skipped",
                m.display()
            )
        })
        .collect();
    let namespaces = namespace_bindings(root, &mut warnings)?;

    // Abstract rules may live in any pattern (Art-Decor puts them in an id-less first pattern)
    // or in a top-level <rules>.
    let mut abstract_rules: HashMap<String, &Elem> = HashMap::new();
    for e in root.descendants() {
        if e.is_sch("rule")
            && e.attr("abstract") == Some("true")
            && let Some(id) = e.attr("id")
        {
            abstract_rules.entry(id.to_string()).or_insert(e);
        }
    }
    let abstract_patterns: HashMap<&str, &Elem> = root
        .elems()
        .filter(|e| e.is_sch("pattern") && e.attr("abstract") == Some("true"))
        .filter_map(|e| e.attr("id").map(|id| (id, e)))
        .collect();

    // Concrete patterns, abstract ones instantiated.
    let mut patterns: Vec<(Option<String>, Elem)> = Vec::new();
    for p in root.elems().filter(|e| e.is_sch("pattern")) {
        if p.attr("abstract") == Some("true") {
            continue;
        }
        let id = p.attr("id").map(str::to_string);
        match p.attr("is-a") {
            Some(is_a) => {
                let template = abstract_patterns.get(is_a).ok_or_else(|| {
                    CompileError::UnknownAbstractPattern {
                        pattern: id.clone().unwrap_or_default(),
                        is_a: is_a.to_string(),
                    }
                })?;
                let mut params: Vec<(String, String)> = p
                    .elems()
                    .filter(|e| e.is_sch("param"))
                    .filter_map(|e| {
                        Some((
                            e.attr("name")?.to_string(),
                            e.attr("value").unwrap_or("").to_string(),
                        ))
                    })
                    .collect();
                // Longest names first, so that `$elt_name` is never read as `$elt` + `_name`.
                params.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
                let mut inst = instantiate(template, &params);
                // The instance keeps its own identity.
                inst.attrs
                    .retain(|(ns, n, _)| !(ns.is_none() && (n == "id" || n == "abstract")));
                if let Some(id) = &id {
                    inst.attrs.push((None, "id".into(), id.clone()));
                }
                patterns.push((id, inst));
            }
            None => patterns.push((id, p.clone())),
        }
    }

    // Phase: the caller's, else the schema's default, else every pattern.
    let default_phase = root.attr("defaultPhase").filter(|p| !p.trim().is_empty());
    let requested = match options.phase.as_deref() {
        None | Some("#DEFAULT") => default_phase,
        Some(p) => Some(p),
    };
    let phases: Vec<&Elem> = root.elems().filter(|e| e.is_sch("phase")).collect();
    let (phase_name, phase_elem) = match requested {
        None | Some("#ALL") => ("#ALL".to_string(), None),
        Some(name) => {
            let found = phases
                .iter()
                .find(|ph| ph.attr("id") == Some(name))
                .ok_or_else(|| CompileError::UnknownPhase {
                    phase: name.to_string(),
                    available: phases
                        .iter()
                        .filter_map(|ph| ph.attr("id"))
                        .chain(std::iter::once("#ALL"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            (name.to_string(), Some(*found))
        }
    };
    let active: Option<Vec<&str>> = phase_elem.map(|ph| {
        ph.elems()
            .filter(|e| e.is_sch("active"))
            .filter_map(|e| e.attr("pattern"))
            .collect()
    });
    if let Some(active) = &active {
        for id in active {
            if !patterns.iter().any(|(pid, _)| pid.as_deref() == Some(*id)) {
                warnings.push(format!("phase {phase_name} activates pattern \"{id}\", which the schema does not define"));
            }
        }
    }
    let is_active = |id: &Option<String>| match (&active, id) {
        (None, _) => true,
        (Some(set), Some(id)) => set.contains(&id.as_str()),
        (Some(_), None) => false,
    };

    // Global variables: schema, phase, active patterns, then the other patterns (their values
    // are only computed if used, and ANS patterns rely on variables of one another).
    let mut globals: Vec<&Elem> = Vec::new();
    globals.extend(root.elems().filter(|e| e.is_sch("let")));
    if let Some(ph) = phase_elem {
        globals.extend(ph.elems().filter(|e| e.is_sch("let")));
    }
    for pass_active in [true, false] {
        for (id, p) in &patterns {
            if is_active(id) == pass_active {
                globals.extend(p.elems().filter(|e| e.is_sch("let")));
            }
        }
    }

    let diag_file = path.to_path_buf();
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<!-- Generated by relais-schematron from ");
    out.push_str(&esc_comment(
        &path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    ));
    out.push_str(". Do not edit. -->\n");
    out.push_str("<xsl:stylesheet version=\"3.0\"");
    out.push_str(&format!(
        " xmlns:xsl=\"{XSL_NS}\" xmlns:rsch=\"{RESULT_NS}\" xmlns:rschf=\"{FN_NS}\" xmlns:rscherr=\"{ERR_NS}\""
    ));
    for (prefix, uri) in &namespaces {
        out.push_str(&format!(" xmlns:{prefix}=\"{}\"", esc_attr(uri)));
    }
    out.push_str(" exclude-result-prefixes=\"#all\"");
    if let Some(base) = &options.base_uri {
        out.push_str(&format!(" xml:base=\"{}\"", esc_attr(base)));
    }
    out.push_str(">\n");
    out.push_str("<xsl:output method=\"xml\" encoding=\"UTF-8\" indent=\"no\"/>\n");
    out.push_str(PATH_FUNCTIONS);

    // Foreign XSLT declarations (xsl:key, xsl:function...) are copied as they are.
    for e in root.elems().filter(|e| e.ns.as_deref() == Some(XSL_NS)) {
        serialize(e, &mut out);
        out.push('\n');
    }

    let mut global_names = HashSet::new();
    for l in globals {
        let name = required(l, "name", &diag_file)?.trim();
        check_qname("variable", name)?;
        if !global_names.insert(name.to_string()) {
            warnings.push(format!(
                "variable ${name} is defined more than once; the first definition is used"
            ));
            continue;
        }
        write_let(l, name, &mut out);
    }

    check_extends_cycles(&abstract_rules)?;
    let mut g = Gen {
        abstract_rules: &abstract_rules,
        globals: &global_names,
        table: Table::default(),
        named: HashMap::new(),
        pending: Vec::new(),
        free_vars: HashMap::new(),
        file: &diag_file,
    };
    // Check 0 stands for errors raised by a rule's own variables.
    g.table.checks.push(Check {
        kind: CheckKind::Rule,
        test: String::new(),
        id: None,
        role: None,
        flag: None,
    });

    // Patterns.
    let mut modes = Vec::new();
    let mut pattern_ids = Vec::new();
    let mut rule_count = 0;
    let mut body = String::new();
    for (index, (id, p)) in patterns.iter().enumerate() {
        if !is_active(id) {
            continue;
        }
        let display = id
            .clone()
            .or_else(|| {
                p.elems()
                    .find(|e| e.is_sch("title"))
                    .map(|t| normalize_space(&t.text()))
                    .filter(|t| !t.is_empty())
            })
            .unwrap_or_else(|| format!("pattern-{}", index + 1));
        let rules: Vec<&Elem> = p
            .elems()
            .filter(|e| e.is_sch("rule") && e.attr("abstract") != Some("true"))
            .collect();
        pattern_ids.push(display.clone());
        if rules.is_empty() {
            continue;
        }
        let mode = format!("rsch-p{}", index + 1);
        let contexts: Vec<&str> = rules.iter().filter_map(|r| r.attr("context")).collect();
        let select = traversal(&contexts);
        let n = rules.len();
        for (j, rule) in rules.iter().enumerate() {
            let context = required(rule, "context", &diag_file)?;
            if context.trim().is_empty() {
                return Err(CompileError::MissingAttribute {
                    element: "rule".into(),
                    attribute: "context".into(),
                    file: diag_file.clone(),
                });
            }
            let site = g.table.sites.len();
            g.table.sites.push(Site {
                pattern: display.clone(),
                context: context.to_string(),
            });
            body.push_str(&format!(
                "<xsl:template match=\"{}\" priority=\"{}\" mode=\"{mode}\">\n",
                esc_attr(context),
                1000 + (n - j)
            ));
            g.rule_body(
                rule,
                &SiteRef::Literal(site),
                rule.attr("subject"),
                &mut body,
            )?;
            body.push_str(&format!(
                "<xsl:apply-templates select=\"{select}\" mode=\"{mode}\"/>\n</xsl:template>\n"
            ));
            rule_count += 1;
        }
        body.push_str(&format!(
            "<xsl:template match=\"/|*\" priority=\"-1000\" mode=\"{mode}\"><xsl:apply-templates select=\"{select}\" mode=\"{mode}\"/></xsl:template>\n\
             <xsl:template match=\"@*|text()|comment()|processing-instruction()\" priority=\"-1000\" mode=\"{mode}\"/>\n"
        ));
        modes.push(mode);
    }
    // Abstract rules that rules call rather than copy, each emitted once as a named template.
    while let Some((rule_id, template)) = g.pending.pop() {
        let ab = abstract_rules[&rule_id];
        body.push_str(&format!(
            "<xsl:template name=\"rsch:abstract-{template}\"><xsl:param name=\"rsch:site\"/>\n"
        ));
        g.rule_body(ab, &SiteRef::Param, None, &mut body)?;
        body.push_str("</xsl:template>\n");
    }

    out.push_str(&format!(
        "<xsl:template match=\"/\">\n<rsch:output schema=\"{}\" phase=\"{}\">\n",
        avt(&esc_attr(
            &path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
        avt(&esc_attr(&phase_name))
    ));
    for mode in &modes {
        out.push_str(&format!(
            "<xsl:apply-templates select=\"/\" mode=\"{mode}\"/>\n"
        ));
    }
    out.push_str("</rsch:output>\n</xsl:template>\n");
    out.push_str(&body);
    out.push_str("</xsl:stylesheet>\n");
    let mut table = g.table;
    table.missing = loaded
        .missing
        .iter()
        .map(|m| m.display().to_string())
        .collect();

    Ok(Compiled {
        xslt: out,
        digest: digest_of(loaded, options),
        files: loaded.files.clone(),
        missing: loaded.missing.clone(),
        phase: phase_name,
        patterns: pattern_ids,
        rules: rule_count,
        table,
        warnings,
    })
}

/// Location of a node as a readable XPath: element names with a position among same-named
/// siblings when there are several (like `relais_core::xml::path_of`), `@name` for attributes.
const PATH_FUNCTIONS: &str = r#"<xsl:function name="rschf:step">
<xsl:param name="a"/>
<xsl:sequence select="if ($a instance of element()) then concat('/', name($a), if (count($a/../*[node-name(.) eq node-name($a)]) gt 1) then concat('[', count($a/preceding-sibling::*[node-name(.) eq node-name($a)]) + 1, ']') else '') else if ($a instance of attribute()) then concat('/@', name($a)) else if ($a instance of text()) then concat('/text()[', count($a/preceding-sibling::text()) + 1, ']') else if ($a instance of comment()) then '/comment()' else if ($a instance of processing-instruction()) then concat('/processing-instruction(', name($a), ')') else ''"/>
</xsl:function>
<xsl:function name="rschf:path">
<xsl:param name="n"/>
<xsl:sequence select="if (empty($n) or not($n[1] instance of node())) then '' else if ($n[1] instance of document-node()) then '/' else string-join(for $a in $n[1]/ancestor-or-self::node()[not(. instance of document-node())] return rschf:step($a), '')"/>
</xsl:function>
"#;

/// Pattern and rule context of the rule a check ran in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub pattern: String,
    pub context: String,
}

/// What a check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Assert,
    Report,
    /// Not a check: the rule's own variables (used for errors raised while computing them).
    Rule,
}

/// One `<assert>` or `<report>` of the schema (those of a called abstract rule appear once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    pub test: String,
    pub id: Option<String>,
    pub role: Option<String>,
    pub flag: Option<String>,
}

/// The static facts of the results: a result element carries only a site number `s` and a
/// check number `c` (and `e="1"` when evaluating the check failed), which keeps the stylesheet
/// small (Art-Decor contexts are long, and repeated in every check) and so quick to compile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub sites: Vec<Site>,
    pub checks: Vec<Check>,
    /// Included files that were missing at compile time.
    pub missing: Vec<String>,
}

const TABLE_HEADER: &str = "relais-schematron-table 1";
const NONE: &str = "\\0";

impl Table {
    /// One line per entry, fields escaped like the worker protocol.
    pub fn to_text(&self) -> String {
        use crate::engine::escape;
        let mut out = format!("{TABLE_HEADER}\n");
        for m in &self.missing {
            out.push_str(&format!("M\t{}\n", escape(m)));
        }
        for s in &self.sites {
            out.push_str(&format!(
                "S\t{}\t{}\n",
                escape(&s.pattern),
                escape(&s.context)
            ));
        }
        let opt = |o: &Option<String>| o.as_deref().map(escape).unwrap_or_else(|| NONE.into());
        for c in &self.checks {
            let kind = match c.kind {
                CheckKind::Assert => "assert",
                CheckKind::Report => "report",
                CheckKind::Rule => "rule",
            };
            out.push_str(&format!(
                "C\t{kind}\t{}\t{}\t{}\t{}\n",
                escape(&c.test),
                opt(&c.id),
                opt(&c.role),
                opt(&c.flag)
            ));
        }
        out
    }

    /// Inverse of [`Table::to_text`]; `None` when the text is not a table.
    pub fn from_text(text: &str) -> Option<Table> {
        use crate::engine::unescape;
        let mut lines = text.lines();
        if lines.next()? != TABLE_HEADER {
            return None;
        }
        let opt = |s: &str| if s == NONE { None } else { Some(unescape(s)) };
        let mut t = Table::default();
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["M", m] => t.missing.push(unescape(m)),
                ["S", p, c] => t.sites.push(Site {
                    pattern: unescape(p),
                    context: unescape(c),
                }),
                ["C", kind, test, id, role, flag] => t.checks.push(Check {
                    kind: match *kind {
                        "assert" => CheckKind::Assert,
                        "report" => CheckKind::Report,
                        "rule" => CheckKind::Rule,
                        _ => return None,
                    },
                    test: unescape(test),
                    id: opt(id),
                    role: opt(role),
                    flag: opt(flag),
                }),
                _ => return None,
            }
        }
        Some(t)
    }
}

/// How a generated check names its site: a number, or the `$rsch:site` parameter of the named
/// template of an abstract rule.
enum SiteRef {
    Literal(usize),
    Param,
}

impl SiteRef {
    fn avt(&self) -> String {
        match self {
            SiteRef::Literal(n) => n.to_string(),
            SiteRef::Param => "{$rsch:site}".to_string(),
        }
    }
    fn xpath(&self) -> String {
        match self {
            SiteRef::Literal(n) => n.to_string(),
            SiteRef::Param => "$rsch:site".to_string(),
        }
    }
}

/// State of the rule code generation.
struct Gen<'a> {
    abstract_rules: &'a HashMap<String, &'a Elem>,
    globals: &'a HashSet<String>,
    table: Table,
    /// Abstract rule id → number of its named template.
    named: HashMap<String, usize>,
    /// Named templates still to emit.
    pending: Vec<(String, usize)>,
    /// Abstract rule id → (variables it uses but does not define, variables it defines).
    free_vars: HashMap<String, (HashSet<String>, HashSet<String>)>,
    file: &'a Path,
}

impl Gen<'_> {
    /// The body of a rule, its checks each in their own `xsl:try` and the whole in another
    /// (for errors in its variables), `<extends>` inlined or called.
    fn rule_body(
        &mut self,
        rule: &Elem,
        site: &SiteRef,
        subject: Option<&str>,
        out: &mut String,
    ) -> Result<(), CompileError> {
        out.push_str("<xsl:try>\n");
        self.items(rule, site, subject, &mut Vec::new(), out)?;
        out.push_str("<xsl:catch>");
        write_error(site, 0, out);
        out.push_str("</xsl:catch></xsl:try>\n");
        Ok(())
    }

    fn items(
        &mut self,
        rule: &Elem,
        site: &SiteRef,
        subject: Option<&str>,
        stack: &mut Vec<String>,
        out: &mut String,
    ) -> Result<(), CompileError> {
        for child in rule.elems() {
            if child.is_sch("let") {
                // XSLT strips the whitespace around names; some ANS names end with a space.
                let name = required(child, "name", self.file)?.trim();
                check_qname("variable", name)?;
                write_let(child, name, out);
            } else if child.is_sch("assert") || child.is_sch("report") {
                let is_assert = child.is_sch("assert");
                let test = required(child, "test", self.file)?;
                let check = self.check_index(child, is_assert, test);
                out.push_str("<xsl:try>");
                write_check(child, is_assert, test, site, check, subject, out, self.file)?;
                out.push_str("<xsl:catch>");
                write_error(site, check, out);
                out.push_str("</xsl:catch></xsl:try>\n");
            } else if child.is_sch("extends") {
                let Some(target) = child.attr("rule") else {
                    continue; // `<extends href>` was expanded by the loader
                };
                let ab = *self.abstract_rules.get(target).ok_or_else(|| {
                    CompileError::UnknownAbstractRule {
                        rule: target.to_string(),
                    }
                })?;
                if stack.iter().any(|s| s == target) {
                    return Err(CompileError::ExtendsCycle {
                        rule: target.to_string(),
                    });
                }
                if subject.is_none() && stack.is_empty() && self.callable(rule, target) {
                    let next = self.named.len();
                    let n = *self.named.entry(target.to_string()).or_insert(next);
                    if n == next {
                        self.pending.push((target.to_string(), n));
                    }
                    out.push_str(&format!(
                        "<xsl:call-template name=\"rsch:abstract-{n}\"><xsl:with-param name=\"rsch:site\" select=\"{}\"/></xsl:call-template>\n",
                        site.xpath()
                    ));
                } else {
                    stack.push(target.to_string());
                    self.items(ab, site, subject, stack, out)?;
                    stack.pop();
                }
            } else if child.ns.as_deref() == Some(XSL_NS) {
                serialize(child, out);
                out.push('\n');
            }
        }
        Ok(())
    }

    fn check_index(&mut self, c: &Elem, is_assert: bool, test: &str) -> usize {
        self.table.checks.push(Check {
            kind: if is_assert {
                CheckKind::Assert
            } else {
                CheckKind::Report
            },
            test: test.to_string(),
            id: c.attr("id").map(str::to_string),
            role: c.attr("role").map(str::to_string),
            flag: c.attr("flag").map(str::to_string),
        });
        self.table.checks.len() - 1
    }

    /// An abstract rule can run as a named template (instead of being copied into `caller`)
    /// when it needs no variable of the caller and the caller needs none of its variables.
    /// Only decided for an `<extends>` written directly in the rule being generated (not in an
    /// abstract rule already being copied, whose surroundings are harder to reason about).
    fn callable(&mut self, caller: &Elem, target: &str) -> bool {
        let (free, defined) = self.vars_of(target);
        // It reads only global variables, none of them shadowed by a variable of the caller...
        if !free.iter().all(|v| self.globals.contains(v)) {
            return false;
        }
        let caller_lets: HashSet<String> = caller
            .elems()
            .filter(|c| c.is_sch("let"))
            .filter_map(|c| c.attr("name").map(|n| n.trim().to_string()))
            .collect();
        if !free.is_disjoint(&caller_lets) {
            return false;
        }
        // ...and the caller reads none of its variables.
        let mut caller_refs = HashSet::new();
        own_refs(caller, &mut caller_refs);
        caller_refs.is_disjoint(&defined)
    }

    fn vars_of(&mut self, id: &str) -> (HashSet<String>, HashSet<String>) {
        if let Some(v) = self.free_vars.get(id) {
            return v.clone();
        }
        let mut refs = HashSet::new();
        let mut defs = HashSet::new();
        let mut seen = HashSet::new();
        collect_vars(id, self.abstract_rules, &mut refs, &mut defs, &mut seen);
        let free: HashSet<String> = refs.difference(&defs).cloned().collect();
        let v = (free, defs);
        self.free_vars.insert(id.to_string(), v.clone());
        v
    }
}

/// Variables referenced and defined by an abstract rule and the rules it extends.
fn collect_vars(
    id: &str,
    rules: &HashMap<String, &Elem>,
    refs: &mut HashSet<String>,
    defs: &mut HashSet<String>,
    seen: &mut HashSet<String>,
) {
    if !seen.insert(id.to_string()) {
        return;
    }
    let Some(rule) = rules.get(id) else { return };
    own_refs(rule, refs);
    for c in rule.elems() {
        if c.is_sch("let") {
            if let Some(n) = c.attr("name") {
                defs.insert(n.trim().to_string());
            }
        } else if c.is_sch("extends")
            && let Some(t) = c.attr("rule")
        {
            collect_vars(t, rules, refs, defs, seen);
        }
    }
}

/// `$name` references in every attribute of a rule's own content (not of what it extends).
/// Over-approximates (a `$` in a string literal counts), which only ever leads to inlining.
fn own_refs(rule: &Elem, refs: &mut HashSet<String>) {
    if let Some(s) = rule.attr("subject") {
        var_refs(s, refs);
    }
    for c in rule.elems() {
        if c.is_sch("extends") {
            continue;
        }
        for e in c.descendants() {
            for (_, _, v) in &e.attrs {
                var_refs(v, refs);
            }
        }
    }
}

/// Variables an XPath expression refers to, leaving out those it binds itself (`for $x in`,
/// `some $x in`, `every $x in`, `let $x :=`), whose scope ends with the expression.
fn var_refs(expr: &str, refs: &mut HashSet<String>) {
    let mut found = Vec::new();
    let mut bound = HashSet::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        rest = &rest[pos + 1..];
        let after = rest.trim_start();
        let name: String = after
            .chars()
            .take_while(|c| is_name_char(*c) || *c == ':')
            .collect();
        let name = name.trim_end_matches(':').to_string();
        if name.is_empty() {
            continue;
        }
        let tail = after[name.len()..].trim_start();
        let binds = tail.starts_with(":=")
            || (tail.starts_with("in") && !tail[2..].chars().next().is_some_and(is_name_char));
        if binds {
            bound.insert(name);
        } else {
            found.push(name);
        }
    }
    refs.extend(found.into_iter().filter(|n| !bound.contains(n)));
}

/// Refuse `extends` cycles among abstract rules up front (named templates would recurse forever).
fn check_extends_cycles(rules: &HashMap<String, &Elem>) -> Result<(), CompileError> {
    fn visit<'a>(
        id: &str,
        rules: &'a HashMap<String, &Elem>,
        path: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Result<(), CompileError> {
        let Some((key, rule)) = rules.get_key_value(id) else {
            return Ok(()); // reported where it is used
        };
        if done.contains(key.as_str()) {
            return Ok(());
        }
        if path.contains(&key.as_str()) || path.len() > 256 {
            return Err(CompileError::ExtendsCycle {
                rule: id.to_string(),
            });
        }
        path.push(key.as_str());
        for c in rule.elems() {
            if c.is_sch("extends")
                && let Some(t) = c.attr("rule")
            {
                visit(t, rules, path, done)?;
            }
        }
        path.pop();
        done.insert(key.as_str());
        Ok(())
    }
    let mut done = HashSet::new();
    for id in rules.keys() {
        visit(id, rules, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_check(
    c: &Elem,
    is_assert: bool,
    test: &str,
    site: &SiteRef,
    check: usize,
    rule_subject: Option<&str>,
    out: &mut String,
    file: &Path,
) -> Result<(), CompileError> {
    if is_assert {
        out.push_str(&format!(
            "<xsl:choose><xsl:when test=\"{}\"/><xsl:otherwise>",
            esc_attr(test)
        ));
    } else {
        out.push_str(&format!("<xsl:if test=\"{}\">", esc_attr(test)));
    }
    out.push_str(&format!("<rsch:r s=\"{}\" c=\"{check}\">", site.avt()));
    let location = match c.attr("subject").or(rule_subject) {
        Some(s) if !s.trim().is_empty() => format!("rschf:path(({s}))"),
        _ => "rschf:path(.)".to_string(),
    };
    out.push_str(&format!(
        "<xsl:attribute name=\"l\" select=\"{}\"/>",
        esc_attr(&location)
    ));
    write_message(c, out, file)?;
    out.push_str("</rsch:r>");
    out.push_str(if is_assert {
        "</xsl:otherwise></xsl:choose>"
    } else {
        "</xsl:if>"
    });
    Ok(())
}

/// The result written when evaluating a check (or the variables of its rule) raised an error.
fn write_error(site: &SiteRef, check: usize, out: &mut String) {
    out.push_str(&format!(
        "<rsch:r s=\"{}\" c=\"{check}\" e=\"1\"><xsl:attribute name=\"l\" select=\"rschf:path(.)\"/>\
         <xsl:value-of select=\"concat(local-name-from-QName($rscherr:code), ': ', $rscherr:description)\"/></rsch:r>",
        site.avt()
    ));
}

/// The message of an assert/report: text, `<value-of>`, `<name>`, and the inline markup
/// (`<emph>`, `<dir>`, `<span>`) reduced to its text.
fn write_message(e: &Elem, out: &mut String, file: &Path) -> Result<(), CompileError> {
    for child in &e.children {
        match child {
            Node::Text(t) => {
                out.push_str("<xsl:text>");
                out.push_str(&esc_text(t));
                out.push_str("</xsl:text>");
            }
            Node::Elem(c) if c.is_sch("value-of") => {
                let select = required(c, "select", file)?;
                out.push_str(&format!("<xsl:value-of select=\"{}\"/>", esc_attr(select)));
            }
            Node::Elem(c) if c.is_sch("name") => {
                let path = c
                    .attr("path")
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or(".");
                out.push_str(&format!(
                    "<xsl:value-of select=\"name(({}))\"/>",
                    esc_attr(path)
                ));
            }
            Node::Elem(c) if c.ns.as_deref() == Some(XSL_NS) => serialize(c, out),
            Node::Elem(c) => write_message(c, out, file)?,
        }
    }
    Ok(())
}

fn write_let(l: &Elem, name: &str, out: &mut String) {
    match l.attr("value") {
        Some(v) => out.push_str(&format!(
            "<xsl:variable name=\"{}\" select=\"{}\"/>\n",
            esc_attr(name),
            esc_attr(v)
        )),
        None => {
            out.push_str(&format!("<xsl:variable name=\"{}\">", esc_attr(name)));
            for c in &l.children {
                match c {
                    Node::Text(t) => out.push_str(&esc_text(t)),
                    Node::Elem(e) => serialize(e, out),
                }
            }
            out.push_str("</xsl:variable>\n");
        }
    }
}

/// Which nodes a pattern's walk must visit: attributes and text only when a rule can match them.
fn traversal(contexts: &[&str]) -> &'static str {
    let attrs = contexts.iter().any(|c| {
        c.contains('@') || c.contains("attribute") || c.contains("key(") || c.contains('$')
    });
    let nodes = contexts.iter().any(|c| {
        c.contains("text()")
            || c.contains("node()")
            || c.contains("comment()")
            || c.contains("processing-instruction")
    });
    match (attrs, nodes) {
        (true, true) => "@*|node()",
        (false, true) => "node()",
        (true, false) => "@*|*",
        (false, false) => "*",
    }
}

/// Prefix → URI bindings for the stylesheet: the `<ns>` declarations, then (leniently) the
/// namespaces declared in the schema files themselves for prefixes `<ns>` forgot.
fn namespace_bindings(
    root: &Elem,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, String)>, CompileError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for ns in root.elems().filter(|e| e.is_sch("ns")) {
        let (Some(prefix), Some(uri)) = (ns.attr("prefix"), ns.attr("uri")) else {
            warnings.push("<ns> without prefix or uri ignored".into());
            continue;
        };
        bind(&mut out, prefix, uri, true, warnings)?;
    }
    for e in root.descendants() {
        for (prefix, uri) in &e.declared {
            if let Some(prefix) = prefix {
                bind(&mut out, prefix, uri, false, warnings)?;
            }
        }
    }
    Ok(out)
}

fn bind(
    out: &mut Vec<(String, String)>,
    prefix: &str,
    uri: &str,
    explicit: bool,
    warnings: &mut Vec<String>,
) -> Result<(), CompileError> {
    if prefix == "xml" || prefix == "xmlns" {
        return Ok(()); // predeclared
    }
    if prefix == "xsl" && uri == XSL_NS {
        return Ok(());
    }
    if RESERVED.contains(&prefix) {
        if explicit {
            return Err(CompileError::ReservedPrefix {
                prefix: prefix.into(),
            });
        }
        return Ok(());
    }
    if !is_ncname(prefix) {
        if explicit {
            return Err(CompileError::InvalidName {
                what: "namespace prefix",
                name: prefix.into(),
            });
        }
        return Ok(());
    }
    if uri.is_empty() {
        return Ok(());
    }
    match out.iter().find(|(p, _)| p == prefix) {
        Some((_, existing)) if existing != uri => {
            if explicit {
                warnings.push(format!(
                    "prefix {prefix} bound twice by <ns> ({existing} and {uri}); the first is used"
                ));
            }
        }
        Some(_) => {}
        None => {
            if !explicit && uri == SCH_NS {
                return Ok(()); // the schema's own namespace is of no use in rules
            }
            out.push((prefix.into(), uri.into()));
        }
    }
    Ok(())
}

/// Replace `$name` by the parameter's value in every attribute and text of an abstract pattern.
fn instantiate(e: &Elem, params: &[(String, String)]) -> Elem {
    Elem {
        ns: e.ns.clone(),
        prefix: e.prefix.clone(),
        name: e.name.clone(),
        attrs: e
            .attrs
            .iter()
            .map(|(ns, n, v)| (ns.clone(), n.clone(), substitute(v, params)))
            .collect(),
        children: e
            .children
            .iter()
            .map(|c| match c {
                Node::Text(t) => Node::Text(substitute(t, params)),
                Node::Elem(c) => Node::Elem(instantiate(c, params)),
            })
            .collect(),
        declared: e.declared.clone(),
    }
}

/// One left-to-right pass: at each `$`, the longest parameter name that ends on a name boundary
/// is replaced; replacement text is not scanned again.
pub(crate) fn substitute(s: &str, params: &[(String, String)]) -> String {
    if params.is_empty() || !s.contains('$') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let hit = params.iter().find(|(name, _)| {
            after.starts_with(name.as_str())
                && !after[name.len()..].chars().next().is_some_and(is_name_char)
        });
        match hit {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_numeric() || c == '-' || c == '.' || c == '\u{B7}'
}

fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

fn check_qname(what: &'static str, name: &str) -> Result<(), CompileError> {
    let ok = match name.split_once(':') {
        Some((p, l)) => is_ncname(p) && is_ncname(l),
        None => is_ncname(name),
    };
    if ok {
        Ok(())
    } else {
        Err(CompileError::InvalidName {
            what,
            name: name.into(),
        })
    }
}

fn required<'e>(e: &'e Elem, attr: &str, file: &Path) -> Result<&'e str, CompileError> {
    e.attr(attr).ok_or_else(|| CompileError::MissingAttribute {
        element: e.name.clone(),
        attribute: attr.to_string(),
        file: file.to_path_buf(),
    })
}

/// Copy a foreign element (an `xsl:` declaration) into the stylesheet.
fn serialize(e: &Elem, out: &mut String) {
    let tag = match &e.prefix {
        Some(p) => format!("{p}:{}", e.name),
        None => e.name.clone(),
    };
    out.push('<');
    out.push_str(&tag);
    let mut declared: Vec<(Option<String>, String)> = Vec::new();
    match (&e.prefix, &e.ns) {
        (Some(p), Some(ns)) => declared.push((Some(p.clone()), ns.clone())),
        (None, Some(ns)) => declared.push((None, ns.clone())),
        (None, None) => declared.push((None, String::new())),
        (Some(_), None) => {}
    }
    for d in &e.declared {
        if !declared.iter().any(|(p, _)| *p == d.0) {
            declared.push(d.clone());
        }
    }
    for (p, uri) in &declared {
        if p.as_deref() == Some("xml") {
            continue;
        }
        match p {
            Some(p) => out.push_str(&format!(" xmlns:{p}=\"{}\"", esc_attr(uri))),
            None => out.push_str(&format!(" xmlns=\"{}\"", esc_attr(uri))),
        }
    }
    for (i, (ns, name, value)) in e.attrs.iter().enumerate() {
        match ns {
            None => out.push_str(&format!(" {name}=\"{}\"", esc_attr(value))),
            Some(ns) if ns == "http://www.w3.org/XML/1998/namespace" => {
                out.push_str(&format!(" xml:{name}=\"{}\"", esc_attr(value)))
            }
            Some(ns) => out.push_str(&format!(
                " xmlns:rscha{i}=\"{}\" rscha{i}:{name}=\"{}\"",
                esc_attr(ns),
                esc_attr(value)
            )),
        }
    }
    out.push('>');
    for c in &e.children {
        match c {
            Node::Text(t) => out.push_str(&esc_text(t)),
            Node::Elem(c) => serialize(c, out),
        }
    }
    out.push_str("</");
    out.push_str(&tag);
    out.push('>');
}

/// Escape for an XML attribute value, keeping whitespace characters exact.
pub(crate) fn esc_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

fn esc_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

fn esc_comment(s: &str) -> String {
    s.replace("--", "- -")
}

/// Double braces: literal result attributes are attribute value templates.
fn avt(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

/// XPath `normalize-space`: trim and collapse whitespace runs to one space.
pub fn normalize_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `file://` URI of an absolute path, percent-encoding what URIs do not allow.
pub fn file_uri(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::from("file://");
    if !s.starts_with('/') {
        out.push('/');
    }
    for b in s.as_bytes() {
        let c = *b as char;
        if c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = list
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        v
    }

    #[test]
    fn substitution_prefers_longest_name() {
        let p = params(&[("elt", "A"), ("elt_name", "B")]);
        assert_eq!(substitute("$elt/$elt_name and $elt", &p), "A/B and A");
    }

    #[test]
    fn substitution_respects_name_boundaries() {
        let p = params(&[("elt", "A")]);
        // `$elt-x` and `$eltx` are other variables.
        assert_eq!(
            substitute("$elt-x $eltx $elt[1] $elt", &p),
            "$elt-x $eltx A[1] A"
        );
        // Replacement text is not rescanned.
        let p = params(&[("a", "$b"), ("b", "X")]);
        assert_eq!(substitute("$a $b", &p), "$b X");
        // Lone dollar signs survive.
        assert_eq!(substitute("cost $ and $", &p), "cost $ and $");
    }

    #[test]
    fn variable_references() {
        let mut r = HashSet::new();
        var_refs("every $e in $set satisfies $e/@x = $ code and $a:b", &mut r);
        let mut got: Vec<_> = r.into_iter().collect();
        got.sort();
        assert_eq!(got, ["a:b", "code", "set"]);
        let mut r = HashSet::new();
        var_refs("matches(@v, '^[a-z]+$') and $x-y", &mut r);
        assert_eq!(r.into_iter().collect::<Vec<_>>(), ["x-y"]);
    }

    #[test]
    fn qnames() {
        assert!(check_qname("variable", "JDV_ModaliteEntree_LDL-SES").is_ok());
        assert!(check_qname("variable", "a:b").is_ok());
        assert!(check_qname("variable", "1a").is_err());
        assert!(check_qname("variable", "a\"b").is_err());
        assert!(check_qname("variable", "").is_err());
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(file_uri(Path::new("/a b/c%.sch")), "file:///a%20b/c%25.sch");
        assert_eq!(file_uri(Path::new("/é")), "file:///%C3%A9");
    }

    #[test]
    fn traversal_visits_attributes_only_when_needed() {
        assert_eq!(traversal(&["cda:section"]), "*");
        assert_eq!(traversal(&["cda:section[@x]"]), "@*|*");
        assert_eq!(traversal(&["text()"]), "node()");
    }
}
