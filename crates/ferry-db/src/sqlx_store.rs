//! What the two sqlx stores (PostgreSQL and MySQL) share, written once
//! and generic over the sqlx database: fetches by values, the write
//! transaction's connection and per-table cache, row-by-row writes that
//! name the failing row, `delete_in`, the reads of [`Read`], and the
//! commit that first checks the writer lock. Each engine gives its own
//! parts in [`SqlxEngine`] (decoding, binding, errors, introspection, the
//! lock check); what differs in shape (multi-row writes: one array per
//! column on PostgreSQL, multi-row statements on MySQL; generated ids;
//! raw scans; locks) stays in `postgres.rs` and `mysql.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::schema::TableSchema;
use ferry_core::Value;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::query::Query;
use sqlx::{Connection, Database, Executor, IntoArguments};

use crate::dialect::{ColumnSql, Dialect};
use crate::{lock_lost, DbError, DbErrorKind, FetchRequest, LockHolder, Read, Row};

/// The connection type of an engine's database.
pub(crate) type Conn<E> = <<E as SqlxEngine>::Db as Database>::Connection;
/// The arguments of a query on an engine's database.
pub(crate) type Args<'q, E> = <<E as SqlxEngine>::Db as Database>::Arguments<'q>;
/// A query on an engine's database.
pub(crate) type SqlxQuery<'q, E> = Query<'q, <E as SqlxEngine>::Db, Args<'q, E>>;

/// A table's schema (`None` when it does not exist) and its column SQL.
pub(crate) type Introspected<C> = Result<(Option<TableSchema>, C), sqlx::Error>;

/// The per-engine parts of a sqlx store.
pub(crate) trait SqlxEngine: Send + Sync + Sized + 'static
where
    for<'c> &'c mut Conn<Self>: Executor<'c, Database = Self::Db>,
    for<'q> Args<'q, Self>: IntoArguments<'q, Self::Db>,
{
    type Db: Database;
    /// What Ferry knows of one table's columns (casts, byte-order
    /// collations, column types).
    type Cols: ColumnSql + Send + Sync + 'static;
    /// What decoding the rows of one read needs, worked out once per read.
    type RowInfo: Send + Sync;
    const D: Dialect;
    /// [`crate::Capabilities::reads_at_once`]: a fetch of many keys reads
    /// them in pieces of [`FETCH_PIECE`], this many at once, each on a
    /// pooled connection of its own.
    const READS_AT_ONCE: usize;

    /// A driver error as Ferry reports it (kind, column, message).
    fn err(env: &str, e: sqlx::Error) -> DbError;
    /// Binds `values` to `q` as the engine writes them.
    fn bind<'q>(q: SqlxQuery<'q, Self>, values: &'q [Value]) -> SqlxQuery<'q, Self>;
    /// Most rows of `per_row` values each per statement.
    fn chunk_size(per_row: usize) -> usize;
    fn row_info(cols: &Self::Cols, columns: &[String]) -> Self::RowInfo;
    fn decode_row(row: &<Self::Db as Database>::Row, info: &Self::RowInfo) -> Result<Row, sqlx::Error>;
    /// A row to write (values in `names` order) as the columns keep it.
    fn fit(cols: &Self::Cols, env: &str, names: &[String], values: &[Value]) -> Result<Vec<Value>, DbError>;
    fn introspect<'a>(conn: &'a mut Conn<Self>, table: &'a str) -> BoxFuture<'a, Introspected<Self::Cols>>;
    /// Whether connection `id` still holds the writer lock, asked on `conn`
    /// inside the transaction about to commit.
    fn lock_held(conn: &mut Conn<Self>, id: i64) -> BoxFuture<'_, Result<bool, sqlx::Error>>;
    /// The version of Ferry's own tables, `None` before they exist.
    fn meta_version(conn: &mut Conn<Self>) -> BoxFuture<'_, Result<Option<i64>, sqlx::Error>>;
    /// The first column of a gate's query, whose type is not declared.
    fn decode_first(row: &<Self::Db as Database>::Row) -> Result<Value, sqlx::Error>;
    /// Whether `e` says a statement gave up waiting for a lock (a read
    /// ahead's connections wait a second at most: [`SqlxBase::ahead`]).
    fn lock_timed_out(e: &sqlx::Error) -> bool {
        let _ = e;
        false
    }
}

/// The state and the reads every sqlx store shares: the environment, the
/// pool of read-only connections, each table's column SQL, and which
/// connection holds the writer lock. A store derefs to its base, so its
/// own code reads `self.env` and `self.pool`.
pub(crate) struct SqlxBase<E: SqlxEngine>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    pub(crate) env: String,
    pub(crate) pool: sqlx::Pool<E::Db>,
    pub(crate) tables: Mutex<HashMap<String, Arc<E::Cols>>>,
    /// The connection holding this store's writer lock, checked before commits.
    pub(crate) lock: LockHolder,
    /// Where a write transaction reads the rows of its next chunk ahead
    /// while it writes the current one ([`read_ahead`]), for an engine
    /// whose statements wait on the disk page by page: read-only
    /// connections of their own that give up on a table's metadata lock
    /// after a second rather than wait for it. A schema change
    /// asked for while the transaction holds a table waits for the
    /// transaction, and every read of that table queues behind the schema
    /// change; a read ahead that waited there would wait for the
    /// transaction that waits for it.
    pub(crate) ahead: Option<sqlx::Pool<E::Db>>,
}

impl<E: SqlxEngine> SqlxBase<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    pub(crate) fn new(env: &str, pool: sqlx::Pool<E::Db>) -> Self {
        SqlxBase {
            env: env.to_string(),
            pool,
            tables: Mutex::new(HashMap::new()),
            lock: LockHolder::default(),
            ahead: None,
        }
    }

    /// The base, with the connections write transactions read ahead
    /// through ([`SqlxBase::ahead`]).
    pub(crate) fn reading_ahead(self, pool: sqlx::Pool<E::Db>) -> Self {
        SqlxBase {
            ahead: Some(pool),
            ..self
        }
    }

    fn err(&self, e: sqlx::Error) -> DbError {
        E::err(&self.env, e)
    }

    /// A table's column SQL, looked up once. A table that does not exist
    /// yet (Ferry's own, before the first write) is looked up again: its
    /// column types decide the decoding.
    pub(crate) async fn table_sql(&self, table: &str) -> Result<Arc<E::Cols>, DbError> {
        if let Some(t) = self.tables.lock().ok().and_then(|m| m.get(table).cloned()) {
            return Ok(t);
        }
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        let (schema, sql) = E::introspect(&mut conn, table).await.map_err(|e| self.err(e))?;
        let sql = Arc::new(sql);
        if schema.is_some() {
            if let Ok(mut m) = self.tables.lock() {
                m.insert(table.to_string(), sql.clone());
            }
        }
        Ok(sql)
    }

    /// [`crate::Store::ping`].
    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// [`crate::Store::table_schema`], keeping the table's column SQL.
    pub(crate) async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        let (schema, sql) = E::introspect(&mut conn, table)
            .await
            .map_err(|e| self.err(e).table(table))?;
        if schema.is_some() {
            if let Ok(mut m) = self.tables.lock() {
                m.insert(table.to_string(), Arc::new(sql));
            }
        }
        Ok(schema)
    }

    /// [`crate::Store::has_meta`].
    pub(crate) async fn has_meta(&self) -> Result<bool, DbError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        Ok(E::meta_version(&mut conn).await.map_err(|e| self.err(e))?.is_some())
    }

    /// [`crate::Store::fetch`], on reading connections: in pieces, several
    /// at once, where the engine's reads wait on the disk
    /// ([`SqlxEngine::READS_AT_ONCE`]).
    pub(crate) async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let cols = self.table_sql(&req.table).await?;
        if E::READS_AT_ONCE <= 1 || req.values.len() <= FETCH_PIECE {
            let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
            return fetch_on::<E>(&mut conn, &self.env, &cols, &req, Locking::No).await;
        }
        let cols = &cols;
        let mut shape = req;
        let values = std::mem::take(&mut shape.values);
        let reads: Vec<BoxFuture<'_, Result<Vec<Row>, DbError>>> = values
            .chunks(FETCH_PIECE)
            .map(|values| {
                let piece = FetchRequest {
                    values: values.to_vec(),
                    ..shape.clone()
                };
                Box::pin(async move {
                    let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
                    fetch_on::<E>(&mut conn, &self.env, cols, &piece, Locking::No).await
                }) as BoxFuture<'_, _>
            })
            .collect();
        let parts: Vec<Vec<Row>> = futures_util::stream::iter(reads)
            .buffered(E::READS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(parts.concat())
    }

    /// [`crate::SqlStore::query_scalar`], in a read-only session.
    pub(crate) async fn query_scalar(&self, sql: &str) -> Result<Option<Value>, DbError> {
        let row = sqlx::query(sql)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        match row {
            Some(r) if !sqlx::Row::is_empty(&r) => Ok(Some(E::decode_first(&r).map_err(|e| self.err(e))?)),
            _ => Ok(None),
        }
    }

    /// [`crate::Store::refresh_statistics`].
    pub(crate) async fn refresh_statistics(&self, table: &str) -> Result<(), DbError> {
        sqlx::query(&E::D.analyze(table))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e).table(table))
    }
}

/// How many keys one piece of a fetch read at once holds
/// ([`SqlxEngine::READS_AT_ONCE`]).
const FETCH_PIECE: usize = 512;

/// Whether [`fetch_on`] locks the rows it reads.
pub(crate) enum Locking<'p, E: SqlxEngine>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    No,
    /// Until the transaction ends ([`Dialect::fetch_for_update`]), reading
    /// each chunk's rows ahead, if the transaction does ([`read_ahead`]).
    ForUpdate(Option<&'p Ahead<E>>),
}

/// Reads the rows `req` matches, in chunks.
pub(crate) async fn fetch_on<E: SqlxEngine>(
    conn: &mut Conn<E>,
    env: &str,
    cols: &E::Cols,
    req: &FetchRequest,
    locking: Locking<'_, E>,
) -> Result<Vec<Row>, DbError>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    let info = E::row_info(cols, &req.columns);
    let (for_update, through) = match locking {
        Locking::No => (false, None),
        Locking::ForUpdate(ahead) => (true, ahead),
    };
    let chunks: Vec<&[Row]> = req.values.chunks(E::chunk_size(req.match_columns.len())).collect();
    let ahead = |i: usize| {
        let keys = through.and(chunks.get(i)).map(|chunk| FetchRequest {
            columns: req.match_columns.clone(),
            values: chunk.to_vec(),
            flag: None,
            filter: None,
            ..req.clone()
        });
        read_ahead::<E>(through, env, cols, keys)
    };
    ahead(0).await?;
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let (sql, flat) = if for_update {
            E::D.fetch_for_update(req, chunk, cols)
        } else {
            E::D.fetch(req, chunk, cols)
        };
        let read = E::bind(sqlx::query(&sql), &flat).fetch_all(&mut *conn);
        let (rows, next) = futures_util::future::join(read, ahead(i + 1)).await;
        let rows = rows.map_err(|e| E::err(env, e).table(&req.table))?;
        next?;
        for r in &rows {
            out.push(E::decode_row(r, &info).map_err(|e| E::err(env, e).table(&req.table))?);
        }
    }
    Ok(out)
}

/// The fewest rows a write reads ahead: for fewer, the extra round trip
/// costs about what it saves.
const AHEAD_AT_LEAST: usize = 64;

/// What a write transaction reads ahead through: the store's connections
/// for it ([`SqlxBase::ahead`]), and whether it stopped.
pub(crate) struct Ahead<E: SqlxEngine>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    pool: sqlx::Pool<E::Db>,
    /// Set once a read ahead found a table's metadata lock wanted by a
    /// schema change: the transaction reads nothing ahead after that.
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl<E: SqlxEngine> Clone for Ahead<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    fn clone(&self) -> Self {
        Ahead {
            pool: self.pool.clone(),
            stopped: self.stopped.clone(),
        }
    }
}

/// Reads the rows `keys` matches through `ahead` (when there are both), in
/// [`SqlxEngine::READS_AT_ONCE`] pieces at once, and drops them: a write
/// transaction's next chunk,
/// read while it writes the current one. On InnoDB a statement fetches the
/// pages its buffer pool lacks one after another, each a wait on the
/// disk; read ahead from several connections, the pages are in the pool
/// when the transaction's statement needs them. The reads are plain
/// consistent reads: they take no row lock and see nothing uncommitted,
/// and what they find does not matter, only that the pages were fetched.
///
/// A read that gives up on a table's metadata lock (a schema change waits
/// for the transaction, and reads queue behind it: [`SqlxBase::ahead`])
/// stops the reading ahead for the rest of the transaction, which goes on
/// without it; any other error fails the write like its own would.
pub(crate) async fn read_ahead<E: SqlxEngine>(
    ahead: Option<&Ahead<E>>,
    env: &str,
    cols: &E::Cols,
    keys: Option<FetchRequest>,
) -> Result<(), DbError>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    use std::sync::atomic::Ordering::Relaxed;
    let (Some(ahead), Some(mut keys)) = (ahead, keys) else {
        return Ok(());
    };
    if keys.values.len() < AHEAD_AT_LEAST || ahead.stopped.load(Relaxed) {
        return Ok(());
    }
    let values = std::mem::take(&mut keys.values);
    let piece = values.len().div_ceil(E::READS_AT_ONCE.max(1));
    let shape = &keys;
    let reads = values.chunks(piece).map(|values| async move {
        let mut conn = ahead.pool.acquire().await.map_err(|e| E::err(env, e))?;
        for chunk in values.chunks(E::chunk_size(shape.match_columns.len())) {
            let (sql, flat) = E::D.fetch(shape, chunk, cols);
            match E::bind(sqlx::query(&sql), &flat).execute(&mut *conn).await {
                Ok(_) => {}
                Err(e) if E::lock_timed_out(&e) => {
                    tracing::debug!(table = %shape.table, "no more reading ahead: a schema change waits for the table");
                    ahead.stopped.store(true, Relaxed);
                    return Ok(());
                }
                Err(e) => return Err(E::err(env, e).table(&shape.table)),
            }
        }
        Ok(())
    });
    futures_util::future::try_join_all(reads).await.map(drop)
}

/// The keys of `rows` (the values of `names` each) that a write finds its
/// rows by, as a fetch of `table` reading only `key`: the columns whose
/// value is the same in every row are fixed (an index-friendly
/// `a = $1 AND b IN (...)`), the others matched.
/// `None` when `names` lacks a column of `key`.
pub(crate) fn keys_of(table: &str, key: &[String], names: &[String], rows: &[Vec<Value>]) -> Option<FetchRequest> {
    let at: Vec<usize> = key
        .iter()
        .map(|k| names.iter().position(|n| n == k))
        .collect::<Option<_>>()?;
    let (mut fixed, mut matched) = (Vec::new(), Vec::new());
    for (n, (&i, col)) in at.iter().zip(key).enumerate() {
        let first = rows.first().map(|r| &r[i]);
        let same = first.is_some_and(|v| !v.is_null() && rows.iter().all(|r| &r[i] == v));
        // At least one column is matched: the values list the rows.
        if same && (n + 1 < key.len() || !matched.is_empty()) {
            fixed.push((col.clone(), first.cloned().unwrap_or(Value::Null)));
        } else {
            matched.push(i);
        }
    }
    Some(FetchRequest {
        table: table.to_string(),
        columns: key.to_vec(),
        match_columns: matched.iter().map(|&i| names[i].clone()).collect(),
        values: rows
            .iter()
            .map(|r| matched.iter().map(|&i| r[i].clone()).collect())
            .collect(),
        flag: None,
        filter: None,
        fixed,
    })
}

/// The error of a use of a transaction after its commit.
fn closed_txn(env: &str) -> DbError {
    DbError::new(DbErrorKind::Query, env, "the transaction is closed")
}

/// A write transaction on a connection of its own: closing the connection
/// without `COMMIT` rolls back.
pub(crate) struct SqlxTxn<E: SqlxEngine>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    pub(crate) env: String,
    pub(crate) conn: Option<Conn<E>>,
    pub(crate) tables: HashMap<String, Arc<E::Cols>>,
    /// The store's writer lock, checked before the commit.
    pub(crate) lock: LockHolder,
    /// What the transaction reads a write's rows ahead through, when its
    /// store does ([`SqlxBase::ahead`], [`read_ahead`]).
    pub(crate) ahead: Option<Ahead<E>>,
}

impl<E: SqlxEngine> SqlxTxn<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    /// A transaction on `conn` of the store whose base is `base`.
    pub(crate) fn new(base: &SqlxBase<E>, conn: Conn<E>) -> Self {
        SqlxTxn {
            env: base.env.clone(),
            conn: Some(conn),
            tables: HashMap::new(),
            lock: base.lock.clone(),
            ahead: base.ahead.clone().map(|pool| Ahead {
                pool,
                stopped: Default::default(),
            }),
        }
    }

    pub(crate) fn conn(&mut self) -> Result<&mut Conn<E>, DbError> {
        self.conn.as_mut().ok_or_else(|| closed_txn(&self.env))
    }

    /// The table's column SQL, read inside the transaction once.
    pub(crate) async fn cols(&mut self, table: &str) -> Result<Arc<E::Cols>, DbError> {
        if let Some(t) = self.tables.get(table) {
            return Ok(t.clone());
        }
        let env = self.env.clone();
        let (_, sql) = E::introspect(self.conn()?, table)
            .await
            .map_err(|e| E::err(&env, e).table(table))?;
        let sql = Arc::new(sql);
        self.tables.insert(table.to_string(), sql.clone());
        Ok(sql)
    }

    /// Runs `sql` once per row of `rows` (values of `names` each); an
    /// error names the table and the row.
    pub(crate) async fn exec_rows(
        &mut self,
        table: &str,
        cols: &E::Cols,
        names: &[String],
        sql: &str,
        rows: Vec<Vec<Value>>,
    ) -> Result<(), DbError> {
        let env = self.env.clone();
        let conn = self.conn()?;
        for (i, values) in rows.iter().enumerate() {
            let values = E::fit(cols, &env, names, values).map_err(|e| e.table(table).row(i))?;
            E::bind(sqlx::query(sql), &values)
                .execute(&mut *conn)
                .await
                .map_err(|e| E::err(&env, e).table(table).row(i))?;
        }
        Ok(())
    }

    /// [`crate::Txn::delete_in`]: one statement per chunk of `values`.
    pub(crate) async fn delete_in_chunks(
        &mut self,
        table: &str,
        fixed: &[(String, Value)],
        column: &str,
        values: &[Value],
    ) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let env = self.env.clone();
        let names: Vec<String> = fixed.iter().map(|(c, _)| c.clone()).collect();
        let ahead = self.ahead.clone();
        let chunks: Vec<&[Value]> = values
            .chunks(E::chunk_size(1).saturating_sub(fixed.len()).max(1))
            .collect();
        let read_ahead = |i: usize| {
            let keys = ahead.as_ref().and(chunks.get(i)).map(|chunk| FetchRequest {
                table: table.to_string(),
                columns: vec![column.to_string()],
                match_columns: vec![column.to_string()],
                values: chunk.iter().map(|v| vec![v.clone()]).collect(),
                flag: None,
                filter: None,
                fixed: fixed.to_vec(),
            });
            read_ahead::<E>(ahead.as_ref(), &env, &cols, keys)
        };
        read_ahead(0).await?;
        let conn = self.conn.as_mut().ok_or_else(|| closed_txn(&env))?;
        for (i, chunk) in chunks.iter().enumerate() {
            let sql = E::D.delete_in(table, &names, column, chunk.len(), &*cols);
            let params: Vec<Value> = fixed
                .iter()
                .map(|(_, v)| v.clone())
                .chain(chunk.iter().cloned())
                .collect();
            let delete = E::bind(sqlx::query(&sql), &params).execute(&mut *conn);
            let (done, next) = futures_util::future::join(delete, read_ahead(i + 1)).await;
            done.map_err(|e| E::err(&env, e).table(table))?;
            next?;
        }
        Ok(())
    }

    /// [`crate::Txn::commit`]: when the store holds its writer lock, checks
    /// inside the transaction that the lock is still held, and otherwise
    /// rolls back with [`lock_lost`].
    pub(crate) async fn commit_checked(mut self) -> Result<(), DbError> {
        let env = self.env.clone();
        let mut conn = self.conn.take().ok_or_else(|| closed_txn(&env))?;
        if let Some(id) = self.lock.held_by() {
            let held = E::lock_held(&mut conn, id).await.map_err(|e| E::err(&env, e))?;
            if !held {
                let _ = conn.execute("ROLLBACK").await;
                let _ = conn.close().await;
                return Err(lock_lost(&env));
            }
        }
        conn.execute("COMMIT").await.map_err(|e| match E::err(&env, e) {
            e if e.kind == DbErrorKind::Unreachable => crate::closed(e, true),
            e => e,
        })?;
        let _ = conn.close().await;
        Ok(())
    }
}

#[async_trait]
impl<E: SqlxEngine> Read for SqlxTxn<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    fn env(&self) -> &str {
        &self.env
    }

    async fn fetch(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let cols = self.cols(&req.table).await?;
        let env = self.env.clone();
        fetch_on::<E>(self.conn()?, &env, &cols, &req, Locking::No).await
    }

    async fn fetch_for_update(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let cols = self.cols(&req.table).await?;
        let env = self.env.clone();
        let conn = self.conn.as_mut().ok_or_else(|| closed_txn(&env))?;
        fetch_on::<E>(conn, &env, &cols, &req, Locking::ForUpdate(self.ahead.as_ref())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Value {
        Value::Text(t.to_string())
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn the_keys_a_write_reads_ahead_fix_what_every_row_shares() {
        // `_ferry_sync`'s rows: one environment and table, many row keys.
        let cols = names(&["source_env", "table_name", "row_key", "row_hash"]);
        let key = names(&["source_env", "table_name", "row_key"]);
        let row = |k: &str| vec![text("staging"), text("forms"), text(k), Value::Bytes(vec![1])];
        let keys = keys_of("_ferry_sync", &key, &cols, &[row("1"), row("2")]).expect("the key is written");
        assert_eq!(keys.columns, key);
        assert_eq!(
            keys.fixed,
            vec![
                ("source_env".to_string(), text("staging")),
                ("table_name".to_string(), text("forms"))
            ]
        );
        assert_eq!(keys.match_columns, names(&["row_key"]));
        assert_eq!(keys.values, vec![vec![text("1")], vec![text("2")]]);

        // One row: its last key column is still matched.
        let one = keys_of("_ferry_sync", &key, &cols, &[row("1")]).expect("the key is written");
        assert_eq!((one.fixed.len(), one.match_columns.clone()), (2, names(&["row_key"])));

        // An update's values come first, its key last; a column that
        // differs is matched, a shared NULL is not fixed.
        let cols = names(&["label", "a", "b"]);
        let key = names(&["a", "b"]);
        let rows = vec![
            vec![text("x"), Value::Int(1), Value::Null],
            vec![text("y"), Value::Int(2), Value::Null],
        ];
        let keys = keys_of("t", &key, &cols, &rows).expect("the key is written");
        assert!(keys.fixed.is_empty());
        assert_eq!(keys.match_columns, key);
        assert_eq!(
            keys.values,
            vec![vec![Value::Int(1), Value::Null], vec![Value::Int(2), Value::Null]]
        );

        // A key column the write does not give: nothing to read ahead by.
        assert!(keys_of("t", &names(&["id"]), &names(&["label"]), &[vec![text("x")]]).is_none());
    }
}
