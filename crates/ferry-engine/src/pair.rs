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
    let pipeline = &config.pipeline;
    let list = |envs: Vec<&str>| envs.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
    let targets = config.targets_of(from);
    let elsewhere = if targets.is_empty() {
        format!("`{from}` promotes into no environment")
    } else {
        format!("`{from}` may promote into {}", list(targets))
    };
    let hint = match (
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
        (Some(_), Some(_)) => format!(
            "content flows left to right only, so nothing is promoted back into `{to}`; {elsewhere}"
        ),
        (_, None) => format!(
            "{elsewhere}; to let `{from}` promote into `{to}`, add `accepts_from = [\"{from}\"]` under [environments.{to}]"
        ),
        (None, Some(_)) => format!(
            "{elsewhere}; to let it promote into `{to}`, write `promotes_to = \"{to}\"` under [environments.{from}]"
        ),
    };
    Err(Error::Blocked(format!(
        "`{from}` -> `{to}` is not a route of this configuration (pipeline {}): {hint}",
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
