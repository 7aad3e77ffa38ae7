//! Two environments opened together, with every managed table resolved
//! against both schemas and put in apply order (parents first).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_core::config::{ConfigErrors, ConfigProblem};
use ferry_core::schema::TableSchema;
use ferry_core::selection::Selection;
use ferry_core::spec::TableSpec;
use ferry_core::value::LogicalType;
use ferry_db::{Predicate, Store};

use crate::error::{Error, Hint, Result};
use crate::project::Project;

pub struct Pair {
    pub from: String,
    pub to: String,
    pub source: Arc<dyn Store>,
    pub target: Arc<dyn Store>,
    pub specs: BTreeMap<String, TableSpec>,
    /// Managed tables, parents before children.
    pub order: Vec<String>,
    /// Tables whose rows can be compared by raw images (same engine, same
    /// declared column types): the planner's fast merge.
    pub raw_comparable: BTreeSet<String>,
    /// Read every table whole even where `changed` would let a plan read
    /// only the rows changed since the last sync (`--full`).
    pub full_plans: bool,
}

impl Pair {
    /// How many reads by key a plan keeps in flight: the more of the two
    /// stores' [`ferry_db::Capabilities::reads_at_once`].
    pub fn reads_at_once(&self) -> usize {
        let [s, t] = [&self.source, &self.target].map(|s| s.capabilities().reads_at_once);
        s.max(t).max(1)
    }

    /// Both sides are SQLite, read in this process: looking at every table
    /// at once there only spreads the same work over more threads
    /// (measured at S=1: no faster, and 40 MB more at a promotion's peak),
    /// where between servers it overlaps their work with Ferry's.
    pub fn reads_in_process(&self) -> bool {
        [&self.source, &self.target]
            .iter()
            .all(|s| s.engine() == ferry_db::Engine::Sqlite)
    }

    pub fn spec(&self, table: &str) -> Result<&TableSpec> {
        self.specs.get(table).ok_or_else(|| {
            Error::Usage(format!(
                "`{table}` is not a managed table (managed: {})",
                self.order.join(", ")
            ))
        })
    }

    /// Which side of the pair evaluates a table's `exclude`, as the flag of
    /// each side's reads (source, target). `exclude` is written in the
    /// query language of the environments that hold the rows (SQL, or a
    /// MongoDB filter document): the source evaluates it when it has such a
    /// language (its matching rows never leave it). A source without one (a
    /// `dir:` folder, exported with `exclude` applied) holds none of them,
    /// so the target evaluates it instead, and its matching rows are left as
    /// they are (never updated, never deleted). Neither side having one:
    /// both hold none, nothing to evaluate.
    pub fn exclude_flags(&self, spec: &TableSpec) -> (Option<Predicate>, Option<Predicate>) {
        let Some(exclude) = &spec.exclude else {
            return (None, None);
        };
        let native = || Some(Predicate::native(exclude.clone()));
        if self.source.capabilities().native_predicates {
            (native(), None)
        } else if self.target.capabilities().native_predicates {
            (None, native())
        } else {
            (None, None)
        }
    }
}

/// Refuses a promotion along a route the configuration does not declare:
/// the pipeline's steps, and the `promotes_to`/`accepts_from` of the
/// environments outside it. The hint names the routes that exist, never
/// the one refused.
pub fn check_route(project: &Project, from: &str, to: &str) -> Result<()> {
    project.env_config(from)?;
    project.env_config(to)?;
    if from == to {
        return Err(Error::Usage(format!("`{from}` cannot be promoted into itself")));
    }
    let config = &project.config;
    if config.allows(from, to) {
        return Ok(());
    }
    if let Some(b) = project.branch(from) {
        return Err(Error::Blocked(format!(
            "`{from}` is a per-branch environment (branch {}, cloned from `{}`) and promotes only into `{}`, not into `{to}`",
            b.branch, b.from, b.promotes_to
        )));
    }
    let pipeline = &config.pipeline;
    let list = |envs: Vec<&str>| envs.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
    let targets = config.targets_of(from);
    let elsewhere = if targets.is_empty() {
        format!("`{from}` promotes into no environment")
    } else {
        format!("`{from}` may promote into {}", list(targets))
    };
    let (hint, then) = match (
        pipeline.iter().position(|e| e == from),
        pipeline.iter().position(|e| e == to),
    ) {
        (Some(a), Some(b)) if a < b => (
            "promote one step at a time".to_string(),
            Some(Hint::Steps {
                steps: pipeline[a..=b].windows(2).map(|w| (w[0].clone(), w[1].clone())).collect(),
            }),
        ),
        (Some(_), Some(_)) => (
            format!(
                "content flows left to right only, so nothing is promoted back into `{to}`; {elsewhere}. To reset `{to}` to match `{from}`, refresh it from `{from}`"
            ),
            Some(Hint::Refresh {
                env: to.to_string(),
                from: from.to_string(),
            }),
        ),
        (_, None) => (
            format!(
                "{elsewhere}; to let `{from}` promote into `{to}`, add `accepts_from = [\"{from}\"]` under [environments.{to}]"
            ),
            None,
        ),
        (None, Some(_)) => (
            format!(
                "{elsewhere}; to let it promote into `{to}`, write `promotes_to = \"{to}\"` under [environments.{from}]"
            ),
            None,
        ),
    };
    let err = Error::Blocked(format!(
        "`{from}` -> `{to}` is not a route of this configuration (pipeline {}): {hint}",
        pipeline.join(" -> ")
    ));
    Err(match then {
        Some(h) => err.hint(h),
        None => err,
    })
}

/// Reads every managed table's schema from `store`.
pub async fn schemas(project: &Project, store: &dyn Store) -> Result<BTreeMap<String, TableSchema>> {
    let (out, missing) = schemas_found(project, store).await?;
    if !missing.is_empty() {
        return Err(Error::Config(ConfigErrors {
            file: project.path.clone(),
            problems: missing,
        }));
    }
    Ok(out)
}

/// Reads the schema of every managed table `store` has, and reports the
/// ones it lacks (so `check` can verify the others and report every
/// problem at once).
pub async fn schemas_found(
    project: &Project,
    store: &dyn Store,
) -> Result<(BTreeMap<String, TableSchema>, Vec<ConfigProblem>)> {
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, t) in &project.config.tables {
        match store.table_schema(name).await? {
            Some(s) => {
                out.insert(name.clone(), s);
            }
            None => missing.push(
                ConfigProblem::new("the table does not exist in this database")
                    .at(t.line)
                    .env(store.env())
                    .table(name),
            ),
        }
    }
    Ok((out, missing))
}

/// Resolves every managed table between two schemas, reporting every
/// problem at once.
pub fn resolve(
    project: &Project,
    from: (&str, &BTreeMap<String, TableSchema>),
    to: (&str, &BTreeMap<String, TableSchema>),
) -> Result<(BTreeMap<String, TableSpec>, Vec<String>)> {
    let tables = &project.config.tables;
    let keys: BTreeMap<String, Vec<String>> = tables
        .iter()
        .map(|(n, t)| {
            let key = t.key_or(to.1.get(n).map_or(&[][..], |s| &s.primary_key));
            (n.clone(), key)
        })
        .collect();
    let mut specs = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, cfg) in tables {
        let (Some(src), Some(dst)) = (from.1.get(name), to.1.get(name)) else {
            continue;
        };
        match TableSpec::resolve(cfg, (from.0, src), (to.0, dst), &keys) {
            Ok(spec) => {
                specs.insert(name.clone(), spec);
            }
            Err(ps) => problems.extend(ps.into_iter().map(|p| ConfigProblem {
                line: cfg.line_of(p.column.as_deref()),
                environment: p.environment,
                table: Some(name.clone()),
                column: p.column,
                message: p.message,
            })),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Config(ConfigErrors {
            file: project.path.clone(),
            problems,
        }));
    }
    ids_in_text(&mut specs);
    let order = apply_order(project, &specs)?;
    Ok((specs, order))
}

/// A text column that references an integer key (a generic relation:
/// Django's `object_id` varchar holding a page id) is compared and looked up
/// as an integer, so `"7"` names row 7 and goes through natural-key id
/// mappings like any reference. Its values are still written as the
/// column's text; one that is not an integer is an error naming the row.
fn ids_in_text(specs: &mut BTreeMap<String, TableSpec>) {
    let mut retype = Vec::new();
    for (name, spec) in specs.iter() {
        for (col, table) in &spec.references {
            let (Some(own), Some(key)) = (spec.types.get(col), spec.referenced_key.get(col)) else {
                continue;
            };
            let Some(kty) = specs.get(table).and_then(|s| s.types.get(key)) else {
                continue;
            };
            if own.logical == LogicalType::Text && kty.logical == LogicalType::Int {
                retype.push((name.clone(), col.clone(), kty.clone()));
            }
        }
    }
    for (name, col, ty) in retype {
        if let Some(spec) = specs.get_mut(&name) {
            spec.types.insert(col, ty);
        }
    }
}

/// Tables ordered parents first (references and parents, self-references
/// aside); ties broken by name.
fn apply_order(project: &Project, specs: &BTreeMap<String, TableSpec>) -> Result<Vec<String>> {
    let mut remaining: BTreeSet<&String> = specs.keys().collect();
    let mut order = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<&String> = remaining
            .iter()
            .copied()
            .filter(|t| {
                let json = specs[*t].json_references.values().flat_map(|p| p.values());
                specs[*t]
                    .references
                    .values()
                    .chain(json)
                    .all(|r| r == *t || !remaining.contains(r))
            })
            .collect();
        if ready.is_empty() {
            let cycle: Vec<&str> = remaining.iter().map(|s| s.as_str()).collect();
            return Err(Error::Config(ConfigErrors {
                file: project.path.clone(),
                problems: vec![ConfigProblem::new(format!(
                    "the references between {} form a cycle; Ferry needs an order that puts parents first",
                    cycle.join(", ")
                ))],
            }));
        }
        for t in ready {
            remaining.remove(t);
            order.push(t.clone());
        }
    }
    Ok(order)
}

/// The managed tables a selection can touch: every table, or the tables it
/// names with, transitively, the tables they reference (rows pulled in)
/// and their children (rows that travel with a parent).
pub fn tables_touched(project: &Project, selection: &Selection) -> BTreeSet<String> {
    let tables = &project.config.tables;
    if selection.is_everything() {
        return tables.keys().cloned().collect();
    }
    let mut touched: BTreeSet<String> = selection.named_tables().cloned().collect();
    loop {
        let mut more = Vec::new();
        for (name, t) in tables {
            let refs = t
                .references
                .values()
                .chain(t.json_references.values().flat_map(|p| p.values()))
                .chain(t.parent.iter().map(|(_, p)| p));
            if touched.contains(name) {
                more.extend(refs.filter(|r| !touched.contains(*r)).cloned());
            } else if t.parent.as_ref().is_some_and(|(_, p)| touched.contains(p)) {
                more.push(name.clone());
            }
        }
        if more.is_empty() {
            return touched;
        }
        touched.extend(more);
    }
}

/// Adds to schema problems the tables that could still be promoted on
/// their own: those no broken table is touched by.
fn with_selection_hint(project: &Project, e: Error) -> Error {
    let Error::Config(errors) = e else { return e };
    let broken: BTreeSet<&String> = errors.problems.iter().filter_map(|p| p.table.as_ref()).collect();
    if broken.is_empty() {
        return Error::Config(errors);
    }
    let fine: Vec<&String> = project
        .config
        .tables
        .keys()
        .filter(|t| {
            let alone = Selection {
                tables: vec![(*t).clone()],
                ..Selection::default()
            };
            tables_touched(project, &alone).iter().all(|x| !broken.contains(x))
        })
        .collect();
    if fine.is_empty() {
        return Error::Config(errors);
    }
    let tables = fine.into_iter().cloned().collect();
    Error::Config(errors).hint(Hint::OnlyTables { tables })
}

/// Opens both environments of a promotion and resolves every table.
pub async fn open(project: &Project, from: &str, to: &str) -> Result<Pair> {
    open_for(project, from, to, &Selection::default()).await
}

/// Opens both environments of a promotion and resolves the tables the
/// selection touches ([`tables_touched`]): a table that drifted elsewhere
/// does not block it.
pub async fn open_for(project: &Project, from: &str, to: &str, selection: &Selection) -> Result<Pair> {
    check_route(project, from, to)?;
    open_unchecked_for(project, from, to, selection).await
}

/// Like [`open`], without the pipeline check (baseline and refresh work
/// on any pair).
pub async fn open_unchecked(project: &Project, from: &str, to: &str) -> Result<Pair> {
    open_unchecked_for(project, from, to, &Selection::default()).await
}

/// Like [`open_for`], without the pipeline check.
pub async fn open_unchecked_for(project: &Project, from: &str, to: &str, selection: &Selection) -> Result<Pair> {
    check_selection(project, selection)?;
    let source = project.open(from).await?;
    let target = project.open(to).await?;
    resolve_opened(project, from, to, source, target, selection).await
}

/// Refuses a selection that names a table the configuration does not manage.
pub fn check_selection(project: &Project, selection: &Selection) -> Result<()> {
    if let Some(t) = selection
        .named_tables()
        .find(|t| !project.config.tables.contains_key(*t))
    {
        let managed: Vec<&str> = project.config.tables.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "`{t}` is not a managed table (managed: {})",
            managed.join(", ")
        )));
    }
    Ok(())
}

/// The pair of two stores opened already (see `registry::Envs::pair`).
pub async fn resolve_opened(
    project: &Project,
    from: &str,
    to: &str,
    source: Arc<dyn Store>,
    target: Arc<dyn Store>,
    selection: &Selection,
) -> Result<Pair> {
    let touched = tables_touched(project, selection);
    // Both sides, every missing table named at once (whichever side
    // answers first).
    let (src, dst) = tokio::join!(schemas_found(project, &*source), schemas_found(project, &*target));
    let ((mut src, mut missing), (mut dst, missing_in_target)) = (src?, dst?);
    missing.extend(missing_in_target);
    missing.retain(|p| p.table.as_ref().is_none_or(|t| touched.contains(t)));
    src.retain(|t, _| touched.contains(t));
    dst.retain(|t, _| touched.contains(t));
    let resolved = if missing.is_empty() {
        resolve(project, (from, &src), (to, &dst))
    } else {
        Err(Error::Config(ConfigErrors {
            file: project.path.clone(),
            problems: missing,
        }))
    };
    let (specs, order) = resolved.map_err(|e| with_selection_hint(project, e))?;
    let same_engine = source.engine() == target.engine();
    let raw_comparable = specs
        .iter()
        .filter(|(t, spec)| crate::merge::raw_comparable(same_engine, spec, &src[*t], &dst[*t]))
        .map(|(t, _)| t.clone())
        .collect();
    Ok(Pair {
        from: from.to_string(),
        to: to.to_string(),
        source,
        target,
        specs,
        order,
        raw_comparable,
        full_plans: false,
    })
}
