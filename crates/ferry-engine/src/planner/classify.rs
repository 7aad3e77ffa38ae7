//! Stage 4, classification. In: a table's [`Candidate`]s, with their sync
//! bases read from the target. Out: [`PlanEntry`]s by the three-way rules,
//! kept in [`Entries`] (with their index, the rows left behind, and the
//! rows equal on both sides reported to a baseline's sink). [`table`] runs
//! stage 3 and this one over one table.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_core::canonical::{key_text, RowHashes};
use ferry_core::plan::{Action, FieldDiff, InMemory, PlanEntry, Reason};
use ferry_core::rules::{decide, differing, ConflictKind, Decision, SyncBase};
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;
use ferry_db::{meta, FetchRequest};

use super::context::Ctx;
use super::rows::{with_fields, Candidate};
use super::scan;
use super::select::Mode;
use crate::error::{Error, Result};

/// Receives every row equal on both sides (for `baseline`): table, source
/// key, hashes, and the matched target key for natural-key tables. A sink
/// lets the baseline spill them instead of holding a table in memory.
pub type EqualSink<'s> =
    Box<dyn FnMut(&str, &[Value], &RowHashes, Option<&[Value]>) -> std::io::Result<()> + Send + Sync + 's>;

/// The plan's entries so far, and what classifying them found out.
pub(super) struct Entries<'s> {
    pub list: Vec<PlanEntry>,
    /// (table, key text) -> index in `list`
    index: HashMap<(String, String), usize>,
    /// Rows left behind (matching `exclude`, or needing a row that does),
    /// per table; each counted once, by `left_keys`.
    pub excluded: BTreeMap<String, u64>,
    left_keys: HashSet<(String, String)>,
    /// Rows the closure pulled in, by (table, key text): `None` for a row a
    /// written row references, `Some(parent)` for a child that came with
    /// a pulled-in parent. Such a row is written only while it is needed.
    pub pulled: HashMap<(String, String), Option<(String, String)>>,
    /// (table, key text) of the rows `--skip` leaves out.
    skips: HashSet<(String, String)>,
    equal: Option<EqualSink<'s>>,
    equal_count: u64,
}

impl<'s> Entries<'s> {
    pub(super) fn new(skips: HashSet<(String, String)>, equal: Option<EqualSink<'s>>) -> Entries<'s> {
        Entries {
            list: Vec::new(),
            index: HashMap::new(),
            excluded: BTreeMap::new(),
            left_keys: HashSet::new(),
            pulled: HashMap::new(),
            skips,
            equal,
            equal_count: 0,
        }
    }

    /// The entries, the rows left behind per table, and how many rows were
    /// reported equal.
    pub(super) fn finish(self) -> (Vec<PlanEntry>, BTreeMap<String, u64>, u64) {
        (self.list, self.excluded, self.equal_count)
    }

    /// The index of the entry of a row, if the plan has one.
    pub(super) fn find(&self, table: &str, key_text: &str) -> Option<usize> {
        self.index.get(&(table.to_string(), key_text.to_string())).copied()
    }

    /// Removes the entries at `drop` (indices into `list`).
    pub(super) fn remove(&mut self, drop: &HashSet<usize>) {
        let list = std::mem::take(&mut self.list);
        self.index.clear();
        for (i, e) in list.into_iter().enumerate() {
            if !drop.contains(&i) {
                self.push(e);
            }
        }
    }

    pub(super) fn push(&mut self, e: PlanEntry) {
        self.index.insert((e.table.clone(), key_text(&e.key)), self.list.len());
        self.list.push(e);
    }

    /// Whether the plan writes this row (insert or update).
    pub(super) fn writes(&self, table: &str, key: &[Value]) -> Option<Action> {
        self.index
            .get(&(table.to_string(), key_text(key)))
            .map(|i| self.list[*i].action)
    }

    /// Whether the plan leaves this row behind (`excluded` or `left-out`).
    pub(super) fn is_left_behind(&self, table: &str, key: &[Value]) -> bool {
        self.index
            .get(&(table.to_string(), key_text(key)))
            .is_some_and(|i| left_behind(&self.list[*i]))
    }

    /// Counts a row left behind, once however often it is met.
    pub(super) fn count_left_behind(&mut self, table: &str, key_text: String) {
        if self.left_keys.insert((table.to_string(), key_text)) {
            *self.excluded.entry(table.to_string()).or_default() += 1;
        }
    }

    pub(super) fn record_equal(
        &mut self,
        table: &str,
        key: &[Value],
        hashes: &RowHashes,
        target_key: Option<&[Value]>,
    ) -> Result<()> {
        if let Some(sink) = self.equal.as_mut() {
            sink(table, key, hashes, target_key)
                .map_err(|e| Error::Data(format!("cannot keep the rows to record as in sync: {e}")))?;
            self.equal_count += 1;
        }
        Ok(())
    }
}

/// Reads one table's selected rows from both sides (stage 3) and classifies
/// them. Returns the selected keys when `track` (for children selection).
pub(super) async fn table(
    ctx: &Ctx<'_>,
    entries: &mut Entries<'_>,
    spec: &TableSpec,
    mode: Mode,
    explicit: bool,
    pulled_by: Option<String>,
    track: bool,
) -> Result<Vec<Vec<Value>>> {
    let mut selected = Vec::new();
    let mut rows = scan::open(ctx, spec, mode, explicit, pulled_by, track).await?;
    while let Some(batch) = rows.next().await? {
        for (key, hashes) in &batch.equal {
            entries.record_equal(&spec.name, key, hashes, None)?;
        }
        selected.extend(batch.selected);
        classify(ctx, entries, spec, batch.candidates, batch.bases).await?;
    }
    Ok(selected)
}

/// Applies the three-way rules to a batch of candidates.
pub(super) async fn classify(
    ctx: &Ctx<'_>,
    entries: &mut Entries<'_>,
    spec: &TableSpec,
    mut cands: Vec<Candidate>,
    bases: Option<HashMap<String, SyncBase>>,
) -> Result<()> {
    for c in cands.iter_mut() {
        for side in [c.source.as_mut(), c.target.as_mut()].into_iter().flatten() {
            with_fields(spec, side);
        }
    }
    let bases = match bases {
        Some(b) => b,
        None => {
            let keys: Vec<&Vec<Value>> = cands.iter().filter(|c| !c.no_base).map(|c| &c.key).collect();
            sync_bases(ctx, spec, &keys).await?
        }
    };
    for c in cands {
        if c.no_base {
            // A natural-key row only in the target: shown, never touched,
            // and kept out of the index of source keys.
            if c.source.is_none() {
                entries
                    .list
                    .push(entry(spec, &c, Action::Skip, Some(Reason::TargetOnly)));
            }
            continue;
        }
        let kt = key_text(&c.key);
        if entries.index.contains_key(&(spec.name.clone(), kt.clone())) {
            continue;
        }
        if c.excluded {
            // Rows matching `exclude` never leave the source, and their
            // target twin is never deleted because of them.
            entries.count_left_behind(&spec.name, kt);
            if c.explicit {
                entries.push(entry(spec, &c, Action::Skip, Some(Reason::Excluded)));
            }
            continue;
        }
        let base = bases.get(&kt);
        let decision = decide(
            c.source.as_ref().map(|s| &s.hashes),
            c.target.as_ref().map(|t| &t.hashes),
            base,
        );
        let e = match decision {
            Decision::Nothing
                if spec.natural_key.is_some() && base.is_none() && c.target.is_some() && !ctx.keep_equal =>
            {
                // First match by natural key: record the id mapping.
                entry(spec, &c, Action::Skip, Some(Reason::Matched))
            }
            Decision::Nothing => {
                if ctx.keep_equal {
                    if let Some(s) = &c.source {
                        let (key, hashes, target_key) = (c.key.clone(), s.hashes.clone(), c.target_key.clone());
                        entries.record_equal(&spec.name, &key, &hashes, target_key.as_deref())?;
                    }
                }
                continue;
            }
            Decision::Insert => entry(spec, &c, Action::Insert, None),
            Decision::Update { fields, merged } => {
                let mut e = entry(spec, &c, Action::Update, None);
                e.reason = merged.then_some(Reason::Merged);
                e.set = fields.iter().map(|i| spec.compared[*i].clone()).collect();
                e
            }
            Decision::Delete => entry(spec, &c, Action::Delete, None),
            Decision::SkipTargetNewer => entry(spec, &c, Action::Skip, Some(Reason::TargetNewer)),
            Decision::SkipTargetOnly => entry(spec, &c, Action::Skip, Some(Reason::TargetOnly)),
            Decision::Conflict { kind, fields } => {
                let reason = match kind {
                    ConflictKind::BothChanged => Reason::BothChanged,
                    ConflictKind::DeletedInTarget => Reason::DeletedInTarget,
                    ConflictKind::DeletedInSource => Reason::DeletedInSource,
                    ConflictKind::NoBase => Reason::NoBase,
                };
                let mut e = entry(spec, &c, Action::Conflict, Some(reason));
                if !fields.is_empty() {
                    let overlap: Vec<&String> = fields.iter().map(|i| &spec.compared[*i]).collect();
                    e.fields.retain(|f| overlap.contains(&&f.column));
                }
                e
            }
        };
        let e = if entries.skips.contains(&(spec.name.clone(), kt)) {
            // `--skip`: shown, left as it is on both sides.
            PlanEntry {
                action: Action::Skip,
                reason: Some(Reason::LeftOut),
                set: Vec::new(),
                ..e
            }
        } else {
            e
        };
        entries.push(PlanEntry {
            base: InMemory(Some(base.cloned())),
            ..e
        });
    }
    Ok(())
}

/// Looks up the sync base of the given keys.
pub(super) async fn sync_bases(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    keys: &[&Vec<Value>],
) -> Result<HashMap<String, SyncBase>> {
    if !ctx.has_meta || keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = ctx.pair.target.fetch(sync_request(&ctx.pair.from, spec, keys)).await?;
    rows.iter()
        .map(|r| crate::journal::parse_sync_row(ctx.pair.target.env(), r))
        .collect()
}

/// The request for the sync bases of `keys` of `spec`, promoted from
/// `from`.
fn sync_request(from: &str, spec: &TableSpec, keys: &[&Vec<Value>]) -> FetchRequest {
    FetchRequest {
        table: meta::SYNC.into(),
        columns: meta::columns(&crate::journal::SYNC_READ),
        match_columns: meta::columns(&["row_key"]),
        values: keys.iter().map(|k| vec![Value::Text(key_text(k))]).collect(),
        flag: None,
        filter: None,
        fixed: vec![
            ("source_env".into(), Value::Text(from.to_string())),
            ("table_name".into(), Value::Text(spec.name.clone())),
        ],
    }
}

/// Builds an entry with the row images and field diffs of a candidate.
pub(super) fn entry(spec: &TableSpec, c: &Candidate, action: Action, reason: Option<Reason>) -> PlanEntry {
    let k = spec.key.len();
    let mut fields = Vec::new();
    let mut set = Vec::new();
    if let (Some(s), Some(t)) = (&c.source, &c.target) {
        for i in differing(&s.hashes.fields, &t.hashes.fields, spec.compared.len()) {
            fields.push(FieldDiff {
                column: spec.compared[i].clone(),
                source: Some(s.row[k + i].clone()),
                target: Some(t.row[k + i].clone()),
                base: None,
            });
            set.push(spec.compared[i].clone());
        }
    }
    if let (Action::Delete, None, Some(t)) = (action, &c.source, &c.target) {
        // A delete shows every field of the row the target loses.
        fields = deleted_fields(spec, &t.row);
    }
    PlanEntry {
        table: spec.name.clone(),
        key: c.key.clone(),
        action,
        reason,
        fields,
        // Conflicts keep every differing column, so `--force` can apply them.
        set: if action == Action::Conflict { set } else { Vec::new() },
        source: c.source.as_ref().map(|s| s.row.clone()),
        expect_target: c.target.as_ref().map(|t| t.hashes.row),
        source_fields: c.source.as_ref().map(|s| s.hashes.fields.concat()).unwrap_or_default(),
        source_hash: c.source.as_ref().map(|s| s.hashes.row),
        pulled_by: c.pulled_by.clone(),
        depends_on: None,
        base_kept: false,
        target_key: c.target_key.clone(),
        deferred: c.source.as_ref().map(|s| s.deferred.clone()).unwrap_or_default(),
        deferred_json: c.source.as_ref().map(|s| s.deferred_json.clone()).unwrap_or_default(),
        collides_with: None,
        base: InMemory(None),
    }
}

/// Every compared field of a target row a delete removes.
pub(super) fn deleted_fields(spec: &TableSpec, row: &[Value]) -> Vec<FieldDiff> {
    let k = spec.key.len();
    spec.compared
        .iter()
        .zip(row.iter().skip(k))
        .map(|(column, v)| FieldDiff {
            column: column.clone(),
            source: None,
            target: Some(v.clone()),
            base: None,
        })
        .collect()
}

/// Whether an entry stays behind: excluded, or left out with `--skip`
/// (itself, or because it needs such a row).
pub(super) fn left_behind(e: &PlanEntry) -> bool {
    e.action == Action::Skip && matches!(e.reason, Some(Reason::Excluded | Reason::LeftOut))
}
