//! `ferry revert`: restore exactly what a promotion replaced, refusing when
//! those rows changed since (unless forced), and restore the sync base.

use std::collections::{BTreeMap, HashMap};

use ferry_core::canonical::{encode_value, key_text};
use ferry_core::plan::{Action, Counts};
use ferry_core::rules::SyncBase;
use ferry_core::schema::TableSchema;
use ferry_core::value::{convert, Value};
use ferry_db::{FetchRequest, Read, Row, Store, Txn};

use crate::apply::Promotion;
use crate::error::{Error, Hint, Result};
use crate::journal::{self, JournalRow, PromotionRecord};
use crate::project::Project;
use crate::registry::Envs;

/// Finds the environment that recorded promotion `id`.
pub async fn find(project: &Project, id: &str) -> Result<(std::sync::Arc<dyn Store>, PromotionRecord)> {
    find_with(&Envs::new(project.clone()), id).await
}

/// [`find`] through the registry: each environment opened once.
pub async fn find_with(envs: &Envs, id: &str) -> Result<(std::sync::Arc<dyn Store>, PromotionRecord)> {
    let found = envs
        .find_first(|store| async move { Ok(store.records().promotion(id).await?) })
        .await?;
    found.map_err(|not_searched| {
        Error::Usage(format!("no environment has a promotion `{id}`")).hint(Hint::ListPromotions { not_searched })
    })
}

fn same(a: &Value, b: &Value, schema: &TableSchema, col: &str) -> bool {
    // A field an open schema (a document store) has not seen any more
    // still has its type.
    let ty = match (schema.column(col), &schema.open_fields) {
        (Some(c), _) => &c.ty,
        (None, Some(t)) => t,
        (None, None) => return false,
    };
    match (convert(a, ty), convert(b, ty)) {
        (Ok(x), Ok(y)) => {
            let (mut ex, mut ey) = (Vec::new(), Vec::new());
            encode_value(&mut ex, &x);
            encode_value(&mut ey, &y);
            ex == ey
        }
        _ => a == b,
    }
}

/// Reverts promotion `id` (or a revert, which re-applies what it undid),
/// when `user` may revert in its environment (exit 4 otherwise).
pub async fn revert(project: &Project, id: &str, user: &str, force: bool) -> Result<Promotion> {
    revert_with(&Envs::new(project.clone()), id, user, force).await
}

/// [`revert`] through the registry.
pub async fn revert_with(envs: &Envs, id: &str, user: &str, force: bool) -> Result<Promotion> {
    let (store, original) = find_with(envs, id).await?;
    crate::audit::require(
        envs.project(),
        &*store,
        user,
        ferry_core::access::Right::Revert,
        "revert",
        original.from.as_deref(),
    )
    .await?;
    revert_unchecked_with(envs, id, user, force).await
}

/// [`revert`] without the permission check (rejecting a review removes its
/// drafts this way: the approver's right decides).
pub async fn revert_unchecked(project: &Project, id: &str, user: &str, force: bool) -> Result<Promotion> {
    revert_unchecked_with(&Envs::new(project.clone()), id, user, force).await
}

/// [`revert_unchecked`] through the registry.
pub async fn revert_unchecked_with(envs: &Envs, id: &str, user: &str, force: bool) -> Result<Promotion> {
    let (store, original) = find_with(envs, id).await?;
    if original.kind == "baseline" {
        return Err(Error::Usage(format!(
            "{id} is a baseline, which changed no rows; there is nothing to revert"
        )));
    }
    if let Some(by) = &original.reverted_by {
        return Err(Error::Blocked(format!("{id} was already reverted by {by}"))
            .hint(Hint::RevertRevert { revert: by.clone() }));
    }
    let rows = journal::journal_rows(&*store, id).await?;
    let schemas = schemas_of(&*store, &original, &rows).await?;
    let mut txn = store.begin().await?;
    let done = revert_in(&original, &rows, &schemas, user, force, txn.as_mut()).await?;
    if store.as_sql().is_some() {
        // The before-images carry older `changed` values: no watermark
        // taken before now holds for these tables (planner/changed.rs).
        for table in schemas.keys() {
            crate::watermarks::rewind(txn.as_mut(), table, &done.at, &done.id).await?;
        }
    }
    txn.commit().await.map_err(|e| match e.kind {
        // The writer lock was lost before the commit: rolled back (exit 3,
        // as for a promotion).
        ferry_db::DbErrorKind::Busy => Error::Blocked(format!("revert {id}: environment `{}`: {}", e.env, e.message)),
        _ => Error::Db(e),
    })?;
    Ok(done)
}

/// The schema of every table `rows` touch, as the target has it now.
async fn schemas_of(
    store: &dyn Store,
    original: &PromotionRecord,
    rows: &[JournalRow],
) -> Result<BTreeMap<String, TableSchema>> {
    let mut schemas: BTreeMap<String, TableSchema> = BTreeMap::new();
    for r in rows {
        if !schemas.contains_key(&r.table) {
            let s = store.table_schema(&r.table).await?.ok_or_else(|| {
                Error::Data(format!(
                    "environment `{}`: table `{}` no longer exists; cannot revert {}",
                    original.to, r.table, original.id
                ))
            })?;
            // Row images hold the carried columns (a document's field order).
            schemas.insert(r.table.clone(), s.with_carried());
        }
    }
    Ok(schemas)
}

/// The rows of promotion `original` (journalled as `rows`, in `store`, its
/// environment) that changed since it wrote them, as `table:key (why)`:
/// what a revert refuses unless forced. Read as committed now, without a
/// lock: a preview for a front end to show before asking; the revert
/// checks again under the writer lock.
pub async fn changed_since(store: &dyn Store, original: &PromotionRecord, rows: &[JournalRow]) -> Result<Vec<String>> {
    let schemas = schemas_of(store, original, rows).await?;
    let mut reader = store;
    let now = current_rows(&mut reader, &schemas, rows).await?;
    Ok(moved_rows(rows, &now, &schemas))
}

/// A key as text after converting each value to its column's type, so a
/// key read from the journal and the same key read from the table match.
fn key_of(schema: &TableSchema, key: &[(String, Value)]) -> String {
    let values: Vec<Value> = key
        .iter()
        .map(|(c, v)| {
            schema
                .column(c)
                .and_then(|col| convert(v, &col.ty).ok())
                .unwrap_or_else(|| v.clone())
        })
        .collect();
    key_text(&values)
}

/// What every journalled row looks like now (every column, `None` when it
/// is gone), read table by table in chunks; in a transaction locked until
/// the commit ([`Read::fetch_for_update`]): what is checked is what gets
/// overwritten. From a store: as committed, unlocked.
async fn current_rows(
    txn: &mut dyn Read,
    schemas: &BTreeMap<String, TableSchema>,
    rows: &[JournalRow],
) -> Result<Vec<Option<Row>>> {
    // (table, key columns) -> the keys to read.
    let mut wanted: BTreeMap<(&str, Vec<String>), Vec<Row>> = BTreeMap::new();
    for r in rows {
        wanted
            .entry((r.table.as_str(), r.key_columns()))
            .or_default()
            .push(r.key_values());
    }
    let mut found: HashMap<(String, String), Row> = HashMap::new();
    for ((table, key_cols), keys) in wanted {
        let schema = &schemas[table];
        let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        let read = txn
            .fetch_for_update(FetchRequest {
                table: table.to_string(),
                columns: columns.clone(),
                match_columns: key_cols.clone(),
                values: keys,
                flag: None,
                filter: None,
                fixed: Vec::new(),
            })
            .await?;
        for row in read {
            let key: Vec<(String, Value)> = key_cols
                .iter()
                .map(|c| {
                    let v = columns
                        .iter()
                        .position(|x| x == c)
                        .and_then(|i| row.get(i))
                        .cloned()
                        .unwrap_or(Value::Null);
                    (c.clone(), v)
                })
                .collect();
            found.insert((table.to_string(), key_of(schema, &key)), row);
        }
    }
    Ok(rows
        .iter()
        .map(|r| found.remove(&(r.table.clone(), key_of(&schemas[&r.table], &r.key))))
        .collect())
}

/// A journalled row the revert writes: the row, what it holds now, what the
/// revert does to it and the columns it writes.
type Restored<'a> = (&'a JournalRow, &'a Option<Row>, Action, Option<Vec<(String, Value)>>);

/// One statement's worth of the revert's writes: consecutive rows of one
/// table restored the same way (and, for updates, the same columns).
enum Batch {
    Delete {
        table: String,
        key: Vec<String>,
        keys: Vec<Row>,
    },
    Insert {
        table: String,
        columns: Vec<String>,
        rows: Vec<Row>,
    },
    Update {
        table: String,
        key: Vec<String>,
        set: Vec<String>,
        rows: Vec<(Row, Row)>,
    },
}

impl Batch {
    /// Adds a row to this batch when it is of the same kind; gives it back otherwise.
    fn absorb(&mut self, next: Batch) -> Option<Batch> {
        match (self, next) {
            (
                Batch::Delete { table, key, keys },
                Batch::Delete {
                    table: t,
                    key: k,
                    keys: more,
                },
            ) if *table == t && *key == k => {
                keys.extend(more);
                None
            }
            (
                Batch::Insert { table, columns, rows },
                Batch::Insert {
                    table: t,
                    columns: c,
                    rows: more,
                },
            ) if *table == t && *columns == c => {
                rows.extend(more);
                None
            }
            (
                Batch::Update { table, key, set, rows },
                Batch::Update {
                    table: t,
                    key: k,
                    set: s,
                    rows: more,
                },
            ) if *table == t && *key == k && *set == s => {
                rows.extend(more);
                None
            }
            (_, next) => Some(next),
        }
    }

    async fn run(self, txn: &mut dyn Txn) -> Result<()> {
        match self {
            Batch::Delete { table, key, keys } => txn.delete(&table, &key, &keys).await?,
            Batch::Insert { table, columns, rows } => txn.insert(&table, &columns, &rows).await?,
            Batch::Update { table, key, set, rows } => txn.update(&table, &key, &set, &rows).await?,
        }
        Ok(())
    }
}

fn get<'a>(schema: &TableSchema, row: &'a Row, col: &str) -> Option<&'a Value> {
    schema
        .columns
        .iter()
        .position(|c| c.name == col)
        .and_then(|i| row.get(i))
}

/// Writes a revert inside `txn`: refuses (unless `force`) when rows
/// changed since the promotion, restores the before-images (last
/// journalled first), restores the sync bases, and journals itself.
async fn revert_in(
    original: &PromotionRecord,
    rows: &[JournalRow],
    schemas: &BTreeMap<String, TableSchema>,
    user: &str,
    force: bool,
    txn: &mut dyn Txn,
) -> Result<Promotion> {
    let id = &original.id;
    // What each row looks like now, and whether it is still what the
    // promotion left.
    let now = current_rows(txn, schemas, rows).await?;
    let moved = moved_rows(rows, &now, schemas);
    if !moved.is_empty() && !force {
        return Err(Error::Blocked(format!(
            "cannot revert {id} in `{}`: {} row(s) changed since it was applied: {}{}. Nothing was written",
            original.to,
            moved.len(),
            moved.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
            if moved.len() > 10 { ", ..." } else { "" }
        ))
        .hint(Hint::ForceRevert));
    }

    let at = journal::now();
    let new_id = journal::new_id();
    let mut counts = Counts::default();
    let from = original.from.clone().unwrap_or_default();
    // The writes, last journalled first, one statement per run of rows of
    // one table restored alike; the sync bases, read and then written back
    // per table.
    let mut batches: Vec<Batch> = Vec::new();
    let mut restored: Vec<Restored> = Vec::new();
    let mut bases: BTreeMap<&str, Vec<(String, Option<SyncBase>)>> = BTreeMap::new();
    for (r, cur) in rows.iter().zip(&now).rev() {
        let schema = &schemas[&r.table];
        if r.action == "keep" {
            // `--take target` wrote only the sync base: restore it.
            bases
                .entry(r.table.as_str())
                .or_default()
                .push((r.base_key(), r.base_before.clone()));
            continue;
        }
        let Some((batch, action, after)) = restore(r, cur, schema) else {
            continue;
        };
        match batches.last_mut() {
            Some(last) => {
                if let Some(batch) = last.absorb(batch) {
                    batches.push(batch);
                }
            }
            None => batches.push(batch),
        }
        counts.add(action);
        bases
            .entry(r.table.as_str())
            .or_default()
            .push((r.base_key(), r.base_before.clone()));
        restored.push((r, cur, action, after));
    }
    for batch in batches {
        batch.run(txn).await?;
    }
    let mut current_bases: BTreeMap<&str, BTreeMap<String, SyncBase>> = BTreeMap::new();
    for (table, list) in &bases {
        let keys: Vec<String> = list.iter().map(|(k, _)| k.clone()).collect();
        current_bases.insert(table, journal::read_bases_text(txn, &from, table, &keys).await?);
    }
    for (table, mut list) in bases {
        // In the order of `_ferry_sync`'s key: each page of it is visited once.
        list.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        journal::write_bases_text(txn, &from, table, Some(&new_id), &list).await?;
    }
    let journal_rows = revert_rows(restored, schemas, &current_bases);
    let record = PromotionRecord {
        id: new_id.clone(),
        kind: "revert".into(),
        from: original.from.clone(),
        to: original.to.clone(),
        user: user.to_string(),
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        selection: vec![format!("revert {id}")],
        counts: counts.clone(),
        reverts: Some(id.clone()),
        reverted_by: None,
    };
    journal::write_journal(txn, &record, journal_rows, None).await?;
    mark_reverted(txn, original, &new_id).await?;
    Ok(Promotion {
        id: new_id,
        at: record.at,
        counts,
    })
}

/// The rows that changed since the promotion wrote them, as
/// `table:key (why)`.
fn moved_rows(rows: &[JournalRow], now: &[Option<Row>], schemas: &BTreeMap<String, TableSchema>) -> Vec<String> {
    let mut moved = Vec::new();
    for (r, cur) in rows.iter().zip(now) {
        let schema = &schemas[&r.table];
        if r.action == "keep" {
            continue;
        }
        match (&r.after, cur) {
            (None, None) => {}
            (Some(after), Some(c)) => {
                // A carried column (a document's field order) makes no row
                // different: the order a promotion wrote may differ from
                // the one read back (a stamped field the source lacks goes
                // last), and the revert writes the order back anyway.
                let diff: Vec<&str> = after
                    .iter()
                    .filter(|(col, _)| !schema.carried.contains(col))
                    .filter(|(col, v)| !get(schema, c, col).is_some_and(|x| same(x, v, schema, col)))
                    .map(|(col, _)| col.as_str())
                    .collect();
                if !diff.is_empty() {
                    moved.push(format!(
                        "{}:{} (column {})",
                        r.table,
                        ferry_core::plan::key_label(&r.key_values()),
                        diff.join(", ")
                    ));
                }
            }
            (None, Some(_)) => {
                moved.push(format!(
                    "{}:{} (inserted again since)",
                    r.table,
                    ferry_core::plan::key_label(&r.key_values())
                ));
            }
            (Some(_), None) => {
                moved.push(format!(
                    "{}:{} (deleted since)",
                    r.table,
                    ferry_core::plan::key_label(&r.key_values())
                ));
            }
        }
    }
    moved
}

/// A row image: (column, value) pairs.
type Image = Vec<(String, Value)>;

/// The write that restores one row's before-image (with the action it
/// counts as and the values it writes); `None` when there is nothing to
/// restore.
fn restore(r: &JournalRow, cur: &Option<Row>, schema: &TableSchema) -> Option<(Batch, Action, Option<Image>)> {
    let all: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    // An open schema takes back a field no document has any more.
    let kept = |c: &String| schema.open_fields.is_some() || all.contains(c);
    let key_cols = r.key_columns();
    let key = r.key_values();
    let restored = match (&r.before, cur) {
        (None, None) => return None,
        (None, Some(_)) => (
            Batch::Delete {
                table: r.table.clone(),
                key: key_cols,
                keys: vec![key],
            },
            Action::Delete,
            None,
        ),
        (Some(before), None) => {
            let cols: Vec<(String, Value)> = before.iter().filter(|(c, _)| kept(c)).cloned().collect();
            let names: Vec<String> = cols.iter().map(|(c, _)| c.clone()).collect();
            let values: Row = cols.iter().map(|(_, v)| v.clone()).collect();
            (
                Batch::Insert {
                    table: r.table.clone(),
                    columns: names,
                    rows: vec![values],
                },
                Action::Insert,
                Some(cols),
            )
        }
        (Some(before), Some(_)) => {
            // Restore the columns the promotion wrote.
            // (A forced revert of a delete whose row came back restores all.)
            let written: Vec<&String> = match &r.after {
                Some(after) => after.iter().map(|(c, _)| c).collect(),
                None => before.iter().map(|(c, _)| c).collect(),
            };
            let written: Vec<&String> = written.into_iter().filter(|c| !key_cols.contains(c)).collect();
            let cols: Vec<(String, Value)> = before
                .iter()
                .filter(|(c, _)| written.contains(&c) && kept(c))
                .cloned()
                .collect();
            if cols.is_empty() {
                return None;
            }
            let names: Vec<String> = cols.iter().map(|(c, _)| c.clone()).collect();
            let values: Row = cols.iter().map(|(_, v)| v.clone()).collect();
            (
                Batch::Update {
                    table: r.table.clone(),
                    key: key_cols,
                    set: names,
                    rows: vec![(key, values)],
                },
                Action::Update,
                Some(cols),
            )
        }
    };
    Some(restored)
}

/// The journal rows of a revert: each restored row, with what it held
/// before the revert and its sync base then.
fn revert_rows(
    restored: Vec<Restored>,
    schemas: &BTreeMap<String, TableSchema>,
    current_bases: &BTreeMap<&str, BTreeMap<String, SyncBase>>,
) -> Vec<JournalRow> {
    let mut journal_rows = Vec::new();
    for (r, cur, action, after) in restored {
        let schema = &schemas[&r.table];
        let base_key = r.base_key();
        journal_rows.push(JournalRow {
            seq: journal_rows.len() as i64 + 1,
            table: r.table.clone(),
            key: r.key.clone(),
            action: action.name().into(),
            before: cur.as_ref().map(|c| {
                schema
                    .columns
                    .iter()
                    .map(|col| col.name.clone())
                    .zip(c.iter().cloned())
                    .collect()
            }),
            after,
            base_before: current_bases
                .get(r.table.as_str())
                .and_then(|m| m.get(&base_key))
                .cloned(),
            source_key: r.source_key.clone(),
        });
    }
    journal_rows
}

/// Marks the original promotion as reverted by `new_id` (and, when it was
/// itself a revert, the promotion it reverted as live again).
async fn mark_reverted(txn: &mut dyn Txn, original: &PromotionRecord, new_id: &str) -> Result<()> {
    ferry_db::records::set_reverted_by(txn, &original.id, Some(new_id)).await?;
    if let (Some(prev), "revert") = (&original.reverts, original.kind.as_str()) {
        // Reverting a revert re-applies the promotion: it is live again.
        ferry_db::records::set_reverted_by(txn, prev, None).await?;
    }
    Ok(())
}
