//! One interface over both ways of reaching the Annuaire, for the outbound side.

use async_trait::async_trait;

use crate::error::Error;
use crate::ldap::LdapDirectory;
use crate::model::{Entry, MAX_LIMIT, Mailbox, Matches, Query};
use crate::store::AnnuaireDb;

/// The Annuaire national MSSanté, from the imported extraction or live over LDAP; chosen by
/// configuration and used as `Arc<dyn Directory>`.
#[async_trait]
pub trait Directory: Send + Sync {
    /// A short description for logs and status pages (never credentials).
    fn describe(&self) -> String;

    /// Entries matching every criterion of the query.
    async fn search(&self, query: &Query) -> Result<Matches, Error>;

    /// The entry of an MSSanté address, if the Annuaire has it ("is this address in the
    /// Annuaire?").
    async fn find_address(&self, address: &str) -> Result<Option<Entry>, Error>;

    /// The MSSanté mailboxes of a professional, by RPPS (or ADELI, or national identifier),
    /// each address once, personal mailboxes first. Empty when the Annuaire has none.
    async fn mailboxes_for_rpps(&self, rpps: &str) -> Result<Vec<Mailbox>, Error> {
        let found = self
            .search(&Query {
                limit: MAX_LIMIT,
                ..Query::by_rpps(rpps)
            })
            .await?;
        let mut out: Vec<Mailbox> = Vec::new();
        for e in found.entries {
            if !out
                .iter()
                .any(|m| m.address.eq_ignore_ascii_case(&e.mailbox.address))
            {
                out.push(e.mailbox);
            }
        }
        out.sort_by_key(|m| m.bal_type != crate::model::BalType::Per);
        Ok(out)
    }
}

#[async_trait]
impl Directory for AnnuaireDb {
    fn describe(&self) -> String {
        format!("imported extraction ({})", self.path().display())
    }

    async fn search(&self, query: &Query) -> Result<Matches, Error> {
        AnnuaireDb::search(self, query).await
    }

    async fn find_address(&self, address: &str) -> Result<Option<Entry>, Error> {
        AnnuaireDb::find_address(self, address).await
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    fn describe(&self) -> String {
        format!(
            "LDAP directory {} (base {})",
            self.config().url,
            self.config().base_dn
        )
    }

    async fn search(&self, query: &Query) -> Result<Matches, Error> {
        LdapDirectory::search(self, query).await
    }

    async fn find_address(&self, address: &str) -> Result<Option<Entry>, Error> {
        LdapDirectory::find_address(self, address).await
    }
}
