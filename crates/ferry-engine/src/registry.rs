//! The environment registry: one command's (or one server request's) view
//! of the project's environments. Each store is opened once, when first
//! asked for, and cached, so an approval opens its target once (not four
//! times) and a lookup across environments opens each at most once. This
//! is where per-branch environments will live.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_core::selection::Selection;
use ferry_db::Store;
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::pair::{self, Pair};
use crate::project::Project;

pub struct Envs {
    project: Arc<Project>,
    open: Mutex<BTreeMap<String, Arc<dyn Store>>>,
}

impl Envs {
    pub fn new(project: Project) -> Envs {
        Envs::shared(Arc::new(project))
    }

    pub fn shared(project: Arc<Project>) -> Envs {
        Envs {
            project,
            open: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The store of `env`, opened on first use.
    pub async fn open(&self, env: &str) -> Result<Arc<dyn Store>> {
        let mut open = self.open.lock().await;
        if let Some(s) = open.get(env) {
            return Ok(s.clone());
        }
        let store = self.project.open(env).await?;
        open.insert(env.to_string(), store.clone());
        Ok(store)
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
        for name in names {
            match self.open(&name).await {
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
        if route {
            pair::check_route(&self.project, from, to)?;
        }
        pair::check_selection(&self.project, selection)?;
        let source = self.open(from).await?;
        let target = self.open(to).await?;
        pair::resolve_opened(&self.project, from, to, source, target, selection).await
    }
}
