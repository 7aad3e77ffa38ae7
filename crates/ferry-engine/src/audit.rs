//! The audit trail in each target (`_ferry_audit`): every write action and
//! every refusal, who, when, from where to where, and the result. Refusals
//! are recorded in their own transaction after the rollback, so "nothing
//! written" still holds for the data, the journal and the sync base.

use ferry_core::access::{self, Right};
use ferry_core::Value;
use ferry_db::{meta, ScanRequest, Store};

use crate::error::{Error, Result};
use crate::journal;
use crate::project::Project;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub user: String,
    /// promote, revert, baseline, approve, reject, review
    pub action: String,
    pub from: Option<String>,
    pub to: String,
    /// ok, refused, blocked, denied, failed
    pub result: String,
    pub detail: String,
    /// The promotion or review the action made or touched.
    pub ref_id: Option<String>,
}

impl AuditEntry {
    pub fn new(user: &str, action: &str, from: Option<&str>, to: &str) -> AuditEntry {
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

    /// The entry for an action's outcome: `ok` with its reference, or the
    /// kind of refusal with the error's text.
    pub fn outcome<T>(mut self, result: &Result<T>, ref_id: impl FnOnce(&T) -> Option<String>) -> AuditEntry {
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

    fn row(&self) -> Vec<Value> {
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
        vec![
            Value::Text(self.id.clone()),
            Value::Text(self.at.clone()),
            Value::Text(self.user.clone()),
            Value::Text(self.action.clone()),
            opt(&self.from),
            Value::Text(self.to.clone()),
            Value::Text(self.result.clone()),
            Value::Text(self.detail.clone()),
            opt(&self.ref_id),
        ]
    }

    /// A row of [`meta::AUDIT_COLUMNS`] read from `env`.
    fn from_row(env: &str, r: &[Value]) -> Result<AuditEntry> {
        let rec = journal::Record::new(env, meta::AUDIT, &meta::AUDIT_COLUMNS, r, &[0]);
        Ok(AuditEntry {
            id: rec.text(0)?,
            at: rec.text(1)?,
            user: rec.text(2)?,
            action: rec.text(3)?,
            from: rec.opt_text(4)?,
            to: rec.text(5)?,
            result: rec.text(6)?,
            // Written as text, possibly empty; NULL reads as no detail.
            detail: rec.opt_text(7)?.unwrap_or_default(),
            ref_id: rec.opt_text(8)?,
        })
    }
}

/// Records an entry in its own transaction.
pub async fn record(store: &dyn Store, entry: &AuditEntry) -> Result<()> {
    let mut txn = store.begin().await?;
    txn.insert(meta::AUDIT, &meta::columns(&meta::AUDIT_COLUMNS), &[entry.row()])
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Every audit entry of `store`, newest first.
pub async fn list(store: &dyn Store) -> Result<Vec<AuditEntry>> {
    if !store.has_meta().await? {
        return Ok(Vec::new());
    }
    // Ferry's tables from before the audit existed: nothing audited yet.
    if store.table_schema(meta::AUDIT).await?.is_none() {
        return Ok(Vec::new());
    }
    let mut rx = store
        .scan(ScanRequest {
            table: meta::AUDIT.into(),
            columns: meta::columns(&meta::AUDIT_COLUMNS),
            order_by: vec!["id".into()],
            filter: None,
            flag: None,
        })
        .await?;
    let mut out = Vec::new();
    while let Some(batch) = rx.recv().await {
        for r in batch? {
            out.push(AuditEntry::from_row(store.env(), &r)?);
        }
    }
    out.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    Ok(out)
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
        let err = Error::Denied(format!("{why}. Nothing was written"));
        let entry = AuditEntry::new(user, action, from, &to).outcome::<()>(&Err(Error::Denied(why)), |_| None);
        // Best effort: a target that cannot take the audit row still refuses.
        let _ = record(store, &entry).await;
        return Err(err);
    }
    Ok(())
}
