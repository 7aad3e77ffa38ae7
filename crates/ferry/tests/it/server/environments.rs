//! The server's environment pages and API (issue 18, its server part),
//! with the real binary: a per-branch environment made by the command line
//! while the server runs is found (`/api/v1/environments`, `/environments`,
//! the overview), transferred from into its parent through the API, marked
//! merged and destroyed after the preview of what it loses; a refresh
//! previewed, applied and reverted over HTTP; rights (403) and CSRF on the
//! new forms. On SQLite, and the branch flow once on PostgreSQL.

use ferry_testdb::{client, server_url, with_database, Database, Engine};
use serde_json::{json, Value as J};

use super::support::{add_user, token, Client, Server};
use crate::common::{dump_tables, run_in_with, Fixture};

const SCHEMA: &str = "
CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE businesses (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city_id INTEGER REFERENCES cities(id),
    icon BLOB
);
";

const STAGING: &str = "
INSERT INTO cities VALUES (1, 'Lyon'), (2, 'Zürich 🏔️');
INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1, x'00ff10'), (2, 'Bäckerei 🥨', 2, NULL);
";

const PRODUCTION: &str = "
INSERT INTO cities VALUES (1, 'Lyon'), (2, 'Zürich 🏔️'), (3, 'Bern 🐻');
INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1, x'00ff10'), (3, 'Prod shop', 3, x'89504e470d0a1a0a00');
";

/// alice (dev) may clone staging, destroy its clones and refresh it;
/// carol (qa) may read only.
const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = { city_id = "cities" }

[access]
users = { alice = ["dev"], carol = ["qa"] }
promote = { staging = ["dev"], production = ["dev"] }
envs = { staging = ["dev"] }
refresh = { staging = ["dev"] }
"#;

const TABLES: [&str; 2] = ["cities", "businesses"];

fn served() -> (Fixture, Server, String, String) {
    let f = Fixture::with(SCHEMA, STAGING, SCHEMA, PRODUCTION);
    f.write_config(CONFIG);
    for u in ["alice", "carol"] {
        add_user(f.path(), u, &format!("pw-{u}"));
    }
    let (ta, tc) = (token(f.path(), "alice"), token(f.path(), "carol"));
    let s = Server::start(f.path(), &[]);
    (f, s, ta, tc)
}

fn env_named<'a>(list: &'a J, name: &str) -> Option<&'a J> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|e| e["name"] == name)
}

async fn page(c: &Client, path: &str, status: u16) -> String {
    let r = c.get(path).await;
    let got = r.status().as_u16();
    let html = r.text().await.unwrap_or_default();
    assert_eq!(got, status, "GET {path}:\n{html}");
    html
}

#[tokio::test]
async fn a_branch_env_made_while_serving_is_listed_transferred_marked_merged_and_destroyed() {
    let (f, s, ta, tc) = served();
    let (alice, carol) = (s.bearer(&ta), s.bearer(&tc));
    let before = alice.get_json("/api/v1/environments", 200).await;
    assert_eq!(before.as_array().map(Vec::len), Some(2), "{before}");
    assert_eq!(before[0]["branch"], J::Null, "{before}");

    // Made by the command line (CI) while the server runs.
    let made = f
        .run(&[
            "env",
            "create",
            "feature/X-1",
            "--from",
            "staging",
            "--as",
            "alice",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(made["name"], "feature-x-1", "{made}");
    let list = alice.get_json("/api/v1/environments", 200).await;
    let b = env_named(&list, "feature-x-1").unwrap_or_else(|| panic!("not listed: {list}"));
    assert_eq!(b["branch"], "feature/X-1", "{b}");
    assert_eq!(b["parent"], "staging", "{b}");
    assert_eq!(b["promotes_to"], "staging", "{b}");
    assert_eq!(b["pipeline_index"], J::Null, "{b}");
    assert_eq!(b["expires_at"], J::Null, "{b}");
    assert_eq!(b["healthy"], true, "{b}");
    assert_eq!(b["engine"], "SQLite", "{b}");

    let session = s.sign_in("alice", "pw-alice").await;
    let html = page(&session, "/environments", 200).await;
    assert!(
        html.contains(r#"data-testid="env-row" data-env="feature-x-1""#),
        "{html}"
    );
    assert!(html.contains(r#"data-testid="env-merged""#), "{html}");
    assert!(html.contains(r#"data-testid="env-destroy""#), "{html}");
    let overview = page(&session, "/", 200).await;
    assert!(
        overview.contains(r#"data-from="feature-x-1" data-to="staging""#),
        "the overview's pending pairs:\n{overview}"
    );

    // Work in the branch, transferred into its parent through the API.
    f.exec(
        "staging-feature-x-1",
        "INSERT INTO cities VALUES (7, 'Branch town 🌿');",
    );
    let plan = alice.get_json("/api/v1/diff?from=feature-x-1&to=staging", 200).await;
    assert_eq!(plan["counts"]["insert"], 1, "three-way from the clone point: {plan}");
    let changes = page(&session, "/changes?from=feature-x-1&to=staging", 200).await;
    assert!(
        changes.contains(r#"data-testid="row-select" data-key="cities:7""#),
        "{changes}"
    );
    let refused = alice
        .post_json(
            "/api/v1/promotions",
            &json!({"from": "feature-x-1", "to": "production"}),
            409,
        )
        .await;
    assert_eq!(
        refused["error"]["code"], "blocked",
        "a branch env promotes to its promotes_to only: {refused}"
    );
    let done = alice
        .post_json(
            "/api/v1/promotions",
            &json!({"from": "feature-x-1", "to": "staging", "plan_hash": plan["hash"]}),
            201,
        )
        .await;
    assert_eq!(done["counts"]["insert"], 1, "{done}");
    assert_eq!(f.ids("staging", "cities"), [1, 2, 7]);
    let log = alice.get_json("/api/v1/promotions?env=staging", 200).await;
    assert_eq!(log[0]["from"], "feature-x-1", "{log}");
    let history = page(&session, "/history?env=staging", 200).await;
    assert!(history.contains("feature-x-1 → staging"), "{history}");
    let audit = page(&session, "/audit?env=feature-x-1", 200).await;
    assert!(
        audit.contains(r#"data-testid="audit""#) || audit.contains(r#"data-testid="no-audit""#),
        "{audit}"
    );

    // `GET /api/v1/envs` is `ferry env list --json`.
    let envs = carol.get_json("/api/v1/envs", 200).await;
    let cli = f.run(&["env", "list", "--json"]).expect(0).json();
    assert_eq!(envs, cli, "the API lists what the command line lists");
    assert_eq!(envs[0]["pending"]["insert"], 0, "{envs}");

    // Marking merged needs the `envs` right on the parent.
    let denied = carol
        .post_json("/api/v1/envs/feature-x-1/merged", &json!({"ttl": "0d"}), 403)
        .await;
    assert_eq!(denied["error"]["code"], "denied", "{denied}");
    let bad = alice
        .post_json("/api/v1/envs/feature-x-1/merged", &json!({"ttl": "soon"}), 400)
        .await;
    assert_eq!(bad["error"]["code"], "usage", "{bad}");
    let merged = alice
        .post_json("/api/v1/envs/feature-x-1/merged", &json!({"ttl": "0d"}), 200)
        .await;
    assert!(
        merged["merged_at"].is_string() && merged["expires_at"].is_string(),
        "{merged}"
    );
    let list = alice.get_json("/api/v1/environments", 200).await;
    assert_eq!(
        env_named(&list, "feature-x-1").expect("listed")["expires_at"],
        merged["expires_at"]
    );
    let html = page(&session, "/environments", 200).await;
    assert!(html.contains(r#"data-testid="env-expired""#), "{html}");
    // The page's form, with the CSRF token: a new TTL.
    let r = session
        .post_form("/environments/feature-x-1/merged", &[("ttl", "2h")])
        .await;
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap_or_default());
    let forged = session
        .post_form_raw("/environments/feature-x-1/merged", &[("ttl", "1d")])
        .await;
    assert_eq!(forged.status().as_u16(), 403, "a form without the CSRF token");

    // Destroy: refused while changes would be lost, then the page's preview.
    f.exec(
        "staging-feature-x-1",
        "UPDATE cities SET name = 'Lyon (branch)' WHERE id = 1;",
    );
    let denied = carol.delete_json("/api/v1/envs/feature-x-1", &json!({}), 403).await;
    assert_eq!(denied["error"]["code"], "denied", "{denied}");
    let kept = alice.delete_json("/api/v1/envs/feature-x-1", &json!({}), 409).await;
    assert_eq!(kept["error"]["code"], "blocked", "{kept}");
    assert_eq!(kept["env"]["pending"]["update"], 1, "{kept}");
    assert!(f.db("staging-feature-x-1").exists());
    let preview = page(&session, "/environments/feature-x-1/destroy", 200).await;
    assert!(
        preview.contains(r#"data-testid="destroy-loses" data-count="1""#),
        "{preview}"
    );
    let carols = s.sign_in("carol", "pw-carol").await;
    page(&carols, "/environments/feature-x-1/destroy", 403).await;
    let forged = session
        .post_form_raw("/environments/feature-x-1/destroy", &[("seen", "0,1,0,0")])
        .await;
    assert_eq!(forged.status().as_u16(), 403, "a form without the CSRF token");
    // A confirmation given on other numbers shows the preview again.
    let stale = session
        .post_form("/environments/feature-x-1/destroy", &[("seen", "0,0,0,0")])
        .await;
    assert_eq!(stale.status().as_u16(), 409);
    assert!(f.db("staging-feature-x-1").exists());
    let r = session
        .post_form("/environments/feature-x-1/destroy", &[("seen", "0,1,0,0")])
        .await;
    let status = r.status().as_u16();
    let html = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("destroyed"), "{html}");
    assert!(!f.db("staging-feature-x-1").exists(), "the clone's file is gone");
    let list = alice.get_json("/api/v1/environments", 200).await;
    assert!(env_named(&list, "feature-x-1").is_none(), "{list}");
    let html = page(&session, "/environments", 200).await;
    assert!(!html.contains(r#"data-env="feature-x-1""#), "{html}");
    let gone = alice.get_json("/api/v1/diff?from=feature-x-1&to=staging", 400).await;
    assert_eq!(gone["error"]["code"], "usage", "{gone}");

    // Made and destroyed by the command line: a request that names it
    // finds it at once, and not once it is gone (no listing in between).
    f.run(&["env", "create", "feature/Y", "--from", "staging", "--as", "alice"])
        .expect(0);
    let plan = alice.get_json("/api/v1/diff?from=feature-y&to=staging", 200).await;
    assert_eq!(plan["from"], "feature-y", "{plan}");
    f.run(&["env", "destroy", "feature-y", "--yes", "--as", "alice"])
        .expect(0);
    let gone = alice.get_json("/api/v1/diff?from=feature-y&to=staging", 400).await;
    assert!(
        gone["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("feature-y")),
        "{gone}"
    );
}

#[tokio::test]
async fn a_refresh_is_previewed_applied_and_reverted_over_http() {
    let (f, s, ta, tc) = served();
    let (alice, carol) = (s.bearer(&ta), s.bearer(&tc));
    f.run(&["baseline", "staging", "production", "--yes", "--as", "alice"])
        .expect(0);
    // Unpromoted work in staging, which the refresh discards.
    f.exec(
        "staging",
        "INSERT INTO cities VALUES (8, 'Draft town'); UPDATE cities SET name = 'Lyon (draft)' WHERE id = 1;",
    );
    let staging_before = dump_tables(&f.db("staging"), &TABLES);

    let preview = carol.get_json("/api/v1/refresh?env=staging&from=production", 200).await;
    assert_eq!(preview["dry_run"], true, "{preview}");
    assert_eq!(preview["refresh"], J::Null, "{preview}");
    assert_eq!(preview["next"], "production", "{preview}");
    let discarded: Vec<String> = preview["discarded"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| format!("{}:{}:{}", c["table"], c["key"]["id"], c["action"]))
        .collect();
    assert!(
        discarded.contains(&"\"cities\":8:\"insert\"".to_string()),
        "{discarded:?}"
    );
    assert!(
        discarded.contains(&"\"cities\":1:\"update\"".to_string()),
        "{discarded:?}"
    );
    assert_eq!(
        preview["counts"]["insert"], 2,
        "city 3 and business 3 come down: {preview}"
    );
    let cli = f
        .run(&["refresh", "staging", "--from", "production", "--dry-run", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        preview["incoming"]["counts"], cli["incoming"]["counts"],
        "the API previews what the CLI does"
    );
    assert_eq!(preview["discarded"]["counts"], cli["discarded"]["counts"]);

    let wrong = alice.get_json("/api/v1/refresh?env=production&from=staging", 409).await;
    assert_eq!(wrong["error"]["code"], "blocked", "{wrong}");
    let denied = carol
        .post_json("/api/v1/refresh", &json!({"env": "staging", "from": "production"}), 403)
        .await;
    assert_eq!(denied["error"]["code"], "denied", "{denied}");
    assert_eq!(
        dump_tables(&f.db("staging"), &TABLES),
        staging_before,
        "nothing written"
    );

    // The page: the diff of what is discarded, and the button for alice only.
    let session = s.sign_in("alice", "pw-alice").await;
    let html = page(&session, "/refresh?env=staging&from=production", 200).await;
    assert!(html.contains(r#"data-testid="refresh-button""#), "{html}");
    assert!(html.contains(r#"data-key="cities:8""#), "{html}");
    assert!(html.contains("Lyon (draft)"), "the discarded diff is shown:\n{html}");
    let carols = s.sign_in("carol", "pw-carol").await;
    let html = page(&carols, "/refresh?env=staging&from=production", 200).await;
    assert!(!html.contains(r#"data-testid="refresh-button""#), "{html}");
    let forged = session
        .post_form_raw("/refresh", &[("env", "staging"), ("from", "production")])
        .await;
    assert_eq!(forged.status().as_u16(), 403, "a form without the CSRF token");
    let r = carols
        .post_form("/refresh", &[("env", "staging"), ("from", "production")])
        .await;
    assert_eq!(r.status().as_u16(), 403, "carol has no refresh right");
    assert_eq!(
        dump_tables(&f.db("staging"), &TABLES),
        staging_before,
        "nothing written"
    );

    let r = session
        .post_form("/refresh", &[("env", "staging"), ("from", "production")])
        .await;
    let status = r.status().as_u16();
    let html = r.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{html}");
    let id = html
        .split(r#"data-testid="promotion-id">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no promotion id:\n{html}"))
        .to_string();
    assert!(html.contains(&format!("/promotions/{id}")), "{html}");
    assert_eq!(
        dump_tables(&f.db("staging"), &TABLES),
        dump_tables(&f.db("production"), &TABLES),
        "staging holds production's rows, byte for byte"
    );

    // Reverted through the API: staging as it was.
    let reverted = alice
        .post_json(&format!("/api/v1/promotions/{id}/revert"), &json!({}), 200)
        .await;
    assert_eq!(reverted["reverts"], id.as_str(), "{reverted}");
    assert_eq!(dump_tables(&f.db("staging"), &TABLES), staging_before);

    // And once more through the API.
    let done = alice
        .post_json("/api/v1/refresh", &json!({"env": "staging", "from": "production"}), 200)
        .await;
    assert!(done["refresh"].is_string(), "{done}");
    assert_eq!(done["dry_run"], false, "{done}");
    assert_eq!(
        dump_tables(&f.db("staging"), &TABLES),
        dump_tables(&f.db("production"), &TABLES)
    );
    let next = alice.get_json("/api/v1/diff?from=staging&to=production", 200).await;
    assert_eq!(next["changes"].as_array().map(Vec::len), Some(0), "{next}");
}

const PG_SCHEMA: &str = "
CREATE TABLE cities (id integer PRIMARY KEY, name varchar(100) NOT NULL);
INSERT INTO cities VALUES (1, 'Lyon'), (2, 'Zürich 🏔️');
";

const PG_CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url_env = "FERRY_SRVENV_STAGING_URL"

[environments.production]
url_env = "FERRY_SRVENV_PRODUCTION_URL"

[tables.cities]
key = ["id"]
"#;

/// Drops the clone's database however the test ends.
struct CloneGuard {
    admin_url: String,
    db: String,
}

impl Drop for CloneGuard {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db);
        if let Err(e) = client(Engine::Postgres, &self.admin_url, &sql) {
            eprintln!("could not drop the clone {}: {e}", self.db);
        }
    }
}

#[tokio::test]
async fn a_branch_env_on_postgres_is_found_transferred_and_destroyed_over_http() {
    const TEST: &str = "server::environments::postgres";
    let Some(server) = server_url(Engine::Postgres, TEST) else {
        return;
    };
    let (Some(staging), Some(production)) = (
        Database::create(Engine::Postgres, TEST, "srvenv_stg"),
        Database::create(Engine::Postgres, TEST, "srvenv_prd"),
    ) else {
        return;
    };
    for db in [&staging, &production] {
        db.exec(PG_SCHEMA).await;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("ferry.toml"), PG_CONFIG).expect("write ferry.toml");
    add_user(dir.path(), "alice", "pw-alice");
    let t = token(dir.path(), "alice");
    let vars = [
        ("FERRY_SRVENV_STAGING_URL", staging.url.as_str()),
        ("FERRY_SRVENV_PRODUCTION_URL", production.url.as_str()),
    ];
    let s = Server::start(dir.path(), &vars);
    let api = s.bearer(&t);

    let clone_db = format!("{}_feature_pg_1", staging.name());
    let _guard = CloneGuard {
        admin_url: staging.url.clone(),
        db: clone_db.clone(),
    };
    run_in_with(
        dir.path(),
        &["env", "create", "feature/pg-1", "--from", "staging"],
        &vars,
    )
    .expect(0);
    let list = api.get_json("/api/v1/environments", 200).await;
    let b = env_named(&list, "feature-pg-1").unwrap_or_else(|| panic!("not listed: {list}"));
    assert_eq!(
        (b["engine"].as_str(), b["parent"].as_str()),
        (Some("PostgreSQL"), Some("staging")),
        "{b}"
    );

    let clone_url = with_database(&server, &clone_db);
    client(
        Engine::Postgres,
        &clone_url,
        "INSERT INTO cities VALUES (5, 'Branch 🌿')",
    )
    .expect("edit the clone");
    let done = api
        .post_json(
            "/api/v1/promotions",
            &json!({"from": "feature-pg-1", "to": "staging"}),
            201,
        )
        .await;
    assert_eq!(done["counts"]["insert"], 1, "{done}");
    assert!(staging
        .client("SELECT name FROM cities WHERE id = 5")
        .contains("Branch 🌿"));

    let gone = api
        .delete_json("/api/v1/envs/feature-pg-1", &json!({"force": true}), 200)
        .await;
    assert_eq!(gone["name"], "feature-pg-1", "{gone}");
    let left = client(
        Engine::Postgres,
        &staging.url,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{clone_db}'"),
    )
    .expect("ask the server");
    assert_eq!(left.trim(), "0", "the clone's database is dropped");
    let list = api.get_json("/api/v1/environments", 200).await;
    assert!(env_named(&list, "feature-pg-1").is_none(), "{list}");
}
