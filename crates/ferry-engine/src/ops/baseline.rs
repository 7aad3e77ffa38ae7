//! `baseline`: the rows equal on both sides recorded as in sync.

use ferry_core::access::Right;
use ferry_core::plan::Plan;
use ferry_core::selection::Selection;

use super::Observer;
use crate::audit::{self, Outcome as _};
use crate::baseline::{self, Baseline};
use crate::error::Result;
use crate::pair::Pair;
use crate::registry::Envs;

/// Who records which rows of which pair (any two environments).
#[derive(Clone, Debug)]
pub struct BaselineRequest {
    pub from: String,
    pub to: String,
    pub user: String,
    pub selection: Selection,
    /// Wait for another writer; false: refuse.
    pub wait: bool,
}

/// Both environments opened, the tables resolved. Surveying writes
/// nothing; committing checks the right and takes the writer lock (so a
/// user is asked before either).
pub struct PreparedBaseline<'a> {
    envs: &'a Envs,
    observer: &'a dyn Observer,
    req: BaselineRequest,
    pair: Pair,
}

pub async fn prepare<'a>(
    envs: &'a Envs,
    req: BaselineRequest,
    observer: &'a dyn Observer,
) -> Result<PreparedBaseline<'a>> {
    let pair = envs.pair(&req.from, &req.to, &req.selection, false).await?;
    Ok(PreparedBaseline {
        envs,
        observer,
        req,
        pair,
    })
}

impl PreparedBaseline<'_> {
    /// What a baseline would record: the plan of the rows that differ, and
    /// how many rows are equal. Writes nothing.
    pub async fn survey(&self) -> Result<(Plan, u64)> {
        baseline::survey(&self.pair, &self.req.selection, self.observer.progress()).await
    }

    /// Records the equal rows as in sync: needs `promote` into the target;
    /// audited.
    pub async fn commit(self) -> Result<Baseline> {
        let (req, target) = (&self.req, &*self.pair.target);
        audit::require(
            self.envs.project(),
            target,
            &req.user,
            Right::Promote,
            "baseline",
            Some(&req.from),
        )
        .await?;
        let _lock = super::lock(target, req.wait, self.observer).await?;
        let done = baseline::baseline(&self.pair, &req.selection, &req.user, self.observer.progress()).await;
        let entry = audit::entry(&req.user, "baseline", Some(&req.from), &req.to).outcome(&done, |b| b.id.clone());
        let _ = audit::record(target, &entry).await;
        done
    }
}
