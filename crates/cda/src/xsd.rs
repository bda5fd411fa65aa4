//! XSD validation of CDA documents with libxml2, through a small hand-written FFI.
//!
//! The CDA R2 schema with the French extensions (`CDA_extended.xsd` of the ANS pack) uses
//! substitution groups, imports and the XSLT schema (for auto-presentable documents): libxml2
//! handles all of it, as `xmllint --schema` does, and is the reference the ANS tooling agrees with.
//! Only the dozen functions needed are declared; nothing else of libxml2 is exposed.
//!
//! Hardening: every document first goes through [`relais_core::xml::parse`] (DTDs refused, size
//! and node count bounded), then libxml2 parses it with `XML_PARSE_NONET` and never with
//! `XML_PARSE_NOENT` / `XML_PARSE_DTDLOAD`; the external entity loader is replaced by libxml2's
//! no-network loader, so neither schema nor document can make libxml2 reach the network. Error
//! messages are kept (with element and attribute names) but the offending values are masked, since
//! they can be patient data.

use crate::codes::{CDA_XSD_INTERNAL, CDA_XSD_INVALID};
use relais_core::{Finding, Limits, Location};
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, Once};

/// The hand-written libxml2 declarations (libxml2 2.9+; the ABI used is stable since 2.6).
mod ffi {
    use std::marker::{PhantomData, PhantomPinned};
    use std::os::raw::{c_char, c_int, c_void};

    macro_rules! opaque {
        ($($name:ident),*) => {$(
            #[repr(C)]
            pub struct $name {
                _data: [u8; 0],
                _marker: PhantomData<(*mut u8, PhantomPinned)>,
            }
        )*};
    }
    opaque!(SchemaParserCtxt, Schema, SchemaValidCtxt, Doc);

    /// `struct _xmlError` of `libxml/xmlerror.h`.
    #[repr(C)]
    pub struct XmlError {
        pub domain: c_int,
        pub code: c_int,
        pub message: *const c_char,
        pub level: c_int,
        pub file: *const c_char,
        pub line: c_int,
        pub str1: *const c_char,
        pub str2: *const c_char,
        pub str3: *const c_char,
        pub int1: c_int,
        /// Column, or 0 when unknown.
        pub int2: c_int,
        pub ctxt: *mut c_void,
        pub node: *mut c_void,
    }

    pub type StructuredErrorFunc = unsafe extern "C" fn(user: *mut c_void, error: *mut XmlError);
    pub type ExternalEntityLoader = unsafe extern "C" fn(
        url: *const c_char,
        id: *const c_char,
        ctxt: *mut c_void,
    ) -> *mut c_void;

    /// `XML_ERR_ERROR` of `xmlErrorLevel`: levels at or above it are errors.
    pub const XML_ERR_ERROR: c_int = 2;
    pub const XML_PARSE_NONET: c_int = 1 << 11;
    pub const XML_PARSE_BIG_LINES: c_int = 1 << 22;

    unsafe extern "C" {
        pub fn xmlInitParser();
        pub fn xmlSetExternalEntityLoader(f: Option<ExternalEntityLoader>);
        pub fn xmlNoNetExternalEntityLoader(
            url: *const c_char,
            id: *const c_char,
            ctxt: *mut c_void,
        ) -> *mut c_void;
        pub fn xmlSetStructuredErrorFunc(ctx: *mut c_void, handler: Option<StructuredErrorFunc>);

        pub fn xmlSchemaNewParserCtxt(url: *const c_char) -> *mut SchemaParserCtxt;
        pub fn xmlSchemaSetParserStructuredErrors(
            ctxt: *mut SchemaParserCtxt,
            serror: Option<StructuredErrorFunc>,
            ctx: *mut c_void,
        );
        pub fn xmlSchemaParse(ctxt: *mut SchemaParserCtxt) -> *mut Schema;
        pub fn xmlSchemaFreeParserCtxt(ctxt: *mut SchemaParserCtxt);
        pub fn xmlSchemaFree(schema: *mut Schema);

        pub fn xmlSchemaNewValidCtxt(schema: *mut Schema) -> *mut SchemaValidCtxt;
        pub fn xmlSchemaSetValidStructuredErrors(
            ctxt: *mut SchemaValidCtxt,
            serror: Option<StructuredErrorFunc>,
            ctx: *mut c_void,
        );
        pub fn xmlSchemaValidateDoc(ctxt: *mut SchemaValidCtxt, doc: *mut Doc) -> c_int;
        pub fn xmlSchemaFreeValidCtxt(ctxt: *mut SchemaValidCtxt);

        pub fn xmlReadMemory(
            buffer: *const c_char,
            size: c_int,
            url: *const c_char,
            encoding: *const c_char,
            options: c_int,
        ) -> *mut Doc;
        pub fn xmlFreeDoc(doc: *mut Doc);
    }
}

/// Most libxml2 messages kept per document; the rest are counted in one last finding.
const MAX_ISSUES: usize = 200;

/// Why a schema could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XsdError {
    #[error(
        "XSD file not found: {0} (point the configuration at the ANS pack's xsd/CDA_extended.xsd)"
    )]
    NotFound(PathBuf),
    #[error("XSD path {0} contains a NUL byte")]
    BadPath(PathBuf),
    #[error(
        "libxml2 could not load the XSD {path}: {details} (check that the pack's xsd/ directory is complete)"
    )]
    Parse { path: PathBuf, details: String },
}

/// One message reported by libxml2.
#[derive(Debug, Clone)]
struct Issue {
    level: c_int,
    line: u32,
    column: u32,
    message: String,
}

#[derive(Debug, Default)]
struct Collector {
    issues: Vec<Issue>,
    dropped: usize,
}

/// The libxml2 structured error callback: appends to the `Collector` passed as user data.
///
/// # Safety
/// `user` is null or points to a live `Collector` owned by the calling frame; `error` is null or
/// points to an `xmlError` valid for the duration of the call (libxml2 guarantees it).
unsafe extern "C" fn collect(user: *mut c_void, error: *mut ffi::XmlError) {
    if user.is_null() || error.is_null() {
        return;
    }
    // SAFETY: see the function contract; the collector is not otherwise borrowed during the call.
    let (collector, e) = unsafe { (&mut *(user as *mut Collector), &*error) };
    if collector.issues.len() >= MAX_ISSUES {
        collector.dropped += 1;
        return;
    }
    let message = if e.message.is_null() {
        String::from("(no message)")
    } else {
        // SAFETY: libxml2 messages are NUL-terminated C strings.
        unsafe { CStr::from_ptr(e.message) }
            .to_string_lossy()
            .trim_end()
            .to_string()
    };
    collector.issues.push(Issue {
        level: e.level,
        line: u32::try_from(e.line).unwrap_or(0),
        column: u32::try_from(e.int2).unwrap_or(0),
        message,
    });
}

/// Routes this thread's libxml2 generic errors to a collector until dropped. libxml2 keeps this
/// handler per thread (it is built with thread support), so concurrent validations do not mix.
struct ThreadErrorRoute;

impl ThreadErrorRoute {
    /// # Safety
    /// `collector` must outlive the returned guard.
    unsafe fn to(collector: *mut Collector) -> Self {
        // SAFETY: sets a thread-local handler; the pointer outlives the guard per the contract.
        unsafe { ffi::xmlSetStructuredErrorFunc(collector as *mut c_void, Some(collect)) };
        ThreadErrorRoute
    }
}

impl Drop for ThreadErrorRoute {
    fn drop(&mut self) {
        // SAFETY: restores libxml2's default (thread-local) handler.
        unsafe { ffi::xmlSetStructuredErrorFunc(ptr::null_mut(), None) };
    }
}

fn init_libxml2() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: called once, before any other libxml2 use by this crate, as libxml2 requires
        // for multi-threaded programs. The no-network loader is a libxml2 function.
        unsafe {
            ffi::xmlInitParser();
            ffi::xmlSetExternalEntityLoader(Some(ffi::xmlNoNetExternalEntityLoader));
        }
    });
}

/// Schema parsing touches libxml2 globals (built-in type tables initialised on first use): loads
/// are serialised.
static LOAD_LOCK: Mutex<()> = Mutex::new(());

/// A compiled XSD, ready to validate documents from any number of threads.
///
/// # Thread safety
/// `XsdValidator` is `Send` and `Sync`. The reasoning:
/// - the `xmlSchema` is built once by [`XsdValidator::load`] (under a process-wide lock) and never
///   modified afterwards: libxml2 only reads a compiled schema during validation;
/// - every [`XsdValidator::validate`] call creates its own validation context and its own parsed
///   document, and frees both before returning; nothing mutable is shared between calls;
/// - error callbacks write into a collector owned by the calling frame, through the validation
///   context or libxml2's per-thread error handler (libxml2 is built with thread support);
/// - `xmlInitParser` is called once before first use, as libxml2 requires for threaded programs.
///
/// The test suite validates the ANS examples from several threads at once and checks the results
/// equal the sequential ones.
pub struct XsdValidator {
    schema: NonNull<ffi::Schema>,
    source: String,
    limits: Limits,
}

// SAFETY: see the "Thread safety" section above: the schema is immutable after load and every
// call uses its own libxml2 contexts.
unsafe impl Send for XsdValidator {}
// SAFETY: as above; `validate` takes `&self` and only reads the schema.
unsafe impl Sync for XsdValidator {}

impl std::fmt::Debug for XsdValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsdValidator")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Drop for XsdValidator {
    fn drop(&mut self) {
        // SAFETY: the schema was returned by xmlSchemaParse and is freed exactly once, here.
        unsafe { ffi::xmlSchemaFree(self.schema.as_ptr()) };
    }
}

impl XsdValidator {
    /// Loads and compiles an XSD, typically `xsd/CDA_extended.xsd` of the ANS pack (imports and
    /// includes are resolved relative to it, from local files only). Takes about a second for the
    /// CDA schema: load once, share the validator.
    pub fn load(xsd_path: impl AsRef<Path>) -> Result<Self, XsdError> {
        use std::os::unix::ffi::OsStrExt;
        let path = xsd_path.as_ref();
        if !path.is_file() {
            return Err(XsdError::NotFound(path.to_path_buf()));
        }
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| XsdError::BadPath(path.to_path_buf()))?;
        init_libxml2();
        let _lock = LOAD_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut collector = Collector::default();
        let col: *mut Collector = &mut collector;
        // SAFETY: `c_path` and `collector` outlive every libxml2 call below; the parser context is
        // freed once; the schema pointer is checked for null before being owned.
        let schema = unsafe {
            let _route = ThreadErrorRoute::to(col);
            let pctxt = ffi::xmlSchemaNewParserCtxt(c_path.as_ptr());
            if pctxt.is_null() {
                ptr::null_mut()
            } else {
                ffi::xmlSchemaSetParserStructuredErrors(pctxt, Some(collect), col as *mut c_void);
                let schema = ffi::xmlSchemaParse(pctxt);
                ffi::xmlSchemaFreeParserCtxt(pctxt);
                schema
            }
        };
        let Some(schema) = NonNull::new(schema) else {
            let details: Vec<String> = collector
                .issues
                .iter()
                .filter(|i| i.level >= ffi::XML_ERR_ERROR)
                .take(5)
                .map(|i| i.message.clone())
                .collect();
            let details = if details.is_empty() {
                "no error message".to_string()
            } else {
                details.join("; ")
            };
            return Err(XsdError::Parse {
                path: path.to_path_buf(),
                details,
            });
        };
        let source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(XsdValidator {
            schema,
            source,
            limits: Limits::default(),
        })
    }

    /// Uses these input limits for the hardened pre-parse of every document (default:
    /// [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The schema file name, used as the `source` of findings (e.g. `CDA_extended.xsd`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Validates a document. An empty result (or one without errors) means the document is valid.
    /// XSD violations are `CDA-XSD-INVALID` errors located by line and column (column 0 when
    /// libxml2 does not know it); a document refused by the hardened parser gets the `XML-*`
    /// finding of [`relais_core::xml`] and is not given to libxml2.
    pub fn validate(&self, bytes: &[u8]) -> Vec<Finding> {
        if bytes.len() as u64 > self.limits.max_xml_bytes {
            let e = relais_core::xml::XmlError::TooLarge {
                size: bytes.len() as u64,
                limit: self.limits.max_xml_bytes,
            };
            return vec![e.to_finding()];
        }
        match relais_core::xml::decode(bytes) {
            Err(e) => return vec![e.to_finding()],
            Ok(text) => {
                if let Err(e) = relais_core::xml::parse(&text, &self.limits) {
                    return vec![e.to_finding()];
                }
            }
        }
        let Ok(len) = c_int::try_from(bytes.len()) else {
            return vec![self.internal("the document is too large for libxml2 (2 GiB)")];
        };
        let mut collector = Collector::default();
        let col: *mut Collector = &mut collector;
        // SAFETY: `bytes` and `collector` outlive the calls; the document and the validation
        // context are created and freed here, once each; the shared schema is only read.
        let rc = unsafe {
            let _route = ThreadErrorRoute::to(col);
            let doc = ffi::xmlReadMemory(
                bytes.as_ptr() as *const c_char,
                len,
                c"document.xml".as_ptr(),
                ptr::null(),
                ffi::XML_PARSE_NONET | ffi::XML_PARSE_BIG_LINES,
            );
            if doc.is_null() {
                None
            } else {
                let vctxt = ffi::xmlSchemaNewValidCtxt(self.schema.as_ptr());
                let rc = if vctxt.is_null() {
                    -1
                } else {
                    ffi::xmlSchemaSetValidStructuredErrors(
                        vctxt,
                        Some(collect),
                        col as *mut c_void,
                    );
                    let rc = ffi::xmlSchemaValidateDoc(vctxt, doc);
                    ffi::xmlSchemaFreeValidCtxt(vctxt);
                    rc
                };
                ffi::xmlFreeDoc(doc);
                Some(rc)
            }
        };
        let mut findings: Vec<Finding> = collector
            .issues
            .iter()
            .filter(|i| i.level >= ffi::XML_ERR_ERROR)
            .map(|i| {
                Finding::error(CDA_XSD_INVALID, redact_values(&i.message))
                    .at(Location::Line {
                        line: i.line,
                        column: i.column,
                    })
                    .with_source(self.source.clone())
            })
            .collect();
        if collector.dropped > 0 {
            findings.push(
                Finding::error(
                    CDA_XSD_INVALID,
                    format!("{} more XSD errors not listed", collector.dropped),
                )
                .with_source(self.source.clone()),
            );
        }
        match rc {
            None if findings.is_empty() => {
                findings.push(self.internal("libxml2 could not parse the document"))
            }
            Some(rc) if rc < 0 => {
                findings.push(self.internal("libxml2 failed internally while validating"))
            }
            Some(rc) if rc > 0 && findings.is_empty() => findings.push(
                Finding::error(
                    CDA_XSD_INVALID,
                    "the document does not conform to the schema",
                )
                .with_source(self.source.clone()),
            ),
            _ => {}
        }
        findings
    }

    fn internal(&self, message: &str) -> Finding {
        Finding::error(CDA_XSD_INTERNAL, message).with_source(self.source.clone())
    }
}

/// Masks the offending values quoted in libxml2 messages (`The value 'X'`, `: 'X' is not a valid
/// value`), which may be patient data; names of elements, attributes and types are kept.
fn redact_values(message: &str) -> String {
    const HIDDEN: &str = "(value hidden)";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let value_intro = rest
            .find("The value '")
            .map(|i| (i, i + "The value '".len()));
        let invalid = rest
            .find("' is not a valid value")
            .and_then(|end| rest[..end].rfind(": '").map(|s| (s + 3, end)));
        let next = match (value_intro, invalid) {
            (Some((_, start)), Some((istart, iend))) if istart < start => Some((istart, iend)),
            (Some((_, start)), _) => {
                let end = rest[start..].find('\'').map(|e| start + e);
                end.map(|end| (start, end))
            }
            (None, Some(span)) => Some(span),
            (None, None) => None,
        };
        match next {
            None => {
                out.push_str(rest);
                return out;
            }
            Some((start, end)) => {
                out.push_str(&rest[..start]);
                out.push_str(HIDDEN);
                out.push('\'');
                rest = &rest[end + 1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values() {
        let m = "Element '{urn:hl7-org:v3}birthTime', attribute 'value': '1979-03-28' is not a valid value of the atomic type '{urn:hl7-org:v3}ts'.";
        let r = redact_values(m);
        assert!(!r.contains("1979"), "{r}");
        assert!(r.contains("birthTime") && r.contains("atomic type"), "{r}");

        let m = "Element 'x': [facet 'pattern'] The value '27903512' is not accepted by the pattern '[0-9]+'.";
        let r = redact_values(m);
        assert!(!r.contains("27903512"), "{r}");
        assert!(r.contains("[0-9]+"), "{r}");

        let m = "Element '{urn:hl7-org:v3}foo': This element is not expected.";
        assert_eq!(redact_values(m), m);
        let m = "Element 'a': 'x' is not a valid value of the atomic type 'int'. Element 'b': 'y' is not a valid value of x";
        let r = redact_values(m);
        assert!(!r.contains("'x' is") && !r.contains("'y' is"), "{r}");
        assert_eq!(redact_values("The value '"), "The value '");
    }
}
