//! One timed Ferry operation, run in a child process of the benchmark so
//! its peak memory (VmHWM) is its own: `ferry-bench __timed --config FILE
//! --op plan|promote|baseline`, with the URLs in the environment. It prints
//! one JSON line: seconds, peak memory, and the plan's counts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferry_core::selection::Selection;
use ferry_engine::apply::{self, PromoteOptions};
use ferry_engine::progress::Progress;
use ferry_engine::project::Project;
use ferry_engine::{baseline, lock, pair, planner};

use crate::schema::{PRODUCTION_VAR, STAGING_VAR};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ferry plan staging production`: open both sides and plan.
    Plan,
    /// `ferry promote staging production`: open, take the writer lock, plan, apply.
    Promote,
    /// `ferry baseline staging production`.
    Baseline,
    /// `ferry track staging` and `ferry track production` (`--track-deletes`).
    Track,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Plan => "plan",
            Op::Promote => "promote",
            Op::Baseline => "baseline",
            Op::Track => "track",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "plan" => Some(Op::Plan),
            "promote" => Some(Op::Promote),
            "baseline" => Some(Op::Baseline),
            "track" => Some(Op::Track),
            _ => None,
        }
    }
}

/// What one timed operation reports.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub secs: f64,
    /// Peak resident memory of the whole process, in KiB.
    pub peak_kib: u64,
    pub insert: u64,
    pub update: u64,
    pub delete: u64,
    pub conflict: u64,
    pub skip: u64,
    /// Rows recorded in sync (baseline).
    pub recorded: u64,
    /// What the plan said of the tables with `changed` it read whole.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// VmHWM from /proc/self/status, in KiB (0 where there is none).
pub fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs the operation in this process (the child side).
pub async fn run_here(config: &Path, op: Op) -> Result<Outcome> {
    let text = std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let cfg = ferry_core::config::parse(&text, config)?;
    let project = Project::from_config(cfg, config.to_path_buf());
    let sel = Selection::default();
    let start = Instant::now();
    let mut out = Outcome::default();
    match op {
        Op::Plan => {
            let pair = pair::open(&project, "staging", "production").await?;
            let plan = planner::plan(&pair, &sel, Progress::hidden()).await?;
            count(&mut out, &plan);
            out.notes = plan.notes.0.clone();
        }
        Op::Promote => {
            // As `ferry promote` does: the lock before the schemas.
            pair::check_route(&project, "staging", "production")?;
            let (source, target) = (project.open("staging").await?, project.open("production").await?);
            let _lock = lock::writer(&*target, true, |_| {}).await?;
            let pair = pair::resolve_opened(&project, "staging", "production", source, target, &sel).await?;
            let mut plan = planner::plan(&pair, &sel, Progress::hidden()).await?;
            plan.under_lock.0 = true;
            count(&mut out, &plan);
            let opts = PromoteOptions {
                user: "ferry-bench".into(),
                force: false,
            };
            apply::promote(&pair, &plan, &opts).await?;
        }
        Op::Baseline => {
            let pair = pair::open_unchecked(&project, "staging", "production").await?;
            let _lock = lock::writer(&*pair.target, true, |_| {}).await?;
            let b = baseline::baseline(&pair, &sel, "ferry-bench", Progress::hidden()).await?;
            count(&mut out, &b.differing);
            out.recorded = b.recorded;
        }
        Op::Track => {
            let envs = ferry_engine::registry::Envs::new(project);
            for env in ["staging", "production"] {
                let req = ferry_engine::ops::track::TrackRequest {
                    env: env.into(),
                    user: "ferry-bench".into(),
                    wait: true,
                };
                let done = ferry_engine::ops::track::track(&envs, &req, &ferry_engine::ops::Quiet).await?;
                if let Some(w) = done.iter().find_map(|t| t.warning.clone()) {
                    bail!("{w}");
                }
            }
        }
    }
    out.secs = start.elapsed().as_secs_f64();
    out.peak_kib = peak_kib();
    Ok(out)
}

fn count(out: &mut Outcome, plan: &ferry_core::plan::Plan) {
    let c = plan.counts();
    out.insert = c.insert;
    out.update = c.update;
    out.delete = c.delete;
    out.conflict = c.conflict;
    out.skip = c.skip;
}

/// Runs the operation in a child process of `exe` (this binary).
pub async fn run_child(exe: &Path, config: &Path, op: Op, staging_url: &str, production_url: &str) -> Result<Outcome> {
    let o = tokio::process::Command::new(exe)
        .arg("__timed")
        .arg("--config")
        .arg(config)
        .arg("--op")
        .arg(op.name())
        .env(STAGING_VAR, staging_url)
        .env(PRODUCTION_VAR, production_url)
        .output()
        .await
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !o.status.success() {
        bail!(
            "ferry {} failed ({}): {}",
            op.name(),
            o.status,
            crate::db::redact(String::from_utf8_lossy(&o.stderr).trim())
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("ferry {}: unexpected output {line:?}", op.name()))
}

/// The binary to run children with: this one, or the one `CARGO_BIN_EXE`
/// names (tests).
pub fn default_exe() -> Result<PathBuf> {
    Ok(std::env::current_exe()?)
}
