//! `ferry export ENV DIR`: an environment's managed tables written as a
//! directory of canonical JSON files (the format of `docs/dir-format.md`),
//! the way a `dir:` environment is set up or re-synced.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_db::dir::{ExportCounts, ExportTable};
use ferry_db::{Predicate, ScanRequest, Store};

use crate::error::{Error, Result};
use crate::project::Project;

/// What an export wrote, per table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportReport {
    pub tables: BTreeMap<String, ExportTableReport>,
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
pub async fn export(project: &Project, env: &str, dir: &Path) -> Result<ExportReport> {
    let store = project.open(env).await?;
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
    Ok(report)
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
