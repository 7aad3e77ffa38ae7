//! Reviews: list, show, approve, reject — what `ferry reviews` and
//! `ferry review show|approve|reject` do, over HTTP.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use ferry_engine::ops::review::{self, Decision, DecisionOutcome, DecisionRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::reviews;
use ferry_engine::views::{ApproveView, RejectView, ReviewView};
use serde::{Deserialize, Serialize};

use super::{selection, stores, ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /reviews` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One environment; absent: every one.
    env: Option<String>,
    /// Decided reviews too (default: the open ones only).
    #[serde(default)]
    all: bool,
}

/// `GET /api/v1/reviews?env=E[&all=true]`: the open reviews (or all),
/// newest first, as `ferry reviews E --json` prints them.
pub async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Vec<ReviewView>> {
    let mut found = Vec::new();
    for store in stores(&state, q.env.as_deref()).await? {
        // The open ones are read by their status, without every plan.
        found.extend(match q.all {
            true => reviews::list(&*store).await?,
            false => reviews::open(&*store).await?,
        });
    }
    found.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(Json(found.iter().map(ReviewView::new).collect()))
}

/// `GET /api/v1/reviews/{id}`: a review with each change and its state;
/// an open review's changes whose target row moved since are marked
/// (`moved`, `target_now`), as `ferry review show ID --json`. 404 when no
/// environment has it.
pub async fn show(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ReviewView> {
    let (store, r) = reviews::find_with(&state.envs(), &id).await?;
    let moved = if r.status == "open" {
        reviews::moved(&*store, &r).await?
    } else {
        BTreeMap::new()
    };
    Ok(Json(ReviewView::with_moved(&r, &moved)))
}

/// The body of approve and reject.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Decide only these rows (`TABLE:KEY`); absent: all of them.
    #[serde(default)]
    only: Vec<String>,
}

/// What a decision did: the approval's or the rejection's view.
#[derive(Serialize)]
#[serde(untagged)]
pub enum DecisionView {
    Approved(ApproveView),
    Rejected(RejectView),
}

/// `POST /api/v1/reviews/{id}/approve {"only"?}`: applies the approved
/// changes; 200 with `review`, `promotion` (`null`: nothing needed
/// writing), `counts` and `hooks`.
pub async fn approve(
    state: State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    id: ApiPath<String>,
    body: Result<ApiJson<DecisionBody>, ApiError>,
) -> ApiResult<DecisionView> {
    decide(state, user, headers, id, body, Decision::Approve).await
}

/// `POST /api/v1/reviews/{id}/reject {"only"?}`: discards the rejected
/// changes; 200 with `review`, `rejected_changes`, `drafts_removed`,
/// `pending` and `status`.
pub async fn reject(
    state: State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    id: ApiPath<String>,
    body: Result<ApiJson<DecisionBody>, ApiError>,
) -> ApiResult<DecisionView> {
    decide(state, user, headers, id, body, Decision::Reject).await
}

async fn decide(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<DecisionBody>, ApiError>,
    decision: Decision,
) -> ApiResult<DecisionView> {
    user.check_csrf(&headers, None)?;
    let ApiJson(b) = body?;
    let only = selection(&[], &b.only, "only")?.ids;
    let req = DecisionRequest {
        review: id.clone(),
        user: user.name,
        only,
        wait: true,
    };
    let envs = state.envs();
    let prepared = review::prepare(&envs, req, decision, &Quiet).await?;
    Ok(Json(match prepared.commit().await? {
        DecisionOutcome::Approved(done, hooks) => DecisionView::Approved(ApproveView::new(&id, done.as_ref(), hooks)),
        DecisionOutcome::Rejected(done) => DecisionView::Rejected(RejectView::new(&id, &done)),
    }))
}
