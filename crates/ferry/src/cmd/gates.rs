//! Gates and hooks on the command line: running an environment's checks
//! before a promotion and its hooks after, and telling people (stderr) and
//! scripts (`--json`) how each went.

use anyhow::Result;
use ferry_core::plan::Plan;
use ferry_db::Store;
use ferry_engine::apply::Promotion;
use ferry_engine::audit::{self, AuditEntry};
use ferry_engine::gates::{self, CheckOutcome};
use ferry_engine::hooks::{self, HookOutcome};
use ferry_engine::project::Project;

use crate::cli::Global;

/// Runs the target's checks for `plan` before anything is written, shows
/// each result on stderr (not with `--json`), and blocks (exit 3) on the
/// first that fails. Nothing to promote: nothing to check.
pub async fn checks(
    g: &Global,
    project: &Project,
    source: Option<&dyn Store>,
    target: &dyn Store,
    plan: &Plan,
    has_changes: bool,
) -> Result<Vec<CheckOutcome>> {
    let configured = project.env_config(&plan.to).map_or(0, |e| e.checks.len());
    if configured == 0 || !has_changes {
        return Ok(Vec::new());
    }
    if !g.json {
        eprintln!("\nChecks of {} ({configured}):", plan.to);
    }
    let outcomes = gates::evaluate(project, source, target, plan).await;
    if !g.json {
        for o in &outcomes {
            eprintln!("  {}", check_line(o));
        }
        let skipped = configured - outcomes.len();
        if skipped > 0 {
            eprintln!("  ({skipped} more not run: a check failed)");
        }
    }
    gates::require_passed(&plan.to, &outcomes)?;
    Ok(outcomes)
}

fn check_line(o: &CheckOutcome) -> String {
    let verdict = if o.passed { "passed" } else { "FAILED" };
    // The last line: where test runners put their verdict.
    let last = o.output.lines().last().unwrap_or("");
    let more = o.output.lines().count() > 1;
    match (o.passed, last.is_empty()) {
        (_, true) => format!("{verdict}  {}", o.name),
        // A passing check shows its last line; a failing one is shown in
        // full by the error that follows.
        (true, false) => format!("{verdict}  {}: {}{last}", o.name, if more { "… " } else { "" }),
        (false, false) => format!("{verdict}  {}", o.name),
    }
}

/// Runs a saved plan's source-side checks and records them in it; shows
/// each on stderr (not with `--json`), warning about those that failed.
pub async fn record(g: &Global, project: &Project, source: &dyn Store, plan: &mut Plan) -> Vec<CheckOutcome> {
    let outcomes = gates::record_source_checks(project, source, plan).await;
    if !g.json && !outcomes.is_empty() {
        eprintln!("Source checks of {}, recorded in the plan:", plan.to);
        for o in &outcomes {
            eprintln!("  {}", check_line(o));
            if !o.passed {
                for line in o.output.lines() {
                    eprintln!("    | {line}");
                }
            }
        }
        if outcomes.iter().any(|o| !o.passed) {
            eprintln!("  Promoting this plan will be blocked until a new plan passes them.");
        }
    }
    outcomes
}

/// Runs the target's hooks for a committed promotion, shows each result on
/// stderr (not with `--json`) and records each in the target's audit
/// trail. A failing hook never undoes the promotion.
#[allow(clippy::too_many_arguments)]
pub async fn hooks(
    g: &Global,
    project: &Project,
    target: &dyn Store,
    promotion: &Promotion,
    from: &str,
    to: &str,
    user: &str,
    review: Option<&str>,
) -> Vec<HookOutcome> {
    let configured = project.env_config(to).map_or(0, |e| e.hooks.len());
    if configured == 0 {
        return Vec::new();
    }
    if !g.json {
        eprintln!(
            "\nPromotion {} is committed into {to}; running its hooks ({configured}):",
            promotion.id
        );
    }
    let payload = hooks::payload(promotion, from, to, user, review);
    let outcomes = hooks::run_hooks(project, to, &payload).await;
    for o in &outcomes {
        if !g.json {
            match &o.error {
                None => eprintln!("  ok      #{} {}", o.index, o.hook),
                Some(e) => {
                    eprintln!("  FAILED  #{} {}: {e}", o.index, o.hook);
                    for line in o.output.lines() {
                        eprintln!("    | {line}");
                    }
                }
            }
        }
        let mut entry = AuditEntry::new(user, "hook", Some(from), to);
        entry.ref_id = Some(promotion.id.clone());
        entry.result = if o.ok { "ok" } else { "failed" }.into();
        entry.detail = match &o.error {
            None => format!("#{} {}", o.index, o.hook),
            Some(e) => format!("#{} {}: {e}", o.index, o.hook),
        };
        let _ = audit::record(target, &entry).await;
    }
    if !g.json && outcomes.iter().any(|o| !o.ok) {
        eprintln!(
            "  The promotion {} stays applied; run the failed hook again by hand.",
            promotion.id
        );
    }
    outcomes
}
