//! `track`: installs the trace of deletes of the tables with
//! `track_deletes` in one environment ([`crate::traces`]).

use ferry_core::access::Right;

use super::Observer;
use crate::audit::{self, Outcome as _};
use crate::error::{Error, Result};
use crate::registry::Envs;
use crate::traces::{self, Installed};

/// Who installs the traces in which environment.
#[derive(Clone, Debug)]
pub struct TrackRequest {
    pub env: String,
    pub user: String,
    /// Wait for another writer; false: refuse.
    pub wait: bool,
}

/// Installs what is missing, under the environment's writer lock; needs
/// `promote` into it (a trigger changes its schema); audited. A table
/// without `track_deletes` is left alone.
pub async fn track(envs: &Envs, req: &TrackRequest, observer: &dyn Observer) -> Result<Vec<Installed>> {
    let store = envs.open(&req.env).await?;
    let mut tables = Vec::new();
    for (name, t) in &envs.project().config.tables {
        if !t.track_deletes {
            continue;
        }
        let key = match &t.key {
            Some(k) => k.clone(),
            None => store
                .table_schema(name)
                .await?
                .map(|s| s.primary_key)
                .unwrap_or_default(),
        };
        match key.as_slice() {
            [k] => tables.push((name.clone(), k.clone())),
            _ => {
                return Err(Error::Data(format!(
                    "environment `{}`, table `{name}`: `track_deletes` needs a key of one integer column; nothing was written",
                    req.env
                )))
            }
        }
    }
    if tables.is_empty() {
        return Err(Error::Usage(
            "no table declares `track_deletes = true` in ferry.toml; add it beside a table's `changed`".into(),
        ));
    }
    audit::require(envs.project(), &*store, &req.user, Right::Promote, "track", None).await?;
    let _lock = super::lock(&*store, req.wait, observer).await?;
    let done = traces::install(&*store, &tables).await;
    let entry = audit::entry(&req.user, "track", None, &req.env).outcome(&done, |_| None);
    let _ = audit::record(&*store, &entry).await;
    done
}
