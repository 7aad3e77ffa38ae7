//! The reviews: the open reviews of each environment, a review's held
//! changes field by field, and the decision on all or some of them.
//!
//! Approve and Reject are offered only to a user who may decide the review
//! (the approve right in its environment, and not its submitter when
//! `[access]` is on); the engine refuses the others anyway, and audits it.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum_extra::extract::Form;
use ferry_core::access::{self, Right};
use ferry_core::plan::{Action, Plan, PlanEntry, Reason};
use ferry_core::selection::parse_id;
use ferry_core::Value;
use ferry_engine::ops::review::{self, Decision, DecisionOutcome, DecisionRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::reviews::{self, Review};
use ferry_engine::Error;
use maud::{html, Markup};
use serde::Deserialize;

use super::{cells, encode, layout, PageResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /reviews` query: one environment, and whether decided reviews are
/// listed too.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub env: Option<String>,
    pub all: Option<String>,
}

/// `GET /reviews[?env=E][&all=1]`: the open reviews (every review with
/// `all`), newest first.
pub async fn list(State(state): State<AppState>, user: CurrentUser, Query(q): Query<ListQuery>) -> PageResult {
    let env = q.env.as_deref().filter(|e| !e.is_empty());
    let all = q.all.as_deref().is_some_and(|a| !a.is_empty() && a != "0");
    let (stores, unreachable) = state.envs_for(env).await?.each(env).await?;
    let mut found: Vec<Review> = Vec::new();
    for store in stores {
        found.extend(if all {
            reviews::list(&*store).await?
        } else {
            reviews::open(&*store).await?
        });
    }
    found.sort_by(|a, b| b.id.cmp(&a.id));
    let body = html! {
        h1 { @if all { "Reviews" } @else { "Open reviews" } }
        (env_links(&state, env, all))
        @for (name, e) in &unreachable {
            (layout::notice("error", &format!("`{name}` could not be read, its reviews are not listed: {e}")))
        }
        @if found.is_empty() {
            p.muted data-testid="no-reviews" { @if all { "No reviews." } @else { "No open reviews." } }
        } @else {
            table data-testid="reviews" {
                thead { tr { th { "Review" } th { "Status" } th { "Route" } th { "Submitted by" } th { "At" } th.num { "Changes" } th.num { "Pending" } } }
                tbody {
                    @for r in &found {
                        tr data-testid="review-row" data-id=(r.id) data-env=(r.to) {
                            td { a.mono href=(format!("/reviews/{}", encode(&r.id))) data-testid="review-link" data-key=(r.id) { (r.id) } }
                            td { (r.status) }
                            td { (r.from) " → " (r.to) }
                            td { (r.user) }
                            td.mono { (r.at) }
                            td.num { (r.plan.entries.len()) }
                            td.num { (r.pending().count()) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&user, "Reviews", body).into_response())
}

/// The environment filter of the list: every environment, or one.
fn env_links(state: &AppState, env: Option<&str>, all: bool) -> Markup {
    let envs_now = state.envs();
    let names = envs_now.project().config.environments_in_order();
    let tail = if all { "&all=1" } else { "" };
    html! {
        nav.toolbar data-testid="env-filter" {
            @if env.is_none() { strong { "All environments" } } @else { a href=(format!("/reviews?env={tail}")) { "All environments" } }
            @for n in names {
                @if env == Some(n) { strong { (n) } } @else { a href=(format!("/reviews?env={}{tail}", encode(n))) { (n) } }
            }
            @if all {
                a href=(format!("/reviews?env={}", encode(env.unwrap_or("")))) { "Open only" }
            } @else {
                a href=(format!("/reviews?env={}&all=1", encode(env.unwrap_or("")))) { "Decided too" }
            }
        }
    }
}

/// `GET /reviews/{id}`: the review and its changes; the decision form for
/// a user who may decide it.
pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> PageResult {
    let (store, r) = reviews::find_with(&state.envs(), &id).await?;
    let moved = if r.status == "open" {
        reviews::moved(&*store, &r).await?
    } else {
        BTreeMap::new()
    };
    Ok(layout::page(&user, &format!("Review {id}"), review_body(&state, &user, &r, &moved)).into_response())
}

/// Why `user` may not decide `r` (`None`: they may).
fn why_not_decide(state: &AppState, user: &CurrentUser, r: &Review) -> Option<String> {
    let envs = state.envs();
    let access_cfg = envs.project().config.access.as_ref();
    access::check(access_cfg, &user.name, Right::Approve, &r.to)
        .and_then(|()| access::check_not_own(access_cfg, &user.name, &r.user))
        .err()
}

fn review_body(
    state: &AppState,
    user: &CurrentUser,
    r: &Review,
    moved: &BTreeMap<usize, Option<Vec<Value>>>,
) -> Markup {
    let pending = r.pending().count();
    let approved = r.decided.values().filter(|d| d.approved).count();
    let rejected = r.decided.len() - approved;
    let refusal = why_not_decide(state, user, r);
    let decide = r.status == "open" && pending > 0 && refusal.is_none();
    let action = format!("/reviews/{}", encode(&r.id));
    html! {
        h1 { "Review " span.mono data-testid="review-id" { (r.id) } }
        dl.facts data-testid="review-facts" {
            dt { "Status" } dd data-testid="review-status" { (r.status) }
            dt { "Route" } dd { (r.from) " → " (r.to) }
            dt { "Submitted by" } dd data-testid="review-submitter" { (r.user) }
            dt { "At" } dd.mono { (r.at) }
            @if let Some(p) = &r.draft_promotion {
                dt { "Drafts inserted by" } dd { a.mono href=(format!("/promotions/{}", encode(p))) { (p) } }
            }
            @if let Some(by) = &r.decided_by {
                dt { "Decided by" } dd { (by) " at " span.mono { (r.decided_at.as_deref().unwrap_or("")) } }
            }
            dt { "Changes" } dd { (pending) " pending, " (approved) " approved, " (rejected) " rejected" }
        }
        @if !moved.is_empty() {
            (layout::notice("warning", &format!(
                "{} row(s) changed in {} since this review was made; approving them is refused as stale (reject them, and promote again).",
                moved.len(), r.to)))
        }
        form method="post" action=(format!("{action}/approve")) {
            (layout::csrf_field(user))
            @if decide {
                p.muted { "Tick the changes to decide; none ticked decides every pending change." }
                label { input type="checkbox" data-select-all="review-rows"; " all" }
            }
            @for (i, e) in r.plan.entries.iter().enumerate() {
                (change(r, i, e, moved.get(&i), decide))
            }
            @if decide {
                div.toolbar {
                    button type="submit" data-testid="review-approve"
                        data-confirm=(format!("Approve the ticked changes (none ticked: all) of review {} into {}?", r.id, r.to)) {
                        "Approve"
                    }
                    button.danger type="submit" formaction=(format!("{action}/reject")) data-testid="review-reject"
                        data-confirm=(format!("Reject the ticked changes (none ticked: all) of review {}?", r.id)) {
                        "Reject"
                    }
                }
            } @else if r.status == "open" {
                @if let Some(why) = &refusal {
                    p.muted data-testid="review-not-yours" { "You cannot decide this review: " (why) "." }
                }
            }
        }
    }
}

/// The state of change `i`: `pending`, `approved` or `rejected`.
fn state_of(r: &Review, i: usize) -> &'static str {
    match r.decided.get(&i) {
        Some(d) if d.approved => "approved",
        Some(_) => "rejected",
        None => "pending",
    }
}

/// One held change: its row, what it does, and its fields.
fn change(r: &Review, i: usize, e: &PlanEntry, moved: Option<&Option<Vec<Value>>>, decide: bool) -> Markup {
    let state = state_of(r, i);
    let label = e.label();
    let what = match (e.action, e.reason) {
        (_, Some(Reason::PendingReview)) => "publish draft".to_string(),
        (a, _) => a.name().to_string(),
    };
    html! {
        section.change data-testid="review-change" data-key=(label) data-state=(state) {
            h3 {
                @if decide && state == "pending" {
                    input type="checkbox" name="only" value=(label) data-testid="row-select" data-key=(label) data-group="review-rows";
                    " "
                }
                span class=(format!("action {}", e.action.name())) { (what) } " "
                span.mono { (label) } " "
                span.muted data-testid="change-state" { "(" (state) ")" }
            }
            (fields(&r.plan, e))
            @if let Some(now) = moved {
                (moved_fields(r, e, now.as_deref()))
            }
        }
    }
}

/// The fields of a change: every field of an insert; the changed fields of
/// anything else, before and after.
fn fields(plan: &Plan, e: &PlanEntry) -> Markup {
    if e.action == Action::Insert {
        let columns = plan.columns.get(&e.table).map(Vec::as_slice).unwrap_or(&[]);
        let source = e.source.as_deref().unwrap_or(&[]);
        return html! {
            table.fields data-testid="change-fields" {
                thead { tr { th { "Field" } th { "Value" } } }
                tbody {
                    @for (c, v) in columns.iter().zip(source) {
                        tr data-column=(c) { td.mono { (c) } td.field-new { (cells::value(v)) } }
                    }
                }
            }
        };
    }
    if e.fields.is_empty() {
        return html! {};
    }
    html! {
        table.fields data-testid="change-fields" {
            thead { tr { th { "Field" } th { "Now in the target" } th { "The review brings" } } }
            tbody {
                @for f in &e.fields {
                    tr data-column=(f.column) {
                        td.mono { (f.column) }
                        td.field-old { (cells::maybe(f.target.as_ref())) }
                        td.field-new { (cells::maybe(f.source.as_ref())) }
                    }
                }
            }
        }
    }
}

/// Where the target moved since the review was made: base (the target
/// then, where known), the target now, and what the review brings, for
/// every column where the target now differs from what it brings.
fn moved_fields(r: &Review, e: &PlanEntry, now: Option<&[Value]>) -> Markup {
    let (Some(spec), Some(source)) = (r.plan.specs.get(&e.table), &e.source) else {
        return html! {};
    };
    let Some(now) = now else {
        return html! { p.notice.warning data-testid="change-moved" { "The row is gone from " (r.to) " since the review was made." } };
    };
    let mut lines = Vec::new();
    for (c, column) in spec.shown_columns().iter().enumerate().skip(spec.key.len()) {
        let (Some(s), Some(t)) = (source.get(c), now.get(c)) else {
            continue;
        };
        if s == t {
            continue;
        }
        // An update's columns outside its field diff were equal then.
        let base = match e.fields.iter().find(|f| f.column == *column) {
            Some(f) => f.target.clone(),
            None if e.action == Action::Update && e.reason != Some(Reason::PendingReview) => Some(s.clone()),
            None => None,
        };
        lines.push((column.clone(), base, t.clone(), s.clone()));
    }
    html! {
        div.notice.warning data-testid="change-moved" {
            "Changed in " (r.to) " since the review was made:"
            table.fields {
                thead { tr { th { "Field" } th { "Then" } th { "Target now" } th { "The review brings" } } }
                tbody {
                    @for (column, base, now, brings) in &lines {
                        tr data-column=(column) {
                            td.mono { (column) }
                            td { @if let Some(b) = base { (cells::value(b)) } @else { span.muted { "(unknown)" } } }
                            td.field-old { (cells::value(now)) }
                            td.field-new { (cells::value(brings)) }
                        }
                    }
                }
            }
        }
    }
}

/// The decision form: the CSRF token and the ticked changes (`only`,
/// `TABLE:KEY`, repeated; none: every pending change).
#[derive(Debug, Default, Deserialize)]
pub struct DecisionForm {
    pub csrf_token: Option<String>,
    #[serde(default)]
    pub only: Vec<String>,
}

/// `POST /reviews/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    decide(state, user, headers, id, form, Decision::Approve).await
}

/// `POST /reviews/{id}/reject`.
pub async fn reject(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    decide(state, user, headers, id, form, Decision::Reject).await
}

/// Decides review `id` as `user`, through the engine exactly as the
/// command line does (`ops::review`), and shows what it did.
async fn decide(
    state: AppState,
    user: CurrentUser,
    headers: HeaderMap,
    id: String,
    form: DecisionForm,
    decision: Decision,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let only = form
        .only
        .iter()
        .map(|s| parse_id(s).map_err(|e| Error::Usage(format!("a ticked change {}", e.0))))
        .collect::<Result<Vec<_>, _>>()?;
    let partly = !only.is_empty();
    let req = DecisionRequest {
        review: id.clone(),
        user: user.name.clone(),
        only,
        // A page does not hang on another writer: it says the target is busy.
        wait: false,
    };
    let envs = state.envs();
    let prepared = review::prepare(&envs, req, decision, &Quiet).await?;
    let r = prepared.review.clone();
    let outcome = prepared.commit().await?;
    let review_link = html! { a.mono href=(format!("/reviews/{}", encode(&id))) { (id) } };
    let body = match outcome {
        DecisionOutcome::Approved(done, hooks) => html! {
            h1 { "Review approved" @if partly { " in part" } }
            @match &done {
                Some(p) => {
                    (layout::notice("ok", &format!(
                        "{} inserted, {} updated, {} deleted in {}.", p.counts.insert, p.counts.update, p.counts.delete, r.to)))
                    p { "Review " (review_link) " approved as promotion "
                        a.mono href=(format!("/promotions/{}", encode(&p.id))) data-testid="promotion-id" { (p.id) } "." }
                }
                None => p { "Review " (review_link) " approved; nothing needed writing." }
            }
            @for h in hooks.iter().filter(|h| !h.ok) {
                (layout::notice("error", &format!("hook #{} failed (the promotion stays): {}", h.index, h.error.as_deref().unwrap_or(""))))
            }
        },
        DecisionOutcome::Rejected(done) => html! {
            h1 { "Review rejected" @if partly { " in part" } }
            p data-testid="reject-result" {
                (done.rejected) " change(s) of review " (review_link) " rejected"
                @if done.drafts_removed { "; the drafts are removed from " (r.to) }
                @else if done.drafts_stay && done.pending == 0 { "; the drafts already published in " (r.to) " stay" }
                @if done.pending > 0 { "; " (done.pending) " change(s) still wait for review." }
                @else { "; the review is " (done.status) "." }
            }
        },
    };
    Ok(layout::page(&user, &format!("Review {id}"), body).into_response())
}
