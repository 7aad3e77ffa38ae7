//! `refresh`: a lower environment reset to match one further down the
//! pipeline (usually production), except its `exclude`d rows (QA and
//! developer rows), in one journalled transaction that `revert` undoes.
//!
//! The plan is an ordinary plan `from -> env` with every difference decided
//! for `from` (target-newer and target-only rows, conflicts), over specs
//! whose stamped columns are compared and copied like the others (they come
//! down as `from` holds them, with no new stamp) and with no `exclude` on
//! `from`'s side: `exclude` is evaluated in `env`, whose matching rows stay.
//! Being a plan, ids inside JSON columns (`json_references`) and natural
//! keys are rewritten exactly as a promotion `from -> env` rewrites them,
//! and, as before a promotion into `env`, `env`'s checks (gates) run before
//! anything is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_core::access::Right;
use ferry_core::canonical::key_text;
use ferry_core::plan::{key_label, Action, Counts, Plan, Reason, Side};
use ferry_core::selection::Selection;
use ferry_core::value::Value;
use ferry_db::{Predicate, ScanRequest, Store, WriterLock};

use super::Observer;
use crate::apply::{self, PromoteOptions, Promotion};
use crate::audit::{self, Outcome as _};
use crate::error::{Error, Hint, Result};
use crate::gates::{self, CheckOutcome};
use crate::hooks::HookOutcome;
use crate::pair::Pair;
use crate::planner::{self, target_side};
use crate::registry::Envs;
use crate::views::{NextBaselineView, PlanView, RefreshView, WrittenCounts};

/// Who refreshes which environment from which, and how.
#[derive(Clone, Debug)]
pub struct RefreshRequest {
    /// The environment reset.
    pub env: String,
    /// The environment further down the pipeline whose content comes down.
    pub from: String,
    /// The acting user.
    pub user: String,
    /// Delete the excluded rows of `env` that reference a row the refresh
    /// deletes (otherwise such a row refuses the refresh).
    pub drop_excluded: bool,
    /// Plan and report; write nothing (and take no lock).
    pub dry_run: bool,
    /// Wait for another writer; false: refuse.
    pub wait: bool,
}

/// A refresh ready to commit: what it discards, what comes down, and the
/// held writer lock of `env`. Dropping it writes nothing.
pub struct PreparedRefresh<'a> {
    envs: &'a Envs,
    observer: &'a dyn Observer,
    req: RefreshRequest,
    target: Arc<dyn Store>,
    _lock: Option<WriterLock>,
    /// `env`'s next environment in the pipeline.
    pub next: String,
    /// `env -> next`: the rows of `env` not promoted yet (changes and
    /// conflicts are what the refresh discards).
    pub unpromoted: Plan,
    /// `from -> env`, every difference decided for `from`: what the
    /// refresh writes.
    pub incoming: Plan,
    /// Excluded rows of `env` kept as they are, per table.
    pub kept_excluded: BTreeMap<String, u64>,
    /// Excluded rows deleted because they referenced a row the refresh
    /// deletes (`table:key`), with `drop_excluded` only.
    pub dropped_excluded: Vec<String>,
    /// The checks of `env` that ran (all passed: a failing one refuses).
    pub checks: Vec<CheckOutcome>,
}

/// What a committed refresh did.
pub struct RefreshOutcome {
    /// The journal record (kind `refresh`), `None` when nothing differed.
    pub refresh: Option<Promotion>,
    /// The baseline of `env -> next` recorded afterwards in `next`
    /// (its journal id, and how many rows it recorded as in sync).
    pub next_baseline: Option<(Option<String>, u64)>,
    /// The hooks of `env` that ran.
    pub hooks: Vec<HookOutcome>,
}

/// Checks the direction and the right, takes `env`'s writer lock and makes
/// both plans; a refusal is audited in `env`.
pub async fn prepare<'a>(
    envs: &'a Envs,
    req: RefreshRequest,
    observer: &'a dyn Observer,
) -> Result<PreparedRefresh<'a>> {
    let next = match check_direction(envs, &req.env, &req.from) {
        Ok(next) => next,
        Err(e) => {
            // The wrong direction is audited in `env`, as a route against
            // the pipeline is in its target.
            if matches!(e.inner(), Error::Blocked(_)) {
                if let Ok(target) = envs.open(&req.env).await {
                    audit_refusal(&*target, &req, &e).await;
                }
            }
            return Err(e);
        }
    };
    let target = envs.open(&req.env).await?;
    match prepare_in(envs, &req, observer, next, target.clone()).await {
        Ok(p) => Ok(p),
        Err(e) => {
            audit_refusal(&*target, &req, &e).await;
            Err(e)
        }
    }
}

/// Records a refused or failed refresh in `env`'s audit trail (permission
/// refusals are audited where they are decided; a dry run is no action).
async fn audit_refusal(target: &dyn Store, req: &RefreshRequest, e: &Error) {
    if e.is_denied() || req.dry_run {
        return;
    }
    let mut entry = audit::entry(&req.user, "refresh", Some(&req.from), &req.env);
    entry.result = match e.inner() {
        Error::Blocked(_) => "blocked",
        Error::Db(_) | Error::Data(_) => "failed",
        _ => "refused",
    }
    .into();
    entry.detail = e.to_string();
    if let Err(err) = audit::record(target, &entry).await {
        tracing::warn!("the refused refresh of `{}` could not be audited: {err}", req.env);
    }
}

/// `from` must be further down the pipeline than `env`: returns `env`'s
/// next environment. The other direction is refused as a route against
/// the pipeline is.
pub fn check_direction(envs: &Envs, env: &str, from: &str) -> Result<String> {
    let project = envs.project();
    project.env_config(env)?;
    project.env_config(from)?;
    if env == from {
        return Err(Error::Usage(format!("`{env}` cannot be refreshed from itself")));
    }
    let pipeline = &project.config.pipeline;
    let at = |e: &str| pipeline.iter().position(|p| p == e);
    let line = pipeline.join(" -> ");
    match (at(env), at(from)) {
        (Some(a), Some(b)) if a < b => Ok(pipeline[a + 1].clone()),
        (Some(_), Some(_)) => Err(Error::Blocked(format!(
            "`{env}` cannot be refreshed from `{from}`: content comes down from an environment further down the pipeline ({line}), and `{from}` comes before `{env}`. Nothing was written; to reset `{from}` to match `{env}` instead, refresh `{from}` from `{env}`"
        ))
        .hint(Hint::Refresh {
            env: from.to_string(),
            from: env.to_string(),
        })),
        _ => Err(Error::Blocked(format!(
            "`{env}` cannot be refreshed from `{from}`: both must be in the pipeline ({line}), `{from}` further down than `{env}`. Nothing was written"
        ))),
    }
}

async fn prepare_in<'a>(
    envs: &'a Envs,
    req: &RefreshRequest,
    observer: &'a dyn Observer,
    next: String,
    target: Arc<dyn Store>,
) -> Result<PreparedRefresh<'a>> {
    let project = envs.project();
    if !req.dry_run {
        audit::require(project, &*target, &req.user, Right::Refresh, "refresh", Some(&req.from)).await?;
    }
    // Held from planning to commit: no promotion into `env` slips in.
    let lock = match req.dry_run {
        true => None,
        false => Some(super::lock(&*target, req.wait, observer).await?),
    };
    let all = Selection::default();
    let onward = envs.pair(&req.env, &next, &all, true).await?;
    let mut unpromoted = planner::plan(&onward, &all, observer.progress()).await?;
    unpromoted
        .entries
        .retain(|e| e.is_change() || e.action == Action::Conflict);
    let mut pair = envs.pair(&req.from, &req.env, &all, false).await?;
    // Its specs differ from a promotion's (stamped columns compared, no
    // `exclude` on `from`): no watermark speaks for them, so every table
    // is read whole.
    pair.full_plans = true;
    let excludes = refresh_specs(&mut pair);
    let mut incoming = planner::plan(&pair, &all, observer.progress()).await?;
    incoming.under_lock.0 = lock.is_some();
    decide_for_source(&mut incoming);
    let excluded = excluded_rows(&pair, &excludes).await?;
    let kept_excluded = excluded.iter().fold(BTreeMap::new(), |mut m, (t, _)| {
        *m.entry(t.0.clone()).or_insert(0) += 1;
        m
    });
    let dropped_excluded = keep_excluded(&pair, &mut incoming, &excluded, req.drop_excluded)?;
    let mut kept_excluded = kept_excluded;
    for label in &dropped_excluded {
        let table = label.split(':').next().unwrap_or_default();
        if let Some(n) = kept_excluded.get_mut(table) {
            *n -= 1;
        }
    }
    kept_excluded.retain(|_, n| *n > 0);
    // Rows the target's unique constraints would refuse: no side wins them.
    apply::changes(&incoming, false)?;
    observer.planned(&incoming);
    // Gates: `env`'s checks, as before a promotion into it (dry runs too);
    // nothing to write, nothing to check.
    let configured = project.env_config(&req.env).map_or(0, |e| e.checks.len());
    let checks = if configured == 0 || !incoming.entries.iter().any(|e| e.is_change()) {
        Vec::new()
    } else {
        let outcomes = gates::evaluate(project, Some(&*pair.source), &*target, &incoming).await;
        observer.checks_ran(&req.env, configured, &outcomes);
        gates::require_passed(&req.env, &outcomes)?;
        outcomes
    };
    Ok(PreparedRefresh {
        envs,
        observer,
        req: req.clone(),
        target,
        _lock: lock,
        next,
        unpromoted,
        incoming,
        kept_excluded,
        dropped_excluded,
        checks,
    })
}

/// Makes the pair's specs copy stamped columns as `from` holds them, and
/// evaluate no `exclude` on `from`; returns each table's `exclude`, to
/// evaluate in `env`.
fn refresh_specs(pair: &mut Pair) -> BTreeMap<String, String> {
    let mut excludes = BTreeMap::new();
    for (table, spec) in pair.specs.iter_mut() {
        if let Some(x) = spec.exclude.take() {
            excludes.insert(table.clone(), x);
        }
        if !spec.stamped.is_empty() {
            spec.compared.append(&mut spec.stamped);
            spec.compared.sort();
        }
    }
    excludes
}

/// Every difference decided for the source: target-newer rows are
/// overwritten, rows only in the target deleted, conflicts taken.
fn decide_for_source(plan: &mut Plan) {
    for e in plan.entries.iter_mut() {
        let decide = match (e.action, e.reason) {
            (Action::Conflict, Some(Reason::UniqueCollision)) => false,
            (Action::Conflict, _) => true,
            (Action::Skip, Some(Reason::TargetNewer | Reason::TargetOnly | Reason::KeptTarget)) => true,
            _ => false,
        };
        if decide {
            *e = e.take(Side::Source);
        }
    }
}

/// An excluded row of `env`: (table, key text) -> its canonical row (key
/// and compared columns, in spec order).
type Excluded = BTreeMap<(String, String), Vec<Value>>;

/// The rows of `env` that match their table's `exclude`.
async fn excluded_rows(pair: &Pair, excludes: &BTreeMap<String, String>) -> Result<Excluded> {
    let mut out = Excluded::new();
    for (table, predicate) in excludes {
        let spec = pair.spec(table)?;
        let mut rx = pair
            .target
            .scan(ScanRequest {
                table: table.clone(),
                columns: spec.columns(),
                order_by: spec.key.clone(),
                filter: Some(Predicate::native(predicate.clone())),
                flag: None,
                descending: false,
                limit: None,
            })
            .await?;
        while let Some(batch) = rx.recv().await {
            for raw in batch? {
                let side = target_side(spec, &pair.to, &raw)?;
                let kt = key_text(&side.row[..spec.key.len()]);
                out.insert((table.clone(), kt), side.row);
            }
        }
    }
    Ok(out)
}

/// Takes the excluded rows of `env` out of the plan (they stay as they
/// are). One that references a row the plan deletes refuses the refresh,
/// naming both, or with `drop` is deleted too (and so may block others in
/// turn). Returns the rows dropped, as `table:key`.
fn keep_excluded(pair: &Pair, plan: &mut Plan, excluded: &Excluded, drop: bool) -> Result<Vec<String>> {
    let mut taken = BTreeMap::new();
    plan.entries.retain(|e| {
        let id = (e.table.clone(), key_text(e.target_key()));
        match excluded.contains_key(&id) {
            true => {
                taken.insert(id, e.clone());
                false
            }
            false => true,
        }
    });
    let mut deleted: BTreeSet<(String, String)> = plan
        .entries
        .iter()
        .filter(|e| e.action == Action::Delete)
        .map(|e| (e.table.clone(), key_text(e.target_key())))
        .collect();
    let mut dropped: Vec<String> = Vec::new();
    let mut dropped_ids = BTreeSet::new();
    loop {
        let mut blocking = Vec::new();
        for ((table, kt), row) in excluded {
            if dropped_ids.contains(&(table.clone(), kt.clone())) {
                continue;
            }
            let spec = pair.spec(table)?;
            if let Some(target) = references_deleted(spec, row, &deleted) {
                let label = format!("{table}:{}", key_label(&row[..spec.key.len()]));
                blocking.push(((table.clone(), kt.clone()), label, target));
            }
        }
        if blocking.is_empty() {
            break;
        }
        if !drop {
            let list: Vec<String> = blocking
                .iter()
                .map(|(_, label, target)| format!("`{label}` references `{target}`"))
                .collect();
            return Err(Error::Blocked(format!(
                "{}: refreshing from `{}` would delete rows that excluded rows of `{}` reference ({}), and excluded rows stay as they are. Nothing was written",
                pair.to,
                pair.from,
                pair.to,
                list.join(", ")
            ))
            .hint(Hint::DropExcluded));
        }
        for (id, label, _) in blocking {
            let entry = taken.remove(&id).ok_or_else(|| {
                Error::Data(format!(
                    "{}: excluded row `{label}` references a row the refresh deletes but is equal in `{}`",
                    pair.to, pair.from
                ))
            })?;
            let entry = match entry.action {
                Action::Delete | Action::Update | Action::Insert => entry,
                _ => entry.take(Side::Source),
            };
            if entry.action == Action::Delete {
                deleted.insert(id.clone());
            }
            dropped.push(label);
            dropped_ids.insert(id);
            plan.entries.push(entry);
        }
    }
    // Back in table order, then key (the order the apply expects).
    let order: BTreeMap<&str, usize> = plan.tables.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    plan.entries.sort_by(|a, b| {
        order
            .get(a.table.as_str())
            .cmp(&order.get(b.table.as_str()))
            .then_with(|| match pair.specs.get(&a.table) {
                Some(spec) => spec.key_cmp(&a.key, &b.key),
                None => ferry_core::value::key_cmp(&a.key, &b.key),
            })
    });
    Ok(dropped)
}

/// The first row an excluded row references (by a reference column or its
/// parent) that `deleted` holds, as `table:key`.
fn references_deleted(
    spec: &ferry_core::spec::TableSpec,
    row: &[Value],
    deleted: &BTreeSet<(String, String)>,
) -> Option<String> {
    let columns = spec.columns();
    for (column, table) in &spec.references {
        let Some(i) = columns.iter().position(|c| c == column) else {
            continue;
        };
        let v = &row[i];
        if matches!(v, Value::Null) {
            continue;
        }
        let kt = key_text(std::slice::from_ref(v));
        if deleted.contains(&(table.clone(), kt)) {
            return Some(format!("{table}:{}", key_label(std::slice::from_ref(v))));
        }
    }
    None
}

impl PreparedRefresh<'_> {
    /// True when committing would write nothing: a dry run, or nothing
    /// differs. The front end shows [`Self::view`] and stops.
    pub fn writes_nothing(&self) -> bool {
        self.req.dry_run || !self.incoming.entries.iter().any(|e| e.is_change())
    }

    /// The refresh as shown before (or instead of) committing.
    pub fn view(&self) -> RefreshView {
        RefreshView::planned(self)
    }

    /// The request this refresh was prepared for.
    pub fn request(&self) -> &RefreshRequest {
        &self.req
    }

    /// Writes the refresh in one transaction of `env` (journal kind
    /// `refresh`), audits it, runs `env`'s hooks, then records the rows
    /// equal in `env` and its next environment as in sync there (a
    /// baseline in `next`, in its own transaction: see docs/commands.md).
    pub async fn commit(self) -> Result<RefreshOutcome> {
        let project = self.envs.project();
        let req = &self.req;
        let (env, from, user) = (req.env.as_str(), req.from.as_str(), req.user.as_str());
        let opts = PromoteOptions {
            user: user.to_string(),
            force: false,
        };
        let done = apply::promote_plan_with(&*self.target, &self.incoming, &opts, "refresh", |_| Vec::new()).await;
        let mut entry =
            audit::entry(user, "refresh", Some(from), env).outcome(&done, |p| p.as_ref().map(|p| p.id.clone()));
        if !self.dropped_excluded.is_empty() && done.is_ok() {
            entry.detail = format!("dropped excluded rows: {}", self.dropped_excluded.join(", "));
        }
        if let Err(e) = audit::record(&*self.target, &entry).await {
            tracing::warn!("the refresh of `{env}` could not be audited: {e}");
        }
        let done = done?;
        let hooks = match &done {
            Some(p) => super::run_hooks(project, &*self.target, p, from, env, user, None, self.observer).await,
            None => Vec::new(),
        };
        let next_baseline = self.baseline_next().await.map_err(|e| {
            let id = done.as_ref().map_or("(nothing written)".to_string(), |p| p.id.clone());
            let msg = format!(
                "`{env}` was refreshed from `{from}` (refresh {id}), but recording the rows equal in `{env}` and `{}` as in sync failed ({e}); record them",
                self.next
            );
            Error::Data(msg).hint(Hint::Baseline {
                from: env.to_string(),
                to: self.next.clone(),
            })
        })?;
        Ok(RefreshOutcome {
            refresh: done,
            next_baseline: Some(next_baseline),
            hooks,
        })
    }

    /// The baseline `env -> next`, under `next`'s writer lock, audited.
    async fn baseline_next(&self) -> Result<(Option<String>, u64)> {
        let req = &self.req;
        let all = Selection::default();
        let pair = self.envs.pair(&req.env, &self.next, &all, false).await?;
        let _lock = super::lock(&*pair.target, req.wait, self.observer).await?;
        let done = crate::baseline::baseline(&pair, &all, &req.user, self.observer.progress()).await;
        let mut entry =
            audit::entry(&req.user, "baseline", Some(&req.env), &self.next).outcome(&done, |b| b.id.clone());
        entry.detail = format!("after refreshing `{}` from `{}`", req.env, req.from);
        if let Err(e) = audit::record(&*pair.target, &entry).await {
            tracing::warn!(
                "the baseline in `{}` after a refresh could not be audited: {e}",
                self.next
            );
        }
        let done = done?;
        Ok((done.id, done.recorded))
    }
}

impl RefreshOutcome {
    /// What was written, by action.
    pub fn counts(&self) -> WrittenCounts {
        self.refresh
            .as_ref()
            .map(|p| WrittenCounts::from(&p.counts))
            .unwrap_or_default()
    }
}

impl RefreshView {
    /// A prepared refresh, before (or instead of) its commit.
    pub fn planned(p: &PreparedRefresh<'_>) -> RefreshView {
        let mut would = Counts::default();
        for e in p.incoming.entries.iter().filter(|e| e.is_change()) {
            would.add(e.action);
        }
        let req = p.request();
        RefreshView {
            env: req.env.clone(),
            from: req.from.clone(),
            next: p.next.clone(),
            refresh: None,
            at: None,
            dry_run: req.dry_run,
            counts: (&would).into(),
            discarded: PlanView::new(&p.unpromoted),
            incoming: PlanView::new(&p.incoming),
            kept_excluded: p.kept_excluded.clone(),
            dropped_excluded: p.dropped_excluded.clone(),
            next_baseline: None,
            checks: p.checks.clone(),
            hooks: Vec::new(),
        }
    }

    /// The planned view with what the commit did.
    pub fn done(mut self, outcome: &RefreshOutcome) -> RefreshView {
        self.refresh = outcome.refresh.as_ref().map(|p| p.id.clone());
        self.at = outcome.refresh.as_ref().map(|p| p.at.clone());
        self.counts = outcome.counts();
        self.next_baseline = outcome.next_baseline.as_ref().map(|(id, recorded)| NextBaselineView {
            baseline: id.clone(),
            recorded: *recorded,
        });
        self.hooks = outcome.hooks.clone();
        self
    }
}
