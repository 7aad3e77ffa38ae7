//! The benchmark's command line, shared by the `ferry-bench` binary and the
//! `cargo bench -p ferry-bench` target.

use std::path::PathBuf;

use crate::bench::{self, EngineResult, Options};
use crate::report;
use crate::schema::Engine;
use crate::timed::{self, Op};
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

/// Benchmarks Ferry's plan and promote on the admin-metadata workload
/// against sqldiff, the scan floor and a hand-written per-row sync.
///
/// SQLite always runs; PostgreSQL when FERRY_TEST_POSTGRES_URL is set,
/// MariaDB when FERRY_TEST_MYSQL_URL is set, MongoDB (when asked for) when
/// FERRY_TEST_MONGODB_URL is set (server URLs: the benchmark creates and
/// drops its own databases there).
#[derive(Parser, Debug)]
#[command(name = "ferry-bench", version)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    /// Scale S: 271,000 rows at 0.2, 1.31 million at 1.
    #[arg(long, default_value_t = 0.2)]
    scale: f64,
    /// Size the change set as at this scale (default: --scale). With
    /// `--scale 1 --change-scale 0.2` the tables are S=1's and the change
    /// set S=0.2's: what grows with the tables shows apart from what grows
    /// with the changes.
    #[arg(long)]
    change_scale: Option<f64>,
    /// Engines to run, comma-separated: sqlite, postgres, mysql (mariadb),
    /// mongodb (the workload as documents; not run by default).
    #[arg(long, default_value = "sqlite,postgres,mysql", value_delimiter = ',')]
    engines: Vec<String>,
    /// Runs of each timed step (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write (or update) a Markdown report at this path.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Seed of the generator.
    #[arg(long, default_value_t = crate::gen::DEFAULT_SEED)]
    seed: u64,
    /// Folder for the SQLite files and configs (default: a temporary one).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Skip the hand-written per-row sync (minutes long at S=1).
    #[arg(long)]
    no_hand_sync: bool,
    /// Keep the databases (and, with --workdir, the SQLite files) at the end.
    #[arg(long)]
    keep: bool,
    /// Declare `changed = "modified_at"` on every table (indexed): plans
    /// read only the rows changed since the baseline's watermark.
    #[arg(long)]
    changed: bool,
    /// With --changed: declare `track_deletes = true` too and install the
    /// trace of deletes (`ferry track`) in both databases before the
    /// baseline: plans read the deleted keys instead of blocks of keys.
    #[arg(long, requires = "changed")]
    track_deletes: bool,
    /// Time the plans only; run no promote (S=10, where restoring
    /// production before each promote takes many minutes).
    #[arg(long)]
    plan_only: bool,
}

#[derive(Subcommand, Debug)]
enum Internal {
    /// `ferry serve` under concurrent clients: page and API latencies
    /// (median, p95, and p95 against a static asset's in the same run).
    Serve {
        /// Scale S of the SQLite environments.
        #[arg(long, default_value_t = 0.2)]
        scale: f64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Requests of each kind, over all clients.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Sequential transfers of one business with its forms.
        #[arg(long, default_value_t = 30)]
        transfers: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = crate::gen::DEFAULT_SEED)]
        seed: u64,
    },
    /// Runs one timed Ferry operation and prints its outcome (used by the benchmark).
    #[command(name = "__timed", hide = true)]
    Timed {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        op: String,
    },
}

/// Runs the benchmark with `args` (the program's name first); `command`
/// is how it was started, for the report (`cargo run --release -p
/// ferry-bench --`, `cargo bench -p ferry-bench --`).
pub async fn main(args: Vec<String>, command: &str) -> Result<()> {
    let cli = Cli::parse_from(&args);
    if let Some(Internal::Serve {
        scale,
        clients,
        requests,
        transfers,
        seed,
    }) = &cli.internal
    {
        if *clients == 0 || *requests == 0 || !scale.is_finite() || *scale <= 0.0 {
            bail!("--scale must be above 0, --clients and --requests at least 1");
        }
        let opts = crate::serve::ServeOptions {
            scale: *scale,
            seed: *seed,
            clients: *clients,
            requests: *requests,
            transfers: *transfers,
        };
        let results = crate::serve::run(&opts).await?;
        println!("{}", crate::serve::report(&results, &opts));
        return Ok(());
    }
    if let Some(Internal::Timed { config, op }) = &cli.internal {
        let Some(op) = Op::parse(op) else {
            bail!("--op is plan, promote or baseline");
        };
        let out = timed::run_here(config, op).await?;
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    if !cli.scale.is_finite() || cli.scale <= 0.0 || cli.runs == 0 {
        bail!("--scale must be above 0 and --runs at least 1");
    }
    if let Some(c) = cli.change_scale {
        if !c.is_finite() || c <= 0.0 || c > cli.scale {
            bail!("--change-scale must be above 0 and at most --scale ({})", cli.scale);
        }
    }
    let mut engines = Vec::new();
    for e in &cli.engines {
        match Engine::parse(e) {
            Some(e) if !engines.contains(&e) => engines.push(e),
            Some(_) => {}
            None => bail!("unknown engine `{e}`: use sqlite, postgres, mysql or mongodb"),
        }
    }
    let mut opts = Options::new(cli.scale, timed::default_exe()?);
    opts.change_scale = cli.change_scale;
    opts.seed = cli.seed;
    opts.runs = cli.runs;
    opts.engines = engines;
    opts.workdir = cli.workdir.clone();
    opts.hand_sync = !cli.no_hand_sync;
    opts.keep = cli.keep;
    opts.changed = cli.changed;
    opts.track_deletes = cli.track_deletes;
    opts.plan_only = cli.plan_only;
    if opts.keep && opts.workdir.is_none() && opts.engines.contains(&Engine::Sqlite) {
        bail!("--keep needs --workdir DIR for the SQLite files");
    }
    let command = format!("{command} {}", args[1..].join(" "));
    let ctx = report::Context::here(&opts, command);
    let results = bench::run(&opts).await?;
    println!("\n{}", report::text(&results));
    for t in report::targets(&results) {
        println!(
            "{}: {}: {} ({})",
            t.engine,
            t.what,
            t.measured,
            t.verdict.replace("**", "")
        );
    }
    if let Some(path) = &cli.report {
        report::write(path, &ctx, &results)?;
        println!("\nReport written to {}", path.display());
    }
    if results.iter().any(|r| matches!(r, EngineResult::Failed(..))) {
        std::process::exit(1);
    }
    Ok(())
}
