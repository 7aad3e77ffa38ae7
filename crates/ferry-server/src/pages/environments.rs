//! The environments: every one with its engine, health and place in the
//! pipeline; the per-branch ones with their branch, parent, creation,
//! merge and expiry, and what waits towards their `promotes_to` (computed
//! in the background, as on the overview). Users with the `envs` right on
//! a branch environment's parent mark it merged, and destroy it after a
//! preview of the unpromoted changes it would lose. Everything goes
//! through the engine's `ops::env`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum_extra::extract::Form;
use ferry_core::access::{self, Right};
use ferry_engine::journal;
use ferry_engine::ops::env::{self, BranchEnvRecord};
use ferry_engine::registry::Envs;
use maud::{html, Markup};
use serde::Deserialize;

use super::changes::changes_href;
use super::overview::RELOAD_SECS;
use super::{encode, layout, PageResult};
use crate::api::envs::{refusal, DEFAULT_TTL};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::pending::PairStatus;
use crate::AppState;

/// How long the page waits for one environment's store.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `user` may mark merged and destroy the clones of `parent`.
fn may_manage(envs: &Envs, user: &CurrentUser, parent: &str) -> bool {
    access::check(envs.project().config.access.as_ref(), &user.name, Right::Envs, parent).is_ok()
}

/// `GET /environments`: every environment, the per-branch ones as the
/// registries say now.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    let envs = state.envs_rediscovered().await?;
    let project = envs.project();
    let config = &project.config;
    let names: Vec<&str> = config.environments_in_order();
    let shared = &envs;
    let health = futures_util::future::join_all(names.iter().map(|n| async move {
        let envs = shared;
        match tokio::time::timeout(HEALTH_TIMEOUT, envs.open(n)).await {
            Ok(Ok(store)) => Ok(store.engine().to_string()),
            Ok(Err(e)) => Err(crate::error::hide_urls(&e.to_string())),
            Err(_) => Err(format!("{n}: no answer within {} s", HEALTH_TIMEOUT.as_secs())),
        }
    }))
    .await;
    let now = journal::stamp_text(journal::now());
    let mut computing = false;
    let rows: Vec<Markup> = names
        .iter()
        .zip(&health)
        .map(|(name, health)| {
            let position = match config.pipeline.iter().position(|p| p == name) {
                Some(i) => format!("{} of {} in the pipeline", i + 1, config.pipeline.len()),
                None => match config.environments.get(*name).and_then(|e| e.promotes_to.as_deref()) {
                    Some(to) => format!("outside the pipeline, promotes to {to}"),
                    None => "outside the pipeline".to_string(),
                },
            };
            let branch = project.branch(name).map(|b| {
                state.pending.ensure(&b.name, &b.promotes_to);
                let status = state.pending.status(&b.name, &b.promotes_to);
                computing |= status.last.is_none();
                (b, status)
            });
            env_row(&envs, &user, name, health, &position, branch, &now)
        })
        .collect();
    let refreshable: Vec<&String> = config.pipeline.iter().rev().skip(1).rev().collect();
    let body = html! {
        h1 { "Environments" }
        table data-testid="environments-list" {
            thead { tr { th { "environment" } th { "database" } th { "place" } th { "branch" } th { "waiting" } th { "" } } }
            tbody { @for r in &rows { (r) } }
        }
        @if let (false, Some(last)) = (refreshable.is_empty(), config.pipeline.last()) {
            h2 { "Refresh" }
            p.muted { "Reset a lower environment to match " (last) " (what it would discard is shown first):" }
            ul {
                @for e in &refreshable {
                    li { a href=(format!("/refresh?env={}&from={}", encode(e), encode(last))) data-testid="refresh-link" data-env=(e) {
                        "Refresh " (e) " from " (last) } }
                }
            }
        }
    };
    let reload = computing.then_some(RELOAD_SECS);
    Ok(layout::page_reloading(&user, "Environments", body, reload).into_response())
}

/// One environment's row; a branch environment's with its record, what
/// waits and, for who may, its actions.
fn env_row(
    envs: &Envs,
    user: &CurrentUser,
    name: &str,
    health: &Result<String, String>,
    position: &str,
    branch: Option<(&BranchEnvRecord, PairStatus)>,
    now: &str,
) -> Markup {
    html! {
        tr data-testid="env-row" data-env=(name) data-healthy=(health.is_ok()) data-branch=[branch.as_ref().map(|(b, _)| &b.branch)] {
            td { strong { (name) } }
            td {
                @match health {
                    Ok(engine) => { span.ok { "answers" } " " span.muted { "(" (engine) ")" } }
                    Err(why) => { (layout::notice("error", why)) }
                }
            }
            td data-testid="env-place" { (position) }
            @match &branch {
                None => { td.muted { "—" } td.muted { "—" } td {} }
                Some((b, status)) => {
                    td {
                        dl.facts {
                            dt { "branch" } dd data-testid="env-branch" { (b.branch) }
                            dt { "cloned from" } dd data-testid="env-parent" { (b.from) }
                            dt { "created" } dd { (b.created_by) " at " span.mono { (b.created_at) } }
                            dt { "merged" } dd data-testid="env-merged-at" {
                                @match &b.merged_at { Some(m) => span.mono { (m) }, None => span.muted { "not yet" } }
                            }
                            @if let Some(e) = &b.expires_at {
                                dt { "expires" } dd data-testid="env-expires-at" {
                                    span.mono { (e) }
                                    @if env::is_expired(b, now) { " " span.badge.expired data-testid="env-expired" { "expired" } }
                                }
                            }
                        }
                    }
                    td { (waiting(b, status)) }
                    td {
                        @if may_manage(envs, user, &b.from) {
                            form method="post" action=(format!("/environments/{}/merged", encode(&b.name))) {
                                (layout::csrf_field(user))
                                label { "expires after " input type="text" name="ttl" value=(DEFAULT_TTL) size="4" data-testid="env-ttl"; }
                                " "
                                button.secondary type="submit" data-testid="env-merged" { "Mark merged" }
                            }
                            a.button.danger href=(format!("/environments/{}/destroy", encode(&b.name))) data-testid="env-destroy" { "Destroy…" }
                        } @else {
                            span.muted { "the envs right on " (b.from) " manages it" }
                        }
                    }
                }
            }
        }
    }
}

/// What waits from a branch environment towards its `promotes_to`.
fn waiting(b: &BranchEnvRecord, status: &PairStatus) -> Markup {
    html! {
        div data-testid="env-pending" data-to=(b.promotes_to) {
            a href=(changes_href(&b.name, &b.promotes_to, None)) { "→ " (b.promotes_to) }
            @match &status.last {
                None => { p.muted { "computing…" } }
                Some(c) => {
                    @match &c.result {
                        Ok(n) => {
                            p data-count=(n.insert + n.update + n.delete + n.conflict) {
                                (n.insert) " to insert, " (n.update) " to update, " (n.delete) " to delete, " (n.conflict) " in conflict"
                            }
                        }
                        Err(why) => { (layout::notice("error", why)) }
                    }
                }
            }
        }
    }
}

/// The form of `POST /environments/{name}/merged`.
#[derive(Debug, Deserialize)]
pub struct MergedForm {
    pub csrf_token: Option<String>,
    pub ttl: Option<String>,
}

/// `POST /environments/{name}/merged`: records the merge (the engine
/// checks the `envs` right) and goes back to the list.
pub async fn merged(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<MergedForm>,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let ttl = form
        .ttl
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_TTL);
    let secs = ferry_core::branch::parse_ttl(ttl).map_err(|e| AppError::BadRequest(format!("expires after: {e}")))?;
    let envs = state.envs_rediscovered().await?;
    env::merged(&envs, &name, secs, &user.name).await?;
    Ok(Redirect::to("/environments").into_response())
}

/// `GET /environments/{name}/destroy`: what destroying it loses, and the
/// button that does it (the engine refuses a user without the right).
pub async fn destroy_preview(State(state): State<AppState>, user: CurrentUser, Path(name): Path<String>) -> PageResult {
    let envs = state.envs_rediscovered().await?;
    let prepared = env::prepare_destroy(&envs, &name, &user.name).await?;
    let body = destroy_body(&user, &prepared, None);
    Ok(layout::page(&user, &format!("Destroy {name}"), body).into_response())
}

/// The preview of a destroy; `refused`: why the last confirmation was not
/// carried out.
fn destroy_body(user: &CurrentUser, p: &env::PreparedDestroy<'_>, refused: Option<&str>) -> Markup {
    let b = &p.record;
    html! {
        h1 { "Destroy " (b.name) }
        @if let Some(why) = refused { (layout::notice("error", why)) }
        p { "Branch " strong { (b.branch) } ", cloned from " (b.from) " by " (b.created_by) " at " span.mono { (b.created_at) }
            "; it promotes into " (b.promotes_to) "." }
        @match &p.pending {
            Ok(c) if env::unpromoted(c) == 0 => {
                p data-testid="destroy-loses" data-count="0" { "Every change is promoted into " (b.promotes_to) ": nothing is lost." }
            }
            Ok(c) => {
                div.notice.warning data-testid="destroy-loses" data-count=(env::unpromoted(c)) {
                    (env::unpromoted(c)) " change(s) not promoted into " (b.promotes_to) " would be lost: "
                    (c.insert) " insert, " (c.update) " update, " (c.delete) " delete, " (c.conflict) " conflict. "
                    a href=(changes_href(&b.name, &b.promotes_to, None)) { "See them" }
                }
            }
            Err(e) => {
                div.notice.warning data-testid="destroy-loses" {
                    "What would be lost cannot be read: " (crate::error::hide_urls(&e.to_string()))
                }
            }
        }
        form method="post" action=(format!("/environments/{}/destroy", encode(&b.name))) {
            (layout::csrf_field(user))
            input type="hidden" name="seen" value=(seen(p));
            button.danger type="submit" data-testid="env-destroy-confirm"
                data-confirm=(format!("Destroy {} (its database and its record)?", b.name)) { "Destroy " (b.name) }
            " " a href="/environments" { "Cancel" }
        }
    }
}

/// What the preview showed, so a confirmation given on other numbers is
/// shown the new ones instead of carried out.
fn seen(p: &env::PreparedDestroy<'_>) -> String {
    match &p.pending {
        Ok(c) => format!("{},{},{},{}", c.insert, c.update, c.delete, c.conflict),
        Err(_) => "unread".to_string(),
    }
}

/// The form of `POST /environments/{name}/destroy`.
#[derive(Debug, Deserialize)]
pub struct DestroyForm {
    pub csrf_token: Option<String>,
    /// What the preview showed would be lost.
    pub seen: Option<String>,
}

/// `POST /environments/{name}/destroy`: destroys it when what it loses
/// is what the preview showed (else the preview again, 409).
pub async fn destroy(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<DestroyForm>,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let envs = state.envs_rediscovered().await?;
    let prepared = env::prepare_destroy(&envs, &name, &user.name).await?;
    if form.seen.as_deref() != Some(seen(&prepared).as_str()) {
        let why = format!(
            "What {name} would lose changed since the preview; nothing was destroyed. {}",
            refusal(&prepared).unwrap_or_default()
        );
        let body = destroy_body(&user, &prepared, Some(&why));
        let page = layout::page(&user, &format!("Destroy {name}"), body);
        return Ok((StatusCode::CONFLICT, page).into_response());
    }
    let (from, to) = (prepared.record.name.clone(), prepared.record.promotes_to.clone());
    let b = prepared.commit(&user.name).await?;
    state.envs_rediscovered().await?;
    state.pending.forget(&from, &to);
    let body = html! {
        h1 { "Destroyed" }
        (layout::notice("ok", &format!("{} (branch {}) destroyed: its database and its record are gone.", b.name, b.branch)))
        p { a href="/environments" data-testid="back-to-environments" { "Back to the environments" } }
    };
    Ok(layout::page(&user, &format!("Destroyed {name}"), body).into_response())
}
