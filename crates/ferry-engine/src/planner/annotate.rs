//! Stage 6, annotation against the target. In: the closed [`Entries`].
//! Out: the same entries, with the inserts and updates the target's unique
//! constraints would refuse turned into `unique-collision` conflicts, and
//! the base value (from the journal) of every field of a both-changed
//! conflict.

use std::collections::HashMap;

use ferry_core::canonical::key_text;
use ferry_core::plan::{Action, PlanEntry, Reason};
use ferry_core::spec::TableSpec;
use ferry_core::value::{convert, Value};
use ferry_db::{meta, FetchRequest};

use super::classify::Entries;
use super::context::Ctx;
use crate::error::Result;

/// Finds the inserts and updates whose values in a unique constraint of
/// the target are held by another target row or written by another row
/// of the plan: the target would refuse them at apply. (A row the plan
/// deletes or changes still holds its values when they are written:
/// inserts and updates go before deletes, and constraints are checked
/// row by row.) Each becomes a conflict
/// (`unique-collision`) naming the constraint's columns, the values and
/// the other row; `promote` refuses it before writing anything.
pub(super) async fn unique_collisions(ctx: &Ctx<'_>, entries: &mut Entries<'_>) -> Result<()> {
    let pair = ctx.pair;
    for t in &pair.order {
        let spec = &pair.specs[t];
        if spec.unique.is_empty() {
            continue;
        }
        let mine: Vec<usize> = (0..entries.list.len())
            .filter(|i| entries.list[*i].table == *t)
            .collect();
        if !mine
            .iter()
            .any(|i| matches!(entries.list[*i].action, Action::Insert | Action::Update))
        {
            continue;
        }
        let columns = spec.columns();
        for cols in &spec.unique {
            let idx: Vec<usize> = cols
                .iter()
                .filter_map(|c| columns.iter().position(|x| x == c))
                .collect();
            if idx.len() != cols.len() {
                continue;
            }
            // The values each written row will hold.
            let written: Vec<(usize, Vec<Value>)> = mine
                .iter()
                .filter(|i| matches!(entries.list[**i].action, Action::Insert | Action::Update))
                .filter_map(|&i| after_values(spec, &entries.list[i], &idx).map(|v| (i, v)))
                .collect();
            if written.is_empty() {
                continue;
            }
            let shown = |v: &[Value]| {
                cols.iter()
                    .zip(v)
                    .map(|(c, x)| format!("{c} = {}", x.preview()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut found: Vec<(usize, String)> = Vec::new();
            // Two rows of the plan writing the same values.
            let mut by_value: HashMap<String, usize> = HashMap::new();
            for (i, v) in &written {
                if let Some(first) = by_value.insert(key_text(v), *i) {
                    let other = entries.list[first].label();
                    found.push((*i, format!("{other} of this plan ({})", shown(v))));
                }
            }
            // Target rows holding them (the database's own equality).
            let rows = pair
                .target
                .fetch(holders_request(
                    spec,
                    cols,
                    written.iter().map(|(_, v)| v.clone()).collect(),
                ))
                .await?;
            let k = spec.key.len();
            for raw in rows {
                let held = ctx.side(spec, &pair.to, raw, true)?;
                let tk = key_text(&held.row[..k]);
                let hv: Vec<Value> = idx.iter().map(|&j| held.row[j].clone()).collect();
                // The rows writing the values the database matched: equal
                // ones, else equal but for case (a case-insensitive collation).
                let ht = key_text(&hv);
                let mut hits: Vec<&(usize, Vec<Value>)> = written.iter().filter(|(_, v)| key_text(v) == ht).collect();
                if hits.is_empty() {
                    hits = written
                        .iter()
                        .filter(|(_, v)| key_text(v).to_lowercase() == ht.to_lowercase())
                        .collect();
                }
                for (i, _) in hits {
                    let e = &entries.list[*i];
                    if e.action == Action::Update && key_text(e.target_key()) == tk {
                        continue;
                    }
                    found.push((
                        *i,
                        format!(
                            "{t}:{} in {} ({})",
                            ferry_core::plan::key_label(&held.row[..k]),
                            pair.to,
                            shown(&hv)
                        ),
                    ));
                }
            }
            for (i, other) in found {
                let e = &mut entries.list[i];
                if e.reason == Some(Reason::UniqueCollision) {
                    continue;
                }
                e.action = Action::Conflict;
                e.reason = Some(Reason::UniqueCollision);
                e.fields.clear();
                e.collides_with = Some(format!("unique ({}): {other}", cols.join(", ")));
            }
        }
    }
    Ok(())
}

/// Shows, for every both-changed conflict, the value each conflicting
/// field had at the last sync: the row as Ferry promoted it, from the
/// journal. Rows only baselined have no kept base.
pub(super) async fn base_values(ctx: &Ctx<'_>, entries: &mut Entries<'_>) -> Result<()> {
    if !ctx.has_meta {
        return Ok(());
    }
    let pair = ctx.pair;
    for i in 0..entries.list.len() {
        if entries.list[i].reason != Some(Reason::BothChanged) {
            continue;
        }
        let spec = &pair.specs[&entries.list[i].table];
        let key = entries.list[i].key.clone();
        let sync = pair
            .target
            .fetch(last_promotion_request(&pair.from, spec, &key))
            .await?;
        let Some(Value::Text(promotion)) = sync.into_iter().next().and_then(|r| r.into_iter().next()) else {
            continue;
        };
        let row_key = crate::journal::image(spec.key.iter().cloned().zip(key.iter().cloned()));
        let rows = pair.target.fetch(journal_row_request(promotion, spec, row_key)).await?;
        let Some(r) = rows
            .into_iter()
            .find(|r| matches!(r.first(), Some(Value::Text(a)) if a == "insert" || a == "update"))
        else {
            continue;
        };
        let image = |v: Option<&Value>| match v {
            Some(Value::Text(s)) => crate::journal::parse_image(s).unwrap_or_default(),
            _ => Vec::new(),
        };
        let (before, after) = (image(r.get(1)), image(r.get(2)));
        let lookup = |col: &str| {
            after
                .iter()
                .chain(before.iter())
                .find(|(c, _)| c == col)
                .map(|(_, v)| v.clone())
        };
        let e = &mut entries.list[i];
        for f in e.fields.iter_mut() {
            let ty = &spec.types[&f.column];
            f.base = lookup(&f.column).and_then(|v| convert(&v, ty).ok());
        }
        e.base_kept = e.fields.iter().all(|f| f.base.is_some());
    }
    Ok(())
}

/// The values of the columns at `idx` (in [`TableSpec::columns`] order) that
/// an insert or update leaves in the target row; `None` when one is NULL
/// (unique constraints let NULLs repeat) or not known before apply (a
/// reference to a row this plan inserts).
fn after_values(spec: &TableSpec, e: &PlanEntry, idx: &[usize]) -> Option<Vec<Value>> {
    let source = e.source.as_ref()?;
    let columns = spec.columns();
    idx.iter()
        .map(|&j| {
            let col = &columns[j];
            if e.deferred.contains(col) {
                return None;
            }
            // An update writes its `set` columns; the others keep the
            // target's value (shown among the differing fields) or equal
            // the source's.
            let kept = (e.action == Action::Update && !e.set.contains(col))
                .then(|| {
                    e.fields
                        .iter()
                        .find(|f| f.column == *col)
                        .and_then(|f| f.target.clone())
                })
                .flatten();
            let v = kept.unwrap_or_else(|| source[j].clone());
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// The request for the target rows of `spec` holding one of `values` in
/// the unique columns `cols`.
fn holders_request(spec: &TableSpec, cols: &[String], values: Vec<Vec<Value>>) -> FetchRequest {
    FetchRequest {
        table: spec.name.clone(),
        columns: spec.columns(),
        match_columns: cols.to_vec(),
        values,
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}

/// The request for the promotion that last synced a row (from the sync
/// base).
fn last_promotion_request(from: &str, spec: &TableSpec, key: &[Value]) -> FetchRequest {
    FetchRequest {
        table: meta::SYNC.into(),
        columns: meta::columns(&["promotion_id"]),
        match_columns: meta::columns(&["source_env", "table_name", "row_key"]),
        values: vec![vec![
            Value::Text(from.to_string()),
            Value::Text(spec.name.clone()),
            Value::Text(key_text(key)),
        ]],
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}

/// The request for the journal rows a promotion wrote for one row.
fn journal_row_request(promotion: String, spec: &TableSpec, row_key: String) -> FetchRequest {
    FetchRequest {
        table: meta::JOURNAL.into(),
        columns: meta::columns(&["action", "before_image", "after_image"]),
        match_columns: meta::columns(&["promotion_id", "table_name", "row_key"]),
        values: vec![vec![
            Value::Text(promotion),
            Value::Text(spec.name.clone()),
            Value::Text(row_key),
        ]],
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}
