//! `ferry export ENV DIR`: an environment's managed tables written as a
//! directory of canonical JSON files (the format of `docs/dir-format.md`),
//! the way a `dir:` environment is set up or re-synced. When the folder is
//! a configured `dir:` environment, the export also records the sync base
//! between the two (as `baseline` does, along each route the configuration
//! declares), so the first promotion either way is three-way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_core::access::Right;
use ferry_core::selection::Selection;
use ferry_db::dir::{ExportCounts, ExportTable};
use ferry_db::{Predicate, ScanRequest, Store};

use crate::audit::{self, Outcome as _};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::project::Project;

/// What an export wrote, per table, and the sync bases it recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportReport {
    pub tables: BTreeMap<String, ExportTableReport>,
    /// The configured `dir:` environment at the folder, if any.
    pub environment: Option<String>,
    /// The sync bases recorded between the exported environment and that
    /// `dir:` environment, one per declared route.
    pub in_sync: Vec<InSync>,
}

/// One sync base an export recorded: the rows equal in `from` and `to`
/// (all of them, right after the export), recorded in `to` as a baseline.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InSync {
    pub from: String,
    pub to: String,
    /// The journal record of the baseline (`None` when nothing was equal).
    pub baseline: Option<String>,
    pub recorded: u64,
}

/// One table of an export: files written (new or changed), left as they
/// were, and removed (rows that no longer exist), and rows left out
/// because they match the table's `exclude`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportTableReport {
    pub written: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub excluded: u64,
}

/// Writes `env`'s managed tables into the folder `dir` (created when
/// missing) so that it holds exactly their rows, except those matching
/// each table's `exclude`. A table is keyed by its configured `key` (else
/// its primary key). Ferry's records already in the folder are kept.
///
/// When a `dir:` environment of the configuration is at `dir` (the same
/// folder once both paths are resolved), the rows are then recorded as in
/// sync between `env` and it, along each route the configuration declares
/// (`env` -> folder, in the folder; folder -> `env`, in `env`), each as a
/// `baseline` by `user`: that needs `promote` into its target, checked
/// before anything is written.
pub async fn export(project: &Project, env: &str, dir: &Path, user: &str) -> Result<ExportReport> {
    let store = project.open(env).await?;
    let folder_env = dir_environment(project, dir)?.filter(|d| d != env);
    let routes: Vec<(String, String)> = match &folder_env {
        Some(d) => [(env, d.as_str()), (d.as_str(), env)]
            .into_iter()
            .filter(|(f, t)| project.config.allows(f, t))
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect(),
        None => Vec::new(),
    };
    for (from, to) in &routes {
        let target = if to == env {
            store.clone()
        } else {
            project.open(to).await?
        };
        audit::require(project, &*target, user, Right::Promote, "baseline", Some(from)).await?;
    }
    let mut tables = Vec::new();
    let mut report = ExportReport::default();
    for (name, t) in &project.config.tables {
        let (table, excluded) = read_table(store.as_ref(), name, t.key.clone(), t.exclude.as_deref()).await?;
        report.tables.insert(
            name.clone(),
            ExportTableReport {
                excluded,
                ..Default::default()
            },
        );
        tables.push(table);
    }
    let counts = ferry_db::dir::export(env, dir, tables).await?;
    for (
        name,
        ExportCounts {
            written,
            unchanged,
            removed,
        },
    ) in counts
    {
        let r = report.tables.entry(name).or_default();
        (r.written, r.unchanged, r.removed) = (written, unchanged, removed);
    }
    report.environment = folder_env;
    for (from, to) in routes {
        report.in_sync.push(record_in_sync(project, &from, &to, user).await?);
    }
    Ok(report)
}

/// Records the rows equal in `from` and `to` as in sync (in `to`), under
/// `to`'s writer lock, audited like `ferry baseline`.
async fn record_in_sync(project: &Project, from: &str, to: &str, user: &str) -> Result<InSync> {
    let pair = crate::pair::open_unchecked(project, from, to).await?;
    let target = &*pair.target;
    let _lock = crate::lock::writer(target, true, |_| {}).await?;
    let done = crate::baseline::baseline(&pair, &Selection::default(), user, Progress::hidden()).await;
    let mut entry = audit::entry(user, "baseline", Some(from), to).outcome(&done, |b| b.id.clone());
    if done.is_ok() {
        entry.detail = "recorded by `ferry export`".into();
    }
    let _ = audit::record(target, &entry).await;
    let done = done?;
    Ok(InSync {
        from: from.to_string(),
        to: to.to_string(),
        baseline: done.id,
        recorded: done.recorded,
    })
}

/// The configured `dir:` environment whose folder is `dir` (both paths
/// resolved: relative URLs against the configuration's folder, `dir`
/// against the current one, symbolic links followed).
pub fn dir_environment(project: &Project, dir: &Path) -> Result<Option<String>> {
    let wanted = resolved(dir)?;
    for name in project.config.environments.keys() {
        // Only URLs written in the file: a `dir:` URL carries no secret.
        let ferry_core::config::UrlSource::Inline(url) = &project.env_config(name)?.url else {
            continue;
        };
        if let Some(path) = ferry_db::dir::url_path(url, &project.config.base_dir) {
            if resolved(&path)? == wanted {
                return Ok(Some(name.clone()));
            }
        }
    }
    Ok(None)
}

/// A path made absolute, with the symbolic links of its longest existing
/// ancestor resolved (the folder itself may not exist yet).
fn resolved(path: &Path) -> Result<PathBuf> {
    let io = |e: std::io::Error| Error::Usage(format!("cannot resolve the folder {}: {e}", path.display()));
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io)?.join(path)
    };
    let mut rest = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(real) = at.canonicalize() {
            return Ok(rest.iter().rev().fold(real, |p: PathBuf, c| p.join(c)));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// A row as read, each value converted to its column's logical type (the
/// canonical values a promotion writes too), so that an export and a
/// promotion into the folder write the same bytes.
fn canonical(env: &str, schema: &ferry_core::schema::TableSchema, row: ferry_db::Row) -> Result<ferry_db::Row> {
    row.into_iter()
        .zip(&schema.columns)
        .map(|(v, c)| {
            ferry_core::value::convert_owned(v, &c.ty).map_err(|e| {
                Error::Data(format!(
                    "environment `{env}`, table `{}`, column `{}`: {e}",
                    schema.name, c.name
                ))
            })
        })
        .collect()
}

/// A table's schema (keyed by `key` when given) and its rows in key
/// order, without the rows matching `exclude`; and how many those were.
async fn read_table(
    store: &dyn Store,
    name: &str,
    key: Option<Vec<String>>,
    exclude: Option<&str>,
) -> Result<(ExportTable, u64)> {
    let env = store.env().to_string();
    let mut schema = store
        .table_schema(name)
        .await?
        .ok_or_else(|| Error::Usage(format!("environment `{env}`: table `{name}` does not exist")))?;
    if let Some(k) = key {
        schema.primary_key = k;
    }
    if schema.primary_key.is_empty() {
        return Err(Error::Usage(format!(
            "environment `{env}`: table `{name}` has no primary key and no `key` in the configuration; a row's file is named by its key"
        )));
    }
    let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let mut rx = store
        .scan(ScanRequest {
            table: name.to_string(),
            columns: columns.clone(),
            order_by: schema.primary_key.clone(),
            filter: None,
            flag: exclude.map(Predicate::native),
            descending: false,
            limit: None,
        })
        .await?;
    let (mut rows, mut excluded) = (Vec::new(), 0);
    while let Some(batch) = rx.recv().await {
        for mut r in batch? {
            if exclude.is_some() {
                let flag = r.pop();
                if ferry_db::raw::is_true(flag.as_ref()) {
                    excluded += 1;
                    continue;
                }
            }
            rows.push(canonical(&env, &schema, r)?);
        }
    }
    Ok((ExportTable { schema, rows }, excluded))
}
