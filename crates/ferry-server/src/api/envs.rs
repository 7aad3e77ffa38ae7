//! `/api/v1/envs`: the per-branch environments (`ferry env list --json`),
//! marked merged and destroyed through the engine's `ops::env`, with the
//! same `envs` right.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferry_engine::ops::env;
use ferry_engine::views::BranchEnvView;
use ferry_engine::Error;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::AppState;

/// The TTL `merged` takes when none is given (as `ferry env merged`).
pub const DEFAULT_TTL: &str = "7d";

/// `GET /api/v1/envs`: every per-branch environment with its changes
/// waiting for its `promotes_to`, as `ferry env list --json` prints it. A
/// configured environment whose registry cannot be read fails the listing
/// with its error (a listing never looks complete when it is not).
pub async fn list(State(state): State<AppState>, _user: CurrentUser) -> ApiResult<Vec<BranchEnvView>> {
    let envs = state.envs_rediscovered().await?;
    let (listed, unreachable) = env::list(&envs).await?;
    if let Some((_, e)) = unreachable.into_iter().next() {
        return Err(ApiError(AppError::Engine(e)));
    }
    Ok(Json(
        listed
            .iter()
            .map(|l| BranchEnvView::with_pending(&l.record, &l.pending))
            .collect(),
    ))
}

/// `POST /envs/{name}/merged` body.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergedBody {
    /// How long after now it expires: `30m`, `12h`, `7d` (the default).
    ttl: Option<String>,
}

/// `POST /api/v1/envs/{name}/merged`: records the merge now; the
/// environment expires `ttl` later. 200 with the environment.
pub async fn merged(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<MergedBody>, ApiError>,
) -> ApiResult<BranchEnvView> {
    user.check_csrf(&headers, None)?;
    let ApiJson(b) = body?;
    let ttl = b.ttl.as_deref().unwrap_or(DEFAULT_TTL);
    let secs = ferry_core::branch::parse_ttl(ttl).map_err(|e| AppError::BadRequest(format!("ttl: {e}")))?;
    let envs = state.envs_rediscovered().await?;
    let record = env::merged(&envs, &name, secs, &user.name).await?;
    Ok(Json(BranchEnvView::new(&record)))
}

/// `DELETE /envs/{name}` body.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyBody {
    /// Destroy even when changes are not promoted into `promotes_to` yet
    /// (or cannot be read).
    #[serde(default)]
    force: bool,
}

/// The 409 of a destroy that would lose changes: the error, and the
/// environment with its pending changes.
#[derive(Serialize)]
struct WouldLose {
    error: ferry_engine::error::ErrorBody,
    env: BranchEnvView,
}

/// `DELETE /api/v1/envs/{name}`: drops the clone's database and its record.
/// When changes are not promoted into its `promotes_to` yet (or they
/// cannot be read), 409 with them and nothing destroyed, unless
/// `{"force": true}`. 200 with the environment destroyed.
pub async fn destroy(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    body: Result<ApiJson<DestroyBody>, ApiError>,
) -> Result<Response, ApiError> {
    user.check_csrf(&headers, None)?;
    let ApiJson(b) = body?;
    let envs = state.envs_rediscovered().await?;
    let prepared = env::prepare_destroy(&envs, &name, &user.name).await?;
    if !b.force {
        if let Some(message) = refusal(&prepared) {
            let e = AppError::Engine(Error::Blocked(message));
            let body = WouldLose {
                error: e.body(),
                env: BranchEnvView::with_pending(&prepared.record, &prepared.pending),
            };
            return Ok((StatusCode::CONFLICT, Json(body)).into_response());
        }
    }
    let (from, to) = (prepared.record.name.clone(), prepared.record.promotes_to.clone());
    let record = prepared.commit(&user.name).await?;
    state.envs_rediscovered().await?;
    state.pending.forget(&from, &to);
    Ok(Json(BranchEnvView::new(&record)).into_response())
}

/// Why a destroy without `force` is refused (`None`: it loses nothing).
pub fn refusal(p: &env::PreparedDestroy<'_>) -> Option<String> {
    let b = &p.record;
    match p.loses() {
        Ok(0) => None,
        Ok(n) => {
            let c = p.pending.as_ref().ok()?;
            Some(format!(
                "destroying `{}` (branch {}) would lose {n} change(s) not promoted into `{}` ({} insert, {} update, {} delete, {} conflict); nothing was destroyed. Promote them first, or destroy it anyway with force",
                b.name, b.branch, b.promotes_to, c.insert, c.update, c.delete, c.conflict
            ))
        }
        Err(e) => Some(format!(
            "what destroying `{}` (branch {}) would lose cannot be read ({e}); nothing was destroyed. Destroy it anyway with force",
            b.name, b.branch
        )),
    }
}
