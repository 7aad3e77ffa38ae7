//! Stage 1, selection. In: the pair and a [`Selection`]. Out: [`Selected`],
//! what each table contributes (every row, the rows a `--where` predicate
//! matches, named keys) and the rows `--skip` leaves out. No I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_core::canonical::key_text;
use ferry_core::plan::{Action, Plan, Reason};
use ferry_core::selection::Selection;
use ferry_core::spec::TableSpec;
use ferry_core::value::{convert, Value};

use crate::error::{Error, Hint, Part, Result};
use crate::pair::Pair;

/// What a table contributes to the selection.
#[derive(Clone, Debug)]
pub(super) enum Mode {
    /// Every row (optionally only rows matching a predicate on both sides).
    Scan(Option<String>),
    /// These keys.
    Keys(Vec<Vec<Value>>),
    /// The children of these parent keys.
    Children(Vec<Value>),
}

/// What a selection asks of each table.
pub(super) struct Selected {
    /// Table -> how its rows are selected (a table not named is read only
    /// for the rows others pull in).
    pub modes: BTreeMap<String, Mode>,
    /// Table -> the keys `--id` names.
    pub ids: HashMap<String, Vec<Vec<Value>>>,
    /// (table, key text) of the rows `--skip` leaves out.
    pub skips: HashSet<(String, String)>,
}

/// Resolves a selection against the pair's tables: refuses a table that is
/// not managed and a key that does not parse.
pub(super) fn select(pair: &Pair, selection: &Selection) -> Result<Selected> {
    let mut skips = HashSet::new();
    for t in selection.named_tables() {
        pair.spec(t)?;
    }
    let mut modes: BTreeMap<String, Mode> = BTreeMap::new();
    if selection.is_everything() {
        for t in &pair.order {
            modes.insert(t.clone(), Mode::Scan(None));
        }
    }
    for t in &selection.tables {
        modes.insert(t.clone(), Mode::Scan(None));
    }
    for (t, pred) in &selection.wheres {
        if !matches!(modes.get(t), Some(Mode::Scan(None))) {
            let combined = match modes.remove(t) {
                Some(Mode::Scan(Some(prev))) => format!("({prev}) OR ({pred})"),
                _ => pred.clone(),
            };
            modes.insert(t.clone(), Mode::Scan(Some(combined)));
        }
    }
    for (t, parts) in &selection.skips {
        let spec = pair.spec(t)?;
        skips.insert((t.clone(), key_text(&parse_key(spec, parts)?)));
    }
    let mut explicit_keys: HashMap<String, Vec<Vec<Value>>> = HashMap::new();
    for (t, parts) in &selection.ids {
        let spec = pair.spec(t)?;
        explicit_keys
            .entry(t.clone())
            .or_default()
            .push(parse_key(spec, parts)?);
    }
    // Children of a fully scanned parent are scanned fully too.
    for t in &pair.order {
        if let Some((_, parent)) = &pair.specs[t].parent {
            if matches!(modes.get(parent), Some(Mode::Scan(None))) {
                modes.insert(t.clone(), Mode::Scan(None));
            }
        }
    }
    Ok(Selected {
        modes,
        ids: explicit_keys,
        skips,
    })
}

/// `--take source|target` with `--id`: decides the conflicting or
/// target-newer rows named by `ids`. The only way to overwrite a
/// target-newer row. Returns how many rows were decided.
pub fn take(plan: &mut Plan, side: ferry_core::plan::Side, ids: &[(String, Vec<String>)]) -> Result<usize> {
    if ids.is_empty() {
        return Err(Error::Usage("taking a side decides single rows".into()).hint(Hint::NameRows));
    }
    let mut keys = HashSet::new();
    for (t, parts) in ids {
        let spec = plan
            .specs
            .get(t)
            .ok_or_else(|| Error::Usage(format!("`{t}` is not a managed table")))?;
        keys.insert((t.clone(), key_text(&parse_key(spec, parts)?)));
    }
    let mut n = 0;
    for e in plan.entries.iter_mut() {
        let decidable = (e.action == Action::Conflict && e.reason != Some(Reason::UniqueCollision))
            || (e.action == Action::Skip && e.reason == Some(Reason::TargetNewer));
        if decidable && keys.contains(&(e.table.clone(), key_text(&e.key))) {
            *e = e.take(side);
            n += 1;
        }
    }
    Ok(n)
}

/// Converts `--id` key parts to the key column types.
pub fn parse_key(spec: &TableSpec, parts: &[String]) -> Result<Vec<Value>> {
    if parts.len() != spec.key.len() {
        return Err(Error::Selection {
            part: Part::Row,
            given: format!("{}:{}", spec.name, parts.join(",")),
            message: format!(
                "the key of `{}` has {} column(s) ({}); give one value per column, separated by commas",
                spec.name,
                spec.key.len(),
                spec.key.join(", ")
            ),
        });
    }
    spec.key
        .iter()
        .zip(parts)
        .map(|(col, p)| {
            let ty = &spec.types[col];
            convert(&Value::Text(p.clone()), ty).map_err(|e| Error::Selection {
                part: Part::Row,
                given: format!("{}:{}", spec.name, parts.join(",")),
                message: format!("key column `{col}`: {e}"),
            })
        })
        .collect()
}
