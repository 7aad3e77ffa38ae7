//! The API's promotion flow on the database servers: diff with its hash,
//! a stale hash refused (409, nothing written), a promotion with the fresh
//! hash, the journal listing and a promotion shown, and a revert, on
//! PostgreSQL and MariaDB (throw-away databases from `ferry_testdb`,
//! reached through `url_env`; without a server the test prints `SKIP`,
//! and under `CI=true` it fails).

use ferry_testdb::{Database, Engine};
use serde_json::{json, Value as J};

use super::support::{add_user, token, Server};

const TEST: &str = "server::api_engines";

const SCHEMA: &str = "
CREATE TABLE cities (
    id integer PRIMARY KEY,
    name varchar(200) NOT NULL
);
CREATE TABLE businesses (
    id integer PRIMARY KEY,
    name varchar(200) NOT NULL,
    city_id integer REFERENCES cities(id)
);
";

/// Both sides hold these rows, equal.
const SHARED: &str = "
INSERT INTO cities VALUES (1, 'Lyon');
INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1);
";

/// Staging's new work: a business in a new city.
const STAGING_WORK: &str = "
INSERT INTO cities VALUES (2, 'Zürich 🏔️');
INSERT INTO businesses VALUES (2, 'Bäckerei 🥨', 2);
";

const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url_env = "FERRY_APIT_STAGING_URL"

[environments.production]
url_env = "FERRY_APIT_PRODUCTION_URL"

[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = { city_id = "cities" }
"#;

/// The application rows of `db`, as its client prints them.
fn content(db: &Database) -> String {
    db.client("SELECT id, name FROM cities ORDER BY id; SELECT id, name, city_id FROM businesses ORDER BY id;")
}

async fn flow(engine: Engine) {
    let Some(staging) = Database::create(engine, TEST, "apit_stg") else {
        return;
    };
    let Some(production) = Database::create(engine, TEST, "apit_prd") else {
        return;
    };
    for db in [&staging, &production] {
        db.exec(&format!("{SCHEMA}{SHARED}")).await;
    }
    staging.exec(STAGING_WORK).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("ferry.toml"), CONFIG).expect("write ferry.toml");
    add_user(dir.path(), "alice", "pw-alice");
    let t = token(dir.path(), "alice");
    let s = Server::start(
        dir.path(),
        &[
            ("FERRY_APIT_STAGING_URL", staging.url.as_str()),
            ("FERRY_APIT_PRODUCTION_URL", production.url.as_str()),
        ],
    );
    let api = s.bearer(&t);
    let name = engine.name();

    let envs = api.get_json("/api/v1/environments", 200).await;
    assert_eq!(envs[1]["healthy"], true, "{name}: {envs}");
    let diff = "/api/v1/diff?from=staging&to=production&id=businesses:2";
    let plan = api.get_json(diff, 200).await;
    assert_eq!(plan["counts"]["insert"], 2, "{name}: {plan}");
    let stale = plan["hash"].clone();

    // Staging moves after the diff was shown: the old hash is refused.
    staging
        .exec("UPDATE businesses SET name = 'Bäckerei 🥨 (neu)' WHERE id = 2")
        .await;
    let before = content(&production);
    let body = |hash: &J| json!({"from": "staging", "to": "production", "ids": ["businesses:2"], "plan_hash": hash});
    let refused = api.post_json("/api/v1/promotions", &body(&stale), 409).await;
    assert_eq!(refused["error"]["hint"]["kind"], "stale", "{name}: {refused}");
    assert_eq!(
        content(&production),
        before,
        "{name}: a stale promotion wrote something"
    );
    assert_eq!(api.get_json("/api/v1/promotions?env=production", 200).await, json!([]));

    let fresh = api.get_json(diff, 200).await;
    assert_ne!(fresh["hash"], stale, "{name}");
    let done = api.post_json("/api/v1/promotions", &body(&fresh["hash"]), 201).await;
    let id = done["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {done}"))
        .to_string();
    assert_eq!(done["counts"]["insert"], 2, "{name}: {done}");
    let now = content(&production);
    assert!(
        now.contains("Bäckerei 🥨 (neu)") && now.contains("Zürich 🏔️"),
        "{name}: {now}"
    );

    let log = api.get_json("/api/v1/promotions?env=production", 200).await;
    assert_eq!(log[0]["id"], id.as_str(), "{name}: {log}");
    let shown = api.get_json(&format!("/api/v1/promotions/{id}"), 200).await;
    assert_eq!(shown["rows"].as_array().map(Vec::len), Some(2), "{name}: {shown}");

    let reverted = api
        .post_json(&format!("/api/v1/promotions/{id}/revert"), &json!({}), 200)
        .await;
    assert_eq!(reverted["reverts"], id.as_str(), "{name}: {reverted}");
    assert_eq!(
        content(&production),
        before,
        "{name}: the revert did not restore production"
    );
    let audit = api.get_json("/api/v1/audit?env=production&limit=10", 200).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["revert", "promote", "promote"], "{name}: {audit}");
    assert_eq!(audit["entries"][2]["result"], "blocked", "{name}: {audit}");
}

#[tokio::test]
async fn the_promotion_flow_on_postgres() {
    flow(Engine::Postgres).await;
}

#[tokio::test]
async fn the_promotion_flow_on_mariadb() {
    flow(Engine::Mariadb).await;
}
