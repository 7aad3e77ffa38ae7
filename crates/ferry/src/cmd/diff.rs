//! `ferry diff` and `ferry plan`

use std::path::PathBuf;

use anyhow::{Context, Result};
use ferry_core::plan::Plan;
use ferry_engine::planner;
use ferry_engine::views::{PlanView, SavedPlanView};

use super::{print_json, print_text, selection};
use crate::cli::{Global, SelectionArgs};
use crate::output;
use crate::ui;

pub async fn run(
    g: &Global,
    from: &str,
    to: &str,
    args: &SelectionArgs,
    save: Option<PathBuf>,
    is_diff: bool,
) -> Result<u8> {
    let envs = super::envs_for(g, &[from, to]).await?.full_plans(args.full);
    let project = envs.project();
    let sel = selection(args)?;
    let key = match &save {
        Some(_) => super::plan_key()?,
        None => None,
    };
    let pair = envs.pair(from, to, &sel, true).await?;
    let mut plan = planner::plan(&pair, &sel, ui::progress(g)).await?;
    // A saved plan carries the results of the target's source-side checks.
    let checks = match &save {
        Some(_) => super::gates::record(g, project, &*pair.source, &mut plan).await,
        None => Vec::new(),
    };
    if let Some(path) = &save {
        let text = plan.to_file_signed(key.as_ref());
        std::fs::write(path, text).with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    if g.json {
        let view = PlanView::new(&plan);
        match &save {
            Some(path) => print_json(&SavedPlanView {
                plan: view,
                saved_to: path.display().to_string(),
                signed: key.is_some(),
                checks,
            })?,
            None => print_json(&view)?,
        }
    } else {
        let mut text = output::plan_text_with(&plan, g.verbose);
        // How tables with `changed` were read, said once per plan.
        for note in &plan.notes.0 {
            text.push_str(&format!("note: {note}\n"));
        }
        if let Some(path) = &save {
            let file = shell_word(&path.display().to_string());
            let apply = format!("ferry promote {from} {to} --plan {file}");
            let saved = format!(
                "\nPlan saved to {}{}.",
                path.display(),
                if key.is_some() {
                    " (signed with FERRY_PLAN_KEY)"
                } else {
                    ""
                }
            );
            text.push_str(&match plan.counts().conflict {
                0 => format!("{saved} Apply exactly this plan with: {apply}\n"),
                n => format!(
                    "{saved} Its {n} conflict(s) refuse it as it is: apply it letting `{from}` win them with `{apply} --force`, or decide them with --take and make the plan again\n"
                ),
            });
        } else if !is_diff && (plan.has_changes() || plan.counts().conflict > 0) {
            // A hint to promote only for a user [access] lets promote there.
            match ferry_core::access::check(
                project.config.access.as_ref(),
                &ui::user(g),
                ferry_core::access::Right::Promote,
                to,
            ) {
                Ok(()) => text.push_str(&apply_hint(&plan)),
                Err(why) => text.push_str(&format!("\nPromoting it needs the `promote` right in {to}: {why}\n")),
            }
        }
        print_text(&text)?;
    }
    Ok(0)
}

/// How to apply a plan just shown: the same selection (a bare `ferry
/// promote FROM TO` would promote everything), and, when conflicts would
/// refuse it, how to decide them first.
fn apply_hint(plan: &Plan) -> String {
    let words: String = plan
        .selection
        .iter()
        .map(|w| match w.split_once(' ') {
            Some((flag, value)) => format!(" {flag} {}", shell_word(value)),
            None => format!(" {}", shell_word(w)),
        })
        .collect();
    let command = format!("ferry promote {} {}{words}", plan.from, plan.to);
    let conflicts = plan.counts().conflict;
    if conflicts == 0 {
        return format!("\nApply it with: {command}\n");
    }
    format!(
        "\n{conflicts} conflict(s) refuse it as it is: decide each with `{command} --id TABLE:KEY --take source|target`, or let `{}` win them all with `{command} --force`\n",
        plan.from
    )
}

/// `s` as one shell word: as it is when that is safe, else single-quoted.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:,/=@+%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
