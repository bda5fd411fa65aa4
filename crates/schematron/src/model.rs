//! An owned XML tree of a Schematron schema with its `<include>`s expanded.
//!
//! The ANS schematrons are spread over hundreds of files (a schema includes patterns, a pattern
//! may include abstract rules); the compiler wants one tree. Files are parsed with
//! [`relais_core::xml::parse`] (no DTD, bounded size) and copied into [`Elem`]s so that the
//! expanded tree outlives the individual parsed texts.

use crate::error::CompileError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The ISO Schematron namespace.
pub const SCH_NS: &str = "http://purl.oclc.org/dsdl/schematron";
/// The pre-ISO Schematron 1.5 namespace, accepted as a synonym.
pub const SCH15_NS: &str = "http://www.ascc.net/xml/schematron";
/// The XSLT namespace (foreign `xsl:` elements are copied into the stylesheet).
pub const XSL_NS: &str = "http://www.w3.org/1999/XSL/Transform";

/// Deepest nesting of includes accepted (the ANS files nest three levels).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Most files one schema may pull in (the biggest ANS schema reads about 150).
const MAX_FILES: usize = 20_000;
/// Most elements in one expanded schema.
const MAX_ELEMENTS: usize = 5_000_000;
/// Deepest element nesting accepted in one file (Schematron needs about ten; the bound keeps
/// the recursive walks of the compiler within the stack on hostile input).
const MAX_DEPTH: usize = 256;

/// One node of the owned tree.
#[derive(Debug, Clone)]
pub enum Node {
    Elem(Elem),
    Text(String),
}

/// An element: namespace, name, attributes (unqualified ones only matter to Schematron), children.
#[derive(Debug, Clone)]
pub struct Elem {
    pub ns: Option<String>,
    pub prefix: Option<String>,
    pub name: String,
    /// `(namespace, local name, value)`.
    pub attrs: Vec<(Option<String>, String, String)>,
    pub children: Vec<Node>,
    /// Namespaces declared on this element in the source (prefix, uri), for copying foreign
    /// elements faithfully and as a fallback binding of prefixes the schema forgot to `<ns>`.
    pub declared: Vec<(Option<String>, String)>,
}

impl Elem {
    /// True for a Schematron element of this local name.
    pub fn is_sch(&self, name: &str) -> bool {
        self.name == name && is_sch_ns(self.ns.as_deref())
    }

    /// An unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, n, _)| ns.is_none() && n == name)
            .map(|(_, _, v)| v.as_str())
    }

    /// Child elements.
    pub fn elems(&self) -> impl Iterator<Item = &Elem> {
        self.children.iter().filter_map(|c| match c {
            Node::Elem(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Concatenated text of the subtree.
    pub fn text(&self) -> String {
        let mut out = String::new();
        fn walk(e: &Elem, out: &mut String) {
            for c in &e.children {
                match c {
                    Node::Text(t) => out.push_str(t),
                    Node::Elem(e) => walk(e, out),
                }
            }
        }
        walk(self, &mut out);
        out
    }

    /// Every element of the subtree, this one first, in document order.
    pub fn descendants(&self) -> Vec<&Elem> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            out.push(e);
            let kids: Vec<&Elem> = e.elems().collect();
            stack.extend(kids.into_iter().rev());
        }
        out
    }
}

/// True for the ISO (or 1.5) Schematron namespace.
pub fn is_sch_ns(ns: Option<&str>) -> bool {
    matches!(ns, Some(SCH_NS) | Some(SCH15_NS))
}

/// A schema loaded with its includes expanded, plus the identity of every file read.
#[derive(Debug)]
pub struct Loaded {
    pub root: Elem,
    /// Files read, in reading order (the main file first).
    pub files: Vec<PathBuf>,
    /// Included files that do not exist: skipped, so the rest of the schema still runs (the
    /// engine reports each one with every validation).
    pub missing: Vec<PathBuf>,
    /// SHA-256 over the paths and contents of every file read.
    pub digest: [u8; 32],
}

/// Where the loader gets the text of a file.
pub trait Source {
    /// The bytes of `path`, and the path they were actually read from.
    fn read(&mut self, path: &Path) -> Result<(PathBuf, Vec<u8>), CompileError>;
}

/// Reads from the file system. A path that does not exist as written is looked up again
/// ignoring case, component by component: the ANS files were written on case-insensitive
/// file systems and some includes spell a folder `entrees` that is `Entrees` on disk.
pub struct FileSource;

impl Source for FileSource {
    fn read(&mut self, path: &Path) -> Result<(PathBuf, Vec<u8>), CompileError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok((path.to_path_buf(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match find_ignoring_case(path) {
                Some(found) => std::fs::read(&found)
                    .map(|bytes| (found.clone(), bytes))
                    .map_err(|source| CompileError::Read {
                        path: found,
                        source,
                    }),
                None => Err(CompileError::Read {
                    path: path.to_path_buf(),
                    source: e,
                }),
            },
            Err(source) => Err(CompileError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// The existing file whose path equals `path` ignoring case, when there is exactly one way.
fn find_ignoring_case(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut current = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => {
                let exact = current.join(name);
                if exact.exists() {
                    current = exact;
                    continue;
                }
                let wanted = name.to_string_lossy().to_lowercase();
                let dir = if current.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    &current
                };
                let mut matches = std::fs::read_dir(dir)
                    .ok()?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().to_lowercase() == wanted);
                let first = matches.next()?;
                if matches.next().is_some() {
                    return None; // ambiguous
                }
                current = current.join(first.file_name());
            }
            other => current.push(other.as_os_str()),
        }
    }
    current.is_file().then_some(current)
}

/// Refuses every include: used for schemas given as bytes (fuzzing, tests).
pub struct NoIncludes;

impl Source for NoIncludes {
    fn read(&mut self, path: &Path) -> Result<(PathBuf, Vec<u8>), CompileError> {
        Err(CompileError::IncludeUnavailable {
            href: path.display().to_string(),
        })
    }
}

/// Load `path` and expand its includes.
pub fn load(path: &Path, source: &mut dyn Source) -> Result<Loaded, CompileError> {
    let (path, bytes) = source.read(path)?;
    load_bytes(&path, &bytes, source)
}

/// Load a schema given as bytes, as if read from `path` (includes resolve against it).
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    source: &mut dyn Source,
) -> Result<Loaded, CompileError> {
    let mut loader = Loader {
        source,
        stack: Vec::new(),
        files: Vec::new(),
        missing: Vec::new(),
        hasher: Sha256::new(),
        elements: 0,
    };
    let root = loader.file(path, bytes, None)?;
    Ok(Loaded {
        root,
        files: loader.files,
        missing: loader.missing,
        digest: loader.hasher.finalize().into(),
    })
}

struct Loader<'s> {
    source: &'s mut dyn Source,
    stack: Vec<PathBuf>,
    files: Vec<PathBuf>,
    missing: Vec<PathBuf>,
    hasher: Sha256,
    elements: usize,
}

impl Loader<'_> {
    /// Parse one file and convert its root element (or the element of id `fragment`).
    fn file(
        &mut self,
        path: &Path,
        bytes: &[u8],
        fragment: Option<&str>,
    ) -> Result<Elem, CompileError> {
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(CompileError::IncludeTooDeep {
                path: path.to_path_buf(),
                limit: MAX_INCLUDE_DEPTH,
            });
        }
        if self.stack.iter().any(|p| p == path) {
            return Err(CompileError::IncludeCycle {
                path: path.to_path_buf(),
            });
        }
        if self.files.len() >= MAX_FILES {
            return Err(CompileError::TooLarge {
                what: format!("more than {MAX_FILES} included files"),
            });
        }
        self.files.push(path.to_path_buf());
        let p = path.to_string_lossy();
        self.hasher.update((p.len() as u64).to_le_bytes());
        self.hasher.update(p.as_bytes());
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);

        let text = relais_core::xml::decode(bytes).map_err(|source| CompileError::Xml {
            path: path.to_path_buf(),
            source,
        })?;
        let doc =
            relais_core::xml::parse(&text, &relais_core::Limits::default()).map_err(|source| {
                CompileError::Xml {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let start = match fragment {
            None => doc.root_element(),
            Some(id) => doc
                .descendants()
                .find(|n| n.is_element() && n.attribute("id") == Some(id))
                .ok_or_else(|| CompileError::FragmentNotFound {
                    path: path.to_path_buf(),
                    id: id.to_string(),
                })?,
        };
        self.stack.push(path.to_path_buf());
        let result = self.convert(start, path, true, 0);
        self.stack.pop();
        result
    }

    fn convert(
        &mut self,
        node: roxmltree::Node<'_, '_>,
        file: &Path,
        is_root: bool,
        depth: usize,
    ) -> Result<Elem, CompileError> {
        if depth > MAX_DEPTH {
            return Err(CompileError::TooLarge {
                what: format!(
                    "elements nested deeper than {MAX_DEPTH} levels in {}",
                    file.display()
                ),
            });
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(CompileError::TooLarge {
                what: format!("more than {MAX_ELEMENTS} elements"),
            });
        }
        let tag = node.tag_name();
        let declared: Vec<(Option<String>, String)> = if is_root {
            // The root of a file carries every namespace in scope there.
            node.namespaces()
                .map(|ns| (ns.name().map(str::to_string), ns.uri().to_string()))
                .collect()
        } else {
            let parent_ns: Vec<_> = node
                .parent()
                .map(|p| p.namespaces().collect())
                .unwrap_or_default();
            node.namespaces()
                .filter(|ns| {
                    !parent_ns
                        .iter()
                        .any(|p| p.name() == ns.name() && p.uri() == ns.uri())
                })
                .map(|ns| (ns.name().map(str::to_string), ns.uri().to_string()))
                .collect()
        };
        let prefix = tag
            .namespace()
            .and_then(|uri| node.lookup_prefix(uri))
            .map(str::to_string);
        let mut elem = Elem {
            ns: tag.namespace().map(str::to_string),
            prefix,
            name: tag.name().to_string(),
            attrs: node
                .attributes()
                .map(|a| {
                    (
                        a.namespace().map(str::to_string),
                        a.name().to_string(),
                        a.value().to_string(),
                    )
                })
                .collect(),
            children: Vec::new(),
            declared,
        };
        for child in node.children() {
            if child.is_text() {
                if let Some(t) = child.text() {
                    elem.children.push(Node::Text(t.to_string()));
                }
                continue;
            }
            if !child.is_element() {
                continue;
            }
            let ctag = child.tag_name();
            let is_include = is_sch_ns(ctag.namespace()) && ctag.name() == "include";
            let is_extends_href = is_sch_ns(ctag.namespace())
                && ctag.name() == "extends"
                && child.attribute("href").is_some();
            if is_include || is_extends_href {
                let href =
                    child
                        .attribute("href")
                        .ok_or_else(|| CompileError::MissingAttribute {
                            element: "include".into(),
                            attribute: "href".into(),
                            file: file.to_path_buf(),
                        })?;
                let Some(included) = self.include(file, href)? else {
                    continue;
                };
                // `<extends href>` (Schematron 2016) and an included `<schema>` wrapper both
                // contribute their children; a plain include contributes the element itself.
                if is_extends_href || included.is_sch("schema") {
                    elem.children.extend(included.children);
                } else {
                    elem.children.push(Node::Elem(included));
                }
            } else {
                let converted = self.convert(child, file, false, depth + 1)?;
                elem.children.push(Node::Elem(converted));
            }
        }
        Ok(elem)
    }

    /// The included element, or `None` when the file does not exist (recorded as missing).
    fn include(&mut self, from: &Path, href: &str) -> Result<Option<Elem>, CompileError> {
        let (file_part, fragment) = match href.split_once('#') {
            Some((f, frag)) => (f, Some(frag)),
            None => (href, None),
        };
        if file_part.is_empty() {
            return Err(CompileError::IncludeUnavailable {
                href: href.to_string(),
            });
        }
        let decoded = percent_decode(file_part);
        let rel = decoded.strip_prefix("file://").unwrap_or(&decoded);
        let base = from.parent().unwrap_or(Path::new(""));
        let target = normalize(&base.join(rel));
        match self.source.read(&target) {
            Ok((found, bytes)) => self.file(&found, &bytes, fragment).map(Some),
            Err(CompileError::Read { path, source })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let p = path.to_string_lossy();
                self.hasher.update(b"missing\0");
                self.hasher.update(p.as_bytes());
                self.missing.push(path);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Lexically resolve `.` and `..` (the ANS hrefs use `../include/...`); symlinks are left alone.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_parent() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d.sch")),
            PathBuf::from("/a/c/d.sch")
        );
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn case_insensitive_lookup() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("Sub/Entrees")).unwrap();
        std::fs::write(dir.join("Sub/Entrees/X.sch"), "<pattern/>").unwrap();
        let found = find_ignoring_case(&dir.join("sub/entrees/x.sch")).unwrap();
        assert_eq!(found, dir.join("Sub/Entrees/X.sch"));
        assert!(find_ignoring_case(&dir.join("sub/other/x.sch")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("relais-sch-model-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!(
            r#"<schema xmlns="http://purl.oclc.org/dsdl/schematron">{}{}</schema>"#,
            "<p>".repeat(100_000),
            "</p>".repeat(100_000)
        );
        let err = load_bytes(Path::new("/m.sch"), deep.as_bytes(), &mut NoIncludes).unwrap_err();
        assert!(matches!(err, CompileError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn include_refused_without_source() {
        let sch = br#"<schema xmlns="http://purl.oclc.org/dsdl/schematron"><include href="x.sch"/></schema>"#;
        let err = load_bytes(Path::new("/m.sch"), sch, &mut NoIncludes).unwrap_err();
        assert!(
            matches!(err, CompileError::IncludeUnavailable { .. }),
            "{err}"
        );
    }
}
