//! `ferry revert`: restore exactly what a promotion replaced, refusing when
//! those rows changed since (unless forced), and restore the sync base.

use std::collections::BTreeMap;

use ferry_core::canonical::encode_value;
use ferry_core::plan::{Action, Counts};
use ferry_core::schema::TableSchema;
use ferry_core::value::{convert, Value};
use ferry_db::{FetchRequest, Row, Store, Txn};

use crate::apply::Promotion;
use crate::error::{Error, Result};
use crate::journal::{self, JournalRow, PromotionRecord};
use crate::project::Project;

/// Finds the environment that recorded promotion `id`.
pub async fn find(project: &Project, id: &str) -> Result<(std::sync::Arc<dyn Store>, PromotionRecord)> {
    let mut unreachable = Vec::new();
    for env in project.config.environments.keys() {
        let store = match project.open(env).await {
            Ok(s) => s,
            Err(e) => {
                unreachable.push(format!("{env} ({e})"));
                continue;
            }
        };
        if let Some(r) = journal::promotions(&*store).await?.into_iter().find(|r| r.id == id) {
            return Ok((store, r));
        }
    }
    let mut msg = format!("no environment has a promotion `{id}`; `ferry log` lists them");
    if !unreachable.is_empty() {
        msg.push_str(&format!(" (not searched: {})", unreachable.join("; ")));
    }
    Err(Error::Usage(msg))
}

fn same(a: &Value, b: &Value, schema: &TableSchema, col: &str) -> bool {
    let Some(c) = schema.column(col) else { return false };
    match (convert(a, &c.ty), convert(b, &c.ty)) {
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
    let (store, original) = find(project, id).await?;
    crate::audit::require(
        project,
        &*store,
        user,
        ferry_core::access::Right::Revert,
        "revert",
        original.from.as_deref(),
    )
    .await?;
    revert_unchecked(project, id, user, force).await
}

/// [`revert`] without the permission check (rejecting a review removes its
/// drafts this way: the approver's right decides).
pub async fn revert_unchecked(project: &Project, id: &str, user: &str, force: bool) -> Result<Promotion> {
    let (store, original) = find(project, id).await?;
    if original.kind == "baseline" {
        return Err(Error::Usage(format!(
            "{id} is a baseline, which changed no rows; there is nothing to revert"
        )));
    }
    if let Some(by) = &original.reverted_by {
        return Err(Error::Blocked(format!(
            "{id} was already reverted by {by}; `ferry revert {by}` re-applies it"
        )));
    }
    let rows = journal::journal_rows(&*store, id).await?;
    let mut schemas: BTreeMap<String, TableSchema> = BTreeMap::new();
    for r in &rows {
        if !schemas.contains_key(&r.table) {
            let s = store.table_schema(&r.table).await?.ok_or_else(|| {
                Error::Data(format!(
                    "environment `{}`: table `{}` no longer exists; cannot revert {id}",
                    original.to, r.table
                ))
            })?;
            schemas.insert(r.table.clone(), s);
        }
    }
    let mut txn = store.begin().await?;
    let done = revert_in(&original, &rows, &schemas, user, force, txn.as_mut()).await?;
    txn.commit().await?;
    Ok(done)
}

async fn current_row(txn: &mut dyn Txn, schema: &TableSchema, r: &JournalRow) -> Result<Option<Row>> {
    let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let rows = txn
        .fetch_for_update(FetchRequest {
            table: r.table.clone(),
            columns,
            match_columns: r.key_columns(),
            values: vec![r.key_values()],
            flag: None,
            filter: None,
            fixed: Vec::new(),
        })
        .await?;
    Ok(rows.into_iter().next())
}

fn get<'a>(schema: &TableSchema, row: &'a Row, col: &str) -> Option<&'a Value> {
    schema
        .columns
        .iter()
        .position(|c| c.name == col)
        .and_then(|i| row.get(i))
}

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
    let mut now: Vec<Option<Row>> = Vec::new();
    let mut moved = Vec::new();
    for r in rows {
        let schema = &schemas[&r.table];
        let cur = current_row(txn, schema, r).await?;
        if r.action == "keep" {
            now.push(cur);
            continue;
        }
        match (&r.after, &cur) {
            (None, None) => {}
            (Some(after), Some(c)) => {
                let diff: Vec<&str> = after
                    .iter()
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
        now.push(cur);
    }
    if !moved.is_empty() && !force {
        return Err(Error::Blocked(format!(
            "cannot revert {id} in `{}`: {} row(s) changed since it was applied: {}{}. Nothing was written; pass --force to restore the before-images anyway",
            original.to,
            moved.len(),
            moved.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
            if moved.len() > 10 { ", ..." } else { "" }
        )));
    }

    let at = journal::now();
    let new_id = journal::new_id();
    let mut counts = Counts::default();
    let mut journal_rows = Vec::new();
    let from = original.from.clone().unwrap_or_default();
    for (r, cur) in rows.iter().zip(&now).rev() {
        let schema = &schemas[&r.table];
        let all: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        let key_cols = r.key_columns();
        let key = r.key_values();
        if r.action == "keep" {
            // `--take target` wrote only the sync base: restore it.
            journal::write_bases_text(
                txn,
                &from,
                &r.table,
                Some(&new_id),
                &[(r.base_key(), r.base_before.clone())],
            )
            .await?;
            continue;
        }
        let (action, after): (Action, Option<Vec<(String, Value)>>) = match (&r.before, cur) {
            (None, None) => continue,
            (None, Some(_)) => {
                txn.delete(&r.table, &key_cols, std::slice::from_ref(&key)).await?;
                (Action::Delete, None)
            }
            (Some(before), None) => {
                let cols: Vec<(String, Value)> = before.iter().filter(|(c, _)| all.contains(c)).cloned().collect();
                let names: Vec<String> = cols.iter().map(|(c, _)| c.clone()).collect();
                let values: Row = cols.iter().map(|(_, v)| v.clone()).collect();
                txn.insert(&r.table, &names, &[values]).await?;
                (Action::Insert, Some(cols))
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
                    .filter(|(c, _)| written.contains(&c) && all.contains(c))
                    .cloned()
                    .collect();
                if cols.is_empty() {
                    continue;
                }
                let names: Vec<String> = cols.iter().map(|(c, _)| c.clone()).collect();
                let values: Row = cols.iter().map(|(_, v)| v.clone()).collect();
                txn.update(&r.table, &key_cols, &names, &[(key.clone(), values)])
                    .await?;
                (Action::Update, Some(cols))
            }
        };
        counts.add(action);
        let base_key = r.base_key();
        let current_base = journal::read_bases_text(txn, &from, &r.table, std::slice::from_ref(&base_key)).await?;
        journal::write_bases_text(
            txn,
            &from,
            &r.table,
            Some(&new_id),
            &[(base_key.clone(), r.base_before.clone())],
        )
        .await?;
        journal_rows.push(JournalRow {
            seq: journal_rows.len() as i64 + 1,
            table: r.table.clone(),
            key: r.key.clone(),
            action: action.name().into(),
            before: cur
                .as_ref()
                .map(|c| all.iter().cloned().zip(c.iter().cloned()).collect()),
            after,
            base_before: current_base.get(&base_key).cloned(),
            source_key: r.source_key.clone(),
        });
    }
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
    let key = vec!["id".to_string()];
    let set = vec!["reverted_by".to_string()];
    txn.update(
        ferry_db::meta::PROMOTIONS,
        &key,
        &set,
        &[(vec![Value::Text(id.clone())], vec![Value::Text(new_id.clone())])],
    )
    .await?;
    if let (Some(prev), "revert") = (&original.reverts, original.kind.as_str()) {
        // Reverting a revert re-applies the promotion: it is live again.
        txn.update(
            ferry_db::meta::PROMOTIONS,
            &key,
            &set,
            &[(vec![Value::Text(prev.clone())], vec![Value::Null])],
        )
        .await?;
    }
    Ok(Promotion {
        id: new_id,
        at: record.at,
        counts,
    })
}
