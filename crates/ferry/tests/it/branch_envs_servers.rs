//! Issue 18, part 1, on PostgreSQL and MariaDB through the real binary: a
//! per-branch environment cloned from production into a new database on
//! its server (keys, indexes and the foreign key came along), edited,
//! promoted through preprod into production three-way, marked merged with
//! `--ttl 0d` and collected by `env gc` (its database dropped).
//!
//! Without the server variables the tests print a `SKIP` line and pass;
//! with `CI=true` they fail.

use ferry_testdb::{client, server_url, with_database, Database, Engine};
use serde_json::Value as J;

use crate::common::run_in_with;

const SCHEMA: &str = "
CREATE TABLE cities (id integer PRIMARY KEY, name varchar(100) NOT NULL, code varchar(10) UNIQUE);
CREATE TABLE shops (
    id integer PRIMARY KEY,
    name varchar(100) NOT NULL,
    city_id integer,
    FOREIGN KEY (city_id) REFERENCES cities (id)
);
CREATE INDEX shops_name ON shops (name);
INSERT INTO cities VALUES (1, 'Lyon', 'LY'), (2, 'Bern', 'BE');
INSERT INTO shops VALUES (1, 'Café', 1), (2, 'Bakery', 2);
";

const CONFIG: &str = r#"pipeline = ["preprod", "production"]

[environments.preprod]
url_env = "FERRY_BE_PREPROD_URL"

[environments.production]
url_env = "FERRY_BE_PRODUCTION_URL"

[tables.cities]
key = ["id"]

[tables.shops]
key = ["id"]
references = { city_id = "cities" }
"#;

/// Drops the clone's database when the test ends, however it ends.
struct CloneGuard {
    engine: Engine,
    admin_url: String,
    db: String,
}

impl Drop for CloneGuard {
    fn drop(&mut self) {
        let sql = match self.engine {
            Engine::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
            _ => format!("DROP DATABASE IF EXISTS {}", self.db),
        };
        if let Err(e) = client(self.engine, &self.admin_url, &sql) {
            eprintln!("could not drop the clone {}: {e}", self.db);
        }
    }
}

fn story(engine: Engine, test: &str) {
    let Some(server) = server_url(engine, test) else {
        return;
    };
    let (Some(preprod), Some(production)) = (
        Database::create(engine, test, "be_pre"),
        Database::create(engine, test, "be_prod"),
    ) else {
        return;
    };
    for db in [&preprod, &production] {
        for stmt in SCHEMA.split(';').filter(|s| !s.trim().is_empty()) {
            db.client(stmt);
        }
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("ferry.toml"), CONFIG).expect("write ferry.toml");
    let vars = [
        ("FERRY_BE_PREPROD_URL", preprod.url.as_str()),
        ("FERRY_BE_PRODUCTION_URL", production.url.as_str()),
    ];
    let run = |args: &[&str]| run_in_with(dir.path(), args, &vars);
    run(&["baseline", "preprod", "production", "--yes"]).expect(0);

    let clone_db = format!("{}_feature_server_1", production.name());
    let _guard = CloneGuard {
        engine,
        admin_url: preprod.url.clone(),
        db: clone_db.clone(),
    };
    let made = run(&[
        "env",
        "create",
        "feature/Server-1",
        "--from",
        "production",
        "--promotes-to",
        "preprod",
        "--json",
    ])
    .expect(0)
    .json();
    assert_eq!(made["name"], "feature-server-1", "{engine:?}: {made}");
    let clone_url = with_database(&server, &clone_db);
    let sql = |sql: &str| client(engine, &clone_url, sql).unwrap_or_else(|e| panic!("{engine:?}: {e}\n{sql}"));
    let (fks, uniques, index) = match engine {
        Engine::Postgres => (
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
            "SELECT count(*) FROM pg_constraint WHERE contype IN ('p', 'u') AND connamespace = 'public'::regnamespace",
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'shops_name'",
        ),
        _ => (
            "SELECT count(*) FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE()",
            "SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = DATABASE() AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
            "SELECT count(DISTINCT index_name) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = 'shops_name'",
        ),
    };
    assert_eq!(sql(fks).trim(), "1", "{engine:?}: the foreign key");
    assert_eq!(
        sql(uniques).trim(),
        "3",
        "{engine:?}: two primary keys and a unique constraint"
    );
    assert_eq!(sql(index).trim(), "1", "{engine:?}: the index");
    assert_eq!(sql("SELECT count(*) FROM shops").trim(), "2");

    // Edited on the branch; the list shows it pending into preprod.
    sql("UPDATE cities SET name = 'Lyon (branch)' WHERE id = 1");
    sql("INSERT INTO shops VALUES (3, 'Florist', 2)");
    let list = run(&["env", "list", "--json"]).expect(0).json();
    let e: &J = &list[0];
    assert_eq!(e["promotes_to"], "preprod", "{engine:?}: {list}");
    assert_eq!(e["pending"]["insert"], 1, "{engine:?}: {list}");
    assert_eq!(e["pending"]["update"], 1, "{engine:?}: {list}");

    run(&["promote", "feature-server-1", "production", "--yes"]).expect(3);
    run(&["promote", "feature-server-1", "preprod", "--yes"]).expect(0);
    run(&["promote", "preprod", "production", "--yes"]).expect(0);
    assert_eq!(
        production.client("SELECT name FROM cities WHERE id = 1").trim(),
        "Lyon (branch)"
    );
    assert_eq!(
        production.client("SELECT name FROM shops WHERE id = 3").trim(),
        "Florist"
    );

    run(&["env", "merged", "feature-server-1", "--ttl", "0d"]).expect(0);
    let gc = run(&["env", "gc", "--yes"]).expect(0);
    assert!(gc.stdout.contains("feature-server-1"), "{}", gc.all());
    let gone = match engine {
        Engine::Postgres => format!("SELECT count(*) FROM pg_database WHERE datname = '{clone_db}'"),
        _ => format!("SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{clone_db}'"),
    };
    assert_eq!(
        preprod.client(&gone).trim(),
        "0",
        "{engine:?}: the clone's database is still there"
    );
    assert_eq!(run(&["env", "list", "--json"]).expect(0).json(), J::Array(Vec::new()));
}

#[test]
fn a_branch_on_postgres_goes_to_production_and_is_collected() {
    story(Engine::Postgres, "branch_envs_postgres");
}

#[test]
fn a_branch_on_mariadb_goes_to_production_and_is_collected() {
    story(Engine::Mariadb, "branch_envs_mariadb");
}

/// The parent's own column types in a clone: a PostgreSQL enum, an array
/// of it and a domain with a check (created in the clone before the
/// table), a serial column whose sequence and a default that names the
/// enum; MariaDB's ENUM and SET. Cloned, edited in the clone (a row
/// inserted through the clone's sequence and defaults), promoted back,
/// and the rows compared byte for byte.
fn custom_types(engine: Engine, test: &str) {
    let Some(_server) = server_url(engine, test) else {
        return;
    };
    let (schema, dump) = match engine {
        Engine::Postgres => (
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN price AS numeric(10,2) CHECK (VALUE >= 0);
             CREATE TABLE items (id serial PRIMARY KEY, name varchar(100) NOT NULL, mood mood NOT NULL DEFAULT 'ok', price price, moods mood[]);
             INSERT INTO items (name, mood, price, moods) VALUES ('Tea', 'happy', 3.50, '{sad,ok}'), ('Cake', 'sad', 7.25, NULL)",
            "SELECT id, name, mood::text, price::text, coalesce(moods::text, '-') FROM items ORDER BY id",
        ),
        _ => (
            "CREATE TABLE items (id integer PRIMARY KEY AUTO_INCREMENT, name varchar(100) NOT NULL, mood ENUM('sad', 'ok', 'happy') NOT NULL DEFAULT 'ok', price decimal(10,2), tags SET('new', 'sale', 'gift'));
             INSERT INTO items (name, mood, price, tags) VALUES ('Tea', 'happy', 3.50, 'new,sale'), ('Cake', 'sad', 7.25, '')",
            "SELECT id, name, mood, price, tags FROM items ORDER BY id",
        ),
    };
    let (Some(preprod), Some(production)) = (
        Database::create(engine, test, "ty_pre"),
        Database::create(engine, test, "ty_prod"),
    ) else {
        return;
    };
    for db in [&preprod, &production] {
        for stmt in schema.split(';').filter(|s| !s.trim().is_empty()) {
            db.client(stmt);
        }
    }
    let config = CONFIG
        .split("[tables.cities]")
        .next()
        .map(|head| format!("{head}[tables.items]\nkey = [\"id\"]\n"))
        .expect("the environments");
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("ferry.toml"), config).expect("write ferry.toml");
    let vars = [
        ("FERRY_BE_PREPROD_URL", preprod.url.as_str()),
        ("FERRY_BE_PRODUCTION_URL", production.url.as_str()),
    ];
    let run = |args: &[&str]| run_in_with(dir.path(), args, &vars);
    let clone_db = format!("{}_feature_types", production.name());
    let _guard = CloneGuard {
        engine,
        admin_url: preprod.url.clone(),
        db: clone_db.clone(),
    };
    run(&["env", "create", "feature/types", "--from", "production"]).expect(0);
    let clone_url = with_database(&server_url(engine, test).expect("the server"), &clone_db);
    let sql = |sql: &str| client(engine, &clone_url, sql).unwrap_or_else(|e| panic!("{engine:?}: {e}\n{sql}"));
    assert_eq!(sql(dump), production.client(dump), "{engine:?}: the clone's rows");
    if engine == Engine::Postgres {
        assert_eq!(
            sql("SELECT count(*) FROM pg_type WHERE typname IN ('mood', 'price') AND typnamespace = 'public'::regnamespace")
                .trim(),
            "2",
            "the enum and the domain"
        );
        // The domain's check came along.
        assert!(client(engine, &clone_url, "UPDATE items SET price = -1 WHERE id = 1").is_err());
        sql("UPDATE items SET mood = 'ok', price = 4.00, moods = '{happy}' WHERE id = 1");
        sql("INSERT INTO items (name, price) VALUES ('Pie', 1.25)");
    } else {
        sql("UPDATE items SET mood = 'ok', price = 4.00, tags = 'gift' WHERE id = 1");
        sql("INSERT INTO items (name, price) VALUES ('Pie', 1.25)");
    }
    // The sequence and the default: the new row is 3, in the mood `ok`.
    assert!(sql(dump).contains("Pie"), "{}", sql(dump));
    run(&["promote", "feature-types", "production", "--yes"]).expect(0);
    let after = production.client(dump);
    assert_eq!(sql(dump), after, "{engine:?}: promoted back, the rows differ");
    assert!(after.contains("3") && after.contains("Pie"), "{after}");
    run(&["env", "destroy", "feature-types", "--yes"]).expect(0);
}

#[test]
fn a_postgres_clone_has_the_parents_enums_and_domains() {
    custom_types(Engine::Postgres, "branch_envs_types_postgres");
}

#[test]
fn a_mariadb_clone_keeps_enum_and_set_columns() {
    custom_types(Engine::Mariadb, "branch_envs_types_mariadb");
}
