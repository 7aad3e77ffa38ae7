//! The environments as the server knows them now: the configuration's and
//! every per-branch environment recorded in their `_ferry_branches`.
//!
//! A branch environment is made or destroyed by the command line (in CI)
//! while the server runs, so the server does not fix its list at start:
//! it asks the registries again every [`REDISCOVER_EVERY`] in the
//! background, at once when a request names an environment it does not
//! know or a branch environment ([`Discovered::knowing`]), and before the
//! listings of environments.
//! Each rediscovery makes a new [`Envs`] (the engine's
//! [`Envs::rediscover`]: same stores for the environments still known), and
//! handlers take the current one for the length of their request.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferry_engine::registry::Envs;
use ferry_engine::Error;

/// How often the background task asks the registries again.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(5);

/// The current [`Envs`], replaced by each rediscovery.
pub struct Discovered {
    current: RwLock<Arc<Envs>>,
    /// One rediscovery at a time: those asked meanwhile wait for it and
    /// read its result.
    running: tokio::sync::Mutex<()>,
}

impl Discovered {
    /// The environments `envs` knows, until the first rediscovery.
    pub fn new(envs: Envs) -> Discovered {
        Discovered {
            current: RwLock::new(Arc::new(envs)),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The environments known now; never waits for a database.
    pub fn now(&self) -> Arc<Envs> {
        // A panic while it was held cannot leave it half-written (one
        // assignment), so a poisoned lock is used as it is.
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks every configured environment's registry again and keeps the
    /// result. The environments whose registry could not be read come
    /// back, each with why (the branch environments known from them
    /// before are kept meanwhile).
    pub async fn rediscover(&self) -> Result<(Arc<Envs>, Vec<(String, Error)>), Error> {
        let _one = self.running.lock().await;
        let (envs, unreadable) = self.now().rediscover().await?;
        for (env, why) in &unreadable {
            tracing::warn!("the per-branch environments recorded in `{env}` could not be read: {why}");
        }
        let envs = Arc::new(envs);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = envs.clone();
        Ok((envs, unreadable))
    }

    /// The environments known now, asking the registries again first when
    /// one of `names` is not among them (a branch environment made since
    /// the last rediscovery) or is a branch environment (destroyed since,
    /// perhaps: a request never reads a clone that is gone). A name still
    /// unknown afterwards is left to the engine, whose error names the
    /// environments known.
    pub async fn knowing(&self, names: &[&str]) -> Result<Arc<Envs>, Error> {
        let envs = self.now();
        let branch = names.iter().any(|n| envs.project().branch(n).is_some());
        if envs.knows_all(names) && !branch {
            return Ok(envs);
        }
        Ok(self.rediscover().await?.0)
    }

    /// Rediscovers every [`REDISCOVER_EVERY`] until the server stops; a
    /// rediscovery that fails is logged and tried again next time.
    pub fn spawn_every(self: &Arc<Self>, every: Duration) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.rediscover().await {
                    tracing::warn!("the per-branch environments could not be discovered: {e}");
                }
            }
        });
    }
}
