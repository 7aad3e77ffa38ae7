//! `ferry promote`

use std::path::PathBuf;

use anyhow::{Context, Result};
use ferry_core::plan::Plan;
use ferry_engine::apply::{self, PromoteOptions};
use ferry_engine::{pair, planner, Error};

use super::{load, print_json, print_text, selection};
use crate::cli::{Global, SelectionArgs};
use crate::output;
use crate::ui;

pub struct Options {
    pub plan: Option<PathBuf>,
    pub dry_run: bool,
    pub approve_revisions: bool,
    pub force: bool,
}

pub async fn run(g: &Global, from: &str, to: &str, args: &SelectionArgs, opts: Options) -> Result<u8> {
    let project = load(g)?;
    let sel = selection(args)?;
    if opts.plan.is_some() && !sel.is_everything() {
        return Err(Error::Usage(
            "--plan applies the saved plan as it is; give no --table, --id or --where with it".into(),
        )
        .into());
    }
    let env = project.env_config(to)?;
    if env.review && !opts.dry_run {
        return Err(Error::Usage(format!(
            "`{to}` has review = true: promotions into it become reviews, which this version of Ferry does not support yet. Nothing was written; remove `review = true` to promote directly"
        ))
        .into());
    }
    let _ = opts.approve_revisions;
    let pair = pair::open(&project, from, to).await?;
    // Held from planning to commit: a second writer waits for this one.
    let _lock = if opts.dry_run { None } else { Some(ui::writer_lock(g, &*pair.target).await?) };
    let plan: Plan = match &opts.plan {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| Error::Usage(format!("{} is not a Ferry plan: {e}", path.display())))?
        }
        None => planner::plan(&pair, &sel, ui::progress(g)).await?,
    };
    // Refuse conflicts before asking anything.
    let changes = apply::changes(&plan, opts.force)?;
    if !g.json {
        print_text(&output::plan_text(&plan))?;
    }
    if opts.dry_run || changes.is_empty() {
        if g.json {
            let mut v = serde_json::json!({"promotion": null, "review": null, "counts": counts(&plan), "dry_run": opts.dry_run});
            v["plan"] = output::plan_json(&plan);
            print_json(&v)?;
        } else if opts.dry_run {
            print_text("\nDry run: nothing was written.\n")?;
        }
        return Ok(0);
    }
    let question = format!("Promote {} change(s) from {from} into {to}?", changes.len());
    if !ui::confirm(g, &question, &format!("promoting into `{to}`"))? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let user = ui::user(g);
    let done = apply::promote(
        &pair,
        &plan,
        &PromoteOptions {
            user,
            force: opts.force,
        },
    )
    .await?;
    match done {
        Some(p) => {
            if g.json {
                print_json(
                    &serde_json::json!({"promotion": p.id, "review": null, "counts": {"insert": p.counts.insert, "update": p.counts.update, "delete": p.counts.delete}, "at": p.at}),
                )?;
            } else {
                print_text(&format!(
                    "\n{} promotion {} into {}: {} inserted, {} updated, {} deleted.\nUndo it with: ferry revert {}\n",
                    ui::green("Done:"),
                    ui::bold(&p.id),
                    to,
                    p.counts.insert,
                    p.counts.update,
                    p.counts.delete,
                    p.id
                ))?;
            }
        }
        None => {
            if g.json {
                print_json(
                    &serde_json::json!({"promotion": null, "review": null, "counts": {"insert": 0, "update": 0, "delete": 0}}),
                )?;
            }
        }
    }
    Ok(0)
}

fn counts(plan: &Plan) -> serde_json::Value {
    let c = plan.counts();
    serde_json::json!({"insert": c.insert, "update": c.update, "delete": c.delete})
}
