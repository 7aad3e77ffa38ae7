//! The JSON API under `/api/v1`: the CLI's operations and listings for
//! programs, with the same rules (the engine enforces them). Bearer tokens
//! or a browser session; a session's state-changing calls carry the CSRF
//! token (`X-CSRF-Token`) and a matching `Origin`.
//!
//! Every route is listed once, in [`table`]: the router is built from it,
//! and a test holds the OpenAPI document (`openapi.json`, served at
//! `/api/v1/openapi.json`) to the same list. Every error, the extractors'
//! own included, is the JSON body `{"error": {code, message, hint}}`.

mod audit;
pub mod envs;
mod promotions;
pub mod refresh;
mod reviews;

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};
use ferry_core::selection::{parse_id, Selection};
use ferry_engine::error::ErrorBody;
use serde::de::DeserializeOwned;
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

/// The OpenAPI 3.1 document of this API (hand-written; a test holds it to
/// [`table`]).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route under `/api/v1`: its path (axum's syntax, which is also
/// OpenAPI's: `{id}`), the HTTP methods it answers, and its handlers.
/// [`routes`] serves exactly these; the OpenAPI document lists exactly
/// these.
pub fn table() -> Vec<(&'static str, &'static [&'static str], MethodRouter<AppState>)> {
    vec![
        ("/openapi.json", &["get"], get(openapi)),
        ("/environments", &["get"], get(environments)),
        ("/diff", &["get"], get(promotions::diff)),
        (
            "/promotions",
            &["get", "post"],
            get(promotions::list).post(promotions::create),
        ),
        ("/promotions/{id}", &["get"], get(promotions::show)),
        ("/promotions/{id}/revert", &["post"], post(promotions::revert)),
        ("/reviews", &["get"], get(reviews::list)),
        ("/reviews/{id}", &["get"], get(reviews::show)),
        ("/reviews/{id}/approve", &["post"], post(reviews::approve)),
        ("/reviews/{id}/reject", &["post"], post(reviews::reject)),
        ("/audit", &["get"], get(audit::list)),
        ("/envs", &["get"], get(envs::list)),
        ("/envs/{name}", &["delete"], delete(envs::destroy)),
        ("/envs/{name}/merged", &["post"], post(envs::merged)),
        ("/refresh", &["get", "post"], get(refresh::preview).post(refresh::apply)),
    ]
}

/// The routes under `/api/v1`; a method a path does not answer is a 405
/// with the API's error body.
pub fn routes() -> Router<AppState> {
    table()
        .into_iter()
        .fold(Router::new(), |router, (path, _, handlers)| {
            router.route(path, handlers)
        })
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed(method: Method, uri: OriginalUri) -> Response {
    let body = ErrorBody {
        code: "usage",
        message: format!("{} does not answer {method}; see /api/v1/openapi.json", uri.path()),
        hint: None,
    };
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(crate::error::ErrorEnvelope { error: body }),
    )
        .into_response()
}

/// `GET /api/v1/openapi.json`: the document, as it is embedded. Served to
/// signed-in users and tokens only, as everything else.
async fn openapi(_user: CurrentUser) -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A JSON request body; a body that is not the JSON expected is a 400
/// with the API's error body (axum's own rejection is plain text). An
/// empty body (or `null`) reads as `{}` (every field of a body here is optional but
/// the ones a handler names), and unknown fields are refused by each body
/// type (`deny_unknown_fields`), so a misspelt option is never ignored.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("cannot read the request body: {}", e.body_text())))?;
        let trimmed = bytes.trim_ascii();
        let text: &[u8] = if trimmed.is_empty() || trimmed == b"null" {
            b"{}"
        } else {
            trimmed
        };
        serde_json::from_slice(text).map(ApiJson).map_err(|e| {
            ApiError(AppError::BadRequest(format!(
                "the request body is not the JSON expected: {e}"
            )))
        })
    }
}

/// A path parameter (`{id}`); one that does not decode is a 400 with the
/// API's error body.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError(AppError::BadRequest(format!("bad path: {}", e.body_text()))))
    }
}

/// Query parameters, repeated keys allowed (`?table=a&table=b`); bad ones
/// are a 400 with the API's error body.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum_extra::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError(AppError::BadRequest(format!("bad query parameters: {}", e.body_text()))))
    }
}

/// A selection of whole tables and single rows (`TABLE:KEY`); `field`
/// names where the rows came from in an error (`id`, `ids`).
pub fn selection(tables: &[String], ids: &[String], field: &str) -> Result<Selection, ApiError> {
    let ids = ids
        .iter()
        .map(|s| parse_id(s).map_err(|e| AppError::BadRequest(format!("{field}: {}", e.0))))
        .collect::<Result<_, _>>()?;
    Ok(Selection {
        tables: tables.to_vec(),
        ids,
        wheres: Vec::new(),
        skips: Vec::new(),
    })
}

/// The stores a listing reads: `env`, or every environment. A listing of
/// every environment that cannot read one of them fails with that
/// environment's error (a listing never looks complete when it is not).
pub async fn stores(
    state: &AppState,
    env: Option<&str>,
) -> Result<Vec<std::sync::Arc<dyn ferry_engine::Store>>, ApiError> {
    let (stores, unreachable) = state.envs_for(env).await?.each(env).await?;
    // The engine's error names the environment and says why.
    match unreachable.into_iter().next() {
        None => Ok(stores),
        Some((_, err)) => Err(ApiError(AppError::Engine(err))),
    }
}

/// The most entries a listing returns at once.
pub const MAX_LIMIT: usize = 1000;

/// A listing's `limit`: 50 when absent; 1 to [`MAX_LIMIT`].
pub fn limit(given: Option<usize>) -> Result<usize, ApiError> {
    match given {
        None => Ok(50),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(AppError::BadRequest(format!("limit {n}: give 1 to {MAX_LIMIT}")).into()),
    }
}

/// One environment as `GET /api/v1/environments` lists it.
#[derive(Serialize)]
pub struct EnvironmentView {
    pub name: String,
    pub engine: Option<String>,
    pub healthy: bool,
    pub pipeline_index: Option<usize>,
    pub promotes_to: Option<String>,
    /// A per-branch environment's branch (`null` for the configuration's).
    pub branch: Option<String>,
    /// The environment a per-branch environment was cloned from.
    pub parent: Option<String>,
    /// When a per-branch environment expires (once marked merged).
    pub expires_at: Option<String>,
    /// Why it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/environments`: every environment (the per-branch ones as
/// the registries say now), with whether its database answers.
async fn environments(State(state): State<AppState>, _user: CurrentUser) -> ApiResult<Vec<EnvironmentView>> {
    let envs = state.envs_rediscovered().await?;
    let project = envs.project();
    let config = &project.config;
    let names: Vec<&str> = config.environments_in_order();
    let opened = futures_util::future::join_all(names.iter().map(|n| envs.open(n))).await;
    let mut out = Vec::new();
    for (name, store) in names.into_iter().zip(opened) {
        let index = config.pipeline.iter().position(|p| p == name);
        let promotes_to = match index {
            Some(i) => config.pipeline.get(i + 1).cloned(),
            None => config.environments.get(name).and_then(|e| e.promotes_to.clone()),
        };
        let (engine, healthy, error) = match store {
            Ok(store) => (Some(store.engine().to_string()), true, None),
            Err(e) => (None, false, Some(crate::error::hide_urls(&e.to_string()))),
        };
        let branch = project.branch(name);
        out.push(EnvironmentView {
            name: name.to_string(),
            engine,
            healthy,
            pipeline_index: index,
            promotes_to,
            branch: branch.map(|b| b.branch.clone()),
            parent: branch.map(|b| b.from.clone()),
            expires_at: branch.and_then(|b| b.expires_at.clone()),
            error,
        });
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value as J;

    /// Every (path, method) of the document.
    fn documented(doc: &J) -> BTreeSet<(String, String)> {
        let paths = doc["paths"].as_object().expect("paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect()
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes_served() {
        let doc: J = serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let served: BTreeSet<(String, String)> = super::table()
            .into_iter()
            .flat_map(|(path, methods, _)| methods.iter().map(move |m| (path.to_string(), m.to_string())))
            .collect();
        let documented = documented(&doc);
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }

    /// Each operation documents its path parameters, its success and the
    /// error body for 401; every `$ref` names a schema of the document.
    #[test]
    fn every_operation_documents_its_parameters_errors_and_schemas() {
        let doc: J = serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let params: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|p| p.iter().filter_map(|p| p["name"].as_str()).collect())
                    .unwrap_or_default();
                if path.contains("{id}") {
                    assert!(params.contains(&"id"), "{method} {path}: no `id` parameter");
                }
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{method} {path}: no success"
                );
                assert_eq!(
                    responses["401"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
                    "{method} {path}"
                );
                if method == "post" {
                    assert!(params.contains(&"X-CSRF-Token"), "{method} {path}: no CSRF header");
                    assert!(responses.contains_key("403"), "{method} {path}: no 403");
                }
            }
        }
        let text = super::OPENAPI;
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().expect("a name");
            assert!(schemas.contains_key(name), "$ref to a missing schema `{name}`");
        }
    }
}
