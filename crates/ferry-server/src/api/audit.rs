//! The audit trail, filtered and cursor-paged by the engine.

use axum::extract::State;
use axum::Json;
use ferry_engine::audit::{self, AuditFilter};
use ferry_engine::paging::{Cursor, PageRequest};
use ferry_engine::views::AuditPageView;
use serde::Deserialize;

use super::{stores, ApiQuery, ApiResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /audit` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The environment whose trail to read; absent: every environment,
    /// merged newest first.
    env: Option<String>,
    /// Only this acting user's entries.
    user: Option<String>,
    /// Only this action's entries (`promote`, `approve`, `reject`,
    /// `revert`, `baseline`, `hook`, ...).
    action: Option<String>,
    /// The `next` of the page before; absent: the newest page.
    cursor: Option<String>,
    /// At most this many entries (default 50, at most 1000).
    limit: Option<usize>,
}

/// `GET /api/v1/audit?env=E[&user=U][&action=A][&cursor=C][&limit=N]`:
/// `{"entries", "next"}`. Every page is full unless the trail ends; a
/// cursor no page gave is a 400.
pub async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<AuditPageView> {
    let req = PageRequest {
        limit: super::limit(q.limit)?,
        after: q.cursor.map(Cursor::from_text),
    };
    let filter = AuditFilter {
        user: q.user,
        action: q.action,
    };
    let page = match q.env.as_deref() {
        Some(env) => {
            let envs = state.envs_knowing(&[env]).await?;
            envs.project().env_config(env)?;
            audit::page(&*envs.open(env).await?, &filter, req).await?
        }
        None => audit::page_all(&stores(&state, None).await?, &filter, req).await?,
    };
    Ok(Json(AuditPageView::new(page)))
}
