//! Writes: [`MongoTxn`], one multi-document transaction on a session. A
//! row becomes a document (in the field order it carries), a `$set`/
//! `$unset` or a whole replacement, sent as batched `update` commands;
//! deletes go by `$in` where a key is one field; Ferry's own records are
//! found by their `_id`s; a commit checks the writer lock first.

use async_trait::async_trait;
use ferry_core::schema::{TableSchema, FIELD_ORDER};
use ferry_core::Value;
use mongodb::bson::{doc, Bson, Document};
use mongodb::ClientSession;

use super::survey::documents_schema;
use super::{
    column_type, driver, field_type, value_error, values, MongoStore, FORMAT_COLLECTION, IN_LIST, LOCK_COLLECTION,
    LOCK_TTL,
};
use crate::{meta, DbError, DbErrorKind, FetchRequest, Read, Row, Txn, BATCH_ROWS};

/// A write transaction: a session with a transaction open. Dropped
/// without a commit, the driver aborts it.
pub(super) struct MongoTxn {
    pub(super) store: MongoStore,
    pub(super) session: ClientSession,
    /// The schemas of the collections written, read once (a collection's
    /// schema is an aggregation over all of it).
    pub(super) schemas: std::collections::HashMap<String, TableSchema>,
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
pub(super) fn record_ids(
    table: &str,
    columns: &[String],
    fixed: &[(String, Value)],
    values: &[Row],
) -> Option<Vec<Bson>> {
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

/// The index of the document an `insert_many` failed at.
fn failed_index(e: &mongodb::error::Error) -> Option<usize> {
    match &*e.kind {
        mongodb::error::ErrorKind::InsertMany(m) => m.write_errors.as_ref()?.first().map(|w| w.index),
        _ => None,
    }
}
