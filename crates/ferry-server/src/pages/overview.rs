//! The overview: the pipeline as it is, each step a link to its changes.

use axum::extract::State;
use axum::response::IntoResponse;
use maud::html;

use super::{layout, PageResult};
use crate::auth::CurrentUser;
use crate::AppState;

/// `GET /`: the environments in pipeline order, and the routes between
/// them.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> PageResult {
    let config = &state.envs.project().config;
    let routes = config.routes();
    let body = html! {
        h1 { "Overview" }
        section.pipeline data-testid="pipeline" {
            @for (i, env) in config.pipeline.iter().enumerate() {
                @if i > 0 { span.arrow { "→" } }
                span.env data-testid="env" data-env=(env) { (env) }
            }
        }
        h2 { "Steps" }
        ul.steps {
            @for (from, to) in &routes {
                li data-testid="step" data-from=(from) data-to=(to) {
                    a href=(format!("/changes?from={}&to={}", super::encode(from), super::encode(to))) {
                        (from) " → " (to)
                    }
                }
            }
        }
    };
    Ok(layout::page(&user, "Overview", body).into_response())
}
