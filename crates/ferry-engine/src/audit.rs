//! The audit trail in each target (`_ferry_audit`): every write action and
//! every refusal, who, when, from where to where, and the result. Refusals
//! are recorded in their own transaction after the rollback, so "nothing
//! written" still holds for the data, the journal and the sync base.

use std::sync::Arc;

use ferry_core::access::{self, Right};
use ferry_db::Store;

use crate::error::{Error, Hint, Result};
use crate::journal;
use crate::paging::{self, Page, PageRequest};
use crate::project::Project;

pub use ferry_db::records::AuditEntry;

/// A new audit entry of `action` by `user` now, `ok` until
/// [`Outcome::outcome`] says otherwise.
pub fn entry(user: &str, action: &str, from: Option<&str>, to: &str) -> AuditEntry {
    AuditEntry {
        id: journal::new_id(),
        at: journal::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        user: user.to_string(),
        action: action.to_string(),
        from: from.map(str::to_string),
        to: to.to_string(),
        result: "ok".into(),
        detail: String::new(),
        ref_id: None,
    }
}

/// An audit entry completed by an action's outcome.
pub trait Outcome {
    /// The entry for an action's outcome: `ok` with its reference, or the
    /// kind of refusal with the error's text.
    fn outcome<T>(self, result: &Result<T>, ref_id: impl FnOnce(&T) -> Option<String>) -> AuditEntry;
}

impl Outcome for AuditEntry {
    fn outcome<T>(mut self, result: &Result<T>, ref_id: impl FnOnce(&T) -> Option<String>) -> AuditEntry {
        match result {
            Ok(v) => {
                self.ref_id = ref_id(v);
                self.result = "ok".into();
            }
            Err(e) => {
                self.result = match e.inner() {
                    Error::Denied(_) => "denied",
                    Error::Blocked(_) => "blocked",
                    Error::Usage(_) | Error::Selection { .. } | Error::Config(_) => "refused",
                    // `inner` is never `Hinted`.
                    Error::Db(_) | Error::Data(_) | Error::Hinted(..) => "failed",
                }
                .into();
                self.detail = e.to_string();
            }
        }
        self
    }
}

/// Records an entry in its own transaction.
pub async fn record(store: &dyn Store, entry: &AuditEntry) -> Result<()> {
    let mut txn = store.begin().await?;
    ferry_db::records::write_audit(txn.as_mut(), entry).await?;
    txn.commit().await?;
    Ok(())
}

/// Every audit entry of `store`, newest first.
pub async fn list(store: &dyn Store) -> Result<Vec<AuditEntry>> {
    let records = store.records();
    let mut out = ferry_db::records::all(1000, |page| {
        let records = &records;
        async move { records.audit(&page).await }
    })
    .await?;
    out.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    Ok(out)
}

/// The newest `limit` audit entries of `store` (by id; newest first by
/// time, then id).
pub async fn newest(store: &dyn Store, limit: usize) -> Result<Vec<AuditEntry>> {
    let mut out = store.records().audit(&PageRequest::first(limit)).await?.items;
    out.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    Ok(out)
}

/// Which audit entries a listing shows: `None` lets every value through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only the entries of this acting user.
    pub user: Option<String>,
    /// Only the entries of this action (`promote`, `approve`, `hook`, ...).
    pub action: Option<String>,
}

impl AuditFilter {
    /// Whether `entry` is shown.
    pub fn keeps(&self, entry: &AuditEntry) -> bool {
        self.user.as_ref().is_none_or(|u| *u == entry.user) && self.action.as_ref().is_none_or(|a| *a == entry.action)
    }
}

/// One page of `store`'s audit trail, newest first (by id), with only the
/// entries `filter` keeps: full (`req.limit` entries) unless the trail
/// ends, however many entries the filter drops, and `next` goes on after
/// the last entry shown. A cursor no page gave is a usage error.
pub async fn page(store: &dyn Store, filter: &AuditFilter, req: PageRequest) -> Result<Page<AuditEntry>> {
    let records = store.records();
    let records = &records;
    paging::filtered(
        &req,
        |e| filter.keeps(e),
        |e| &e.id,
        |raw| async move { Ok(records.audit(&raw).await?) },
    )
    .await
}

/// [`page`] across `stores` (the environments of an "every environment"
/// listing), merged newest first; the cursor holds where the listing is in
/// each environment. A store left out of one call (unreachable then)
/// keeps its place in the cursor.
pub async fn page_all(stores: &[Arc<dyn Store>], filter: &AuditFilter, req: PageRequest) -> Result<Page<AuditEntry>> {
    paging::merged(
        stores,
        &req,
        |e: &AuditEntry| &e.id,
        |store, req| async move { page(&*store, filter, req).await },
    )
    .await
}

/// Refuses (exit 4, nothing written) when `user` does not hold `right` in
/// `to`; the refusal is audited in `to`.
pub async fn require(
    project: &Project,
    store: &dyn Store,
    user: &str,
    right: Right,
    action: &str,
    from: Option<&str>,
) -> Result<()> {
    let to = store.env().to_string();
    if let Err(why) = access::check(project.config.access.as_ref(), user, right, &to) {
        let unlisted = project
            .config
            .access
            .as_ref()
            .is_some_and(|a| !a.users.contains_key(user));
        let mut err = Error::Denied(format!("{why}. Nothing was written"));
        if unlisted {
            err = err.hint(Hint::ListedUser);
        }
        let entry = entry(user, action, from, &to).outcome::<()>(&Err(Error::Denied(why)), |_| None);
        // A target that cannot take the audit row still refuses; the lost
        // audit row is said, not hidden.
        if let Err(e) = record(store, &entry).await {
            tracing::warn!("the refusal of `{user}` in `{to}` could not be audited: {e}");
        }
        return Err(err);
    }
    Ok(())
}
