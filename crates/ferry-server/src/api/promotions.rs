//! The diff of a pair, promotions (create, list, show) and revert: what
//! `ferry diff`, `promote`, `log`, `show` and `revert` do, over HTTP.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ferry_core::plan::Side;
use ferry_engine::ops::promote::{self, Expected, PromoteRequest};
use ferry_engine::ops::revert::{self as revert_op, RevertRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::progress::Progress;
use ferry_engine::views::{JournalEntryView, PlanView, PromoteView, RevertView, ShowView};
use ferry_engine::{journal, planner, revert as revert_find};
use serde::Deserialize;

use super::{selection, stores, ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::AppState;

/// `GET /diff` parameters: the pair, and the tables and rows to plan
/// (none: everything).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: String,
    to: String,
    #[serde(default)]
    table: Vec<String>,
    #[serde(default)]
    id: Vec<String>,
}

/// `GET /api/v1/diff?from=A&to=B[&table=T][&id=T:K]`: the plan, as
/// `ferry diff --json` prints it, with its `hash` (the one a promotion of
/// the same selection can insist on with `plan_hash`).
pub async fn diff(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<PlanView> {
    let sel = selection(&q.table, &q.id, "id")?;
    let pair = state
        .envs_knowing(&[&q.from, &q.to])
        .await?
        .pair(&q.from, &q.to, &sel, true)
        .await?;
    let plan = planner::plan(&pair, &sel, Progress::hidden()).await?;
    Ok(Json(PlanView::new(&plan)))
}

/// The selection a `plan_hash` was computed for, when it is not the
/// promotion's own (a page shows a whole pair; the user ticks two rows).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shown {
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    ids: Vec<String>,
}

/// `POST /promotions` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    from: String,
    to: String,
    /// The rows to promote (`TABLE:KEY`); absent with `tables`: everything.
    #[serde(default)]
    ids: Vec<String>,
    /// Whole tables to promote.
    #[serde(default)]
    tables: Vec<String>,
    /// Apply only if the plan made under the writer lock still has this
    /// hash (the `hash` of `GET /diff` for the same selection, or for
    /// `shown`).
    plan_hash: Option<String>,
    /// The selection `plan_hash` belongs to; default: this promotion's.
    shown: Option<Shown>,
    #[serde(default)]
    approve_revisions: bool,
    #[serde(default)]
    force: bool,
    /// Decide the rows of `ids` for one side.
    take: Option<Side>,
}

/// `POST /api/v1/promotions`: promotes (or submits for review) and answers
/// 201 with what `ferry promote --json` prints: `promotion` (`null` when
/// nothing needed writing, or only a review was opened), `review`,
/// `counts`, and more.
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    body: Result<ApiJson<CreateBody>, ApiError>,
) -> Result<(StatusCode, Json<PromoteView>), ApiError> {
    user.check_csrf(&headers, None)?;
    let ApiJson(b) = body?;
    let sel = selection(&b.tables, &b.ids, "ids")?;
    if b.take.is_some() && sel.ids.is_empty() {
        return Err(AppError::BadRequest("`take` decides single rows: name them in `ids` (TABLE:KEY)".into()).into());
    }
    if b.shown.is_some() && b.plan_hash.is_none() {
        return Err(
            AppError::BadRequest("`shown` names the selection of a `plan_hash`: give the hash too".into()).into(),
        );
    }
    let expect = match b.plan_hash {
        Some(hash) => Some(Expected {
            selection: match &b.shown {
                Some(s) => selection(&s.tables, &s.ids, "shown.ids")?,
                None => sel.clone(),
            },
            hash,
        }),
        None => None,
    };
    let req = PromoteRequest {
        from: b.from,
        to: b.to,
        user: user.name,
        selection: sel,
        saved: None,
        dry_run: false,
        approve_revisions: b.approve_revisions,
        force: b.force,
        take: b.take,
        wait: true,
        expect,
    };
    let envs = state.envs_knowing(&[&req.from, &req.to]).await?;
    let prepared = promote::prepare(&envs, req, &Quiet).await?;
    if prepared.writes_nothing() {
        return Ok((StatusCode::CREATED, Json(prepared.view())));
    }
    let checks = prepared.checks.clone();
    let done = prepared.commit().await?;
    Ok((StatusCode::CREATED, Json(done.view(checks))))
}

/// `GET /promotions` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One environment; absent: every one.
    env: Option<String>,
    /// At most this many (default 50, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/v1/promotions?env=E[&limit=N]`: the journal, newest first,
/// as `ferry log E --json` prints it.
pub async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Vec<JournalEntryView>> {
    let limit = super::limit(q.limit)?;
    let mut records = Vec::new();
    for store in stores(&state, q.env.as_deref()).await? {
        records.extend(journal::newest(&*store, limit).await?);
    }
    records.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    records.truncate(limit);
    Ok(Json(records.iter().map(JournalEntryView::new).collect()))
}

/// `GET /api/v1/promotions/{id}`: a promotion and every row it wrote, as
/// `ferry show ID --json` prints it; 404 when no environment has it.
pub async fn show(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ShowView> {
    let (store, record) = revert_find::find_with(&state.envs(), &id).await?;
    let rows = journal::journal_rows(&*store, &id).await?;
    Ok(Json(ShowView::new(&record, &rows, store.capabilities().open_fields)))
}

/// `POST /promotions/{id}/revert` body.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertBody {
    /// Restore the before-images even over rows changed since.
    #[serde(default)]
    force: bool,
}

/// `POST /api/v1/promotions/{id}/revert`: reverts a promotion; 200 with
/// the revert's own promotion id (`promotion`), `reverts` and `counts`.
pub async fn revert(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<RevertBody>, ApiError>,
) -> ApiResult<RevertView> {
    user.check_csrf(&headers, None)?;
    let ApiJson(b) = body?;
    let req = RevertRequest {
        promotion: id.clone(),
        user: user.name,
        force: b.force,
        wait: true,
    };
    let envs = state.envs();
    let prepared = revert_op::prepare(&envs, req, &Quiet).await?;
    let done = prepared.commit().await?;
    Ok(Json(RevertView::new(&id, &done)))
}
