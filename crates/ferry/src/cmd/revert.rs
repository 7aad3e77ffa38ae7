//! `ferry revert`

use anyhow::Result;
use ferry_engine::ops::revert::{self, RevertRequest};
use ferry_engine::views::RevertView;

use super::gates::Shown;
use super::{envs, print_json, print_text};
use crate::cli::Global;
use crate::output;
use crate::ui;

pub async fn run(g: &Global, id: &str, force: bool) -> Result<u8> {
    let envs = envs(g)?;
    let shown = Shown::new(g);
    let req = RevertRequest {
        promotion: id.to_string(),
        user: ui::user(g),
        force,
        wait: !g.no_wait,
    };
    let prepared = revert::prepare(&envs, req, &shown).await?;
    if !g.json {
        print_text(&output::revert_preview_text(
            &prepared.record,
            &prepared.rows,
            prepared.open_fields(),
        ))?;
    }
    let to = prepared.record.to.clone();
    if !ui::confirm(g, &format!("Revert {id} in {to}?"), &format!("reverting {id}"))? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let done = prepared.commit().await?;
    if g.json {
        print_json(&RevertView::new(id, &done))?;
    } else {
        print_text(&output::reverted_text(id, &to, &done))?;
    }
    Ok(0)
}
