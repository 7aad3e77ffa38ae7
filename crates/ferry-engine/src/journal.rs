//! Ferry's records in a target: promotions, journal rows with their images,
//! and the sync base. Reading and writing them goes through the generic
//! store operations on the `_ferry_*` tables (see `ferry_db::meta`).

use std::collections::BTreeMap;

use chrono::Timelike;
use ferry_core::canonical::{hex, key_text, unhex, FIELD_HASH_LEN};
use ferry_core::plan::Counts;
use ferry_core::rules::SyncBase;
use ferry_core::value::{ColumnType, LogicalType, Value};
use ferry_db::{meta, FetchRequest, Row, ScanRequest, Store, Txn};

use crate::error::{Error, Result};

/// One promotion, revert or baseline, as recorded in the target.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PromotionRecord {
    pub id: String,
    pub kind: String,
    pub from: Option<String>,
    pub to: String,
    pub user: String,
    pub at: String,
    pub selection: Vec<String>,
    pub counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverted_by: Option<String>,
}

/// One row a promotion wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow {
    pub seq: i64,
    pub table: String,
    /// Key columns and canonical values.
    pub key: Vec<(String, Value)>,
    pub action: String,
    /// The whole target row before (raw, every column), if it existed.
    pub before: Option<Vec<(String, Value)>>,
    /// The columns written and their values, if the row was written.
    pub after: Option<Vec<(String, Value)>>,
    /// The sync base before the promotion, if any.
    pub base_before: Option<SyncBase>,
    /// The row's key in the sync base (the source key) when it is not `key`
    /// (natural-key tables), as key text.
    pub source_key: Option<String>,
}

impl JournalRow {
    /// The key text the row's sync base is recorded under.
    pub fn base_key(&self) -> String {
        self.source_key.clone().unwrap_or_else(|| key_text(&self.key_values()))
    }
}

impl JournalRow {
    pub fn key_values(&self) -> Vec<Value> {
        self.key.iter().map(|(_, v)| v.clone()).collect()
    }
    pub fn key_columns(&self) -> Vec<String> {
        self.key.iter().map(|(c, _)| c.clone()).collect()
    }
}

/// Encodes named values as a JSON object of tagged values.
pub fn image(pairs: impl IntoIterator<Item = (String, Value)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs.into_iter().map(|(c, v)| (c, v.to_tagged())).collect();
    serde_json::Value::Object(map).to_string()
}

/// Decodes [`image`].
pub fn parse_image(s: &str) -> Option<Vec<(String, Value)>> {
    let j: serde_json::Value = serde_json::from_str(s).ok()?;
    j.as_object()?
        .iter()
        .map(|(c, v)| Some((c.clone(), Value::from_tagged(v)?)))
        .collect()
}

/// A sync base as text for the journal: `rowhash:fieldhashes[:targetkey]`.
pub fn encode_base(b: &SyncBase) -> String {
    let mut s = format!("{}:{}", hex(&b.row), hex(&b.packed_fields()));
    if let Some(t) = &b.target_key {
        s.push(':');
        s.push_str(t);
    }
    s
}

fn decode_base(s: &str) -> Option<SyncBase> {
    let mut parts = s.splitn(3, ':');
    let (h, f) = (parts.next()?, parts.next()?);
    let fields = unhex(f)?;
    if !fields.len().is_multiple_of(FIELD_HASH_LEN) {
        return None;
    }
    Some(SyncBase {
        row: unhex(h)?.try_into().ok()?,
        fields: SyncBase::unpack_fields(&fields),
        target_key: parts.next().map(str::to_string),
    })
}

/// The columns of `_ferry_sync` read back as a [`SyncBase`].
pub const SYNC_READ: [&str; 4] = ["row_key", "row_hash", "field_hashes", "target_key"];

/// Parses a row of [`SYNC_READ`] columns read from environment `env`:
/// (row key text, base). A row that does not hold what Ferry writes is an
/// error naming it: skipping it would make its row "never synced", and a
/// delete would be skipped or a production edit overwritten.
pub fn parse_sync_row(env: &str, r: &[Value]) -> Result<(String, SyncBase)> {
    let rec = Record::new(env, meta::SYNC, &SYNC_READ, r, &[0]);
    let key = rec.text(0)?;
    let row = rec.bytes(1)?;
    let row = row
        .as_slice()
        .try_into()
        .map_err(|_| rec.damaged(1, "a 16-byte row hash"))?;
    let fields = rec.bytes(2)?;
    if !fields.len().is_multiple_of(FIELD_HASH_LEN) {
        return Err(rec.damaged(2, "8-byte field hashes"));
    }
    Ok((
        key,
        SyncBase {
            row,
            fields: SyncBase::unpack_fields(&fields),
            target_key: rec.opt_text(3)?,
        },
    ))
}

/// One row of Ferry's own tables being read: a cell that does not hold
/// what Ferry writes there is an error naming the environment, the table,
/// the record's key and the column, never a record left out.
pub(crate) struct Record<'a> {
    env: &'a str,
    table: &'a str,
    columns: &'a [&'a str],
    row: &'a [Value],
    /// The record's key as messages name it (`id = 01J...`).
    key: String,
}

impl<'a> Record<'a> {
    /// A row of `columns` of `table` in `env`, named by the columns at `key`.
    pub(crate) fn new(env: &'a str, table: &'a str, columns: &'a [&'a str], row: &'a [Value], key: &[usize]) -> Self {
        let key = key
            .iter()
            .map(|&i| {
                let v = row.get(i).map_or_else(|| "?".to_string(), Value::display_text);
                format!("{} = {v}", columns.get(i).copied().unwrap_or("?"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Record {
            env,
            table,
            columns,
            row,
            key,
        }
    }

    /// The error for column `i`, which should hold `expected`.
    pub(crate) fn damaged(&self, i: usize, expected: &str) -> Error {
        let column = self.columns.get(i).copied().unwrap_or("?");
        let err = Error::Data(format!(
            "environment `{}`, table `{}`, record {}: column `{column}` holds {}, where Ferry writes {expected}. \
             The record was changed outside Ferry or is damaged, and Ferry will not guess what it said: \
             nothing was written. Restore `{}` from a backup",
            self.env,
            self.table,
            self.key,
            found(self.row.get(i)),
            self.table,
        ));
        if self.table == meta::SYNC {
            err.hint(crate::error::Hint::BaselineAgain)
        } else {
            err
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| self.damaged(i, "text"))
    }

    /// Text, or `None` for NULL.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.row.get(i) {
            Some(Value::Text(s)) => Ok(Some(s.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(self.damaged(i, "text or NULL")),
        }
    }

    pub(crate) fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        match self.row.get(i) {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(self.damaged(i, "bytes")),
        }
    }

    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        match self.row.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            _ => Err(self.damaged(i, "an integer")),
        }
    }

    /// Column `i`'s text parsed as JSON into `T`.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, i: usize, expected: &str) -> Result<T> {
        serde_json::from_str(&self.text(i)?).map_err(|_| self.damaged(i, expected))
    }
}

/// What a cell holds, for a message.
fn found(v: Option<&Value>) -> String {
    let short = |s: String| match s.char_indices().nth(60) {
        Some((at, _)) => format!("{}... ({} more bytes)", &s[..at], s.len() - at),
        None => s,
    };
    match v {
        None => "nothing (the column was not read)".into(),
        Some(Value::Null) => "NULL".into(),
        Some(Value::Text(s)) => format!("the text {:?}", short(s.clone())),
        Some(Value::Bytes(b)) => format!("{} bytes (hex {})", b.len(), short(hex(b))),
        Some(other) => format!("the value {}", short(other.display_text())),
    }
}

fn opt_text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
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
    match ty.logical {
        LogicalType::Timestamp => Value::Timestamp(t.naive_utc()),
        LogicalType::TimestampTz => Value::TimestampTz(t),
        LogicalType::Date => Value::Date(t.date_naive()),
        LogicalType::Int => Value::Int(t.timestamp()),
        LogicalType::Float | LogicalType::Decimal => Value::Float(t.timestamp_micros() as f64 / 1e6),
        _ => Value::Text(stamp_text(t)),
    }
}

impl PromotionRecord {
    /// A row of [`meta::PROMOTION_COLUMNS`] read from `env`.
    fn from_row(env: &str, r: &Row) -> Result<PromotionRecord> {
        let rec = Record::new(env, meta::PROMOTIONS, &meta::PROMOTION_COLUMNS, r, &[0]);
        Ok(PromotionRecord {
            id: rec.text(0)?,
            kind: rec.text(1)?,
            from: rec.opt_text(2)?,
            to: rec.text(3)?,
            user: rec.text(4)?,
            at: rec.text(5)?,
            selection: rec.json(6, "a JSON list of selection terms")?,
            counts: rec.json(7, "a JSON object of counts")?,
            reverts: rec.opt_text(9)?,
            reverted_by: rec.opt_text(10)?,
        })
    }

    pub fn to_row(&self, plan_hash: Option<String>) -> Row {
        vec![
            Value::Text(self.id.clone()),
            Value::Text(self.kind.clone()),
            opt_text(self.from.clone()),
            Value::Text(self.to.clone()),
            Value::Text(self.user.clone()),
            Value::Text(self.at.clone()),
            Value::Text(serde_json::to_string(&self.selection).unwrap_or_default()),
            Value::Text(serde_json::to_string(&self.counts).unwrap_or_default()),
            opt_text(plan_hash),
            opt_text(self.reverts.clone()),
            opt_text(self.reverted_by.clone()),
        ]
    }
}

/// Every promotion recorded in `store`, newest first.
pub async fn promotions(store: &dyn Store) -> Result<Vec<PromotionRecord>> {
    if !store.has_meta().await? {
        return Ok(Vec::new());
    }
    let mut rx = store
        .scan(ScanRequest {
            table: meta::PROMOTIONS.into(),
            columns: meta::columns(&meta::PROMOTION_COLUMNS),
            order_by: vec!["id".into()],
            filter: None,
            flag: None,
        })
        .await?;
    let mut out = Vec::new();
    while let Some(batch) = rx.recv().await {
        for r in batch? {
            out.push(PromotionRecord::from_row(store.env(), &r)?);
        }
    }
    out.reverse();
    Ok(out)
}

/// The journal rows of one promotion, in the order they were written.
pub async fn journal_rows(store: &dyn Store, id: &str) -> Result<Vec<JournalRow>> {
    let rows = store
        .fetch(FetchRequest {
            table: meta::JOURNAL.into(),
            columns: meta::columns(&meta::JOURNAL_COLUMNS),
            match_columns: vec!["promotion_id".into()],
            values: vec![vec![Value::Text(id.to_string())]],
            flag: None,
            filter: None,
            fixed: Vec::new(),
        })
        .await?;
    let mut out: Vec<JournalRow> = rows
        .iter()
        .map(|r| {
            let rec = Record::new(store.env(), meta::JOURNAL, &meta::JOURNAL_COLUMNS, r, &[0, 1]);
            let image_at = |i: usize| -> Result<Option<Vec<(String, Value)>>> {
                rec.opt_text(i)?
                    .map(|s| parse_image(&s).ok_or_else(|| rec.damaged(i, "a JSON object of tagged values")))
                    .transpose()
            };
            Ok(JournalRow {
                seq: rec.int(1)?,
                table: rec.text(2)?,
                key: image_at(3)?.ok_or_else(|| rec.damaged(3, "a JSON object of tagged values"))?,
                action: rec.text(4)?,
                before: image_at(5)?,
                after: image_at(6)?,
                base_before: rec
                    .opt_text(7)?
                    .map(|s| decode_base(&s).ok_or_else(|| rec.damaged(7, "`rowhash:fieldhashes[:targetkey]` in hex")))
                    .transpose()?,
                source_key: rec.opt_text(8)?,
            })
        })
        .collect::<Result<_>>()?;
    out.sort_by_key(|j| j.seq);
    Ok(out)
}

/// Writes journal rows and the promotion record in an open transaction.
pub async fn write_journal(
    txn: &mut dyn Txn,
    record: &PromotionRecord,
    rows: Vec<JournalRow>,
    plan_hash: Option<String>,
) -> Result<()> {
    txn.insert(
        meta::PROMOTIONS,
        &meta::columns(&meta::PROMOTION_COLUMNS),
        &[record.to_row(plan_hash)],
    )
    .await?;
    // The rows are consumed a thousand at a time: a promotion's before- and
    // after-images are turned into text once, never copied, and only one
    // chunk's text is held at once.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows
            .by_ref()
            .take(1000)
            .map(|j| {
                vec![
                    Value::Text(record.id.clone()),
                    Value::Int(j.seq),
                    Value::Text(j.table),
                    Value::Text(image(j.key)),
                    Value::Text(j.action),
                    opt_text(j.before.map(image)),
                    opt_text(j.after.map(image)),
                    opt_text(j.base_before.as_ref().map(encode_base)),
                    opt_text(j.source_key),
                ]
            })
            .collect();
        txn.insert(meta::JOURNAL, &meta::columns(&meta::JOURNAL_COLUMNS), &chunk)
            .await?;
    }
    Ok(())
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
    for chunk in bases.chunks(1000) {
        // Forgotten rows are deleted; the others are written over (an upsert
        // finds existing rows by the primary key, statistics or not).
        let forget: Vec<Value> = chunk
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
        let rows: Vec<Row> = chunk
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
