//! Errors as the server answers them: an HTTP status mapped from the
//! engine's code, and the engine's front-end-neutral body
//! `{"error": {"code", "message", "hint"}}` (the API) or a page saying it
//! (the browser).

use axum::http::StatusCode;
use ferry_engine::error::{ErrorBody, Hint};

/// Anything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] ferry_engine::Error),
    /// No session or token, or one that is no longer valid.
    #[error("sign in first: this needs a signed-in user or an API token")]
    Unauthorized,
    /// A state-changing browser request without a matching CSRF token or
    /// Origin.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Too many failed sign-ins.
    #[error("{0}")]
    TooMany(String),
    /// The server's own state store failed.
    #[error(transparent)]
    State(#[from] crate::accounts::StateError),
    /// Anything else.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl AppError {
    /// The HTTP status: 400 usage, 401, 403 access or CSRF, 404, 409
    /// blocked (conflicts, gates, stale plan hash, pipeline order, open
    /// review, busy target), 422 data the target cannot hold, 502 a
    /// database unreachable or failing.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Engine(e) => engine_status(e),
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::State(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body: the engine's own for its errors.
    pub fn body(&self) -> ErrorBody {
        match self {
            AppError::Engine(e) => e.body(),
            other => ErrorBody {
                code: match other {
                    AppError::Unauthorized => "unauthorized",
                    AppError::Forbidden(_) => "forbidden",
                    AppError::NotFound(_) => "not-found",
                    AppError::BadRequest(_) => "usage",
                    AppError::TooMany(_) => "too-many",
                    _ => "error",
                },
                message: other.to_string(),
                hint: None,
            },
        }
    }

    /// The JSON of the body, `{"error": {...}}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.body() })
    }
}

fn engine_status(e: &ferry_engine::Error) -> StatusCode {
    // An id that names no promotion or review is a missing resource.
    if matches!(
        e.hint_of(),
        Some(Hint::ListPromotions { .. } | Hint::ListReviews { .. })
    ) {
        return StatusCode::NOT_FOUND;
    }
    match e.code() {
        "usage" | "config" => StatusCode::BAD_REQUEST,
        "denied" => StatusCode::FORBIDDEN,
        "blocked" => StatusCode::CONFLICT,
        "data" => StatusCode::UNPROCESSABLE_ENTITY,
        "database" => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> AppError {
        match e.downcast::<ferry_engine::Error>() {
            Ok(engine) => AppError::Engine(engine),
            Err(e) => AppError::Internal(e),
        }
    }
}
