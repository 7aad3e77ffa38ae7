//! `ferry export ENV DIR`

use std::path::Path;

use anyhow::Result;

use super::{load, print_json, print_text};
use crate::cli::Global;
use crate::ui;

pub async fn run(g: &Global, env: &str, dir: &Path) -> Result<u8> {
    let project = load(g)?;
    let report = ferry_engine::export::export(&project, env, dir, &ui::user(g)).await?;
    if g.json {
        print_json(&report)?;
        return Ok(0);
    }
    let mut out = String::new();
    for (table, t) in &report.tables {
        out.push_str(&format!(
            "{table:<24} {} written, {} unchanged, {} removed",
            t.written, t.unchanged, t.removed
        ));
        if t.excluded > 0 {
            out.push_str(&format!(", {} excluded", t.excluded));
        }
        out.push('\n');
    }
    out.push_str(&format!("Exported `{env}` to {}.\n", dir.display()));
    for s in &report.in_sync {
        out.push_str(&format!(
            "Recorded {} row(s) as in sync for {} -> {} (baseline {}).\n",
            s.recorded,
            s.from,
            s.to,
            s.baseline.as_deref().unwrap_or("(none)")
        ));
    }
    print_text(&out)?;
    Ok(0)
}
