//! The changes between two environments, row by row, and the transfer of
//! the rows a user ticks.
//!
//! `GET /changes?from=A&to=B[&table=T]` shows the plan of the pair (or of
//! one table) with its content hash; `POST /changes/transfer` promotes the
//! ticked rows, insisting (through the engine's `expect`) that the plan of
//! what the page showed still has that hash: if the databases moved in
//! between, nothing is written and the page comes back with the fresh
//! diff and status 409.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::Form;
use ferry_core::access::{self, Right};
use ferry_core::plan::Side;
use ferry_core::selection::{parse_id, Selection};
use ferry_engine::error::Hint;
use ferry_engine::ops::{self, promote::Expected, promote::PromoteRequest};
use ferry_engine::planner;
use ferry_engine::progress::Progress;
use ferry_engine::views::{EntryView, PlanView, PromoteView};
use maud::{html, Markup};
use serde::Deserialize;

use super::{diffview, encode, layout, PageError, PageResult};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::pending::PendingCounts;
use crate::AppState;

/// The query of `GET /changes`.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    pub from: String,
    pub to: String,
    /// Only this table (empty: every managed table).
    pub table: Option<String>,
}

/// `GET /changes`: the plan of the pair, per table, one line per row.
pub async fn page(
    State(state): State<AppState>,
    user: CurrentUser,
    q: Result<Query<ChangesQuery>, QueryRejection>,
) -> PageResult {
    let Query(q) = q.map_err(|e| {
        AppError::BadRequest(format!(
            "the changes page needs `from` and `to` (two environments), and optionally `table`: {e}"
        ))
    })?;
    let table = non_empty(q.table.as_deref());
    let view = plan_view(&state, &q.from, &q.to, table).await?;
    let body = render(&state, &user, &view, table, None);
    Ok(layout::page(&user, &format!("{} → {}", q.from, q.to), body).into_response())
}

/// What the page shows: a table filter, or every managed table.
fn shown_selection(table: Option<&str>) -> Selection {
    Selection {
        tables: table.map(str::to_string).into_iter().collect(),
        ..Selection::default()
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The plan of `from -> to` for the page's selection (a declared route
/// only), as the engine's view with its content hash.
async fn plan_view(state: &AppState, from: &str, to: &str, table: Option<&str>) -> Result<PlanView, AppError> {
    let sel = shown_selection(table);
    let (began, at) = (std::time::Instant::now(), chrono::Utc::now());
    let pair = state
        .envs_knowing(&[from, to])
        .await?
        .pair(from, to, &sel, true)
        .await?;
    let plan = planner::plan(&pair, &sel, Progress::hidden()).await?;
    if sel.is_all() {
        // The whole pair, planned anyway: the overview's counts for free.
        state
            .pending
            .record(from, to, PendingCounts::of(&plan), at, began.elapsed());
    }
    Ok(PlanView::new(&plan))
}

/// The form of `POST /changes/transfer`.
#[derive(Debug, Deserialize)]
pub struct TransferForm {
    pub from: String,
    pub to: String,
    /// The page's table filter (empty: every managed table).
    #[serde(default)]
    pub table: Option<String>,
    /// The content hash of the plan the page showed.
    pub hash: String,
    /// The ticked rows, `TABLE:KEY` each.
    #[serde(default)]
    pub id: Vec<String>,
    /// `source` or `target`: decide the one row in `id` for that side.
    #[serde(default)]
    pub take: Option<String>,
    pub csrf_token: Option<String>,
}

/// `POST /changes/transfer`: promotes the ticked rows if the changes are
/// still the ones shown; else 409 with the fresh diff.
pub async fn transfer(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<TransferForm>,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let table = non_empty(form.table.as_deref());
    let req = request(&user, &form, table)?;
    let (from, to) = (form.from.as_str(), form.to.as_str());
    match promote(&state, req).await {
        Ok(view) => {
            if view.is_some() {
                state.pending.after_write(to);
            }
            Ok(layout::page(
                &user,
                &format!("Transferred to {to}"),
                done(from, to, table, view.as_ref()),
            )
            .into_response())
        }
        Err(e) if matches!(e.hint_of(), Some(Hint::Stale { .. })) => {
            let view = plan_view(&state, from, to, table).await?;
            let notice = layout::notice(
                "error",
                &format!(
                    "Nothing was transferred: the changes between {from} and {to} moved since the page showed them \
                     (another edit or promotion). Here they are as they are now; tick the rows again."
                ),
            );
            let body = render(&state, &user, &view, table, Some(notice));
            Ok((
                StatusCode::CONFLICT,
                layout::page(&user, &format!("{from} → {to}"), body),
            )
                .into_response())
        }
        Err(e) => Err(PageError(e.into())),
    }
}

/// The promotion the form asks for: the ticked rows, each decided for a
/// side with `take`, applied only if the page's plan still has its hash.
fn request(user: &CurrentUser, form: &TransferForm, table: Option<&str>) -> Result<PromoteRequest, PageError> {
    let ids: Vec<(String, Vec<String>)> = form
        .id
        .iter()
        .map(|s| parse_id(s).map_err(|e| AppError::BadRequest(format!("row {e}"))))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Err(AppError::BadRequest(format!(
            "tick the rows to transfer from {} to {}: none was ticked, nothing was written",
            form.from, form.to
        ))
        .into());
    }
    let take = match non_empty(form.take.as_deref()) {
        None => None,
        Some("source") => Some(Side::Source),
        Some("target") => Some(Side::Target),
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "`take` is `source` or `target`, not `{other}`; nothing was written"
            ))
            .into())
        }
    };
    if form.hash.trim().is_empty() {
        return Err(AppError::BadRequest(
            "the form carries no plan hash of the changes it showed; reload the page, nothing was written".into(),
        )
        .into());
    }
    Ok(PromoteRequest {
        from: form.from.clone(),
        to: form.to.clone(),
        user: user.name.clone(),
        selection: Selection {
            ids,
            ..Selection::default()
        },
        saved: None,
        dry_run: false,
        approve_revisions: false,
        force: false,
        take,
        wait: true,
        expect: Some(Expected {
            selection: shown_selection(table),
            hash: form.hash.trim().to_string(),
        }),
    })
}

/// Prepares and commits; `None` when there was nothing to write.
async fn promote(state: &AppState, req: PromoteRequest) -> ferry_engine::Result<Option<PromoteView>> {
    let envs = state.envs_knowing(&[&req.from, &req.to]).await?;
    let prepared = ops::promote::prepare(&envs, req, &ops::Quiet).await?;
    if prepared.writes_nothing() {
        return Ok(None);
    }
    let checks = prepared.checks.clone();
    let outcome = prepared.commit().await?;
    Ok(Some(outcome.view(checks)))
}

/// The result of a transfer: the promotion (or review) made, with links.
fn done(from: &str, to: &str, table: Option<&str>, view: Option<&PromoteView>) -> Markup {
    let (promotion, review, counts) = match view {
        Some(PromoteView::Applied { promotion, counts, .. }) => (Some(promotion.clone()), None, Some(*counts)),
        Some(PromoteView::Submitted {
            promotion,
            review,
            counts,
            ..
        }) => (promotion.clone(), review.clone(), Some(*counts)),
        Some(PromoteView::Planned {
            promotion,
            review,
            counts,
            ..
        })
        | Some(PromoteView::Nothing {
            promotion,
            review,
            counts,
        }) => (promotion.clone(), review.clone(), Some(*counts)),
        None => (None, None, None),
    };
    html! {
        h1 { "Transfer " (from) " → " (to) }
        @if promotion.is_none() && review.is_none() {
            (layout::notice("ok", "Nothing to write: the ticked rows are already as they should be."))
        }
        @if let Some(id) = &promotion {
            p {
                "Promotion "
                a href=(format!("/promotions/{}", encode(id))) data-testid="promotion-id" { (id) }
                " applied"
                @if let Some(c) = counts {
                    ": " (c.insert) " inserted, " (c.update) " updated, " (c.delete) " deleted."
                }
            }
        }
        @if let Some(id) = &review {
            p {
                (to) " takes promotions for review: review "
                a href=(format!("/reviews/{}", encode(id))) data-testid="review-id" { (id) }
                " waits for an approver."
            }
        }
        p {
            a href=(changes_href(from, to, table)) { "Back to the changes " (from) " → " (to) }
            " · "
            a href=(format!("/history?env={}", encode(to))) { "History of " (to) }
        }
    }
}

/// The address of the changes page.
pub fn changes_href(from: &str, to: &str, table: Option<&str>) -> String {
    let mut href = format!("/changes?from={}&to={}", encode(from), encode(to));
    if let Some(t) = table {
        href.push_str(&format!("&table={}", encode(t)));
    }
    href
}

/// The fields every form of the page carries: the pair, the page's table
/// filter, the hash of what it shows, and the CSRF token.
fn shown_fields(user: &CurrentUser, view: &PlanView, table: Option<&str>) -> Markup {
    html! {
        (layout::csrf_field(user))
        input type="hidden" name="from" value=(view.from);
        input type="hidden" name="to" value=(view.to);
        input type="hidden" name="table" value=(table.unwrap_or(""));
        input type="hidden" name="hash" value=(view.hash);
    }
}

/// The page: counts, a table filter, a search box, the transfer form, and
/// per table one line per row.
fn render(
    state: &AppState,
    user: &CurrentUser,
    view: &PlanView,
    table: Option<&str>,
    notice: Option<Markup>,
) -> Markup {
    let envs = state.envs();
    let config = &envs.project().config;
    let may = access::check(config.access.as_ref(), &user.name, Right::Promote, &view.to);
    let selectable = view.changes.iter().any(is_selectable);
    let c = &view.counts;
    html! {
        h1 { "Changes " (view.from) " → " (view.to) }
        @if let Some(n) = notice { (n) }
        p.counts data-testid="plan-counts" data-hash=(view.hash) {
            span data-testid="count-insert" { (c.insert) " to insert" } " · "
            span data-testid="count-update" { (c.update) " to update" } " · "
            span data-testid="count-delete" { (c.delete) " to delete" } " · "
            span data-testid="count-conflict" { (c.conflict) " in conflict" } " · "
            span data-testid="count-skip" { (c.skip) " left as they are" }
        }
        nav.toolbar data-testid="table-filter" {
            span.muted { "Tables:" }
            @if table.is_none() { strong { "all" } } @else { a href=(changes_href(&view.from, &view.to, None)) { "all" } }
            @for t in config.tables.keys() {
                @if table == Some(t.as_str()) { strong { (t) } }
                @else { a href=(changes_href(&view.from, &view.to, Some(t))) { (t) } }
            }
        }
        @if view.changes.is_empty() {
            p data-testid="no-changes" { (view.to) " has everything " (view.from) " has: nothing to transfer." }
        } @else {
            div.toolbar {
                input type="search" placeholder="Search rows" data-filter="tr.change-row" data-testid="row-search";
                form #transfer-form method="post" action="/changes/transfer" {
                    (shown_fields(user, view, table))
                    @if may.is_ok() && selectable {
                        button type="submit" data-testid="transfer-button"
                            data-confirm=(format!("Transfer the ticked rows from {} to {}?", view.from, view.to)) {
                            "Transfer to " (view.to)
                        }
                    }
                }
                @if let Err(why) = &may {
                    span.muted data-testid="no-promote-right" { "You may not transfer to " (view.to) ": " (why) }
                }
            }
            @for (i, (t, entries)) in by_table(&view.changes).iter().enumerate() {
                (table_section(user, view, table, may.is_ok(), i, t, entries))
            }
        }
    }
}

/// Entries grouped by table, tables in the plan's order.
fn by_table(entries: &[EntryView]) -> Vec<(&str, Vec<&EntryView>)> {
    let mut out: Vec<(&str, Vec<&EntryView>)> = Vec::new();
    for e in entries {
        match out.iter_mut().find(|(t, _)| *t == e.table) {
            Some((_, list)) => list.push(e),
            None => out.push((e.table.as_str(), vec![e])),
        }
    }
    out
}

/// Rows a transfer can carry: inserts, updates, deletes.
fn is_selectable(e: &EntryView) -> bool {
    matches!(e.action, "insert" | "update" | "delete")
}

/// Conflicts and target-newer rows can be decided for one side.
fn is_decidable(e: &EntryView) -> bool {
    e.action == "conflict" || e.reason == Some("target-newer")
}

/// One table's rows, with a box that ticks them all.
fn table_section(
    user: &CurrentUser,
    view: &PlanView,
    table: Option<&str>,
    may: bool,
    i: usize,
    name: &str,
    entries: &[&EntryView],
) -> Markup {
    let group = format!("table-{i}");
    html! {
        section.table-changes data-testid="table-changes" data-table=(name) {
            h2 { (name) " " span.muted { "(" (entries.len()) ")" } }
            table {
                tr {
                    th {
                        @if entries.iter().any(|e| is_selectable(e)) {
                            input type="checkbox" title=(format!("Tick every row of {name}"))
                                data-select-all=(group) data-testid="table-select";
                        }
                    }
                    th { "action" } th { "row" } th { "why" } th { "fields" }
                }
                @for e in entries {
                    (row(user, view, table, may, &group, e))
                }
            }
        }
    }
}

/// One row: its box, action, key, why it is here, and its fields.
fn row(user: &CurrentUser, view: &PlanView, table: Option<&str>, may: bool, group: &str, e: &EntryView) -> Markup {
    let key = diffview::key_label(e);
    html! {
        tr class=(format!("change-row {}", e.action)) data-testid="change-row" data-key=(key) data-action=(e.action) {
            td {
                @if is_selectable(e) {
                    input type="checkbox" name="id" value=(key) form="transfer-form"
                        data-testid="row-select" data-key=(key) data-group=(group);
                }
            }
            td.action { (e.action) }
            td { code { (key) } }
            td {
                @if let Some(r) = e.reason { span.reason { (r) } }
                @if let Some(by) = &e.pulled_by { div.muted data-testid="pulled-by" { "comes along with " code { (by) } } }
                @if let Some(on) = &e.depends_on { div.muted { "needs " code { (on) } } }
                @if let Some(other) = &e.collides_with { div.muted { "collides with " code { (other) } } }
                @if !e.deferred.is_empty() { div.muted { "ids assigned by " (view.to) ": " (e.deferred.join(", ")) } }
                @if let Some(b) = e.base { div.muted { "base: " (b) } }
                @if may && is_decidable(e) {
                    div.take {
                        @for (side, label) in [("source", format!("Take {}", view.from)), ("target", format!("Keep {}", view.to))] {
                            form method="post" action="/changes/transfer" {
                                (shown_fields(user, view, table))
                                input type="hidden" name="id" value=(key);
                                input type="hidden" name="take" value=(side);
                                button.secondary type="submit" data-testid=(format!("take-{side}")) data-key=(key)
                                    data-confirm=(format!("{label} for {key}?")) { (label) }
                            }
                        }
                    }
                }
            }
            td { (diffview::entry(e)) }
        }
    }
}
