//! `ferry serve`: the web UI and the JSON API over the engine.
//!
//! The server parses a request, calls the engine (`ferry_engine::ops`,
//! `views`, the listings) and renders; it holds no promotion logic. Its
//! own state (users, sessions, tokens) is in [`accounts`]; roles stay in
//! `[access]`. One [`Envs`] per server caches each environment's store.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod accounts_pg;
pub mod api;
pub mod auth;
pub mod discovery;
pub mod error;
pub mod pages;
pub mod pending;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_engine::project::Project;
use ferry_engine::registry::Envs;

use crate::accounts::Accounts;
use crate::error::AppError;

/// How long a request waits for an environment's database to be opened.
pub const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What every handler shares: the environments (stores opened once and
/// kept; the per-branch environments as last discovered), the state store,
/// and whether cookies are `Secure`.
#[derive(Clone)]
pub struct AppState {
    pub discovered: Arc<discovery::Discovered>,
    pub accounts: Arc<dyn Accounts>,
    /// Served over TLS (directly or, as the operator says, behind a proxy).
    pub secure_cookies: bool,
    /// What waits between adjacent environments, computed in the
    /// background (the overview).
    pub pending: Arc<pending::Pending>,
}

impl AppState {
    pub fn new(project: Arc<Project>, accounts: Arc<dyn Accounts>, secure_cookies: bool) -> AppState {
        // A database that does not answer is a 502 after this, not a
        // request that hangs as long as the operating system waits.
        let envs = Envs::shared(project).open_timeout(OPEN_TIMEOUT);
        let discovered = Arc::new(discovery::Discovered::new(envs));
        AppState {
            pending: Arc::new(pending::Pending::new(discovered.clone())),
            discovered,
            accounts,
            secure_cookies,
        }
    }

    /// The environments known now (the configuration's and the per-branch
    /// environments last discovered), for the length of one request.
    pub fn envs(&self) -> Arc<Envs> {
        self.discovered.now()
    }

    /// [`AppState::envs`], asking the registries again first when a name
    /// of `names` is not known (a branch environment made since).
    pub async fn envs_knowing(&self, names: &[&str]) -> ferry_engine::Result<Arc<Envs>> {
        self.discovered.knowing(names).await
    }

    /// The environments known now, or asking again first when `env` is
    /// named and not known (a listing of one environment).
    pub async fn envs_for(&self, env: Option<&str>) -> ferry_engine::Result<Arc<Envs>> {
        match env {
            Some(e) => self.envs_knowing(&[e]).await,
            None => Ok(self.envs()),
        }
    }

    /// The environments as the registries say now (the listings of
    /// environments); a registry that cannot be read is logged and its
    /// branch environments kept as last known.
    pub async fn envs_rediscovered(&self) -> ferry_engine::Result<Arc<Envs>> {
        Ok(self.discovered.rediscover().await?.0)
    }
}

/// The whole application: pages, sign-in, assets and `/api/v1`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{file}", get(asset))
        .merge(pages::routes())
        .nest("/api/v1", api::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// How `ferry serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: SocketAddr,
}

/// Serves `state` on `options.bind` until the process ends; `ready` is
/// told the address bound (port 0 picks one).
pub async fn serve(state: AppState, options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.bind))?;
    ready(listener.local_addr()?);
    // The per-branch environments as the registries say, then again every
    // few seconds (made or destroyed by the command line meanwhile).
    if let Err(e) = state.discovered.rediscover().await {
        tracing::warn!("the per-branch environments could not be discovered: {e}");
    }
    state.discovered.spawn_every(discovery::REDISCOVER_EVERY);
    // What waits between the environments, computed before the first view.
    state.pending.ensure_all();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// An API error as `{"error": {"code", "message", "hint"}}` with its status.
pub fn api_error(e: AppError) -> Response {
    if let AppError::Internal(inner) = &e {
        tracing::error!("{inner:#}");
    }
    (e.status(), Json(e.json())).into_response()
}

/// Headers on every answer: a Content-Security-Policy that allows no
/// inline script or style and no other site, and no framing or sniffing.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The embedded assets (no Node toolchain: two hand-written files).
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ferry.css" => (include_str!("../assets/ferry.css"), "text/css; charset=utf-8"),
        "ferry.js" => (include_str!("../assets/ferry.js"), "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(request: Request) -> Response {
    let e = AppError::NotFound(format!("nothing at {}", request.uri().path()));
    if request.uri().path().starts_with("/api/") {
        api_error(e)
    } else {
        pages::PageError(e).into_response()
    }
}
