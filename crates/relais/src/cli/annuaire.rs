//! `relais annuaire import FILE | search ...`: the Annuaire national MSSanté, from its
//! published extraction imported under the data directory, or live over LDAP when
//! `[outbound.annuaire.ldap]` is configured and the extraction is not.

use super::outbound::config_of;
use super::{ConfigArg, EXIT_INVALID, EXIT_VALID};
use clap::Subcommand;
use relais_engine::outbound::annuaire_dir;
use relais_engine::outbound::relais_annuaire::{
    AnnuaireDb, CodeOrLabel, Directory, LdapDirectory, Query,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(super) enum AnnuaireCommand {
    /// Import the extraction of MSSanté addresses published by the ANS (the `.zip` as
    /// downloaded, or its `.txt`). The previous import stays in use until this one is complete.
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Search the Annuaire; every criterion given must match.
    Search {
        /// RPPS or ADELI number (or national identifier).
        #[arg(long)]
        rpps: Option<String>,
        /// Start of the surname, organisation or service (accents and case ignored).
        #[arg(long)]
        name: Option<String>,
        /// Profession: a code (`10`) or the start of its label (`medecin`).
        #[arg(long)]
        profession: Option<String>,
        /// Speciality (savoir-faire): a code (`SM26`) or the start of its label.
        #[arg(long)]
        speciality: Option<String>,
        /// Town, or 5-digit postal code.
        #[arg(long)]
        city: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        config: ConfigArg,
    },
}

pub(super) async fn run(cmd: AnnuaireCommand) -> Result<ExitCode, String> {
    match cmd {
        AnnuaireCommand::Import { file, config } => {
            let c = config_of(&config)?;
            let db = AnnuaireDb::open(annuaire_dir(&c.data_dir))
                .await
                .map_err(|e| e.to_string())?;
            let stats = db.import_extract(&file).await.map_err(|e| e.to_string())?;
            println!("{stats}");
            db.close().await;
            Ok(ExitCode::from(EXIT_VALID))
        }
        AnnuaireCommand::Search {
            rpps,
            name,
            profession,
            speciality,
            city,
            limit,
            config,
        } => {
            let c = config_of(&config)?;
            let query = Query {
                rpps,
                name_prefix: name,
                profession: profession.as_deref().map(CodeOrLabel::parse),
                speciality: speciality.as_deref().map(CodeOrLabel::parse),
                city,
                limit,
                ..Query::default()
            };
            if let Err(e) = query.validate() {
                eprintln!("relais annuaire search: {e}");
                return Ok(ExitCode::from(super::EXIT_USAGE));
            }
            let settings = &c.outbound.annuaire;
            let directory: Box<dyn Directory> = match &settings.ldap {
                Some(ldap) if !settings.extract => {
                    Box::new(LdapDirectory::new(ldap.ldap_config()?).map_err(|e| e.to_string())?)
                }
                _ => Box::new(
                    AnnuaireDb::open(annuaire_dir(&c.data_dir))
                        .await
                        .map_err(|e| e.to_string())?,
                ),
            };
            let found = directory.search(&query).await.map_err(|e| e.to_string())?;
            print!("{found}");
            Ok(ExitCode::from(if found.entries.is_empty() {
                EXIT_INVALID
            } else {
                EXIT_VALID
            }))
        }
    }
}
