//! Per-branch environments: clones of an environment's managed tables,
//! named from a branch, recorded in the `_ferry_branches` registry of the
//! environment they were cloned from, and destroyed some time after the
//! branch is merged.
//!
//! - [`create`]: clone, record, and record the clone point as the sync
//!   base towards the parent (and towards `promotes_to` when that is
//!   another environment), so the first promotion is three-way;
//! - [`list`]: every registry, with the changes waiting to be promoted;
//! - [`merged`]: the merge time and when the environment expires;
//! - [`prepare_destroy`] -> [`PreparedDestroy::commit`], and [`expired`]
//!   for `gc`: what would be lost, then the database and the record gone.
//!
//! A branch environment is known to [`Envs`] once discovered
//! ([`Envs::discover`]); its route is its `promotes_to` only.

use std::sync::Arc;

use ferry_core::access::Right;
use ferry_core::branch;
use ferry_core::plan::Counts;
use ferry_core::selection::Selection;
use ferry_db::records;
pub use ferry_db::records::BranchEnvRecord;
use ferry_db::Store;

use super::Observer;
use crate::error::{Error, Result};
use crate::registry::Envs;
use crate::{audit, baseline, journal, planner};

/// `env create`: clone `from` for `branch`.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    /// The full branch name; the environment's name is made from it.
    pub branch: String,
    /// A configured environment to clone.
    pub from: String,
    /// Where the clone may promote (`None`: `from`).
    pub promotes_to: Option<String>,
    pub user: String,
}

/// A branch environment made.
#[derive(Clone, Debug)]
pub struct Created {
    pub record: BranchEnvRecord,
    /// The tables cloned, parents first.
    pub tables: Vec<String>,
    /// For each environment the clone's rows were recorded as in sync
    /// with: its name and how many rows.
    pub in_sync: Vec<(String, u64)>,
}

/// One branch environment of a listing, with the changes waiting to be
/// promoted into its `promotes_to` (`Err`: why they could not be read).
#[derive(Debug)]
pub struct Listed {
    pub record: BranchEnvRecord,
    pub pending: std::result::Result<Counts, Error>,
}

/// A branch environment about to be destroyed: what has not been
/// promoted would be lost. Dropping it destroys nothing.
pub struct PreparedDestroy<'a> {
    envs: &'a Envs,
    pub record: BranchEnvRecord,
    /// The changes not promoted into `promotes_to` yet (`Err`: why they
    /// could not be read, as when the database is gone already).
    pub pending: std::result::Result<Counts, Error>,
}

/// The managed tables in an order where a table comes after those it
/// references and its parent (a cycle keeps the configuration's order).
pub fn clone_order(project: &crate::project::Project) -> Vec<String> {
    let tables = &project.config.tables;
    let mut out: Vec<String> = Vec::new();
    let mut rest: Vec<&String> = tables.keys().collect();
    while !rest.is_empty() {
        let ready: Vec<&String> = rest
            .iter()
            .copied()
            .filter(|t| {
                let c = &tables[*t];
                c.references
                    .values()
                    .chain(c.parent.iter().map(|(_, p)| p))
                    .all(|r| r == *t || out.contains(r) || !tables.contains_key(r))
            })
            .collect();
        let take = if ready.is_empty() { vec![rest[0]] } else { ready };
        for t in take {
            out.push(t.clone());
            rest.retain(|r| *r != t);
        }
    }
    out
}

/// Refuses, before anything is made, an environment whose store makes no
/// per-branch clones (a `dir:` folder).
fn clonable(store: &dyn Store, env: &str) -> Result<()> {
    if store.capabilities().branch_clones {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "environment `{env}` is a {} environment: per-branch environments are cloned from SQLite, PostgreSQL, MySQL and MongoDB environments only",
        store.engine()
    )))
}

/// Clones `req.from` into a new branch environment, records it in
/// `from`'s registry and records the rows as in sync between the clone and
/// `from` (and `promotes_to`). Refuses a branch that has an environment
/// already, and a `from` or `promotes_to` the configuration does not
/// declare.
pub async fn create(envs: &Envs, req: CreateRequest, observer: &dyn Observer) -> Result<Created> {
    let project = envs.project();
    project.env_config(&req.from)?;
    if project.branch(&req.from).is_some() {
        return Err(Error::Usage(format!(
            "`{}` is a per-branch environment itself: clone an environment of the configuration",
            req.from
        )));
    }
    let promotes_to = req.promotes_to.clone().unwrap_or_else(|| req.from.clone());
    project.env_config(&promotes_to)?;
    let parent = envs.open(&req.from).await?;
    // `[access]` envs: who may clone the parent (refusals audited there).
    audit::require(project, &*parent, &req.user, Right::Envs, "env-create", None).await?;
    let existing = parent.records().branches().await?;
    if let Some(b) = existing.iter().find(|b| b.branch == req.branch) {
        return Err(Error::Blocked(format!(
            "branch `{}` has an environment already: `{}`, cloned from `{}` at {}",
            req.branch, b.name, b.from, b.created_at
        )));
    }
    let name = branch::env_name(&req.branch, |n| {
        existing
            .iter()
            .find(|b| b.name == n)
            .map(|b| b.branch.clone())
            .or_else(|| {
                project
                    .config
                    .environments
                    .contains_key(n)
                    .then(|| format!("environment {n}"))
            })
    });
    let record = BranchEnvRecord {
        name: name.clone(),
        branch: req.branch.clone(),
        from: req.from.clone(),
        promotes_to: promotes_to.clone(),
        created_by: req.user.clone(),
        created_at: journal::stamp_text(journal::now()),
        merged_at: None,
        ttl_secs: None,
        expires_at: None,
    };
    // Checked before anything is made: the clone's URL can be derived.
    let with = Envs::new(project.with_branches(std::slice::from_ref(&record))?);
    let tables = clone_order(project);
    let lock = super::lock(&*parent, true, observer).await?;
    clonable(&*parent, &req.from)?;
    parent.create_branch_clone(&name, &tables).await?;
    let recorded = async {
        let mut txn = parent.begin().await?;
        records::write_branch(txn.as_mut(), &record).await?;
        txn.commit().await?;
        Ok::<(), Error>(())
    }
    .await;
    drop(lock);
    if let Err(e) = recorded {
        parent.drop_branch_clone(&name).await?;
        return Err(e);
    }
    let mut in_sync = Vec::new();
    for target in std::iter::once(&req.from).chain((promotes_to != req.from).then_some(&promotes_to)) {
        let pair = with.pair(&name, target, &Selection::default(), false).await?;
        let _target_lock = super::lock(&*pair.target, true, observer).await?;
        let done = baseline::baseline(&pair, &Selection::default(), &req.user, observer.progress()).await?;
        in_sync.push((target.clone(), done.recorded));
    }
    let mut entry = audit::entry(&req.user, "env-create", Some(&name), &req.from);
    entry.detail = format!("branch {}, promotes to {promotes_to}", req.branch);
    audit::record(&*parent, &entry).await?;
    Ok(Created {
        record,
        tables,
        in_sync,
    })
}

/// Every branch environment recorded in the configured environments
/// (the project's order, then by name), and the environments whose
/// registry could not be read, each with why.
pub async fn records(envs: &Envs) -> Result<(Vec<BranchEnvRecord>, Vec<(String, Error)>)> {
    let (stores, mut unreachable) = envs.each(None).await?;
    let mut out = Vec::new();
    for store in stores {
        if envs.project().branch(store.env()).is_some() {
            continue;
        }
        match store.records().branches().await {
            Ok(found) => out.extend(found),
            Err(e) => unreachable.push((store.env().to_string(), e.into())),
        }
    }
    Ok((out, unreachable))
}

/// The branch environment `name`, from the registries.
async fn find(envs: &Envs, name: &str) -> Result<BranchEnvRecord> {
    let (all, unreachable) = records(envs).await?;
    all.into_iter().find(|b| b.name == name).ok_or_else(|| {
        let mut m = format!("there is no per-branch environment `{name}`");
        if !unreachable.is_empty() {
            let list: Vec<String> = unreachable.iter().map(|(e, why)| format!("`{e}` ({why})")).collect();
            m.push_str(&format!(
                "; not searched, as they could not be opened: {}",
                list.join("; ")
            ));
        }
        Error::Usage(m)
    })
}

/// The changes of branch environment `b` not promoted into its
/// `promotes_to` yet.
pub async fn pending(envs: &Envs, b: &BranchEnvRecord) -> Result<Counts> {
    let with = Envs::new(envs.project().with_branches(std::slice::from_ref(b))?);
    let pair = with.pair(&b.name, &b.promotes_to, &Selection::default(), false).await?;
    let plan = planner::plan(&pair, &Selection::default(), crate::progress::Progress::hidden()).await?;
    Ok(plan.counts())
}

/// Every branch environment with its pending changes.
pub async fn list(envs: &Envs) -> Result<(Vec<Listed>, Vec<(String, Error)>)> {
    let (all, unreachable) = records(envs).await?;
    let mut out = Vec::new();
    for record in all {
        let pending = pending(envs, &record).await;
        out.push(Listed { record, pending });
    }
    Ok((out, unreachable))
}

/// Records that branch environment `name` was merged now: it expires
/// `ttl_secs` seconds later. Needs the `envs` right on its parent (it
/// schedules the destruction); a refusal is audited there.
pub async fn merged(envs: &Envs, name: &str, ttl_secs: i64, user: &str) -> Result<BranchEnvRecord> {
    let mut b = find(envs, name).await?;
    let parent = envs.open(&b.from).await?;
    audit::require(envs.project(), &*parent, user, Right::Envs, "env-merged", Some(&b.name)).await?;
    let now = journal::now();
    let expires = now + chrono::Duration::seconds(ttl_secs);
    b.merged_at = Some(journal::stamp_text(now));
    b.ttl_secs = Some(ttl_secs);
    b.expires_at = Some(journal::stamp_text(expires));
    let mut txn = parent.begin().await?;
    records::set_branch_merged(
        txn.as_mut(),
        &b.name,
        b.merged_at.as_deref().unwrap_or_default(),
        ttl_secs,
        b.expires_at.as_deref().unwrap_or_default(),
    )
    .await?;
    txn.commit().await?;
    let mut entry = audit::entry(user, "env-merged", Some(&b.name), &b.from);
    entry.detail = format!("expires at {}", b.expires_at.as_deref().unwrap_or_default());
    audit::record(&*parent, &entry).await?;
    Ok(b)
}

/// Whether `b` has expired at `now` (stamp text compares as time).
pub fn is_expired(b: &BranchEnvRecord, now: &str) -> bool {
    b.expires_at.as_deref().is_some_and(|e| e <= now)
}

/// Branch environment `name` and what destroying it would lose, once
/// `user` is known to hold the `envs` right on its parent (a refusal is
/// audited there, before anything is shown or asked).
pub async fn prepare_destroy<'a>(envs: &'a Envs, name: &str, user: &str) -> Result<PreparedDestroy<'a>> {
    let record = find(envs, name).await?;
    let parent = envs.open(&record.from).await?;
    audit::require(
        envs.project(),
        &*parent,
        user,
        Right::Envs,
        "env-destroy",
        Some(&record.name),
    )
    .await?;
    let pending = pending(envs, &record).await;
    Ok(PreparedDestroy { envs, record, pending })
}

/// The expired branch environments (at this moment), each ready to be
/// destroyed, and the environments whose registry could not be read.
pub async fn expired(envs: &Envs) -> Result<(Vec<PreparedDestroy<'_>>, Vec<(String, Error)>)> {
    let (all, unreachable) = records(envs).await?;
    let now = journal::stamp_text(journal::now());
    let mut out = Vec::new();
    for record in all.into_iter().filter(|b| is_expired(b, &now)) {
        let pending = pending(envs, &record).await;
        out.push(PreparedDestroy { envs, record, pending });
    }
    Ok((out, unreachable))
}

/// How many changes of `c` are not promoted (what a destroy loses):
/// inserts, updates, deletes and conflicts.
pub fn unpromoted(c: &Counts) -> u64 {
    c.insert + c.update + c.delete + c.conflict
}

impl PreparedDestroy<'_> {
    /// How many changes destroying it loses (`Err`: why they could not be
    /// read; a front end asks for an explicit "destroy anyway" then).
    pub fn loses(&self) -> std::result::Result<u64, &Error> {
        self.pending.as_ref().map(unpromoted)
    }

    /// Drops the database (SQLite: removes the file), then the sync bases
    /// recorded from it (in its parent and its `promotes_to`) and its record.
    /// A database already gone is no error, so a destroy that stopped
    /// half-way can be run again.
    pub async fn commit(self, user: &str) -> Result<BranchEnvRecord> {
        let b = self.record;
        let parent: Arc<dyn Store> = self.envs.open(&b.from).await?;
        audit::require(
            self.envs.project(),
            &*parent,
            user,
            Right::Envs,
            "env-destroy",
            Some(&b.name),
        )
        .await?;
        parent.drop_branch_clone(&b.name).await?;
        if b.promotes_to != b.from {
            let target = self.envs.open(&b.promotes_to).await?;
            let mut txn = target.begin().await?;
            journal::forget_source(txn.as_mut(), &b.name).await?;
            if target.as_sql().is_some() {
                crate::watermarks::forget_peer(txn.as_mut(), &b.name).await?;
            }
            txn.commit().await?;
        }
        let mut txn = parent.begin().await?;
        journal::forget_source(txn.as_mut(), &b.name).await?;
        if parent.as_sql().is_some() {
            crate::watermarks::forget_peer(txn.as_mut(), &b.name).await?;
        }
        records::delete_branch(txn.as_mut(), &b.name).await?;
        txn.commit().await?;
        let mut entry = audit::entry(user, "env-destroy", Some(&b.name), &b.from);
        entry.detail = format!("branch {}", b.branch);
        audit::record(&*parent, &entry).await?;
        Ok(b)
    }
}
