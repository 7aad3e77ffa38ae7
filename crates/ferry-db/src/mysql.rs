//! MySQL and MariaDB through sqlx's concrete driver.
//!
//! Column kinds come from `information_schema` (MariaDB reports JSON as a
//! `longtext` with a `json_valid` check, and the wire type of a JSON value
//! as BLOB). Types the driver cannot decode exactly (DECIMAL, ENUM, SET,
//! TIME, BIT, unsigned BIGINT, UUID) are read with `CAST(... AS CHAR)`.
//! Sessions run in UTC, utf8mb4 and strict mode, so a value the column
//! cannot hold is an error, never a silent truncation. DDL commits
//! implicitly in MySQL, so Ferry's tables are migrated before the write
//! transaction opens; the transaction runs on its own connection, and the
//! writer lock is a `GET_LOCK` held by a connection of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use ferry_core::schema::{ColumnSchema, ForeignKey, TableSchema};
use ferry_core::value::{fit, round_to_single, ColumnType, LogicalType, Value};
use futures_util::future::BoxFuture;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::query::Query;
use sqlx::{Column, ConnectOptions, Connection, Executor, MySql, Row as _, TypeInfo};
use tokio::sync::mpsc;

use crate::dialect::{ColumnSql, Dialect};
use crate::meta;
use crate::raw::RawBatches;
use crate::sqlx_store::{keys_of, read_ahead, Introspected, SqlxBase, SqlxEngine, SqlxTxn};
use crate::{
    Capabilities, DbError, DbErrorKind, Engine, FetchRequest, KeyBlock, KeyBlocks, Row, RowBatches, ScanRequest,
    SqlStore, Store, Txn, WriterLock,
};

const D: Dialect = Dialect::Mysql;

const SESSION: &str = "SET time_zone = '+00:00', NAMES utf8mb4, \
    sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES', 'NO_AUTO_VALUE_ON_ZERO')";

/// The session of the pool's connections, which only read: SQL that a read
/// runs (a `--where` or `exclude` predicate, a gate's query) cannot write
/// (`NEXTVAL(seq)`, a function that inserts). The write transaction and
/// the writer lock open connections of their own.
const READ_ONLY: &str = "SET SESSION TRANSACTION READ ONLY";

/// The session of the connections a write transaction reads ahead through
/// (`SqlxBase::ahead`): a second's wait for a metadata lock at most, a
/// value every MySQL and MariaDB accepts (MySQL's least; 0, no wait, is
/// MariaDB's own).
const AHEAD_LOCK_WAIT: &str = "SET SESSION lock_wait_timeout = 1";

#[derive(Clone, Debug, Default)]
pub(crate) struct TableSql {
    /// columns read through `CAST(... AS CHAR)`
    as_text: Vec<String>,
    /// columns read through `CAST(... AS UNSIGNED)` (BIT)
    as_int: Vec<String>,
    /// text-like key columns, ordered byte-wise
    textual: Vec<String>,
    /// column -> its type, to write values as the column keeps them
    types: HashMap<String, ColumnType>,
}

impl TableSql {
    /// Whether each of `columns` is declared binary (BINARY, VARBINARY,
    /// BLOB): its cells are bytes whatever they hold. The wire type cannot
    /// tell: MySQL flags a `utf8mb4_bin` text column (Ferry's own tables,
    /// JSON) BINARY like a BLOB, and sqlx does not give the charset.
    fn binary(&self, columns: &[String]) -> Vec<bool> {
        columns
            .iter()
            .map(|c| self.types.get(c).is_some_and(|t| t.logical == LogicalType::Bytes))
            .collect()
    }

    /// A row to write (values in `names` order) as the columns keep it
    /// ([`fit`]): fractional seconds are cut here, whether the server would
    /// cut or round them.
    fn fit(&self, names: &[String], values: &[Value]) -> Vec<Value> {
        names
            .iter()
            .zip(values)
            .map(|(name, v)| self.types.get(name).map_or_else(|| v.clone(), |t| fit(v, t)))
            .collect()
    }
}

impl ColumnSql for TableSql {
    fn dialect(&self) -> Dialect {
        D
    }
    fn read(&self, col: &str) -> String {
        if self.as_text.iter().any(|c| c == col) {
            format!("CAST({} AS CHAR)", D.ident(col))
        } else if self.as_int.iter().any(|c| c == col) {
            format!("CAST({} AS UNSIGNED)", D.ident(col))
        } else {
            D.ident(col)
        }
    }
    fn order(&self, col: &str) -> String {
        if self.textual.iter().any(|c| c == col) {
            format!("{} COLLATE utf8mb4_bin", D.ident(col))
        } else {
            D.ident(col)
        }
    }
}

/// MySQL's parts of the sqlx stores' shared code (`sqlx_store.rs`).
pub(crate) struct My;

impl SqlxEngine for My {
    type Db = MySql;
    type Cols = TableSql;
    /// Which of the read columns are declared binary.
    type RowInfo = Vec<bool>;
    const D: Dialect = D;
    /// InnoDB reads the pages its buffer pool lacks from the disk
    /// (`O_DIRECT`: not from the system's file cache), one after another
    /// within a statement; several statements at once keep the disk busy.
    /// Measured on the benchmark's changed-only plan (128 MB buffer pool,
    /// docs/performance.md): 2 at once 1.93 s at S=1 and 4.25 s at S=10,
    /// 6 at once 1.39 s and 2.75 s; 10 at once gained nothing at S=1.
    const READS_AT_ONCE: usize = 6;

    fn err(env: &str, e: sqlx::Error) -> DbError {
        err(env, e)
    }
    fn bind<'q>(q: Query<'q, MySql, MySqlArguments>, values: &'q [Value]) -> Query<'q, MySql, MySqlArguments> {
        bind_all(q, values)
    }
    fn chunk_size(per_row: usize) -> usize {
        chunk_size(per_row)
    }
    fn row_info(cols: &TableSql, columns: &[String]) -> Vec<bool> {
        cols.binary(columns)
    }
    fn decode_row(row: &MySqlRow, binary: &Vec<bool>) -> Result<Row, sqlx::Error> {
        decode_row(row, binary)
    }
    fn fit(cols: &TableSql, _: &str, names: &[String], values: &[Value]) -> Result<Vec<Value>, DbError> {
        Ok(cols.fit(names, values))
    }
    fn introspect<'a>(conn: &'a mut MySqlConnection, table: &'a str) -> BoxFuture<'a, Introspected<TableSql>> {
        Box::pin(introspect(conn, table))
    }
    /// GET_LOCK's lock belongs to its connection: it must still be that one's.
    fn meta_version(conn: &mut MySqlConnection) -> BoxFuture<'_, Result<Option<i64>, sqlx::Error>> {
        Box::pin(meta_version(conn))
    }
    fn decode_first(row: &MySqlRow) -> Result<Value, sqlx::Error> {
        decode(row, 0, false)
    }
    /// 1205, "Lock wait timeout exceeded" (a metadata lock too, past
    /// `lock_wait_timeout`).
    fn lock_timed_out(e: &sqlx::Error) -> bool {
        e.as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
            .is_some_and(|d| d.number() == 1205)
    }
    fn lock_held(conn: &mut MySqlConnection, id: i64) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        Box::pin(async move {
            let held: i64 = sqlx::query_scalar("SELECT COALESCE(IS_USED_LOCK(CONCAT('ferry:', DATABASE())) = ?, 0)")
                .bind(id)
                .fetch_one(conn)
                .await?;
            Ok(held == 1)
        })
    }
}

pub(crate) const BACKEND: crate::registry::Backend = crate::registry::Backend {
    engine: Engine::Mysql,
    url: ferry_core::config::UrlKind {
        prefixes: &["mysql://", "mariadb://"],
        example: "mysql://USER@HOST/DB",
    },
    open: |o| Box::pin(async move { Ok(Arc::new(MySqlStore::connect(o.env, o.url).await?) as Arc<dyn Store>) }),
};

pub(crate) struct MySqlStore {
    base: SqlxBase<My>,
    options: MySqlConnectOptions,
}

impl std::ops::Deref for MySqlStore {
    type Target = SqlxBase<My>;
    fn deref(&self) -> &SqlxBase<My> {
        &self.base
    }
}

fn err(env: &str, e: sqlx::Error) -> DbError {
    // The server ended the session (1927 "Connection was killed", 70100) or
    // the socket closed.
    let gone = match &e {
        sqlx::Error::Io(io) => crate::io_closed(io),
        sqlx::Error::Database(d) => d.code().as_deref() == Some("70100"),
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
            // Data too long, out of range, incorrect value: the target cannot hold it.
            Some(c) if c.starts_with("22") || c == "HY000" => DbErrorKind::Constraint,
            _ => DbErrorKind::Query,
        },
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            DbErrorKind::Unreachable
        }
        _ => DbErrorKind::Query,
    };
    let message = match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some(crate::READ_ONLY_SQLSTATE) => {
            format!("{}{}", d.message(), crate::READ_ONLY_HINT)
        }
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    let mut out = DbError::new(kind, env, message.clone());
    // "Data too long for column 'name' at row 1", "Column 'x' cannot be null",
    // and MariaDB's "Incorrect date value: '...' for column `db`.`t`.`name` at row 1".
    if let Some((_, rest)) = message.rsplit_once("for column `") {
        let qualified = rest.split(" at row").next().unwrap_or(rest);
        out.column = qualified
            .rsplit("`.`")
            .next()
            .map(|c| c.trim_end_matches('`').replace("``", "`"));
    } else {
        for marker in ["for column '", "Column '"] {
            if let Some((_, rest)) = message.split_once(marker) {
                out.column = rest.split('\'').next().map(str::to_string);
                break;
            }
        }
    }
    out
}

/// `(p, s)` of a `decimal(p,s)` column type (`decimal(10,2) unsigned`).
fn precision_scale(column_type: &str) -> Option<(u32, u32)> {
    let inner = column_type.split_once('(')?.1.split_once(')')?.0;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

fn logical(data_type: &str, column_type: &str, max_len: Option<i64>, is_json: bool) -> ColumnType {
    let unsigned = column_type.contains("unsigned");
    let mut t = ColumnType::new(match data_type {
        _ if is_json => LogicalType::Json,
        // CHAR(n) is blank-padded (and read back without the padding).
        "char" => {
            return ColumnType {
                max_chars: max_len.and_then(|n| u32::try_from(n).ok()),
                blank_padded: true,
                ..ColumnType::new(LogicalType::Text)
            }
        }
        "tinyint" if column_type.starts_with("tinyint(1)") => LogicalType::Bool,
        "bigint" if unsigned => LogicalType::Decimal,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" | "bit" => LogicalType::Int,
        "float" | "double" | "real" => LogicalType::Float,
        "decimal" | "numeric" => LogicalType::Decimal,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => LogicalType::Bytes,
        "json" => LogicalType::Json,
        "date" => LogicalType::Date,
        "datetime" | "timestamp" => LogicalType::Timestamp,
        "time" => LogicalType::Time,
        "uuid" => LogicalType::Uuid,
        _ => LogicalType::Text,
    });
    let range = |bits: u32| -> (i128, i128) {
        if unsigned {
            (0, (1i128 << bits) - 1)
        } else {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        }
    };
    match data_type {
        "tinyint" if t.logical == LogicalType::Int => t.int_range = Some(range(8)),
        "smallint" => t.int_range = Some(range(16)),
        "mediumint" => t.int_range = Some(range(24)),
        "int" | "integer" => t.int_range = Some(range(32)),
        "float" => t.float_bits = Some(32),
        "decimal" | "numeric" => t.decimal_digits = precision_scale(column_type),
        // datetime(p), timestamp(p), time(p): no (p) keeps whole seconds.
        "datetime" | "timestamp" | "time" => {
            t.fraction_digits = Some(precision_scale(column_type).map_or(0, |(p, _)| p.min(6) as u8))
        }
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" if !is_json => {
            t.max_chars = max_len.and_then(|n| u32::try_from(n).ok());
        }
        _ => {}
    }
    t
}

/// Cell `i` of a row; `binary` when its column is declared binary
/// ([`TableSql::binary`]): then a cell of MySQL's string family is bytes,
/// whatever they hold. Otherwise it is text when it is UTF-8 (always, for
/// a text column read in a utf8mb4 session), and the bytes when it is not
/// (an expression of a gate's query whose type is not known).
fn decode(row: &MySqlRow, i: usize, binary: bool) -> Result<Value, sqlx::Error> {
    let col = row.column(i);
    let name = col.type_info().name().to_string();
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<Option<$t>, _>(i)?
        };
    }
    Ok(match name.as_str() {
        "BOOLEAN" => get!(bool).map_or(Value::Null, Value::Bool),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => get!(i64).map_or(Value::Null, Value::Int),
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => {
            get!(u32).map_or(Value::Null, |v| Value::Int(v.into()))
        }
        "BIGINT UNSIGNED" => get!(u64).map_or(Value::Null, |v| match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Decimal(v.to_string()),
        }),
        "FLOAT" => get!(f32).map_or(Value::Null, |v| Value::Float(round_to_single(f64::from(v)))),
        "DOUBLE" => get!(f64).map_or(Value::Null, Value::Float),
        "DATE" => get!(NaiveDate).map_or(Value::Null, Value::Date),
        "TIME" => get!(NaiveTime).map_or(Value::Null, Value::Time),
        "DATETIME" | "TIMESTAMP" => get!(NaiveDateTime).map_or(Value::Null, Value::Timestamp),
        _ => {
            // Text, JSON, BLOB and anything cast to CHAR: bytes first, then
            // text unless the column is binary.
            match row.try_get::<Option<Vec<u8>>, _>(i) {
                Ok(Some(b)) if binary => Value::Bytes(b),
                Ok(Some(b)) => match String::from_utf8(b) {
                    Ok(s) => Value::Text(s),
                    Err(e) => Value::Bytes(e.into_bytes()),
                },
                Ok(None) => Value::Null,
                Err(_) => get!(String).map_or(Value::Null, Value::Text),
            }
        }
    })
}

/// A raw scan's cell: the value's bytes as MySQL sent them, `None` for NULL.
fn raw_cell(row: &MySqlRow, i: usize) -> Result<Option<&[u8]>, sqlx::Error> {
    row.try_get_unchecked::<Option<&[u8]>, _>(i)
}

/// One value of MySQL's binary protocol (little-endian integers and
/// floats of the column's width; dates and times behind a length byte;
/// everything else the value's bytes), as [`decode`] reads it through sqlx;
/// `None` for a value [`decode`] would question (a zero date, a negative or
/// day-long TIME, an unexpected width, a type it leaves to sqlx): that row
/// is read again. `ty` is the wire type name, or [`BYTES`] for a column
/// declared binary.
fn decode_binary(ty: &str, b: &[u8]) -> Option<Value> {
    let signed = |b: &[u8]| -> Option<i64> {
        Some(match b.len() {
            1 => i8::from_le_bytes(b.try_into().ok()?).into(),
            2 => i16::from_le_bytes(b.try_into().ok()?).into(),
            4 => i32::from_le_bytes(b.try_into().ok()?).into(),
            8 => i64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    };
    let unsigned = |b: &[u8]| -> Option<u64> {
        Some(match b.len() {
            1 => b[0].into(),
            2 => u16::from_le_bytes(b.try_into().ok()?).into(),
            4 => u32::from_le_bytes(b.try_into().ok()?).into(),
            8 => u64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    };
    // A date (year u16, month, day) and, after it, a time of day (hour,
    // minute, second, then microseconds as u32), behind a length byte.
    let date = |b: &[u8]| NaiveDate::from_ymd_opt(u16::from_le_bytes([b[0], b[1]]).into(), b[2].into(), b[3].into());
    let time = |b: &[u8], micros: &[u8]| {
        let us = match micros {
            [] => 0,
            m => u32::from_le_bytes(m.try_into().ok()?),
        };
        NaiveTime::from_hms_micro_opt(b[0].into(), b[1].into(), b[2].into(), us)
    };
    Some(match ty {
        "BOOLEAN" => match b {
            [x] => Value::Bool(*x != 0),
            _ => return None,
        },
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => Value::Int(signed(b)?),
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => {
            Value::Int(u32::try_from(unsigned(b)?).ok()?.into())
        }
        "BIGINT UNSIGNED" => {
            let v = unsigned(b)?;
            match i64::try_from(v) {
                Ok(i) => Value::Int(i),
                Err(_) => Value::Decimal(v.to_string()),
            }
        }
        "FLOAT" => match b.len() {
            4 => Value::Float(round_to_single(f64::from(f32::from_le_bytes(b.try_into().ok()?)))),
            _ => return None,
        },
        "DOUBLE" => Value::Float(f64::from_le_bytes(b.try_into().ok()?)),
        "DATE" => match b {
            [4, d @ ..] if d.len() == 4 => Value::Date(date(d)?),
            _ => return None,
        },
        "TIME" => match b {
            [0] => Value::Time(NaiveTime::from_hms_opt(0, 0, 0)?),
            // Not negative, no whole days: a time of day.
            [8 | 12, 0, 0, 0, 0, 0, t @ ..] if t.len() == 3 || t.len() == 7 => Value::Time(time(&t[..3], &t[3..])?),
            _ => return None,
        },
        "DATETIME" | "TIMESTAMP" => match b {
            [4, d @ ..] if d.len() == 4 => Value::Timestamp(date(d)?.and_hms_opt(0, 0, 0)?),
            [7 | 11, d @ ..] if d.len() == 7 || d.len() == 11 => {
                Value::Timestamp(date(&d[..4])?.and_time(time(&d[4..7], &d[7..])?))
            }
            _ => return None,
        },
        BYTES => Value::Bytes(b.to_vec()),
        // The string family of a column not declared binary: text (a
        // `utf8mb4_bin` column comes flagged BINARY, as VARBINARY or BLOB).
        "CHAR" | "VARCHAR" | "BINARY" | "VARBINARY" | "ENUM" | "TINYTEXT" | "TINYBLOB" | "TEXT" | "BLOB"
        | "MEDIUMTEXT" | "MEDIUMBLOB" | "LONGTEXT" | "LONGBLOB" => match std::str::from_utf8(b) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(b.to_vec()),
        },
        _ => return None,
    })
}

/// The type name [`decode_binary`] is given for a column declared binary.
const BYTES: &str = "BYTES";

/// A row whose first columns are declared binary or not as `binary` says
/// (a column after them, the flag, is not).
fn decode_row(row: &MySqlRow, binary: &[bool]) -> Result<Row, sqlx::Error> {
    (0..row.len())
        .map(|i| decode(row, i, binary.get(i).copied().unwrap_or(false)))
        .collect()
}

fn bind_all<'q>(mut q: Query<'q, MySql, MySqlArguments>, values: &'q [Value]) -> Query<'q, MySql, MySqlArguments> {
    for v in values {
        q = match v {
            Value::Null => q.bind(Option::<String>::None),
            Value::Bool(b) => q.bind(*b),
            Value::Int(i) => q.bind(*i),
            Value::Float(f) => q.bind(*f),
            Value::Bytes(b) => q.bind(b.as_slice()),
            Value::Date(d) if !(0..=9999).contains(&d.year()) => q.bind(v.display_text()),
            Value::Timestamp(t) if !(0..=9999).contains(&t.year()) => q.bind(v.display_text()),
            Value::TimestampTz(t) if !(0..=9999).contains(&t.year()) => q.bind(v.display_text()),
            Value::Date(d) => q.bind(*d),
            Value::Time(t) => q.bind(*t),
            Value::Timestamp(t) => q.bind(*t),
            Value::TimestampTz(t) => q.bind(t.naive_utc()),
            Value::Json(j) => q.bind(j.to_string()),
            other => q.bind(other.display_text()),
        };
    }
    q
}

fn chunk_size(per_row: usize) -> usize {
    (D.max_params() / per_row.max(1)).clamp(1, 1000)
}

async fn session(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    conn.execute(SESSION).await.map(|_| ())
}

/// A pool of at most `max` connections, opened when needed, each running
/// [`SESSION`] and then `statements` (`READ_ONLY`, ...) when it connects.
fn reading_pool(options: &MySqlConnectOptions, max: usize, statements: &'static [&'static str]) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(max as u32)
        .acquire_timeout(Duration::from_secs(15))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                session(conn).await?;
                for statement in statements {
                    conn.execute(*statement).await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options.clone())
}

impl MySqlStore {
    /// Connects to `url` (`mysql://` or `mariadb://`). Errors never show the password.
    pub async fn connect(env: &str, url: &str) -> Result<MySqlStore, DbError> {
        let url_fixed = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let options: MySqlConnectOptions = url_fixed.parse().map_err(|e: sqlx::Error| {
            DbError::new(
                DbErrorKind::Unreachable,
                env,
                format!("the URL {} is not valid: {e}", ferry_core::config::redact_url(url)),
            )
        })?;
        let options = options
            .charset("utf8mb4")
            .log_statements(tracing::log::LevelFilter::Trace);
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
        // A plan reads a chunk's rows and their sync bases from the target
        // at once, `READS_AT_ONCE` chunks at a time. The pool only reads:
        // see `READ_ONLY`.
        let pool = reading_pool(&options, 2 * My::READS_AT_ONCE, &[READ_ONLY]);
        // A promotion's transaction waits on InnoDB's reads of the pages its
        // buffer pool lacks, one after another, in its re-check, updates,
        // deletes and sync-base writes (rows all over tables larger than the
        // pool): it reads each next chunk's rows ahead on these connections
        // (docs/performance.md, round six). They wait at most a second for a
        // table's metadata lock, and then the transaction goes on without
        // them (`SqlxBase::ahead`).
        let ahead = reading_pool(&options, My::READS_AT_ONCE, &[READ_ONLY, AHEAD_LOCK_WAIT]);
        Ok(MySqlStore {
            base: SqlxBase::new(env, pool).reading_ahead(ahead),
            options,
        })
    }

    /// GET_LOCK names are server-wide: the key names the database. The lock
    /// lives as long as the connection the guard holds.
    async fn writer_lock(&self, timeout: i64) -> Result<Option<WriterLock>, DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(CONCAT('ferry:', DATABASE()), ?)")
            .bind(timeout)
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        if got != Some(1) {
            return Ok(None);
        }
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        Ok(Some(self.lock.guard(id as i64, conn)))
    }

    /// A scan's SQL, prepared on the connection that will run it, so a bad
    /// predicate or table fails the call itself rather than the stream;
    /// with the type names of its result columns and which of the
    /// requested columns are declared binary.
    async fn prepared_scan(
        &self,
        req: &ScanRequest,
    ) -> Result<
        (
            (String, Vec<Value>),
            sqlx::pool::PoolConnection<MySql>,
            Vec<String>,
            Vec<bool>,
        ),
        DbError,
    > {
        let cols = self.table_sql(&req.table).await?;
        let (sql, params) = D.scan(req, &*cols);
        let mut conn = self.pool.acquire().await.map_err(|e| err(&self.env, e))?;
        let stmt = conn
            .prepare(sql.as_str())
            .await
            .map_err(|e| err(&self.env, e).table(&req.table))?;
        let types = crate::batches::type_names(&stmt);
        Ok(((sql, params), conn, types, cols.binary(&req.columns)))
    }
}

async fn introspect(conn: &mut MySqlConnection, table: &str) -> Result<(Option<TableSchema>, TableSql), sqlx::Error> {
    let cols = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
                CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), \
                CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
         ORDER BY ORDINAL_POSITION",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    if cols.is_empty() {
        return Ok((None, TableSql::default()));
    }
    // MariaDB's JSON is longtext with a json_valid() check named after the column.
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let mut sql = TableSql::default();
    let mut columns = Vec::new();
    for r in &cols {
        let name: String = r.try_get(0)?;
        let data_type: String = r.try_get::<String, _>(1)?.to_ascii_lowercase();
        let column_type: String = r.try_get::<String, _>(2)?.to_ascii_lowercase();
        let nullable: String = r.try_get(3)?;
        let default: Option<String> = r.try_get(4)?;
        let extra: String = r
            .try_get::<Option<String>, _>(5)?
            .unwrap_or_default()
            .to_ascii_lowercase();
        let max_len: Option<i64> = r.try_get(6)?;
        if extra.contains("generated") && !extra.contains("default_generated") {
            continue;
        }
        let is_json = data_type == "json"
            || checks.iter().any(|c| {
                c.replace('`', "").to_ascii_lowercase() == format!("json_valid({})", name.to_ascii_lowercase())
            });
        let ty = logical(&data_type, &column_type, max_len, is_json);
        match data_type.as_str() {
            "decimal" | "numeric" | "enum" | "set" | "time" | "json" | "uuid" => sql.as_text.push(name.clone()),
            "bigint" if column_type.contains("unsigned") => sql.as_text.push(name.clone()),
            // YEAR does not decode as an integer: read it as one.
            "bit" | "year" => sql.as_int.push(name.clone()),
            _ => {}
        }
        if matches!(ty.logical, LogicalType::Text | LogicalType::Uuid) {
            sql.textual.push(name.clone());
        }
        sql.types.insert(name.clone(), ty.clone());
        let auto = extra.contains("auto_increment");
        columns.push(ColumnSchema {
            name,
            declared: column_type,
            ty,
            nullable: nullable == "YES",
            has_default: default.is_some() || auto || nullable == "YES",
            auto_increment: auto,
        });
    }
    let keys = sqlx::query(
        "SELECT CAST(CONSTRAINT_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(REFERENCED_TABLE_NAME AS CHAR), \
                CAST(REFERENCED_COLUMN_NAME AS CHAR) \
         FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
           AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL) \
         ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut primary_key = Vec::new();
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    let mut last: Option<String> = None;
    for r in keys {
        let constraint: String = r.try_get(0)?;
        let column: String = r.try_get(1)?;
        if constraint == "PRIMARY" {
            primary_key.push(column);
            continue;
        }
        if last.as_deref() != Some(constraint.as_str()) {
            foreign_keys.push(ForeignKey {
                columns: Vec::new(),
                ref_table: r.try_get(2)?,
                ref_columns: Vec::new(),
            });
            last = Some(constraint);
        }
        if let Some(fk) = foreign_keys.last_mut() {
            fk.columns.push(column);
            fk.ref_columns.push(r.try_get(3)?);
        }
    }
    // Unique indexes (UNIQUE constraints included) besides the primary
    // key; those over expressions (no column name) are left out.
    let rows = sqlx::query(
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) \
         FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' \
         ORDER BY INDEX_NAME, SEQ_IN_INDEX",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut unique: Vec<(String, Vec<Option<String>>)> = Vec::new();
    for r in rows {
        let index: String = r.try_get(0)?;
        let column: Option<String> = r.try_get(1)?;
        match unique.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column),
            _ => unique.push((index, vec![column])),
        }
    }
    let unique = unique
        .into_iter()
        .filter_map(|(_, cols)| cols.into_iter().collect::<Option<Vec<String>>>())
        .collect();
    Ok((
        Some(TableSchema {
            name: table.to_string(),
            columns,
            primary_key,
            foreign_keys,
            unique,
            open_fields: None,
            carried: Vec::new(),
        }),
        sql,
    ))
}

async fn meta_version(conn: &mut MySqlConnection) -> Result<Option<i64>, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(meta::SCHEMA)
    .fetch_one(&mut *conn)
    .await?;
    if n == 0 {
        return Ok(None);
    }
    sqlx::query_scalar(&format!(
        "SELECT CAST(MAX(version) AS SIGNED) FROM {}",
        D.ident(meta::SCHEMA)
    ))
    .fetch_one(&mut *conn)
    .await
}

#[async_trait]
impl SqlStore for MySqlStore {
    fn dialect(&self) -> Dialect {
        D
    }

    async fn query_scalar(&self, sql: &str) -> Result<Option<Value>, DbError> {
        self.base.query_scalar(sql).await
    }

    /// Aggregated by the server (`BIT_OR` per block), which reads the
    /// smallest index (every secondary index holds the primary key).
    async fn key_blocks(&self, table: &str, column: &str) -> Result<KeyBlocks, DbError> {
        let sql = D.key_blocks(table, column);
        let mut conn = self.pool.acquire().await.map_err(|e| err(&self.env, e))?;
        let (tx, rx) = mpsc::channel(4);
        let (env, table) = (self.env.clone(), table.to_string());
        tokio::spawn(async move {
            let stream = sqlx::query(&sql).fetch(&mut *conn);
            let decode = |r: &MySqlRow| {
                let (min, mask): (i64, u64) = (r.try_get(0)?, r.try_get(1)?);
                Ok(KeyBlock { block: min >> 6, mask })
            };
            crate::batches::send_blocks(stream, decode, |e| err(&env, e).table(&table), tx).await;
        });
        Ok(rx)
    }

    async fn create_clone(&self, name: &str, tables: &[String]) -> Result<(), DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        session(&mut conn).await.map_err(e)?;
        let parent: String = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        let db = crate::registry::server_db_name(&parent, name);
        let exists: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.schemata WHERE schema_name = ?")
            .bind(&db)
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        if exists > 0 {
            return Err(DbError::new(
                DbErrorKind::Query,
                &self.env,
                format!(
                    "cannot clone environment `{}`: the database `{db}` exists already on its server; nothing was written",
                    self.env
                ),
            ));
        }
        let (charset, collation): (String, String) = sqlx::query_as(
            "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata WHERE schema_name = ?",
        )
        .bind(&parent)
        .fetch_one(&mut conn)
        .await
        .map_err(e)?;
        conn.execute(
            format!(
                "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
                D.ident(&db)
            )
            .as_str(),
        )
        .await
        .map_err(e)?;
        let made = copy_tables(&mut conn, &parent, &db, tables).await;
        if let Err(why) = made {
            conn.execute(format!("DROP DATABASE IF EXISTS {}", D.ident(&db)).as_str())
                .await
                .map_err(e)?;
            return Err(crate::clone_failed(&self.env, &db, err(&self.env, why)));
        }
        Ok(())
    }

    async fn drop_clone(&self, name: &str) -> Result<(), DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        let parent: String = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(e)?;
        let db = crate::registry::server_db_name(&parent, name);
        conn.execute(format!("DROP DATABASE IF EXISTS {}", D.ident(&db)).as_str())
            .await
            .map_err(e)?;
        Ok(())
    }
}

/// Creates `tables` of database `parent` in database `db` as `SHOW CREATE
/// TABLE` gives them (the foreign keys among them then name tables of
/// `db`), and copies their rows.
async fn copy_tables(conn: &mut MySqlConnection, parent: &str, db: &str, tables: &[String]) -> Result<(), sqlx::Error> {
    conn.execute(format!("USE {}", D.ident(db)).as_str()).await?;
    conn.execute("SET FOREIGN_KEY_CHECKS = 0").await?;
    let (from, to) = (format!("{}.", D.ident(parent)), format!("{}.", D.ident(db)));
    for t in tables {
        let row = sqlx::query(&format!("SHOW CREATE TABLE {}.{}", D.ident(parent), D.ident(t)))
            .fetch_one(&mut *conn)
            .await?;
        let ddl: String = match row.try_get::<String, _>(1) {
            Ok(s) => s,
            Err(_) => String::from_utf8_lossy(&row.try_get::<Vec<u8>, _>(1)?).into_owned(),
        };
        conn.execute(ddl.replace(&from, &to).as_str()).await?;
        conn.execute(
            format!(
                "INSERT INTO {}.{q} SELECT * FROM {}.{q}",
                D.ident(db),
                D.ident(parent),
                q = D.ident(t)
            )
            .as_str(),
        )
        .await?;
    }
    conn.execute("SET FOREIGN_KEY_CHECKS = 1").await?;
    Ok(())
}

#[async_trait]
impl Store for MySqlStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reads_at_once: <My as SqlxEngine>::READS_AT_ONCE,
            ..Capabilities::SQL
        }
    }

    fn as_sql(&self) -> Option<&dyn SqlStore> {
        Some(self)
    }

    fn engine(&self) -> Engine {
        Engine::Mysql
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
        let ((sql, params), mut conn, _, binary) = self.prepared_scan(&req).await?;
        let (tx, rx) = mpsc::channel(4);
        let env = self.env.clone();
        tokio::spawn(async move {
            let stream = bind_all(sqlx::query(&sql), &params).fetch(&mut *conn);
            let decode = |r: &MySqlRow| decode_row(r, &binary);
            crate::batches::send(stream, decode, |e| err(&env, e).table(&req.table), tx).await;
        });
        Ok(rx)
    }

    async fn scan_raw(&self, req: ScanRequest) -> Result<RawBatches, DbError> {
        let (k, n) = (req.order_by.len(), req.columns.len());
        let ((sql, params), mut conn, types, binary) = self.prepared_scan(&req).await?;
        let (sender, rx) = crate::raw::channel(k);
        let cells: Vec<String> = types
            .iter()
            .zip(&binary)
            .take(n)
            .skip(k)
            .map(|(ty, &bytes)| if bytes { BYTES.to_string() } else { ty.clone() })
            .collect();
        let rx = rx.with_decoder(crate::raw::typed_decoder(cells, decode_binary));
        let env = self.env.clone();
        tokio::spawn(async move {
            let stream = bind_all(sqlx::query(&sql), &params).fetch(&mut *conn);
            let fail = |e| err(&env, e).table(&req.table);
            let key = |r: &MySqlRow, i: usize| decode(r, i, binary.get(i).copied().unwrap_or(false));
            crate::batches::send_raw(stream, (k, n), key, raw_cell, fail, sender).await;
        });
        Ok(rx)
    }

    async fn fetch(&self, req: FetchRequest) -> Result<Vec<Row>, DbError> {
        self.base.fetch(req).await
    }

    async fn try_lock_writer(&self) -> Result<Option<WriterLock>, DbError> {
        self.writer_lock(0).await
    }

    async fn lock_writer(&self) -> Result<WriterLock, DbError> {
        // A year: MySQL and MariaDB disagree on what a negative timeout means.
        self.writer_lock(31_536_000)
            .await?
            .ok_or_else(|| DbError::new(DbErrorKind::Busy, &self.env, "could not take the writer lock"))
    }

    async fn refresh_statistics(&self, table: &str) -> Result<(), DbError> {
        self.base.refresh_statistics(table).await
    }

    async fn begin(&self) -> Result<Box<dyn Txn>, DbError> {
        let e = |x| err(&self.env, x);
        let mut conn = self.options.connect().await.map_err(e)?;
        session(&mut conn).await.map_err(e)?;
        // DDL commits implicitly here: migrate before the transaction opens.
        let current = meta_version(&mut conn).await.map_err(e)?.unwrap_or(0);
        for (i, steps) in meta::migrations(D).iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            for s in steps {
                // Tables and columns take the character set; an index has none.
                let s = if s.starts_with("CREATE INDEX") {
                    s.clone()
                } else {
                    format!("{s} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                };
                conn.execute(s.as_str()).await.map_err(e)?;
            }
            conn.execute(format!("DELETE FROM {}", D.ident(meta::SCHEMA)).as_str())
                .await
                .map_err(e)?;
            sqlx::query(&format!("INSERT INTO {} (version) VALUES (?)", D.ident(meta::SCHEMA)))
                .bind(version)
                .execute(&mut conn)
                .await
                .map_err(e)?;
        }
        conn.execute("START TRANSACTION").await.map_err(e)?;
        Ok(Box::new(MySqlTxn::new(&self.base, conn)))
    }
}

type MySqlTxn = SqlxTxn<My>;

impl SqlxTxn<My> {
    /// Runs a multi-row statement (`sql_for(n)` for `n` rows of
    /// `names` values each) over `rows` in chunks under the placeholder
    /// limit. When a chunk fails, its rows run one by one to name the one
    /// that fails (after rolling the chunk back to a savepoint where the
    /// engine aborts the transaction on an error). When the rows exist
    /// already (found by `key`, a part of `names`), each chunk's rows are
    /// read ahead while the one before it is written ([`read_ahead`]).
    async fn exec_batched(
        &mut self,
        table: &str,
        cols: &TableSql,
        (names, key): (&[String], Option<&[String]>),
        rows: Vec<Vec<Value>>,
        sql_for: impl Fn(usize) -> String,
    ) -> Result<(), DbError> {
        let chunks: Vec<&[Vec<Value>]> = rows.chunks(chunk_size(names.len())).collect();
        let (env, ahead) = (self.env.clone(), self.ahead.clone());
        let read_ahead = |i: usize| {
            let keys = ahead
                .as_ref()
                .zip(key)
                .zip(chunks.get(i))
                .and_then(|((_, key), chunk)| keys_of(table, key, names, chunk));
            read_ahead::<My>(ahead.as_ref(), &env, cols, keys)
        };
        read_ahead(0).await?;
        let mut start = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            if chunk.len() > 1 {
                let mut flat = Vec::with_capacity(chunk.len() * names.len());
                for values in *chunk {
                    flat.extend(cols.fit(names, values));
                }
                let conn = self.conn()?;
                let sql = sql_for(chunk.len());
                let write = bind_all(sqlx::query(&sql), &flat).execute(&mut *conn);
                let (done, next) = futures_util::future::join(write, read_ahead(i + 1)).await;
                // A failed statement is rolled back alone: retry its rows one
                // by one (whose error names the row, before any of the read
                // ahead).
                if done.is_ok() {
                    next?;
                    start += chunk.len();
                    continue;
                }
            }
            let one = sql_for(1);
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
impl Txn for MySqlTxn {
    async fn insert(&mut self, table: &str, columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        self.exec_batched(table, &cols, (columns, None), rows.to_vec(), |n| {
            D.insert(table, columns, n, &*c)
        })
        .await
    }

    async fn upsert(&mut self, table: &str, key: &[String], columns: &[String], rows: &[Row]) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        self.exec_batched(table, &cols, (columns, Some(key)), rows.to_vec(), |n| {
            D.upsert(table, key, columns, n, &*c)
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
        self.insert(table, columns, std::slice::from_ref(row)).await?;
        let env = self.env.clone();
        let id: u64 = sqlx::query_scalar("SELECT LAST_INSERT_ID()")
            .fetch_one(self.conn()?)
            .await
            .map_err(|e| err(&env, e).table(table))?;
        Ok(i64::try_from(id).map_or_else(|_| Value::Decimal(id.to_string()), Value::Int))
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
        self.exec_batched(table, &cols, (&names, Some(key)), rows, |n| {
            D.update_many(table, key, set, n, &*c)
        })
        .await
    }

    async fn delete(&mut self, table: &str, key: &[String], keys: &[Row]) -> Result<(), DbError> {
        let cols = self.cols(table).await?;
        let c = cols.clone();
        self.exec_batched(table, &cols, (key, Some(key)), keys.to_vec(), |n| {
            D.delete_many(table, key, n, &*c)
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
        self.delete_in_chunks(table, fixed, column, values).await
    }

    async fn execute_sql(&mut self, sql: &str) -> Result<(), DbError> {
        let env = self.env.clone();
        let conn = self.conn()?;
        conn.execute(sql).await.map(|_| ()).map_err(|e| err(&env, e))
    }

    async fn advance_generated(&mut self, _table: &str, _column: &str) -> Result<(), DbError> {
        // InnoDB moves AUTO_INCREMENT past every explicit value inserted.
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), DbError> {
        self.commit_checked().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|x| x.and_hms_micro_opt(h, mi, s, us))
            .unwrap()
    }

    #[test]
    fn binary_values_decode_as_sqlx_reads_them() {
        let cases: Vec<(&str, Vec<u8>, Value)> = vec![
            ("TINYINT", vec![0x80], Value::Int(-128)),
            ("BOOLEAN", vec![1], Value::Bool(true)),
            ("SMALLINT", (-2i16).to_le_bytes().to_vec(), Value::Int(-2)),
            (
                "MEDIUMINT",
                (-8_388_608i32).to_le_bytes().to_vec(),
                Value::Int(-8_388_608),
            ),
            ("INT", i32::MIN.to_le_bytes().to_vec(), Value::Int(i32::MIN.into())),
            ("BIGINT", i64::MAX.to_le_bytes().to_vec(), Value::Int(i64::MAX)),
            ("YEAR", 2155u16.to_le_bytes().to_vec(), Value::Int(2155)),
            (
                "INT UNSIGNED",
                u32::MAX.to_le_bytes().to_vec(),
                Value::Int(u32::MAX.into()),
            ),
            ("TINYINT UNSIGNED", vec![255], Value::Int(255)),
            ("BIGINT UNSIGNED", 7u64.to_le_bytes().to_vec(), Value::Int(7)),
            (
                "BIGINT UNSIGNED",
                u64::MAX.to_le_bytes().to_vec(),
                Value::Decimal("18446744073709551615".into()),
            ),
            (
                "FLOAT",
                1.1f32.to_le_bytes().to_vec(),
                Value::Float(round_to_single(f64::from(1.1f32))),
            ),
            ("DOUBLE", 0.1f64.to_le_bytes().to_vec(), Value::Float(0.1)),
            (
                "DATE",
                vec![4, 0xe8, 0x07, 2, 29],
                Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            ),
            (
                "DATETIME",
                vec![4, 0xe8, 0x07, 2, 29],
                Value::Timestamp(dt(2024, 2, 29, 0, 0, 0, 0)),
            ),
            (
                "TIMESTAMP",
                vec![7, 0xe8, 0x07, 2, 29, 23, 59, 58],
                Value::Timestamp(dt(2024, 2, 29, 23, 59, 58, 0)),
            ),
            (
                "DATETIME",
                [vec![11, 0xe8, 0x07, 2, 29, 1, 2, 3], 123_456u32.to_le_bytes().to_vec()].concat(),
                Value::Timestamp(dt(2024, 2, 29, 1, 2, 3, 123_456)),
            ),
            ("TIME", vec![0], Value::Time(NaiveTime::from_hms_opt(0, 0, 0).unwrap())),
            (
                "TIME",
                vec![8, 0, 0, 0, 0, 0, 13, 14, 15],
                Value::Time(NaiveTime::from_hms_opt(13, 14, 15).unwrap()),
            ),
            ("VARCHAR", "🦀 é".as_bytes().to_vec(), Value::Text("🦀 é".into())),
            ("LONGBLOB", vec![0xff, 0, 1], Value::Bytes(vec![0xff, 0, 1])),
            ("TEXT", Vec::new(), Value::Text(String::new())),
            // A `utf8mb4_bin` text column comes flagged BINARY: still text.
            ("BLOB", b"abc".to_vec(), Value::Text("abc".into())),
            // A column declared binary is bytes, UTF-8 or not, empty or not.
            (BYTES, b"abc".to_vec(), Value::Bytes(b"abc".to_vec())),
            (BYTES, vec![0; 16], Value::Bytes(vec![0; 16])),
            (BYTES, Vec::new(), Value::Bytes(Vec::new())),
            (BYTES, vec![0xff, 0, 1], Value::Bytes(vec![0xff, 0, 1])),
        ];
        for (ty, bytes, want) in cases {
            assert_eq!(decode_binary(ty, &bytes), Some(want), "{ty} {bytes:?}");
        }
    }

    #[test]
    fn values_sqlx_would_question_are_read_again() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // A zero date, an impossible date, a negative TIME, a TIME of a day or more.
            ("DATE", vec![0]),
            ("DATETIME", vec![4, 0xe8, 0x07, 2, 30]),
            ("TIME", vec![8, 1, 0, 0, 0, 0, 1, 0, 0]),
            ("TIME", vec![8, 0, 1, 0, 0, 0, 1, 0, 0]),
            // Widths the column's type does not have, and types left to sqlx.
            ("INT", vec![1, 2, 3]),
            ("BOOLEAN", vec![1, 0]),
            ("FLOAT", 0.5f64.to_le_bytes().to_vec()),
            ("DECIMAL", b"1.50".to_vec()),
            ("JSON", b"{}".to_vec()),
        ];
        for (ty, bytes) in cases {
            assert_eq!(decode_binary(ty, &bytes), None, "{ty} {bytes:?}");
        }
    }
}
