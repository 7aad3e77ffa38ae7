//! Building a plan, as a pipeline of stages that hand each other plain
//! data. In: a [`Pair`] and a [`Selection`]. Out: a [`Plan`] (and, for a
//! baseline, the rows equal on both sides, reported to an [`EqualSink`]).
//!
//! 1. [`select`]: the selection -> what each table contributes ([`select::Selected`]).
//! 2. [`natural`]: natural-key tables and the tables keyed by them, read
//!    whole -> their id mapping ([`natural::Matched`]); then [`changed`]:
//!    the tables with `changed` -> whether each is read changed-only
//!    ([`changed::Reading`]).
//! 3. [`scan`]: one table and what it contributes -> batches of
//!    [`Candidate`](rows::Candidate)s, the keys whose rows differ.
//! 4. [`classify`]: candidates and their sync bases -> plan entries
//!    ([`classify::Entries`]).
//! 5. [`closure`]: entries -> entries closed under references and parents.
//! 6. [`annotate`]: entries -> entries checked against the target's unique
//!    constraints, with the base values of conflicts.
//!
//! Then the entries are sorted by table order and key into the [`Plan`].
//! [`rows`] holds the rows the stages hand on, and [`context`] what they
//! all read. Memory holds the differing rows only (and, for `--where`/`--id`
//! selections, the selected keys), never a whole table.

mod annotate;
mod changed;
mod classify;
mod closure;
mod context;
mod natural;
mod rows;
mod scan;
mod select;

use std::collections::HashMap;

use ferry_core::plan::{InMemory, Plan, PlanEntry, PLAN_FORMAT};
use ferry_core::selection::Selection;
use ferry_core::spec::TableSpec;
use ferry_core::value::{key_cmp, Value};
use ferry_db::{FetchRequest, Read, Row};

use classify::Entries;
pub use classify::EqualSink;
use context::Ctx;
pub use rows::{target_side, SideRow};
use select::Mode;
pub use select::{parse_key, take};

use crate::error::Result;
use crate::pair::Pair;
use crate::progress::Progress;

/// A plan to build: the pair, the progress to show, and where the rows
/// equal on both sides go (a baseline).
pub struct Planner<'a> {
    pair: &'a Pair,
    has_meta: bool,
    progress: Progress,
    equal: Option<EqualSink<'a>>,
}

impl<'a> Planner<'a> {
    pub async fn new(pair: &'a Pair, progress: Progress) -> Result<Planner<'a>> {
        let has_meta = pair.target.has_meta().await?;
        Ok(Planner {
            pair,
            has_meta,
            progress,
            equal: None,
        })
    }

    /// Also report every row equal on both sides to `sink` (for `baseline`).
    pub fn on_equal(mut self, sink: EqualSink<'a>) -> Self {
        self.equal = Some(sink);
        self
    }

    /// Plans the selection, running the stages in turn; also gives how many
    /// rows were equal when a sink was set with [`Planner::on_equal`].
    pub async fn run(self, selection: &Selection) -> Result<(Plan, u64)> {
        let pair = self.pair;
        let started = std::time::Instant::now();
        let step = |what: &str| tracing::debug!(ms = started.elapsed().as_millis() as u64, "plan: {what}");
        let selected = select::select(pair, selection)?;
        let matched = natural::load(pair, self.has_meta).await?;
        step("natural keys matched");
        let keep_equal = self.equal.is_some();
        let reading = changed::prepare(
            pair,
            self.has_meta,
            &selected.modes,
            |t| matched.matches.contains_key(t),
            keep_equal,
        )
        .await?;
        step("changed-only reads prepared");
        let ctx = Ctx::new(pair, self.has_meta, matched, keep_equal, reading.reads, self.progress);
        let mut entries = Entries::new(selected.skips, self.equal);
        select_rows(&ctx, &mut entries, selected.modes, selected.ids).await?;
        step("tables merged");
        closure::pull_references(&ctx, &mut entries).await?;
        step("references pulled");
        closure::delete_children_of_deleted(&ctx, &mut entries).await?;
        step("children of deleted rows added");
        annotate::unique_collisions(&ctx, &mut entries).await?;
        step("unique constraints of the target checked");
        annotate::base_values(&ctx, &mut entries).await?;
        step("base values of conflicts read");
        ctx.progress.finish();
        let (list, excluded, equal_count) = entries.finish();
        let mut plan = assemble(pair, selection, list, excluded);
        plan.marks = InMemory(reading.marks);
        plan.notes = InMemory(reading.notes);
        Ok((plan, equal_count))
    }
}

/// Stages 3 and 4 over every table, in the pair's order: each table reads
/// what the selection asks of it, and the children of the rows selected in
/// a parent follow.
async fn select_rows(
    ctx: &Ctx<'_>,
    entries: &mut Entries<'_>,
    modes: std::collections::BTreeMap<String, Mode>,
    mut ids: HashMap<String, Vec<Vec<Value>>>,
) -> Result<()> {
    let pair = ctx.pair;
    let mut child_keys: HashMap<String, Vec<Value>> = HashMap::new();
    for t in pair.order.clone() {
        let spec = &pair.specs[&t];
        let mut selected_keys: Vec<Vec<Value>> = Vec::new();
        let scanned_fully = matches!(modes.get(&t), Some(Mode::Scan(None)));
        if let Some(mode) = modes.get(&t).cloned() {
            let track = !scanned_fully;
            let started = std::time::Instant::now();
            selected_keys.extend(classify::table(ctx, entries, spec, mode, false, None, track).await?);
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "plan: table {t} read");
        }
        if !scanned_fully {
            if let Some(keys) = ids.remove(&t) {
                selected_keys.extend(classify::table(ctx, entries, spec, Mode::Keys(keys), true, None, true).await?);
            }
            if let Some(parents) = child_keys.remove(&t) {
                selected_keys
                    .extend(classify::table(ctx, entries, spec, Mode::Children(parents), false, None, true).await?);
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
    Ok(())
}

/// The plan of the entries, sorted by table order, then key.
fn assemble(
    pair: &Pair,
    selection: &Selection,
    mut entries: Vec<PlanEntry>,
    excluded: std::collections::BTreeMap<String, u64>,
) -> Plan {
    let order: HashMap<&String, usize> = pair.order.iter().enumerate().map(|(i, t)| (t, i)).collect();
    entries.sort_by(|a, b| {
        order[&a.table]
            .cmp(&order[&b.table])
            .then_with(|| match pair.specs.get(&a.table) {
                Some(spec) => spec.key_cmp(&a.key, &b.key),
                None => key_cmp(&a.key, &b.key),
            })
    });
    Plan {
        format: PLAN_FORMAT,
        from: pair.from.clone(),
        to: pair.to.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        selection: selection.words(),
        tables: pair.order.clone(),
        keys: pair.specs.iter().map(|(t, s)| (t.clone(), s.key.clone())).collect(),
        // What front ends show of a row: carried columns left out.
        columns: pair.specs.iter().map(|(t, s)| (t.clone(), s.shown_columns())).collect(),
        specs: pair.specs.clone(),
        hash: String::new(),
        signature: String::new(),
        entries,
        excluded,
        checks: Vec::new(),
        under_lock: InMemory(false),
        marks: InMemory::default(),
        notes: InMemory::default(),
    }
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
