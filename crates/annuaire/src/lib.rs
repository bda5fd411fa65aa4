//! MSSanté recipients for Relais: who may receive a letter, and at which address.
//!
//! Two sources of truth published by the ANS decide where the outbound side may send:
//!
//! * the **liste blanche** ([`liste_blanche`]): the mail domains of the espace de confiance
//!   MSSanté. Mail to or from a domain outside it must not be exchanged;
//! * the **Annuaire national MSSanté**: every MSSanté mailbox (BAL) with its owner (RPPS or
//!   ADELI, name, profession, speciality) or its organisation, and its type (PER personal,
//!   ORG organisational, APP applicative, CAB practice).
//!
//! The Annuaire is reached two ways, behind one [`Directory`] trait: the published extraction
//! file imported into a local SQLite database ([`AnnuaireDb`], [`AnnuaireDb::import_extract`]),
//! or a live LDAP(S) directory ([`LdapDirectory`]). Both answer the same [`Query`] (RPPS, name
//! prefix, profession, speciality, city) with [`Entry`] values, and the outbound side asks them
//! "which MSSanté addresses does this RPPS have?" ([`Directory::mailboxes_for_rpps`]) and "is
//! this address in the Annuaire?" ([`Directory::find_address`]).
//!
//! # Command line
//!
//! `relais annuaire import FILE` and `relais annuaire search ...` are a few lines each:
//!
//! ```no_run
//! # async fn cli(data_dir: &std::path::Path) -> Result<(), relais_annuaire::Error> {
//! use relais_annuaire::{AnnuaireDb, CodeOrLabel, Query};
//!
//! let db = AnnuaireDb::open(data_dir).await?;
//! // relais annuaire import Extraction_Correspondance_MSSante_202608261013.zip
//! let stats = db.import_extract("Extraction_Correspondance_MSSante_202608261013.zip").await?;
//! println!("{stats}");
//! // relais annuaire search --name dur --profession medecin --city "Ville-Fictive"
//! let query = Query {
//!     name_prefix: Some("dur".into()),
//!     profession: Some(CodeOrLabel::parse("medecin")),
//!     city: Some("Ville-Fictive".into()),
//!     ..Query::default()
//! };
//! print!("{}", db.search(&query).await?);
//! # Ok(()) }
//! ```
//!
//! Nothing here logs patient data: the Annuaire holds professionals and organisations, and the
//! reports name lines of the extraction by number, never by content.

pub mod directory;
pub mod error;
pub mod extract;
pub mod fold;
pub mod ldap;
pub mod liste_blanche;
pub mod model;
pub mod store;

pub use directory::Directory;
pub use error::Error;
pub use ldap::{AttributeMap, LdapBind, LdapConfig, LdapDirectory, LdapError};
pub use liste_blanche::{Decision, ListeBlanche, Refreshing};
pub use model::{BalType, CodeOrLabel, Entry, Mailbox, Matches, Query, QueryError};
pub use store::{AnnuaireDb, ImportOptions, ImportStats};
