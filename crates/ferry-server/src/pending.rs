//! What waits between adjacent environments, computed in the background.
//!
//! A full plan of a pair can take long on big tables, and the overview
//! must never wait for one: each pair's plan runs in its own tokio task,
//! started with the server, on a view of the overview when the last result
//! is older than [`FRESH_FOR`], on a refresh, and after a transfer into or
//! out of one of the pair; its counts are kept here with the time they
//! were computed. The overview shows the last result, its age, and whether
//! a new one is being computed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ferry_core::plan::{Action, Plan, Reason};
use ferry_core::selection::Selection;
use ferry_engine::planner;
use ferry_engine::progress::Progress;
use ferry_engine::registry::Envs;

use crate::discovery::Discovered;

/// How long a result counts as recent: a view of the overview after that
/// starts a new computation (and shows the old result meanwhile).
pub const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// What the plan of a whole pair (every managed table) would do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingCounts {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    pub conflict: u64,
    /// Rows the target changed and the source did not (left as they are).
    pub target_newer: u64,
}

impl PendingCounts {
    /// The counts of `plan`.
    pub fn of(plan: &Plan) -> PendingCounts {
        PendingCounts::of_entries(plan.entries.iter().map(|e| (e.action, e.reason)))
    }

    /// The counts of entries given by action and reason.
    pub fn of_entries(entries: impl IntoIterator<Item = (Action, Option<Reason>)>) -> PendingCounts {
        let mut c = PendingCounts::default();
        for (action, reason) in entries {
            match action {
                Action::Insert => c.insert += 1,
                Action::Update => c.update += 1,
                Action::Delete => c.delete += 1,
                Action::Conflict => c.conflict += 1,
                Action::Skip if reason == Some(Reason::TargetNewer) => c.target_newer += 1,
                Action::Skip => {}
            }
        }
        c
    }

    /// Whether nothing waits (target-newer rows stay where they are).
    pub fn is_empty(&self) -> bool {
        self.insert + self.update + self.delete + self.conflict == 0
    }
}

/// One finished computation of a pair.
#[derive(Clone, Debug)]
pub struct Computed {
    /// When the plan began reading the databases: the counts are at
    /// least that recent.
    pub at: DateTime<Utc>,
    /// How long the plan took.
    pub took: Duration,
    /// The counts, or why the plan failed (the engine's message: database
    /// URLs are already redacted from it).
    pub result: Result<PendingCounts, String>,
}

/// A pair's state: the last result, and whether a computation runs.
#[derive(Clone, Debug, Default)]
pub struct PairStatus {
    pub last: Option<Computed>,
    pub running: bool,
}

/// The background computations of every pair, shared by the server's
/// handlers ([`AppState::pending`](crate::AppState::pending)).
pub struct Pending {
    envs: Arc<Discovered>,
    pairs: Mutex<BTreeMap<(String, String), Slot>>,
}

/// A pair's status, and whether a refresh came in while it was computed.
#[derive(Default)]
struct Slot {
    status: PairStatus,
    again: bool,
}

impl Pending {
    /// No pair computed yet.
    pub fn new(envs: Arc<Discovered>) -> Pending {
        Pending {
            envs,
            pairs: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), Slot>> {
        // A panic while holding this lock leaves only plain data behind.
        self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pair's last result and whether a computation runs; never waits.
    pub fn status(&self, from: &str, to: &str) -> PairStatus {
        self.lock()
            .get(&(from.to_string(), to.to_string()))
            .map(|slot| slot.status.clone())
            .unwrap_or_default()
    }

    /// Starts a computation of the pair unless one runs or it has a
    /// result younger than [`FRESH_FOR`] (a view of the overview).
    pub fn ensure(self: &Arc<Self>, from: &str, to: &str) {
        self.start(from, to, false);
    }

    /// Starts a new computation of the pair; when one runs, another
    /// follows it (a refresh, or a write into one of the pair).
    pub fn refresh(self: &Arc<Self>, from: &str, to: &str) {
        self.start(from, to, true);
    }

    /// Keeps counts a page computed anyway (the changes page plans the
    /// whole pair), unless a newer result is there; a computation that
    /// runs goes on and replaces them when it ends.
    /// `at`: when that plan began reading.
    pub fn record(&self, from: &str, to: &str, counts: PendingCounts, at: DateTime<Utc>, took: Duration) {
        let mut pairs = self.lock();
        let slot = pairs.entry((from.to_string(), to.to_string())).or_default();
        if slot.status.last.as_ref().is_none_or(|c| c.at < at) {
            slot.status.last = Some(Computed {
                at,
                took,
                result: Ok(counts),
            });
        }
    }

    /// Drops what is known of the pair (a destroyed environment's); a
    /// computation that runs still ends, and its result is dropped by the
    /// next `forget` or kept unseen.
    pub fn forget(&self, from: &str, to: &str) {
        self.lock().remove(&(from.to_string(), to.to_string()));
    }

    /// Starts a computation of every route of the configuration that has
    /// none (the server's start).
    pub fn ensure_all(self: &Arc<Self>) {
        let envs = self.envs.now();
        let project = envs.project();
        for (from, to) in project.config.routes() {
            self.ensure(from, to);
        }
    }

    /// `env` was written: recomputes every pair it is the source or the
    /// target of (whose counts were computed or are being computed).
    pub fn after_write(self: &Arc<Self>, env: &str) {
        let envs = self.envs.now();
        let project = envs.project();
        for (from, to) in project.config.routes() {
            if from == env || to == env {
                self.refresh(from, to);
            }
        }
    }

    fn start(self: &Arc<Self>, from: &str, to: &str, again: bool) {
        let key = (from.to_string(), to.to_string());
        {
            let mut pairs = self.lock();
            let slot = pairs.entry(key.clone()).or_default();
            if slot.status.running {
                // The running plan may have read the databases before the
                // change that asks again: plan once more when it ends.
                slot.again |= again;
                return;
            }
            let fresh = slot.status.last.as_ref().is_some_and(|c| Utc::now() - c.at < FRESH_FOR);
            if fresh && !again {
                return;
            }
            slot.status.running = true;
        }
        self.spawn(key);
    }

    /// Plans the pair in a task of its own and keeps the result; plans it
    /// again at once when a refresh came in meanwhile.
    fn spawn(self: &Arc<Self>, key: (String, String)) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let (began, at) = (Instant::now(), Utc::now());
            let envs = this.envs.now();
            let (f, t) = key.clone();
            // Its own task: a panic in the planner ends up here as an
            // error, and the pair does not stay "computing" forever.
            let result = match tokio::spawn(async move { compute(&envs, &f, &t).await }).await {
                Ok(r) => r,
                Err(e) => Err(format!(
                    "the computation of {} -> {} ended abnormally: {e}",
                    key.0, key.1
                )),
            };
            if let Err(why) = &result {
                tracing::warn!("pending changes {} -> {}: {why}", key.0, key.1);
            }
            let rerun = {
                let mut pairs = this.lock();
                let slot = pairs.entry(key.clone()).or_default();
                // A page may have recorded a plan made after this one began.
                if slot.status.last.as_ref().is_none_or(|c| c.at <= at) {
                    slot.status.last = Some(Computed {
                        at,
                        took: began.elapsed(),
                        result,
                    });
                }
                slot.status.running = std::mem::take(&mut slot.again);
                slot.status.running
            };
            if rerun {
                this.spawn(key);
            }
        });
    }
}

/// The plan of every managed table from `from` to `to`, counted.
async fn compute(envs: &Envs, from: &str, to: &str) -> Result<PendingCounts, String> {
    let all = Selection::default();
    let pair = envs.pair(from, to, &all, true).await.map_err(|e| e.to_string())?;
    let plan = planner::plan(&pair, &all, Progress::hidden())
        .await
        .map_err(|e| e.to_string())?;
    Ok(PendingCounts::of(&plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_waiting_rows_by_action_and_target_newer_skips() {
        let c = PendingCounts::of_entries([
            (Action::Insert, None),
            (Action::Insert, None),
            (Action::Update, Some(Reason::Merged)),
            (Action::Delete, None),
            (Action::Conflict, Some(Reason::BothChanged)),
            (Action::Skip, Some(Reason::TargetNewer)),
            (Action::Skip, Some(Reason::Excluded)),
        ]);
        assert_eq!(
            c,
            PendingCounts {
                insert: 2,
                update: 1,
                delete: 1,
                conflict: 1,
                target_newer: 1
            }
        );
        assert!(!c.is_empty());
        assert!(PendingCounts::default().is_empty());
    }
}
