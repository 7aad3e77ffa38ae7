//! Reviews: promoting into an environment with `review = true` does not
//! overwrite it. New rows of tables with `draft` arrive at once as drafts
//! (with the draft values, together with the new rows they reference and
//! their new children, so foreign keys hold); every other change is held in
//! a review that an approver approves (applying the held changes and
//! publishing the drafts in one transaction) or rejects (removing the
//! drafts). A promotion touching rows of an open review is refused.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_core::access::{self, Right};
use ferry_core::canonical::key_text;
use ferry_core::plan::{Action, Plan, PlanEntry, Reason};
use ferry_core::value::{convert, Value};
use ferry_db::{meta, Store};

use crate::apply::{self, MetaWrite, PromoteOptions, Promotion};
use crate::audit::Outcome as _;
use crate::error::{Error, Hint, Result};
use crate::journal;
use crate::project::Project;
use crate::registry::Envs;

pub use ferry_db::records::{Decided, Review};

/// The write that replaces `review`'s record (its status and decisions).
fn update(review: &Review) -> MetaWrite {
    let row = ferry_db::records::review_row(review);
    MetaWrite::Update {
        table: meta::REVIEWS.into(),
        key: vec!["id".into()],
        set: meta::columns(&meta::REVIEW_COLUMNS[1..]),
        rows: vec![(vec![Value::Text(review.id.clone())], row[1..].to_vec())],
    }
}
/// Every review recorded in `store`, newest first (page by page).
pub async fn list(store: &dyn Store) -> Result<Vec<Review>> {
    let records = store.records();
    Ok(ferry_db::records::all(1000, |page| {
        let records = &records;
        async move { records.reviews(&page).await }
    })
    .await?)
}

/// The open reviews of `store`, newest first. Read by their status: the
/// closed reviews (most of them, in time) and their plans are not read.
pub async fn open(store: &dyn Store) -> Result<Vec<Review>> {
    Ok(store.records().reviews_with_status("open").await?)
}

/// Finds review `id` in any environment of the project.
pub async fn find(project: &Project, id: &str) -> Result<(std::sync::Arc<dyn Store>, Review)> {
    find_with(&Envs::new(project.clone()), id).await
}

/// [`find`] through the registry: each environment opened once.
pub async fn find_with(envs: &Envs, id: &str) -> Result<(std::sync::Arc<dyn Store>, Review)> {
    let found = envs.find_first(|store| async move { by_id(&*store, id).await }).await?;
    found.map_err(|not_searched| {
        Error::Usage(format!("no environment has a review `{id}`")).hint(Hint::ListReviews { not_searched })
    })
}

/// The review `id` of `store`, read by its key (not by reading every
/// review and its plan).
async fn by_id(store: &dyn Store, id: &str) -> Result<Option<Review>> {
    Ok(store.records().review(id).await?)
}

/// The pending entries of `review` whose target row changed since the
/// review was made (approving them is refused as stale): entry index -> the
/// target's current row, canonical, in the spec's column order (`None`:
/// the row is gone from the target).
pub async fn moved(store: &dyn Store, review: &Review) -> Result<BTreeMap<usize, Option<Vec<Value>>>> {
    let mut by_table: BTreeMap<&str, Vec<(usize, &PlanEntry)>> = BTreeMap::new();
    for (i, e) in review.pending() {
        // A new natural-key row (or a row keyed by one) has no target key
        // yet: nothing can move.
        let spec = review.plan.specs.get(&e.table);
        if spec.is_none_or(|s| apply::target_row_known(s, e)) {
            by_table.entry(e.table.as_str()).or_default().push((i, e));
        }
    }
    let mut out = BTreeMap::new();
    for (table, entries) in by_table {
        let Some(spec) = review.plan.specs.get(table) else {
            continue;
        };
        let keys = entries.iter().map(|(_, e)| e.target_key().to_vec()).collect();
        let mut current = HashMap::new();
        for raw in crate::planner::fetch_full(store, spec, keys).await? {
            let side = crate::planner::target_side(spec, &review.to, &apply::project(spec, &raw))?;
            current.insert(key_text(&side.row[..spec.key.len()]), side);
        }
        for (i, e) in entries {
            let now = current.get(&key_text(e.target_key()));
            if now.map(|s| s.hashes.row) != e.expect_target {
                out.insert(i, now.map(|s| s.row.clone()));
            }
        }
    }
    Ok(out)
}

/// Refuses a plan that touches rows of an open review in its target.
pub async fn check_open(target: &dyn Store, plan: &Plan) -> Result<()> {
    let open = open(target).await?;
    if open.is_empty() {
        return Ok(());
    }
    let mut held: HashMap<(String, String), String> = HashMap::new();
    for r in &open {
        for (_, e) in r.pending() {
            held.insert((e.table.clone(), key_text(&e.key)), r.id.clone());
        }
    }
    let touched: Vec<String> = plan
        .entries
        .iter()
        .filter(|e| e.is_change() || e.action == Action::Conflict)
        .filter_map(|e| {
            held.get(&(e.table.clone(), key_text(&e.key)))
                .map(|id| format!("{} (review {id})", e.label()))
        })
        .collect();
    if touched.is_empty() {
        return Ok(());
    }
    Err(Error::Blocked(format!(
        "{} -> {}: {} row(s) are waiting in an open review: {}{}. Nothing was written",
        plan.from,
        plan.to,
        touched.len(),
        touched.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
        if touched.len() > 10 {
            format!(" and {} more", touched.len() - 10)
        } else {
            String::new()
        }
    ))
    .hint(Hint::DecideReview))
}

/// The entries approved upstream: a row whose content equals what a review
/// approved in the source environment, by someone who holds `approve` in
/// the target, may be applied directly (`--approve-revisions`).
pub async fn approved_upstream(project: &Project, source: &dyn Store, plan: &Plan) -> Result<HashSet<usize>> {
    // (table, key) -> approved rows as (column, value) pairs, and who approved them.
    type Approved = Vec<(Vec<(String, Value)>, String)>;
    let mut approved: HashMap<(String, String), Approved> = HashMap::new();
    // Drafts removed by a rejection (their promotion reverted) were not approved.
    let reverted: HashSet<String> = journal::promotions(source)
        .await?
        .into_iter()
        .filter(|p| p.reverted_by.is_some())
        .map(|p| p.id)
        .collect();
    for r in list(source).await? {
        // The rows inserted with the drafts (what they reference, their
        // children) were approved with the review, unless a rejection
        // removed them.
        let settled = matches!(r.status.as_str(), "approved" | "partly-approved");
        let drafts = r.draft_promotion.as_ref().filter(|p| settled && !reverted.contains(*p));
        if let (Some(p), Some(by)) = (drafts, &r.decided_by) {
            for j in journal::journal_rows(source, p).await? {
                if let (Some(after), "insert") = (&j.after, j.action.as_str()) {
                    approved
                        .entry((j.table.clone(), key_text(&j.key_values())))
                        .or_default()
                        .push((after.clone(), by.clone()));
                }
            }
        }
        for (i, d) in &r.decided {
            if !d.approved {
                continue;
            }
            if let Some(e) = r.plan.entries.get(*i) {
                if let (Some(row), Some(columns)) = (&e.source, r.plan.columns.get(&e.table)) {
                    let named = columns.iter().cloned().zip(row.iter().cloned()).collect();
                    approved
                        .entry((e.table.clone(), key_text(&e.key)))
                        .or_default()
                        .push((named, d.by.clone()));
                }
            }
        }
    }
    let mut out = HashSet::new();
    for (i, e) in plan.entries.iter().enumerate() {
        let (Some(hash), Some(spec)) = (e.source_hash, plan.specs.get(&e.table)) else {
            continue;
        };
        let Some(candidates) = approved.get(&(e.table.clone(), key_text(&e.key))) else {
            continue;
        };
        let ok = candidates.iter().any(|(row, by)| {
            let canonical: Option<Vec<Value>> = spec
                .shown_columns()
                .iter()
                .map(|c| {
                    let v = row.iter().find(|(rc, _)| rc == c).map(|(_, v)| v)?;
                    convert(v, &spec.types[c]).ok()
                })
                .collect();
            canonical.is_some_and(|r| spec.hash(&r).row == hash)
                && access::check(project.config.access.as_ref(), by, Right::Approve, &plan.to).is_ok()
        });
        if ok {
            out.insert(i);
        }
    }
    Ok(out)
}

/// What a promotion into a review environment did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Submitted {
    /// Changes applied directly (approved upstream), if any.
    pub direct: Option<Promotion>,
    /// The drafts inserted at once, if any.
    pub drafts: Option<Promotion>,
    /// The review holding the rest, if anything is held.
    pub review: Option<String>,
}

/// Submits a plan into a review environment. A draft waiting to be
/// published is an `update` entry of its draft columns with reason
/// `pending-review`.
pub async fn submit(
    project: &Project,
    target: &dyn Store,
    plan: &Plan,
    opts: &PromoteOptions,
    direct: &HashSet<usize>,
) -> Result<Submitted> {
    let changes: Vec<(usize, PlanEntry)> = plan
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.is_change() || e.action == Action::Conflict)
        .map(|(i, e)| (i, e.clone()))
        .collect();
    let mut out = Submitted {
        direct: None,
        drafts: None,
        review: None,
    };
    // Already approved upstream: applied as a plain promotion. So are the
    // rows that write only the sync base (a row decided with `--take
    // target`, a natural-key row matched for the first time): they change
    // nothing in the target to review, and are decided as they are in a
    // direct environment.
    let direct_entries: Vec<PlanEntry> = changes
        .iter()
        .filter(|(i, _)| direct.contains(i))
        .map(|(_, e)| e.clone())
        .chain(
            plan.entries
                .iter()
                .filter(|e| e.action == Action::Skip && matches!(e.reason, Some(Reason::KeptTarget | Reason::Matched)))
                .cloned(),
        )
        .collect();
    if !direct_entries.is_empty() {
        let p = Plan {
            entries: direct_entries,
            // Part of the plan: it records no watermark (see watermarks.rs).
            marks: ferry_core::plan::InMemory::default(),
            ..plan.clone()
        };
        out.direct = apply::promote_plan(target, &p, opts).await?;
    }
    let rest: Vec<PlanEntry> = changes
        .into_iter()
        .filter(|(i, _)| !direct.contains(i))
        .map(|(_, e)| e)
        .collect();
    if rest.is_empty() {
        return Ok(out);
    }
    let draft_set = drafts_of(project, plan, &rest);
    let mut draft_entries = Vec::new();
    let mut review_entries = Vec::new();
    for e in &rest {
        if !draft_set.contains(&(e.table.clone(), key_text(&e.key))) {
            review_entries.push(e.clone());
            continue;
        }
        let values = &project.config.tables[&e.table].draft;
        let spec = &plan.specs[&e.table];
        let mut draft = e.clone();
        if !values.is_empty() {
            let columns = spec.columns();
            let mut row = e.source.clone().unwrap_or_default();
            for (col, v) in values {
                if let Some(i) = columns.iter().position(|c| c == col) {
                    row[i] = convert(v, &spec.types[col]).map_err(|err| {
                        Error::Usage(format!("table `{}`: draft value for column `{col}`: {err}", e.table))
                    })?;
                }
            }
            // Publishing later sets the draft columns to the source's values;
            // its fields say so (draft value -> source value) for the reviewer.
            let set: Vec<String> = values.keys().filter(|c| columns.contains(c)).cloned().collect();
            let fields = set
                .iter()
                .filter_map(|col| columns.iter().position(|c| c == col).map(|i| (col, i)))
                .map(|(col, i)| ferry_core::plan::FieldDiff {
                    column: col.clone(),
                    source: e.source.as_ref().map(|s| s[i].clone()),
                    target: Some(row[i].clone()),
                    base: None,
                })
                .collect();
            let publish = PlanEntry {
                action: Action::Update,
                reason: Some(Reason::PendingReview),
                set,
                expect_target: Some(spec.hash(&row).row),
                fields,
                deferred: Vec::new(),
                deferred_json: Vec::new(),
                ..e.clone()
            };
            review_entries.push(publish);
            draft.source = Some(row);
        }
        draft_entries.push(draft);
    }
    let now = journal::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let review = Review {
        id: journal::new_id(),
        from: plan.from.clone(),
        to: plan.to.clone(),
        user: opts.user.clone(),
        at: now,
        status: "open".into(),
        plan: Plan {
            entries: review_entries,
            // Part of the plan: it records no watermark (see watermarks.rs).
            marks: ferry_core::plan::InMemory::default(),
            ..plan.clone()
        },
        decided: BTreeMap::new(),
        draft_promotion: None,
        decided_by: None,
        decided_at: None,
    };
    if review.plan.entries.is_empty() && draft_entries.is_empty() {
        return Ok(out);
    }
    let insert = |r: &Review| MetaWrite::Insert {
        table: meta::REVIEWS.into(),
        columns: meta::columns(&meta::REVIEW_COLUMNS),
        rows: vec![ferry_db::records::review_row(r)],
    };
    if draft_entries.is_empty() {
        let mut txn = target.begin().await?;
        if let MetaWrite::Insert { table, columns, rows } = insert(&review) {
            txn.insert(&table, &columns, &rows).await?;
        }
        txn.commit().await?;
    } else {
        let drafts_plan = Plan {
            entries: draft_entries,
            // Part of the plan: it records no watermark (see watermarks.rs).
            marks: ferry_core::plan::InMemory::default(),
            ..plan.clone()
        };
        let review_ref = &review;
        out.drafts = apply::promote_plan_with(target, &drafts_plan, opts, "draft", |promotion| {
            let mut r = review_ref.clone();
            r.draft_promotion = Some(promotion.to_string());
            vec![insert(&r)]
        })
        .await?;
    }
    out.review = Some(review.id);
    Ok(out)
}

/// The new rows that arrive at once as drafts: inserts of tables with
/// `draft`, the new rows they reference (transitively) and their new
/// children, so foreign keys hold.
fn drafts_of(project: &Project, plan: &Plan, entries: &[PlanEntry]) -> HashSet<(String, String)> {
    let inserts: HashMap<(String, String), &PlanEntry> = entries
        .iter()
        .filter(|e| e.action == Action::Insert)
        .map(|e| ((e.table.clone(), key_text(&e.key)), e))
        .collect();
    let mut set: HashSet<(String, String)> = inserts
        .keys()
        .filter(|(t, _)| project.config.tables.get(t).is_some_and(|c| !c.draft.is_empty()))
        .cloned()
        .collect();
    loop {
        let before = set.len();
        for (id, e) in &inserts {
            let spec = &plan.specs[&e.table];
            let columns = spec.columns();
            let value_of = |col: &str| {
                columns
                    .iter()
                    .position(|c| c == col)
                    .and_then(|i| e.source.as_ref().map(|r| r[i].clone()))
            };
            if set.contains(id) {
                // The new rows a draft references come with it.
                for (col, table) in &spec.references {
                    if let Some(v) = value_of(col).filter(|v| !v.is_null()) {
                        let target = (table.clone(), key_text(std::slice::from_ref(&v)));
                        if inserts.contains_key(&target) {
                            set.insert(target);
                        }
                    }
                }
            } else if let Some((col, parent)) = &spec.parent {
                // A new child of a draft comes with it.
                if let Some(v) = value_of(col) {
                    if set.contains(&(parent.clone(), key_text(std::slice::from_ref(&v)))) {
                        set.insert(id.clone());
                    }
                }
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Parses `--only T:KEY` against the review's plan: the indices chosen.
pub(crate) fn chosen(review: &Review, only: &[(String, Vec<String>)]) -> Result<Vec<usize>> {
    let pending: Vec<usize> = review.pending().map(|(i, _)| i).collect();
    if only.is_empty() {
        return Ok(pending);
    }
    let mut out = Vec::new();
    for (table, parts) in only {
        let spec =
            review.plan.specs.get(table).ok_or_else(|| {
                Error::Usage(format!("review {}: `{table}` is not a table of this review", review.id))
            })?;
        let key = crate::planner::parse_key(spec, parts)?;
        let found: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|i| review.plan.entries[*i].table == *table && review.plan.entries[*i].key == key)
            .collect();
        if found.is_empty() {
            return Err(Error::Usage(format!(
                "review {}: {table}:{} is not waiting in this review",
                review.id,
                parts.join(",")
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Approves review `id` (all of it, or the `only` rows): applies the held
/// changes and publishes the drafts in one transaction, journalled and
/// revertible like any promotion. A review whose target rows changed since
/// it was made refuses (exit 3).
pub async fn approve(
    project: &Project,
    id: &str,
    user: &str,
    only: &[(String, Vec<String>)],
) -> Result<Option<Promotion>> {
    approve_with(&Envs::new(project.clone()), id, user, only).await
}

/// [`approve`] through the registry.
pub async fn approve_with(
    envs: &Envs,
    id: &str,
    user: &str,
    only: &[(String, Vec<String>)],
) -> Result<Option<Promotion>> {
    let project = envs.project();
    let (store, review) = find_with(envs, id).await?;
    crate::audit::require(project, &*store, user, Right::Approve, "approve", Some(&review.from)).await?;
    if review.status != "open" {
        return Err(Error::Blocked(format!("review {id} is {} already", review.status)));
    }
    if let Err(why) = access::check_not_own(project.config.access.as_ref(), user, &review.user) {
        let err = Error::Denied(format!("{why}. Nothing was written"));
        let entry = crate::audit::entry(user, "approve", Some(&review.from), &review.to)
            .outcome::<()>(&Err(Error::Denied(why)), |_| None);
        let _ = crate::audit::record(&*store, &entry).await;
        return Err(err);
    }
    let picked = chosen(&review, only)?;
    let plan = Plan {
        entries: picked.iter().map(|i| review.plan.entries[*i].clone()).collect(),
        ..review.plan.clone()
    };
    let opts = PromoteOptions {
        user: user.to_string(),
        force: false,
    };
    let now = journal::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let decide = |promotion: Option<String>| {
        let mut r = review.clone();
        for i in &picked {
            r.decided.insert(
                *i,
                Decided {
                    approved: true,
                    by: user.to_string(),
                    at: now.clone(),
                    promotion: promotion.clone(),
                },
            );
        }
        if r.pending().next().is_none() {
            r.status = settled_status(&r.decided).into();
            r.decided_by = Some(user.to_string());
            r.decided_at = Some(now.clone());
        }
        r
    };
    let done = apply::promote_plan_with(&*store, &plan, &opts, "approve", |promotion| {
        vec![update(&decide(Some(promotion.to_string())))]
    })
    .await
    .map_err(|e| match e {
        // A lost writer lock leaves the review as it was: approve again.
        Error::Blocked(m) if m.contains(ferry_db::LOCK_LOST) => Error::Blocked(format!("review {id}: {m}")),
        Error::Blocked(m) => Error::Blocked(format!(
            "review {id} is stale: {m}. Reject it and promote again to make a fresh review"
        )),
        other => other,
    })?;
    if done.is_none() {
        // Nothing to write (already equal): record the decision alone.
        let mut txn = store.begin().await?;
        if let MetaWrite::Update { table, key, set, rows } = update(&decide(None)) {
            txn.update(&table, &key, &set, &rows).await?;
        }
        txn.commit().await?;
    }
    Ok(done)
}

/// Rejects review `id`: removes the drafts (reverting the promotion that
/// inserted them, sync base included) and discards the held changes.
/// `only` rejects some held changes and leaves the rest open.
pub async fn reject(project: &Project, id: &str, user: &str, only: &[(String, Vec<String>)]) -> Result<Rejected> {
    reject_with(&Envs::new(project.clone()), id, user, only).await
}

/// [`reject`] through the registry.
pub async fn reject_with(envs: &Envs, id: &str, user: &str, only: &[(String, Vec<String>)]) -> Result<Rejected> {
    let project = envs.project();
    let (store, review) = find_with(envs, id).await?;
    crate::audit::require(project, &*store, user, Right::Approve, "reject", Some(&review.from)).await?;
    if review.status != "open" {
        return Err(Error::Blocked(format!("review {id} is {} already", review.status)));
    }
    let picked = chosen(&review, only)?;
    let whole = picked.len() == review.pending().count();
    // Drafts published by a partial approval are drafts no more: once one
    // is, the promotion that inserted them cannot be undone as a whole.
    let published = review.decided.iter().any(|(i, d)| {
        d.approved
            && review
                .plan
                .entries
                .get(*i)
                .is_some_and(|e| e.reason == Some(Reason::PendingReview))
    });
    let remove_drafts = whole && !published;
    if !remove_drafts && review.draft_promotion.is_some() {
        let drafts: Vec<String> = picked
            .iter()
            .map(|i| &review.plan.entries[*i])
            .filter(|e| e.reason == Some(Reason::PendingReview))
            .map(PlanEntry::label)
            .collect();
        if !drafts.is_empty() {
            return Err(Error::Usage(format!(
                "review {id}: {} are drafts already in `{}`; {}",
                drafts.join(", "),
                review.to,
                if published {
                    "other drafts of this review are published already, so they can only be approved"
                } else {
                    "reject the whole review to remove them, or approve them"
                }
            )));
        }
    }
    if remove_drafts {
        if let Some(p) = &review.draft_promotion {
            match crate::revert::revert_unchecked_with(envs, p, user, false).await {
                Ok(_) => {}
                Err(e) if matches!(e.inner(), Error::Blocked(m) if m.contains("already reverted")) => {}
                Err(e) if matches!(e.inner(), Error::Blocked(_)) => {
                    let err = Error::Blocked(format!("review {id}: its drafts cannot be removed: {}", e.inner()));
                    return Err(match e.hint_of() {
                        Some(h) => err.hint(h.clone()),
                        None => err,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
    let now = journal::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut r = review.clone();
    for i in &picked {
        r.decided.insert(
            *i,
            Decided {
                approved: false,
                by: user.to_string(),
                at: now.clone(),
                promotion: None,
            },
        );
    }
    if r.pending().next().is_none() {
        r.status = settled_status(&r.decided).into();
        r.decided_by = Some(user.to_string());
        r.decided_at = Some(now);
    }
    let mut txn = store.begin().await?;
    if let MetaWrite::Update { table, key, set, rows } = update(&r) {
        txn.update(&table, &key, &set, &rows).await?;
    }
    txn.commit().await?;
    Ok(Rejected {
        rejected: picked.len(),
        drafts_removed: remove_drafts && review.draft_promotion.is_some(),
        drafts_stay: !remove_drafts && review.draft_promotion.is_some(),
        pending: r.pending().count(),
        status: r.status,
    })
}

/// What a rejection did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rejected {
    /// How many held changes were rejected.
    pub rejected: usize,
    /// The drafts were removed (their promotion reverted).
    pub drafts_removed: bool,
    /// The review has drafts that stay in the target: published by an
    /// earlier approval, or kept for the changes still pending.
    pub drafts_stay: bool,
    /// Changes still waiting for a decision.
    pub pending: usize,
    /// The review's status afterwards.
    pub status: String,
}

/// The status of a review whose every change is decided: `approved` or
/// `rejected` when all went one way, `partly-approved` when some were
/// approved and some rejected.
pub fn settled_status(decided: &BTreeMap<usize, Decided>) -> &'static str {
    let approved = decided.values().filter(|d| d.approved).count();
    if approved == decided.len() {
        "approved"
    } else if approved == 0 {
        "rejected"
    } else {
        "partly-approved"
    }
}
