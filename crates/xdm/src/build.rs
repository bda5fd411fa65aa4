//! Building a conformant XDM package (outbound: the engine sends documents over MSSanté).

use crate::ids::{name_based_oid, name_based_uuid};
use crate::model::{Association, DocumentEntry, Metadata, SubmissionSet, uuids};
use crate::parse::check_metadata;
use crate::write::write_metadata_xml;
use relais_core::Finding;
use sha1::{Digest, Sha1};
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;

/// The folder of the one subset this builder writes.
pub const SUBSET_DIR: &str = "IHE_XDM/SUBSET01";

/// The product that made the package, written in README.TXT as ITI-32 requires.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductInfo {
    /// Product name, e.g. `Relais`.
    pub name: String,
    /// Product version.
    pub version: String,
    /// Vendor or publisher.
    pub vendor: String,
    /// Where to reach the sender's support, when known.
    pub contact: Option<String>,
}

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No document was added.
    #[error("an XDM package needs at least one document; add one with PackageBuilder::document")]
    NoDocument,
    /// The ZIP writer failed (should not happen when writing to memory).
    #[error("writing the ZIP archive failed: {0}")]
    Zip(String),
}

/// A built package: the ZIP bytes and the metadata as written (with computed hash, size, URI
/// and identifiers), plus what [`check_metadata`] says about it.
#[derive(Debug, Clone)]
pub struct BuiltPackage {
    /// The ZIP archive.
    pub zip: Vec<u8>,
    /// The metadata written in METADATA.XML.
    pub metadata: Metadata,
    /// Metadata findings (missing required slots the caller did not fill, …); empty when the
    /// package is conformant.
    pub findings: Vec<Finding>,
}

/// Builds an XDM package of one subset (`IHE_XDM/SUBSET01`): METADATA.XML, the documents as
/// `DOC0001.XML`, `DOC0002.PDF`…, README.TXT and INDEX.HTM.
///
/// The builder completes the metadata: `hash`, `size` and `URI` are computed from the content;
/// empty `entry_uuid`s, an empty submission set `unique_id`, a missing `mime_type` (→
/// `text/xml`), `object_type` (→ stable) and `availability_status` (→ Approved) are filled in; a
/// missing submission set patientId is taken from the first document; the `HasMember`
/// associations are generated. Identifiers derive from the content, so building twice gives the
/// same bytes.
#[derive(Debug, Clone)]
pub struct PackageBuilder {
    product: ProductInfo,
    submission_set: SubmissionSet,
    documents: Vec<(DocumentEntry, Vec<u8>)>,
}

impl PackageBuilder {
    /// A builder for the given sending product and submission set.
    pub fn new(product: ProductInfo, submission_set: SubmissionSet) -> Self {
        PackageBuilder {
            product,
            submission_set,
            documents: Vec::new(),
        }
    }

    /// A builder with its documents.
    pub fn with_documents(
        product: ProductInfo,
        submission_set: SubmissionSet,
        documents: Vec<(DocumentEntry, Vec<u8>)>,
    ) -> Self {
        PackageBuilder {
            product,
            submission_set,
            documents,
        }
    }

    /// Add a document and its metadata entry.
    pub fn document(mut self, entry: DocumentEntry, content: impl Into<Vec<u8>>) -> Self {
        self.documents.push((entry, content.into()));
        self
    }

    /// The completed metadata, as [`PackageBuilder::build`] writes it.
    pub fn metadata(&self) -> Metadata {
        let hashes: Vec<String> = self
            .documents
            .iter()
            .map(|(_, c)| hex::encode(Sha1::digest(c)))
            .collect();
        let mut ss = self.submission_set.clone();
        let seed = format!(
            "{}|{}|{}",
            ss.unique_id,
            ss.submission_time.as_deref().unwrap_or_default(),
            hashes.join(",")
        );
        if ss.unique_id.is_empty() {
            ss.unique_id = name_based_oid(&format!("submission-set|{seed}"));
        }
        if ss.entry_uuid.is_empty() {
            ss.entry_uuid = name_based_uuid(&format!("submission-set|{}", ss.unique_id));
        }
        if ss.patient_id.is_none() {
            ss.patient_id = self
                .documents
                .iter()
                .find_map(|(e, _)| e.patient_id.clone());
        }
        let mut entries = Vec::with_capacity(self.documents.len());
        let mut associations = Vec::with_capacity(self.documents.len());
        for (i, ((entry, content), hash)) in self.documents.iter().zip(&hashes).enumerate() {
            let mut e = entry.clone();
            if e.mime_type.is_empty() {
                e.mime_type = "text/xml".into();
            }
            if e.object_type.is_empty() {
                e.object_type = uuids::DOCUMENT_ENTRY_STABLE.into();
            }
            if e.availability_status.is_none() {
                e.availability_status = Some(uuids::STATUS_APPROVED.into());
            }
            if e.entry_uuid.is_empty() {
                e.entry_uuid =
                    name_based_uuid(&format!("document-entry|{}|{i}|{hash}", ss.unique_id));
            }
            e.hash = Some(hash.clone());
            e.size = Some(content.len() as u64);
            e.uri = Some(document_file_name(i, &e.mime_type));
            associations.push(Association {
                id: name_based_uuid(&format!("has-member|{}|{}", ss.entry_uuid, e.entry_uuid)),
                association_type: uuids::ASSOCIATION_HAS_MEMBER.into(),
                source: ss.entry_uuid.clone(),
                target: e.entry_uuid.clone(),
                submission_set_status: Some("Original".into()),
            });
            entries.push(e);
        }
        Metadata {
            submission_set: Some(ss),
            entries,
            associations,
        }
    }

    /// The files of the package, in archive order, without writing the ZIP: tests edit this
    /// list (drop METADATA.XML, alter a document…) and write it with [`write_zip`] or
    /// [`crate::RawZip`]. Directory entries end with `/` and have no content.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
        self.files_with(&self.metadata())
    }

    fn files_with(&self, metadata: &Metadata) -> Result<Vec<(String, Vec<u8>)>, BuildError> {
        if self.documents.is_empty() {
            return Err(BuildError::NoDocument);
        }
        let mut files = vec![
            (
                "README.TXT".to_string(),
                readme(&self.product, metadata).into_bytes(),
            ),
            (
                "INDEX.HTM".to_string(),
                index_htm(&self.product, metadata).into_bytes(),
            ),
            ("IHE_XDM/".to_string(), Vec::new()),
            (format!("{SUBSET_DIR}/"), Vec::new()),
            (
                format!("{SUBSET_DIR}/METADATA.XML"),
                write_metadata_xml(metadata).into_bytes(),
            ),
        ];
        for (e, (_, content)) in metadata.entries.iter().zip(&self.documents) {
            let uri = e.uri.clone().unwrap_or_default();
            files.push((format!("{SUBSET_DIR}/{uri}"), content.clone()));
        }
        Ok(files)
    }

    /// Build the ZIP.
    pub fn build(&self) -> Result<BuiltPackage, BuildError> {
        let metadata = self.metadata();
        let files = self.files_with(&metadata)?;
        let zip = write_zip(&files)?;
        let findings = check_metadata(&metadata, &format!("{SUBSET_DIR}/METADATA.XML"));
        Ok(BuiltPackage {
            zip,
            metadata,
            findings,
        })
    }
}

/// `DOC0001.XML` for the first XML document, `DOC0002.PDF` for a PDF…
fn document_file_name(index: usize, mime_type: &str) -> String {
    let ext = match mime_type.to_ascii_lowercase().as_str() {
        "text/xml" | "application/xml" | "application/xslt+xml" | "application/hl7-v3" => "XML",
        "application/pdf" => "PDF",
        "text/plain" => "TXT",
        "text/rtf" | "application/rtf" => "RTF",
        "image/jpeg" => "JPG",
        "image/png" => "PNG",
        "image/tiff" => "TIF",
        _ => "BIN",
    };
    format!("DOC{:04}.{ext}", index + 1)
}

fn readme(product: &ProductInfo, md: &Metadata) -> String {
    let mut s = String::new();
    s.push_str("IHE XDM package (ITI-32, Distribute Document Set on Media)\r\n\r\n");
    s.push_str(&format!(
        "Product: {} {}\r\n",
        product.name, product.version
    ));
    s.push_str(&format!("Vendor: {}\r\n", product.vendor));
    if let Some(c) = &product.contact {
        s.push_str(&format!("Contact: {c}\r\n"));
    }
    s.push_str("\r\nContent:\r\n");
    s.push_str(
        "  INDEX.HTM                       list of the documents (open it in a browser)\r\n",
    );
    s.push_str(&format!(
        "  {SUBSET_DIR}/METADATA.XML  XDS metadata (ebRS SubmitObjectsRequest)\r\n"
    ));
    for e in &md.entries {
        s.push_str(&format!(
            "  {SUBSET_DIR}/{}  {}\r\n",
            e.uri.as_deref().unwrap_or_default(),
            e.mime_type
        ));
    }
    s
}

fn index_htm(product: &ProductInfo, md: &Metadata) -> String {
    let esc = |v: &str| crate::write::escape(v, true);
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<title>IHE XDM</title>\n</head>\n<body>\n<h1>Documents</h1>\n<ul>\n");
    for e in &md.entries {
        let uri = e.uri.as_deref().unwrap_or_default();
        let title = e.title.as_deref().filter(|t| !t.is_empty()).unwrap_or(uri);
        s.push_str(&format!(
            "<li><a href=\"{}\">{}</a> ({})</li>\n",
            esc(&format!("{SUBSET_DIR}/{uri}")),
            esc(title),
            esc(&e.mime_type)
        ));
    }
    s.push_str("</ul>\n<p><a href=\"README.TXT\">README.TXT</a></p>\n");
    s.push_str(&format!(
        "<p>{} {} ({})</p>\n</body>\n</html>\n",
        esc(&product.name),
        esc(&product.version),
        esc(&product.vendor)
    ));
    s
}

/// Write files as a ZIP with the `zip` crate (deflate; names ending in `/` become directories).
pub fn write_zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, BuildError> {
    let zerr = |e: zip::result::ZipError| BuildError::Zip(e.to_string());
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let file_opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let dir_opts = SimpleFileOptions::default().unix_permissions(0o755);
    for (name, content) in files {
        if name.ends_with('/') {
            w.add_directory(name.as_str(), dir_opts).map_err(zerr)?;
        } else {
            w.start_file(name.as_str(), file_opts).map_err(zerr)?;
            w.write_all(content)
                .map_err(|e| BuildError::Zip(e.to_string()))?;
        }
    }
    Ok(w.finish().map_err(zerr)?.into_inner())
}
