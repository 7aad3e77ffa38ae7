//! Issue 4 from the command line: three-way sync (target-newer rows,
//! conflicts, field merges, `--take`), base values in `diff`, natural keys,
//! self-contained plans and first contact, on real SQLite files.
//!
//! "Nothing written" is checked with full dumps of the target (every
//! application table, the journal, the promotions, the reviews and the sync
//! base; see `common::dump`).

use serde_json::Value as J;

use crate::common::*;

/// The standard fixture after a first full promotion: every promotable row
/// of staging is in production and in sync.
fn synced() -> Fixture {
    let f = Fixture::new();
    f.promote(&[]);
    // The rows that were equal on first contact are recorded as in sync too.
    f.run_yes(&["baseline", "staging", "production"]).expect(0);
    let v = f.diff_json(&[]);
    assert!(
        changes(&v)
            .iter()
            .all(|c| c["action"] == "skip" && c["reason"] == "target-only"),
        "after a full promotion only production's own rows remain: {v:#}"
    );
    f
}

fn name_of(f: &Fixture, env: &str, table: &str, id: i64) -> String {
    f.scalar(env, &format!("SELECT name FROM {table} WHERE id = {id}"))
}

/// The `(column, source, target, base)` of every field of an entry.
fn fields(e: &J) -> Vec<(String, J, J, J)> {
    e["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {e}"))
        .iter()
        .map(|f| {
            (
                f["column"].as_str().unwrap_or_default().to_string(),
                f["source"].clone(),
                f["target"].clone(),
                f["base"].clone(),
            )
        })
        .collect()
}

/// Every string in a JSON document equal to `from` becomes `to`; returns how
/// many were replaced.
fn replace_strings(v: &mut J, from: &str, to: &str) -> usize {
    match v {
        J::String(s) if s == from => {
            *s = to.to_string();
            1
        }
        J::Array(a) => a.iter_mut().map(|x| replace_strings(x, from, to)).sum(),
        J::Object(o) => o.values_mut().map(|x| replace_strings(x, from, to)).sum(),
        _ => 0,
    }
}

// ---- target-newer -----------------------------------------------------

#[test]
fn a_target_newer_row_is_shown_and_never_overwritten() {
    let f = synced();
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Fixed in production ✍️' WHERE id = 2;
         DELETE FROM form_fields WHERE id = 3;",
    );
    let v = f.diff_json(&[]);
    let b2 = entry(&v, "businesses", 2).unwrap_or_else(|| panic!("businesses:2 not shown: {v:#}"));
    assert_eq!(b2["action"], "skip", "{b2}");
    assert_eq!(b2["reason"], "target-newer", "{b2}");
    assert_eq!(
        fields(&b2),
        [(
            "name".to_string(),
            J::from("Bäckerei 🥨 👩‍👩‍👧 日本語"),
            J::from("Fixed in production ✍️"),
            J::Null
        )],
        "{b2}"
    );
    // A row deleted in production only is target-newer too: never re-inserted.
    let ff3 = entry(&v, "form_fields", 3).unwrap_or_else(|| panic!("form_fields:3 not shown: {v:#}"));
    assert_eq!(
        (&ff3["action"], &ff3["reason"]),
        (&J::from("skip"), &J::from("target-newer"))
    );
    assert_eq!(v["counts"]["skip"], 3, "two target-newer rows and city 99: {v:#}");

    let out = f.run(&["diff", "staging", "production"]).expect(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("id=2") && l.contains("skip"))
        .unwrap_or_else(|| panic!("no skip line for businesses:2:\n{}", out.stdout));
    assert!(line.contains("target-newer"), "{line}");
    assert!(out.stdout.contains("Fixed in production ✍️"), "{}", out.stdout);

    // Nothing overwrites it: not a plain promotion, not --force, not naming
    // the row, not a saved plan.
    let before = f.dump("production");
    f.run_yes(&["promote", "staging", "production"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--force"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--id", "businesses:2", "--force"])
        .expect(0);
    f.run_yes(&["promote", "staging", "production", "--table", "form_fields"])
        .expect(0);
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--plan", "plan.json", "--force"])
        .expect(0);
    assert_eq!(f.dump("production"), before);
    assert_eq!(name_of(&f, "production", "businesses", 2), "Fixed in production ✍️");

    // A later staging edit of another field of the row merges around it.
    f.exec("staging", "UPDATE businesses SET city_id = 1 WHERE id = 2;");
    let v = f.diff_json(&["--table", "businesses"]);
    let b2 = entry(&v, "businesses", 2).unwrap();
    assert_eq!(
        (&b2["action"], &b2["reason"]),
        (&J::from("update"), &J::from("merged")),
        "{b2}"
    );
    f.promote(&["--table", "businesses"]);
    assert_eq!(
        f.query("production", "SELECT name, city_id FROM businesses WHERE id = 2"),
        [["Fixed in production ✍️", "1"]]
    );
}

#[test]
fn take_source_with_id_is_the_only_way_to_overwrite_a_target_newer_row() {
    let f = synced();
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Production edit' WHERE id = 2;",
    );
    // --take needs --id.
    let before = f.dump("production");
    let out = f
        .run_yes(&["promote", "staging", "production", "--take", "source"])
        .expect(2);
    assert!(out.stderr.contains("--id"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);

    // Another row named: businesses:2 stays as production has it.
    f.run_yes(&[
        "promote",
        "staging",
        "production",
        "--take",
        "source",
        "--id",
        "businesses:1",
    ])
    .expect(0);
    assert_eq!(name_of(&f, "production", "businesses", 2), "Production edit");

    let v = f
        .run_yes(&[
            "promote",
            "staging",
            "production",
            "--take",
            "source",
            "--id",
            "businesses:2",
            "--json",
        ])
        .expect(0)
        .json();
    assert!(v["promotion"].is_string(), "{v:#}");
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(name_of(&f, "production", "businesses", 2), "Bäckerei 🥨 👩‍👩‍👧 日本語");
    // In sync again.
    let v = f.diff_json(&[]);
    assert!(entry(&v, "businesses", 2).is_none(), "{v:#}");
}

// ---- conflicts ----------------------------------------------------------

#[test]
fn the_same_field_changed_on_both_sides_blocks_with_nothing_written_then_force_applies_the_source() {
    let f = synced();
    f.exec(
        "staging",
        "UPDATE businesses SET name = 'Staging name' WHERE id = 2;
         UPDATE cities SET name = 'Lyon (staging)' WHERE id = 1;",
    );
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Production name' WHERE id = 2;",
    );
    let v = f.diff_json(&[]);
    let b2 = entry(&v, "businesses", 2).unwrap();
    assert_eq!(
        (&b2["action"], &b2["reason"]),
        (&J::from("conflict"), &J::from("both-changed")),
        "{b2}"
    );
    assert_eq!(v["counts"]["conflict"], 1, "{v:#}");
    assert_eq!(entry(&v, "cities", 1).unwrap()["action"], "update", "{v:#}");

    let before = f.dump("production");
    let out = f.run_yes(&["promote", "staging", "production"]).expect(3);
    for want in ["businesses:2", "name", "--force", "nothing was written"] {
        assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
    }
    // The same with --json: an error object, exit 3.
    let v = f
        .run_yes(&["promote", "staging", "production", "--json"])
        .expect(3)
        .json();
    assert_eq!(v["error"]["code"], "blocked", "{v:#}");
    assert_eq!(v["error"]["exit"], 3, "{v:#}");
    // A saved plan with the conflict is blocked as well.
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--plan", "plan.json"])
        .expect(3);
    // Nothing at all was written, not even the unrelated city.
    assert_eq!(f.dump("production"), before);
    assert_eq!(name_of(&f, "production", "cities", 1), "Lyon");

    // Leaving the conflicting row out of the selection works.
    f.promote(&["--table", "cities"]);
    assert_eq!(name_of(&f, "production", "cities", 1), "Lyon (staging)");
    assert_eq!(name_of(&f, "production", "businesses", 2), "Production name");

    // --force lets staging win.
    let id = f.promote(&["--force"]);
    assert_eq!(name_of(&f, "production", "businesses", 2), "Staging name");
    let shown = f.run(&["show", &id, "--json"]).expect(0).json();
    assert!(
        shown["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table"] == "businesses" && r["key"]["id"] == 2 && r["before"]["name"] == "Production name"),
        "the journal keeps production's version: {shown:#}"
    );
    let v = f.diff_json(&[]);
    assert!(entry(&v, "businesses", 2).is_none(), "{v:#}");
}

#[test]
fn disjoint_edits_on_both_sides_are_merged() {
    let f = synced();
    f.exec(
        "staging",
        "UPDATE businesses SET name = 'Renamed in staging' WHERE id = 2;",
    );
    f.exec(
        "production",
        "UPDATE businesses SET city_id = 1, view_count = 4242 WHERE id = 2;",
    );
    let v = f.diff_json(&[]);
    let b2 = entry(&v, "businesses", 2).unwrap();
    assert_eq!(
        (&b2["action"], &b2["reason"]),
        (&J::from("update"), &J::from("merged")),
        "{b2}"
    );
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("id=2") && l.contains("update") && l.contains("merged")),
        "{}",
        out.stdout
    );
    let v = f
        .run_yes(&["promote", "staging", "production", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(
        f.query(
            "production",
            "SELECT name, city_id, view_count FROM businesses WHERE id = 2"
        ),
        [["Renamed in staging", "1", "4242"]],
        "both edits are there, and the environment-local column is production's"
    );
    // Production now holds more than staging: the row is target-newer.
    let v = f.diff_json(&[]);
    assert_eq!(entry(&v, "businesses", 2).unwrap()["reason"], "target-newer", "{v:#}");
}

#[test]
fn take_target_keeps_the_target_row_and_a_later_plan_shows_it_target_newer() {
    let f = synced();
    f.exec("staging", "UPDATE businesses SET name = 'Staging name' WHERE id = 2;");
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Production name' WHERE id = 2;",
    );
    f.run_yes(&["promote", "staging", "production"]).expect(3);
    let out = f
        .run_yes(&[
            "promote",
            "staging",
            "production",
            "--take",
            "target",
            "--id",
            "businesses:2",
        ])
        .expect(0);
    assert!(out.stdout.contains("kept-target"), "{}", out.stdout);
    assert_eq!(name_of(&f, "production", "businesses", 2), "Production name");
    let v = f.diff_json(&[]);
    let b2 = entry(&v, "businesses", 2).unwrap();
    assert_eq!(
        (&b2["action"], &b2["reason"]),
        (&J::from("skip"), &J::from("target-newer")),
        "{b2}"
    );
    // No longer blocking, and still never overwritten.
    f.run_yes(&["promote", "staging", "production", "--force"]).expect(0);
    assert_eq!(name_of(&f, "production", "businesses", 2), "Production name");
}

#[test]
fn conflicts_show_base_source_and_target_values_in_diff_and_json() {
    let f = Fixture::new();
    // Cities 1 and 3 are equal on both sides: baselined, their base values
    // are not kept. Business 1 is then promoted: its base is in the journal.
    f.run_yes(&["baseline", "staging", "production"]).expect(0);
    f.promote(&[]);
    f.exec(
        "staging",
        "UPDATE cities SET name = 'Lyon S' WHERE id = 1;
         UPDATE businesses SET name = 'Café S 🅂' WHERE id = 1;",
    );
    f.exec(
        "production",
        "UPDATE cities SET name = 'Lyon P' WHERE id = 1;
         UPDATE businesses SET name = 'Café P 🄿' WHERE id = 1;",
    );
    let v = f.diff_json(&[]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!(b1["action"], "conflict", "{b1}");
    assert_eq!(b1["base"], "kept", "{b1}");
    assert_eq!(
        fields(&b1),
        [(
            "name".to_string(),
            J::from("Café S 🅂"),
            J::from("Café P 🄿"),
            J::from("Café Olé ☕")
        )],
        "{b1}"
    );
    let c1 = entry(&v, "cities", 1).unwrap();
    assert_eq!(c1["action"], "conflict", "{c1}");
    assert_eq!(c1["base"], "not kept", "{c1}");
    assert_eq!(
        fields(&c1),
        [("name".to_string(), J::from("Lyon S"), J::from("Lyon P"), J::Null)],
        "{c1}"
    );

    let out = f.run(&["diff", "staging", "production"]).expect(0);
    let text = &out.stdout;
    let line = text
        .lines()
        .find(|l| l.contains("Café S 🅂"))
        .unwrap_or_else(|| panic!("{text}"));
    for want in [
        "name",
        "base \"Café Olé ☕\"",
        "target \"Café P 🄿\"",
        "source \"Café S 🅂\"",
    ] {
        assert!(line.contains(want), "`{want}` missing from `{line}`");
    }
    let line = text
        .lines()
        .find(|l| l.contains("Lyon S"))
        .unwrap_or_else(|| panic!("{text}"));
    for want in ["base not kept", "target \"Lyon P\"", "source \"Lyon S\""] {
        assert!(line.contains(want), "`{want}` missing from `{line}`");
    }
    assert!(text.contains("2 conflicts"), "{text}");
}

// ---- natural keys -------------------------------------------------------

const NK_SCHEMA: &str = "
CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    color TEXT
);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    label_id INTEGER REFERENCES labels(id)
);
";

/// Labels created separately in each environment: the same names under
/// different ids, one label only in staging, one only in production.
const NK_STAGING: &str = "
INSERT INTO labels VALUES (1, 'news', 'red'), (2, 'sports', 'blue'), (3, 'staging only 🧪', 'green');
INSERT INTO items VALUES (1, 'First', 1), (2, 'Second', 2), (3, 'Third', 3), (4, 'Unlabelled', NULL);
";
const NK_PRODUCTION: &str = "
INSERT INTO labels VALUES (10, 'sports', 'blue'), (11, 'news', 'red'), (20, 'prod only', 'black');
INSERT INTO items VALUES (1, 'First', 11);
";
const NK_CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.labels]
key = ["id"]
natural_key = ["name"]

[tables.items]
key = ["id"]
references = { label_id = "labels" }
"#;

fn natural() -> Fixture {
    let f = Fixture::with(NK_SCHEMA, NK_STAGING, NK_SCHEMA, NK_PRODUCTION);
    f.write_config(NK_CONFIG);
    f
}

#[test]
fn natural_keys_rewrite_references_and_new_rows_get_the_target_id() {
    let f = natural();
    let v = f.diff_json(&[]);
    assert_eq!(
        summary(&v),
        [
            s("labels", 1, "skip", Some("matched")),
            s("labels", 2, "skip", Some("matched")),
            s("labels", 3, "insert", None),
            s("labels", 20, "skip", Some("target-only")),
            s("items", 2, "insert", None),
            s("items", 3, "insert", None),
            s("items", 4, "insert", None),
        ],
        "items:1 points at `news` on both sides: equal once rewritten: {v:#}"
    );
    assert_eq!(entry(&v, "items", 2).unwrap()["row"]["label_id"], 10, "{v:#}");
    // Rows matched and equal need nothing: one line counts them, and
    // --verbose (-v) lists them.
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(!out.stdout.contains("matched with labels:11"), "{}", out.stdout);
    assert!(!out.stdout.contains("matched by natural key:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("2 rows matched by natural key and equal"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--verbose lists them"), "{}", out.stdout);
    let out = f.run(&["promote", "staging", "production", "--dry-run"]).expect(0);
    assert!(!out.stdout.contains("matched with labels:11"), "{}", out.stdout);
    for verbose in ["--verbose", "-v"] {
        let out = f.run(&["diff", "staging", "production", verbose]).expect(0);
        assert!(
            out.stdout.contains("matched with labels:11 in production"),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains("--verbose lists them"), "{}", out.stdout);
    }
    let out = f.run(&["plan", "staging", "production", "-v"]).expect(0);
    assert!(out.stdout.contains("matched with labels:11"), "{}", out.stdout);

    // One item whose label exists only in staging: the label comes along.
    let v = f.diff_json(&["--id", "items:3"]);
    assert_eq!(
        summary(&v),
        [s("labels", 3, "insert", None), s("items", 3, "insert", None)],
        "{v:#}"
    );
    assert_eq!(
        entry(&v, "labels", 3).unwrap()["pulled_by"],
        "items:3.label_id",
        "{v:#}"
    );
    f.promote(&["--id", "items:3"]);
    // The target assigns the new label's id; the item points at it.
    assert_eq!(
        f.query("production", "SELECT id, name, color FROM labels ORDER BY id"),
        [
            ["10", "sports", "blue"],
            ["11", "news", "red"],
            ["20", "prod only", "black"],
            ["21", "staging only 🧪", "green"],
        ]
    );
    assert_eq!(f.scalar("production", "SELECT label_id FROM items WHERE id = 3"), "21");

    // Everything else: references point at the target's ids.
    f.promote(&[]);
    assert_eq!(
        f.query("production", "SELECT id, title, label_id FROM items ORDER BY id"),
        [
            ["1", "First", "11"],
            ["2", "Second", "10"],
            ["3", "Third", "21"],
            ["4", "Unlabelled", "NULL"],
        ]
    );
    assert_eq!(f.ids("production", "labels"), [10, 11, 20, 21]);
    let v = f.diff_json(&[]);
    assert_eq!(summary(&v), [s("labels", 20, "skip", Some("target-only"))], "{v:#}");

    // Renaming the natural key later is an update of the matched row.
    f.exec(
        "staging",
        "UPDATE labels SET name = 'headlines' WHERE id = 1;
         UPDATE items SET label_id = 1 WHERE id = 2;",
    );
    let v = f.diff_json(&[]);
    assert_eq!(
        summary(&v),
        [
            s("labels", 1, "update", None),
            s("labels", 20, "skip", Some("target-only")),
            s("items", 2, "update", None),
        ],
        "{v:#}"
    );
    let v = f
        .run_yes(&["promote", "staging", "production", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        (&v["counts"]["insert"], &v["counts"]["update"], &v["counts"]["delete"]),
        (&J::from(0), &J::from(2), &J::from(0)),
        "{v:#}"
    );
    assert_eq!(
        f.query("production", "SELECT id, name FROM labels ORDER BY id"),
        [
            ["10", "sports"],
            ["11", "headlines"],
            ["20", "prod only"],
            ["21", "staging only 🧪"],
        ]
    );
    assert_eq!(f.scalar("production", "SELECT label_id FROM items WHERE id = 2"), "11");
}

#[test]
fn duplicated_natural_keys_are_an_error_naming_the_rows() {
    let f = natural();
    f.exec("staging", "INSERT INTO labels VALUES (5, 'sports', 'teal');");
    let before = f.dump("production");
    for args in [
        &["diff", "staging", "production"][..],
        &["promote", "staging", "production", "--yes"][..],
    ] {
        let out = f.run(args);
        assert_eq!(out.code, 1, "{out:?}");
        for want in ["staging", "labels:2", "labels:5", "sports", "natural key"] {
            assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
        }
    }
    assert_eq!(f.dump("production"), before);

    f.exec("staging", "DELETE FROM labels WHERE id = 5;");
    f.exec("production", "INSERT INTO labels VALUES (30, 'news', 'pink');");
    let out = f.run(&["diff", "staging", "production"]);
    assert_eq!(out.code, 1, "{out:?}");
    for want in ["production", "labels:11", "labels:30", "news"] {
        assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
    }
}

// ---- self-contained plans -----------------------------------------------

#[test]
fn a_saved_plan_is_refused_with_nothing_written_after_the_target_moved() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    // Production gets a row where the plan inserts one.
    f.exec(
        "production",
        "INSERT INTO cities VALUES (2, 'Zurich, made in production');",
    );
    let before = f.dump("production");
    // (`--force` decides the fixture's first-contact row, business 1.)
    let out = f
        .run_yes(&["promote", "staging", "production", "--plan", "plan.json", "--force"])
        .expect(3);
    assert!(out.stderr.contains("cities:2"), "{}", out.stderr);
    assert!(out.stderr.contains("changed since the plan"), "{}", out.stderr);
    // --force does not override a stale plan.
    f.run_yes(&["promote", "staging", "production", "--plan", "plan.json", "--force"])
        .expect(3);
    assert_eq!(f.dump("production"), before);
    let audit = f.run(&["audit", "production", "--json"]).expect(0).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "promote" && a["result"] == "blocked"),
        "the refusal is audited: {audit:#}"
    );

    // Back to what the plan expects: it applies.
    f.exec("production", "DELETE FROM cities WHERE id = 2;");
    f.run_yes(&["promote", "staging", "production", "--plan", "plan.json", "--force"])
        .expect(0);
    assert_eq!(name_of(&f, "production", "cities", 2), "Zürich 🏔️");
}

#[test]
fn a_dry_run_of_a_saved_plan_checks_the_target_like_the_apply() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "--table", "cities", "-o", "plan.json"])
        .expect(0);
    // Fresh: the dry run passes and writes nothing.
    let before = f.dump("production");
    f.run(&["promote", "staging", "production", "--plan", "plan.json", "--dry-run"])
        .expect(0);
    f.exec(
        "production",
        "INSERT INTO cities VALUES (2, 'Zurich, made in production');",
    );
    let moved = f.dump("production");
    assert_ne!(moved, before);
    let out = f
        .run(&["promote", "staging", "production", "--plan", "plan.json", "--dry-run"])
        .expect(3);
    assert!(out.stderr.contains("cities:2"), "{}", out.stderr);
    assert!(out.stderr.contains("changed since the plan"), "{}", out.stderr);
    assert_eq!(f.dump("production"), moved);
}

#[test]
fn a_saved_plan_applied_twice_says_where_it_was_applied() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "--table", "cities", "-o", "plan.json"])
        .expect(0);
    let v = f
        .run_yes(&["promote", "staging", "production", "--plan", "plan.json", "--json"])
        .expect(0)
        .json();
    let id = v["promotion"].as_str().unwrap().to_string();
    let after = f.dump("production");
    for dry in [false, true] {
        let mut args = vec!["promote", "staging", "production", "--plan", "plan.json"];
        if dry {
            args.push("--dry-run");
        }
        let out = f.run_yes(&args).expect(3);
        assert!(
            out.stderr.contains(&format!("already applied as promotion {id}")),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("changed since the plan"), "{}", out.stderr);
    }
    assert_eq!(f.dump("production"), after);
    // Reverted, the same plan applies again.
    f.run_yes(&["revert", &id]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--plan", "plan.json"])
        .expect(0);
    assert_eq!(name_of(&f, "production", "cities", 2), "Zürich 🏔️");
}

#[test]
fn with_ferry_plan_key_only_plans_signed_with_it_apply() {
    let f = Fixture::new();
    let key = [("FERRY_PLAN_KEY", "team secret")];
    let plan = ["plan", "staging", "production", "--table", "cities", "-o"];
    f.run(&[&plan[..], &["unsigned.json"]].concat()).expect(0);
    let out = f.run_with_env(&[&plan[..], &["signed.json"]].concat(), &key).expect(0);
    assert!(out.stdout.contains("signed with FERRY_PLAN_KEY"), "{}", out.stdout);
    f.run_with_env(&[&plan[..], &["other.json"]].concat(), &[("FERRY_PLAN_KEY", "another")])
        .expect(0);
    let before = f.dump("production");
    for (file, says) in [
        ("unsigned.json", "not signed"),
        ("other.json", "signature does not match"),
    ] {
        let out = f
            .run_with_env(&["promote", "staging", "production", "--plan", file, "--yes"], &key)
            .expect(2);
        assert!(out.stderr.contains(says), "{file}: {}", out.stderr);
        assert!(out.stderr.contains(file), "{file}: {}", out.stderr);
        assert!(!out.all().contains("team secret"), "{}", out.all());
    }
    let out = f
        .run_with_env(
            &["promote", "staging", "production", "--plan", "signed.json", "--yes"],
            &[("FERRY_PLAN_KEY", "")],
        )
        .expect(2);
    assert!(out.stderr.contains("FERRY_PLAN_KEY is set but empty"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);
    f.run_with_env(
        &["promote", "staging", "production", "--plan", "signed.json", "--yes"],
        &key,
    )
    .expect(0);
    assert_eq!(name_of(&f, "production", "cities", 2), "Zürich 🏔️");
}

#[test]
fn a_saved_plan_applies_after_the_source_database_is_gone() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    std::fs::remove_file(f.staging()).unwrap();
    let v = f
        .run_yes(&[
            "promote",
            "staging",
            "production",
            "--plan",
            "plan.json",
            "--json",
            "--force",
        ])
        .expect(0)
        .json();
    assert_eq!(v["counts"]["insert"], 11, "{v:#}");
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert!(!f.staging().exists(), "the source is not needed, nor re-created");
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2, 3]);
    assert_eq!(
        f.raw_row("production", "businesses", 2, &["name", "icon"]),
        [
            format!("text:{}", hex("Bäckerei 🥨 👩‍👩‍👧 日本語".as_bytes()).to_uppercase()),
            "blob:89504E470D0A1A0A0000C3".to_string()
        ]
    );
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log[0]["id"], v["promotion"], "{log:#}");
    assert_eq!(log[0]["from"], "staging", "{log:#}");
}

#[test]
fn an_edited_plan_file_is_refused() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    let path = f.path().join("plan.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut plan: J = serde_json::from_str(&text).unwrap();
    assert!(
        replace_strings(&mut plan, "Zürich 🏔️", "Zurich, edited by hand") > 0,
        "the plan carries the row images: {text}"
    );
    std::fs::write(
        f.path().join("edited.json"),
        serde_json::to_string_pretty(&plan).unwrap(),
    )
    .unwrap();
    // Without its hash.
    let mut unsealed: J = serde_json::from_str(&text).unwrap();
    unsealed.as_object_mut().unwrap().remove("hash");
    std::fs::write(f.path().join("unsealed.json"), unsealed.to_string()).unwrap();
    std::fs::write(f.path().join("garbage.json"), "{ not json").unwrap();

    let before = f.dump("production");
    for file in ["edited.json", "unsealed.json", "garbage.json"] {
        let out = f
            .run_yes(&["promote", "staging", "production", "--plan", file])
            .expect(2);
        assert!(out.stderr.contains(file), "the message names the file:\n{}", out.stderr);
    }
    let out = f
        .run_yes(&["promote", "staging", "production", "--plan", "edited.json"])
        .expect(2);
    assert!(out.stderr.contains("edited"), "{}", out.stderr);
    // A plan for another route is refused too.
    let out = f
        .run_yes(&["promote", "production", "staging", "--plan", "plan.json"])
        .expect(2);
    assert!(out.stderr.contains("staging -> production"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);
    assert!(f.ids("production", "cities").len() == 3);

    // The untouched file still applies (its first-contact row forced).
    f.run_yes(&["promote", "staging", "production", "--plan", "plan.json", "--force"])
        .expect(0);
    assert_eq!(name_of(&f, "production", "cities", 2), "Zürich 🏔️");
}

// ---- first contact and baseline -----------------------------------------

#[test]
fn first_contact_is_a_no_base_conflict_said_loudly_and_promote_refuses_it() {
    let f = Fixture::new();
    let v = f.diff_json(&[]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!(
        (&b1["action"], &b1["reason"]),
        (&J::from("conflict"), &J::from("no-base")),
        "{b1}"
    );
    assert_eq!(v["no_base"], 1, "{v:#}");
    assert_eq!(v["counts"]["conflict"], 1, "{v:#}");
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("conflict") && l.contains("id=1"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains("no-base"), "{line}");
    assert!(line.contains("first contact"), "{line}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("name: \"Cafe Ole\" -> \"Café Olé ☕\"")),
        "both sides are shown: {}",
        out.stdout
    );
    let warning = out
        .stdout
        .lines()
        .find(|l| l.contains("warning:"))
        .unwrap_or_else(|| panic!("no warning in:\n{}", out.stdout));
    for want in [
        "first contact",
        "unrelated rows",
        "--take source|target",
        "--force",
        "ferry baseline staging production",
    ] {
        assert!(warning.contains(want), "`{want}` missing from `{warning}`");
    }
    // `plan` says it as well.
    let out = f.run(&["plan", "staging", "production"]).expect(0);
    assert!(out.stdout.contains("warning:"), "{}", out.stdout);

    // `promote` refuses before writing anything (a dry run too).
    let before = f.dump("production");
    let out = f.run_yes(&["promote", "staging", "production"]).expect(3);
    for want in [
        "businesses:1 (no-base",
        "first contact",
        "--take source",
        "--force",
        "nothing was written",
    ] {
        assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
    }
    let v = f
        .run_yes(&["promote", "staging", "production", "--json"])
        .expect(3)
        .json();
    assert_eq!(v["error"]["code"], "blocked", "{v:#}");
    f.run(&["promote", "staging", "production", "--dry-run"]).expect(3);
    assert_eq!(f.dump("production"), before, "a refused first contact wrote something");
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log, serde_json::json!([]), "no promotion recorded");

    // The rest goes through without it.
    f.run_yes(&["promote", "staging", "production", "--table", "cities"])
        .expect(0);
    assert_eq!(name_of(&f, "production", "businesses", 1), "Cafe Ole");
}

#[test]
fn first_contact_is_decided_by_take_target_then_take_source() {
    let f = Fixture::new();
    // Production's row is its own: kept, and recorded as in sync.
    f.run_yes(&[
        "promote",
        "staging",
        "production",
        "--id",
        "businesses:1",
        "--take",
        "target",
    ])
    .expect(0);
    assert_eq!(name_of(&f, "production", "businesses", 1), "Cafe Ole");
    let v = f.diff_json(&[]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!(
        (&b1["action"], &b1["reason"]),
        (&J::from("skip"), &J::from("target-newer")),
        "decided: production's version is newer, never overwritten: {b1}"
    );
    assert_eq!(v["no_base"], 0, "{v:#}");
    // Everything else promotes now without --force.
    f.run_yes(&["promote", "staging", "production"]).expect(0);
    assert_eq!(name_of(&f, "production", "businesses", 1), "Cafe Ole");

    // Staging's version, decided for that row only.
    let g = Fixture::new();
    g.run_yes(&[
        "promote",
        "staging",
        "production",
        "--id",
        "businesses:1",
        "--take",
        "source",
    ])
    .expect(0);
    assert_eq!(name_of(&g, "production", "businesses", 1), "Café Olé ☕");
    g.exec("staging", "UPDATE businesses SET name = 'Café 2' WHERE id = 1;");
    let v = g.diff_json(&[]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!((&b1["action"], &b1["reason"]), (&J::from("update"), &J::Null), "{b1}");
}

#[test]
fn first_contact_is_decided_for_the_source_by_force() {
    let f = Fixture::new();
    let v = f
        .run_yes(&["promote", "staging", "production", "--force", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(name_of(&f, "production", "businesses", 1), "Café Olé ☕");
    // Afterwards the row has a base: an ordinary update.
    f.exec("staging", "UPDATE businesses SET name = 'Café 2' WHERE id = 1;");
    let v = f.diff_json(&[]);
    assert_eq!(v["no_base"], 0, "{v:#}");
    assert_eq!(entry(&v, "businesses", 1).unwrap()["action"], "update", "{v:#}");
    assert_eq!(entry(&v, "businesses", 1).unwrap()["reason"], J::Null, "{v:#}");
}

#[test]
fn baseline_records_equal_rows_and_reports_the_differing_ones() {
    let f = Fixture::new();
    let out = f.run_yes(&["baseline", "staging", "production"]).expect(0);
    let text = &out.stdout;
    assert!(text.contains("recorded 2 equal row(s) as in sync"), "{text}");
    assert!(text.contains("differ and were not recorded"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("conflict") && l.contains("id=1") && l.contains("no-base")),
        "businesses:1 differs: {text}"
    );
    assert!(text.contains("Cafe Ole"), "the differing values are shown: {text}");

    // Differing rows stay first contact; equal ones are now in sync.
    let v = f.diff_json(&[]);
    assert_eq!(entry(&v, "businesses", 1).unwrap()["reason"], "no-base", "{v:#}");
    f.exec(
        "production",
        "UPDATE cities SET name = 'Lyon (production)' WHERE id = 1;",
    );
    let v = f.diff_json(&["--table", "cities"]);
    assert_eq!(entry(&v, "cities", 1).unwrap()["reason"], "target-newer", "{v:#}");

    // Once production agrees, a second baseline records the row.
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Café Olé ☕', icon = x'00ff10' WHERE id = 1;",
    );
    let v = f
        .run_yes(&["baseline", "staging", "production", "--json"])
        .expect(0)
        .json();
    let differing: Vec<String> = v["differing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["table"].as_str().unwrap(), e["key"]["id"]))
        .collect();
    assert!(!differing.contains(&"businesses:1".to_string()), "{v:#}");
    f.exec("staging", "UPDATE businesses SET name = 'Café 3' WHERE id = 1;");
    let v = f.diff_json(&["--table", "businesses"]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!((&b1["action"], &b1["reason"]), (&J::from("update"), &J::Null), "{b1}");
    // After the baseline, promote needs no decision.
    f.run_yes(&["promote", "staging", "production", "--table", "businesses"])
        .expect(0);
    assert_eq!(name_of(&f, "production", "businesses", 1), "Café 3");
}

#[test]
fn natural_key_deletes_and_reverts_follow_the_id_mapping() {
    let f = natural();
    f.promote(&[]);
    assert_eq!(f.ids("production", "labels"), [10, 11, 20, 21]);
    // Staging drops its own label after moving its item to `sports`.
    f.exec(
        "staging",
        "UPDATE items SET label_id = 2 WHERE id = 3;
         DELETE FROM labels WHERE id = 3;",
    );
    let v = f.diff_json(&[]);
    assert_eq!(
        summary(&v),
        [
            s("labels", 3, "delete", None),
            s("labels", 20, "skip", Some("target-only")),
            s("items", 3, "update", None),
        ],
        "the key shown is staging's: {v:#}"
    );
    let before = dump_tables(&f.db("production"), &["labels", "items"]);
    let id = f.promote(&[]);
    assert_eq!(
        f.ids("production", "labels"),
        [10, 11, 20],
        "label 21 (staging's 3) is gone"
    );
    assert_eq!(f.scalar("production", "SELECT label_id FROM items WHERE id = 3"), "10");
    // Revert puts label 21 back under its own id and the item back on it.
    f.run_yes(&["revert", &id]).expect(0);
    assert_eq!(dump_tables(&f.db("production"), &["labels", "items"]), before);
    assert_eq!(f.scalar("production", "SELECT label_id FROM items WHERE id = 3"), "21");
    // And the mapping with it: the same plan again.
    let v = f.diff_json(&[]);
    assert_eq!(
        summary(&v),
        [
            s("labels", 3, "delete", None),
            s("labels", 20, "skip", Some("target-only")),
            s("items", 3, "update", None),
        ],
        "{v:#}"
    );
}

#[test]
fn a_natural_key_table_whose_key_the_target_cannot_assign_is_a_config_error() {
    let schema = "
        CREATE TABLE labels (code TEXT PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT, label_code TEXT REFERENCES labels(code));
    ";
    let f = Fixture::with(
        schema,
        "INSERT INTO labels VALUES ('a', 'news'), ('b', 'new one'); INSERT INTO items VALUES (1, 'x', 'b');",
        schema,
        "INSERT INTO labels VALUES ('zz', 'news');",
    );
    f.write_config(
        &NK_CONFIG
            .replace("[tables.labels]\nkey = [\"id\"]", "[tables.labels]\nkey = [\"code\"]")
            .replace("label_id", "label_code"),
    );
    let before = f.dump("production");
    for args in [
        &["diff", "staging", "production"][..],
        &["promote", "staging", "production", "--yes"][..],
    ] {
        let out = f.run(args).expect(2);
        for want in ["production", "labels", "`code`", "natural_key", "assign"] {
            assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
        }
    }
    assert_eq!(f.dump("production"), before);
}

// ---- a child keyed by its natural-key parent (multi-table inheritance) ----

const PAGES_SCHEMA: &str = "
CREATE TABLE pages (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, title TEXT NOT NULL);
CREATE TABLE articles (page_ptr_id INTEGER PRIMARY KEY REFERENCES pages(id), body TEXT NOT NULL);
";

#[test]
fn a_child_keyed_by_a_new_natural_key_parent_is_approved_under_the_assigned_id() {
    let f = Fixture::with(
        PAGES_SCHEMA,
        "INSERT INTO pages VALUES (1, 'home', 'Home'), (9, 'careers', 'Careers');
         INSERT INTO articles VALUES (1, 'Welcome'), (9, 'Join us');",
        PAGES_SCHEMA,
        "INSERT INTO pages VALUES (9, 'prod-promo', 'Prod promo'), (12, 'home', 'Home');
         INSERT INTO articles VALUES (9, 'Only in production'), (12, 'Welcome');",
    );
    f.write_config(
        r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"
review = true

[tables.pages]
key = ["id"]
natural_key = ["slug"]

[tables.articles]
key = ["page_ptr_id"]
parent = { page_ptr_id = "pages" }
"#,
    );
    let v = f.diff_json(&["--id", "pages:9"]);
    let got: Vec<(String, String)> = changes(&v)
        .iter()
        .map(|c| {
            (
                format!("{}:{}", c["table"].as_str().unwrap(), c["key"]),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("pages:{\"id\":9}".to_string(), "insert".to_string()),
            ("articles:{\"page_ptr_id\":9}".to_string(), "insert".to_string())
        ],
        "staging's page 9 is not production's page 9: {v:#}"
    );
    let v = f
        .run_yes(&["promote", "staging", "production", "--id", "pages:9", "--json"])
        .expect(0)
        .json();
    let review = v["review"]
        .as_str()
        .unwrap_or_else(|| panic!("no review: {v:#}"))
        .to_string();
    // The held rows have no id in production yet: nothing of theirs moved
    // (production's own page 9 is another row).
    let shown = f.run(&["review", "show", &review, "--json"]).expect(0).json();
    let moved: Vec<&J> = shown["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{shown:#}"))
        .iter()
        .filter(|c| c["moved"] == true)
        .collect();
    assert!(moved.is_empty(), "{moved:#?}");
    f.run_yes(&["review", "approve", &review]).expect(0);
    let careers = f.scalar("production", "SELECT id FROM pages WHERE slug = 'careers'");
    assert_ne!(careers, "9");
    assert_eq!(
        f.scalar(
            "production",
            &format!("SELECT body FROM articles WHERE page_ptr_id = {careers}")
        ),
        "Join us"
    );
    assert_eq!(
        f.scalar("production", "SELECT body FROM articles WHERE page_ptr_id = 9"),
        "Only in production"
    );
}

#[test]
fn a_json_column_change_is_shown_path_by_path() {
    let schema = "CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT, body TEXT);";
    let body = |text: &str| {
        format!(
            r#"[{{"type": "heading", "value": "Jobs"}}, {{"type": "paragraph", "value": {{"id": "a1", "text": "{text}"}}}}]"#
        )
    };
    let f = Fixture::with(
        schema,
        &format!(
            "INSERT INTO pages VALUES (9, 'Careers', '{}');",
            body("Join us today 🚢")
        ),
        schema,
        &format!("INSERT INTO pages VALUES (9, 'Careers', '{}');", body("Join us")),
    );
    f.write_config(
        "pipeline = [\"staging\", \"production\"]\n\n[environments.staging]\nurl = \"sqlite://staging.db\"\n\n[environments.production]\nurl = \"sqlite://production.db\"\n\n[tables.pages]\nkey = [\"id\"]\n",
    );
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    let lines: Vec<&str> = out.stdout.lines().filter(|l| l.contains("body")).collect();
    assert_eq!(
        lines.iter().map(|l| l.trim()).collect::<Vec<_>>(),
        ["body[1].value.text: \"Join us\" -> \"Join us today 🚢\""],
        "{}",
        out.stdout
    );
}
