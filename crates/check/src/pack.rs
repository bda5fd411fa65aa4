//! The validation pack: the ANS material (XSD, schematrons, value sets) Relais validates with.
//!
//! It is loaded from a directory, never compiled in, so that an ANS update is a directory swap.
//! Layout (as published by the ANS test-content repository):
//! `xsd/CDA_extended.xsd`, `schematrons/` (CI-SIS_*.sch, profils/, include/, abstract/),
//! `value-sets/` (JDV_*.xml, read by the schematrons as `../jeuxDeValeurs/`).

use std::path::{Path, PathBuf};

/// Where Relais looks for a validation pack when none is configured, in order.
pub const DEFAULT_PACK_LOCATIONS: &[&str] = &[
    "./validation-pack",
    "/var/lib/relais/validation-pack",
    "../shared/ans",
];

/// A validation pack directory that has been checked to hold what Relais needs.
#[derive(Debug, Clone)]
pub struct Pack {
    pub dir: PathBuf,
}

/// The configured validation pack is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(
        "validation pack {dir}: {missing} is missing (expected the ANS layout: xsd/CDA_extended.xsd, schematrons/, value-sets/)"
    )]
    Incomplete { dir: String, missing: &'static str },
}

impl Pack {
    /// Open a pack directory, checking its layout.
    pub fn open(dir: &Path) -> Result<Pack, PackError> {
        let display = dir.display().to_string();
        for (rel, what) in [
            ("xsd/CDA_extended.xsd", "xsd/CDA_extended.xsd"),
            ("schematrons", "schematrons/"),
            ("value-sets", "value-sets/"),
        ] {
            if !dir.join(rel).exists() {
                return Err(PackError::Incomplete {
                    dir: display,
                    missing: what,
                });
            }
        }
        Ok(Pack {
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
        })
    }

    /// The pack named explicitly, else `$RELAIS_PACK_DIR`, else the first default location that
    /// exists. `Ok(None)` when there is none at all.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<Pack>, PackError> {
        if let Some(dir) = explicit {
            return Pack::open(dir).map(Some);
        }
        if let Some(dir) = std::env::var_os("RELAIS_PACK_DIR") {
            return Pack::open(Path::new(&dir)).map(Some);
        }
        Ok(DEFAULT_PACK_LOCATIONS
            .iter()
            .map(Path::new)
            .find(|d| d.join("xsd/CDA_extended.xsd").exists())
            .and_then(|d| Pack::open(d).ok()))
    }

    pub fn xsd(&self) -> PathBuf {
        self.dir.join("xsd/CDA_extended.xsd")
    }

    pub fn schematrons(&self) -> PathBuf {
        self.dir.join("schematrons")
    }
}
