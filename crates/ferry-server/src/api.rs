//! The JSON API under `/api/v1`: the CLI's operations and listings for
//! programs, with the same rules (the engine enforces them). Bearer tokens
//! or a browser session; a session's state-changing calls carry the CSRF
//! token (`X-CSRF-Token`) and a matching `Origin`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::AppState;

/// A failed API call: the error body with its status.
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::api_error(self.0)
    }
}

/// What an API handler returns.
pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/environments", get(environments))
}

/// One environment as `GET /api/v1/environments` lists it.
#[derive(Serialize)]
pub struct EnvironmentView {
    pub name: String,
    pub engine: Option<String>,
    pub healthy: bool,
    pub pipeline_index: Option<usize>,
    pub promotes_to: Option<String>,
    /// Why it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/environments`: every environment, with whether its
/// database answers.
async fn environments(State(state): State<AppState>, _user: CurrentUser) -> ApiResult<Vec<EnvironmentView>> {
    let config = &state.envs.project().config;
    let mut out = Vec::new();
    for name in config.environments_in_order() {
        let index = config.pipeline.iter().position(|p| p == name);
        let promotes_to = match index {
            Some(i) => config.pipeline.get(i + 1).cloned(),
            None => config.environments.get(name).and_then(|e| e.promotes_to.clone()),
        };
        let (engine, healthy, error) = match state.envs.open(name).await {
            Ok(store) => (Some(store.engine().to_string()), true, None),
            Err(e) => (None, false, Some(e.to_string())),
        };
        out.push(EnvironmentView {
            name: name.to_string(),
            engine,
            healthy,
            pipeline_index: index,
            promotes_to,
            error,
        });
    }
    Ok(Json(out))
}
