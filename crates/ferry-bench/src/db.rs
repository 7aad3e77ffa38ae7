//! The benchmark's databases: creating, loading, copying, changing,
//! comparing and dropping them on each engine.
//!
//! SQLite goes through rusqlite, PostgreSQL and MariaDB through sqlx (the
//! same drivers Ferry uses). Server databases are created beside the
//! server URL's own database and dropped at the end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::TryStreamExt;
use sqlx::mysql::MySqlArguments;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Connection, Executor, MySql, MySqlConnection, PgConnection, Postgres, Row as _};

use crate::gen::{ChangeSet, Op, Row, Workload, V};
use crate::schema::{ddl, ddl_after_load, Engine, Kind, Table, TABLES};

/// One database of the benchmark.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(PathBuf),
    /// (server URL, database name)
    Postgres(String, String),
    Mysql(String, String),
    /// (server URL, database name): the workload as documents (`mongo.rs`).
    Mongo(String, String),
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

/// A message with any `user:password@` part of a URL hidden.
pub fn redact(s: &str) -> String {
    s.split(' ')
        .map(ferry_core::config::redact_url)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn ts_text(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn sqlite_value(v: &V) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        V::Null => S::Null,
        V::Int(i) => S::Integer(*i),
        V::Text(s) => S::Text(s.clone()),
        V::Blob(b) => S::Blob(b.clone()),
        V::Ts(t) => S::Text(ts_text(t)),
    }
}

pub(crate) fn bind_pg<'q>(q: Query<'q, Postgres, PgArguments>, v: &V, kind: Kind) -> Query<'q, Postgres, PgArguments> {
    match (v, kind) {
        (V::Null, Kind::Int) => q.bind(None::<i64>),
        (V::Null, Kind::Text | Kind::Json) => q.bind(None::<String>),
        (V::Null, Kind::Blob) => q.bind(None::<Vec<u8>>),
        (V::Null, Kind::Ts) => q.bind(None::<chrono::NaiveDateTime>),
        (V::Int(i), _) => q.bind(*i),
        (V::Text(s), _) => q.bind(s.clone()),
        (V::Blob(b), _) => q.bind(b.clone()),
        (V::Ts(t), _) => q.bind(*t),
    }
}

pub(crate) fn bind_my<'q>(q: Query<'q, MySql, MySqlArguments>, v: &V, kind: Kind) -> Query<'q, MySql, MySqlArguments> {
    match (v, kind) {
        (V::Null, Kind::Int) => q.bind(None::<i64>),
        (V::Null, Kind::Text | Kind::Json) => q.bind(None::<String>),
        (V::Null, Kind::Blob) => q.bind(None::<Vec<u8>>),
        (V::Null, Kind::Ts) => q.bind(None::<chrono::NaiveDateTime>),
        (V::Int(i), _) => q.bind(*i),
        (V::Text(s), _) => q.bind(s.clone()),
        (V::Blob(b), _) => q.bind(b.clone()),
        (V::Ts(t), _) => q.bind(*t),
    }
}

/// The placeholder of the `n`-th (1-based) parameter, cast when needed.
pub(crate) fn placeholder(engine: Engine, n: usize, kind: Kind) -> String {
    match (engine, kind) {
        (Engine::Sqlite, _) => format!("?{n}"),
        (Engine::Postgres, Kind::Json) => format!("${n}::jsonb"),
        (Engine::Postgres, _) => format!("${n}"),
        (Engine::Mysql, _) => "?".to_string(),
        (Engine::Mongo, _) => String::new(),
    }
}

/// `INSERT INTO t (...) VALUES (...)` for one row.
pub(crate) fn insert_sql(engine: Engine, t: &Table) -> String {
    let ph: Vec<String> = t
        .cols
        .iter()
        .enumerate()
        .map(|(i, c)| placeholder(engine, i + 1, c.kind))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        t.name,
        t.names().join(", "),
        ph.join(", ")
    )
}

/// `UPDATE t SET c = ... WHERE id = ...` for the given columns; the key is
/// the last parameter.
pub(crate) fn update_sql(engine: Engine, t: &Table, cols: &[usize]) -> String {
    let set: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(n, i)| format!("{} = {}", t.cols[*i].name, placeholder(engine, n + 1, t.cols[*i].kind)))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE id = {}",
        t.name,
        set.join(", "),
        placeholder(engine, cols.len() + 1, Kind::Int)
    )
}

/// One table's rows as comparable text, in id order (every column, NULL
/// told apart from the text "NULL", blobs in hex).
fn dump_sql(engine: Engine, t: &Table) -> String {
    match engine {
        Engine::Sqlite => {
            let cols: Vec<String> = t.cols.iter().map(|c| format!("quote({})", c.name)).collect();
            format!("SELECT {} FROM {} ORDER BY id", cols.join(" || '|' || "), t.name)
        }
        Engine::Postgres => format!("SELECT x::text FROM {} AS x ORDER BY x.id", t.name),
        Engine::Mysql => {
            let cols: Vec<String> = t
                .cols
                .iter()
                .map(|c| match c.kind {
                    Kind::Blob => format!("QUOTE(HEX({}))", c.name),
                    _ => format!("QUOTE({})", c.name),
                })
                .collect();
            format!("SELECT CONCAT_WS('|', {}) FROM {} ORDER BY id", cols.join(", "), t.name)
        }
        Engine::Mongo => String::new(),
    }
}

fn clip(s: &str) -> String {
    let s: String = s.chars().take(300).collect();
    format!("{s:?}")
}

async fn pg(url: &str) -> Result<PgConnection> {
    PgConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))
}

async fn my(url: &str) -> Result<MySqlConnection> {
    MySqlConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))
}

impl Db {
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(..) => Engine::Postgres,
            Db::Mysql(..) => Engine::Mysql,
            Db::Mongo(..) => Engine::Mongo,
        }
    }

    /// A database of the same engine (same server or folder) named `name`.
    pub fn sibling(&self, name: &str) -> Db {
        match self {
            Db::Sqlite(p) => Db::Sqlite(p.with_file_name(format!("{name}.db"))),
            Db::Postgres(s, _) => Db::Postgres(s.clone(), name.to_string()),
            Db::Mysql(s, _) => Db::Mysql(s.clone(), name.to_string()),
            Db::Mongo(s, _) => Db::Mongo(s.clone(), name.to_string()),
        }
    }

    /// The URL Ferry and the clients open.
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite://{}", p.display()),
            Db::Postgres(s, n) | Db::Mysql(s, n) | Db::Mongo(s, n) => with_database(s, n),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Db::Sqlite(p) => Some(p),
            _ => None,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Db::Sqlite(p) => p.display().to_string(),
            Db::Postgres(_, n) | Db::Mysql(_, n) | Db::Mongo(_, n) => n.clone(),
        }
    }

    /// Drops the database (nothing when it does not exist).
    pub async fn drop_db(&self) -> Result<()> {
        match self {
            Db::Sqlite(p) => {
                for suffix in ["", "-journal", "-wal", "-shm", ".ferry-lock"] {
                    let mut f = p.as_os_str().to_os_string();
                    f.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(f));
                }
            }
            Db::Postgres(s, n) => {
                let mut c = pg(s).await?;
                c.execute(format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)").as_str())
                    .await?;
                c.close().await?;
            }
            Db::Mysql(s, n) => {
                let mut c = my(s).await?;
                c.execute(format!("DROP DATABASE IF EXISTS {n}").as_str()).await?;
                c.close().await?;
            }
            Db::Mongo(..) => crate::mongo::drop(&self.url()).await?,
        }
        Ok(())
    }

    /// Creates the database, empty.
    async fn create_empty(&self) -> Result<()> {
        self.drop_db().await?;
        match self {
            Db::Sqlite(p) => {
                rusqlite::Connection::open(p)?;
            }
            Db::Postgres(s, n) => {
                let mut c = pg(s).await?;
                c.execute(format!("CREATE DATABASE {n}").as_str()).await?;
                c.close().await?;
            }
            Db::Mysql(s, n) => {
                let mut c = my(s).await?;
                c.execute(format!("CREATE DATABASE {n} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str())
                    .await?;
                c.close().await?;
            }
            // A MongoDB database exists once a collection does.
            Db::Mongo(..) => {}
        }
        Ok(())
    }

    /// Runs DDL statements.
    async fn exec_all(&self, stmts: &[String]) -> Result<()> {
        match self {
            Db::Sqlite(p) => {
                let c = rusqlite::Connection::open(p)?;
                c.execute_batch(&stmts.join(";\n"))?;
            }
            Db::Postgres(..) => {
                let mut c = pg(&self.url()).await?;
                for s in stmts {
                    c.execute(s.as_str()).await.with_context(|| s.clone())?;
                }
                c.close().await?;
            }
            Db::Mysql(..) => {
                let mut c = my(&self.url()).await?;
                for s in stmts {
                    c.execute(s.as_str()).await.with_context(|| s.clone())?;
                }
                c.close().await?;
            }
            Db::Mongo(..) => bail!("a MongoDB database runs no SQL"),
        }
        Ok(())
    }

    fn schema_ddl(&self) -> Vec<String> {
        TABLES.iter().flat_map(|t| ddl(self.engine(), t)).collect()
    }

    /// Creates the database with the workload's schema and production's rows.
    pub async fn create_production(&self, w: &Workload) -> Result<()> {
        if let Db::Mongo(..) = self {
            return crate::mongo::create_production(&self.url(), w).await;
        }
        self.create_empty().await?;
        self.exec_all(&self.schema_ddl()).await?;
        match self {
            Db::Sqlite(p) => load_sqlite(p, w)?,
            Db::Postgres(..) => load_pg(&self.url(), w).await?,
            Db::Mysql(..) => load_my(&self.url(), w).await?,
            Db::Mongo(..) => unreachable!("loaded above"),
        }
        Ok(())
    }

    /// Makes `dst` a full copy of this database (Ferry's tables included):
    /// a file copy, `CREATE DATABASE ... TEMPLATE`, or, on MariaDB, the
    /// schema and `INSERT ... SELECT`.
    pub async fn copy_to(&self, dst: &Db) -> Result<()> {
        dst.drop_db().await?;
        match (self, dst) {
            (Db::Sqlite(a), Db::Sqlite(b)) => {
                std::fs::copy(a, b).with_context(|| format!("copying {} to {}", a.display(), b.display()))?;
            }
            (Db::Postgres(s, a), Db::Postgres(_, b)) => {
                let mut c = pg(s).await?;
                let mut tries = 0;
                loop {
                    // Sessions that just ended may linger for a moment.
                    c.execute(
                        format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{a}' AND pid <> pg_backend_pid()"
                        )
                        .as_str(),
                    )
                    .await?;
                    match c.execute(format!("CREATE DATABASE {b} TEMPLATE {a}").as_str()).await {
                        Ok(_) => break,
                        Err(e) if tries < 50 && e.to_string().contains("being accessed by other users") => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => return Err(e).context(format!("CREATE DATABASE {b} TEMPLATE {a}")),
                    }
                }
                c.close().await?;
            }
            (Db::Mysql(s, a), Db::Mysql(_, b)) => {
                dst.create_empty().await?;
                dst.exec_all(&dst.schema_ddl()).await?;
                let mut c = my(s).await?;
                let others: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
                )
                .bind(a)
                .fetch_all(&mut c)
                .await?;
                let managed: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
                let mut copy: Vec<String> = managed.iter().map(|s| s.to_string()).collect();
                for t in others.iter().filter(|t| !managed.contains(&t.as_str())) {
                    c.execute(format!("CREATE TABLE {b}.`{t}` LIKE {a}.`{t}`").as_str())
                        .await?;
                    copy.push(t.clone());
                }
                c.execute("SET FOREIGN_KEY_CHECKS = 0").await?;
                for t in &copy {
                    c.execute(format!("INSERT INTO {b}.`{t}` SELECT * FROM {a}.`{t}`").as_str())
                        .await
                        .with_context(|| format!("copying {a}.{t} to {b}"))?;
                }
                c.execute(format!("USE {b}").as_str()).await?;
                add_after_load(&mut c).await?;
                c.execute("SET FOREIGN_KEY_CHECKS = 1").await?;
                // The triggers (Ferry's trace of deletes, `--track-deletes`),
                // made after the rows are in, so the copy fires none.
                let triggers: Vec<(String, String, String, String, String)> = sqlx::query_as(
                    "SELECT CAST(TRIGGER_NAME AS CHAR), CAST(ACTION_TIMING AS CHAR), CAST(EVENT_MANIPULATION AS CHAR), \
                     CAST(EVENT_OBJECT_TABLE AS CHAR), CAST(ACTION_STATEMENT AS CHAR) FROM information_schema.TRIGGERS \
                     WHERE TRIGGER_SCHEMA = ?",
                )
                .bind(a)
                .fetch_all(&mut c)
                .await?;
                for (name, timing, event, table, body) in triggers {
                    c.execute(
                        format!("CREATE TRIGGER `{name}` {timing} {event} ON `{table}` FOR EACH ROW {body}").as_str(),
                    )
                    .await
                    .with_context(|| format!("copying the trigger {a}.{name} to {b}"))?;
                }
                c.close().await?;
                // Fresh tables: give them their statistics now rather than
                // whenever InnoDB's background task gets to them.
                dst.analyze().await?;
            }
            (Db::Mongo(..), Db::Mongo(..)) => crate::mongo::copy(&self.url(), &dst.url()).await?,
            _ => bail!("cannot copy between engines"),
        }
        Ok(())
    }

    /// Applies the change set in one transaction.
    pub async fn apply(&self, cs: &ChangeSet) -> Result<()> {
        let engine = self.engine();
        if engine == Engine::Mongo {
            return crate::mongo::apply(&self.url(), cs).await;
        }
        match self {
            Db::Sqlite(p) => {
                let mut c = rusqlite::Connection::open(p)?;
                c.execute_batch("PRAGMA foreign_keys = ON")?;
                let tx = c.transaction()?;
                for op in &cs.ops {
                    let (sql, params) = op_sql(engine, op);
                    let vals: Vec<rusqlite::types::Value> = params.iter().map(|(v, _)| sqlite_value(v)).collect();
                    tx.prepare_cached(&sql)?
                        .execute(rusqlite::params_from_iter(vals))
                        .with_context(|| sql.clone())?;
                }
                tx.commit()?;
            }
            Db::Postgres(..) => {
                let mut c = pg(&self.url()).await?;
                let mut tx = c.begin().await?;
                for op in &cs.ops {
                    let (sql, params) = op_sql(engine, op);
                    let mut q = sqlx::query(&sql);
                    for (v, k) in &params {
                        q = bind_pg(q, v, *k);
                    }
                    q.execute(&mut *tx).await.with_context(|| sql.clone())?;
                }
                tx.commit().await?;
                c.close().await?;
            }
            Db::Mysql(..) => {
                let mut c = my(&self.url()).await?;
                let mut tx = c.begin().await?;
                for op in &cs.ops {
                    let (sql, params) = op_sql(engine, op);
                    let mut q = sqlx::query(&sql);
                    for (v, k) in &params {
                        q = bind_my(q, v, *k);
                    }
                    q.execute(&mut *tx).await.with_context(|| sql.clone())?;
                }
                tx.commit().await?;
                c.close().await?;
            }
            Db::Mongo(..) => unreachable!("applied above"),
        }
        Ok(())
    }

    /// Refreshes the planner statistics of every table (Ferry's included),
    /// as autovacuum or InnoDB's background statistics would in a database
    /// in service. SQLite keeps none unless asked: nothing to do there.
    pub async fn analyze(&self) -> Result<()> {
        match self {
            Db::Sqlite(_) | Db::Mongo(..) => {}
            Db::Postgres(..) => {
                let mut c = pg(&self.url()).await?;
                c.execute("ANALYZE").await?;
                c.close().await?;
            }
            Db::Mysql(_, n) => {
                let mut c = my(&self.url()).await?;
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                )
                .bind(n)
                .fetch_all(&mut c)
                .await?;
                let list: Vec<String> = tables.iter().map(|t| format!("`{t}`")).collect();
                sqlx::raw_sql(&format!("ANALYZE TABLE {}", list.join(", ")))
                    .execute(&mut c)
                    .await?;
                c.close().await?;
            }
        }
        Ok(())
    }

    /// Row counts of the managed tables.
    pub async fn counts(&self) -> Result<Vec<u64>> {
        if let Db::Mongo(..) = self {
            return crate::mongo::counts(&self.url()).await;
        }
        let mut out = Vec::new();
        for t in &TABLES {
            let sql = format!("SELECT count(*) FROM {}", t.name);
            let n: i64 = match self {
                Db::Sqlite(p) => rusqlite::Connection::open(p)?.query_row(&sql, [], |r| r.get(0))?,
                Db::Postgres(..) => {
                    let mut c = pg(&self.url()).await?;
                    let n = sqlx::query_scalar(&sql).fetch_one(&mut c).await?;
                    c.close().await?;
                    n
                }
                Db::Mysql(..) => {
                    let mut c = my(&self.url()).await?;
                    let n = sqlx::query_scalar(&sql).fetch_one(&mut c).await?;
                    c.close().await?;
                    n
                }
                Db::Mongo(..) => unreachable!("counted above"),
            };
            out.push(n as u64);
        }
        Ok(out)
    }

    /// The server's version string, with the setting that decides whether
    /// the data stays cached (PostgreSQL's shared_buffers, in front of the OS
    /// cache; MariaDB's InnoDB buffer pool, which reads past the OS cache).
    pub async fn version(&self) -> Result<String> {
        Ok(match self {
            Db::Sqlite(_) => format!("SQLite {}", rusqlite::version()),
            Db::Postgres(..) => {
                let mut c = pg(&self.url()).await?;
                let v: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut c).await?;
                let buffers: String = sqlx::query_scalar("SHOW shared_buffers").fetch_one(&mut c).await?;
                c.close().await?;
                format!("PostgreSQL {v}, shared_buffers {buffers}")
            }
            Db::Mysql(..) => {
                let mut c = my(&self.url()).await?;
                let (v, pool): (String, u64) =
                    sqlx::query_as("SELECT CAST(version() AS CHAR), CAST(@@innodb_buffer_pool_size AS UNSIGNED)")
                        .fetch_one(&mut c)
                        .await?;
                c.close().await?;
                format!("MariaDB {v}, innodb_buffer_pool_size {} MB", pool >> 20)
            }
            Db::Mongo(..) => crate::mongo::version(&self.url()).await?,
        })
    }
}

/// The statement and parameters of one change.
fn op_sql(engine: Engine, op: &Op) -> (String, Vec<(V, Kind)>) {
    match op {
        Op::Insert { table, row } => {
            let t = &TABLES[*table];
            (
                insert_sql(engine, t),
                row.iter().cloned().zip(t.cols.iter().map(|c| c.kind)).collect(),
            )
        }
        Op::Update { table, id, set } => {
            let t = &TABLES[*table];
            let cols: Vec<usize> = set.iter().map(|(i, _)| *i).collect();
            let mut params: Vec<(V, Kind)> = set.iter().map(|(i, v)| (v.clone(), t.cols[*i].kind)).collect();
            params.push((V::Int(*id), Kind::Int));
            (update_sql(engine, t, &cols), params)
        }
        Op::Delete { table, id } => {
            let t = &TABLES[*table];
            (
                format!(
                    "DELETE FROM {} WHERE id = {}",
                    t.name,
                    placeholder(engine, 1, Kind::Int)
                ),
                vec![(V::Int(*id), Kind::Int)],
            )
        }
    }
}

fn load_sqlite(path: &Path, w: &Workload) -> Result<()> {
    let mut c = rusqlite::Connection::open(path)?;
    let tx = c.transaction()?;
    for (i, t) in TABLES.iter().enumerate() {
        let mut st = tx.prepare(&insert_sql(Engine::Sqlite, t))?;
        for row in w.rows(i) {
            st.execute(rusqlite::params_from_iter(row.iter().map(sqlite_value)))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Appends a value in `COPY ... FROM STDIN` text format.
fn copy_text(out: &mut Vec<u8>, v: &V) {
    match v {
        V::Null => out.extend_from_slice(b"\\N"),
        V::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        V::Ts(t) => out.extend_from_slice(ts_text(t).as_bytes()),
        V::Text(s) => {
            for b in s.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.push(b),
                }
            }
        }
        V::Blob(bytes) => {
            out.extend_from_slice(b"\\\\x");
            for b in bytes {
                out.extend_from_slice(format!("{b:02x}").as_bytes());
            }
        }
    }
}

async fn load_pg(url: &str, w: &Workload) -> Result<()> {
    let mut c = pg(url).await?;
    for (i, t) in TABLES.iter().enumerate() {
        let mut copy = c
            .copy_in_raw(&format!("COPY {} ({}) FROM STDIN", t.name, t.names().join(", ")))
            .await?;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        for row in w.rows(i) {
            for (k, v) in row.iter().enumerate() {
                if k > 0 {
                    buf.push(b'\t');
                }
                copy_text(&mut buf, v);
            }
            buf.push(b'\n');
            if buf.len() >= 1 << 20 {
                copy.send(std::mem::take(&mut buf)).await?;
            }
        }
        if !buf.is_empty() {
            copy.send(buf).await?;
        }
        copy.finish().await.with_context(|| format!("loading {}", t.name))?;
    }
    // With `--changed`, also VACUUM, as autovacuum does after a bulk load
    // (inserts trigger it since PostgreSQL 13): the visibility map it sets
    // lets the plans' reads of every key stay in the primary key's index
    // (an index-only scan).
    c.execute(if crate::schema::changed() {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    })
    .await?;
    c.close().await?;
    Ok(())
}

async fn load_my(url: &str, w: &Workload) -> Result<()> {
    let mut c = my(url).await?;
    c.execute("SET FOREIGN_KEY_CHECKS = 0").await?;
    for (i, t) in TABLES.iter().enumerate() {
        let kinds: Vec<Kind> = t.cols.iter().map(|c| c.kind).collect();
        let per = if i == crate::schema::BUSINESSES { 200 } else { 1000 };
        let one = format!("({})", vec!["?"; t.cols.len()].join(", "));
        let mut tx = c.begin().await?;
        let mut rows = w.rows(i).peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Row> = rows.by_ref().take(per).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}",
                t.name,
                t.names().join(", "),
                vec![one.as_str(); chunk.len()].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for row in &chunk {
                for (v, k) in row.iter().zip(&kinds) {
                    q = bind_my(q, v, *k);
                }
            }
            q.execute(&mut *tx)
                .await
                .with_context(|| format!("loading {}", t.name))?;
        }
        tx.commit().await?;
    }
    add_after_load(&mut c).await?;
    c.execute("SET FOREIGN_KEY_CHECKS = 1").await?;
    c.execute(
        format!(
            "ANALYZE TABLE {}",
            TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        )
        .as_str(),
    )
    .await?;
    c.close().await?;
    Ok(())
}

/// Adds what [`ddl_after_load`] leaves for after the load, on a MariaDB
/// connection to the loaded database with `FOREIGN_KEY_CHECKS = 0`.
async fn add_after_load(c: &mut MySqlConnection) -> Result<()> {
    for s in TABLES.iter().flat_map(|t| ddl_after_load(Engine::Mysql, t)) {
        c.execute(s.as_str()).await.with_context(|| s.clone())?;
    }
    Ok(())
}

/// Checks that two databases hold the same rows in every managed table
/// (every column compared, in id order). The error names the first
/// difference.
pub async fn verify_equal(a: &Db, b: &Db) -> Result<()> {
    if let (Db::Mongo(..), Db::Mongo(..)) = (a, b) {
        return crate::mongo::verify_equal((&a.name(), &a.url()), (&b.name(), &b.url())).await;
    }
    for t in &TABLES {
        let sql = dump_sql(a.engine(), t);
        let mismatch = match (a, b) {
            (Db::Sqlite(pa), Db::Sqlite(pb)) => {
                let ca = rusqlite::Connection::open(pa)?;
                let cb = rusqlite::Connection::open(pb)?;
                let mut sa = ca.prepare(&sql)?;
                let mut sb = cb.prepare(&sql)?;
                let mut ra = sa.query([])?;
                let mut rb = sb.query([])?;
                let mut n = 0u64;
                // Bytes, not strings: a cell may hold text that is not UTF-8,
                // and a lossy conversion would hide a difference.
                let text = |r: Option<&rusqlite::Row<'_>>| -> Result<Option<Vec<u8>>> {
                    Ok(match r {
                        Some(r) => Some(r.get_ref(0)?.as_bytes()?.to_vec()),
                        None => None,
                    })
                };
                loop {
                    let x = text(ra.next()?)?;
                    let y = text(rb.next()?)?;
                    if x.is_none() && y.is_none() {
                        break None;
                    }
                    if x != y {
                        break Some((n, x, y));
                    }
                    n += 1;
                }
            }
            (Db::Postgres(..), Db::Postgres(..)) => {
                let mut ca = pg(&a.url()).await?;
                let mut cb = pg(&b.url()).await?;
                let out = {
                    let mut sa = sqlx::query_scalar::<_, String>(&sql)
                        .fetch(&mut ca)
                        .map_ok(String::into_bytes);
                    let mut sb = sqlx::query_scalar::<_, String>(&sql)
                        .fetch(&mut cb)
                        .map_ok(String::into_bytes);
                    let mut n = 0u64;
                    loop {
                        let (x, y) = tokio::try_join!(sa.try_next(), sb.try_next())?;
                        if x.is_none() && y.is_none() {
                            break None;
                        }
                        if x != y {
                            break Some((n, x, y));
                        }
                        n += 1;
                    }
                };
                ca.close().await?;
                cb.close().await?;
                out
            }
            (Db::Mysql(..), Db::Mysql(..)) => {
                let mut ca = my(&a.url()).await?;
                let mut cb = my(&b.url()).await?;
                let out = {
                    let mut sa = sqlx::query(&sql).fetch(&mut ca);
                    let mut sb = sqlx::query(&sql).fetch(&mut cb);
                    let mut n = 0u64;
                    loop {
                        let (x, y) = tokio::try_join!(sa.try_next(), sb.try_next())?;
                        let text = |r: Option<sqlx::mysql::MySqlRow>| -> Result<Option<Vec<u8>>> {
                            Ok(match r {
                                Some(r) => Some(r.try_get::<Vec<u8>, _>(0)?),
                                None => None,
                            })
                        };
                        let (x, y) = (text(x)?, text(y)?);
                        if x.is_none() && y.is_none() {
                            break None;
                        }
                        if x != y {
                            break Some((n, x, y));
                        }
                        n += 1;
                    }
                };
                ca.close().await?;
                cb.close().await?;
                out
            }
            _ => bail!("cannot compare databases of two engines"),
        };
        if let Some((n, x, y)) = mismatch {
            bail!(
                "table `{}` differs at row {} (in id order): {} has {}, {} has {}",
                t.name,
                n + 1,
                a.name(),
                x.as_deref()
                    .map_or("no more rows".to_string(), |x| clip(&String::from_utf8_lossy(x))),
                b.name(),
                y.as_deref()
                    .map_or("no more rows".to_string(), |y| clip(&String::from_utf8_lossy(y))),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes() {
        let mut out = Vec::new();
        copy_text(&mut out, &V::Text("a\\b\nc\td\re".into()));
        assert_eq!(out, b"a\\\\b\\nc\\td\\re");
        out.clear();
        copy_text(&mut out, &V::Blob(vec![0, 255]));
        assert_eq!(out, b"\\\\x00ff");
        out.clear();
        copy_text(&mut out, &V::Text("\\N".into()));
        assert_eq!(out, b"\\\\N");
    }

    #[test]
    fn urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
    }
}
