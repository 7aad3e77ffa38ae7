//! `ferry promote`

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ferry_core::access::Right;
use ferry_core::plan::Plan;
use ferry_db::Store;
use ferry_engine::apply::{self, PromoteOptions};
use ferry_engine::audit::{self, AuditEntry};
use ferry_engine::project::Project;
use ferry_engine::views::{PromoteView, WrittenCounts};
use ferry_engine::{pair, planner, reviews, saved, Error};

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
    let user = ui::user(g);
    // The target once opened, so that a refusal is audited there.
    let mut target: Option<Arc<dyn Store>> = None;
    let result = promote(g, from, to, args, &opts, &user, &mut target).await;
    if let (Some(store), Err(e)) = (&target, &result) {
        if let Some(err) = e.downcast_ref::<Error>() {
            // Permission refusals are audited where they are decided.
            if !matches!(err, Error::Denied(_)) && !opts.dry_run {
                let mut entry = AuditEntry::new(&user, "promote", Some(from), to);
                entry.result = match err {
                    Error::Blocked(_) => "blocked",
                    Error::Db(_) | Error::Data(_) => "failed",
                    _ => "refused",
                }
                .into();
                entry.detail = err.to_string();
                let _ = audit::record(&**store, &entry).await;
            }
        }
    }
    result
}

async fn promote(
    g: &Global,
    from: &str,
    to: &str,
    args: &SelectionArgs,
    opts: &Options,
    user: &str,
    opened: &mut Option<Arc<dyn Store>>,
) -> Result<u8> {
    let project = load(g)?;
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
    let review_env = project.env_config(to)?.review;
    // A saved plan applies with nothing but its target: the source may be gone.
    let (target, source, plan, _lock) = match &opts.plan {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
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
            route(&project, from, to, opened).await?;
            let target = project.open(to).await?;
            *opened = Some(target.clone());
            // Hashed, not trusted: only managed tables, as configured.
            apply::check_saved(&project, &*target, &plan).await?;
            if !opts.dry_run {
                audit::require(&project, &*target, user, Right::Promote, "promote", Some(from)).await?;
            }
            let lock = if opts.dry_run {
                None
            } else {
                Some(ui::writer_lock(g, &*target).await?)
            };
            let source = if opts.approve_revisions {
                project.open(from).await.ok()
            } else {
                None
            };
            (target, source, plan, lock)
        }
        None => {
            route(&project, from, to, opened).await?;
            let pair = pair::open_for(&project, from, to, &sel).await?;
            *opened = Some(pair.target.clone());
            if !opts.dry_run {
                audit::require(&project, &*pair.target, user, Right::Promote, "promote", Some(from)).await?;
            }
            // Held from planning to commit: a second writer waits for this one.
            let lock = if opts.dry_run {
                None
            } else {
                Some(ui::writer_lock(g, &*pair.target).await?)
            };
            let mut plan = planner::plan(&pair, &sel, ui::progress(g)).await?;
            plan.under_lock.0 = lock.is_some();
            if let Some(side) = opts.take {
                planner::take(&mut plan, side, &sel.ids)?;
            }
            (pair.target.clone(), Some(pair.source.clone()), plan, lock)
        }
    };
    // Refuse conflicts and rows under review before asking anything.
    // A count: the apply builds its own list (held twice, a large
    // promotion's entries would cost twice the memory).
    let (changes, would) = {
        let list = apply::changes(&plan, opts.force)?;
        if opts.plan.is_some() {
            // A saved plan answers as its apply would: applied already, or
            // stale (a dry run writes nothing, so the apply's own re-check
            // never runs for it).
            saved::refuse_if_applied(&*target, &plan).await?;
            if opts.dry_run {
                saved::refuse_if_stale(&*target, &plan, &list).await?;
            }
        }
        // What would be written: conflicts count as the source's change when forced.
        let mut would = ferry_core::plan::Counts::default();
        for c in list.iter().filter(|c| c.is_change()) {
            would.add(c.action);
        }
        (list.len(), WrittenCounts::from(&would))
    };
    reviews::check_open(&*target, &plan).await?;
    if !g.json {
        print_text(&output::plan_text_with(&plan, g.verbose))?;
    }
    // Gates: the target's checks, before anything is written (dry runs too).
    let checks = super::gates::checks(g, &project, source.as_deref(), &*target, &plan, changes > 0).await?;
    if opts.dry_run || changes == 0 {
        if g.json {
            print_json(&PromoteView::planned(&plan, would, opts.dry_run, checks))?;
        } else if opts.dry_run {
            print_text("\nDry run: nothing was written.\n")?;
        }
        return Ok(0);
    }
    let question = if review_env {
        format!("Submit {changes} change(s) from {from} for review in {to}?")
    } else {
        format!("Promote {changes} change(s) from {from} into {to}?")
    };
    if !ui::confirm(g, &question, &format!("promoting into `{to}`"))? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let promote_opts = PromoteOptions {
        user: user.to_string(),
        force: opts.force,
    };
    if review_env {
        let direct = match (&source, opts.approve_revisions) {
            (Some(s), true) => reviews::approved_upstream(&project, &**s, &plan).await?,
            _ => HashSet::new(),
        };
        let done = reviews::submit(&project, &*target, &plan, &promote_opts, &direct).await?;
        let mut entry = AuditEntry::new(user, "promote", Some(from), to);
        entry.ref_id = done.review.clone().or(done.direct.as_ref().map(|p| p.id.clone()));
        entry.detail = "submitted for review".into();
        let _ = audit::record(&*target, &entry).await;
        let promotion = done.direct.as_ref().or(done.drafts.as_ref());
        let hooks = match promotion {
            Some(p) => super::gates::hooks(g, &project, &*target, p, from, to, user, done.review.as_deref()).await,
            None => Vec::new(),
        };
        if g.json {
            print_json(&PromoteView::submitted(&done, checks, hooks))?;
        } else {
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
            print_text(&text)?;
        }
        return Ok(0);
    }
    let done = apply::promote_plan(&*target, &plan, &promote_opts).await?;
    let mut entry = AuditEntry::new(user, "promote", Some(from), to);
    entry.ref_id = done.as_ref().map(|p| p.id.clone());
    let _ = audit::record(&*target, &entry).await;
    match done {
        Some(p) => {
            let hooks = super::gates::hooks(g, &project, &*target, &p, from, to, user, None).await;
            if g.json {
                print_json(&PromoteView::applied(&p, checks, hooks))?;
            } else {
                // Name `ferry revert` only as something this user may run.
                let denied = ferry_core::access::check(project.config.access.as_ref(), user, Right::Revert, to).err();
                print_text(&format!("\n{}", output::promoted_text(&p, to, denied.as_deref())))?;
            }
        }
        None => {
            if g.json {
                print_json(&PromoteView::nothing())?;
            }
        }
    }
    Ok(0)
}

/// Refuses a promotion that does not follow the pipeline; the refusal is
/// audited in the target (opened for that) like any other.
async fn route(project: &Project, from: &str, to: &str, opened: &mut Option<Arc<dyn Store>>) -> Result<()> {
    if let Err(e) = pair::check_route(project, from, to) {
        if matches!(e, Error::Blocked(_)) {
            if let Ok(target) = project.open(to).await {
                *opened = Some(target);
            }
        }
        return Err(e.into());
    }
    Ok(())
}
