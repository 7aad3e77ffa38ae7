//! Throw-away databases on the real servers, and a `ferry.toml` over them.
//!
//! Every test creates its own uniquely named databases from the server URLs
//! in `FERRY_TEST_POSTGRES_URL` / `FERRY_TEST_MYSQL_URL` and drops them when
//! its [`Db`] guards go out of scope (on failure too). Without a variable a
//! test prints a `SKIP` line and passes; with `CI=true` a missing variable
//! or an unreachable server fails it.

use std::path::PathBuf;

use ferry_core::config::UrlSource;
use ferry_core::plan::Plan;
use ferry_core::selection::Selection;
use ferry_core::value::{convert, ColumnType, Value};
use ferry_db::{ScanRequest, Store};
use ferry_engine::apply::{PromoteOptions, Promotion};
use ferry_engine::pair::Pair;
use ferry_engine::progress::Progress;
use ferry_engine::project::Project;
use ferry_testdb::{Database, Engine};
use sqlx::Connection;

pub const USER: &str = "tester";

/// The three engines Ferry promotes between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eng {
    Sqlite,
    Postgres,
    Mysql,
}

impl Eng {
    pub fn name(self) -> &'static str {
        match self {
            Eng::Sqlite => "sqlite",
            Eng::Postgres => "postgres",
            Eng::Mysql => "mariadb",
        }
    }

    /// Quotes an identifier in this engine's SQL.
    pub fn q(self, ident: &str) -> String {
        match self {
            Eng::Mysql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }
}

impl Eng {
    fn engine(self) -> Engine {
        match self {
            Eng::Sqlite => Engine::Sqlite,
            Eng::Postgres => Engine::Postgres,
            Eng::Mysql => Engine::Mariadb,
        }
    }
}

/// One throw-away database (see `ferry_testdb::Database`). Dropped (with
/// its server-side database) at the end of the scope that owns it.
pub struct Db {
    pub eng: Eng,
    /// The URL Ferry opens (no password is ever printed by these tests).
    pub url: String,
    /// For SQLite: the file.
    pub path: Option<PathBuf>,
    db: Database,
}

impl Db {
    /// Creates an empty database. `None` (after a SKIP line) when the
    /// engine's server is not configured.
    pub async fn create(eng: Eng, test: &str) -> Option<Db> {
        let db = Database::create(eng.engine(), &format!("engines::{test}"), "t")?;
        Some(Db {
            eng,
            url: db.url.clone(),
            path: db.path.clone(),
            db,
        })
    }

    /// Runs SQL (several statements allowed).
    pub async fn exec(&self, sql: &str) {
        self.db.exec(sql).await
    }

    /// The first column of the first row, as an integer (NULL is 0).
    pub async fn int(&self, sql: &str) -> i64 {
        use sqlx::Row as _;
        let r: Result<i64, String> = match self.eng {
            Eng::Sqlite => rusqlite::Connection::open(self.path.as_ref().expect("SQLite path"))
                .and_then(|c| c.query_row(sql, [], |r| r.get::<_, Option<i64>>(0)))
                .map(Option::unwrap_or_default)
                .map_err(|e| e.to_string()),
            Eng::Postgres => async {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                let row = sqlx::query(sql).fetch_one(&mut c).await?;
                c.close().await?;
                row.try_get::<Option<i64>, _>(0)
                    .or_else(|_| row.try_get::<Option<i32>, _>(0).map(|v| v.map(i64::from)))
                    .or_else(|_| row.try_get::<Option<i16>, _>(0).map(|v| v.map(i64::from)))
                    .map(Option::unwrap_or_default)
            }
            .await
            .map_err(|e| e.to_string()),
            Eng::Mysql => async {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await?;
                let row = sqlx::query(sql).fetch_one(&mut c).await?;
                c.close().await?;
                row.try_get::<Option<i64>, _>(0)
                    .or_else(|_| row.try_get::<Option<u64>, _>(0).map(|v| v.map(|u| u as i64)))
                    .map(Option::unwrap_or_default)
            }
            .await
            .map_err(|e| e.to_string()),
        };
        r.unwrap_or_else(|e| panic!("{}: {e}\n{sql}", self.eng.name()))
    }

    /// Whether Ferry recorded anything here (its tables exist and hold a promotion).
    pub async fn promotions(&self) -> i64 {
        let exists = match self.eng {
            Eng::Sqlite => "SELECT count(*) FROM sqlite_master WHERE name = '_ferry_promotions'",
            Eng::Postgres => "SELECT count(*) FROM pg_class WHERE relname = '_ferry_promotions'",
            Eng::Mysql => {
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_ferry_promotions'"
            }
        };
        if self.int(exists).await == 0 {
            return 0;
        }
        self.int("SELECT count(*) FROM _ferry_promotions").await
    }
}

/// Environments (in pipeline order) over throw-away databases, and the
/// project that names them.
pub struct World {
    /// The first two environments opened once, for reading in assertions
    /// (first field: closed before the databases are dropped).
    reader: tokio::sync::OnceCell<Pair>,
    pub project: Project,
    /// Shared with [`World::sibling`]s; dropped with the last of them.
    pub dbs: std::sync::Arc<Vec<(String, Db)>>,
    _dir: tempfile::TempDir,
}

impl World {
    /// Creates one database per `(environment, engine)`, runs `schema(env, engine)`
    /// in each, and writes a configuration with `tables_toml`. `None` when a
    /// server is not configured (the test is skipped).
    pub async fn new(
        test: &str,
        envs: &[(&str, Eng)],
        schema: impl Fn(&str, Eng) -> String,
        tables_toml: &str,
    ) -> Option<World> {
        let mut dbs = Vec::new();
        for (env, eng) in envs {
            dbs.push((env.to_string(), Db::create(*eng, test).await?));
        }
        for (env, db) in &dbs {
            db.exec(&schema(env, db.eng)).await;
        }
        Some(World::configure(std::sync::Arc::new(dbs), tables_toml))
    }

    /// Another configuration (other managed tables) over the same databases.
    pub fn sibling(&self, tables_toml: &str) -> World {
        World::configure(self.dbs.clone(), tables_toml)
    }

    fn configure(dbs: std::sync::Arc<Vec<(String, Db)>>, tables_toml: &str) -> World {
        let dir = tempfile::tempdir().expect("temporary folder");
        let envs: Vec<&str> = dbs.iter().map(|(e, _)| e.as_str()).collect();
        let names: Vec<String> = envs.iter().map(|e| format!("\"{e}\"")).collect();
        let mut text = format!("pipeline = [{}]\n\n", names.join(", "));
        for env in &envs {
            // Placeholder variables: the real URLs are put in below, so a
            // server URL with a password works without touching the
            // process environment.
            text.push_str(&format!(
                "[environments.{env}]\nurl_env = \"FERRY_TEST_UNUSED_{}\"\n\n",
                env.to_uppercase()
            ));
        }
        text.push_str(tables_toml);
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, &text).expect("write ferry.toml");
        let mut config =
            ferry_core::config::parse(&text, &path).unwrap_or_else(|e| panic!("bad test config: {e}\n{text}"));
        for (env, db) in dbs.iter() {
            config.environments.get_mut(env).expect("configured environment").url = UrlSource::Inline(db.url.clone());
        }
        World {
            reader: tokio::sync::OnceCell::new(),
            project: Project::from_config(config, path),
            dbs,
            _dir: dir,
        }
    }

    pub fn db(&self, env: &str) -> &Db {
        &self.dbs.iter().find(|(e, _)| e == env).expect("known environment").1
    }

    /// The first two environments, opened once and kept: for reading what
    /// they hold (each operation under test opens its own pair, as a
    /// command does).
    pub async fn reader(&self) -> &Pair {
        self.reader
            .get_or_init(|| self.pair(&self.dbs[0].0, &self.dbs[1].0))
            .await
    }

    pub async fn pair(&self, from: &str, to: &str) -> Pair {
        ferry_engine::pair::open(&self.project, from, to)
            .await
            .unwrap_or_else(|e| panic!("open {from} -> {to}: {e}"))
    }

    pub async fn plan(&self, from: &str, to: &str, selection: &Selection) -> Plan {
        let pair = self.pair(from, to).await;
        ferry_engine::planner::plan(&pair, selection, Progress::hidden())
            .await
            .unwrap_or_else(|e| panic!("plan {from} -> {to}: {e}"))
    }

    pub async fn promote(&self, from: &str, to: &str, plan: &Plan) -> Option<Promotion> {
        let pair = self.pair(from, to).await;
        promote(&pair, plan).await
    }

    /// Plans everything and promotes it; gives the plan and the promotion.
    pub async fn promote_all(&self, from: &str, to: &str) -> (Plan, Option<Promotion>) {
        let pair = self.pair(from, to).await;
        let plan = ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden())
            .await
            .unwrap_or_else(|e| panic!("plan {from} -> {to}: {e}"));
        let done = promote(&pair, &plan).await;
        (plan, done)
    }

    pub async fn revert(&self, id: &str) -> Promotion {
        ferry_engine::revert::revert(&self.project, id, USER, false)
            .await
            .unwrap_or_else(|e| panic!("revert {id}: {e}"))
    }

    pub async fn baseline(&self, from: &str, to: &str) -> ferry_engine::baseline::Baseline {
        let pair = self.pair(from, to).await;
        ferry_engine::baseline::baseline(&pair, &Selection::default(), USER, Progress::hidden())
            .await
            .unwrap_or_else(|e| panic!("baseline {from} -> {to}: {e}"))
    }
}

pub async fn promote(pair: &Pair, plan: &Plan) -> Option<Promotion> {
    let opts = PromoteOptions {
        user: USER.into(),
        force: false,
    };
    ferry_engine::apply::promote(pair, plan, &opts)
        .await
        .unwrap_or_else(|e| panic!("promote {} -> {}: {e}", pair.from, pair.to))
}

/// Plan entries as `table:key action[/reason]` (the SQLite tests' own).
pub use crate::common::{entry_summary, summary};

/// Every row of `table` read through `store` (columns in `columns` order,
/// rows sorted by their values in Ferry's key order), each value converted to the store's own
/// canonical value for its column type.
pub async fn read(store: &dyn Store, table: &str, columns: &[&str]) -> Vec<Vec<Value>> {
    let schema = store
        .table_schema(table)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"))
        .unwrap_or_else(|| panic!("{}: no table {table}", store.env()));
    let types: Vec<ColumnType> = columns
        .iter()
        .map(|c| {
            schema
                .column(c)
                .unwrap_or_else(|| panic!("{table}: no column {c}"))
                .ty
                .clone()
        })
        .collect();
    let mut rx = store
        .scan(ScanRequest {
            table: table.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            order_by: vec![columns[0].to_string()],
            filter: None,
            flag: None,
            descending: false,
            limit: None,
        })
        .await
        .unwrap_or_else(|e| panic!("scan {table}: {e}"));
    let mut out = Vec::new();
    while let Some(batch) = rx.recv().await {
        for raw in batch.unwrap_or_else(|e| panic!("scan {table}: {e}")) {
            let row = raw
                .iter()
                .zip(&types)
                .zip(columns)
                .map(|((v, t), c)| convert(v, t).unwrap_or_else(|e| panic!("{table}.{c}: {e}")))
                .collect();
            out.push(row);
        }
    }
    // In Ferry's key order, whatever the engine's collation.
    out.sort_by(|a: &Vec<Value>, b: &Vec<Value>| ferry_core::value::key_cmp(a, b));
    out
}

/// Rows of `table` as `key|col=value|...` display text, for assertions.
pub async fn texts(store: &dyn Store, table: &str, columns: &[&str]) -> Vec<String> {
    read(store, table, columns)
        .await
        .iter()
        .map(|r| r.iter().map(Value::display_text).collect::<Vec<_>>().join("|"))
        .collect()
}

/// The ordered engine pairs a test runs on, for messages.
pub fn pair_name(from: Eng, to: Eng) -> String {
    format!("{}_to_{}", from.name(), to.name())
}

impl Db {
    /// Drops the database now, as if the environment were gone (the guard
    /// then finds nothing left to drop).
    pub async fn drop_now(&self) {
        self.db.drop_now()
    }
}

/// Every row of `table` as display text, or `<no table>` when it does not
/// exist (Ferry's own tables before its first write).
pub async fn texts_if_any(store: &dyn Store, table: &str, columns: &[&str]) -> Vec<String> {
    match store.table_schema(table).await {
        Ok(Some(_)) => texts(store, table, columns).await,
        Ok(None) => vec![format!("<no table {table}>")],
        Err(e) => panic!("{table}: {e}"),
    }
}
