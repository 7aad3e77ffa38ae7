//! The review pages over HTTP, on the real binary and real SQLite files:
//! a review's held changes with their values, approval by a second user,
//! the submitter offered nothing and refused when forging the POST,
//! rejection of ticked rows, and a target that moved since submission.

use super::support::{add_user, Client, Server};
use crate::common::{dump, dump_tables, Fixture, Output};

/// Both environments' schema.
const SCHEMA: &str = "
CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE businesses (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city_id INTEGER REFERENCES cities(id)
);
";

/// What both environments hold at the start (and is baselined).
const SHARED: &str = "
INSERT INTO cities VALUES (1, 'Lyon');
INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1);
";

/// The new work in staging: a revision of business 1, a new business in a
/// new city.
const STAGING_WORK: &str = "
UPDATE businesses SET name = 'Café Olé ☕ v2' WHERE id = 1;
INSERT INTO cities VALUES (2, 'Zürich 🏔️');
INSERT INTO businesses VALUES (2, 'Bäckerei <b>&', 2);
";

/// `review`: production is reviewed.
fn config(review: bool) -> String {
    format!(
        r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"
review = {review}

[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = {{ city_id = "cities" }}

[access]
users = {{ alice = ["pm"], bob = ["pm", "lead"], carol = ["qa"] }}
promote = {{ production = ["pm"] }}
approve = {{ production = ["lead"] }}
revert = {{ production = ["lead"] }}
"#
    )
}

/// Staging and production holding [`SHARED`], baselined, then
/// [`STAGING_WORK`] in staging; users alice, bob and carol (password
/// `pw-NAME`) may sign in.
pub fn seed(review: bool) -> Fixture {
    let f = Fixture::with(SCHEMA, SHARED, SCHEMA, SHARED);
    f.write_config(&config(review));
    f.run_yes(&["baseline", "staging", "production", "--as", "bob"])
        .expect(0);
    f.exec("staging", STAGING_WORK);
    for user in ["alice", "bob", "carol"] {
        add_user(f.path(), user, &format!("pw-{user}"));
    }
    f
}

/// `ferry promote staging production --as USER --yes --json`.
pub fn promote_as(f: &Fixture, user: &str) -> Output {
    f.run(&["promote", "staging", "production", "--as", user, "--yes", "--json"])
}

/// The application tables and the sync base of `env`, every cell's bytes.
pub fn data_and_base(f: &Fixture, env: &str) -> String {
    dump_tables(&f.db(env), &["cities", "businesses", "_ferry_sync"])
}

/// `user`'s promotion into reviewed production: the review's id.
fn submit(f: &Fixture, user: &str) -> String {
    let v = promote_as(f, user).expect(0).json();
    v["review"]
        .as_str()
        .unwrap_or_else(|| panic!("no review: {v:#}"))
        .to_string()
}

/// `GET path` as a page: its status and HTML.
pub async fn page(c: &Client, path: &str) -> (u16, String) {
    let r = c.get(path).await;
    let status = r.status().as_u16();
    (status, r.text().await.expect("a page"))
}

/// `POST path` as a page's form: its status and HTML.
pub async fn post(c: &Client, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let r = c.post_form(path, fields).await;
    let status = r.status().as_u16();
    (status, r.text().await.expect("a page"))
}

/// The text of the element with `data-testid="ID"` (its first child text).
pub fn testid(html: &str, id: &str) -> Option<String> {
    let rest = html.split(&format!("data-testid=\"{id}\"")).nth(1)?;
    let text = rest.split_once('>')?.1.split('<').next()?;
    Some(text.trim().to_string())
}

/// `(user, action, result)` of every audit entry of `env`, oldest first.
pub fn audit_trail(f: &Fixture, env: &str) -> Vec<(String, String, String)> {
    let v = f.run(&["audit", env, "--json"]).expect(0).json();
    let mut rows: Vec<(String, String, String)> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v:#}"))
        .iter()
        .map(|a| {
            let t = |k: &str| a[k].as_str().unwrap_or("-").to_string();
            (t("user"), t("action"), t("result"))
        })
        .collect();
    rows.reverse();
    rows
}

#[tokio::test]
async fn a_review_shows_its_held_changes_and_a_second_user_approves_them() {
    let f = seed(true);
    let id = submit(&f, "alice");
    let s = Server::start(f.path(), &[]);
    let bob = s.sign_in("bob", "pw-bob").await;

    // Listed among the open reviews, with a link to it.
    let (status, list) = page(&bob, "/reviews").await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&format!("href=\"/reviews/{id}\"")), "{list}");
    let (_, only_staging) = page(&bob, "/reviews?env=staging").await;
    assert!(
        !only_staging.contains(&id) && only_staging.contains("no-reviews"),
        "{only_staging}"
    );

    // Every change with its values: the revision before and after, every
    // field of the new rows (escaped, whole).
    let (status, html) = page(&bob, &format!("/reviews/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(testid(&html, "review-submitter").as_deref(), Some("alice"), "{html}");
    // A review's id where a promotion's is expected (an audit entry of an
    // approval that wrote nothing) leads to the review, not to a 404.
    let led = bob.get(&format!("/promotions/{id}")).await;
    assert_eq!(led.status().as_u16(), 303);
    assert_eq!(
        led.headers().get("location").and_then(|l| l.to_str().ok()),
        Some(format!("/reviews/{id}").as_str())
    );
    for key in ["businesses:1", "cities:2", "businesses:2"] {
        assert!(
            html.contains(&format!("data-testid=\"row-select\" data-key=\"{key}\"")),
            "{key}: {html}"
        );
    }
    for value in ["Café Olé ☕", "Café Olé ☕ v2", "Zürich 🏔️", "Bäckerei &lt;b&gt;&amp;"] {
        assert!(html.contains(value), "{value}: {html}");
    }
    assert!(!html.contains("Bäckerei <b>"), "values are escaped: {html}");
    assert!(html.contains("data-testid=\"review-approve\""), "{html}");
    assert!(html.contains("data-testid=\"review-reject\""), "{html}");
    assert!(!html.contains("style=") && !html.contains("<script>"), "CSP: {html}");

    // Approving (nothing ticked: all) applies the review.
    let (status, done) = post(&bob, &format!("/reviews/{id}/approve"), &[]).await;
    assert_eq!(status, 200, "{done}");
    let promotion = testid(&done, "promotion-id").unwrap_or_else(|| panic!("no promotion-id: {done}"));
    assert_eq!(
        f.query("production", "SELECT id, name, city_id FROM businesses ORDER BY id"),
        [["1", "Café Olé ☕ v2", "1"], ["2", "Bäckerei <b>&", "2"]]
    );
    assert_eq!(
        f.query("production", "SELECT name FROM cities WHERE id = 2"),
        [["Zürich 🏔️"]]
    );
    let (status, shown) = page(&bob, &format!("/promotions/{promotion}")).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.contains("Café Olé ☕ v2"), "{shown}");
    // Decided: no longer open, no buttons.
    let (_, after) = page(&bob, &format!("/reviews/{id}")).await;
    assert_eq!(testid(&after, "review-status").as_deref(), Some("approved"), "{after}");
    assert!(
        !after.contains("review-approve") && !after.contains("row-select"),
        "{after}"
    );
    let (_, list) = page(&bob, "/reviews").await;
    assert!(!list.contains(&id), "{list}");
    assert_eq!(
        audit_trail(&f, "production").last().cloned(),
        Some(("bob".into(), "approve".into(), "ok".into()))
    );
}

#[tokio::test]
async fn the_submitter_and_a_user_without_the_right_are_offered_no_decision_and_refused() {
    let f = seed(true);
    // bob may approve in production, but not what he submitted himself.
    let id = submit(&f, "bob");
    let s = Server::start(f.path(), &[]);
    let before = dump(&f.production());
    for (user, why) in [("bob", "submitted this review"), ("carol", "may not approve")] {
        let c = s.sign_in(user, &format!("pw-{user}")).await;
        let (status, html) = page(&c, &format!("/reviews/{id}")).await;
        assert_eq!(status, 200, "{html}");
        for absent in ["review-approve", "review-reject", "row-select"] {
            assert!(!html.contains(absent), "{user} is offered {absent}: {html}");
        }
        assert!(
            html.contains("review-not-yours") && html.contains(why),
            "{user}: {html}"
        );
        // A forged POST is refused by the engine: 403, nothing written.
        // (The engine lets a submitter with the approve right reject, that
        // is withdraw, their own review; the page offers neither button.)
        let decisions: &[&str] = if user == "bob" {
            &["approve"]
        } else {
            &["approve", "reject"]
        };
        for &decision in decisions {
            let (status, refused) = post(&c, &format!("/reviews/{id}/{decision}"), &[]).await;
            assert_eq!(status, 403, "{user} {decision}: {refused}");
            assert!(refused.contains("data-code=\"denied\""), "{refused}");
            assert_eq!(dump(&f.production()), before, "{user} {decision} wrote something");
        }
    }
    // Each refusal is audited under the signed-in user.
    let trail = audit_trail(&f, "production");
    for (user, decision) in [("bob", "approve"), ("carol", "approve"), ("carol", "reject")] {
        assert!(
            trail.contains(&(user.into(), decision.into(), "denied".into())),
            "{user} {decision}: {trail:?}"
        );
    }
    // Without the session's CSRF token, a request is refused before the
    // engine sees it.
    let carol = s.sign_in("carol", "pw-carol").await;
    let r = carol.post_form_raw(&format!("/reviews/{id}/approve"), &[]).await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(dump(&f.production()), before);
}

#[tokio::test]
async fn rejecting_ticked_rows_leaves_the_others_pending() {
    let f = seed(true);
    let id = submit(&f, "alice");
    let s = Server::start(f.path(), &[]);
    let bob = s.sign_in("bob", "pw-bob").await;
    let before = data_and_base(&f, "production");
    let (status, done) = post(&bob, &format!("/reviews/{id}/reject"), &[("only", "businesses:1")]).await;
    assert_eq!(status, 200, "{done}");
    let result = testid(&done, "reject-result").unwrap_or_default();
    assert!(result.starts_with("1 change(s)"), "{done}");
    assert_eq!(data_and_base(&f, "production"), before, "a rejection writes no data");
    let (_, html) = page(&bob, &format!("/reviews/{id}")).await;
    assert_eq!(testid(&html, "review-status").as_deref(), Some("open"), "{html}");
    assert!(
        html.contains("data-key=\"businesses:1\" data-state=\"rejected\""),
        "{html}"
    );
    for key in ["cities:2", "businesses:2"] {
        assert!(
            html.contains(&format!("data-key=\"{key}\" data-state=\"pending\"")),
            "{key}: {html}"
        );
        assert!(
            html.contains(&format!("data-testid=\"row-select\" data-key=\"{key}\"")),
            "{html}"
        );
    }
    assert!(
        !html.contains("data-testid=\"row-select\" data-key=\"businesses:1\""),
        "{html}"
    );
    // Approving the rest (ticked) writes only them.
    let (status, done) = post(
        &bob,
        &format!("/reviews/{id}/approve"),
        &[("only", "cities:2"), ("only", "businesses:2")],
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(testid(&done, "promotion-id").is_some(), "{done}");
    assert_eq!(
        f.query("production", "SELECT id, name FROM businesses ORDER BY id"),
        [["1", "Café Olé ☕"], ["2", "Bäckerei <b>&"]]
    );
    // A ticked value that names no row is a usage error, nothing written.
    let (status, bad) = post(&bob, &format!("/reviews/{id}/approve"), &[("only", "nonsense")]).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn a_row_changed_in_the_target_since_submission_shows_the_target_now() {
    let f = seed(true);
    let id = submit(&f, "alice");
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Edited in production' WHERE id = 1",
    );
    let s = Server::start(f.path(), &[]);
    let bob = s.sign_in("bob", "pw-bob").await;
    let (status, html) = page(&bob, &format!("/reviews/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-testid=\"change-moved\""), "{html}");
    assert!(html.contains("Edited in production"), "{html}");
    // Approving it is refused as stale: 409, nothing written.
    let before = dump(&f.production());
    let (status, refused) = post(&bob, &format!("/reviews/{id}/approve"), &[("only", "businesses:1")]).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(dump(&f.production()), before);
}

/// On PostgreSQL (`FERRY_TEST_POSTGRES_URL`; a SKIP line without it, a
/// failure under `CI=true`): drafts inserted and a revision held, the
/// review page showing both, a forged approval refused, the approval by a
/// second user publishing them, and its revert from the history page
/// restoring production as it was before the approval.
#[tokio::test]
async fn a_review_on_postgres_is_approved_in_the_page_and_reverted() {
    use ferry_testdb::{pg_dump_tables, Database, Engine};

    const TEST: &str = "reviews_pages_postgres";
    const PG_SCHEMA: &str = "
        CREATE TABLE cities (id integer PRIMARY KEY, name text NOT NULL);
        CREATE TABLE businesses (
            id integer PRIMARY KEY,
            name text NOT NULL,
            city_id integer REFERENCES cities(id),
            is_published boolean NOT NULL DEFAULT false
        );";
    let (Some(staging), Some(production)) = (
        Database::create(Engine::Postgres, TEST, "rp_staging"),
        Database::create(Engine::Postgres, TEST, "rp_production"),
    ) else {
        return;
    };
    for db in [&staging, &production] {
        db.exec(PG_SCHEMA).await;
        db.exec("INSERT INTO cities VALUES (1, 'Lyon'); INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1, true);")
            .await;
    }
    let dir = tempfile::tempdir().expect("a folder");
    let config = config(true)
        .replace("url = \"sqlite://staging.db\"", "url_env = \"FERRY_RP_STAGING_URL\"")
        .replace(
            "url = \"sqlite://production.db\"",
            "url_env = \"FERRY_RP_PRODUCTION_URL\"",
        )
        .replace(
            "references = { city_id = \"cities\" }",
            "references = { city_id = \"cities\" }\ndraft = { is_published = false }",
        );
    std::fs::write(dir.path().join("ferry.toml"), config).expect("write ferry.toml");
    let vars = [
        ("FERRY_RP_STAGING_URL", staging.url.as_str()),
        ("FERRY_RP_PRODUCTION_URL", production.url.as_str()),
    ];
    let run = |args: &[&str]| crate::common::run_in_with(dir.path(), args, &vars);
    run(&["baseline", "staging", "production", "--as", "bob", "--yes"]).expect(0);
    staging
        .exec(
            "UPDATE businesses SET name = 'Café Olé ☕ v2' WHERE id = 1;
             INSERT INTO cities VALUES (2, 'Zürich 🏔️');
             INSERT INTO businesses VALUES (2, 'Bäckerei 🥨', 2, true);",
        )
        .await;
    let v = run(&["promote", "staging", "production", "--as", "alice", "--yes", "--json"])
        .expect(0)
        .json();
    let id = v["review"]
        .as_str()
        .unwrap_or_else(|| panic!("no review: {v:#}"))
        .to_string();
    let tables = ["cities", "businesses", "_ferry_sync"];
    let dump = || pg_dump_tables(&production.url, &tables).unwrap_or_else(|e| panic!("{e}"));
    // The drafts are in production, unpublished; the revision is held.
    let drafted = dump();
    let app = || pg_dump_tables(&production.url, &["cities", "businesses"]).unwrap_or_else(|e| panic!("{e}"));
    let drafted_rows = app();
    assert_eq!(
        production.client("SELECT id, name, is_published FROM businesses ORDER BY id"),
        "1|Café Olé ☕|t\n2|Bäckerei 🥨|f\n"
    );
    for user in ["alice", "bob"] {
        add_user(dir.path(), user, &format!("pw-{user}"));
    }
    let s = Server::start(dir.path(), &vars);

    let bob = s.sign_in("bob", "pw-bob").await;
    let (status, html) = page(&bob, &format!("/reviews/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("publish draft") && html.contains("Café Olé ☕ v2"),
        "{html}"
    );
    assert!(
        html.contains("data-testid=\"row-select\" data-key=\"businesses:1\""),
        "{html}"
    );
    assert!(html.contains("data-testid=\"review-approve\""), "{html}");

    let alice = s.sign_in("alice", "pw-alice").await;
    let (status, refused) = post(&alice, &format!("/reviews/{id}/approve"), &[]).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(dump(), drafted, "a refused approval writes nothing");

    let (status, done) = post(&bob, &format!("/reviews/{id}/approve"), &[]).await;
    assert_eq!(status, 200, "{done}");
    let promotion = testid(&done, "promotion-id").unwrap_or_else(|| panic!("no promotion-id: {done}"));
    assert_eq!(
        production.client("SELECT id, name, is_published FROM businesses ORDER BY id"),
        "1|Café Olé ☕ v2|t\n2|Bäckerei 🥨|t\n"
    );
    let (status, reverted) = post(&bob, &format!("/promotions/{promotion}/revert"), &[]).await;
    assert_eq!(status, 200, "{reverted}");
    assert!(testid(&reverted, "promotion-id").is_some(), "{reverted}");
    assert_eq!(
        production.client("SELECT id, name, is_published FROM businesses ORDER BY id"),
        "1|Café Olé ☕|t\n2|Bäckerei 🥨|f\n",
        "the approval is undone: the revision gone, the draft unpublished"
    );
    assert_eq!(app(), drafted_rows, "every cell as before the approval");
}
