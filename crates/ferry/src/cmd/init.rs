//! `ferry init`: a commented starter `ferry.toml` to edit, written where
//! `--config` points (default `./ferry.toml`). `ferry init --demo` writes
//! the demo's configuration with `staging.db` and `production.db` next to
//! it instead, in sync (baseline recorded), ready to play with. Existing
//! files are never overwritten without `--force`.

use std::path::Path;

use anyhow::{Context, Result};

use super::demo::sample::{self, Production, DATABASES, SOURCE, TARGET};
use super::{print_json, print_text};
use crate::cli::Global;
use crate::ui;

/// The starter configuration: every option shown, most of them commented.
const STARTER: &str = r#"# Ferry's configuration: the environments content flows through, and the
# tables Ferry manages in them. Written by `ferry init`: edit it, then run
# `ferry check`, which validates it against every database.
# (`ferry init --demo` writes a complete example with sample databases.)

# Content flows left to right only: staging -> preprod -> production.
pipeline = ["staging", "preprod", "production"]

# Each environment's URL is read from a variable, so no password ever sits
# in this file (a `url` carrying a password is refused). For example:
#   export FERRY_STAGING_URL=sqlite://staging.db
#   export FERRY_PREPROD_URL=postgres://ferry@preprod-db.internal/app
#   export FERRY_PRODUCTION_URL=mysql://ferry@prod-db.internal/app
[environments.staging]
url_env = "FERRY_STAGING_URL"
# A URL without a password may be written here instead; a relative SQLite
# path is relative to this file:
# url = "sqlite://staging.db"

[environments.preprod]
url_env = "FERRY_PREPROD_URL"
# Gates: checks that must pass on the source before anything lands here.
# checks = [{ sql = "SELECT count(*) = 0 FROM businesses WHERE name = ''" }, { command = "make test" }]

[environments.production]
url_env = "FERRY_PRODUCTION_URL"
# Promotions into production become reviews that an approver accepts.
# review = true
# After a promotion: re-index a search engine, refresh a cache...
# hooks = [{ command = "./reindex.sh" }]

# A per-branch environment outside the pipeline says where it may go:
# [environments.feature-123]
# url_env = "FERRY_FEATURE_123_URL"
# promotes_to = "preprod"          # it may promote into preprod
# accepts_from = ["staging"]       # and staging may promote into it

# Every table Ferry manages, one section each; tables not listed are never
# touched. Replace this example with your own tables.
[tables.businesses]
# The columns that identify a row, the same in every environment (without
# `key`, Ferry uses the table's primary key).
key = ["id"]
# When ids differ per environment, match rows by a natural key instead:
# natural_key = ["slug"]
# Columns pointing at other managed tables (each needs its own [tables.X]):
# a promoted row brings the rows it points at when the target lacks them.
# references = { partner_id = "partners", city_id = "cities" }
# Environment-local columns: never compared, never copied.
# ignore = ["view_count"]
# Foreign keys to tables Ferry does not manage whose ids are the same in
# every environment, copied as they are (`check` refuses any other foreign
# key that is not a reference, the parent, or ignored).
# keep_ids = ["owner_id"]
# Columns set to the promotion time on the target; never compared.
# stamp = { modified_at = "now" }
# Rows that never leave the source (an SQL predicate, run as written).
# exclude = "created_by_team IN ('qa', 'dev')"
# In a review environment, new rows land with these values.
# draft = { is_published = false }

# A child table travels with its parent (inserts, updates and deletes):
# [tables.form_fields]
# key = ["id"]
# parent = { form_id = "forms" }

# Who may do what. Without [access], everyone may do everything.
# [access]
# users = { alice = ["pm"], bob = ["pm", "lead"], carol = ["qa"] }
# promote = { preprod = ["pm"], production = ["pm"] }
# approve = { production = ["lead"] }
# revert = { production = ["lead"] }
"#;

pub async fn run(g: &Global, demo: bool, force: bool) -> Result<u8> {
    let config = g.config.clone();
    let dir = sample::folder_of(&config);
    let mut files = vec![config.clone()];
    if demo {
        files.extend(DATABASES.iter().map(|d| dir.join(d)));
    }
    let names: Vec<String> = files.iter().map(|f| file_name(f)).collect();
    sample::refuse_existing(
        &files,
        force,
        &format!(
            "Pass --force to overwrite {}, or --config PATH to write elsewhere",
            if demo { names.join(", ") } else { "it".into() }
        ),
    )?;
    if !dir.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let next = Next::new(&config, &dir);
    if !demo {
        std::fs::write(&config, STARTER).with_context(|| format!("cannot write {}", config.display()))?;
        let steps = vec![
            "export FERRY_STAGING_URL=sqlite://staging.db   (and FERRY_PREPROD_URL, FERRY_PRODUCTION_URL)".to_string(),
            format!("edit {}: your tables, keys and references", config.display()),
            next.ferry("check"),
        ];
        if g.json {
            print_json(&InitView {
                config: config.display().to_string(),
                demo: false,
                created: vec![config.display().to_string()],
                baseline: None,
                recorded: None,
                next: steps,
            })?;
        } else {
            let mut out = format!(
                "{} {}: a starter configuration with every option explained.\nNext:\n",
                ui::green("Wrote"),
                config.display()
            );
            for (i, s) in steps.iter().enumerate() {
                out.push_str(&format!("  {}. {s}\n", i + 1));
            }
            out.push_str("For sample environments with data instead, run `ferry init --demo` in an empty folder.\n");
            print_text(&out)?;
        }
        return Ok(0);
    }

    let laid = sample::lay_out(&config, Production::Reviews, &ui::user(g)).await?;
    sample::leave_pending(&config)?;
    let try_these: Vec<(String, &str)> = vec![
        (
            next.ferry(&format!("diff {SOURCE} {TARGET}")),
            "what waits in staging, field by field: the new business, its form and the form's fields",
        ),
        (
            format!(
                "sqlite3 {} \"UPDATE businesses SET name = 'Confiserie Sprüngli 🍫' WHERE id = 3\"",
                here(&dir, DATABASES[0])
            ),
            "edit staging yourself (any SQLite tool will do), then diff again",
        ),
        (
            next.ferry(&format!("promote {SOURCE} {TARGET}")),
            "submit it all: production takes reviews, so nothing changes there yet; prints a review id",
        ),
        (
            next.ferry("review approve ID"),
            "approve it (here anyone may, you too): it lands in one transaction, journalled; prints a promotion id",
        ),
        (next.ferry(&format!("log {TARGET}")), "who promoted what, and when"),
        (next.ferry("revert ID"), "undo that promotion exactly"),
        (
            format!("{} && {}", next.ferry("user add NAME"), next.ferry("serve")),
            "or all of this in a browser: add a user (it asks for a password), serve, open the page, sign in",
        ),
    ];
    if g.json {
        let created: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        print_json(&InitView {
            config: config.display().to_string(),
            demo: true,
            created,
            baseline: laid.baseline.id.clone(),
            recorded: Some(laid.baseline.recorded),
            next: try_these.iter().map(|(c, _)| c.clone()).collect(),
        })?;
        return Ok(0);
    }
    let place = if dir == Path::new(".") {
        "the current folder".to_string()
    } else {
        dir.display().to_string()
    };
    let mut out = format!(
        "{} {}, {} and {} in {place}.\n\
         Sample content (cities, partners, businesses, forms and their fields), the same in both\n\
         environments: {} rows recorded as in sync (baseline {}).\n\
         In staging only, waiting to be promoted: {}.\n\nTry:\n",
        ui::green("Wrote"),
        names[0],
        names[1],
        names[2],
        laid.baseline.recorded,
        laid.baseline.id.as_deref().unwrap_or("none"),
        sample::PENDING_TOLD
    );
    for (cmd, why) in &try_these {
        out.push_str(&format!("  {}\n  {}\n", ui::dim(&format!("# {why}")), ui::bold(cmd)));
    }
    out.push_str(&format!(
        "\n{} explains every line. For a guided tour, run `ferry demo`.\n",
        config.display()
    ));
    print_text(&out)?;
    Ok(0)
}

/// A file in `dir`, spelled as short as the current folder allows.
fn here(dir: &Path, file: &str) -> String {
    if dir == Path::new(".") {
        file.to_string()
    } else {
        dir.join(file).display().to_string()
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Spells the commands to try from the current folder: with `--config`
/// when the configuration is not `./ferry.toml`.
struct Next {
    flag: String,
}

impl Next {
    fn new(config: &Path, dir: &Path) -> Next {
        let default = dir == Path::new(".") && config.file_name() == Some("ferry.toml".as_ref());
        let flag = if default || config == Path::new("ferry.toml") {
            String::new()
        } else {
            format!(" --config {}", config.display())
        };
        Next { flag }
    }

    fn ferry(&self, args: &str) -> String {
        format!("ferry{} {args}", self.flag)
    }
}

/// `ferry init --json`: the files written and what to run next.
#[derive(serde::Serialize)]
struct InitView {
    config: String,
    demo: bool,
    created: Vec<String>,
    baseline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<u64>,
    next: Vec<String>,
}
