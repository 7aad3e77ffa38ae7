//! MongoDB as a store (`mongodb://` and `mongodb+srv://` URLs; the
//! database is the URL's path), through the official driver.
//!
//! Collections are tables and documents rows: a collection's schema is the
//! union of the top-level fields of its documents (computed by the server,
//! in the order first seen, `_id` first), every field typed as a BSON value
//! in Ferry's Extended JSON form ([`values`]), and open
//! (`TableSchema::open_fields`): a field one side has not seen is absent
//! there. Scans come in Ferry's key order, which for document fields is
//! MongoDB's BSON order: streamed as the server sorts them, a batch at a
//! time, unless a cheap check finds values the server orders otherwise
//! ([`MongoStore::server_sort`]: embedded-document `_id`s, a collation),
//! which are read and ordered in memory; fetches push their values down as a filter and check them
//! exactly. Inserts and deletes by a one-field key go a batch at a time. A [`Predicate::Native`](crate::Predicate::Native) is a MongoDB filter document written as
//! Extended JSON (a table's `exclude`, a `--where`).
//!
//! Writes run in one multi-document transaction (a session), Ferry's own
//! records included (the `_ferry_*` collections, one document per record
//! row, read by [`SqlRecords`] like a `dir:` folder's files): a server that
//! is not a replica set has no transactions, and is refused for writes
//! (reads, diff and plan still work). The writer lock is a document in
//! `_ferry_lock` with an owner and an expiry that its holder renews while it
//! lives, so a crashed writer holds it at most [`LOCK_TTL`].
//!
//! A document's top-level field order is the carried column
//! [`FIELD_ORDER`](ferry_core::schema::FIELD_ORDER) of a user collection (`TableSchema::carried`, not one
//! of its fields): read as the document's field names, never stored; a
//! new document is written in the order it carries, and an update is a
//! `$set`/`$unset` when that gives the order carried, else the whole
//! document (read in the transaction, changed, ordered) as a replacement.
//! Updates and upserts go as `update` commands of up to [`BATCH_ROWS`]
//! statements, the failing statement's index naming its row.

mod clone;
mod lock;
mod raw_scan;
mod read;
mod spill;
mod survey;
mod txn;
pub mod values;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::schema::TableSchema;
use ferry_core::value::{ColumnType, LogicalType};
use ferry_core::Value;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};
use tokio::sync::mpsc;

use crate::records::{Records, SqlRecords};
use crate::{
    meta, Capabilities, DbError, DbErrorKind, Engine, FetchRequest, Row, RowBatches, ScanRequest, Store, Txn,
    WriterLock, BATCH_ROWS,
};
use lock::take_lock;
use read::{key_order, pick, positions};
use survey::Surveys;
use txn::MongoTxn;

/// How long a writer lock lasts without being renewed (its holder renews
/// it every third of that while it lives).
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// The most values one `$in` lists. SecantusDB's `$in` costs more per
/// value the longer its list (2,048 `_id`s of `_ferry_sync` looked up in
/// lists of 512: 1.19 s; of 64: 0.22 s); MongoDB answers either alike,
/// one index lookup per value, and the extra round trips are small.
const IN_LIST: usize = 64;
/// How many lists of a lookup outside a transaction are asked at once.
const LISTS_IN_FLIGHT: usize = 4;
/// The collection of the writer lock's document.
const LOCK_COLLECTION: &str = "_ferry_lock";
/// The collection whose document says Ferry's records exist.
const FORMAT_COLLECTION: &str = meta::SCHEMA;

/// `mongodb://USER@HOST/DB` or `mongodb+srv://USER@HOST/DB`.
pub(crate) const BACKEND: crate::registry::Backend = crate::registry::Backend {
    engine: Engine::Mongo,
    url: ferry_core::config::UrlKind {
        prefixes: &["mongodb://", "mongodb+srv://"],
        example: "mongodb://USER@HOST/DB",
    },
    open: |o| Box::pin(async move { Ok(Arc::new(MongoStore::open(o.env, o.url).await?) as Arc<dyn Store>) }),
};

/// A MongoDB database.
#[derive(Clone)]
pub struct MongoStore {
    env: String,
    client: Client,
    db: Database,
    /// The server is a replica set member (or a mongos): it has
    /// multi-document transactions.
    transactions: bool,
    /// This store's writer identity in the lock document.
    owner: String,
    /// Whether this store holds the writer lock now (its transactions then
    /// check, before committing, that it still does).
    held: Arc<std::sync::atomic::AtomicBool>,
    /// The last [`Survey`](survey::Survey) of each user collection, with when it was taken.
    surveys: Arc<std::sync::Mutex<Surveys>>,
    /// The documents of each collection's last survey, for the scan that
    /// follows it ([`spill`]).
    spills: Arc<std::sync::Mutex<spill::Spills>>,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("env", &self.env)
            .field("db", &self.db.name())
            .finish()
    }
}

/// The type of every document field.
pub fn field_type() -> ColumnType {
    ColumnType {
        extended_json: true,
        ..ColumnType::new(LogicalType::Json)
    }
}

fn err(env: &str, kind: DbErrorKind, e: impl std::fmt::Display) -> DbError {
    DbError::new(kind, env, e.to_string())
}

/// A driver error as a store error: a duplicate key is a constraint, a
/// failed connection or server selection makes the server unreachable.
fn driver(env: &str, table: &str, e: mongodb::error::Error) -> DbError {
    use mongodb::error::{ErrorKind, WriteFailure};
    let kind = match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 => DbErrorKind::Constraint,
        ErrorKind::InsertMany(m) if m.write_errors.iter().flatten().any(|w| w.code == 11000) => DbErrorKind::Constraint,
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            DbErrorKind::Unreachable
        }
        _ if e.contains_label("TransientTransactionError") => DbErrorKind::Busy,
        _ => DbErrorKind::Query,
    };
    let mut out = DbError::new(kind, env, e.to_string());
    if !table.is_empty() {
        out = out.table(table);
    }
    out
}

impl MongoStore {
    /// Connects (the driver connects lazily; `hello` is asked at once, so
    /// an unreachable server fails here) and learns whether the server has
    /// transactions.
    pub async fn open(env: &str, url: &str) -> Result<MongoStore, DbError> {
        let unreachable = |m: String| DbError::new(DbErrorKind::Unreachable, env, m);
        let mut options = ClientOptions::parse(url)
            .await
            .map_err(|e| unreachable(format!("cannot read the MongoDB URL: {e}")))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(10));
        }
        if options.connect_timeout.is_none() {
            options.connect_timeout = Some(Duration::from_secs(10));
        }
        let name = options.default_database.clone().ok_or_else(|| {
            unreachable("the MongoDB URL names no database: write it as the URL's path (mongodb://HOST/DB)".into())
        })?;
        let client = Client::with_options(options).map_err(|e| unreachable(e.to_string()))?;
        let db = client.database(&name);
        let hello = db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| unreachable(format!("cannot reach the MongoDB server: {e}")))?;
        let transactions = hello.contains_key("setName") || hello.get_str("msg").is_ok_and(|m| m == "isdbgrid");
        Ok(MongoStore {
            env: env.to_string(),
            client,
            db,
            transactions,
            owner: format!("{}-{}", std::process::id(), ulid::Ulid::new()),
            held: Arc::default(),
            surveys: Arc::default(),
            spills: Arc::default(),
        })
    }

    fn coll(&self, table: &str) -> Collection<Document> {
        self.db.collection(table)
    }

    async fn exists(&self, table: &str) -> Result<bool, DbError> {
        let names = self
            .db
            .list_collection_names()
            .filter(doc! { "name": table })
            .await
            .map_err(|e| driver(&self.env, table, e))?;
        Ok(!names.is_empty())
    }
}

fn query_error(env: &str, table: &str, m: String) -> DbError {
    DbError::new(DbErrorKind::Query, env, m).table(table)
}

/// A column's type: its schema's, or a field's for a field not seen yet.
fn column_type(schema: &TableSchema, column: &str) -> ColumnType {
    schema
        .column(column)
        .map(|c| c.ty.clone())
        .or_else(|| schema.open_fields.clone())
        .unwrap_or_else(field_type)
}

fn value_error(env: &str, table: &str, column: &str, m: String) -> DbError {
    let mut e = DbError::new(
        DbErrorKind::Query,
        env,
        format!("the value cannot be written as BSON: {m}"),
    )
    .table(table);
    e.column = Some(column.to_string());
    e
}

/// A filter document written as Extended JSON text.
pub fn native_filter(text: &str) -> Result<Document, String> {
    let j: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        format!("`{text}` is not a MongoDB filter document written as Extended JSON ({e}); write e.g. {{\"team\": {{\"$in\": [\"qa\", \"dev\"]}}}}")
    })?;
    if !j.is_object() {
        return Err(format!("`{text}` is not a filter document (a JSON object)"));
    }
    match values::from_json(&j)? {
        Bson::Document(d) => Ok(d),
        other => Err(format!("`{text}` reads as {other}, not a filter document")),
    }
}

#[async_trait]
impl Store for MongoStore {
    fn engine(&self) -> Engine {
        Engine::Mongo
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactions: self.transactions,
            // Each field as the bytes of its BSON element (`raw_scan.rs`).
            raw_scans: true,
            generated_ids: true,
            sql_predicates: false,
            native_predicates: true,
            branch_clones: true,
            open_fields: true,
            reads_at_once: 2,
        }
    }

    fn env(&self) -> &str {
        &self.env
    }

    async fn ping(&self) -> Result<(), DbError> {
        self.db.run_command(doc! { "ping": 1 }).await.map(|_| ()).map_err(|e| {
            err(
                &self.env,
                DbErrorKind::Unreachable,
                format!("cannot reach the MongoDB server: {e}"),
            )
        })
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        if let Some(s) = meta::record_schema(table) {
            return Ok(self.has_meta().await?.then_some(s));
        }
        self.documents_schema(table).await
    }

    async fn has_meta(&self) -> Result<bool, DbError> {
        let found = self
            .coll(FORMAT_COLLECTION)
            .find_one(doc! { "_id": "format" })
            .await
            .map_err(|e| driver(&self.env, FORMAT_COLLECTION, e))?;
        Ok(found.is_some())
    }

    async fn scan_raw(&self, req: ScanRequest) -> Result<crate::RawBatches, DbError> {
        if let Some(rx) = self.raw_scan(&req).await? {
            return Ok(rx);
        }
        let (k, n) = (req.order_by.len(), req.columns.len());
        Ok(crate::raw::from_rows(self.scan(req).await?, k, n))
    }

    async fn scan(&self, req: ScanRequest) -> Result<RowBatches, DbError> {
        let schema = self.scan_schema(&req).await?;
        let at = positions(&self.env, &schema, &req.columns)?;
        let order = positions(&self.env, &schema, &req.order_by)?;
        if let Some(sort) = self.server_sort(&req.table, &req.order_by).await? {
            return self.stream_scan(schema, req, (at, order), sort).await;
        }
        let mut rows = self
            .select(None, &schema, Document::new(), req.filter.as_ref(), req.flag.as_ref())
            .await?;
        let cmp = key_order(&schema);
        rows.sort_by(|(a, _), (b, _)| cmp(&pick(a, &order), &pick(b, &order)));
        if req.descending {
            rows.reverse();
        }
        if let Some(n) = req.limit {
            rows.truncate(n);
        }
        let batches: Vec<Vec<Row>> = rows
            .chunks(BATCH_ROWS)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(r, f)| {
                        let mut out = pick(r, &at);
                        if req.flag.is_some() {
                            out.push(Value::Bool(*f));
                        }
                        out
                    })
                    .collect()
            })
            .collect();
        let (tx, rx) = mpsc::channel(batches.len().max(1));
        for b in batches {
            tx.try_send(Ok(b)).map_err(|e| {
                DbError::new(DbErrorKind::Query, &self.env, format!("cannot queue a batch: {e}")).table(&req.table)
            })?;
        }
        Ok(rx)
    }

    async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        self.fetch_in(None, &req).await
    }

    async fn begin(&self) -> Result<Box<dyn Txn>, DbError> {
        if !self.transactions {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                "this MongoDB server is standalone, without multi-document transactions, so Ferry cannot write its data, journal and sync base together: run it as a replica set (a one-member replica set is enough: `mongod --replSet rs0`, then `rs.initiate()`); reads, diff and plan work as they are",
            ));
        }
        self.spills()?.clear();
        // Ferry's collections exist before the transaction (creating one
        // inside it is not allowed on every server version).
        for name in [
            meta::SCHEMA,
            meta::PROMOTIONS,
            meta::JOURNAL,
            meta::SYNC,
            meta::AUDIT,
            meta::REVIEWS,
            meta::BRANCHES,
        ] {
            if !self.exists(name).await? {
                if let Err(e) = self.db.create_collection(name).await {
                    // Created meanwhile by another process: fine.
                    if !self.exists(name).await? {
                        return Err(driver(&self.env, name, e));
                    }
                }
            }
        }
        // A journal's rows are read by promotion (a revert, `ferry log`):
        // without an index that reads the whole collection. Creating an
        // index that exists already is a no-op on the server.
        self.coll(meta::JOURNAL)
            .create_index(
                mongodb::IndexModel::builder()
                    .keys(doc! { "promotion_id": 1, "seq": 1 })
                    .build(),
            )
            .await
            .map_err(|e| driver(&self.env, meta::JOURNAL, e))?;
        let mut session = self
            .client
            .start_session()
            .await
            .map_err(|e| driver(&self.env, "", e))?;
        session
            .start_transaction()
            .await
            .map_err(|e| driver(&self.env, "", e))?;
        Ok(Box::new(MongoTxn {
            store: self.clone(),
            session,
            schemas: Default::default(),
        }))
    }

    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError> {
        if take_lock(&self.db, &self.owner)
            .await
            .map_err(|e| driver(&self.env, LOCK_COLLECTION, e))?
        {
            // What is read under the lock is read from the server, and a
            // survey taken under it serves the lock's later schema reads.
            self.spills()?.clear();
            self.surveys()?.clear();
            Ok(Some(self.lock_guard()))
        } else {
            Ok(None)
        }
    }

    async fn lock_writer(&self) -> Result<WriterLock, DbError> {
        loop {
            if let Some(l) = self.try_lock_writer().await? {
                return Ok(l);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn check_native(&self, table: &str, predicate: &str) -> Result<(), DbError> {
        let filter = self.native(table, predicate)?;
        self.coll(table)
            .count_documents(filter)
            .limit(1)
            .await
            .map(|_| ())
            .map_err(|e| driver(&self.env, table, e))
    }

    async fn count_native(&self, table: &str, predicate: &str) -> Result<u64, DbError> {
        let filter = self.native(table, predicate)?;
        self.coll(table)
            .count_documents(filter)
            .await
            .map_err(|e| driver(&self.env, table, e))
    }

    async fn create_branch_clone(&self, name: &str, tables: &[String]) -> Result<(), DbError> {
        self.create_clone(name, tables).await
    }

    async fn drop_branch_clone(&self, name: &str) -> Result<(), DbError> {
        self.drop_clone(name).await
    }

    fn records(&self) -> Box<dyn Records + '_> {
        // Ferry's records are the same rows as the `_ferry_*` tables of a
        // SQL store, one document each: one implementation reads both.
        Box::new(SqlRecords(self))
    }
}
