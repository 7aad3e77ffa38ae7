//! A loaded `ferry.toml` and the environments it names: resolving URLs
//! (never printing a password) and opening stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_core::config::{self, redact_url, Config, UrlKind, UrlSource};
use ferry_db::registry::{self, Opening};
use ferry_db::Store;

use crate::error::{Error, Result};

/// A configuration and where it came from.
#[derive(Clone, Debug)]
pub struct Project {
    pub config: Config,
    pub path: PathBuf,
    held: Held,
}

/// The stores whose writer lock the command holds, by environment
/// ([`Project::hold`]); shared by the clones of a project.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<BTreeMap<String, Arc<dyn Store>>>>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let envs: Vec<String> = self.0.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        f.debug_tuple("Held").field(&envs).finish()
    }
}

impl Project {
    /// Reads and validates the configuration file.
    pub fn load(path: &Path) -> Result<Project> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read the configuration {}: {e}; run `ferry init` to write a starter ferry.toml, or pass --config PATH",
                path.display()
            ))
        })?;
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        let config = config::parse_with(&text, &abs, Some(&registry::url_kinds()))?;
        Ok(Project {
            config,
            path: abs,
            held: Held::default(),
        })
    }

    pub fn from_config(config: Config, path: PathBuf) -> Project {
        Project {
            config,
            path,
            held: Held::default(),
        }
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

    /// Keeps `store`, on which the command took `env`'s writer lock: every
    /// later [`Project::open`] of `env` returns it. A server's writer lock
    /// lives on a connection of its store, and a transaction checks right
    /// before its commit that its own store's lock is still held (issue 15
    /// defect 2): an operation that opened `env` again (revert and review
    /// approval find their record first) would commit on a store that holds
    /// no lock, and not notice a lost one.
    pub fn hold(&self, env: &str, store: Arc<dyn Store>) {
        if let Ok(mut held) = self.held.0.lock() {
            held.insert(env.to_string(), store);
        }
    }

    /// Opens the environment's store (the one [`Project::hold`] keeps, if
    /// any).
    pub async fn open(&self, env: &str) -> Result<Arc<dyn Store>> {
        if let Some(store) = self.held.0.lock().ok().and_then(|h| h.get(env).cloned()) {
            return Ok(store);
        }
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
