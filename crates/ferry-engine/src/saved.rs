//! A saved plan against its target, before anything is written: was it
//! applied already, and is the target still what the plan expects? A dry
//! run asks both, so that it answers as the real apply would (the apply
//! checks the rows again inside its transaction).

use std::collections::BTreeMap;

use ferry_core::canonical::key_text;
use ferry_core::plan::{Plan, PlanEntry};
use ferry_db::Store;

use crate::apply::{self, Change};
use crate::error::{Error, Hint, Result};
use crate::planner;

/// The promotion that applied this very plan (same file hash) and was not
/// reverted since, if any.
pub async fn applied_as(target: &dyn Store, plan: &Plan) -> Result<Option<String>> {
    if plan.hash.is_empty() {
        return Ok(None);
    }
    Ok(target.records().applied_as(&plan.hash).await?)
}

/// Refuses (exit 3) a saved plan that was applied already.
pub async fn refuse_if_applied(target: &dyn Store, plan: &Plan) -> Result<()> {
    match applied_as(target, plan).await? {
        Some(id) => Err(Error::Blocked(format!(
            "{} -> {}: this plan was already applied as promotion {id}; nothing was written",
            plan.from, plan.to
        ))
        .hint(Hint::ShowPromotion { id })),
        None => Ok(()),
    }
}

/// The entries of `changes` whose target row is no longer what the plan
/// saw, as `table:key` labels, read outside any transaction.
pub async fn stale_rows(target: &dyn Store, plan: &Plan, changes: &[Change<'_>]) -> Result<Vec<String>> {
    let mut by_table: BTreeMap<&str, Vec<&PlanEntry>> = BTreeMap::new();
    for e in changes {
        by_table.entry(e.table.as_str()).or_default().push(e);
    }
    let mut stale = Vec::new();
    for (table, entries) in by_table {
        let spec = plan.specs.get(table).ok_or_else(|| {
            Error::Usage(format!(
                "the plan has no description of table `{table}`; make the plan again"
            ))
        })?;
        let entries: Vec<&PlanEntry> = entries
            .into_iter()
            .filter(|e| apply::target_row_known(spec, e))
            .collect();
        let keys = entries.iter().map(|e| e.target_key().to_vec()).collect();
        let mut current = BTreeMap::new();
        for raw in planner::fetch_full(target, spec, keys).await? {
            let side = planner::target_side(spec, &plan.to, &apply::project(spec, &raw))?;
            current.insert(key_text(&side.row[..spec.key.len()]), side.hashes.row);
        }
        for e in entries {
            if current.get(&key_text(e.target_key())).copied() != e.expect_target {
                stale.push(e.label());
            }
        }
    }
    Ok(stale)
}

/// Refuses (exit 3) a plan whose target rows changed since it was made,
/// with the words the apply uses.
pub async fn refuse_if_stale(target: &dyn Store, plan: &Plan, changes: &[Change<'_>]) -> Result<()> {
    let stale = stale_rows(target, plan, changes).await?;
    if stale.is_empty() {
        return Ok(());
    }
    Err(apply::stale_error(plan, &stale))
}
