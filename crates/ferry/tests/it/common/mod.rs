//! Shared helpers: a fixture (a `ferry.toml` next to `staging.db` and
//! `production.db` with a small admin schema), a runner for the real `ferry`
//! binary, SQL helpers, and a whole-database dump for "byte-for-byte
//! unchanged" checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rusqlite::Connection;
use serde_json::Value as J;

/// The admin schema, as both environments hold it unless a test says
/// otherwise. Foreign keys are declared, so a write in the wrong order fails
/// (Ferry turns `PRAGMA foreign_keys` on for its writes).
pub const SCHEMA: &str = "
CREATE TABLE cities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE businesses (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city_id INTEGER REFERENCES cities(id),
    icon BLOB,
    view_count INTEGER NOT NULL DEFAULT 0,
    modified_at TEXT,
    created_by_team TEXT
);
CREATE TABLE forms (
    id INTEGER PRIMARY KEY,
    business_id INTEGER REFERENCES businesses(id),
    title TEXT NOT NULL
);
CREATE TABLE form_fields (
    id INTEGER PRIMARY KEY,
    form_id INTEGER NOT NULL REFERENCES forms(id),
    label TEXT NOT NULL,
    position INTEGER
);
CREATE TABLE menus (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES menus(id),
    label TEXT NOT NULL
);
";

/// Staging's content: unicode and emoji, binary icons (one not valid
/// UTF-8, one with NUL bytes), QA and developer rows that must never leave,
/// forms with fields, and a menu tree whose children have smaller ids than
/// their parents (key order is not parent-first).
pub const STAGING_DATA: &str = "
INSERT INTO cities VALUES (1, 'Lyon'), (2, 'Zürich 🏔️'), (3, 'Bern');
INSERT INTO businesses VALUES
    (1, 'Café Olé ☕', 1, x'00ff10', 5, '2020-01-01 00:00:00', 'content'),
    (2, 'Bäckerei 🥨 👩‍👩‍👧 日本語', 2, x'89504e470d0a1a0a0000c3', 7, '2020-01-02 00:00:00', 'content'),
    (3, 'QA test shop', 1, NULL, 0, NULL, 'qa'),
    (4, 'Dev shop', 2, NULL, 0, NULL, 'dev');
INSERT INTO forms VALUES (1, 1, 'Contact'), (2, 2, 'Order 🧾');
INSERT INTO form_fields VALUES (1, 1, 'Name', 1), (2, 1, 'E-mail ✉️', 2), (3, 2, 'Item', 1);
INSERT INTO menus VALUES (1, 3, 'Leaf'), (2, 3, 'Leaf two'), (3, 5, 'Section'), (5, NULL, 'Root');
";

/// Production's content: a city both sides share, a city only production
/// has (never synced), and a business created separately with the same id
/// (first contact) whose `view_count` is production's own.
pub const PRODUCTION_DATA: &str = "
INSERT INTO cities VALUES (1, 'Lyon'), (3, 'Bern'), (99, 'Prod-only town');
INSERT INTO businesses VALUES
    (1, 'Cafe Ole', 1, NULL, 1234, '2019-05-05 10:00:00', 'content');
";

/// The configuration the fixture writes.
pub const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = { city_id = "cities" }
ignore = ["view_count"]
stamp = { modified_at = "now" }
exclude = "created_by_team IN ('qa', 'dev')"

[tables.forms]
key = ["id"]
references = { business_id = "businesses" }

[tables.form_fields]
key = ["id"]
parent = { form_id = "forms" }

[tables.menus]
key = ["id"]
references = { parent_id = "menus" }
"#;

/// The managed tables, parents first.
pub const TABLES: [&str; 5] = ["cities", "businesses", "forms", "form_fields", "menus"];

/// A folder with `ferry.toml`, `staging.db` and `production.db`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, for "the message says" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// stdout parsed as JSON (panics with both streams when it is not).
    pub fn json(&self) -> J {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Output {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

impl Fixture {
    /// The standard fixture: [`SCHEMA`] on both sides, [`STAGING_DATA`],
    /// [`PRODUCTION_DATA`] and [`CONFIG`].
    pub fn new() -> Fixture {
        Fixture::with(SCHEMA, STAGING_DATA, SCHEMA, PRODUCTION_DATA)
    }

    /// A fixture with the given schemas and data.
    pub fn with(staging_schema: &str, staging_data: &str, production_schema: &str, production_data: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let f = Fixture { dir };
        f.create_db("staging.db", &format!("{staging_schema}\n{staging_data}"));
        f.create_db("production.db", &format!("{production_schema}\n{production_data}"));
        f.write_config(CONFIG);
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn staging(&self) -> PathBuf {
        self.path().join("staging.db")
    }

    pub fn production(&self) -> PathBuf {
        self.path().join("production.db")
    }

    pub fn db(&self, env: &str) -> PathBuf {
        self.path().join(format!("{env}.db"))
    }

    /// Creates a database file and runs `sql` in it.
    pub fn create_db(&self, name: &str, sql: &str) {
        let conn = Connection::open(self.path().join(name)).expect("create the database");
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("setting up {name}: {e}"));
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.path().join("ferry.toml"), text).expect("write ferry.toml");
    }

    /// Runs `ferry ARGS` in the fixture's folder, with no terminal on stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        run_in(self.path(), args)
    }

    /// Runs `ferry ARGS` with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        run_in_with(self.path(), args, vars)
    }

    /// Runs `ferry ARGS --yes`.
    pub fn run_yes(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--yes");
        self.run(&all)
    }

    /// `ferry promote staging production ARGS --yes --json --force`,
    /// expecting success; returns the promotion id. `--force` decides the
    /// fixture's first-contact row (business 1, created separately in each
    /// environment: a `no-base` conflict) for staging, as the tests that
    /// promote to get somewhere mean; tests of conflicts and first contact
    /// run `promote` themselves.
    pub fn promote(&self, args: &[&str]) -> String {
        let mut all = vec!["promote", "staging", "production", "--yes", "--json"];
        all.extend_from_slice(args);
        if !args.iter().any(|a| *a == "--force" || *a == "--take") {
            all.push("--force");
        }
        let out = self.run(&all).expect(0);
        let v = out.json();
        v["promotion"]
            .as_str()
            .unwrap_or_else(|| panic!("no promotion id in {v}"))
            .to_string()
    }

    /// `ferry diff staging production ARGS --json`, expecting success.
    pub fn diff_json(&self, args: &[&str]) -> J {
        let mut all = vec!["diff", "staging", "production", "--json"];
        all.extend_from_slice(args);
        self.run(&all).expect(0).json()
    }

    /// Runs SQL on a database (foreign keys off, as a plain client has them).
    pub fn exec(&self, env: &str, sql: &str) {
        exec(&self.db(env), sql)
    }

    /// The rows of a query, every column as text (`NULL` for null).
    pub fn query(&self, env: &str, sql: &str) -> Vec<Vec<String>> {
        query(&self.db(env), sql)
    }

    /// The one value a query returns, as text.
    pub fn scalar(&self, env: &str, sql: &str) -> String {
        let rows = self.query(env, sql);
        assert_eq!(rows.len(), 1, "{sql} returned {rows:?}");
        rows[0][0].clone()
    }

    /// Every table of a database, see [`dump`].
    pub fn dump(&self, env: &str) -> String {
        dump(&self.db(env))
    }

    /// The managed tables only (not Ferry's own), see [`dump_tables`].
    pub fn dump_managed(&self, env: &str) -> String {
        dump_tables(&self.db(env), &TABLES)
    }

    /// Ferry's own tables in a database.
    pub fn ferry_tables(&self, env: &str) -> Vec<String> {
        self.query(
            env,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_ferry%' ESCAPE '\\' ORDER BY name",
        )
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
    }

    /// A row's columns as `typeof:hex` pairs, for byte-for-byte comparisons.
    pub fn raw_row(&self, env: &str, table: &str, id: i64, columns: &[&str]) -> Vec<String> {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| format!("typeof(\"{c}\") || ':' || hex(\"{c}\")"))
            .collect();
        let rows = self.query(
            env,
            &format!("SELECT {} FROM \"{table}\" WHERE id = {id}", cols.join(", ")),
        );
        assert_eq!(rows.len(), 1, "{env}: {table}:{id} is not there exactly once");
        rows.into_iter().next().unwrap_or_default()
    }

    /// The ids of a table, in order.
    pub fn ids(&self, env: &str, table: &str) -> Vec<i64> {
        self.query(env, &format!("SELECT id FROM \"{table}\" ORDER BY id"))
            .into_iter()
            .map(|r| r[0].parse().expect("an integer id"))
            .collect()
    }
}

/// Runs the `ferry` binary in `dir` (stdin is not a terminal), with a fixed
/// acting user and no configuration inherited from the caller's environment.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    run_in_with(dir, args, &[])
}

/// [`run_in`] with extra environment variables.
pub fn run_in_with(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_LOG")
        .env_remove("FERRY_STAGING_URL")
        .env_remove("FERRY_PRODUCTION_URL")
        .env_remove("FERRY_PREPROD_URL")
        .env_remove("FERRY_PLAN_KEY")
        .env("FERRY_USER", "tester")
        .env("NO_COLOR", "1")
        .env("CLICOLOR", "0")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run the ferry binary");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn exec(path: &Path, sql: &str) {
    let conn = Connection::open(path).expect("open the database");
    conn.execute_batch(&format!("PRAGMA foreign_keys = OFF;\n{sql}"))
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", path.display()));
}

pub use ferry_testdb::{hex, sqlite_dump_tables as dump_tables, sqlite_query as query};

/// What "nothing written" covers (PRODUCT.md): the schema and every row of
/// the application's tables, and every row of Ferry's journal, promotions,
/// reviews and sync base; each cell as `typeof:hex(value)`, rows in rowid
/// order. Two dumps are equal iff those hold the same bytes in every cell.
///
/// Left out: the audit trail (`_ferry_audit`: refusals are audited in their
/// own transaction after the rollback), Ferry's migration version, and the
/// definitions of Ferry's own tables (the first audited refusal may create
/// them, empty).
pub fn dump(path: &Path) -> String {
    let tables: Vec<String> = query(
        path,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let mut out = String::new();
    for r in query(
        path,
        "SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name",
    ) {
        if !is_ferry(&r[1]) && !is_ferry(r[1].trim_start_matches("sqlite_autoindex_")) {
            out.push_str(&format!("schema {} {}: {}\n", r[0], r[1], r[2]));
        }
    }
    let app: Vec<&str> = tables.iter().map(String::as_str).filter(|t| !is_ferry(t)).collect();
    out.push_str(&dump_tables(path, &app));
    for t in tables.iter().filter(|t| is_ferry(t)) {
        if t == "_ferry_audit" || t == "_ferry_schema" {
            continue;
        }
        let rows = dump_tables(path, &[t.as_str()]);
        // An empty table of Ferry's is the same as none.
        if rows.lines().count() > 1 {
            out.push_str(&rows);
        }
    }
    out
}

fn is_ferry(name: &str) -> bool {
    name.starts_with("_ferry")
}

/// The entries of a `--json` plan or diff.
pub fn changes(plan: &J) -> Vec<J> {
    plan["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no `changes` array in {plan}"))
        .clone()
}

/// `(table, key id, action, reason)` of every entry of a `--json` plan.
pub fn summary(plan: &J) -> Vec<(String, i64, String, Option<String>)> {
    changes(plan)
        .iter()
        .map(|c| {
            (
                c["table"].as_str().unwrap_or_default().to_string(),
                c["key"]["id"].as_i64().unwrap_or(-1),
                c["action"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The entry of `table`:`id` in a `--json` plan, if any.
pub fn entry(plan: &J, table: &str, id: i64) -> Option<J> {
    changes(plan)
        .into_iter()
        .find(|c| c["table"] == table && c["key"]["id"].as_i64() == Some(id))
}

/// Shorthand for building `summary` expectations.
pub fn s(table: &str, id: i64, action: &str, reason: Option<&str>) -> (String, i64, String, Option<String>) {
    (table.to_string(), id, action.to_string(), reason.map(str::to_string))
}
