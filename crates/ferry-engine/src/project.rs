//! A loaded `ferry.toml` and the environments it names: resolving URLs
//! (never printing a password) and opening stores.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_core::config::{self, redact_url, Config, UrlKind, UrlSource};
use ferry_db::records::BranchEnvRecord;
use ferry_db::registry::{self, Opening};
use ferry_db::Store;

use crate::error::{Error, Hint, Result};

/// A configuration and where it came from.
#[derive(Clone, Debug)]
pub struct Project {
    pub config: Config,
    pub path: PathBuf,
    /// The per-branch environments added to `config` ([`Project::with_branches`]).
    branches: std::collections::BTreeMap<String, BranchEnvRecord>,
}

impl Project {
    /// Reads and validates the configuration file.
    pub fn load(path: &Path) -> Result<Project> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!("cannot read the configuration {}: {e}", path.display())).hint(Hint::NoConfig)
        })?;
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        let config = config::parse_with(&text, &abs, Some(&registry::url_kinds()))?;
        Ok(Project::from_config(config, abs))
    }

    pub fn from_config(config: Config, path: PathBuf) -> Project {
        Project {
            config,
            path,
            branches: Default::default(),
        }
    }

    /// The record of `env` when it is a per-branch environment this
    /// project knows.
    pub fn branch(&self, env: &str) -> Option<&BranchEnvRecord> {
        self.branches.get(env)
    }

    /// The per-branch environments this project knows, by name.
    pub fn branches(&self) -> impl Iterator<Item = &BranchEnvRecord> {
        self.branches.values()
    }

    /// This project as the configuration file declares it: without the
    /// per-branch environments [`Project::with_branches`] added.
    pub fn configured(&self) -> Project {
        let mut out = self.clone();
        for name in self.branches.keys() {
            out.config.environments.remove(name);
        }
        out.branches.clear();
        out
    }

    /// The environment's URL, from the file or its variable.
    pub fn url(&self, env: &str) -> Result<String> {
        let e = self.env_config(env)?;
        match &e.url {
            UrlSource::Inline(u) => Ok(u.clone()),
            UrlSource::Variable(var) => std::env::var(var).map_err(|_| {
                Error::Usage(format!(
                    "environment `{env}`: the variable {var} is not set; export {var}=URL (for example sqlite://{env}.db), or write url = \"...\" under [environments.{env}]"
                ))
            }),
        }
    }

    pub fn env_config(&self, env: &str) -> Result<&config::EnvConfig> {
        self.config.environments.get(env).ok_or_else(|| {
            let known: Vec<&str> = self.config.environments.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "there is no environment `{env}` in {} (known: {})",
                self.path.display(),
                known.join(", ")
            ))
        })
    }

    /// This project with the per-branch environments `branches` added as
    /// environments outside the pipeline, each promoting only into its
    /// `promotes_to`, at the URL derived from its parent's (same server,
    /// same credentials). A name the configuration uses already is left as
    /// the configuration says.
    pub fn with_branches(&self, branches: &[BranchEnvRecord]) -> Result<Project> {
        let mut out = self.clone();
        for b in branches {
            if out.config.environments.contains_key(&b.name) {
                continue;
            }
            let url = self.branch_url(&b.from, &b.name)?;
            out.branches.insert(b.name.clone(), b.clone());
            out.config.environments.insert(
                b.name.clone(),
                config::EnvConfig {
                    name: b.name.clone(),
                    url: UrlSource::Inline(url),
                    review: false,
                    promotes_to: Some(b.promotes_to.clone()),
                    accepts_from: Vec::new(),
                    checks: Vec::new(),
                    hooks: Vec::new(),
                    line: None,
                },
            );
        }
        Ok(out)
    }

    /// The URL of the per-branch environment `name` cloned from `parent`.
    pub fn branch_url(&self, parent: &str, name: &str) -> Result<String> {
        let url = self.url(parent)?;
        registry::clone_url(&url, name).ok_or_else(|| {
            Error::Usage(format!(
                "environment `{parent}`: `{}` names no database a per-branch environment can be cloned beside",
                redact_url(&url)
            ))
        })
    }

    /// Opens the environment's store. A command opens each store once,
    /// through [`crate::registry::Envs`], so that the store whose writer
    /// lock it holds is the one it commits on (the commit checks the lock).
    pub async fn open(&self, env: &str) -> Result<Arc<dyn Store>> {
        let url = self.url(env)?;
        let opening = Opening {
            env,
            url: &url,
            base_dir: &self.config.base_dir,
        };
        match registry::open(opening).await {
            Some(store) => Ok(store?),
            None => Err(Error::Usage(format!(
                "environment `{env}`: `{}` is not a URL Ferry can open; use {}",
                redact_url(&url),
                UrlKind::examples(&registry::url_kinds())
            ))),
        }
    }
}
