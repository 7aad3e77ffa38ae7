//! Plain reads of an environment's tables that a front end makes for its
//! own purposes (the demo's checks of what a promotion did), and the
//! SQLite script that lays out sample environments. Operations never use
//! these: they go through the planner and the journal.

use std::path::Path;

use ferry_core::Value;
use ferry_db::{FetchRequest, ScanRequest, Store};

use crate::error::Result;

/// How many rows `table` holds (scanned by its key columns).
pub async fn count_rows(store: &dyn Store, table: &str, key: &[String]) -> Result<u64> {
    let mut rx = store
        .scan(ScanRequest {
            table: table.to_string(),
            columns: key.to_vec(),
            order_by: key.to_vec(),
            filter: None,
            flag: None,
            descending: false,
            limit: None,
        })
        .await?;
    let mut n = 0;
    while let Some(batch) = rx.recv().await {
        n += batch?.len() as u64;
    }
    Ok(n)
}

/// The rows of `table` whose `column` holds one of `values`, each with
/// `columns` (in that order).
pub async fn rows_where(
    store: &dyn Store,
    table: &str,
    columns: &[&str],
    column: &str,
    values: Vec<Value>,
) -> Result<Vec<Vec<Value>>> {
    Ok(store
        .fetch(FetchRequest {
            table: table.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            match_columns: vec![column.to_string()],
            values: values.into_iter().map(|v| vec![v]).collect(),
            flag: None,
            filter: None,
            fixed: Vec::new(),
        })
        .await?)
}

/// Runs an SQL script in the SQLite database at `path` (created when
/// missing): sample environments are laid out this way.
pub fn run_sqlite_script(path: &Path, sql: &str) -> Result<()> {
    Ok(ferry_db::sqlite::run_script(path, sql)?)
}
