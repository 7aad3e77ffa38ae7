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
//! exactly. Inserts and deletes by a one-field key go a batch at a time. A [`Predicate::Native`] is a MongoDB filter document written as
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
//! [`FIELD_ORDER`] of a user collection (`TableSchema::carried`, not one
//! of its fields): read as the document's field names, never stored; a
//! new document is written in the order it carries, and an update is a
//! `$set`/`$unset` when that gives the order carried, else the whole
//! document (read in the transaction, changed, ordered) as a replacement.
//! Updates and upserts go as `update` commands of up to [`BATCH_ROWS`]
//! statements, the failing statement's index naming its row.

mod clone;
mod raw_scan;
mod spill;
pub mod values;

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::schema::{ColumnSchema, TableSchema, FIELD_ORDER};
use ferry_core::value::{bson_key_cmp, key_cmp, ColumnType, LogicalType};
use ferry_core::Value;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, ClientSession, Collection, Database};
use tokio::sync::mpsc;

use crate::records::{Records, SqlRecords};
use crate::{
    meta, Capabilities, DbError, DbErrorKind, Engine, FetchRequest, Predicate, Read, Row, RowBatches, ScanRequest,
    Store, Txn, WriterLock, BATCH_ROWS,
};

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
    /// The last [`Survey`] of each user collection, with when it was taken.
    surveys: Arc<std::sync::Mutex<Surveys>>,
    /// The documents of each collection's last survey, for the scan that
    /// follows it ([`spill`]).
    spills: Arc<std::sync::Mutex<spill::Spills>>,
}

/// What one pass over a collection's documents found: its field names in
/// the order first seen (`_id` order), and the fields the server sorts
/// otherwise than Ferry ([`MongoStore::server_sort`]): `_id` when some
/// `_id` is an embedded document; another field when some document lacks
/// it or holds `null`, an embedded document or an array in it.
#[derive(Clone, Debug, Default)]
struct Survey {
    names: Vec<String>,
    odd: HashSet<String>,
}

/// Collection -> its last [`Survey`], with when it was taken.
type Surveys = std::collections::HashMap<String, (std::time::Instant, Survey)>;

/// How long a scan trusts the survey its plan's schema read took, instead
/// of asking the server again: a scan that meets a key out of the server's
/// order fails anyway, so a document changed meanwhile cannot slip through.
const SURVEY_TTL: Duration = Duration::from_secs(60);

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

    /// The schema of a user collection: its fields in the order first
    /// seen over every document, `_id` first, and the carried field order
    /// ([`FIELD_ORDER`]; a document with a field of that name is refused).
    async fn documents_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        if !self.exists(table).await? {
            return Ok(None);
        }
        // Under the writer lock, the survey taken under it (the cache is
        // emptied when the lock is taken and when a transaction commits):
        // a promotion reads each collection's schema once, not again to
        // check and to write the plan.
        if self.held.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some((_, survey)) = self.surveys()?.get(table) {
                return Ok(Some(documents_schema(table, survey.names.clone())));
            }
        }
        // One pass over the documents in `_id` order, as raw BSON: each
        // field name is kept once, the documents are not. (A server-side
        // `$group` over `$objectToArray` reads every document too, and was
        // several times slower than this on SecantusDB.)
        let survey = self.survey(table).await?;
        if survey.names.iter().any(|k| k == FIELD_ORDER) {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!(
                    "a document has a field `{FIELD_ORDER}`, the name Ferry uses for a document's field order: rename the field in every environment (e.g. db.{table}.updateMany({{}}, {{$rename: {{\"{FIELD_ORDER}\": \"field_order\"}}}}))"
                ),
            )
            .table(table));
        }
        let names = survey.names.clone();
        self.surveys()?
            .insert(table.to_string(), (std::time::Instant::now(), survey));
        Ok(Some(documents_schema(table, names)))
    }

    /// The cache of [`Survey`]s, locked.
    fn surveys(&self) -> Result<std::sync::MutexGuard<'_, Surveys>, DbError> {
        self.locked(&self.surveys, "survey cache")
    }

    /// The surveys' spilled documents, locked.
    fn spills(&self) -> Result<std::sync::MutexGuard<'_, spill::Spills>, DbError> {
        self.locked(&self.spills, "surveys' spills")
    }

    fn locked<'a, T>(&self, m: &'a std::sync::Mutex<T>, what: &str) -> Result<std::sync::MutexGuard<'a, T>, DbError> {
        m.lock().map_err(|_| {
            DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!("a scan panicked while holding the {what}"),
            )
        })
    }

    /// The spill of `table`'s last survey, when it may serve a scan now
    /// (taken out: it serves one).
    fn take_spill(&self, table: &str) -> Result<Option<spill::SpillReader>, DbError> {
        Ok(self
            .spills()?
            .remove(table)
            .filter(|s| s.fresh())
            .map(spill::Spill::reader))
    }

    /// The documents of an ordered scan of `table`: those `query` matches,
    /// sorted by `sort` (descending when asked). The survey's kept documents
    /// when the scan reads the whole collection in `_id` order, ascending
    /// ([`spill`]); else a `find`, hinting the `_id` index for the whole
    /// collection in `_id` order.
    async fn ordered_documents(
        &self,
        table: &str,
        query: Document,
        sort: Document,
        descending: bool,
    ) -> Result<RawDocs, DbError> {
        let by_id = query.is_empty() && sort == doc! { "_id": 1 };
        if by_id && !descending {
            if let Some(r) = self.take_spill(table)? {
                return Ok(RawDocs::Spill(r, Vec::new()));
            }
        }
        let sort = if descending {
            sort.iter().map(|(k, _)| (k.clone(), Bson::Int32(-1))).collect()
        } else {
            sort
        };
        let coll = self.db.collection::<mongodb::bson::RawDocumentBuf>(table);
        // No `batch_size`: the server's batches (up to 16 MiB each) take
        // fewer round trips than batches of `BATCH_ROWS` documents, and
        // each holds at most 16 MiB, whatever the collection's size.
        let find = coll.find(query).sort(sort).allow_disk_use(true);
        let find = if by_id { find.hint(id_index()) } else { find };
        Ok(RawDocs::Server(Box::new(
            find.await.map_err(|e| driver(&self.env, table, e))?,
        )))
    }

    /// Reads every document of `table` once, in `_id` order, for its
    /// [`Survey`], and keeps the documents for the scan that follows
    /// ([`spill`]).
    async fn survey(&self, table: &str) -> Result<Survey, DbError> {
        use mongodb::bson::spec::ElementType;
        let fail = |e| driver(&self.env, table, e);
        // The server's batches, as in `ordered_documents`.
        let mut cursor = self
            .db
            .collection::<mongodb::bson::RawDocumentBuf>(table)
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .hint(id_index())
            .allow_disk_use(true)
            .await
            .map_err(fail)?;
        let mut names: Vec<String> = vec!["_id".into()];
        // Field -> documents holding it with a value the server sorts as Ferry does.
        let mut plain: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut odd: HashSet<String> = HashSet::new();
        let mut docs = 0u64;
        // A spill only saves a read: without a temporary file the scan
        // reads the server.
        let mut spilled = spill::SpillWriter::new()
            .inspect_err(|e| tracing::warn!("no temporary file to keep the documents a survey reads: {e}"))
            .ok();
        while cursor.advance().await.map_err(fail)? {
            docs += 1;
            if let Some(w) = spilled.as_mut() {
                match w.push(cursor.current()) {
                    Ok(true) => {}
                    Ok(false) => spilled = None,
                    Err(e) => {
                        tracing::warn!("cannot keep the documents a survey reads: {e}");
                        spilled = None;
                    }
                }
            }
            for elem in cursor.current().iter() {
                let (k, v) = elem.map_err(|e| {
                    DbError::new(
                        DbErrorKind::Query,
                        &self.env,
                        format!("a document of the collection is not valid BSON: {e}"),
                    )
                    .table(table)
                })?;
                let kind = v.element_type();
                match plain.get_mut(k) {
                    Some(n) => *n += 1,
                    None => {
                        if k != "_id" {
                            names.push(k.to_string());
                        }
                        plain.insert(k.to_string(), 1);
                    }
                }
                let sorts_apart = if k == "_id" {
                    kind == ElementType::EmbeddedDocument
                } else {
                    matches!(
                        kind,
                        ElementType::EmbeddedDocument | ElementType::Array | ElementType::Null
                    )
                };
                if sorts_apart {
                    odd.insert(k.to_string());
                }
            }
        }
        // A field some document lacks sorts with `null` on the server.
        odd.extend(
            plain
                .into_iter()
                .filter(|(k, n)| *n < docs && k != "_id")
                .map(|(k, _)| k),
        );
        match spilled.map(spill::SpillWriter::finish).transpose() {
            Ok(Some(sp)) => {
                self.spills()?.insert(table.to_string(), sp);
            }
            Ok(None) => {
                self.spills()?.remove(table);
            }
            Err(e) => {
                tracing::warn!("cannot keep the documents a survey reads: {e}");
                self.spills()?.remove(table);
            }
        }
        Ok(Survey { names, odd })
    }

    /// The schema a read decodes rows with: a record schema for Ferry's
    /// collections, else `_id` and the fields the read names (every field
    /// has the same type, so a read needs no scan of the collection for
    /// its schema).
    async fn schema(
        &self,
        table: &str,
        names: &[&[String]],
        preds: &[Option<&Predicate>],
    ) -> Result<TableSchema, DbError> {
        if let Some(s) = meta::record_schema(table) {
            return Ok(s);
        }
        if !self.exists(table).await? {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                "no such collection in this database (create it, e.g. db.createCollection, in every environment)",
            )
            .table(table));
        }
        let mut fields: Vec<String> = vec!["_id".into()];
        let from_preds = preds.iter().flatten().flat_map(|p| match p {
            Predicate::In { columns, .. } | Predicate::Range { columns, .. } => columns.as_slice(),
            _ => &[],
        });
        for n in names.iter().flat_map(|n| n.iter()).chain(from_preds) {
            if !fields.contains(n) {
                fields.push(n.clone());
            }
        }
        Ok(documents_schema(table, fields))
    }

    /// Reads the documents of `filter` (with `session`, inside a
    /// transaction) as rows of every schema column, each with its key's
    /// position kept for ordering.
    async fn read_rows(
        &self,
        session: Option<&mut ClientSession>,
        schema: &TableSchema,
        filter: Document,
    ) -> Result<Vec<Row>, DbError> {
        let table = &schema.name;
        let coll = self.coll(table);
        let mut out = Vec::new();
        match session {
            Some(s) => {
                let mut cursor = coll
                    .find(filter)
                    .session(&mut *s)
                    .await
                    .map_err(|e| driver(&self.env, table, e))?;
                while let Some(d) = cursor.next(&mut *s).await {
                    let d = d.map_err(|e| driver(&self.env, table, e))?;
                    out.push(self.row_of(schema, &d)?);
                }
            }
            None => {
                let mut cursor = coll.find(filter).await.map_err(|e| driver(&self.env, table, e))?;
                while let Some(d) = cursor.try_next().await.map_err(|e| driver(&self.env, table, e))? {
                    out.push(self.row_of(schema, &d)?);
                }
            }
        }
        Ok(out)
    }

    /// A document as a row of every schema column (the field order of a
    /// user collection's document, [`FIELD_ORDER`], as a JSON array of its
    /// top-level field names).
    fn row_of(&self, schema: &TableSchema, d: &Document) -> Result<Row, DbError> {
        let user = meta::record_schema(&schema.name).is_none();
        schema
            .columns
            .iter()
            .map(|c| {
                if user && c.name == FIELD_ORDER {
                    return Ok(field_order(d));
                }
                values::decode(d.get(&c.name), &c.ty).map_err(|m| {
                    let key = d.get("_id").map(|k| values::to_json(k).to_string()).unwrap_or_default();
                    let mut e = DbError::new(
                        if meta::record_schema(&schema.name).is_some() {
                            DbErrorKind::Damaged
                        } else {
                            DbErrorKind::Query
                        },
                        &self.env,
                        format!("the document {key} {m}"),
                    )
                    .table(&schema.name);
                    e.column = Some(c.name.clone());
                    e
                })
            })
            .collect()
    }

    /// The `_id`s of the documents a native filter matches (for a flag).
    async fn matching_ids(
        &self,
        session: Option<&mut ClientSession>,
        table: &str,
        filter: Document,
    ) -> Result<HashSet<Vec<u8>>, DbError> {
        let coll = self.coll(table);
        let mut out = HashSet::new();
        let id_of = |d: &Document| -> Vec<u8> { id_key(d.get("_id").unwrap_or(&Bson::Null)) };
        match session {
            Some(s) => {
                let mut cursor = coll
                    .find(filter)
                    .projection(doc! { "_id": 1 })
                    .session(&mut *s)
                    .await
                    .map_err(|e| driver(&self.env, table, e))?;
                while let Some(d) = cursor.next(&mut *s).await {
                    out.insert(id_of(&d.map_err(|e| driver(&self.env, table, e))?));
                }
            }
            None => {
                let mut cursor = coll
                    .find(filter)
                    .projection(doc! { "_id": 1 })
                    .await
                    .map_err(|e| driver(&self.env, table, e))?;
                while let Some(d) = cursor.try_next().await.map_err(|e| driver(&self.env, table, e))? {
                    out.insert(id_of(&d));
                }
            }
        }
        Ok(out)
    }

    /// Reads, filters and orders rows for a scan or a fetch.
    async fn select(
        &self,
        mut session: Option<&mut ClientSession>,
        schema: &TableSchema,
        query: Document,
        filter: Option<&Predicate>,
        flag: Option<&Predicate>,
    ) -> Result<Vec<(Row, bool)>, DbError> {
        let table = &schema.name;
        let mut query = query;
        if let Some(Predicate::Native(text)) = filter {
            query = and(query, self.native(table, text)?);
        }
        let flagged = match flag {
            Some(Predicate::Native(text)) => {
                let f = self.native(table, text)?;
                Some(self.matching_ids(session.as_deref_mut(), table, f).await?)
            }
            _ => None,
        };
        let rows = self.read_rows(session, schema, query).await?;
        let mut out = Vec::with_capacity(rows.len());
        let id_at = schema.columns.iter().position(|c| c.name == "_id");
        for row in rows {
            if let Some(p) = filter {
                if !matches(&self.env, schema, p, &row)? {
                    continue;
                }
            }
            let f = match (flag, &flagged) {
                (None, _) => false,
                (Some(_), Some(ids)) => {
                    let mut buf = Vec::new();
                    let id = id_at.map(|i| row[i].clone()).unwrap_or(Value::Null);
                    ferry_core::canonical::encode_value(&mut buf, &id);
                    ids.contains(&buf)
                }
                (Some(p), None) => matches(&self.env, schema, p, &row)?,
            };
            out.push((row, f));
        }
        Ok(out)
    }

    /// A native predicate: a filter document as Extended JSON.
    fn native(&self, table: &str, text: &str) -> Result<Document, DbError> {
        native_filter(text).map_err(|m| DbError::new(DbErrorKind::Query, &self.env, m).table(table))
    }

    /// Fetches in lists of at most [`IN_LIST`] values. Outside a
    /// transaction, up to [`LISTS_IN_FLIGHT`] lists are asked at once: a
    /// lookup of thousands of keys is that many round trips otherwise
    /// (a session takes one operation at a time).
    async fn fetch_in(&self, session: Option<&mut ClientSession>, req: &FetchRequest) -> Result<Vec<Row>, DbError> {
        use futures_util::StreamExt;
        let fixed_names: Vec<String> = req.fixed.iter().map(|(c, _)| c.clone()).collect();
        let schema = self
            .schema(
                &req.table,
                &[&req.columns, &req.match_columns, &fixed_names],
                &[req.filter.as_ref(), req.flag.as_ref()],
            )
            .await?;
        let shape = FetchShape {
            at: positions(&self.env, &schema, &req.columns)?,
            by: positions(&self.env, &schema, &req.match_columns)?,
            fixed_at: positions(&self.env, &schema, &fixed_names)?,
            fixed: encoded(&req.fixed.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()),
            schema,
        };
        let mut out = Vec::new();
        match session {
            Some(session) => {
                for chunk in req.values.chunks(IN_LIST) {
                    out.extend(self.fetch_list(Some(&mut *session), req, &shape, chunk).await?);
                }
            }
            None => {
                let mut asked = futures_util::stream::FuturesOrdered::new();
                for chunk in req.values.chunks(IN_LIST) {
                    if asked.len() == LISTS_IN_FLIGHT {
                        if let Some(part) = asked.next().await {
                            out.extend(part?);
                        }
                    }
                    asked.push_back(self.fetch_list(None, req, &shape, chunk));
                }
                while let Some(part) = asked.next().await {
                    out.extend(part?);
                }
            }
        }
        Ok(out)
    }

    /// The rows of `req` for one list of its values.
    async fn fetch_list(
        &self,
        session: Option<&mut ClientSession>,
        req: &FetchRequest,
        shape: &FetchShape,
        values: &[Row],
    ) -> Result<Vec<Row>, DbError> {
        let query = match record_ids(&req.table, &req.match_columns, &req.fixed, values) {
            Some(ids) => doc! { "_id": { "$in": ids } },
            None => self.match_filter(&shape.schema, &req.match_columns, values, &req.fixed)?,
        };
        let rows = self
            .select(session, &shape.schema, query, req.filter.as_ref(), req.flag.as_ref())
            .await?;
        let wanted: HashSet<Vec<u8>> = values.iter().map(|v| encoded(v)).collect();
        let mut out = Vec::new();
        for (row, f) in rows {
            if encoded(&pick(&row, &shape.fixed_at)) != shape.fixed
                || !wanted.contains(&encoded(&pick(&row, &shape.by)))
            {
                continue;
            }
            let mut r = pick(&row, &shape.at);
            if req.flag.is_some() {
                r.push(Value::Bool(f));
            }
            out.push(r);
        }
        Ok(out)
    }

    /// A filter matching documents whose `columns` equal one of `values`
    /// and whose `fixed` columns equal theirs (MongoDB compares numbers
    /// across types: the rows read are checked exactly afterwards).
    fn match_filter(
        &self,
        schema: &TableSchema,
        columns: &[String],
        values: &[Row],
        fixed: &[(String, Value)],
    ) -> Result<Document, DbError> {
        let mut base = Document::new();
        for (c, v) in fixed {
            base.insert(c.clone(), self.bson_or_null(schema, c, v)?);
        }
        if columns.len() == 1 {
            let c = &columns[0];
            let list = values
                .iter()
                .map(|r| self.bson_or_null(schema, c, &r[0]))
                .collect::<Result<Vec<_>, _>>()?;
            base.insert(c.clone(), doc! { "$in": list });
            return Ok(base);
        }
        let mut any = Vec::new();
        for r in values {
            let mut d = Document::new();
            for (c, v) in columns.iter().zip(r) {
                d.insert(c.clone(), self.bson_or_null(schema, c, v)?);
            }
            any.push(Bson::Document(d));
        }
        base.insert("$or", any);
        Ok(base)
    }

    /// The sort document a scan ordered by `order_by` can ask the server
    /// for, when the server's order of those fields is Ferry's key order
    /// ([`key_order`]); `None` when the scan must be ordered in memory.
    ///
    /// Ferry orders document fields in MongoDB's BSON order
    /// ([`ferry_core::extjson::bson_cmp`]), so the server's sort is Ferry's
    /// except where Ferry's equality differs from the server's: an
    /// embedded document's field order (Ferry compares documents with
    /// their fields sorted, the server as written), a collection with a
    /// default collation (strings compared by it, not by bytes), and, for
    /// a field other than `_id`, arrays (sorted by an element), and an
    /// absent field, which the server sorts with `null`. One `find` with
    /// `limit 1` per field asks whether any document has such a value
    /// (`$type` checks, which an index on the field answers), and
    /// `listCollections` for the collation. Ferry's own collections sort
    /// on their key field when it holds strings or integers, as in SQL.
    async fn server_sort(&self, table: &str, order_by: &[String]) -> Result<Option<Document>, DbError> {
        let fields: Vec<String> = if order_by.is_empty() {
            vec!["_id".into()]
        } else {
            order_by.to_vec()
        };
        let mut sort = Document::new();
        for f in &fields {
            sort.insert(f.clone(), 1);
        }
        if let Some(rs) = meta::record_schema(table) {
            let plain = fields.iter().all(|f| {
                rs.column(f)
                    .is_some_and(|c| matches!(c.ty.logical, LogicalType::Text | LogicalType::Int))
            });
            return Ok(plain.then_some(sort));
        }
        let coll = self.coll(table);
        let options = self
            .db
            .list_collections()
            .filter(doc! { "name": table })
            .await
            .map_err(|e| driver(&self.env, table, e))?
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| driver(&self.env, table, e))?;
        if options.iter().any(|c| c.options.collation.is_some()) {
            return Ok(None);
        }
        let surveyed = self
            .surveys()?
            .get(table)
            .filter(|(at, _)| at.elapsed() < SURVEY_TTL)
            .map(|(_, s)| s.clone());
        if let Some(survey) = surveyed {
            // A field no document has sorts with `null`: odd too.
            let apart = |f: &String| survey.odd.contains(f) || !survey.names.contains(f);
            return Ok((!fields.iter().any(apart)).then_some(sort));
        }
        for f in &fields {
            let odd = if f == "_id" {
                doc! { "_id": { "$type": "object" } }
            } else {
                doc! { "$or": [
                    { f.as_str(): { "$type": "object" } },
                    { f.as_str(): { "$type": "array" } },
                    { f.as_str(): null },
                ] }
            };
            let found = coll
                .find_one(odd)
                .projection(doc! { "_id": 1 })
                .await
                .map_err(|e| driver(&self.env, table, e))?;
            if found.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(sort))
    }

    /// A scan streamed in key order as the server sorts it by `sort` (see
    /// [`MongoStore::server_sort`]): one batch of documents in memory at a
    /// time. A key out of order (the collection changed meanwhile, or a
    /// server whose order differs) ends the scan with an error.
    async fn stream_scan(
        &self,
        schema: TableSchema,
        req: ScanRequest,
        (at, order): (Vec<usize>, Vec<usize>),
        sort: Document,
    ) -> Result<RowBatches, DbError> {
        let flag_filter = match &req.flag {
            Some(Predicate::Native(text)) => Some(self.native(&req.table, text)?),
            _ => None,
        };
        let mut query = Document::new();
        if let Some(Predicate::Native(text)) = &req.filter {
            query = self.native(&req.table, text)?;
        }
        let mut docs = self.ordered_documents(&req.table, query, sort, req.descending).await?;
        let (tx, rx) = mpsc::channel(2);
        let store = self.clone();
        tokio::spawn(async move {
            let table = schema.name.clone();
            let run = async {
                let mut left = req.limit.unwrap_or(usize::MAX);
                let mut last: Option<Row> = None;
                let mut batch: Vec<(Bson, Row)> = Vec::new();
                while left > 0 && docs.advance(&store.env, &table).await? {
                    let d = Document::try_from(docs.current(&store.env, &table)?).map_err(|e| {
                        query_error(
                            &store.env,
                            &table,
                            format!("a document of the collection does not decode: {e}"),
                        )
                    })?;
                    let row = store.row_of(&schema, &d)?;
                    let key = pick(&row, &order);
                    if let Some(prev) = &last {
                        let o = key_order(&schema)(prev, &key);
                        if if req.descending { o.is_lt() } else { o.is_gt() } {
                            return Err(DbError::new(
                                DbErrorKind::Busy,
                                &store.env,
                                format!(
                                    "the document {} came after {} out of Ferry's key order: the collection's keys changed during the scan (run the command again), or this server sorts them unlike MongoDB",
                                    values::to_json(d.get("_id").unwrap_or(&Bson::Null)),
                                    prev.iter().map(|v| v.display_text()).collect::<Vec<_>>().join(", ")
                                ),
                            )
                            .table(&table));
                        }
                    }
                    last = Some(key);
                    if let Some(p) = &req.filter {
                        if !matches(&store.env, &schema, p, &row)? {
                            continue;
                        }
                    }
                    left -= 1;
                    batch.push((d.get("_id").cloned().unwrap_or(Bson::Null), row));
                    if batch.len() == BATCH_ROWS {
                        let rows = store
                            .flag_batch(&schema, &req, flag_filter.as_ref(), &at, std::mem::take(&mut batch))
                            .await?;
                        if tx.send(Ok(rows)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if !batch.is_empty() {
                    let rows = store
                        .flag_batch(&schema, &req, flag_filter.as_ref(), &at, batch)
                        .await?;
                    let _ = tx.send(Ok(rows)).await;
                }
                Ok(())
            };
            if let Err(e) = run.await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(rx)
    }

    /// A batch of a streamed scan as the rows asked for, each with its
    /// flag when one is asked (a native one asked of the server for the
    /// batch's `_id`s).
    async fn flag_batch(
        &self,
        schema: &TableSchema,
        req: &ScanRequest,
        native: Option<&Document>,
        at: &[usize],
        batch: Vec<(Bson, Row)>,
    ) -> Result<Vec<Row>, DbError> {
        let flagged = match native {
            Some(f) => {
                let ids: Vec<Bson> = batch.iter().map(|(id, _)| id.clone()).collect();
                Some(self.flagged_ids(&schema.name, &ids, f).await?)
            }
            None => None,
        };
        let id_at = schema.columns.iter().position(|c| c.name == "_id");
        let mut out = Vec::with_capacity(batch.len());
        for (_, row) in batch {
            let mut r = pick(&row, at);
            match (&req.flag, &flagged) {
                (None, _) => {}
                (Some(_), Some(ids)) => {
                    let id = id_at.map(|i| row[i].clone()).unwrap_or(Value::Null);
                    r.push(Value::Bool(ids.contains(&encoded(&[id]))));
                }
                (Some(p), None) => r.push(Value::Bool(matches(&self.env, schema, p, &row)?)),
            }
            out.push(r);
        }
        Ok(out)
    }

    /// The schema a scan of `req` reads with.
    async fn scan_schema(&self, req: &ScanRequest) -> Result<TableSchema, DbError> {
        self.schema(
            &req.table,
            &[&req.columns, &req.order_by],
            &[req.filter.as_ref(), req.flag.as_ref()],
        )
        .await
    }

    /// Which of `ids` name a document `filter` matches (as
    /// [`MongoStore::matching_ids`] gives them), asked in lists of at most
    /// [`IN_LIST`], [`LISTS_IN_FLIGHT`] at once.
    async fn flagged_ids(&self, table: &str, ids: &[Bson], filter: &Document) -> Result<HashSet<Vec<u8>>, DbError> {
        use futures_util::StreamExt;
        let mut out = HashSet::new();
        let mut asked = futures_util::stream::FuturesUnordered::new();
        for chunk in ids.chunks(IN_LIST) {
            if asked.len() == LISTS_IN_FLIGHT {
                if let Some(part) = asked.next().await {
                    out.extend(part?);
                }
            }
            let q = and(doc! { "_id": { "$in": chunk.to_vec() } }, filter.clone());
            asked.push(self.matching_ids(None, table, q));
        }
        while let Some(part) = asked.next().await {
            out.extend(part?);
        }
        Ok(out)
    }

    /// The BSON to match a value with (an absent field matches `null`).
    fn bson_or_null(&self, schema: &TableSchema, column: &str, v: &Value) -> Result<Bson, DbError> {
        let ty = column_type(schema, column);
        values::encode(v, &ty)
            .map(|b| b.unwrap_or(Bson::Null))
            .map_err(|m| value_error(&self.env, &schema.name, column, m))
    }
}

/// What a fetch reads once for all its lists: the schema, and where the
/// columns it returns, matches and fixes sit in it (`fixed`: the fixed
/// values, encoded).
struct FetchShape {
    schema: TableSchema,
    at: Vec<usize>,
    by: Vec<usize>,
    fixed_at: Vec<usize>,
    fixed: Vec<u8>,
}

/// The `_id` index, as a hint for a read of a whole collection in `_id`
/// order: MongoDB walks it for such a sort anyway; a server that would
/// sort the documents itself (SecantusDB: a quarter slower than walking
/// the index, measured) walks it too.
fn id_index() -> mongodb::options::Hint {
    mongodb::options::Hint::Keys(doc! { "_id": 1 })
}

/// Where an ordered scan's documents come from
/// ([`MongoStore::ordered_documents`]), one at a time as raw BSON.
enum RawDocs {
    Server(Box<mongodb::Cursor<mongodb::bson::RawDocumentBuf>>),
    /// The documents the collection's survey just read, and the buffer of
    /// the current one.
    Spill(spill::SpillReader, Vec<u8>),
}

impl RawDocs {
    /// Moves to the next document; `false` at the end.
    async fn advance(&mut self, env: &str, table: &str) -> Result<bool, DbError> {
        match self {
            RawDocs::Server(c) => c.advance().await.map_err(|e| driver(env, table, e)),
            RawDocs::Spill(r, buf) => r.next_raw(buf).map_err(|m| query_error(env, table, m)),
        }
    }

    fn current(&self, env: &str, table: &str) -> Result<&mongodb::bson::RawDocument, DbError> {
        match self {
            RawDocs::Server(c) => Ok(c.current()),
            RawDocs::Spill(_, buf) => mongodb::bson::RawDocument::from_bytes(buf)
                .map_err(|e| query_error(env, table, format!("the survey's spill file is not BSON: {e}"))),
        }
    }
}

fn query_error(env: &str, table: &str, m: String) -> DbError {
    DbError::new(DbErrorKind::Query, env, m).table(table)
}

/// A collection's schema from its field names.
fn documents_schema(table: &str, names: Vec<String>) -> TableSchema {
    TableSchema {
        name: table.to_string(),
        columns: names
            .into_iter()
            .map(|n| ColumnSchema {
                nullable: n != "_id",
                // A document inserted without `_id` gets a new ObjectId.
                has_default: n == "_id",
                auto_increment: n == "_id",
                name: n,
                declared: "field".into(),
                ty: field_type(),
            })
            .collect(),
        primary_key: vec!["_id".into()],
        foreign_keys: Vec::new(),
        unique: Vec::new(),
        open_fields: Some(field_type()),
        carried: vec![FIELD_ORDER.into()],
    }
}

/// A document's top-level field names, in order, as the value of its
/// [`FIELD_ORDER`] column.
fn field_order(d: &Document) -> Value {
    Value::Json(serde_json::Value::Array(d.keys().map(|k| serde_json::Value::String(k.clone())).collect()).into())
}

/// `d`'s fields in `order` (the names it lists that `d` has), then the
/// others in their order in `d`.
fn in_order(mut d: Document, order: &[String]) -> Document {
    let mut out = Document::new();
    for n in order {
        if let Some(v) = d.remove(n) {
            out.insert(n.clone(), v);
        }
    }
    for (k, v) in d {
        out.insert(k, v);
    }
    out
}

/// Whether two documents have the same fields in the same order.
fn same_order(a: &Document, b: &Document) -> bool {
    a.len() == b.len() && a.keys().zip(b.keys()).all(|(x, y)| x == y)
}

/// The field order a row carries in its [`FIELD_ORDER`] column (`None`:
/// not among `columns`, or absent).
fn carried_order(env: &str, table: &str, columns: &[String], row: &[Value]) -> Result<Option<Vec<String>>, DbError> {
    let Some(i) = columns.iter().position(|c| c == FIELD_ORDER) else {
        return Ok(None);
    };
    if row[i].is_null() {
        return Ok(None);
    }
    let bad = |m: String| {
        value_error(
            env,
            table,
            FIELD_ORDER,
            format!("the field order {m}: it is a list of field names"),
        )
    };
    let mut j = ferry_core::extjson::from_value(&row[i]).map_err(bad)?;
    if let serde_json::Value::String(text) = &j {
        // A before-image read back as text.
        j = serde_json::from_str(text).map_err(|e| bad(format!("`{text}` is not JSON ({e})")))?;
    }
    match j {
        serde_json::Value::Array(names) => names
            .into_iter()
            .map(|n| match n {
                serde_json::Value::String(s) => Ok(s),
                other => Err(bad(format!("holds {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(bad(format!("is {other}"))),
    }
}

/// A document's values at `fields` (absent ones as null) as bytes: what
/// a row's key filter and a document read for it share exactly (BSON
/// types included, unlike the server's matching of numbers).
fn signature(d: &Document, fields: &[String]) -> Vec<u8> {
    let mut sig = Document::new();
    for f in fields {
        sig.insert(f.clone(), d.get(f).cloned().unwrap_or(Bson::Null));
    }
    let mut buf = Vec::new();
    // Writing a document to a Vec cannot fail but for a key with a NUL,
    // which no field name read from the server has.
    let _ = sig.to_writer(&mut buf);
    buf
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

fn and(a: Document, b: Document) -> Document {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    doc! { "$and": [a, b] }
}

/// The bytes [`MongoStore::matching_ids`] knows an `_id` by.
fn id_key(id: &Bson) -> Vec<u8> {
    let mut buf = Vec::new();
    ferry_core::canonical::encode_value(&mut buf, &Value::Json(values::to_json(id).into()));
    buf
}

fn encoded(values: &[Value]) -> Vec<u8> {
    let mut buf = Vec::new();
    for v in values {
        ferry_core::canonical::encode_value(&mut buf, v);
    }
    buf
}

/// The positions of `names` in the schema; a field not seen is one past
/// the columns (absent in every row).
fn positions(env: &str, schema: &TableSchema, names: &[String]) -> Result<Vec<usize>, DbError> {
    names
        .iter()
        .map(|n| match schema.columns.iter().position(|c| &c.name == n) {
            Some(i) => Ok(i),
            None if schema.open_fields.is_some() => Ok(usize::MAX),
            None => {
                let mut e = DbError::new(DbErrorKind::Query, env, "no such column").table(&schema.name);
                e.column = Some(n.clone());
                Err(e)
            }
        })
        .collect()
}

/// The values of `names` in a row of `columns` (NULL for a name the row
/// lacks).
fn values_of(names: &[String], columns: &[String], row: &[Value]) -> Row {
    names
        .iter()
        .map(|n| {
            columns
                .iter()
                .position(|c| c == n)
                .map_or(Value::Null, |i| row[i].clone())
        })
        .collect()
}

fn pick(row: &[Value], at: &[usize]) -> Row {
    at.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()
}

/// The key order of a collection's rows: documents' fields in MongoDB's
/// BSON order ([`bson_key_cmp`]), Ferry's own records (strings, integers)
/// as in SQL ([`key_cmp`]).
fn key_order(schema: &TableSchema) -> fn(&[Value], &[Value]) -> std::cmp::Ordering {
    if schema.open_fields.is_some() {
        bson_key_cmp
    } else {
        key_cmp
    }
}

/// Whether `row` matches a structural predicate (a native one was sent to
/// the server with the query).
fn matches(env: &str, schema: &TableSchema, p: &Predicate, row: &[Value]) -> Result<bool, DbError> {
    Ok(match p {
        Predicate::All | Predicate::Native(_) => true,
        Predicate::In { columns, .. } | Predicate::Range { columns, .. } => {
            holds(schema, p, &pick(row, &positions(env, schema, columns)?))
        }
    })
}

/// Whether the values of the columns a structural predicate names (`mine`)
/// satisfy it.
fn holds(schema: &TableSchema, p: &Predicate, mine: &[Value]) -> bool {
    let key_cmp = key_order(schema);
    match p {
        Predicate::All | Predicate::Native(_) => true,
        Predicate::In { values, .. } => {
            let mine = encoded(mine);
            values.iter().any(|v| encoded(v) == mine)
        }
        Predicate::Range { from, to, .. } => {
            let above = match from {
                Bound::Unbounded => true,
                Bound::Included(b) => key_cmp(mine, b).is_ge(),
                Bound::Excluded(b) => key_cmp(mine, b).is_gt(),
            };
            let below = match to {
                Bound::Unbounded => true,
                Bound::Included(b) => key_cmp(mine, b).is_le(),
                Bound::Excluded(b) => key_cmp(mine, b).is_lt(),
            };
            above && below
        }
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
            raw_scans: false,
            generated_ids: true,
            sql_predicates: false,
            native_predicates: true,
            branch_clones: true,
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

impl MongoStore {
    /// The guard of a lock just taken: renews it while it lives, and
    /// removes it when dropped.
    fn lock_guard(&self) -> WriterLock {
        let (db, owner) = (self.db.clone(), self.owner.clone());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                // A failed renewal is noticed at commit, which checks the lock.
                let _ = take_lock(&db, &owner).await;
            }
        });
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
        WriterLock::new(HeldLock {
            renew,
            db: self.db.clone(),
            owner: self.owner.clone(),
            held: self.held.clone(),
        })
    }
}

/// Takes or renews the lock document for `owner`; `false` when another
/// owner holds it and it has not expired.
async fn take_lock(db: &Database, owner: &str) -> Result<bool, mongodb::error::Error> {
    let now = mongodb::bson::DateTime::now();
    let expires = mongodb::bson::DateTime::from_millis(now.timestamp_millis() + LOCK_TTL.as_millis() as i64);
    let r = db
        .collection::<Document>(LOCK_COLLECTION)
        .update_one(
            doc! { "_id": "writer", "$or": [ { "owner": owner }, { "expires": { "$lt": now } } ] },
            doc! { "$set": { "owner": owner, "expires": expires } },
        )
        .upsert(true)
        .await;
    match r {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The index of the document an `insert_many` failed at.
fn failed_index(e: &mongodb::error::Error) -> Option<usize> {
    match &*e.kind {
        mongodb::error::ErrorKind::InsertMany(m) => m.write_errors.as_ref()?.first().map(|w| w.index),
        _ => None,
    }
}

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000"),
    }
}

/// A held lock document: renewed by a task, removed on drop.
struct HeldLock {
    renew: tokio::task::JoinHandle<()>,
    db: Database,
    owner: String,
    held: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.renew.abort();
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
        let (db, owner) = (self.db.clone(), self.owner.clone());
        let release = async move {
            // Not released (the server gone): it expires after LOCK_TTL.
            let _ = db
                .collection::<Document>(LOCK_COLLECTION)
                .delete_one(doc! { "_id": "writer", "owner": owner })
                .await;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Released before the guard is gone when the runtime allows
        // waiting (a command that ends right after would otherwise leave
        // it to expire); else as a task.
        if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| rt.block_on(release));
        } else {
            rt.spawn(release);
        }
    }
}

/// A write transaction: a session with a transaction open. Dropped
/// without a commit, the driver aborts it.
struct MongoTxn {
    store: MongoStore,
    session: ClientSession,
    /// The schemas of the collections written, read once (a collection's
    /// schema is an aggregation over all of it).
    schemas: std::collections::HashMap<String, TableSchema>,
}

impl MongoTxn {
    /// A collection's schema, read on first use.
    async fn schema(&mut self, table: &str) -> Result<TableSchema, DbError> {
        if let Some(s) = self.schemas.get(table) {
            return Ok(s.clone());
        }
        let s = self.store.schema_or_open(table).await?;
        self.schemas.insert(table.to_string(), s.clone());
        Ok(s)
    }

    /// The filter of one row by its key values.
    async fn key_filter(&mut self, table: &str, key: &[String], values: &[Value]) -> Result<Document, DbError> {
        let schema = self.schema(table).await?;
        let mut d = Document::new();
        if let Some(id) = record_id(table, key, values) {
            d.insert("_id", id);
            return Ok(d);
        }
        for (c, v) in key.iter().zip(values) {
            d.insert(c.clone(), self.store.bson_or_null(&schema, c, v)?);
        }
        Ok(d)
    }

    /// A document of `columns` (absent values left out; `_id` of a record
    /// is its key text).
    async fn document(&mut self, table: &str, columns: &[String], row: &[Value]) -> Result<Document, DbError> {
        let schema = self.schema(table).await?;
        let mut d = Document::new();
        if let Some(rs) = meta::record_schema(table) {
            let key = values_of(&rs.primary_key, columns, row);
            d.insert("_id", ferry_core::canonical::key_text(&key));
        }
        // A new document's fields in the collection's order of fields
        // first, then the others as given.
        let mut order: Vec<usize> = (0..columns.len()).collect();
        order.sort_by_key(|&i| {
            schema
                .columns
                .iter()
                .position(|c| c.name == columns[i])
                .unwrap_or(usize::MAX)
        });
        let user = meta::record_schema(table).is_none();
        for i in order {
            let c = &columns[i];
            if user && c == FIELD_ORDER {
                continue;
            }
            let ty = column_type(&schema, c);
            if let Some(b) = values::encode(&row[i], &ty).map_err(|m| value_error(&self.store.env, table, c, m))? {
                d.insert(c.clone(), b);
            }
        }
        // The order the row carries (the source document's), when it does.
        match carried_order(&self.store.env, table, columns, row)? {
            Some(names) if user => Ok(in_order(d, &names)),
            _ => Ok(d),
        }
    }

    /// The values a row sets (`None`: the field is absent), its carried
    /// field order left out.
    async fn field_changes(
        &mut self,
        table: &str,
        columns: &[String],
        row: &[Value],
    ) -> Result<Vec<(String, Option<Bson>)>, DbError> {
        let schema = self.schema(table).await?;
        let user = meta::record_schema(table).is_none();
        let mut out = Vec::with_capacity(columns.len());
        for (c, v) in columns.iter().zip(row) {
            if user && c == FIELD_ORDER {
                continue;
            }
            let ty = column_type(&schema, c);
            out.push((
                c.clone(),
                values::encode(v, &ty).map_err(|m| value_error(&self.store.env, table, c, m))?,
            ));
        }
        Ok(out)
    }

    /// The documents of `filters` (one row's key filter each, all on the
    /// same fields), read in the transaction: the document of each filter,
    /// or `None` when there is none.
    async fn current(&mut self, table: &str, filters: &[Document]) -> Result<Vec<Option<Document>>, DbError> {
        let Some(first) = filters.first() else {
            return Ok(Vec::new());
        };
        let fields: Vec<String> = first.keys().cloned().collect();
        let mut by_key = std::collections::HashMap::new();
        for chunk in filters.chunks(IN_LIST) {
            let query = match fields.as_slice() {
                [one] => {
                    let list: Vec<Bson> = chunk
                        .iter()
                        .map(|f| f.get(one).cloned().unwrap_or(Bson::Null))
                        .collect();
                    doc! { one.clone(): { "$in": list } }
                }
                _ => doc! { "$or": chunk.iter().cloned().map(Bson::Document).collect::<Vec<_>>() },
            };
            let mut cursor = self
                .store
                .coll(table)
                .find(query)
                .session(&mut self.session)
                .await
                .map_err(|e| driver(&self.store.env, table, e))?;
            while let Some(d) = cursor.next(&mut self.session).await {
                let d = d.map_err(|e| driver(&self.store.env, table, e))?;
                by_key.insert(signature(&d, &fields), d);
            }
        }
        Ok(filters
            .iter()
            .map(|f| by_key.get(&signature(f, &fields)).cloned())
            .collect())
    }

    /// Runs `statements` (each `(row, {q, u, upsert, multi})`) as `update`
    /// commands, ordered, up to [`BATCH_ROWS`] statements (and a few MiB)
    /// per round trip. The first failing statement stops it (and the
    /// transaction) and its error names its row.
    async fn run_updates(&mut self, table: &str, statements: Vec<(usize, Document)>) -> Result<(), DbError> {
        /// Well under the server's 16 MiB command size.
        const BATCH_BYTES: usize = 8 << 20;
        let mut batch: Vec<(usize, Document)> = Vec::new();
        let mut bytes = 0;
        let mut left = statements.into_iter().peekable();
        while let Some((row, st)) = left.next() {
            let mut buf = Vec::new();
            st.to_writer(&mut buf).map_err(|e| self.bad_statement(table, row, e))?;
            bytes += buf.len();
            batch.push((row, st));
            let full = batch.len() == BATCH_ROWS || bytes >= BATCH_BYTES;
            if full || left.peek().is_none() {
                self.update_command(table, std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
        }
        Ok(())
    }

    fn bad_statement(&self, table: &str, row: usize, e: impl std::fmt::Display) -> DbError {
        DbError::new(
            DbErrorKind::Query,
            &self.store.env,
            format!("the update cannot be written as BSON: {e}"),
        )
        .table(table)
        .row(row)
    }

    /// One `update` command of `batch`; an error names the row of the
    /// statement it reports (`writeErrors`' index).
    async fn update_command(&mut self, table: &str, batch: Vec<(usize, Document)>) -> Result<(), DbError> {
        let Some(first) = batch.first().map(|(r, _)| *r) else {
            return Ok(());
        };
        let rows: Vec<usize> = batch.iter().map(|(r, _)| *r).collect();
        let updates: Vec<Bson> = batch.into_iter().map(|(_, st)| Bson::Document(st)).collect();
        let reply = self
            .store
            .db
            .run_command(doc! { "update": table, "updates": updates, "ordered": true })
            .session(&mut self.session)
            .await
            .map_err(|e| self.fail(e, table, first))?;
        if let Some(Bson::Document(w)) = reply.get_array("writeErrors").ok().and_then(|a| a.first()) {
            let index = w
                .get_i32("index")
                .ok()
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(0);
            let code = w.get_i32("code").unwrap_or(0);
            let kind = if code == 11000 {
                DbErrorKind::Constraint
            } else {
                DbErrorKind::Query
            };
            let message = w.get_str("errmsg").unwrap_or("the server refused the update");
            return Err(DbError::new(kind, &self.store.env, format!("{message} (code {code})"))
                .table(table)
                .row(rows.get(index).copied().unwrap_or(first)));
        }
        if let Ok(w) = reply.get_document("writeConcernError") {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.store.env,
                format!("the server did not confirm the update: {w}"),
            )
            .table(table)
            .row(first));
        }
        Ok(())
    }

    /// The statements that write `rows` (`columns` of each, by `key`):
    /// `$set`/`$unset` of the values, or, when a row carries its field
    /// order and the document's must change, the whole document (read in
    /// the transaction) with the changes applied, in that order. With
    /// `upsert`, a row without a document inserts it whole.
    async fn statements(
        &mut self,
        table: &str,
        key: &[String],
        columns: &[String],
        rows: &[(Row, Row)],
        upsert: bool,
    ) -> Result<Vec<(usize, Document)>, DbError> {
        let carries = meta::record_schema(table).is_none() && columns.iter().any(|c| c == FIELD_ORDER);
        let mut out = Vec::with_capacity(rows.len());
        for (n, chunk) in rows.chunks(BATCH_ROWS).enumerate() {
            let mut filters = Vec::with_capacity(chunk.len());
            for (k, _) in chunk {
                filters.push(self.key_filter(table, key, k).await?);
            }
            let current = if carries {
                self.current(table, &filters).await?
            } else {
                vec![None; chunk.len()]
            };
            for (i, (((_, values), q), cur)) in chunk.iter().zip(filters).zip(current).enumerate() {
                let row = n * BATCH_ROWS + i;
                let changes = self.field_changes(table, columns, values).await?;
                let st = match (carries, cur) {
                    (true, Some(cur)) => {
                        let order = carried_order(&self.store.env, table, columns, values)?;
                        let mut d = cur.clone();
                        for (c, b) in &changes {
                            match b {
                                Some(b) => {
                                    d.insert(c.clone(), b.clone());
                                }
                                None => {
                                    d.remove(c);
                                }
                            }
                        }
                        // `$set` keeps a field's place and appends a new
                        // one: the whole document only when that is not
                        // the order wanted.
                        let wanted = match &order {
                            Some(names) => in_order(d.clone(), names),
                            None => d.clone(),
                        };
                        if wanted == cur && same_order(&wanted, &cur) {
                            continue;
                        }
                        if same_order(&wanted, &d) {
                            doc! { "q": q, "u": set_unset(&changes), "multi": false }
                        } else {
                            doc! { "q": q, "u": wanted, "multi": false }
                        }
                    }
                    (true, None) if upsert => {
                        let d = self.document(table, columns, values).await?;
                        doc! { "q": q, "u": d, "upsert": true }
                    }
                    // Nothing to update.
                    (true, None) => continue,
                    (false, _) => {
                        let u = set_unset(&changes);
                        if u.is_empty() {
                            continue;
                        }
                        doc! { "q": q, "u": u, "upsert": upsert, "multi": !upsert }
                    }
                };
                out.push((row, st));
            }
        }
        Ok(out)
    }

    fn fail(&self, e: mongodb::error::Error, table: &str, row: usize) -> DbError {
        driver(&self.store.env, table, e).row(row)
    }
}

impl MongoStore {
    /// A table's schema for writing: a collection not created yet is an
    /// open table without fields.
    async fn schema_or_open(&self, table: &str) -> Result<TableSchema, DbError> {
        if let Some(s) = meta::record_schema(table) {
            return Ok(s);
        }
        Ok(self
            .documents_schema(table)
            .await?
            .unwrap_or_else(|| documents_schema(table, vec!["_id".into()])))
    }
}

/// The `$set` of the non-absent values and `$unset` of the absent ones.
fn set_unset(changes: &[(String, Option<Bson>)]) -> Document {
    let (mut set, mut unset) = (Document::new(), Document::new());
    for (c, b) in changes {
        match b {
            Some(b) => {
                set.insert(c.clone(), b.clone());
            }
            None => {
                unset.insert(c.clone(), "");
            }
        }
    }
    let mut u = Document::new();
    if !set.is_empty() {
        u.insert("$set", set);
    }
    if !unset.is_empty() {
        u.insert("$unset", unset);
    }
    u
}

/// The `_id`s of the records of one of Ferry's collections that `values`
/// of `columns` (with the `fixed` columns) name, when those hold the
/// record's whole key as text: the server then finds each through its `_id` index (the key's
/// fields have no index of their own, so a filter on them reads the whole
/// collection: seconds per sync-base lookup or delete at 10,000 keys).
/// `None`: match the fields. Rows read are checked against the request
/// either way.
fn record_ids(table: &str, columns: &[String], fixed: &[(String, Value)], values: &[Row]) -> Option<Vec<Bson>> {
    let rs = meta::record_schema(table)?;
    let at: Vec<Result<usize, &Value>> = rs
        .primary_key
        .iter()
        .map(|k| match columns.iter().position(|c| c == k) {
            Some(i) => Some(Ok(i)),
            None => fixed.iter().find(|(c, _)| c == k).map(|(_, v)| Err(v)),
        })
        .collect::<Option<_>>()?;
    values
        .iter()
        .map(|row| {
            let key: Vec<Value> = at
                .iter()
                .map(|a| match a {
                    Ok(i) => row.get(*i).cloned(),
                    Err(v) => Some((*v).clone()),
                })
                .collect::<Option<_>>()?;
            key.iter()
                .all(|v| matches!(v, Value::Text(_)))
                .then(|| Bson::String(ferry_core::canonical::key_text(&key)))
        })
        .collect()
}

/// The `_id` of one of Ferry's records with this key, when `key` is its
/// record schema's whole key.
fn record_id(table: &str, key: &[String], values: &[Value]) -> Option<String> {
    let rs = meta::record_schema(table)?;
    (rs.primary_key == key).then(|| ferry_core::canonical::key_text(values))
}

#[async_trait]
impl Read for MongoTxn {
    fn env(&self) -> &str {
        &self.store.env
    }

    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let store = self.store.clone();
        store.fetch_in(Some(&mut self.session), &req).await
    }
}

#[async_trait]
impl Txn for MongoTxn {
    async fn insert(&mut self, table: &str, columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let coll = self.store.coll(table);
        // One ordered `insert_many` per batch of rows: the first failing
        // document stops it (and the transaction), and its error's index
        // names the row.
        for (n, chunk) in rows.chunks(BATCH_ROWS).enumerate() {
            let mut docs = Vec::with_capacity(chunk.len());
            for r in chunk {
                docs.push(self.document(table, columns, r).await?);
            }
            coll.insert_many(docs)
                .ordered(true)
                .session(&mut self.session)
                .await
                .map_err(|e| {
                    let at = failed_index(&e).unwrap_or(0);
                    self.fail(e, table, n * BATCH_ROWS + at)
                })?;
        }
        Ok(())
    }

    async fn upsert(&mut self, table: &str, key: &[String], columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        // Each row keyed by its key values, writing every column: one
        // `update` statement with `upsert` per row, a batch per round trip.
        let keyed: Vec<(Row, Row)> = rows.iter().map(|r| (values_of(key, columns, r), r.clone())).collect();
        let statements = self.statements(table, key, columns, &keyed, true).await?;
        self.run_updates(table, statements).await
    }

    /// Inserts one document without its `_id`: the server (the driver,
    /// for the session) gives it a new ObjectId, returned in Ferry's form
    /// (a `natural_key` table's new rows). A key other than `_id` is not
    /// generated on MongoDB.
    async fn insert_returning(
        &mut self,
        table: &str,
        columns: &[String],
        row: &Row,
        key: &str,
    ) -> Result<Value, DbError> {
        if key != "_id" {
            let mut e = DbError::new(
                DbErrorKind::Query,
                &self.store.env,
                format!("MongoDB generates only `_id` (an ObjectId), not `{key}`: key the collection by `_id` to let the target assign new documents' ids"),
            )
            .table(table);
            e.column = Some(key.to_string());
            return Err(e);
        }
        let d = self.document(table, columns, row).await?;
        let inserted = self
            .store
            .coll(table)
            .insert_one(d)
            .session(&mut self.session)
            .await
            .map_err(|e| self.fail(e, table, 0))?;
        values::decode(Some(&inserted.inserted_id), &field_type()).map_err(|m| {
            DbError::new(
                DbErrorKind::Query,
                &self.store.env,
                format!("the server generated an `_id` Ferry cannot read: {m}"),
            )
            .table(table)
        })
    }

    async fn update(
        &mut self,
        table: &str,
        key: &[String],
        set: &[String],
        rows: &[(Row, Row)],
    ) -> Result<(), DbError> {
        let statements = self.statements(table, key, set, rows, false).await?;
        self.run_updates(table, statements).await
    }

    async fn delete(&mut self, table: &str, key: &[String], keys: &[Row]) -> Result<(), DbError> {
        let coll = self.store.coll(table);
        // Rows whose filters are one field each (a single-column key, or a
        // record's `_id`) are deleted a batch at a time with `$in`; other
        // keys one `delete_many` per row.
        for (n, chunk) in keys.chunks(IN_LIST).enumerate() {
            let mut filters = Vec::with_capacity(chunk.len());
            for k in chunk {
                filters.push(self.key_filter(table, key, k).await?);
            }
            let field = filters.first().and_then(|f| f.keys().next().cloned());
            let single = filters
                .iter()
                .all(|f| f.len() == 1 && f.keys().next() == field.as_ref());
            match field {
                Some(field) if single => {
                    let list: Vec<Bson> = filters
                        .into_iter()
                        .map(|mut f| f.remove(&field).unwrap_or(Bson::Null))
                        .collect();
                    coll.delete_many(doc! { field: { "$in": list } })
                        .session(&mut self.session)
                        .await
                        .map_err(|e| {
                            let mut out = self.fail(e, table, n * IN_LIST);
                            out.message = format!(
                                "{} (deleting rows {} to {} together)",
                                out.message,
                                n * IN_LIST,
                                n * IN_LIST + chunk.len() - 1
                            );
                            out
                        })?;
                }
                _ => {
                    for (i, filter) in filters.into_iter().enumerate() {
                        coll.delete_many(filter)
                            .session(&mut self.session)
                            .await
                            .map_err(|e| self.fail(e, table, n * IN_LIST + i))?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn delete_in(
        &mut self,
        table: &str,
        fixed: &[(String, Value)],
        column: &str,
        values: &[Value],
    ) -> Result<(), DbError> {
        if values.is_empty() {
            return Ok(());
        }
        let schema = self.schema(table).await?;
        let columns = [column.to_string()];
        for chunk in values.chunks(IN_LIST) {
            let rows: Vec<Row> = chunk.iter().map(|v| vec![v.clone()]).collect();
            let filter = match record_ids(table, &columns, fixed, &rows) {
                Some(ids) => doc! { "_id": { "$in": ids } },
                None => self.store.match_filter(&schema, &columns, &rows, fixed)?,
            };
            self.store
                .coll(table)
                .delete_many(filter)
                .session(&mut self.session)
                .await
                .map_err(|e| driver(&self.store.env, table, e))?;
        }
        Ok(())
    }

    async fn advance_generated(&mut self, _table: &str, _column: &str) -> Result<(), DbError> {
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DbError> {
        let env = self.store.env.clone();
        // The writer lock as it is now, read outside the transaction (whose
        // snapshot is as old as its first read: a long transaction would see
        // the expiry of before the renewals): a writer whose lock expired,
        // or will within a third of its life, or was taken over, never
        // commits.
        if self.store.held.load(std::sync::atomic::Ordering::SeqCst) {
            let lock = self
                .store
                .db
                .collection::<Document>(LOCK_COLLECTION)
                .find_one(doc! { "_id": "writer" })
                .await
                .map_err(|e| driver(&env, LOCK_COLLECTION, e))?;
            let soon = mongodb::bson::DateTime::from_millis(
                mongodb::bson::DateTime::now().timestamp_millis() + (LOCK_TTL / 3).as_millis() as i64,
            );
            let mine = lock.is_some_and(|l| {
                l.get_str("owner").is_ok_and(|o| o == self.store.owner)
                    && l.get_datetime("expires").is_ok_and(|t| *t > soon)
            });
            if !mine {
                return Err(crate::lock_lost(&env));
            }
        }
        self.store
            .coll(FORMAT_COLLECTION)
            .update_one(
                doc! { "_id": "format" },
                doc! { "$set": { "format": 1, "store": "mongodb" } },
            )
            .upsert(true)
            .session(&mut self.session)
            .await
            .map_err(|e| driver(&env, FORMAT_COLLECTION, e))?;
        // What was surveyed under the lock no longer holds for what this
        // transaction wrote (a stamp's new field, say).
        self.store.surveys()?.clear();
        self.session.commit_transaction().await.map_err(|e| {
            let mut out = driver(&env, "", e);
            out.message = format!("{}; the transaction was not committed", out.message);
            out
        })
    }
}
