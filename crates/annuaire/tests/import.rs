//! The extraction imported into SQLite: import, atomic replacement, searches by every
//! criterion, hostile input, ZIP input, and a 200,000-line import timing (ignored by default).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use relais_annuaire::error::Error;
use relais_annuaire::extract::{Problem, published_header};
use relais_annuaire::store::IMPORT_LOCK_FILE;
use relais_annuaire::{AnnuaireDb, BalType, CodeOrLabel, Directory, Query};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/extraction-sample.txt")
}

async fn imported() -> (tempfile::TempDir, AnnuaireDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = AnnuaireDb::open(dir.path()).await.unwrap();
    db.import_extract(sample()).await.unwrap();
    (dir, db)
}

fn addresses(m: &relais_annuaire::Matches) -> Vec<&str> {
    m.entries
        .iter()
        .map(|e| e.mailbox.address.as_str())
        .collect()
}

async fn find(db: &AnnuaireDb, q: Query) -> Vec<String> {
    let mut v: Vec<String> = db
        .search(&q)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.mailbox.address)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn import_reports_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = AnnuaireDb::open(dir.path()).await.unwrap();
    assert!(db.current_import().await.unwrap().is_none());
    let stats = db.import_extract(sample()).await.unwrap();
    assert_eq!(stats.parse.lines, 13);
    assert_eq!(stats.parse.records, 10);
    assert_eq!(stats.parse.malformed, 2);
    assert_eq!(stats.parse.issues[0].line, 12);
    assert!(matches!(
        stats.parse.issues[0].problem,
        Problem::FieldCount {
            found: 4,
            expected: 31
        }
    ));
    assert_eq!(stats.parse.issues[1].line, 13);
    assert_eq!(stats.parse.issues[1].problem, Problem::InvalidAddress);
    assert_eq!(stats.parse.by_type.get("PER"), Some(&7));
    assert_eq!(stats.parse.by_type.get("ORG"), Some(&1));
    assert_eq!(stats.parse.by_type.get("APP"), Some(&1));
    assert_eq!(stats.parse.by_type.get("CAB"), Some(&1));
    assert_eq!(stats.distinct_addresses, 10);
    assert_eq!(stats.replaced, None);
    assert_eq!(stats.sha256.len(), 64);
    let text = stats.to_string();
    assert!(
        text.contains("10 mailboxes (APP 1, CAB 1, ORG 1, PER 7)"),
        "{text}"
    );
    assert!(
        text.contains("line 12: 4 fields where the header has 31 columns"),
        "{text}"
    );
    // The summary names lines, never what they hold.
    assert!(
        !text.contains("INVALIDE") && !text.contains("tronquee"),
        "{text}"
    );
    let current = db.current_import().await.unwrap().unwrap();
    assert_eq!(current.id, stats.import_id);
    assert_eq!(current.records, 10);
    assert_eq!(db.path(), dir.path().join("annuaire.sqlite"));
}

#[tokio::test]
async fn search_by_rpps_and_resolve_mailboxes() {
    let (_dir, db) = imported().await;
    assert_eq!(
        find(&db, Query::by_rpps("10999999001")).await,
        vec![
            "s.martin@cabinet-fictif.mssante.test",
            "sophie.martin@chu-fictif.mssante.test"
        ]
    );
    // The national identifier (8 + RPPS) and ADELI numbers work too.
    assert_eq!(find(&db, Query::by_rpps("810999999001")).await.len(), 2);
    assert_eq!(
        find(&db, Query::by_rpps("999999005")).await,
        vec!["charles.dartagnan@infirmiers-fictifs.mssante.test"]
    );
    assert!(find(&db, Query::by_rpps("10999999999")).await.is_empty());

    let dirx: &dyn Directory = &db;
    let boxes = dirx.mailboxes_for_rpps("10999999001").await.unwrap();
    assert_eq!(boxes.len(), 2);
    assert!(boxes.iter().all(|b| b.bal_type == BalType::Per));
    assert!(
        dirx.mailboxes_for_rpps("10999999999")
            .await
            .unwrap()
            .is_empty()
    );

    let e = &db
        .search(&Query::by_rpps("10999999002"))
        .await
        .unwrap()
        .entries[0];
    let p = e.person.as_ref().unwrap();
    assert_eq!(p.surname.as_deref(), Some("LEFÈVRE"));
    assert_eq!(p.given_name.as_deref(), Some("Éric"));
    assert_eq!(e.speciality.as_ref().unwrap().code.as_deref(), Some("SM04"));
    assert_eq!(e.dematerialisation, Some(true));
    assert_eq!(e.location.city.as_deref(), Some("VILLE-FICTIVE"));
    assert_eq!(
        e.location.lines,
        vec!["1 R DES ESSAIS CLINIQUES".to_string()]
    );
    assert_eq!(
        e.to_string(),
        "eric.lefevre@chu-fictif.mssante.test [PER] DR LEFÈVRE Éric (RPPS 10999999002) - Médecin, \
         Cardiologie et maladies vasculaires - CARDIOLOGIE, CHU FICTIF DE VILLE-FICTIVE, \
         99001 VILLE-FICTIVE"
    );
}

#[tokio::test]
async fn search_by_name_prefix_accent_and_case_insensitive() {
    let (_dir, db) = imported().await;
    for typed in ["lefevre", "LEFÈ", "Lefe", "lefèvre"] {
        assert_eq!(
            find(&db, Query::by_name_prefix(typed)).await,
            vec!["eric.lefevre@chu-fictif.mssante.test"],
            "{typed}"
        );
    }
    assert_eq!(
        find(&db, Query::by_name_prefix("dur")).await,
        vec![
            "helene.durand@pharmacie-fictive.mssante.test",
            "paul.durant@maternite-fictive.mssante.test"
        ]
    );
    assert_eq!(find(&db, Query::by_name_prefix("Durand")).await.len(), 1);
    assert_eq!(
        find(&db, Query::by_name_prefix("saint jean")).await.len(),
        1
    );
    assert_eq!(find(&db, Query::by_name_prefix("Saint-J")).await.len(), 1);
    assert_eq!(find(&db, Query::by_name_prefix("d'artag")).await.len(), 1);
    // Organisation and service names.
    assert_eq!(
        find(&db, Query::by_name_prefix("pharmacie fict")).await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );
    assert!(
        find(&db, Query::by_name_prefix("cardiolog"))
            .await
            .contains(&"cardiologie@chu-fictif.mssante.test".to_string())
    );
    // Results come sorted by surname.
    let m = db.search(&Query::by_name_prefix("d")).await.unwrap();
    assert_eq!(
        addresses(&m),
        vec![
            "charles.dartagnan@infirmiers-fictifs.mssante.test",
            "helene.durand@pharmacie-fictive.mssante.test",
            "paul.durant@maternite-fictive.mssante.test",
            // Its service is "DOSSIER PATIENT INFORMATISE"; organisations come after people.
            "dpi@chu-fictif.mssante.test",
        ]
    );
}

#[tokio::test]
async fn search_by_profession_speciality_city_and_type() {
    let (_dir, db) = imported().await;
    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        q
    };
    assert_eq!(
        find(
            &db,
            q(|q| q.profession = Some(CodeOrLabel::Code("21".into())))
        )
        .await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );
    assert_eq!(
        find(
            &db,
            q(|q| q.profession = Some(CodeOrLabel::Label("médecin".into())))
        )
        .await
        .len(),
        4
    );
    assert_eq!(
        find(
            &db,
            q(|q| q.profession = Some(CodeOrLabel::Label("SAGE".into())))
        )
        .await,
        vec!["paul.durant@maternite-fictive.mssante.test"]
    );
    assert_eq!(
        find(
            &db,
            q(|q| q.speciality = Some(CodeOrLabel::Code("SM04".into())))
        )
        .await,
        vec!["eric.lefevre@chu-fictif.mssante.test"]
    );
    assert_eq!(
        find(
            &db,
            q(|q| q.speciality = Some(CodeOrLabel::Label("qualifie en med".into())))
        )
        .await
        .len(),
        3
    );
    // Town from the delivery line, without CEDEX and district numbers.
    assert_eq!(
        find(&db, q(|q| q.city = Some("saint-fictif".into()))).await,
        vec!["helene.durand@pharmacie-fictive.mssante.test"]
    );
    assert_eq!(
        find(&db, q(|q| q.city = Some("Lyon Fictif".into()))).await,
        vec!["marc.saint-jean@chu-fictif.mssante.test"]
    );
    assert_eq!(
        find(&db, q(|q| q.city = Some("ville-fictive".into())))
            .await
            .len(),
        6
    );
    // A postal code.
    assert_eq!(
        find(&db, q(|q| q.city = Some("99100".into()))).await,
        vec![
            "accueil@cabinet-fictif.mssante.test",
            "s.martin@cabinet-fictif.mssante.test"
        ]
    );
    // Criteria combine.
    assert_eq!(
        find(
            &db,
            q(|q| {
                q.profession = Some(CodeOrLabel::Code("10".into()));
                q.city = Some("Ville-Fictive".into());
            })
        )
        .await,
        vec![
            "eric.lefevre@chu-fictif.mssante.test",
            "sophie.martin@chu-fictif.mssante.test"
        ]
    );
    assert_eq!(
        find(
            &db,
            q(|q| {
                q.city = Some("ville fictive".into());
                q.bal_types = vec![BalType::Org, BalType::App];
            })
        )
        .await,
        vec![
            "cardiologie@chu-fictif.mssante.test",
            "dpi@chu-fictif.mssante.test"
        ]
    );
    // Limits.
    let m = db
        .search(&Query {
            city: Some("ville-fictive".into()),
            limit: 2,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(m.entries.len(), 2);
    assert!(m.truncated);
    let m = db
        .search(&Query {
            city: Some("ville-fictive".into()),
            limit: 6,
            ..Query::default()
        })
        .await
        .unwrap();
    assert!(!m.truncated);
}

#[tokio::test]
async fn hostile_input_finds_nothing_and_is_never_sql() {
    let (_dir, db) = imported().await;
    for hostile in [
        "*)(uid=*",
        "' OR '1'='1",
        "x' OR 1=1 --",
        "%",
        "_",
        "\0",
        "durand'; DROP TABLE bal; --",
    ] {
        match db.search(&Query::by_name_prefix(hostile)).await {
            Ok(m) => assert!(
                m.entries.is_empty(),
                "{hostile:?} found {:?}",
                addresses(&m)
            ),
            Err(Error::Query(_)) => {}
            Err(e) => panic!("{hostile:?}: {e}"),
        }
        let city = Query {
            city: Some(hostile.into()),
            ..Query::default()
        };
        if let Ok(m) = db.search(&city).await {
            assert!(m.entries.is_empty(), "{hostile:?}");
        }
        assert!(db.find_address(hostile).await.unwrap().is_none());
    }
    assert!(matches!(
        db.search(&Query::by_rpps("1' OR '1'='1")).await,
        Err(Error::Query(_))
    ));
    // Still all there.
    assert_eq!(find(&db, Query::by_name_prefix("dur")).await.len(), 2);
}

#[tokio::test]
async fn find_address_case_insensitively() {
    let (_dir, db) = imported().await;
    let e = db
        .find_address("<Sophie.Martin@CHU-Fictif.MSSante.test>")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.mailbox.address, "sophie.martin@chu-fictif.mssante.test");
    let dirx: &dyn Directory = &db;
    assert_eq!(
        dirx.find_address("dpi@chu-fictif.mssante.test")
            .await
            .unwrap()
            .unwrap()
            .mailbox
            .bal_type,
        BalType::App
    );
    assert!(
        dirx.find_address("inconnu@chu-fictif.mssante.test")
            .await
            .unwrap()
            .is_none()
    );
    assert!(dirx.describe().contains("annuaire.sqlite"));
}

#[tokio::test]
async fn nothing_imported_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = AnnuaireDb::open(dir.path()).await.unwrap();
    let e = db.search(&Query::by_name_prefix("dur")).await.unwrap_err();
    assert!(e.to_string().contains("relais annuaire import"), "{e}");
    assert!(matches!(
        db.search(&Query::default()).await,
        Err(Error::Query(_))
    ));
}

fn write_extract(path: &Path, lines: &[&str]) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "{}", published_header()).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn line(bal_type: &str, address: &str, surname: &str) -> String {
    let mut v = vec![""; 31];
    v[0] = bal_type;
    v[1] = address;
    v[9] = surname;
    v.join("|")
}

#[tokio::test]
async fn a_new_import_replaces_the_previous_one_and_a_failed_one_changes_nothing() {
    let (dir, db) = imported().await;
    let first = db.current_import().await.unwrap().unwrap();

    // A bad file: the previous extraction stays in use.
    let bad = dir.path().join("not-an-extraction.csv");
    std::fs::write(&bad, "nom;prenom\nDURAND;Hélène\n").unwrap();
    let e = db.import_extract(&bad).await.unwrap_err();
    assert!(matches!(e, Error::Extract { .. }), "{e}");
    assert!(e.to_string().contains("Type de BAL"), "{e}");
    // Mostly garbage: refused as a whole.
    let garbage = dir.path().join("garbage.txt");
    let mut lines = vec![line("PER", "ok@x.mssante.test", "OK")];
    lines.extend((0..9).map(|i| format!("PER|broken{i}")));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    write_extract(&garbage, &refs);
    let e = db.import_extract(&garbage).await.unwrap_err();
    assert!(
        matches!(e, Error::TooManyMalformed { malformed: 9, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("the previous import stays in use"),
        "{e}"
    );
    // No mailbox at all.
    let empty = dir.path().join("empty.txt");
    write_extract(&empty, &[]);
    assert!(matches!(
        db.import_extract(&empty).await,
        Err(Error::NoRecords { .. })
    ));
    assert_eq!(db.current_import().await.unwrap().unwrap(), first);
    assert_eq!(find(&db, Query::by_name_prefix("dur")).await.len(), 2);

    // A daemon that has the database open (another handle, another process in production)
    // sees the new import as soon as it is switched in.
    let daemon = AnnuaireDb::open(dir.path()).await.unwrap();
    assert_eq!(find(&daemon, Query::by_name_prefix("dur")).await.len(), 2);

    // A good new extraction replaces it entirely.
    let second = dir
        .path()
        .join("Extraction_Correspondance_MSSante_202608261013.txt");
    write_extract(
        &second,
        &[
            &line(
                "PER",
                "nouveau.medecin@autre-fictif.mssante.test",
                "NOUVEAU",
            ),
            &line("ORG", "secretariat@autre-fictif.mssante.test", ""),
        ],
    );
    let stats = db.import_extract(&second).await.unwrap();
    assert_eq!(stats.replaced, Some(first.id));
    assert_eq!(stats.generated_at.as_deref(), Some("2026-08-26T10:13"));
    assert!(find(&db, Query::by_name_prefix("dur")).await.is_empty());
    assert_eq!(find(&db, Query::by_name_prefix("nouv")).await.len(), 1);
    let current = db.current_import().await.unwrap().unwrap();
    assert_eq!(current.id, stats.import_id);
    assert_eq!(current.generated_at.as_deref(), Some("2026-08-26T10:13"));
    assert!(find(&daemon, Query::by_name_prefix("dur")).await.is_empty());
    assert_eq!(find(&daemon, Query::by_name_prefix("nouv")).await.len(), 1);

    // Only the current import's rows remain, and the history says what happened.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.path().display()))
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT import_id FROM bal")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![stats.import_id]);
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM imports ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        states,
        ["superseded", "failed", "failed", "failed", "current"]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bal' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(indexes.len(), 7, "{indexes:?}");
    assert!(
        indexes
            .iter()
            .all(|i| i.starts_with(&format!("bal_{}_", stats.import_id))),
        "{indexes:?}"
    );
    pool.close().await;
}

#[tokio::test]
async fn an_interrupted_import_is_cleaned_up_by_the_next_one() {
    let (_dir, db) = imported().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.path().display()))
        .await
        .unwrap();
    // What a crash in the middle of an import leaves: a running import and its staging table.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO imports (source, started_at, state) VALUES ('crashed', 0, 'running') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE TABLE bal_staging AS SELECT * FROM bal WHERE 0")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO bal_staging (import_id, line, bal_type, address, address_key, surname_key) \
         VALUES (?, 2, 'PER', 'fantome@x.mssante.test', 'fantome@x.mssante.test', 'fantome')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    // Searches never see it.
    assert!(find(&db, Query::by_name_prefix("fantome")).await.is_empty());
    assert_eq!(find(&db, Query::by_name_prefix("dur")).await.len(), 2);
    db.import_extract(sample()).await.unwrap();
    assert!(find(&db, Query::by_name_prefix("fantome")).await.is_empty());
    let state: String = sqlx::query_scalar("SELECT state FROM imports WHERE id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "failed");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!tables.contains(&"bal_staging".to_string()), "{tables:?}");
    pool.close().await;
}

#[tokio::test]
async fn one_import_at_a_time() {
    let (dir, db) = imported().await;
    let lock = std::fs::File::options()
        .write(true)
        .open(dir.path().join(IMPORT_LOCK_FILE))
        .unwrap();
    lock.lock().unwrap();
    let e = db.import_extract(sample()).await.unwrap_err();
    assert!(matches!(e, Error::ImportInProgress { .. }), "{e}");
    lock.unlock().unwrap();
    db.import_extract(sample()).await.unwrap();
}

#[tokio::test]
async fn the_zip_the_ans_serves_is_read_directly() {
    let dir = tempfile::tempdir().unwrap();
    let db = AnnuaireDb::open(dir.path().join("data")).await.unwrap();
    let zip_path = dir
        .path()
        .join("Extraction_Correspondance_MSSante_202601020304.zip");
    let text = std::fs::read(sample()).unwrap();
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("Extraction_Correspondance_MSSante_202601020304.txt", opts)
            .unwrap();
        z.write_all(&text).unwrap();
        z.finish().unwrap();
    }
    let stats = db.import_extract(&zip_path).await.unwrap();
    assert_eq!(stats.parse.records, 10);
    assert_eq!(
        stats.inner_name.as_deref(),
        Some("Extraction_Correspondance_MSSante_202601020304.txt")
    );
    assert_eq!(stats.generated_at.as_deref(), Some("2026-01-02T03:04"));
    // The digest is the text's, the same as importing the .txt itself.
    let direct = db.import_extract(sample()).await.unwrap();
    assert_eq!(stats.sha256, direct.sha256);

    let two = dir.path().join("two.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&two).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for n in ["a.txt", "b.txt"] {
            z.start_file(n, opts).unwrap();
            z.write_all(&text).unwrap();
        }
        z.finish().unwrap();
    }
    let e = db.import_extract(&two).await.unwrap_err();
    assert!(e.to_string().contains("2 .txt files"), "{e}");
}

/// Timing of a generated 200,000-line extraction (fictional rows with the published layout).
/// Run with `cargo test -p relais-annuaire --release --test import -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing, not a check: run it explicitly"]
async fn import_200k_lines_timing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("Extraction_Correspondance_MSSante_209901010000.txt");
    let n = 200_000;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        writeln!(f, "{}", published_header()).unwrap();
        let surnames = [
            "MARTIN",
            "LEFÈVRE",
            "DURAND",
            "SAINT-JEAN",
            "D'ARTAGNAN",
            "MOREAU",
        ];
        for i in 0..n {
            let s = surnames[i % surnames.len()];
            let per = i % 5 != 0;
            writeln!(
                f,
                "{}|prenom.nom{i}@etab{}.mssante.test|{}|{}|{}|3|9990{:05}|{}|{}|{}|Prénom{}|C|Civil|10|Médecin|SM26|Qualifié en Médecine Générale|O|ETABLISSEMENT FICTIF {}||||{}||R|DES ESSAIS||{} VILLE-FICTIVE-{}|{}|99|99100",
                if per { "PER" } else { "ORG" },
                i % 3000,
                if per { "8" } else { "" },
                if per { format!("1099{i:07}") } else { String::new() },
                if per { format!("81099{i:07}") } else { String::new() },
                i % 3000,
                if per { "" } else { "SECRETARIAT" },
                if per { "DR" } else { "" },
                if per { format!("{s}{}", i % 1000) } else { String::new() },
                i % 100,
                i % 3000,
                i % 200,
                99000 + i % 900,
                i % 900,
                99000 + i % 900,
            )
            .unwrap();
        }
    }
    let size = std::fs::metadata(&path).unwrap().len();
    // Reading alone (parse and search keys), for comparison with the whole import.
    let t = Instant::now();
    let reader = relais_annuaire::extract::ExtractReader::new(std::io::BufReader::new(
        std::fs::File::open(&path).unwrap(),
    ))
    .unwrap();
    let mut keys = 0usize;
    for r in reader {
        let e = r.unwrap().entry;
        let surname = e.person.and_then(|p| p.surname).unwrap_or_default();
        keys += relais_annuaire::fold::key(&surname).len();
    }
    let parse = t.elapsed();
    assert!(keys > 0);
    let db = AnnuaireDb::open(dir.path().join("data")).await.unwrap();
    let t = Instant::now();
    let stats = db.import_extract(&path).await.unwrap();
    let first = t.elapsed();
    assert_eq!(stats.parse.records, n as u64);
    assert_eq!(stats.parse.malformed, 0);
    let t = Instant::now();
    let again = db.import_extract(&path).await.unwrap();
    let second = t.elapsed();
    let t = Instant::now();
    let m = db.search(&Query::by_name_prefix("durand1")).await.unwrap();
    let search = t.elapsed();
    let t = Instant::now();
    let r = db.search(&Query::by_rpps("10990012346")).await.unwrap();
    let by_rpps = t.elapsed();
    println!(
        "import of {n} lines ({:.1} MB): {:.2} s into an empty database ({:.0} lines/s), \
         {:.2} s replacing the previous import (reading alone: {:.2} s); name prefix search: \
         {} entries in {:.1} ms; RPPS search: {} entries in {:.2} ms",
        size as f64 / 1e6,
        first.as_secs_f64(),
        n as f64 / first.as_secs_f64(),
        second.as_secs_f64(),
        parse.as_secs_f64(),
        m.entries.len(),
        search.as_secs_f64() * 1e3,
        r.entries.len(),
        by_rpps.as_secs_f64() * 1e3,
    );
    assert_eq!(again.replaced, Some(stats.import_id));
}
