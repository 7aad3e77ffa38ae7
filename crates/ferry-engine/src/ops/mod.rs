//! Operations: what a front end asks of Ferry to change an environment.
//! Each has one shape: a request (who, what, options) -> `prepare` -> a
//! prepared operation (the plan or record it will act on, the gate
//! results, the held writer lock) that the front end shows and confirms ->
//! `commit` -> a typed outcome (see `views` for their JSON). The route and
//! access checks, the writer lock, the gates, the audit record (of a
//! success and of a refusal alike) and the hooks all happen in here; the
//! front end parses, confirms and renders.
//!
//! Dropping a prepared operation writes nothing and releases its lock.

pub mod baseline;
pub mod env;
pub mod promote;
pub mod refresh;
pub mod revert;
pub mod review;
pub mod track;

use ferry_core::plan::Plan;

use crate::gates::CheckOutcome;
use crate::hooks::HookOutcome;
use crate::progress::Progress;

/// What happens during an operation that a front end may want to show as
/// it happens (the CLI prints it on stderr, a server may stream it). Every
/// method has a silent default.
pub trait Observer: Send + Sync {
    /// Progress of the scans.
    fn progress(&self) -> Progress {
        Progress::hidden()
    }
    /// Another writer holds the target's lock, and the operation waits.
    fn waiting(&self, _message: &str) {}
    /// The plan is made and checked (conflicts, open reviews), before the
    /// gates run.
    fn planned(&self, _plan: &Plan) {}
    /// The target's checks ran (`configured` of them exist; the ones after
    /// a failure did not run).
    fn checks_ran(&self, _to: &str, _configured: usize, _outcomes: &[CheckOutcome]) {}
    /// A committed promotion's hooks are about to run.
    fn hooks_starting(&self, _promotion: &str, _to: &str, _configured: usize) {}
    /// A committed promotion's hooks ran.
    fn hooks_ran(&self, _promotion: &str, _outcomes: &[HookOutcome]) {}
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// Takes `store`'s writer lock: waits (telling the observer) or, when
/// `wait` is false, refuses.
pub(crate) async fn lock(
    store: &dyn ferry_db::Store,
    wait: bool,
    observer: &dyn Observer,
) -> crate::Result<ferry_db::WriterLock> {
    crate::lock::writer(store, wait, |m| observer.waiting(m))
        .await
        .map_err(|e| match e {
            // The only refusal: another writer holds the lock.
            crate::Error::Blocked(m) => crate::Error::Blocked(m).hint(crate::error::Hint::Wait),
            other => other,
        })
}

/// Runs the hooks of `to` for a committed promotion and audits each; a
/// failing hook never undoes the promotion.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_hooks(
    project: &crate::project::Project,
    target: &dyn ferry_db::Store,
    promotion: &crate::apply::Promotion,
    from: &str,
    to: &str,
    user: &str,
    review: Option<&str>,
    observer: &dyn Observer,
) -> Vec<HookOutcome> {
    let configured = project.env_config(to).map_or(0, |e| e.hooks.len());
    if configured == 0 {
        return Vec::new();
    }
    observer.hooks_starting(&promotion.id, to, configured);
    let payload = crate::hooks::payload(promotion, from, to, user, review);
    let outcomes = crate::hooks::run_hooks(project, to, &payload).await;
    for o in &outcomes {
        let mut entry = crate::audit::entry(user, "hook", Some(from), to);
        entry.ref_id = Some(promotion.id.clone());
        entry.result = if o.ok { "ok" } else { "failed" }.into();
        entry.detail = match &o.error {
            None => format!("#{} {}", o.index, o.hook),
            Some(e) => format!("#{} {}: {e}", o.index, o.hook),
        };
        let _ = crate::audit::record(target, &entry).await;
    }
    observer.hooks_ran(&promotion.id, &outcomes);
    outcomes
}
