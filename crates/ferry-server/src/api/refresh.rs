//! `/api/v1/refresh`: the preview of `ferry refresh ENV --from ENV2` and
//! the refresh itself, through the engine's `ops::refresh` (the same
//! direction rule, `refresh` right, journal and audit).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use ferry_engine::ops::refresh::{self, RefreshRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::views::RefreshView;
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /refresh` query.
#[derive(Deserialize)]
pub struct PreviewQuery {
    env: String,
    from: String,
    #[serde(default)]
    drop_excluded: bool,
}

/// `GET /api/v1/refresh?env=E&from=E2[&drop_excluded=true]`: what the
/// refresh would discard and what comes down, as `ferry refresh E --from
/// E2 --dry-run --json` prints it (`dry_run` true, `refresh` null); 409
/// for a direction the pipeline refuses. Writes nothing, takes no lock.
pub async fn preview(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<RefreshView> {
    let envs = state.envs_knowing(&[&q.env, &q.from]).await?;
    let req = RefreshRequest {
        env: q.env,
        from: q.from,
        user: user.name,
        drop_excluded: q.drop_excluded,
        dry_run: true,
        wait: false,
    };
    let prepared = refresh::prepare(&envs, req, &Quiet).await?;
    Ok(Json(prepared.view()))
}

/// `POST /refresh` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    env: String,
    from: String,
    /// Delete the excluded rows of `env` that reference a row the refresh
    /// deletes (otherwise such a row refuses the refresh, 409).
    #[serde(default)]
    drop_excluded: bool,
}

/// `POST /api/v1/refresh {"env","from","drop_excluded"?}`: refreshes,
/// waiting for another writer of `env`; 200 with what `ferry refresh
/// --json --yes` prints (`refresh`: the journal id, revertible). 403
/// without the `refresh` right, 409 for a refused direction or blocking
/// excluded rows.
pub async fn apply(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    body: Result<ApiJson<RefreshBody>, ApiError>,
) -> ApiResult<RefreshView> {
    user.check_csrf(&headers, None)?;
    let ApiJson(b) = body?;
    let envs = state.envs_knowing(&[&b.env, &b.from]).await?;
    let req = RefreshRequest {
        env: b.env,
        from: b.from,
        user: user.name,
        drop_excluded: b.drop_excluded,
        dry_run: false,
        wait: true,
    };
    let view = run(&state, &envs, req).await?;
    Ok(Json(view))
}

/// Prepares and, unless it writes nothing, commits a refresh; the view of
/// what it did. The pages' refresh goes through here too.
pub async fn run(
    state: &AppState,
    envs: &ferry_engine::registry::Envs,
    req: RefreshRequest,
) -> ferry_engine::Result<RefreshView> {
    let env = req.env.clone();
    let prepared = refresh::prepare(envs, req, &Quiet).await?;
    let view = prepared.view();
    if prepared.writes_nothing() {
        return Ok(view);
    }
    let next = prepared.next.clone();
    let done = prepared.commit().await?;
    state.pending.after_write(&env);
    state.pending.after_write(&next);
    Ok(view.done(&done))
}
