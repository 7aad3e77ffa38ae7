//! The command line: clap structs only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Promote application content between environments: staging -> preprod -> production",
    long_about = "Ferry carries rows people author in admin tools (charts, businesses, forms, banners, reference tables) \
from one environment to the next, one way, with diffs, conflict detection, stable ids, an audit journal and revert.",
    after_help = "Examples:\n  ferry demo                                  a guided tour on temporary SQLite files\n  ferry init --demo                           sample environments and a ferry.toml here\n  ferry diff staging production               what would change\n  ferry promote staging production --id businesses:7\n  ferry log production\n  ferry revert 01J9Z...                       undo a promotion\n\nExit codes: 0 done, 1 error, 2 usage or config error, 3 blocked by conflicts or gates (nothing applied), 4 permission denied (nothing applied)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The configuration file.
    #[arg(long, global = true, default_value = "ferry.toml", env = "FERRY_CONFIG")]
    pub config: PathBuf,
    /// Act as this user (else $FERRY_USER, else the login name).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub user: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never ask; without a terminal, commands that would ask refuse unless given --yes.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// When another Ferry writer holds the target, refuse (exit 3) instead of waiting.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Also list the rows that need nothing (natural-key rows matched and equal).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SelectionArgs {
    /// Only this table (repeatable).
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Only this row, by the source row's key: TABLE:KEY, or TABLE:V1,V2 for a composite key (repeatable).
    #[arg(long = "id", value_name = "TABLE:KEY")]
    pub ids: Vec<String>,
    /// Only rows matching an SQL predicate, run on each database as written: TABLE:'PREDICATE' (repeatable).
    #[arg(long = "where", value_name = "TABLE:PREDICATE")]
    pub wheres: Vec<String>,
    /// Leave this row out, with the rows that need it (its children, rows referencing it that the target lacks): TABLE:KEY (repeatable).
    #[arg(long = "skip", value_name = "TABLE:KEY")]
    pub skips: Vec<String>,
    /// Read every table whole, even one that declares `changed` (whose plans otherwise read only the rows changed since the last sync).
    #[arg(long)]
    pub full: bool,
}

#[derive(Subcommand, Debug)]
pub enum ReviewAction {
    /// The review's changes, field by field, with the target's current values where it moved.
    Show { id: String },
    /// Apply the held changes and publish the drafts, in one transaction (--only for part of it).
    #[command(
        after_help = "Examples:\n  ferry review approve 01J9Z... --as bob\n  ferry review approve 01J9Z... --only businesses:7"
    )]
    Approve {
        id: String,
        /// Approve only this row (repeatable): TABLE:KEY.
        #[arg(long = "only", value_name = "TABLE:KEY")]
        only: Vec<String>,
    },
    /// Remove the drafts and discard the held changes (--only for part of the held changes).
    Reject {
        id: String,
        /// Reject only this row (repeatable): TABLE:KEY.
        #[arg(long = "only", value_name = "TABLE:KEY")]
        only: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EnvAction {
    /// Clone ENV's managed tables into a new environment named from BRANCH.
    #[command(
        after_help = "Examples:\n  ferry env create feature/123-new-menu --from production --promotes-to preprod"
    )]
    Create {
        branch: String,
        /// The environment to clone.
        #[arg(long, value_name = "ENV")]
        from: String,
        /// The only environment it may promote into (default: --from).
        #[arg(long, value_name = "ENV")]
        promotes_to: Option<String>,
    },
    /// The per-branch environments, with their unpromoted changes and expiry.
    List,
    /// Record that the branch was merged: the environment expires after --ttl.
    Merged {
        name: String,
        /// How long it lives after the merge: a number and s, m, h or d (0d: at once).
        #[arg(long, default_value = "7d")]
        ttl: String,
    },
    /// Drop the environment's database and its record (asks; shows unpromoted changes).
    Destroy { name: String },
    /// Destroy every expired per-branch environment (asks; shows each).
    Gc,
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a user who may sign in to `ferry serve` (or set a new password);
    /// their roles come from [access].
    #[command(
        after_help = "Examples:\n  ferry user add alice\n  printf '%s\\n' \"$PASSWORD\" | ferry user add alice --password-stdin"
    )]
    Add {
        name: String,
        /// Read the password from one line of standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// The users who may sign in.
    List,
    /// Remove a user: their sessions and API tokens stop working at once.
    Remove { name: String },
    /// Make an API token for a user, printed once on stdout (Authorization: Bearer TOKEN).
    #[command(
        after_help = "Example:\n  TOKEN=$(ferry user token alice)\n  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/api/v1/environments"
    )]
    Token { name: String },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TakeSide {
    Source,
    Target,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a starter ferry.toml (--demo: sample SQLite environments with data).
    #[command(after_help = "Examples:\n  ferry init\n  ferry init --demo && ferry diff staging production")]
    Init {
        /// Also create staging.db and production.db with sample content.
        #[arg(long)]
        demo: bool,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// A guided tour on temporary SQLite files; needs no set-up.
    Demo {
        /// Keep the demo's files in this folder instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Validate the configuration, reach every environment, verify tables, keys and columns.
    Check,
    /// Show what promoting FROM into TO would change.
    #[command(
        after_help = "Examples:\n  ferry diff staging production\n  ferry diff staging production --table businesses --json\n  ferry diff staging production --where \"businesses:city_id = 3\""
    )]
    Diff {
        from: String,
        to: String,
        #[command(flatten)]
        selection: SelectionArgs,
    },
    /// Make a plan (what `promote` would apply); -o saves it for review.
    #[command(
        after_help = "Examples:\n  ferry plan staging production -o plan.json\n  ferry promote staging production --plan plan.json"
    )]
    Plan {
        from: String,
        to: String,
        #[command(flatten)]
        selection: SelectionArgs,
        /// Write the plan to this file.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Apply the changes from FROM to TO in one transaction, journalled.
    #[command(
        after_help = "Examples:\n  ferry promote staging production\n  ferry promote staging production --id businesses:7 --yes\n  ferry promote staging production --dry-run"
    )]
    Promote {
        from: String,
        to: String,
        #[command(flatten)]
        selection: SelectionArgs,
        /// Apply exactly this saved plan (refused if the target moved since).
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
        /// Show what would be applied; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply rows already approved upstream directly (review environments).
        #[arg(long)]
        approve_revisions: bool,
        /// Resolve conflicts in favour of the source (never target-newer rows, gates or permissions).
        #[arg(long)]
        force: bool,
        /// Decide the rows named with --id: `source` writes the source's version (even over a
        /// target-newer row), `target` keeps the target's and records it as in sync.
        #[arg(long, value_enum, value_name = "SIDE")]
        take: Option<TakeSide>,
    },
    /// Reset ENV to match FROM, further down the pipeline (excluded rows of ENV stay), journalled.
    #[command(
        after_help = "Examples:\n  ferry refresh staging --from production\n  ferry refresh staging --from production --dry-run\n  ferry refresh staging --from production --drop-excluded --yes"
    )]
    Refresh {
        env: String,
        /// The environment further down the pipeline whose content comes down.
        #[arg(long, value_name = "ENV")]
        from: String,
        /// Delete the excluded rows of ENV that reference rows the refresh deletes.
        #[arg(long)]
        drop_excluded: bool,
        /// Show what would be discarded and written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the promotions recorded in ENV (every environment when omitted), newest first.
    Log {
        env: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one promotion: who, when, and every row it wrote.
    Show { promotion: String },
    /// Restore exactly what a promotion replaced.
    #[command(
        after_help = "Examples:\n  ferry revert 01J9ZQ4M6W4T8Y2F3K5N7P9R1S\n  ferry revert 01J9ZQ4M6W4T8Y2F3K5N7P9R1S --force   # even if those rows changed since"
    )]
    Revert {
        promotion: String,
        /// Restore even rows that changed since the promotion.
        #[arg(long)]
        force: bool,
    },
    /// List the reviews recorded in ENV (every environment when omitted), newest first.
    #[command(after_help = "Examples:\n  ferry reviews production\n  ferry reviews --json")]
    Reviews {
        env: Option<String>,
        /// Also list decided reviews (approved, rejected).
        #[arg(long)]
        all: bool,
    },
    /// Show, approve or reject a review.
    Review {
        #[command(subcommand)]
        action: ReviewAction,
    },
    /// The audit trail of ENV (every environment when omitted): every action and refusal, newest first.
    Audit {
        env: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Serve the web UI and the JSON API (users: `ferry user add NAME`).
    #[command(
        after_help = "Examples:\n  ferry user add alice && ferry serve\n  ferry serve --bind 0.0.0.0:8080   (behind a TLS proxy: see docs/server.md)"
    )]
    Serve {
        /// Address and port to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
        bind: std::net::SocketAddr,
        /// Mark the session cookie Secure: set when a TLS proxy serves the pages.
        #[arg(long)]
        secure_cookies: bool,
    },
    /// Manage the users who may sign in to `ferry serve`.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Per-branch environments: clones of an environment, named from a branch.
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Record the rows equal in FROM and TO as in sync (and list those that differ).
    Baseline {
        from: String,
        to: String,
        #[command(flatten)]
        selection: SelectionArgs,
        /// Show what would be recorded; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Install in ENV the trace of deletes of the tables with `track_deletes` (a trigger each).
    #[command(
        after_help = "Examples:\n  ferry track staging\n  ferry track production\n\nRun it in both environments of a pair, then promote (or `ferry baseline`) once: plans read the keys deleted since the last sync from the trace instead of comparing every key. Installing again makes only what is missing."
    )]
    Track { env: String },
    /// Write ENV's managed tables into DIR as canonical JSON files (one per row), making DIR equal.
    #[command(
        after_help = "Examples:\n  ferry export production content\n  git diff content/\n\nA `dir:` environment (url = \"dir:content\") reads and writes the same folder."
    )]
    Export { env: String, dir: PathBuf },
}
