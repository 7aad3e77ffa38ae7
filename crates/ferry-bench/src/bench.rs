//! The benchmark on one engine: generate production, copy it to staging,
//! baseline, change staging, then time Ferry's plan and promote against
//! the baselines measured in the same run, verifying every promotion.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::db::{verify_equal, Db};
use crate::external;
use crate::gen::{ChangeSet, Workload, DEFAULT_SEED};
use crate::schema::{ferry_toml_for, Engine, TABLES};
use crate::sync;
use crate::timed::{self, Op, Outcome};

#[derive(Clone, Debug)]
pub struct Options {
    pub scale: f64,
    /// Size the change set as at this scale instead (`--change-scale`).
    pub change_scale: Option<f64>,
    pub seed: u64,
    pub runs: usize,
    /// Engines asked for; those without a server URL are skipped.
    pub engines: Vec<Engine>,
    /// The binary that runs the timed children (`ferry-bench` itself).
    pub exe: PathBuf,
    /// Where SQLite files and configs go (a temporary folder when `None`).
    pub workdir: Option<PathBuf>,
    /// Run the hand-written per-row sync baseline.
    pub hand_sync: bool,
    /// Run the sqldiff and scan-floor baselines.
    pub baselines: bool,
    /// Progress lines on stderr.
    pub verbose: bool,
    /// Keep the databases at the end (with production as the last
    /// promote left it, `pristine` as it was before), to investigate.
    pub keep: bool,
    /// Run the engines at the same time (tests: correctness only, the
    /// times are meaningless then).
    pub parallel: bool,
    /// Declare `changed = "modified_at"` (indexed) on every table
    /// (`--changed`): change-proportional plans.
    pub changed: bool,
    /// With `changed`: `track_deletes = true`, the traces installed before
    /// the baseline (`--track-deletes`).
    pub track_deletes: bool,
    /// Time the plans only, no promote (`--plan-only`: at S=10 restoring
    /// production before each promote takes many minutes).
    pub plan_only: bool,
}

impl Options {
    pub fn new(scale: f64, exe: PathBuf) -> Options {
        Options {
            scale,
            change_scale: None,
            seed: DEFAULT_SEED,
            runs: 3,
            engines: Engine::ALL.to_vec(),
            exe,
            workdir: None,
            hand_sync: true,
            baselines: true,
            verbose: true,
            keep: false,
            parallel: false,
            changed: false,
            track_deletes: false,
            plan_only: false,
        }
    }
}

/// A baseline that may be missing (tool not installed) or may have failed.
pub type Maybe<T> = std::result::Result<T, String>;

#[derive(Clone, Debug)]
pub struct EngineReport {
    pub engine: Engine,
    pub version: String,
    /// Production's managed rows.
    pub rows: u64,
    /// (inserted, updated, deleted) by the change set.
    pub changes: (u64, u64, u64),
    pub load_secs: f64,
    pub baseline: Outcome,
    pub plan: Vec<Outcome>,
    pub promote: Vec<Outcome>,
    pub scan_floor: Maybe<Vec<f64>>,
    /// (sqldiff seconds, apply seconds) per run; SQLite only.
    pub sqldiff: Option<Maybe<(Vec<f64>, Vec<f64>)>>,
    pub hand_sync: Maybe<f64>,
    pub notes: Vec<String>,
}

/// The outcome of one engine: measured, skipped (no server) or failed.
#[derive(Clone, Debug)]
pub enum EngineResult {
    Done(Box<EngineReport>),
    Skipped(Engine, String),
    Failed(Engine, String),
}

pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl EngineReport {
    pub fn plan_secs(&self) -> Option<f64> {
        median(&self.plan.iter().map(|o| o.secs).collect::<Vec<_>>())
    }
    pub fn promote_secs(&self) -> Option<f64> {
        median(&self.promote.iter().map(|o| o.secs).collect::<Vec<_>>())
    }
    pub fn plan_peak_mb(&self) -> f64 {
        peak_mb(&self.plan)
    }
    pub fn promote_peak_mb(&self) -> f64 {
        peak_mb(&self.promote)
    }
    pub fn floor_secs(&self) -> Option<f64> {
        self.scan_floor.as_ref().ok().and_then(|v| median(v))
    }
    /// Medians of (sqldiff, apply, sum per run).
    pub fn sqldiff_secs(&self) -> Option<(f64, f64, f64)> {
        let (d, a) = self.sqldiff.as_ref()?.as_ref().ok()?;
        let sums: Vec<f64> = d.iter().zip(a).map(|(x, y)| x + y).collect();
        Some((median(d)?, median(a)?, median(&sums)?))
    }
}

fn peak_mb(runs: &[Outcome]) -> f64 {
    runs.iter().map(|o| o.peak_kib).max().unwrap_or(0) as f64 / 1024.0
}

struct Log {
    start: Instant,
    on: bool,
}

impl Log {
    fn say(&self, engine: Engine, msg: &str) {
        if self.on {
            eprintln!("[{:>7.1}s] {}: {msg}", self.start.elapsed().as_secs_f64(), engine.key());
        }
    }
}

/// The server URL of an engine from its variable (`None` for SQLite).
pub fn server_url(engine: Engine) -> Option<String> {
    let var = engine.var()?;
    std::env::var(var)
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
}

/// Runs the benchmark on every engine asked for.
pub async fn run(opts: &Options) -> Result<Vec<EngineResult>> {
    crate::schema::set_changed(opts.changed);
    crate::schema::set_track_deletes(opts.track_deletes);
    let tmp;
    let dir: PathBuf = match &opts.workdir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let log = Log {
        start: Instant::now(),
        on: opts.verbose,
    };
    let one = |engine: Engine| {
        let (dir, log) = (&dir, &log);
        async move {
            let server = server_url(engine);
            if engine != Engine::Sqlite && server.is_none() {
                let why = format!("{} not set", engine.var().unwrap_or_default());
                log.say(engine, &format!("skipped: {why}"));
                return Ok(EngineResult::Skipped(engine, why));
            }
            let edir = dir.join(engine.key());
            std::fs::create_dir_all(&edir)?;
            let dbs = Dbs::new(engine, server, &edir);
            let r = run_engine(engine, &dbs, &edir, opts, log).await;
            if opts.keep {
                log.say(
                    engine,
                    &format!(
                        "kept: {}, {}, {} and {}",
                        dbs.production.name(),
                        dbs.staging.name(),
                        dbs.pristine.name(),
                        edir.join("ferry.toml").display()
                    ),
                );
            } else if let Err(e) = dbs.drop_all().await {
                log.say(engine, &format!("could not drop the benchmark databases: {e:#}"));
            }
            anyhow::Ok(match r {
                Ok(rep) => EngineResult::Done(Box::new(rep)),
                Err(e) => {
                    let msg = crate::db::redact(&format!("{e:#}"));
                    log.say(engine, &format!("FAILED: {msg}"));
                    EngineResult::Failed(engine, msg)
                }
            })
        }
    };
    let mut out = Vec::new();
    if opts.parallel {
        for r in futures_util::future::join_all(opts.engines.iter().map(|e| one(*e))).await {
            out.push(r?);
        }
    } else {
        for &engine in &opts.engines {
            out.push(one(engine).await?);
        }
    }
    Ok(out)
}

/// The databases of one engine's run.
struct Dbs {
    production: Db,
    staging: Db,
    /// Production right after the baseline: every promote run starts from it.
    pristine: Db,
    /// SQLite: production as generated (no Ferry tables), for sqldiff.
    plain: Db,
    /// SQLite: where sqldiff's output is applied.
    scratch: Db,
}

impl Dbs {
    fn new(engine: Engine, server: Option<String>, dir: &Path) -> Dbs {
        let tag = format!("ferry_bench_{}", std::process::id());
        let named = |role: &str| match engine {
            Engine::Sqlite => Db::Sqlite(dir.join(format!("{role}.db"))),
            Engine::Postgres => Db::Postgres(server.clone().unwrap_or_default(), format!("{tag}_{role}")),
            Engine::Mysql => Db::Mysql(server.clone().unwrap_or_default(), format!("{tag}_{role}")),
            Engine::Mongo => Db::Mongo(server.clone().unwrap_or_default(), format!("{tag}_{role}")),
        };
        Dbs {
            production: named("production"),
            staging: named("staging"),
            pristine: named("pristine"),
            plain: named("plain"),
            scratch: named("scratch"),
        }
    }

    async fn drop_all(&self) -> Result<()> {
        for db in [
            &self.production,
            &self.staging,
            &self.pristine,
            &self.plain,
            &self.scratch,
        ] {
            db.drop_db().await?;
        }
        Ok(())
    }
}

fn expect_counts(what: &str, o: &Outcome, want: (u64, u64, u64)) -> Result<()> {
    let got = (o.insert, o.update, o.delete);
    if got != want || o.conflict != 0 {
        bail!(
            "ferry {what} planned {} insert(s), {} update(s), {} delete(s) and {} conflict(s); the change set has {} insert(s), {} update(s), {} delete(s) and no conflict",
            got.0, got.1, got.2, o.conflict, want.0, want.1, want.2
        );
    }
    Ok(())
}

async fn run_engine(engine: Engine, dbs: &Dbs, dir: &Path, opts: &Options, log: &Log) -> Result<EngineReport> {
    let mut w = Workload::new(opts.scale, opts.seed);
    if let Some(s) = opts.change_scale {
        w = w.with_change_scale(s);
    }
    let cs = w.changes();
    let changes = (
        ChangeSet::total(&cs.inserted),
        ChangeSet::total(&cs.updated),
        ChangeSet::total(&cs.deleted),
    );
    let rows = w.total_rows();
    let mut notes = Vec::new();

    log.say(
        engine,
        &format!("generating production at S={} ({rows} rows)", opts.scale),
    );
    let t = Instant::now();
    dbs.production
        .create_production(&w)
        .await
        .context("generating production")?;
    let load_secs = t.elapsed().as_secs_f64();
    let version = dbs.production.version().await?;
    log.say(engine, &format!("loaded in {load_secs:.1}s; copying to staging"));
    dbs.production
        .copy_to(&dbs.staging)
        .await
        .context("copying production to staging")?;
    if engine == Engine::Sqlite {
        dbs.production.copy_to(&dbs.plain).await?;
    }

    let config = dir.join("ferry.toml");
    std::fs::write(&config, ferry_toml_for(engine))?;
    let (staging_url, production_url) = (dbs.staging.url(), dbs.production.url());
    let child = |op: Op| timed::run_child(&opts.exe, &config, op, &staging_url, &production_url);

    if crate::schema::track_deletes() {
        log.say(engine, "ferry track staging, production");
        child(Op::Track).await?;
    }
    log.say(engine, "ferry baseline");
    let baseline = child(Op::Baseline).await?;
    if baseline.recorded != rows || baseline.insert + baseline.update + baseline.delete + baseline.conflict != 0 {
        bail!(
            "ferry baseline recorded {} of {rows} rows as in sync and found {} differing; production and staging are copies",
            baseline.recorded,
            baseline.insert + baseline.update + baseline.delete + baseline.conflict
        );
    }
    log.say(
        engine,
        &format!("baseline took {:.2}s; changing staging", baseline.secs),
    );

    dbs.staging
        .apply(&cs)
        .await
        .context("applying the change set to staging")?;
    let (prod_counts, staging_counts) = (dbs.production.counts().await?, dbs.staging.counts().await?);
    for i in 0..TABLES.len() {
        let want = prod_counts[i] + cs.inserted[i] - cs.deleted[i];
        if staging_counts[i] != want {
            bail!(
                "staging.{} has {} rows after the change set, not {want}",
                TABLES[i].name,
                staging_counts[i]
            );
        }
    }
    // Production as a database in service would be: its statistics (Ferry's
    // sync table included) refreshed after the baseline's bulk write. Without
    // this, PostgreSQL plans the sync-base lookups on a 271,000-row table it
    // believes empty (see docs/performance.md).
    dbs.production.analyze().await.context("analyzing production")?;
    dbs.production
        .copy_to(&dbs.pristine)
        .await
        .context("saving production")?;

    let scan_floor = scan_floor(dbs, opts, engine, log).await;

    let sqldiff = sqldiff(engine, dbs, dir, opts, log, &mut notes).await?;

    let plan = plan_runs(engine, opts, log, &child, changes).await?;
    if opts.changed {
        // Say whether the plans read only the changed rows, or why not.
        match plan.first().map(|o| o.notes.clone()) {
            Some(n) if n.is_empty() => {
                notes.push("--changed: plans read only the rows changed since the baseline".into())
            }
            Some(n) => notes.push(format!("--changed, but tables were read whole: {}", n.join("; "))),
            None => {}
        }
    }

    let promote = if opts.plan_only {
        notes.push("--plan-only: no promote was run".into());
        Vec::new()
    } else {
        promote_runs(engine, dbs, opts, log, &child, changes).await?
    };

    let hand_sync = hand_sync(engine, dbs, opts, log, changes, &mut notes).await?;

    Ok(EngineReport {
        engine,
        version,
        rows,
        changes,
        load_secs,
        baseline,
        plan,
        promote,
        scan_floor,
        sqldiff,
        hand_sync,
        notes,
    })
}

/// The scan floor (reading both databases with the engine's own client;
/// on MongoDB the driver, as raw BSON), per run, when baselines are asked
/// for.
async fn scan_floor(dbs: &Dbs, opts: &Options, engine: Engine, log: &Log) -> Maybe<Vec<f64>> {
    if opts.baselines {
        log.say(engine, "scan floor");
        let mut v = Vec::new();
        let mut err = None;
        for _ in 0..opts.runs {
            let run = if engine == Engine::Mongo {
                crate::mongo::scan_floor(&[dbs.production.url(), dbs.staging.url()]).await
            } else {
                external::scan_floor(&[&dbs.production, &dbs.staging])
            };
            match run {
                Ok(s) => v.push(s),
                Err(e) => {
                    err = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(v),
        }
    } else {
        Err("not run".to_string())
    }
}

/// sqldiff's change set and its apply, per run (SQLite only).
async fn sqldiff(
    engine: Engine,
    dbs: &Dbs,
    dir: &Path,
    opts: &Options,
    log: &Log,
    notes: &mut Vec<String>,
) -> Result<Option<Maybe<(Vec<f64>, Vec<f64>)>>> {
    Ok(if engine != Engine::Sqlite {
        None
    } else if !opts.baselines {
        Some(Err("not run".to_string()))
    } else if external::which("sqldiff").is_none() {
        Some(Err("not installed".to_string()))
    } else {
        log.say(engine, "sqldiff + apply");
        let (Some(plain), Some(staging), Some(scratch)) = (dbs.plain.path(), dbs.staging.path(), dbs.scratch.path())
        else {
            bail!("SQLite databases have paths");
        };
        let out = dir.join("sqldiff.sql");
        let mut diff = Vec::new();
        let mut apply = Vec::new();
        let mut result = Ok(());
        for r in 0..opts.runs {
            let step = async {
                let d = external::sqldiff(plain, staging, &out)?;
                dbs.plain.copy_to(&dbs.scratch).await?;
                let a = external::sqlite3_apply(scratch, &out)?;
                if r == 0 {
                    verify_equal(&dbs.staging, &dbs.scratch)
                        .await
                        .context("sqldiff's output applied to production does not give staging")?;
                }
                anyhow::Ok((d, a))
            };
            match step.await {
                Ok((d, a)) => {
                    diff.push(d);
                    apply.push(a);
                }
                Err(e) => {
                    result = Err(format!("{e:#}"));
                    break;
                }
            }
        }
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        notes.push(format!("sqldiff's change set: {:.1} MB of SQL", size as f64 / 1e6));
        Some(result.map(|_| (diff, apply)))
    })
}

/// `ferry plan`, per run, checked against the change set.
async fn plan_runs<F, Fut>(
    engine: Engine,
    opts: &Options,
    log: &Log,
    child: &F,
    changes: (u64, u64, u64),
) -> Result<Vec<Outcome>>
where
    F: Fn(Op) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome>>,
{
    let mut plan = Vec::new();
    for r in 0..opts.runs {
        let o = child(Op::Plan).await?;
        expect_counts("plan", &o, changes)?;
        log.say(
            engine,
            &format!(
                "plan run {}: {:.2}s, {:.0} MB",
                r + 1,
                o.secs,
                o.peak_kib as f64 / 1024.0
            ),
        );
        plan.push(o);
    }
    Ok(plan)
}

/// `ferry promote`, per run from the same production, checked against the
/// change set and verified equal to staging.
async fn promote_runs<F, Fut>(
    engine: Engine,
    dbs: &Dbs,
    opts: &Options,
    log: &Log,
    child: &F,
    changes: (u64, u64, u64),
) -> Result<Vec<Outcome>>
where
    F: Fn(Op) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome>>,
{
    let mut promote = Vec::new();
    for r in 0..opts.runs {
        if r > 0 {
            dbs.pristine
                .copy_to(&dbs.production)
                .await
                .context("resetting production")?;
        }
        let o = child(Op::Promote).await?;
        expect_counts("promote", &o, changes)?;
        verify_equal(&dbs.staging, &dbs.production)
            .await
            .context("after ferry promote, production differs from staging")?;
        log.say(
            engine,
            &format!(
                "promote run {}: {:.2}s, {:.0} MB, verified",
                r + 1,
                o.secs,
                o.peak_kib as f64 / 1024.0
            ),
        );
        promote.push(o);
    }
    Ok(promote)
}

/// The hand-written per-row sync, when asked for, verified.
async fn hand_sync(
    engine: Engine,
    dbs: &Dbs,
    opts: &Options,
    log: &Log,
    changes: (u64, u64, u64),
    notes: &mut Vec<String>,
) -> Result<Maybe<f64>> {
    Ok(if engine == Engine::Mongo {
        Err("not written for MongoDB".to_string())
    } else if opts.hand_sync {
        log.say(engine, "hand-written per-row sync");
        dbs.pristine
            .copy_to(&dbs.production)
            .await
            .context("resetting production")?;
        let t = Instant::now();
        match sync::sync(&dbs.staging, &dbs.production).await {
            Ok(c) => {
                let secs = t.elapsed().as_secs_f64();
                verify_equal(&dbs.staging, &dbs.production)
                    .await
                    .context("after the hand-written sync, production differs from staging")?;
                if (c.inserted, c.updated, c.deleted) != changes {
                    notes.push(format!(
                        "the hand-written sync inserted {}, updated {}, deleted {}",
                        c.inserted, c.updated, c.deleted
                    ));
                }
                log.say(engine, &format!("hand-written sync: {secs:.2}s, verified"));
                Ok(secs)
            }
            Err(e) => Err(format!("{e:#}")),
        }
    } else {
        Err("not run".to_string())
    })
}
