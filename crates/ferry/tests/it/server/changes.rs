//! The changes page and the transfer of ticked rows, over HTTP with the
//! real binary: the rows with their `row-select` keys and every field of an
//! insert; a transfer writes exactly the ticked rows (and journals them);
//! a stale plan hash is refused with 409 and the fresh diff; no CSRF token
//! and no promote right are refused with nothing written (the refusal
//! audited); two users transferring overlapping rows at once: one wins,
//! the other gets 409; the overview's counts come from the background.
//! One transfer also on PostgreSQL.

use std::time::{Duration, Instant};

use ferry_testdb::{Database, Engine};
use serde_json::Value as J;

use super::support::{add_user, Client, Server};
use crate::common::{dump, Fixture, CONFIG};

const PAGE: &str = "/changes?from=staging&to=production";

/// The fixture (see `common`) with users alice and bob, served.
fn served(config: &str) -> (Fixture, Server) {
    let f = Fixture::new();
    f.write_config(config);
    add_user(f.path(), "alice", "pw-alice");
    add_user(f.path(), "bob", "pw-bob");
    add_user(f.path(), "carol", "pw-carol");
    let s = Server::start(f.path(), &[]);
    (f, s)
}

/// Every start tag carrying `data-testid="ID"`.
fn tags<'a>(html: &'a str, id: &str) -> Vec<&'a str> {
    let needle = format!("data-testid=\"{id}\"");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = html[from..].find(&needle) {
        let at = from + at;
        let start = html[..at].rfind('<').expect("a tag start");
        let end = at + html[at..].find('>').expect("a tag end");
        out.push(&html[start..=end]);
        from = end;
    }
    out
}

/// The value of attribute `name` in a start tag, unescaped.
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    let len = tag[at..].find('"')?;
    Some(
        tag[at..at + len]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The `data-key` of every `row-select` box.
fn selectable(html: &str) -> Vec<String> {
    tags(html, "row-select")
        .iter()
        .map(|t| attr(t, "data-key").expect("a data-key"))
        .collect()
}

/// The plan hash the page shows (and its forms carry).
fn hash(html: &str) -> String {
    let t = tags(html, "plan-counts");
    attr(
        t.first().unwrap_or_else(|| panic!("no plan counts:\n{html}")),
        "data-hash",
    )
    .expect("a hash")
}

/// The text of the element that carries `data-testid="ID"` (no nesting).
fn text_of(html: &str, id: &str) -> Option<String> {
    let tag = *tags(html, id).first()?;
    let at = html.find(tag)? + tag.len();
    let end = at + html[at..].find('<')?;
    Some(html[at..end].to_string())
}

/// The changes page, expecting 200.
async fn changes(c: &Client, path: &str) -> String {
    let r = c.get(path).await;
    let status = r.status().as_u16();
    let html = r.text().await.expect("a page");
    assert_eq!(status, 200, "GET {path}:\n{html}");
    html
}

/// Posts the transfer form of the page: its hash and the ticked ids.
async fn transfer(c: &Client, hash: &str, ids: &[&str]) -> (u16, String) {
    let mut fields = vec![("from", "staging"), ("to", "production"), ("table", ""), ("hash", hash)];
    fields.extend(ids.iter().map(|id| ("id", *id)));
    let r = c.post_form("/changes/transfer", &fields).await;
    (r.status().as_u16(), r.text().await.expect("a page"))
}

#[tokio::test]
async fn the_changes_page_lists_each_row_with_its_key_and_every_field_of_an_insert() {
    let (_f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    let keys = selectable(&html);
    for k in [
        "cities:2",
        "businesses:2",
        "forms:2",
        "form_fields:3",
        "menus:5",
        "menus:1",
    ] {
        assert!(keys.contains(&k.to_string()), "{k} not selectable: {keys:?}");
    }
    // Conflicts and rows left as they are get no box: the first-contact
    // business is decided with its take buttons, QA rows never leave.
    for k in ["businesses:1", "businesses:3", "cities:99"] {
        assert!(!keys.contains(&k.to_string()), "{k} is selectable: {keys:?}");
    }
    let take: Vec<String> = tags(&html, "take-source")
        .iter()
        .filter_map(|t| attr(t, "data-key"))
        .collect();
    assert_eq!(take, ["businesses:1"], "{html}");
    // The insert of business 2 shows each of its fields with its value.
    let row = html
        .split("data-key=\"businesses:2\" data-action=\"insert\"")
        .nth(1)
        .and_then(|rest| rest.split("data-testid=\"change-row\"").next())
        .unwrap_or_else(|| panic!("no row businesses:2:\n{html}"));
    for (column, value) in [
        ("id", "2"),
        ("name", "Bäckerei 🥨 👩‍👩‍👧 日本語"),
        ("city_id", "2"),
        ("created_by_team", "content"),
    ] {
        let cell = row
            .split(&format!("data-column=\"{column}\""))
            .nth(1)
            .unwrap_or_else(|| panic!("no field {column} in {row}"));
        assert!(cell.split("</tr>").next().unwrap().contains(value), "{column}: {row}");
    }
    assert_eq!(tags(&html, "transfer-button").len(), 1, "{html}");
    assert_eq!(tags(&html, "table-select").len(), 5, "one box per table: {html}");
    assert_eq!(tags(&html, "row-search").len(), 1);
    // No inline script or style (the CSP forbids them).
    assert!(!html.contains("<script>") && !html.contains(" style="), "{html}");
    // One table: only its rows, and its own hash.
    let cities = changes(&alice, &format!("{PAGE}&table=cities")).await;
    assert_eq!(selectable(&cities), ["cities:2"]);
    assert_ne!(hash(&cities), hash(&html));
}

#[tokio::test]
async fn transferring_two_ticked_rows_writes_exactly_them_and_shows_the_promotion() {
    let (f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    let (status, done) = transfer(&alice, &hash(&html), &["cities:2", "menus:5"]).await;
    assert_eq!(status, 200, "{done}");
    let id = text_of(&done, "promotion-id").unwrap_or_else(|| panic!("no promotion id:\n{done}"));
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    assert_eq!(f.ids("production", "menus"), [5]);
    assert_eq!(f.ids("production", "businesses"), [1]);
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 2"),
        "Zürich 🏔️"
    );
    // Journaled under alice, with exactly those rows.
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log:#}");
    assert_eq!(log[0]["id"], J::String(id.clone()));
    assert_eq!(log[0]["user"], "alice");
    let shown = f.run(&["show", &id, "--json"]).expect(0).json();
    let mut rows: Vec<String> = shown["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            format!(
                "{}:{}:{}",
                r["table"].as_str().unwrap(),
                r["key"]["id"],
                r["action"].as_str().unwrap()
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, ["cities:2:insert", "menus:5:insert"], "{shown:#}");
    // The page after it no longer offers them.
    let after = selectable(&changes(&alice, PAGE).await);
    assert!(!after.contains(&"cities:2".to_string()) && !after.contains(&"menus:5".to_string()));
}

#[tokio::test]
async fn a_conflict_is_decided_for_the_source_with_its_take_button() {
    let (f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    let fields = [
        ("from", "staging"),
        ("to", "production"),
        ("table", ""),
        ("hash", &hash(&html)),
        ("id", "businesses:1"),
        ("take", "source"),
    ];
    let r = alice.post_form("/changes/transfer", &fields).await;
    let (status, done) = (r.status().as_u16(), r.text().await.unwrap());
    assert_eq!(status, 200, "{done}");
    assert!(text_of(&done, "promotion-id").is_some(), "{done}");
    assert_eq!(
        f.scalar("production", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕"
    );
}

#[tokio::test]
async fn a_stale_hash_is_refused_with_409_nothing_written_and_the_fresh_diff_shown() {
    let (f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    let shown = hash(&html);
    // Someone adds a city in staging after the page was shown.
    f.exec("staging", "INSERT INTO cities VALUES (4, 'Basel');");
    let before = dump(&f.production());
    let (status, page) = transfer(&alice, &shown, &["cities:2", "menus:5"]).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(dump(&f.production()), before, "a stale transfer wrote something");
    assert!(tags(&page, "notice-error").len() == 1, "{page}");
    assert!(page.contains("moved since the page showed them"), "{page}");
    // The fresh diff, with its new hash and the new row.
    assert!(selectable(&page).contains(&"cities:4".to_string()), "{page}");
    let fresh = hash(&page);
    assert_ne!(fresh, shown);
    // With the fresh hash the same rows go through.
    let (status, done) = transfer(&alice, &fresh, &["cities:2", "menus:5"]).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
}

#[tokio::test]
async fn without_a_csrf_token_or_a_ticked_row_nothing_is_transferred() {
    let (f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    let shown = hash(&html);
    let before = dump(&f.production());
    let r = alice
        .post_form_raw(
            "/changes/transfer",
            &[
                ("from", "staging"),
                ("to", "production"),
                ("hash", &shown),
                ("id", "cities:2"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 403, "{}", r.text().await.unwrap());
    assert_eq!(dump(&f.production()), before);
    // Nothing ticked: a usage error, nothing written.
    let (status, page) = transfer(&alice, &shown, &[]).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("tick the rows to transfer"), "{page}");
    // A malformed id names itself.
    let (status, page) = transfer(&alice, &shown, &["cities"]).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("`cities`"), "{page}");
    assert_eq!(dump(&f.production()), before);
}

#[tokio::test]
async fn a_user_without_the_promote_right_sees_no_button_and_a_forged_post_is_refused_and_audited() {
    let config = format!(
        "{CONFIG}\n[access]\nusers = {{ alice = [\"pm\"], carol = [\"qa\"] }}\npromote = {{ production = [\"pm\"] }}\n"
    );
    let (f, s) = served(&config);
    let carol = s.sign_in("carol", "pw-carol").await;
    let html = changes(&carol, PAGE).await;
    assert!(tags(&html, "transfer-button").is_empty(), "{html}");
    assert!(tags(&html, "take-source").is_empty(), "{html}");
    assert_eq!(tags(&html, "no-promote-right").len(), 1, "{html}");
    let before = dump(&f.production());
    let (status, page) = transfer(&carol, &hash(&html), &["cities:2"]).await;
    assert_eq!(status, 403, "{page}");
    assert_eq!(dump(&f.production()), before);
    let audit = f.run(&["audit", "production", "--json"]).expect(0).json();
    let refused = audit
        .as_array()
        .expect("audit entries")
        .iter()
        .find(|e| e["user"] == "carol" && e["action"] == "promote")
        .unwrap_or_else(|| panic!("carol's refusal is not audited: {audit:#}"));
    assert_eq!(refused["result"], "denied", "{refused}");
    // alice, a pm, has the button.
    let alice = s.sign_in("alice", "pw-alice").await;
    assert_eq!(tags(&changes(&alice, PAGE).await, "transfer-button").len(), 1);
}

#[tokio::test]
async fn two_users_transferring_overlapping_rows_at_once_one_wins_the_other_gets_409() {
    let (f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let bob = s.sign_in("bob", "pw-bob").await;
    let (a, b) = (changes(&alice, PAGE).await, changes(&bob, PAGE).await);
    let (ha, hb) = (hash(&a), hash(&b));
    assert_eq!(ha, hb);
    let ((sa, pa), (sb, pb)) = tokio::join!(
        transfer(&alice, &ha, &["cities:2", "menus:5"]),
        transfer(&bob, &hb, &["cities:2", "menus:3"]),
    );
    let mut statuses = [sa, sb];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "alice: {pa}\nbob: {pb}");
    let (winner, loser_page) = if sa == 200 { ("alice", &pb) } else { ("bob", &pa) };
    assert!(loser_page.contains("moved since the page showed them"), "{loser_page}");
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log:#}");
    assert_eq!(log[0]["user"], winner);
    // Exactly the winner's rows (menus 3 brings its parent 5 along).
    let menus = f.ids("production", "menus");
    match winner {
        "alice" => assert_eq!(menus, [5]),
        _ => assert_eq!(menus, [3, 5]),
    }
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
}

/// The `data-count` of each pending count of the step, once computed.
fn step_counts(html: &str) -> Option<Vec<(String, u64)>> {
    let step = tags(html, "pending").into_iter().next()?;
    if attr(step, "data-state")? != "ready" {
        return None;
    }
    let names = ["insert", "update", "delete", "conflict", "target-newer"];
    names
        .iter()
        .map(|n| {
            let t = tags(html, &format!("pending-{n}"));
            let count = attr(t.first()?, "data-count")?.parse().ok()?;
            Some((n.to_string(), count))
        })
        .collect()
}

/// Polls the overview until its step shows counts equal to `expected`.
async fn wait_for_counts(c: &Client, expected: &[(String, u64)]) {
    let start = Instant::now();
    loop {
        let r = c.get("/").await;
        assert_eq!(r.status().as_u16(), 200);
        let html = r.text().await.unwrap();
        if let Some(counts) = step_counts(&html) {
            if counts == expected {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the overview never showed {expected:?}:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The counts the overview should show, from `ferry diff --json`.
fn expected_counts(f: &Fixture) -> Vec<(String, u64)> {
    let plan = f.diff_json(&[]);
    let c = &plan["counts"];
    let newer = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|e| e["reason"] == "target-newer")
        .count() as u64;
    ["insert", "update", "delete", "conflict"]
        .iter()
        .map(|n| (n.to_string(), c[*n].as_u64().expect("a count")))
        .chain([("target-newer".to_string(), newer)])
        .collect()
}

#[tokio::test]
async fn the_overview_shows_the_counts_computed_in_the_background_and_refreshes_them() {
    let (f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let first = alice.get("/").await.text().await.unwrap();
    let step = tags(&first, "pending");
    assert_eq!(step.len(), 1, "{first}");
    assert_eq!(attr(step[0], "data-from").as_deref(), Some("staging"));
    let expected = expected_counts(&f);
    assert!(expected[0].1 > 0, "{expected:?}");
    wait_for_counts(&alice, &expected).await;
    let html = alice.get("/").await.text().await.unwrap();
    assert!(
        text_of(&html, "pending-age").is_some_and(|t| t.contains("ago")),
        "{html}"
    );
    assert_eq!(tags(&html, "env-health").len(), 2, "{html}");
    assert!(tags(&html, "env-health")
        .iter()
        .all(|t| attr(t, "data-healthy").as_deref() == Some("true")));
    // A transfer from the page recomputes the counts by itself.
    let page = changes(&alice, PAGE).await;
    let (status, done) = transfer(&alice, &hash(&page), &["menus:5"]).await;
    assert_eq!(status, 200, "{done}");
    let moved = expected_counts(&f);
    assert_ne!(moved, expected);
    wait_for_counts(&alice, &moved).await;
    // A promotion from elsewhere moves them too, shown after a refresh
    // (which needs the CSRF token like every state-changing request).
    f.promote(&["--id", "cities:2"]);
    let r = alice
        .post_form_raw("/overview/refresh", &[("from", "staging"), ("to", "production")])
        .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = alice
        .post_form("/overview/refresh", &[("from", "staging"), ("to", "production")])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    wait_for_counts(&alice, &expected_counts(&f)).await;
    // The changes page plans the whole pair anyway: the overview shows
    // its counts at once, no refresh or wait.
    f.promote(&["--id", "forms:2"]);
    let fresh = expected_counts(&f);
    changes(&alice, PAGE).await;
    let html = alice.get("/").await.text().await.unwrap();
    assert_eq!(step_counts(&html).as_deref(), Some(&fresh[..]), "{html}");
    // The last promotions are listed under production.
    assert_eq!(tags(&html, "recent-promotion").len(), 3, "{html}");
}

#[tokio::test]
async fn a_transfer_into_an_environment_that_takes_reviews_shows_the_review() {
    let config = CONFIG.replace(
        "url = \"sqlite://production.db\"\n",
        "url = \"sqlite://production.db\"\nreview = true\n",
    );
    assert_ne!(config, CONFIG);
    let (f, s) = served(&config);
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    let (status, done) = transfer(&alice, &hash(&html), &["cities:2"]).await;
    assert_eq!(status, 200, "{done}");
    let review = text_of(&done, "review-id").unwrap_or_else(|| panic!("no review id:\n{done}"));
    // Held for review: production is as it was.
    assert_eq!(f.ids("production", "cities"), [1, 3, 99]);
    let listed = f.run(&["reviews", "production", "--json"]).expect(0).json();
    assert_eq!(listed[0]["id"], J::String(review), "{listed:#}");
    // The overview counts it.
    let html = alice.get("/").await.text().await.unwrap();
    let open: Vec<String> = tags(&html, "open-reviews")
        .iter()
        .filter_map(|t| attr(t, "data-count"))
        .collect();
    assert_eq!(open, ["1"], "{html}");
}

#[tokio::test]
async fn the_changes_page_without_its_environments_is_a_usage_error() {
    let (_f, s) = served(CONFIG);
    let alice = s.sign_in("alice", "pw-alice").await;
    let r = alice.get("/changes?from=staging").await;
    assert_eq!(r.status().as_u16(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("data-testid=\"error\"") && html.contains("`to`"),
        "{html}"
    );
    // An environment that does not exist is named.
    let r = alice.get("/changes?from=staging&to=nowhere").await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("nowhere"));
}

const PG_TEST: &str = "server_changes_postgres";

const PG_SCHEMA: &str = "
CREATE TABLE cities (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE businesses (
    id integer PRIMARY KEY,
    name text NOT NULL,
    city_id integer REFERENCES cities(id),
    notes text
);
";

const PG_CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url_env = "FERRY_SRV_PG_STAGING_URL"

[environments.production]
url_env = "FERRY_SRV_PG_PRODUCTION_URL"

[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = { city_id = "cities" }
"#;

#[tokio::test]
async fn a_transfer_on_postgresql_writes_the_ticked_rows_and_what_they_need() {
    let Some(staging) = Database::create(Engine::Postgres, PG_TEST, "srv_staging") else {
        return;
    };
    let Some(production) = Database::create(Engine::Postgres, PG_TEST, "srv_production") else {
        return;
    };
    let long = "ü".repeat(300);
    staging
        .exec(&format!(
            "{PG_SCHEMA}
            INSERT INTO cities VALUES (1, 'Lyon'), (2, 'Zürich 🏔️'), (3, 'Bern');
            INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1, NULL), (2, 'Bäckerei 🥨', 2, '{long}'), (3, 'Shop', 3, NULL);"
        ))
        .await;
    production.exec(PG_SCHEMA).await;
    let dir = tempfile::tempdir().expect("a folder");
    std::fs::write(dir.path().join("ferry.toml"), PG_CONFIG).expect("write ferry.toml");
    add_user(dir.path(), "alice", "pw-alice");
    let s = Server::start(
        dir.path(),
        &[
            ("FERRY_SRV_PG_STAGING_URL", &staging.url),
            ("FERRY_SRV_PG_PRODUCTION_URL", &production.url),
        ],
    );
    let alice = s.sign_in("alice", "pw-alice").await;
    let html = changes(&alice, PAGE).await;
    assert_eq!(
        selectable(&html),
        [
            "cities:1",
            "cities:2",
            "cities:3",
            "businesses:1",
            "businesses:2",
            "businesses:3"
        ]
    );
    // The long value is folded, and whole.
    assert!(html.contains(&long) && html.contains("<details"), "{html}");
    assert!(!html.contains(&staging.url) && !html.contains(&production.url));
    // businesses:2 brings its city along.
    let (status, done) = transfer(&alice, &hash(&html), &["businesses:2", "cities:1"]).await;
    assert_eq!(status, 200, "{done}");
    assert!(text_of(&done, "promotion-id").is_some(), "{done}");
    assert_eq!(
        production.client("SELECT id FROM cities ORDER BY id").trim_end(),
        "1\n2"
    );
    assert_eq!(
        production
            .client("SELECT id, name FROM businesses ORDER BY id")
            .trim_end(),
        "2|Bäckerei 🥨"
    );
    assert_eq!(
        production
            .client("SELECT notes FROM businesses WHERE id = 2")
            .trim_end(),
        long,
        "the long value travels whole"
    );
}
