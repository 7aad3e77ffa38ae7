//! Gates: the checks an environment requires before a promotion into it
//! writes anything (`[[environments.NAME.checks]]`).
//!
//! A `sql` check runs on the source or the target, as written, and passes
//! iff it returns a row whose first column is true or non-zero (NULL, zero,
//! false, text that is neither, an error or no row at all fail). A
//! `mongo` check (a MongoDB environment) counts the documents of a
//! collection that a filter document matches, and passes iff there are
//! exactly `count` (default 0). A
//! `command` check runs with `sh -c` in the configuration's folder, with
//! `FERRY_FROM`, `FERRY_TO` and `FERRY_PLAN` (the path of the plan as JSON)
//! in its environment, and passes iff it exits 0 within its time limit.
//!
//! Checks run in the order they are written; the first that fails stops
//! the others (there is no point running a test suite once an assertion
//! failed) and blocks the promotion (exit 3). A saved plan carries the
//! results of the source-side `sql` checks, run when it was saved:
//! promoting it takes them from there, as the source may be gone by then.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::config::{CheckConfig, CheckSide};
use ferry_core::plan::{CheckResult, Plan};
use ferry_core::Value;
use ferry_db::Store;

use crate::error::{Error, Result};
use crate::project::Project;

/// How long a `command` check may run, unless `FERRY_CHECK_TIMEOUT`
/// (seconds) says otherwise.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(600);

pub use crate::views::CheckOutcome;

impl CheckOutcome {
    fn new(index: usize, check: &CheckConfig) -> CheckOutcome {
        let (kind, side, text) = describe(check);
        CheckOutcome {
            index,
            name: name_of(index, check),
            kind: kind.into(),
            side: side.into(),
            check: text,
            passed: false,
            output: String::new(),
            from_plan: false,
        }
    }

    /// The outcome as a saved plan records it.
    pub fn to_result(&self) -> CheckResult {
        CheckResult {
            check: self.check.clone(),
            side: self.side.clone(),
            passed: self.passed,
            output: self.output.clone(),
        }
    }
}

fn describe(check: &CheckConfig) -> (&'static str, &'static str, String) {
    match check {
        CheckConfig::Sql { sql, on } => ("sql", side_name(*on), sql.clone()),
        CheckConfig::Command { command } => ("command", "command", command.clone()),
        CheckConfig::Mongo { on, .. } => ("mongo", side_name(*on), check.text()),
    }
}

fn side_name(side: CheckSide) -> &'static str {
    match side {
        CheckSide::Source => "source",
        CheckSide::Target => "target",
    }
}

/// `#2 sql on source: SELECT ...` / `#3 command: ./run-tests.sh`, on one line.
fn name_of(index: usize, check: &CheckConfig) -> String {
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    match check {
        CheckConfig::Sql { sql, on } => format!("#{index} sql on {}: {}", side_name(*on), one_line(sql)),
        CheckConfig::Command { command } => format!("#{index} command: {}", one_line(command)),
        CheckConfig::Mongo {
            collection,
            filter,
            count,
            on,
        } => format!(
            "#{index} mongo on {}: {collection} {} matches {count}",
            side_name(*on),
            one_line(filter)
        ),
    }
}

/// Runs the target environment's checks for `plan` and blocks (exit 3)
/// on the first that fails, naming it and showing its output. `source` may
/// be `None` for a saved plan: its source-side results come from the plan
/// (the source is opened only for a check the plan carries no result of).
pub async fn run_checks(
    project: &Project,
    source: Option<&dyn Store>,
    target: &dyn Store,
    plan: &Plan,
) -> Result<Vec<CheckOutcome>> {
    let outcomes = evaluate(project, source, target, plan).await;
    require_passed(&plan.to, &outcomes)?;
    Ok(outcomes)
}

/// Runs the checks like [`run_checks`], without turning a failure into an
/// error: the outcomes of the checks that ran, the failing one last.
pub async fn evaluate(
    project: &Project,
    source: Option<&dyn Store>,
    target: &dyn Store,
    plan: &Plan,
) -> Vec<CheckOutcome> {
    let Ok(env) = project.env_config(&plan.to) else {
        return Vec::new();
    };
    let mut outcomes = Vec::new();
    let mut plan_file: Option<std::result::Result<TempFile, String>> = None;
    // Opened on demand: a saved plan's source, for a result it lacks.
    let mut opened_source: Option<std::result::Result<std::sync::Arc<dyn Store>, String>> = None;
    for (i, check) in env.checks.iter().enumerate() {
        let mut out = CheckOutcome::new(i + 1, check);
        match check {
            CheckConfig::Sql { on, .. } | CheckConfig::Mongo { on, .. } => {
                let text = check.text();
                let recorded = (*on == CheckSide::Source)
                    .then(|| plan.checks.iter().find(|r| r.side == "source" && r.check == text))
                    .flatten();
                if let Some(r) = recorded {
                    out.passed = r.passed;
                    out.output = format!("{} (recorded in the saved plan, made {})", r.output, plan.created_at);
                    out.from_plan = true;
                } else {
                    let store: std::result::Result<&dyn Store, String> = match (on, source) {
                        (CheckSide::Target, _) => Ok(target),
                        (CheckSide::Source, Some(s)) => Ok(s),
                        (CheckSide::Source, None) => {
                            let opened = match &opened_source {
                                Some(o) => o,
                                None => opened_source.insert(project.open(&plan.from).await.map_err(|e| e.to_string())),
                            };
                            opened.as_ref().map(|s| &**s).map_err(|e| {
                                format!(
                                    "the saved plan carries no result of this check and the source `{}` cannot be reached ({e}); save the plan again where it can be",
                                    plan.from
                                )
                            })
                        }
                    };
                    let (passed, output) = match store {
                        Ok(store) => query_check(store, check).await,
                        Err(e) => (false, e),
                    };
                    out.passed = passed;
                    out.output = output;
                }
            }
            CheckConfig::Command { command } => {
                let file = match &plan_file {
                    Some(f) => f,
                    None => {
                        plan_file.insert(plan_text(plan).and_then(|text| TempFile::write("ferry-plan", ".json", &text)))
                    }
                };
                match file {
                    Ok(file) => {
                        let env_vars = [
                            ("FERRY_FROM", plan.from.clone()),
                            ("FERRY_TO", plan.to.clone()),
                            ("FERRY_PLAN", file.path.display().to_string()),
                        ];
                        let run = shell(command, &project.config.base_dir, &env_vars, None, check_timeout()).await;
                        out.passed = run.ok();
                        out.output = match (&run.failure, run.output.is_empty()) {
                            (Some(f), true) => f.clone(),
                            (Some(f), false) => format!("{f}\n{}", run.output),
                            (None, _) => run.output.clone(),
                        };
                    }
                    Err(e) => {
                        out.passed = false;
                        out.output = format!("cannot write the plan for the command: {e}");
                    }
                }
            }
        }
        let failed = !out.passed;
        outcomes.push(out);
        if failed {
            break;
        }
    }
    outcomes
}

/// Blocks (exit 3) when an outcome failed, naming the check and showing
/// its output.
pub fn require_passed(to: &str, outcomes: &[CheckOutcome]) -> Result<()> {
    let Some(failed) = outcomes.iter().find(|o| !o.passed) else {
        return Ok(());
    };
    let what = failed.name.split_once(' ').map_or(failed.name.as_str(), |(_, w)| w);
    let mut msg = format!(
        "check #{} of `{to}` failed ({what}); the promotion is blocked and nothing was written",
        failed.index
    );
    if failed.output.is_empty() {
        msg.push_str(" (the check printed nothing)");
    } else {
        msg.push(':');
        for line in failed.output.lines() {
            msg.push_str("\n  | ");
            msg.push_str(line);
        }
    }
    Err(Error::Blocked(msg))
}

/// Runs the target environment's source-side `sql` checks on `source` and
/// records their results in `plan`, so that the saved plan carries them.
/// Returns the outcomes (all of them: nothing is blocked here; promoting a
/// plan whose recorded check failed is).
pub async fn record_source_checks(project: &Project, source: &dyn Store, plan: &mut Plan) -> Vec<CheckOutcome> {
    let Ok(env) = project.env_config(&plan.to) else {
        return Vec::new();
    };
    let mut outcomes = Vec::new();
    for (i, check) in env.checks.iter().enumerate() {
        if let CheckConfig::Sql {
            on: CheckSide::Source, ..
        }
        | CheckConfig::Mongo {
            on: CheckSide::Source, ..
        } = check
        {
            let mut out = CheckOutcome::new(i + 1, check);
            (out.passed, out.output) = query_check(source, check).await;
            outcomes.push(out);
        }
    }
    plan.checks = outcomes.iter().map(CheckOutcome::to_result).collect();
    outcomes
}

/// Runs one `sql` or `mongo` check: (passed, what it returned).
async fn query_check(store: &dyn Store, check: &CheckConfig) -> (bool, String) {
    match check {
        CheckConfig::Sql { sql, .. } => sql_check(store, sql).await,
        CheckConfig::Mongo {
            collection,
            filter,
            count,
            ..
        } => match store.count_native(collection, filter).await {
            Ok(n) if n == *count => (true, format!("{n} document(s) match")),
            Ok(n) => (false, format!("{n} document(s) match, {count} expected")),
            Err(e) => (false, format!("the count failed: {e}")),
        },
        CheckConfig::Command { .. } => (false, "a command is no query".into()),
    }
}

/// Runs one `sql` check: (passed, what it returned).
async fn sql_check(store: &dyn Store, sql: &str) -> (bool, String) {
    match ferry_db::query_scalar(store, sql).await {
        Ok(None) => (false, "returned no row".into()),
        Ok(Some(v)) => (truthy(&v), format!("returned {}", shown(&v))),
        Err(e) => (false, format!("the query failed: {e}")),
    }
}

/// True or non-zero.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        // Exact: any non-zero digit in the mantissa.
        Value::Decimal(d) => d
            .split(['e', 'E'])
            .next()
            .is_some_and(|m| m.chars().any(|c| ('1'..='9').contains(&c))),
        Value::Text(t) => {
            let t = t.trim();
            t.eq_ignore_ascii_case("true")
                || t.eq_ignore_ascii_case("t")
                || t.parse::<f64>().is_ok_and(|f| f != 0.0 && !f.is_nan())
        }
        _ => false,
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(t) => format!("'{t}'"),
        other => {
            let s = other.display_text();
            if s.chars().count() > 200 {
                format!("{}…", s.chars().take(200).collect::<String>())
            } else {
                s
            }
        }
    }
}

/// The plan a `command` check reads (`FERRY_PLAN`): the `--json` plan view.
fn plan_text(plan: &Plan) -> std::result::Result<String, String> {
    serde_json::to_string_pretty(&crate::views::PlanView::new(plan)).map_err(|e| e.to_string())
}

fn check_timeout() -> Duration {
    std::env::var("FERRY_CHECK_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(DEFAULT_CHECK_TIMEOUT, Duration::from_secs)
}

// ---- running commands ----------------------------------------------------

/// What a shell command did.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShellRun {
    /// `None` when it exited 0 in time; else why it failed.
    pub failure: Option<String>,
    /// stdout and stderr together, as they were written, trimmed.
    pub output: String,
}

impl ShellRun {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs `sh -c command` in `dir` with `env` added, `stdin` written to its
/// standard input (else none), stdout and stderr captured together, for at
/// most `timeout` (then it and its children are killed).
pub(crate) async fn shell(
    command: &str,
    dir: &Path,
    env: &[(&str, String)],
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> ShellRun {
    // The output goes to a file rather than a pipe: a child that leaves a
    // background process behind cannot keep Ferry waiting for the end of a
    // pipe, and stdout and stderr interleave as they were written.
    let capture = match TempFile::write("ferry-output", ".txt", "") {
        Ok(f) => f,
        Err(e) => {
            return ShellRun {
                failure: Some(format!("cannot capture the output: {e}")),
                output: String::new(),
            }
        }
    };
    let files = std::fs::OpenOptions::new()
        .append(true)
        .open(&capture.path)
        .and_then(|f| Ok((f.try_clone()?, f)));
    let (out, err) = match files {
        Ok(f) => f,
        Err(e) => {
            return ShellRun {
                failure: Some(format!("cannot capture the output: {e}")),
                output: String::new(),
            }
        }
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .stdout(out)
        .stderr(err)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ShellRun {
                failure: Some(format!("cannot start `sh`: {e}")),
                output: String::new(),
            }
        }
    };
    // Written alongside the wait: a command that does not read its input
    // must not keep Ferry waiting (it gets a broken pipe, which is fine).
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(bytes)) => Some(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(&bytes).await;
            let _ = pipe.shutdown().await;
        })),
        _ => None,
    };
    let failure = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => None,
        Ok(Ok(status)) => Some(match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("was stopped ({status})"),
        }),
        Ok(Err(e)) => Some(format!("could not be waited for: {e}")),
        Err(_) => {
            kill_tree(&mut child).await;
            Some(format!("timed out after {}s and was stopped", timeout.as_secs()))
        }
    };
    if let Some(w) = writer {
        w.abort();
    }
    let bytes = std::fs::read(&capture.path).unwrap_or_default();
    ShellRun {
        failure,
        output: trim_output(&String::from_utf8_lossy(&bytes)),
    }
}

/// Kills a timed-out command and whatever it started.
async fn kill_tree(child: &mut tokio::process::Child) {
    let descendants = child.id().map(descendants_of).unwrap_or_default();
    let _ = child.start_kill();
    if !descendants.is_empty() {
        let pids: Vec<String> = descendants.iter().map(u32::to_string).collect();
        let _ = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -KILL {} 2>/dev/null", pids.join(" ")))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
    }
    let _ = child.wait().await;
}

/// Every process below `pid`, from `/proc` (empty where there is none).
fn descendants_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in dir.flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp) in &parents {
            if *pp == parent && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

const MAX_LINES: usize = 60;
const MAX_CHARS: usize = 8000;

/// Output as shown: surrounding blank space removed, and only the end of a
/// long output (where test runners put their verdict).
pub(crate) fn trim_output(text: &str) -> String {
    let text = text.trim();
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = if lines.len() > MAX_LINES {
        format!(
            "… ({} earlier lines left out)\n{}",
            lines.len() - MAX_LINES,
            lines[lines.len() - MAX_LINES..].join("\n")
        )
    } else {
        text.to_string()
    };
    if kept.chars().count() > MAX_CHARS {
        let tail: String = {
            let chars: Vec<char> = kept.chars().collect();
            chars[chars.len() - MAX_CHARS..].iter().collect()
        };
        kept = format!("… (cut)\n{tail}");
    }
    kept
}

/// A file in the temporary folder, removed when dropped.
pub(crate) struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn write(prefix: &str, suffix: &str, content: &str) -> std::result::Result<TempFile, String> {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("{prefix}-{}{suffix}", ulid::Ulid::new()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let file = TempFile { path };
        f.write_all(content.as_bytes())
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        Ok(file)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_is_true_or_non_zero() {
        for v in [
            Value::Bool(true),
            Value::Int(1),
            Value::Int(-3),
            Value::Float(0.5),
            Value::Decimal("1.00".into()),
            Value::Text("t".into()),
            Value::Text("1".into()),
        ] {
            assert!(truthy(&v), "{v:?}");
        }
        for v in [
            Value::Null,
            Value::Bool(false),
            Value::Int(0),
            Value::Float(0.0),
            Value::Decimal("0.000".into()),
            Value::Text("f".into()),
            Value::Text("0".into()),
            Value::Text("".into()),
        ] {
            assert!(!truthy(&v), "{v:?}");
        }
    }

    #[test]
    fn long_output_keeps_its_end() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let t = trim_output(&format!("\n\n{text}\n\n"));
        assert!(t.starts_with("… (40 earlier lines left out)"), "{t}");
        assert!(t.ends_with("line 100"), "{t}");
        assert!(!t.contains("line 40\n"), "{t}");
    }

    #[tokio::test]
    async fn shell_captures_both_streams_and_stops_at_its_time_limit() {
        let dir = std::env::temp_dir();
        let run = shell(
            "echo out; echo err >&2; exit 4",
            &dir,
            &[],
            None,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(run.failure.as_deref(), Some("exited with status 4"));
        assert_eq!(run.output, "out\nerr");
        let run = shell("cat", &dir, &[], Some(b"piped".to_vec()), Duration::from_secs(20)).await;
        assert!(run.ok(), "{run:?}");
        assert_eq!(run.output, "piped");
        let started = std::time::Instant::now();
        let run = shell(
            "sleep 30 & sleep 30; echo never",
            &dir,
            &[],
            None,
            Duration::from_secs(1),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(run.failure.unwrap_or_default().contains("timed out"));
    }
}
