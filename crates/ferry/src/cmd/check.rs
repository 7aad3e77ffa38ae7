//! `ferry check`

use anyhow::Result;
use ferry_engine::check::check;
use ferry_engine::views::CheckView;

use super::{load, print_json, print_text};
use crate::cli::Global;
use crate::ui;

pub async fn run(g: &Global) -> Result<u8> {
    let project = load(g)?;
    let report = check(&project).await;
    if g.json {
        print_json(&CheckView::new(&report))?;
    } else {
        let mut out = String::new();
        for e in &report.environments {
            let state = if e.reachable {
                ui::green(&format!(
                    "ok ({}, {} managed tables)",
                    e.engine.as_deref().unwrap_or("?"),
                    e.tables
                ))
            } else {
                ui::red("unreachable")
            };
            let targets = project.config.targets_of(&e.name);
            let routes = if targets.is_empty() {
                String::new()
            } else {
                format!("  -> {}", targets.join(", "))
            };
            out.push_str(&format!("{:<16} {state}{routes}\n", e.name));
        }
        for w in &report.warnings {
            out.push_str(&format!("\n{} {}:{w}", ui::yellow("warning:"), project.path.display()));
        }
        if !report.warnings.is_empty() {
            out.push('\n');
        }
        if report.ok() {
            out.push_str(&format!(
                "\n{} is valid: every environment is reachable and every table, key and column checks out.\n",
                project.path.display()
            ));
        } else {
            let n = report.problems.len();
            out.push_str(&format!(
                "\n{} has {n} problem{}:\n",
                project.path.display(),
                if n == 1 { "" } else { "s" }
            ));
            for p in &report.problems {
                out.push_str(&format!("  {}:{p}\n", project.path.display()));
            }
        }
        print_text(&out)?;
    }
    Ok(if report.ok() { 0 } else { 2 })
}
