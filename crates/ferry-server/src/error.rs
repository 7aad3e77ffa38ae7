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
            AppError::Engine(e) => {
                let mut body = e.body();
                body.message = hide_urls(&body.message);
                body
            }
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
    pub fn json(&self) -> ErrorEnvelope {
        ErrorEnvelope { error: self.body() }
    }
}

/// What every failed API call answers: `{"error": {code, message, hint}}`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// `message` with every URL (`scheme://...`) replaced by a placeholder:
/// the engine masks a database URL's password, but a page or an API
/// answer names no database URL at all (user, host and database name are
/// for the operator's logs and the command line, not for every user).
pub fn hide_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let body = word.trim_start_matches(['`', '(', '"', '\'']);
        let is_url = body.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && !rest.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        });
        if !is_url {
            out.push_str(word);
            continue;
        }
        let lead = &word[..word.len() - body.len()];
        let tail_at = body.trim_end_matches(['`', ')', '"', '\'', ':', ',', ';', '.']).len();
        out.push_str(lead);
        out.push_str("(database URL hidden)");
        out.push_str(&body[tail_at..]);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::hide_urls;

    #[test]
    fn urls_are_hidden_from_messages_and_the_rest_kept() {
        assert_eq!(
            hide_urls("environment `remote`: cannot connect to postgres://u:***@db:5432/app: refused"),
            "environment `remote`: cannot connect to (database URL hidden): refused"
        );
        assert_eq!(
            hide_urls("`mysql://root@127.0.0.1/x` failed."),
            "`(database URL hidden)` failed."
        );
        assert_eq!(hide_urls("no url: a://"), "no url: a://");
        assert_eq!(hide_urls("plain text stays"), "plain text stays");
    }
}
