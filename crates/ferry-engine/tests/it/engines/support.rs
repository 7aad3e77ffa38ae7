//! Throw-away databases on the real servers, and a `ferry.toml` over them.
//!
//! Every test creates its own uniquely named databases from the server URLs
//! in `FERRY_TEST_POSTGRES_URL` / `FERRY_TEST_MYSQL_URL` and drops them when
//! its [`Db`] guards go out of scope (on failure too). Without a variable a
//! test prints a `SKIP` line and passes; with `CI=true` a missing variable
//! or an unreachable server fails it.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_core::config::UrlSource;
use ferry_core::plan::{Plan, PlanEntry};
use ferry_core::selection::Selection;
use ferry_core::value::{convert, ColumnType, Value};
use ferry_db::{ScanRequest, Store};
use ferry_engine::apply::{PromoteOptions, Promotion};
use ferry_engine::pair::Pair;
use ferry_engine::progress::Progress;
use ferry_engine::project::Project;
use sqlx::{Connection, Executor};

pub const USER: &str = "tester";

/// The three engines Ferry promotes between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eng {
    Sqlite,
    Postgres,
    Mysql,
}

impl Eng {
    /// The variable holding the server URL (`None` for SQLite: no server).
    pub fn var(self) -> Option<&'static str> {
        match self {
            Eng::Sqlite => None,
            Eng::Postgres => Some("FERRY_TEST_POSTGRES_URL"),
            Eng::Mysql => Some("FERRY_TEST_MYSQL_URL"),
        }
    }

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

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints past the test harness's output capture, so a skip is visible.
pub fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Skips (or, under `CI=true`, fails) a test.
fn skip(test: &str, why: &str) {
    if ci() {
        panic!("engines::{test}: {why}; CI=true needs both servers (.ci/run installs and starts them)");
    }
    announce(&format!("SKIP engines::{test}: {why}"));
}

/// The server URL of an engine, `None` (after a SKIP line) when not set.
fn server_url(eng: Eng, test: &str) -> Option<String> {
    let var = eng.var()?;
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().to_string()),
        _ => {
            skip(test, &format!("{var} not set"));
            None
        }
    }
}

/// `url` with its database (path) replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}{query}")
}

fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ferry_t{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// One throw-away database. Dropped (with its server-side database) at the
/// end of the scope that owns it.
pub struct Db {
    pub eng: Eng,
    /// The URL Ferry opens (no password is ever printed by these tests).
    pub url: String,
    /// For SQLite: the file.
    pub path: Option<PathBuf>,
    /// For servers: the server URL and the database name to drop.
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// Creates an empty database. `None` (after a SKIP line) when the
    /// engine's server is not configured.
    pub async fn create(eng: Eng, test: &str) -> Option<Db> {
        if eng == Eng::Sqlite {
            let dir = tempfile::tempdir().expect("temporary folder");
            let path = dir.path().join(format!("{}.db", unique_name()));
            rusqlite::Connection::open(&path).expect("create SQLite file");
            return Some(Db {
                eng,
                url: format!("sqlite://{}", path.display()),
                path: Some(path),
                server: None,
                _dir: Some(dir),
            });
        }
        let server = server_url(eng, test)?;
        let name = unique_name();
        let created = match eng {
            Eng::Postgres => {
                async {
                    let mut c = sqlx::PgConnection::connect(&server).await?;
                    c.execute(format!("CREATE DATABASE {name}").as_str()).await?;
                    c.close().await
                }
                .await
            }
            _ => {
                async {
                    let mut c = sqlx::MySqlConnection::connect(&server).await?;
                    c.execute(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str())
                        .await?;
                    c.close().await
                }
                .await
            }
        };
        if let Err(e) = created {
            let var = eng.var().unwrap_or_default();
            skip(
                test,
                &format!("cannot create a database with {var}: {}", redact(&e.to_string())),
            );
            return None;
        }
        Some(Db {
            eng,
            url: with_database(&server, &name),
            path: None,
            server: Some((server, name)),
            _dir: None,
        })
    }

    /// Runs SQL (several statements allowed).
    pub async fn exec(&self, sql: &str) {
        if sql.trim().is_empty() {
            return;
        }
        let r: Result<(), String> = match self.eng {
            Eng::Sqlite => rusqlite::Connection::open(self.path.as_ref().expect("SQLite path"))
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Eng::Postgres => async {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut c).await?;
                c.close().await
            }
            .await
            .map_err(|e| e.to_string()),
            Eng::Mysql => async {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut c).await?;
                c.close().await
            }
            .await
            .map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            panic!("{}: {e}\n{sql}", self.eng.name());
        }
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

/// A message with any `user:password@` part of a URL hidden.
fn redact(s: &str) -> String {
    s.split(' ')
        .map(ferry_core::config::redact_url)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((server, name)) = self.server.take() else {
            return;
        };
        let eng = self.eng;
        // A fresh runtime on its own thread: this may run inside a test's
        // runtime, or while a failed test unwinds.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                match eng {
                    Eng::Postgres => {
                        let mut c = sqlx::PgConnection::connect(&server).await?;
                        c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                            .await?;
                        c.close().await
                    }
                    _ => {
                        let mut c = sqlx::MySqlConnection::connect(&server).await?;
                        c.execute(format!("DROP DATABASE IF EXISTS {name}").as_str()).await?;
                        c.close().await
                    }
                }
            })
            .map_err(|e| e.to_string())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => announce(&format!("engines: could not drop a test database: {}", redact(&e))),
            Err(_) => announce("engines: the thread dropping a test database panicked"),
        }
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

/// Plan entries as `table:key action[/reason]`.
pub fn summary(plan: &Plan) -> Vec<String> {
    plan.entries.iter().map(entry_summary).collect()
}

pub fn entry_summary(e: &PlanEntry) -> String {
    match e.reason {
        Some(r) => format!("{} {}/{}", e.label(), e.action, r),
        None => format!("{} {}", e.label(), e.action),
    }
}

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
        if let Some(path) = &self.path {
            std::fs::remove_file(path).expect("remove SQLite file");
            return;
        }
        let (server, name) = self.server.as_ref().expect("a server database");
        let dropped: Result<(), sqlx::Error> = match self.eng {
            Eng::Postgres => {
                async {
                    let mut c = sqlx::PgConnection::connect(server).await?;
                    c.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await?;
                    c.close().await
                }
                .await
            }
            _ => {
                async {
                    let mut c = sqlx::MySqlConnection::connect(server).await?;
                    c.execute(format!("DROP DATABASE {name}").as_str()).await?;
                    c.close().await
                }
                .await
            }
        };
        if let Err(e) = dropped {
            panic!("{}: could not drop {name}: {}", self.eng.name(), redact(&e.to_string()));
        }
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
