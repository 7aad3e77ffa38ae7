//! Tables whose ids differ per environment, matched by a natural key.
//!
//! A source row is matched with a target row by the stored id mapping
//! first (so renaming the natural key is an update), then by equal natural
//! key values. The key is environment-local: never compared, never copied;
//! a new row gets the id the target assigns, and references to the table
//! are rewritten through the mapping. Such tables hold reference data
//! (labels, tags, countries), so both sides are matched in memory.

use std::collections::HashMap;

use ferry_core::canonical::{encode_value, key_text};
use ferry_core::plan::key_label;
use ferry_core::rules::SyncBase;
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;

use crate::error::{Error, Result};
use crate::rows::{Candidate, SideRow};

/// The match of one natural-key table between two environments.
#[derive(Default)]
pub(crate) struct NaturalMatch {
    /// Every source row (matched, new, or deleted in the target), by source key text.
    pub by_source: HashMap<String, Candidate>,
    /// Target rows no source row claims: deleted in the source (their key
    /// is the source key the mapping names) or target-only.
    pub unclaimed: Vec<Candidate>,
    /// Source key text -> the matched target key (`None`: a new row).
    pub map: HashMap<String, Option<Vec<Value>>>,
    /// Target key text -> source key text, from the stored mapping (rows
    /// deleted in the source since the last sync included).
    pub reverse: HashMap<String, String>,
}

fn natural_text(spec: &TableSpec, nk: &[String], row: &[Value]) -> String {
    let columns = spec.columns();
    let mut out = Vec::new();
    for c in nk {
        if let Some(i) = columns.iter().position(|x| x == c) {
            encode_value(&mut out, &row[i]);
        }
    }
    crate::journal::image(vec![("nk".to_string(), Value::Bytes(out))])
}

fn duplicates(spec: &TableSpec, nk: &[String], env: &str, rows: &[&SideRow]) -> Result<()> {
    let k = spec.key.len();
    let mut seen: HashMap<String, &SideRow> = HashMap::new();
    for r in rows {
        if let Some(first) = seen.insert(natural_text(spec, nk, &r.row), r) {
            let columns = spec.columns();
            let values: Vec<String> = nk
                .iter()
                .filter_map(|c| columns.iter().position(|x| x == c))
                .map(|i| r.row[i].preview())
                .collect();
            return Err(Error::Data(format!(
                "environment `{env}`, table `{}`: rows {}:{} and {}:{} have the same natural key ({} = {}); the natural key must be unique. Nothing was written; make one of them unique",
                spec.name,
                spec.name,
                key_label(&first.row[..k]),
                spec.name,
                key_label(&r.row[..k]),
                nk.join(", "),
                values.join(", ")
            )));
        }
    }
    Ok(())
}

/// Matches the rows of both sides. `bases` maps source key text to the sync
/// base (whose `target_key` is the stored mapping).
pub(crate) fn match_rows(
    spec: &TableSpec,
    (from, to): (&str, &str),
    source: Vec<(SideRow, bool)>,
    target: Vec<SideRow>,
    bases: &HashMap<String, SyncBase>,
) -> Result<NaturalMatch> {
    let nk = spec.natural_key.clone().unwrap_or_default();
    let k = spec.key.len();
    let kept: Vec<&SideRow> = source.iter().filter(|(_, ex)| !ex).map(|(r, _)| r).collect();
    duplicates(spec, &nk, from, &kept)?;
    duplicates(spec, &nk, to, &target.iter().collect::<Vec<_>>())?;

    let by_key: HashMap<String, usize> = target
        .iter()
        .enumerate()
        .map(|(i, r)| (key_text(&r.row[..k]), i))
        .collect();
    let by_natural: HashMap<String, usize> = target
        .iter()
        .enumerate()
        .map(|(i, r)| (natural_text(spec, &nk, &r.row), i))
        .collect();
    // Target rows the stored mapping already gives to some source row.
    let mapped: HashMap<&str, &str> = bases
        .iter()
        .filter_map(|(s, b)| b.target_key.as_deref().map(|t| (t, s.as_str())))
        .collect();
    let mut claimed = vec![false; target.len()];
    let mut out = NaturalMatch {
        reverse: mapped.iter().map(|(t, s)| (t.to_string(), s.to_string())).collect(),
        ..NaturalMatch::default()
    };
    for (row, excluded) in source {
        let source_key = row.row[..k].to_vec();
        let st = key_text(&source_key);
        let base = bases.get(&st);
        let found = match base.and_then(|b| b.target_key.as_deref()) {
            // The stored mapping wins, even over a renamed natural key.
            Some(t) => by_key.get(t).copied(),
            None => by_natural
                .get(&natural_text(spec, &nk, &row.row))
                .copied()
                .filter(|i| !claimed[*i] && !mapped.contains_key(key_text(&target[*i].row[..k]).as_str())),
        };
        if excluded {
            // Never leaves the source, never claims (or deletes) a target row.
            if let Some(i) = found {
                claimed[i] = true;
            }
            out.by_source
                .insert(st, Candidate::natural(source_key, Some(row), None, None, true));
            continue;
        }
        let (target_row, target_key) = match found {
            Some(i) if !claimed[i] => {
                claimed[i] = true;
                let t = target[i].clone();
                let tk = t.row[..k].to_vec();
                (Some(t), Some(tk))
            }
            _ => (None, None),
        };
        if let Some(tk) = &target_key {
            out.reverse.insert(key_text(tk), st.clone());
        }
        out.map.insert(st.clone(), target_key.clone());
        out.by_source.insert(
            st,
            Candidate::natural(source_key, Some(row), target_row, target_key, false),
        );
    }
    for (i, t) in target.into_iter().enumerate() {
        if claimed[i] {
            continue;
        }
        let tk = t.row[..k].to_vec();
        match mapped.get(key_text(&tk).as_str()) {
            // Deleted in the source since the last sync.
            Some(source_text) => {
                let source_key = key_from_text(spec, &spec.key, source_text).unwrap_or_else(|| tk.clone());
                out.unclaimed
                    .push(Candidate::natural(source_key, None, Some(t), Some(tk), false));
            }
            None => {
                let mut c = Candidate::natural(tk.clone(), None, Some(t), Some(tk), false);
                c.no_base = true;
                out.unclaimed.push(c);
            }
        }
    }
    Ok(out)
}

/// A key read back from its key text (the sync base stores keys as text),
/// converted to the types of `columns`; `None` when it does not parse.
fn key_from_text(spec: &TableSpec, columns: &[String], text: &str) -> Option<Vec<Value>> {
    let vals = serde_json::from_str::<Vec<serde_json::Value>>(text).ok()?;
    if vals.len() != columns.len() {
        return None;
    }
    columns
        .iter()
        .zip(vals)
        .map(|(c, j)| {
            let raw = match j {
                serde_json::Value::Number(n) => n.as_i64().map(Value::Int)?,
                serde_json::Value::String(s) => Value::Text(s),
                _ => return None,
            };
            ferry_core::value::convert(&raw, &spec.types[c]).ok()
        })
        .collect()
}

/// A source row of a table whose key references a natural-key table: its
/// own key, and the row with its references (key included) already
/// rewritten through the id mapping ([`SideRow::deferred`] names the key
/// columns whose parent the target lacks).
pub(crate) struct MappedRow {
    pub source_key: Vec<Value>,
    pub row: SideRow,
    pub excluded: bool,
}

/// Matches a table keyed by the key of a natural-key table (a child keyed
/// by its parent's id: multi-table inheritance). A source row is matched
/// with the target row whose key is its key mapped through the parents'
/// id mapping; a row whose parent the target lacks is new (its key is the
/// id the target assigns the parent). A target row maps back to a source
/// key through the parents' stored mapping (deleted in the source), or is
/// target-only. `reverse`: key column -> the referenced table's match.
pub(crate) fn match_mapped(
    spec: &TableSpec,
    source: Vec<MappedRow>,
    target: Vec<SideRow>,
    reverse: &HashMap<String, &NaturalMatch>,
) -> NaturalMatch {
    let k = spec.key.len();
    let by_key: HashMap<String, usize> = target
        .iter()
        .enumerate()
        .map(|(i, r)| (key_text(&r.row[..k]), i))
        .collect();
    let mut claimed = vec![false; target.len()];
    let mut out = NaturalMatch::default();
    for MappedRow {
        source_key,
        row,
        excluded,
    } in source
    {
        let st = key_text(&source_key);
        let deferred_key = spec.key.iter().any(|c| row.deferred.contains(c));
        let mapped_key = (!deferred_key).then(|| row.row[..k].to_vec());
        let found = mapped_key
            .as_ref()
            .and_then(|tk| by_key.get(&key_text(tk)).copied())
            .filter(|i| !claimed[*i]);
        if let Some(i) = found {
            claimed[i] = true;
        }
        if excluded {
            out.by_source
                .insert(st, Candidate::natural(source_key, Some(row), None, None, true));
            continue;
        }
        let target_row = found.map(|i| target[i].clone());
        // References to this table are rewritten only to a row the target
        // has; any other is deferred, so the row is pulled in and inserted.
        out.map.insert(st.clone(), target_row.as_ref().and(mapped_key.clone()));
        out.by_source.insert(
            st,
            Candidate::natural(source_key, Some(row), target_row, mapped_key, false),
        );
    }
    for (i, t) in target.into_iter().enumerate() {
        if claimed[i] {
            continue;
        }
        let tk = t.row[..k].to_vec();
        // Every key column that references a natural-key table must map
        // back to a source key: then the row was promoted from that source
        // row (and the sync base says whether it was deleted there).
        let mut source_key = tk.clone();
        let mut known = true;
        for (j, col) in spec.key.iter().enumerate() {
            let Some(m) = reverse.get(col) else { continue };
            match m
                .reverse
                .get(&key_text(std::slice::from_ref(&tk[j])))
                .and_then(|s| key_from_text(spec, std::slice::from_ref(col), s))
            {
                Some(v) => source_key[j] = v[0].clone(),
                None => known = false,
            }
        }
        let mut c = Candidate::natural(source_key, None, Some(t), Some(tk), false);
        c.no_base = !known;
        out.unclaimed.push(c);
    }
    out
}
