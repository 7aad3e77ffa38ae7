//! `revert`: a promotion undone from its journal.

use std::sync::Arc;

use ferry_db::{Store, WriterLock};

use super::Observer;
use crate::apply::Promotion;
use crate::audit::{self, Outcome as _};
use crate::error::{Error, Result};
use crate::journal::{self, JournalRow, PromotionRecord};
use crate::registry::Envs;

/// Who reverts which promotion; `force`: restore the before-images even
/// over rows changed since.
#[derive(Clone, Debug)]
pub struct RevertRequest {
    pub promotion: String,
    pub user: String,
    pub force: bool,
    /// Wait for another writer; false: refuse.
    pub wait: bool,
}

/// A revert ready to commit: the promotion, the rows it wrote (what the
/// revert restores) and the writer lock of its environment.
pub struct PreparedRevert<'a> {
    envs: &'a Envs,
    req: RevertRequest,
    store: Arc<dyn Store>,
    _lock: WriterLock,
    pub record: PromotionRecord,
    pub rows: Vec<JournalRow>,
}

impl PreparedRevert<'_> {
    /// Whether the rows are documents whose NULL is an absent field
    /// ([`ferry_db::Capabilities::open_fields`]), for showing them.
    pub fn open_fields(&self) -> bool {
        self.store.capabilities().open_fields
    }
}

/// Finds the promotion and its rows, and takes the writer lock of its
/// environment.
pub async fn prepare<'a>(envs: &'a Envs, req: RevertRequest, observer: &dyn Observer) -> Result<PreparedRevert<'a>> {
    let (store, record) = crate::revert::find_with(envs, &req.promotion).await?;
    let rows = journal::journal_rows(&*store, &req.promotion).await?;
    let lock = super::lock(&*store, req.wait, observer).await?;
    Ok(PreparedRevert {
        envs,
        req,
        store,
        _lock: lock,
        record,
        rows,
    })
}

impl PreparedRevert<'_> {
    /// Reverts, when the user may revert there; audited (permission
    /// refusals where they are decided).
    pub async fn commit(self) -> Result<Promotion> {
        let req = &self.req;
        let done = crate::revert::revert_with(self.envs, &req.promotion, &req.user, req.force).await;
        if !done.as_ref().is_err_and(Error::is_denied) {
            let entry = audit::entry(&req.user, "revert", self.record.from.as_deref(), &self.record.to)
                .outcome(&done, |p| Some(p.id.clone()));
            let _ = audit::record(&*self.store, &entry).await;
        }
        done
    }
}
