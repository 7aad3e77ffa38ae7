//! Hooks: what runs after a promotion commits
//! (`[[environments.NAME.hooks]]`): re-index a search engine, refresh a
//! cache.
//!
//! A `command` hook runs with `sh -c` in the configuration's folder, the
//! promotion's JSON on its standard input and `FERRY_FROM`, `FERRY_TO` and
//! `FERRY_PROMOTION` in its environment; it succeeds iff it exits 0. A
//! `webhook` receives the same JSON as an HTTP POST body
//! (`Content-Type: application/json`) and succeeds iff it answers 2xx.
//! Each runs with its configured timeout, one after the other in the order
//! they are written. A hook that fails is reported; it never undoes the
//! promotion, which is committed before any hook runs.

use std::time::Duration;

use ferry_core::config::{redact_url, HookConfig};

use crate::apply::Promotion;
use crate::gates::shell;
use crate::project::Project;

pub use crate::views::HookOutcome;

/// The JSON a hook receives about a committed promotion.
pub fn payload(promotion: &Promotion, from: &str, to: &str, user: &str, review: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "promotion": promotion.id,
        "from": from,
        "to": to,
        "user": user,
        "at": promotion.at,
        "counts": {
            "insert": promotion.counts.insert,
            "update": promotion.counts.update,
            "delete": promotion.counts.delete,
        },
        "review": review,
    })
}

/// Runs the hooks of `to` for a committed promotion described by `payload`
/// (see [`payload`]), each with its timeout. Never fails: each outcome says
/// whether its hook worked.
pub async fn run_hooks(project: &Project, to: &str, payload: &serde_json::Value) -> Vec<HookOutcome> {
    let Ok(env) = project.env_config(to) else {
        return Vec::new();
    };
    let text = |k: &str| {
        payload
            .get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let body = serde_json::to_vec(payload).unwrap_or_default();
    let mut outcomes = Vec::new();
    for (i, hook) in env.hooks.iter().enumerate() {
        let outcome = match hook {
            HookConfig::Command { command, timeout_secs } => {
                let vars = [
                    ("FERRY_FROM", text("from")),
                    (
                        "FERRY_TO",
                        if text("to").is_empty() {
                            to.to_string()
                        } else {
                            text("to")
                        },
                    ),
                    ("FERRY_PROMOTION", text("promotion")),
                ];
                let run = shell(
                    command,
                    &project.config.base_dir,
                    &vars,
                    Some(body.clone()),
                    Duration::from_secs(*timeout_secs),
                )
                .await;
                HookOutcome {
                    index: i + 1,
                    hook: format!("command: {}", one_line(command)),
                    ok: run.ok(),
                    error: run.failure,
                    output: run.output,
                }
            }
            HookConfig::Webhook { url, timeout_secs } => {
                let (error, output) = post(url, body.clone(), Duration::from_secs(*timeout_secs)).await;
                HookOutcome {
                    index: i + 1,
                    hook: format!("webhook: {}", redact_url(url)),
                    ok: error.is_none(),
                    error,
                    output,
                }
            }
        };
        if let Some(e) = &outcome.error {
            // The front end reports every outcome; this is for FERRY_LOG=debug.
            tracing::debug!(hook = %outcome.hook, error = %e, "hook failed");
        }
        outcomes.push(outcome);
    }
    outcomes
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// POSTs `body` to `url`: (the error, if any; the start of the answer).
async fn post(url: &str, body: Vec<u8>, timeout: Duration) -> (Option<String>, String) {
    let url = url.to_string();
    let call = tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build();
        let answer = agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_bytes(&body);
        match answer {
            Ok(resp) => {
                let status = resp.status();
                let text = answer_text(resp);
                if (200..300).contains(&status) {
                    (None, text)
                } else {
                    (Some(format!("answered HTTP {status}")), text)
                }
            }
            Err(ureq::Error::Status(status, resp)) => (Some(format!("answered HTTP {status}")), answer_text(resp)),
            Err(ureq::Error::Transport(t)) => (Some(transport_error(&t)), String::new()),
        }
    });
    // A little beyond the client's own limit, in case a read hangs.
    match tokio::time::timeout(timeout + Duration::from_secs(5), call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (Some(format!("the request failed: {e}")), String::new()),
        Err(_) => (Some(format!("timed out after {}s", timeout.as_secs())), String::new()),
    }
}

/// The start of an answer's body, trimmed.
fn answer_text(resp: ureq::Response) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(4096).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let text = text.trim();
    if text.chars().count() > 500 {
        format!("{}…", text.chars().take(500).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A transport error without its URL (which may carry a password).
fn transport_error(t: &ureq::Transport) -> String {
    let mut msg = t.kind().to_string();
    if let Some(m) = t.message() {
        msg.push_str(": ");
        msg.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        msg.push_str(": ");
        msg.push_str(&src.to_string());
    }
    if matches!(t.kind(), ureq::ErrorKind::Io) && msg.to_ascii_lowercase().contains("timed out") {
        return format!("timed out ({msg})");
    }
    msg
}
