//! What Ferry's test suites share about their databases, written once:
//!
//! - the server URLs, from `FERRY_TEST_POSTGRES_URL` / `FERRY_TEST_MYSQL_URL`
//!   / `FERRY_TEST_MONGODB_URL` (a MongoDB-wire server with transactions:
//!   `.ci/run` starts SecantusDB);
//! - the skip policy: without a variable (or with an unreachable server) a
//!   test prints a visible `SKIP` line and passes; with `CI=true` it fails;
//! - [`Database`]: a throw-away, uniquely named database (an SQLite file in
//!   a temporary folder, or a database on a server), dropped with its guard,
//!   also when the test panics;
//! - running SQL on each engine, through the drivers ([`Database::exec`])
//!   or through the command-line clients `psql` / `mysql` ([`client`]),
//!   whose text output the byte-for-byte dumps compare;
//! - [`browser`]: a headless Chromium driven through WebDriver, for the
//!   tests of Ferry's web pages (same skip policy).
//!
//! Used as a dev-dependency only (`publish = false`).

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor};

pub mod browser;

/// The engines Ferry's tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mariadb,
    /// A MongoDB server (a replica set, for transactions). Its databases
    /// take documents, not SQL: [`Database::mongo`] gives the driver's
    /// handle.
    Mongo,
}

impl Engine {
    /// The variable holding the server URL (`None` for SQLite: no server).
    pub fn var(self) -> Option<&'static str> {
        match self {
            Engine::Sqlite => None,
            Engine::Postgres => Some("FERRY_TEST_POSTGRES_URL"),
            Engine::Mariadb => Some("FERRY_TEST_MYSQL_URL"),
            Engine::Mongo => Some("FERRY_TEST_MONGODB_URL"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
            Engine::Mongo => "mongodb",
        }
    }

    /// A column's bytes as hex text, for byte-for-byte dumps.
    pub fn hex_of(self, column: &str) -> String {
        match self {
            Engine::Postgres => format!("encode(convert_to({column}::text, 'UTF8'), 'hex')"),
            _ => format!("hex({column})"),
        }
    }

    /// A bytea/blob column's bytes as hex text.
    pub fn hex_of_blob(self, column: &str) -> String {
        match self {
            Engine::Postgres => format!("encode({column}, 'hex')"),
            _ => format!("hex({column})"),
        }
    }
}

/// Whether this is a CI run (`CI=true`), where a missing server fails.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints past the test harness's output capture, so a line is visible.
pub fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Skips test `label` (for example `engines::round_trip`) with a visible
/// `SKIP label: why` line or, under `CI=true`, fails it.
pub fn skip(label: &str, why: &str) {
    skip_or_fail(
        label,
        why,
        "CI=true needs the test servers in FERRY_TEST_POSTGRES_URL, FERRY_TEST_MYSQL_URL \
         and FERRY_TEST_MONGODB_URL (.ci/run installs and starts them)",
    );
}

/// The skip policy for any missing piece: prints `SKIP label: why` or,
/// under `CI=true`, panics with `label: why; ci_needs` (`ci_needs` says
/// what CI should have provided).
pub fn skip_or_fail(label: &str, why: &str, ci_needs: &str) {
    if ci() {
        panic!("{label}: {why}; {ci_needs}");
    }
    announce(&format!("SKIP {label}: {why}"));
}

/// The server URL of `engine`; `None` for SQLite, and `None` after a SKIP
/// line (a failure under `CI=true`) when its variable is not set.
pub fn server_url(engine: Engine, label: &str) -> Option<String> {
    let var = engine.var()?;
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().to_string()),
        _ => {
            skip(label, &format!("{var} not set"));
            None
        }
    }
}

/// A database name no other test, helper or process uses at the same time:
/// `ferry_PREFIX_PID_N_NANOS`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ferry_{prefix}_{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// `url` with its database (path) replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}{query}")
}

/// `text` with the `user:password` part of `url` (if it has a password)
/// hidden.
pub fn redact(text: &str, url: &str) -> String {
    match url.split_once("://").and_then(|(_, r)| r.rsplit_once('@')) {
        Some((cred, _)) if cred.contains(':') => text.replace(cred, "***"),
        _ => text.to_string(),
    }
}

/// Runs `fut` to its end on a runtime of its own, on a thread of its own:
/// callable from synchronous tests, from inside a test's runtime, and while
/// a failed test unwinds.
fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        Ok(rt.block_on(fut))
    })
    .join()
    .map_err(|_| "the database thread panicked".to_string())?
}

/// A MongoDB client for `url` (short timeouts: a test server is local).
async fn mongo_client(url: &str) -> Result<mongodb::Client, String> {
    let mut o = mongodb::options::ClientOptions::parse(url)
        .await
        .map_err(|e| e.to_string())?;
    o.server_selection_timeout = Some(std::time::Duration::from_secs(5));
    mongodb::Client::with_options(o).map_err(|e| e.to_string())
}

/// Creates or drops the database `name` on a MongoDB server. Creating
/// asks `hello` (MongoDB creates a database on its first write), and
/// refuses a server without a replica set: the tests that write through
/// Ferry need transactions, and would otherwise fail one by one far from
/// the cause.
fn mongo_statement(server: &str, name: &str, drop: bool) -> Result<(), String> {
    let (server, name) = (server.to_string(), name.to_string());
    let url = server.clone();
    let done = block_on(async move {
        let c = mongo_client(&server).await?;
        let db = c.database(&name);
        if drop {
            return db.drop().await.map_err(|e| e.to_string());
        }
        let hello = db
            .run_command(mongodb::bson::doc! { "hello": 1 })
            .await
            .map_err(|e| e.to_string())?;
        if hello.contains_key("setName") {
            Ok(())
        } else {
            Err(
                "the server is standalone (its hello names no replica set), so it has no transactions: \
                 point FERRY_TEST_MONGODB_URL at a replica set (secantusd-py without --standalone)"
                    .to_string(),
            )
        }
    })?;
    done.map_err(|e| redact(&e, &url))
}

/// Runs one statement on the server's own database (create and drop).
fn server_statement(engine: Engine, server: &str, sql: String) -> Result<(), String> {
    if engine == Engine::Mongo {
        let (verb, name) = sql.rsplit_once(' ').unwrap_or(("", &sql));
        return mongo_statement(server, name, verb.starts_with("DROP"));
    }
    let server = server.to_string();
    let url = server.clone();
    let done = block_on(async move {
        match engine {
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&server).await?;
                c.execute(sql.as_str()).await?;
                c.close().await
            }
            _ => {
                let mut c = sqlx::MySqlConnection::connect(&server).await?;
                c.execute(sql.as_str()).await?;
                c.close().await
            }
        }
    })?;
    done.map_err(|e| redact(&e.to_string(), &url))
}

/// One throw-away database: an SQLite file, or a uniquely named database
/// on a server. The server database is dropped (`WITH (FORCE)` on
/// PostgreSQL) when the guard goes, on failure too; the SQLite file goes
/// with its temporary folder.
pub struct Database {
    pub engine: Engine,
    /// The URL Ferry opens (`sqlite://PATH` for SQLite).
    pub url: String,
    /// SQLite: the file.
    pub path: Option<PathBuf>,
    /// Servers: the server URL and the database name to drop.
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    /// A new empty database for test `label`, its server-side name made
    /// from `prefix`. `None` (after a SKIP line, or a failure under
    /// `CI=true`) when the engine's server is not configured or cannot
    /// create a database. MariaDB databases are `utf8mb4` with a binary
    /// collation.
    pub fn create(engine: Engine, label: &str, prefix: &str) -> Option<Database> {
        if engine == Engine::Sqlite {
            let dir = tempfile::tempdir().expect("temporary folder");
            let path = dir.path().join(format!("{}.db", unique_name(prefix)));
            let mut db = Database::sqlite_at(&path);
            db._dir = Some(dir);
            return Some(db);
        }
        let server = server_url(engine, label)?;
        let name = unique_name(prefix);
        let create = match engine {
            Engine::Mariadb => format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
            _ => format!("CREATE DATABASE {name}"),
        };
        if let Err(e) = server_statement(engine, &server, create) {
            let var = engine.var().unwrap_or_default();
            skip(label, &format!("cannot create a database with {var}: {e}"));
            return None;
        }
        Some(Database {
            engine,
            url: with_database(&server, &name),
            path: None,
            server: Some((server, name)),
            _dir: None,
        })
    }

    /// An SQLite database in the file at `path` (created empty if missing),
    /// which the caller's folder owns.
    pub fn sqlite_at(path: &Path) -> Database {
        rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("create SQLite file {}: {e}", path.display()));
        Database {
            engine: Engine::Sqlite,
            url: format!("sqlite://{}", path.display()),
            path: Some(path.to_path_buf()),
            server: None,
            _dir: None,
        }
    }

    /// The database's name on its server (SQLite: the file's path).
    pub fn name(&self) -> String {
        match (&self.server, &self.path) {
            (Some((_, name)), _) => name.clone(),
            (None, Some(path)) => path.display().to_string(),
            (None, None) => String::new(),
        }
    }

    /// The driver's handle on a MongoDB test database (tests write their
    /// documents through it).
    pub async fn mongo(&self) -> mongodb::Database {
        let (server, name) = self.server.as_ref().expect("a MongoDB test database");
        let c = mongo_client(server)
            .await
            .unwrap_or_else(|e| panic!("mongodb {name}: {}", redact(&e, server)));
        c.database(name)
    }

    /// Every document of a MongoDB collection as its BSON bytes, in `_id`
    /// order: what tests compare byte for byte (field order included).
    pub async fn raw_docs(&self, coll: &str) -> Vec<Vec<u8>> {
        use mongodb::bson::{doc, RawDocumentBuf};
        let mut cur = self
            .mongo()
            .await
            .collection::<RawDocumentBuf>(coll)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .unwrap_or_else(|e| panic!("find in {coll}: {e}"));
        let mut out = Vec::new();
        while cur.advance().await.unwrap_or_else(|e| panic!("next in {coll}: {e}")) {
            out.push(cur.current().as_bytes().to_vec());
        }
        out
    }

    /// Runs SQL (several statements allowed) through the drivers.
    pub async fn exec(&self, sql: &str) {
        if sql.trim().is_empty() {
            return;
        }
        let r: Result<(), String> = match self.engine {
            Engine::Sqlite => rusqlite::Connection::open(self.path.as_ref().expect("SQLite path"))
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Engine::Postgres => async {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut c).await?;
                c.close().await
            }
            .await
            .map_err(|e| e.to_string()),
            Engine::Mariadb => async {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut c).await?;
                c.close().await
            }
            .await
            .map_err(|e| e.to_string()),
            Engine::Mongo => Err("a MongoDB database runs no SQL: write documents through Database::mongo".into()),
        };
        if let Err(e) = r {
            panic!(
                "{} {}: {}\n{sql}",
                self.engine.name(),
                self.name(),
                redact(&e, &self.url)
            );
        }
    }

    /// Runs SQL with the engine's command-line client ([`client`]); the
    /// rows, columns joined by `|`. SQLite has no client here: use
    /// rusqlite on [`Database::path`].
    #[track_caller]
    pub fn client(&self, sql: &str) -> String {
        client(self.engine, &self.url, sql).unwrap_or_else(|e| panic!("{}: {e}\n{sql}", self.name()))
    }

    /// Drops the database now, as if the environment were gone (the guard
    /// then finds nothing left to drop).
    pub fn drop_now(&self) {
        if let Some(path) = &self.path {
            std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
            return;
        }
        let (server, name) = self.server.as_ref().expect("a server database");
        let sql = match self.engine {
            Engine::Postgres => format!("DROP DATABASE {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE {name}"),
        };
        if let Err(e) = server_statement(self.engine, server, sql) {
            panic!("{}: could not drop {name}: {e}", self.engine.name());
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Some((server, name)) = self.server.take() else {
            return;
        };
        let sql = match self.engine {
            Engine::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        };
        if let Err(e) = server_statement(self.engine, &server, sql) {
            announce(&format!("could not drop the test database {name}: {e}"));
        }
    }
}

/// The parts of a `mysql://user[:password]@host[:port]/db` URL.
struct MysqlUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: String,
    db: String,
}

fn parse_mysql(url: &str) -> MysqlUrl {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (auth, hostpath) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = match auth.split_once(':') {
        Some((u, p)) => (u.to_string(), Some(p.to_string())),
        None => (auth.to_string(), None),
    };
    let (hostport, db) = hostpath.split_once('/').unwrap_or((hostpath, ""));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    MysqlUrl {
        user,
        password,
        host: host.to_string(),
        port: port.to_string(),
        db: db.to_string(),
    }
}

/// Runs `sql` (several statements allowed) on a server database with its
/// command-line client (`psql -At`, `mysql --batch --raw`, both in UTF-8,
/// PostgreSQL in UTC); the rows, columns joined by `|` (NULL is empty on
/// PostgreSQL, `NULL` on MariaDB), or the error with any password hidden.
pub fn client(engine: Engine, url: &str, sql: &str) -> Result<String, String> {
    let mut cmd = match engine {
        Engine::Postgres => {
            let mut c = Command::new("psql");
            c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"])
                .env("PGCONNECT_TIMEOUT", "5")
                .env("PGTZ", "UTC");
            c
        }
        Engine::Mariadb => {
            let u = parse_mysql(url);
            let mut c = Command::new("mysql");
            c.args([
                "--batch",
                "--skip-column-names",
                "--raw",
                "--default-character-set=utf8mb4",
                "--connect-timeout=5",
                "-h",
                &u.host,
                "-P",
                &u.port,
                "-u",
                &u.user,
            ]);
            if !u.db.is_empty() {
                c.arg(&u.db);
            }
            if let Some(p) = u.password {
                c.env("MYSQL_PWD", p);
            }
            c
        }
        Engine::Sqlite => return Err("SQLite has no command-line client here: use rusqlite on the file".into()),
        Engine::Mongo => return Err("MongoDB has no SQL client: use Database::mongo".into()),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the {} client: {e}", engine.name()))?;
    child
        .stdin
        .take()
        .expect("the client's stdin")
        .write_all(sql.as_bytes())
        .map_err(|e| format!("writing to the client: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("client: {e}"))?;
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(if engine == Engine::Mariadb {
            text.replace('\t', "|")
        } else {
            text
        })
    } else {
        Err(redact(&String::from_utf8_lossy(&out.stderr), url))
    }
}

/// PostgreSQL: the named tables' rows, each as its row literal (`t::text`),
/// in order of that text, through `psql`: equal dumps hold the same values
/// in every cell, byte for byte.
pub fn pg_dump_tables(url: &str, tables: &[&str]) -> Result<String, String> {
    let parts: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT '{t}' AS t, x::text AS r FROM \"{t}\" x"))
        .collect();
    client(
        Engine::Postgres,
        url,
        &format!("{} ORDER BY 1, 2;", parts.join(" UNION ALL ")),
    )
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rows of a query on an SQLite file, each cell as text (`NULL`,
/// integers and reals as written, text as is, blobs as `x'HEX'`).
pub fn sqlite_query(path: &Path, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut stmt = conn
        .prepare(sql)
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", path.display()));
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Real(v) => v.to_string(),
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        ValueRef::Blob(b) => format!("x'{}'", hex(b)),
                    })
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", path.display()));
    rows.collect::<rusqlite::Result<_>>()
        .unwrap_or_else(|e| panic!("{}: {sql}: {e}", path.display()))
}

/// SQLite: the named tables' rows, byte for byte: a `table T (columns)`
/// line, then each row (rowid order; key order for `WITHOUT ROWID`) with
/// each column as `typeof:hex(value)`.
pub fn sqlite_dump_tables(path: &Path, tables: &[&str]) -> String {
    let mut out = String::new();
    for t in tables {
        let cols: Vec<String> = sqlite_query(path, &format!("SELECT name FROM pragma_table_info('{t}') ORDER BY cid"))
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| format!("typeof(\"{c}\") || ':' || hex(\"{c}\")"))
            .collect();
        out.push_str(&format!("table {t} ({})\n", cols.join(", ")));
        let without_rowid = sqlite_query(
            path,
            &format!("SELECT count(*) FROM sqlite_master WHERE name = '{t}' AND sql LIKE '%WITHOUT ROWID%'"),
        )[0][0]
            != "0";
        let order = if without_rowid { "1" } else { "rowid" };
        for row in sqlite_query(
            path,
            &format!("SELECT {} FROM \"{t}\" ORDER BY {order}", exprs.join(", ")),
        ) {
            out.push_str("  ");
            out.push_str(&row.join(" | "));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_keeps_the_authority_and_the_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "y"),
            "mysql://root@127.0.0.1:3306/y"
        );
    }

    #[test]
    fn redact_hides_a_password_only() {
        let url = "postgres://u:secret@h/db";
        assert_eq!(redact("failed for u:secret@h", url), "failed for ***@h");
        assert_eq!(redact("failed for u@h", "postgres://u@h/db"), "failed for u@h");
    }

    #[test]
    fn sqlite_dumps_tell_apart_text_and_blob() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let db = Database::sqlite_at(&dir.path().join("d.db"));
        let path = db.path.clone().expect("a file");
        rusqlite::Connection::open(&path)
            .and_then(|c| {
                c.execute_batch(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 'A'), (2, X'41');",
                )
            })
            .expect("fill");
        assert_eq!(
            sqlite_dump_tables(&path, &["t"]),
            "table t (id, v)\n  integer:31 | text:41\n  integer:32 | blob:41\n"
        );
        assert_eq!(sqlite_query(&path, "SELECT v FROM t ORDER BY id"), [["A"], ["x'41'"]]);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("a"), unique_name("a"));
    }

    #[test]
    fn a_server_database_is_dropped_with_its_guard_even_after_a_panic() {
        let Some(server) = server_url(Engine::Postgres, "testdb::drop_after_panic") else {
            return;
        };
        let name = std::thread::spawn(|| {
            let db = Database::create(Engine::Postgres, "testdb::drop_after_panic", "td").expect("a database");
            let name = db.name();
            std::panic::panic_any(name);
        })
        .join()
        .expect_err("the thread panicked")
        .downcast::<String>()
        .expect("the name");
        let left = client(
            Engine::Postgres,
            &server,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}';"),
        )
        .expect("psql");
        assert_eq!(left.trim(), "0", "{name} was left behind");
    }
}
