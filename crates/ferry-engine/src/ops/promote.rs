//! `promote`: a plan (made under the target's writer lock, or a saved one)
//! applied to the target, or submitted for review there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_core::access::Right;
use ferry_core::canonical::key_text;
use ferry_core::plan::{Action, Plan, PlanEntry, Side};
use ferry_core::selection::Selection;
use ferry_db::{Store, WriterLock};

use super::Observer;
use crate::apply::{self, PromoteOptions, Promotion};
use crate::audit;
use crate::error::{Error, Hint, Result};
use crate::gates::{self, CheckOutcome};
use crate::hooks::HookOutcome;
use crate::registry::Envs;
use crate::reviews::{self, Submitted};
use crate::views::{PromoteView, WrittenCounts};
use crate::{pair, planner, saved};

/// Who promotes what, and how.
#[derive(Clone, Debug)]
pub struct PromoteRequest {
    pub from: String,
    pub to: String,
    /// The acting user.
    pub user: String,
    /// The rows to plan (empty with a saved plan).
    pub selection: Selection,
    /// A saved plan, read and verified by the front end: applied as it is.
    pub saved: Option<Plan>,
    /// Plan, check and report; write nothing (and take no lock).
    pub dry_run: bool,
    /// Into a review environment: apply directly the changes approved upstream.
    pub approve_revisions: bool,
    /// Let the source win the conflicts.
    pub force: bool,
    /// Decide the rows named in the selection for one side.
    pub take: Option<Side>,
    /// Wait for another writer; false: refuse.
    pub wait: bool,
    /// Apply only if the changes are still the ones a front end showed:
    /// see [`Expected`]. Not with a saved plan (its file hash already
    /// pins it).
    pub expect: Option<Expected>,
}

/// What a front end showed before the user asked to promote: the plan of
/// `selection`, made under the target's writer lock, must still have
/// content hash `hash` ([`Plan::content_hash`]), or the promotion is
/// refused and nothing is written. `selection` may be wider than the
/// promotion's own (a page shows a whole pair, the user ticks two rows):
/// then every row the promotion would write must be in the plan shown, as
/// it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The selection of the plan that was shown.
    pub selection: Selection,
    /// That plan's [`Plan::content_hash`].
    pub hash: String,
}

/// A promotion ready to commit: its plan, the gates' results and the held
/// writer lock. Dropping it writes nothing.
pub struct PreparedPromotion<'a> {
    envs: &'a Envs,
    observer: &'a dyn Observer,
    req: PromoteRequest,
    target: Arc<dyn Store>,
    source: Option<Arc<dyn Store>>,
    _lock: Option<WriterLock>,
    /// The plan (under the lock, or the saved one).
    pub plan: Plan,
    /// The results of the target's checks (empty when nothing would be written).
    pub checks: Vec<CheckOutcome>,
    /// How many entries the apply would write or record.
    pub changes: usize,
    /// What the apply would write (conflicts count as the source's change
    /// when forced).
    pub would: WrittenCounts,
    /// The target holds promotions for review: commit submits a review.
    pub review: bool,
}

/// What a committed promotion did.
pub enum PromoteOutcome {
    /// Applied directly, with the hooks' results.
    Applied(Promotion, Vec<HookOutcome>),
    /// Submitted into a review environment.
    Submitted(Submitted, Vec<HookOutcome>),
    /// The apply found nothing to write after all.
    Nothing,
}

/// Plans (or checks the saved plan), refuses conflicts, rows under review
/// and failing gates, and holds the target's writer lock: everything but
/// the write. A refusal is audited in the target.
pub async fn prepare<'a>(
    envs: &'a Envs,
    req: PromoteRequest,
    observer: &'a dyn Observer,
) -> Result<PreparedPromotion<'a>> {
    let mut target = None;
    let result = prepare_in(envs, &req, observer, &mut target).await;
    match result {
        Ok(p) => Ok(p),
        Err(e) => {
            if let Some(t) = &target {
                audit_refusal(&**t, &req, &e).await;
            }
            Err(e)
        }
    }
}

/// Records a refused or failed promotion in the target's audit trail
/// (permission refusals are audited where they are decided; a dry run
/// is no action).
async fn audit_refusal(target: &dyn Store, req: &PromoteRequest, err: &Error) {
    if err.is_denied() || req.dry_run {
        return;
    }
    let mut entry = audit::entry(&req.user, "promote", Some(&req.from), &req.to);
    entry.result = match err.inner() {
        Error::Blocked(_) => "blocked",
        Error::Db(_) | Error::Data(_) => "failed",
        _ => "refused",
    }
    .into();
    entry.detail = err.to_string();
    let _ = audit::record(target, &entry).await;
}

async fn prepare_in<'a>(
    envs: &'a Envs,
    req: &PromoteRequest,
    observer: &'a dyn Observer,
    opened: &mut Option<Arc<dyn Store>>,
) -> Result<PreparedPromotion<'a>> {
    let project = envs.project();
    let (from, to) = (req.from.as_str(), req.to.as_str());
    if req.saved.is_some() && req.expect.is_some() {
        return Err(Error::Usage(format!(
            "{from} -> {to}: a saved plan is applied as it was saved (its own hash pins it); \
             an expected content hash goes with a selection to plan, not with a saved plan. Nothing was written"
        )));
    }
    let review = project.env_config(to)?.review;
    // The route first: its refusal is audited in the target, opened for that.
    if let Err(e) = pair::check_route(project, from, to) {
        if matches!(e.inner(), Error::Blocked(_)) {
            if let Ok(t) = envs.open(to).await {
                *opened = Some(t);
            }
        }
        return Err(e);
    }
    // A saved plan applies with nothing but its target: the source may be gone.
    let (target, source, plan, lock) = match &req.saved {
        Some(plan) => {
            let target = envs.open(to).await?;
            *opened = Some(target.clone());
            // Hashed, not trusted: only managed tables, as configured.
            apply::check_saved(project, &*target, plan).await?;
            if !req.dry_run {
                audit::require(project, &*target, &req.user, Right::Promote, "promote", Some(from)).await?;
            }
            let lock = match req.dry_run {
                true => None,
                false => Some(super::lock(&*target, req.wait, observer).await?),
            };
            let source = match req.approve_revisions {
                true => envs.open(from).await.ok(),
                false => None,
            };
            (target, source, plan.clone(), lock)
        }
        None => {
            let (source, target) = envs.stores(from, to, &req.selection, false).await?;
            if !req.dry_run {
                audit::require(project, &*target, &req.user, Right::Promote, "promote", Some(from)).await?;
            }
            // Held from reading the schemas to commit: a second writer
            // waits for this one, and what is read of the target (its
            // schemas too) is read under the lock.
            let lock = match req.dry_run {
                true => None,
                false => {
                    *opened = Some(target.clone());
                    Some(super::lock(&*target, req.wait, observer).await?)
                }
            };
            // A configuration that does not resolve is reported, not
            // audited (as before the lock came first).
            let pair = envs
                .resolve(from, to, (source, target), &req.selection)
                .await
                .inspect_err(|_| *opened = None)?;
            *opened = Some(pair.target.clone());
            let mut plan = planner::plan(&pair, &req.selection, observer.progress()).await?;
            plan.under_lock.0 = lock.is_some();
            if let Some(expected) = &req.expect {
                check_expected(envs, req, expected, &plan, observer).await?;
            }
            if let Some(side) = req.take {
                planner::take(&mut plan, side, &req.selection.ids)?;
            }
            (pair.target.clone(), Some(pair.source.clone()), plan, lock)
        }
    };
    // Refuse conflicts and rows under review before asking anything.
    // A count: the apply builds its own list (held twice, a large
    // promotion's entries would cost twice the memory).
    let (changes, would) = {
        let list = apply::changes(&plan, req.force)?;
        if req.saved.is_some() {
            // A saved plan answers as its apply would: applied already, or
            // stale (a dry run writes nothing, so the apply's own re-check
            // never runs for it).
            saved::refuse_if_applied(&*target, &plan).await?;
            if req.dry_run {
                saved::refuse_if_stale(&*target, &plan, &list).await?;
            }
        }
        let mut would = ferry_core::plan::Counts::default();
        for c in list.iter().filter(|c| c.is_change()) {
            would.add(c.action);
        }
        (list.len(), WrittenCounts::from(&would))
    };
    reviews::check_open(&*target, &plan).await?;
    observer.planned(&plan);
    // Gates: the target's checks, before anything is written (dry runs too).
    // Nothing to promote: nothing to check.
    let configured = project.env_config(to).map_or(0, |e| e.checks.len());
    let checks = if configured == 0 || changes == 0 {
        Vec::new()
    } else {
        let outcomes = gates::evaluate(project, source.as_deref(), &*target, &plan).await;
        observer.checks_ran(to, configured, &outcomes);
        gates::require_passed(to, &outcomes)?;
        outcomes
    };
    Ok(PreparedPromotion {
        envs,
        observer,
        req: req.clone(),
        target,
        source,
        _lock: lock,
        plan,
        checks,
        changes,
        would,
        review,
    })
}

/// Refuses the promotion when the plan of `expected.selection`, made now
/// (under the writer lock, before anything is written), is not the plan
/// that was shown: `plan` is the promotion's own, reused when the
/// selections are the same. When they differ, `plan` was made a moment
/// before the one checked: every row it would write must also be in the
/// plan checked, with the same row image over the same target row, so
/// that an edit between the two plannings cannot slip through.
async fn check_expected(
    envs: &Envs,
    req: &PromoteRequest,
    expected: &Expected,
    plan: &Plan,
    observer: &dyn Observer,
) -> Result<()> {
    let stale = || {
        Error::Blocked(format!(
            "{} -> {}: the changes are not the ones shown any more (another edit or promotion moved them); nothing was written",
            req.from, req.to
        ))
        .hint(Hint::Stale {
            from: req.from.clone(),
            to: req.to.clone(),
        })
    };
    if expected.selection == req.selection {
        return match plan.content_hash() == expected.hash {
            true => Ok(()),
            false => Err(stale()),
        };
    }
    let pair = envs.pair(&req.from, &req.to, &expected.selection, false).await?;
    let shown = planner::plan(&pair, &expected.selection, observer.progress()).await?;
    if shown.content_hash() != expected.hash {
        return Err(stale());
    }
    let by_key: HashMap<(&str, String), &PlanEntry> = shown
        .entries
        .iter()
        .map(|e| ((e.table.as_str(), key_text(&e.key)), e))
        .collect();
    let written = plan
        .entries
        .iter()
        .filter(|e| e.is_change() || e.action == Action::Conflict);
    for e in written {
        match by_key.get(&(e.table.as_str(), key_text(&e.key))) {
            Some(s) if s.source == e.source && s.expect_target == e.expect_target => {}
            _ => return Err(stale()),
        }
    }
    Ok(())
}

impl PreparedPromotion<'_> {
    /// True when committing would write nothing: a dry run, or a plan with
    /// nothing to apply. The front end shows [`Self::view`] and stops.
    pub fn writes_nothing(&self) -> bool {
        self.req.dry_run || self.changes == 0
    }

    /// The prepared promotion as shown before (or instead of) committing.
    pub fn view(&self) -> PromoteView {
        PromoteView::planned(&self.plan, self.would, self.req.dry_run, self.checks.clone())
    }

    /// Applies the plan (or submits it for review), audits it and runs the
    /// target's hooks. A failure is audited too.
    pub async fn commit(self) -> Result<PromoteOutcome> {
        let result = self.commit_in().await;
        if let Err(e) = &result {
            audit_refusal(&*self.target, &self.req, e).await;
        }
        result
    }

    async fn commit_in(&self) -> Result<PromoteOutcome> {
        let project = self.envs.project();
        let req = &self.req;
        let (from, to, user) = (req.from.as_str(), req.to.as_str(), req.user.as_str());
        let opts = PromoteOptions {
            user: user.to_string(),
            force: req.force,
        };
        if self.review {
            let direct = match (&self.source, req.approve_revisions) {
                (Some(s), true) => reviews::approved_upstream(project, &**s, &self.plan).await?,
                _ => HashSet::new(),
            };
            let done = reviews::submit(project, &*self.target, &self.plan, &opts, &direct).await?;
            let mut entry = audit::entry(user, "promote", Some(from), to);
            entry.ref_id = done.review.clone().or(done.direct.as_ref().map(|p| p.id.clone()));
            entry.detail = "submitted for review".into();
            let _ = audit::record(&*self.target, &entry).await;
            let hooks = match done.direct.as_ref().or(done.drafts.as_ref()) {
                Some(p) => {
                    super::run_hooks(
                        project,
                        &*self.target,
                        p,
                        from,
                        to,
                        user,
                        done.review.as_deref(),
                        self.observer,
                    )
                    .await
                }
                None => Vec::new(),
            };
            return Ok(PromoteOutcome::Submitted(done, hooks));
        }
        let done = apply::promote_plan(&*self.target, &self.plan, &opts).await?;
        let mut entry = audit::entry(user, "promote", Some(from), to);
        entry.ref_id = done.as_ref().map(|p| p.id.clone());
        let _ = audit::record(&*self.target, &entry).await;
        Ok(match done {
            Some(p) => {
                let hooks = super::run_hooks(project, &*self.target, &p, from, to, user, None, self.observer).await;
                PromoteOutcome::Applied(p, hooks)
            }
            None => PromoteOutcome::Nothing,
        })
    }
}

impl PromoteOutcome {
    /// The outcome as shown, with the checks that ran before it.
    pub fn view(&self, checks: Vec<CheckOutcome>) -> PromoteView {
        match self {
            PromoteOutcome::Applied(p, hooks) => PromoteView::applied(p, checks, hooks.clone()),
            PromoteOutcome::Submitted(s, hooks) => PromoteView::submitted(s, checks, hooks.clone()),
            PromoteOutcome::Nothing => PromoteView::nothing(),
        }
    }
}
