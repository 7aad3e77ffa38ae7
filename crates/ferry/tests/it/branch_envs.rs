//! Issue 18, part 1, on SQLite files: a per-branch environment cloned from
//! production, edited, promoted through preprod into production (three-way
//! from the start: no first contact), marked merged and collected by
//! `env gc`, all by the command line; names that collide; the one route a
//! branch environment has.

use serde_json::Value as J;

use crate::common::*;

/// The fixture's configuration with `preprod` between staging and
/// production.
const CONFIG3: &str = r#"pipeline = ["staging", "preprod", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.preprod]
url = "sqlite://preprod.db"

[environments.production]
url = "sqlite://production.db"

[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = { city_id = "cities" }
ignore = ["view_count"]
stamp = { modified_at = "now" }
exclude = "created_by_team IN ('qa', 'dev')"

[tables.forms]
key = ["id"]
references = { business_id = "businesses" }

[tables.form_fields]
key = ["id"]
parent = { form_id = "forms" }

[tables.menus]
key = ["id"]
references = { parent_id = "menus" }
"#;

/// Three environments; preprod and production hold the same rows and are
/// recorded as in sync.
fn three() -> Fixture {
    let f = Fixture::with(SCHEMA, STAGING_DATA, SCHEMA, PRODUCTION_DATA);
    f.create_db("preprod.db", &format!("{SCHEMA}\n{PRODUCTION_DATA}"));
    f.write_config(CONFIG3);
    f.run_yes(&["baseline", "preprod", "production"]).expect(0);
    f
}

fn listed(f: &Fixture) -> Vec<J> {
    f.run(&["env", "list", "--json"])
        .expect(0)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_branch_goes_from_clone_to_production_and_is_collected() {
    let f = three();
    let made = f
        .run(&[
            "env",
            "create",
            "feature/ABC-123_menu",
            "--from",
            "production",
            "--promotes-to",
            "preprod",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(made["name"], "feature-abc-123-menu", "{made}");
    let clone = f.path().join("production-feature-abc-123-menu.db");
    assert!(clone.exists(), "no clone file beside production.db");
    // The clone holds production's managed tables, row for row, and none
    // of Ferry's own.
    assert_eq!(
        f.dump_managed("production-feature-abc-123-menu"),
        f.dump_managed("production")
    );
    assert!(f.ferry_tables("production-feature-abc-123-menu").is_empty());
    // Indexes and keys came along: the schema text is production's.
    assert_eq!(
        f.query(
            "production-feature-abc-123-menu",
            "SELECT sql FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE '\\_ferry%' ESCAPE '\\' AND sql IS NOT NULL ORDER BY name"
        ),
        f.query(
            "production",
            "SELECT sql FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE '\\_ferry%' ESCAPE '\\' AND sql IS NOT NULL ORDER BY name"
        )
    );

    // Edited on the branch; production moves on meanwhile.
    f.exec(
        "production-feature-abc-123-menu",
        "UPDATE cities SET name = 'Lyon (branch)' WHERE id = 1; INSERT INTO cities VALUES (7, 'Genève');",
    );
    f.exec("production", "UPDATE cities SET name = 'Bern (prod)' WHERE id = 3;");

    // The list shows what waits to be promoted into preprod, in its shape.
    let list = listed(&f);
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    for key in [
        "name",
        "branch",
        "from",
        "promotes_to",
        "created_by",
        "created_at",
        "merged_at",
        "expires_at",
    ] {
        assert!(e.get(key).is_some(), "env list --json lacks {key}: {e}");
    }
    assert_eq!(e["branch"], "feature/ABC-123_menu");
    assert_eq!(e["from"], "production");
    assert_eq!(e["promotes_to"], "preprod");
    assert_eq!(e["created_by"], "tester");
    assert_eq!(e["merged_at"], J::Null);
    assert_eq!(e["pending"]["insert"], 1, "{e}");
    assert_eq!(e["pending"]["update"], 1, "{e}");
    assert_eq!(e["pending"]["conflict"], 0, "{e}");

    // Its only route is preprod: production refuses (exit 3), naming it.
    let refused = f
        .run(&["promote", "feature-abc-123-menu", "production", "--yes"])
        .expect(3);
    assert!(
        refused.all().contains("promotes only into `preprod`"),
        "{}",
        refused.all()
    );
    f.run(&["diff", "feature-abc-123-menu", "staging"]).expect(3);

    // Into preprod: three-way from the clone point, nothing to force.
    let d = f
        .run(&["diff", "feature-abc-123-menu", "preprod", "--json"])
        .expect(0)
        .json();
    assert!(
        changes(&d)
            .iter()
            .all(|c| c["reason"] != "no-base" && c["action"] != "conflict"),
        "first contact after a clone: {d:#}"
    );
    f.run(&["promote", "feature-abc-123-menu", "preprod", "--yes"])
        .expect(0);
    f.run(&["promote", "preprod", "production", "--yes"]).expect(0);
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 1"),
        "Lyon (branch)"
    );
    assert_eq!(f.scalar("production", "SELECT name FROM cities WHERE id = 7"), "Genève");
    // Production's own edit stays.
    assert_eq!(
        f.scalar("production", "SELECT name FROM cities WHERE id = 3"),
        "Bern (prod)"
    );
    f.run(&["log", "preprod"]).expect(0);

    // The clone point was recorded in both.
    for env in ["production", "preprod"] {
        let n: i64 = f
            .scalar(
                env,
                "SELECT count(*) FROM _ferry_sync WHERE source_env = 'feature-abc-123-menu'",
            )
            .parse()
            .unwrap_or_default();
        assert!(n > 0, "{env} has no sync base from the branch");
    }

    // Merged, expiring at once, collected.
    let m = f
        .run(&["env", "merged", "feature-abc-123-menu", "--ttl", "0d", "--json"])
        .expect(0)
        .json();
    assert!(m["merged_at"].is_string() && m["expires_at"].is_string(), "{m}");
    let gc = f.run(&["env", "gc"]);
    assert_eq!(gc.code, 2, "gc asks, and without a terminal refuses: {}", gc.all());
    assert!(clone.exists());
    let gc = f.run_yes(&["env", "gc"]).expect(0);
    assert!(gc.stdout.contains("feature-abc-123-menu"), "{}", gc.all());
    assert!(!clone.exists(), "the clone's file is still there");
    for env in ["production", "preprod"] {
        assert_eq!(
            f.scalar(
                env,
                "SELECT count(*) FROM _ferry_sync WHERE source_env = 'feature-abc-123-menu'"
            ),
            "0",
            "{env} still holds sync bases from the destroyed environment"
        );
    }
    assert!(listed(&f).is_empty());
    f.run(&["diff", "feature-abc-123-menu", "preprod"]).expect(2);
}

#[test]
fn colliding_and_long_branch_names_get_the_branch_hash() {
    let f = three();
    let create = |branch: &str| {
        f.run(&["env", "create", branch, "--from", "production", "--json"])
            .expect(0)
            .json()["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(create("Feature/X"), "feature-x");
    let second = create("feature_x");
    assert!(
        second.starts_with("feature-x-") && second.len() == "feature-x-".len() + 6,
        "{second}"
    );
    let long = format!("feature/{}", "very-long-name-".repeat(6));
    let cut = create(&long);
    assert!(cut.len() <= 50, "{cut}");
    // The same branch twice is refused.
    f.run(&["env", "create", "Feature/X", "--from", "production"]).expect(3);
    let names: Vec<String> = listed(&f)
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for n in &names {
        assert!(f.path().join(format!("production-{n}.db")).exists(), "{n}");
    }
    // Promoting to the parent by default; destroy asks, then drops.
    f.run(&["env", "destroy", &second]).expect(2);
    f.run_yes(&["env", "destroy", &second]).expect(0);
    assert!(!f.path().join(format!("production-{second}.db")).exists());
    assert_eq!(listed(&f).len(), 2);
}

#[test]
fn the_envs_right_decides_who_clones_and_destroys() {
    let f = three();
    f.write_config(&format!(
        "{CONFIG3}\n[access]\nusers = {{ alice = [\"pm\"], dave = [\"dev\"] }}\nenvs = {{ production = [\"dev\"] }}\n"
    ));
    let before = std::fs::read_dir(f.path()).unwrap().count();
    let refused = f.run(&["env", "create", "feature-x", "--from", "production", "--as", "alice"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.stderr.contains("clone `production`"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read_dir(f.path()).unwrap().count(),
        before,
        "no clone was made"
    );
    let audit = f.run(&["audit", "production", "--json"]).expect(0).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "env-create" && e["result"] == "denied" && e["user"] == "alice"),
        "{audit}"
    );
    f.run(&["env", "create", "feature-x", "--from", "production", "--as", "dave"])
        .expect(0);
    assert_eq!(listed(&f).len(), 1);
    // Another environment is open to every listed user (the usual default).
    f.run(&["env", "create", "feature-y", "--from", "preprod", "--as", "alice"])
        .expect(0);
    let refused = f.run(&["env", "destroy", "feature-x", "--yes", "--as", "alice"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert_eq!(listed(&f).len(), 2, "nothing destroyed");
    f.run(&["env", "destroy", "feature-x", "--yes", "--as", "dave"])
        .expect(0);
    assert_eq!(listed(&f).len(), 1);
}
