//! Building a plan: stream both sides of each selected table in key order,
//! merge them, and classify the rows that differ with the three-way rules;
//! then pull in the rows that references need and the children that travel
//! with their parents.
//!
//! Memory holds the differing rows only (and, for `--where`/`--id`
//! selections, the selected keys), never a whole table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use ferry_core::canonical::{key_text, RowHashes};
use ferry_core::plan::{Action, DeferredJson, FieldDiff, InMemory, Plan, PlanEntry, Reason, PLAN_FORMAT};
use ferry_core::rules::{decide, differing, ConflictKind, Decision, SyncBase};
use ferry_core::selection::Selection;
use ferry_core::spec::TableSpec;
use ferry_core::value::{convert, key_cmp, Value};
use ferry_db::raw::is_true;
use ferry_db::{meta, FetchRequest, Predicate, Read, Row, ScanRequest};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::merge::RawMerge;
use crate::natural::{self, NaturalMatch};
use crate::pair::Pair;
use crate::progress::Progress;

/// A row as one side holds it, canonical, with its hashes.
#[derive(Clone, Debug)]
pub struct SideRow {
    pub row: Vec<Value>,
    pub hashes: RowHashes,
    /// Reference columns holding the source key of a natural-key row the
    /// target does not have yet (resolved when the plan is applied).
    pub deferred: Vec<String>,
    /// Ids inside JSON columns naming such a row (their column is in
    /// `deferred` too).
    pub deferred_json: Vec<DeferredJson>,
}

/// A key seen on either side, waiting for classification.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub key: Vec<Value>,
    pub source: Option<SideRow>,
    pub target: Option<SideRow>,
    pub excluded: bool,
    pub explicit: bool,
    pub pulled_by: Option<String>,
    /// Natural-key tables: the matched target row's key.
    pub target_key: Option<Vec<Value>>,
    /// Natural-key tables: a target-only row, whose key is not a source
    /// key, so it has no sync base to look up.
    pub no_base: bool,
}

impl Candidate {
    pub(crate) fn natural(
        key: Vec<Value>,
        source: Option<SideRow>,
        target: Option<SideRow>,
        target_key: Option<Vec<Value>>,
        excluded: bool,
    ) -> Candidate {
        Candidate {
            key,
            source,
            target,
            excluded,
            explicit: false,
            pulled_by: None,
            target_key,
            no_base: false,
        }
    }
}

/// What a table contributes to the selection.
#[derive(Clone, Debug)]
enum Mode {
    /// Every row (optionally only rows matching a predicate on both sides).
    Scan(Option<String>),
    /// These keys.
    Keys(Vec<Vec<Value>>),
    /// The children of these parent keys.
    Children(Vec<Value>),
}

/// Receives every row equal on both sides (for `baseline`): table, source
/// key, hashes, and the matched target key for natural-key tables. A sink
/// lets the baseline spill them instead of holding a table in memory.
pub type EqualSink<'s> =
    Box<dyn FnMut(&str, &[Value], &RowHashes, Option<&[Value]>) -> std::io::Result<()> + Send + Sync + 's>;

pub struct Planner<'a> {
    pair: &'a Pair,
    has_meta: bool,
    entries: Vec<PlanEntry>,
    /// (table, key text) -> index in `entries`
    index: HashMap<(String, String), usize>,
    /// Rows left behind (matching `exclude`, or needing a row that does),
    /// per table; each counted once, by `left_keys`.
    excluded: BTreeMap<String, u64>,
    left_keys: HashSet<(String, String)>,
    /// (table, key text) of the rows `--skip` leaves out.
    skips: HashSet<(String, String)>,
    equal: Option<EqualSink<'a>>,
    equal_count: u64,
    progress: Progress,
    /// Natural-key tables, matched once per plan.
    natural: HashMap<String, NaturalMatch>,
    sides: Sides,
}

/// The id mapping of one natural-key table: source key text -> the matched
/// target key (`None`: a row the target lacks).
type IdMap = HashMap<String, Option<Vec<Value>>>;

/// What turning a raw row into a [`SideRow`] needs, shareable with the
/// tasks that canonicalise and hash both sides of a scan in parallel.
#[derive(Clone, Default)]
struct Sides {
    from: String,
    to: String,
    /// Natural-key tables: table -> source key text -> matched target key.
    natural: Arc<HashMap<String, IdMap>>,
}

impl Sides {
    /// Canonicalises a raw row of one side and hashes it. With `full`
    /// false only the row hash is computed (the merge compares that); the
    /// per-field hashes follow for the rows that differ ([`with_fields`]).
    fn side(&self, spec: &TableSpec, env: &str, raw: Vec<Value>, full: bool) -> Result<SideRow> {
        let key: Vec<Value> = raw[..spec.key.len().min(raw.len())].to_vec();
        let mut row = spec
            .canonicalize_owned(raw)
            .map_err(|(col, e)| conv_err((&self.from, &self.to), spec, &key, env, &col, e))?;
        let mut deferred = Vec::new();
        let natural_refs = spec.references.values().any(|t| self.natural.contains_key(t));
        if natural_refs && env == self.from {
            // References to natural-key tables: the source id becomes the id
            // of the matched target row; a row the target lacks stays
            // deferred until the plan is applied.
            for (i, col) in spec.columns().iter().enumerate() {
                let Some(m) = spec.references.get(col).and_then(|t| self.natural.get(t)) else {
                    continue;
                };
                if row[i].is_null() {
                    continue;
                }
                match m.get(&key_text(std::slice::from_ref(&row[i]))) {
                    Some(Some(target_key)) => row[i] = target_key[0].clone(),
                    _ => deferred.push(col.clone()),
                }
            }
        }
        let deferred_json = if env == self.from && json_natural_refs(spec, |t| self.natural.contains_key(t)) {
            // Ids inside JSON columns, through the same mapping.
            natural::rewrite_json(spec, env, &mut row, &self.natural, &mut deferred)?
        } else {
            Vec::new()
        };
        let hashes = if full {
            spec.hash(&row)
        } else {
            RowHashes {
                row: spec.row_hash(&row),
                fields: Vec::new(),
            }
        };
        Ok(SideRow {
            row,
            hashes,
            deferred,
            deferred_json,
        })
    }

    /// Canonicalises and hashes a scan's batches on a task of its own, so
    /// the two sides of a merge use both cores. Source rows carry whether
    /// they match `exclude` (the scan's extra flag column).
    fn stream(
        self,
        mut rx: ferry_db::RowBatches,
        spec: Arc<TableSpec>,
        env: String,
    ) -> mpsc::Receiver<Result<Vec<(SideRow, bool)>>> {
        let (tx, out) = mpsc::channel(4);
        let n = spec.key.len() + spec.compared.len();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let converted = batch.map_err(Error::from).and_then(|rows| {
                    rows.into_iter()
                        .map(|mut raw| {
                            let excluded = is_true(raw.get(n));
                            raw.truncate(n);
                            Ok((self.side(&spec, &env, raw, false)?, excluded))
                        })
                        .collect::<Result<Vec<_>>>()
                });
                let failed = converted.is_err();
                if tx.send(converted).await.is_err() || failed {
                    return;
                }
            }
        });
        out
    }
}

fn conv_err(
    (from, to): (&str, &str),
    spec: &TableSpec,
    key: &[Value],
    env: &str,
    col: &str,
    e: impl std::fmt::Display,
) -> Error {
    Error::Data(format!(
        "{from} -> {to}: environment `{env}`, table `{}`, key {}, column `{col}`: {e}. Nothing was written; fix the value (or the column type) and plan again",
        spec.name,
        ferry_core::plan::key_label(key),
    ))
}

impl<'a> Planner<'a> {
    pub async fn new(pair: &'a Pair, progress: Progress) -> Result<Planner<'a>> {
        let has_meta = pair.target.has_meta().await?;
        Ok(Planner {
            pair,
            has_meta,
            entries: Vec::new(),
            index: HashMap::new(),
            excluded: BTreeMap::new(),
            left_keys: HashSet::new(),
            skips: HashSet::new(),
            equal: None,
            equal_count: 0,
            progress,
            natural: HashMap::new(),
            sides: Sides {
                from: pair.from.clone(),
                to: pair.to.clone(),
                natural: Arc::new(HashMap::new()),
            },
        })
    }

    /// Also report every row equal on both sides to `sink` (for `baseline`).
    pub fn on_equal(mut self, sink: EqualSink<'a>) -> Self {
        self.equal = Some(sink);
        self
    }

    fn collects_equal(&self) -> bool {
        self.equal.is_some()
    }

    fn record_equal(
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

    /// Canonicalises a raw row read from one side.
    /// Canonicalises a raw row of one side and hashes it. With `full`
    /// false only the row hash is computed (the merge compares that); the
    /// per-field hashes follow for the rows that differ ([`with_fields`]).
    fn side(&self, spec: &TableSpec, env: &str, raw: Vec<Value>, full: bool) -> Result<SideRow> {
        self.sides.side(spec, env, raw, full)
    }

    /// Matches a natural-key table once: both sides read whole (reference
    /// data), the stored mapping from the sync base.
    async fn load_natural(&mut self, spec: &TableSpec) -> Result<()> {
        let pair = self.pair;
        let n = spec.columns().len();
        let req = ScanRequest {
            table: spec.name.clone(),
            columns: spec.columns(),
            order_by: spec.key.clone(),
            filter: None,
            flag: spec.exclude.clone().map(Predicate::Native),
        };
        let mut source = Vec::new();
        let mut rx = pair.source.scan(req.clone()).await?;
        while let Some(batch) = rx.recv().await {
            for raw in batch? {
                let excluded = is_true(raw.get(n));
                let mut raw = raw;
                raw.truncate(n);
                source.push((self.side(spec, &pair.from, raw, true)?, excluded));
            }
        }
        let mut target = Vec::new();
        let mut rx = pair.target.scan(ScanRequest { flag: None, ..req }).await?;
        while let Some(batch) = rx.recv().await {
            for raw in batch? {
                target.push(self.side(spec, &pair.to, raw, true)?);
            }
        }
        let mut bases = HashMap::new();
        if self.has_meta {
            let rows = pair
                .target
                .fetch(FetchRequest {
                    table: meta::SYNC.into(),
                    columns: meta::columns(&crate::journal::SYNC_READ),
                    match_columns: meta::columns(&["source_env", "table_name"]),
                    values: vec![vec![Value::Text(pair.from.clone()), Value::Text(spec.name.clone())]],
                    flag: None,
                    filter: None,
                    fixed: Vec::new(),
                })
                .await?;
            bases = rows
                .iter()
                .map(|r| crate::journal::parse_sync_row(pair.target.env(), r))
                .collect::<Result<_>>()?;
        }
        let m = natural::match_rows(spec, (&pair.from, &pair.to), source, target, &bases)?;
        let mut maps = (*self.sides.natural).clone();
        maps.insert(spec.name.clone(), m.map.clone());
        self.sides.natural = Arc::new(maps);
        self.natural.insert(spec.name.clone(), m);
        Ok(())
    }

    /// Matches a table whose key references a natural-key table (a child
    /// keyed by its parent's id, as in multi-table inheritance) once, after
    /// the natural-key tables: its key goes through their id mapping like
    /// any other reference ([`natural::match_mapped`]). Both sides are read
    /// whole: such a table has at most one row per parent row.
    async fn load_mapped(&mut self, spec: &TableSpec) -> Result<()> {
        let pair = self.pair;
        let n = spec.columns().len();
        let k = spec.key.len();
        let req = ScanRequest {
            table: spec.name.clone(),
            columns: spec.columns(),
            order_by: spec.key.clone(),
            filter: None,
            flag: spec.exclude.clone().map(Predicate::Native),
        };
        let mut source = Vec::new();
        let mut rx = pair.source.scan(req.clone()).await?;
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
                let row = self.side(spec, &pair.from, raw, true)?;
                source.push(natural::MappedRow {
                    source_key,
                    row,
                    excluded,
                });
            }
        }
        let mut target = Vec::new();
        let mut rx = pair.target.scan(ScanRequest { flag: None, ..req }).await?;
        while let Some(batch) = rx.recv().await {
            for raw in batch? {
                target.push(self.side(spec, &pair.to, raw, true)?);
            }
        }
        let parents: HashMap<String, &NaturalMatch> = spec
            .key
            .iter()
            .filter_map(|c| {
                let m = spec.references.get(c).and_then(|t| self.natural.get(t))?;
                Some((c.clone(), m))
            })
            .collect();
        let m = natural::match_mapped(spec, source, target, &parents);
        let mut maps = (*self.sides.natural).clone();
        maps.insert(spec.name.clone(), m.map.clone());
        self.sides.natural = Arc::new(maps);
        self.natural.insert(spec.name.clone(), m);
        Ok(())
    }

    /// Whether a table's key references a natural-key table: then its key
    /// is environment-local too, and goes through the id mapping.
    fn key_is_mapped(&self, spec: &TableSpec) -> bool {
        spec.natural_key.is_none()
            && spec.key.iter().any(|c| {
                spec.references
                    .get(c)
                    .is_some_and(|t| self.pair.specs.get(t).is_some_and(|s| s.natural_key.is_some()))
            })
    }

    /// The candidates of a natural-key table for a selection mode.
    async fn natural_candidates(&self, spec: &TableSpec, mode: &Mode) -> Result<Vec<Candidate>> {
        let Some(m) = self.natural.get(&spec.name) else {
            return Ok(Vec::new());
        };
        Ok(match mode {
            Mode::Scan(None) => m.by_source.values().chain(m.unclaimed.iter()).cloned().collect(),
            Mode::Scan(Some(filter)) => {
                let keys = self.matching_keys(spec, filter).await?;
                keys.iter()
                    .filter_map(|k| m.by_source.get(&key_text(k)).cloned())
                    .collect()
            }
            Mode::Keys(keys) => keys
                .iter()
                .filter_map(|k| m.by_source.get(&key_text(k)).cloned())
                .collect(),
            Mode::Children(parents) => {
                let Some((col, _)) = &spec.parent else {
                    return Ok(Vec::new());
                };
                let i = spec.columns().iter().position(|c| c == col).unwrap_or(0);
                let wanted: HashSet<String> = parents.iter().map(|p| key_text(std::slice::from_ref(p))).collect();
                // A parent column in the key: the source's own value (the
                // row's key went through the id mapping).
                let in_key = spec.key.iter().position(|c| c == col);
                m.by_source
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
        })
    }

    /// Plans the selection.
    /// Plans the selection; also gives how many rows were equal when a sink
    /// was set with [`Planner::on_equal`].
    pub async fn run(mut self, selection: &Selection) -> Result<(Plan, u64)> {
        let pair = self.pair;
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
            self.skips.insert((t.clone(), key_text(&parse_key(spec, parts)?)));
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

        for t in &pair.order {
            if pair.specs[t].natural_key.is_some() {
                self.load_natural(&pair.specs[t]).await?;
            }
        }
        for t in &pair.order {
            if self.key_is_mapped(&pair.specs[t]) {
                self.load_mapped(&pair.specs[t]).await?;
            }
        }
        let mut child_keys: HashMap<String, Vec<Value>> = HashMap::new();
        for t in pair.order.clone() {
            let spec = &pair.specs[&t];
            let mut selected_keys: Vec<Vec<Value>> = Vec::new();
            let scanned_fully = matches!(modes.get(&t), Some(Mode::Scan(None)));
            if let Some(mode) = modes.get(&t).cloned() {
                let track = !scanned_fully;
                selected_keys.extend(self.process(spec, mode, false, None, track).await?);
            }
            if !scanned_fully {
                if let Some(keys) = explicit_keys.remove(&t) {
                    selected_keys.extend(self.process(spec, Mode::Keys(keys), true, None, true).await?);
                }
                if let Some(parents) = child_keys.remove(&t) {
                    selected_keys.extend(self.process(spec, Mode::Children(parents), false, None, true).await?);
                }
            }
            // Selecting a parent selects its children.
            if !selected_keys.is_empty() {
                for child in &pair.order {
                    let c = &pair.specs[child];
                    if c.parent.as_ref().is_some_and(|(_, p)| *p == t)
                        && !matches!(modes.get(child), Some(Mode::Scan(None)))
                    {
                        child_keys
                            .entry(child.clone())
                            .or_default()
                            .extend(selected_keys.iter().map(|k| k[0].clone()));
                    }
                }
            }
        }
        let started = std::time::Instant::now();
        let step = |what: &str| tracing::debug!(ms = started.elapsed().as_millis() as u64, "plan: {what}");
        step("tables merged");
        self.pull_references().await?;
        step("references pulled");
        self.delete_children_of_deleted().await?;
        step("children of deleted rows added");
        self.unique_collisions().await?;
        step("unique constraints of the target checked");
        self.base_values().await?;
        step("base values of conflicts read");
        self.progress.finish();

        let order: HashMap<&String, usize> = pair.order.iter().enumerate().map(|(i, t)| (t, i)).collect();
        let mut entries = self.entries;
        entries.sort_by(|a, b| {
            order[&a.table]
                .cmp(&order[&b.table])
                .then_with(|| key_cmp(&a.key, &b.key))
        });
        let plan = Plan {
            format: PLAN_FORMAT,
            from: pair.from.clone(),
            to: pair.to.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            selection: selection.words(),
            tables: pair.order.clone(),
            keys: pair.specs.iter().map(|(t, s)| (t.clone(), s.key.clone())).collect(),
            columns: pair.specs.iter().map(|(t, s)| (t.clone(), s.columns())).collect(),
            specs: pair.specs.clone(),
            hash: String::new(),
            signature: String::new(),
            entries,
            excluded: self.excluded,
            checks: Vec::new(),
            under_lock: InMemory(false),
        };
        Ok((plan, self.equal_count))
    }

    /// Reads one table's selected rows from both sides and classifies them.
    /// Returns the selected keys when `track` (for children selection).
    async fn process(
        &mut self,
        spec: &TableSpec,
        mode: Mode,
        explicit: bool,
        pulled_by: Option<String>,
        track: bool,
    ) -> Result<Vec<Vec<Value>>> {
        let mut tracked = Vec::new();
        if self.natural.contains_key(&spec.name) {
            let mut cands = self.natural_candidates(spec, &mode).await?;
            if let Mode::Keys(keys) = &mode {
                if explicit && cands.len() < keys.len() {
                    return Err(Error::Usage(format!(
                        "--id {}: no such row in `{}` (for a table matched by natural key, --id names the source row's key)",
                        spec.name, self.pair.from
                    )));
                }
            }
            for c in cands.iter_mut() {
                c.explicit = explicit;
                c.pulled_by = pulled_by.clone();
            }
            tracked.extend(cands.iter().map(|c| c.key.clone()));
            self.classify(spec, cands).await?;
            return Ok(if track { tracked } else { Vec::new() });
        }
        match mode {
            // The raw merge sees only the keys that differ: it cannot give
            // every selected key.
            Mode::Scan(None) if !track && self.merges_raw(spec) => self.merge_raw(spec).await?,
            Mode::Scan(None) => {
                self.merge_scan(spec, None, track.then_some(&mut tracked)).await?;
            }
            Mode::Scan(Some(filter)) => {
                // A predicate selects the keys whose row matches it on
                // either side; both rows are then compared whole. Filtering
                // each side on its own would make a row that an edit moved
                // out of (or into) the predicate look deleted on one side,
                // and plan a delete or an insert for a mere update.
                let keys = self.matching_keys(spec, &filter).await?;
                let bar = self.progress.table(&spec.name);
                bar.set_total(keys.len() as u64);
                for chunk in keys.chunks(512) {
                    let cands = self
                        .fetch_candidates(spec, &spec.key, chunk.to_vec(), false, None)
                        .await?;
                    bar.inc(chunk.len() as u64);
                    tracked.extend(cands.iter().map(|c| c.key.clone()));
                    self.classify(spec, cands).await?;
                }
                bar.finish();
            }
            Mode::Keys(keys) => {
                let cands = self
                    .fetch_candidates(spec, &spec.key, keys.clone(), explicit, pulled_by)
                    .await?;
                if explicit {
                    let found: HashSet<String> = cands.iter().map(|c| key_text(&c.key)).collect();
                    if let Some(k) = keys.iter().find(|k| !found.contains(&key_text(k))) {
                        return Err(Error::Usage(format!(
                            "--id {}:{}: no such row in `{}` or `{}`",
                            spec.name,
                            ferry_core::plan::key_label(k),
                            self.pair.from,
                            self.pair.to
                        )));
                    }
                }
                tracked.extend(cands.iter().map(|c| c.key.clone()));
                self.classify(spec, cands).await?;
            }
            Mode::Children(parents) => {
                let Some((col, _)) = spec.parent.clone() else {
                    return Ok(tracked);
                };
                let cands = self
                    .fetch_candidates(
                        spec,
                        &[col],
                        parents.into_iter().map(|v| vec![v]).collect(),
                        false,
                        None,
                    )
                    .await?;
                tracked.extend(cands.iter().map(|c| c.key.clone()));
                self.classify(spec, cands).await?;
            }
        }
        Ok(if track { tracked } else { Vec::new() })
    }

    /// Fetches the rows matching `values` on `columns` from both sides.
    async fn fetch_candidates(
        &mut self,
        spec: &TableSpec,
        columns: &[String],
        values: Vec<Vec<Value>>,
        explicit: bool,
        pulled_by: Option<String>,
    ) -> Result<Vec<Candidate>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let req = FetchRequest {
            table: spec.name.clone(),
            columns: spec.columns(),
            match_columns: columns.to_vec(),
            values,
            flag: spec.exclude.clone().map(Predicate::Native),
            filter: None,
            fixed: Vec::new(),
        };
        let (source, target) = tokio::try_join!(
            self.pair.source.fetch(req.clone()),
            self.pair.target.fetch(FetchRequest { flag: None, ..req })
        )?;
        let n = spec.columns().len();
        let source = source
            .into_iter()
            .map(|mut raw| {
                let excluded = is_true(raw.get(n));
                raw.truncate(n);
                (raw, excluded)
            })
            .collect();
        self.candidates(spec, source, target, explicit, pulled_by)
    }

    /// Pairs rows read from both sides by key: source rows with whether
    /// they match `exclude`, target rows as they are.
    fn candidates(
        &self,
        spec: &TableSpec,
        source: Vec<(Row, bool)>,
        target: Vec<Row>,
        explicit: bool,
        pulled_by: Option<String>,
    ) -> Result<Vec<Candidate>> {
        let mut by_key: BTreeMap<String, Candidate> = BTreeMap::new();
        for (raw, excluded) in source {
            let side = self.side(spec, &self.pair.from, raw, true)?;
            let key = side.row[..spec.key.len()].to_vec();
            by_key.insert(
                key_text(&key),
                Candidate {
                    key,
                    source: Some(side),
                    target: None,
                    excluded,
                    explicit,
                    pulled_by: pulled_by.clone(),
                    target_key: None,
                    no_base: false,
                },
            );
        }
        for raw in target {
            let side = self.side(spec, &self.pair.to, raw, true)?;
            let key = side.row[..spec.key.len()].to_vec();
            by_key
                .entry(key_text(&key))
                .or_insert_with(|| Candidate {
                    key,
                    source: None,
                    target: None,
                    excluded: false,
                    explicit,
                    pulled_by: pulled_by.clone(),
                    target_key: None,
                    no_base: false,
                })
                .target = Some(side);
        }
        Ok(by_key.into_values().collect())
    }

    /// The keys of the rows matching `filter` in the source or in the
    /// target (canonical, each once).
    async fn matching_keys(&self, spec: &TableSpec, filter: &str) -> Result<Vec<Vec<Value>>> {
        let pair = self.pair;
        let req = ScanRequest {
            table: spec.name.clone(),
            columns: spec.key.clone(),
            order_by: spec.key.clone(),
            filter: Some(Predicate::native(filter)),
            flag: None,
        };
        let mut keys: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (store, env) in [(&pair.source, &pair.from), (&pair.target, &pair.to)] {
            let mut rx = match store.scan(req.clone()).await {
                Ok(rx) => rx,
                Err(e) => return Err(where_error(pair, spec, Some(filter), e).await),
            };
            while let Some(batch) = rx.recv().await {
                for raw in batch? {
                    let key = spec
                        .canonicalize_key(&raw)
                        .map_err(|(col, e)| conv_err((&pair.from, &pair.to), spec, &raw, env, &col, e))?;
                    keys.entry(key_text(&key)).or_insert(key);
                }
            }
        }
        Ok(keys.into_values().collect())
    }

    /// Streams both sides of a table in key order and classifies the keys
    /// whose rows differ.
    async fn merge_scan(
        &mut self,
        spec: &TableSpec,
        filter: Option<String>,
        mut track: Option<&mut Vec<Vec<Value>>>,
    ) -> Result<()> {
        let pair = self.pair;
        let (src_req, dst_req) = full_scan(spec, filter.clone());
        let scans = tokio::try_join!(pair.source.scan(src_req), pair.target.scan(dst_req));
        let (src, dst) = match scans {
            Ok(s) => s,
            Err(e) => return Err(where_error(pair, spec, filter.as_deref(), e).await),
        };
        let shared = Arc::new(spec.clone());
        let mut src = self.sides.clone().stream(src, shared.clone(), pair.from.clone());
        let mut dst = self.sides.clone().stream(dst, shared, pair.to.clone());
        let bar = self.progress.table(&spec.name);
        let k = spec.key.len();
        let mut s_buf: std::vec::IntoIter<(SideRow, bool)> = Vec::new().into_iter();
        let mut t_buf: std::vec::IntoIter<(SideRow, bool)> = Vec::new().into_iter();
        let mut s_next: Option<(SideRow, bool)> = None;
        let mut t_next: Option<SideRow> = None;
        let mut s_done = false;
        let mut t_done = false;
        let mut last_s: Option<Vec<Value>> = None;
        let mut last_t: Option<Vec<Value>> = None;
        let mut pending: Vec<Candidate> = Vec::new();
        loop {
            if s_next.is_none() && !s_done {
                match next_item(&mut s_buf, &mut src).await? {
                    Some((side, excluded)) => {
                        check_order(&pair.from, spec, &mut last_s, &side.row[..k])?;
                        s_next = Some((side, excluded));
                    }
                    None => s_done = true,
                }
            }
            if t_next.is_none() && !t_done {
                match next_item(&mut t_buf, &mut dst).await? {
                    Some((side, _)) => {
                        check_order(&pair.to, spec, &mut last_t, &side.row[..k])?;
                        t_next = Some(side);
                    }
                    None => t_done = true,
                }
            }
            let ord = match (&s_next, &t_next) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((s, _)), Some(t)) => key_cmp(&s.row[..k], &t.row[..k]),
            };
            let (source, excluded, target) = match ord {
                std::cmp::Ordering::Less => {
                    let (s, ex) = s_next.take().unwrap_or_else(|| unreachable!("checked above"));
                    (Some(s), ex, None)
                }
                std::cmp::Ordering::Greater => (None, false, t_next.take()),
                std::cmp::Ordering::Equal => {
                    let (s, ex) = s_next.take().unwrap_or_else(|| unreachable!("checked above"));
                    (Some(s), ex, t_next.take())
                }
            };
            bar.inc(1);
            let key = source
                .as_ref()
                .or(target.as_ref())
                .map(|r| r.row[..k].to_vec())
                .unwrap_or_default();
            if let Some(tracked) = track.as_deref_mut() {
                tracked.push(key.clone());
            }
            if let (Some(s), Some(t), false) = (&source, &target, excluded) {
                if s.hashes.row == t.hashes.row {
                    if self.collects_equal() {
                        let hashes = spec.hash(&s.row);
                        self.record_equal(&spec.name, &key, &hashes, None)?;
                    }
                    continue;
                }
            }
            pending.push(Candidate {
                key,
                source,
                target,
                excluded,
                explicit: false,
                pulled_by: None,
                target_key: None,
                no_base: false,
            });
            if pending.len() >= 512 {
                self.classify(spec, std::mem::take(&mut pending)).await?;
            }
        }
        bar.finish();
        self.classify(spec, pending).await
    }

    /// Whether a full scan of `spec` can use the raw merge ([`crate::merge`]):
    /// not for a baseline (it records the hashes of equal rows too), nor
    /// for references to natural-key tables (the source's ids are rewritten
    /// before comparing).
    fn merges_raw(&self, spec: &TableSpec) -> bool {
        let pair = self.pair;
        pair.raw_comparable.contains(&spec.name)
            && !self.collects_equal()
            && !spec.references.values().any(|t| self.natural.contains_key(t))
            && !json_natural_refs(spec, |t| self.natural.contains_key(t))
    }

    /// Streams both sides of a table as raw images in key order, and reads
    /// again whole, to classify them, only the rows whose images differ.
    async fn merge_raw(&mut self, spec: &TableSpec) -> Result<()> {
        let pair = self.pair;
        let (src_req, dst_req) = full_scan(spec, None);
        // No predicate here: a failing scan is the database's error as it is.
        let (src, dst) = tokio::try_join!(pair.source.scan_raw(src_req), pair.target.scan_raw(dst_req))?;
        let mut chunks = RawMerge::new(spec, (&pair.from, src), (&pair.to, dst)).spawn();
        let bar = self.progress.table(&spec.name);
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            bar.inc(chunk.read);
            let (mut source, mut target, mut again) = (Vec::new(), Vec::new(), Vec::new());
            for d in chunk.rows {
                match d.rows {
                    Some(rows) => {
                        source.extend(rows.source.map(|r| (r, rows.excluded)));
                        target.extend(rows.target);
                    }
                    None => again.push(
                        spec.canonicalize_key(&d.key)
                            .map_err(|(col, e)| conv_err((&pair.from, &pair.to), spec, &d.key, &pair.from, &col, e))?,
                    ),
                }
            }
            let mut cands = self.candidates(spec, source, target, false, None)?;
            cands.extend(self.fetch_candidates(spec, &spec.key, again, false, None).await?);
            self.classify(spec, cands).await?;
        }
        bar.finish();
        Ok(())
    }

    /// Looks up the sync base of the given keys.
    async fn bases(&self, spec: &TableSpec, keys: &[&Vec<Value>]) -> Result<HashMap<String, SyncBase>> {
        if !self.has_meta || keys.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self
            .pair
            .target
            .fetch(FetchRequest {
                table: meta::SYNC.into(),
                columns: meta::columns(&crate::journal::SYNC_READ),
                match_columns: meta::columns(&["row_key"]),
                values: keys.iter().map(|k| vec![Value::Text(key_text(k))]).collect(),
                flag: None,
                filter: None,
                fixed: vec![
                    ("source_env".into(), Value::Text(self.pair.from.clone())),
                    ("table_name".into(), Value::Text(spec.name.clone())),
                ],
            })
            .await?;
        rows.iter()
            .map(|r| crate::journal::parse_sync_row(self.pair.target.env(), r))
            .collect()
    }

    /// Applies the three-way rules to a batch of candidates.
    async fn classify(&mut self, spec: &TableSpec, mut cands: Vec<Candidate>) -> Result<()> {
        for c in cands.iter_mut() {
            for side in [c.source.as_mut(), c.target.as_mut()].into_iter().flatten() {
                with_fields(spec, side);
            }
        }
        let keys: Vec<&Vec<Value>> = cands.iter().filter(|c| !c.no_base).map(|c| &c.key).collect();
        let bases = self.bases(spec, &keys).await?;
        for c in cands {
            if c.no_base {
                // A natural-key row only in the target: shown, never touched,
                // and kept out of the index of source keys.
                if c.source.is_none() {
                    self.entries
                        .push(entry(spec, &c, Action::Skip, Some(Reason::TargetOnly)));
                }
                continue;
            }
            let kt = key_text(&c.key);
            if self.index.contains_key(&(spec.name.clone(), kt.clone())) {
                continue;
            }
            if c.excluded {
                // Rows matching `exclude` never leave the source, and their
                // target twin is never deleted because of them.
                self.count_left_behind(&spec.name, kt);
                if c.explicit {
                    self.push(entry(spec, &c, Action::Skip, Some(Reason::Excluded)));
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
                    if spec.natural_key.is_some() && base.is_none() && c.target.is_some() && !self.collects_equal() =>
                {
                    // First match by natural key: record the id mapping.
                    entry(spec, &c, Action::Skip, Some(Reason::Matched))
                }
                Decision::Nothing => {
                    if self.collects_equal() {
                        if let Some(s) = &c.source {
                            let (key, hashes, target_key) = (c.key.clone(), s.hashes.clone(), c.target_key.clone());
                            self.record_equal(&spec.name, &key, &hashes, target_key.as_deref())?;
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
            let e = if self.skips.contains(&(spec.name.clone(), kt)) {
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
            self.push(PlanEntry {
                base: InMemory(Some(base.cloned())),
                ..e
            });
        }
        Ok(())
    }

    fn push(&mut self, e: PlanEntry) {
        self.index
            .insert((e.table.clone(), key_text(&e.key)), self.entries.len());
        self.entries.push(e);
    }

    /// Whether the plan writes this row (insert or update).
    fn writes(&self, table: &str, key: &[Value]) -> Option<Action> {
        self.index
            .get(&(table.to_string(), key_text(key)))
            .map(|i| self.entries[*i].action)
    }

    /// Whether the plan leaves this row behind (`excluded` or `left-out`).
    fn is_left_behind(&self, table: &str, key: &[Value]) -> bool {
        self.index
            .get(&(table.to_string(), key_text(key)))
            .is_some_and(|i| left_behind(&self.entries[*i]))
    }

    /// Counts a row left behind, once however often it is met.
    fn count_left_behind(&mut self, table: &str, key_text: String) {
        if self.left_keys.insert((table.to_string(), key_text)) {
            *self.excluded.entry(table.to_string()).or_default() += 1;
        }
    }

    /// The ids inside an entry's JSON columns that count as references:
    /// ("column at path", referenced table, id in the referenced key's
    /// type). A natural-key table's id counts only while deferred (a
    /// matched one names a target row already); any other table's always
    /// (ids are equal across environments, so the row must exist).
    fn json_references_of(&self, e: &PlanEntry) -> Result<Vec<(String, String, Value)>> {
        let pair = self.pair;
        let spec = &pair.specs[&e.table];
        let Some(row) = &e.source else { return Ok(Vec::new()) };
        if spec.json_references.is_empty() {
            return Ok(Vec::new());
        }
        let mut json = Vec::new();
        for (col, at, table, id) in natural::json_ids(spec, &pair.from, row)? {
            if self.natural.contains_key(&table) && !e.deferred_json.iter().any(|d| d.column == col && d.path == at) {
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

    /// Leaves behind, as `skip` with reason `excluded` (or `left-out`),
    /// every row the plan would write that references a row left behind (a
    /// QA form under a QA business, then that form's fields), until nothing
    /// more changes. The row says which one it depends on.
    fn leave_behind_dependents(&mut self) -> Result<()> {
        let pair = self.pair;
        loop {
            let left: HashMap<(&str, String), Reason> = self
                .entries
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
            for (i, e) in self.entries.iter().enumerate() {
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
                    None => self.json_references_of(e)?.into_iter().find_map(|(_, table, id)| {
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
                let e = &mut self.entries[i];
                e.action = Action::Skip;
                e.reason = Some(reason);
                e.depends_on = Some(on);
                e.set.clear();
                let (table, kt) = (e.table.clone(), key_text(&e.key));
                self.count_left_behind(&table, kt);
            }
        }
    }

    /// Pulls in every referenced row the target lacks, transitively, and
    /// brings the children of pulled-in parents. A referenced row that
    /// matches `exclude` stays behind, and so do the rows that need it.
    async fn pull_references(&mut self) -> Result<()> {
        let pair = self.pair;
        let mut checked: HashSet<(String, String)> = HashSet::new();
        loop {
            self.leave_behind_dependents()?;
            // referenced table -> (key value, who needs it)
            let mut needed: BTreeMap<String, Vec<(Value, String)>> = BTreeMap::new();
            for e in &self.entries {
                if !matches!(e.action, Action::Insert | Action::Update) {
                    continue;
                }
                let spec = &pair.specs[&e.table];
                let Some(row) = &e.source else { continue };
                // Ids inside JSON columns count as references too: to a
                // natural-key table only when deferred (a matched one was
                // rewritten already), to any other table always (its ids
                // are equal across environments).
                let json = self.json_references_of(e)?;
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
                    if self.natural.contains_key(table) && !e.deferred.contains(col) && !col.contains(" at $") {
                        continue;
                    }
                    let kt = key_text(std::slice::from_ref(v));
                    if !checked.insert((table.clone(), kt)) {
                        continue;
                    }
                    if self.is_left_behind(table, std::slice::from_ref(v)) {
                        // The next round leaves the referencing row behind too.
                        continue;
                    }
                    match self.writes(table, std::slice::from_ref(v)) {
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
            if needed.is_empty() {
                return Ok(());
            }
            for (table, wants) in needed {
                let spec = &pair.specs[&table];
                let req = FetchRequest {
                    table: table.clone(),
                    columns: spec.key.clone(),
                    match_columns: spec.key.clone(),
                    values: wants.iter().map(|(v, _)| vec![v.clone()]).collect(),
                    flag: None,
                    filter: None,
                    fixed: Vec::new(),
                };
                // A natural-key row is in the target when it is matched (and
                // then it was rewritten already): nothing to look up.
                let in_target: HashSet<String> = if self.natural.contains_key(&table) {
                    HashSet::new()
                } else {
                    pair.target
                        .fetch(req)
                        .await?
                        .iter()
                        .filter_map(|r| spec.canonicalize_key(r).ok())
                        .map(|k| key_text(&k))
                        .collect()
                };
                let missing: Vec<(Value, String)> = wants
                    .into_iter()
                    .filter(|(v, _)| !in_target.contains(&key_text(std::slice::from_ref(v))))
                    .collect();
                for (v, by) in missing {
                    let cands = if self.natural.contains_key(&table) {
                        let mut c = self
                            .natural_candidates(spec, &Mode::Keys(vec![vec![v.clone()]]))
                            .await?;
                        for x in c.iter_mut() {
                            x.pulled_by = Some(by.clone());
                        }
                        c
                    } else {
                        self.fetch_candidates(spec, &spec.key, vec![vec![v.clone()]], false, Some(by.clone()))
                            .await?
                    };
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
                            if !self.index.contains_key(&(table.clone(), kt.clone())) {
                                self.count_left_behind(&table, kt);
                                self.push(entry(spec, &c, Action::Skip, Some(Reason::Excluded)));
                            }
                        }
                        Some(c) => {
                            let key = c.key.clone();
                            self.classify(spec, vec![c]).await?;
                            if self.is_left_behind(&table, &key) {
                                continue;
                            }
                            if self.writes(&table, &key) != Some(Action::Insert) {
                                return Err(Error::Data(format!(
                                    "{} -> {}: table `{by_table}`, key {by_key}, column `{col}`: references {table}:{}, which `{}` deleted since the last sync. Nothing was written; restore it there or change the reference",
                                    pair.from, pair.to, v.display_text(), pair.to
                                )));
                            }
                            // A new parent brings its children.
                            for child in &pair.order {
                                let cs = &pair.specs[child];
                                if cs.parent.as_ref().is_some_and(|(_, p)| *p == table) {
                                    self.process(cs, Mode::Children(vec![key[0].clone()]), false, Some(format!("{table}:{}", v.display_text())), false)
                                        .await?;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Shows, for every both-changed conflict, the value each conflicting
    /// field had at the last sync: the row as Ferry promoted it, from the
    /// journal. Rows only baselined have no kept base.
    async fn base_values(&mut self) -> Result<()> {
        if !self.has_meta {
            return Ok(());
        }
        let pair = self.pair;
        for i in 0..self.entries.len() {
            if self.entries[i].reason != Some(Reason::BothChanged) {
                continue;
            }
            let spec = &pair.specs[&self.entries[i].table];
            let key = self.entries[i].key.clone();
            let sync = pair
                .target
                .fetch(FetchRequest {
                    table: meta::SYNC.into(),
                    columns: meta::columns(&["promotion_id"]),
                    match_columns: meta::columns(&["source_env", "table_name", "row_key"]),
                    values: vec![vec![
                        Value::Text(pair.from.clone()),
                        Value::Text(spec.name.clone()),
                        Value::Text(key_text(&key)),
                    ]],
                    flag: None,
                    filter: None,
                    fixed: Vec::new(),
                })
                .await?;
            let Some(Value::Text(promotion)) = sync.into_iter().next().and_then(|r| r.into_iter().next()) else {
                continue;
            };
            let row_key = crate::journal::image(spec.key.iter().cloned().zip(key.iter().cloned()));
            let rows = pair
                .target
                .fetch(FetchRequest {
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
                })
                .await?;
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
            let e = &mut self.entries[i];
            for f in e.fields.iter_mut() {
                let ty = &spec.types[&f.column];
                f.base = lookup(&f.column).and_then(|v| convert(&v, ty).ok());
            }
            e.base_kept = e.fields.iter().all(|f| f.base.is_some());
        }
        Ok(())
    }

    /// Finds the inserts and updates whose values in a unique constraint of
    /// the target are held by another target row or written by another row
    /// of the plan: the target would refuse them at apply. (A row the plan
    /// deletes or changes still holds its values when they are written:
    /// inserts and updates go before deletes, and constraints are checked
    /// row by row.) Each becomes a conflict
    /// (`unique-collision`) naming the constraint's columns, the values and
    /// the other row; `promote` refuses it before writing anything.
    async fn unique_collisions(&mut self) -> Result<()> {
        let pair = self.pair;
        for t in &pair.order {
            let spec = &pair.specs[t];
            if spec.unique.is_empty() {
                continue;
            }
            let mine: Vec<usize> = (0..self.entries.len())
                .filter(|i| self.entries[*i].table == *t)
                .collect();
            if !mine
                .iter()
                .any(|i| matches!(self.entries[*i].action, Action::Insert | Action::Update))
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
                    .filter(|i| matches!(self.entries[**i].action, Action::Insert | Action::Update))
                    .filter_map(|&i| after_values(spec, &self.entries[i], &idx).map(|v| (i, v)))
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
                        let other = self.entries[first].label();
                        found.push((*i, format!("{other} of this plan ({})", shown(v))));
                    }
                }
                // Target rows holding them (the database's own equality).
                let rows = pair
                    .target
                    .fetch(FetchRequest {
                        table: t.clone(),
                        columns: columns.clone(),
                        match_columns: cols.clone(),
                        values: written.iter().map(|(_, v)| v.clone()).collect(),
                        flag: None,
                        filter: None,
                        fixed: Vec::new(),
                    })
                    .await?;
                let k = spec.key.len();
                for raw in rows {
                    let held = self.side(spec, &pair.to, raw, true)?;
                    let tk = key_text(&held.row[..k]);
                    let hv: Vec<Value> = idx.iter().map(|&j| held.row[j].clone()).collect();
                    // The rows writing the values the database matched: equal
                    // ones, else equal but for case (a case-insensitive collation).
                    let ht = key_text(&hv);
                    let mut hits: Vec<&(usize, Vec<Value>)> =
                        written.iter().filter(|(_, v)| key_text(v) == ht).collect();
                    if hits.is_empty() {
                        hits = written
                            .iter()
                            .filter(|(_, v)| key_text(v).to_lowercase() == ht.to_lowercase())
                            .collect();
                    }
                    for (i, _) in hits {
                        let e = &self.entries[*i];
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
                    let e = &mut self.entries[i];
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

    /// Children travel with their parent: when the plan deletes a parent,
    /// its remaining children in the target are deleted first.
    async fn delete_children_of_deleted(&mut self) -> Result<()> {
        let pair = self.pair;
        for child in pair.order.iter().rev() {
            let spec = &pair.specs[child];
            let Some((col, parent)) = &spec.parent else { continue };
            let deleted: Vec<Vec<Value>> = self
                .entries
                .iter()
                .filter(|e| e.table == *parent && e.action == Action::Delete)
                .map(|e| vec![e.target_key()[0].clone()])
                .collect();
            if deleted.is_empty() {
                continue;
            }
            let rows = pair
                .target
                .fetch(FetchRequest {
                    table: child.clone(),
                    columns: spec.columns(),
                    match_columns: vec![col.clone()],
                    values: deleted,
                    flag: None,
                    filter: None,
                    fixed: Vec::new(),
                })
                .await?;
            let col_at = spec.columns().iter().position(|c| c == col);
            // Entries by the key of their target row (a table whose key
            // goes through an id mapping has entries under source keys).
            let by_target: HashMap<String, usize> = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.table == *child)
                .map(|(i, e)| (key_text(e.target_key()), i))
                .collect();
            for raw in rows {
                let side = self.side(spec, &pair.to, raw, true)?;
                let key = side.row[..spec.key.len()].to_vec();
                let idx = by_target.get(&key_text(&key)).copied();
                match idx.map(|i| (i, self.entries[i].action)) {
                    Some((_, Action::Delete | Action::Conflict)) => {}
                    Some((i, Action::Skip)) if self.entries[i].reason == Some(Reason::LeftOut) => {
                        // A child left out stays, and so does its parent.
                        let parent_key = col_at.map(|at| key_text(std::slice::from_ref(&side.row[at])));
                        if let Some(&p) = parent_key.and_then(|k| self.index.get(&(parent.clone(), k))) {
                            let label = self.entries[i].label();
                            let pe = &mut self.entries[p];
                            pe.action = Action::Skip;
                            pe.reason = Some(Reason::LeftOut);
                            pe.depends_on = Some(label);
                        }
                    }
                    Some((i, _)) => {
                        let e = &mut self.entries[i];
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
                        self.push(entry(spec, &c, Action::Delete, Some(Reason::ParentDeleted)));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a table declares ids inside JSON that reference a table
/// `natural` says is matched by natural key.
fn json_natural_refs(spec: &TableSpec, natural: impl Fn(&str) -> bool) -> bool {
    spec.json_references
        .values()
        .flat_map(|p| p.values())
        .any(|t| natural(t))
}

/// Whether an entry stays behind: excluded, or left out with `--skip`
/// (itself, or because it needs such a row).
fn left_behind(e: &PlanEntry) -> bool {
    e.action == Action::Skip && matches!(e.reason, Some(Reason::Excluded | Reason::LeftOut))
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

/// Adds the per-field hashes to a row hashed by row only.
fn with_fields(spec: &TableSpec, side: &mut SideRow) {
    if side.hashes.fields.len() != spec.compared.len() {
        side.hashes = spec.hash(&side.row);
    }
}

/// Builds an entry with the row images and field diffs of a candidate.
fn entry(spec: &TableSpec, c: &Candidate, action: Action, reason: Option<Reason>) -> PlanEntry {
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
fn deleted_fields(spec: &TableSpec, row: &[Value]) -> Vec<FieldDiff> {
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

/// The scans of both sides of a table in key order: the source's with the
/// `exclude` flag, the target's without.
fn full_scan(spec: &TableSpec, filter: Option<String>) -> (ScanRequest, ScanRequest) {
    let source = ScanRequest {
        table: spec.name.clone(),
        columns: spec.columns(),
        order_by: spec.key.clone(),
        filter: filter.map(Predicate::Native),
        flag: spec.exclude.clone().map(Predicate::Native),
    };
    let target = ScanRequest {
        flag: None,
        ..source.clone()
    };
    (source, target)
}

/// A scan that failed: when a `--where` predicate does not run on one side,
/// that is a usage error naming the predicate and the environment (exit 2),
/// not a database failure.
async fn where_error(pair: &Pair, spec: &TableSpec, filter: Option<&str>, e: ferry_db::DbError) -> Error {
    let Some(pred) = filter else { return e.into() };
    if e.kind != ferry_db::DbErrorKind::Query {
        return e.into();
    }
    for store in [&pair.source, &pair.target] {
        if let Err(p) = ferry_db::check_predicate(&**store, &spec.name, pred).await {
            // rusqlite appends the whole statement ("... in SELECT ..."): the
            // predicate is what the user wrote, so say that instead.
            let why = p.message.split(" in SELECT ").next().unwrap_or(&p.message);
            return Error::Usage(format!(
                "--where {}:{pred}: the predicate does not run in environment `{}`: {why}. Nothing was written; it is passed to the database as written, so use that database's SQL and the table's columns",
                spec.name,
                store.env()
            ));
        }
    }
    e.into()
}

/// `--take source|target` with `--id`: decides the conflicting or
/// target-newer rows named by `ids`. The only way to overwrite a
/// target-newer row. Returns how many rows were decided.
pub fn take(plan: &mut Plan, side: ferry_core::plan::Side, ids: &[(String, Vec<String>)]) -> Result<usize> {
    if ids.is_empty() {
        return Err(Error::Usage(
            "--take decides single rows: name them with --id TABLE:KEY".into(),
        ));
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
        return Err(Error::Usage(format!(
            "--id {}:{}: the key of `{}` has {} column(s) ({}); give one value per column, separated by commas",
            spec.name,
            parts.join(","),
            spec.name,
            spec.key.len(),
            spec.key.join(", ")
        )));
    }
    spec.key
        .iter()
        .zip(parts)
        .map(|(col, p)| {
            let ty = &spec.types[col];
            convert(&Value::Text(p.clone()), ty).map_err(|e| {
                Error::Usage(format!(
                    "--id {}:{}: key column `{col}`: {e}",
                    spec.name,
                    parts.join(",")
                ))
            })
        })
        .collect()
}

/// The next item of a stream of batches.
async fn next_item<T>(buf: &mut std::vec::IntoIter<T>, rx: &mut mpsc::Receiver<Result<Vec<T>>>) -> Result<Option<T>> {
    loop {
        if let Some(r) = buf.next() {
            return Ok(Some(r));
        }
        match rx.recv().await {
            Some(batch) => *buf = batch?.into_iter(),
            None => return Ok(None),
        }
    }
}

fn check_order(env: &str, spec: &TableSpec, last: &mut Option<Vec<Value>>, key: &[Value]) -> Result<()> {
    if let Some(prev) = last {
        if key_cmp(prev, key) != std::cmp::Ordering::Less {
            return Err(Error::Data(format!(
                "environment `{env}`, table `{}`: rows came out of key order ({} after {}); the key ({}) must be unique and of one type",
                spec.name,
                ferry_core::plan::key_label(key),
                ferry_core::plan::key_label(prev),
                spec.key.join(", ")
            )));
        }
    }
    *last = Some(key.to_vec());
    Ok(())
}

/// Hashes rows of `spec` read raw from the target (in spec column order).
pub fn target_side(spec: &TableSpec, env: &str, raw: &[Value]) -> Result<SideRow> {
    let row = spec.canonicalize(raw).map_err(|(col, e)| {
        Error::Data(format!(
            "environment `{env}`, table `{}`, key {}, column `{col}`: {e}",
            spec.name,
            ferry_core::plan::key_label(&raw[..spec.key.len().min(raw.len())])
        ))
    })?;
    let hashes = spec.hash(&row);
    Ok(SideRow {
        row,
        hashes,
        deferred: Vec::new(),
        deferred_json: Vec::new(),
    })
}

/// Plans a promotion of `selection` from the pair's source to its target.
pub async fn plan(pair: &Pair, selection: &Selection, progress: Progress) -> Result<Plan> {
    let (plan, _) = Planner::new(pair, progress).await?.run(selection).await?;
    Ok(plan)
}

/// The request for the current rows of `keys`, every target column (what a
/// before-image keeps).
pub fn full_rows(spec: &TableSpec, keys: Vec<Vec<Value>>) -> FetchRequest {
    FetchRequest {
        table: spec.name.clone(),
        columns: spec.target_columns.clone(),
        match_columns: spec.key.clone(),
        values: keys,
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}

/// Reads the current rows of `spec` for `keys` (all target columns) from a
/// store, or from a transaction, which locks them until it ends
/// ([`Read::fetch_for_update`]): what the re-check saw is what the writes
/// overwrite, and a client's edit either came before (and the re-check
/// sees it) or waits for the commit. The store chunks the lookup under its
/// placeholder limit.
pub async fn fetch_full(mut from: impl Read, spec: &TableSpec, keys: Vec<Vec<Value>>) -> Result<Vec<Row>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    Ok(from.fetch_for_update(full_rows(spec, keys)).await?)
}
