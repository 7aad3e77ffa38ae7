//! Who is asking: a browser session (the `ferry_session` cookie, set by
//! the sign-in form) or an API token (`Authorization: Bearer TOKEN`).
//! Every page and API call needs one; state-changing browser requests also
//! carry the session's CSRF token and a matching `Origin`.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::Form;
use chrono::{Duration, Utc};
use serde::Deserialize;

use crate::accounts::{self, Session};
use crate::error::AppError;
use crate::pages::{self, layout};
use crate::AppState;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "ferry_session";

/// Failed sign-ins of one user allowed in [`FAILURE_WINDOW_MINUTES`]
/// before further attempts are refused (even with the right password).
pub const MAX_FAILURES: u64 = 5;
pub const FAILURE_WINDOW_MINUTES: i64 = 5;

/// The signed-in user of a request.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub name: String,
    /// The session's CSRF token; `None` for a bearer token, which needs none.
    pub csrf: Option<String>,
}

impl CurrentUser {
    /// Refuses a state-changing request of a browser session whose CSRF
    /// token (`given`: the form field `csrf_token` or the header
    /// `X-CSRF-Token`) or `Origin` does not match. Token requests pass.
    pub fn check_csrf(&self, headers: &HeaderMap, given: Option<&str>) -> Result<(), AppError> {
        let Some(expected) = &self.csrf else {
            return Ok(());
        };
        let given = given.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
        let same = given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()));
        if !same {
            return Err(AppError::Forbidden(
                "this request carries no valid CSRF token (the form field `csrf_token` or the header `X-CSRF-Token`); reload the page and try again"
                    .into(),
            ));
        }
        check_origin(headers)
    }
}

/// Refuses a request whose `Origin` is missing or names another host than
/// the one the request was sent to.
pub fn check_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h.trim_end_matches('/'));
    match (host, origin_host) {
        (Some(h), Some(o)) if h.eq_ignore_ascii_case(o) => Ok(()),
        (_, None) => Err(AppError::Forbidden(
            "this request has no Origin header; a browser sends one with every form, a script must send `Origin: http://HOST`".into(),
        )),
        _ => Err(AppError::Forbidden(format!(
            "this request comes from another site (Origin `{}`); nothing was done",
            origin.unwrap_or_default()
        ))),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request has no user: an API call gets 401 JSON, a page a
/// redirect to the sign-in form.
pub enum NoUser {
    Api(AppError),
    Page { next: String },
}

impl IntoResponse for NoUser {
    fn into_response(self) -> Response {
        match self {
            NoUser::Api(e) => crate::api_error(e),
            NoUser::Page { next } => Redirect::to(&format!("/login?next={}", pages::encode(&next))).into_response(),
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = NoUser;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Nested routers see their path without the prefix: the original
        // URI tells an API call from a page.
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let api = uri.path().starts_with("/api/");
        let fail = |e: AppError| {
            if api {
                NoUser::Api(e)
            } else {
                NoUser::Page {
                    next: uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string()),
                }
            }
        };
        if let Some(auth) = parts.headers.get(AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|a| a.strip_prefix("Bearer "))
                .ok_or_else(|| fail(AppError::Unauthorized))?;
            let user = state
                .accounts
                .token_user(&accounts::digest(token.trim()))
                .await
                .map_err(|e| fail(e.into()))?;
            return match user {
                Some(name) => Ok(CurrentUser { name, csrf: None }),
                None => Err(fail(AppError::Unauthorized)),
            };
        }
        let Some(id) = session_cookie(&parts.headers) else {
            return Err(fail(AppError::Unauthorized));
        };
        match state.accounts.session(&accounts::digest(&id)).await {
            Ok(Some(s)) => Ok(CurrentUser {
                name: s.user,
                csrf: Some(s.csrf),
            }),
            Ok(None) => Err(fail(AppError::Unauthorized)),
            Err(e) => Err(fail(e.into())),
        }
    }
}

/// The session id of the request's cookie.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`: the sign-in form.
pub async fn login_form(axum::extract::Query(q): axum::extract::Query<LoginQuery>) -> Response {
    layout::bare("Sign in", &pages::login::form(&safe_next(q.next.as_deref()), None)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`: checks the password, opens a session, and goes on to
/// `next` (a path on this server only).
pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let again = |status: StatusCode, message: &str| {
        (
            status,
            layout::bare("Sign in", &pages::login::form(&next, Some(message))),
        )
            .into_response()
    };
    if let Err(e) = check_origin(&headers) {
        return again(e.status(), &e.to_string());
    }
    match sign_in(&state, &form.user, &form.password).await {
        Ok(Some(cookie)) => {
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().insert(SET_COOKIE, cookie);
            response
        }
        Ok(None) => again(StatusCode::UNAUTHORIZED, "Unknown user or wrong password."),
        Err(e) => again(e.status(), &e.to_string()),
    }
}

/// A session cookie for `user` when `password` is theirs; `None` when it
/// is not (or there is no such user).
async fn sign_in(state: &AppState, user: &str, password: &str) -> Result<Option<HeaderValue>, AppError> {
    let since = Utc::now() - Duration::minutes(FAILURE_WINDOW_MINUTES);
    let hash = state.accounts.password_hash(user).await?;
    let good = match &hash {
        Some(h) => accounts::verify_password(password, h)?,
        None => {
            // As slow as a real check, so timing does not tell who exists.
            let _ = accounts::hash_password(password);
            false
        }
    };
    if !good {
        let failures = state.accounts.failed_sign_in(user, since).await?;
        tracing::warn!("failed sign-in for `{user}` ({failures} in {FAILURE_WINDOW_MINUTES} min)");
        if failures > MAX_FAILURES {
            return Err(too_many());
        }
        return Ok(None);
    }
    // A good password after too many failures waits out the window too.
    if state.accounts.failed_sign_in(user, since).await? > MAX_FAILURES {
        return Err(too_many());
    }
    state.accounts.clear_failures(user).await?;
    let (id, session) = accounts::new_session(user);
    state.accounts.add_session(&accounts::digest(&id), &session).await?;
    Ok(Some(session_cookie_header(&id, &session, state.secure_cookies)?))
}

fn too_many() -> AppError {
    AppError::TooMany(format!(
        "too many failed sign-ins for this user: wait {FAILURE_WINDOW_MINUTES} minutes and try again"
    ))
}

fn session_cookie_header(id: &str, session: &Session, secure: bool) -> Result<HeaderValue, AppError> {
    let max_age = (session.expires_at - Utc::now()).num_seconds().max(0);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot build the session cookie: {e}")))
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf_token: Option<String>,
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Result<Response, crate::pages::PageError> {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    if let Some(id) = session_cookie(&headers) {
        state
            .accounts
            .end_session(&accounts::digest(&id))
            .await
            .map_err(AppError::from)?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("ferry_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// `next` when it is a path on this server, else `/` (never another site).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}
