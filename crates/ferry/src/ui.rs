//! Terminal concerns: colours (only on a terminal), confirmation prompts,
//! progress bars, and the acting user.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use console::Style;
use ferry_engine::progress::{Progress, ProgressSink, TableProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Global;

/// A command that would ask, run without a terminal and without `--yes`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub fn stdout_styled() -> bool {
    console::colors_enabled()
}

fn paint(s: &str, style: Style) -> String {
    if stdout_styled() {
        style.apply_to(s).to_string()
    } else {
        s.to_string()
    }
}

pub fn green(s: &str) -> String {
    paint(s, Style::new().green())
}
pub fn yellow(s: &str) -> String {
    paint(s, Style::new().yellow())
}
pub fn red(s: &str) -> String {
    paint(s, Style::new().red())
}
pub fn magenta(s: &str) -> String {
    paint(s, Style::new().magenta().bold())
}
pub fn dim(s: &str) -> String {
    paint(s, Style::new().dim())
}
pub fn bold(s: &str) -> String {
    paint(s, Style::new().bold())
}

pub fn error_label() -> String {
    if console::colors_enabled_stderr() {
        Style::new().red().bold().apply_to("error:").to_string()
    } else {
        "error:".to_string()
    }
}

/// Asks `question` on the terminal. Without a terminal and without
/// `--yes`, refuses (exit 2). `--yes` answers yes.
pub fn confirm(global: &Global, question: &str, what: &str) -> anyhow::Result<bool> {
    if global.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Refused(format!(
            "{what} needs confirmation and there is no terminal to ask on; nothing was written. Pass --yes to confirm (promote and baseline also take --dry-run to only look)"
        ))
        .into());
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The acting user: --as, else $FERRY_USER, else the login name ($USER,
/// $LOGNAME, $USERNAME, else the name the system gives the process's user,
/// as cron jobs and containers often set none of them). Empty values do not
/// count. `unknown` only when the system names no user at all.
pub fn user(global: &Global) -> String {
    let named = |v: Option<String>| v.filter(|u| !u.trim().is_empty());
    named(global.user.clone())
        .or_else(|| named(std::env::var("FERRY_USER").ok()))
        .or_else(|| {
            ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|v| named(std::env::var(v).ok()))
        })
        .or_else(|| named(whoami::fallible::username().ok()))
        .unwrap_or_else(|| "unknown".to_string())
}

struct Bars {
    multi: MultiProgress,
}

struct Bar(ProgressBar);

impl TableProgress for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl ProgressSink for Bars {
    fn table(&self, name: &str) -> Box<dyn TableProgress> {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:>16} {human_pos} rows {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Box::new(Bar(bar))
    }
    fn finish(&self) {
        let _ = self.multi.clear();
    }
}

/// Progress bars on a terminal (stderr), nothing on a pipe or with --json.
pub fn progress(global: &Global) -> Progress {
    if global.json || !std::io::stderr().is_terminal() {
        return Progress::hidden();
    }
    Progress::new(Arc::new(Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
    }))
}

/// Takes the target's writer lock for a write command, saying on stderr
/// when it waits for another writer (or refusing with --no-wait).
pub async fn writer_lock(global: &Global, store: &dyn ferry_db::Store) -> anyhow::Result<ferry_db::WriterLock> {
    Ok(ferry_engine::lock::writer(store, !global.no_wait, |msg| eprintln!("ferry: {msg}")).await?)
}
