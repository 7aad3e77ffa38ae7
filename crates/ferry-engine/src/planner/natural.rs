//! Stage 2, natural-key mapping. In: the pair's tables matched by natural
//! key (ids that differ per environment), and the tables keyed by them,
//! each read whole from both sides, with the stored mapping from the sync
//! base. Out: [`Matched`], each such table's [`NaturalMatch`] (its
//! candidates, and the id mapping later stages rewrite references with).
//!
//! A source row is matched with a target row by the stored id mapping
//! first (so renaming the natural key is an update), then by equal natural
//! key values. The key is environment-local: never compared, never copied;
//! a new row gets the id the target assigns, and references to the table
//! are rewritten through the mapping. Such tables hold reference data
//! (labels, tags, countries), so both sides are matched in memory.

use std::collections::{HashMap, HashSet};

use ferry_core::canonical::{encode_value, key_text};
use ferry_core::plan::key_label;
use ferry_core::rules::SyncBase;
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;
use ferry_db::raw::is_true;
use ferry_db::{meta, FetchRequest, ScanRequest};

use super::rows::{conv_err, Candidate, SideRow, Sides};
use crate::error::{Error, Result};
use crate::pair::Pair;

/// The natural-key tables of a plan, and the tables keyed by them, matched.
pub(super) struct Matched {
    /// Table -> its match.
    pub matches: HashMap<String, NaturalMatch>,
    /// The row converter, with every table's id mapping.
    pub sides: Sides,
}

impl Matched {
    fn add(&mut self, table: &str, m: NaturalMatch) {
        self.sides.add_map(table, m.map.clone());
        self.matches.insert(table.to_string(), m);
    }
}

/// Matches every natural-key table of the pair, then every table keyed by
/// one (whose key goes through their id mapping), in the pair's order.
pub(super) async fn load(pair: &Pair, has_meta: bool) -> Result<Matched> {
    let mut out = Matched {
        matches: HashMap::new(),
        sides: Sides::new(&pair.from, &pair.to),
    };
    for t in &pair.order {
        let spec = &pair.specs[t];
        if spec.natural_key.is_some() {
            let m = load_natural(pair, has_meta, &out.sides, spec).await?;
            out.add(t, m);
        }
    }
    for t in &pair.order {
        let spec = &pair.specs[t];
        if key_is_mapped(pair, spec) {
            let m = load_mapped(pair, &out, spec).await?;
            out.add(t, m);
        }
    }
    Ok(out)
}

/// Matches a natural-key table once: both sides read whole (reference
/// data), the stored mapping from the sync base.
async fn load_natural(pair: &Pair, has_meta: bool, sides: &Sides, spec: &TableSpec) -> Result<NaturalMatch> {
    let n = spec.columns().len();
    let (req, dst_req) = whole_scan(pair, spec);
    // Ids this table holds about itself (a column or a JSON path naming
    // it) go through its own mapping, known only once it is matched: the
    // source rows are converted again with it.
    let self_refs = spec.references.values().any(|t| *t == spec.name)
        || spec
            .json_references
            .values()
            .any(|p| p.values().any(|t| *t == spec.name));
    let mut raws = Vec::new();
    let mut source = Vec::new();
    let mut rx = pair.source.scan(req).await?;
    while let Some(batch) = rx.recv().await {
        for raw in batch? {
            let excluded = is_true(raw.get(n));
            let mut raw = raw;
            raw.truncate(n);
            if self_refs {
                raws.push((raw.clone(), excluded));
            }
            source.push((sides.side(spec, &pair.from, raw, true)?, excluded));
        }
    }
    let (target, kept) = target_rows(pair, sides, spec, dst_req).await?;
    let mut bases = HashMap::new();
    if has_meta {
        let rows = pair.target.fetch(stored_mapping(&pair.from, spec)).await?;
        bases = rows
            .iter()
            .map(|r| crate::journal::parse_sync_row(pair.target.env(), r))
            .collect::<Result<_>>()?;
    }
    if !self_refs {
        let mut m = match_rows(spec, (&pair.from, &pair.to), source, target, &bases)?;
        m.keep_excluded_targets(spec, &kept);
        return Ok(m);
    }
    let first = match_rows(spec, (&pair.from, &pair.to), source, target.clone(), &bases)?;
    let mut own = sides.clone();
    own.add_map(&spec.name, first.map);
    let source = raws
        .into_iter()
        .map(|(raw, excluded)| Ok((own.side(spec, &pair.from, raw, true)?, excluded)))
        .collect::<Result<Vec<_>>>()?;
    let mut m = match_rows(spec, (&pair.from, &pair.to), source, target, &bases)?;
    m.keep_excluded_targets(spec, &kept);
    Ok(m)
}

/// The scans of a table read whole, in key order (source, target), each
/// with the `exclude` flag when it is the side that evaluates it
/// ([`Pair::exclude_flags`]).
fn whole_scan(pair: &Pair, spec: &TableSpec) -> (ScanRequest, ScanRequest) {
    let (src_flag, dst_flag) = pair.exclude_flags(spec);
    let source = ScanRequest {
        table: spec.name.clone(),
        columns: spec.columns(),
        order_by: spec.key.clone(),
        filter: None,
        flag: src_flag,
        descending: false,
        limit: None,
    };
    let target = ScanRequest {
        flag: dst_flag,
        ..source.clone()
    };
    (source, target)
}

/// The target's rows of a table read whole, and the key texts of those
/// that match `exclude` when the target evaluates it (kept as they are).
async fn target_rows(
    pair: &Pair,
    sides: &Sides,
    spec: &TableSpec,
    req: ScanRequest,
) -> Result<(Vec<SideRow>, HashSet<String>)> {
    let n = spec.columns().len();
    let k = spec.key.len();
    let (mut target, mut kept) = (Vec::new(), HashSet::new());
    let mut rx = pair.target.scan(req).await?;
    while let Some(batch) = rx.recv().await {
        for mut raw in batch? {
            let excluded = is_true(raw.get(n));
            raw.truncate(n);
            let side = sides.side(spec, &pair.to, raw, true)?;
            if excluded {
                kept.insert(key_text(&side.row[..k]));
            }
            target.push(side);
        }
    }
    Ok((target, kept))
}

/// The request for the sync bases of every row of `spec` promoted from
/// `from` (their `target_key` is the stored id mapping).
fn stored_mapping(from: &str, spec: &TableSpec) -> FetchRequest {
    FetchRequest {
        table: meta::SYNC.into(),
        columns: meta::columns(&crate::journal::SYNC_READ),
        match_columns: meta::columns(&["source_env", "table_name"]),
        values: vec![vec![Value::Text(from.to_string()), Value::Text(spec.name.clone())]],
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}

/// Matches a table whose key references a natural-key table (a child
/// keyed by its parent's id, as in multi-table inheritance) once, after
/// the natural-key tables: its key goes through their id mapping like
/// any other reference ([`match_mapped`]). Both sides are read
/// whole: such a table has at most one row per parent row.
async fn load_mapped(pair: &Pair, matched: &Matched, spec: &TableSpec) -> Result<NaturalMatch> {
    let sides = &matched.sides;
    let n = spec.columns().len();
    let k = spec.key.len();
    let (req, dst_req) = whole_scan(pair, spec);
    let mut source = Vec::new();
    let mut rx = pair.source.scan(req).await?;
    while let Some(batch) = rx.recv().await {
        for mut raw in batch? {
            let excluded = is_true(raw.get(n));
            raw.truncate(n);
            let source_key = spec.canonicalize_key(&raw).map_err(|(col, e)| {
                conv_err(
                    (&pair.from, &pair.to),
                    spec,
                    &raw[..k.min(raw.len())],
                    &pair.from,
                    &col,
                    e,
                )
            })?;
            let row = sides.side(spec, &pair.from, raw, true)?;
            source.push(MappedRow {
                source_key,
                row,
                excluded,
            });
        }
    }
    let (target, kept) = target_rows(pair, sides, spec, dst_req).await?;
    let parents: HashMap<String, &NaturalMatch> = spec
        .key
        .iter()
        .filter_map(|c| {
            let m = spec.references.get(c).and_then(|t| matched.matches.get(t))?;
            Some((c.clone(), m))
        })
        .collect();
    let mut m = match_mapped(spec, source, target, &parents);
    m.keep_excluded_targets(spec, &kept);
    Ok(m)
}

/// Whether a table's key references a natural-key table: then its key
/// is environment-local too, and goes through the id mapping.
fn key_is_mapped(pair: &Pair, spec: &TableSpec) -> bool {
    spec.natural_key.is_none()
        && spec.key.iter().any(|c| {
            spec.references
                .get(c)
                .is_some_and(|t| pair.specs.get(t).is_some_and(|s| s.natural_key.is_some()))
        })
}

/// The match of one natural-key table between two environments.
#[derive(Default)]
pub(super) struct NaturalMatch {
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
pub(super) fn match_rows(
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
                .insert(st, Candidate::scanned(source_key, Some(row), None, None, true));
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
            Candidate::scanned(source_key, Some(row), target_row, target_key, false),
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
                    .push(Candidate::scanned(source_key, None, Some(t), Some(tk), false));
            }
            None => {
                let mut c = Candidate::scanned(tk.clone(), None, Some(t), Some(tk), false);
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
pub(super) struct MappedRow {
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
pub(super) fn match_mapped(
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
                .insert(st, Candidate::scanned(source_key, Some(row), None, None, true));
            continue;
        }
        let target_row = found.map(|i| target[i].clone());
        // References to this table are rewritten only to a row the target
        // has; any other is deferred, so the row is pulled in and inserted.
        out.map.insert(st.clone(), target_row.as_ref().and(mapped_key.clone()));
        out.by_source.insert(
            st,
            Candidate::scanned(source_key, Some(row), target_row, mapped_key, false),
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
        let mut c = Candidate::scanned(source_key, None, Some(t), Some(tk), false);
        c.no_base = !known;
        out.unclaimed.push(c);
    }
    out
}

impl NaturalMatch {
    /// Marks as excluded every row whose target row matches `exclude`
    /// (`kept`: their target key texts, when the target evaluates it): left
    /// as it is, never updated, never deleted.
    fn keep_excluded_targets(&mut self, spec: &TableSpec, kept: &HashSet<String>) {
        if kept.is_empty() {
            return;
        }
        let k = spec.key.len();
        for c in self.by_source.values_mut().chain(self.unclaimed.iter_mut()) {
            if c.target.as_ref().is_some_and(|t| kept.contains(&key_text(&t.row[..k]))) {
                c.excluded = true;
            }
        }
    }

    /// Every row of the table, on either side.
    pub(super) fn all(&self) -> Vec<Candidate> {
        self.by_source.values().chain(self.unclaimed.iter()).cloned().collect()
    }

    /// The rows of these source keys (a key no source row has is left out).
    pub(super) fn by_keys(&self, keys: &[Vec<Value>]) -> Vec<Candidate> {
        keys.iter()
            .filter_map(|k| self.by_source.get(&key_text(k)).cloned())
            .collect()
    }

    /// The source rows whose parent column holds one of `parents`.
    pub(super) fn children(&self, spec: &TableSpec, parents: &[Value]) -> Vec<Candidate> {
        let Some((col, _)) = &spec.parent else {
            return Vec::new();
        };
        let i = spec.columns().iter().position(|c| c == col).unwrap_or(0);
        let wanted: HashSet<String> = parents.iter().map(|p| key_text(std::slice::from_ref(p))).collect();
        // A parent column in the key: the source's own value (the
        // row's key went through the id mapping).
        let in_key = spec.key.iter().position(|c| c == col);
        self.by_source
            .values()
            .filter(|c| {
                let v = match (in_key, &c.source) {
                    (Some(j), Some(_)) => &c.key[j],
                    (None, Some(s)) => &s.row[i],
                    (_, None) => return false,
                };
                wanted.contains(&key_text(std::slice::from_ref(v)))
            })
            .cloned()
            .collect()
    }
}
