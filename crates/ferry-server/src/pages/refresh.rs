//! Refresh a lower environment from one further down the pipeline
//! (`ferry refresh ENV --from ENV2` in the browser): the preview of what it
//! discards (the unpromoted rows of ENV, with their diffs) and what comes
//! down, then the refresh for users with the `refresh` right, whose result
//! page gives the journal id (revertible from its promotion page). The
//! engine's `ops::refresh` decides and writes everything.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::Form;
use ferry_core::access::{self, Right};
use ferry_engine::error::Hint;
use ferry_engine::ops::refresh::{self, RefreshRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::views::{EntryView, PlanView, RefreshView};
use maud::{html, Markup};
use serde::Deserialize;

use super::{diffview, encode, layout, PageResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /refresh` query; both empty: the page asks for them.
#[derive(Debug, Default, Deserialize)]
pub struct RefreshQuery {
    pub env: Option<String>,
    pub from: Option<String>,
    pub drop_excluded: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn ticked(v: &Option<String>) -> bool {
    given(v).is_some_and(|v| v != "0" && v != "false")
}

/// `GET /refresh?env=E&from=E2[&drop_excluded=1]`: the preview (a dry run:
/// no lock, nothing written), and the refresh button for who may.
pub async fn page(State(state): State<AppState>, user: CurrentUser, Query(q): Query<RefreshQuery>) -> PageResult {
    let (Some(env), Some(from)) = (given(&q.env), given(&q.from)) else {
        return Ok(layout::page(&user, "Refresh", chooser(&state)).into_response());
    };
    let envs = state.envs_knowing(&[env, from]).await?;
    let req = RefreshRequest {
        env: env.to_string(),
        from: from.to_string(),
        user: user.name.clone(),
        drop_excluded: ticked(&q.drop_excluded),
        dry_run: true,
        wait: false,
    };
    let prepared = match refresh::prepare(&envs, req, &Quiet).await {
        Ok(p) => p,
        // Excluded rows of `env` reference rows the refresh deletes: say
        // so, and offer the preview with them dropped.
        Err(e) if matches!(e.hint_of(), Some(Hint::DropExcluded)) => {
            let body = html! {
                h1 { "Refresh " (env) " from " (from) }
                (layout::notice("error", &crate::error::hide_urls(&e.to_string())))
                p { a data-testid="refresh-drop-excluded" href=(format!("/refresh?env={}&from={}&drop_excluded=1", encode(env), encode(from))) {
                    "Preview it with those excluded rows deleted" } }
            };
            let page = layout::page(&user, &format!("Refresh {env}"), body);
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let view = prepared.view();
    let may = access::check(envs.project().config.access.as_ref(), &user.name, Right::Refresh, env);
    let body = html! {
        h1 { "Refresh " (env) " from " (from) }
        (preview(&view))
        @match may {
            Err(why) => { p.muted data-testid="refresh-denied" { (why) } }
            // A preview is a dry run: whether the refresh would write
            // is what comes down.
            Ok(()) if view.counts.insert + view.counts.update + view.counts.delete == 0 => {
                p data-testid="refresh-nothing" { (env) " already matches " (from) ": nothing to write." }
            }
            Ok(()) => {
                form method="post" action="/refresh" {
                    (layout::csrf_field(&user))
                    input type="hidden" name="env" value=(env);
                    input type="hidden" name="from" value=(from);
                    @if !view.dropped_excluded.is_empty() || ticked(&q.drop_excluded) {
                        input type="hidden" name="drop_excluded" value="1";
                    }
                    button.danger type="submit" data-testid="refresh-button"
                        data-confirm=(format!("Refresh {env} from {from}, discarding {} unpromoted change(s)?", view.discarded.changes.len())) {
                        "Refresh " (env) " from " (from)
                    }
                }
            }
        }
    };
    Ok(layout::page(&user, &format!("Refresh {env}"), body).into_response())
}

/// The pairs a refresh can take: each pipeline environment from each one
/// further down.
fn chooser(state: &AppState) -> Markup {
    let envs = state.envs();
    let pipeline = &envs.project().config.pipeline;
    html! {
        h1 { "Refresh" }
        p { "A refresh resets an environment to match one further down the pipeline; it shows what it would discard first." }
        ul {
            @for (i, env) in pipeline.iter().enumerate() {
                @for from in &pipeline[i + 1..] {
                    li { a href=(format!("/refresh?env={}&from={}", encode(env), encode(from))) data-testid="refresh-link" data-env=(env) {
                        "Refresh " (env) " from " (from) } }
                }
            }
        }
    }
}

/// What the refresh discards, what comes down and the excluded rows it
/// leaves alone.
fn preview(v: &RefreshView) -> Markup {
    html! {
        section data-testid="refresh-discarded" data-count=(v.discarded.changes.len()) {
            h2 { "Discarded: unpromoted changes of " (v.env) " towards " (v.next) }
            @if v.discarded.changes.is_empty() {
                p.muted { (v.env) " has no unpromoted changes towards " (v.next) "." }
            } @else {
                (entries(&v.discarded))
            }
        }
        section data-testid="refresh-incoming" data-count=(v.incoming.changes.iter().filter(|e| e.action != "skip").count()) {
            h2 { "What comes down from " (v.from) }
            p data-testid="refresh-counts" {
                (v.counts.insert) " to insert, " (v.counts.update) " to update, " (v.counts.delete) " to delete"
            }
            (entries(&v.incoming))
        }
        @for (table, n) in &v.kept_excluded {
            p.muted data-testid="refresh-kept-excluded" { (n) " excluded row(s) of " (table) " stay as " (v.env) " has them." }
        }
        @if !v.dropped_excluded.is_empty() {
            (layout::notice("warning", &format!(
                "Excluded rows deleted because they reference rows the refresh deletes: {}", v.dropped_excluded.join(", "))))
        }
    }
}

/// A plan's entries, one row each with its diff.
fn entries(plan: &PlanView) -> Markup {
    let shown: Vec<&EntryView> = plan.changes.iter().filter(|e| e.action != "skip").collect();
    html! {
        @if shown.is_empty() { p.muted { "Nothing." } } @else {
            table.changes {
                thead { tr { th { "action" } th { "row" } th { "" } } }
                tbody {
                    @for e in shown {
                        tr class=(format!("change-row {}", e.action)) data-testid="refresh-row" data-key=(diffview::key_label(e)) data-action=(e.action) {
                            td.action { (e.action) }
                            td { code { (diffview::key_label(e)) } @if let Some(r) = e.reason { " " span.reason { (r) } } }
                            td { (diffview::entry(e)) }
                        }
                    }
                }
            }
        }
    }
}

/// The form of `POST /refresh`.
#[derive(Debug, Deserialize)]
pub struct RefreshForm {
    pub csrf_token: Option<String>,
    pub env: String,
    pub from: String,
    pub drop_excluded: Option<String>,
}

/// `POST /refresh`: refreshes through the engine (which checks the right
/// and the direction; a busy environment is refused, not waited for) and
/// shows the journal id.
pub async fn apply(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<RefreshForm>,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let envs = state.envs_knowing(&[&form.env, &form.from]).await?;
    let req = RefreshRequest {
        env: form.env.clone(),
        from: form.from.clone(),
        user: user.name.clone(),
        drop_excluded: ticked(&form.drop_excluded),
        dry_run: false,
        wait: false,
    };
    let view = crate::api::refresh::run(&state, &envs, req).await?;
    let (env, from) = (&form.env, &form.from);
    let c = view.counts;
    let body = html! {
        h1 { "Refreshed " (env) }
        @match &view.refresh {
            Some(id) => {
                (layout::notice("ok", &format!("{env} refreshed from {from}: {} inserted, {} updated, {} deleted.", c.insert, c.update, c.delete)))
                p { "Refresh " a.mono href=(format!("/promotions/{}", encode(id))) data-testid="promotion-id" { (id) }
                    " is in the " a href=(format!("/history?env={}", encode(env))) { "history of " (env) }
                    ", where it can be reverted." }
            }
            None => { p data-testid="refresh-nothing" { (env) " already matched " (from) ": nothing was written." } }
        }
        @if let Some(b) = &view.next_baseline {
            p.muted { (b.recorded) " row(s) equal in " (env) " and " (view.next) " recorded as in sync there." }
        }
        p { a href="/environments" { "Back to the environments" } }
    };
    Ok(layout::page(&user, &format!("Refreshed {env}"), body).into_response())
}
