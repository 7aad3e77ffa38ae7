//! Issue 21: a real application as the client. A Wagtail site
//! (`examples/wagtail/`) is migrated separately into staging and production
//! (on SQLite, and on PostgreSQL when `FERRY_TEST_POSTGRES_URL` is set),
//! pages are authored with Wagtail's own ORM in both (one page created in
//! each environment, so ids and tree paths collide; content type ids
//! differ), promoted with the example's `ferry.toml` through the real
//! binary, and then Wagtail itself is asked: `Page.objects.live()`,
//! `fixtree`, every page's URL and admin edit page, every revision; then
//! the promotions are reverted and Wagtail is asked again.
//!
//! Python with Wagtail comes from `FERRY_TEST_WAGTAIL_PYTHON` (a venv's
//! python), else from a venv this test creates under the target folder
//! (`pip install` of [`PINS`]). Without Python the test prints a `SKIP`
//! line and passes; under `CI=true` that is a failure.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcOutput, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::Value as J;

use crate::common::{changes, dump_tables, run_in_with, Output};

/// What the venv gets (Python 3.11 installs these).
const PINS: [&str; 3] = ["wagtail==7.0.10", "Django==5.2.19", "psycopg[binary]==3.3.9"];

/// The application tables the example's `ferry.toml` manages.
const MANAGED: [&str; 6] = [
    "django_content_type",
    "wagtailcore_locale",
    "wagtailcore_page",
    "home_homepage",
    "home_articlepage",
    "wagtailcore_revision",
];

/// Production has one more app first in INSTALLED_APPS: its content type
/// ids differ from staging's.
const PRODUCTION_EXTRA_APPS: &str = "django.contrib.sites";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (or, under `CI=true`, fails) a test, past the harness's capture.
fn skip(test: &str, why: &str) {
    if ci() {
        panic!("{test}: {why}; under CI=true this test must run (.ci/run installs what it needs)");
    }
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wagtail")
}

fn run_cmd(cmd: &mut Command) -> Result<ProcOutput, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether `python` imports Wagtail (and which version it has).
fn wagtail_version(python: &Path) -> Result<String, String> {
    let out = run_cmd(Command::new(python).args(["-c", "import wagtail; print(wagtail.__version__)"]))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("FERRY_TEST_WAGTAIL_PYTHON") {
        if !p.trim().is_empty() {
            let p = PathBuf::from(p.trim());
            wagtail_version(&p).map_err(|e| format!("FERRY_TEST_WAGTAIL_PYTHON={}: no Wagtail: {e}", p.display()))?;
            return Ok(p);
        }
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wagtail-venv");
    let python = venv.join("bin").join("python");
    if python.exists() && wagtail_version(&python).is_ok() {
        return Ok(python);
    }
    let base = ["python3", "python"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .ok_or("no python3 on PATH (or set FERRY_TEST_WAGTAIL_PYTHON to a venv's python with wagtail)")?;
    let _ = writeln!(
        std::io::stderr(),
        "wagtail: creating {} and installing {}",
        venv.display(),
        PINS.join(" ")
    );
    run_cmd(Command::new(base).args(["-m", "venv"]).arg(&venv))?;
    run_cmd(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(PINS),
    )?;
    wagtail_version(&python)?;
    Ok(python)
}

/// The venv's python, installed once per test binary; `None` after a SKIP.
fn python(test: &str) -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_or_install) {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            skip(test, why);
            None
        }
    }
}

/// One environment of the site: its database URL (the same text for
/// Django's settings and for Ferry) and its extra apps.
struct Env {
    url: String,
    extra_apps: &'static str,
}

struct Site {
    python: PathBuf,
    dir: tempfile::TempDir,
    staging: Env,
    production: Env,
}

impl Site {
    fn manage(&self, env: &Env, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg("manage.py")
            .args(args)
            .current_dir(example_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("FERRY_WAGTAIL_DB", &env.url)
            .env("FERRY_WAGTAIL_EXTRA_APPS", env.extra_apps)
            .stdin(Stdio::null());
        cmd
    }

    #[track_caller]
    fn django(&self, env: &Env, args: &[&str]) -> String {
        let out = run_cmd(&mut self.manage(env, args)).unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Migrates both databases at once (two processes), then authors each
    /// environment's pages.
    fn migrate_and_author(&self) {
        let spawn = |env: &Env| {
            self.manage(env, &["migrate", "-v0", "--noinput"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run manage.py migrate")
        };
        let children = [spawn(&self.staging), spawn(&self.production)];
        for child in children {
            let out = child.wait_with_output().expect("manage.py migrate");
            assert!(
                out.status.success(),
                "migrate failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.django(&self.staging, &["author_pages", "staging"]);
        self.django(&self.production, &["author_pages", "production"]);
    }

    /// What Wagtail says about an environment (`inspect_site`).
    fn inspect(&self, env: &Env) -> J {
        let text = self.django(env, &["inspect_site"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("inspect_site printed no JSON ({e}):\n{text}"))
    }

    /// `manage.py fixtree` must find nothing to fix.
    #[track_caller]
    fn assert_fixtree_clean(&self, env: &Env) {
        let out = self.django(env, &["fixtree", "--noinput"]);
        assert!(
            out.contains("Checking page tree for problems...\nNo problems found."),
            "fixtree found problems:\n{out}"
        );
    }

    fn ferry(&self, args: &[&str]) -> Output {
        run_in_with(
            self.dir.path(),
            args,
            &[
                ("FERRY_STAGING_URL", self.staging.url.as_str()),
                ("FERRY_PRODUCTION_URL", self.production.url.as_str()),
            ],
        )
    }

    fn promote(&self, args: &[&str]) -> String {
        let mut all = vec!["promote", "staging", "production", "--yes", "--json"];
        all.extend_from_slice(args);
        let v = self.ferry(&all).expect(0).json();
        v["promotion"]
            .as_str()
            .unwrap_or_else(|| panic!("no promotion id in {v:#}"))
            .to_string()
    }
}

fn page<'a>(report: &'a J, url_path: &str) -> &'a J {
    report["pages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["url_path"] == url_path))
        .unwrap_or_else(|| panic!("no page {url_path} in {report:#}"))
}

fn live(report: &J) -> Vec<String> {
    report["live"]
        .as_array()
        .unwrap_or_else(|| panic!("no `live` in {report:#}"))
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every page's admin edit page is 200; every live page is served (200)
/// with its title; no tree problem; every revision is its page's.
#[track_caller]
fn assert_healthy(report: &J) {
    for p in report["pages"].as_array().expect("pages") {
        assert_eq!(p["admin_status"], 200, "admin edit page of {p:#}");
        assert_eq!(p["admin_shows_title"], true, "admin edit page of {p:#}");
        if p["live"] == true {
            assert_eq!(p["status"], 200, "{p:#}");
            assert_eq!(p["title_served"], true, "{p:#}");
        }
        let expected = if p["url_path"] == "/home/" {
            "HomePage"
        } else {
            "ArticlePage"
        };
        assert_eq!(p["specific"], expected, "{p:#}");
    }
    for (k, n) in report["tree_problems"].as_object().expect("tree_problems") {
        assert_eq!(n, 0, "tree problem {k}: {report:#}");
    }
    assert_eq!(report["revision_problems"], serde_json::json!([]), "{report:#}");
}

/// The whole flow on one pair of databases. `dumps`: for SQLite, the two
/// files, to check byte for byte that a refused promotion wrote nothing and
/// that revert restores production's managed tables exactly.
fn promote_a_wagtail_site(site: &Site, production_file: Option<&Path>) {
    std::fs::copy(example_dir().join("ferry.toml"), site.dir.path().join("ferry.toml")).expect("copy ferry.toml");
    site.migrate_and_author();
    let staging = site.inspect(&site.staging);
    let before = site.inspect(&site.production);
    let managed_before = production_file.map(|f| dump_tables(f, &MANAGED));

    // Content type ids differ; the page created in each environment has
    // the same id and the same tree path.
    let ct = "home.articlepage";
    assert_ne!(
        staging["content_types"][ct], before["content_types"][ct],
        "content type ids should differ: {staging:#} {before:#}"
    );
    let careers = page(&staging, "/home/careers/");
    let promo = page(&before, "/home/prod-promo/");
    assert_eq!(
        careers["id"], promo["id"],
        "the page created in each environment should get the same id"
    );
    let careers_id = careers["id"].as_i64().expect("an id").to_string();
    let home_id = page(&staging, "/home/").to_owned()["id"]
        .as_i64()
        .expect("an id")
        .to_string();
    let root_id = staging["root_id"].as_i64().expect("root id").to_string();
    assert_eq!(live(&before), ["Home", "Prod promo"]);

    site.ferry(&["check"]).expect(0);

    // The plan: Careers would take Prod promo's tree path (a unique
    // collision naming both rows); root and home differ on first contact.
    let plan = site
        .ferry(&["diff", "staging", "production", "--json"])
        .expect(0)
        .json();
    let conflicts: Vec<(String, String, String)> = changes(&plan)
        .iter()
        .filter(|c| c["action"] == "conflict")
        .map(|c| {
            (
                c["table"].as_str().unwrap_or_default().to_string(),
                c["key"]
                    .as_object()
                    .and_then(|k| k.values().next())
                    .map(J::to_string)
                    .unwrap_or_default(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected = [
        ("home_homepage", &home_id, "no-base"),
        ("wagtailcore_page", &root_id, "no-base"),
        ("wagtailcore_page", &home_id, "no-base"),
        ("wagtailcore_page", &careers_id, "unique-collision"),
    ];
    let mut got = conflicts.clone();
    got.sort();
    let mut want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(t, k, r)| (t.to_string(), k.to_string(), r.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{plan:#}");
    let collision = changes(&plan)
        .into_iter()
        .find(|c| c["reason"] == "unique-collision")
        .expect("the collision");
    let with = collision["collides_with"].as_str().unwrap_or_default();
    assert!(
        with.contains("path") && with.contains(&format!("wagtailcore_page:{} in production", promo["id"])),
        "{collision:#}"
    );
    let text = site.ferry(&["diff", "staging", "production"]).expect(0);
    assert!(text.stdout.contains("unique-collision"), "{}", text.stdout);

    // Undecided, promote refuses before writing anything.
    let refused = site.ferry(&["promote", "staging", "production", "--yes"]).expect(3);
    assert!(refused.all().contains("wagtailcore_page:"), "{}", refused.all());
    if let (Some(f), Some(b)) = (production_file, &managed_before) {
        assert_eq!(&dump_tables(f, &MANAGED), b, "a refused promotion wrote nothing");
    }

    // Decisions: root and home take staging's version (its home intro,
    // publication dates and child count); Careers stays in staging.
    let decided = site.promote(&[
        "--take",
        "source",
        "--id",
        &format!("wagtailcore_page:{root_id}"),
        "--id",
        &format!("wagtailcore_page:{home_id}"),
        "--id",
        &format!("home_homepage:{home_id}"),
    ]);
    let rest = site.promote(&["--skip", &format!("wagtailcore_page:{careers_id}")]);

    let after = site.inspect(&site.production);
    assert_eq!(
        live(&after),
        ["About the team", "Home", "Launch day", "News", "Pricing", "Prod promo"],
        "{after:#}"
    );
    assert_healthy(&after);
    site.assert_fixtree_clean(&site.production);
    // Production's own page is intact: same id, title, URL.
    let promo_after = page(&after, "/home/prod-promo/");
    assert_eq!(promo_after["id"], promo["id"]);
    assert_eq!(promo_after["title"], "Prod promo");
    assert_eq!(promo_after["status"], 200);
    assert_eq!(promo_after["revisions"], 2);
    // The promoted pages, with their revisions (About was published twice).
    assert_eq!(page(&after, "/home/about/")["revisions"], 2, "{after:#}");
    assert_eq!(page(&after, "/home/news/launch-day/")["url"], "/news/launch-day/");
    assert_eq!(page(&after, "/home/upcoming/")["live"], false);
    // Every staging revision but Careers' arrived, next to production's two.
    assert_eq!(
        after["revisions"].as_i64(),
        staging["revisions"].as_i64().map(|n| n - 1 + 2),
        "{after:#}"
    );
    assert!(after["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .all(|p| p["url_path"] != "/home/careers/"));

    // Nothing left to write but Careers: its collision, and (shown as
    // inserts, though they cannot go without their page) its article row
    // and its revision.
    let again = site
        .ferry(&["diff", "staging", "production", "--json"])
        .expect(0)
        .json();
    let careers_n: i64 = careers_id.parse().expect("an id");
    let mut left: Vec<(String, String)> = changes(&again)
        .iter()
        .filter(|c| c["action"] != "skip")
        .map(|c| {
            let row = &c["row"];
            let about = if c["table"] == "wagtailcore_revision" {
                row["object_str"].as_str().unwrap_or_default().to_string()
            } else {
                c["key"]
                    .as_object()
                    .and_then(|k| k.values().next())
                    .map(J::to_string)
                    .unwrap_or_default()
            };
            (c["table"].as_str().unwrap_or_default().to_string(), about)
        })
        .collect();
    left.sort();
    let n = careers_n.to_string();
    assert_eq!(
        left,
        [
            ("home_articlepage".to_string(), n.clone()),
            ("wagtailcore_page".to_string(), n),
            ("wagtailcore_revision".to_string(), "Careers".to_string()),
        ],
        "after the promotion: {again:#}"
    );

    // An editor opens a promoted page in production's admin: Wagtail
    // subscribes them to it (a row Ferry does not manage, referencing the
    // page). Reverting the promotion would break that reference: refused,
    // naming the table, and nothing is written.
    let subscribed = site.django(&site.production, &["open_in_admin", "/home/about/"]);
    assert_eq!(subscribed.trim(), "1", "{subscribed}");
    let managed_after = production_file.map(|f| dump_tables(f, &MANAGED));
    let blocked = site.ferry(&["revert", &rest, "--yes"]).expect(1);
    assert!(
        blocked.stderr.contains("wagtailcore_pagesubscription"),
        "the refusal names the referencing table: {}",
        blocked.all()
    );
    if let (Some(f), Some(b)) = (production_file, &managed_after) {
        assert_eq!(&dump_tables(f, &MANAGED), b, "a refused revert wrote nothing");
    }
    assert_eq!(live(&site.inspect(&site.production)), live(&after));
    site.django(
        &site.production,
        &[
            "shell",
            "-c",
            "from wagtail.models import PageSubscription; PageSubscription.objects.all().delete()",
        ],
    );

    // Revert, newest first: production is as it was.
    site.ferry(&["revert", &rest, "--yes"]).expect(0);
    site.ferry(&["revert", &decided, "--yes"]).expect(0);
    let reverted = site.inspect(&site.production);
    assert_eq!(live(&reverted), ["Home", "Prod promo"], "{reverted:#}");
    assert_healthy(&reverted);
    site.assert_fixtree_clean(&site.production);
    assert_eq!(page(&reverted, "/home/prod-promo/"), promo);
    assert_eq!(reverted["revisions"], before["revisions"]);
    if let (Some(f), Some(b)) = (production_file, &managed_before) {
        assert_eq!(
            &dump_tables(f, &MANAGED),
            b,
            "revert restores production's rows exactly"
        );
    }
}

#[test]
fn wagtail_site_on_sqlite() {
    let Some(python) = python("wagtail_site_on_sqlite") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = |name: &str| dir.path().join(name);
    let site = Site {
        python,
        staging: Env {
            url: format!("sqlite://{}", file("staging.db").display()),
            extra_apps: "",
        },
        production: Env {
            url: format!("sqlite://{}", file("production.db").display()),
            extra_apps: PRODUCTION_EXTRA_APPS,
        },
        dir,
    };
    let production = site.dir.path().join("production.db");
    promote_a_wagtail_site(&site, Some(&production));
}

/// Runs `sql` with `psql` on `url`.
fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A throw-away PostgreSQL database, dropped with the guard.
struct PgDb {
    server: String,
    name: String,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            let _ = writeln!(std::io::stderr(), "wagtail: could not drop {}: {e}", self.name);
        }
    }
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}")
}

#[test]
fn wagtail_site_on_postgres() {
    const TEST: &str = "wagtail_site_on_postgres";
    let server = match std::env::var("FERRY_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u.trim().to_string(),
        _ => return skip(TEST, "FERRY_TEST_POSTGRES_URL not set"),
    };
    if let Err(e) = psql(&server, "SELECT 1") {
        return skip(TEST, &format!("cannot reach FERRY_TEST_POSTGRES_URL: {}", e.trim()));
    }
    let Some(python) = python(TEST) else {
        return;
    };
    if let Err(e) = run_cmd(Command::new(&python).args(["-c", "import psycopg"])) {
        return skip(TEST, &format!("the venv has no psycopg: {e}"));
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!(
        "ferry_wagtail{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let create = |env: &str| {
        let name = format!("{prefix}_{env}");
        psql(&server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{TEST}: cannot create {name}: {e}"));
        PgDb {
            server: server.clone(),
            name,
        }
    };
    let (staging_db, production_db) = (create("staging"), create("production"));
    let site = Site {
        python,
        staging: Env {
            url: with_database(&server, &staging_db.name),
            extra_apps: "",
        },
        production: Env {
            url: with_database(&server, &production_db.name),
            extra_apps: PRODUCTION_EXTRA_APPS,
        },
        dir: tempfile::tempdir().expect("a temporary folder"),
    };
    promote_a_wagtail_site(&site, None);
}
