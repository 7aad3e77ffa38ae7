//! Throw-away databases for the conformance suite, one per test and
//! backend, and the fixture tables every backend is checked against.
//!
//! Server URLs come from `FERRY_TEST_POSTGRES_URL` / `FERRY_TEST_MYSQL_URL`.
//! Without a variable a test prints a `SKIP` line and passes; with
//! `CI=true` a missing variable or an unreachable server fails it (the
//! pattern of `ferry-engine/tests/it/engines/support.rs`).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferry_db::Store;
use sqlx::{Connection, Executor};

/// The backends every [`Store`] implementation of this crate is run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mariadb,
}

impl Backend {
    fn var(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("FERRY_TEST_POSTGRES_URL"),
            Backend::Mariadb => Some("FERRY_TEST_MYSQL_URL"),
        }
    }
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn skip(test: &str, why: &str) {
    if ci() {
        panic!("conformance::{test}: {why}; CI=true needs both servers (.ci/run installs and starts them)");
    }
    let _ = writeln!(std::io::stderr(), "SKIP conformance::{test}: {why}");
}

fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ferry_c{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
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

/// One throw-away database, dropped with its guard.
pub struct Db {
    pub backend: Backend,
    /// The URL a store opens (`sqlite://PATH` for SQLite).
    pub url: String,
    path: Option<PathBuf>,
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    /// An empty database with the fixture tables; `None` after a SKIP line.
    pub async fn create(backend: Backend, test: &str) -> Option<Db> {
        let db = Db::empty(backend, test).await?;
        db.exec(&fixture(backend)).await;
        Some(db)
    }

    async fn empty(backend: Backend, test: &str) -> Option<Db> {
        let Some(var) = backend.var() else {
            let dir = tempfile::tempdir().expect("temporary folder");
            let path = dir.path().join(format!("{}.db", unique_name()));
            rusqlite::Connection::open(&path).expect("create SQLite file");
            return Some(Db {
                backend,
                url: format!("sqlite://{}", path.display()),
                path: Some(path),
                server: None,
                _dir: Some(dir),
            });
        };
        let server = match std::env::var(var) {
            Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
            _ => {
                skip(test, &format!("{var} not set"));
                return None;
            }
        };
        let name = unique_name();
        let created = match backend {
            Backend::Postgres => {
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
            skip(test, &format!("cannot create a database with {var}: {e}"));
            return None;
        }
        Some(Db {
            backend,
            url: with_database(&server, &name),
            path: None,
            server: Some((server, name)),
            _dir: None,
        })
    }

    /// Opens a store on the database, as environment `env`, through the
    /// backend registry (as a project does).
    pub async fn open(&self, env: &str) -> Arc<dyn Store> {
        let opening = ferry_db::registry::Opening {
            env,
            url: &self.url,
            base_dir: std::path::Path::new("/"),
        };
        ferry_db::registry::open(opening)
            .await
            .unwrap_or_else(|| panic!("no backend opens {}", self.url))
            .unwrap_or_else(|e| panic!("{:?}: {e}", self.backend))
    }

    /// Runs SQL (several statements allowed) outside any store.
    pub async fn exec(&self, sql: &str) {
        let r: Result<(), String> = match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(self.path.as_ref().expect("SQLite path"))
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Backend::Postgres => async {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut c).await?;
                c.close().await
            }
            .await
            .map_err(|e| e.to_string()),
            Backend::Mariadb => async {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut c).await?;
                c.close().await
            }
            .await
            .map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            panic!("{:?}: {e}\n{sql}", self.backend);
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((server, name)) = self.server.take() else {
            return;
        };
        let backend = self.backend;
        // A thread of its own: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                let sql = match backend {
                    Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    _ => format!("DROP DATABASE IF EXISTS {name}"),
                };
                if backend == Backend::Postgres {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&server).await {
                        let _ = c.execute(sql.as_str()).await;
                    }
                } else if let Ok(mut c) = sqlx::MySqlConnection::connect(&server).await {
                    let _ = c.execute(sql.as_str()).await;
                }
            });
        })
        .join();
    }
}

/// The fixture, in each backend's DDL:
/// - `parent`: a generated key and a unique name;
/// - `item`: a plain integer key, a foreign key to `parent`, a unique pair,
///   and one column of each kind the suite writes;
/// - `word`: a two-column key whose text part sorts differently by bytes
///   than by the server's default collation (MariaDB: case-insensitive).
fn fixture(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => "\
            CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE);
            CREATE TABLE item (id INT PRIMARY KEY, parent_id INT REFERENCES parent (id), \
                label VARCHAR(40) NOT NULL, price NUMERIC(10,2), active BOOLEAN, data BLOB, note TEXT, \
                UNIQUE (parent_id, label));
            CREATE TABLE word (k VARCHAR(20) NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, n));"
            .into(),
        Backend::Postgres => "\
            CREATE TABLE parent (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE);
            CREATE TABLE item (id INT PRIMARY KEY, parent_id BIGINT REFERENCES parent (id), \
                label VARCHAR(40) NOT NULL, price NUMERIC(10,2), active BOOLEAN, data BYTEA, note TEXT, \
                UNIQUE (parent_id, label));
            CREATE TABLE word (k VARCHAR(20) NOT NULL, n INTEGER NOT NULL, v TEXT, PRIMARY KEY (k, n));"
            .into(),
        Backend::Mariadb => "\
            CREATE TABLE parent (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE) ENGINE=InnoDB;
            CREATE TABLE item (id INT PRIMARY KEY, parent_id BIGINT, \
                label VARCHAR(40) NOT NULL, price DECIMAL(10,2), active BOOLEAN, data VARBINARY(64), note TEXT, \
                UNIQUE (parent_id, label), FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB;
            CREATE TABLE word (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, \
                n INT NOT NULL, v TEXT, PRIMARY KEY (k, n)) ENGINE=InnoDB;"
            .into(),
    }
}
