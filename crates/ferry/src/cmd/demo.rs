//! `ferry demo`: a narrated tour on temporary SQLite files that needs no
//! set-up. It lays out the sample environments (see [`sample`]), makes a
//! product manager's edits in staging, and walks through the diff, a
//! promotion, production afterwards, the log and a revert, calling the
//! engine exactly as the commands it names do. It writes only its own
//! files and asks nothing.

pub(crate) mod sample;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ferry_core::plan::Plan;
use ferry_core::selection::Selection;
use ferry_core::Value;
use ferry_engine::apply::{self, PromoteOptions};
use ferry_engine::progress::Progress;
use ferry_engine::views::WrittenCounts;
use ferry_engine::{inspect, journal, pair, planner, revert, Store};

use self::sample::{Production, DATABASES, SOURCE, TARGET};
use super::{print_json, print_text};
use crate::cli::Global;
use crate::output;
use crate::ui;

/// Who the tour's promotions are journalled as.
const USER: &str = "demo";
/// Narration is wrapped to this many columns.
const WIDTH: usize = 78;

/// The columns of `businesses` the tour reads back, and their positions.
const BUSINESS_COLUMNS: [&str; 5] = ["id", "name", "icon", "modified_at", "view_count"];
const NAME: usize = 1;
const ICON: usize = 2;
const MODIFIED_AT: usize = 3;
const VIEW_COUNT: usize = 4;

/// The rows [`sample::EDITS`] touches (keep in step with that file).
const RENAMED: i64 = 3;
const ORIGINAL_NAME: &str = "Sprüngli";
const NEW_BUSINESS: i64 = 7;
const NEW_FORM: &str = "4";
const QA_BUSINESS: i64 = 8;
const COUNTED: i64 = 1;

/// The narrated tour. Long on purpose: it is the script of the tour, eight
/// steps read top to bottom, each a command shown and its real output; cut
/// into functions it would read as a table of contents instead of a story.
pub async fn run(g: &Global, keep: Option<PathBuf>) -> Result<u8> {
    let (dir, _temp) = workspace(keep.as_deref())?;
    let config = dir.join("ferry.toml");
    let say = Narrator { quiet: g.json };
    say.intro(&dir, keep.is_some())?;

    // 1. Two environments in sync.
    let sample = sample::lay_out(&config, Production::Direct, USER).await?;
    let project = &sample.project;
    let pair = pair::open(project, SOURCE, TARGET).await?;
    let mut sizes = Vec::new();
    for table in &pair.order {
        let n = count_rows(&*pair.source, table, &pair.spec(table)?.key).await?;
        sizes.push(format!("{n} {}", table.replace('_', " ")));
    }
    say.step(
        1,
        "Two environments with the same content",
        &format!(
            "A team authors content in an admin tool: cities, partners, the businesses they run, and the forms \
             those businesses show, with their fields. Staging is where a product manager edits and tests it; \
             production is what the public sees. Here both start identical: {}. \
             Ferry records a baseline: every row equal on both sides is marked as in sync, so from now on \
             Ferry can tell which side changed what.",
            sizes.join(", ")
        ),
    )?;
    say.command(&format!("ferry baseline {SOURCE} {TARGET} --yes"))?;
    // Word for word what `ferry baseline --yes` says first.
    say.output(
        output::baseline_line(
            SOURCE,
            TARGET,
            sample.baseline.recorded,
            sample.baseline.id.as_deref(),
            false,
        )
        .trim_end(),
    )?;

    // 2. Edits in staging.
    inspect::run_sqlite_script(&dir.join(DATABASES[0]), sample::EDITS)?;
    say.step(
        2,
        "A product manager edits staging",
        "Over a morning in the admin tool (here: SQL run on staging.db), staging changes:",
    )?;
    say.bullets(&[
        "business 3 \"Sprüngli\" is renamed \"Confiserie Sprüngli 🍫\";",
        "business 7 \"Padaria Pão de Açúcar 🥐\" opens, with a 20-byte icon, run by a new partner in a new city, São Paulo;",
        "it gets form 4 \"Encomenda de bolos 🎂 — São Paulo\" with three fields;",
        "field 5 \"Anzahl Kerzen\" of form 2 is deleted: the shop stopped selling candles;",
        "meanwhile QA creates business 8 \"[QA] checkout smoke test\" (created_by_team = 'qa') to test the checkout;",
        "and visitors push business 1's view_count in staging from 1520 to 1999.",
    ])?;
    say.command("(no Ferry command: the admin tool writes to staging as it always did)")?;

    // 3. The diff.
    let everything = Selection::default();
    let plan = planner::plan(&pair, &everything, Progress::hidden()).await?;
    say.step(
        3,
        "Review what would change",
        "Before anything moves, the product manager looks at the difference, row by row and field by field. \
         The rename is an update of one field; the new city, partner, business, form and fields are inserts; \
         the removed field is a delete (Ferry knows production had it from staging, as they were in sync). \
         QA's business is left behind by `exclude`, and the view_count bump is no change at all: \
         the column is `ignore`d, local to each environment.",
    )?;
    say.command(&format!("ferry diff {SOURCE} {TARGET}"))?;
    say.output(&output::plan_text(&plan))?;
    let one = Selection {
        ids: vec![("forms".into(), vec![NEW_FORM.into()])],
        ..Selection::default()
    };
    let one_plan = planner::plan(&pair, &one, Progress::hidden()).await?;
    say.para(
        "Changes can also go one at a time. Select only the new form, and Ferry brings what it needs: \
         its fields travel with it (`parent`), and the business it belongs to, with that business's \
         partner and city, are pulled in by `references` because production lacks them.",
    )?;
    say.command(&format!("ferry diff {SOURCE} {TARGET} --id forms:{NEW_FORM}"))?;
    say.output(&output::plan_text(&one_plan))?;

    // 4. The promotion.
    let promotion = apply::promote(
        &pair,
        &plan,
        &PromoteOptions {
            user: USER.into(),
            force: false,
        },
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("the demo's promotion changed nothing; the sample content is broken"))?;
    say.step(
        4,
        "Promote to production",
        "Happy with the diff, the product manager promotes everything. Ferry applies the plan in one \
         transaction on production: parents before children and deletes in reverse, after re-checking that \
         production is still what the plan saw. It stamps modified_at with the promotion time and writes the \
         journal, with every row's before-image, in the same transaction: all of it lands, or none of it.",
    )?;
    say.command(&format!("ferry promote {SOURCE} {TARGET} --yes"))?;
    // Word for word what `ferry promote` says.
    say.output(output::promoted_text(&promotion, TARGET, None).trim_end())?;

    // 5. Production now.
    let wanted = [RENAMED, NEW_BUSINESS, COUNTED, QA_BUSINESS];
    let staging = businesses(&*pair.source, &wanted).await?;
    let production = businesses(&*pair.target, &wanted).await?;
    let stamp = promotion_stamp(&promotion.at);
    let checks = Checks::of(&staging, &production, stamp.as_deref());
    say.step(
        5,
        "What production holds now",
        "The public now sees the new content. Names keep their accents and emoji byte for byte, the icon \
         arrives bit for bit, and modified_at says when the promotion happened, so apps that sync by \
         modified_at pick the changes up. What had to stay behind did.",
    )?;
    say.command(&format!("ferry show {}", promotion.id))?;
    say.note("lists every row the promotion wrote, before and after; here are the rows that matter, read back from both databases:")?;
    say.output(&production_report(&staging, &production, &checks))?;

    // 6. The log.
    let records = journal::promotions(&*pair.target).await?;
    say.step(
        6,
        "The journal",
        "Every promotion is recorded in the target itself (Ferry's own _ferry_* tables), committed with the \
         data: who, when, from where, and how many rows. Here: the baseline of step 1 and the promotion.",
    )?;
    say.command(&format!("ferry log {TARGET}"))?;
    say.output(&output::log_text(&records))?;

    // 7. The revert, and the changes pending again.
    let reverted = revert::revert(project, &promotion.id, USER, false).await?;
    let after = businesses(&*pair.target, &[RENAMED, NEW_BUSINESS]).await?;
    let pending = planner::plan(&pair, &everything, Progress::hidden()).await?;
    let restored =
        text_of(after.get(&RENAMED), NAME).as_deref() == Some(ORIGINAL_NAME) && !after.contains_key(&NEW_BUSINESS);
    say.step(
        7,
        "Changed minds: revert",
        "The São Paulo launch is postponed. A revert restores exactly what the promotion replaced, from the \
         journal's before-images, and refuses if those rows changed since (unless --force). It is journalled \
         too, and it puts the sync base back, so the same changes show as pending again.",
    )?;
    say.command(&format!("ferry revert {} --yes", promotion.id))?;
    // Word for word what `ferry revert` says, then what production holds.
    say.output(&format!(
        "{}{}",
        output::reverted_text(&promotion.id, TARGET, &reverted),
        match (text_of(after.get(&RENAMED), NAME), restored) {
            (Some(name), true) =>
                format!("production: business {RENAMED} is \"{name}\" again, business {NEW_BUSINESS} is gone."),
            _ => ui::red("production was not restored as expected"),
        }
    ))?;
    say.command(&format!("ferry diff {SOURCE} {TARGET}"))?;
    say.output(&summary_of(&pending))?;

    // 8. Where next.
    say.step(
        8,
        "Where to go next",
        "Play with the same sample on files you keep: `ferry init --demo` writes this tour's ferry.toml \
         (every line explained) with staging.db and production.db into the current folder, in sync and \
         ready for your own edits. One line differs: there, production takes reviews (`review = true`), \
         so a promotion waits until someone approves it, with `ferry review approve ID` or in the web UI \
         of `ferry serve`. For your own databases, `ferry init` writes a starter ferry.toml, and the \
         README's quick start takes five minutes.",
    )?;
    say.commands(&[
        "ferry init --demo && ferry diff staging production",
        "ferry init",
        "ferry --help",
    ])?;
    if let Some(kept) = &keep {
        say.para(&format!(
            "This tour's files stay in {}: `cd {}` and run `ferry log {TARGET}` to see them.",
            kept.display(),
            kept.display()
        ))?;
    } else {
        say.para("The tour's temporary files are removed now; `ferry demo --keep DIR` keeps them.")?;
    }

    let ok = checks.all() && restored;
    if g.json {
        print_json(&DemoView {
            promotion: promotion.id.clone(),
            revert: reverted.id.clone(),
            baseline: sample.baseline.id.clone(),
            counts: (&promotion.counts).into(),
            revert_counts: (&reverted.counts).into(),
            diff: DemoDiff {
                counts: (&plan.counts()).into(),
                excluded: plan.excluded.clone(),
            },
            pending_after_revert: (&pending.counts()).into(),
            checks: DemoChecks {
                emoji_intact: checks.emoji_intact,
                icon_identical: checks.icon_identical,
                stamped: checks.stamped,
                ignored_kept: checks.ignored_kept,
                excluded_left_behind: checks.excluded_left_behind,
                revert_restored: restored,
            },
            ok,
            kept: keep.as_ref().map(|k| k.display().to_string()),
        })?;
    }
    if !ok {
        eprintln!(
            "{} the demo's own checks failed (see above): the promotion or the revert did not do what Ferry promises",
            ui::error_label()
        );
        return Ok(1);
    }
    Ok(0)
}

/// The folder the tour works in: `--keep DIR` (created when missing,
/// refused when it already holds demo files) or a temporary one, removed
/// when the returned guard drops.
fn workspace(keep: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match keep {
        Some(dir) => {
            let files: Vec<PathBuf> = std::iter::once("ferry.toml")
                .chain(DATABASES)
                .map(|f| dir.join(f))
                .collect();
            sample::refuse_existing(
                &files,
                false,
                "`ferry demo --keep DIR` starts from fresh demo files: give an empty or new folder, or remove those files",
            )?;
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
            Ok((dir.to_path_buf(), None))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("ferry-demo-")
                .tempdir()
                .context("cannot create a temporary folder for the demo")?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// Prints the tour for people; silent with `--json`.
struct Narrator {
    quiet: bool,
}

impl Narrator {
    fn print(&self, s: &str) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        print_text(s)
    }

    fn intro(&self, dir: &Path, kept: bool) -> Result<()> {
        let place = if kept {
            format!("Working in {}.", dir.display())
        } else {
            format!(
                "Working in {} (removed at the end; `--keep DIR` keeps the files).",
                dir.display()
            )
        };
        self.print(&format!(
            "{}\n{}",
            ui::bold("Ferry demo: promoting content from staging to production, and taking it back"),
            wrap(
                &format!(
                    "Ferry carries the content people author in admin tools from one environment to the next: \
                     reviewed, atomic, reversible and audited. This tour runs on two SQLite files and changes \
                     nothing else. {place}"
                ),
                "",
                ""
            )
        ))
    }

    fn step(&self, n: u8, title: &str, story: &str) -> Result<()> {
        self.print(&format!(
            "\n{}\n{}",
            ui::bold(&format!("{n}/8  {title}")),
            wrap(story, "", "")
        ))
    }

    fn para(&self, text: &str) -> Result<()> {
        self.print(&format!("\n{}", wrap(text, "", "")))
    }

    fn bullets(&self, items: &[&str]) -> Result<()> {
        let text: String = items.iter().map(|i| wrap(i, "  • ", "    ")).collect();
        self.print(&text)
    }

    fn command(&self, line: &str) -> Result<()> {
        self.commands(&[line])
    }

    fn commands(&self, lines: &[&str]) -> Result<()> {
        let mut out = String::from("\n");
        for line in lines {
            let _ = writeln!(out, "  {} {}", ui::dim("$"), ui::bold(line));
        }
        self.print(&out)
    }

    /// A remark on the command just shown.
    fn note(&self, text: &str) -> Result<()> {
        let wrapped = wrap(&format!("({text})"), "    ", "    ");
        self.print(&ui::dim(wrapped.trim_end()))?;
        self.print("\n")
    }

    fn output(&self, text: &str) -> Result<()> {
        let mut out = String::new();
        for line in text.trim_end().lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "    {line}");
            }
        }
        self.print(&out)
    }
}

/// Greedy word wrap to [`WIDTH`] columns, with a first-line and a
/// following-lines indent.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    let mut indent = first;
    for word in text.split_whitespace() {
        let len = indent.chars().count() + line.chars().count();
        if !line.is_empty() && len + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
            indent = rest;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(out, "{indent}{line}");
    out
}

async fn count_rows(store: &dyn Store, table: &str, key: &[String]) -> Result<u64> {
    Ok(inspect::count_rows(store, table, key).await?)
}

/// Rows of `businesses` by id, with [`BUSINESS_COLUMNS`].
async fn businesses(store: &dyn Store, ids: &[i64]) -> Result<BTreeMap<i64, Vec<Value>>> {
    let values = ids.iter().map(|i| Value::Int(*i)).collect();
    let rows = inspect::rows_where(store, "businesses", &BUSINESS_COLUMNS, "id", values).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.first() {
            Some(Value::Int(id)) => Some((*id, r)),
            _ => None,
        })
        .collect())
}

fn cell(row: Option<&Vec<Value>>, i: usize) -> Option<&Value> {
    row.and_then(|r| r.get(i))
}

fn text_of(row: Option<&Vec<Value>>, i: usize) -> Option<String> {
    match cell(row, i) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The text an SQLite TEXT column receives for the promotion's stamp.
fn promotion_stamp(at: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| journal::stamp_text(t.with_timezone(&chrono::Utc)))
}

/// What the tour verifies in production after the promotion.
struct Checks {
    emoji_intact: bool,
    icon_identical: bool,
    stamped: bool,
    ignored_kept: bool,
    excluded_left_behind: bool,
}

type Rows = BTreeMap<i64, Vec<Value>>;

impl Checks {
    fn of(staging: &Rows, production: &Rows, stamp: Option<&str>) -> Checks {
        let same = |id: i64, i: usize| {
            let s = cell(staging.get(&id), i);
            s.is_some() && s == cell(production.get(&id), i)
        };
        let stamped_with = |id: i64| stamp.is_some() && text_of(production.get(&id), MODIFIED_AT).as_deref() == stamp;
        Checks {
            emoji_intact: same(RENAMED, NAME) && same(NEW_BUSINESS, NAME),
            icon_identical: same(NEW_BUSINESS, ICON)
                && matches!(cell(production.get(&NEW_BUSINESS), ICON), Some(Value::Bytes(_))),
            stamped: stamped_with(RENAMED) && stamped_with(NEW_BUSINESS),
            ignored_kept: production.contains_key(&COUNTED) && !same(COUNTED, VIEW_COUNT),
            excluded_left_behind: staging.contains_key(&QA_BUSINESS) && !production.contains_key(&QA_BUSINESS),
        }
    }

    fn all(&self) -> bool {
        self.emoji_intact && self.icon_identical && self.stamped && self.ignored_kept && self.excluded_left_behind
    }
}

fn verdict(ok: bool, good: &str, bad: &str) -> String {
    if ok {
        ui::green(good)
    } else {
        ui::red(bad)
    }
}

/// A cell for people: text quoted (without escaping, so emoji show as
/// they are), anything else as `ferry diff` shows it.
fn shown(v: Option<&Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::Text(s)) => format!("\"{s}\""),
        Some(other) => other.display_text(),
    }
}

fn plain(v: Option<&Value>) -> String {
    v.map_or_else(|| "(none)".into(), Value::display_text)
}

fn production_report(staging: &Rows, production: &Rows, checks: &Checks) -> String {
    let mut out = String::new();
    let p = |id: i64, i: usize| shown(cell(production.get(&id), i));
    let s = |id: i64, i: usize| shown(cell(staging.get(&id), i));
    let same_name = |id: i64| cell(staging.get(&id), NAME) == cell(production.get(&id), NAME);
    for id in [RENAMED, NEW_BUSINESS] {
        let _ = writeln!(
            out,
            "businesses:{id}  name         {}  {}",
            p(id, NAME),
            verdict(same_name(id), "same bytes as in staging", "DIFFERS from staging")
        );
        if id == NEW_BUSINESS {
            let _ = writeln!(
                out,
                "{:14}icon         {}  {}",
                "",
                p(id, ICON),
                verdict(
                    checks.icon_identical,
                    "identical to staging's",
                    "DIFFERS from staging's"
                )
            );
        }
        let _ = writeln!(
            out,
            "{:14}modified_at  {}  {}",
            "",
            plain(cell(production.get(&id), MODIFIED_AT)),
            ui::dim(&format!(
                "stamped at promotion (staging says {})",
                plain(cell(staging.get(&id), MODIFIED_AT))
            ))
        );
    }
    let _ = writeln!(
        out,
        "businesses:{COUNTED}  view_count   {}  {}",
        p(COUNTED, VIEW_COUNT),
        verdict(
            checks.ignored_kept,
            &format!("its own count, kept (staging counts {})", s(COUNTED, VIEW_COUNT)),
            "overwritten by staging's count"
        )
    );
    let _ = writeln!(
        out,
        "businesses:{QA_BUSINESS}  {}",
        verdict(
            checks.excluded_left_behind,
            "not in production: QA's test business stayed in staging (`exclude`)",
            "QA's test business reached production"
        )
    );
    out
}

/// `ferry demo --json`: what the tour did and whether its checks held.
#[derive(serde::Serialize)]
struct DemoView {
    promotion: String,
    revert: String,
    baseline: Option<String>,
    counts: WrittenCounts,
    revert_counts: WrittenCounts,
    diff: DemoDiff,
    pending_after_revert: WrittenCounts,
    checks: DemoChecks,
    ok: bool,
    kept: Option<String>,
}

#[derive(serde::Serialize)]
struct DemoDiff {
    counts: WrittenCounts,
    excluded: std::collections::BTreeMap<String, u64>,
}

#[derive(serde::Serialize)]
struct DemoChecks {
    emoji_intact: bool,
    icon_identical: bool,
    stamped: bool,
    ignored_kept: bool,
    excluded_left_behind: bool,
    revert_restored: bool,
}

/// The summary lines of a plan (what `ferry diff` prints first).
fn summary_of(plan: &Plan) -> String {
    let text = output::plan_text(plan);
    let head: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    format!(
        "{}\n{}",
        head.join("\n"),
        ui::dim("(the same changes as in step 3, pending again: promote them whenever you are ready)")
    )
}
