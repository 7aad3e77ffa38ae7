//! `ferry baseline`

use anyhow::Result;
use ferry_core::plan::Plan;
use ferry_engine::ops::baseline::{self, BaselineRequest};
use ferry_engine::pair;
use ferry_engine::project::Project;
use ferry_engine::views::BaselineView;

use super::gates::Shown;
use super::{print_json, print_text, selection};
use crate::cli::{Global, SelectionArgs};
use crate::output;
use crate::ui;

pub async fn run(g: &Global, from: &str, to: &str, args: &SelectionArgs, dry_run: bool) -> Result<u8> {
    let envs = super::envs_for(g, &[from, to]).await?;
    let sel = selection(args)?;
    let shown = Shown::new(g);
    let req = BaselineRequest {
        from: from.to_string(),
        to: to.to_string(),
        user: ui::user(g),
        selection: sel,
        wait: !g.no_wait,
    };
    let prepared = baseline::prepare(&envs, req, &shown).await?;
    let hint = decide_hint(envs.project(), from, to);
    if dry_run {
        let (plan, equal) = prepared.survey().await?;
        report(g, &plan, None, equal, true, &hint)?;
        return Ok(0);
    }
    // Show what would be recorded before asking; the result is then one line.
    let previewed = !g.yes && !g.json;
    if previewed {
        let (plan, equal) = prepared.survey().await?;
        report(g, &plan, None, equal, true, &hint)?;
    }
    if !ui::confirm(
        g,
        &format!("Record the rows equal in {from} and {to} as in sync?"),
        "baseline",
    )? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let done = prepared.commit().await?;
    if previewed {
        print_text(&format!(
            "{} baseline {} recorded {} equal row(s) as in sync in {to}{}.\n",
            ui::green("Done:"),
            ui::bold(done.id.as_deref().unwrap_or("(none)")),
            done.recorded,
            match done.differing.entries.len() {
                0 => String::new(),
                n => format!("; {n} differing row(s) not recorded"),
            }
        ))?;
    } else {
        report(g, &done.differing, done.id.as_deref(), done.recorded, false, &hint)?;
    }
    Ok(0)
}

/// How to decide the rows that differ: `baseline` takes any two
/// environments, but `diff` and `promote` only follow the pipeline, so the
/// hint names the direction that is accepted (or says there is none).
fn decide_hint(project: &Project, from: &str, to: &str) -> String {
    if pair::check_route(project, from, to).is_ok() {
        format!("decide them with `ferry diff {from} {to}`")
    } else if pair::check_route(project, to, from).is_ok() {
        format!("`{from}` -> `{to}` is against the pipeline; `ferry diff {to} {from}` shows them in the pipeline's direction")
    } else {
        format!("Ferry promotes only along the pipeline, and no route joins `{from}` and `{to}`")
    }
}

fn report(g: &Global, differing: &Plan, id: Option<&str>, recorded: u64, dry_run: bool, hint: &str) -> Result<()> {
    if g.json {
        print_json(&BaselineView::new(differing, id, recorded, dry_run))?;
        return Ok(());
    }
    let mut text = output::baseline_line(&differing.from, &differing.to, recorded, id, dry_run);
    if !differing.entries.is_empty() {
        text.push_str(&format!(
            "{} row(s) differ and were not recorded; {hint}:\n",
            differing.entries.len(),
        ));
        text.push_str(&output::plan_text(differing));
    }
    print_text(&text)
}
