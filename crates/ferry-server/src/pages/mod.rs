//! The web UI: server-rendered HTML (maud), plain forms that work without
//! JavaScript, and stable `data-testid` attributes (docs/server.md lists
//! them). Each page module has its handlers and its markup; every handler
//! takes the [`CurrentUser`](crate::auth::CurrentUser), calls the engine,
//! and renders.

pub mod audit;
pub mod cells;
pub mod changes;
pub mod diffview;
pub mod environments;
pub mod history;
pub mod layout;
pub mod login;
pub mod overview;
pub mod paging;
pub mod refresh;
pub mod reviews;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::AppError;
use crate::AppState;

/// The pages' routes (sign-in is in `auth`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/reviews", get(reviews::list))
        .route("/reviews/{id}", get(reviews::show))
        .route("/reviews/{id}/approve", post(reviews::approve))
        .route("/reviews/{id}/reject", post(reviews::reject))
        .route("/history", get(history::list))
        .route("/promotions/{id}", get(history::show))
        .route("/promotions/{id}/revert", post(history::revert))
        .route("/audit", get(audit::list))
        .route("/overview/refresh", post(overview::refresh))
        .route("/changes", get(changes::page))
        .route("/changes/transfer", post(changes::transfer))
        .route("/environments", get(environments::page))
        .route("/environments/{name}/merged", post(environments::merged))
        .route(
            "/environments/{name}/destroy",
            get(environments::destroy_preview).post(environments::destroy),
        )
        .route("/refresh", get(refresh::page).post(refresh::apply))
}

/// An error on a page: the page layout with the message, and the status
/// the API would answer.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> PageError {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = &self.0;
        if matches!(e, AppError::Unauthorized) {
            return axum::response::Redirect::to("/login").into_response();
        }
        (e.status(), layout::error_page(e)).into_response()
    }
}

/// What a page handler returns.
pub type PageResult = Result<Response, PageError>;

/// `s` percent-encoded for a query parameter.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
