//! The console in a real browser: headless Chromium (Debian's) driven over WebDriver by
//! chromedriver, against the console served over TLS with the test PKI. An operator logs in,
//! reads the dashboard, searches a message, opens it, reprocesses it, files a review item to an
//! IPP; a viewer is refused an action. Screenshots go to `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (tests/setup.sh installs them); without them
//! the test fails and says so.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use relais_store::{MessageState, PatientRecord, ReviewFilter};
use relais_testsupport::browser::Chromedriver;
use std::path::PathBuf;
use std::time::Duration;

/// Where the screenshots go (kept as test artefacts).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| relais_testsupport::workspace_root().join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the whole page: the window is made as tall as the page, then put back.
async fn shot(c: &Client, name: &str) {
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(900)
        .clamp(900, 5000) as u32;
    c.set_window_size(1366, height).await.unwrap();
    let png = c.screenshot().await.unwrap();
    c.set_window_size(1366, 900).await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// The text of the page's `main` element.
/// (Empty while a page is being replaced: the element found may go stale before it is read.)
async fn main_text(c: &Client) -> String {
    match c.find(Locator::Css("main")).await {
        Ok(main) => main.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the page's main text contains `needle` (reloading if `reload`).
async fn wait_text(c: &Client, needle: &str, reload: bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = main_text(c).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page never showed {needle:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        if reload {
            c.refresh().await.unwrap();
        }
    }
}

/// Waits until the browser's URL contains `needle` (a submitted form's page has loaded).
async fn wait_url(c: &Client, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !c.current_url().await.unwrap().as_str().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "the browser never reached a URL with {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(c: &Client, base: &str, (name, password): (&str, &str)) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("header nav"))
        .await
        .is_err()
    {
        panic!(
            "{name} is not logged in; the browser shows {}:\n{}",
            c.current_url().await.unwrap(),
            main_text(c).await
        );
    }
}

async fn logout(c: &Client) {
    c.find(Locator::Css(".who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input[name=password]"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_and_a_viewer_in_a_real_browser() {
    let driver = Chromedriver::start();
    let tmp = tempfile::tempdir().unwrap();
    let pki = relais_testsupport::pki::TestPki::generate(
        &tmp.path().join("pki"),
        &relais_testsupport::pki::PkiOptions::default(),
    );
    let engine = seeded_engine(tmp.path()).await;
    let users = users_file(tmp.path());
    let console = start_console(engine.clone(), &users, Some(&pki)).await;
    let base = console.running.url();
    engine
        .journal()
        .upsert_patient(&PatientRecord::new("IPP-2002"))
        .await
        .unwrap();

    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(driver.capabilities(true))
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open a Chromium session: {e}; chromedriver log:\n{}",
                std::fs::read_to_string(driver.log_path()).unwrap_or_default()
            )
        });
    // The scenario runs as its own task so that a failed assertion still closes the browser
    // (chromium would outlive a killed chromedriver otherwise), then fails the test.
    let run = tokio::spawn({
        let (c, base, engine) = (c.clone(), base.clone(), engine.clone());
        async move { scenario(&c, &base, &engine).await }
    })
    .await;
    let _ = c.close().await;
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }

    let _ = console.stop.send(true);
    console.running.stopped().await;
}

async fn scenario(c: &Client, base: &str, engine: &relais_engine::Engine) {
    // Log in.
    c.goto(&format!("{base}/login")).await.unwrap();
    shot(c, "01-login").await;
    login(c, base, OPERATOR).await;
    let dash = wait_text(c, "Source mailboxes", false).await;
    assert!(
        dash.contains("inbox") && dash.contains("awaiting review"),
        "{dash}"
    );
    shot(c, "02-dashboard").await;

    // Search by sender, then open the message.
    c.goto(&format!("{base}/messages")).await.unwrap();
    let form = c.form(Locator::Css("form.search")).await.unwrap();
    form.set_by_name("sender", "labo").await.unwrap();
    form.submit().await.unwrap();
    wait_url(c, "sender=labo").await;
    let rows = c
        .find_all(Locator::Css("table.messages tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{}", main_text(c).await);
    shot(c, "03-messages-search").await;
    rows[0]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let detail = wait_text(c, "Audit trail", false).await;
    assert!(detail.contains("awaiting review"), "{detail}");
    assert!(
        detail.contains("INS-NIR (test)"),
        "the CDA header rendered: {detail}"
    );
    let message_url = c.current_url().await.unwrap().to_string();
    let id: i64 = message_url.rsplit('/').next().unwrap().parse().unwrap();
    shot(c, "04-message-detail").await;

    // The PDF opens inline in the browser's viewer (CSP allows the viewer on that answer only).
    c.goto(&format!("{base}/messages/{id}/documents/0/pdf"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(c.current_url().await.unwrap().path().ends_with("/pdf"));
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join("04b-document-pdf.png"), png).unwrap();
    c.goto(&message_url).await.unwrap();

    // Reprocess it: back through the pipeline, and back in the queue (no patient yet), with the
    // operator's name in the trail.
    c.find(Locator::XPath("//button[text()='Reprocess']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let after = wait_text(c, "was sent back for processing", false).await;
    assert!(after.contains("reprocess"), "{after}");
    wait_state(
        engine,
        relais_store::MessageId(id),
        MessageState::AwaitingReview,
    )
    .await;
    c.refresh().await.unwrap();
    let trail = main_text(c).await;
    assert!(trail.contains("alice"), "{trail}");
    shot(c, "05-message-reprocessed").await;

    // The review queue: file the item of this message to IPP-2002.
    c.goto(&format!("{base}/reviews")).await.unwrap();
    let queue = wait_text(c, "File to patient", false).await;
    assert!(queue.contains("RELAIS-TEST"), "{queue}");
    shot(c, "06-review-queue").await;
    let reviews = engine
        .journal()
        .list_reviews(&ReviewFilter::default())
        .await
        .unwrap();
    let item = reviews
        .iter()
        .find(|r| r.message_id.0 == id)
        .expect("the reprocessed message is in the queue again");
    let row = c
        .find(Locator::Id(&format!("review-{}", item.id)))
        .await
        .unwrap();
    let file_form = row
        .find(Locator::Css("form[action$='/file']"))
        .await
        .unwrap();
    file_form
        .find(Locator::Css("input[name=ipp]"))
        .await
        .unwrap()
        .send_keys("IPP-2002")
        .await
        .unwrap();
    file_form
        .find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = wait_text(c, "filed to IPP IPP-2002", false).await;
    assert!(
        notice.contains(&format!("Review item {}", item.id)),
        "{notice}"
    );
    wait_state(engine, relais_store::MessageId(id), MessageState::Filed).await;
    c.goto(&message_url).await.unwrap();
    let filed = wait_text(c, "review_filed", true).await;
    assert!(filed.contains("IPP-2002"), "{filed}");
    shot(c, "07-message-filed").await;
    logout(c).await;

    // A viewer reads, but an action is refused (the form is not offered; posting one anyway,
    // with the viewer's own CSRF token, gets a 403 page).
    login(c, base, VIEWER).await;
    let other = engine
        .journal()
        .list_reviews(&ReviewFilter::default())
        .await
        .unwrap();
    let other = other.first().expect("one item left in the queue");
    c.goto(&format!("{base}/messages/{}", other.message_id))
        .await
        .unwrap();
    let page = wait_text(c, "Audit trail", false).await;
    assert!(!page.contains("Reprocess"), "{page}");
    c.execute(
        "const f = document.createElement('form');
         f.method = 'post'; f.action = arguments[0];
         const t = document.createElement('input');
         t.type = 'hidden'; t.name = 'csrf';
         t.value = document.querySelector('input[name=csrf]').value;
         f.appendChild(t); document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(format!(
            "/messages/{}/reprocess",
            other.message_id
        ))],
    )
    .await
    .unwrap();
    let refused = wait_text(c, "may look but not act", false).await;
    assert!(refused.contains("Forbidden"), "{refused}");
    shot(c, "08-viewer-refused").await;
    assert_eq!(
        engine
            .journal()
            .get_message(other.message_id)
            .await
            .unwrap()
            .unwrap()
            .state,
        MessageState::AwaitingReview
    );
}
