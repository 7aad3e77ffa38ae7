//! `ferry diff` and `ferry plan`

use std::path::PathBuf;

use anyhow::{Context, Result};
use ferry_engine::{pair, planner};

use super::{load, print_json, print_text, selection};
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
    let project = load(g)?;
    let sel = selection(args)?;
    let pair = pair::open(&project, from, to).await?;
    let mut plan = planner::plan(&pair, &sel, ui::progress(g)).await?;
    // A saved plan carries the results of the target's source-side checks.
    let checks = match &save {
        Some(_) => super::gates::record(g, &project, &*pair.source, &mut plan).await,
        None => Vec::new(),
    };
    if let Some(path) = &save {
        let text = plan.to_file();
        std::fs::write(path, text).with_context(|| format!("cannot write the plan to {}", path.display()))?;
    }
    if g.json {
        let mut v = output::plan_json(&plan);
        if let Some(path) = &save {
            v["saved_to"] = serde_json::json!(path.display().to_string());
            v["checks"] = super::gates::checks_json(&checks);
        }
        print_json(&v)?;
    } else {
        let mut text = output::plan_text_with(&plan, g.verbose);
        if let Some(path) = &save {
            text.push_str(&format!(
                "\nPlan saved to {}. Apply exactly this plan with: ferry promote {from} {to} --plan {}\n",
                path.display(),
                path.display()
            ));
        } else if !is_diff && plan.has_changes() {
            text.push_str(&format!("\nApply it with: ferry promote {from} {to}\n"));
        }
        print_text(&text)?;
    }
    Ok(0)
}
