//! The watermarks of tables with `changed` (`_ferry_watermarks`, beside the
//! sync base in the target): per (source environment, table), the marks of
//! both sides at the last sync that left the table in sync, and when they
//! were taken. A row whose peer is empty is a *rewind*: when Ferry last
//! wrote rows of the table in this database with `changed` values older
//! than the write (a revert, a refresh, a promotion into a table whose
//! `changed` column is not stamped); a watermark taken before it cannot be
//! trusted by any pair that reads this database.
//!
//! Written in the transactions that write the sync base (`apply.rs`,
//! `baseline.rs`, `revert.rs`), read by `planner/changed.rs`.

use ferry_core::plan::Plan;
use ferry_core::watermark::{Mark, Watermark};
use ferry_core::Value;
use ferry_db::{meta, FetchRequest, Store, Txn};

use crate::error::{Error, Result};

/// The peer of a rewind row.
const REWIND: &str = "";

/// A watermark as stored, with the promotion (or baseline) that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub mark: Watermark,
    pub promotion_id: Option<String>,
}

/// Whether `store` holds `_ferry_watermarks` (a store whose Ferry tables
/// predate it, or that speaks no SQL, holds none).
pub async fn present(store: &dyn Store) -> Result<bool> {
    Ok(store.as_sql().is_some() && store.table_schema(meta::WATERMARKS).await?.is_some())
}

/// The watermark of `table` promoted from `peer` into `store`.
pub async fn read(store: &dyn Store, peer: &str, table: &str) -> Result<Option<Stored>> {
    let rows = store
        .fetch(FetchRequest {
            table: meta::WATERMARKS.into(),
            columns: meta::columns(&["source_mark", "target_mark", "taken_at", "promotion_id"]),
            match_columns: meta::columns(&["peer_env", "table_name"]),
            values: vec![vec![Value::Text(peer.into()), Value::Text(table.into())]],
            flag: None,
            filter: None,
            fixed: Vec::new(),
        })
        .await?;
    let Some(r) = rows.into_iter().next() else {
        return Ok(None);
    };
    let damaged = |what: &str| {
        Error::Data(format!(
            "environment `{}`: the row of `{}` for table `{table}` (from `{peer}`) holds no {what}; delete that row and the next promotion records it again",
            store.env(),
            meta::WATERMARKS
        ))
    };
    let mark = |v: &Value| match v {
        Value::Null => Ok(None),
        Value::Text(t) => Mark::from_text(t).map(Some).ok_or_else(|| damaged("mark")),
        _ => Err(damaged("mark")),
    };
    let taken_at = match r.get(2) {
        Some(Value::Text(t)) => t.clone(),
        _ => return Err(damaged("time")),
    };
    Ok(Some(Stored {
        mark: Watermark {
            source: mark(r.first().unwrap_or(&Value::Null))?,
            target: mark(r.get(1).unwrap_or(&Value::Null))?,
            taken_at,
        },
        promotion_id: match r.get(3) {
            Some(Value::Text(t)) => Some(t.clone()),
            _ => None,
        },
    }))
}

/// When Ferry last wrote rows of `table` in `store` with older `changed`
/// values (see the module's top), and in which promotion.
pub async fn rewound_at(store: &dyn Store, table: &str) -> Result<Option<(String, Option<String>)>> {
    Ok(read(store, REWIND, table)
        .await?
        .map(|s| (s.mark.taken_at, s.promotion_id)))
}

fn mark_value(m: Option<Mark>) -> Value {
    m.map_or(Value::Null, |m| Value::Text(m.to_text()))
}

async fn upsert(txn: &mut dyn Txn, peer: &str, table: &str, w: &Watermark, at: &str, id: &str) -> Result<()> {
    let at = if w.taken_at.is_empty() { at } else { &w.taken_at };
    let row = vec![
        Value::Text(peer.into()),
        Value::Text(table.into()),
        mark_value(w.source),
        mark_value(w.target),
        Value::Text(at.into()),
        Value::Text(id.into()),
    ];
    txn.upsert(
        meta::WATERMARKS,
        &meta::columns(&["peer_env", "table_name"]),
        &meta::columns(&meta::WATERMARK_COLUMNS),
        &[row],
    )
    .await?;
    Ok(())
}

/// Records, in a promotion's or baseline's transaction, the watermarks the
/// plan took for the tables in `synced` (those it leaves in sync), each
/// with the time its marks were read.
pub async fn record(txn: &mut dyn Txn, plan: &Plan, synced: &[&str], id: &str) -> Result<()> {
    for (table, w) in plan.marks.0.iter() {
        if synced.contains(&table.as_str()) {
            upsert(txn, &plan.from, table, w, &w.taken_at, id).await?;
        }
    }
    Ok(())
}

/// Records, in a write's transaction, that rows of `table` were written
/// with older `changed` values at `at`.
pub async fn rewind(txn: &mut dyn Txn, table: &str, at: &str, id: &str) -> Result<()> {
    upsert(txn, REWIND, table, &Watermark::default(), at, id).await
}

/// Forgets, in an open transaction, the watermarks of rows promoted from
/// `peer` (an environment being destroyed).
pub async fn forget_peer(txn: &mut dyn Txn, peer: &str) -> Result<()> {
    txn.delete_in(meta::WATERMARKS, &[], "peer_env", &[Value::Text(peer.into())])
        .await?;
    Ok(())
}
