//! Every command of the `ferry` binary on real SQLite files, and the
//! contract details of PRODUCT.md: stable ids, upserts, references and
//! children, `exclude`, `ignore`, `stamp`, bytes, sync bases, revert, and
//! the `--json` shapes.

use serde_json::Value as J;

use crate::common::{changes, entry, s, summary, Fixture, CONFIG, SCHEMA};

/// What the standard fixture's first diff holds, in apply order.
fn first_diff() -> Vec<(String, i64, String, Option<String>)> {
    vec![
        s("cities", 2, "insert", None),
        s("cities", 99, "skip", Some("target-only")),
        s("menus", 1, "insert", None),
        s("menus", 2, "insert", None),
        s("menus", 3, "insert", None),
        s("menus", 5, "insert", None),
        s("businesses", 1, "conflict", Some("no-base")),
        s("businesses", 2, "insert", None),
        s("forms", 1, "insert", None),
        s("forms", 2, "insert", None),
        s("form_fields", 1, "insert", None),
        s("form_fields", 2, "insert", None),
        s("form_fields", 3, "insert", None),
    ]
}

fn is_ulid(id: &str) -> bool {
    id.len() == 26 && id.chars().all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
}

/// Sorted so that a diff's order does not matter.
fn sorted(mut v: Vec<(String, i64, String, Option<String>)>) -> Vec<(String, i64, String, Option<String>)> {
    v.sort();
    v
}

// ---- check ------------------------------------------------------------

#[test]
fn check_reaches_every_environment_and_writes_nothing() {
    let f = Fixture::new();
    let (staging, production) = (f.dump("staging"), f.dump("production"));
    let out = f.run(&["check"]).expect(0);
    assert!(out.stdout.contains("staging"), "{}", out.stdout);
    assert!(out.stdout.contains("production"), "{}", out.stdout);
    assert!(out.stdout.contains("valid"), "{}", out.stdout);

    let v = f.run(&["check", "--json"]).expect(0).json();
    assert_eq!(v["ok"], true, "{v}");
    let envs: Vec<&str> = v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["staging", "production"], "pipeline order");
    assert!(v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["reachable"] == true && e["tables"] == 5));
    assert_eq!(v["problems"], serde_json::json!([]));

    // Read-only: not even Ferry's own tables appear.
    assert_eq!(f.dump("staging"), staging);
    assert_eq!(f.dump("production"), production);
    assert!(f.ferry_tables("production").is_empty());
}

#[test]
fn check_and_promote_refuse_a_foreign_key_ferry_was_not_told_about() {
    // forms.owner_id points at users, which Ferry does not manage.
    let owner = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n\
                 ALTER TABLE forms ADD COLUMN owner_id INTEGER REFERENCES users(id);";
    let f = Fixture::with(
        SCHEMA,
        &format!("{}{owner}", crate::common::STAGING_DATA),
        SCHEMA,
        &format!("{}{owner}", crate::common::PRODUCTION_DATA),
    );
    let out = f.run(&["check"]).expect(2);
    let all = out.all();
    for want in [
        "table `forms`",
        "column `owner_id`",
        "`users`",
        "keep_ids = [\"owner_id\"]",
        "references = { owner_id = \"users\" }",
    ] {
        assert!(all.contains(want), "`{want}` missing from:\n{all}");
    }
    let production = f.dump("production");
    let out = f.run_yes(&["promote", "staging", "production", "--force"]).expect(2);
    assert!(out.all().contains("owner_id"), "{}", out.all());
    assert_eq!(f.dump("production"), production);

    // Declared copied as is: both pass.
    f.write_config(&CONFIG.replace(
        "references = { business_id = \"businesses\" }",
        "references = { business_id = \"businesses\" }\nkeep_ids = [\"owner_id\"]",
    ));
    f.run(&["check"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--force"]).expect(0);
}

#[test]
fn a_unique_collision_is_shown_by_diff_and_refused_by_promote_before_writing() {
    let schema = SCHEMA.replace(
        "    name TEXT NOT NULL\n);\nCREATE TABLE businesses",
        "    name TEXT NOT NULL UNIQUE\n);\nCREATE TABLE businesses",
    );
    assert_ne!(schema, SCHEMA);
    // Production made its own Zürich, under another id.
    let f = Fixture::with(
        &schema,
        crate::common::STAGING_DATA,
        &schema,
        &format!(
            "{}INSERT INTO cities VALUES (50, 'Zürich 🏔️');",
            crate::common::PRODUCTION_DATA
        ),
    );
    let v = f.diff_json(&[]);
    let c2 = entry(&v, "cities", 2).unwrap();
    assert_eq!(
        (&c2["action"], &c2["reason"]),
        (&J::from("conflict"), &J::from("unique-collision")),
        "{c2}"
    );
    let said = c2["collides_with"].as_str().unwrap_or_default();
    assert!(
        said.contains("unique (name)") && said.contains("cities:50 in production"),
        "{said}"
    );
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("id=2") && l.contains("conflict"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        line.contains("unique-collision") && line.contains("cities:50 in production"),
        "{line}"
    );

    let production = f.dump("production");
    let out = f.run_yes(&["promote", "staging", "production", "--force"]).expect(3);
    for want in [
        "cities:2",
        "cities:50",
        "unique constraint",
        "nothing was written",
        "--force cannot",
    ] {
        assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
    }
    assert_eq!(f.dump("production"), production);
}

#[test]
fn check_accepts_a_config_given_with_dash_dash_config_from_elsewhere() {
    let f = Fixture::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = f.path().join("ferry.toml");
    let out = crate::common::run_in(elsewhere.path(), &["check", "--config", config.to_str().unwrap()]);
    out.expect(0);
}

// ---- diff and plan ----------------------------------------------------

#[test]
fn diff_shows_every_kind_of_row_and_writes_nothing() {
    let f = Fixture::new();
    let (staging, production) = (f.dump("staging"), f.dump("production"));

    let v = f.diff_json(&[]);
    assert_eq!(summary(&v), first_diff(), "{v:#}");
    assert_eq!(v["excluded"]["businesses"], 2, "{v:#}");

    let out = f.run(&["diff", "staging", "production"]).expect(0);
    let text = out.stdout;
    for want in [
        "staging -> production",
        "11 inserts, 0 updates, 0 deletes",
        "target-only",
        "no-base",
        "first contact",
        "left behind by `exclude`: businesses 2",
        "Café Olé ☕",
        "Zürich 🏔️",
        "👩‍👩‍👧 日本語",
    ] {
        assert!(text.contains(want), "`{want}` missing from:\n{text}");
    }
    assert!(!text.contains("QA test shop"), "{text}");

    assert_eq!(f.dump("staging"), staging);
    assert_eq!(f.dump("production"), production);
    assert!(f.ferry_tables("production").is_empty());
}

#[test]
fn diff_and_plan_json_have_the_documented_shape() {
    let f = Fixture::new();
    for cmd in ["diff", "plan"] {
        let v = f.run(&[cmd, "staging", "production", "--json"]).expect(0).json();
        assert_eq!(v["from"], "staging", "{v:#}");
        assert_eq!(v["to"], "production", "{v:#}");
        for c in changes(&v) {
            assert!(c["table"].is_string(), "{c}");
            assert!(c["key"].is_object() && c["key"]["id"].is_i64(), "{c}");
            let action = c["action"].as_str().unwrap();
            assert!(
                ["insert", "update", "delete", "conflict", "skip"].contains(&action),
                "{c}"
            );
            assert!(c["fields"].is_array(), "{c}");
            assert!(c.get("reason").is_some(), "`reason` is always there: {c}");
            assert!(c["reason"].is_null() || c["reason"].is_string(), "{c}");
        }
        // The first-contact update names its changed fields, with both sides.
        let b1 = entry(&v, "businesses", 1).unwrap();
        let fields: Vec<&str> = b1["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["column"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["icon", "name"], "{b1}");
        let name = b1["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["column"] == "name")
            .unwrap();
        assert_eq!(name["source"], "Café Olé ☕");
        assert_eq!(name["target"], "Cafe Ole");
        // Neither ignored nor stamped columns are compared.
        let text = v.to_string();
        assert!(!text.contains("view_count"), "{text}");
        assert!(!text.contains("modified_at"), "{text}");
    }
}

#[test]
fn plan_saves_a_plan_that_promote_applies_exactly() {
    let f = Fixture::new();
    let production = f.dump("production");
    let out = f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    assert!(out.stdout.contains("--plan plan.json"), "{}", out.stdout);
    assert_eq!(f.dump("production"), production, "plan writes nothing");
    let out = f.run(&["plan", "staging", "production"]).expect(0);
    // The first-contact row is a conflict: the hint says how to decide it.
    assert!(
        out.stdout.contains(
            "1 conflict(s) refuse it as it is: decide each with `ferry promote staging production --id TABLE:KEY --take source|target`, or let `staging` win them all with `ferry promote staging production --force`"
        ),
        "{}",
        out.stdout
    );
    let saved: J = serde_json::from_str(&std::fs::read_to_string(f.path().join("plan.json")).unwrap()).unwrap();
    assert_eq!(saved["from"], "staging");
    assert_eq!(saved["to"], "production");

    // Staging moves on after the plan was reviewed: the saved plan is what
    // gets applied, not the new state.
    f.exec("staging", "INSERT INTO cities VALUES (4, 'Genève');");
    let v = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--plan",
            "plan.json",
            "--yes",
            "--json",
            // The first-contact row: the source wins.
            "--force",
        ])
        .expect(0)
        .json();
    assert!(v["promotion"].is_string(), "{v}");
    assert_eq!(v["counts"]["insert"], 11, "{v}");
    assert_eq!(v["counts"]["update"], 1, "{v}");
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2, 3]);
}

#[test]
fn a_saved_plan_is_refused_when_the_target_moved() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Edited in production' WHERE id = 1;",
    );
    let before = f.dump("production");
    let out = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--plan",
            "plan.json",
            "--yes",
            "--force",
        ])
        .expect(3);
    assert!(out.stderr.contains("businesses:1"), "{}", out.stderr);
    assert!(out.stderr.contains("changed since the plan"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);
}

#[test]
fn plan_with_a_selection_is_refused_together_with_plan_file() {
    let f = Fixture::new();
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    let before = f.dump("production");
    f.run(&[
        "promote",
        "staging",
        "production",
        "--plan",
        "plan.json",
        "--table",
        "cities",
        "--yes",
    ])
    .expect(2);
    assert_eq!(f.dump("production"), before);
}

// ---- promote ----------------------------------------------------------

#[test]
fn promote_without_a_terminal_and_without_yes_refuses() {
    let f = Fixture::new();
    let (staging, production) = (f.dump("staging"), f.dump("production"));
    let out = f.run(&["promote", "staging", "production", "--force"]).expect(2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    // It showed what it would do first.
    assert!(out.stdout.contains("11 inserts"), "{}", out.stdout);
    assert_eq!(f.dump("staging"), staging);
    assert_eq!(f.dump("production"), production);

    let out = f
        .run(&["promote", "staging", "production", "--json", "--force"])
        .expect(2);
    assert_eq!(out.json()["error"]["exit"], 2, "{}", out.stdout);
    assert_eq!(f.dump("production"), production);
}

#[test]
fn dry_run_shows_the_plan_and_writes_nothing() {
    let f = Fixture::new();
    let production = f.dump("production");
    let out = f
        .run(&["promote", "staging", "production", "--dry-run", "--force"])
        .expect(0);
    assert!(out.stdout.contains("11 inserts"), "{}", out.stdout);
    assert!(out.stdout.contains("Dry run: nothing was written"), "{}", out.stdout);
    assert_eq!(f.dump("production"), production);

    let v = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--dry-run",
            "--json",
            "--yes",
            "--force",
        ])
        .expect(0)
        .json();
    assert_eq!(v["promotion"], J::Null, "{v}");
    assert_eq!(v["review"], J::Null, "{v}");
    assert_eq!(v["counts"]["insert"], 11, "{v}");
    assert_eq!(v["counts"]["update"], 1, "{v}");
    assert_eq!(v["counts"]["delete"], 0, "{v}");
    assert_eq!(f.dump("production"), production);
    assert!(f.ferry_tables("production").is_empty());
}

#[test]
fn promote_json_has_the_documented_shape() {
    let f = Fixture::new();
    let v = f
        .run(&["promote", "staging", "production", "--yes", "--json", "--force"])
        .expect(0)
        .json();
    assert!(is_ulid(v["promotion"].as_str().unwrap()), "{v}");
    assert_eq!(v["review"], J::Null, "{v}");
    assert_eq!(v["counts"]["insert"], 11, "{v}");
    assert_eq!(v["counts"]["update"], 1, "{v}");
    assert_eq!(v["counts"]["delete"], 0, "{v}");

    // Nothing left to do: a promotion of nothing records nothing.
    let v = f
        .run(&["promote", "staging", "production", "--yes", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["promotion"], J::Null, "{v}");
    assert_eq!(v["counts"]["insert"], 0, "{v}");
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log.as_array().unwrap().len(), 1, "{log}");
}

#[test]
fn promote_text_says_what_it_did_and_how_to_undo_it() {
    let f = Fixture::new();
    let out = f
        .run(&["promote", "staging", "production", "--yes", "--force"])
        .expect(0);
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    let id = log[0]["id"].as_str().unwrap();
    assert!(out.stdout.contains(&format!("ferry revert {id}")), "{}", out.stdout);
    assert!(
        out.stdout.contains("11 inserted, 1 updated, 0 deleted"),
        "{}",
        out.stdout
    );
}

#[test]
fn promote_keeps_ids_and_upserts_every_compared_column() {
    let f = Fixture::new();
    f.promote(&[]);
    let compared: [(&str, &[&str]); 5] = [
        ("cities", &["id", "name"]),
        ("businesses", &["id", "name", "city_id", "icon", "created_by_team"]),
        ("forms", &["id", "business_id", "title"]),
        ("form_fields", &["id", "form_id", "label", "position"]),
        ("menus", &["id", "parent_id", "label"]),
    ];
    for (table, cols) in compared {
        let ids = if table == "businesses" {
            vec![1, 2]
        } else {
            f.ids("staging", table)
        };
        for id in ids {
            assert_eq!(
                f.raw_row("production", table, id, cols),
                f.raw_row("staging", table, id, cols),
                "{table}:{id} differs"
            );
        }
    }
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    assert_eq!(f.ids("production", "menus"), [1, 2, 3, 5]);

    // An update in staging writes every changed column (and only the row).
    f.exec(
        "staging",
        "UPDATE businesses SET name = 'Café Olé ☕☕', city_id = 2, icon = x'01' WHERE id = 1;",
    );
    let v = f.diff_json(&[]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!(b1["action"], "update");
    assert_eq!(b1["reason"], J::Null, "synced since: no longer first contact: {b1}");
    f.promote(&["--id", "businesses:1"]);
    let cols = ["id", "name", "city_id", "icon", "created_by_team"];
    assert_eq!(
        f.raw_row("production", "businesses", 1, &cols),
        f.raw_row("staging", "businesses", 1, &cols)
    );
}

#[test]
fn the_diff_is_empty_after_a_promotion() {
    let f = Fixture::new();
    f.promote(&[]);
    let v = f.diff_json(&[]);
    // Only the row production alone holds is shown, and left alone.
    assert_eq!(summary(&v), [s("cities", 99, "skip", Some("target-only"))], "{v:#}");
    assert_eq!(v["counts"]["insert"], 0);
    assert_eq!(v["counts"]["update"], 0);
    assert_eq!(v["counts"]["delete"], 0);
    assert_eq!(v["counts"]["conflict"], 0);
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(out.stdout.contains("0 inserts, 0 updates, 0 deletes"), "{}", out.stdout);
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 99"),
        "Prod-only town"
    );
}

#[test]
fn excluded_rows_never_leave_staging() {
    let f = Fixture::new();
    f.promote(&[]);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    assert_eq!(
        f.scalar(
            "production",
            "SELECT count(*) FROM businesses WHERE created_by_team IN ('qa', 'dev')"
        ),
        "0"
    );

    // Asked for by id, the row is shown as excluded and still stays.
    let v = f.diff_json(&["--id", "businesses:3"]);
    assert_eq!(summary(&v), [s("businesses", 3, "skip", Some("excluded"))], "{v:#}");
    let before = f.dump("production");
    let v = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--id",
            "businesses:3",
            "--yes",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(v["promotion"], J::Null, "{v}");
    assert_eq!(f.dump("production"), before);

    // A row that becomes excluded in staging is not deleted from the target.
    f.exec("staging", "UPDATE businesses SET created_by_team = 'qa' WHERE id = 2;");
    let v = f.diff_json(&[]);
    assert!(entry(&v, "businesses", 2).is_none(), "{v:#}");
}

#[test]
fn the_ignored_column_is_never_compared_nor_copied() {
    let f = Fixture::new();
    f.promote(&[]);
    // Production keeps its own count on the updated row; the inserted row
    // gets the column's default, not staging's value.
    assert_eq!(
        f.scalar("production", "SELECT view_count FROM businesses WHERE id = 1"),
        "1234"
    );
    assert_eq!(
        f.scalar("production", "SELECT view_count FROM businesses WHERE id = 2"),
        "0"
    );
    // A change to it alone is no change.
    f.exec("staging", "UPDATE businesses SET view_count = 999 WHERE id = 2;");
    f.exec("production", "UPDATE businesses SET view_count = 42 WHERE id = 1;");
    let v = f.diff_json(&[]);
    assert!(entry(&v, "businesses", 1).is_none(), "{v:#}");
    assert!(entry(&v, "businesses", 2).is_none(), "{v:#}");
    // A real change does not carry it along either.
    f.exec("staging", "UPDATE businesses SET name = 'Bäckerei 2' WHERE id = 2;");
    f.promote(&[]);
    assert_eq!(
        f.scalar("production", "SELECT view_count FROM businesses WHERE id = 2"),
        "0"
    );
    assert_eq!(
        f.scalar("production", "SELECT view_count FROM businesses WHERE id = 1"),
        "42"
    );
}

#[test]
fn the_stamped_column_gets_one_promotion_time_in_utc() {
    let f = Fixture::new();
    let before = chrono::Utc::now().naive_utc();
    f.promote(&[]);
    let after = chrono::Utc::now().naive_utc();

    let rows = f.query(
        "production",
        "SELECT modified_at, typeof(modified_at) FROM businesses ORDER BY id",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], rows[1][0], "one `now` per promotion: {rows:?}");
    assert_eq!(rows[0][1], "text");
    let stamp = &rows[0][0];
    assert_eq!(stamp.len(), "YYYY-MM-DD HH:MM:SS.ffffff".len(), "{stamp}");
    let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.6f")
        .unwrap_or_else(|e| panic!("{stamp}: {e}"));
    let slack = chrono::Duration::seconds(2);
    assert!(at >= before - slack && at <= after + slack, "{stamp} is not UTC now");

    // The journal records the same instant.
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    let logged = log[0]["at"].as_str().unwrap().replace('T', " ").replace('Z', "");
    assert_eq!(&logged, stamp);

    // Rows the promotion did not write keep their stamp; a change to the
    // stamp alone is no change.
    f.exec("staging", "UPDATE businesses SET modified_at = '2000-01-01 00:00:00';");
    let v = f.diff_json(&[]);
    assert!(entry(&v, "businesses", 1).is_none(), "{v:#}");
    f.exec("staging", "UPDATE businesses SET name = 'Again' WHERE id = 2;");
    f.promote(&[]);
    let rows = f.query("production", "SELECT modified_at FROM businesses ORDER BY id");
    assert_eq!(&rows[0][0], stamp, "businesses:1 was not written");
    assert_ne!(&rows[1][0], stamp, "businesses:2 was written again");
}

#[test]
fn unicode_emoji_and_blobs_survive_byte_for_byte() {
    let f = Fixture::new();
    f.exec(
        "staging",
        "INSERT INTO businesses VALUES
            (10, 'ﬁ ﷽ 🏳️‍🌈 e' || char(769) || ' \u{1F600}', 1, x'00000000ff', 0, NULL, 'content'),
            (11, '', 1, x'', 0, NULL, 'content'),
            (12, '\"quotes\" and \\backslash and ''single''', 1, zeroblob(300), 0, NULL, 'content');",
    );
    f.promote(&[]);
    for id in [1, 2, 10, 11, 12] {
        let cols = ["name", "icon"];
        assert_eq!(
            f.raw_row("production", "businesses", id, &cols),
            f.raw_row("staging", "businesses", id, &cols),
            "businesses:{id}"
        );
    }
    assert_eq!(
        f.raw_row("production", "cities", 2, &["name"]),
        f.raw_row("staging", "cities", 2, &["name"])
    );
    assert_eq!(
        f.raw_row("production", "form_fields", 2, &["label"]),
        f.raw_row("staging", "form_fields", 2, &["label"])
    );
    assert_eq!(
        f.scalar("production", "SELECT typeof(icon) FROM businesses WHERE id = 2"),
        "blob"
    );
    // And nothing differs any more.
    assert_eq!(
        summary(&f.diff_json(&[])),
        [s("cities", 99, "skip", Some("target-only"))]
    );
}

#[test]
fn references_are_pulled_in_transitively_when_the_target_lacks_them() {
    let f = Fixture::new();
    let v = f.diff_json(&["--id", "forms:2"]);
    assert_eq!(
        sorted(summary(&v)),
        sorted(vec![
            s("cities", 2, "insert", None),
            s("businesses", 2, "insert", None),
            s("forms", 2, "insert", None),
            s("form_fields", 3, "insert", None),
        ]),
        "{v:#}"
    );
    let pulled = |t: &str, id: i64| {
        entry(&v, t, id).unwrap()["pulled_by"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(pulled("businesses", 2).contains("forms:2"), "{v:#}");
    assert!(pulled("businesses", 2).contains("business_id"), "{v:#}");
    assert!(pulled("cities", 2).contains("businesses:2"), "{v:#}");
    assert!(pulled("cities", 2).contains("city_id"), "{v:#}");

    f.promote(&["--id", "forms:2"]);
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    assert_eq!(f.ids("production", "forms"), [2]);
    assert_eq!(f.ids("production", "form_fields"), [3]);
    // A referenced row the target already has is not rewritten.
    let v = f.diff_json(&["--id", "forms:1"]);
    assert!(entry(&v, "businesses", 1).is_none(), "{v:#}");
    assert_eq!(
        f.scalar("production", "SELECT name FROM businesses WHERE id = 1"),
        "Cafe Ole"
    );
}

#[test]
fn a_table_selection_brings_children_and_missing_references_only() {
    let f = Fixture::new();
    let v = f.diff_json(&["--table", "forms"]);
    assert_eq!(
        sorted(summary(&v)),
        sorted(vec![
            s("cities", 2, "insert", None),
            s("businesses", 2, "insert", None),
            s("forms", 1, "insert", None),
            s("forms", 2, "insert", None),
            s("form_fields", 1, "insert", None),
            s("form_fields", 2, "insert", None),
            s("form_fields", 3, "insert", None),
        ]),
        "{v:#}"
    );
    let v = f.diff_json(&["--table", "cities"]);
    assert_eq!(
        summary(&v),
        [
            s("cities", 2, "insert", None),
            s("cities", 99, "skip", Some("target-only"))
        ],
        "{v:#}"
    );
}

#[test]
fn a_where_selection_runs_on_both_sides() {
    let f = Fixture::new();
    let v = f.diff_json(&["--where", "businesses:name LIKE 'B%'"]);
    assert_eq!(
        sorted(summary(&v)),
        sorted(vec![s("cities", 2, "insert", None), s("businesses", 2, "insert", None)]),
        "{v:#}"
    );
    f.promote(&["--where", "businesses:name LIKE 'B%'"]);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    assert_eq!(
        f.scalar("production", "SELECT name FROM businesses WHERE id = 1"),
        "Cafe Ole"
    );
    assert!(f.ids("production", "forms").is_empty());
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log[0]["selection"][0], "--where businesses:name LIKE 'B%'", "{log}");
}

#[test]
fn children_travel_with_their_parent_on_insert_update_and_delete() {
    let f = Fixture::new();
    let v = f.diff_json(&["--id", "forms:1"]);
    assert_eq!(
        sorted(summary(&v)),
        sorted(vec![
            s("forms", 1, "insert", None),
            s("form_fields", 1, "insert", None),
            s("form_fields", 2, "insert", None),
        ]),
        "{v:#}"
    );
    f.promote(&["--id", "forms:1"]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2]);

    // A changed field travels with its form.
    f.exec("staging", "UPDATE form_fields SET label = 'Full name' WHERE id = 1;");
    let v = f.diff_json(&["--id", "forms:1"]);
    assert_eq!(summary(&v), [s("form_fields", 1, "update", None)], "{v:#}");

    // Deleting the form in staging deletes its fields in production, even
    // one production added on its own.
    f.exec("production", "INSERT INTO form_fields VALUES (50, 1, 'Prod note', 9);");
    f.exec(
        "staging",
        "DELETE FROM form_fields WHERE form_id = 1; DELETE FROM forms WHERE id = 1;",
    );
    let v = f.diff_json(&["--id", "forms:1"]);
    let mut got = summary(&v);
    got.sort();
    let actions: Vec<(String, i64, String)> = got.iter().map(|(t, k, a, _)| (t.clone(), *k, a.clone())).collect();
    assert_eq!(
        actions,
        [
            ("form_fields".to_string(), 1, "delete".to_string()),
            ("form_fields".to_string(), 2, "delete".to_string()),
            ("form_fields".to_string(), 50, "delete".to_string()),
            ("forms".to_string(), 1, "delete".to_string()),
        ],
        "{v:#}"
    );
    let id = f.promote(&["--id", "forms:1"]);
    assert!(f.ids("production", "forms").is_empty());
    assert!(f.ids("production", "form_fields").is_empty());
    // And the revert brings them all back, production's own field included.
    f.run_yes(&["revert", &id]).expect(0);
    assert_eq!(f.ids("production", "forms"), [1]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2, 50]);
}

#[test]
fn self_referencing_rows_are_written_parent_first() {
    let f = Fixture::new();
    let id = f.promote(&["--table", "menus"]);
    assert_eq!(
        f.query(
            "production",
            "SELECT id, coalesce(parent_id, 'NULL'), label FROM menus ORDER BY id"
        ),
        f.query(
            "staging",
            "SELECT id, coalesce(parent_id, 'NULL'), label FROM menus ORDER BY id"
        )
    );
    assert_eq!(
        f.scalar("production", "SELECT count(*) FROM pragma_foreign_key_check('menus')"),
        "0"
    );
    // The journal shows the order they were written in.
    let v = f.run(&["show", &id, "--json"]).expect(0).json();
    let order: Vec<i64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"]["id"].as_i64().unwrap())
        .collect();
    let pos = |k: i64| order.iter().position(|x| *x == k).unwrap();
    assert!(pos(5) < pos(3) && pos(3) < pos(1) && pos(3) < pos(2), "{order:?}");

    // Asking for a leaf brings its ancestors, transitively.
    f.exec(
        "staging",
        "INSERT INTO menus VALUES (9, 8, 'Deep leaf'), (8, 7, 'Deep'), (7, 5, 'Branch');",
    );
    let v = f.diff_json(&["--id", "menus:9"]);
    assert_eq!(
        summary(&v),
        [
            s("menus", 7, "insert", None),
            s("menus", 8, "insert", None),
            s("menus", 9, "insert", None),
        ],
        "{v:#}"
    );
    assert!(
        entry(&v, "menus", 7).unwrap()["pulled_by"]
            .as_str()
            .unwrap()
            .contains("menus:8"),
        "{v:#}"
    );
    f.promote(&["--id", "menus:9"]);
    assert_eq!(f.ids("production", "menus"), [1, 2, 3, 5, 7, 8, 9]);

    // Deleting the whole tree deletes children first.
    f.exec("staging", "DELETE FROM menus;");
    let v = f.diff_json(&["--table", "menus"]);
    assert!(
        summary(&v).iter().all(|(t, _, a, _)| t == "menus" && a == "delete"),
        "{v:#}"
    );
    assert_eq!(summary(&v).len(), 7, "{v:#}");
    let delete = f.promote(&["--table", "menus"]);
    assert!(f.ids("production", "menus").is_empty());
    // Reverting re-inserts parents first.
    f.run_yes(&["revert", &delete]).expect(0);
    assert_eq!(f.ids("production", "menus"), [1, 2, 3, 5, 7, 8, 9]);
}

#[test]
fn deletes_are_proposed_only_for_rows_known_in_sync() {
    let f = Fixture::new();
    // Never synced: a row gone from staging is target-only, left alone.
    f.exec("staging", "DELETE FROM cities WHERE id = 3;");
    let v = f.diff_json(&["--table", "cities"]);
    assert_eq!(
        summary(&v),
        [
            s("cities", 2, "insert", None),
            s("cities", 3, "skip", Some("target-only")),
            s("cities", 99, "skip", Some("target-only")),
        ],
        "{v:#}"
    );
    f.promote(&["--table", "cities"]);
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);

    // Promoted rows are known in sync: deleting one in staging deletes it.
    f.exec("staging", "DELETE FROM cities WHERE id = 2;");
    let v = f.diff_json(&["--table", "cities"]);
    assert_eq!(
        summary(&v),
        [
            s("cities", 2, "delete", None),
            s("cities", 3, "skip", Some("target-only")),
            s("cities", 99, "skip", Some("target-only")),
        ],
        "{v:#}"
    );
    let out = f.run(&["diff", "staging", "production", "--table", "cities"]).expect(0);
    assert!(out.stdout.contains("delete"), "{}", out.stdout);
    f.promote(&["--table", "cities"]);
    assert_eq!(f.ids("production", "cities"), [1, 3, 99]);
}

#[test]
fn baseline_records_equal_rows_so_their_deletes_are_proposed() {
    let f = Fixture::new();
    let production = f.dump("production");
    let managed = f.dump_managed("production");
    // Dry run and the refusal without a terminal write nothing.
    let v = f
        .run(&["baseline", "staging", "production", "--dry-run", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["recorded"], 2, "cities 1 and 3 are equal: {v:#}");
    assert_eq!(v["baseline"], J::Null, "{v:#}");
    let out = f.run(&["baseline", "staging", "production"]).expect(2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(f.dump("production"), production);

    let v = f
        .run(&["baseline", "staging", "production", "--yes", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["recorded"], 2, "{v:#}");
    assert!(is_ulid(v["baseline"].as_str().unwrap()), "{v:#}");
    let differing: Vec<String> = v["differing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["table"].as_str().unwrap(), e["key"]["id"]))
        .collect();
    assert!(differing.contains(&"businesses:1".to_string()), "{v:#}");
    // Baseline changes no row.
    assert_eq!(f.dump_managed("production"), managed);

    f.exec("staging", "DELETE FROM cities WHERE id = 3;");
    let v = f.diff_json(&["--table", "cities"]);
    assert_eq!(
        summary(&v),
        [
            s("cities", 2, "insert", None),
            s("cities", 3, "delete", None),
            s("cities", 99, "skip", Some("target-only")),
        ],
        "{v:#}"
    );
    f.promote(&["--table", "cities"]);
    assert_eq!(f.ids("production", "cities"), [1, 2, 99]);

    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["promote", "baseline"], "{log:#}");
}

#[test]
fn first_contact_updates_are_marked_no_base_until_synced() {
    let f = Fixture::new();
    let v = f.diff_json(&[]);
    assert_eq!(entry(&v, "businesses", 1).unwrap()["action"], "conflict");
    assert_eq!(entry(&v, "businesses", 1).unwrap()["reason"], "no-base");
    assert_eq!(v["no_base"], 1, "{v:#}");
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(out.stdout.contains("warning"), "{}", out.stdout);
    assert!(out.stdout.contains("first contact"), "{}", out.stdout);

    f.promote(&[]);
    f.exec("staging", "UPDATE businesses SET name = 'Café 2' WHERE id = 1;");
    let v = f.diff_json(&[]);
    let b1 = entry(&v, "businesses", 1).unwrap();
    assert_eq!(b1["action"], "update");
    assert_eq!(b1["reason"], J::Null, "{b1}");
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(!out.stdout.contains("first contact"), "{}", out.stdout);
}

#[test]
fn a_row_changed_only_in_the_target_is_skipped_as_target_newer() {
    let f = Fixture::new();
    f.promote(&[]);
    f.exec("production", "UPDATE cities SET name = 'Zurich' WHERE id = 2;");
    let v = f.diff_json(&[]);
    assert_eq!(entry(&v, "cities", 2).unwrap()["action"], "skip");
    assert_eq!(entry(&v, "cities", 2).unwrap()["reason"], "target-newer");
    f.run_yes(&["promote", "staging", "production"]).expect(0);
    assert_eq!(f.scalar("production", "SELECT name FROM cities WHERE id = 2"), "Zurich");
}

#[test]
fn both_sides_changing_the_same_field_blocks_with_exit_3_unless_forced() {
    let f = Fixture::new();
    f.promote(&[]);
    f.exec("production", "UPDATE cities SET name = 'Zurich P' WHERE id = 2;");
    f.exec("staging", "UPDATE cities SET name = 'Zurich S' WHERE id = 2;");
    let v = f.diff_json(&[]);
    assert_eq!(entry(&v, "cities", 2).unwrap()["action"], "conflict", "{v:#}");
    let before = f.dump("production");
    let out = f.run_yes(&["promote", "staging", "production"]).expect(3);
    assert!(out.stderr.contains("cities:2"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);
    f.run_yes(&["promote", "staging", "production", "--force"]).expect(0);
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 2"),
        "Zurich S"
    );
}

#[test]
fn a_promotion_that_skips_the_pipeline_is_refused() {
    let f = Fixture::new();
    f.create_db("preprod.db", SCHEMA);
    f.write_config(&CONFIG.replace(
        "pipeline = [\"staging\", \"production\"]",
        "pipeline = [\"staging\", \"preprod\", \"production\"]\n\n[environments.preprod]\nurl = \"sqlite://preprod.db\"",
    ));
    let (production, preprod) = (f.dump("production"), f.dump("preprod"));
    let out = f.run_yes(&["promote", "staging", "production"]).expect(3);
    assert!(out.stderr.contains("preprod"), "{}", out.stderr);
    assert!(out.stderr.contains("pipeline"), "{}", out.stderr);
    // Backwards too.
    let out = f.run_yes(&["promote", "production", "staging"]).expect(3);
    assert!(out.stderr.contains("pipeline"), "{}", out.stderr);
    // Into itself.
    f.run_yes(&["promote", "staging", "staging"]).expect(2);
    assert_eq!(f.dump("production"), production);
    assert_eq!(f.dump("preprod"), preprod);

    // One step at a time works.
    f.run_yes(&["promote", "staging", "preprod"]).expect(0);
    // Production's own business 1 meets preprod's for the first time.
    f.run_yes(&["promote", "preprod", "production", "--force"]).expect(0);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    assert_eq!(f.ids("preprod", "businesses"), [1, 2]);
}

#[test]
fn routes_outside_the_pipeline_are_declared_on_the_outside_environment() {
    let f = Fixture::new();
    f.create_db("content.db", SCHEMA);
    f.create_db("feature.db", SCHEMA);
    f.create_db("lonely.db", SCHEMA);
    let routes = "\n[environments.content]\nurl = \"sqlite://content.db\"\naccepts_from = [\"staging\"]\n\
                  \n[environments.feature]\nurl = \"sqlite://feature.db\"\npromotes_to = \"production\"\n\
                  \n[environments.lonely]\nurl = \"sqlite://lonely.db\"\n";
    f.write_config(&CONFIG.replace("\n[tables.cities]", &format!("{routes}\n[tables.cities]")));

    // `check` lists the pipeline first, then the others, with their routes,
    // and warns about the environment nothing reaches.
    let out = f.run(&["check"]).expect(0);
    let names: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["staging", "production", "content", "feature", "lonely"].contains(w))
        .collect();
    assert_eq!(
        names,
        ["staging", "production", "content", "feature", "lonely"],
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("-> production, content"), "{}", out.stdout);
    assert!(out.stdout.contains("warning:"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("environment `lonely`: nothing promotes into or out of"),
        "{}",
        out.stdout
    );
    let v = f.run(&["check", "--json"]).expect(0).json();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v:#}");

    // The declared routes work; nothing else does, and the refusal never
    // suggests the route it refuses.
    f.run_yes(&["promote", "staging", "content"]).expect(0);
    assert_eq!(f.ids("content", "businesses"), [1, 2]);
    let before = f.dump("production");
    let out = f.run_yes(&["promote", "content", "production"]).expect(3);
    assert!(
        out.stderr.contains("`content` promotes into no environment"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("promotes_to = \"production\""), "{}", out.stderr);
    let out = f.run_yes(&["promote", "staging", "feature"]).expect(3);
    assert!(
        out.stderr
            .contains("`staging` may promote into `production`, `content`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("accepts_from = [\"staging\"]"), "{}", out.stderr);
    let out = f.run_yes(&["promote", "production", "staging"]).expect(3);
    assert!(out.stderr.contains("left to right only"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("ferry promote production staging"),
        "{}",
        out.stderr
    );
    assert_eq!(f.dump("production"), before);

    // On a pipeline environment both keys are errors at their line.
    let bad = CONFIG.replace(
        "url = \"sqlite://staging.db\"",
        "url = \"sqlite://staging.db\"\npromotes_to = \"production\"",
    );
    f.write_config(&bad);
    let out = f.run(&["check"]).expect(2);
    assert!(out.all().contains("line 5"), "{}", out.all());
    assert!(
        out.all()
            .contains("`promotes_to` is for environments outside the pipeline"),
        "{}",
        out.all()
    );
    f.run_yes(&["promote", "staging", "production"]).expect(2);
}

#[test]
fn listings_name_the_environments_they_could_not_read() {
    let f = Fixture::new();
    f.run_yes(&["promote", "staging", "production", "--force"]).expect(0);
    let gone = "\n[environments.gone]\nurl = \"sqlite://missing.db\"\naccepts_from = [\"staging\"]\n";
    f.write_config(&CONFIG.replace("\n[tables.cities]", &format!("{gone}\n[tables.cities]")));
    for args in [
        &["log"][..],
        &["log", "--json"],
        &["audit"],
        &["audit", "--json"],
        &["reviews"],
        &["reviews", "--json"],
    ] {
        let out = f.run(args).expect(0);
        assert!(out.stderr.contains("warning:"), "{args:?}: {}", out.all());
        assert!(out.stderr.contains("gone: "), "{args:?}: {}", out.all());
        assert!(out.stderr.contains("missing.db"), "{args:?}: {}", out.all());
        assert!(!out.stderr.contains("production:"), "{args:?}: {}", out.all());
    }
    // The environments it could read are still listed.
    let v = f.run(&["log", "--json"]).expect(0).json();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v:#}");
    // A lookup by id that finds nothing says where it could not look.
    for args in [
        &["review", "show", "01NOSUCHREVIEW"][..],
        &["show", "01NOSUCHPROMOTION"],
    ] {
        let out = f.run(args).expect(2);
        assert!(out.stderr.contains("not searched: gone ("), "{args:?}: {}", out.all());
    }
}

#[test]
fn skip_leaves_a_row_out_with_the_rows_that_need_it() {
    let f = Fixture::new();
    let v = f.diff_json(&["--skip", "businesses:2", "--table", "businesses", "--table", "forms"]);
    let left: Vec<_> = summary(&v)
        .into_iter()
        .filter(|c| c.3.as_deref() == Some("left-out"))
        .collect();
    assert_eq!(
        left,
        [
            s("businesses", 2, "skip", Some("left-out")),
            s("forms", 2, "skip", Some("left-out")),
            s("form_fields", 3, "skip", Some("left-out")),
        ],
        "{v:#}"
    );
    assert_eq!(entry(&v, "forms", 2).unwrap()["depends_on"], "businesses:2", "{v:#}");
    assert_eq!(entry(&v, "form_fields", 3).unwrap()["depends_on"], "forms:2", "{v:#}");
    assert!(
        v["selection"]
            .as_array()
            .unwrap()
            .contains(&J::from("--skip businesses:2")),
        "{v:#}"
    );

    // A saved plan takes no selection, --skip included.
    f.run(&["plan", "staging", "production", "-o", "plan.json"]).expect(0);
    f.run_yes(&[
        "promote",
        "staging",
        "production",
        "--plan",
        "plan.json",
        "--skip",
        "cities:2",
    ])
    .expect(2);
    f.run(&["diff", "staging", "production", "--skip", "businesses"])
        .expect(2);

    f.run_yes(&["promote", "staging", "production", "--skip", "businesses:2", "--force"])
        .expect(0);
    assert_eq!(f.ids("production", "businesses"), [1]);
    assert_eq!(f.ids("production", "forms"), [1]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2]);
    f.run_yes(&["promote", "staging", "production"]).expect(0);
    assert_eq!(f.ids("production", "form_fields"), [1, 2, 3]);

    // A parent deleted with a child left out stays too.
    f.exec(
        "staging",
        "DELETE FROM form_fields WHERE form_id = 1; DELETE FROM forms WHERE id = 1;",
    );
    let v = f.diff_json(&["--skip", "form_fields:1", "--table", "forms"]);
    assert_eq!(
        summary(&v),
        [
            s("forms", 1, "skip", Some("left-out")),
            s("form_fields", 1, "skip", Some("left-out")),
            s("form_fields", 2, "delete", None),
        ],
        "{v:#}"
    );
    assert_eq!(entry(&v, "forms", 1).unwrap()["depends_on"], "form_fields:1", "{v:#}");
    f.run_yes(&["promote", "staging", "production", "--skip", "form_fields:1"])
        .expect(0);
    assert_eq!(f.ids("production", "forms"), [1, 2]);
    assert_eq!(f.ids("production", "form_fields"), [1, 3]);
}

#[test]
fn schema_drift_in_one_table_blocks_only_what_touches_it() {
    let f = Fixture::new();
    f.exec("staging", "ALTER TABLE menus ADD COLUMN icon TEXT;");
    f.exec(
        "production",
        "ALTER TABLE form_fields ADD COLUMN hint TEXT NOT NULL DEFAULT '';",
    );
    f.exec("production", "ALTER TABLE form_fields DROP COLUMN position;");

    // check names every drifted table.
    let out = f.run(&["check"]).expect(2);
    for want in ["table `menus`", "table `form_fields`", "icon", "position"] {
        assert!(out.all().contains(want), "`{want}` missing:\n{}", out.all());
    }
    // Everything touches them: refused, naming them.
    let out = f.run(&["diff", "staging", "production"]).expect(2);
    assert!(out.all().contains("menus"), "{}", out.all());
    assert!(
        out.all()
            .contains("can be promoted with --table businesses --table cities"),
        "{}",
        out.all()
    );
    // A selection that does not touch them works: businesses pulls cities,
    // neither has drifted.
    f.run(&["diff", "staging", "production", "--table", "cities"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--table", "businesses", "--force"])
        .expect(0);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
    // forms brings its fields (children), which drifted.
    let out = f.run(&["diff", "staging", "production", "--id", "forms:1"]).expect(2);
    assert!(out.all().contains("form_fields"), "{}", out.all());
    assert!(!out.all().contains("table `menus`"), "{}", out.all());
}

// ---- log and show -----------------------------------------------------

/// `promote ... --yes --force` with FERRY_USER and the login variables
/// removed, then `USER` set to `user` when given; gives the recorded user.
fn promote_as_login(f: &Fixture, user: Option<&str>) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["promote", "staging", "production", "--yes", "--force"])
        .current_dir(f.path())
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_USER")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    if let Some(u) = user {
        cmd.env("USER", u);
    }
    let out = cmd.output().expect("run the ferry binary");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    log[0]["user"].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_acting_user_is_the_login_name_when_neither_as_nor_ferry_user_is_given() {
    let f = Fixture::new();
    // No variable names the user (cron jobs, containers): the system does.
    let id = std::process::Command::new("id").arg("-un").output().expect("id -un");
    let login = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!login.is_empty());
    assert_eq!(promote_as_login(&f, None), login);
    // $USER when it is set.
    f.exec("staging", "UPDATE cities SET name = 'Zürich 2' WHERE id = 2;");
    assert_eq!(promote_as_login(&f, Some("carol")), "carol");
}

#[test]
fn log_lists_promotions_newest_first() {
    let f = Fixture::new();
    let out = f.run(&["log", "production"]).expect(0);
    assert!(out.stdout.contains("No promotions"), "{}", out.stdout);
    assert_eq!(
        f.run(&["log", "production", "--json"]).expect(0).json(),
        serde_json::json!([])
    );

    let first = f.promote(&["--table", "cities"]);
    let second = f.promote(&[]);
    let v = f.run(&["log", "production", "--json"]).expect(0).json();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2, "{v:#}");
    assert_eq!(list[0]["id"], second.as_str());
    assert_eq!(list[1]["id"], first.as_str());
    for r in list {
        assert_eq!(r["from"], "staging");
        assert_eq!(r["to"], "production");
        assert_eq!(r["user"], "tester");
        assert!(r["at"].is_string());
        for k in ["insert", "update", "delete"] {
            assert!(r["counts"][k].is_u64(), "{r}");
        }
    }
    assert_eq!(list[1]["counts"]["insert"], 1, "{v:#}");
    assert_eq!(list[0]["counts"]["insert"], 10, "{v:#}");
    assert_eq!(list[0]["counts"]["update"], 1, "{v:#}");

    // `--as` names the acting user.
    f.exec("staging", "UPDATE cities SET name = 'Lyon 2' WHERE id = 1;");
    // (Lyon was equal, never recorded as synced: first contact, decided.)
    f.run(&["promote", "staging", "production", "--yes", "--force", "--as", "alice"])
        .expect(0);
    let v = f.run(&["log", "--json"]).expect(0).json();
    assert_eq!(v[0]["user"], "alice");
    assert_eq!(v.as_array().unwrap().len(), 3);

    let text = f.run(&["log", "production"]).expect(0).stdout;
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    assert!(text.contains("staging -> production"), "{text}");
    assert!(text.find(&second) < text.find(&first), "newest first:\n{text}");
    let limited = f.run(&["log", "--limit", "1", "--json"]).expect(0).json();
    assert_eq!(limited.as_array().unwrap().len(), 1);
}

#[test]
fn show_lists_every_row_a_promotion_wrote() {
    let f = Fixture::new();
    let id = f.promote(&[]);
    let out = f.run(&["show", &id]).expect(0);
    for want in [
        id.as_str(),
        "cities:2",
        "businesses:1",
        "form_fields:3",
        "Cafe Ole",
        "Café Olé ☕",
        "Zürich 🏔️",
        "👩‍👩‍👧 日本語",
    ] {
        assert!(out.stdout.contains(want), "`{want}` missing from:\n{}", out.stdout);
    }
    let v = f.run(&["show", &id, "--json"]).expect(0).json();
    assert_eq!(v["id"], id.as_str());
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12, "{v:#}");
    let b1 = rows
        .iter()
        .find(|r| r["table"] == "businesses" && r["key"]["id"] == 1)
        .unwrap();
    assert_eq!(b1["action"], "update");
    assert_eq!(b1["before"]["name"], "Cafe Ole", "{b1}");
    assert_eq!(b1["before"]["view_count"], 1234, "the whole before-image: {b1}");
    assert_eq!(b1["after"]["name"], "Café Olé ☕", "{b1}");
    assert!(b1["after"].get("view_count").is_none(), "{b1}");
    let c2 = rows
        .iter()
        .find(|r| r["table"] == "cities" && r["key"]["id"] == 2)
        .unwrap();
    assert_eq!(c2["action"], "insert");
    assert_eq!(c2["before"], J::Null);
}

// ---- revert -----------------------------------------------------------

#[test]
fn revert_restores_the_before_state_exactly() {
    let f = Fixture::new();
    let managed = f.dump_managed("production");
    let plan_before = summary(&f.diff_json(&[]));
    let id = f.promote(&[]);
    assert_ne!(f.dump_managed("production"), managed);

    let out = f.run_yes(&["revert", &id]).expect(0);
    assert!(out.stdout.contains("reverted"), "{}", out.stdout);
    assert_eq!(
        f.dump_managed("production"),
        managed,
        "every managed row is back, byte for byte"
    );
    assert!(f.ferry_tables("production").contains(&"_ferry_journal".to_string()));
    // The sync base is restored too: the same plan as before, first contact included.
    assert_eq!(summary(&f.diff_json(&[])), plan_before);

    let v = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(v[0]["kind"], "revert", "{v:#}");
    assert_eq!(v[0]["reverts"], id.as_str(), "{v:#}");
    assert_eq!(v[1]["reverted_by"], v[0]["id"], "{v:#}");
    // Reverting twice is refused.
    let before = f.dump("production");
    f.run_yes(&["revert", &id]).expect(3);
    assert_eq!(f.dump("production"), before);
}

#[test]
fn revert_leaves_environment_local_columns_alone() {
    let f = Fixture::new();
    let id = f.promote(&[]);
    // Production counts views on its own: not a change to the promoted rows.
    f.exec("production", "UPDATE businesses SET view_count = 5000 WHERE id = 1;");
    f.run_yes(&["revert", &id]).expect(0);
    assert_eq!(
        f.query("production", "SELECT name, view_count, modified_at FROM businesses"),
        [["Cafe Ole", "5000", "2019-05-05 10:00:00"]]
    );
}

#[test]
fn revert_of_a_later_promotion_restores_the_earlier_one() {
    let f = Fixture::new();
    f.promote(&[]);
    let after_first = f.dump_managed("production");
    f.exec(
        "staging",
        "UPDATE businesses SET name = 'Renamed', icon = NULL WHERE id = 2;
         DELETE FROM form_fields WHERE id = 3;
         INSERT INTO cities VALUES (7, 'Basel');",
    );
    let second = f.promote(&[]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2]);
    f.run_yes(&["revert", &second, "--json"]).expect(0);
    assert_eq!(f.dump_managed("production"), after_first);
}

#[test]
fn revert_json_names_the_new_record() {
    let f = Fixture::new();
    let id = f.promote(&["--table", "cities"]);
    let v = f.run_yes(&["revert", &id, "--json"]).expect(0).json();
    assert_eq!(v["reverts"], id.as_str(), "{v}");
    let new = v["promotion"].as_str().unwrap();
    assert!(is_ulid(new) && new != id, "{v}");
    assert_eq!(v["counts"]["delete"], 1, "{v}");
}

#[test]
fn revert_refuses_with_exit_3_when_rows_changed_since_unless_forced() {
    let f = Fixture::new();
    let managed = f.dump_managed("production");
    let id = f.promote(&[]);
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Edited after' WHERE id = 2;",
    );
    let before = f.dump("production");
    let out = f.run_yes(&["revert", &id]).expect(3);
    assert!(out.stderr.contains("businesses:2"), "{}", out.stderr);
    assert!(out.stderr.contains("name"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before, "nothing written");

    f.run_yes(&["revert", &id, "--force"]).expect(0);
    assert_eq!(f.dump_managed("production"), managed);
}

#[test]
fn revert_without_a_terminal_and_without_yes_refuses() {
    let f = Fixture::new();
    let id = f.promote(&[]);
    let before = f.dump("production");
    let out = f.run(&["revert", &id]).expect(2);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);
}

#[test]
fn promotion_ids_are_unique_and_ulid_like() {
    let f = Fixture::new();
    let mut ids = vec![f.promote(&["--table", "cities"])];
    ids.push(f.promote(&["--table", "menus"]));
    ids.push(f.promote(&[]));
    let v = f.run_yes(&["revert", &ids[2], "--json"]).expect(0).json();
    ids.push(v["promotion"].as_str().unwrap().to_string());
    let v = f
        .run(&["baseline", "staging", "production", "--yes", "--json"])
        .expect(0)
        .json();
    ids.push(v["baseline"].as_str().unwrap().to_string());
    for id in &ids {
        assert!(is_ulid(id), "{id}");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    // Time-ordered: the log's order is the order they were made in.
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    let logged: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .rev()
        .collect();
    assert_eq!(logged, ids);
}

#[test]
fn show_and_revert_find_a_promotion_in_any_environment() {
    let f = Fixture::new();
    f.create_db("preprod.db", SCHEMA);
    f.write_config(&CONFIG.replace(
        "pipeline = [\"staging\", \"production\"]",
        "pipeline = [\"staging\", \"preprod\", \"production\"]\n\n[environments.preprod]\nurl = \"sqlite://preprod.db\"",
    ));
    let v = f.run_yes(&["promote", "staging", "preprod", "--json"]).expect(0).json();
    let id = v["promotion"].as_str().unwrap().to_string();
    let shown = f.run(&["show", &id, "--json"]).expect(0).json();
    assert_eq!(shown["to"], "preprod");
    f.run_yes(&["revert", &id]).expect(0);
    assert!(f.ids("preprod", "businesses").is_empty());
    assert!(f.ids("production", "cities").contains(&99));
}

// ---- output hygiene ---------------------------------------------------

#[test]
fn a_closed_pipe_ends_quietly() {
    use std::process::{Command, Stdio};
    let f = Fixture::new();
    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(["diff", "staging", "production"])
            .current_dir(f.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "json={json}: {stderr}");
        assert!(
            out.status.code().is_some_and(|c| c == 0),
            "json={json}: {:?} {stderr}",
            out.status
        );
    }
}

/// `changed`: `diff` says once why it read a table whole, `--full` is
/// accepted everywhere a selection is, and once a promotion recorded the
/// watermark the changed-only diff shows what the full one shows.
#[test]
fn changed_tables_say_why_they_are_read_whole_and_diff_full_agrees() {
    let f = Fixture::new();
    f.write_config(&CONFIG.replace(
        "stamp = { modified_at = \"now\" }",
        "stamp = { modified_at = \"now\" }\nchanged = \"modified_at\"",
    ));
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(
        out.stdout
            .contains("note: `businesses` is read whole: no index starts with `modified_at`"),
        "{}",
        out.stdout
    );
    let v = f.diff_json(&[]);
    assert!(v["notes"][0].as_str().is_some_and(|n| n.contains("no index")), "{v:#}");
    for env in ["staging", "production"] {
        f.exec(
            env,
            "CREATE INDEX businesses_modified_at ON businesses (modified_at);
             UPDATE businesses SET modified_at = '2020-01-01 00:00:00' WHERE modified_at IS NULL;",
        );
    }
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(
        out.stdout.contains("note: `businesses` is read whole: no watermark"),
        "{}",
        out.stdout
    );
    f.promote(&[]);
    f.exec("staging", "UPDATE businesses SET name = 'Renamed' WHERE id = 1");
    f.exec(
        "staging",
        "UPDATE businesses SET modified_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 1",
    );
    let fast = f.diff_json(&[]);
    assert!(
        fast.get("notes").is_none(),
        "the diff reads changed rows only: {fast:#}"
    );
    let full = f.diff_json(&["--full"]);
    assert_eq!(summary(&fast), summary(&full), "{fast:#}\n{full:#}");
    assert!(summary(&fast).contains(&s("businesses", 1, "update", None)), "{fast:#}");
    f.run(&["plan", "staging", "production", "--full"]).expect(0);
    f.run(&["promote", "staging", "production", "--full", "--dry-run"])
        .expect(0);
}

/// `ferry track` installs the trace of deletes where `track_deletes` asks
/// for it (once), refuses without such a table, and a plan then reads the
/// deleted keys from it: `diff` finds the delete with no note of blocks.
#[test]
fn track_installs_the_trace_of_deletes_and_plans_use_it() {
    let f = Fixture::new();
    // Without `track_deletes` anywhere: a usage error naming the setting.
    let out = f.run(&["track", "staging"]).expect(2);
    assert!(out.stderr.contains("track_deletes"), "{}", out.stderr);
    assert!(f.ferry_tables("staging").is_empty(), "nothing written");
    let config = CONFIG.replace(
        "[tables.menus]\nkey = [\"id\"]\n",
        "[tables.menus]\nkey = [\"id\"]\nchanged = \"modified_at\"\ntrack_deletes = true\n",
    );
    f.write_config(&config);
    for env in ["staging", "production"] {
        f.exec(
            env,
            "ALTER TABLE menus ADD COLUMN modified_at TEXT NOT NULL DEFAULT '2020-01-01 00:00:00';\n\
             CREATE INDEX menus_m ON menus (modified_at);",
        );
    }
    // `ferry check` says where the trace is missing: a warning, not a
    // problem (plans compare the keys instead).
    let trace_warnings = |v: &serde_json::Value| -> Vec<String> {
        v["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .filter(|w| w["message"].as_str().is_some_and(|m| m.contains("track_deletes")))
            .map(|w| format!("{} {} {}", w["environment"], w["table"], w["message"]))
            .collect()
    };
    let v = f.run(&["check", "--json"]).expect(0).json();
    let warned = trace_warnings(&v);
    assert_eq!(warned.len(), 2, "{v:#}");
    assert!(
        warned[0].starts_with("\"staging\" \"menus\"") && warned[0].contains("run `ferry track staging`"),
        "{warned:?}"
    );
    let out = f.run(&["check"]).expect(0);
    assert!(out.stdout.contains("run `ferry track production`"), "{}", out.stdout);
    let out = f.run(&["track", "staging"]).expect(0);
    assert!(
        out.stdout
            .contains("Installed the trace of deletes of `menus` in staging"),
        "{}",
        out.stdout
    );
    let v = f.run(&["track", "staging", "--json"]).expect(0).json();
    assert_eq!(v["environment"], "staging", "{v}");
    assert_eq!(v["tables"][0]["table"], "menus", "{v}");
    assert_eq!(v["tables"][0]["created"], false, "installed once: {v}");
    f.run(&["track", "production"]).expect(0);
    let v = f.run(&["check", "--json"]).expect(0).json();
    assert!(trace_warnings(&v).is_empty(), "{v:#}");
    // A trigger dropped by hand: `check` says so again.
    f.exec("production", "DROP TRIGGER _ferry_deleted_menus");
    let v = f.run(&["check", "--json"]).expect(0).json();
    let warned = trace_warnings(&v);
    assert!(
        warned.len() == 1 && warned[0].contains("missing or disabled"),
        "{warned:?}"
    );
    f.run(&["track", "production"]).expect(0);
    // The menus alike on both sides (production has none), then in sync;
    // a delete in staging.
    f.exec(
        "production",
        "INSERT INTO menus (id, parent_id, label) VALUES (1, 3, 'Leaf'), (2, 3, 'Leaf two'), (3, 5, 'Section'), (5, NULL, 'Root');",
    );
    f.run(&["baseline", "staging", "production", "--yes", "--table", "menus"])
        .expect(0);
    f.exec("staging", "DELETE FROM menus WHERE id = 2");
    let v = f
        .run(&["diff", "staging", "production", "--table", "menus", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        summary(&v),
        vec![("menus".to_string(), 2, "delete".to_string(), None)],
        "{v}"
    );
    assert!(v.get("notes").is_none(), "the trace is read, not blocks of keys: {v}");
    let deleted = f.scalar(
        "staging",
        "SELECT group_concat(row_key) FROM _ferry_deleted WHERE kind IS NULL",
    );
    assert_eq!(deleted, "2");
}
