//! Stage 5, closure. In: the classified [`Entries`]. Out: the same entries
//! closed under references and parents: rows the target lacks and written
//! rows reference are pulled in (stages 3 and 4 again, for them),
//! transitively, with the children of pulled-in parents; rows that need a
//! row left behind stay behind with it; the children of deleted parents
//! are deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_core::canonical::key_text;
use ferry_core::plan::{Action, PlanEntry, Reason};
use ferry_core::spec::TableSpec;
use ferry_core::value::{convert, Value};
use ferry_db::FetchRequest;

use super::classify::{self, deleted_fields, entry, left_behind, Entries};
use super::context::Ctx;
use super::rows::Candidate;
use super::scan;
use super::select::Mode;
use crate::error::{Error, Result};
use crate::json_ids;

/// Pulls in every referenced row the target lacks, transitively, and
/// brings the children of pulled-in parents. A referenced row that
/// matches `exclude` stays behind, and so do the rows that need it.
pub(super) async fn pull_references(ctx: &Ctx<'_>, entries: &mut Entries<'_>) -> Result<()> {
    let mut checked: HashSet<(String, String)> = HashSet::new();
    loop {
        leave_behind_dependents(ctx, entries)?;
        let needed = needed_references(ctx, entries, &mut checked)?;
        if needed.is_empty() {
            return drop_unneeded_pulls(ctx, entries);
        }
        // Each table's look-up is one read of the target; they run at once.
        let missing = futures_util::future::try_join_all(needed.into_iter().map(|(table, wants)| async move {
            let missing = missing_in_target(ctx, &table, wants).await?;
            Ok::<_, Error>((table, missing))
        }))
        .await?;
        for (table, missing) in missing {
            for (v, by) in missing {
                pull_in(ctx, entries, &table, v, by).await?;
            }
        }
    }
}

/// The rows that inserts and updates reference and the plan does not write
/// yet, each looked at once (`checked`): referenced table -> (key value,
/// who needs it, as `table:key.column`). A reference to a row the plan
/// deletes is an error.
fn needed_references(
    ctx: &Ctx<'_>,
    entries: &Entries<'_>,
    checked: &mut HashSet<(String, String)>,
) -> Result<BTreeMap<String, Vec<(Value, String)>>> {
    let pair = ctx.pair;
    let mut needed: BTreeMap<String, Vec<(Value, String)>> = BTreeMap::new();
    for e in &entries.list {
        if !matches!(e.action, Action::Insert | Action::Update) {
            continue;
        }
        let spec = &pair.specs[&e.table];
        let Some(row) = &e.source else { continue };
        // Ids inside JSON columns count as references too: to a
        // natural-key table only when deferred (a matched one was
        // rewritten already), to any other table always (its ids
        // are equal across environments).
        let json = json_references_of(ctx, e)?;
        let columns = spec.columns();
        let plain = spec.references.iter().filter_map(|(col, table)| {
            let i = columns.iter().position(|c| c == col)?;
            Some((col.clone(), table.clone(), row[i].clone()))
        });
        for (col, table, v) in plain.chain(json) {
            let (col, table, v) = (&col, &table, &v);
            if v.is_null() || (table == &e.table && v.key_cmp(&e.key[0]).is_eq()) {
                continue;
            }
            // A matched natural-key reference already names a target row.
            if ctx.is_natural(table) && !e.deferred.contains(col) && !col.contains(" at $") {
                continue;
            }
            let kt = key_text(std::slice::from_ref(v));
            if !checked.insert((table.clone(), kt)) {
                continue;
            }
            if entries.is_left_behind(table, std::slice::from_ref(v)) {
                // The next round leaves the referencing row behind too.
                continue;
            }
            match entries.writes(table, std::slice::from_ref(v)) {
                Some(Action::Insert | Action::Update) => continue,
                Some(Action::Delete) => {
                    return Err(Error::Data(format!(
                        "{} -> {}: table `{}`, key {}, column `{col}`: references {table}:{}, which the plan deletes. Nothing was written; promote the referencing row's change first, or leave the delete out of the selection",
                        pair.from, pair.to, e.table, ferry_core::plan::key_label(&e.key), v.display_text()
                    )))
                }
                _ => {}
            }
            needed
                .entry(table.clone())
                .or_default()
                .push((v.clone(), format!("{}.{col}", e.label())));
        }
    }
    Ok(needed)
}

/// The wanted rows of `table` the target does not hold. A natural-key row
/// is in the target when it is matched (and then it was rewritten
/// already): nothing to look up.
async fn missing_in_target(ctx: &Ctx<'_>, table: &str, wants: Vec<(Value, String)>) -> Result<Vec<(Value, String)>> {
    let spec = &ctx.pair.specs[table];
    let in_target: HashSet<String> = if ctx.is_natural(table) {
        HashSet::new()
    } else {
        let pair = ctx.pair;
        // A key that does not convert is an error, never a row taken for
        // missing (and pulled in over the target's).
        pair.target
            .fetch(keys_request(spec, &wants))
            .await?
            .iter()
            .map(|r| {
                spec.canonicalize_key(r)
                    .map(|k| key_text(&k))
                    .map_err(|(col, e)| super::rows::conv_err((&pair.from, &pair.to), spec, r, &pair.to, &col, e))
            })
            .collect::<Result<_>>()?
    };
    Ok(wants
        .into_iter()
        .filter(|(v, _)| !in_target.contains(&key_text(std::slice::from_ref(v))))
        .collect())
}

/// The request for the keys of the rows of `spec` whose key is one of
/// `wants`.
fn keys_request(spec: &TableSpec, wants: &[(Value, String)]) -> FetchRequest {
    FetchRequest {
        table: spec.name.clone(),
        columns: spec.key.clone(),
        match_columns: spec.key.clone(),
        values: wants.iter().map(|(v, _)| vec![v.clone()]).collect(),
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}

/// Pulls in one referenced row the target lacks (`by` needs it): read from
/// both sides and classified, with the children of a new parent. It must
/// exist in the source; a row that matches `exclude` stays behind, shown.
async fn pull_in(ctx: &Ctx<'_>, entries: &mut Entries<'_>, table: &str, v: Value, by: String) -> Result<()> {
    let pair = ctx.pair;
    let spec = &pair.specs[table];
    let cands = scan::referenced(ctx, spec, v.clone(), &by).await?;
    let cand = cands.into_iter().find(|c| c.source.is_some());
    // `table:key.column`, or `table:key.column at $.path`
    // for an id inside JSON.
    let (by_main, path) = match by.rfind(" at $") {
        Some(i) => (&by[..i], format!(", path `{}`", &by[i + 4..])),
        None => (by.as_str(), String::new()),
    };
    let (by_label, col) = by_main.rsplit_once('.').unwrap_or((by_main, ""));
    let (by_table, by_key) = by_label.split_once(':').unwrap_or((by_label, ""));
    match cand {
        None => {
            return Err(Error::Data(format!(
                "{} -> {}: table `{by_table}`, key {by_key}, column `{col}`{path}: references {table}:{}, which exists neither in `{}` nor in `{}`. Nothing was written; fix the reference in `{}`",
                pair.from, pair.to, v.display_text(), pair.from, pair.to, pair.from
            )))
        }
        Some(c) if c.excluded => {
            // It stays behind, shown; the rows that need it
            // follow it on the next round.
            let kt = key_text(&c.key);
            if entries.find(table, &kt).is_none() {
                entries.count_left_behind(table, kt);
                entries.push(entry(spec, &c, Action::Skip, Some(Reason::Excluded)));
            }
        }
        Some(c) => {
            let key = c.key.clone();
            classify::classify(ctx, entries, spec, vec![c], None).await?;
            if entries.is_left_behind(table, &key) {
                return Ok(());
            }
            if entries.writes(table, &key) == Some(Action::Insert) {
                entries.pulled.insert((table.to_string(), key_text(&key)), None);
            }
            if entries.writes(table, &key) != Some(Action::Insert) {
                return Err(Error::Data(format!(
                    "{} -> {}: table `{by_table}`, key {by_key}, column `{col}`: references {table}:{}, which `{}` deleted since the last sync. Nothing was written; restore it there or change the reference",
                    pair.from, pair.to, v.display_text(), pair.to
                )));
            }
            // A new parent brings its children.
            for child in &pair.order {
                let cs = &pair.specs[child];
                if cs.parent.as_ref().is_some_and(|(_, p)| *p == table) {
                    let by = Some(format!("{table}:{}", v.display_text()));
                    let first = entries.list.len();
                    classify::table(ctx, entries, cs, Mode::Children(vec![key[0].clone()]), false, by, false).await?;
                    let parent = (table.to_string(), key_text(&key));
                    for e in &entries.list[first..] {
                        entries
                            .pulled
                            .insert((e.table.clone(), key_text(&e.key)), Some(parent.clone()));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Drops the rows pulled in only for rows that stay behind (a new tag
/// pulled by a post that stays with its excluded author): a pulled-in row
/// is written while a row the plan writes references it, and a child that
/// came with a pulled-in parent while that parent is written; until
/// nothing more changes.
fn drop_unneeded_pulls(ctx: &Ctx<'_>, entries: &mut Entries<'_>) -> Result<()> {
    if entries.pulled.is_empty() {
        return Ok(());
    }
    loop {
        let needed = referenced_by_written(ctx, entries)?;
        let drop: HashSet<usize> = entries
            .list
            .iter()
            .enumerate()
            .filter(|(_, e)| e.action == Action::Insert)
            .filter(
                |(_, e)| match entries.pulled.get(&(e.table.clone(), key_text(&e.key))) {
                    Some(None) => !needed.contains(&(e.table.clone(), key_text(&e.key))),
                    Some(Some((table, kt))) => entries
                        .find(table, kt)
                        .is_none_or(|i| entries.list[i].action != Action::Insert),
                    None => false,
                },
            )
            .map(|(i, _)| i)
            .collect();
        if drop.is_empty() {
            return Ok(());
        }
        entries.remove(&drop);
    }
}

/// (table, key text) of every row that a row the plan writes references,
/// by a column or by an id inside JSON.
fn referenced_by_written(ctx: &Ctx<'_>, entries: &Entries<'_>) -> Result<HashSet<(String, String)>> {
    let mut out = HashSet::new();
    for e in &entries.list {
        if !matches!(e.action, Action::Insert | Action::Update | Action::Conflict) {
            continue;
        }
        let Some(row) = &e.source else { continue };
        let spec = &ctx.pair.specs[&e.table];
        let columns = spec.columns();
        // A child that came with a pulled-in parent does not keep it:
        // it goes where its parent goes.
        let came_with = entries
            .pulled
            .get(&(e.table.clone(), key_text(&e.key)))
            .cloned()
            .flatten();
        let mut refs: Vec<(String, String)> = Vec::new();
        for (col, table) in &spec.references {
            let Some(i) = columns.iter().position(|c| c == col) else {
                continue;
            };
            if !row[i].is_null() {
                refs.push((table.clone(), key_text(std::slice::from_ref(&row[i]))));
            }
        }
        for (_, table, v) in json_references_of(ctx, e)? {
            refs.push((table, key_text(std::slice::from_ref(&v))));
        }
        out.extend(refs.into_iter().filter(|r| came_with.as_ref() != Some(r)));
    }
    Ok(out)
}

/// Leaves behind, as `skip` with reason `excluded` (or `left-out`),
/// every row the plan would write that references a row left behind (a
/// QA form under a QA business, then that form's fields), until nothing
/// more changes. The row says which one it depends on.
pub(super) fn leave_behind_dependents(ctx: &Ctx<'_>, entries: &mut Entries<'_>) -> Result<()> {
    let pair = ctx.pair;
    loop {
        let left: HashMap<(&str, String), Reason> = entries
            .list
            .iter()
            .filter(|e| left_behind(e))
            .map(|e| {
                (
                    (e.table.as_str(), key_text(&e.key)),
                    e.reason.unwrap_or(Reason::Excluded),
                )
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        let mut demoted = Vec::new();
        for (i, e) in entries.list.iter().enumerate() {
            if !matches!(e.action, Action::Insert | Action::Update | Action::Conflict) {
                continue;
            }
            let Some(row) = &e.source else { continue };
            let spec = &pair.specs[&e.table];
            let columns = spec.columns();
            let on = spec.references.iter().find_map(|(col, table)| {
                let v = &row[columns.iter().position(|c| c == col)?];
                if v.is_null() {
                    return None;
                }
                let reason = left.get(&(table.as_str(), key_text(std::slice::from_ref(v))))?;
                Some((format!("{table}:{}", v.display_text()), *reason))
            });
            // Ids inside JSON count too.
            let on = match on {
                Some(on) => Some(on),
                None => json_references_of(ctx, e)?.into_iter().find_map(|(_, table, id)| {
                    let reason = left.get(&(table.as_str(), key_text(std::slice::from_ref(&id))))?;
                    Some((format!("{table}:{}", id.display_text()), *reason))
                }),
            };
            if let Some(on) = on {
                demoted.push((i, on));
            }
        }
        if demoted.is_empty() {
            return Ok(());
        }
        for (i, (on, reason)) in demoted {
            let e = &mut entries.list[i];
            e.action = Action::Skip;
            e.reason = Some(reason);
            e.depends_on = Some(on);
            e.set.clear();
            let (table, kt) = (e.table.clone(), key_text(&e.key));
            entries.count_left_behind(&table, kt);
        }
    }
}

/// The ids inside an entry's JSON columns that count as references:
/// ("column at path", referenced table, id in the referenced key's
/// type). A natural-key table's id counts only while deferred (a
/// matched one names a target row already); any other table's always
/// (ids are equal across environments, so the row must exist).
fn json_references_of(ctx: &Ctx<'_>, e: &PlanEntry) -> Result<Vec<(String, String, Value)>> {
    let pair = ctx.pair;
    let spec = &pair.specs[&e.table];
    let Some(row) = &e.source else { return Ok(Vec::new()) };
    if spec.json_references.is_empty() {
        return Ok(Vec::new());
    }
    let mut json = Vec::new();
    for (col, at, table, id) in json_ids::json_ids(spec, &pair.from, row)? {
        if ctx.is_natural(&table) && !e.deferred_json.iter().any(|d| d.column == col && d.path == at) {
            continue;
        }
        let ref_spec = &pair.specs[&table];
        let v = match ref_spec.key.first().and_then(|k| ref_spec.types.get(k)) {
            Some(ty) => convert(&id, ty).map_err(|err| {
                Error::Data(format!(
                    "environment `{}`, table `{}`, key {}, column `{col}`, path `{at}`: {} is not an id of `{table}` ({err}). Nothing was written; fix the value in `{}`",
                    pair.from,
                    e.table,
                    ferry_core::plan::key_label(&e.key),
                    id.display_text(),
                    pair.from
                ))
            })?,
            None => id,
        };
        json.push((format!("{col} at {at}"), table, v));
    }
    Ok(json)
}

/// Children travel with their parent: when the plan deletes a parent,
/// its remaining children in the target are deleted first.
pub(super) async fn delete_children_of_deleted(ctx: &Ctx<'_>, entries: &mut Entries<'_>) -> Result<()> {
    let pair = ctx.pair;
    for child in pair.order.iter().rev() {
        let spec = &pair.specs[child];
        let Some((col, parent)) = &spec.parent else { continue };
        let deleted: Vec<Vec<Value>> = entries
            .list
            .iter()
            .filter(|e| e.table == *parent && e.action == Action::Delete)
            .map(|e| vec![e.target_key()[0].clone()])
            .collect();
        if deleted.is_empty() {
            continue;
        }
        let rows = pair.target.fetch(children_request(spec, col, deleted)).await?;
        let col_at = spec.columns().iter().position(|c| c == col);
        // Entries by the key of their target row (a table whose key
        // goes through an id mapping has entries under source keys).
        let by_target: HashMap<String, usize> = entries
            .list
            .iter()
            .enumerate()
            .filter(|(_, e)| e.table == *child)
            .map(|(i, e)| (key_text(e.target_key()), i))
            .collect();
        for raw in rows {
            let side = ctx.side(spec, &pair.to, raw, true)?;
            let key = side.row[..spec.key.len()].to_vec();
            let idx = by_target.get(&key_text(&key)).copied();
            match idx.map(|i| (i, entries.list[i].action)) {
                Some((_, Action::Delete | Action::Conflict)) => {}
                Some((i, Action::Skip)) if entries.list[i].reason == Some(Reason::LeftOut) => {
                    // A child left out stays, and so does its parent.
                    let parent_key = col_at.map(|at| key_text(std::slice::from_ref(&side.row[at])));
                    if let Some(p) = parent_key.and_then(|k| entries.find(parent, &k)) {
                        let label = entries.list[i].label();
                        let pe = &mut entries.list[p];
                        pe.action = Action::Skip;
                        pe.reason = Some(Reason::LeftOut);
                        pe.depends_on = Some(label);
                    }
                }
                Some((i, _)) => {
                    let e = &mut entries.list[i];
                    e.action = Action::Delete;
                    e.reason = Some(Reason::ParentDeleted);
                    e.expect_target = Some(side.hashes.row);
                    e.fields = deleted_fields(spec, &side.row);
                }
                None => {
                    let c = Candidate {
                        key,
                        source: None,
                        target: Some(side),
                        excluded: false,
                        explicit: false,
                        pulled_by: None,
                        target_key: None,
                        no_base: false,
                    };
                    entries.push(entry(spec, &c, Action::Delete, Some(Reason::ParentDeleted)));
                }
            }
        }
    }
    Ok(())
}

/// The request for the rows of `spec` whose parent column `col` holds one
/// of `parents`.
fn children_request(spec: &TableSpec, col: &str, parents: Vec<Vec<Value>>) -> FetchRequest {
    FetchRequest {
        table: spec.name.clone(),
        columns: spec.columns(),
        match_columns: vec![col.to_string()],
        values: parents,
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}
