//! The audit trail: every write and every refusal, newest first, filtered
//! by environment, user and action, [`paging::PAGE_SIZE`] a page.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use ferry_engine::audit::{self, AuditEntry, AuditFilter};
use maud::{html, Markup};
use serde::Deserialize;

use super::paging;
use super::{cells, encode, layout, PageResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// The actions the engine audits, for the filter's choices.
const ACTIONS: [&str; 6] = ["promote", "approve", "reject", "revert", "baseline", "hook"];

/// `GET /audit` query: the filters and where the page starts (empty
/// fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub env: Option<String>,
    pub user: Option<String>,
    pub action: Option<String>,
    pub cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /audit?env=E&user=U&action=A&cursor=C`.
pub async fn list(State(state): State<AppState>, user: CurrentUser, Query(q): Query<AuditQuery>) -> PageResult {
    let (env, who, action, cursor) = (given(&q.env), given(&q.user), given(&q.action), given(&q.cursor));
    let (stores, unreachable) = state.envs_for(env).await?.each(env).await?;
    let filter = AuditFilter {
        user: who.map(str::to_string),
        action: action.map(str::to_string),
    };
    let page = audit::page_all(&stores, &filter, paging::request(cursor)).await?;
    let (entries, next) = (page.items, page.next);
    let next_link = next.map(|c| {
        format!(
            "/audit?env={}&user={}&action={}&cursor={}",
            encode(env.unwrap_or("")),
            encode(who.unwrap_or("")),
            encode(action.unwrap_or("")),
            encode(c.as_text())
        )
    });
    let body = html! {
        h1 { "Audit" }
        (filter_form(&state, env, who, action))
        @for (name, e) in &unreachable {
            (layout::notice("error", &format!("`{name}` could not be read, its audit trail is not listed: {e}")))
        }
        @if entries.is_empty() {
            p.muted data-testid="no-audit" { "Nothing audited" @if cursor.is_some() { " further" } "." }
        } @else {
            table data-testid="audit" {
                thead { tr { th { "At" } th { "User" } th { "Action" } th { "Route" } th { "Result" } th { "Reference" } th { "Detail" } } }
                tbody {
                    @for a in &entries { (entry(a)) }
                }
            }
        }
        @if let Some(href) = &next_link {
            p.pager { a data-testid="next-page" href=(href) { "Older entries →" } }
        }
    };
    Ok(layout::page(&user, "Audit", body).into_response())
}

/// The filters as a small GET form (works without JavaScript).
fn filter_form(state: &AppState, env: Option<&str>, who: Option<&str>, action: Option<&str>) -> Markup {
    let envs_now = state.envs();
    let names = envs_now.project().config.environments_in_order();
    html! {
        form.toolbar method="get" action="/audit" data-testid="audit-filter" {
            label { "Environment "
                select name="env" data-testid="audit-env" {
                    option value="" selected[env.is_none()] { "all" }
                    @for n in names { option value=(n) selected[env == Some(n)] { (n) } }
                }
            }
            label { "User " input type="text" name="user" value=(who.unwrap_or("")) data-testid="audit-user"; }
            label { "Action "
                select name="action" data-testid="audit-action" {
                    option value="" selected[action.is_none()] { "all" }
                    @for a in ACTIONS { option value=(a) selected[action == Some(a)] { (a) } }
                    @if let Some(other) = action.filter(|a| !ACTIONS.contains(a)) {
                        option value=(other) selected { (other) }
                    }
                }
            }
            button type="submit" data-testid="audit-apply" { "Filter" }
        }
    }
}

/// One audit entry; its reference links to the promotion or review.
fn entry(a: &AuditEntry) -> Markup {
    html! {
        tr data-testid="audit-row" data-id=(a.id) data-user=(a.user) data-action=(a.action) data-env=(a.to) data-result=(a.result) {
            td.mono { (a.at) }
            td { (a.user) }
            td { (a.action) }
            td { (a.from.as_deref().unwrap_or("-")) " → " (a.to) }
            td class=(if a.result == "ok" { "result-ok" } else { "result-refused" }) { (a.result) }
            td {
                @if let Some(r) = &a.ref_id {
                    // An approval or rejection refers to its review unless it made a promotion.
                    @let path = if a.action == "reject" || (a.action == "approve" && a.result != "ok") { "reviews" } else { "promotions" };
                    a.mono href=(format!("/{path}/{}", encode(r))) { (r) }
                }
            }
            td { @if !a.detail.is_empty() { (cells::text(&a.detail)) } }
        }
    }
}
