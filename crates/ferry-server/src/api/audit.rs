//! The audit trail of one environment, cursor-paged.

use axum::extract::State;
use axum::Json;
use ferry_db::records::{Cursor, PageRequest};
use ferry_engine::audit::AuditEntry;
use serde::{Deserialize, Serialize};

use super::{ApiQuery, ApiResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /audit` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The environment whose trail to read.
    env: String,
    /// The `next` of the page before; absent: the newest page.
    cursor: Option<String>,
    /// At most this many entries (default 50, at most 1000).
    limit: Option<usize>,
}

/// One page of the audit trail, newest first.
#[derive(Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next (older) page; `null` on the last one.
    pub next: Option<String>,
}

/// `GET /api/v1/audit?env=E[&cursor=C][&limit=N]`: `{"entries", "next"}`.
pub async fn list(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<AuditPage> {
    let limit = super::limit(q.limit)?;
    let store = state.envs.open(&q.env).await?;
    let page = store
        .records()
        .audit(&PageRequest {
            limit,
            after: q.cursor.map(Cursor::from_text),
        })
        .await
        .map_err(ferry_engine::Error::from)?;
    Ok(Json(AuditPage {
        entries: page.items,
        next: page.next.map(|c| c.as_text().to_string()),
    }))
}
