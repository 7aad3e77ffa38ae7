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

/// The `warning:` label of a message on stderr, coloured only when stderr
/// is a terminal.
pub fn warning_label() -> String {
    if console::colors_enabled_stderr() {
        Style::new().yellow().bold().apply_to("warning:").to_string()
    } else {
        "warning:".to_string()
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

/// How long a command works before its progress bars appear: a command
/// that is done sooner shows none (no flicker on a 10 ms diff).
const SHOW_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Per-table bars on stderr, drawn only once the work has taken
/// [`SHOW_AFTER`]: until then the bars count in a hidden draw target.
struct Bars {
    multi: MultiProgress,
    /// Set once the work is done, so a late timer does not show the bars.
    done: Arc<std::sync::Mutex<bool>>,
}

impl Bars {
    /// Bars that become visible on `target` after `delay`.
    fn delayed(target: impl FnOnce() -> ProgressDrawTarget + Send + 'static, delay: std::time::Duration) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        let done = Arc::new(std::sync::Mutex::new(false));
        let (m, d) = (multi.clone(), done.clone());
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            // Under the lock: `finish` either ran (stay hidden) or waits.
            if let Ok(done) = d.lock() {
                if !*done {
                    m.set_draw_target(target());
                }
            }
        });
        Bars { multi, done }
    }
}

struct Bar(ProgressBar);

/// A table whose row count is unknown: a spinner with the rows so far.
const SPINNER: &str = "{spinner} {prefix:>16} {human_pos} rows {per_sec}";
/// A table whose row count is known: a bar with the total and an ETA.
const WITH_TOTAL: &str = "{prefix:>16} [{bar:30}] {human_pos}/{human_len} rows {per_sec} ETA {eta}";

impl TableProgress for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_total(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_style(
            ProgressStyle::with_template(WITH_TOTAL)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl ProgressSink for Bars {
    fn table(&self, name: &str) -> Box<dyn TableProgress> {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template(SPINNER).unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Box::new(Bar(bar))
    }
    fn finish(&self) {
        if let Ok(mut done) = self.done.lock() {
            *done = true;
        }
        let _ = self.multi.clear();
    }
}

/// Progress bars on a terminal (stderr), nothing on a pipe or with --json;
/// they appear only once the work has taken a second.
pub fn progress(global: &Global) -> Progress {
    if global.json || !std::io::stderr().is_terminal() {
        return Progress::hidden();
    }
    Progress::new(Arc::new(Bars::delayed(ProgressDrawTarget::stderr, SHOW_AFTER)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A terminal that keeps what is drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn on(screen: &Screen, delay: Duration) -> Bars {
        let s = screen.clone();
        Bars::delayed(move || ProgressDrawTarget::term_like(Box::new(s)), delay)
    }

    #[test]
    fn bars_appear_only_after_the_delay() {
        let screen = Screen::default();
        let bars = on(&screen, Duration::from_millis(300));
        let t = bars.table("cities");
        t.inc(5);
        std::thread::sleep(Duration::from_millis(150));
        assert!(bars.multi.is_hidden(), "nothing is drawn before the delay");
        assert_eq!(*screen.0.lock().unwrap(), "");
        std::thread::sleep(Duration::from_millis(600));
        assert!(!bars.multi.is_hidden(), "shown once the work took longer");
        t.inc(1);
        std::thread::sleep(Duration::from_millis(200));
        assert!(screen.0.lock().unwrap().contains("cities"), "{:?}", screen.0);
        t.finish();
        bars.finish();
    }

    #[test]
    fn work_done_before_the_delay_never_draws() {
        let screen = Screen::default();
        let bars = on(&screen, Duration::from_millis(100));
        let t = bars.table("cities");
        t.inc(5);
        t.finish();
        bars.finish();
        std::thread::sleep(Duration::from_millis(300));
        assert!(bars.multi.is_hidden());
        assert_eq!(*screen.0.lock().unwrap(), "", "no flicker");
    }

    #[test]
    fn a_known_total_gives_a_bar_with_its_length() {
        let bar = ProgressBar::hidden();
        let t = Bar(bar.clone());
        assert_eq!(bar.length(), None);
        t.set_total(1234);
        t.inc(34);
        assert_eq!((bar.length(), bar.position()), (Some(1234), 34));
    }
}
