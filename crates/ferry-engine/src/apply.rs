//! Applying a plan: one transaction on the target that re-checks the rows
//! the plan expects, writes parents before children (deletes in reverse),
//! stamps, and records the journal and the sync base, so data and journal
//! commit together or not at all.

use std::collections::{BTreeMap, HashMap};

use ferry_core::canonical::key_text;
use ferry_core::plan::{Action, Counts, Plan, PlanEntry, Reason};
use ferry_core::rules::SyncBase;
use ferry_core::spec::TableSpec;
use ferry_core::value::{convert, Value};
use ferry_db::{DbError, DbErrorKind, Row, Store, Txn};

use crate::error::{Error, Hint, Result};
use crate::journal::{self, JournalRow, PromotionRecord};
use crate::pair::Pair;
use crate::planner::target_side;

#[derive(Clone, Debug)]
pub struct PromoteOptions {
    pub user: String,
    /// Resolve conflicts in favour of the source.
    pub force: bool,
}

/// What a promotion did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Promotion {
    pub id: String,
    pub at: String,
    pub counts: Counts,
}

/// An entry to apply: the plan's own, borrowed (a large promotion's row
/// images are not copied), or a conflict resolved for `--force`, boxed so
/// the list holds a pointer per entry.
pub enum Change<'a> {
    Planned(&'a PlanEntry),
    Resolved(Box<PlanEntry>),
}

impl std::ops::Deref for Change<'_> {
    type Target = PlanEntry;
    fn deref(&self) -> &PlanEntry {
        match self {
            Change::Planned(e) => e,
            Change::Resolved(e) => e,
        }
    }
}

/// Refuses a plan with conflicts unless forced; returns the entries to apply.
pub fn changes(plan: &Plan, force_conflicts: bool) -> Result<Vec<Change<'_>>> {
    // The target would refuse these: no side wins them.
    let collisions: Vec<String> = plan
        .conflicts()
        .filter(|e| e.reason == Some(Reason::UniqueCollision))
        .map(|e| format!("  {}: {}", e.label(), e.collides_with.as_deref().unwrap_or("unique")))
        .collect();
    if !collisions.is_empty() {
        return Err(Error::Blocked(format!(
            "{} -> {}: {} row(s) would break a unique constraint of `{}`; nothing was written:\n{}\nChange the values in `{}` (or the other row in `{}`), or leave those rows out of the selection",
            plan.from,
            plan.to,
            collisions.len(),
            plan.to,
            collisions.iter().take(10).cloned().collect::<Vec<_>>().join("\n"),
            plan.from,
            plan.to
        ))
        .hint(Hint::ForceCannotWrite));
    }
    let conflicts: Vec<&PlanEntry> = plan.conflicts().collect();
    if !conflicts.is_empty() && !force_conflicts {
        let list: Vec<String> = conflicts
            .iter()
            .take(10)
            .map(|e| {
                let cols: Vec<&str> = e.fields.iter().map(|f| f.column.as_str()).collect();
                format!(
                    "  {} ({}{})",
                    e.label(),
                    e.reason.map(|r| r.name()).unwrap_or("conflict"),
                    if cols.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", cols.join(", "))
                    }
                )
            })
            .collect();
        let first_contact = conflicts.iter().any(|e| e.reason == Some(Reason::NoBase));
        return Err(Error::Blocked(format!(
            "{} -> {}: {} conflict(s) block the promotion; nothing was written:\n{}",
            plan.from,
            plan.to,
            conflicts.len(),
            list.join("\n"),
        ))
        .hint(Hint::Conflicts {
            from: plan.from.clone(),
            to: plan.to.clone(),
            first_contact,
        }));
    }
    Ok(plan
        .entries
        .iter()
        .filter_map(|e| match e.action {
            Action::Insert | Action::Update | Action::Delete => Some(Change::Planned(e)),
            Action::Conflict => Some(Change::Resolved(Box::new(e.source_wins()))),
            // `--take target`: only the sync base is written.
            Action::Skip if matches!(e.reason, Some(Reason::KeptTarget | Reason::Matched)) => Some(Change::Planned(e)),
            Action::Skip => None,
        })
        .collect())
}

fn write_error(pair: &Plan, table: &str, key: Option<&[Value]>, e: DbError) -> Error {
    let key = key
        .map(|k| format!(", key {}", ferry_core::plan::key_label(k)))
        .unwrap_or_default();
    let column = match (&e.column, e.kind) {
        (Some(c), _) => format!(", column `{c}`"),
        // A CHECK constraint names its expression, not a column: name the
        // table's columns the expression uses.
        (None, DbErrorKind::Constraint) => {
            let used = constraint_columns(pair.specs.get(table), &e.message);
            match used.as_slice() {
                [] => String::new(),
                [one] => format!(", column `{one}`"),
                many => format!(", columns `{}`", many.join("`, `")),
            }
        }
        (None, _) => String::new(),
    };
    let hint = match e.kind {
        DbErrorKind::Constraint => "the row breaks a constraint of the target; fix the row in the source (or the target's constraint) and promote again",
        DbErrorKind::Busy => "another writer holds the target; try again when it is done",
        _ => "fix the cause and promote again",
    };
    Error::Data(format!(
        "{} -> {}: environment `{}`, table `{table}`{key}{column}: {}. The promotion was rolled back and nothing was written; {hint}",
        pair.from, pair.to, pair.to, e.message
    ))
}

/// The columns of `spec`'s table that appear, as whole identifiers, in what
/// a constraint error says after "constraint failed:".
fn constraint_columns(spec: Option<&TableSpec>, message: &str) -> Vec<String> {
    let Some(spec) = spec else { return Vec::new() };
    let said = message
        .split_once("constraint failed")
        .map_or(message, |(_, rest)| rest);
    let words: std::collections::BTreeSet<&str> = said
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    spec.target_columns
        .iter()
        .filter(|c| words.contains(c.as_str()))
        .cloned()
        .collect()
}

fn spec_of<'p>(plan: &'p Plan, table: &str) -> Result<&'p TableSpec> {
    plan.specs.get(table).ok_or_else(|| {
        Error::Usage(format!(
            "the plan has no description of table `{table}`; make the plan again"
        ))
    })
}

/// Applies a plan in one transaction and journals it. Returns `None` when
/// the plan changes nothing.
pub async fn promote(pair: &Pair, plan: &Plan, opts: &PromoteOptions) -> Result<Option<Promotion>> {
    if plan.from != pair.from || plan.to != pair.to {
        return Err(Error::Usage(format!(
            "the plan goes {} -> {}, not {} -> {}",
            plan.from, plan.to, pair.from, pair.to
        )));
    }
    promote_plan(&*pair.target, plan, opts).await
}

/// Checks that a saved plan writes only what the configuration lets Ferry
/// write in `target`: every table it names (in `tables`, `specs` or an
/// entry) is a table `ferry.toml` manages, never one of Ferry's own
/// `_ferry_*` tables, and its spec has the key, compared, stamped and
/// ignored columns, references and natural key that the configuration and
/// the target's schema give it now. A plan file is only hashed, not
/// trusted: anyone can edit one and hash it again. Refuses (exit 3,
/// nothing written) naming the table.
pub async fn check_saved(project: &crate::project::Project, target: &dyn Store, plan: &Plan) -> Result<()> {
    let refuse = |table: &str, why: String| {
        Error::Blocked(format!(
            "{} -> {}: the plan writes table `{table}`, {why}. Nothing was written",
            plan.from, plan.to
        ))
        .hint(Hint::Replan {
            from: plan.from.clone(),
            to: plan.to.clone(),
        })
    };
    let named: std::collections::BTreeSet<&str> = plan
        .tables
        .iter()
        .chain(plan.specs.keys())
        .map(String::as_str)
        .chain(plan.entries.iter().map(|e| e.table.as_str()))
        .collect();
    for table in named {
        if table.to_ascii_lowercase().starts_with("_ferry_") {
            return Err(refuse(
                table,
                "which is one of Ferry's own tables and never a plan's target".into(),
            ));
        }
        let Some(cfg) = project.config.tables.get(table) else {
            return Err(refuse(table, "which ferry.toml does not manage".into()));
        };
        let Some(spec) = plan.specs.get(table) else {
            return Err(refuse(table, "but has no description of it".into()));
        };
        let Some(schema) = target.table_schema(table).await? else {
            return Err(refuse(table, format!("which does not exist in `{}`", plan.to)));
        };
        let schema = schema.with_carried();
        let key = cfg.key_or(&schema.primary_key);
        let stamped: Vec<String> = cfg.stamp.keys().cloned().collect();
        let mut compared: Vec<String> = schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|c| {
                !key.contains(c) && !cfg.ignore.contains(c) && !stamped.contains(c) && !schema.carried.contains(c)
            })
            .collect();
        compared.sort();
        let mut references = cfg.references.clone();
        if let Some((c, t)) = &cfg.parent {
            references.insert(c.clone(), t.clone());
        }
        let target_columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
        let carried: Vec<String> = schema.carried.iter().filter(|c| !key.contains(c)).cloned().collect();
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        let differs: Vec<String> = [
            (
                "name",
                list(std::slice::from_ref(&spec.name)),
                list(&[table.to_string()]),
            ),
            ("key", list(&spec.key), list(&key)),
            ("compared columns", list(&spec.compared), list(&compared)),
            ("stamped columns", list(&spec.stamped), list(&stamped)),
            ("carried columns", list(&spec.carried), list(&carried)),
            ("ignored columns", list(&spec.ignored), list(&cfg.ignore)),
            ("columns", list(&spec.target_columns), list(&target_columns)),
            (
                "natural key",
                list(spec.natural_key.as_deref().unwrap_or_default()),
                list(cfg.natural_key.as_deref().unwrap_or_default()),
            ),
            (
                "references",
                format!("{:?}", spec.references),
                format!("{references:?}"),
            ),
            ("parent", format!("{:?}", spec.parent), format!("{:?}", cfg.parent)),
            (
                "JSON references",
                format!("{:?}", spec.json_references),
                format!("{:?}", cfg.json_references),
            ),
        ]
        .into_iter()
        .filter(|(_, planned, now)| planned != now)
        .map(|(what, planned, now)| format!("{what}: {planned} in the plan, {now} now"))
        .collect();
        if !differs.is_empty() {
            return Err(refuse(
                table,
                format!(
                    "but describes it otherwise than ferry.toml and `{}`'s schema do ({})",
                    plan.to,
                    differs.join("; ")
                ),
            ));
        }
    }
    // Each entry has the shape its table's description gives: a row image
    // of another width would reach the database as a malformed statement.
    for e in &plan.entries {
        let Some(spec) = plan.specs.get(&e.table) else { continue };
        let columns = spec.columns();
        let shape = if e.key.len() != spec.key.len() {
            Some(format!(
                "a key of {} value(s) where the table's key has {}",
                e.key.len(),
                spec.key.len()
            ))
        } else if e.action == Action::Insert && e.source.is_none() {
            Some("an insert without the row it inserts".to_string())
        } else if let Some(row) = e.source.as_ref().filter(|r| r.len() != columns.len()) {
            Some(format!(
                "a row of {} value(s) where the table has {} columns to write",
                row.len(),
                columns.len()
            ))
        } else {
            e.set
                .iter()
                .chain(e.deferred.iter())
                .find(|c| !columns.contains(c))
                .map(|c| format!("a column `{c}` that is not one of the table's columns to write"))
        };
        if let Some(shape) = shape {
            return Err(refuse(&e.table, format!("but its entry {} has {shape}", e.label())));
        }
    }
    Ok(())
}

/// Applies a (possibly saved) plan to its target, with nothing but the
/// target: the plan carries its row images, table specs and expectations.
pub async fn promote_plan(target: &dyn Store, plan: &Plan, opts: &PromoteOptions) -> Result<Option<Promotion>> {
    promote_plan_with(target, plan, opts, "promote", |_| Vec::new()).await
}

/// A write to Ferry's own tables made in a promotion's transaction.
pub enum MetaWrite {
    Insert {
        table: String,
        columns: Vec<String>,
        rows: Vec<Row>,
    },
    Update {
        table: String,
        key: Vec<String>,
        set: Vec<String>,
        rows: Vec<(Row, Row)>,
    },
}

/// [`promote_plan`] recording the promotion as `kind` (promote, draft,
/// approve) and making `extra` writes to Ferry's tables (given the new
/// promotion's id) in the same transaction.
pub async fn promote_plan_with(
    target: &dyn Store,
    plan: &Plan,
    opts: &PromoteOptions,
    kind: &str,
    extra: impl FnOnce(&str) -> Vec<MetaWrite>,
) -> Result<Option<Promotion>> {
    let entries = changes(plan, opts.force)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let mut by_table: BTreeMap<&str, Vec<&PlanEntry>> = BTreeMap::new();
    for e in &entries {
        by_table.entry(e.table.as_str()).or_default().push(e);
    }
    // The target's schema must still hold every column the plan writes.
    for table in by_table.keys() {
        let spec = spec_of(plan, table)?;
        let schema = target.table_schema(table).await?.ok_or_else(|| {
            Error::Blocked(format!(
                "{}: table `{table}` no longer exists; nothing was written",
                plan.to
            ))
        })?;
        let wanted = spec.columns().into_iter().chain(spec.stamped.iter().cloned());
        // An open schema (a document store) takes any field.
        let lacks = |c: &String| schema.open_fields.is_none() && schema.column(c).is_none();
        if let Some(missing) = wanted.into_iter().find(lacks) {
            return Err(Error::Blocked(format!(
                "{}: table `{table}` has no column `{missing}` any more; the schema changed since the plan was made. Nothing was written; make a new plan",
                plan.to
            )));
        }
    }
    let started = std::time::Instant::now();
    let mut txn = target.begin().await?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "apply: transaction open");
    let mut clash = None;
    let promotion = match apply_in(plan, opts, kind, &entries, &by_table, txn.as_mut(), &mut clash).await {
        Ok(p) => p,
        Err(e) => {
            drop(txn);
            return Err(match clash {
                Some(entry) => inserted_meanwhile(target, plan, entry, e).await,
                None => e,
            });
        }
    };
    if target.as_sql().is_some() {
        watermarks_of(plan, kind, &by_table, &promotion, txn.as_mut()).await?;
    }
    for write in extra(&promotion.id) {
        match write {
            MetaWrite::Insert { table, columns, rows } => txn.insert(&table, &columns, &rows).await?,
            MetaWrite::Update { table, key, set, rows } => txn.update(&table, &key, &set, &rows).await?,
        }
    }
    txn.commit().await.map_err(|e| match e.kind {
        // The writer lock was lost before the commit: rolled back.
        DbErrorKind::Busy => Error::Blocked(format!(
            "{} -> {}: environment `{}`: {}",
            plan.from, plan.to, e.env, e.message
        )),
        // The connection closed: what happened is in the error, not
        // "rolled back" (a COMMIT cut short may have committed).
        DbErrorKind::Unreachable => Error::Db(e),
        _ => write_error(plan, "(commit)", None, e),
    })?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "apply: committed");
    Ok(Some(promotion))
}

/// The watermarks a promotion writes with its sync bases (see
/// `watermarks.rs`): a direct promotion (`promote`) records the marks its
/// plan took for every table it leaves in sync (no entry of it left
/// behind: skipped, left out, excluded by a dependency); and a write of
/// rows whose `changed` column it does not stamp (a refresh copies values
/// as they are) is a rewind for the pairs reading this database.
async fn watermarks_of(
    plan: &Plan,
    kind: &str,
    by_table: &BTreeMap<&str, Vec<&PlanEntry>>,
    promotion: &Promotion,
    txn: &mut dyn Txn,
) -> Result<()> {
    for table in by_table.keys() {
        let spec = spec_of(plan, table)?;
        if let Some(col) = &spec.changed {
            if kind == "refresh" || !spec.stamped.contains(col) {
                crate::watermarks::rewind(txn, table, &promotion.at, &promotion.id).await?;
            }
        }
    }
    if kind != "promote" {
        return Ok(());
    }
    let synced: Vec<&str> = plan
        .marks
        .0
        .keys()
        .map(String::as_str)
        .filter(|t| {
            !plan.entries.iter().any(|e| {
                e.table == *t
                    && e.action == Action::Skip
                    && !matches!(e.reason, Some(Reason::KeptTarget | Reason::Matched))
            })
        })
        .collect();
    crate::watermarks::record(txn, plan, &synced, &promotion.id).await
}

/// The before-images of a plan's rows, by (table, target key text).
type Before = BTreeMap<(String, String), Row>;

/// The sync bases the rows had before the promotion: table -> source key
/// text -> base.
type Previous = BTreeMap<String, BTreeMap<String, SyncBase>>;

/// Keys the target assigned to new natural-key rows (and keys mapped
/// through one): (table, source key text) -> key.
type NewKeys = HashMap<(String, String), Vec<Value>>;

/// Writes the plan inside `txn`: re-check, inserts and updates, deletes,
/// then the sync base and the journal. `clash` names the insert a key
/// constraint refused (see [`inserted_meanwhile`]).
async fn apply_in<'a>(
    plan: &Plan,
    opts: &PromoteOptions,
    kind: &str,
    entries: &[Change<'_>],
    by_table: &BTreeMap<&str, Vec<&'a PlanEntry>>,
    txn: &mut dyn Txn,
    clash: &mut Option<&'a PlanEntry>,
) -> Result<Promotion> {
    let started = std::time::Instant::now();
    let step = |what: &str| tracing::debug!(ms = started.elapsed().as_millis() as u64, "apply: {what}");
    let before = recheck(plan, by_table, txn).await?;
    step("target re-checked");
    let at = journal::now();
    let id = journal::new_id();
    let previous = previous_bases(plan, by_table, txn).await?;
    step("sync bases read");
    let mut written = Written {
        before: &before,
        previous: &previous,
        rows: Vec::new(),
        counts: Counts::default(),
    };
    let mut new_keys = NewKeys::new();
    // Inserts and updates, parents first.
    for table in &plan.tables {
        let Some(es) = by_table.get(table.as_str()) else {
            continue;
        };
        let spec = spec_of(plan, table)?;
        let stamps: Vec<(String, Value)> = spec
            .stamped
            .iter()
            .map(|c| (c.clone(), journal::stamp_value(at, &spec.target_types[c])))
            .collect();
        let w = Writing {
            plan,
            spec,
            stamps: &stamps,
        };
        w.insert(es, txn, &mut written, &mut new_keys, clash).await?;
        step(&format!("{table}: inserted"));
        w.update(es, txn, &mut written, &new_keys).await?;
        step(&format!("{table}: updated"));
    }
    step("inserted and updated");
    delete(plan, by_table, txn, &mut written).await?;
    // Rows decided for the target: nothing written but their sync base.
    for e in entries
        .iter()
        .filter(|e| matches!(e.reason, Some(Reason::KeptTarget | Reason::Matched)))
    {
        let spec = spec_of(plan, &e.table)?;
        written.add(e, spec, e.target_key(), None);
    }
    step("deleted");
    for (table, list) in &new_bases(plan, entries, &new_keys)? {
        journal::write_bases(txn, &plan.from, table, Some(&id), list).await?;
    }
    step("sync bases written");
    let Written { rows, counts, .. } = written;
    let promotion = PromotionRecord {
        id: id.clone(),
        kind: kind.into(),
        from: Some(plan.from.clone()),
        to: plan.to.clone(),
        user: opts.user.clone(),
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        selection: plan.selection.clone(),
        counts: counts.clone(),
        reverts: None,
        reverted_by: None,
    };
    // A saved plan's hash says which reviewed plan this promotion applied.
    let plan_hash = Some(plan.hash.clone()).filter(|h| !h.is_empty());
    journal::write_journal(txn, &promotion, rows, plan_hash).await?;
    step("journal written");
    Ok(Promotion {
        id,
        at: promotion.at,
        counts,
    })
}

/// Re-checks, inside the transaction, that the target is what the plan
/// saw, and keeps the before-images. The rows read are locked until the
/// commit (`fetch_full`), so no client edit slips in between.
async fn recheck(plan: &Plan, by_table: &BTreeMap<&str, Vec<&PlanEntry>>, txn: &mut dyn Txn) -> Result<Before> {
    let mut before = Before::new();
    let mut stale = Vec::new();
    for (table, es) in by_table {
        let spec = spec_of(plan, table)?;
        // A new natural-key row (or a row keyed by one) has no target key
        // yet: nothing to re-check.
        let es: Vec<&&PlanEntry> = es.iter().filter(|e| target_row_known(spec, e)).collect();
        let keys: Vec<Vec<Value>> = es.iter().map(|e| e.target_key().to_vec()).collect();
        let rows = crate::planner::fetch_full(&mut *txn, spec, keys).await?;
        let mut current: BTreeMap<String, (Row, ferry_core::canonical::RowHash)> = BTreeMap::new();
        for raw in rows {
            let projected = project(spec, &raw);
            let side = target_side(spec, &plan.to, &projected)?;
            current.insert(key_text(&side.row[..spec.key.len()]), (raw, side.hashes.row));
        }
        for e in es {
            let kt = key_text(e.target_key());
            // Each row is planned once: its before-image is moved, not copied.
            let now = current.remove(&kt);
            if now.as_ref().map(|(_, h)| *h) != e.expect_target {
                stale.push(e.label());
            }
            if let Some((raw, _)) = now {
                before.insert((table.to_string(), kt), raw);
            }
        }
    }
    if !stale.is_empty() {
        return Err(stale_error(plan, &stale));
    }
    Ok(before)
}

/// The sync bases of the plan's rows before the promotion: carried by a
/// plan made under the writer lock, read from the target otherwise.
async fn previous_bases(
    plan: &Plan,
    by_table: &BTreeMap<&str, Vec<&PlanEntry>>,
    txn: &mut dyn Txn,
) -> Result<Previous> {
    let mut previous = Previous::new();
    for (table, es) in by_table {
        let unknown: Vec<Vec<Value>> = es
            .iter()
            .filter(|e| carried_base(plan, e).is_none())
            .map(|e| e.key.clone())
            .collect();
        let mut bases = journal::read_bases(txn, &plan.from, table, &unknown).await?;
        for e in es {
            if let Some(Some(base)) = carried_base(plan, e) {
                bases.insert(key_text(&e.key), base.clone());
            }
        }
        previous.insert(table.to_string(), bases);
    }
    Ok(previous)
}

/// What the promotion wrote so far: the journal rows and the counts.
struct Written<'r> {
    before: &'r Before,
    previous: &'r Previous,
    rows: Vec<JournalRow>,
    counts: Counts,
}

impl Written<'_> {
    /// Records one row written (or kept) at `target_key`, with the values
    /// written (`None` for a delete or a kept row).
    fn add(&mut self, e: &PlanEntry, spec: &TableSpec, target_key: &[Value], after: Option<Vec<(String, Value)>>) {
        let kt = key_text(&e.key);
        self.rows.push(JournalRow {
            seq: self.rows.len() as i64 + 1,
            table: e.table.clone(),
            key: spec.key.iter().cloned().zip(target_key.iter().cloned()).collect(),
            action: if matches!(e.reason, Some(Reason::KeptTarget | Reason::Matched)) {
                "keep".to_string()
            } else {
                e.action.name().to_string()
            },
            before: self
                .before
                .get(&(e.table.clone(), key_text(target_key)))
                .map(|raw| spec.target_columns.iter().cloned().zip(raw.iter().cloned()).collect()),
            after,
            base_before: self.previous.get(&e.table).and_then(|m| m.get(&kt)).cloned(),
            // Natural-key tables record the base under the source key.
            source_key: (target_key != e.key.as_slice()).then(|| kt.clone()),
        });
        self.counts.add(e.action);
    }
}

/// The inserts and updates of one table: its spec and the stamped values.
struct Writing<'w> {
    plan: &'w Plan,
    spec: &'w TableSpec,
    stamps: &'w [(String, Value)],
}

impl Writing<'_> {
    /// The stamped columns.
    fn stamp_columns(&self) -> impl Iterator<Item = String> + '_ {
        self.stamps.iter().map(|(c, _)| c.clone())
    }

    /// Inserts the table's new rows, parent first within a
    /// self-referencing table.
    async fn insert<'a>(
        &self,
        es: &[&'a PlanEntry],
        txn: &mut dyn Txn,
        written: &mut Written<'_>,
        new_keys: &mut NewKeys,
        clash: &mut Option<&'a PlanEntry>,
    ) -> Result<()> {
        let spec = self.spec;
        let mut inserts: Vec<&PlanEntry> = es.iter().copied().filter(|e| e.action == Action::Insert).collect();
        if let Some(col) = spec.self_reference() {
            let idx = spec.columns().iter().position(|c| c == col).unwrap_or(0);
            inserts = TableSpec::parent_first(
                inserts,
                |e| &e.key[0],
                |e| e.source.as_ref().map_or(&Value::Null, |r| &r[idx]),
            );
        }
        if inserts.is_empty() {
            Ok(())
        } else if spec.natural_key.is_some() {
            self.insert_returning(&inserts, txn, written, new_keys).await
        } else {
            self.insert_all(&inserts, txn, written, new_keys, clash).await
        }
    }

    /// Inserts into a natural-key table: the target assigns the key, so
    /// rows go one by one and the key is kept.
    async fn insert_returning(
        &self,
        inserts: &[&PlanEntry],
        txn: &mut dyn Txn,
        written: &mut Written<'_>,
        new_keys: &mut NewKeys,
    ) -> Result<()> {
        let (plan, spec, table) = (self.plan, self.spec, &self.spec.name);
        let k = spec.key.len();
        let columns: Vec<String> = spec.compared.iter().cloned().chain(self.stamp_columns()).collect();
        for e in inserts {
            let src = resolved_source(plan, spec, e, new_keys)?;
            let mut row: Row = src[k..].to_vec();
            row.extend(self.stamps.iter().map(|(_, v)| v.clone()));
            let new = txn
                .insert_returning(table, &columns, &row, &spec.key[0])
                .await
                .map_err(|err| write_error(plan, table, Some(&e.key), err))?;
            let new = convert(&new, &spec.types[&spec.key[0]]).unwrap_or(new);
            new_keys.insert((table.clone(), key_text(&e.key)), vec![new.clone()]);
            let mut after: Vec<(String, Value)> = vec![(spec.key[0].clone(), new.clone())];
            after.extend(columns.iter().cloned().zip(row.iter().cloned()));
            written.add(e, spec, &[new], Some(after));
        }
        Ok(())
    }

    /// Inserts rows whose key the plan knows, in one statement (chunked by
    /// the store), then advances the generated keys.
    async fn insert_all<'a>(
        &self,
        inserts: &[&'a PlanEntry],
        txn: &mut dyn Txn,
        written: &mut Written<'_>,
        new_keys: &mut NewKeys,
        clash: &mut Option<&'a PlanEntry>,
    ) -> Result<()> {
        let (plan, spec, table) = (self.plan, self.spec, &self.spec.name);
        let columns: Vec<String> = spec.columns().into_iter().chain(self.stamp_columns()).collect();
        // In the target's column order: a SQL insert does not care, and a
        // document store writes a new document's fields in this order (for
        // an open schema, the target's fields, then the source's as it
        // reads them).
        let at = |c: &String| spec.target_columns.iter().position(|t| t == c).unwrap_or(usize::MAX);
        let mut order: Vec<usize> = (0..columns.len()).collect();
        order.sort_by_key(|&i| at(&columns[i]));
        let rows: Vec<Row> = inserts
            .iter()
            .map(|e| {
                let mut r = resolved_source(plan, spec, e, new_keys)?;
                r.extend(self.stamps.iter().map(|(_, v)| v.clone()));
                Ok(r)
            })
            .collect::<Result<_>>()?;
        let inserted = if order.iter().enumerate().all(|(n, &i)| n == i) {
            txn.insert(table, &columns, &rows).await
        } else {
            let ordered_columns: Vec<String> = order.iter().map(|&i| columns[i].clone()).collect();
            let ordered: Vec<Row> = rows
                .iter()
                .map(|r| order.iter().map(|&i| r[i].clone()).collect())
                .collect();
            txn.insert(table, &ordered_columns, &ordered).await
        };
        if let Err(err) = inserted {
            // A key taken since the re-check (a client's insert that
            // was not visible to it): see `inserted_meanwhile`.
            if err.kind == DbErrorKind::Constraint {
                *clash = err.row.and_then(|i| inserts.get(i).copied());
            }
            return Err(write_error(
                plan,
                table,
                err.row.map(|i| inserts[i].key.as_slice()),
                err,
            ));
        }
        let k = spec.key.len();
        for (e, row) in inserts.iter().zip(&rows) {
            // A key that references a natural-key table went through the
            // id mapping: rows referencing this one follow it.
            if row[..k] != e.key[..] {
                new_keys.insert((table.clone(), key_text(&e.key)), row[..k].to_vec());
            }
            written.add(
                e,
                spec,
                &row[..k],
                Some(columns.iter().cloned().zip(row.iter().cloned()).collect()),
            );
        }
        for col in &spec.generated_key {
            txn.advance_generated(table, col)
                .await
                .map_err(|err| write_error(plan, table, None, err))?;
        }
        Ok(())
    }

    /// Updates the table's changed rows, grouped by the columns they set.
    async fn update(
        &self,
        es: &[&PlanEntry],
        txn: &mut dyn Txn,
        written: &mut Written<'_>,
        new_keys: &NewKeys,
    ) -> Result<()> {
        let (plan, spec, table) = (self.plan, self.spec, &self.spec.name);
        let mut groups: BTreeMap<Vec<String>, Vec<&PlanEntry>> = BTreeMap::new();
        for e in es.iter().filter(|e| e.action == Action::Update) {
            groups.entry(e.set.clone()).or_default().push(e);
        }
        let columns = spec.columns();
        for (set, group) in groups {
            // The carried columns (a document's field order) go with every
            // update of a row, after the changed ones.
            let set: Vec<String> = set.into_iter().chain(spec.carried.iter().cloned()).collect();
            let set_cols: Vec<String> = set.iter().cloned().chain(self.stamp_columns()).collect();
            let rows: Vec<(Row, Row)> = group
                .iter()
                .map(|e| {
                    let src = resolved_source(plan, spec, e, new_keys)?;
                    let mut values: Row = set
                        .iter()
                        .map(|c| {
                            columns
                                .iter()
                                .position(|x| x == c)
                                .map_or(Value::Null, |i| src[i].clone())
                        })
                        .collect();
                    values.extend(self.stamps.iter().map(|(_, v)| v.clone()));
                    Ok((e.target_key().to_vec(), values))
                })
                .collect::<Result<_>>()?;
            txn.update(table, &spec.key, &set_cols, &rows)
                .await
                .map_err(|err| write_error(plan, table, err.row.map(|i| group[i].key.as_slice()), err))?;
            for (e, (_, values)) in group.iter().zip(&rows) {
                written.add(
                    e,
                    spec,
                    e.target_key(),
                    Some(set_cols.iter().cloned().zip(values.iter().cloned()).collect()),
                );
            }
        }
        Ok(())
    }
}

/// Deletes the plan's deleted rows, children first (tables in reverse
/// order, and children before parents within a self-referencing table).
async fn delete(
    plan: &Plan,
    by_table: &BTreeMap<&str, Vec<&PlanEntry>>,
    txn: &mut dyn Txn,
    written: &mut Written<'_>,
) -> Result<()> {
    for table in plan.tables.iter().rev() {
        let Some(es) = by_table.get(table.as_str()) else {
            continue;
        };
        let spec = spec_of(plan, table)?;
        let mut deletes: Vec<&PlanEntry> = es.iter().copied().filter(|e| e.action == Action::Delete).collect();
        if deletes.is_empty() {
            continue;
        }
        if let Some(col) = spec.self_reference() {
            let idx = spec.target_columns.iter().position(|c| c == col).unwrap_or(0);
            let with_parent: Vec<(&PlanEntry, Value)> = deletes
                .iter()
                .map(|e| {
                    let parent = written
                        .before
                        .get(&(e.table.clone(), key_text(e.target_key())))
                        .map_or(Value::Null, |r| r[idx].clone());
                    (*e, parent)
                })
                .collect();
            deletes = TableSpec::parent_first(with_parent, |(e, _)| &e.target_key()[0], |(_, p)| p)
                .into_iter()
                .map(|(e, _)| e)
                .collect();
            deletes.reverse();
        }
        let keys: Vec<Row> = deletes.iter().map(|e| e.target_key().to_vec()).collect();
        txn.delete(table, &spec.key, &keys)
            .await
            .map_err(|err| write_error(plan, table, err.row.map(|i| deletes[i].key.as_slice()), err))?;
        for e in &deletes {
            written.add(e, spec, e.target_key(), None);
        }
    }
    Ok(())
}

/// The new sync base of every entry, by table: the source row for writes
/// (and kept rows), nothing for deletes.
fn new_bases<'e>(
    plan: &Plan,
    entries: &'e [Change<'_>],
    new_keys: &NewKeys,
) -> Result<BTreeMap<&'e str, Vec<journal::BaseUpdate>>> {
    let mut bases: BTreeMap<&str, Vec<journal::BaseUpdate>> = BTreeMap::new();
    for e in entries {
        // A reference resolved here (to a natural-key row this promotion
        // inserted) is synced as written, not as the source's own key.
        let resolved = match e.action {
            Action::Insert | Action::Update if !e.deferred.is_empty() => {
                let spec = spec_of(plan, &e.table)?;
                Some(spec.hash(&resolved_source(plan, spec, e, new_keys)?))
            }
            _ => None,
        };
        let base = match e.action {
            Action::Delete => None,
            _ => e.source_hash.map(|row| SyncBase {
                row: resolved.as_ref().map_or(row, |h| h.row),
                fields: resolved
                    .as_ref()
                    .map_or_else(|| SyncBase::unpack_fields(&e.source_fields), |h| h.fields.clone()),
                // Natural-key tables: the id mapping.
                target_key: spec_of(plan, &e.table)
                    .ok()
                    .filter(|s| s.natural_key.is_some())
                    .and_then(|_| match e.action {
                        Action::Insert => new_keys.get(&(e.table.clone(), key_text(&e.key))).map(|k| key_text(k)),
                        _ => Some(key_text(e.target_key())),
                    }),
            }),
        };
        bases.entry(e.table.as_str()).or_default().push((e.key.clone(), base));
    }
    Ok(bases)
}

/// An insert that broke a constraint, after the transaction rolled back:
/// when the row's key now exists in the target, someone inserted it while
/// the promotion ran (the re-check cannot lock a row that does not exist
/// yet, and PostgreSQL does not show it uncommitted). That is the target
/// changing under the plan: a refusal (exit 3) naming the row. Otherwise
/// the constraint error `failed` stands.
async fn inserted_meanwhile(target: &dyn Store, plan: &Plan, entry: &PlanEntry, failed: Error) -> Error {
    let Ok(spec) = spec_of(plan, &entry.table) else {
        return failed;
    };
    let request = crate::planner::full_rows(spec, vec![entry.target_key().to_vec()]);
    match target.fetch(request).await {
        Ok(rows) if !rows.is_empty() => Error::Blocked(format!(
            "{} -> {}: the target changed since the plan was made ({} was inserted into `{}` while the promotion ran; the plan expected no such row); nothing was written. Make a new plan and review it again",
            plan.from,
            plan.to,
            entry.label(),
            plan.to
        )),
        _ => failed,
    }
}

/// The sync base an entry carries, when it can be trusted: a plan made
/// under the writer lock (held until now) carries the bases it read, and no
/// other writer can have changed them since.
fn carried_base<'e>(plan: &Plan, e: &'e PlanEntry) -> Option<&'e Option<SyncBase>> {
    e.base.0.as_ref().filter(|_| plan.under_lock.0)
}

fn is_natural_insert(spec: &TableSpec, e: &PlanEntry) -> bool {
    spec.natural_key.is_some() && e.action == Action::Insert
}

/// An insert whose key references a natural-key row this promotion
/// inserts: its key is the id the target assigns that row.
fn key_deferred(spec: &TableSpec, e: &PlanEntry) -> bool {
    e.action == Action::Insert && spec.key.iter().any(|c| e.deferred.contains(c))
}

/// Whether the entry's row in the target is known before the apply, so it
/// can be checked against `expect_target`: not a new natural-key row, nor
/// a row keyed by one (the target assigns those keys). The apply's
/// re-check, a saved plan's dry run and a review's staleness ask this.
pub fn target_row_known(spec: &TableSpec, e: &PlanEntry) -> bool {
    !is_natural_insert(spec, e) && !key_deferred(spec, e)
}

/// The refusal of a plan whose target rows (`stale`, as `table:key`)
/// changed since it was made.
pub fn stale_error(plan: &Plan, stale: &[String]) -> Error {
    Error::Blocked(format!(
        "{} -> {}: the target changed since the plan was made ({}{}); nothing was written. Make a new plan and review it again",
        plan.from,
        plan.to,
        stale.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
        if stale.len() > 10 {
            format!(" and {} more", stale.len() - 10)
        } else {
            String::new()
        }
    ))
}

/// The entry's source row with its deferred references (source keys of
/// natural-key rows this promotion inserted) replaced by the keys the
/// target assigned them.
fn resolved_source(
    plan: &Plan,
    spec: &TableSpec,
    e: &PlanEntry,
    new_keys: &HashMap<(String, String), Vec<Value>>,
) -> Result<Row> {
    let columns = spec.columns();
    let mut row = match &e.source {
        Some(row) if row.len() == columns.len() => row.clone(),
        _ => {
            return Err(Error::Data(format!(
                "{} -> {}: table `{}`, key {}: the plan's entry has no row image of its {} columns to write. Nothing was written; make a new plan",
                plan.from,
                plan.to,
                e.table,
                ferry_core::plan::key_label(&e.key),
                columns.len()
            )))
        }
    };
    crate::json_ids::resolve_json(plan, spec, e, &mut row, new_keys)?;
    for col in &e.deferred {
        let (Some(i), Some(table)) = (columns.iter().position(|c| c == col), spec.references.get(col)) else {
            continue;
        };
        let source_key = key_text(std::slice::from_ref(&row[i]));
        match new_keys.get(&(table.clone(), source_key)) {
            Some(k) => row[i] = k[0].clone(),
            None => {
                return Err(Error::Data(format!(
                    "{} -> {}: table `{}`, key {}, column `{col}`: references {table}:{}, which has no row in `{}` and is not part of this promotion. Nothing was written; promote that row too",
                    plan.from,
                    plan.to,
                    e.table,
                    ferry_core::plan::key_label(&e.key),
                    row[i].display_text(),
                    plan.to
                )))
            }
        }
    }
    Ok(row)
}

/// A full target row (every target column) cut down to the spec's columns.
pub fn project(spec: &TableSpec, raw: &[Value]) -> Row {
    spec.columns()
        .iter()
        .map(|c| {
            spec.target_columns
                .iter()
                .position(|t| t == c)
                .map_or(Value::Null, |i| raw[i].clone())
        })
        .collect()
}
