//! Issue 17's walk-through in a real headless Chromium, as a new user
//! would do it: `ferry init --demo`, two users, `ferry serve`; alice
//! transfers the new business with its form, bob approves the review in
//! production, then reverts the promotion. Every click is on what the page
//! shows (test ids, no typed URLs but the first).
//!
//! With `FERRY_UPDATE_SCREENSHOTS=1` the test also copies its pictures of
//! the overview, the changes, the review and the promotion into `docs/img/`
//! (never set in CI).

use std::path::{Path, PathBuf};

use ferry_testdb::browser::{Browser, BrowserError, BrowserResult};

use super::support::{add_user, Server};
use crate::common::{dump, query, run_in_with};

/// The variable that makes the test copy its pictures into `docs/img/`.
const UPDATE_VAR: &str = "FERRY_UPDATE_SCREENSHOTS";

/// How long the overview may take to show its first counts (computed in
/// the background) on a loaded machine.
const OVERVIEW_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// The managed tables of production.db, schema and every cell (as
/// `typeof:hex`), without Ferry's own tables.
fn production_managed(dir: &Path) -> String {
    let dump = dump(&dir.join("production.db"));
    let app: String = dump
        .split_inclusive('\n')
        .take_while(|l| !l.starts_with("table _ferry"))
        .collect();
    assert!(app.contains("table businesses ("), "{dump}");
    app
}

/// The folder the docs' pictures live in.
fn docs_img() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img")
}

/// A screenshot named `name`; with [`UPDATE_VAR`] set to `1`, also copied
/// to `docs/img/server-NAME.png`.
async fn doc_shot(b: &Browser, name: &str) -> BrowserResult<()> {
    let shot = b.shot(name).await?;
    if std::env::var(UPDATE_VAR).as_deref() == Ok("1") {
        let to = docs_img().join(format!("server-{name}.png"));
        std::fs::copy(&shot, &to)
            .map_err(|e| BrowserError::new(format!("cannot copy {} to {}: {e}", shot.display(), to.display())))?;
    }
    Ok(())
}

/// Signs `user` in through the form the server redirects to.
async fn sign_in(b: &Browser, base: &str, user: &str, password: &str) -> BrowserResult<()> {
    b.goto(&format!("{base}/")).await?;
    b.fill("login-user", user).await?;
    b.fill("login-password", password).await?;
    b.click("login-submit").await?;
    b.wait_for_text("current-user", user).await?;
    Ok(())
}

/// Waits on the overview until its step staging -> production shows
/// counts: the first computation runs in the background, and the page
/// reloads itself until it is done (nobody has to press reload). The
/// inserts waiting.
async fn pending_inserts(b: &Browser) -> BrowserResult<String> {
    let started = std::time::Instant::now();
    loop {
        // A reload may be under way: an element can vanish between the
        // two calls, so an error is only one more poll (the timeout
        // reports the last one).
        let seen = match b.all_by_testid("pending-insert").await {
            Ok(counts) => match counts.first() {
                Some(inserts) => inserts.attr("data-count").await.map_err(BrowserError::from),
                None => Ok(None),
            },
            Err(e) => Err(e),
        };
        if let Ok(Some(n)) = seen {
            let source = b.source().await?;
            assert!(
                !source.contains("http-equiv=\"refresh\""),
                "the overview with its counts in still reloads itself"
            );
            return Ok(n);
        }
        if started.elapsed() > OVERVIEW_PATIENCE {
            let last = match seen {
                Err(e) => e.message().to_string(),
                _ => "no pending-insert count yet".to_string(),
            };
            return Err(BrowserError::new(format!(
                "the overview showed no counts for staging -> production within {OVERVIEW_PATIENCE:?} \
                 without reloading by hand (last: {last})"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn walkthrough() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_in_with(dir, &["init", "--demo"], &[("FERRY_USER", "alice")]).expect(0);
    add_user(dir, "alice", "alice-pw-1");
    add_user(dir, "bob", "bob-pw-2");
    let before = production_managed(dir);
    let Some(b) = Browser::start("server::walkthrough").await else {
        return;
    };
    let server = Server::start(dir, &[]);
    let base = server.base.clone();

    b.step("alice signs in and sees what waits", async {
        sign_in(&b, &base, "alice", "alice-pw-1").await?;
        let inserts = pending_inserts(&b).await?;
        assert_eq!(inserts, "5", "the new business, its form and 3 fields wait");
        doc_shot(&b, "overview").await
    })
    .await;

    let review = b
        .step("alice transfers the business with its form", async {
            b.click("step-link").await?;
            b.click_key("row-select", "businesses:7").await?;
            b.click_key("row-select", "forms:4").await?;
            for key in ["businesses:7", "forms:4"] {
                let ticked = b.by_testid_key("row-select", key).await?;
                assert!(ticked.is_selected().await?, "{key} is ticked");
            }
            let page = b.page_text().await?;
            assert!(page.contains("Manteigaria Chiado 🥧"), "{page}");
            doc_shot(&b, "changes").await?;
            b.click("transfer-button").await?;
            let asked = b.accept_confirm().await?;
            assert!(asked.contains("production"), "{asked}");
            b.wait_for("review-id").await?;
            b.text("review-id").await
        })
        .await;
    assert_eq!(
        production_managed(dir),
        before,
        "submitting a review wrote into production's tables"
    );

    b.step("alice signs out, bob signs in", async {
        b.click("logout").await?;
        b.wait_for("login-user").await?;
        b.fill("login-user", "bob").await?;
        b.fill("login-password", "bob-pw-2").await?;
        b.click("login-submit").await?;
        b.wait_for_text("current-user", "bob").await?;
        Ok(())
    })
    .await;

    let promotion = b
        .step("bob approves the review", async {
            b.click("nav-reviews").await?;
            b.click_key("review-link", &review).await?;
            b.wait_for_text("review-id", &review).await?;
            b.wait_for_text("review-submitter", "alice").await?;
            doc_shot(&b, "review").await?;
            b.click("review-approve").await?;
            let asked = b.accept_confirm().await?;
            assert!(asked.contains(&review), "{asked}");
            b.wait_for("promotion-id").await?;
            b.text("promotion-id").await
        })
        .await;
    let rows = |sql: &str| query(&dir.join("production.db"), sql);
    assert_eq!(
        rows("SELECT name FROM businesses WHERE id = 7"),
        [["Manteigaria Chiado 🥧"]]
    );
    assert_eq!(rows("SELECT business_id FROM forms WHERE id = 4"), [["7"]]);
    assert_eq!(
        rows("SELECT id FROM form_fields WHERE form_id = 4 ORDER BY id"),
        [["8"], ["9"], ["10"]],
        "the form's fields came along"
    );

    let revert = b
        .step("bob reverts the promotion", async {
            b.click("nav-history").await?;
            b.click_key("promotion-link", &promotion).await?;
            b.wait_for_text("promotion-shown", &promotion).await?;
            let chosen = b.text("promotion-selection").await?;
            assert_eq!(chosen, "row businesses:7, row forms:4", "what alice ticked, in words");
            b.wait_for("revert-preview").await?;
            // The picture shows the revert's preview and its button.
            let script =
                r#"document.querySelector('[data-testid="revert-preview"]').previousElementSibling.scrollIntoView()"#;
            b.client().execute(script, Vec::new()).await?;
            doc_shot(&b, "promotion").await?;
            b.click("revert-button").await?;
            let asked = b.accept_confirm().await?;
            assert!(asked.contains(&promotion), "{asked}");
            b.wait_for("promotion-id").await?;
            b.text("promotion-id").await
        })
        .await;
    assert_ne!(revert, promotion);
    assert_eq!(
        production_managed(dir),
        before,
        "the revert did not restore production byte for byte"
    );
    assert!(rows("SELECT id FROM businesses WHERE id = 7").is_empty());

    b.step("bob opens the environments page", async {
        b.click("nav-environments").await?;
        b.wait_for("environments-list").await?;
        let listed = b.all_by_testid("env-row").await?;
        assert_eq!(listed.len(), 2, "staging and production, no branch environment");
        b.shot("environments").await.map(|_| ())
    })
    .await;
}
