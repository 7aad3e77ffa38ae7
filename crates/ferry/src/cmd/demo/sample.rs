//! The sample content shared by `ferry demo` and `ferry init --demo`: an
//! admin tool's cities, partners, businesses, forms and form fields in two
//! SQLite environments that start identical, and the `ferry.toml` that
//! manages them (production takes reviews; the tour's copy promotes
//! directly, see [`config`]). `ferry init --demo` then leaves a new business
//! with its form in staging only ([`leave_pending`]), so there is something
//! to promote at once; the tour makes its own edits instead. The SQL and the configuration are plain files
//! next to this one, embedded in the binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ferry_core::selection::Selection;
use ferry_engine::baseline::{self, Baseline};
use ferry_engine::progress::Progress;
use ferry_engine::project::Project;
use ferry_engine::{pair, Error};

/// The commented configuration of the sample environments, as `ferry init
/// --demo` writes it: production takes reviews.
pub const CONFIG: &str = include_str!("ferry.toml");
/// The line of [`CONFIG`] that makes production take reviews.
const REVIEW_LINE: &str = "\nreview = true\n";
/// What the tour writes instead: the same line, commented out, so that its
/// promotions apply directly and the comment above it still holds.
const TOUR_REVIEW_LINE: &str = "\n# review = true    (commented out by `ferry demo`, which promotes directly)\n";
/// Schema and rows of both environments.
pub const DATA: &str = include_str!("data.sql");
/// The edits the tour makes in staging.
pub const EDITS: &str = include_str!("edits.sql");
/// What `ferry init --demo` leaves in staging only, after the baseline: a
/// new business with its form and the form's fields (see [`leave_pending`]).
pub const PENDING: &str = include_str!("pending.sql");
/// What [`PENDING`] adds, as `init --demo` tells it (keep in step with that
/// file).
pub const PENDING_TOLD: &str =
    "a new business (\"Manteigaria Chiado 🥧\", businesses:7) with its form (forms:4) and the form's 3 fields";
/// The database files, next to the configuration (as its urls say).
pub const DATABASES: [&str; 2] = ["staging.db", "production.db"];
pub const SOURCE: &str = "staging";
pub const TARGET: &str = "production";

/// Refuses (exit 2) when any of `paths` exists, unless `force`.
pub fn refuse_existing(paths: &[PathBuf], force: bool, hint: &str) -> Result<()> {
    if force {
        return Ok(());
    }
    let existing: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    let (what, verb) = if existing.len() == 1 {
        (existing[0].clone(), "exists")
    } else {
        (existing.join(", "), "exist")
    };
    Err(Error::Usage(format!("{what} already {verb}; nothing was written. {hint}")).into())
}

/// How the sample's production takes promotions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Production {
    /// Promotions become reviews (`review = true`): what `ferry init
    /// --demo` writes.
    Reviews,
    /// Promotions apply at once: the narrated tour's.
    Direct,
}

/// The sample configuration: [`CONFIG`] itself, or for
/// [`Production::Direct`] the same text with its `review = true` line
/// commented out. Fails when [`CONFIG`] does not hold that line exactly
/// once (the embedded file was edited without this function).
pub fn config(production: Production) -> Result<String> {
    let found = CONFIG.matches(REVIEW_LINE).count();
    if found != 1 {
        anyhow::bail!(
            "the sample ferry.toml holds the line `review = true` {found} time(s) under [environments.{TARGET}], \
             not once: the demo cannot tell how production takes promotions"
        );
    }
    Ok(match production {
        Production::Reviews => CONFIG.to_string(),
        Production::Direct => CONFIG.replacen(REVIEW_LINE, TOUR_REVIEW_LINE, 1),
    })
}

/// The sample environments, laid out and in sync.
pub struct Sample {
    pub project: Project,
    pub baseline: Baseline,
}

/// Writes the configuration at `config` (see [`config`]) and both
/// databases next to it (replacing any that exist), then records the
/// baseline as `user`.
pub async fn lay_out(config: &Path, production: Production, user: &str) -> Result<Sample> {
    let text = self::config(production)?;
    let dir = folder_of(config);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    std::fs::write(config, text).with_context(|| format!("cannot write {}", config.display()))?;
    for db in DATABASES {
        let path = dir.join(db);
        for stale in [path.clone(), dir.join(format!("{db}-journal"))] {
            if stale.exists() {
                std::fs::remove_file(&stale).with_context(|| format!("cannot replace {}", stale.display()))?;
            }
        }
        ferry_engine::inspect::run_sqlite_script(&path, DATA)?;
    }
    let project = Project::load(config)?;
    let pair = pair::open(&project, SOURCE, TARGET).await?;
    let baseline = baseline::baseline(&pair, &Selection::default(), user, Progress::hidden()).await?;
    Ok(Sample { project, baseline })
}

/// Adds [`PENDING`] to the staging database next to `config`: rows that
/// are in staging only, not in the baseline, so there is something to
/// promote. Call it after [`lay_out`].
pub fn leave_pending(config: &Path) -> Result<()> {
    let staging = folder_of(config).join(DATABASES[0]);
    ferry_engine::inspect::run_sqlite_script(&staging, PENDING)
        .with_context(|| format!("cannot add the pending sample rows to {}", staging.display()))
}

/// The folder a configuration file lives in (`.` for a bare file name).
pub fn folder_of(config: &Path) -> PathBuf {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
