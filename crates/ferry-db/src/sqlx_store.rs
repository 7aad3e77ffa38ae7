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
            return fetch_on::<E>(&mut conn, &self.env, &cols, &req, false).await;
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
                    fetch_on::<E>(&mut conn, &self.env, cols, &piece, false).await
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

/// Reads the rows `req` matches, in chunks; `for_update` locks them until
/// the transaction ends ([`Dialect::fetch_for_update`]).
pub(crate) async fn fetch_on<E: SqlxEngine>(
    conn: &mut Conn<E>,
    env: &str,
    cols: &E::Cols,
    req: &FetchRequest,
    for_update: bool,
) -> Result<Vec<Row>, DbError>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    let info = E::row_info(cols, &req.columns);
    let mut out = Vec::new();
    for chunk in req.values.chunks(E::chunk_size(req.match_columns.len())) {
        let (sql, flat) = if for_update {
            E::D.fetch_for_update(req, chunk, cols)
        } else {
            E::D.fetch(req, chunk, cols)
        };
        let rows = E::bind(sqlx::query(&sql), &flat)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| E::err(env, e).table(&req.table))?;
        for r in &rows {
            out.push(E::decode_row(r, &info).map_err(|e| E::err(env, e).table(&req.table))?);
        }
    }
    Ok(out)
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
}

impl<E: SqlxEngine> SqlxTxn<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::Db>,
    for<'q> Args<'q, E>: IntoArguments<'q, E::Db>,
{
    pub(crate) fn new(env: &str, conn: Conn<E>, lock: LockHolder) -> Self {
        SqlxTxn {
            env: env.to_string(),
            conn: Some(conn),
            tables: HashMap::new(),
            lock,
        }
    }

    pub(crate) fn conn(&mut self) -> Result<&mut Conn<E>, DbError> {
        self.conn
            .as_mut()
            .ok_or_else(|| DbError::new(DbErrorKind::Query, &self.env, "the transaction is closed"))
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
        let conn = self.conn()?;
        for chunk in values.chunks(E::chunk_size(1).saturating_sub(fixed.len()).max(1)) {
            let sql = E::D.delete_in(table, &names, column, chunk.len(), &*cols);
            let params: Vec<Value> = fixed
                .iter()
                .map(|(_, v)| v.clone())
                .chain(chunk.iter().cloned())
                .collect();
            E::bind(sqlx::query(&sql), &params)
                .execute(&mut *conn)
                .await
                .map_err(|e| E::err(&env, e).table(table))?;
        }
        Ok(())
    }

    /// [`crate::Txn::commit`]: when the store holds its writer lock, checks
    /// inside the transaction that the lock is still held, and otherwise
    /// rolls back with [`lock_lost`].
    pub(crate) async fn commit_checked(mut self) -> Result<(), DbError> {
        let env = self.env.clone();
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| DbError::new(DbErrorKind::Query, &env, "the transaction is closed"))?;
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
        fetch_on::<E>(self.conn()?, &env, &cols, &req, false).await
    }

    async fn fetch_for_update(&mut self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        let cols = self.cols(&req.table).await?;
        let env = self.env.clone();
        fetch_on::<E>(self.conn()?, &env, &cols, &req, true).await
    }
}
