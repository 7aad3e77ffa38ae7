//! Ferry's records in a target: promotions, journal rows with their images,
//! and the sync base. Reading and writing them goes through the generic
//! store operations on the `_ferry_*` tables (see `ferry_db::meta`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Timelike;
use ferry_core::canonical::{key_text, FIELD_HASH_LEN};
use ferry_core::rules::SyncBase;
use ferry_core::value::{ColumnType, LogicalType, Value};
use ferry_db::{meta, FetchRequest, Row, Store, Txn};

use crate::error::{Error, Result};
use crate::paging::{Page, PageRequest};

pub use ferry_db::records::{encode_base, image, parse_image, JournalRow, PromotionRecord};

/// The columns of `_ferry_sync` read back as a [`SyncBase`].
pub const SYNC_READ: [&str; 4] = ["row_key", "row_hash", "field_hashes", "target_key"];

/// Parses a row of [`SYNC_READ`] columns read from environment `env`:
/// (row key text, base). A row that does not hold what Ferry writes is an
/// error naming it: skipping it would make its row "never synced", and a
/// delete would be skipped or a production edit overwritten.
pub fn parse_sync_row(env: &str, r: &[Value]) -> Result<(String, SyncBase)> {
    // A damaged sync base is mended by a new baseline.
    let damaged = |e: ferry_db::DbError| Error::from(e).hint(crate::error::Hint::BaselineAgain);
    let rec = ferry_db::records::Record::new(env, meta::SYNC, &SYNC_READ, r, &[0]);
    let key = rec.text(0).map_err(damaged)?;
    let row = rec.bytes(1).map_err(damaged)?;
    let row = row
        .as_slice()
        .try_into()
        .map_err(|_| damaged(rec.damaged(1, "a 16-byte row hash")))?;
    let fields = rec.bytes(2).map_err(damaged)?;
    if !fields.len().is_multiple_of(FIELD_HASH_LEN) {
        return Err(damaged(rec.damaged(2, "8-byte field hashes")));
    }
    Ok((
        key,
        SyncBase {
            row,
            fields: SyncBase::unpack_fields(&fields),
            target_key: rec.opt_text(3).map_err(damaged)?,
        },
    ))
}

fn opt_text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

/// Forgets, in an open transaction, every sync base recorded for rows
/// promoted from `source` (an environment that is being destroyed), so an
/// environment made later under the same name starts from its own clone
/// point.
pub async fn forget_source(txn: &mut dyn Txn, source: &str) -> Result<()> {
    txn.delete_in(meta::SYNC, &[], "source_env", &[Value::Text(source.into())])
        .await?;
    Ok(())
}

/// The current time, in UTC, at microsecond precision.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let n = chrono::Utc::now();
    n.with_nanosecond(n.nanosecond() / 1_000 * 1_000).unwrap_or(n)
}

/// Formats a time as PRODUCT.md's stamp text (`YYYY-MM-DD HH:MM:SS.ffffff`).
pub fn stamp_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// The value a stamped column receives, in the column's own type.
pub fn stamp_value(t: chrono::DateTime<chrono::Utc>, ty: &ColumnType) -> Value {
    if ty.extended_json {
        // A document field: a BSON date (milliseconds, UTC).
        return Value::Json(ferry_core::extjson::date_millis(t.timestamp_millis()).into());
    }
    match ty.logical {
        LogicalType::Timestamp => Value::Timestamp(t.naive_utc()),
        LogicalType::TimestampTz => Value::TimestampTz(t),
        LogicalType::Date => Value::Date(t.date_naive()),
        LogicalType::Int => Value::Int(t.timestamp()),
        LogicalType::Float | LogicalType::Decimal => Value::Float(t.timestamp_micros() as f64 / 1e6),
        _ => Value::Text(stamp_text(t)),
    }
}

/// Every promotion recorded in `store`, newest first (page by page:
/// a listing of a few uses [`ferry_db::records::Records::promotions`]).
pub async fn promotions(store: &dyn Store) -> Result<Vec<PromotionRecord>> {
    let records = store.records();
    Ok(ferry_db::records::all(1000, |page| {
        let records = &records;
        async move { records.promotions(&page).await }
    })
    .await?)
}

/// The newest `limit` promotions of `store` (by id; one page, not the
/// table), newest first by time, then id, as `ferry log` lists them.
pub async fn newest(store: &dyn Store, limit: usize) -> Result<Vec<PromotionRecord>> {
    let mut out = store
        .records()
        .promotions(&ferry_db::records::PageRequest::first(limit))
        .await?
        .items;
    out.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    Ok(out)
}

/// One page of `store`'s promotions (reverts and baselines too), newest
/// first (by id); `next` goes on after it. A cursor no page gave is a
/// usage error.
pub async fn page(store: &dyn Store, req: PageRequest) -> Result<Page<PromotionRecord>> {
    let req = PageRequest {
        after: crate::paging::checked(req.after.as_ref())?,
        ..req
    };
    Ok(store.records().promotions(&req).await?)
}

/// [`page`] across `stores`, merged newest first (see
/// [`crate::audit::page_all`] for the cursor).
pub async fn page_all(stores: &[Arc<dyn Store>], req: PageRequest) -> Result<Page<PromotionRecord>> {
    crate::paging::merged(
        stores,
        &req,
        |p: &PromotionRecord| &p.id,
        |store, req| async move { page(&*store, req).await },
    )
    .await
}

/// The journal rows of one promotion, in the order they were written.
pub async fn journal_rows(store: &dyn Store, id: &str) -> Result<Vec<JournalRow>> {
    Ok(store.records().journal(id).await?)
}

/// Writes journal rows and the promotion record in an open transaction.
pub async fn write_journal(
    txn: &mut dyn Txn,
    record: &PromotionRecord,
    rows: Vec<JournalRow>,
    plan_hash: Option<String>,
) -> Result<()> {
    Ok(ferry_db::records::write_promotion(txn, record, rows, plan_hash).await?)
}

/// Reads the sync base of `keys` of one table inside a transaction.
pub async fn read_bases(
    txn: &mut dyn Txn,
    from: &str,
    table: &str,
    keys: &[Vec<Value>],
) -> Result<BTreeMap<String, SyncBase>> {
    let texts: Vec<String> = keys.iter().map(|k| key_text(k)).collect();
    read_bases_text(txn, from, table, &texts).await
}

/// [`read_bases`] with keys given as key text.
pub async fn read_bases_text(
    txn: &mut dyn Txn,
    from: &str,
    table: &str,
    keys: &[String],
) -> Result<BTreeMap<String, SyncBase>> {
    let mut out = BTreeMap::new();
    let env = txn.env().to_string();
    for chunk in keys.chunks(1000) {
        let rows = txn
            .fetch(FetchRequest {
                table: meta::SYNC.into(),
                columns: meta::columns(&SYNC_READ),
                match_columns: meta::columns(&["row_key"]),
                values: chunk.iter().map(|k| vec![Value::Text(k.clone())]).collect(),
                flag: None,
                filter: None,
                fixed: vec![
                    ("source_env".into(), Value::Text(from.into())),
                    ("table_name".into(), Value::Text(table.into())),
                ],
            })
            .await?;
        for r in &rows {
            let (k, base) = parse_sync_row(&env, r)?;
            out.insert(k, base);
        }
    }
    Ok(out)
}

/// A row's key and its new sync base (`None` forgets the row).
pub type BaseUpdate = (Vec<Value>, Option<SyncBase>);

/// Replaces the sync base of rows: `None` forgets the row.
pub async fn write_bases(
    txn: &mut dyn Txn,
    from: &str,
    table: &str,
    promotion: Option<&str>,
    bases: &[BaseUpdate],
) -> Result<()> {
    let mut by_text: Vec<(String, Option<SyncBase>)> = bases.iter().map(|(k, b)| (key_text(k), b.clone())).collect();
    // In the order of `_ferry_sync`'s key: each page of it is visited once.
    by_text.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    write_bases_text(txn, from, table, promotion, &by_text).await
}

/// [`write_bases`] with keys given as key text.
pub async fn write_bases_text(
    txn: &mut dyn Txn,
    from: &str,
    table: &str,
    promotion: Option<&str>,
    bases: &[(String, Option<SyncBase>)],
) -> Result<()> {
    let key = meta::columns(&["source_env", "table_name", "row_key"]);
    // Forgotten rows are deleted; the others are written over (an upsert
    // finds existing rows by the primary key, statistics or not). Each is
    // one call: the store splits it into statements, and a store that
    // reads a write's rows ahead (MySQL) reads each statement's rows while
    // it runs the one before, which it cannot do across calls (5,000 rows
    // a call cost a MariaDB promote 0.3 s of 4.2). The rows are the plan's
    // (or a baseline's batch): built at once, like the plan's entries.
    let forget: Vec<Value> = bases
        .iter()
        .filter(|(_, b)| b.is_none())
        .map(|(k, _)| Value::Text(k.clone()))
        .collect();
    if !forget.is_empty() {
        let fixed = [
            ("source_env".to_string(), Value::Text(from.into())),
            ("table_name".to_string(), Value::Text(table.into())),
        ];
        txn.delete_in(meta::SYNC, &fixed, "row_key", &forget).await?;
    }
    let rows: Vec<Row> = bases
        .iter()
        .filter_map(|(k, b)| {
            let b = b.as_ref()?;
            Some(vec![
                Value::Text(from.into()),
                Value::Text(table.into()),
                Value::Text(k.clone()),
                Value::Bytes(b.row.to_vec()),
                Value::Bytes(b.packed_fields()),
                opt_text(promotion.map(str::to_string)),
                opt_text(b.target_key.clone()),
            ])
        })
        .collect();
    if !rows.is_empty() {
        txn.upsert(meta::SYNC, &key, &meta::columns(&meta::SYNC_COLUMNS), &rows)
            .await?;
    }
    Ok(())
}

/// A new globally unique, time-ordered id for a promotion or review (a
/// ULID; monotonic within the process, so ids made in one millisecond
/// still sort in the order they were made).
pub fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut guard = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string()
}
