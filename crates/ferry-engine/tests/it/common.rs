//! Shared helpers: a pair of real SQLite files (`staging` -> `production`)
//! in a temporary folder with a `ferry.toml`, thin wrappers over the engine
//! operations, and exact dumps of database content for comparisons.

use std::path::{Path, PathBuf};

use ferry_core::plan::{Action, Plan, PlanEntry, Reason};
use ferry_core::selection::{parse_id, parse_where, Selection};
use ferry_core::value::Value;
use ferry_engine::apply::{PromoteOptions, Promotion};
use ferry_engine::baseline::Baseline;
use ferry_engine::pair::Pair;
use ferry_engine::progress::Progress;
use ferry_engine::project::Project;
use ferry_engine::Result;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

pub const STAGING: &str = "staging";
pub const PRODUCTION: &str = "production";
pub const USER: &str = "tester";

/// Two SQLite environments and the configuration that links them.
pub struct World {
    pub dir: tempfile::TempDir,
    pub project: Project,
}

impl World {
    /// Both environments with the same schema.
    pub fn new(schema: &str, tables_toml: &str) -> World {
        World::with_schemas(schema, schema, tables_toml)
    }

    /// Each environment with its own schema (to give production a
    /// constraint staging lacks, say).
    pub fn with_schemas(staging_schema: &str, production_schema: &str, tables_toml: &str) -> World {
        let dir = tempfile::tempdir().expect("temporary folder");
        let text = format!(
            "pipeline = [\"staging\", \"production\"]\n\n\
             [environments.staging]\nurl = \"sqlite://staging.db\"\n\n\
             [environments.production]\nurl = \"sqlite://production.db\"\n\n\
             {tables_toml}\n"
        );
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, &text).expect("write ferry.toml");
        let config = ferry_core::config::parse(&text, &path).unwrap_or_else(|e| panic!("bad test config: {e}"));
        let project = Project::from_config(config, path);
        let world = World { dir, project };
        world.exec(STAGING, staging_schema);
        world.exec(PRODUCTION, production_schema);
        world
    }

    pub fn path(&self, env: &str) -> PathBuf {
        self.dir.path().join(format!("{env}.db"))
    }

    pub fn conn(&self, env: &str) -> Connection {
        let conn = Connection::open(self.path(env)).expect("open test database");
        conn.execute_batch("PRAGMA foreign_keys = ON").expect("foreign keys on");
        conn
    }

    /// Runs SQL in one environment (creating its file if needed).
    pub fn exec(&self, env: &str, sql: &str) {
        self.conn(env)
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{env}: {e}\n{sql}"));
    }

    /// Makes production a byte-for-byte copy of staging.
    pub fn copy_staging_to_production(&self) {
        std::fs::copy(self.path(STAGING), self.path(PRODUCTION)).expect("copy staging");
    }

    pub async fn pair(&self) -> Pair {
        ferry_engine::pair::open(&self.project, STAGING, PRODUCTION)
            .await
            .unwrap_or_else(|e| panic!("open pair: {e}"))
    }

    pub async fn try_plan(&self, selection: &Selection) -> Result<Plan> {
        let pair = self.pair().await;
        ferry_engine::planner::plan(&pair, selection, Progress::hidden()).await
    }

    pub async fn plan(&self, selection: &Selection) -> Plan {
        self.try_plan(selection).await.unwrap_or_else(|e| panic!("plan: {e}"))
    }

    pub async fn plan_all(&self) -> Plan {
        self.plan(&Selection::default()).await
    }

    pub async fn promote(&self, plan: &Plan, force: bool) -> Result<Option<Promotion>> {
        let pair = self.pair().await;
        let opts = PromoteOptions {
            user: USER.into(),
            force,
        };
        ferry_engine::apply::promote(&pair, plan, &opts).await
    }

    /// Saves the plan to its file form, reads it back, and applies it with
    /// nothing but the target, as `ferry promote --plan FILE` does.
    pub async fn promote_saved(&self, plan: &Plan, force: bool) -> Result<Option<Promotion>> {
        let text = plan.to_file();
        let saved = Plan::from_file(&text).unwrap_or_else(|e| panic!("reading a saved plan back: {e}"));
        let mut unsealed = saved.clone();
        unsealed.hash.clear();
        assert_eq!(&unsealed, plan, "a saved plan reads back as it was made");
        let target = self.project.open(PRODUCTION).await?;
        let opts = PromoteOptions {
            user: USER.into(),
            force,
        };
        ferry_engine::apply::promote_plan(&*target, &saved, &opts).await
    }

    pub async fn baseline(&self) -> Baseline {
        let pair = self.pair().await;
        ferry_engine::baseline::baseline(&pair, &Selection::default(), USER, Progress::hidden())
            .await
            .unwrap_or_else(|e| panic!("baseline: {e}"))
    }

    pub async fn revert(&self, id: &str, force: bool) -> Result<Promotion> {
        ferry_engine::revert::revert(&self.project, id, USER, force).await
    }

    pub fn bytes(&self, env: &str) -> Vec<u8> {
        std::fs::read(self.path(env)).expect("read database file")
    }

    /// Every managed table of one environment, exactly (see [`dump`]).
    pub fn dump(&self, env: &str) -> Vec<String> {
        let tables: Vec<&str> = self.project.config.tables.keys().map(String::as_str).collect();
        dump(&self.path(env), &tables)
    }

    pub fn sync(&self, env: &str) -> Vec<String> {
        sync_dump(&self.path(env))
    }

    /// The value of one cell, read with SQLite's own storage class.
    pub fn cell(&self, env: &str, sql: &str) -> String {
        self.conn(env)
            .query_row(sql, [], |r| Ok(cell(r.get_ref(0)?)))
            .unwrap_or_else(|e| panic!("{env}: {e}\n{sql}"))
    }

    pub fn count(&self, env: &str, sql: &str) -> i64 {
        self.conn(env)
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{env}: {e}\n{sql}"))
    }
}

/// One cell as `typeof:exact-content`: SQLite's storage class, then the
/// value (hex for text and blobs, the bit pattern for reals), so that two
/// dumps are equal only when the stored values are identical.
pub fn cell(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "null".into(),
        ValueRef::Integer(i) => format!("integer:{i}"),
        ValueRef::Real(f) => format!("real:{:016x}", f.to_bits()),
        ValueRef::Text(t) => format!("text:{}", hex(t)),
        ValueRef::Blob(b) => format!("blob:{}", hex(b)),
    }
}

pub use ferry_testdb::hex;

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Every row of `tables` (all columns), ordered by primary key, one line
/// per row: `table|col=typeof:value|...`.
pub fn dump(path: &Path, tables: &[&str]) -> Vec<String> {
    let conn = Connection::open(path).expect("open database to dump");
    let mut out = Vec::new();
    for table in tables {
        let mut cols: Vec<(i64, String)> = Vec::new();
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({})", quote(table)))
            .expect("table_info");
        let info = stmt
            .query_map([], |r| Ok((r.get::<_, String>("name")?, r.get::<_, i64>("pk")?)))
            .expect("table_info rows");
        let mut names = Vec::new();
        for row in info {
            let (name, pk) = row.expect("table_info row");
            if pk > 0 {
                cols.push((pk, name.clone()));
            }
            names.push(name);
        }
        cols.sort();
        let order: Vec<String> = if cols.is_empty() {
            names.iter().map(|n| quote(n)).collect()
        } else {
            cols.iter().map(|(_, n)| quote(n)).collect()
        };
        let sql = format!("SELECT * FROM {} ORDER BY {}", quote(table), order.join(", "));
        let mut stmt = conn.prepare(&sql).expect("dump query");
        let mut rows = stmt.query([]).expect("dump rows");
        while let Some(r) = rows.next().expect("dump row") {
            let mut line = (*table).to_string();
            for (i, n) in names.iter().enumerate() {
                line.push_str(&format!("|{n}={}", cell(r.get_ref(i).expect("cell"))));
            }
            out.push(line);
        }
    }
    out
}

/// The sync base recorded in a database (`_ferry_sync`): environment,
/// table, key and hashes (not which promotion wrote it).
pub fn sync_dump(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("open database to dump");
    let exists: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_ferry_sync'",
            [],
            |r| r.get(0),
        )
        .expect("sqlite_master");
    if exists == 0 {
        return Vec::new();
    }
    let mut stmt = conn
        .prepare(
            "SELECT source_env, table_name, row_key, hex(row_hash), hex(field_hashes) \
             FROM _ferry_sync ORDER BY source_env, table_name, row_key",
        )
        .expect("sync query");
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}|{}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?
            ))
        })
        .expect("sync rows");
    rows.map(|r| r.expect("sync row")).collect()
}

/// `--id T:KEY` arguments.
pub fn ids(args: &[&str]) -> Selection {
    Selection {
        ids: args.iter().map(|a| parse_id(a).expect("valid --id")).collect(),
        ..Selection::default()
    }
}

/// `--where T:PREDICATE` arguments.
pub fn wheres(args: &[&str]) -> Selection {
    Selection {
        wheres: args.iter().map(|a| parse_where(a).expect("valid --where")).collect(),
        ..Selection::default()
    }
}

/// Plan entries as `table:key action[/reason]`, for readable assertions.
pub fn summary(plan: &Plan) -> Vec<String> {
    plan.entries.iter().map(entry_summary).collect()
}

pub fn entry_summary(e: &PlanEntry) -> String {
    match e.reason {
        Some(r) => format!("{} {}/{}", e.label(), e.action, r),
        None => format!("{} {}", e.label(), e.action),
    }
}

/// The entry for one row, if the plan has it.
pub fn find<'a>(plan: &'a Plan, table: &str, key: &[Value]) -> Option<&'a PlanEntry> {
    plan.entries.iter().find(|e| e.table == table && e.key == key)
}

pub fn has(plan: &Plan, table: &str, key: i64, action: Action, reason: Option<Reason>) -> bool {
    find(plan, table, &[Value::Int(key)]).is_some_and(|e| e.action == action && e.reason == reason)
}

/// The stamp text a promotion writes into an SQLite TEXT column.
pub fn stamp_of(p: &Promotion) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(&p.at).expect("promotion time is RFC 3339");
    ferry_engine::journal::stamp_text(at.with_timezone(&chrono::Utc))
}
