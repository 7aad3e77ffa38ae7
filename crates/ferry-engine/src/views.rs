//! Typed views: what a front end shows, as serde-derived types. The command
//! line prints them with `--json` (docs/json.md is their contract) and
//! renders its text from them; a server sends the same shapes. Each view is
//! built once, here, from the engine's records: no front end assembles JSON
//! by hand.
//!
//! Field order is the order of the JSON a script sees: keep it.

use std::collections::BTreeMap;

use ferry_core::json_diff;
use ferry_core::plan::{Action, Counts, FieldDiff, Plan, PlanEntry, Reason};
use ferry_core::Value;
use serde::Serialize;
use serde_json::{Map, Value as J};

use crate::apply::Promotion;
use crate::baseline::Baseline;
use crate::check::{CheckReport, EnvStatus};
use crate::journal::{JournalRow, PromotionRecord};
use crate::reviews::{Rejected, Review};

pub use crate::audit::AuditEntry as AuditEntryView;

/// One page of an audit trail as a front end sends it (the server's
/// `GET /api/v1/audit`): the entries, newest first, in the shape of
/// `ferry audit --json`, and the cursor of the next page (`null` after
/// the last).
#[derive(Clone, Debug, Serialize)]
pub struct AuditPageView {
    pub entries: Vec<AuditEntryView>,
    pub next: Option<String>,
}

impl AuditPageView {
    /// The view of a page of [`crate::audit::page`] or [`crate::audit::page_all`].
    pub fn new(page: crate::paging::Page<AuditEntryView>) -> AuditPageView {
        AuditPageView {
            entries: page.items,
            next: page.next.map(|c| c.as_text().to_string()),
        }
    }
}

/// `{column: value}` in plain JSON (docs/json.md, "How values are written").
pub fn object(pairs: &[(String, Value)]) -> Map<String, J> {
    pairs.iter().map(|(c, v)| (c.clone(), v.to_plain_json())).collect()
}

/// A journal image as shown: without its carried columns (a document's
/// field order, which the journal keeps for a revert).
fn shown(pairs: &[(String, Value)]) -> Map<String, J> {
    pairs
        .iter()
        .filter(|(c, _)| !ferry_core::schema::is_carried(c))
        .map(|(c, v)| (c.clone(), v.to_plain_json()))
        .collect()
}

/// What a promotion, revert or approval wrote: `insert`, `update`,
/// `delete` (rows whose sync base alone was recorded are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WrittenCounts {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
}

impl From<&Counts> for WrittenCounts {
    fn from(c: &Counts) -> WrittenCounts {
        WrittenCounts {
            insert: c.insert,
            update: c.update,
            delete: c.delete,
        }
    }
}

/// A plan: `diff`, `plan`, a dry run's `plan`.
#[derive(Clone, Debug, Serialize)]
pub struct PlanView {
    pub from: String,
    pub to: String,
    pub selection: Vec<String>,
    /// [`Plan::content_hash`]: what the plan would do, so that a promotion
    /// can insist on applying exactly this.
    pub hash: String,
    pub counts: Counts,
    pub no_base: usize,
    pub excluded: BTreeMap<String, u64>,
    pub changes: Vec<EntryView>,
    /// Tables with `changed` that the plan read whole, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PlanView {
    pub fn new(plan: &Plan) -> PlanView {
        PlanView {
            from: plan.from.clone(),
            to: plan.to.clone(),
            selection: plan.selection.clone(),
            hash: plan.content_hash(),
            counts: plan.counts(),
            no_base: plan.entries.iter().filter(|e| e.reason == Some(Reason::NoBase)).count(),
            excluded: plan.excluded.clone(),
            changes: plan.entries.iter().map(|e| EntryView::new(plan, e)).collect(),
            notes: plan.notes.0.clone(),
        }
    }
}

/// One entry of a plan (docs/json.md, "diff and plan").
#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    pub table: String,
    pub key: Map<String, J>,
    pub action: &'static str,
    pub fields: Vec<FieldView>,
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulled_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<String>,
    /// Columns holding the source id of a new natural-key row: the target
    /// assigns the id that is written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deferred: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collides_with: Option<String>,
    /// Conflicts only: `kept`, `not kept` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<&'static str>,
    /// Inserts only: the whole row written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<Map<String, J>>,
}

impl EntryView {
    pub fn new(plan: &Plan, e: &PlanEntry) -> EntryView {
        let base = (e.action == Action::Conflict).then_some(match (e.reason, e.base_kept) {
            // First contact, a unique collision: no base involved.
            (Some(Reason::NoBase | Reason::UniqueCollision), _) => "none",
            (_, true) => "kept",
            (_, false) => "not kept",
        });
        let open = is_open(plan, &e.table);
        let row = match (e.action, &e.source, plan.columns.get(&e.table)) {
            (Action::Insert, Some(src), Some(cols)) => {
                // A document's absent fields are not in what it writes.
                let row: Vec<(String, Value)> = cols
                    .iter()
                    .cloned()
                    .zip(src.iter().cloned())
                    .filter(|(_, v)| !(open && v.is_null()))
                    .collect();
                Some(object(&row))
            }
            _ => None,
        };
        EntryView {
            table: e.table.clone(),
            key: object(&plan.named_key(e)),
            action: e.action.name(),
            fields: e.fields.iter().map(|f| FieldView::new(plan, e, f)).collect(),
            reason: e.reason.map(|r| r.name()),
            pulled_by: e.pulled_by.clone(),
            depends_on: e.depends_on.clone(),
            deferred: e.deferred.clone(),
            collides_with: e.collides_with.clone(),
            base,
            row,
        }
    }
}

/// One field of a plan entry: its values, and for a JSON field whose
/// target and source differ, every changed path from target to source.
#[derive(Clone, Debug, Serialize)]
pub struct FieldView {
    pub column: String,
    pub source: Option<J>,
    pub target: Option<J>,
    pub base: Option<J>,
    /// The sides (`target`, `source`, `base`) on which a document lacks
    /// the field (MongoDB): their value above is `null`, which a BSON
    /// `null` also is. Empty, and left out, for SQL tables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<PathView>>,
}

impl FieldView {
    fn new(plan: &Plan, e: &PlanEntry, f: &FieldDiff) -> FieldView {
        let paths = plan_json_pair(plan, e, &f.column, f.target.as_ref(), f.source.as_ref())
            .map(|(target, source)| {
                json_diff::diff(&target, &source)
                    .iter()
                    .map(|c| PathView {
                        path: json_diff::path_text("$", &c.path),
                        change: c.kind(),
                        source: c.new_value().cloned(),
                        target: c.old().cloned(),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|p| !p.is_empty());
        let absent = if is_open(plan, &e.table) {
            [("target", &f.target), ("source", &f.source), ("base", &f.base)]
                .into_iter()
                .filter(|(_, v)| v.as_ref().is_some_and(Value::is_null))
                .map(|(side, _)| side)
                .collect()
        } else {
            Vec::new()
        };
        FieldView {
            column: f.column.clone(),
            source: f.source.as_ref().map(Value::to_plain_json),
            target: f.target.as_ref().map(Value::to_plain_json),
            base: f.base.as_ref().map(Value::to_plain_json),
            absent,
            paths,
        }
    }
}

/// Whether `table`'s rows are documents with open fields (MongoDB), whose
/// NULL is a field the document lacks.
pub fn is_open(plan: &Plan, table: &str) -> bool {
    plan.specs.get(table).is_some_and(|s| s.open)
}

/// One changed path of a JSON field.
#[derive(Clone, Debug, Serialize)]
pub struct PathView {
    pub path: String,
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<J>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<J>,
}

/// The two values of a plan field as JSON documents, when the field is
/// JSON on both sides (a JSON value, or text the plan's column types
/// declare JSON) and its value is written as is (not a deferred id).
pub fn plan_json_pair(
    plan: &Plan,
    e: &PlanEntry,
    column: &str,
    a: Option<&Value>,
    b: Option<&Value>,
) -> Option<(J, J)> {
    if e.deferred.iter().any(|c| c == column) {
        return None;
    }
    let declared = plan
        .specs
        .get(&e.table)
        .is_some_and(|s| json_diff::declared_json([s.types.get(column), s.target_types.get(column)]));
    Some((json_diff::document(a?, declared)?, json_diff::document(b?, declared)?))
}

/// `plan -o FILE`: the plan, where it was saved, and the source checks it
/// carries.
#[derive(Clone, Debug, Serialize)]
pub struct SavedPlanView {
    #[serde(flatten)]
    pub plan: PlanView,
    pub saved_to: String,
    pub signed: bool,
    pub checks: Vec<CheckOutcome>,
}

/// What `promote` did or would do (docs/json.md, "promote").
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum PromoteView {
    /// Applied directly.
    Applied {
        promotion: String,
        review: Option<String>,
        counts: WrittenCounts,
        at: String,
        checks: Vec<CheckOutcome>,
        hooks: Vec<HookOutcome>,
    },
    /// A dry run, or a plan with nothing to write: the plan, nothing written.
    Planned {
        promotion: Option<String>,
        review: Option<String>,
        counts: WrittenCounts,
        dry_run: bool,
        plan: PlanView,
        checks: Vec<CheckOutcome>,
    },
    /// Into a review environment.
    Submitted {
        promotion: Option<String>,
        review: Option<String>,
        drafts: Option<String>,
        direct: Option<String>,
        checks: Vec<CheckOutcome>,
        hooks: Vec<HookOutcome>,
        counts: WrittenCounts,
    },
    /// The apply found nothing to write after all.
    Nothing {
        promotion: Option<String>,
        review: Option<String>,
        counts: WrittenCounts,
    },
}

impl PromoteView {
    pub fn applied(p: &Promotion, checks: Vec<CheckOutcome>, hooks: Vec<HookOutcome>) -> PromoteView {
        PromoteView::Applied {
            promotion: p.id.clone(),
            review: None,
            counts: (&p.counts).into(),
            at: p.at.clone(),
            checks,
            hooks,
        }
    }

    /// `would`: what the apply would write.
    pub fn planned(plan: &Plan, would: WrittenCounts, dry_run: bool, checks: Vec<CheckOutcome>) -> PromoteView {
        PromoteView::Planned {
            promotion: None,
            review: None,
            counts: would,
            dry_run,
            plan: PlanView::new(plan),
            checks,
        }
    }

    pub fn submitted(
        done: &crate::reviews::Submitted,
        checks: Vec<CheckOutcome>,
        hooks: Vec<HookOutcome>,
    ) -> PromoteView {
        let promotion = done.direct.as_ref().or(done.drafts.as_ref());
        PromoteView::Submitted {
            promotion: promotion.map(|p| p.id.clone()),
            review: done.review.clone(),
            drafts: done.drafts.as_ref().map(|p| p.id.clone()),
            direct: done.direct.as_ref().map(|p| p.id.clone()),
            checks,
            hooks,
            counts: promotion.map(|p| (&p.counts).into()).unwrap_or_default(),
        }
    }

    pub fn nothing() -> PromoteView {
        PromoteView::Nothing {
            promotion: None,
            review: None,
            counts: WrittenCounts::default(),
        }
    }
}

/// The counts of a journal record: what it wrote, and the rows a baseline
/// recorded as in sync.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct JournalCounts {
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    pub synced: u64,
}

/// One promotion, revert, approval or baseline of the journal (`log`).
#[derive(Clone, Debug, Serialize)]
pub struct JournalEntryView {
    pub id: String,
    pub kind: String,
    pub from: Option<String>,
    pub to: String,
    pub user: String,
    pub at: String,
    pub counts: JournalCounts,
    pub selection: Vec<String>,
    pub reverts: Option<String>,
    pub reverted_by: Option<String>,
}

impl JournalEntryView {
    pub fn new(r: &PromotionRecord) -> JournalEntryView {
        JournalEntryView {
            id: r.id.clone(),
            kind: r.kind.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            user: r.user.clone(),
            at: r.at.clone(),
            counts: JournalCounts {
                insert: r.counts.insert,
                update: r.counts.update,
                delete: r.counts.delete,
                synced: r.counts.synced,
            },
            selection: r.selection.clone(),
            reverts: r.reverts.clone(),
            reverted_by: r.reverted_by.clone(),
        }
    }
}

/// `show`: a journal record and every row it wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ShowView {
    #[serde(flatten)]
    pub entry: JournalEntryView,
    pub rows: Vec<JournalRowView>,
}

impl ShowView {
    /// `open_fields`: the rows are documents (the store's
    /// [`ferry_db::Capabilities::open_fields`]), whose images leave out
    /// the fields a document lacks rather than show them as `null`.
    pub fn new(r: &PromotionRecord, rows: &[JournalRow], open_fields: bool) -> ShowView {
        // A BSON `null` is a JSON value, not NULL: only absent fields go.
        let image = |pairs: &[(String, Value)]| {
            let present: Vec<(String, Value)> = pairs
                .iter()
                .filter(|(_, v)| !(open_fields && v.is_null()))
                .cloned()
                .collect();
            shown(&present)
        };
        ShowView {
            entry: JournalEntryView::new(r),
            rows: rows
                .iter()
                .map(|j| JournalRowView {
                    table: j.table.clone(),
                    key: object(&j.key),
                    action: j.action.clone(),
                    before: j.before.as_deref().map(image),
                    after: j.after.as_deref().map(image),
                })
                .collect(),
        }
    }
}

/// One row a promotion wrote: its before-image (raw) and what was written.
#[derive(Clone, Debug, Serialize)]
pub struct JournalRowView {
    pub table: String,
    pub key: Map<String, J>,
    pub action: String,
    pub before: Option<Map<String, J>>,
    pub after: Option<Map<String, J>>,
}

/// What `revert` did.
#[derive(Clone, Debug, Serialize)]
pub struct RevertView {
    pub promotion: String,
    pub reverts: String,
    pub counts: WrittenCounts,
}

impl RevertView {
    pub fn new(reverted: &str, done: &Promotion) -> RevertView {
        RevertView {
            promotion: done.id.clone(),
            reverts: reverted.to_string(),
            counts: (&done.counts).into(),
        }
    }
}

/// What `baseline` recorded (or would).
#[derive(Clone, Debug, Serialize)]
pub struct BaselineView {
    pub baseline: Option<String>,
    pub recorded: u64,
    pub dry_run: bool,
    pub differing: Vec<EntryView>,
}

impl BaselineView {
    pub fn new(differing: &Plan, id: Option<&str>, recorded: u64, dry_run: bool) -> BaselineView {
        BaselineView {
            baseline: id.map(str::to_string),
            recorded,
            dry_run,
            differing: differing.entries.iter().map(|e| EntryView::new(differing, e)).collect(),
        }
    }

    pub fn done(b: &Baseline) -> BaselineView {
        BaselineView::new(&b.differing, b.id.as_deref(), b.recorded, false)
    }
}

/// A review with its changes, each with its state.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewView {
    pub id: String,
    pub status: String,
    pub by: String,
    pub from: String,
    pub to: String,
    pub at: String,
    pub draft_promotion: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub changes: Vec<ReviewChangeView>,
}

/// One change of a review.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewChangeView {
    #[serde(flatten)]
    pub entry: EntryView,
    /// `pending`, `approved` or `rejected`.
    pub state: &'static str,
    /// The entry that publishes a draft.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<bool>,
    /// `review show` of an open review: the target row changed since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<bool>,
    /// With `moved`: the target's row now (`null`: gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_now: Option<J>,
}

impl ReviewView {
    pub fn new(r: &Review) -> ReviewView {
        ReviewView {
            id: r.id.clone(),
            status: r.status.clone(),
            by: r.user.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            at: r.at.clone(),
            draft_promotion: r.draft_promotion.clone(),
            decided_by: r.decided_by.clone(),
            decided_at: r.decided_at.clone(),
            changes: r
                .plan
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| ReviewChangeView {
                    entry: EntryView::new(&r.plan, e),
                    state: match r.decided.get(&i) {
                        Some(d) if d.approved => "approved",
                        Some(_) => "rejected",
                        None => "pending",
                    },
                    draft: (e.reason == Some(Reason::PendingReview)).then_some(true),
                    moved: None,
                    target_now: None,
                })
                .collect(),
        }
    }

    /// The review with the entries whose target moved marked, each with
    /// the target's row now (see `reviews::moved`).
    pub fn with_moved(r: &Review, moved: &BTreeMap<usize, Option<Vec<Value>>>) -> ReviewView {
        let mut v = ReviewView::new(r);
        for (i, now) in moved {
            let columns = r.plan.columns.get(&r.plan.entries[*i].table);
            let change = &mut v.changes[*i];
            change.moved = Some(true);
            change.target_now = Some(match (now, columns) {
                (Some(row), Some(cols)) => J::Object(
                    cols.iter()
                        .zip(row)
                        .map(|(c, v)| (c.clone(), v.to_plain_json()))
                        .collect(),
                ),
                _ => J::Null,
            });
        }
        v
    }
}

/// What `review approve` did.
#[derive(Clone, Debug, Serialize)]
pub struct ApproveView {
    pub review: String,
    pub promotion: Option<String>,
    pub counts: Option<WrittenCounts>,
    pub hooks: Vec<HookOutcome>,
}

impl ApproveView {
    pub fn new(review: &str, done: Option<&Promotion>, hooks: Vec<HookOutcome>) -> ApproveView {
        ApproveView {
            review: review.to_string(),
            promotion: done.map(|p| p.id.clone()),
            counts: done.map(|p| (&p.counts).into()),
            hooks,
        }
    }
}

/// What `review reject` did.
#[derive(Clone, Debug, Serialize)]
pub struct RejectView {
    pub review: String,
    pub rejected: bool,
    pub rejected_changes: usize,
    pub drafts_removed: bool,
    pub pending: usize,
    pub status: String,
}

impl RejectView {
    pub fn new(review: &str, done: &Rejected) -> RejectView {
        RejectView {
            review: review.to_string(),
            rejected: true,
            rejected_changes: done.rejected,
            drafts_removed: done.drafts_removed,
            pending: done.pending,
            status: done.status.clone(),
        }
    }
}

/// `check`: every environment's status, the problems and the warnings.
#[derive(Clone, Debug, Serialize)]
pub struct CheckView {
    pub ok: bool,
    pub environments: Vec<EnvStatus>,
    pub problems: Vec<ferry_core::config::ConfigProblem>,
    pub warnings: Vec<ferry_core::config::ConfigProblem>,
}

impl CheckView {
    pub fn new(report: &CheckReport) -> CheckView {
        CheckView {
            ok: report.ok(),
            environments: report.environments.clone(),
            problems: report.problems.clone(),
            warnings: report.warnings.clone(),
        }
    }
}

/// A refresh (`ferry refresh ENV --from ENV2`): what it discards, what
/// comes down, and, once committed, what it wrote.
#[derive(Clone, Debug, Serialize)]
pub struct RefreshView {
    /// The environment refreshed.
    pub env: String,
    /// The environment whose content came down.
    pub from: String,
    /// `env`'s next environment in the pipeline.
    pub next: String,
    /// The journal id of the refresh (kind `refresh`), once written.
    pub refresh: Option<String>,
    pub at: Option<String>,
    pub dry_run: bool,
    /// What it would write, or wrote.
    pub counts: WrittenCounts,
    /// `env -> next`: the rows of `env` not promoted yet, which the refresh
    /// discards.
    pub discarded: PlanView,
    /// `from -> env`, every difference decided for `from`.
    pub incoming: PlanView,
    /// Excluded rows of `env` kept as they are, per table.
    pub kept_excluded: BTreeMap<String, u64>,
    /// Excluded rows deleted because they referenced a deleted row.
    pub dropped_excluded: Vec<String>,
    /// The baseline `env -> next` recorded in `next` after the refresh.
    pub next_baseline: Option<NextBaselineView>,
    /// The checks of `env` that ran before anything was written (as for a
    /// promotion into it; none when nothing changes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckOutcome>,
    pub hooks: Vec<HookOutcome>,
}

/// The rows equal in a refreshed environment and its next one, recorded
/// as in sync in the next one.
#[derive(Clone, Debug, Serialize)]
pub struct NextBaselineView {
    pub baseline: Option<String>,
    pub recorded: u64,
}

/// A per-branch environment: one element of `env list --json`, and what
/// `env create`, `env merged`, `env destroy` and `env gc` print with
/// `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct BranchEnvView {
    pub name: String,
    pub branch: String,
    pub from: String,
    pub promotes_to: String,
    pub created_by: String,
    pub created_at: String,
    pub merged_at: Option<String>,
    pub expires_at: Option<String>,
    /// The changes not promoted into `promotes_to` yet (`null` when they
    /// could not be read; `pending_error` says why); left out when not
    /// asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Option<Counts>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_error: Option<String>,
}

impl BranchEnvView {
    /// The view of a registry record, without its pending changes.
    pub fn new(b: &ferry_db::records::BranchEnvRecord) -> BranchEnvView {
        BranchEnvView {
            name: b.name.clone(),
            branch: b.branch.clone(),
            from: b.from.clone(),
            promotes_to: b.promotes_to.clone(),
            created_by: b.created_by.clone(),
            created_at: b.created_at.clone(),
            merged_at: b.merged_at.clone(),
            expires_at: b.expires_at.clone(),
            pending: None,
            pending_error: None,
        }
    }

    /// The view with the pending changes read (or why they were not).
    pub fn with_pending(b: &ferry_db::records::BranchEnvRecord, pending: &crate::Result<Counts>) -> BranchEnvView {
        let mut v = BranchEnvView::new(b);
        match pending {
            Ok(c) => v.pending = Some(Some(c.clone())),
            Err(e) => {
                v.pending = Some(None);
                v.pending_error = Some(e.to_string());
            }
        }
        v
    }
}

/// What became of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// 1-based position among the environment's checks.
    pub index: usize,
    /// `#N sql on source: ...`, `#N command: ...`.
    pub name: String,
    /// `sql` or `command`.
    pub kind: String,
    /// `source` or `target` for `sql` checks, `command` for commands.
    pub side: String,
    /// The SQL text or the command, as configured.
    pub check: String,
    pub passed: bool,
    /// What the query returned, or what the command printed (trimmed).
    pub output: String,
    /// The result was recorded in the saved plan, not run now.
    pub from_plan: bool,
}

/// What became of one hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookOutcome {
    /// `command: ...` or `webhook: URL` (any password hidden).
    pub hook: String,
    /// 1-based position among the environment's hooks.
    pub index: usize,
    pub ok: bool,
    /// Why it failed: exit status, HTTP status, timeout, connection error.
    pub error: Option<String>,
    /// What the command printed, or the start of the webhook's answer (trimmed).
    pub output: String,
}
