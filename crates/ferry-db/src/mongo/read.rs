//! Reads of collections as rows: the schema a read decodes with, selects
//! and fetches (their values pushed down as a filter, the rows read checked
//! exactly), native filters, whether the server sorts a scan in Ferry's key
//! order ([`MongoStore::server_sort`]), the decoded scan streamed in that
//! order, and flags.

use std::collections::HashSet;
use std::ops::Bound;

use ferry_core::schema::{TableSchema, FIELD_ORDER};
use ferry_core::value::{bson_key_cmp, key_cmp, LogicalType};
use ferry_core::Value;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::ClientSession;
use tokio::sync::mpsc;

use super::survey::{documents_schema, SURVEY_TTL};
use super::txn::record_ids;
use super::{
    column_type, driver, native_filter, query_error, value_error, values, MongoStore, IN_LIST, LISTS_IN_FLIGHT,
};
use crate::{meta, DbError, DbErrorKind, FetchRequest, Predicate, Row, RowBatches, ScanRequest, BATCH_ROWS};

impl MongoStore {
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
    pub(super) async fn select(
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
    pub(super) fn native(&self, table: &str, text: &str) -> Result<Document, DbError> {
        native_filter(text).map_err(|m| DbError::new(DbErrorKind::Query, &self.env, m).table(table))
    }

    /// Fetches in lists of at most [`IN_LIST`] values. Outside a
    /// transaction, up to [`LISTS_IN_FLIGHT`] lists are asked at once: a
    /// lookup of thousands of keys is that many round trips otherwise
    /// (a session takes one operation at a time).
    pub(super) async fn fetch_in(
        &self,
        session: Option<&mut ClientSession>,
        req: &FetchRequest,
    ) -> Result<Vec<Row>, DbError> {
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
                let lists: Vec<_> = req
                    .values
                    .chunks(IN_LIST)
                    .map(|chunk| self.fetch_list(None, req, &shape, chunk))
                    .collect();
                out.extend(in_flight(lists).await?.into_iter().flatten());
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
    pub(super) fn match_filter(
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
    pub(super) async fn server_sort(&self, table: &str, order_by: &[String]) -> Result<Option<Document>, DbError> {
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
    pub(super) async fn stream_scan(
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
    pub(super) async fn scan_schema(&self, req: &ScanRequest) -> Result<TableSchema, DbError> {
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
    pub(super) async fn flagged_ids(
        &self,
        table: &str,
        ids: &[Bson],
        filter: &Document,
    ) -> Result<HashSet<Vec<u8>>, DbError> {
        let lists: Vec<_> = ids
            .chunks(IN_LIST)
            .map(|chunk| {
                let q = and(doc! { "_id": { "$in": chunk.to_vec() } }, filter.clone());
                self.matching_ids(None, table, q)
            })
            .collect();
        Ok(in_flight(lists).await?.into_iter().flatten().collect())
    }

    /// The BSON to match a value with (an absent field matches `null`).
    pub(super) fn bson_or_null(&self, schema: &TableSchema, column: &str, v: &Value) -> Result<Bson, DbError> {
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

/// Runs `lists` (lookups of one list of values each), at most
/// [`LISTS_IN_FLIGHT`] at once, and gives their results in their order;
/// the first error ends it.
async fn in_flight<T>(lists: Vec<impl std::future::Future<Output = Result<T, DbError>>>) -> Result<Vec<T>, DbError> {
    use futures_util::StreamExt;
    let mut out = Vec::with_capacity(lists.len());
    let mut asked = futures_util::stream::FuturesOrdered::new();
    for list in lists {
        if asked.len() == LISTS_IN_FLIGHT {
            if let Some(part) = asked.next().await {
                out.push(part?);
            }
        }
        asked.push_back(list);
    }
    while let Some(part) = asked.next().await {
        out.push(part?);
    }
    Ok(out)
}

/// A document's top-level field names, in order, as the value of its
/// [`FIELD_ORDER`] column.
fn field_order(d: &Document) -> Value {
    Value::Json(serde_json::Value::Array(d.keys().map(|k| serde_json::Value::String(k.clone())).collect()).into())
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
pub(super) fn id_key(id: &Bson) -> Vec<u8> {
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
pub(super) fn positions(env: &str, schema: &TableSchema, names: &[String]) -> Result<Vec<usize>, DbError> {
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

pub(super) fn pick(row: &[Value], at: &[usize]) -> Row {
    at.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()
}

/// The key order of a collection's rows: documents' fields in MongoDB's
/// BSON order ([`bson_key_cmp`]), Ferry's own records (strings, integers)
/// as in SQL ([`key_cmp`]).
pub(super) fn key_order(schema: &TableSchema) -> fn(&[Value], &[Value]) -> std::cmp::Ordering {
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
pub(super) fn holds(schema: &TableSchema, p: &Predicate, mine: &[Value]) -> bool {
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
