//! The Annuaire imported from its published extraction, in this crate's own SQLite database
//! (`<data_dir>/annuaire.sqlite`).
//!
//! [`AnnuaireDb::import_extract`] reads the extraction (`.txt`, or the `.zip` the ANS serves)
//! on a blocking thread while the rows are written in batches into a staging table without
//! indexes; the indexes are then built in one pass, and a short transaction swaps the staging
//! table in for the current one. A search sees either the previous extraction or the new one,
//! never a mix, and a failed or interrupted import leaves the previous one in use. Only one
//! import runs at a time (a lock file beside the database).
//!
//! Searches ([`AnnuaireDb::search`]) use the search keys of [`crate::fold`] with prefix ranges
//! on indexed columns; every user value is a bound parameter.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::error::Error;
use crate::extract::{self, ExtractReader, ParseReport, Record};
use crate::fold;
use crate::model::{
    BalType, CodeOrLabel, Coded, Entry, Location, Mailbox, Matches, Organisation, Person, Query,
};

/// The database file in the data directory.
pub const DATABASE_FILE: &str = "annuaire.sqlite";
/// The lock file held during an import.
pub const IMPORT_LOCK_FILE: &str = "annuaire.import.lock";
/// Largest extraction text accepted from a ZIP (the real one is about 90 MB).
pub const MAX_EXTRACT_SIZE: u64 = 4 * 1024 * 1024 * 1024;

/// Below this many data lines, [`ImportOptions::max_malformed_percent`] does not apply.
const SMALL_FILE_LINES: u64 = 1000;
/// The indexes of the `bal` table: (name suffix, column). Each import creates them on its
/// staging table as `bal_<import id>_<suffix>`.
pub const INDEXES: [(&str, &str); 7] = [
    ("person_id", "person_id"),
    ("national_id", "person_national_id"),
    ("address", "address_key"),
    ("surname", "surname_key"),
    ("organisation", "organisation_key"),
    ("service", "service_key"),
    ("city", "city_key"),
];
/// Rows written per transaction during an import.
const BATCH_ROWS: usize = 5000;
/// Rows per INSERT statement (37 parameters each; SQLite allows 32,766 per statement).
const ROWS_PER_INSERT: usize = 500;

/// How an import treats its input.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// Largest share of unusable lines (percent) before the import is refused as a whole
    /// (default 5%). It applies to files of 1,000 lines or more; a smaller file is refused
    /// when most of its lines are unusable.
    pub max_malformed_percent: f64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            max_line: extract::DEFAULT_MAX_LINE,
            max_malformed_percent: 5.0,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportStats {
    /// The new current import.
    pub import_id: i64,
    /// The import it replaced, if any.
    pub replaced: Option<i64>,
    /// The file imported.
    pub source: PathBuf,
    /// The text file read inside a ZIP.
    pub inner_name: Option<String>,
    /// The generation time in the file name, if any.
    pub generated_at: Option<String>,
    /// SHA-256 of the extraction text (decompressed), lower-case hex.
    pub sha256: String,
    /// What the reader found (lines, records, skipped lines...).
    pub parse: ParseReport,
    /// Distinct mailbox addresses (a few addresses come on several lines).
    pub distinct_addresses: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl fmt::Display for ImportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.parse;
        writeln!(
            f,
            "imported {} ({}) as import {}{}",
            self.source.display(),
            self.generated_at
                .as_deref()
                .unwrap_or("generation time unknown"),
            self.import_id,
            match self.replaced {
                Some(id) => format!(", replacing import {id}"),
                None => String::new(),
            }
        )?;
        let types: Vec<String> = p.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        writeln!(
            f,
            "  {} lines, {} mailboxes ({}), {} distinct addresses, in {:.1} s",
            p.lines,
            p.records,
            types.join(", "),
            self.distinct_addresses,
            self.elapsed.as_secs_f64()
        )?;
        if p.malformed > 0 {
            writeln!(f, "  {} lines skipped:", p.malformed)?;
            for issue in &p.issues {
                writeln!(f, "    {issue}")?;
            }
            if p.malformed as usize > p.issues.len() {
                writeln!(
                    f,
                    "    ... and {} more",
                    p.malformed as usize - p.issues.len()
                )?;
            }
        }
        if p.latin1_lines > 0 {
            writeln!(
                f,
                "  {} lines were not UTF-8 (read as Latin-1)",
                p.latin1_lines
            )?;
        }
        if !p.missing_columns.is_empty() {
            writeln!(
                f,
                "  columns absent (left empty): {}",
                p.missing_columns.join(", ")
            )?;
        }
        if !p.unknown_columns.is_empty() {
            writeln!(f, "  columns ignored: {}", p.unknown_columns.join(", "))?;
        }
        write!(f, "  sha256 {}", self.sha256)
    }
}

/// The import searches read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportInfo {
    /// Its id.
    pub id: i64,
    /// The file imported.
    pub source: String,
    /// The generation time in the file name, if any.
    pub generated_at: Option<String>,
    /// SHA-256 of the extraction text.
    pub sha256: Option<String>,
    /// When the import finished (milliseconds since the Unix epoch).
    pub finished_at_ms: i64,
    /// Mailboxes imported.
    pub records: i64,
}

/// The imported Annuaire.
#[derive(Debug, Clone)]
pub struct AnnuaireDb {
    pool: SqlitePool,
    path: PathBuf,
    data_dir: PathBuf,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl AnnuaireDb {
    /// Opens (creating if needed) `<data_dir>/annuaire.sqlite` and applies the migrations.
    pub async fn open(data_dir: impl Into<PathBuf>) -> Result<AnnuaireDb, Error> {
        let data_dir = data_dir.into();
        let path = data_dir.join(DATABASE_FILE);
        std::fs::create_dir_all(&data_dir).map_err(|e| Error::Open {
            path: path.clone(),
            source: sqlx::Error::Io(e),
        })?;
        let open_err = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(&path)
            .create_if_missing(true)
            // A copy of public data that can be imported again: WAL keeps readers going during
            // an import, NORMAL is crash-safe in WAL mode (a power cut may lose the last commit).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // Index builds sort in the page cache: 64 MB per connection at most.
            .pragma("cache_size", "-65536");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(AnnuaireDb {
            pool,
            path,
            data_dir,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the connections.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The import searches read, if any.
    pub async fn current_import(&self) -> Result<Option<ImportInfo>, Error> {
        let row = sqlx::query(
            "SELECT i.id, i.source, i.generated_at, i.sha256, i.finished_at, i.records \
             FROM current_import c JOIN imports i ON i.id = c.import_id",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| ImportInfo {
            id: r.get(0),
            source: r.get(1),
            generated_at: r.get(2),
            sha256: r.get(3),
            finished_at_ms: r.get::<Option<i64>, _>(4).unwrap_or(0),
            records: r.get::<Option<i64>, _>(5).unwrap_or(0),
        }))
    }

    async fn current_id(&self) -> Result<i64, Error> {
        sqlx::query_scalar::<_, i64>("SELECT import_id FROM current_import WHERE singleton = 1")
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NothingImported {
                path: self.path.clone(),
            })
    }

    /// Imports an extraction (`.txt`, or a `.zip` holding one `.txt`) with default options.
    pub async fn import_extract(&self, path: impl AsRef<Path>) -> Result<ImportStats, Error> {
        self.import_extract_with(path, &ImportOptions::default())
            .await
    }

    /// Imports an extraction; on success it replaces the previous one for every search.
    pub async fn import_extract_with(
        &self,
        path: impl AsRef<Path>,
        options: &ImportOptions,
    ) -> Result<ImportStats, Error> {
        let started = Instant::now();
        let path = path.as_ref().to_path_buf();
        let _lock = self.lock_imports()?;
        self.clean_up_abandoned().await?;
        let previous = self.current_id().await.ok();

        let import_id: i64 = sqlx::query_scalar(
            "INSERT INTO imports (source, started_at, state) VALUES (?, ?, 'running') RETURNING id",
        )
        .bind(path.display().to_string())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;

        if let Err(e) = self.create_staging().await {
            self.abandon(import_id, &e).await;
            return Err(e);
        }
        let (tx, mut rx) = mpsc::channel::<Vec<PreparedRow>>(4);
        let producer = {
            let path = path.clone();
            let max_line = options.max_line;
            tokio::task::spawn_blocking(move || read_extract(&path, max_line, tx))
        };
        let mut written = 0u64;
        let mut write_result = Ok(());
        while let Some(batch) = rx.recv().await {
            let n = batch.len() as u64;
            if let Err(e) = self.write_batch(import_id, batch).await {
                write_result = Err(e);
                break;
            }
            written += n;
        }
        drop(rx); // stops the reader if writing failed
        let produced = match producer.await {
            Ok(r) => r,
            Err(join) => Err(Error::File {
                path: path.clone(),
                source: std::io::Error::other(format!("the reader thread failed: {join}")),
            }),
        };
        let outcome = write_result.and(produced).and_then(|read| {
            check_quality(&path, &read.report, options)?;
            Ok(read)
        });
        let outcome = match outcome {
            Ok(read) => self.build_indexes(import_id).await.map(|()| read),
            Err(e) => Err(e),
        };
        let read = match outcome {
            Ok(read) => read,
            Err(e) => {
                self.abandon(import_id, &e).await;
                return Err(e);
            }
        };
        debug_assert_eq!(written, read.report.records);

        // The switch: one short transaction (dropping a table frees its pages without
        // touching its rows one by one).
        let generated_at = read
            .inner_name
            .as_deref()
            .and_then(extract::generated_at_from_name)
            .or_else(|| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(extract::generated_at_from_name)
            });
        if let Err(e) = self
            .switch_to(import_id, &read, generated_at.as_deref())
            .await
        {
            self.abandon(import_id, &e).await;
            return Err(e);
        }

        let distinct_addresses: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT DISTINCT address_key FROM bal)")
                .fetch_one(&self.pool)
                .await?;
        let stats = ImportStats {
            import_id,
            replaced: previous,
            source: path,
            inner_name: read.inner_name,
            generated_at,
            sha256: read.sha256,
            parse: read.report,
            distinct_addresses: distinct_addresses as u64,
            elapsed: started.elapsed(),
        };
        info!(
            import_id,
            records = stats.parse.records,
            malformed = stats.parse.malformed,
            seconds = stats.elapsed.as_secs_f64(),
            "Annuaire extraction imported"
        );
        Ok(stats)
    }

    /// Makes the staging table the current `bal`, in one transaction.
    async fn switch_to(
        &self,
        import_id: i64,
        read: &ReadOutcome,
        generated_at: Option<&str>,
    ) -> Result<(), Error> {
        let mut txn = self.pool.begin().await?;
        sqlx::query("DROP TABLE bal").execute(&mut *txn).await?;
        sqlx::query("ALTER TABLE bal_staging RENAME TO bal")
            .execute(&mut *txn)
            .await?;
        sqlx::query("UPDATE imports SET state = 'superseded' WHERE state = 'current'")
            .execute(&mut *txn)
            .await?;
        sqlx::query(
            "UPDATE imports SET state = 'current', finished_at = ?, lines = ?, records = ?, \
             malformed = ?, sha256 = ?, generated_at = ?, inner_name = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(read.report.lines as i64)
        .bind(read.report.records as i64)
        .bind(read.report.malformed as i64)
        .bind(&read.sha256)
        .bind(generated_at)
        .bind(&read.inner_name)
        .bind(import_id)
        .execute(&mut *txn)
        .await?;
        sqlx::query(
            "INSERT INTO current_import (singleton, import_id) VALUES (1, ?) \
             ON CONFLICT (singleton) DO UPDATE SET import_id = excluded.import_id",
        )
        .bind(import_id)
        .execute(&mut *txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    fn lock_imports(&self) -> Result<File, Error> {
        let lock_path = self.data_dir.join(IMPORT_LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::File {
                path: lock_path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(Error::ImportInProgress { path: lock_path })
            }
            Err(std::fs::TryLockError::Error(source)) => Err(Error::File {
                path: lock_path,
                source,
            }),
        }
    }

    /// Marks imports left `running` by a crash as failed and drops their staging table.
    async fn clean_up_abandoned(&self) -> Result<(), Error> {
        let n = sqlx::query(
            "UPDATE imports SET state = 'failed', error = 'interrupted (found at the next import)' \
             WHERE state = 'running'",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n > 0 {
            warn!(
                imports = n,
                "Annuaire imports interrupted earlier; cleaning up"
            );
        }
        sqlx::query("DROP TABLE IF EXISTS bal_staging")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates the staging table from the definition of `bal`, without indexes.
    async fn create_staging(&self) -> Result<(), Error> {
        let sql: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'bal'",
        )
        .fetch_one(&self.pool)
        .await?;
        // `CREATE TABLE bal (...)`, or `CREATE TABLE "bal" (...)` once a rename happened.
        let columns = sql.find('(').map(|i| &sql[i..]).ok_or_else(|| {
            Error::Database(sqlx::Error::Protocol(format!(
                "unexpected definition of table bal: {sql}"
            )))
        })?;
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("CREATE TABLE bal_staging ");
        qb.push(columns);
        qb.build().execute(&self.pool).await?;
        Ok(())
    }

    /// Builds the indexes of the staging table, with names unique to this import.
    async fn build_indexes(&self, import_id: i64) -> Result<(), Error> {
        for (suffix, column) in INDEXES {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "CREATE INDEX bal_{import_id}_{suffix} ON bal_staging ({column})"
            ));
            qb.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn abandon(&self, import_id: i64, why: &Error) {
        let result: Result<(), sqlx::Error> = async {
            sqlx::query(
                "UPDATE imports SET state = 'failed', finished_at = ?, error = ? WHERE id = ?",
            )
            .bind(now_ms())
            .bind(why.to_string())
            .bind(import_id)
            .execute(&self.pool)
            .await?;
            sqlx::query("DROP TABLE IF EXISTS bal_staging")
                .execute(&self.pool)
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn!(import_id, error = %e, "cannot clean up a failed Annuaire import (the next import will)");
        }
    }

    async fn write_batch(&self, import_id: i64, rows: Vec<PreparedRow>) -> Result<(), Error> {
        let mut txn = self.pool.begin().await?;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO bal_staging (import_id, line, bal_type, address, address_key, \
                 person_id_type, person_id, person_national_id, civility, surname, given_name, \
                 surname_key, category_code, category_label, profession_code, profession_label, \
                 profession_key, speciality_code, speciality_label, speciality_key, \
                 dematerialisation, structure_id_type, structure_id, organisation_name, \
                 organisation_sign, service, organisation_key, service_key, address_lines, \
                 delivery_line, postal_code, city, city_key, department, country) ",
            );
            qb.push_values(rows.by_ref().take(ROWS_PER_INSERT), |mut b, row| {
                let PreparedRow { line, entry, keys } = row;
                let p = entry.person.unwrap_or_default();
                let o = entry.organisation.unwrap_or_default();
                let (category_code, category_label) = split(entry.profession_category);
                let (profession_code, profession_label) = split(entry.profession);
                let (speciality_code, speciality_label) = split(entry.speciality);
                let loc = entry.location;
                let lines = (!loc.lines.is_empty()).then(|| loc.lines.join("\n"));
                b.push_bind(import_id)
                    .push_bind(line as i64)
                    .push_bind(entry.mailbox.bal_type.code().to_string())
                    .push_bind(entry.mailbox.address)
                    .push_bind(keys.address)
                    .push_bind(p.id_type)
                    .push_bind(p.id)
                    .push_bind(p.national_id)
                    .push_bind(p.civility)
                    .push_bind(p.surname)
                    .push_bind(p.given_name)
                    .push_bind(keys.surname)
                    .push_bind(category_code)
                    .push_bind(category_label)
                    .push_bind(profession_code)
                    .push_bind(profession_label)
                    .push_bind(keys.profession)
                    .push_bind(speciality_code)
                    .push_bind(speciality_label)
                    .push_bind(keys.speciality)
                    .push_bind(entry.dematerialisation.map(i64::from))
                    .push_bind(o.id_type)
                    .push_bind(o.id)
                    .push_bind(o.name)
                    .push_bind(o.sign)
                    .push_bind(o.service)
                    .push_bind(keys.organisation)
                    .push_bind(keys.service)
                    .push_bind(lines)
                    .push_bind(loc.delivery_line)
                    .push_bind(loc.postal_code)
                    .push_bind(loc.city)
                    .push_bind(keys.city)
                    .push_bind(loc.department)
                    .push_bind(loc.country);
            });
            qb.build().execute(&mut *txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Searches the current import.
    pub async fn search(&self, query: &Query) -> Result<Matches, Error> {
        let rpps = query.validate()?;
        self.current_id().await?;
        // `bal` holds the current import only; `1` starts the list of AND-ed conditions.
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {SELECT_COLUMNS} FROM bal WHERE 1"));
        if let Some(r) = rpps {
            qb.push(" AND (person_id = ")
                .push_bind(r.clone())
                .push(" OR person_national_id = ")
                .push_bind(r)
                .push(")");
        }
        if let Some(name) = &query.name_prefix {
            let k = fold::key(name);
            qb.push(" AND (");
            for (i, col) in ["surname_key", "organisation_key", "service_key"]
                .iter()
                .enumerate()
            {
                if i > 0 {
                    qb.push(" OR ");
                }
                push_prefix(&mut qb, col, &k);
            }
            qb.push(")");
        }
        for (criterion, code_col, key_col) in [
            (&query.profession, "profession_code", "profession_key"),
            (&query.speciality, "speciality_code", "speciality_key"),
        ] {
            match criterion {
                Some(CodeOrLabel::Code(c)) => {
                    qb.push(format!(" AND {code_col} = "))
                        .push_bind(c.trim().to_string());
                }
                Some(CodeOrLabel::Label(l)) => {
                    qb.push(" AND ");
                    push_prefix(&mut qb, key_col, &fold::key(l));
                }
                None => {}
            }
        }
        if let Some(city) = &query.city {
            let c = city.trim();
            if c.len() == 5 && c.bytes().all(|b| b.is_ascii_digit()) {
                qb.push(" AND postal_code = ").push_bind(c.to_string());
            } else {
                qb.push(" AND city_key = ").push_bind(fold::key(c));
            }
        }
        if !query.bal_types.is_empty() {
            qb.push(" AND bal_type IN (");
            let mut sep = qb.separated(", ");
            for t in &query.bal_types {
                sep.push_bind(t.code().to_string());
            }
            qb.push(")");
        }
        // People first (by surname), then organisations.
        qb.push(
            " ORDER BY surname_key = '', surname_key, given_name, organisation_key, service_key, \
             address_key LIMIT ",
        )
        .push_bind((query.limit + 1) as i64);
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut entries: Vec<Entry> = rows.iter().map(entry_from_row).collect();
        let truncated = entries.len() > query.limit;
        entries.truncate(query.limit);
        Ok(Matches { entries, truncated })
    }

    /// The entry of an address, if it is in the current import (case-insensitive).
    pub async fn find_address(&self, address: &str) -> Result<Option<Entry>, Error> {
        self.current_id().await?;
        let key = address_key(address);
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {SELECT_COLUMNS} FROM bal WHERE address_key = "
        ));
        qb.push_bind(key).push(" ORDER BY line LIMIT 1");
        let row = qb.build().fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(entry_from_row))
    }
}

/// A coded value's code and label.
fn split(c: Option<Coded>) -> (Option<String>, Option<String>) {
    c.map_or((None, None), |c| (c.code, c.label))
}

/// `col >= key AND col < upper_bound(key)`: a prefix match that uses the column's index.
fn push_prefix(qb: &mut QueryBuilder<Sqlite>, col: &str, key: &str) {
    qb.push(format!("({col} >= "))
        .push_bind(key.to_string())
        .push(format!(" AND {col} < "))
        .push_bind(fold::upper_bound(key))
        .push(")");
}

/// The key an address is compared on: trimmed, without angle brackets, lower case.
pub(crate) fn address_key(address: &str) -> String {
    let a = address.trim();
    let a = a
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a);
    a.trim().to_lowercase()
}

const SELECT_COLUMNS: &str = "bal_type, address, person_id_type, person_id, \
    person_national_id, civility, surname, given_name, category_code, category_label, \
    profession_code, profession_label, speciality_code, speciality_label, dematerialisation, \
    structure_id_type, structure_id, organisation_name, organisation_sign, service, \
    address_lines, delivery_line, postal_code, city, department, country";

fn entry_from_row(r: &SqliteRow) -> Entry {
    let s = |i: usize| -> Option<String> { r.get::<Option<String>, _>(i) };
    let person = Person {
        id_type: s(2),
        id: s(3),
        national_id: s(4),
        civility: s(5),
        surname: s(6),
        given_name: s(7),
    };
    let organisation = Organisation {
        id_type: s(15),
        id: s(16),
        name: s(17),
        sign: s(18),
        service: s(19),
    };
    Entry {
        mailbox: Mailbox {
            address: r.get(1),
            bal_type: BalType::from_code(&r.get::<String, _>(0)),
        },
        person: (person != Person::default()).then_some(person),
        profession_category: Coded::new(s(8), s(9)),
        profession: Coded::new(s(10), s(11)),
        speciality: Coded::new(s(12), s(13)),
        dematerialisation: r.get::<Option<i64>, _>(14).map(|v| v != 0),
        organisation: (organisation != Organisation::default()).then_some(organisation),
        location: Location {
            lines: s(20)
                .map(|l| l.split('\n').map(str::to_string).collect())
                .unwrap_or_default(),
            delivery_line: s(21),
            postal_code: s(22),
            city: s(23),
            department: s(24),
            country: s(25),
        },
    }
}

/// Search keys of a record, computed on the reader thread.
struct Keys {
    address: String,
    surname: String,
    profession: String,
    speciality: String,
    organisation: String,
    service: String,
    city: String,
}

struct PreparedRow {
    line: u64,
    entry: Entry,
    keys: Keys,
}

impl PreparedRow {
    fn new(record: Record) -> PreparedRow {
        let e = &record.entry;
        let key = |v: Option<&String>| v.map(|v| fold::key(v)).unwrap_or_default();
        let o = e.organisation.as_ref();
        let keys = Keys {
            address: address_key(&e.mailbox.address),
            surname: key(e.person.as_ref().and_then(|p| p.surname.as_ref())),
            profession: key(e.profession.as_ref().and_then(|c| c.label.as_ref())),
            speciality: key(e.speciality.as_ref().and_then(|c| c.label.as_ref())),
            organisation: key(o.and_then(|o| o.name.as_ref().or(o.sign.as_ref()))),
            service: key(o.and_then(|o| o.service.as_ref())),
            city: key(e.location.city.as_ref()),
        };
        PreparedRow {
            line: record.line,
            entry: record.entry,
            keys,
        }
    }
}

struct ReadOutcome {
    report: ParseReport,
    sha256: String,
    inner_name: Option<String>,
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads the extraction (text or ZIP) and sends prepared rows in batches; runs on a blocking
/// thread. Stops early when the receiver is gone.
fn read_extract(
    path: &Path,
    max_line: usize,
    tx: mpsc::Sender<Vec<PreparedRow>>,
) -> Result<ReadOutcome, Error> {
    let file_err = |source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(file_err)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(file_err)?;
    file.seek(SeekFrom::Start(0)).map_err(file_err)?;
    if n == 4 && magic == *b"PK\x03\x04" {
        let zip_err = |reason: String| Error::Zip {
            path: path.to_path_buf(),
            reason,
        };
        let mut archive =
            zip::ZipArchive::new(file).map_err(|e| zip_err(format!("not a readable ZIP: {e}")))?;
        let texts: Vec<(usize, String)> = (0..archive.len())
            .filter_map(|i| {
                let name = archive.name_for_index(i)?.ok()?.into_owned();
                name.to_ascii_lowercase()
                    .ends_with(".txt")
                    .then_some((i, name))
            })
            .collect();
        let (index, name) = match texts.as_slice() {
            [one] => one.clone(),
            [] => return Err(zip_err("the ZIP holds no .txt file".into())),
            _ => {
                return Err(zip_err(format!(
                    "the ZIP holds {} .txt files; expected one extraction",
                    texts.len()
                )));
            }
        };
        let entry = archive
            .by_index(index)
            .map_err(|e| zip_err(format!("cannot read {name}: {e}")))?;
        if entry.size() > MAX_EXTRACT_SIZE {
            return Err(zip_err(format!(
                "{name} would decompress to {} bytes, more than the {MAX_EXTRACT_SIZE} accepted",
                entry.size()
            )));
        }
        let mut outcome = read_text(path, entry.take(MAX_EXTRACT_SIZE), max_line, tx)?;
        outcome.inner_name = Some(name);
        Ok(outcome)
    } else {
        read_text(path, file, max_line, tx)
    }
}

fn read_text<R: Read>(
    path: &Path,
    source: R,
    max_line: usize,
    tx: mpsc::Sender<Vec<PreparedRow>>,
) -> Result<ReadOutcome, Error> {
    let hashing = HashingReader {
        inner: source,
        hasher: Sha256::new(),
    };
    let buffered = BufReader::with_capacity(256 * 1024, hashing);
    let mut reader =
        ExtractReader::with_max_line(buffered, max_line).map_err(|source| Error::Extract {
            path: path.to_path_buf(),
            source,
        })?;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    for record in reader.by_ref() {
        let record = record.map_err(|source| Error::Extract {
            path: path.to_path_buf(),
            source,
        })?;
        batch.push(PreparedRow::new(record));
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if tx.blocking_send(full).is_err() {
                // The writer stopped; it reports why.
                break;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
    let (buffered, report) = reader.finish();
    let sha256 = hex::encode(buffered.into_inner().hasher.finalize());
    Ok(ReadOutcome {
        report,
        sha256,
        inner_name: None,
    })
}

fn check_quality(path: &Path, report: &ParseReport, options: &ImportOptions) -> Result<(), Error> {
    if report.records == 0 {
        return Err(Error::NoRecords {
            path: path.to_path_buf(),
        });
    }
    let data_lines = report.lines.saturating_sub(1).max(1);
    let percent = report.malformed as f64 * 100.0 / data_lines as f64;
    let refuse = if data_lines >= SMALL_FILE_LINES {
        percent > options.max_malformed_percent
    } else {
        report.malformed > report.records
    };
    if refuse {
        let first: Vec<String> = report
            .issues
            .iter()
            .take(3)
            .map(|i| i.to_string())
            .collect();
        return Err(Error::TooManyMalformed {
            path: path.to_path_buf(),
            malformed: report.malformed,
            lines: report.lines,
            max_percent: options.max_malformed_percent,
            first: first.join("; "),
        });
    }
    Ok(())
}
