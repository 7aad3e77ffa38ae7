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
    pub take: Option<ferry_core::plan::Side>,
}

pub async fn run(g: &Global, from: &str, to: &str, args: &SelectionArgs, opts: Options) -> Result<u8> {
    let project = load(g)?;
    let sel = selection(args)?;
    if opts.take.is_some() && (opts.plan.is_some() || sel.ids.is_empty()) {
        return Err(
            Error::Usage("--take decides single rows: name them with --id TABLE:KEY (and no --plan)".into()).into(),
        );
    }
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
    // A saved plan applies with nothing but its target: the source may be gone.
    let (target, plan, _lock) = match &opts.plan {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
            let plan = Plan::from_file(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            if plan.from != from || plan.to != to {
                return Err(Error::Usage(format!(
                    "{} is a plan for {} -> {}, not {from} -> {to}",
                    path.display(),
                    plan.from,
                    plan.to
                ))
                .into());
            }
            pair::check_route(&project, from, to)?;
            let target = project.open(to).await?;
            let lock = if opts.dry_run {
                None
            } else {
                Some(ui::writer_lock(g, &*target).await?)
            };
            (target, plan, lock)
        }
        None => {
            let pair = pair::open(&project, from, to).await?;
            // Held from planning to commit: a second writer waits for this one.
            let lock = if opts.dry_run {
                None
            } else {
                Some(ui::writer_lock(g, &*pair.target).await?)
            };
            let mut plan = planner::plan(&pair, &sel, ui::progress(g)).await?;
            if let Some(side) = opts.take {
                planner::take(&mut plan, side, &sel.ids)?;
            }
            (pair.target.clone(), plan, lock)
        }
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
    let done = apply::promote_plan(
        &*target,
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
                    "\n{} promotion {} into {}: {} inserted, {} updated, {} deleted{}.\nUndo it with: ferry revert {}\n",
                    ui::green("Done:"),
                    ui::bold(&p.id),
                    to,
                    p.counts.insert,
                    p.counts.update,
                    p.counts.delete,
                    if p.counts.skip > 0 { format!(", {} kept as the target has them", p.counts.skip) } else { String::new() },
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
