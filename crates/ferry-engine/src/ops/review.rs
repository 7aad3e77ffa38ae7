//! `review approve|reject`: a decision on the held changes of a review.

use std::sync::Arc;

use ferry_core::plan::Plan;
use ferry_db::{Store, WriterLock};

use super::Observer;
use crate::apply::Promotion;
use crate::audit::{self, Outcome as _};
use crate::error::{Error, Result};
use crate::hooks::HookOutcome;
use crate::registry::Envs;
use crate::reviews::{self, Rejected, Review};

/// Who decides which review, and which of its rows (`only`: `(table,
/// key values)`; empty: all of them).
#[derive(Clone, Debug)]
pub struct DecisionRequest {
    pub review: String,
    pub user: String,
    pub only: Vec<(String, Vec<String>)>,
    /// Wait for another writer; false: refuse.
    pub wait: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// A decision ready to commit: the review as it stands and the target's
/// writer lock. Dropping it writes nothing.
pub struct PreparedDecision<'a> {
    envs: &'a Envs,
    observer: &'a dyn Observer,
    req: DecisionRequest,
    decision: Decision,
    target: Arc<dyn Store>,
    _lock: WriterLock,
    /// The review, as found.
    pub review: Review,
}

/// What a committed decision did.
pub enum DecisionOutcome {
    /// The journal record of the approved changes (`None`: nothing needed
    /// writing), and the hooks' results.
    Approved(Option<Promotion>, Vec<HookOutcome>),
    Rejected(Rejected),
}

/// Finds the review and takes its target's writer lock (deciding writes
/// the target: one writer at a time).
pub async fn prepare<'a>(
    envs: &'a Envs,
    req: DecisionRequest,
    decision: Decision,
    observer: &'a dyn Observer,
) -> Result<PreparedDecision<'a>> {
    let (target, review) = reviews::find_with(envs, &req.review).await?;
    let lock = super::lock(&*target, req.wait, observer).await?;
    Ok(PreparedDecision {
        envs,
        observer,
        req,
        decision,
        target,
        _lock: lock,
        review,
    })
}

impl PreparedDecision<'_> {
    /// The changes this decision covers (every pending one, or the `only`
    /// rows), as a plan to show before asking. An `only` row that is not
    /// waiting in the review is a usage error here, before anything asks.
    pub fn deciding(&self) -> Result<Plan> {
        let picked = reviews::chosen(&self.review, &self.req.only)?;
        let mut plan = self.review.plan.clone();
        plan.entries = picked.iter().map(|i| self.review.plan.entries[*i].clone()).collect();
        Ok(plan)
    }

    /// Decides: applies the approved changes (and runs the target's hooks)
    /// or discards the rejected ones. Audited, refusals included
    /// (permission refusals where they are decided).
    pub async fn commit(self) -> Result<DecisionOutcome> {
        let (req, r) = (&self.req, &self.review);
        let id = req.review.as_str();
        match self.decision {
            Decision::Approve => {
                let done = reviews::approve_with(self.envs, id, &req.user, &req.only).await;
                let mut entry = audit::entry(&req.user, "approve", Some(&r.from), &r.to)
                    .outcome(&done, |p| p.as_ref().map(|p| p.id.clone()).or(Some(id.to_string())));
                if done.is_ok() && r.user == req.user {
                    // Only possible without [access] (single-user mode): said in the audit.
                    entry.detail = format!("approved their own review {id} (single-user mode: no [access])");
                }
                if !done.as_ref().is_err_and(Error::is_denied) {
                    if entry.ref_id.is_none() {
                        entry.ref_id = Some(id.to_string());
                    }
                    let _ = audit::record(&*self.target, &entry).await;
                }
                let done = done?;
                // The approval wrote the changes: the target's hooks run now.
                let hooks = match &done {
                    Some(p) => {
                        super::run_hooks(
                            self.envs.project(),
                            &*self.target,
                            p,
                            &r.from,
                            &r.to,
                            &req.user,
                            Some(id),
                            self.observer,
                        )
                        .await
                    }
                    None => Vec::new(),
                };
                Ok(DecisionOutcome::Approved(done, hooks))
            }
            Decision::Reject => {
                let done = reviews::reject_with(self.envs, id, &req.user, &req.only).await;
                let entry =
                    audit::entry(&req.user, "reject", Some(&r.from), &r.to).outcome(&done, |_| Some(id.to_string()));
                if !done.as_ref().is_err_and(Error::is_denied) {
                    let _ = audit::record(&*self.target, &entry).await;
                }
                Ok(DecisionOutcome::Rejected(done?))
            }
        }
    }
}
