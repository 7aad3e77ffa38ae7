//! Ferry's storage drivers behind one [`Store`] trait.
//!
//! A store reads a table's schema, streams rows in key order, fetches rows
//! by column values, and writes inside one transaction ([`Txn`]) that also
//! holds Ferry's own `_ferry_*` tables, so data and journal commit together.
//! Stores speak [`ferry_core::Value`]s only: every engine-specific decision
//! (types, quoting, placeholders, locks) stays in its module and in
//! [`dialect`]. SQLite lives in [`sqlite`]; PostgreSQL, MySQL and directory
//! stores implement the same trait, and MongoDB ([`mongo`]) too, without SQL.
#![forbid(unsafe_code)]

mod batches;
pub mod dialect;
pub mod dir;
mod file_lock;
pub mod meta;
pub mod mongo;
pub mod mysql;
mod pgcopy;
pub mod postgres;
pub mod raw;
pub mod records;
pub mod registry;
pub mod sqlite;
mod sqlx_store;

use std::fmt;
use std::ops::Bound;

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
    row condition, an `exclude` predicate or a gate's query, may not write)";

/// Rows per streamed batch.
pub const BATCH_ROWS: usize = 1024;

/// What a scan sends, decoded rows or raw ones, and when a batch is full.
pub(crate) trait Batch {
    fn is_empty(&self) -> bool;
    fn is_full(&self) -> bool;
}

/// 64 consecutive integer keys of a table, as [`SqlStore::key_blocks`]
/// reads them: the keys `block * 64 + i` for every bit `i` set in `mask`
/// (so key `k` is bit `k & 63` of block `k >> 6`, negative keys
/// included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyBlock {
    pub block: i64,
    pub mask: u64,
}

impl KeyBlock {
    /// The block holding key `key` alone.
    pub fn of(key: i64) -> KeyBlock {
        KeyBlock {
            block: key >> 6,
            mask: 1 << (key & 63),
        }
    }

    /// The keys whose bits are set in `mask`, in order.
    pub fn keys(self) -> impl Iterator<Item = i64> {
        let KeyBlock { block, mask } = self;
        (0..64)
            .filter(move |i| mask & (1 << i) != 0)
            .map(move |i| (block << 6) | i)
    }
}

/// Batches of [`KeyBlock`]s in ascending block order, each block once;
/// the stream ends when the sender is dropped. An error ends the stream.
pub type KeyBlocks = mpsc::Receiver<Result<Vec<KeyBlock>, DbError>>;

/// Key blocks per streamed batch.
pub const BATCH_BLOCKS: usize = 4096;

impl Batch for Vec<KeyBlock> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn is_full(&self) -> bool {
        self.len() >= BATCH_BLOCKS
    }
}

impl Batch for Vec<Row> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn is_full(&self) -> bool {
        self.len() >= BATCH_ROWS
    }
}

/// Which rows a read asks a store for. Every store evaluates the
/// structural forms; [`Predicate::Native`] is text in the store's own query
/// language, which only a store with [`Capabilities::sql_predicates`]
/// evaluates (any other answers with [`DbError::native_predicate`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Predicate {
    /// Every row.
    #[default]
    All,
    /// The rows whose `columns` equal one of the `values` tuples.
    In { columns: Vec<String>, values: Vec<Row> },
    /// The rows whose `columns`, compared as one tuple in Ferry's key order
    /// (text by bytes), lie between the bounds.
    Range {
        columns: Vec<String>,
        from: Bound<Row>,
        to: Bound<Row>,
    },
    /// Text in the store's own query language, passed through unread: a
    /// table's `exclude` or a `--where` selection, written for the engine of
    /// the environment it runs in (SQL for SQLite, PostgreSQL and MySQL).
    Native(String),
}

impl Predicate {
    /// A predicate written in the store's own language.
    pub fn native(text: impl Into<String>) -> Predicate {
        Predicate::Native(text.into())
    }

    /// Whether this is [`Predicate::All`].
    pub fn is_all(&self) -> bool {
        matches!(self, Predicate::All)
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
    /// Only the rows this predicate matches (`None`: every row, as
    /// `Some(Predicate::All)`; an option so that the many reads of every
    /// row say `filter: None`).
    pub filter: Option<Predicate>,
    /// Appends one boolean column: whether this predicate matches the row.
    pub flag: Option<Predicate>,
    /// Streams in reverse key order (the newest first, for ids that sort by
    /// time: paged listings of Ferry's own records).
    pub descending: bool,
    /// At most this many rows (a page).
    pub limit: Option<usize>,
}

/// A read of the rows whose `match_columns` equal one of `values`.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub table: String,
    pub columns: Vec<String>,
    pub match_columns: Vec<String>,
    pub values: Vec<Row>,
    /// Appends one boolean column, as in [`ScanRequest::flag`].
    pub flag: Option<Predicate>,
    /// Only the rows this predicate matches, as in [`ScanRequest::filter`].
    pub filter: Option<Predicate>,
    /// Columns that must equal one value, bound before the matched values
    /// (`a = $1 AND b = $2 AND c IN ($3, ...)`: an index-friendly lookup).
    pub fixed: Vec<(String, Value)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
    /// A directory of JSON files (`dir:`).
    Dir,
    /// A MongoDB database (`mongodb://`, `mongodb+srv://`).
    Mongo,
}

/// What a store can do beyond what every [`Store`] does (schemas, ordered
/// scans, fetches by values, writes, a writer lock), so the engine asks
/// instead of assuming SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Writes happen inside one transaction that commits as a whole and
    /// rolls back when dropped.
    pub transactions: bool,
    /// [`Store::scan_raw`] sends the store's own bytes per row, cheaper
    /// than the default that encodes decoded values.
    pub raw_scans: bool,
    /// The store generates key values: [`Txn::insert_returning`] and
    /// [`Txn::advance_generated`] do something.
    pub generated_ids: bool,
    /// The store evaluates [`Predicate::Native`] as SQL, and
    /// [`Store::as_sql`] gives its [`SqlStore`].
    pub sql_predicates: bool,
    /// The store evaluates [`Predicate::Native`] in its own language: SQL
    /// for the SQL stores, a filter document for MongoDB. A store without
    /// one (a `dir:` folder) holds no excluded rows, and the other side of
    /// a promotion evaluates a table's `exclude`.
    pub native_predicates: bool,
    /// The store makes per-branch clones of its database beside it
    /// ([`Store::create_branch_clone`]).
    pub branch_clones: bool,
    /// Rows are documents with open fields (MongoDB): a NULL cell is a
    /// field the document lacks, which views show as absent, not NULL.
    pub open_fields: bool,
    /// How many reads of rows by key are worth having in flight at once:
    /// two where the reads share this machine's CPU (SQLite, in the
    /// process, on the two cores it is measured on), more where each read
    /// waits on the disk (MariaDB's InnoDB reads the pages its buffer pool
    /// lacks with `O_DIRECT`, one at a time per statement).
    pub reads_at_once: usize,
}

impl Capabilities {
    /// What the SQL stores of this crate (SQLite, PostgreSQL, MySQL) do.
    pub const SQL: Capabilities = Capabilities {
        transactions: true,
        raw_scans: true,
        generated_ids: true,
        sql_predicates: true,
        native_predicates: true,
        branch_clones: true,
        open_fields: false,
        reads_at_once: 2,
    };
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MySQL",
            Engine::Dir => "directory",
            Engine::Mongo => "MongoDB",
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
    /// One of Ferry's own records does not hold what Ferry writes (changed
    /// outside Ferry); the message names the environment, the table, the
    /// record and the column.
    Damaged,
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

    /// The answer of a store that cannot evaluate a [`Predicate::Native`]
    /// (it has no query language of its own).
    pub fn native_predicate(env: &str, table: &str) -> Self {
        DbError::new(
            DbErrorKind::Query,
            env,
            "this store evaluates no predicate written as query text (a table's `exclude`, a selection's condition); select its rows by key instead",
        )
        .table(table)
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
    /// What this store can do beyond the calls every store answers.
    fn capabilities(&self) -> Capabilities;
    /// The SQL-only calls, when the store speaks SQL.
    fn as_sql(&self) -> Option<&dyn SqlStore> {
        None
    }
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
        let (k, n) = (req.order_by.len(), req.columns.len());
        Ok(raw::from_rows(self.scan(req).await?, k, n))
    }
    /// Reads the rows matching the given values, in no particular order.
    async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError>;
    /// Opens the write transaction, creating or upgrading Ferry's tables in it.
    async fn begin(&self) -> Result<Box<dyn Txn>, DbError>;
    /// Takes this database's writer lock if it is free; `None` when another
    /// writer holds it. The lock lasts as long as the returned guard, so
    /// promote, revert and baseline into one target never interleave.
    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError>;
    /// Waits for the writer lock.
    async fn lock_writer(&self) -> Result<WriterLock, DbError>;
    /// Ferry's own records in this store (promotions, journal, reviews,
    /// audit), paged. The SQL stores answer with
    /// [`records::SqlRecords`] over their `_ferry_*` tables.
    fn records(&self) -> Box<dyn records::Records + '_>;
    /// Whether `predicate`, text in the store's own query language (a
    /// table's `exclude`, a `--where`), runs against `table`: the store's
    /// own error when it does not. A SQL store runs it as SQL (see
    /// [`SqlStore::check_predicate`]); a store without a query language
    /// answers [`DbError::native_predicate`]; MongoDB reads it as a filter
    /// document.
    async fn check_native(&self, table: &str, predicate: &str) -> Result<(), DbError> {
        match self.as_sql() {
            Some(s) => s.check_predicate(table, predicate).await,
            None => Err(DbError::native_predicate(self.env(), table)),
        }
    }
    /// How many rows of `table` a predicate in the store's own language
    /// matches (a `mongo` gate check). Only MongoDB counts filter
    /// documents; every other store answers that it does not.
    async fn count_native(&self, table: &str, _predicate: &str) -> Result<u64, DbError> {
        Err(DbError::new(
            DbErrorKind::Query,
            self.env(),
            format!(
                "a `mongo` check runs on a MongoDB environment, and this one is {}: use a `sql` check here",
                self.engine()
            ),
        )
        .table(table))
    }
    /// Creates the per-branch clone `name` of this database beside it
    /// (where [`registry::clone_url`] says it lives), holding `tables`
    /// (parents first) with their rows: a SQL store's
    /// [`SqlStore::create_clone`], or the store's own (MongoDB). Refuses
    /// when the clone exists already; a clone that fails half-way is
    /// removed.
    async fn create_branch_clone(&self, name: &str, tables: &[String]) -> Result<(), DbError> {
        match self.as_sql() {
            Some(s) => s.create_clone(name, tables).await,
            None => Err(DbError::new(
                DbErrorKind::Query,
                self.env(),
                format!("a {} environment has no per-branch clones", self.engine()),
            )),
        }
    }
    /// Drops the per-branch clone `name` of this database (see
    /// [`Store::create_branch_clone`]). A clone already gone is not an
    /// error.
    async fn drop_branch_clone(&self, name: &str) -> Result<(), DbError> {
        match self.as_sql() {
            Some(s) => s.drop_clone(name).await,
            None => Err(DbError::new(
                DbErrorKind::Query,
                self.env(),
                format!("a {} environment has no per-branch clones", self.engine()),
            )),
        }
    }
    /// Refreshes the planner statistics of one of Ferry's tables after it
    /// grew a lot (a baseline), so the next lookups use its index.
    async fn refresh_statistics(&self, _table: &str) -> Result<(), DbError> {
        Ok(())
    }
}

/// What a store says of a table's `changed` column ([`SqlStore::changed_column`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedColumn {
    /// Whether an index starts with the column.
    pub indexed: bool,
    /// Whether some row holds NULL in it (not read, `false`, when the
    /// column is not indexed: that would scan the table).
    pub has_nulls: bool,
    /// Its largest value (`None`: the table is empty, or the column is not
    /// indexed and it was not read).
    pub max: Option<Value>,
}

/// The calls only a store that speaks SQL answers: a `sql` gate's query,
/// and whether a predicate written in SQL (a table's `exclude`, a
/// selection's condition) runs on a table. Reached through
/// [`Store::as_sql`], or the functions [`query_scalar`] and
/// [`check_predicate`], which answer for a store without SQL too.
#[async_trait]
pub trait SqlStore: Store {
    /// The SQL the store speaks.
    fn dialect(&self) -> dialect::Dialect;
    /// Runs a SQL query expected to return one row; gives its first column.
    /// It runs in a read-only session.
    async fn query_scalar(&self, sql: &str) -> Result<Option<Value>, DbError>;
    /// What a changed-only plan needs to know of `column` of `table`
    /// (docs/config.md, `changed`): whether an index starts with it,
    /// whether a row holds NULL in it, and its largest value.
    async fn changed_column(&self, table: &str, column: &str) -> Result<ChangedColumn, DbError> {
        let d = self.dialect();
        let indexed = self.query_scalar(&d.leading_index_probe(table, column)).await?;
        let indexed = matches!(indexed, Some(Value::Bool(true))) || matches!(indexed, Some(Value::Int(n)) if n > 0);
        if !indexed {
            // Without an index both reads below scan the table.
            return Ok(ChangedColumn {
                indexed,
                has_nulls: false,
                max: None,
            });
        }
        let has_nulls = self.query_scalar(&d.null_probe(table, column)).await?.is_some();
        let max = match self.query_scalar(&d.max_of(table, column)).await? {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        };
        Ok(ChangedColumn {
            indexed,
            has_nulls,
            max,
        })
    }
    /// Whether `column` of `table` holds nothing but integers of at most
    /// 64 bits, so that [`SqlStore::key_blocks`] reads it: an integer
    /// column (an unsigned `BIGINT` of MySQL, read as a decimal, is not
    /// one). SQLite, whose columns hold any type, answers for the rowid
    /// only.
    async fn integer_key(&self, table: &str, column: &str) -> Result<bool, DbError> {
        let schema = self.table_schema(table).await?;
        let col = schema.as_ref().and_then(|s| s.column(column));
        Ok(col.is_some_and(|c| c.ty.logical == ferry_core::LogicalType::Int))
    }
    /// The keys of `table`, whose key is the one integer column `column`
    /// ([`SqlStore::integer_key`]), as [`KeyBlock`]s: the database
    /// aggregates them (one row per 64 keys instead of one per key), which
    /// is what a changed-only plan compares to find the keys on one side
    /// only.
    async fn key_blocks(&self, table: &str, column: &str) -> Result<KeyBlocks, DbError>;
    /// Whether `predicate` runs against `table`: the database's own error
    /// when it does not.
    async fn check_predicate(&self, table: &str, predicate: &str) -> Result<(), DbError> {
        let probe = self.dialect().predicate_probe(table, predicate);
        self.query_scalar(&probe).await.map(|_| ())
    }
    /// Creates the per-branch clone `name` of this database beside it
    /// (where [`registry::clone_url`] says it lives), holding `tables`
    /// (parents first) with their columns, types, keys, indexes, the
    /// foreign keys among them, and their rows. Refuses when the clone
    /// exists already; a clone that fails half-way is removed.
    async fn create_clone(&self, name: &str, _tables: &[String]) -> Result<(), DbError> {
        Err(DbError::new(
            DbErrorKind::Query,
            self.env(),
            format!(
                "cannot clone environment `{}` into `{name}`: per-branch environments are not available on {} yet",
                self.env(),
                self.engine()
            ),
        ))
    }
    /// Drops the per-branch clone `name` of this database (the whole
    /// database or file). A clone already gone is not an error.
    async fn drop_clone(&self, name: &str) -> Result<(), DbError> {
        Err(DbError::new(
            DbErrorKind::Query,
            self.env(),
            format!(
                "cannot drop `{name}`: per-branch environments are not available on {} yet",
                self.engine()
            ),
        ))
    }
}

/// [`SqlStore::query_scalar`] on any store: a store without SQL answers
/// that it runs no SQL query.
pub async fn query_scalar(store: &dyn Store, sql: &str) -> Result<Option<Value>, DbError> {
    match store.as_sql() {
        Some(s) => s.query_scalar(sql).await,
        None => Err(DbError::new(
            DbErrorKind::Query,
            store.env(),
            format!("this store ({}) runs no SQL query", store.engine()),
        )),
    }
}

/// Whether a predicate in the store's own language runs on `table`
/// ([`Store::check_native`]): SQL on a SQL store, a filter document on
/// MongoDB; any other store answers with [`DbError::native_predicate`].
pub async fn check_predicate(store: &dyn Store, table: &str, predicate: &str) -> Result<(), DbError> {
    store.check_native(table, predicate).await
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
pub(crate) const CLOSED_IN_COMMIT: &str = "this happened during the COMMIT, so Ferry cannot tell whether the database committed: the environment's journal shows whether the command was recorded";

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
/// A clone into the server database `db` failed (`why`) and the half-made
/// database was dropped: one message for every server engine.
pub(crate) fn clone_failed(env: &str, db: &str, why: DbError) -> DbError {
    DbError::new(
        DbErrorKind::Query,
        env,
        format!(
            "cannot clone environment `{env}` into the database `{db}`: {}; the half-made database was dropped",
            why.message
        ),
    )
}

pub(crate) fn lock_lost(env: &str) -> DbError {
    DbError::new(DbErrorKind::Busy, env, LOCK_LOST)
}

/// The reads a store and a write transaction share: a store reads what is
/// committed; a transaction also sees its own writes, and
/// [`Read::fetch_for_update`] keeps the rows it read from other writers
/// until it ends. `&Store` and `&mut Txn` are both a `Read`, so one
/// function serves both (the engine's full-row fetch).
#[async_trait]
pub trait Read: Send {
    /// The environment's name, for messages.
    fn env(&self) -> &str;
    /// Reads the rows matching the given values, in no particular order.
    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError>;
    /// [`Read::fetch`], locking the rows read until the transaction ends,
    /// so that no other client changes or deletes them between this read
    /// and the writes that follow (PostgreSQL and MySQL: `SELECT ... FOR
    /// UPDATE`; a row changed meanwhile is read as committed, after its
    /// writer is done). SQLite's write transaction keeps every other writer
    /// out already, and outside a transaction there is nothing to lock: this
    /// default is the plain read.
    async fn fetch_for_update(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        self.fetch(req).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> Read for &S {
    fn env(&self) -> &str {
        Store::env(*self)
    }
    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        Store::fetch(*self, req).await
    }
}

#[async_trait]
impl<R: Read + ?Sized> Read for &mut R {
    fn env(&self) -> &str {
        (**self).env()
    }
    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        (**self).fetch(req).await
    }
    async fn fetch_for_update(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        (**self).fetch_for_update(req).await
    }
}

/// A write transaction. Dropping it without [`Txn::commit`] rolls back.
#[async_trait]
pub trait Txn: Read {
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
    /// Runs one SQL statement of Ferry's own making (the DDL of
    /// [`dialect::Dialect::delete_trace`]). A store without SQL refuses.
    /// MySQL commits the transaction's earlier writes before DDL.
    async fn execute_sql(&mut self, sql: &str) -> Result<(), DbError> {
        let _ = sql;
        let env = self.env().to_string();
        Err(DbError::new(
            DbErrorKind::Query,
            &env,
            format!("environment `{env}` runs no SQL statements"),
        ))
    }
    /// Commits. When the store holds its writer lock on a connection of
    /// its own (PostgreSQL, MySQL), first checks, inside this transaction,
    /// that the lock is still held, and otherwise rolls back and fails
    /// with [`DbErrorKind::Busy`]: a writer that lost its lock never
    /// commits over another one.
    async fn commit(self: Box<Self>) -> Result<(), DbError>;
}
