//! The results table (terminal and Markdown) and the targets of issue 6.

use crate::bench::{median, EngineReport, EngineResult, Options};
use crate::schema::Engine;

/// What the run was and where.
#[derive(Clone, Debug)]
pub struct Context {
    pub command: String,
    pub date: String,
    pub nproc: usize,
    pub memory: String,
    pub cpu: String,
    pub scale: f64,
    /// The scale the change set was sized for, when not `scale`.
    pub change_scale: Option<f64>,
    pub seed: u64,
    pub runs: usize,
    pub sqldiff: String,
    /// The load average when the run started.
    pub load: String,
    /// The source measured: `git describe`-like commit and whether the
    /// work tree had changes.
    pub source: String,
}

/// The commit of the work tree (and whether it has uncommitted changes).
pub fn source() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("commit {c}{}", if dirty { " with uncommitted changes" } else { "" })
        }
        None => "unknown (not a git work tree)".into(),
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

impl Context {
    pub fn here(opts: &Options, command: String) -> Context {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<f64>().ok())
            .map_or("unknown".to_string(), |k| format!("{:.1} GiB", k / 1024.0 / 1024.0));
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
        let sqldiff = match crate::external::which("sqldiff") {
            Some(p) => {
                let v = std::process::Command::new("sqlite3")
                    .arg("--version")
                    .output()
                    .ok()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default();
                format!("{} (sqlite3 {v})", p.display())
            }
            None => "not installed (Debian package sqlite3-tools)".to_string(),
        };
        Context {
            command,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            cpu,
            scale: opts.scale,
            change_scale: opts.change_scale,
            seed: opts.seed,
            runs: opts.runs,
            sqldiff,
            load: loadavg(),
            source: source(),
        }
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or("—".into(), |s| format!("{s:.2} s"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "—".into(),
    }
}

fn faster(ferry: Option<f64>, sync: Option<f64>) -> String {
    match (ferry, sync) {
        (Some(f), Some(s)) if f > 0.0 && s >= f => format!("{:.1}x faster", s / f),
        (Some(f), Some(s)) if s > 0.0 => format!("{:.1}x slower", f / s),
        _ => "—".into(),
    }
}

fn rate(rows: u64, s: Option<f64>) -> String {
    match s {
        Some(s) if s > 0.0 => format!("{:.0}", rows as f64 / s),
        _ => "—".into(),
    }
}

/// One row of the results table.
struct Line {
    engine: String,
    step: String,
    median: String,
    runs: String,
    rate: String,
    peak: String,
    vs_sqldiff: String,
    vs_floor: String,
    vs_sync: String,
}

const HEADER: [&str; 9] = [
    "engine",
    "step",
    "median",
    "runs",
    "rows/s",
    "peak MB",
    "÷ sqldiff+apply",
    "÷ scan floor",
    "vs hand-written sync",
];

fn lines(r: &EngineReport) -> Vec<Line> {
    let e = r.engine.to_string();
    let floor = r.floor_secs();
    let sqld = r.sqldiff_secs();
    let sync = r.hand_sync.as_ref().ok().copied();
    let runs = |n: usize| n.to_string();
    let mut out = Vec::new();
    let ferry = |step: &str, s: Option<f64>, n: usize, peak: f64, with_ratios: bool| Line {
        engine: e.clone(),
        step: step.into(),
        median: secs(s),
        runs: runs(n),
        rate: rate(r.rows, s),
        peak: format!("{peak:.0}"),
        vs_sqldiff: if with_ratios && r.engine == Engine::Sqlite {
            ratio(s, sqld.map(|x| x.2))
        } else {
            "—".into()
        },
        vs_floor: if with_ratios { ratio(s, floor) } else { "—".into() },
        vs_sync: if with_ratios { faster(s, sync) } else { "—".into() },
    };
    out.push(ferry(
        "Ferry baseline (once, before the changes)",
        Some(r.baseline.secs),
        1,
        r.baseline.peak_kib as f64 / 1024.0,
        false,
    ));
    out.push(ferry("Ferry plan", r.plan_secs(), r.plan.len(), r.plan_peak_mb(), true));
    out.push(ferry(
        "Ferry promote (plan + apply)",
        r.promote_secs(),
        r.promote.len(),
        r.promote_peak_mb(),
        true,
    ));
    let base = |step: String, s: Option<f64>, n: String| Line {
        engine: e.clone(),
        step,
        median: secs(s),
        runs: n,
        rate: rate(r.rows, s),
        peak: "—".into(),
        vs_sqldiff: "—".into(),
        vs_floor: "—".into(),
        vs_sync: "—".into(),
    };
    match &r.sqldiff {
        None => {}
        Some(Err(why)) => out.push(base(format!("sqldiff: {why}"), None, "—".into())),
        Some(Ok((d, a))) => {
            let (md, ma, sum) = sqld.unwrap_or_default();
            out.push(base("sqldiff --transaction (produce)".into(), Some(md), runs(d.len())));
            out.push(base("sqlite3 applying it to a copy".into(), Some(ma), runs(a.len())));
            out.push(base("sqldiff + apply".into(), Some(sum), runs(d.len())));
        }
    }
    let floor_name = match r.engine {
        Engine::Sqlite => "scan floor: sqlite3 select *, 5 tables x 2 dbs",
        Engine::Postgres => "scan floor: psql COPY TO STDOUT, 5 tables x 2 dbs",
        Engine::Mysql => "scan floor: mariadb --quick select *, 5 tables x 2 dbs",
        Engine::Mongo => "scan floor: the driver reading raw BSON, 5 collections x 2 dbs",
    };
    match &r.scan_floor {
        Ok(v) => out.push(base(floor_name.into(), median(v), runs(v.len()))),
        Err(why) => out.push(base(format!("{floor_name}: {why}"), None, "—".into())),
    }
    match &r.hand_sync {
        Ok(s) => out.push(base(
            "hand-written per-row sync (Rust, one transaction)".into(),
            Some(*s),
            "1".into(),
        )),
        Err(why) => out.push(base(format!("hand-written per-row sync: {why}"), None, "—".into())),
    }
    out
}

fn cells(l: &Line) -> [&str; 9] {
    [
        &l.engine,
        &l.step,
        &l.median,
        &l.runs,
        &l.rate,
        &l.peak,
        &l.vs_sqldiff,
        &l.vs_floor,
        &l.vs_sync,
    ]
}

/// The results as a plain-text table for the terminal.
pub fn text(results: &[EngineResult]) -> String {
    let mut rows: Vec<[String; 9]> = vec![HEADER.map(str::to_string)];
    let mut extra = Vec::new();
    for r in results {
        match r {
            EngineResult::Done(rep) => {
                for l in lines(rep) {
                    rows.push(cells(&l).map(str::to_string));
                }
            }
            EngineResult::Skipped(e, why) => extra.push(format!("{e}: skipped ({why})")),
            EngineResult::Failed(e, why) => extra.push(format!("{e}: FAILED: {why}")),
        }
    }
    let mut widths = [0usize; 9];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for (n, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if i >= 2 {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if n == 0 {
            s.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * 8));
            s.push('\n');
        }
    }
    for e in extra {
        s.push_str(&e);
        s.push('\n');
    }
    s
}

/// One target of issue 6 and whether this run met it.
pub struct Target {
    pub engine: String,
    pub what: String,
    pub measured: String,
    pub verdict: String,
}

fn verdict(ok: Option<bool>) -> String {
    match ok {
        Some(true) => "met".into(),
        Some(false) => "**missed**".into(),
        None => "not measured".into(),
    }
}

pub fn targets(results: &[EngineResult]) -> Vec<Target> {
    let mut out = Vec::new();
    for r in results {
        let EngineResult::Done(r) = r else { continue };
        let e = r.engine.to_string();
        let promote = r.promote_secs();
        let plan = r.plan_secs();
        let floor = r.floor_secs();
        let t = |what: &str, measured: String, ok: Option<bool>| Target {
            engine: e.clone(),
            what: what.into(),
            measured,
            verdict: verdict(ok),
        };
        let within = |a: Option<f64>, b: Option<f64>, limit: f64| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b <= limit),
            _ => None,
        };
        if r.engine == Engine::Mongo {
            out.push(t(
                "plan ≤ 1.2x scan floor",
                ratio(plan, floor),
                within(plan, floor, 1.2),
            ));
            out.push(t(
                "promote ≤ 2x scan floor",
                ratio(promote, floor),
                within(promote, floor, 2.0),
            ));
        } else if r.engine == Engine::Sqlite {
            let sum = r.sqldiff_secs().map(|x| x.2);
            out.push(t(
                "promote ≤ 0.85x sqldiff + apply",
                ratio(promote, sum),
                within(promote, sum, 0.85),
            ));
        } else {
            out.push(t(
                "plan ≤ 0.5x scan floor",
                ratio(plan, floor),
                within(plan, floor, 0.5),
            ));
            out.push(t(
                "promote ≤ 0.75x scan floor",
                ratio(promote, floor),
                within(promote, floor, 0.75),
            ));
        }
        let sync = r.hand_sync.as_ref().ok().copied();
        if r.engine != Engine::Mongo {
            out.push(t(
                "promote ≥ 5x faster than the hand-written sync",
                faster(promote, sync),
                within(promote, sync, 0.2),
            ));
        }
        let peak = r.plan_peak_mb().max(r.promote_peak_mb());
        out.push(t(
            "peak memory of plan and promote < 300 MB",
            format!("{peak:.0} MB"),
            Some(peak < 300.0),
        ));
    }
    out
}

pub const BEGIN: &str = "<!-- ferry-bench:begin (generated by ferry-bench --report; edit outside these markers) -->";
pub const END: &str = "<!-- ferry-bench:end -->";

/// The generated part of the Markdown report.
pub fn markdown(ctx: &Context, results: &[EngineResult]) -> String {
    let mut s = String::new();
    let changes = match ctx.change_scale {
        Some(c) => format!(", the change set of S={c}"),
        None => String::new(),
    };
    s.push_str(&format!(
        "## Results (S={}{changes}, {} run(s) per timed step)\n\nCommand:\n\n```sh\n{}\n```\n\n",
        ctx.scale, ctx.runs, ctx.command
    ));
    s.push_str(&format!(
        "- Date: {}\n- Source: {}\n- Machine: {} CPU(s) ({}), {} memory; load average (1, 5, 15 min) {} at the start, {} at the end\n- Seed: {}\n- sqldiff: {}\n",
        ctx.date,
        ctx.source,
        ctx.nproc,
        ctx.cpu,
        ctx.memory,
        ctx.load,
        loadavg(),
        ctx.seed,
        ctx.sqldiff
    ));
    for r in results {
        match r {
            EngineResult::Done(r) => s.push_str(&format!(
                "- {}: {}; {} production rows, change set {} inserted / {} updated / {} deleted; loading production took {:.1} s\n",
                r.engine, r.version, r.rows, r.changes.0, r.changes.1, r.changes.2, r.load_secs
            )),
            EngineResult::Skipped(e, why) => s.push_str(&format!("- {e}: skipped ({why})\n")),
            EngineResult::Failed(e, why) => s.push_str(&format!("- {e}: **failed**: {why}\n")),
        }
    }
    s.push('\n');
    s.push_str(&format!("| {} |\n", HEADER.join(" | ")));
    s.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in results {
        if let EngineResult::Done(rep) = r {
            for l in lines(rep) {
                let c = cells(&l).map(|x| x.replace('|', "\\|"));
                s.push_str(&format!("| {} |\n", c.join(" | ")));
            }
        }
    }
    s.push_str(
        "\nRatios are Ferry's median time divided by the baseline's median time measured in the same run \
         (below 1 is faster than the baseline). Rows/s is production's managed rows divided by the time. \
         Peak MB is the largest VmHWM of the child process that ran the step. Every promote run was \
         verified: afterwards production equals staging on every column of every managed table.\n",
    );
    let notes: Vec<String> = results
        .iter()
        .filter_map(|r| match r {
            EngineResult::Done(r) => Some(r.notes.iter().map(move |n| format!("- {}: {n}\n", r.engine))),
            _ => None,
        })
        .flatten()
        .collect();
    if !notes.is_empty() {
        s.push('\n');
        s.push_str(&notes.concat());
    }
    s.push_str(&format!(
        "\n### Targets of issue 6 (stated for S=1; measured here at S={})\n\n| engine | target | measured | verdict |\n| --- | --- | ---: | --- |\n",
        ctx.scale
    ));
    for t in targets(results) {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            t.engine, t.what, t.measured, t.verdict
        ));
    }
    s.push_str(
        "\nThat peak memory is the same at S=0.2 and S=1 is not judged by one run: compare the peak MB \
         column of runs at both scales.\n",
    );
    s
}

/// Writes the report: replaces the generated part of an existing file
/// (between the markers), or writes a new file.
pub fn write(path: &std::path::Path, ctx: &Context, results: &[EngineResult]) -> std::io::Result<()> {
    let body = format!("{BEGIN}\n{}{END}\n", markdown(ctx, results));
    let text = match std::fs::read_to_string(path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(a), Some(b)) if a < b => {
                let tail = &old[b + END.len()..];
                format!("{}{}{}", &old[..a], body.trim_end_matches('\n'), tail)
            }
            _ => format!("{}\n{body}", old.trim_end()),
        },
        Err(_) => format!(
            "# Performance\n\nHow fast Ferry plans and promotes the benchmark workload \
             (`shared/workloads/README.md`: cities, partners, businesses, forms, form fields) against \
             baselines measured in the same run. Rerun with the command below.\n\n{body}"
        ),
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            command: "cargo run --release -p ferry-bench -- --scale 0.2".into(),
            date: "today".into(),
            nproc: 2,
            memory: "24 GiB".into(),
            cpu: "cpu".into(),
            scale: 0.2,
            change_scale: None,
            seed: 1,
            runs: 3,
            sqldiff: "not installed".into(),
            load: "0 0 0".into(),
            source: "commit abc".into(),
        }
    }

    #[test]
    fn rewriting_keeps_the_text_around_the_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs/performance.md");
        let results = vec![EngineResult::Skipped(
            Engine::Postgres,
            "FERRY_TEST_POSTGRES_URL not set".into(),
        )];
        write(&path, &ctx(), &results).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with("# Performance"), "{first}");
        let edited = first.replace("# Performance\n", "# Performance\n\nBy hand, before.\n") + "\nBy hand, after.\n";
        std::fs::write(&path, &edited).unwrap();
        write(&path, &ctx(), &results).unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert!(
            second.contains("By hand, before.") && second.contains("By hand, after."),
            "{second}"
        );
        assert_eq!(second.matches(BEGIN).count(), 1, "{second}");
        assert!(second.contains("PostgreSQL: skipped"), "{second}");
    }

    #[test]
    fn speedups_read_both_ways() {
        assert_eq!(faster(Some(1.0), Some(5.0)), "5.0x faster");
        assert_eq!(faster(Some(2.0), Some(0.5)), "4.0x slower");
        assert_eq!(ratio(Some(1.0), None), "—");
    }
}
