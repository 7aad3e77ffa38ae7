//! The overview: the pipeline as it is, what waits between adjacent
//! environments (computed in the background: the page shows the last
//! result and its age, never waits for a plan), and each environment's
//! health and last promotions.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum_extra::extract::Form;
use chrono::Utc;
use ferry_engine::registry::Envs;
use ferry_engine::views::JournalEntryView;
use ferry_engine::{journal, reviews};
use maud::{html, Markup};
use serde::Deserialize;

use super::changes::changes_href;
use super::{encode, layout, PageResult};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::pending::PairStatus;
use crate::AppState;

/// How long the page waits for one environment's store and last
/// promotions before it shows the environment as not answering.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// How soon a page that shows a step still computing its first counts
/// reloads itself, in seconds.
pub const RELOAD_SECS: u32 = 2;

/// How many promotions per environment the page lists.
const RECENT: usize = 3;

/// One environment's state as the overview shows it.
struct EnvState {
    name: String,
    /// The engine, the newest promotions and (in an environment that takes
    /// reviews) how many reviews are open, or why the store did not answer.
    health: Result<Health, String>,
}

struct Health {
    engine: String,
    recent: Vec<JournalEntryView>,
    open_reviews: Option<usize>,
}

/// `GET /`: the pipeline, what waits per step, each environment's health.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    let envs = state.envs();
    let config = &envs.project().config;
    let routes = config.routes();
    for (from, to) in &routes {
        state.pending.ensure(from, to);
    }
    let names: Vec<String> = config.environments_in_order().into_iter().map(str::to_string).collect();
    let envs = futures_util::future::join_all(names.iter().map(|n| env_state(state.envs(), n.clone()))).await;
    let outside: Vec<&String> = names.iter().filter(|n| !config.pipeline.contains(n)).collect();
    let statuses: Vec<_> = routes
        .iter()
        .map(|(from, to)| (from, to, state.pending.status(from, to)))
        .collect();
    // A step without counts yet shows "computing…": the page reloads by
    // itself until every step has some, so nobody waits on a dead page.
    let reload_after = statuses.iter().any(|(_, _, s)| s.last.is_none()).then_some(RELOAD_SECS);
    let body = html! {
        h1 { "Overview" }
        section.pipeline data-testid="pipeline" {
            @for (i, env) in config.pipeline.iter().enumerate() {
                @if i > 0 { span.arrow { "→" } }
                span.env data-testid="env" data-env=(env) { (env) }
            }
        }
        @if !outside.is_empty() {
            p.muted data-testid="outside-pipeline" {
                "Outside the pipeline: "
                @for (i, env) in outside.iter().enumerate() {
                    @if i > 0 { ", " }
                    span data-testid="env" data-env=(env) { (env) }
                }
            }
        }
        h2 { "What waits" }
        div.steps {
            @for (from, to, status) in &statuses {
                (step(&user, from, to, status))
            }
        }
        form method="post" action="/overview/refresh" {
            (layout::csrf_field(&user))
            button.secondary type="submit" data-testid="refresh-all" { "Refresh every step" }
        }
        h2 { "Environments" }
        table data-testid="environments" {
            tr { th { "environment" } th { "database" } th { "open reviews" } th { "last promotions" } }
            @for e in &envs { (env_row(e)) }
        }
    };
    Ok(layout::page_reloading(&user, "Overview", body, reload_after).into_response())
}

/// One step of the pipeline: its counts (or "computing…"), their age, and
/// a refresh button.
fn step(user: &CurrentUser, from: &str, to: &str, status: &PairStatus) -> Markup {
    let state = match (&status.last, status.running) {
        (None, _) => "computing",
        (Some(c), _) if c.result.is_err() => "failed",
        (Some(_), _) => "ready",
    };
    html! {
        div.step data-testid="pending" data-from=(from) data-to=(to) data-state=(state) {
            h3 { a href=(changes_href(from, to, None)) data-testid="step-link" { (from) " → " (to) } }
            @match &status.last {
                None => { p.muted data-testid="pending-computing" { "computing…" } }
                Some(c) => {
                    @match &c.result {
                        Ok(n) => {
                            ul.counts {
                                li data-testid="pending-insert" data-count=(n.insert) { (n.insert) " to insert" }
                                li data-testid="pending-update" data-count=(n.update) { (n.update) " to update" }
                                li data-testid="pending-delete" data-count=(n.delete) { (n.delete) " to delete" }
                                li data-testid="pending-conflict" data-count=(n.conflict) { (n.conflict) " in conflict" }
                                li data-testid="pending-target-newer" data-count=(n.target_newer) { (n.target_newer) " newer in " (to) }
                            }
                            @if n.is_empty() { p.muted { (to) " has everything " (from) " has." } }
                        }
                        Err(why) => { (layout::notice("error", why)) }
                    }
                    p.muted data-testid="pending-age" {
                        "computed " (age(Utc::now() - c.at)) " ago, in " (format!("{:.1}", c.took.as_secs_f64())) " s"
                        @if status.running { " · computing again…" }
                    }
                }
            }
            form method="post" action="/overview/refresh" {
                (layout::csrf_field(user))
                input type="hidden" name="from" value=(from);
                input type="hidden" name="to" value=(to);
                button.secondary type="submit" data-testid="refresh" disabled[status.running] { "Refresh" }
            }
        }
    }
}

/// A duration as a person reads it: `12 s`, `3 min`, `2 h`, `4 d`.
fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// Opens the environment's store and reads its newest promotions, within
/// [`HEALTH_TIMEOUT`].
async fn env_state(envs: Arc<Envs>, name: String) -> EnvState {
    let look = async {
        let store = envs.open(&name).await.map_err(|e| e.to_string())?;
        let recent = journal::newest(&*store, RECENT).await.map_err(|e| e.to_string())?;
        let open_reviews = match envs.project().env_config(&name).map_err(|e| e.to_string())?.review {
            true => Some(reviews::open(&*store).await.map_err(|e| e.to_string())?.len()),
            false => None,
        };
        Ok(Health {
            engine: store.engine().to_string(),
            recent: recent.iter().map(JournalEntryView::new).collect(),
            open_reviews,
        })
    };
    let health = match tokio::time::timeout(HEALTH_TIMEOUT, look).await {
        Ok(r) => r,
        Err(_) => Err(format!("{name}: no answer within {} s", HEALTH_TIMEOUT.as_secs())),
    };
    EnvState { name, health }
}

fn env_row(e: &EnvState) -> Markup {
    html! {
        tr data-testid="env-health" data-env=(e.name) data-healthy=(e.health.is_ok()) {
            td { strong { (e.name) } }
            @match &e.health {
                Ok(h) => {
                    td { span.ok { "answers" } " " span.muted { "(" (h.engine) ")" } }
                    td {
                        @match h.open_reviews {
                            Some(n) => {
                                a href=(format!("/reviews?env={}", encode(&e.name))) data-testid="open-reviews" data-count=(n) {
                                    (n) " open"
                                }
                            }
                            None => { span.muted { "takes no reviews" } }
                        }
                    }
                    td {
                        @if h.recent.is_empty() { span.muted { "none yet" } }
                        @for p in &h.recent {
                            div data-testid="recent-promotion" {
                                a href=(format!("/promotions/{}", encode(&p.id))) { code { (p.id) } }
                                " " (p.kind) " by " (p.user) " at " (p.at)
                                @if let Some(f) = &p.from { " from " (f) }
                            }
                        }
                        div { a.muted href=(format!("/history?env={}", encode(&e.name))) { "all promotions in " (e.name) } }
                    }
                }
                Err(why) => {
                    td colspan="3" { (layout::notice("error", why)) }
                }
            }
        }
    }
}

/// The form of `POST /overview/refresh`: one step, or every step.
#[derive(Debug, Deserialize)]
pub struct RefreshForm {
    pub from: Option<String>,
    pub to: Option<String>,
    pub csrf_token: Option<String>,
}

/// `POST /overview/refresh`: starts new computations (never waits for
/// them) and goes back to the overview.
pub async fn refresh(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<RefreshForm>,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let envs = state.envs();
    let config = &envs.project().config;
    let routes = config.routes();
    match (form.from.as_deref(), form.to.as_deref()) {
        (Some(from), Some(to)) => {
            if !routes.contains(&(from, to)) {
                return Err(AppError::BadRequest(format!(
                    "{from} -> {to} is not a step of the pipeline or a declared route; nothing to refresh"
                ))
                .into());
            }
            state.pending.refresh(from, to);
        }
        (None, None) => {
            for (from, to) in &routes {
                state.pending.refresh(from, to);
            }
        }
        _ => {
            return Err(AppError::BadRequest(
                "refresh one step with both `from` and `to`, or every step with neither".into(),
            )
            .into())
        }
    }
    Ok(Redirect::to("/").into_response())
}
