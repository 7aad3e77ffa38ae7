//! Ferry's storage drivers behind one [`Store`] trait.
//!
//! A store reads a table's schema, streams rows in key order, fetches rows
//! by column values, and writes inside one transaction ([`Txn`]) that also
//! holds Ferry's own `_ferry_*` tables, so data and journal commit together.
//! Stores speak [`ferry_core::Value`]s only: every engine-specific decision
//! (types, quoting, placeholders, locks) stays in its module and in
//! [`dialect`]. SQLite lives in [`sqlite`]; PostgreSQL, MySQL and directory
//! stores implement the same trait.
#![forbid(unsafe_code)]

mod batches;
pub mod dialect;
pub mod meta;
pub mod mysql;
mod pgcopy;
pub mod postgres;
pub mod raw;
pub mod sqlite;

use std::fmt;

use async_trait::async_trait;
use ferry_core::schema::TableSchema;
use ferry_core::Value;
use tokio::sync::mpsc;

pub use raw::{RawBatch, RawBatches};

/// A row as a store reads or writes it, in the order of the requested columns.
pub type Row = Vec<Value>;

/// Batches of rows streamed from a scan; the stream ends when the sender
/// is dropped. An error ends the stream.
pub type RowBatches = mpsc::Receiver<Result<Vec<Row>, DbError>>;

/// The SQLSTATE of a write refused in a read-only transaction (PostgreSQL
/// and MariaDB).
pub(crate) const READ_ONLY_SQLSTATE: &str = "25006";

/// Appended to the message of a write refused on a reading connection.
pub(crate) const READ_ONLY_HINT: &str = " (Ferry reads in read-only sessions: SQL it runs to read, such as a \
    `--where` or `exclude` predicate or a gate's query, may not write)";

/// Rows per streamed batch.
pub const BATCH_ROWS: usize = 1024;

/// What a scan sends, decoded rows or raw ones, and when a batch is full.
pub(crate) trait Batch {
    fn is_empty(&self) -> bool;
    fn is_full(&self) -> bool;
}

impl Batch for Vec<Row> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn is_full(&self) -> bool {
        self.len() >= BATCH_ROWS
    }
}

/// A full read of a table in key order.
#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub table: String,
    /// Columns to read, in this order.
    pub columns: Vec<String>,
    /// Columns to order by (the table's key).
    pub order_by: Vec<String>,
    /// Only rows for which this SQL predicate is true.
    pub filter: Option<String>,
    /// Appends one boolean column: whether this SQL predicate is true.
    pub flag: Option<String>,
}

/// A read of the rows whose `match_columns` equal one of `values`.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub table: String,
    pub columns: Vec<String>,
    pub match_columns: Vec<String>,
    pub values: Vec<Row>,
    /// Appends one boolean column, as in [`ScanRequest::flag`].
    pub flag: Option<String>,
    /// Only rows for which this SQL predicate is true.
    pub filter: Option<String>,
    /// Columns that must equal one value, bound before the matched values
    /// (`a = $1 AND b = $2 AND c IN ($3, ...)`: an index-friendly lookup).
    pub fixed: Vec<(String, Value)>,
}

impl FetchRequest {
    /// The values bound for a chunk of `values`: the fixed ones first.
    pub fn params<'a>(&'a self, chunk: &'a [Row]) -> impl Iterator<Item = &'a Value> {
        self.fixed.iter().map(|(_, v)| v).chain(chunk.iter().flatten())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

impl Engine {
    /// The SQL dialect the engine speaks.
    pub fn dialect(self) -> dialect::Dialect {
        match self {
            Engine::Sqlite => dialect::Dialect::Sqlite,
            Engine::Postgres => dialect::Dialect::Postgres,
            Engine::Mysql => dialect::Dialect::Mysql,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MySQL",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The database cannot be reached or opened.
    Unreachable,
    /// A statement failed (bad predicate, missing table, ...).
    Query,
    /// A write broke a constraint of the target.
    Constraint,
    /// Another writer holds the target.
    Busy,
}

/// An error from a store, naming the environment and, when known, the table,
/// the row (index in the batch) and the column.
#[derive(Clone, Debug, thiserror::Error)]
pub struct DbError {
    pub kind: DbErrorKind,
    pub env: String,
    pub table: Option<String>,
    pub column: Option<String>,
    /// Index of the failing row within the batch given to the write.
    pub row: Option<usize>,
    pub message: String,
}

impl DbError {
    pub fn new(kind: DbErrorKind, env: &str, message: impl Into<String>) -> Self {
        DbError {
            kind,
            env: env.to_string(),
            table: None,
            column: None,
            row: None,
            message: message.into(),
        }
    }
    pub fn table(mut self, table: &str) -> Self {
        self.table = Some(table.to_string());
        self
    }
    pub fn row(mut self, row: usize) -> Self {
        self.row = Some(row);
        self
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "environment `{}`", self.env)?;
        if let Some(t) = &self.table {
            write!(f, ", table `{t}`")?;
        }
        if let Some(c) = &self.column {
            write!(f, ", column `{c}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One environment's database.
#[async_trait]
pub trait Store: Send + Sync {
    fn engine(&self) -> Engine;
    /// The environment's name, for messages.
    fn env(&self) -> &str;
    /// Verifies the database can be reached.
    async fn ping(&self) -> Result<(), DbError>;
    /// The table's schema, `None` when it does not exist.
    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError>;
    /// Whether Ferry's own tables exist (they are created by the first write).
    async fn has_meta(&self) -> Result<bool, DbError>;
    /// Streams a table in key order.
    async fn scan(&self, req: ScanRequest) -> Result<RowBatches, DbError>;
    /// Streams a table in key order for comparison: the first
    /// `order_by.len()` columns (the key) decoded, the others as one raw
    /// image per row, and the flag. This default encodes decoded values;
    /// the engines send their own bytes, which is much cheaper.
    async fn scan_raw(&self, req: ScanRequest) -> Result<RawBatches, DbError> {
        let k = req.order_by.len();
        let n = req.columns.len();
        let mut rows = self.scan(req).await?;
        let (tx, rx) = raw::channel(k);
        tokio::spawn(async move {
            while let Some(batch) = rows.recv().await {
                let out = batch.map(|rows| {
                    let mut b = tx.fresh();
                    for row in rows {
                        row[..k].iter().for_each(|v| b.push_key(v.clone()));
                        raw::push_values(&mut b, &row[k..n]);
                        b.end_row(raw::is_true(row.get(n)));
                    }
                    b
                });
                if !tx.send(out).await {
                    return;
                }
            }
        });
        Ok(rx)
    }
    /// Reads the rows matching the given values, in no particular order.
    async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError>;
    /// Runs a SQL query expected to return one row; gives its first column.
    async fn query_scalar(&self, sql: &str) -> Result<Option<Value>, DbError>;
    /// Opens the write transaction, creating or upgrading Ferry's tables in it.
    async fn begin(&self) -> Result<Box<dyn Txn>, DbError>;
    /// Takes this database's writer lock if it is free; `None` when another
    /// writer holds it. The lock lasts as long as the returned guard, so
    /// promote, revert and baseline into one target never interleave.
    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError>;
    /// Waits for the writer lock.
    async fn lock_writer(&self) -> Result<WriterLock, DbError>;
    /// Refreshes the planner statistics of one of Ferry's tables after it
    /// grew a lot (a baseline), so the next lookups use its index.
    async fn refresh_statistics(&self, _table: &str) -> Result<(), DbError> {
        Ok(())
    }
}

/// Holds a writer lock until dropped (a file lock, or the connection that
/// holds a database lock).
pub struct WriterLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl WriterLock {
    pub fn new(guard: impl Send + Sync + 'static) -> WriterLock {
        WriterLock(Box::new(guard))
    }
}

impl fmt::Debug for WriterLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterLock")
    }
}

/// Which connection holds a store's writer lock (PostgreSQL's backend pid,
/// MySQL's connection id), shared by the store, the lock's guard and the
/// store's transactions. A server lock lives as long as its connection,
/// which can die while the operation runs: a transaction checks, right
/// before its `COMMIT`, that the connection recorded here still holds the
/// lock, and rolls back otherwise (see [`lock_lost`]).
#[derive(Clone, Default)]
pub(crate) struct LockHolder(std::sync::Arc<std::sync::Mutex<Option<i64>>>);

impl LockHolder {
    /// The id of the connection holding the lock, if this store holds it.
    pub(crate) fn held_by(&self) -> Option<i64> {
        self.0.lock().ok().and_then(|h| *h)
    }

    /// Records that connection `id` (kept alive by `conn`) took the lock;
    /// the guard forgets it when dropped.
    pub(crate) fn guard(&self, id: i64, conn: impl Send + Sync + 'static) -> WriterLock {
        if let Ok(mut h) = self.0.lock() {
            *h = Some(id);
        }
        WriterLock::new(HeldLock {
            _conn: Box::new(conn),
            holder: self.clone(),
            id,
        })
    }
}

/// A server lock's connection, and the record that it holds the lock.
struct HeldLock {
    _conn: Box<dyn Send + Sync>,
    holder: LockHolder,
    id: i64,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Ok(mut h) = self.holder.0.lock() {
            if *h == Some(self.id) {
                *h = None;
            }
        }
    }
}

/// Added to the error of a statement whose connection closed under it.
pub(crate) const CONNECTION_CLOSED: &str = "the database connection closed under Ferry (a server restart, a network cut, or the session killed on the server), and the database rolls back the transaction it had open. Run the command again";

/// Added to the error of a `COMMIT` whose connection closed under it.
pub(crate) const CLOSED_IN_COMMIT: &str = "this happened during the COMMIT, so Ferry cannot tell whether the database committed: `ferry log` shows whether the command was recorded";

/// An I/O error that means the server closed the connection (not one that
/// could not be opened).
pub(crate) fn io_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// `e` as said of a connection that closed: kind `Unreachable`, and
/// [`CONNECTION_CLOSED`] (or, for a `COMMIT`, [`CLOSED_IN_COMMIT`]) added.
pub(crate) fn closed(mut e: DbError, in_commit: bool) -> DbError {
    e.kind = DbErrorKind::Unreachable;
    let why = if in_commit { CLOSED_IN_COMMIT } else { CONNECTION_CLOSED };
    if !e.message.contains(why) {
        e.message = format!("{}; {why}", e.message);
    }
    e
}

/// What a transaction whose writer lock was lost before its commit says.
pub const LOCK_LOST: &str = "the writer lock was lost while this operation ran (the database connection holding it closed), so another writer may be working on it now; the transaction was rolled back and nothing was written. Run the command again";

/// The error of a transaction whose writer lock was lost before its commit.
pub(crate) fn lock_lost(env: &str) -> DbError {
    DbError::new(DbErrorKind::Busy, env, LOCK_LOST)
}

/// A write transaction. Dropping it without [`Txn::commit`] rolls back.
#[async_trait]
pub trait Txn: Send {
    /// The environment's name, for messages.
    fn env(&self) -> &str;
    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError>;
    /// [`Txn::fetch`], locking the rows read until the transaction ends, so
    /// that no other client changes or deletes them between this read and
    /// the writes that follow (PostgreSQL and MySQL: `SELECT ... FOR
    /// UPDATE`; a row changed meanwhile is read as committed, after its
    /// writer is done). SQLite's write transaction keeps every other writer
    /// out already, so this default is the plain read.
    async fn fetch_for_update(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        self.fetch(req).await
    }
    /// Inserts rows (values in `columns` order). On failure `DbError::row`
    /// is the index of the failing row.
    async fn insert(&mut self, table: &str, columns: &[String], rows: &[Row]) -> Result<(), DbError>;
    /// Inserts rows, replacing the non-key columns of rows whose `key`
    /// (a primary key or unique index) exists already.
    async fn upsert(&mut self, table: &str, key: &[String], columns: &[String], rows: &[Row]) -> Result<(), DbError>;
    /// Inserts one row leaving `key` out, and returns the value the target
    /// generated for it (auto-increment, serial, identity or rowid).
    async fn insert_returning(
        &mut self,
        table: &str,
        columns: &[String],
        row: &Row,
        key: &str,
    ) -> Result<Value, DbError>;
    /// Updates rows: each item is (key values, values of `set`).
    async fn update(&mut self, table: &str, key: &[String], set: &[String], rows: &[(Row, Row)])
        -> Result<(), DbError>;
    /// Deletes rows by key.
    async fn delete(&mut self, table: &str, key: &[String], keys: &[Row]) -> Result<(), DbError>;
    /// Deletes the rows whose `fixed` columns equal their values and whose
    /// `column` is one of `values` (one index-friendly statement per chunk).
    async fn delete_in(
        &mut self,
        table: &str,
        fixed: &[(String, Value)],
        column: &str,
        values: &[Value],
    ) -> Result<(), DbError>;
    /// Called after rows with explicit values were inserted into a column
    /// the target generates, so its next generated value cannot collide.
    async fn advance_generated(&mut self, table: &str, column: &str) -> Result<(), DbError>;
    /// Commits. When the store holds its writer lock on a connection of
    /// its own (PostgreSQL, MySQL), first checks, inside this transaction,
    /// that the lock is still held, and otherwise rolls back and fails
    /// with [`DbErrorKind::Busy`]: a writer that lost its lock never
    /// commits over another one.
    async fn commit(self: Box<Self>) -> Result<(), DbError>;
}
