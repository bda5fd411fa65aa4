//! Helpers of the PostgreSQL tests: one real server per test binary, a fresh database per test.
#![allow(dead_code)]

use relais_store::{PgConfig, PgJournal};
use relais_testsupport::postgres::PgServer;
use sqlx::Connection;

/// The test binary's PostgreSQL server (started on first use, stopped when the process exits).
pub fn server() -> &'static PgServer {
    PgServer::shared()
}

/// A fresh, empty database: its URL.
pub fn fresh_url(name: &str) -> String {
    server().create_database(name)
}

/// Opens a journal (migrations applied) on `url`, as one instance would.
pub async fn open_url(url: &str) -> PgJournal {
    let mut config = PgConfig::new(url);
    config.max_connections = 8;
    PgJournal::open_with(config)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL journal opens: {e}"))
}

/// The name of a database holding the migrated, empty journal, made once per test binary:
/// copying it is faster than migrating each test's database.
async fn template() -> &'static str {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = server().create_database_named("journal_template");
            let j = open_url(&server().url_for(&name)).await;
            // No session may stay connected to a template while it is copied.
            j.close().await;
            name
        })
        .await
}

/// A journal on a fresh database (a copy of the migrated template), and the database's URL
/// (for more instances or raw SQL).
pub async fn fresh(name: &str) -> (PgJournal, String) {
    let template = template().await;
    let db = server().create_database_from(name, template);
    let url = server().url_for(&db);
    (open_url(&url).await, url)
}

/// A raw connection, outside the journal (an operator with psql, or an attacker).
pub async fn raw(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url)
        .await
        .expect("raw PostgreSQL connection")
}
