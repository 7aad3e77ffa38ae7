//! Ids inside JSON columns (`json_references`): read at their paths,
//! rewritten through the id mapping of natural-key tables when a plan is
//! made, and resolved to the ids the target assigned when it is applied.
//! Pure functions over a row and its [`TableSpec`]: no store, no plan state.

use std::collections::{BTreeMap, HashMap};

use ferry_core::canonical::key_text;
use ferry_core::json_refs::{self, JsonPath};
use ferry_core::plan::{key_label, DeferredJson, Plan, PlanEntry};
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;

use crate::error::{Error, Result};

/// The ids a row's JSON columns hold at their `json_references` paths:
/// (column, concrete path, referenced table, id). `from`: the environment
/// the row comes from, for errors.
pub(crate) fn json_ids(spec: &TableSpec, env: &str, row: &[Value]) -> Result<Vec<(String, String, String, Value)>> {
    let mut out = Vec::new();
    let columns = spec.columns();
    for (col, paths) in &spec.json_references {
        let Some(i) = columns.iter().position(|c| c == col) else {
            continue;
        };
        let Some(json) = json_cell(spec, env, row, col, &row[i])? else {
            continue;
        };
        for (path, table) in paths {
            let parsed = parse_path(spec, col, path)?;
            let mut bad = None;
            parsed.visit(&json, &mut |at, v| match json_refs::id_of(v) {
                Some(id) => out.push((col.clone(), at.to_string(), table.clone(), id)),
                None => bad = bad.take().or(Some((at.to_string(), v.to_string()))),
            });
            if let Some((at, v)) = bad {
                return Err(not_an_id(spec, env, row, col, &at, table, &v));
            }
        }
    }
    Ok(out)
}

fn parse_path(spec: &TableSpec, col: &str, path: &str) -> Result<JsonPath> {
    JsonPath::parse(path).map_err(|e| Error::Data(format!("table `{}`, column `{col}`: {e}", spec.name)))
}

fn json_cell(spec: &TableSpec, env: &str, row: &[Value], col: &str, v: &Value) -> Result<Option<serde_json::Value>> {
    json_refs::parse_cell(v).map_err(|why| {
        Error::Data(format!(
            "environment `{env}`, table `{}`, key {}, column `{col}`: {why}, but `json_references` declares ids inside it. Nothing was written; fix the value in `{env}`, or remove the column from `json_references`",
            spec.name,
            key_label(&row[..spec.key.len().min(row.len())])
        ))
    })
}

fn not_an_id(spec: &TableSpec, env: &str, row: &[Value], col: &str, at: &str, table: &str, v: &str) -> Error {
    Error::Data(format!(
        "environment `{env}`, table `{}`, key {}, column `{col}`, path `{at}`: holds {v}, which is not an id of `{table}` (an integer, or a string holding one). Nothing was written; fix the value in `{env}`, or the path in `json_references`",
        spec.name,
        key_label(&row[..spec.key.len().min(row.len())])
    ))
}

/// Rewrites the ids inside a source row's JSON columns that reference
/// natural-key tables through their id mapping (`maps`: table -> source
/// key text -> matched target key). An id the target has no row for yet
/// stays the source id and is returned as deferred (its column is added to
/// `deferred`); an absent or null place is left alone. A cell with nothing
/// rewritten keeps its value (and its text) as it is; a rewritten one is
/// serialized compactly.
pub(crate) fn rewrite_json(
    spec: &TableSpec,
    env: &str,
    row: &mut [Value],
    maps: &HashMap<String, HashMap<String, Option<Vec<Value>>>>,
    deferred: &mut Vec<String>,
) -> Result<Vec<DeferredJson>> {
    let mut out = Vec::new();
    let columns = spec.columns();
    for (col, paths) in &spec.json_references {
        if !paths.values().any(|t| maps.contains_key(t)) {
            continue;
        }
        let Some(i) = columns.iter().position(|c| c == col) else {
            continue;
        };
        let Some(mut json) = json_cell(spec, env, row, col, &row[i])? else {
            continue;
        };
        let mut changed = false;
        for (path, table) in paths {
            let Some(m) = maps.get(table) else { continue };
            let parsed = parse_path(spec, col, path)?;
            let mut bad = None;
            parsed.visit_mut(&mut json, &mut |at, v| {
                let Some(id) = json_refs::id_of(v) else {
                    bad = bad.take().or(Some((at.to_string(), v.to_string())));
                    return;
                };
                match m.get(&key_text(std::slice::from_ref(&id))) {
                    Some(Some(target_key)) => {
                        let new = json_refs::replaced(v, &target_key[0]);
                        if *v != new {
                            *v = new;
                            changed = true;
                        }
                    }
                    _ => out.push(DeferredJson {
                        column: col.clone(),
                        path: at.to_string(),
                        table: table.clone(),
                    }),
                }
            });
            if let Some((at, v)) = bad {
                return Err(not_an_id(spec, env, row, col, &at, table, &v));
            }
        }
        if out.iter().any(|d| d.column == *col) && !deferred.contains(col) {
            deferred.push(col.clone());
        }
        if changed {
            row[i] = json_refs::rewritten_cell(&row[i], json);
        }
    }
    Ok(out)
}

/// At apply: writes into the entry's JSON columns the ids the target
/// assigned the natural-key rows this plan inserted (`new_keys`: (table,
/// source key text) -> new key).
pub(crate) fn resolve_json(
    plan: &Plan,
    spec: &TableSpec,
    e: &PlanEntry,
    row: &mut [Value],
    new_keys: &HashMap<(String, String), Vec<Value>>,
) -> Result<()> {
    let columns = spec.columns();
    let mut by_column: BTreeMap<&str, Vec<&DeferredJson>> = BTreeMap::new();
    for d in &e.deferred_json {
        by_column.entry(d.column.as_str()).or_default().push(d);
    }
    for (col, ds) in by_column {
        let Some(i) = columns.iter().position(|c| c == col) else {
            continue;
        };
        let Some(mut json) = json_cell(spec, &plan.from, row, col, &row[i])? else {
            continue;
        };
        for d in ds {
            let parsed = parse_path(spec, col, &d.path)?;
            let mut failed = None;
            parsed.visit_mut(&mut json, &mut |at, v| {
                let found = json_refs::id_of(v)
                    .and_then(|id| new_keys.get(&(d.table.clone(), key_text(std::slice::from_ref(&id)))));
                match found {
                    Some(k) => *v = json_refs::replaced(v, &k[0]),
                    None => failed = Some((at.to_string(), v.to_string())),
                }
            });
            if let Some((at, v)) = failed {
                return Err(Error::Data(format!(
                    "{} -> {}: table `{}`, key {}, column `{col}`, path `{at}`: references {}:{v}, which has no row in `{}` and is not part of this promotion. Nothing was written; promote that row too",
                    plan.from,
                    plan.to,
                    e.table,
                    key_label(&e.key),
                    d.table,
                    plan.to
                )));
            }
        }
        row[i] = json_refs::rewritten_cell(&row[i], json);
    }
    Ok(())
}
