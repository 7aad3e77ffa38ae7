//! `ferry track`

use anyhow::Result;
use ferry_engine::ops::track::{self, TrackRequest};

use super::gates::Shown;
use super::{print_json, print_text};
use crate::cli::Global;
use crate::ui;

pub async fn run(g: &Global, env: &str) -> Result<u8> {
    let envs = super::envs_for(g, &[env]).await?;
    let req = TrackRequest {
        env: env.to_string(),
        user: ui::user(g),
        wait: !g.no_wait,
    };
    let done = track::track(&envs, &req, &Shown::new(g)).await?;
    if g.json {
        print_json(&serde_json::json!({ "environment": env, "tables": done }))?;
        return Ok(0);
    }
    let mut text = String::new();
    for t in &done {
        let what = if t.created {
            format!(
                "{} the trace of deletes of `{}` in {env}",
                ui::green("Installed"),
                t.table
            )
        } else {
            format!("The trace of deletes of `{}` in {env} was there already", t.table)
        };
        text.push_str(&what);
        text.push('\n');
        if let Some(w) = &t.warning {
            text.push_str(&format!("{} {w}\n", ui::yellow("warning:")));
        }
    }
    if done.iter().any(|t| t.created) {
        text.push_str(
            "Plans use it once the next promotion (or `ferry baseline`) leaves each table in sync; install it in both environments of a pair.\n",
        );
    }
    print_text(&text)?;
    Ok(0)
}
