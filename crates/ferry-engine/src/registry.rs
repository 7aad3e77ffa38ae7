//! The environment registry: one command's (or one server request's) view
//! of the project's environments. Each store is opened once, when first
//! asked for, and cached, so an approval opens its target once (not four
//! times) and a lookup across environments opens each at most once. It
//! knows the per-branch environments a command names ([`Envs::discover`]),
//! or all of them as the registries say now ([`Envs::rediscover`], for a
//! server).
//!
//! A long-lived front end (a server) shares one `Envs` behind an [`Arc`]
//! between its requests: it is `Send + Sync`, and a store is opened
//! outside the registry's lock, so an environment whose database does not
//! answer stalls only the requests that need it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_core::selection::Selection;
use ferry_db::{DbError, DbErrorKind, Store};

use crate::error::{Error, Result};
use crate::pair::{self, Pair};
use crate::project::Project;

/// The project's environments, each store opened on first use and kept.
pub struct Envs {
    project: Arc<Project>,
    /// Held only to look up or insert, never across an `await`.
    open: Mutex<BTreeMap<String, Arc<dyn Store>>>,
    /// How long opening a store may take (`None`: as long as the driver
    /// waits).
    open_timeout: Option<Duration>,
    /// Plans read every table whole (`--full`; see [`Pair::full_plans`]).
    full_plans: bool,
}

impl Envs {
    /// The environments of `project`, none opened yet.
    pub fn new(project: Project) -> Envs {
        Envs::shared(Arc::new(project))
    }

    /// [`Envs::new`] over a project shared with others.
    pub fn shared(project: Arc<Project>) -> Envs {
        Envs {
            project,
            open: Mutex::new(BTreeMap::new()),
            open_timeout: None,
            full_plans: false,
        }
    }

    /// `self`, whose pairs plan every table by reading it whole even where
    /// `changed` would let them read only the changed rows (`--full`).
    pub fn full_plans(mut self, on: bool) -> Envs {
        self.full_plans = on;
        self
    }

    /// `self`, giving up on opening a store after `limit`: a database that
    /// does not answer (a host that drops packets) is then an unreachable
    /// database error, instead of a request that waits as long as the
    /// operating system does. For a server; a command waits as the driver
    /// does.
    pub fn open_timeout(mut self, limit: Duration) -> Envs {
        self.open_timeout = Some(limit);
        self
    }

    /// The environments of `project`, knowing the per-branch environments
    /// among `names` that the configuration does not declare: each is
    /// looked up in the registries of the configured environments (opened
    /// one by one, in the project's order, until every name is found), and
    /// every branch environment of the parents read is known afterwards.
    /// A name found nowhere is refused, naming the environments searched
    /// and those that could not be opened; the stores opened meanwhile
    /// are kept.
    pub async fn discover(project: Project, names: &[&str]) -> Result<Envs> {
        let looked_for: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !project.config.environments.contains_key(*n))
            .collect();
        let envs = Envs::new(project);
        if looked_for.is_empty() {
            return Ok(envs);
        }
        let (mut found, mut read, mut unreachable) = (Vec::new(), Vec::new(), Vec::new());
        for parent in envs.project.config.environments_in_order() {
            let store = match envs.open(parent).await {
                Ok(s) => s,
                Err(e) => {
                    unreachable.push(format!("`{parent}` ({e})"));
                    continue;
                }
            };
            found.extend(store.records().branches().await?);
            read.push(format!("`{parent}`"));
            if looked_for.iter().all(|n| found.iter().any(|b| b.name == *n)) {
                break;
            }
        }
        if let Some(missing) = looked_for.iter().find(|n| !found.iter().any(|b| b.name == **n)) {
            let known: Vec<&str> = envs.project.config.environments.keys().map(String::as_str).collect();
            let mut message = format!(
                "there is no environment `{missing}` in {} (known: {}), nor a per-branch environment of that name in {}",
                envs.project.path.display(),
                known.join(", "),
                if read.is_empty() { "any environment".to_string() } else { read.join(", ") }
            );
            if !unreachable.is_empty() {
                message.push_str(&format!(
                    "; not searched, as they could not be opened: {}",
                    unreachable.join("; ")
                ));
            }
            return Err(Error::Usage(message));
        }
        let project = envs.project.with_branches(&found)?;
        let opened = std::mem::take(&mut *envs.opened());
        Ok(Envs {
            project: Arc::new(project),
            open: Mutex::new(opened),
            open_timeout: envs.open_timeout,
            full_plans: envs.full_plans,
        })
    }

    /// The environments as the registries say now, for a front end that
    /// lives longer than one command (a server): a new `Envs` over the
    /// configuration with every per-branch environment recorded in the
    /// configured environments' `_ferry_branches` (one made since is
    /// known, a destroyed one is gone), with the same open timeout and the
    /// stores already opened of the environments it still knows (a branch
    /// environment's only when its record is the same: one destroyed and
    /// made again is opened again). A configured environment whose
    /// registry cannot be read keeps the branch environments known from it
    /// before, and comes back with why, so the caller can say so.
    pub async fn rediscover(&self) -> Result<(Envs, Vec<(String, Error)>)> {
        let configured = self.project.configured();
        let parents: Vec<String> = configured
            .config
            .environments_in_order()
            .into_iter()
            .map(str::to_string)
            .collect();
        // All at once: a parent that does not answer costs its wait, not
        // the sum of them all.
        let read = futures_util::future::join_all(parents.iter().map(|p| async move {
            let store = self.open(p).await?;
            let branches = store.records().branches().await?;
            Ok::<_, Error>(branches)
        }))
        .await;
        let (mut found, mut unreadable) = (Vec::new(), Vec::new());
        for (parent, branches) in parents.into_iter().zip(read) {
            match branches {
                Ok(b) => found.extend(b),
                Err(e) => {
                    found.extend(self.project.branches().filter(|b| b.from == parent).cloned());
                    unreadable.push((parent, e));
                }
            }
        }
        let project = configured.with_branches(&found)?;
        let kept: BTreeMap<String, Arc<dyn Store>> = self
            .opened()
            .iter()
            .filter(|(name, _)| {
                project.config.environments.contains_key(*name)
                    && match (self.project.branch(name), project.branch(name)) {
                        (None, None) => true,
                        (Some(was), Some(is)) => was.from == is.from && was.created_at == is.created_at,
                        _ => false,
                    }
            })
            .map(|(name, store)| (name.clone(), store.clone()))
            .collect();
        Ok((
            Envs {
                project: Arc::new(project),
                open: Mutex::new(kept),
                open_timeout: self.open_timeout,
                full_plans: self.full_plans,
            },
            unreadable,
        ))
    }

    /// Whether every name of `names` is an environment known here (the
    /// configuration's or a discovered branch environment).
    pub fn knows_all(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.project.config.environments.contains_key(*n))
    }

    /// The loaded configuration.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The map of opened stores. A panic while it was held cannot leave it
    /// half-changed (each change is one insert), so a poisoned lock is
    /// used as it is.
    fn opened(&self) -> MutexGuard<'_, BTreeMap<String, Arc<dyn Store>>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store of `env`, opened on first use. The opening happens
    /// outside the registry's lock: a database that does not answer holds
    /// up only the callers that asked for it. When two callers open one
    /// environment at once, the first to finish is kept and the other's
    /// store is dropped, so every caller gets the same store.
    pub async fn open(&self, env: &str) -> Result<Arc<dyn Store>> {
        if let Some(s) = self.opened().get(env) {
            return Ok(s.clone());
        }
        let opening = self.project.open(env);
        let store = match self.open_timeout {
            None => opening.await?,
            Some(limit) => tokio::time::timeout(limit, opening).await.map_err(|_| {
                Error::from(DbError::new(
                    DbErrorKind::Unreachable,
                    env,
                    format!(
                        "the database did not answer within {} s; nothing was read from it or written to it",
                        limit.as_secs_f64()
                    ),
                ))
            })??,
        };
        let kept = self.opened().entry(env.to_string()).or_insert(store).clone();
        Ok(kept)
    }

    /// The stores a listing reads: `env`, or every environment of the
    /// project in order; with every environment, those that cannot be
    /// opened come back apart, each with why, so the front end can say
    /// that the listing is not complete.
    pub async fn each(&self, env: Option<&str>) -> Result<(Vec<Arc<dyn Store>>, Vec<(String, Error)>)> {
        if let Some(e) = env {
            self.project.env_config(e)?;
            return Ok((vec![self.open(e).await?], Vec::new()));
        }
        let (mut out, mut unreachable) = (Vec::new(), Vec::new());
        let names: Vec<String> = self
            .project
            .config
            .environments_in_order()
            .into_iter()
            .map(str::to_string)
            .collect();
        // All at once: environments that do not answer cost the listing
        // the longest of their waits, not the sum.
        let opened = futures_util::future::join_all(names.iter().map(|n| self.open(n))).await;
        for (name, store) in names.into_iter().zip(opened) {
            match store {
                Ok(s) => out.push(s),
                Err(err) => unreachable.push((name, err)),
            }
        }
        Ok((out, unreachable))
    }

    /// The first environment (the project's key order) where `lookup`
    /// finds something, with its store; or, when none does, the
    /// environments that could not be opened (`NAME (why)`), so the front
    /// end can say the search was not complete.
    pub async fn find_first<T, F, Fut>(
        &self,
        lookup: F,
    ) -> Result<std::result::Result<(Arc<dyn Store>, T), Vec<String>>>
    where
        F: Fn(Arc<dyn Store>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let mut unreachable = Vec::new();
        for env in self.names() {
            let store = match self.open(&env).await {
                Ok(s) => s,
                Err(e) => {
                    unreachable.push(format!("{env} ({e})"));
                    continue;
                }
            };
            if let Some(found) = lookup(store.clone()).await? {
                return Ok(Ok((store, found)));
            }
        }
        Ok(Err(unreachable))
    }

    /// Every environment's name (the project's key order): a lookup whose
    /// environment is not known opens them one by one, and stops where it
    /// finds what it looks for.
    pub fn names(&self) -> Vec<String> {
        self.project.config.environments.keys().cloned().collect()
    }

    /// Both environments of a promotion, with the tables `selection`
    /// touches resolved; `route`: refuse a route the configuration does
    /// not declare (baseline takes any pair).
    pub async fn pair(&self, from: &str, to: &str, selection: &Selection, route: bool) -> Result<Pair> {
        let stores = self.stores(from, to, selection, route).await?;
        self.resolve(from, to, stores, selection).await
    }

    /// The first half of [`Envs::pair`]: both stores opened, no schema
    /// read yet (a promotion takes the writer lock in between, so that
    /// what it reads of the target is read under the lock).
    pub async fn stores(
        &self,
        from: &str,
        to: &str,
        selection: &Selection,
        route: bool,
    ) -> Result<(Arc<dyn Store>, Arc<dyn Store>)> {
        if route {
            pair::check_route(&self.project, from, to)?;
        }
        pair::check_selection(&self.project, selection)?;
        let source = self.open(from).await?;
        let target = self.open(to).await?;
        Ok((source, target))
    }

    /// The second half of [`Envs::pair`]: the tables `selection` touches,
    /// resolved over the schemas read now.
    pub async fn resolve(
        &self,
        from: &str,
        to: &str,
        (source, target): (Arc<dyn Store>, Arc<dyn Store>),
        selection: &Selection,
    ) -> Result<Pair> {
        let mut pair = pair::resolve_opened(&self.project, from, to, source, target, selection).await?;
        pair.full_plans = self.full_plans;
        Ok(pair)
    }
}
