//! SQLite through rusqlite, run on blocking threads.
//!
//! Values are decoded by each cell's runtime storage class (SQLite lets a
//! column hold any class), never by the declared type; the declared type
//! only gives the column's logical type (see [`logical_type`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Timelike;
use ferry_core::schema::{ColumnSchema, ForeignKey, TableSchema};
use ferry_core::value::{ColumnType, LogicalType, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use crate::dialect::{ColumnSql, Dialect, Plain};
use crate::meta;
use crate::raw::{self, tag, RawBatch, RawBatches};
use crate::{
    Batch, Capabilities, DbError, DbErrorKind, Engine, FetchRequest, KeyBlock, KeyBlocks, Read, Row, RowBatches,
    ScanRequest, SqlStore, Store, Txn, WriterLock, BATCH_BLOCKS, BATCH_ROWS,
};

const D: Dialect = Dialect::Sqlite;

/// SQLite needs no casts; text keys order by BINARY collation (byte-wise).
struct SqliteColumns;

impl ColumnSql for SqliteColumns {
    fn dialect(&self) -> Dialect {
        D
    }
    fn order(&self, col: &str) -> String {
        format!("{} COLLATE BINARY", D.ident(col))
    }
}

const PLAIN: Plain = Plain(D);
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Widest key range, in blocks of 64 keys, that [`SqlStore::key_blocks`]
/// folds in memory (a mask each: 32 MB, keys up to 268 million apart).
const DENSE_BLOCKS: u64 = 1 << 22;

/// Sends key blocks in batches of [`BATCH_BLOCKS`] from a blocking task.
struct BlockSender<'a> {
    tx: &'a mpsc::Sender<Result<Vec<KeyBlock>, DbError>>,
    batch: Vec<KeyBlock>,
}

impl<'a> BlockSender<'a> {
    fn new(tx: &'a mpsc::Sender<Result<Vec<KeyBlock>, DbError>>) -> BlockSender<'a> {
        BlockSender {
            tx,
            batch: Vec::with_capacity(BATCH_BLOCKS),
        }
    }

    /// Adds a block; false when the reader has gone (stop reading).
    fn push(&mut self, b: KeyBlock) -> bool {
        self.batch.push(b);
        if self.batch.len() < BATCH_BLOCKS {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_BLOCKS));
        self.tx.blocking_send(Ok(full)).is_ok()
    }

    /// Sends what is left.
    fn finish(self) {
        if !self.batch.is_empty() {
            let _ = self.tx.blocking_send(Ok(self.batch));
        }
    }
}

/// `sqlite://PATH` or `sqlite:PATH`; a relative path starts at the folder
/// of `ferry.toml`, and anything after `?` is ignored.
pub(crate) const BACKEND: crate::registry::Backend = crate::registry::Backend {
    engine: Engine::Sqlite,
    url: ferry_core::config::UrlKind {
        prefixes: &["sqlite:"],
        example: "sqlite://PATH",
    },
    open: |o| {
        Box::pin(async move {
            let rest = o.url.strip_prefix("sqlite:").unwrap_or(o.url);
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let rest = rest.split('?').next().unwrap_or(rest);
            let path = Path::new(rest);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                o.base_dir.join(path)
            };
            Ok(Arc::new(SqliteStore::open(o.env, &path)?) as Arc<dyn Store>)
        })
    },
};

/// An SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    env: String,
    path: PathBuf,
    /// Reading connections kept between lookups: opening one reads the
    /// schema again, and its page cache starts empty (every lookup then
    /// reads the b-tree's inner pages again); a plan makes hundreds of
    /// lookups, a few at a time ([`KEPT_READERS`]).
    readers: Arc<Mutex<Vec<Connection>>>,
}

/// How many reading connections a store keeps: a plan reads a chunk's
/// target rows and their sync bases at once, and the next chunk's while
/// one is classified.
const KEPT_READERS: usize = 4;

/// A fetch of more keys than this reads in two halves at once
/// ([`Capabilities::reads_at_once`]).
const FETCH_HALVED: usize = 512;

impl SqliteStore {
    /// Opens an existing database file (never creates one).
    pub fn open(env: &str, path: &Path) -> Result<SqliteStore, DbError> {
        if !path.exists() {
            return Err(DbError::new(
                DbErrorKind::Unreachable,
                env,
                format!(
                    "the SQLite file {} does not exist; check the environment's url (a relative path is relative to ferry.toml)",
                    path.display()
                ),
            ));
        }
        let store = SqliteStore {
            env: env.to_string(),
            path: path.to_path_buf(),
            readers: Arc::default(),
        };
        store.roll_back_hot_journal();
        let journal = store.journal_path();
        store.read(|conn| {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(|e| {
                    let hint = if journal.exists() {
                        format!(
                            "; a writer that died mid-commit may have left the journal {}, which only a connection with write access to the file and its folder can roll back",
                            journal.display()
                        )
                    } else {
                        String::new()
                    };
                    DbError::new(
                        DbErrorKind::Unreachable,
                        env,
                        format!("{} is not a readable SQLite database: {e}{hint}", path.display()),
                    )
                })
        })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A writer that died mid-commit leaves a hot rollback journal
    /// (`NAME-journal`) beside the database. Only a connection that may
    /// write can roll it back, and until one does, every read-only
    /// connection fails ("attempt to write a readonly database",
    /// `SQLITE_READONLY_ROLLBACK`). When the journal is there, open the
    /// database read-write once and read it: SQLite then rolls the
    /// unfinished transaction back if the journal is hot, and leaves it
    /// alone if a live writer owns it. Says so when it rolled back. Without
    /// write access this does nothing, and the read that follows fails
    /// naming the journal.
    fn roll_back_hot_journal(&self) {
        let journal = self.journal_path();
        if !journal.metadata().is_ok_and(|m| m.len() > 0) {
            return;
        }
        let read = self.connect(true).and_then(|conn| {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
                .map_err(|e| self.err(e))
        });
        let left = journal.metadata().is_ok_and(|m| m.len() > 0);
        match read {
            Ok(()) if !left => tracing::warn!(
                env = %self.env,
                "{}: a writer died in the middle of a commit and left a hot journal ({}); Ferry opened the database read-write once, and SQLite rolled that unfinished transaction back",
                self.path.display(),
                journal.display()
            ),
            Ok(()) => {}
            Err(e) => tracing::warn!(
                env = %self.env,
                "{}: cannot roll back the journal {} (it needs write access): {e}",
                self.path.display(),
                journal.display()
            ),
        }
    }

    fn journal_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push("-journal");
        self.path.with_file_name(name)
    }

    /// The writer lock is a file beside the database (`NAME.ferry-lock`), so
    /// waiting for another Ferry writer never blocks the application's own
    /// writers on the database itself.
    fn lock_file(&self) -> Result<std::fs::File, DbError> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".ferry-lock");
        let path = self.path.with_file_name(name);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                DbError::new(
                    DbErrorKind::Busy,
                    &self.env,
                    format!("cannot open the lock file {}: {e}", path.display()),
                )
            })
    }

    fn connect(&self, write: bool) -> Result<Connection, DbError> {
        let flags = if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
        };
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| {
            DbError::new(
                DbErrorKind::Unreachable,
                &self.env,
                format!("cannot open {}: {e}", self.path.display()),
            )
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        if write {
            // A promotion's dirty pages stay in memory until the commit (up
            // to 64 MB) instead of spilling to the file mid-transaction.
            conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -65536")
                .map_err(|e| self.err(e))?;
        } else {
            // Opened read-only, and not even a temporary table: SQL that a
            // read runs (a `--where` or `exclude` predicate, a gate's
            // query) cannot write.
            conn.execute_batch("PRAGMA query_only = 1").map_err(|e| self.err(e))?;
        }
        Ok(conn)
    }

    /// Runs `f` on a kept reading connection, or on a new one when all are
    /// in use (kept afterwards, up to [`KEPT_READERS`]).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, DbError>) -> Result<T, DbError> {
        let kept = self.readers.lock().ok().and_then(|mut r| r.pop());
        let conn = match kept {
            Some(conn) => conn,
            None => self.connect(false)?,
        };
        let out = f(&conn);
        if let Ok(mut r) = self.readers.lock() {
            if r.len() < KEPT_READERS {
                r.push(conn);
            }
        }
        out
    }

    fn err(&self, e: rusqlite::Error) -> DbError {
        to_db_error(&self.env, e)
    }

    /// Runs a scan on a blocking thread of its own, sending the batches that
    /// `add` builds, row by row, each when it is full.
    fn stream<B: Batch + Send + 'static>(
        &self,
        req: &ScanRequest,
        tx: mpsc::Sender<Result<B, DbError>>,
        fresh: impl Fn() -> B + Send + 'static,
        mut add: impl FnMut(&mut B, &rusqlite::Row<'_>) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), DbError> {
        let conn = self.connect(false)?;
        let (sql, params) = D.scan(req, &SqliteColumns);
        let params: Vec<SqlValue> = params.iter().map(encode).collect();
        // Prepare here so a bad predicate or table fails the call itself.
        conn.prepare(&sql).map_err(|e| self.err(e).table(&req.table))?;
        let (env, table) = (self.env.clone(), req.table.clone());
        tokio::task::spawn_blocking(move || {
            let mut run = || -> rusqlite::Result<()> {
                let mut stmt = conn.prepare(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut batch = fresh();
                while let Some(r) = rows.next()? {
                    add(&mut batch, r)?;
                    if batch.is_full() && tx.blocking_send(Ok(std::mem::replace(&mut batch, fresh()))).is_err() {
                        return Ok(());
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Ok(batch));
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(to_db_error(&env, e).table(&table)));
            }
        });
        Ok(())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| DbError::new(DbErrorKind::Query, &self.env, format!("worker thread failed: {e}")))?
    }
}

/// Creates (or opens) an SQLite file and runs an SQL script in it: used by
/// `ferry demo` and `ferry init --demo` to lay out sample environments.
pub fn run_script(path: &Path, sql: &str) -> Result<(), DbError> {
    let env = path.display().to_string();
    let conn = Connection::open(path).map_err(|e| to_db_error(&env, e))?;
    conn.execute_batch(sql).map_err(|e| to_db_error(&env, e))
}

fn to_db_error(env: &str, e: rusqlite::Error) -> DbError {
    let mut message = e.to_string();
    if matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ReadOnly) {
        message.push_str(crate::READ_ONLY_HINT);
    }
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::ConstraintViolation => DbErrorKind::Constraint,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => DbErrorKind::Busy,
            rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::NotADatabase => DbErrorKind::Unreachable,
            _ => DbErrorKind::Query,
        },
        _ => DbErrorKind::Query,
    };
    let mut err = DbError::new(kind, env, message.clone());
    // "NOT NULL constraint failed: table.column" names the column. A CHECK
    // failure gives its expression instead (see [`check_column`]), whose
    // dots are not `table.column` ("price >= 0.5").
    if let Some((what, rest)) = message.split_once("constraint failed: ") {
        if !what.trim_end().ends_with("CHECK") {
            if let Some((table, column)) = rest.split(',').next().and_then(|s| s.trim().split_once('.')) {
                err.table = Some(table.to_string());
                err.column = Some(column.to_string());
            }
        }
    }
    err
}

/// After a deferred foreign key failed at COMMIT (the transaction stays
/// open): the first table holding a broken reference, and up to five such
/// rows named as `table (rowid N) references parent (missing)`.
fn foreign_key_problems(conn: &Connection) -> Option<(String, String)> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check").ok()?;
    let rows: Vec<(String, Option<i64>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let first = rows.first()?.0.clone();
    let shown: Vec<String> = rows
        .iter()
        .take(5)
        .map(|(t, rowid, parent)| match rowid {
            Some(id) => format!("`{t}` (rowid {id}) references a missing `{parent}` row"),
            None => format!("a `{t}` row references a missing `{parent}` row"),
        })
        .collect();
    let more = if rows.len() > 5 {
        format!(" (and {} more)", rows.len() - 5)
    } else {
        String::new()
    };
    Some((first, format!("{}{more}", shown.join("; "))))
}

/// SQLite stores a NaN as NULL without an error: a row to write (values in
/// `names` order) holding one is refused, naming the column.
fn refuse_nan(env: &str, names: &[String], values: &[Value]) -> Result<(), DbError> {
    match names
        .iter()
        .zip(values)
        .find(|(_, v)| matches!(v, Value::Float(f) if f.is_nan()))
    {
        Some((name, _)) => {
            let mut e = DbError::new(
                DbErrorKind::Constraint,
                env,
                "the value is NaN, which SQLite cannot store (it would keep NULL)",
            );
            e.column = Some(name.clone());
            Err(e)
        }
        None => Ok(()),
    }
}

/// A failed CHECK constraint is reported by its expression ("CHECK
/// constraint failed: qty >= 0"): names the first written column the
/// expression mentions. (A named constraint reports only its name, which
/// then stays in the message.)
fn check_column(mut err: DbError, written: &[String]) -> DbError {
    if err.column.is_some() {
        return err;
    }
    let Some((_, expr)) = err.message.split_once("CHECK constraint failed: ") else {
        return err;
    };
    let words: Vec<&str> = expr
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    err.column = written
        .iter()
        .find(|c| words.iter().any(|w| w.eq_ignore_ascii_case(c)))
        .cloned();
    err
}

/// The logical type of an SQLite column from its declared type. SQLite's
/// own affinity rules come first; well-known names refine them.
pub fn logical_type(declared: &str) -> LogicalType {
    let d = declared.to_ascii_uppercase();
    let has = |s: &str| d.contains(s);
    if d.is_empty() {
        LogicalType::Any
    } else if has("BOOL") {
        LogicalType::Bool
    } else if has("TIMESTAMPTZ") || has("WITH TIME ZONE") {
        LogicalType::TimestampTz
    } else if has("DATETIME") || has("TIMESTAMP") {
        LogicalType::Timestamp
    } else if d == "DATE" {
        LogicalType::Date
    } else if d == "TIME" {
        LogicalType::Time
    } else if has("JSON") {
        LogicalType::Json
    } else if has("UUID") {
        LogicalType::Uuid
    } else if has("INT") {
        LogicalType::Int
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        LogicalType::Text
    } else if has("BLOB") {
        LogicalType::Bytes
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        LogicalType::Float
    } else if has("DEC") || has("NUMERIC") {
        LogicalType::Decimal
    } else {
        LogicalType::Any
    }
}

/// The column type of a declared type: [`logical_type`], and for decimals
/// the limit of SQLite's NUMERIC affinity (stored as INTEGER or REAL).
pub fn column_type(declared: &str) -> ColumnType {
    let mut t = ColumnType::new(logical_type(declared));
    t.decimal_as_real = t.logical == LogicalType::Decimal;
    t
}

fn decode(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        // TEXT that is not UTF-8 keeps its bytes exactly.
        ValueRef::Text(t) => raw::text_value(t),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn fmt_micros(secs_fmt: String, nanos: u32) -> String {
    let micros = nanos / 1_000;
    if micros == 0 {
        secs_fmt
    } else {
        format!("{secs_fmt}.{micros:06}")
    }
}

/// How a canonical value is stored in SQLite: dates and times as text (with
/// microseconds when they are not zero), booleans as 0/1, JSON as compact
/// text, UUIDs as hyphenated text.
fn encode(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Float(f) => SqlValue::Real(*f),
        Value::Decimal(d) => SqlValue::Text(d.clone()),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
        Value::Json(j) => SqlValue::Text(j.to_string()),
        Value::Date(d) => SqlValue::Text(d.format("%Y-%m-%d").to_string()),
        Value::Time(t) => SqlValue::Text(fmt_micros(t.format("%H:%M:%S").to_string(), t.nanosecond())),
        Value::Timestamp(t) => SqlValue::Text(fmt_micros(t.format("%Y-%m-%d %H:%M:%S").to_string(), t.nanosecond())),
        Value::TimestampTz(t) => SqlValue::Text(format!(
            "{}+00:00",
            fmt_micros(t.format("%Y-%m-%d %H:%M:%S").to_string(), t.nanosecond())
        )),
        Value::Uuid(_) => SqlValue::Text(v.display_text()),
    }
}

fn read_rows(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[SqlValue],
    mut each: impl FnMut(Row) -> bool,
) -> rusqlite::Result<()> {
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(decode(r.get_ref(i)?));
        }
        if !each(row) {
            break;
        }
    }
    Ok(())
}

fn introspect(conn: &Connection, table: &str) -> rusqlite::Result<Option<TableSchema>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !exists {
        return Ok(None);
    }
    let sql = format!("PRAGMA table_xinfo({})", D.ident(table));
    let mut stmt = conn.prepare(&sql)?;
    let mut cols: Vec<(ColumnSchema, i64)> = stmt
        .query_map([], |r| {
            let name: String = r.get("name")?;
            let declared: String = r.get::<_, Option<String>>("type")?.unwrap_or_default();
            let notnull: bool = r.get("notnull")?;
            let default: Option<String> = r.get("dflt_value")?;
            let pk: i64 = r.get("pk")?;
            let hidden: i64 = r.get("hidden")?;
            Ok((
                ColumnSchema {
                    ty: column_type(&declared),
                    name,
                    declared,
                    nullable: !notnull,
                    has_default: default.is_some() || hidden != 0,
                    auto_increment: false,
                },
                pk * 1000 + hidden,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Generated (hidden) columns are not data Ferry copies.
    cols.retain(|(_, tag)| tag % 1000 == 0);
    let mut pk: Vec<(i64, String)> = cols
        .iter()
        .filter(|(_, tag)| *tag >= 1000)
        .map(|(c, tag)| (tag / 1000, c.name.clone()))
        .collect();
    pk.sort();
    let primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
    let mut columns: Vec<ColumnSchema> = cols.into_iter().map(|(c, _)| c).collect();
    if let [only] = primary_key.as_slice() {
        if let Some(c) = columns.iter_mut().find(|c| c.name == *only) {
            // INTEGER PRIMARY KEY is the rowid: SQLite assigns it.
            if c.declared.eq_ignore_ascii_case("INTEGER") {
                c.auto_increment = true;
                c.has_default = true;
            }
        }
    }
    let sql = format!("PRAGMA foreign_key_list({})", D.ident(table));
    let mut stmt = conn.prepare(&sql)?;
    let mut fks: Vec<(i64, i64, String, String, Option<String>)> = stmt
        .query_map([], |r| {
            Ok((
                r.get("id")?,
                r.get("seq")?,
                r.get("table")?,
                r.get("from")?,
                r.get("to")?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    fks.sort_by_key(|f| (f.0, f.1));
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    let mut last_id = None;
    for (id, _, ref_table, from, to) in fks {
        if last_id != Some(id) {
            foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                ref_table: ref_table.clone(),
                ref_columns: Vec::new(),
            });
            last_id = Some(id);
        }
        if let Some(fk) = foreign_keys.last_mut() {
            fk.columns.push(from);
            fk.ref_columns.push(to.unwrap_or_default());
        }
    }
    // Unique indexes (UNIQUE constraints included) besides the primary
    // key; partial ones and those over expressions are left out.
    let sql = format!("PRAGMA index_list({})", D.ident(table));
    let mut stmt = conn.prepare(&sql)?;
    let indexes: Vec<(String, bool, String, bool)> = stmt
        .query_map([], |r| {
            Ok((r.get("name")?, r.get("unique")?, r.get("origin")?, r.get("partial")?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut unique = Vec::new();
    for (name, is_unique, origin, partial) in indexes {
        if !is_unique || partial || origin == "pk" {
            continue;
        }
        let sql = format!("PRAGMA index_info({})", D.ident(&name));
        let mut stmt = conn.prepare(&sql)?;
        let cols: Vec<(i64, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get("seqno")?, r.get("name")?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut cols = cols;
        cols.sort();
        if let Some(cols) = cols.into_iter().map(|(_, c)| c).collect::<Option<Vec<String>>>() {
            unique.push(cols);
        }
    }
    Ok(Some(TableSchema {
        name: table.to_string(),
        columns,
        primary_key,
        foreign_keys,
        unique,
        open_fields: None,
        carried: Vec::new(),
    }))
}

fn chunk_size(per_row: usize) -> usize {
    (D.max_params() / per_row.max(1)).clamp(1, 500)
}

fn fetch_on(conn: &Connection, env: &str, req: &FetchRequest) -> Result<Vec<Row>, DbError> {
    let mut out = Vec::new();
    for chunk in req.values.chunks(chunk_size(req.match_columns.len())) {
        let (sql, params) = D.fetch(req, chunk, &PLAIN);
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(|e| to_db_error(env, e).table(&req.table))?;
        let params: Vec<SqlValue> = params.iter().map(encode).collect();
        read_rows(&mut stmt, &params, |r| {
            out.push(r);
            true
        })
        .map_err(|e| to_db_error(env, e).table(&req.table))?;
    }
    Ok(out)
}

fn meta_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [meta::SCHEMA],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(None);
    }
    conn.query_row(
        &format!("SELECT max(version) FROM {}", D.ident(meta::SCHEMA)),
        [],
        |r| r.get(0),
    )
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current = meta_version(conn)?.unwrap_or(0);
    let all = meta::migrations(D);
    for (i, steps) in all.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        for sql in steps {
            conn.execute(sql, [])?;
        }
        conn.execute(&format!("DELETE FROM {}", D.ident(meta::SCHEMA)), [])?;
        conn.execute(
            &format!("INSERT INTO {} (version) VALUES (?1)", D.ident(meta::SCHEMA)),
            [version],
        )?;
    }
    Ok(())
}

#[async_trait]
impl SqlStore for SqliteStore {
    fn dialect(&self) -> Dialect {
        D
    }

    /// Only the rowid holds nothing but integers (any other column takes a
    /// value of any type): the one primary key column declared `INTEGER`
    /// of a table with rowids, and not `DESC` (no index of origin `pk`).
    async fn integer_key(&self, table: &str, column: &str) -> Result<bool, DbError> {
        let (table, column) = (table.to_string(), column.to_string());
        self.blocking(move |s| {
            s.read(|conn| {
                conn.query_row(
                    "SELECT (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1 \
                       AND EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE pk = 1 AND name = ?2 AND upper(type) = 'INTEGER') \
                       AND NOT EXISTS (SELECT 1 FROM pragma_index_list(?1) WHERE origin = 'pk')",
                    [&table, &column],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(|e| s.err(e).table(&table))
            })
        })
        .await
    }

    /// The keys folded into blocks here: SQLite runs in the process, so no
    /// row travels, and a fold costs less than the sort a `GROUP BY` would
    /// make it run. The key is the rowid, which every index holds: read
    /// without `ORDER BY`, SQLite walks its smallest index instead of the
    /// table's pages (a few MB where the table holds hundreds), folding
    /// into one mask per block of the key range. A range wider than
    /// [`DENSE_BLOCKS`] blocks is read in rowid order instead, folding as
    /// it goes: memory stays flat either way.
    async fn key_blocks(&self, table: &str, column: &str) -> Result<KeyBlocks, DbError> {
        let conn = self.connect(false)?;
        let (t, c) = (D.ident(table), D.ident(column));
        // Two subqueries: SQLite finds a lone min() or max() of the rowid at
        // the ends of the b-tree, but scans for both in one SELECT.
        let bounds = format!("SELECT (SELECT min({c}) FROM {t}), (SELECT max({c}) FROM {t})");
        let ordered = D.key_blocks(table, column);
        // Prepared here so a missing table fails the call itself.
        conn.prepare(&bounds).map_err(|e| self.err(e).table(table))?;
        let (tx, rx) = mpsc::channel(4);
        let (env, table, column) = (self.env.clone(), table.to_string(), column.to_string());
        tokio::task::spawn_blocking(move || {
            let fail = |e: rusqlite::Error| to_db_error(&env, e).table(&table);
            let not_integer = |v: ValueRef<'_>| {
                let mut e = DbError::new(
                    DbErrorKind::Query,
                    &env,
                    format!(
                        "key column `{column}` holds {}, not an integer: plan with --full",
                        decode(v).display_text()
                    ),
                )
                .table(&table);
                e.column = Some(column.clone());
                e
            };
            let mut out = BlockSender::new(&tx);
            let run = |out: &mut BlockSender<'_>| -> Result<(), DbError> {
                // One read transaction: the bounds and the keys are one snapshot.
                conn.execute_batch("BEGIN").map_err(fail)?;
                let (lo, hi): (Option<i64>, Option<i64>) = conn
                    .query_row(&bounds, [], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(fail)?;
                let (Some(lo), Some(hi)) = (lo, hi) else { return Ok(()) };
                let (first, span) = (lo >> 6, (hi >> 6).abs_diff(lo >> 6) + 1);
                if span <= DENSE_BLOCKS {
                    let mut masks = vec![0u64; span as usize];
                    let mut stmt = conn.prepare(&format!("SELECT {c} FROM {t}")).map_err(fail)?;
                    let mut rows = stmt.query([]).map_err(fail)?;
                    while let Some(r) = rows.next().map_err(fail)? {
                        let key = match r.get_ref(0).map_err(fail)? {
                            ValueRef::Integer(k) if (lo..=hi).contains(&k) => k,
                            ValueRef::Integer(k) => {
                                return Err(DbError::new(
                                    DbErrorKind::Query,
                                    &env,
                                    format!("key {k} is outside the range {lo}..={hi} read a moment before in the same transaction: plan with --full"),
                                )
                                .table(&table))
                            }
                            other => return Err(not_integer(other)),
                        };
                        let one = KeyBlock::of(key);
                        masks[(one.block - first) as usize] |= one.mask;
                    }
                    for (i, mask) in masks.into_iter().enumerate() {
                        if mask != 0
                            && !out.push(KeyBlock {
                                block: first + i as i64,
                                mask,
                            })
                        {
                            return Ok(());
                        }
                    }
                } else {
                    let mut stmt = conn.prepare(&ordered).map_err(fail)?;
                    let mut rows = stmt.query([]).map_err(fail)?;
                    let mut current: Option<KeyBlock> = None;
                    while let Some(r) = rows.next().map_err(fail)? {
                        let key = match r.get_ref(0).map_err(fail)? {
                            ValueRef::Integer(k) => k,
                            other => return Err(not_integer(other)),
                        };
                        let one = KeyBlock::of(key);
                        match current.as_mut() {
                            Some(c) if c.block == one.block => c.mask |= one.mask,
                            _ => {
                                if let Some(done) = current.replace(one) {
                                    if !out.push(done) {
                                        return Ok(());
                                    }
                                }
                            }
                        }
                    }
                    if let Some(done) = current {
                        out.push(done);
                    }
                }
                Ok(())
            };
            match run(&mut out) {
                Ok(()) => out.finish(),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        });
        Ok(rx)
    }

    async fn query_scalar(&self, sql: &str) -> Result<Option<Value>, DbError> {
        let sql = sql.to_string();
        self.blocking(move |s| {
            let conn = s.connect(false)?;
            let mut stmt = conn.prepare(&sql).map_err(|e| s.err(e))?;
            let mut first = None;
            read_rows(&mut stmt, &[], |r| {
                first = r.into_iter().next();
                false
            })
            .map_err(|e| s.err(e))?;
            Ok(first)
        })
        .await
    }

    async fn create_clone(&self, name: &str, tables: &[String]) -> Result<(), DbError> {
        let target = self.clone_path(name);
        let tables = tables.to_vec();
        self.blocking(move |s| {
            if target.exists() {
                return Err(DbError::new(
                    DbErrorKind::Query,
                    &s.env,
                    format!(
                        "cannot clone environment `{}`: the file {} exists already; nothing was written",
                        s.env,
                        target.display()
                    ),
                ));
            }
            let made = copy_tables(&s.path, &target, &tables).map_err(|e| {
                DbError::new(
                    DbErrorKind::Query,
                    &s.env,
                    format!(
                        "cannot clone environment `{}` into {}: {e}; the half-made file was removed",
                        s.env,
                        target.display()
                    ),
                )
            });
            if made.is_err() {
                remove_database_files(&target).map_err(|e| {
                    DbError::new(
                        DbErrorKind::Query,
                        &s.env,
                        format!("cannot remove the half-made clone {}: {e}", target.display()),
                    )
                })?;
            }
            made
        })
        .await
    }

    async fn drop_clone(&self, name: &str) -> Result<(), DbError> {
        let target = self.clone_path(name);
        remove_database_files(&target).map_err(|e| {
            DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!("cannot remove the clone {}: {e}", target.display()),
            )
        })
    }
}

impl SqliteStore {
    /// Where the per-branch clone `name` of this database lives:
    /// `STEM-NAME.EXT` beside it (as `registry::clone_url` says).
    fn clone_path(&self, name: &str) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let ext = self
            .path
            .extension()
            .map_or_else(|| "db".to_string(), |e| e.to_string_lossy().into_owned());
        self.path.with_file_name(format!("{stem}-{name}.{ext}"))
    }
}

/// Creates the database `target` with `tables` of `source` as their
/// `CREATE TABLE` text says, their rows, and then their indexes, in one
/// transaction.
fn copy_tables(source: &Path, target: &Path, tables: &[String]) -> rusqlite::Result<()> {
    let mut conn = Connection::open(target)?;
    // Rows are copied as they are, parents and children in any order.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    conn.execute("ATTACH DATABASE ?1 AS src", [source.to_string_lossy().as_ref()])?;
    let tx = conn.transaction()?;
    let mut indexes = Vec::new();
    for table in tables {
        let sql: String = tx.query_row(
            "SELECT sql FROM src.sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        tx.execute_batch(&sql)?;
        let q = D.ident(table);
        tx.execute(&format!("INSERT INTO main.{q} SELECT * FROM src.{q}"), [])?;
        let mut stmt =
            tx.prepare("SELECT sql FROM src.sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?;
        let found = stmt.query_map([table], |r| r.get::<_, String>(0))?;
        for sql in found {
            indexes.push(sql?);
        }
    }
    for sql in &indexes {
        tx.execute_batch(sql)?;
    }
    tx.commit()?;
    conn.execute("DETACH DATABASE src", [])?;
    Ok(())
}

/// Removes an SQLite database file with its journal, WAL and Ferry's lock
/// file; those already gone are no error.
fn remove_database_files(path: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    for suffix in ["", "-journal", "-wal", "-shm", ".ferry-lock"] {
        match std::fs::remove_file(path.with_file_name(format!("{name}{suffix}"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::SQL
    }

    fn as_sql(&self) -> Option<&dyn SqlStore> {
        Some(self)
    }

    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn env(&self) -> &str {
        &self.env
    }

    async fn ping(&self) -> Result<(), DbError> {
        self.blocking(|s| s.connect(false).map(|_| ())).await
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        let table = table.to_string();
        self.blocking(move |s| s.read(|conn| introspect(conn, &table).map_err(|e| s.err(e).table(&table))))
            .await
    }

    fn records(&self) -> Box<dyn crate::records::Records + '_> {
        Box::new(crate::records::SqlRecords(self))
    }

    async fn has_meta(&self) -> Result<bool, DbError> {
        self.blocking(|s| s.read(|conn| meta_version(conn).map(|v| v.is_some()).map_err(|e| s.err(e))))
            .await
    }

    async fn scan(&self, req: ScanRequest) -> Result<RowBatches, DbError> {
        let (tx, rx) = mpsc::channel(4);
        let fresh = || Vec::with_capacity(BATCH_ROWS);
        self.stream(&req, tx, fresh, |batch, r| {
            let row = (0..r.as_ref().column_count())
                .map(|i| r.get_ref(i).map(decode))
                .collect::<rusqlite::Result<Row>>()?;
            batch.push(row);
            Ok(())
        })?;
        Ok(rx)
    }

    async fn scan_raw(&self, req: ScanRequest) -> Result<RawBatches, DbError> {
        let (k, n) = (req.order_by.len(), req.columns.len());
        let (sender, rx) = raw::channel(k);
        let tx = sender.tx.clone();
        self.stream(
            &req,
            tx,
            move || sender.fresh(),
            move |b: &mut RawBatch, r| {
                for i in 0..k {
                    b.push_key(decode(r.get_ref(i)?));
                }
                for i in k..n {
                    match r.get_ref(i)? {
                        ValueRef::Null => b.push_null(),
                        ValueRef::Integer(v) => b.push_cell(tag::INTEGER, &v.to_le_bytes()),
                        ValueRef::Real(f) => b.push_cell(tag::REAL, &f.to_bits().to_le_bytes()),
                        ValueRef::Text(t) => b.push_cell(tag::TEXT, t),
                        ValueRef::Blob(x) => b.push_cell(tag::BLOB, x),
                    }
                }
                let flag = r.as_ref().column_count() > n && raw::is_true(Some(&decode(r.get_ref(n)?)));
                b.end_row(flag);
                Ok(())
            },
        )?;
        Ok(rx.with_decoder(Arc::new(raw::decode_image)))
    }

    async fn fetch(&self, mut req: FetchRequest) -> Result<Vec<Row>, DbError> {
        if req.values.len() <= FETCH_HALVED {
            return self
                .blocking(move |s| s.read(|conn| fetch_on(conn, &s.env, &req)))
                .await;
        }
        // Many keys (a plan's look-ups of the rows its changes reference):
        // two halves at once, each on a reading connection of its own.
        let mut values = std::mem::take(&mut req.values);
        let second = FetchRequest {
            values: values.split_off(values.len() / 2),
            ..req.clone()
        };
        let first = FetchRequest { values, ..req };
        let read = |req: FetchRequest| self.blocking(move |s| s.read(|conn| fetch_on(conn, &s.env, &req)));
        let (mut rows, more) = tokio::try_join!(read(first), read(second))?;
        rows.extend(more);
        Ok(rows)
    }

    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError> {
        crate::file_lock::try_lock(&self.env, self.lock_file()?)
    }

    async fn lock_writer(&self) -> Result<WriterLock, DbError> {
        crate::file_lock::lock(&self.env, self.lock_file()?).await
    }

    async fn begin(&self) -> Result<Box<dyn Txn>, DbError> {
        let conn = self
            .blocking(|s| {
                let conn = s.connect(true)?;
                conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| s.err(e))?;
                migrate(&conn).map_err(|e| s.err(e))?;
                Ok(conn)
            })
            .await?;
        Ok(Box::new(SqliteTxn {
            env: self.env.clone(),
            conn: Some(conn),
        }))
    }
}

/// An open `BEGIN IMMEDIATE` transaction on its own connection. Dropping
/// the connection without `COMMIT` rolls back.
struct SqliteTxn {
    env: String,
    conn: Option<Connection>,
}

impl SqliteTxn {
    async fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Connection, &str) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| DbError::new(DbErrorKind::Query, &self.env, "the transaction is closed"))?;
        let env = self.env.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn, &env);
            (conn, out)
        })
        .await
        .map_err(|e| DbError::new(DbErrorKind::Query, &self.env, format!("worker thread failed: {e}")))?;
        self.conn = Some(conn);
        out
    }
}

#[async_trait]
impl Read for SqliteTxn {
    fn env(&self) -> &str {
        &self.env
    }

    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        self.run(move |conn, env| fetch_on(conn, env, &req)).await
    }
}

#[async_trait]
impl Txn for SqliteTxn {
    async fn insert(&mut self, table: &str, columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let (table, columns, rows) = (table.to_string(), columns.to_vec(), rows.to_vec());
        self.run(move |conn, env| {
            let sql = D.insert(&table, &columns, 1, &PLAIN);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| to_db_error(env, e).table(&table))?;
            for (i, row) in rows.iter().enumerate() {
                refuse_nan(env, &columns, row).map_err(|e| e.table(&table).row(i))?;
                stmt.execute(rusqlite::params_from_iter(row.iter().map(encode)))
                    .map_err(|e| check_column(to_db_error(env, e), &columns).table(&table).row(i))?;
            }
            Ok(())
        })
        .await
    }

    async fn upsert(&mut self, table: &str, key: &[String], columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let (table, key, columns, rows) = (table.to_string(), key.to_vec(), columns.to_vec(), rows.to_vec());
        self.run(move |conn, env| {
            let sql = D.upsert(&table, &key, &columns, 1, &PLAIN);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| to_db_error(env, e).table(&table))?;
            for (i, row) in rows.iter().enumerate() {
                stmt.execute(rusqlite::params_from_iter(row.iter().map(encode)))
                    .map_err(|e| to_db_error(env, e).table(&table).row(i))?;
            }
            Ok(())
        })
        .await
    }

    async fn insert_returning(
        &mut self,
        table: &str,
        columns: &[String],
        row: &Row,
        _key: &str,
    ) -> Result<Value, DbError> {
        let (table, columns, row) = (table.to_string(), columns.to_vec(), row.clone());
        self.run(move |conn, env| {
            let sql = D.insert(&table, &columns, 1, &PLAIN);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| to_db_error(env, e).table(&table))?;
            refuse_nan(env, &columns, &row).map_err(|e| e.table(&table).row(0))?;
            stmt.execute(rusqlite::params_from_iter(row.iter().map(encode)))
                .map_err(|e| to_db_error(env, e).table(&table).row(0))?;
            // Only a rowid key is generated by SQLite (checked when the table is resolved).
            Ok(Value::Int(conn.last_insert_rowid()))
        })
        .await
    }

    async fn update(
        &mut self,
        table: &str,
        key: &[String],
        set: &[String],
        rows: &[(Row, Row)],
    ) -> Result<(), DbError> {
        let (table, key, set, rows) = (table.to_string(), key.to_vec(), set.to_vec(), rows.to_vec());
        self.run(move |conn, env| {
            let sql = D.update(&table, &key, &set, &PLAIN);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| to_db_error(env, e).table(&table))?;
            for (i, (k, values)) in rows.iter().enumerate() {
                refuse_nan(env, &set, values).map_err(|e| e.table(&table).row(i))?;
                stmt.execute(rusqlite::params_from_iter(values.iter().chain(k).map(encode)))
                    .map_err(|e| check_column(to_db_error(env, e), &set).table(&table).row(i))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&mut self, table: &str, key: &[String], keys: &[Row]) -> Result<(), DbError> {
        let (table, key, keys) = (table.to_string(), key.to_vec(), keys.to_vec());
        self.run(move |conn, env| {
            let sql = D.delete(&table, &key, &PLAIN);
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| to_db_error(env, e).table(&table))?;
            for (i, k) in keys.iter().enumerate() {
                stmt.execute(rusqlite::params_from_iter(k.iter().map(encode)))
                    .map_err(|e| to_db_error(env, e).table(&table).row(i))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_in(
        &mut self,
        table: &str,
        fixed: &[(String, Value)],
        column: &str,
        values: &[Value],
    ) -> Result<(), DbError> {
        let (table, fixed, column, values) = (table.to_string(), fixed.to_vec(), column.to_string(), values.to_vec());
        self.run(move |conn, env| {
            let names: Vec<String> = fixed.iter().map(|(c, _)| c.clone()).collect();
            for chunk in values.chunks(chunk_size(1).saturating_sub(fixed.len()).max(1)) {
                let sql = D.delete_in(&table, &names, &column, chunk.len(), &PLAIN);
                let params = fixed.iter().map(|(_, v)| v).chain(chunk).map(encode);
                conn.execute(&sql, rusqlite::params_from_iter(params))
                    .map_err(|e| to_db_error(env, e).table(&table))?;
            }
            Ok(())
        })
        .await
    }

    async fn execute_sql(&mut self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_string();
        self.run(move |conn, env| conn.execute_batch(&sql).map_err(|e| to_db_error(env, e)))
            .await
    }

    async fn advance_generated(&mut self, _table: &str, _column: &str) -> Result<(), DbError> {
        // SQLite's rowid (and AUTOINCREMENT's sqlite_sequence) always move
        // past the largest explicit value inserted.
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        self.run(|conn, env| {
            conn.execute_batch("COMMIT").map_err(|e| {
                let mut err = to_db_error(env, e);
                if err.kind == DbErrorKind::Constraint {
                    err.message = format!("{} (checked at commit)", err.message);
                    // SQLite names no row: the transaction is still open,
                    // so ask it which rows point at a missing one.
                    if let Some((table, broken)) = foreign_key_problems(conn) {
                        err.table = Some(table);
                        err.message = format!("{}: {broken}", err.message);
                    }
                }
                err
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.cargo/config.toml` compiles SQLite without the one shared page
    /// cache behind a global mutex, and without counting memory under
    /// another: a plan's reads on several threads would wait on them.
    #[test]
    fn compiled_for_reading_on_many_threads() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT (is LIBSQLITE3_FLAGS from .cargo/config.toml lost?): {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "SQLite counts its memory (is LIBSQLITE3_FLAGS from .cargo/config.toml lost?): {options:?}"
        );
    }

    #[test]
    fn declared_types_map_to_logical_types() {
        for (declared, want) in [
            ("", LogicalType::Any),
            ("INTEGER", LogicalType::Int),
            ("BIGINT", LogicalType::Int),
            ("varchar(20)", LogicalType::Text),
            ("BLOB", LogicalType::Bytes),
            ("REAL", LogicalType::Float),
            ("DECIMAL(10,2)", LogicalType::Decimal),
            ("BOOLEAN", LogicalType::Bool),
            ("DATETIME", LogicalType::Timestamp),
            ("DATE", LogicalType::Date),
            ("JSON", LogicalType::Json),
        ] {
            assert_eq!(logical_type(declared), want, "{declared}");
        }
    }

    #[tokio::test]
    async fn streams_rows_in_key_order_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, icon BLOB);
             INSERT INTO t VALUES (3, 'c', NULL), (1, 'a🦀', x'00ff'), (2, 'b', NULL);",
        )
        .unwrap();
        let store = SqliteStore::open("staging", &path).unwrap();
        let schema = store.table_schema("t").await.unwrap().unwrap();
        assert_eq!(schema.primary_key, ["id"]);
        assert!(schema.column("id").unwrap().auto_increment);
        let mut rx = store
            .scan(ScanRequest {
                table: "t".into(),
                columns: vec!["id".into(), "name".into(), "icon".into()],
                order_by: vec!["id".into()],
                filter: None,
                flag: Some(crate::Predicate::native("name = 'b'")),
                descending: false,
                limit: None,
            })
            .await
            .unwrap();
        let rows = rx.recv().await.unwrap().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            vec![
                Value::Int(1),
                Value::Text("a🦀".into()),
                Value::Bytes(vec![0, 255]),
                Value::Int(0)
            ]
        );
        assert_eq!(rows[1][3], Value::Int(1));
        let missing = SqliteStore::open("prod", &dir.path().join("nope.db")).unwrap_err();
        assert_eq!(missing.kind, DbErrorKind::Unreachable);
        assert!(missing.to_string().contains("prod"), "{missing}");
    }

    #[test]
    fn a_v3_sync_base_is_rebuilt_clustered_by_its_key_and_kept() {
        let conn = Connection::open_in_memory().unwrap();
        for steps in &meta::migrations(D)[..3] {
            for sql in steps {
                conn.execute(sql, []).unwrap();
            }
        }
        conn.execute_batch(
            "INSERT INTO _ferry_schema VALUES (3);
             INSERT INTO _ferry_sync VALUES ('staging', 'forms', '[1]', x'01', x'02', 'P1', NULL),
                                            ('staging', 'forms', '[2]', x'03', x'04', NULL, '[7]');",
        )
        .unwrap();
        migrate(&conn).unwrap();
        assert_eq!(meta_version(&conn).unwrap(), Some(meta::migrations(D).len() as i64));
        let sql: String = conn
            .query_row("SELECT sql FROM sqlite_master WHERE name = '_ferry_sync'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(sql.ends_with("WITHOUT ROWID"), "{sql}");
        let rows: Vec<(String, Option<String>, Option<String>)> = conn
            .prepare("SELECT row_key, promotion_id, target_key FROM _ferry_sync ORDER BY row_key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("[1]".to_string(), Some("P1".to_string()), None),
                ("[2]".to_string(), None, Some("[7]".to_string()))
            ]
        );
        // Migrating again changes nothing.
        migrate(&conn).unwrap();
    }
}
