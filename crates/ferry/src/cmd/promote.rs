//! `ferry promote`: parse, prepare the engine's operation, show it, confirm,
//! commit, render.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ferry_core::access::Right;
use ferry_core::plan::Plan;
use ferry_engine::ops::promote::{self, PromoteOutcome, PromoteRequest};
use ferry_engine::Error;

use super::gates::Shown;
use super::{print_json, print_text, selection};
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
    let envs = super::envs_for(g, &[from, to]).await?.full_plans(args.full);
    let sel = selection(args)?;
    if opts.take.is_some() && (opts.plan.is_some() || sel.ids.is_empty()) {
        return Err(
            Error::Usage("--take decides single rows: name them with --id TABLE:KEY (and no --plan)".into()).into(),
        );
    }
    if opts.plan.is_some() && !sel.is_all() {
        return Err(Error::Usage(
            "--plan applies the saved plan as it is; give no --table, --id, --where or --skip with it".into(),
        )
        .into());
    }
    // An unknown target is named before the plan file is read.
    envs.project().env_config(to)?;
    let saved = match &opts.plan {
        Some(path) => Some(read_plan(path, from, to)?),
        None => None,
    };
    let user = ui::user(g);
    let shown = Shown::new(g);
    let req = PromoteRequest {
        from: from.to_string(),
        to: to.to_string(),
        user: user.clone(),
        selection: sel,
        saved,
        dry_run: opts.dry_run,
        approve_revisions: opts.approve_revisions,
        force: opts.force,
        take: opts.take,
        wait: !g.no_wait,
        // The command line shows the plan it makes under the lock and
        // confirms that one: no earlier view to hold it to.
        expect: None,
    };
    let prepared = promote::prepare(&envs, req, &shown).await;
    shown.result()?;
    let prepared = prepared?;
    if prepared.writes_nothing() {
        if g.json {
            print_json(&prepared.view())?;
        } else if opts.dry_run {
            print_text("\nDry run: nothing was written.\n")?;
        }
        return Ok(0);
    }
    let changes = prepared.changes;
    let question = if prepared.review {
        format!("Submit {changes} change(s) from {from} for review in {to}?")
    } else {
        format!("Promote {changes} change(s) from {from} into {to}?")
    };
    if !ui::confirm(g, &question, &format!("promoting into `{to}`"))? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let checks = prepared.checks.clone();
    let done = prepared.commit().await?;
    if g.json {
        return print_json(&done.view(checks)).map(|()| 0);
    }
    match &done {
        PromoteOutcome::Submitted(s, _) => print_text(&submitted_text(s, to))?,
        PromoteOutcome::Applied(p, _) => {
            // Name `ferry revert` only as something this user may run.
            let denied =
                ferry_core::access::check(envs.project().config.access.as_ref(), &user, Right::Revert, to).err();
            print_text(&format!("\n{}", output::promoted_text(p, to, denied.as_deref())))?;
        }
        PromoteOutcome::Nothing => {}
    }
    Ok(0)
}

/// The saved plan of `--plan`: parsed, its signature checked when
/// `FERRY_PLAN_KEY` is set, and its route the one asked for.
fn read_plan(path: &std::path::Path, from: &str, to: &str) -> Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
    let plan = Plan::from_file(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    if let Some(key) = super::plan_key()? {
        plan.verify_signature(&key)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    }
    if plan.from != from || plan.to != to {
        return Err(Error::Usage(format!(
            "{} is a plan for {} -> {}, not {from} -> {to}",
            path.display(),
            plan.from,
            plan.to
        ))
        .into());
    }
    Ok(plan)
}

/// What a promotion into a review environment did, for people.
fn submitted_text(done: &ferry_engine::reviews::Submitted, to: &str) -> String {
    let mut text = String::from("\n");
    if let Some(p) = &done.direct {
        // Approved upstream, and rows that write only the sync base
        // (`--take target`, natural-key matches): no review needed.
        let mut what = Vec::new();
        if p.counts.changes() > 0 {
            what.push(format!(
                "{} change(s) approved upstream applied directly",
                p.counts.changes()
            ));
        }
        if p.counts.skip > 0 {
            what.push(format!(
                "{} row(s) kept as {to} has them, recorded as in sync",
                p.counts.skip
            ));
        }
        text.push_str(&format!(
            "{} {}: promotion {}.\n",
            ui::green("Done:"),
            what.join("; "),
            ui::bold(&p.id)
        ));
    }
    if let Some(p) = &done.drafts {
        text.push_str(&format!(
            "{} {} new row(s) inserted as drafts: promotion {}.\n",
            ui::green("Drafts:"),
            p.counts.insert,
            ui::bold(&p.id)
        ));
    }
    match &done.review {
        Some(r) => text.push_str(&format!(
            "{} review {} waits for an approver in {to}: ferry review show {r}\n",
            ui::yellow("Review:"),
            ui::bold(r)
        )),
        None if done.direct.is_none() && done.drafts.is_none() => text.push_str("Nothing waits for review.\n"),
        None => {}
    }
    text
}
