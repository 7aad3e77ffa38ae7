//! `ferry demo` and `ferry init [--demo] [--force]`, run as the real binary
//! in temporary folders.

use std::path::Path;
use std::process::Command;

use serde_json::Value as J;

/// What one run of the binary did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> J {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{}", self.stdout))
    }
}

/// Runs `ferry ARGS` in `dir`, with no Ferry variables from the caller's
/// environment.
fn ferry_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).current_dir(dir);
    for var in [
        "FERRY_CONFIG",
        "FERRY_USER",
        "FERRY_STAGING_URL",
        "FERRY_PREPROD_URL",
        "FERRY_PRODUCTION_URL",
        "CLICOLOR_FORCE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the ferry binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ferry(dir: &Path, args: &[&str]) -> Run {
    ferry_with(dir, args, &[])
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(
        run.code, code,
        "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout, run.stderr
    );
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readable folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sql(db: &Path, script: &str) {
    let conn = rusqlite::Connection::open(db).expect("open the SQLite file");
    conn.execute_batch(script).expect("the script runs");
}

#[test]
fn demo_tells_the_whole_story_and_cleans_up() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = ferry_with(cwd.path(), &["demo"], &[("TMPDIR", tmp.path().to_str().unwrap())]);
    assert_code(&run, 0);
    let out = &run.stdout;
    for step in 1..=8 {
        assert!(out.contains(&format!("{step}/8 ")), "step {step} missing:\n{out}");
    }
    for needle in [
        "$ ferry baseline staging production",
        "$ ferry diff staging production",
        "--id forms:4",
        "needed by forms:4.business_id",
        "left behind by `exclude`: businesses 1",
        "$ ferry promote staging production",
        "7 inserted, 1 updated, 1 deleted",
        "\"Confiserie Sprüngli 🍫\"  same bytes as in staging",
        "identical to staging's",
        "$ ferry log production",
        "$ ferry revert",
        "reverted in production by",
        "business 3 is \"Sprüngli\" again",
        "ferry init --demo",
    ] {
        assert!(out.contains(needle), "the demo does not say {needle:?}:\n{out}");
    }
    // Ids in the text are the real ones: the promotion the log lists is the one reverted.
    let promotion = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Done: promotion "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the promotion line names its id");
    assert!(out.contains(&format!("$ ferry revert {promotion} --yes")));
    // The baseline, promote and revert lines are word for word what the
    // commands say.
    assert!(
        out.contains("$ ferry baseline staging production --yes\n    staging -> production: recorded 22 equal row(s) as in sync (baseline "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Done: promotion {promotion} into production: 7 inserted, 1 updated, 1 deleted.\n    Undo it with: ferry revert {promotion}\n"
        )),
        "{out}"
    );
    let revert_line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("Done: {promotion} reverted in production by ")))
        .unwrap_or_else(|| panic!("no revert line:\n{out}"));
    assert!(
        revert_line.ends_with("(1 restored, 1 re-inserted, 7 removed)."),
        "{revert_line}"
    );
    assert!(!out.contains('\x1b'), "no colours on a pipe");
    assert!(!out.contains("\\u{"), "text is shown as it is, not escaped");
    // It wrote nothing where it ran, and removed its temporary folder.
    assert!(entries(cwd.path()).is_empty(), "{:?}", entries(cwd.path()));
    #[cfg(unix)]
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

#[test]
fn demo_json_is_one_summary_object() {
    let cwd = tempfile::tempdir().unwrap();
    let run = ferry(cwd.path(), &["demo", "--json"]);
    assert_code(&run, 0);
    let v = run.json();
    let promotion = v["promotion"].as_str().expect("promotion id");
    let revert = v["revert"].as_str().expect("revert id");
    assert_eq!(promotion.len(), 26, "{promotion}");
    assert_ne!(promotion, revert);
    assert_eq!(v["counts"], serde_json::json!({"insert": 7, "update": 1, "delete": 1}));
    assert_eq!(
        v["revert_counts"],
        serde_json::json!({"insert": 1, "update": 1, "delete": 7})
    );
    assert_eq!(v["pending_after_revert"], v["counts"]);
    assert_eq!(v["diff"]["excluded"]["businesses"], 1);
    assert_eq!(v["ok"], true);
    for (check, ok) in v["checks"].as_object().expect("checks") {
        assert_eq!(ok, true, "check {check} failed: {v}");
    }
    assert!(run.stderr.trim().is_empty(), "{}", run.stderr);
}

#[test]
fn demo_keep_leaves_a_working_folder_and_refuses_to_reuse_it() {
    let cwd = tempfile::tempdir().unwrap();
    let run = ferry(cwd.path(), &["demo", "--keep", "tour/files"]);
    assert_code(&run, 0);
    let dir = cwd.path().join("tour/files");
    assert_eq!(entries(&dir), ["ferry.toml", "production.db", "staging.db"]);
    assert!(run.stdout.contains("tour/files"), "{}", run.stdout);

    let config = dir.join("ferry.toml");
    let config = config.to_str().unwrap();
    assert_code(&ferry(cwd.path(), &["check", "--config", config]), 0);
    let log = ferry(cwd.path(), &["log", "production", "--json", "--config", config]);
    assert_code(&log, 0);
    let mut kinds: Vec<String> = log
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    // (Sorted: ids made within one millisecond do not order by time.)
    kinds.sort();
    assert_eq!(kinds, ["baseline", "promote", "revert"]);
    // After the revert the edits are pending again, and can be promoted for real.
    let promote = ferry(
        cwd.path(),
        &[
            "promote",
            "staging",
            "production",
            "--yes",
            "--json",
            "--config",
            config,
        ],
    );
    assert_code(&promote, 0);
    let promoted = promote.json();
    assert!(
        promoted["promotion"].is_string(),
        "the tour's production takes no reviews: {promoted}"
    );
    assert_eq!(promoted["review"], J::Null, "{promoted}");
    assert_eq!(
        promoted["counts"],
        serde_json::json!({"insert": 7, "update": 1, "delete": 1})
    );

    let before = std::fs::read(dir.join("production.db")).unwrap();
    let again = ferry(cwd.path(), &["demo", "--keep", "tour/files"]);
    assert_code(&again, 2);
    assert!(again.stderr.contains("already exist"), "{}", again.stderr);
    assert_eq!(std::fs::read(dir.join("production.db")).unwrap(), before);
}

/// The `ferry.toml` of `ferry init --demo` and the one `ferry demo --keep`
/// leaves hold the same text but for one line: production takes reviews in
/// the first, and the tour promotes directly.
#[test]
fn the_tour_config_is_the_init_config_without_reviews() {
    let cwd = tempfile::tempdir().unwrap();
    assert_code(
        &ferry(cwd.path(), &["init", "--demo", "--config", "init/ferry.toml"]),
        0,
    );
    assert_code(&ferry(cwd.path(), &["demo", "--keep", "tour"]), 0);
    let read = |dir: &str| {
        let path = cwd.path().join(dir).join("ferry.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = ferry_core::config::parse(&text, &path).expect("the demo config parses");
        (text, config)
    };
    let (init, init_config) = read("init");
    let (tour, tour_config) = read("tour");
    assert!(
        init_config.environments["production"].review,
        "init --demo: production takes reviews"
    );
    assert!(
        !tour_config.environments["production"].review,
        "the tour promotes directly"
    );
    assert!(!init_config.environments["staging"].review && !tour_config.environments["staging"].review);
    assert!(init_config.access.is_none(), "the demo is single-user: no [access]");
    assert!(init.contains("\n# [access]\n"), "a commented [access] example is shown");
    let differing: Vec<(&str, &str)> = init.lines().zip(tour.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(init.lines().count(), tour.lines().count());
    assert_eq!(differing.len(), 1, "{differing:?}");
    assert_eq!(differing[0].0, "review = true");
    assert!(differing[0].1.starts_with("# review = true"), "{differing:?}");
}

const STARTER_TABLE: &str = "CREATE TABLE businesses (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";

#[test]
fn init_writes_a_starter_that_parses_and_checks() {
    let cwd = tempfile::tempdir().unwrap();
    let run = ferry(cwd.path(), &["init"]);
    assert_code(&run, 0);
    assert_eq!(entries(cwd.path()), ["ferry.toml"]);
    let path = cwd.path().join("ferry.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = ferry_core::config::parse(&text, &path).expect("the starter parses");
    assert_eq!(config.pipeline, ["staging", "preprod", "production"]);
    assert!(text.lines().filter(|l| l.starts_with('#')).count() > 20, "commented");
    assert!(run.stdout.contains("ferry check"), "{}", run.stdout);

    // Without the URL variables, check names them (a config problem, not a parse error).
    let check = ferry(cwd.path(), &["check"]);
    assert_code(&check, 2);
    let said = format!("{}{}", check.stdout, check.stderr);
    for var in ["FERRY_STAGING_URL", "FERRY_PREPROD_URL", "FERRY_PRODUCTION_URL"] {
        assert!(said.contains(var), "check does not name {var}:\n{said}");
    }

    // With them pointing at databases that have the example table, check passes.
    let mut envs = Vec::new();
    for env in ["staging", "preprod", "production"] {
        let db = cwd.path().join(format!("{env}.db"));
        sql(&db, STARTER_TABLE);
        envs.push((
            format!("FERRY_{}_URL", env.to_uppercase()),
            format!("sqlite://{}", db.display()),
        ));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_code(&ferry_with(cwd.path(), &["check"], &envs), 0);
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let cwd = tempfile::tempdir().unwrap();
    let path = cwd.path().join("ferry.toml");
    std::fs::write(&path, "# mine\n").unwrap();
    let run = ferry(cwd.path(), &["init"]);
    assert_code(&run, 2);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    let json = ferry(cwd.path(), &["init", "--json"]);
    assert_code(&json, 2);
    assert_eq!(json.json()["error"]["exit"], 2);

    assert_code(&ferry(cwd.path(), &["init", "--force"]), 0);
    assert!(std::fs::read_to_string(&path).unwrap().contains("pipeline = "));
}

#[test]
fn init_demo_refuses_any_existing_file_and_writes_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("staging.db"), b"not mine to lose").unwrap();
    let run = ferry(cwd.path(), &["init", "--demo"]);
    assert_code(&run, 2);
    assert!(run.stderr.contains("staging.db"), "{}", run.stderr);
    assert_eq!(entries(cwd.path()), ["staging.db"]);
    assert_eq!(
        std::fs::read(cwd.path().join("staging.db")).unwrap(),
        b"not mine to lose"
    );

    let forced = ferry(cwd.path(), &["init", "--demo", "--force"]);
    assert_code(&forced, 0);
    assert_eq!(entries(cwd.path()), ["ferry.toml", "production.db", "staging.db"]);
    assert_code(&ferry(cwd.path(), &["diff", "staging", "production"]), 0);
}

#[test]
fn init_demo_leaves_a_new_business_waiting_and_shows_an_edit() {
    let cwd = tempfile::tempdir().unwrap();
    let run = ferry(cwd.path(), &["init", "--demo"]);
    assert_code(&run, 0);
    for next in [
        "ferry diff staging production",
        "ferry promote staging production",
        "ferry review approve ID",
        "ferry log production",
        "ferry revert",
        "ferry user add NAME && ferry serve",
    ] {
        assert!(
            run.stdout.contains(next),
            "init --demo does not suggest {next:?}:\n{}",
            run.stdout
        );
    }
    let text = std::fs::read_to_string(cwd.path().join("ferry.toml")).unwrap();
    ferry_core::config::parse(&text, &cwd.path().join("ferry.toml")).expect("the demo config parses");
    assert_code(&ferry(cwd.path(), &["check"]), 0);

    assert!(
        run.stdout
            .contains("In staging only, waiting to be promoted: a new business (\"Manteigaria Chiado 🥧\""),
        "{}",
        run.stdout
    );

    // Everything else is in sync; staging alone holds the new business,
    // its form and the form's fields.
    let diff = ferry(cwd.path(), &["diff", "staging", "production", "--json"]);
    assert_code(&diff, 0);
    let v = diff.json();
    assert_eq!(waiting(&v), PENDING, "{v}");
    assert_eq!(v["no_base"], 0);

    sql(
        &cwd.path().join("staging.db"),
        "UPDATE businesses SET name = 'Confiserie Sprüngli 🍫', view_count = view_count + 1 WHERE id = 3",
    );
    let diff = ferry(cwd.path(), &["diff", "staging", "production", "--json"]);
    assert_code(&diff, 0);
    let v = diff.json();
    let changes: Vec<&J> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "update")
        .collect();
    assert_eq!(waiting(&v).len(), PENDING.len() + 1, "{v}");
    assert_eq!(changes.len(), 1, "{v}");
    assert_eq!(changes[0]["table"], "businesses");
    assert_eq!(changes[0]["key"]["id"], 3);
    assert_eq!(changes[0]["reason"], J::Null, "a baselined row is not first contact");
    let fields: Vec<&str> = changes[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["column"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name"], "view_count is ignored");
    assert_eq!(changes[0]["fields"][0]["source"], "Confiserie Sprüngli 🍫");
}

#[test]
fn init_demo_writes_next_to_the_given_config() {
    let cwd = tempfile::tempdir().unwrap();
    let run = ferry(
        cwd.path(),
        &["init", "--demo", "--json", "--config", "envs/sample.toml"],
    );
    assert_code(&run, 0);
    let v = run.json();
    assert_eq!(v["demo"], true);
    assert!(v["baseline"].is_string(), "{v}");
    let next: Vec<&str> = v["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for n in &next {
        if n.starts_with("ferry") {
            assert!(n.contains("--config envs/sample.toml"), "{n}");
        }
    }
    assert!(
        next.contains(&"ferry --config envs/sample.toml review approve ID"),
        "{next:?}"
    );
    assert_eq!(
        entries(&cwd.path().join("envs")),
        ["production.db", "sample.toml", "staging.db"]
    );
    assert_eq!(entries(cwd.path()), ["envs"]);
    let diff = ferry(
        cwd.path(),
        &[
            "diff",
            "staging",
            "production",
            "--json",
            "--config",
            "envs/sample.toml",
        ],
    );
    assert_code(&diff, 0);
    assert_eq!(waiting(&diff.json()), PENDING);
}

/// What `ferry init --demo` leaves in staging only, as `(table, id,
/// action)`.
const PENDING: [(&str, i64, &str); 5] = [
    ("businesses", 7, "insert"),
    ("forms", 4, "insert"),
    ("form_fields", 8, "insert"),
    ("form_fields", 9, "insert"),
    ("form_fields", 10, "insert"),
];

/// The changes of a `diff --json`, as `(table, id, action)`, sorted as
/// [`PENDING`] is (tables in promotion order, then ids).
fn waiting(diff: &J) -> Vec<(&str, i64, &str)> {
    let order = ["cities", "partners", "businesses", "forms", "form_fields"];
    let mut found: Vec<(&str, i64, &str)> = diff["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes array: {diff}"))
        .iter()
        .map(|c| {
            (
                c["table"].as_str().expect("a table name"),
                c["key"]["id"].as_i64().expect("an integer id"),
                c["action"].as_str().expect("an action"),
            )
        })
        .collect();
    found.sort_by_key(|(t, id, _)| (order.iter().position(|o| o == t), *id));
    found
}

/// The demo's production as Ferry's records leave it, without the reviews
/// table: the managed tables, their schema, the journal and the sync base
/// (see [`crate::common::dump`]).
fn production_without_reviews(dir: &Path) -> String {
    let dump = crate::common::dump(&dir.join("production.db"));
    let mut out = String::new();
    let mut skipping = false;
    for line in dump.lines() {
        if let Some(table) = line.strip_prefix("table ") {
            skipping = table.starts_with("_ferry_reviews ");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The managed tables of the demo's production, with their schema: every
/// cell as `typeof:hex`.
fn production_managed(dir: &Path) -> String {
    let dump = crate::common::dump(&dir.join("production.db"));
    let app: String = dump
        .split_inclusive('\n')
        .take_while(|l| !l.starts_with("table _ferry"))
        .collect();
    assert!(app.contains("table businesses ("), "{dump}");
    app
}

/// Issue 17's walk-through on the command line: in the demo `init --demo`
/// writes, a promotion into production is a review that writes nothing
/// there, a second user's approval applies it, and a revert restores
/// production byte for byte.
#[test]
fn init_demo_promotion_is_a_review_approved_by_another_user_then_reverted() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path();
    assert_code(&ferry(dir, &["init", "--demo"]), 0);
    sql(
        &dir.join("staging.db"),
        "UPDATE businesses SET name = 'Confiserie Sprüngli 🍫' WHERE id = 3;
         DELETE FROM form_fields WHERE id = 5;",
    );
    let managed_before = production_managed(dir);
    let records_before = production_without_reviews(dir);

    let promote = ferry(
        dir,
        &["promote", "staging", "production", "--yes", "--json", "--as", "alice"],
    );
    assert_code(&promote, 0);
    let submitted = promote.json();
    let review = submitted["review"]
        .as_str()
        .unwrap_or_else(|| panic!("promote gives a review id: {submitted}"))
        .to_string();
    assert_eq!(submitted["promotion"], J::Null, "{submitted}");
    assert_eq!(
        submitted["counts"],
        serde_json::json!({"insert": 0, "update": 0, "delete": 0})
    );
    assert_eq!(
        production_managed(dir),
        managed_before,
        "the review wrote into production's tables"
    );
    assert_eq!(
        production_without_reviews(dir),
        records_before,
        "the review wrote into production's journal or sync base"
    );
    let reviews = ferry(dir, &["reviews", "production", "--json"]);
    assert_code(&reviews, 0);
    let listed = reviews.json();
    assert_eq!(listed[0]["id"], review.as_str(), "{listed}");
    assert_eq!(listed[0]["status"], "open");
    assert_eq!(listed[0]["by"], "alice");

    let approve = ferry(dir, &["review", "approve", &review, "--yes", "--json", "--as", "bob"]);
    assert_code(&approve, 0);
    let approved = approve.json();
    let promotion = approved["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("the approval applies a promotion: {approved}"))
        .to_string();
    assert_eq!(
        approved["counts"],
        serde_json::json!({"insert": 5, "update": 1, "delete": 1})
    );
    let applied = production_managed(dir);
    assert_ne!(applied, managed_before);
    let names = crate::common::query(&dir.join("production.db"), "SELECT name FROM businesses WHERE id = 3");
    assert_eq!(names, [["Confiserie Sprüngli 🍫"]]);
    let fields = crate::common::query(&dir.join("production.db"), "SELECT id FROM form_fields ORDER BY id");
    let fields: Vec<&str> = fields.iter().map(|r| r[0].as_str()).collect();
    assert!(
        fields.contains(&"8") && fields.contains(&"10") && !fields.contains(&"5"),
        "{fields:?}"
    );
    let new = crate::common::query(&dir.join("production.db"), "SELECT name FROM businesses WHERE id = 7");
    assert_eq!(new, [["Manteigaria Chiado 🥧"]], "the waiting business came along");
    let decided = ferry(dir, &["reviews", "production", "--all", "--json"]);
    assert_code(&decided, 0);
    let decided = decided.json();
    assert_eq!(decided[0]["status"], "approved", "{decided}");
    assert_eq!(decided[0]["decided_by"], "bob", "{decided}");
    let diff = ferry(dir, &["diff", "staging", "production", "--json"]);
    assert_code(&diff, 0);
    assert_eq!(diff.json()["changes"].as_array().unwrap().len(), 0, "{}", diff.stdout);

    let revert = ferry(dir, &["revert", &promotion, "--yes", "--json", "--as", "bob"]);
    assert_code(&revert, 0);
    assert_eq!(
        production_managed(dir),
        managed_before,
        "the revert did not restore production byte for byte"
    );
}

/// The commented `[access]` example at the end of the demo's ferry.toml,
/// switched on, does what its comment says: alice promotes, bob approves,
/// and nobody approves a review they submitted.
#[test]
fn init_demo_access_example_works_when_uncommented() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path();
    assert_code(&ferry(dir, &["init", "--demo"]), 0);
    let path = dir.join("ferry.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find("\n# [access]\n")
        .expect("the demo shows a commented [access] example")
        + 1;
    let example: String = text[at..]
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .unwrap_or_else(|| panic!("not a commented line: {l:?}"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, format!("{}{example}", &text[..at])).unwrap();
    assert_code(&ferry(dir, &["check"]), 0);

    sql(
        &dir.join("staging.db"),
        "UPDATE businesses SET name = 'Sprüngli AG' WHERE id = 3",
    );
    let submit = |user: &str| {
        let run = ferry(
            dir,
            &["promote", "staging", "production", "--yes", "--json", "--as", user],
        );
        assert_code(&run, 0);
        run.json()["review"].as_str().expect("a review id").to_string()
    };
    let approve = |id: &str, user: &str| ferry(dir, &["review", "approve", id, "--yes", "--as", user]);

    let by_alice = submit("alice");
    let refused = approve(&by_alice, "alice");
    assert_code(&refused, 4);
    assert!(refused.stderr.contains("lead"), "alice is no lead: {}", refused.stderr);
    assert_code(&approve(&by_alice, "bob"), 0);

    sql(
        &dir.join("staging.db"),
        "UPDATE businesses SET name = 'Sprüngli AG 🍫' WHERE id = 3",
    );
    let by_bob = submit("bob");
    let own = approve(&by_bob, "bob");
    assert_code(&own, 4);
    assert!(own.stderr.contains("submitted this review"), "{}", own.stderr);
}
