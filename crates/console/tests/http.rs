//! The console over real HTTP(S) connections: an engine that ran on the bundled samples, the
//! console on a loopback port, requests as a browser would send them (cookies, forms, CSRF
//! tokens), and the journal checked behind every action.

mod common;

use common::*;
use relais_store::{MessageId, MessageState, PatientRecord, ReviewFilter, ReviewStatus};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_headers_and_login_are_as_they_should() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine.clone(), &users, None).await;
    let mut http = Http::new(&console.running.url(), None);

    // Probes need no login.
    let health = http.get("/health").await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let ready = http.get("/ready").await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));

    // Every page wants a session.
    for path in [
        "/dashboard",
        "/messages",
        "/messages/1",
        "/reviews",
        "/messages/1/eml",
    ] {
        let a = http.get(path).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.header("location"), "/login", "{path}");
    }

    // Security headers on every answer.
    let login = http.get("/login").await;
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(login.header("x-frame-options"), "DENY");
    assert_eq!(login.header("x-content-type-options"), "nosniff");
    assert_eq!(login.header("cache-control"), "no-store");
    assert!(!login.text().contains("<script"), "no script anywhere");
    let css = http.get("/static/style.css").await;
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");

    // Wrong password: 401, no session. A login form posted without its token: refused.
    let bad = http.login((OPERATOR.0, "not the passphrase at all")).await;
    assert_eq!(bad.status, 401);
    assert!(bad.text().contains("Wrong account name or password"));
    let forged = http
        .post(
            "/login",
            &[
                ("name", OPERATOR.0),
                ("password", OPERATOR.1),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);

    // The right password: a session cookie, HttpOnly and SameSite=Strict.
    let ok = http.login(OPERATOR).await;
    assert_eq!(ok.status, 303, "{}", ok.text());
    assert_eq!(ok.header("location"), "/dashboard");
    let sc = http
        .set_cookies
        .iter()
        .find(|c| c.starts_with("relais-session="))
        .expect("a session cookie")
        .clone();
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Strict"),
        "{sc}"
    );
    let dash = http.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(dash.text().contains("alice"));

    // Logging out ends the session on the server: the old cookie no longer opens anything.
    let old = http.cookies.clone();
    let csrf = dash.csrf();
    let out = http.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    http.cookies = old;
    assert_eq!(http.get("/dashboard").await.status, 303);

    let _ = console.stop.send(true);
    console.running.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_lock_the_account_for_a_while() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine, &users, None).await;
    let mut http = Http::new(&console.running.url(), None);
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(
            http.login((VIEWER.0, "wrong wrong wrong")).await.status,
            401
        );
    }
    // Each failure is answered after a delay.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Now even the right password is refused, without a hint whether it was right.
    let locked = http.login(VIEWER).await;
    assert_eq!(locked.status, 429);
    assert!(locked.text().contains("Too many failed logins"));
    // Another account is not locked.
    assert_eq!(http.login(OPERATOR).await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_browses_searches_and_acts_with_the_audit_trail_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine.clone(), &users, None).await;
    let mut http = Http::new(&console.running.url(), None);
    assert_eq!(http.login(OPERATOR).await.status, 303);

    // Dashboard: the counts of the journal and the source's row.
    let dash = http.get("/dashboard").await.text();
    assert!(dash.contains("inbox"), "{dash}");
    assert!(dash.contains("open review items"));
    assert!(dash.contains("Queue depth"));

    // Browser: state filter, sender search, document type, IPP, and escaping of what was typed.
    let rejected = http.get("/messages?state=rejected").await.text();
    assert_eq!(
        rejected.matches("badge st-rejected").count(),
        2,
        "{rejected}"
    );
    let all = http.get("/messages").await.text();
    assert_eq!(all.matches("href=\"/messages/").count(), 4, "{all}");
    let by_type = http.get("/messages?doctype=11502-2").await.text();
    assert_eq!(by_type.matches("href=\"/messages/").count(), 1, "{by_type}");
    let sender = sample("mail/cr-bio-n1.eml");
    let from = mail_from(&sender);
    let domain = from.split('@').nth(1).unwrap().to_string();
    let by_sender = http.get(&format!("/messages?sender={domain}")).await.text();
    assert!(
        by_sender.matches("href=\"/messages/").count() >= 1,
        "{by_sender}"
    );
    assert!(by_sender.contains(&from));
    let none = http.get("/messages?ipp=NOBODY").await.text();
    assert!(none.contains("No message matches"));
    let evil = http
        .get("/messages?sender=%3Cscript%3Ealert(1)%3C/script%3E")
        .await
        .text();
    assert!(evil.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !evil.contains("<script>"));
    let bad_date = http.get("/messages?from=31/12/2024").await.text();
    assert!(bad_date.contains("is not a date"));

    // A rejected message: its trail, its rule code, the original .eml byte for byte.
    let hash_mismatch = in_state(&engine, MessageState::Rejected)
        .await
        .into_iter()
        .find(|m| m.last_error.as_ref().unwrap().code == "XDM-HASH-MISMATCH")
        .unwrap();
    let detail = http.get(&format!("/messages/{}", hash_mismatch.id)).await;
    assert_eq!(detail.status, 200);
    let text = detail.text();
    assert!(text.contains("XDM-HASH-MISMATCH"), "{text}");
    assert!(
        text.contains("Audit trail") && text.contains(">received<"),
        "{text}"
    );
    let eml = http
        .get(&format!("/messages/{}/eml", hash_mismatch.id))
        .await;
    assert_eq!(eml.header("content-type"), "message/rfc822");
    assert!(eml.header("content-disposition").starts_with("attachment"));
    assert_eq!(eml.body, sample("invalid/xdm-hash-mismatch.eml"));

    // A message waiting for review: the CDA rendered, the PDF inline.
    let waiting = in_state(&engine, MessageState::AwaitingReview).await;
    assert_eq!(waiting.len(), 2);
    let m = &waiting[0];
    let text = http.get(&format!("/messages/{}", m.id)).await.text();
    assert!(text.contains("class=\"cda\""), "{text}");
    assert!(text.contains("INS-NIR (test)"), "{text}");
    assert!(text.contains("902"), "{text}");
    let pdf = http
        .get(&format!("/messages/{}/documents/0/pdf", m.id))
        .await;
    assert_eq!(pdf.status, 200);
    assert_eq!(pdf.header("content-type"), "application/pdf");
    assert!(pdf.header("content-disposition").starts_with("inline"));
    assert!(pdf.body.starts_with(b"%PDF-"));
    let xml = http
        .get(&format!("/messages/{}/documents/0/xml", m.id))
        .await;
    assert!(xml.header("content-disposition").starts_with("attachment"));
    assert!(String::from_utf8_lossy(&xml.body).contains("ClinicalDocument"));
    assert_eq!(
        http.get(&format!("/messages/{}/documents/9/pdf", m.id))
            .await
            .status,
        404
    );
    assert_eq!(http.get("/messages/999999").await.status, 404);

    // Actions need the session's CSRF token, and a same-origin request.
    let csrf = http.session_csrf().await;
    let path = format!("/messages/{}/reprocess", hash_mismatch.id);
    assert_eq!(http.post(&path, &[("csrf", "forged")]).await.status, 403);
    let cross = http
        .post_with(
            &path,
            &[("csrf", &csrf)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);
    assert_eq!(
        engine
            .journal()
            .get_message(hash_mismatch.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        MessageState::Rejected
    );

    // Reprocess the rejected message: it goes back through the pipeline (and is rejected again:
    // the mail did not change), with the operator's name in the trail.
    let done = http.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.text());
    wait_for_event_count(&engine, hash_mismatch.id, "rejected", 2).await;
    let events = engine
        .journal()
        .message_events(hash_mismatch.id)
        .await
        .unwrap();
    let reprocess = events.iter().find(|e| e.kind == "reprocess").unwrap();
    assert_eq!(reprocess.actor, relais_store::Actor::User("alice".into()));
    let page = http
        .get(&format!("/messages/{}", hash_mismatch.id))
        .await
        .text();
    assert!(
        page.contains("was sent back for processing"),
        "the notice: {page}"
    );
    assert!(
        page.contains("<strong>alice</strong>"),
        "the actor in the trail"
    );

    // The review queue: file one item to a patient of the index.
    let reviews = engine
        .journal()
        .list_reviews(&ReviewFilter::default())
        .await
        .unwrap();
    assert_eq!(reviews.len(), 2);
    let queue = http.get("/reviews").await.text();
    assert!(
        queue.contains("File to patient") && queue.contains("RELAIS-TEST"),
        "{queue}"
    );
    let r = &reviews[0];
    let file = format!("/reviews/{}/file", r.id);
    // An IPP the index does not know is refused.
    let unknown = http
        .post(&file, &[("csrf", &csrf), ("ipp", "IPP-404")])
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.text());
    engine
        .journal()
        .upsert_patient(&PatientRecord::new("IPP-1001"))
        .await
        .unwrap();
    let filed = http
        .post(&file, &[("csrf", &csrf), ("ipp", "IPP-1001")])
        .await;
    assert_eq!(filed.status, 303, "{}", filed.text());
    wait_state(&engine, r.message_id, MessageState::Filed).await;
    let review = engine.journal().get_review(r.id).await.unwrap().unwrap();
    assert_eq!(review.status, ReviewStatus::Filed);
    assert_eq!(review.resolved_by.as_deref(), Some("alice"));
    assert_eq!(review.resolution_ipp.as_deref(), Some("IPP-1001"));
    let out: Vec<_> = std::fs::read_dir(tmp.path().join("out")).unwrap().collect();
    assert_eq!(
        out.len(),
        2,
        "the document and its sidecar in the folder sink"
    );
    // Filing it again: already resolved. Reprocessing a filed message: refused, said why.
    assert_eq!(
        http.post(&file, &[("csrf", &csrf), ("ipp", "IPP-1001")])
            .await
            .status,
        409
    );
    let refused = http
        .post(
            &format!("/messages/{}/reprocess", r.message_id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.text().contains("can be reprocessed"),
        "{}",
        refused.text()
    );

    // Reject the other one, with a note.
    let other = &reviews[1];
    let rejected = http
        .post(
            &format!("/reviews/{}/reject", other.id),
            &[("csrf", &csrf), ("note", "not for this hospital")],
        )
        .await;
    assert_eq!(rejected.status, 303);
    wait_state(&engine, other.message_id, MessageState::Rejected).await;
    let resolved = http.get("/reviews?status=rejected").await.text();
    assert!(resolved.contains("not for this hospital") && resolved.contains("alice"));

    let _ = console.stop.send(true);
    console.running.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_but_every_action_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine.clone(), &users, None).await;
    let mut http = Http::new(&console.running.url(), None);
    assert_eq!(http.login(VIEWER).await.status, 303);
    let csrf = http.session_csrf().await;
    let waiting = in_state(&engine, MessageState::AwaitingReview).await;
    let m = &waiting[0];
    let page = http.get(&format!("/messages/{}", m.id)).await.text();
    assert!(
        !page.contains("Reprocess</button>"),
        "no action offered to a viewer"
    );
    let queue = http.get("/reviews").await.text();
    assert!(queue.contains("read-only account") && !queue.contains("File to patient"));

    let refused = http
        .post(&format!("/messages/{}/reprocess", m.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("may look but not act"));
    let reviews = engine
        .journal()
        .list_reviews(&ReviewFilter::default())
        .await
        .unwrap();
    engine
        .journal()
        .upsert_patient(&PatientRecord::new("IPP-1001"))
        .await
        .unwrap();
    let r = &reviews[0];
    for (path, form) in [
        (format!("/reviews/{}/file", r.id), ("ipp", "IPP-1001")),
        (format!("/reviews/{}/reject", r.id), ("note", "no")),
    ] {
        let a = http.post(&path, &[("csrf", &csrf), form]).await;
        assert_eq!(a.status, 403, "{path}");
    }
    // Nothing changed in the journal.
    assert_eq!(
        engine
            .journal()
            .get_message(m.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        MessageState::AwaitingReview
    );
    assert_eq!(
        engine
            .journal()
            .list_reviews(&ReviewFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    // The accounts page is for administrators.
    assert_eq!(http.get("/users").await.status, 403);
    let mut admin = Http::new(&console.running.url(), None);
    assert_eq!(admin.login(ADMIN).await.status, 303);
    let accounts = admin.get("/users").await.text();
    assert!(accounts.contains("victor") && accounts.contains("viewer"));
    assert!(!accounts.contains("argon2"), "hashes never shown");

    // A role change in the accounts file applies to open sessions at once.
    let text = std::fs::read_to_string(&users).unwrap();
    let promoted = text.replacen("role = \"viewer\"", "role = \"operator\"", 1);
    std::fs::write(&users, promoted).unwrap();
    let again = http
        .post(&format!("/messages/{}/reprocess", m.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, 303, "{}", again.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_cookies_are_secure_and_host_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = relais_testsupport::pki::TestPki::generate(
        &tmp.path().join("pki"),
        &relais_testsupport::pki::PkiOptions::default(),
    );
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine.clone(), &users, Some(&pki)).await;
    assert!(console.running.url().starts_with("https://127.0.0.1:"));
    let mut http = Http::new(&console.running.url(), Some(&pki.root_ca));
    let health = http.get("/health").await;
    assert_eq!(health.status, 200);
    assert!(
        health
            .header("strict-transport-security")
            .contains("max-age=")
    );
    assert_eq!(http.login(OPERATOR).await.status, 303);
    let sc = http
        .set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-relais-session="))
        .expect("a __Host- session cookie")
        .clone();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(sc.contains(attr), "{attr} missing: {sc}");
    }
    assert!(!sc.contains("Domain="), "{sc}");
    assert_eq!(http.get("/dashboard").await.status, 200);

    // A client that does not trust the test CA cannot talk to it.
    let stranger = Http::new(&console.running.url(), Some(&pki.other_root_ca));
    assert!(
        stranger.try_get("/health").await.is_err(),
        "a client without the CA must fail the handshake"
    );

    // Plain HTTP on a non-loopback address is refused at start.
    let mut config = relais_console::ConsoleConfig::new(&users);
    config.listen = "0.0.0.0:0".into();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let e = relais_console::serve(engine, config, rx).await.unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");

    // Shutdown: the task ends and the port closes.
    let addr = console.running.address;
    let _ = console.stop.send(true);
    tokio::time::timeout(Duration::from_secs(15), console.running.stopped())
        .await
        .expect("the console stops");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// The first `From` address of a raw mail.
fn mail_from(raw: &[u8]) -> String {
    relais_mssante::parse_mail(raw, &relais_core::Limits::default())
        .unwrap()
        .from
        .into_iter()
        .next()
        .unwrap()
}

/// Waits until the trail of `id` holds `n` events of `kind`.
async fn wait_for_event_count(engine: &relais_engine::Engine, id: MessageId, kind: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = engine.journal().message_events(id).await.unwrap();
        if events.iter().filter(|e| e.kind == kind).count() >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "message {id}: fewer than {n} {kind} events: {:?}",
            events.iter().map(|e| &e.kind).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
