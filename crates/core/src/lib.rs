//! Shared vocabulary of Relais.
//!
//! Every validation layer (mail, XDM, CDA, schematron, HL7v2) reports what it finds as
//! [`Finding`]s carrying a stable [`RuleCode`], a [`Severity`] and a [`Location`] precise enough
//! for an integration engineer to open the file and look. Keeping that type here, rather than in
//! each crate, lets `relais check`, the journal and the console show one uniform report.
//!
//! This crate also owns the two things every parser must agree on: the [`Limits`] that protect
//! the daemon from hostile input, and [`xml::parse`], the only way Relais turns bytes into an XML
//! tree (no DTD, no entities, bounded size).

pub mod finding;
pub mod limits;
pub mod text;
pub mod xml;

pub use finding::{Finding, Location, RuleCode, Severity};
pub use limits::Limits;
