//! `ferry refresh ENV --from ENV2` (issue 18, part 3) on real SQLite files:
//! the preview of unpromoted work, the reset itself (ignored columns and
//! excluded rows kept, stamps as production holds them), excluded rows that
//! block it, its revert, the wrong direction, access and `--json`.

use crate::common::*;

/// The managed rows compared across environments: every column but the
/// ignored `view_count`, excluded rows (QA and dev businesses) left out.
fn comparable(f: &Fixture, env: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (t, cols) in [
        ("cities", "id, name"),
        (
            "businesses",
            "id, name, city_id, hex(icon), modified_at, created_by_team",
        ),
        ("forms", "id, business_id, title"),
        ("form_fields", "id, form_id, label, position"),
        ("menus", "id, parent_id, label"),
    ] {
        let filter = match t {
            "businesses" => " WHERE created_by_team IS NULL OR created_by_team NOT IN ('qa', 'dev')",
            _ => "",
        };
        for mut r in f.query(env, &format!("SELECT {cols} FROM {t}{filter} ORDER BY id")) {
            r.insert(0, t.to_string());
            out.push(r);
        }
    }
    out
}

/// Staging promoted to production (and in sync), then staging edited:
/// unpromoted work a refresh discards.
fn with_unpromoted_work() -> Fixture {
    let f = Fixture::new();
    f.promote(&[]);
    f.run_yes(&["baseline", "staging", "production"]).expect(0);
    f.exec(
        "staging",
        "UPDATE cities SET name = 'Lyon (draft)' WHERE id = 1;
         INSERT INTO cities VALUES (7, 'Unpromoted town');
         UPDATE businesses SET view_count = 42 WHERE id = 1;",
    );
    // Production moves on by itself too: what comes down.
    f.exec("production", "UPDATE cities SET name = 'Bern (prod)' WHERE id = 3;");
    f
}

#[test]
fn a_refresh_lists_the_unpromoted_work_then_resets_staging_to_production_but_its_excluded_rows() {
    let f = with_unpromoted_work();
    let qa_before = f.raw_row(
        "staging",
        "businesses",
        3,
        &["id", "name", "city_id", "view_count", "created_by_team"],
    );
    let out = f.run_yes(&["refresh", "staging", "--from", "production"]).expect(0);
    let text = out.stdout.clone();
    assert!(text.contains("Unpromoted changes of staging"), "{text}");
    assert!(
        text.contains("Lyon (draft)"),
        "the diff of the discarded row is shown:\n{text}"
    );
    assert!(text.contains("Unpromoted town"), "{text}");
    assert!(text.contains("What comes down from production into staging"), "{text}");
    assert!(text.contains("Bern (prod)"), "{text}");
    assert!(text.contains("Undo it with `ferry revert "), "{text}");
    // Staging equals production but for ignored columns and excluded rows.
    assert_eq!(comparable(&f, "staging"), comparable(&f, "production"));
    assert_eq!(
        f.scalar("staging", "SELECT view_count FROM businesses WHERE id = 1"),
        "42"
    );
    assert_eq!(
        f.raw_row(
            "staging",
            "businesses",
            3,
            &["id", "name", "city_id", "view_count", "created_by_team"]
        ),
        qa_before,
        "the QA row stays as staging had it"
    );
    assert_eq!(f.ids("staging", "businesses"), vec![1, 2, 3, 4]);
    // Stamped columns came down as production holds them.
    assert_eq!(
        f.scalar("staging", "SELECT modified_at FROM businesses WHERE id = 2"),
        f.scalar("production", "SELECT modified_at FROM businesses WHERE id = 2")
    );
    // The next diff towards production shows no change.
    let v = f.diff_json(&[]);
    assert!(
        changes(&v)
            .iter()
            .all(|c| c["action"] == "skip" && c["reason"] == "excluded"),
        "{v:#}"
    );
    // Staging edits after the refresh promote as updates (the bases moved).
    f.exec("staging", "UPDATE cities SET name = 'Bern (staging)' WHERE id = 3;");
    let v = f.diff_json(&[]);
    let e = entry(&v, "cities", 3).expect("cities:3 in the diff");
    assert_eq!(e["action"], "update", "{v:#}");
}

#[test]
fn reverting_a_refresh_restores_staging_byte_for_byte() {
    let f = with_unpromoted_work();
    let before = f.dump_managed("staging");
    let out = f
        .run_yes(&["refresh", "staging", "--from", "production", "--json"])
        .expect(0);
    let v = out.json();
    let id = v["refresh"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh id in {v}"))
        .to_string();
    assert_ne!(f.dump_managed("staging"), before);
    let log = f.run(&["log", "staging", "--json"]).expect(0).json();
    assert!(log.to_string().contains("\"refresh\""), "{log}");
    f.run_yes(&["revert", &id]).expect(0);
    assert_eq!(f.dump_managed("staging"), before);
}

#[test]
fn an_excluded_row_referencing_a_deleted_row_refuses_the_refresh_unless_dropped() {
    // Never promoted: city 2 is staging's only, and the dev shop needs it.
    let f = Fixture::new();
    let before = f.dump("staging");
    let out = f.run_yes(&["refresh", "staging", "--from", "production"]).expect(3);
    assert!(
        out.stderr.contains("`businesses:4` references `cities:2`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--drop-excluded"), "{}", out.stderr);
    assert_eq!(f.dump("staging"), before, "nothing written");
    let out = f
        .run_yes(&["refresh", "staging", "--from", "production", "--drop-excluded"])
        .expect(0);
    assert!(out.stdout.contains("businesses:4"), "{}", out.stdout);
    assert_eq!(
        f.ids("staging", "businesses"),
        vec![1, 3],
        "only the blocking dev row is dropped"
    );
    assert_eq!(comparable(&f, "staging"), comparable(&f, "production"));
}

#[test]
fn a_dry_run_shows_the_preview_and_writes_nothing() {
    let f = with_unpromoted_work();
    let before = f.dump("staging");
    let out = f
        .run(&["refresh", "staging", "--from", "production", "--dry-run"])
        .expect(0);
    assert!(out.stdout.contains("Dry run: nothing was written."), "{}", out.stdout);
    assert_eq!(f.dump("staging"), before);
}

#[test]
fn refreshing_against_the_pipeline_is_refused_with_the_command_that_works() {
    let f = Fixture::new();
    let before = f.dump("production");
    let out = f.run_yes(&["refresh", "production", "--from", "staging"]).expect(3);
    assert!(
        out.stderr.contains("ferry refresh staging --from production"),
        "{}",
        out.stderr
    );
    assert_eq!(f.dump("production"), before);
    let audit = f.run(&["audit", "production", "--json"]).expect(0).json().to_string();
    assert!(
        audit.contains("\"refresh\"") && audit.contains("\"blocked\""),
        "{audit}"
    );
    // The promotion against the pipeline now names refresh.
    let out = f.run_yes(&["promote", "production", "staging"]).expect(3);
    assert!(
        out.stderr.contains("with `ferry refresh staging --from production`"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_refresh_right_is_checked_and_a_refusal_audited() {
    let f = with_unpromoted_work();
    f.write_config(&format!(
        "{CONFIG}\n[access]\nusers = {{ alice = [\"pm\"], bob = [\"lead\"] }}\nrefresh = {{ staging = [\"lead\"] }}\n"
    ));
    let before = f.dump("staging");
    let out = f.run_with_env(
        &["refresh", "staging", "--from", "production", "--yes"],
        &[("FERRY_USER", "alice")],
    );
    let out = out.expect(4);
    assert!(out.stderr.contains("may not refresh in `staging`"), "{}", out.stderr);
    assert_eq!(f.dump("staging"), before);
    let audit = f.run(&["audit", "staging", "--json"]).expect(0).json();
    assert!(
        audit.to_string().contains("refresh") && audit.to_string().contains("denied"),
        "{audit:#}"
    );
    f.run_with_env(
        &["refresh", "staging", "--from", "production", "--yes"],
        &[("FERRY_USER", "bob")],
    )
    .expect(0);
}

#[test]
fn the_json_of_a_refresh_has_its_documented_shape() {
    let f = with_unpromoted_work();
    let v = f
        .run_yes(&["refresh", "staging", "--from", "production", "--json"])
        .expect(0)
        .json();
    let keys: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    let mut want = vec![
        "env",
        "from",
        "next",
        "refresh",
        "at",
        "dry_run",
        "counts",
        "discarded",
        "incoming",
        "kept_excluded",
        "dropped_excluded",
        "next_baseline",
        "hooks",
    ];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want, "{v:#}");
    assert_eq!(v["env"], "staging");
    assert_eq!(v["next"], "production");
    assert_eq!(v["kept_excluded"]["businesses"], 2, "{v:#}");
    assert_eq!(v["counts"]["delete"], 1, "the unpromoted city 7: {v:#}");
    assert_eq!(v["discarded"]["to"], "production");
    assert!(changes(&v["discarded"]).iter().any(|c| c["table"] == "cities"), "{v:#}");
    assert_eq!(v["incoming"]["from"], "production");
}

/// A refresh writes `ENV` as a promotion into it does: `ENV`'s checks run
/// first, and a failing one refuses it (exit 3, nothing written); a
/// passing one lets it through.
#[test]
fn a_refresh_runs_the_checks_of_the_environment_it_writes() {
    let f = with_unpromoted_work();
    let before = f.dump_managed("staging");
    let gated = CONFIG.replace(
        "[environments.staging]\n",
        "[environments.staging]\nchecks = [{ sql = \"SELECT count(*) = 0 FROM cities WHERE name = 'Bern (prod)'\", on = \"target\" }]\n",
    );
    assert_ne!(gated, CONFIG, "the staging section is where the test expects it");
    // `Bern (prod)` is not in staging yet: a check that wants it fails.
    f.write_config(&gated.replace("count(*) = 0", "count(*) = 1"));
    let out = f.run_yes(&["refresh", "staging", "--from", "production"]).expect(3);
    assert!(out.all().contains("check #1 of `staging` failed"), "{}", out.all());
    assert_eq!(f.dump_managed("staging"), before, "a refused refresh wrote");
    f.write_config(&gated);
    let out = f
        .run_yes(&["refresh", "staging", "--from", "production", "--json"])
        .expect(0);
    let v = out.json();
    assert_eq!(v["checks"][0]["passed"], true, "{v}");
    assert_eq!(
        f.scalar("staging", "SELECT name FROM cities WHERE id = 3"),
        "Bern (prod)"
    );
}

/// A refresh rewrites ids inside JSON columns and natural-key references
/// exactly as a promotion `production -> staging` would: content types
/// have their own ids in each environment, matched by natural key.
#[test]
fn a_refresh_rewrites_ids_inside_json_through_the_natural_key_mapping() {
    const SCHEMA: &str = "
CREATE TABLE content_types (id INTEGER PRIMARY KEY, app_label TEXT NOT NULL, model TEXT NOT NULL);
CREATE TABLE revisions (id INTEGER PRIMARY KEY, content JSON, content_type_id INTEGER);
";
    const STAGING: &str = r#"
INSERT INTO content_types VALUES (1, 'wagtailcore', 'page'), (31, 'home', 'homepage'), (32, 'blog', 'blogpage');
INSERT INTO revisions VALUES (1, '{"content_type": 32, "title": "draft"}', 32), (4, '{"content_type": 31, "title": "new"}', 31);
"#;
    const PRODUCTION: &str = r#"
INSERT INTO content_types VALUES (1, 'wagtailcore', 'page'), (49, 'home', 'homepage'), (50, 'other', 'thing');
INSERT INTO revisions VALUES (4, '{"content_type": 49, "title": "old"}', 49), (5, '{"content_type": 50, "title": "other"}', 50);
"#;
    let f = Fixture::with(SCHEMA, STAGING, SCHEMA, PRODUCTION);
    f.write_config(
        r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.content_types]
key = ["id"]
natural_key = ["app_label", "model"]

[tables.revisions]
key = ["id"]
references = { content_type_id = "content_types" }
json_references = { content = { "$.content_type" = "content_types" } }
"#,
    );
    f.run_yes(&["refresh", "staging", "--from", "production"]).expect(0);
    // Production's 49 is staging's 31; production's 50 got a staging id.
    let other = f.scalar("staging", "SELECT id FROM content_types WHERE model = 'thing'");
    assert_ne!(other, "50", "the natural-key row kept production's id");
    assert_eq!(
        f.query("staging", "SELECT id, content_type_id FROM revisions ORDER BY id"),
        [
            vec!["4".to_string(), "31".to_string()],
            vec!["5".to_string(), other.clone()]
        ]
    );
    let content = f.scalar("staging", "SELECT content FROM revisions WHERE id = 4");
    assert!(content.contains("31") && content.contains("old"), "{content}");
    let content = f.scalar("staging", "SELECT content FROM revisions WHERE id = 5");
    assert!(content.contains(&other) && !content.contains("50"), "{content}");
    assert_eq!(
        f.scalar("staging", "SELECT count(*) FROM content_types WHERE model = 'blogpage'"),
        "0"
    );
    // And staging now promotes nothing back.
    let diff = f.run(&["diff", "staging", "production", "--json"]).expect(0).json();
    for k in ["insert", "update", "delete", "conflict"] {
        assert_eq!(diff["counts"][k].as_u64(), Some(0), "{k}: {diff}");
    }
}
