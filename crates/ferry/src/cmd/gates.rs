//! What an operation tells people while it runs (the engine's
//! `ops::Observer`): the plan, each gate check and each hook on stderr
//! (not with `--json`), waiting for another writer, progress bars.

use std::sync::Mutex;

use anyhow::Result;
use ferry_core::plan::Plan;
use ferry_engine::gates::{self, CheckOutcome};
use ferry_engine::hooks::HookOutcome;
use ferry_engine::ops::Observer;
use ferry_engine::progress::Progress;
use ferry_engine::project::Project;
use ferry_engine::Store;

use crate::cli::Global;

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

/// The command line's observer of an operation.
pub struct Shown<'a> {
    g: &'a Global,
    /// The first failure to print the plan (a closed stdout): the command
    /// stops with it once the engine hands back control.
    failed: Mutex<Option<anyhow::Error>>,
}

impl<'a> Shown<'a> {
    pub fn new(g: &'a Global) -> Shown<'a> {
        Shown {
            g,
            failed: Mutex::new(None),
        }
    }

    /// Fails with what could not be printed, if anything.
    pub fn result(&self) -> Result<()> {
        match self.failed.lock() {
            Ok(mut f) => f.take().map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }
}

impl Observer for Shown<'_> {
    fn progress(&self) -> Progress {
        crate::ui::progress(self.g)
    }

    fn waiting(&self, message: &str) {
        eprintln!("ferry: {message}");
    }

    fn planned(&self, plan: &Plan) {
        if self.g.json {
            return;
        }
        if let Err(e) = super::print_text(&crate::output::plan_text_with(plan, self.g.verbose)) {
            if let Ok(mut f) = self.failed.lock() {
                f.get_or_insert(e);
            }
        }
    }

    fn checks_ran(&self, to: &str, configured: usize, outcomes: &[CheckOutcome]) {
        if self.g.json {
            return;
        }
        eprintln!("\nChecks of {to} ({configured}):");
        for o in outcomes {
            eprintln!("  {}", check_line(o));
        }
        let skipped = configured - outcomes.len();
        if skipped > 0 {
            eprintln!("  ({skipped} more not run: a check failed)");
        }
    }

    fn hooks_starting(&self, promotion: &str, to: &str, configured: usize) {
        if !self.g.json {
            eprintln!("\nPromotion {promotion} is committed into {to}; running its hooks ({configured}):");
        }
    }

    fn hooks_ran(&self, promotion: &str, outcomes: &[HookOutcome]) {
        if self.g.json {
            return;
        }
        for o in outcomes {
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
        if outcomes.iter().any(|o| !o.ok) {
            eprintln!("  The promotion {promotion} stays applied; run the failed hook again by hand.");
        }
    }
}
