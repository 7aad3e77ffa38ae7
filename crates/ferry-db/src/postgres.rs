//! PostgreSQL through sqlx's concrete driver.
//!
//! Reads decode each column by its PostgreSQL type; types the driver cannot
//! decode exactly (NUMERIC, enums, intervals, arrays, ...) are read as
//! text. Writes bind every value as text with a cast to the column's type
//! (`$1::numeric`), so PostgreSQL itself parses it: exact for decimals,
//! JSON, timestamps and enums alike. The write transaction runs on its own
//! connection (closing it rolls back); the writer lock is a session
//! advisory lock on a connection of its own, held for the whole operation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use ferry_core::schema::{ColumnSchema, ForeignKey, TableSchema};
use ferry_core::value::{fit, round_to_single, ColumnType, Json, LogicalType, Value};
use futures_util::future::BoxFuture;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Column, ConnectOptions, Connection, Executor, Postgres, Row as _, TypeInfo};
use tokio::sync::mpsc;

use crate::dialect::{ColumnSql, Dialect};
use crate::meta;
use crate::raw::RawBatches;
use crate::sqlx_store::{Introspected, SqlxBase, SqlxEngine, SqlxTxn};
use crate::{
    Capabilities, DbError, DbErrorKind, Engine, FetchRequest, KeyBlock, KeyBlocks, Row, RowBatches, ScanRequest,
    SqlStore, Store, Txn, WriterLock,
};

const D: Dialect = Dialect::Postgres;

#[path = "pgclone.rs"]
mod clone;

/// Advisory locks are per database: one key serves every target.
const LOCK_KEY: &str = "ferry-writer";

/// Whether backend `$1` still holds the writer lock of key `$2` in this
/// database (a one-`bigint` advisory lock shows as `classid`/`objid`, its
/// high and low halves, with `objsubid` 1).
const LOCK_HELD: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
     AND pid = $1 AND objsubid = 1 AND ((classid::int8 << 32) | objid::int8) = hashtext($2)::int8 \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))";

/// What Ferry needs to know to read and write one table's columns.
#[derive(Clone, Debug, Default)]
pub(crate) struct TableSql {
    /// column -> its type as a cast target (`numeric`, `character varying`).
    casts: HashMap<String, String>,
    /// columns read as `::text`
    as_text: Vec<String>,
    /// columns whose order needs `COLLATE "C"` (text-like)
    textual: Vec<String>,
    /// column -> its type, to write values as the column keeps them
    types: HashMap<String, ColumnType>,
}

impl TableSql {
    /// A row to write (values in `names` order) as the columns keep it
    /// ([`fit`]). PostgreSQL text cannot hold the NUL character: such a
    /// value is refused here, naming its column (the server would not).
    fn fit(&self, env: &str, names: &[String], values: &[Value]) -> Result<Vec<Value>, DbError> {
        names
            .iter()
            .zip(values)
            .map(|(name, v)| {
                if let Value::Text(s) = v {
                    if s.contains('\0') {
                        let mut e = DbError::new(
                            DbErrorKind::Constraint,
                            env,
                            "the text holds a NUL character (\\0), which PostgreSQL text cannot store",
                        );
                        e.column = Some(name.clone());
                        return Err(e);
                    }
                }
                Ok(self.types.get(name).map_or_else(|| v.clone(), |t| fit(v, t)))
            })
            .collect()
    }
}

impl ColumnSql for TableSql {
    fn dialect(&self) -> Dialect {
        D
    }
    fn read(&self, col: &str) -> String {
        if self.as_text.iter().any(|c| c == col) {
            format!("{}::text", D.ident(col))
        } else {
            D.ident(col)
        }
    }
    fn param(&self, col: &str, placeholder: String) -> String {
        match self.casts.get(col) {
            Some(t) => format!("{placeholder}::{t}"),
            None => placeholder,
        }
    }
    fn order(&self, col: &str) -> String {
        if self.textual.iter().any(|c| c == col) {
            format!("{} COLLATE \"C\"", D.ident(col))
        } else {
            D.ident(col)
        }
    }
}

/// PostgreSQL's parts of the sqlx stores' shared code (`sqlx_store.rs`).
pub(crate) struct Pg;

impl SqlxEngine for Pg {
    type Db = Postgres;
    type Cols = TableSql;
    type RowInfo = ();
    const D: Dialect = D;
    /// PostgreSQL reads through the system's file cache: its reads cost
    /// CPU, and more than two at once only contend for it (the
    /// benchmark's plan took as long with 4 or 8).
    const READS_AT_ONCE: usize = 2;

    fn err(env: &str, e: sqlx::Error) -> DbError {
        err(env, e)
    }
    fn bind<'q>(q: Query<'q, Postgres, PgArguments>, values: &'q [Value]) -> Query<'q, Postgres, PgArguments> {
        bind_all(q, values)
    }
    fn chunk_size(per_row: usize) -> usize {
        chunk_size(per_row)
    }
    fn row_info(_: &TableSql, _: &[String]) {}
    fn decode_row(row: &PgRow, _: &()) -> Result<Row, sqlx::Error> {
        decode_row(row)
    }
    fn fit(cols: &TableSql, env: &str, names: &[String], values: &[Value]) -> Result<Vec<Value>, DbError> {
        cols.fit(env, names, values)
    }
    fn introspect<'a>(conn: &'a mut PgConnection, table: &'a str) -> BoxFuture<'a, Introspected<TableSql>> {
        Box::pin(introspect(conn, table))
    }
    fn meta_version(conn: &mut PgConnection) -> BoxFuture<'_, Result<Option<i64>, sqlx::Error>> {
        Box::pin(meta_version(conn))
    }
    fn decode_first(row: &PgRow) -> Result<Value, sqlx::Error> {
        decode(row, 0)
    }
    fn lock_held(conn: &mut PgConnection, pid: i64) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        Box::pin(async move {
            sqlx::query_scalar(LOCK_HELD)
                .bind(pid as i32)
                .bind(LOCK_KEY)
                .fetch_one(conn)
                .await
        })
    }
}

pub(crate) const BACKEND: crate::registry::Backend = crate::registry::Backend {
    engine: Engine::Postgres,
    url: ferry_core::config::UrlKind {
        prefixes: &["postgres://", "postgresql://"],
        example: "postgres://USER@HOST/DB",
    },
    open: |o| Box::pin(async move { Ok(Arc::new(PgStore::connect(o.env, o.url).await?) as Arc<dyn Store>) }),
};

pub(crate) struct PgStore {
    base: SqlxBase<Pg>,
    options: PgConnectOptions,
}

impl std::ops::Deref for PgStore {
    type Target = SqlxBase<Pg>;
    fn deref(&self) -> &SqlxBase<Pg> {
        &self.base
    }
}

/// The session of the connections that read.
const READ_ONLY: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";

fn err(env: &str, e: sqlx::Error) -> DbError {
    // The server ended the session (57P01 `pg_terminate_backend`, 57P02/03
    // shutdown) or the socket closed.
    let gone = match &e {
        sqlx::Error::Io(io) => crate::io_closed(io),
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("57P") || c == "08006"),
        _ => false,
    };
    let out = err_of(env, e);
    if gone {
        crate::closed(out, false)
    } else {
        out
    }
}

fn err_of(env: &str, e: sqlx::Error) -> DbError {
    let kind = match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some(c) if c.starts_with("23") => DbErrorKind::Constraint,
            Some("55P03") | Some("40P01") => DbErrorKind::Busy,
            _ => DbErrorKind::Query,
        },
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            DbErrorKind::Unreachable
        }
        _ => DbErrorKind::Query,
    };
    let mut out = DbError::new(kind, env, e.to_string());
    if let sqlx::Error::Database(d) = &e {
        if let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            out.column = pg.column().map(str::to_string);
            out.table = pg.table().map(str::to_string);
            if let Some(detail) = pg.detail() {
                out.message = format!("{} ({detail})", pg.message());
            } else {
                out.message = pg.message().to_string();
            }
            if pg.code() == crate::READ_ONLY_SQLSTATE {
                out.message.push_str(crate::READ_ONLY_HINT);
            }
        }
    }
    out
}

/// Logical type of a PostgreSQL type (`regtype` text and `typtype`).
fn logical(regtype: &str, typtype: &str, typmod: i32) -> ColumnType {
    let mut t = ColumnType::new(match regtype {
        "smallint" | "integer" | "bigint" => LogicalType::Int,
        "real" | "double precision" => LogicalType::Float,
        "numeric" => LogicalType::Decimal,
        "boolean" => LogicalType::Bool,
        "bytea" => LogicalType::Bytes,
        "json" | "jsonb" => LogicalType::Json,
        "date" => LogicalType::Date,
        "time without time zone" => LogicalType::Time,
        "timestamp without time zone" => LogicalType::Timestamp,
        "timestamp with time zone" => LogicalType::TimestampTz,
        "uuid" => LogicalType::Uuid,
        _ => LogicalType::Text,
    });
    let _ = typtype;
    // char(n) is blank-padded: read as `::text`, which drops the padding.
    t.blank_padded = regtype == "character";
    match regtype {
        "smallint" => t.int_range = Some((i16::MIN.into(), i16::MAX.into())),
        "integer" => t.int_range = Some((i32::MIN.into(), i32::MAX.into())),
        "real" => t.float_bits = Some(32),
        "character varying" | "character" if typmod > 4 => t.max_chars = Some((typmod - 4) as u32),
        // time(p), timestamp(p): typmod is p (-1: the default, 6 digits).
        "time without time zone" | "timestamp without time zone" | "timestamp with time zone"
            if (0..6).contains(&typmod) =>
        {
            t.fraction_digits = Some(typmod as u8)
        }
        // numeric(p, s): typmod - 4 = p << 16 | s (s as 11 signed bits).
        "numeric" if typmod >= 4 => {
            let m = typmod - 4;
            let (precision, scale) = ((m >> 16) & 0xffff, ((m & 0x7ff) ^ 1024) - 1024);
            if (0..=precision).contains(&scale) {
                t.decimal_digits = Some((precision as u32, scale as u32));
            }
        }
        _ => {}
    }
    t
}

/// The type a parameter is cast to for a column of `regtype`. `regtype`
/// drops the length, and a bare `character` or `bit` means length 1: an
/// explicit cast to it would cut `'FRA'` to `'F'` without a word. Their
/// unbounded forms leave the length check to the column itself.
fn cast_type(regtype: &str) -> &str {
    match regtype {
        "character" => "bpchar",
        "bit" => "varbit",
        other => other,
    }
}

/// Types read natively; every other is read as text.
fn native(regtype: &str) -> bool {
    matches!(
        regtype,
        "smallint"
            | "integer"
            | "bigint"
            | "real"
            | "double precision"
            | "boolean"
            | "text"
            | "character varying"
            | "name"
            | "bytea"
            | "json"
            | "jsonb"
            | "date"
            | "time without time zone"
            | "timestamp without time zone"
            | "timestamp with time zone"
            | "uuid"
    )
}

fn decode(row: &PgRow, i: usize) -> Result<Value, sqlx::Error> {
    let name = row.column(i).type_info().name().to_string();
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<Option<$t>, _>(i)?
        };
    }
    Ok(match name.as_str() {
        "INT2" => get!(i16).map_or(Value::Null, |v| Value::Int(v.into())),
        "INT4" => get!(i32).map_or(Value::Null, |v| Value::Int(v.into())),
        "INT8" => get!(i64).map_or(Value::Null, Value::Int),
        "FLOAT4" => get!(f32).map_or(Value::Null, |v| Value::Float(round_to_single(f64::from(v)))),
        "FLOAT8" => get!(f64).map_or(Value::Null, Value::Float),
        "BOOL" => get!(bool).map_or(Value::Null, Value::Bool),
        "BYTEA" => get!(Vec<u8>).map_or(Value::Null, Value::Bytes),
        // `json` keeps its text (its binary form is the text), to be written
        // as it is; `jsonb` has none of its own.
        "JSON" => match row.try_get_unchecked::<Option<&str>, _>(i)? {
            Some(t) => Value::Json(Json::from_text(t).map_err(|e| sqlx::Error::Decode(Box::new(e)))?),
            None => Value::Null,
        },
        "JSONB" => get!(serde_json::Value).map_or(Value::Null, |j| Value::Json(j.into())),
        "DATE" => get!(NaiveDate).map_or(Value::Null, Value::Date),
        "TIME" => get!(NaiveTime).map_or(Value::Null, Value::Time),
        "TIMESTAMP" => get!(NaiveDateTime).map_or(Value::Null, Value::Timestamp),
        "TIMESTAMPTZ" => get!(DateTime<Utc>).map_or(Value::Null, Value::TimestampTz),
        "UUID" => get!(uuid::Uuid).map_or(Value::Null, |u| Value::Uuid(*u.as_bytes())),
        _ => get!(String).map_or(Value::Null, Value::Text),
    })
}

/// One value in PostgreSQL's binary format (big-endian integers, times in
/// microseconds from 2000-01-01), as [`decode`] reads it through sqlx.
fn decode_binary(ty: &str, b: &[u8]) -> Option<Value> {
    let epoch = || NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let micros = |b: &[u8]| -> Option<chrono::Duration> {
        Some(chrono::Duration::microseconds(i64::from_be_bytes(b.try_into().ok()?)))
    };
    Some(match ty {
        "INT2" => Value::Int(i16::from_be_bytes(b.try_into().ok()?).into()),
        "INT4" => Value::Int(i32::from_be_bytes(b.try_into().ok()?).into()),
        "INT8" => Value::Int(i64::from_be_bytes(b.try_into().ok()?)),
        "FLOAT4" => Value::Float(round_to_single(f64::from(f32::from_be_bytes(b.try_into().ok()?)))),
        "FLOAT8" => Value::Float(f64::from_be_bytes(b.try_into().ok()?)),
        "BOOL" => Value::Bool(*b.first()? != 0),
        "BYTEA" => Value::Bytes(b.to_vec()),
        "JSON" => Value::Json(Json::from_text(std::str::from_utf8(b).ok()?).ok()?),
        // JSONB: a version byte (1), then the text.
        "JSONB" => match b.split_first()? {
            (1, text) => Value::Json(serde_json::from_slice::<serde_json::Value>(text).ok()?.into()),
            _ => return None,
        },
        "DATE" => {
            let days = i32::from_be_bytes(b.try_into().ok()?);
            Value::Date(
                epoch()?
                    .date()
                    .checked_add_signed(chrono::Duration::days(days.into()))?,
            )
        }
        "TIME" => Value::Time(NaiveTime::from_hms_opt(0, 0, 0)?.overflowing_add_signed(micros(b)?).0),
        "TIMESTAMP" => Value::Timestamp(epoch()?.checked_add_signed(micros(b)?)?),
        "TIMESTAMPTZ" => Value::TimestampTz(epoch()?.checked_add_signed(micros(b)?)?.and_utc()),
        "UUID" => Value::Uuid(b.try_into().ok()?),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => Value::Text(std::str::from_utf8(b).ok()?.to_string()),
        _ => return None,
    })
}

fn decode_row(row: &PgRow) -> Result<Row, sqlx::Error> {
    (0..row.len()).map(|i| decode(row, i)).collect()
}

/// The text PostgreSQL parses back into the value (bound with a cast).
fn text_of(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Float(f) if f.is_nan() => "NaN".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        Value::Bytes(b) => format!("\\x{}", ferry_core::canonical::hex(b)),
        Value::Json(j) => j.to_string(),
        Value::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
        Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        Value::Time(t) => t.format("%H:%M:%S%.6f").to_string(),
        other => other.display_text(),
    })
}

fn bind_all<'q>(mut q: Query<'q, Postgres, PgArguments>, values: &[Value]) -> Query<'q, Postgres, PgArguments> {
    for v in values {
        q = q.bind(text_of(v));
    }
    q
}

/// Rows per multi-row write: the statement is the same for any number (one
/// array per column), so this only bounds the memory of one chunk.
const UNNEST_ROWS: usize = 5_000;

fn chunk_size(per_row: usize) -> usize {
    (D.max_params() / per_row.max(1)).clamp(1, 1000)
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL). The error never shows the password.
    pub async fn connect(env: &str, url: &str) -> Result<PgStore, DbError> {
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            DbError::new(
                DbErrorKind::Unreachable,
                env,
                format!("the URL {} is not valid: {e}", ferry_core::config::redact_url(url)),
            )
        })?;
        let options = options.log_statements(tracing::log::LevelFilter::Trace);
        let unreachable = |e: sqlx::Error| {
            DbError::new(
                DbErrorKind::Unreachable,
                env,
                format!(
                    "cannot connect to {}: {}",
                    ferry_core::config::redact_url(url),
                    err(env, e).message
                ),
            )
        };
        // One direct connection first: a refused or failing connection
        // fails at once rather than after the pool's acquire timeout.
        let probe = options.connect().await.map_err(unreachable)?;
        let _ = probe.close().await;
        // The pool only reads: its sessions are read-only, so SQL that a
        // read runs (a `--where` or `exclude` predicate, a gate's query)
        // cannot write (`nextval()`, a function that inserts). The write
        // transaction and the writer lock open connections of their own.
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(15))
            .after_connect(|conn, _| Box::pin(async move { conn.execute(READ_ONLY).await.map(|_| ()) }))
            .connect_lazy_with(options.clone());
        Ok(PgStore {
            // No reading ahead (`SqlxBase::ahead`): PostgreSQL reads
            // through the system's file cache, which holds the benchmark's
            // tables, and a write has nothing to win by it.
            base: SqlxBase::new(env, pool),
            options,
        })
    }

    /// A scan's SQL, prepared on the connection that will run it, so a bad
    /// predicate or table fails the call itself rather than the stream:
    /// its SQL and parameters, the connection it is prepared on, and the
    /// type names of the columns it returns (`INT8`, `TEXT`, ...).
    async fn prepared_scan(
        &self,
        req: &ScanRequest,
    ) -> Result<((String, Vec<Value>), sqlx::pool::PoolConnection<Postgres>, Vec<String>), DbError> {
        let cols = self.table_sql(&req.table).await?;
        let (sql, params) = D.scan(req, &*cols);
        let mut conn = self.pool.acquire().await.map_err(|e| err(&self.env, e))?;
        // Prepared with the parameter types `bind_all` binds (text, cast in
        // the SQL): the statement is cached, and the query reuses it.
        let text = <String as sqlx::Type<Postgres>>::type_info();
        let stmt = conn
            .prepare_with(sql.as_str(), &vec![text; params.len()])
            .await
            .map_err(|e| err(&self.env, e).table(&req.table))?;
        let types = crate::batches::type_names(&stmt);
        Ok(((sql, params), conn, types))
    }
}

async fn introspect(conn: &mut PgConnection, table: &str) -> Result<(Option<TableSchema>, TableSql), sqlx::Error> {
    let cols = sqlx::query(
        "SELECT a.attname::text, a.atttypid::regtype::text, a.atttypmod, NOT a.attnotnull, \
                (a.atthasdef OR a.attidentity <> ''), (a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%'), \
                a.attgenerated <> '', t.typtype::text, t.typcategory::text \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE c.oid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    if cols.is_empty() {
        return Ok((None, TableSql::default()));
    }
    let mut sql = TableSql::default();
    let mut columns = Vec::new();
    for r in &cols {
        let name: String = r.try_get(0)?;
        let regtype: String = r.try_get(1)?;
        let typmod: i32 = r.try_get(2)?;
        let generated: bool = r.try_get(6)?;
        let typtype: String = r.try_get(7)?;
        let category: String = r.try_get(8)?;
        if generated {
            continue;
        }
        if !native(&regtype) {
            sql.as_text.push(name.clone());
        }
        if category == "S" || typtype == "e" {
            sql.textual.push(name.clone());
        }
        sql.casts.insert(name.clone(), cast_type(&regtype).to_string());
        let ty = logical(&regtype, &typtype, typmod);
        sql.types.insert(name.clone(), ty.clone());
        columns.push(ColumnSchema {
            ty,
            declared: regtype,
            nullable: r.try_get(3)?,
            has_default: r.try_get(4)?,
            auto_increment: r.try_get(5)?,
            name,
        });
    }
    let pk: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisprimary \
         ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let fks = sqlx::query(
        "SELECT con.oid::int8, a.attname::text, rc.relname::text, ra.attname::text \
         FROM pg_constraint con \
         CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(src, dst, n) \
         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.src \
         JOIN pg_class rc ON rc.oid = con.confrelid \
         JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.dst \
         WHERE con.contype = 'f' AND con.conrelid = to_regclass(quote_ident($1)) \
         ORDER BY con.oid, k.n",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    let mut last = None;
    for r in fks {
        let id: i64 = r.try_get(0)?;
        if last != Some(id) {
            foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                ref_table: r.try_get(2)?,
                ref_columns: Vec::new(),
            });
            last = Some(id);
        }
        if let Some(fk) = foreign_keys.last_mut() {
            fk.columns.push(r.try_get(1)?);
            fk.ref_columns.push(r.try_get(3)?);
        }
    }
    // Unique indexes (UNIQUE constraints included) besides the primary
    // key; partial ones and those over expressions are left out.
    let rows = sqlx::query(
        "SELECT i.indexrelid::int8, a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique AND NOT i.indisprimary \
           AND i.indpred IS NULL AND i.indexprs IS NULL \
         ORDER BY i.indexrelid, k.n",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut unique: Vec<Vec<String>> = Vec::new();
    let mut last = None;
    for r in rows {
        let id: i64 = r.try_get(0)?;
        if last != Some(id) {
            unique.push(Vec::new());
            last = Some(id);
        }
        if let Some(u) = unique.last_mut() {
            u.push(r.try_get(1)?);
        }
    }
    Ok((
        Some(TableSchema {
            name: table.to_string(),
            columns,
            primary_key: pk,
            foreign_keys,
            unique,
            open_fields: None,
            carried: Vec::new(),
        }),
        sql,
    ))
}

async fn meta_version(conn: &mut PgConnection) -> Result<Option<i64>, sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass(quote_ident($1))::text")
        .bind(meta::SCHEMA)
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query_scalar(&format!("SELECT max(version)::int8 FROM {}", D.ident(meta::SCHEMA)))
        .fetch_one(&mut *conn)
        .await
}

#[async_trait]
impl SqlStore for PgStore {
    fn dialect(&self) -> Dialect {
        D
    }

    async fn query_scalar(&self, sql: &str) -> Result<Option<Value>, DbError> {
        self.base.query_scalar(sql).await
    }

    /// Aggregated by the server (`bit_or` per block): read through the
    /// primary key's index alone where the visibility map allows.
    async fn key_blocks(&self, table: &str, column: &str) -> Result<KeyBlocks, DbError> {
        let sql = D.key_blocks(table, column);
        let mut conn = self.pool.acquire().await.map_err(|e| err(&self.env, e))?;
        let (tx, rx) = mpsc::channel(4);
        let (env, table) = (self.env.clone(), table.to_string());
        tokio::spawn(async move {
            let stream = sqlx::query(&sql).fetch(&mut *conn);
            let decode = |r: &PgRow| {
                let (min, mask): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                Ok(KeyBlock {
                    block: min >> 6,
                    mask: mask as u64,
                })
            };
            crate::batches::send_blocks(stream, decode, |e| err(&env, e).table(&table), tx).await;
        });
        Ok(rx)
    }

    async fn create_clone(&self, name: &str, tables: &[String]) -> Result<(), DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        let parent: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        let db = crate::registry::server_db_name(&parent, name);
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&db)
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        if exists {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!(
                    "cannot clone environment `{}`: the database `{db}` exists already on its server; nothing was written",
                    self.env
                ),
            ));
        }
        conn.execute(format!("CREATE DATABASE {}", D.ident(&db)).as_str())
            .await
            .map_err(e)?;
        let made = async {
            let mut clone = clone::connect_to(&self.options, &db).await?;
            let copied = clone::copy_tables(&mut conn, &mut clone, tables).await;
            clone::close(clone).await;
            copied
        }
        .await;
        if let Err(why) = made {
            conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", D.ident(&db)).as_str())
                .await
                .map_err(e)?;
            return Err(crate::clone_failed(&self.env, &db, err(&self.env, why)));
        }
        Ok(())
    }

    async fn drop_clone(&self, name: &str) -> Result<(), DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        let parent: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        let db = crate::registry::server_db_name(&parent, name);
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", D.ident(&db)).as_str())
            .await
            .map_err(e)?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reads_at_once: <Pg as SqlxEngine>::READS_AT_ONCE,
            ..Capabilities::SQL
        }
    }

    fn as_sql(&self) -> Option<&dyn SqlStore> {
        Some(self)
    }

    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn env(&self) -> &str {
        &self.env
    }

    async fn ping(&self) -> Result<(), DbError> {
        self.base.ping().await
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, DbError> {
        self.base.table_schema(table).await
    }

    fn records(&self) -> Box<dyn crate::records::Records + '_> {
        Box::new(crate::records::SqlRecords(self))
    }

    async fn has_meta(&self) -> Result<bool, DbError> {
        self.base.has_meta().await
    }

    async fn scan(&self, req: ScanRequest) -> Result<RowBatches, DbError> {
        let ((sql, params), mut conn, _) = self.prepared_scan(&req).await?;
        let (tx, rx) = mpsc::channel(4);
        let env = self.env.clone();
        tokio::spawn(async move {
            let stream = bind_all(sqlx::query(&sql), &params).fetch(&mut *conn);
            crate::batches::send(stream, decode_row, |e| err(&env, e).table(&req.table), tx).await;
        });
        Ok(rx)
    }

    /// Reads through binary `COPY (SELECT ...) TO STDOUT` (`pgcopy.rs`):
    /// the same binary values as a query's, split without a row object each.
    /// `COPY` takes no parameters: a predicate with values (a key range or
    /// list) reads through [`Store::scan`] instead.
    async fn scan_raw(&self, req: ScanRequest) -> Result<RawBatches, DbError> {
        let (k, n) = (req.order_by.len(), req.columns.len());
        let ((sql, params), mut conn, types) = self.prepared_scan(&req).await?;
        if !params.is_empty() {
            drop(conn);
            return Ok(crate::raw::from_rows(self.scan(req).await?, k, n));
        }
        let (sender, rx) = crate::raw::channel(k);
        let cells: Vec<String> = types.get(k..n).unwrap_or_default().to_vec();
        let rx = rx.with_decoder(crate::raw::typed_decoder(cells, decode_binary));
        let env = self.env.clone();
        tokio::spawn(async move {
            let layout = crate::pgcopy::Layout {
                types: &types,
                key_len: k,
                columns: n,
                decode: decode_binary,
            };
            let copy = format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
            let read = match conn.copy_out_raw(&copy).await {
                Ok(stream) => crate::pgcopy::send_raw(stream, &layout, &sender).await,
                Err(e) => Err(e),
            };
            match read {
                Ok(true) => {}
                // The rest of the COPY may still be on its way: close the
                // connection rather than drain it when it is next used.
                Ok(false) => conn.close_on_drop(),
                Err(e) => {
                    conn.close_on_drop();
                    let _ = sender.send(Err(err(&env, e).table(&req.table))).await;
                }
            }
        });
        Ok(rx)
    }

    async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        self.base.fetch(req).await
    }

    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        if !got {
            return Ok(None);
        }
        let pid = backend_pid(&mut conn).await.map_err(e)?;
        Ok(Some(self.lock.guard(pid, conn)))
    }

    async fn lock_writer(&self) -> Result<WriterLock, DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
            .bind(LOCK_KEY)
            .execute(&mut conn)
            .await
            .map_err(e)?;
        let pid = backend_pid(&mut conn).await.map_err(e)?;
        Ok(self.lock.guard(pid, conn))
    }

    async fn refresh_statistics(&self, table: &str) -> Result<(), DbError> {
        self.base.refresh_statistics(table).await
    }

    async fn begin(&self) -> Result<Box<dyn Txn>, DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        conn.execute("BEGIN").await.map_err(e)?;
        let current = meta_version(&mut conn).await.map_err(e)?.unwrap_or(0);
        for (i, steps) in meta::migrations(D).iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            for s in steps {
                conn.execute(s.as_str()).await.map_err(e)?;
            }
            conn.execute(format!("DELETE FROM {}", D.ident(meta::SCHEMA)).as_str())
                .await
                .map_err(e)?;
            sqlx::query(&format!("INSERT INTO {} (version) VALUES ($1)", D.ident(meta::SCHEMA)))
                .bind(version)
                .execute(&mut conn)
                .await
                .map_err(e)?;
        }
        Ok(Box::new(PgTxn::new(&self.base, conn)))
    }
}

/// The backend pid of a connection (the one holding the writer lock).
async fn backend_pid(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await?;
    Ok(i64::from(pid))
}

type PgTxn = SqlxTxn<Pg>;

impl SqlxTxn<Pg> {
    /// Writes `rows` (values of `names` each) with `many`, a statement over
    /// one `text[]` parameter per column ([`Dialect::unnest`]), in chunks
    /// of [`UNNEST_ROWS`]. When a chunk fails, its rows run one by one with
    /// `one` to name the row that fails (after rolling the chunk back to a
    /// savepoint, since PostgreSQL aborts the transaction on an error).
    async fn exec_batched(
        &mut self,
        table: &str,
        cols: &TableSql,
        names: &[String],
        rows: Vec<Vec<Value>>,
        (many, one): (String, String),
    ) -> Result<(), DbError> {
        let env = self.env.clone();
        let mut start = 0;
        for chunk in rows.chunks(UNNEST_ROWS) {
            if chunk.len() > 1 {
                let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(chunk.len()); names.len()];
                for (i, values) in chunk.iter().enumerate() {
                    let fitted = cols
                        .fit(&env, names, values)
                        .map_err(|e| e.table(table).row(start + i))?;
                    for (array, v) in arrays.iter_mut().zip(&fitted) {
                        array.push(text_of(v));
                    }
                }
                let conn = self.conn()?;
                conn.execute("SAVEPOINT ferry_batch").await.map_err(|e| err(&env, e))?;
                let mut q = sqlx::query(&many);
                for array in arrays {
                    q = q.bind(array);
                }
                match q.execute(&mut *conn).await {
                    Ok(_) => {
                        conn.execute("RELEASE SAVEPOINT ferry_batch")
                            .await
                            .map_err(|e| err(&env, e))?;
                        start += chunk.len();
                        continue;
                    }
                    Err(_) => {
                        conn.execute("ROLLBACK TO SAVEPOINT ferry_batch")
                            .await
                            .map_err(|e| err(&env, e))?;
                    }
                }
            }
            self.exec_rows(table, cols, names, &one, chunk.to_vec())
                .await
                .map_err(|mut e| {
                    e.row = e.row.map(|r| r + start);
                    e
                })?;
            start += chunk.len();
        }
        Ok(())
    }
}

#[async_trait]
impl Txn for PgTxn {
    async fn insert(&mut self, table: &str, columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        let sql = (D.insert_unnest(table, columns, &*c), D.insert(table, columns, 1, &*c));
        self.exec_batched(table, &cols, columns, rows.to_vec(), sql).await
    }

    async fn upsert(&mut self, table: &str, key: &[String], columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        let sql = (
            D.upsert_unnest(table, key, columns, &*c),
            D.upsert(table, key, columns, 1, &*c),
        );
        self.exec_batched(table, &cols, columns, rows.to_vec(), sql).await
    }

    async fn insert_returning(
        &mut self,
        table: &str,
        columns: &[String],
        row: &Row,
        key: &str,
    ) -> Result<Value, DbError> {
        let cols = self.cols(table).await?;
        let sql = format!("{} RETURNING {}", D.insert(table, columns, 1, &*cols), cols.read(key));
        let env = self.env.clone();
        let row = cols.fit(&env, columns, row).map_err(|e| e.table(table).row(0))?;
        let r = bind_all(sqlx::query(&sql), &row)
            .fetch_one(self.conn()?)
            .await
            .map_err(|e| err(&env, e).table(table).row(0))?;
        decode(&r, 0).map_err(|e| err(&env, e).table(table))
    }

    async fn update(
        &mut self,
        table: &str,
        key: &[String],
        set: &[String],
        rows: &[(Row, Row)],
    ) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        let rows = rows.iter().map(|(k, v)| v.iter().chain(k).cloned().collect()).collect();
        let names: Vec<String> = set.iter().chain(key).cloned().collect();
        let sql = (D.update_unnest(table, key, set, &*c), D.update(table, key, set, &*c));
        self.exec_batched(table, &cols, &names, rows, sql).await
    }

    async fn delete(&mut self, table: &str, key: &[String], keys: &[Row]) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        let sql = (D.delete_unnest(table, key, &*c), D.delete(table, key, &*c));
        self.exec_batched(table, &cols, key, keys.to_vec(), sql).await
    }

    async fn delete_in(
        &mut self,
        table: &str,
        fixed: &[(String, Value)],
        column: &str,
        values: &[Value],
    ) -> Result<(), DbError> {
        self.delete_in_chunks(table, fixed, column, values).await
    }

    async fn execute_sql(&mut self, sql: &str) -> Result<(), DbError> {
        let env = self.env.clone();
        let conn = self.conn()?;
        conn.execute(sql).await.map(|_| ()).map_err(|e| err(&env, e))
    }

    async fn advance_generated(&mut self, table: &str, column: &str) -> Result<(), DbError> {
        let env = self.env.clone();
        let sql = format!(
            "SELECT setval(s, greatest((SELECT max({c}) FROM {t}), 1)) FROM pg_get_serial_sequence($1, $2) AS s WHERE s IS NOT NULL",
            c = D.ident(column),
            t = D.ident(table)
        );
        sqlx::query(&sql)
            .bind(D.ident(table))
            .bind(column)
            .execute(self.conn()?)
            .await
            .map(|_| ())
            .map_err(|e| err(&env, e).table(table))
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        self.commit_checked().await
    }
}
