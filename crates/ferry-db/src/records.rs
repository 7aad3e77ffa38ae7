//! Ferry's own records (promotions, their journal rows, reviews, the audit
//! trail) behind one interface, [`Records`], with typed records instead of
//! rows decoded by position. Listings are paged: newest first, at most a
//! limit per page, and an opaque [`Cursor`] to the next page (the last id
//! seen: ids are ULIDs, which sort by time), so a front end pages through
//! thousands of promotions without reading the table whole.
//!
//! [`SqlRecords`] implements it once for the SQL stores, over [`Store`] and
//! the `_ferry_*` tables of [`crate::meta`]; a store that is not SQL gives
//! its own from [`Store::records`]. The writes ([`write_promotion`],
//! [`write_audit`], [`review_row`]) go through [`Txn`] inside the caller's
//! transaction, so data, journal and sync base still commit together.
//!
//! A record that does not hold what Ferry writes is an error of kind
//! [`DbErrorKind::Damaged`] naming the environment, the table, the
//! record's key and the column: never a record left out.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use ferry_core::canonical::{hex, key_text, unhex, FIELD_HASH_LEN};
use ferry_core::plan::{Counts, Plan, PlanEntry};
use ferry_core::rules::SyncBase;
use ferry_core::Value;

use crate::{meta, DbError, DbErrorKind, FetchRequest, Predicate, Row, ScanRequest, Store, Txn};

/// Where a listing goes on: opaque to the caller (it is the id of the last
/// record of the page before).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor as a front end sent it back (a query parameter).
    pub fn from_text(text: impl Into<String>) -> Cursor {
        Cursor(text.into())
    }
    /// The cursor as text to hand a front end.
    pub fn as_text(&self) -> &str {
        &self.0
    }
}

/// One page asked for: at most `limit` records, older than `after` (the
/// first page when `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// The first page of at most `limit` records.
    pub fn first(limit: usize) -> PageRequest {
        PageRequest { limit, after: None }
    }
}

/// One page of records, newest first, and the cursor to the next page
/// (`None` when this page is the last).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// One promotion, revert or baseline, as recorded in the target.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PromotionRecord {
    pub id: String,
    pub kind: String,
    pub from: Option<String>,
    pub to: String,
    pub user: String,
    pub at: String,
    pub selection: Vec<String>,
    pub counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverted_by: Option<String>,
}

/// One row a promotion wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalRow {
    pub seq: i64,
    pub table: String,
    /// Key columns and canonical values.
    pub key: Vec<(String, Value)>,
    pub action: String,
    /// The whole target row before (raw, every column), if it existed.
    pub before: Option<Vec<(String, Value)>>,
    /// The columns written and their values, if the row was written.
    pub after: Option<Vec<(String, Value)>>,
    /// The sync base before the promotion, if any.
    pub base_before: Option<SyncBase>,
    /// The row's key in the sync base (the source key) when it is not `key`
    /// (natural-key tables), as key text.
    pub source_key: Option<String>,
}

impl JournalRow {
    /// The key text the row's sync base is recorded under.
    pub fn base_key(&self) -> String {
        self.source_key.clone().unwrap_or_else(|| key_text(&self.key_values()))
    }
    pub fn key_values(&self) -> Vec<Value> {
        self.key.iter().map(|(_, v)| v.clone()).collect()
    }
    pub fn key_columns(&self) -> Vec<String> {
        self.key.iter().map(|(c, _)| c.clone()).collect()
    }
}

/// A per-branch environment, as the environment it was cloned from
/// records it in `_ferry_branches`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BranchEnvRecord {
    /// The environment's name (the branch name made safe).
    pub name: String,
    /// The full branch name.
    pub branch: String,
    /// The environment it was cloned from (the one recording it).
    pub from: String,
    /// The only environment it may promote into.
    pub promotes_to: String,
    pub created_by: String,
    pub created_at: String,
    pub merged_at: Option<String>,
    /// Seconds it lives after the merge.
    pub ttl_secs: Option<i64>,
    pub expires_at: Option<String>,
}

/// One audited action or refusal.
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

/// A review as recorded in its environment.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Review {
    pub id: String,
    pub from: String,
    pub to: String,
    /// Who submitted it.
    pub user: String,
    pub at: String,
    /// open, approved, rejected, or partly-approved (every change decided,
    /// some approved and some rejected).
    pub status: String,
    /// The changes under review: held changes, and `publish` updates for
    /// the drafts already inserted.
    pub plan: Plan,
    /// Entry indices decided so far, and how.
    #[serde(default)]
    pub decided: BTreeMap<usize, Decided>,
    /// The promotion that inserted the drafts.
    pub draft_promotion: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decided {
    pub approved: bool,
    pub by: String,
    pub at: String,
    /// The promotion that applied it (approvals).
    pub promotion: Option<String>,
}

impl Review {
    /// Entries not decided yet.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &PlanEntry)> {
        self.plan
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.decided.contains_key(i))
    }
}

/// Ferry's own records of one environment: paged listings (newest first)
/// and lookups by id. A record that does not hold what Ferry writes is a
/// [`DbErrorKind::Damaged`] error; a store where Ferry never wrote (or
/// whose tables predate a kind of record) has none of it.
#[async_trait]
pub trait Records: Send + Sync {
    /// Promotions, reverts and baselines, newest first.
    async fn promotions(&self, page: &PageRequest) -> Result<Page<PromotionRecord>, DbError>;
    /// The promotion `id`, if this environment recorded it.
    async fn promotion(&self, id: &str) -> Result<Option<PromotionRecord>, DbError>;
    /// The journal rows of promotion `id`, in the order they were written.
    async fn journal(&self, id: &str) -> Result<Vec<JournalRow>, DbError>;
    /// The promotion that applied the saved plan whose file hash is
    /// `plan_hash` and was not reverted since, if any.
    async fn applied_as(&self, plan_hash: &str) -> Result<Option<String>, DbError>;
    /// Reviews, newest first.
    async fn reviews(&self, page: &PageRequest) -> Result<Page<Review>, DbError>;
    /// The review `id`, if this environment holds it.
    async fn review(&self, id: &str) -> Result<Option<Review>, DbError>;
    /// The reviews whose status is `status`, newest first: every one of
    /// them (open reviews are few), and no other review or its plan read.
    async fn reviews_with_status(&self, status: &str) -> Result<Vec<Review>, DbError>;
    /// The audit trail, newest first.
    async fn audit(&self, page: &PageRequest) -> Result<Page<AuditEntry>, DbError>;
    /// The per-branch environments cloned from this one, by name (few:
    /// every one of them).
    async fn branches(&self) -> Result<Vec<BranchEnvRecord>, DbError>;
}

/// [`Records`] of a SQL store, over its `_ferry_*` tables.
pub struct SqlRecords<'a>(pub &'a dyn Store);

impl SqlRecords<'_> {
    /// Whether `table` exists: none before the first write, and the audit
    /// and reviews not in Ferry's tables from before they existed.
    async fn has(&self, table: &str) -> Result<bool, DbError> {
        Ok(self.0.has_meta().await?
            && (table == meta::PROMOTIONS || table == meta::JOURNAL || self.0.table_schema(table).await?.is_some()))
    }

    /// One page of `table` by its `id`, newest first, decoded by `decode`.
    async fn page<T>(
        &self,
        table: &str,
        columns: &[&str],
        page: &PageRequest,
        decode: impl Fn(&str, &[Value]) -> Result<T, DbError>,
        id_of: impl Fn(&T) -> &str,
    ) -> Result<Page<T>, DbError> {
        if page.limit == 0 || !self.has(table).await? {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let filter = page.after.as_ref().map(|c| Predicate::Range {
            columns: vec!["id".into()],
            from: Bound::Unbounded,
            to: Bound::Excluded(vec![Value::Text(c.0.clone())]),
        });
        let mut rx = self
            .0
            .scan(ScanRequest {
                table: table.into(),
                columns: meta::columns(columns),
                order_by: vec!["id".into()],
                filter,
                flag: None,
                descending: true,
                limit: Some(page.limit),
            })
            .await?;
        let mut items = Vec::new();
        while let Some(batch) = rx.recv().await {
            for r in batch? {
                items.push(decode(self.0.env(), &r)?);
            }
        }
        let next = (items.len() >= page.limit)
            .then(|| items.last().map(|t| Cursor(id_of(t).to_string())))
            .flatten();
        Ok(Page { items, next })
    }

    /// The rows of `table` whose `column` is `id`.
    async fn by(&self, table: &str, columns: &[&str], column: &str, id: &str) -> Result<Vec<Row>, DbError> {
        if !self.has(table).await? {
            return Ok(Vec::new());
        }
        self.0
            .fetch(FetchRequest {
                table: table.into(),
                columns: meta::columns(columns),
                match_columns: vec![column.into()],
                values: vec![vec![Value::Text(id.to_string())]],
                flag: None,
                filter: None,
                fixed: Vec::new(),
            })
            .await
    }
}

#[async_trait]
impl Records for SqlRecords<'_> {
    async fn promotions(&self, page: &PageRequest) -> Result<Page<PromotionRecord>, DbError> {
        self.page(
            meta::PROMOTIONS,
            &meta::PROMOTION_COLUMNS,
            page,
            promotion_from_row,
            |p| &p.id,
        )
        .await
    }

    async fn promotion(&self, id: &str) -> Result<Option<PromotionRecord>, DbError> {
        let rows = self.by(meta::PROMOTIONS, &meta::PROMOTION_COLUMNS, "id", id).await?;
        rows.first().map(|r| promotion_from_row(self.0.env(), r)).transpose()
    }

    async fn journal(&self, id: &str) -> Result<Vec<JournalRow>, DbError> {
        let rows = self
            .by(meta::JOURNAL, &meta::JOURNAL_COLUMNS, "promotion_id", id)
            .await?;
        let mut out = rows
            .iter()
            .map(|r| journal_from_row(self.0.env(), r))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|j| j.seq);
        Ok(out)
    }

    async fn applied_as(&self, plan_hash: &str) -> Result<Option<String>, DbError> {
        const COLUMNS: [&str; 2] = ["id", "reverted_by"];
        for r in self.by(meta::PROMOTIONS, &COLUMNS, "plan_hash", plan_hash).await? {
            let rec = Record::new(self.0.env(), meta::PROMOTIONS, &COLUMNS, &r, &[0]);
            let id = rec.text(0)?;
            if rec.opt_text(1)?.is_none() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    async fn reviews(&self, page: &PageRequest) -> Result<Page<Review>, DbError> {
        self.page(meta::REVIEWS, &meta::REVIEW_COLUMNS, page, review_from_row, |r| &r.id)
            .await
    }

    async fn review(&self, id: &str) -> Result<Option<Review>, DbError> {
        let rows = self.by(meta::REVIEWS, &meta::REVIEW_COLUMNS, "id", id).await?;
        rows.first().map(|r| review_from_row(self.0.env(), r)).transpose()
    }

    async fn reviews_with_status(&self, status: &str) -> Result<Vec<Review>, DbError> {
        let rows = self.by(meta::REVIEWS, &meta::REVIEW_COLUMNS, "status", status).await?;
        let mut out = rows
            .iter()
            .map(|r| review_from_row(self.0.env(), r))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    async fn audit(&self, page: &PageRequest) -> Result<Page<AuditEntry>, DbError> {
        self.page(meta::AUDIT, &meta::AUDIT_COLUMNS, page, audit_from_row, |a| &a.id)
            .await
    }

    async fn branches(&self) -> Result<Vec<BranchEnvRecord>, DbError> {
        if !self.has(meta::BRANCHES).await? {
            return Ok(Vec::new());
        }
        let mut rx = self
            .0
            .scan(ScanRequest {
                table: meta::BRANCHES.into(),
                columns: meta::columns(&meta::BRANCH_COLUMNS),
                order_by: vec!["name".into()],
                filter: None,
                flag: None,
                descending: false,
                limit: None,
            })
            .await?;
        let mut out = Vec::new();
        while let Some(batch) = rx.recv().await {
            for r in batch? {
                out.push(branch_from_row(self.0.env(), &r)?);
            }
        }
        Ok(out)
    }
}

/// Records a per-branch environment in an open transaction of the
/// environment it was cloned from.
pub async fn write_branch(txn: &mut dyn Txn, b: &BranchEnvRecord) -> Result<(), DbError> {
    let row = vec![
        Value::Text(b.name.clone()),
        Value::Text(b.branch.clone()),
        Value::Text(b.from.clone()),
        Value::Text(b.promotes_to.clone()),
        Value::Text(b.created_by.clone()),
        Value::Text(b.created_at.clone()),
        opt_text(b.merged_at.clone()),
        b.ttl_secs.map_or(Value::Null, Value::Int),
        opt_text(b.expires_at.clone()),
    ];
    txn.insert(meta::BRANCHES, &meta::columns(&meta::BRANCH_COLUMNS), &[row])
        .await
}

/// Records in an open transaction that branch environment `name` was
/// merged at `merged_at`, and lives `ttl_secs` more, until `expires_at`.
pub async fn set_branch_merged(
    txn: &mut dyn Txn,
    name: &str,
    merged_at: &str,
    ttl_secs: i64,
    expires_at: &str,
) -> Result<(), DbError> {
    txn.update(
        meta::BRANCHES,
        &["name".to_string()],
        &meta::columns(&["merged_at", "ttl_secs", "expires_at"]),
        &[(
            vec![Value::Text(name.to_string())],
            vec![
                Value::Text(merged_at.to_string()),
                Value::Int(ttl_secs),
                Value::Text(expires_at.to_string()),
            ],
        )],
    )
    .await
}

/// Removes branch environment `name` from the registry, in an open
/// transaction.
pub async fn delete_branch(txn: &mut dyn Txn, name: &str) -> Result<(), DbError> {
    txn.delete(
        meta::BRANCHES,
        &["name".to_string()],
        &[vec![Value::Text(name.to_string())]],
    )
    .await
}

/// Every record of a paged listing, page by page (for callers that need
/// them all, such as a lookup of every revert).
pub async fn all<T, F, Fut>(limit: usize, mut page: F) -> Result<Vec<T>, DbError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, DbError>>,
{
    let mut out = Vec::new();
    let mut req = PageRequest::first(limit.max(1));
    loop {
        let p = page(req.clone()).await?;
        out.extend(p.items);
        match p.next {
            Some(c) => req.after = Some(c),
            None => return Ok(out),
        }
    }
}

/// Writes a promotion record and its journal rows in an open transaction.
pub async fn write_promotion(
    txn: &mut dyn Txn,
    record: &PromotionRecord,
    rows: Vec<JournalRow>,
    plan_hash: Option<String>,
) -> Result<(), DbError> {
    txn.insert(
        meta::PROMOTIONS,
        &meta::columns(&meta::PROMOTION_COLUMNS),
        &[promotion_row(record, plan_hash)],
    )
    .await?;
    // The rows are consumed a thousand at a time: a promotion's before- and
    // after-images are turned into text once, never copied, and only one
    // chunk's text is held at once.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows
            .by_ref()
            .take(1000)
            .map(|j| {
                vec![
                    Value::Text(record.id.clone()),
                    Value::Int(j.seq),
                    Value::Text(j.table),
                    Value::Text(image(j.key)),
                    Value::Text(j.action),
                    opt_text(j.before.map(image)),
                    opt_text(j.after.map(image)),
                    opt_text(j.base_before.as_ref().map(encode_base)),
                    opt_text(j.source_key),
                ]
            })
            .collect();
        txn.insert(meta::JOURNAL, &meta::columns(&meta::JOURNAL_COLUMNS), &chunk)
            .await?;
    }
    Ok(())
}

/// Records in an open transaction that promotion `id` was reverted by
/// `by` (`None`: it is live again, as when its revert was reverted).
pub async fn set_reverted_by(txn: &mut dyn Txn, id: &str, by: Option<&str>) -> Result<(), DbError> {
    txn.update(
        meta::PROMOTIONS,
        &["id".to_string()],
        &["reverted_by".to_string()],
        &[(
            vec![Value::Text(id.to_string())],
            vec![opt_text(by.map(str::to_string))],
        )],
    )
    .await
}

/// Writes an audit entry in an open transaction.
pub async fn write_audit(txn: &mut dyn Txn, entry: &AuditEntry) -> Result<(), DbError> {
    txn.insert(meta::AUDIT, &meta::columns(&meta::AUDIT_COLUMNS), &[audit_row(entry)])
        .await
}

/// A promotion as a row of [`meta::PROMOTION_COLUMNS`].
pub fn promotion_row(p: &PromotionRecord, plan_hash: Option<String>) -> Row {
    vec![
        Value::Text(p.id.clone()),
        Value::Text(p.kind.clone()),
        opt_text(p.from.clone()),
        Value::Text(p.to.clone()),
        Value::Text(p.user.clone()),
        Value::Text(p.at.clone()),
        Value::Text(serde_json::to_string(&p.selection).unwrap_or_default()),
        Value::Text(serde_json::to_string(&p.counts).unwrap_or_default()),
        opt_text(plan_hash),
        opt_text(p.reverts.clone()),
        opt_text(p.reverted_by.clone()),
    ]
}

/// An audit entry as a row of [`meta::AUDIT_COLUMNS`].
pub fn audit_row(a: &AuditEntry) -> Row {
    vec![
        Value::Text(a.id.clone()),
        Value::Text(a.at.clone()),
        Value::Text(a.user.clone()),
        Value::Text(a.action.clone()),
        opt_text(a.from.clone()),
        Value::Text(a.to.clone()),
        Value::Text(a.result.clone()),
        Value::Text(a.detail.clone()),
        opt_text(a.ref_id.clone()),
    ]
}

/// A review as a row of [`meta::REVIEW_COLUMNS`] (the plan and the
/// decisions as one JSON object).
pub fn review_row(r: &Review) -> Row {
    let body = serde_json::json!({"plan": r.plan, "decided": r.decided});
    vec![
        Value::Text(r.id.clone()),
        Value::Text(r.from.clone()),
        Value::Text(r.to.clone()),
        Value::Text(r.user.clone()),
        Value::Text(r.at.clone()),
        Value::Text(r.status.clone()),
        Value::Text(body.to_string()),
        opt_text(r.draft_promotion.clone()),
        opt_text(r.decided_by.clone()),
        opt_text(r.decided_at.clone()),
    ]
}

fn promotion_from_row(env: &str, r: &[Value]) -> Result<PromotionRecord, DbError> {
    let rec = Record::new(env, meta::PROMOTIONS, &meta::PROMOTION_COLUMNS, r, &[0]);
    Ok(PromotionRecord {
        id: rec.text(0)?,
        kind: rec.text(1)?,
        from: rec.opt_text(2)?,
        to: rec.text(3)?,
        user: rec.text(4)?,
        at: rec.text(5)?,
        selection: rec.json(6, "a JSON list of selection terms")?,
        counts: rec.json(7, "a JSON object of counts")?,
        reverts: rec.opt_text(9)?,
        reverted_by: rec.opt_text(10)?,
    })
}

fn journal_from_row(env: &str, r: &[Value]) -> Result<JournalRow, DbError> {
    let rec = Record::new(env, meta::JOURNAL, &meta::JOURNAL_COLUMNS, r, &[0, 1]);
    let image_at = |i: usize| -> Result<Option<Vec<(String, Value)>>, DbError> {
        rec.opt_text(i)?
            .map(|s| parse_image(&s).ok_or_else(|| rec.damaged(i, "a JSON object of tagged values")))
            .transpose()
    };
    Ok(JournalRow {
        seq: rec.int(1)?,
        table: rec.text(2)?,
        key: image_at(3)?.ok_or_else(|| rec.damaged(3, "a JSON object of tagged values"))?,
        action: rec.text(4)?,
        before: image_at(5)?,
        after: image_at(6)?,
        base_before: rec
            .opt_text(7)?
            .map(|s| decode_base(&s).ok_or_else(|| rec.damaged(7, "`rowhash:fieldhashes[:targetkey]` in hex")))
            .transpose()?,
        source_key: rec.opt_text(8)?,
    })
}

fn review_from_row(env: &str, r: &[Value]) -> Result<Review, DbError> {
    let rec = Record::new(env, meta::REVIEWS, &meta::REVIEW_COLUMNS, r, &[0]);
    let body: serde_json::Value = rec.json(6, "a JSON object with the held plan")?;
    let plan = body
        .get("plan")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok())
        .ok_or_else(|| rec.damaged(6, "a JSON object whose `plan` is a plan"))?;
    let decided = match body.get("decided") {
        None | Some(serde_json::Value::Null) => Default::default(),
        Some(d) => serde_json::from_value(d.clone())
            .map_err(|_| rec.damaged(6, "a JSON object whose `decided` maps entries to decisions"))?,
    };
    Ok(Review {
        id: rec.text(0)?,
        from: rec.text(1)?,
        to: rec.text(2)?,
        user: rec.text(3)?,
        at: rec.text(4)?,
        status: rec.text(5)?,
        plan,
        decided,
        draft_promotion: rec.opt_text(7)?,
        decided_by: rec.opt_text(8)?,
        decided_at: rec.opt_text(9)?,
    })
}

fn audit_from_row(env: &str, r: &[Value]) -> Result<AuditEntry, DbError> {
    let rec = Record::new(env, meta::AUDIT, &meta::AUDIT_COLUMNS, r, &[0]);
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

fn branch_from_row(env: &str, r: &[Value]) -> Result<BranchEnvRecord, DbError> {
    let rec = Record::new(env, meta::BRANCHES, &meta::BRANCH_COLUMNS, r, &[0]);
    let ttl_secs = match r.get(7) {
        Some(Value::Null) => None,
        _ => Some(rec.int(7)?),
    };
    Ok(BranchEnvRecord {
        name: rec.text(0)?,
        branch: rec.text(1)?,
        from: rec.text(2)?,
        promotes_to: rec.text(3)?,
        created_by: rec.text(4)?,
        created_at: rec.text(5)?,
        merged_at: rec.opt_text(6)?,
        ttl_secs,
        expires_at: rec.opt_text(8)?,
    })
}

/// Encodes named values as a JSON object of tagged values.
///
/// Written straight into one buffer: building a `serde_json::Map` and
/// printing it through `Display` was over a quarter of the apply's own CPU
/// (every journalled row has two images). The text is the same:
/// the columns in their order, compact JSON.
pub fn image(pairs: impl IntoIterator<Item = (String, Value)>) -> String {
    let pairs: Vec<(String, Value)> = pairs.into_iter().collect();
    match image_direct(&pairs) {
        Some(text) => text,
        None => image_by_map(pairs),
    }
}

/// [`image`] written into one buffer; `None` for a column named twice
/// (a JSON map keeps its first place and its last value: such an image,
/// which Ferry never writes, goes through [`image_by_map`]).
fn image_direct(pairs: &[(String, Value)]) -> Option<String> {
    if pairs
        .iter()
        .enumerate()
        .any(|(i, (c, _))| pairs[..i].iter().any(|(d, _)| d == c))
    {
        return None;
    }
    let mut out = Vec::with_capacity(64 * pairs.len() + 2);
    out.push(b'{');
    for (i, (c, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a string or a JSON value into a Vec does not fail.
        serde_json::to_writer(&mut out, c).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, &v.to_tagged()).ok()?;
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// [`image`] through a `serde_json::Map`: the reference it must equal.
fn image_by_map(pairs: Vec<(String, Value)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs.into_iter().map(|(c, v)| (c, v.to_tagged())).collect();
    serde_json::Value::Object(map).to_string()
}

/// Decodes [`image`].
pub fn parse_image(s: &str) -> Option<Vec<(String, Value)>> {
    let j: serde_json::Value = serde_json::from_str(s).ok()?;
    j.as_object()?
        .iter()
        .map(|(c, v)| Some((c.clone(), Value::from_tagged(v)?)))
        .collect()
}

/// A sync base as text for the journal: `rowhash:fieldhashes[:targetkey]`.
pub fn encode_base(b: &SyncBase) -> String {
    let mut s = format!("{}:{}", hex(&b.row), hex(&b.packed_fields()));
    if let Some(t) = &b.target_key {
        s.push(':');
        s.push_str(t);
    }
    s
}

fn decode_base(s: &str) -> Option<SyncBase> {
    let mut parts = s.splitn(3, ':');
    let (h, f) = (parts.next()?, parts.next()?);
    let fields = unhex(f)?;
    if !fields.len().is_multiple_of(FIELD_HASH_LEN) {
        return None;
    }
    Some(SyncBase {
        row: unhex(h)?.try_into().ok()?,
        fields: SyncBase::unpack_fields(&fields),
        target_key: parts.next().map(str::to_string),
    })
}

fn opt_text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

/// One row of Ferry's own tables being read: a cell that does not hold
/// what Ferry writes there is an error naming the environment, the table,
/// the record's key and the column, never a record left out.
pub struct Record<'a> {
    env: &'a str,
    table: &'a str,
    columns: &'a [&'a str],
    row: &'a [Value],
    /// The record's key as messages name it (`id = 01J...`).
    key: String,
}

impl<'a> Record<'a> {
    /// A row of `columns` of `table` in `env`, named by the columns at `key`.
    pub fn new(env: &'a str, table: &'a str, columns: &'a [&'a str], row: &'a [Value], key: &[usize]) -> Self {
        let key = key
            .iter()
            .map(|&i| {
                let v = row.get(i).map_or_else(|| "?".to_string(), Value::display_text);
                format!("{} = {v}", columns.get(i).copied().unwrap_or("?"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Record {
            env,
            table,
            columns,
            row,
            key,
        }
    }

    /// The error for column `i`, which should hold `expected`: its message
    /// names the environment, the table, the record and the column.
    pub fn damaged(&self, i: usize, expected: &str) -> DbError {
        let column = self.columns.get(i).copied().unwrap_or("?");
        DbError::new(
            DbErrorKind::Damaged,
            self.env,
            format!(
                "environment `{}`, table `{}`, record {}: column `{column}` holds {}, where Ferry writes {expected}. \
                 The record was changed outside Ferry or is damaged, and Ferry will not guess what it said: \
                 nothing was written. Restore `{}` from a backup",
                self.env,
                self.table,
                self.key,
                found(self.row.get(i)),
                self.table,
            ),
        )
        .table(self.table)
    }

    pub fn text(&self, i: usize) -> Result<String, DbError> {
        self.opt_text(i)?.ok_or_else(|| self.damaged(i, "text"))
    }

    /// Text, or `None` for NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.row.get(i) {
            Some(Value::Text(s)) => Ok(Some(s.clone())),
            Some(Value::Null) => Ok(None),
            _ => Err(self.damaged(i, "text or NULL")),
        }
    }

    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, DbError> {
        match self.row.get(i) {
            Some(Value::Bytes(b)) => Ok(b.clone()),
            _ => Err(self.damaged(i, "bytes")),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.row.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            _ => Err(self.damaged(i, "an integer")),
        }
    }

    /// Column `i`'s text parsed as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, i: usize, expected: &str) -> Result<T, DbError> {
        serde_json::from_str(&self.text(i)?).map_err(|_| self.damaged(i, expected))
    }
}

/// What a cell holds, for a message.
fn found(v: Option<&Value>) -> String {
    let short = |s: String| match s.char_indices().nth(60) {
        Some((at, _)) => format!("{}... ({} more bytes)", &s[..at], s.len() - at),
        None => s,
    };
    match v {
        None => "nothing (the column was not read)".into(),
        Some(Value::Null) => "NULL".into(),
        Some(Value::Text(s)) => format!("the text {:?}", short(s.clone())),
        Some(Value::Bytes(b)) => format!("{} bytes (hex {})", b.len(), short(hex(b))),
        Some(other) => format!("the value {}", short(other.display_text())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<(String, Value)> {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        vec![
            ("id".into(), Value::Int(-42)),
            ("name".into(), Value::Text("é \"q\" \\ \n\t 🦀 NULL \u{1}".into())),
            ("gone".into(), Value::Null),
            ("ok".into(), Value::Bool(true)),
            ("ratio".into(), Value::Float(0.1)),
            ("price".into(), Value::Decimal("12.50".into())),
            ("icon".into(), Value::Bytes((0..=255).collect())),
            ("day".into(), Value::Date(at)),
            ("at".into(), Value::Timestamp(at.and_hms_micro_opt(1, 2, 3, 4).unwrap())),
            ("clé \"x\"".into(), Value::Text(String::new())),
        ]
    }

    #[test]
    fn image_is_the_text_of_a_json_map_and_parses_back() {
        let pairs = values();
        let text = image(pairs.clone());
        assert_eq!(text, image_by_map(pairs.clone()));
        assert_eq!(parse_image(&text), Some(pairs));
        assert_eq!(image(Vec::new()), "{}");
    }

    #[test]
    fn image_with_a_repeated_column_is_what_a_json_map_makes_of_it() {
        let pairs = vec![
            ("a".to_string(), Value::Int(1)),
            ("b".to_string(), Value::Int(2)),
            ("a".to_string(), Value::Int(3)),
        ];
        assert_eq!(image(pairs.clone()), image_by_map(pairs));
        assert_eq!(
            image(vec![("a".to_string(), Value::Int(1)), ("a".to_string(), Value::Int(3))]),
            r#"{"a":["int","3"]}"#
        );
    }

    #[test]
    fn base_text_round_trips() {
        let base = SyncBase {
            row: [0xab; 16],
            fields: SyncBase::unpack_fields(&[0x01; 24]),
            target_key: Some("[7]".into()),
        };
        let text = encode_base(&base);
        assert!(text.starts_with("abababababababababababababababab:010101"), "{text}");
        assert_eq!(decode_base(&text), Some(base));
    }
}
