//! What bad input gets (PRODUCT.md): a clear message naming the
//! environment, table, key and column involved, the documented exit code,
//! and nothing written: the target stays byte-for-byte what it was.

use serde_json::Value as J;

use crate::common::{Fixture, Output, CONFIG, PRODUCTION_DATA, SCHEMA, STAGING_DATA};

/// Runs `args` and checks the exit code, that every `words` appears in
/// the output, and that neither database changed.
#[track_caller]
fn refused(f: &Fixture, args: &[&str], code: i32, words: &[&str]) -> Output {
    let (staging, production) = (f.dump("staging"), f.dump("production"));
    let out = f.run(args).expect(code);
    let all = out.all();
    for w in words {
        assert!(all.contains(w), "`{w}` missing from the output of {args:?}:\n{all}");
    }
    assert_eq!(f.dump("staging"), staging, "{args:?} changed staging");
    assert_eq!(f.dump("production"), production, "{args:?} changed production");
    out
}

/// The 1-based line of the first line of `config` containing `needle`.
fn line_of(config: &str, needle: &str) -> usize {
    config
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is not in the config"))
        + 1
}

/// The error is said once: one `error:` line whose message is not repeated
/// (by an error chain printing the same text as its source).
#[track_caller]
fn said_once(out: &Output) {
    let errors = out.stderr.matches("error:").count();
    assert_eq!(errors, 1, "{errors} errors in:\n{}", out.stderr);
    let message = out.stderr.split("error:").nth(1).unwrap_or_default().trim();
    let head: String = message.chars().take(40).collect();
    let n = out.stderr.matches(&head).count();
    assert_eq!(n, 1, "the message is said {n} times:\n{}", out.stderr);
}

// ---- configuration ----------------------------------------------------

#[test]
fn an_unknown_table_in_the_config_is_a_config_error_with_its_line() {
    let f = Fixture::new();
    let config = format!("{CONFIG}\n[tables.banners]\nkey = [\"id\"]\n");
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "[tables.banners]"));
    let out = refused(&f, &["check"], 2, &["banners", &line, "does not exist"]);
    assert!(
        out.stdout.contains("production") && out.stdout.contains("staging"),
        "{}",
        out.stdout
    );
    refused(
        &f,
        &["diff", "staging", "production"],
        2,
        &["banners", &line, "production"],
    );
    let out = refused(
        &f,
        &["promote", "staging", "production", "--yes"],
        2,
        &["banners", &line],
    );
    said_once(&out);
}

#[test]
fn an_unknown_column_in_the_config_is_a_config_error_with_its_line() {
    let f = Fixture::new();
    let config = CONFIG.replace("ignore = [\"view_count\"]", "ignore = [\"view_cnt\"]");
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "view_cnt"));
    for args in [
        &["check"][..],
        &["diff", "staging", "production"],
        &["promote", "staging", "production", "--yes"],
        &["baseline", "staging", "production", "--yes"],
    ] {
        let out = refused(&f, args, 2, &["view_cnt", "businesses", &line, "no such column"]);
        if args[0] != "check" {
            said_once(&out);
        }
    }
    let v = f.run(&["check", "--json"]).expect(2).json();
    assert_eq!(v["ok"], false);
    let p = &v["problems"].as_array().unwrap()[0];
    assert_eq!(p["table"], "businesses", "{p}");
    assert_eq!(p["column"], "view_cnt", "{p}");
    assert!(p["line"].is_u64(), "{p}");
}

#[test]
fn check_reports_every_problem_at_once() {
    let f = Fixture::new();
    let config = format!(
        "{}\n[tables.banners]\nkey = [\"id\"]\n",
        CONFIG
            .replace("ignore = [\"view_count\"]", "ignore = [\"view_cnt\"]")
            .replace("parent = { form_id = \"forms\" }", "parent = { form = \"forms\" }")
    );
    f.write_config(&config);
    let out = refused(&f, &["check"], 2, &["banners", "view_cnt", "`form`"]);
    assert!(out.stdout.contains("problems"), "{}", out.stdout);
}

#[test]
fn a_config_typo_points_at_its_line() {
    let f = Fixture::new();
    let config = CONFIG.replace("[tables.forms]\nkey = [\"id\"]", "[tables.forms]\nkeys = [\"id\"]");
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "keys = "));
    refused(&f, &["check"], 2, &["keys", &line]);
    refused(&f, &["diff", "staging", "production"], 2, &["keys", &line]);

    // Not even TOML.
    let config = CONFIG.replace("[tables.menus]", "[tables.menus");
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "[tables.menus"));
    refused(&f, &["diff", "staging", "production"], 2, &[&line]);

    // A reference to a table that is not managed.
    let config = CONFIG.replace(
        "references = { business_id = \"businesses\" }",
        "references = { business_id = \"business\" }",
    );
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "business_id = \"business\""));
    refused(&f, &["check"], 2, &["`business`", "business_id", &line]);
}

#[test]
fn a_managed_table_without_a_primary_key_needs_a_key() {
    let banners = "CREATE TABLE banners (slug TEXT NOT NULL, title TEXT);";
    let f = Fixture::with(
        &format!("{SCHEMA}{banners}"),
        &format!("{STAGING_DATA}INSERT INTO banners VALUES ('spring', 'Spring sale 🌷');"),
        &format!("{SCHEMA}{banners}"),
        PRODUCTION_DATA,
    );
    let config = format!("{CONFIG}\n[tables.banners]\nexclude = \"slug = 'test'\"\n");
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "[tables.banners]"));
    refused(&f, &["check"], 2, &["banners", "primary key", "key = ", &line]);
    refused(&f, &["diff", "staging", "production"], 2, &["banners", "primary key"]);
    refused(
        &f,
        &["promote", "staging", "production", "--yes"],
        2,
        &["banners", "primary key"],
    );

    // With a `key` it works.
    f.write_config(&format!("{CONFIG}\n[tables.banners]\nkey = [\"slug\"]\n"));
    f.run(&["check"]).expect(0);
    f.run_yes(&["promote", "staging", "production", "--table", "banners"])
        .expect(0);
    assert_eq!(
        f.query("production", "SELECT slug, title FROM banners"),
        [["spring", "Spring sale 🌷"]]
    );
}

#[test]
fn a_url_with_a_password_is_refused_and_never_printed() {
    let f = Fixture::new();
    let config = CONFIG.replace(
        "url = \"sqlite://production.db\"",
        "url = \"postgres://ferry:hunter2@db.example.com/app\"",
    );
    f.write_config(&config);
    let line = format!("line {}", line_of(&config, "hunter2"));
    for args in [
        &["check"][..],
        &["check", "--json"],
        &["diff", "staging", "production"],
        &["diff", "staging", "production", "--json"],
        &["promote", "staging", "production", "--yes"],
        &["log"],
    ] {
        let out = refused(&f, args, 2, &["url_env", "production", &line]);
        assert!(
            !out.all().contains("hunter2"),
            "{args:?} printed the password:\n{}",
            out.all()
        );
    }
}

#[test]
fn a_password_in_a_url_variable_is_never_printed() {
    let f = Fixture::new();
    f.write_config(&CONFIG.replace("url = \"sqlite://production.db\"", "url_env = \"FERRY_PRODUCTION_URL\""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["diff", "staging", "production", "--json"])
        .current_dir(f.path())
        .env("FERRY_PRODUCTION_URL", "postgres://ferry:hunter2@127.0.0.1:9/app")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("production"), "{all}");

    // An unset variable names itself and the environment.
    let out = refused(
        &f,
        &["diff", "staging", "production"],
        2,
        &["FERRY_PRODUCTION_URL", "production"],
    );
    said_once(&out);
}

#[test]
fn a_malformed_url_variable_never_prints_its_password() {
    let f = Fixture::new();
    f.write_config(&CONFIG.replace("url = \"sqlite://production.db\"", "url_env = \"FERRY_PRODUCTION_URL\""));
    for url in [
        "postgres//ferry:hunter2@127.0.0.1:9/x",
        "postgres:/ferry:hunter2@127.0.0.1:9/x",
        "mysql//ferry:hunter2@127.0.0.1:9/x",
        ":hunter2@127.0.0.1",
        "postgres://127.0.0.1:9/x?password=hunter2",
        "mysql://127.0.0.1:9/x?sslmode=disabled&password=hunter2",
    ] {
        for args in [
            &["check"][..],
            &["check", "--json"],
            &["diff", "staging", "production", "--json"],
            &["promote", "staging", "production", "--yes"],
            &["log", "production"],
        ] {
            let out = f.run_with_env(args, &[("FERRY_PRODUCTION_URL", url)]);
            let all = out.all();
            assert_ne!(out.code, 0, "{url} {args:?}: {all}");
            assert!(!all.contains("hunter2"), "{url} {args:?} printed the password:\n{all}");
            assert!(all.contains("production"), "{url} {args:?}: {all}");
        }
    }
}

// ---- environments and databases ---------------------------------------

#[test]
fn an_unknown_environment_is_named() {
    let f = Fixture::new();
    for args in [
        &["diff", "staging", "nowhere"][..],
        &["plan", "nowhere", "production"],
        &["promote", "staging", "nowhere", "--yes"],
        &["baseline", "staging", "nowhere", "--yes"],
        &["log", "nowhere"],
    ] {
        refused(&f, args, 2, &["nowhere", "known: production, staging"]);
    }
}

#[test]
fn an_unknown_promotion_is_named() {
    let f = Fixture::new();
    refused(
        &f,
        &["show", "01NOSUCHPROMOTION000000000"],
        2,
        &["01NOSUCHPROMOTION000000000", "ferry log"],
    );
    refused(
        &f,
        &["revert", "01NOSUCHPROMOTION000000000", "--yes"],
        2,
        &["01NOSUCHPROMOTION000000000"],
    );
}

#[test]
fn a_missing_database_file_names_its_environment_and_is_not_created() {
    let f = Fixture::new();
    std::fs::remove_file(f.production()).unwrap();
    let staging = f.dump("staging");
    for args in [
        &["diff", "staging", "production"][..],
        &["promote", "staging", "production", "--yes"],
        &["baseline", "staging", "production", "--yes"],
        &["log", "production"],
    ] {
        let out = f.run(args);
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
        let all = out.all();
        assert!(all.contains("environment `production`"), "{args:?}:\n{all}");
        assert!(all.contains("production.db"), "{args:?}:\n{all}");
        assert!(all.contains("does not exist"), "{args:?}:\n{all}");
        said_once(&out);
        assert!(!f.production().exists(), "{args:?} created the file");
    }
    let out = f.run(&["check"]).expect(2);
    assert!(out.stdout.contains("unreachable"), "{}", out.stdout);
    assert!(out.stdout.contains("production.db"), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("environment `production`").count(),
        1,
        "said once:\n{}",
        out.stdout
    );
    assert!(!f.production().exists());
    assert_eq!(f.dump("staging"), staging);
}

#[test]
fn a_file_that_is_not_a_database_names_its_environment_and_stays_as_it_was() {
    let f = Fixture::new();
    std::fs::write(f.production(), b"this is not SQLite\n").unwrap();
    let out = f.run(&["promote", "staging", "production", "--yes"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.all().contains("production"), "{}", out.all());
    assert_eq!(std::fs::read(f.production()).unwrap(), b"this is not SQLite\n");
}

#[test]
fn a_managed_table_missing_from_one_database_is_named() {
    let f = Fixture::new();
    f.exec("production", "DROP TABLE menus;");
    let config_line = format!("line {}", line_of(CONFIG, "[tables.menus]"));
    refused(&f, &["check"], 2, &["menus", "production", &config_line]);
    refused(
        &f,
        &["promote", "staging", "production", "--yes"],
        2,
        &["menus", "production"],
    );
}

#[test]
fn a_column_only_one_side_has_is_named() {
    let f = Fixture::new();
    f.exec("production", "ALTER TABLE cities ADD COLUMN population INTEGER;");
    refused(&f, &["check"], 2, &["cities", "population", "production", "ignore"]);
    refused(
        &f,
        &["promote", "staging", "production", "--yes"],
        2,
        &["cities", "population", "ignore"],
    );
}

// ---- selections -------------------------------------------------------

#[test]
fn a_malformed_id_is_a_usage_error() {
    let f = Fixture::new();
    for (id, why) in [
        ("businesses", "TABLE:KEY"),
        ("businesses:", "key is missing"),
        (":1", "table is missing"),
        ("businesses:1,,2", "empty"),
        ("businesses:abc", "abc"),
        ("businesses:1,2", "one value per column"),
    ] {
        for cmd in ["diff", "promote"] {
            let out = refused(
                &f,
                &[cmd, "staging", "production", "--id", id, "--yes"],
                2,
                &["--id", why],
            );
            said_once(&out);
        }
    }
}

#[test]
fn a_malformed_where_is_a_usage_error() {
    let f = Fixture::new();
    for (w, words) in [
        ("businesses", &["--where", "TABLE:"][..]),
        ("businesses:", &["--where", "empty"]),
        ("businesses:1 = 1; DROP TABLE cities", &["--where", ";"]),
        ("businesses:name = ", &["--where", "businesses", "staging"]),
        ("businesses:no_such_column = 1", &["--where", "no_such_column"]),
    ] {
        for cmd in ["diff", "promote"] {
            refused(&f, &[cmd, "staging", "production", "--where", w, "--yes"], 2, words);
        }
    }
    assert_eq!(f.ids("production", "cities"), [1, 3, 99]);
}

#[test]
fn an_unknown_table_in_a_selection_is_named() {
    let f = Fixture::new();
    for sel in [
        &["--id", "nope:1"][..],
        &["--table", "nope"],
        &["--where", "nope:1 = 1"],
    ] {
        for cmd in ["diff", "promote", "baseline"] {
            let mut args = vec![cmd, "staging", "production", "--yes"];
            args.extend_from_slice(sel);
            refused(&f, &args, 2, &["`nope` is not a managed table", "cities"]);
        }
    }
}

#[test]
fn an_id_that_exists_nowhere_is_named() {
    let f = Fixture::new();
    refused(
        &f,
        &["promote", "staging", "production", "--id", "businesses:777", "--yes"],
        2,
        &["businesses:777", "staging", "production"],
    );
}

// ---- data the target cannot take --------------------------------------

#[test]
fn a_row_breaking_a_not_null_constraint_of_the_target_writes_nothing() {
    let production_schema = SCHEMA.replace(
        "    city_id INTEGER REFERENCES cities(id),",
        "    city_id INTEGER NOT NULL REFERENCES cities(id),",
    );
    let f = Fixture::with(
        SCHEMA,
        &format!("{STAGING_DATA}INSERT INTO businesses VALUES (5, 'Nowhere Inc', NULL, NULL, 0, NULL, 'content');"),
        &production_schema,
        PRODUCTION_DATA,
    );
    let out = refused(
        &f,
        &["promote", "staging", "production", "--yes", "--force"],
        1,
        &[
            "environment `production`",
            "table `businesses`",
            "key 5",
            "column `city_id`",
            "nothing was written",
        ],
    );
    said_once(&out);
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log, serde_json::json!([]), "no promotion recorded");
    // The rest of the plan is fine on its own.
    f.run_yes(&["promote", "staging", "production", "--id", "businesses:2"])
        .expect(0);
}

#[test]
fn a_row_breaking_a_check_constraint_of_the_target_names_table_key_and_column() {
    let production_schema = SCHEMA.replace(
        "    title TEXT NOT NULL\n",
        "    title TEXT NOT NULL CHECK (length(title) <= 10)\n",
    );
    assert_ne!(production_schema, SCHEMA);
    let f = Fixture::with(
        SCHEMA,
        &format!("{STAGING_DATA}UPDATE forms SET title = 'A title far too long for production' WHERE id = 2;"),
        &production_schema,
        PRODUCTION_DATA,
    );
    // After an earlier promotion, so the journal exists and must not move either.
    f.run_yes(&["promote", "staging", "production", "--table", "cities"])
        .expect(0);
    refused(
        &f,
        &["promote", "staging", "production", "--yes", "--force"],
        1,
        &["production", "table `forms`", "key 2", "column `title`", "CHECK"],
    );
    let out = f
        .run(&["promote", "staging", "production", "--yes", "--json", "--force"])
        .expect(1);
    let v = out.json();
    assert_eq!(v["error"]["exit"], 1, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("forms"), "{v}");
}

#[test]
fn a_value_the_target_column_cannot_hold_is_refused_at_plan_time() {
    let f = Fixture::new();
    f.exec("staging", "UPDATE forms SET business_id = 'one' WHERE id = 1;");
    for cmd in ["diff", "promote"] {
        refused(
            &f,
            &[cmd, "staging", "production", "--yes"],
            1,
            &["staging", "forms", "key 1", "business_id", "one"],
        );
    }
}

#[test]
fn a_row_that_needs_an_excluded_row_stays_behind_with_it() {
    let f = Fixture::new();
    f.exec(
        "staging",
        "INSERT INTO forms VALUES (3, 3, 'QA form');\n\
         INSERT INTO form_fields VALUES (7, 3, 'QA field', 1);",
    );
    // Shown, with the row each one depends on.
    let v = f.diff_json(&["--table", "forms", "--table", "form_fields"]);
    let form = crate::common::entry(&v, "forms", 3).unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        (&form["action"], &form["reason"]),
        (&J::from("skip"), &J::from("excluded")),
        "{form}"
    );
    assert_eq!(form["depends_on"], "businesses:3", "{form}");
    let field = crate::common::entry(&v, "form_fields", 7).unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        (&field["action"], &field["reason"]),
        (&J::from("skip"), &J::from("excluded")),
        "{field}"
    );
    assert_eq!(field["depends_on"], "forms:3", "{field}");
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(
        out.stdout.contains("stays with businesses:3, which is excluded"),
        "{}",
        out.stdout
    );

    // Asked for by id, nothing is written.
    let before = f.dump("production");
    f.run_yes(&["promote", "staging", "production", "--id", "forms:3"])
        .expect(0);
    assert_eq!(f.dump("production"), before);

    // A full promotion goes through and leaves all three behind.
    f.run_yes(&["promote", "staging", "production", "--force"]).expect(0);
    assert_eq!(f.ids("production", "forms"), [1, 2]);
    assert_eq!(f.ids("production", "form_fields"), [1, 2, 3]);
    assert_eq!(f.ids("production", "businesses"), [1, 2]);
}

#[test]
fn a_reference_to_a_row_that_exists_nowhere_blocks_the_plan() {
    let f = Fixture::new();
    f.exec("staging", "INSERT INTO forms VALUES (4, 77, 'Orphan');");
    for args in [
        &["promote", "staging", "production", "--id", "forms:4", "--yes"][..],
        &["promote", "staging", "production", "--yes"],
        &["diff", "staging", "production", "--table", "forms"],
    ] {
        refused(
            &f,
            args,
            1,
            &[
                "table `forms`",
                "key 4",
                "column `business_id`",
                "businesses:77",
                "staging",
                "production",
            ],
        );
    }
    // The same for a child whose parent is missing.
    f.exec(
        "staging",
        "DELETE FROM forms WHERE id = 4; INSERT INTO form_fields VALUES (9, 404, 'Lost', 1);",
    );
    refused(
        &f,
        &["promote", "staging", "production", "--yes"],
        1,
        &["table `form_fields`", "key 9", "column `form_id`", "forms:404"],
    );
}

#[test]
fn revert_refuses_rows_deleted_since() {
    let f = Fixture::new();
    let id = f.promote(&["--table", "cities"]);
    f.exec("production", "DELETE FROM cities WHERE id = 2;");
    refused(
        &f,
        &["revert", &id, "--yes"],
        3,
        &["cities:2", "deleted since", "--force"],
    );
}

#[test]
fn a_file_that_is_not_a_plan_is_refused() {
    let f = Fixture::new();
    std::fs::write(f.path().join("plan.json"), "{\"not\": \"a plan\"}").unwrap();
    refused(
        &f,
        &["promote", "staging", "production", "--plan", "plan.json", "--yes"],
        2,
        &["plan.json"],
    );
    let out = refused(
        &f,
        &["promote", "staging", "production", "--plan", "missing.json", "--yes"],
        1,
        &["missing.json"],
    );
    said_once(&out);
}

#[test]
fn a_baseline_has_nothing_to_revert() {
    let f = Fixture::new();
    let v = f
        .run(&["baseline", "staging", "production", "--yes", "--json"])
        .expect(0)
        .json();
    let id = v["baseline"].as_str().unwrap().to_string();
    refused(&f, &["revert", &id, "--yes"], 2, &[&id, "baseline"]);
}
