//! Two environments opened together, with every managed table resolved
//! against both schemas and put in apply order (parents first).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_core::config::{ConfigErrors, ConfigProblem};
use ferry_core::schema::TableSchema;
use ferry_core::spec::TableSpec;
use ferry_db::Store;

use crate::error::{Error, Result};
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
}

impl Pair {
    pub fn spec(&self, table: &str) -> Result<&TableSpec> {
        self.specs.get(table).ok_or_else(|| {
            Error::Usage(format!(
                "`{table}` is not a managed table (managed: {})",
                self.order.join(", ")
            ))
        })
    }
}

/// Refuses a promotion that does not follow the pipeline.
pub fn check_route(project: &Project, from: &str, to: &str) -> Result<()> {
    project.env_config(from)?;
    project.env_config(to)?;
    if from == to {
        return Err(Error::Usage(format!("`{from}` cannot be promoted into itself")));
    }
    let next = project.config.next_of(from);
    if next == Some(to) {
        return Ok(());
    }
    let pipeline = &project.config.pipeline;
    let path = match (
        pipeline.iter().position(|e| e == from),
        pipeline.iter().position(|e| e == to),
    ) {
        (Some(a), Some(b)) if a < b => format!(
            "promote one step at a time: {}",
            pipeline[a..=b]
                .windows(2)
                .map(|w| format!("`ferry promote {} {}`", w[0], w[1]))
                .collect::<Vec<_>>()
                .join(", then ")
        ),
        // There is no `ferry refresh` yet: say what to do instead.
        (Some(a), Some(b)) if a > b => format!(
            "content flows left to right only. To reset `{to}` to match `{from}`, copy `{from}`'s managed tables into it with the database's own tools (Ferry cannot do that yet), then record them as in sync with `ferry baseline {to} {from}`"
        ),
        _ => match next {
            Some(n) => format!("`{from}` promotes to `{n}`"),
            None => format!("`{from}` is the end of the pipeline"),
        },
    };
    Err(Error::Blocked(format!(
        "`{from}` -> `{to}` does not follow the pipeline ({}): {path}",
        pipeline.join(" -> ")
    )))
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
            let key = t
                .key
                .clone()
                .or_else(|| to.1.get(n).map(|s| s.primary_key.clone()))
                .unwrap_or_default();
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
    let order = apply_order(project, &specs)?;
    Ok((specs, order))
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
            .filter(|t| specs[*t].references.values().all(|r| r == *t || !remaining.contains(r)))
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

/// Opens both environments of a promotion and resolves the tables.
pub async fn open(project: &Project, from: &str, to: &str) -> Result<Pair> {
    check_route(project, from, to)?;
    open_unchecked(project, from, to).await
}

/// Like [`open`], without the pipeline check (baseline and refresh work
/// on any pair).
pub async fn open_unchecked(project: &Project, from: &str, to: &str) -> Result<Pair> {
    let source = project.open(from).await?;
    let target = project.open(to).await?;
    // Both sides, every missing table named at once (whichever side
    // answers first).
    let (src, dst) = tokio::join!(schemas_found(project, &*source), schemas_found(project, &*target));
    let ((src, mut missing), (dst, missing_in_target)) = (src?, dst?);
    missing.extend(missing_in_target);
    if !missing.is_empty() {
        return Err(Error::Config(ConfigErrors {
            file: project.path.clone(),
            problems: missing,
        }));
    }
    let (specs, order) = resolve(project, (from, &src), (to, &dst))?;
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
    })
}
