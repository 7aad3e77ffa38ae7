//! Issue 14, "what a reviewer sees": the text output of `diff`, `plan`,
//! `promote`'s preview, `show`, `revert` and `baseline` shows every field
//! of a row that arrives or leaves (long values folded with a visible "...
//! N more bytes", NULLs as NULL), says which value a skipped row keeps, and
//! shows the id that is written where a natural-key mapping rewrites it.

use serde_json::Value as J;

use crate::common::*;

/// A table with eight fields besides its key, of several kinds.
const WIDE_SCHEMA: &str = "
CREATE TABLE things (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT,
    note TEXT,
    price REAL,
    qty INTEGER,
    icon BLOB,
    slug TEXT,
    flag INTEGER
);
";

/// Things 2 and 3 are on both sides (and baselined); staging then adds
/// thing 1 and drops thing 2 (see [`wide`]).
const WIDE_BOTH: &str = "
INSERT INTO things VALUES (2, 'Old thing', 'old body', 'gone soon', 1.5, 3, x'0102', 'old-thing', 0);
INSERT INTO things VALUES (3, 'Kept', NULL, NULL, NULL, NULL, NULL, 'kept', 0);
";

const WIDE_CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.things]
key = ["id"]
"#;

/// A 200-byte body: 60 characters are shown, 140 bytes folded.
fn long_body() -> String {
    format!("{}{}", "b".repeat(60), "z".repeat(140))
}

fn wide() -> Fixture {
    let f = Fixture::with(WIDE_SCHEMA, WIDE_BOTH, WIDE_SCHEMA, WIDE_BOTH);
    f.write_config(WIDE_CONFIG);
    f.run_yes(&["baseline", "staging", "production"]).expect(0);
    f.exec(
        "staging",
        &format!(
            "INSERT INTO things VALUES (1, 'New thing ✨', '{}', NULL, 9.25, 42, x'00ff10', 'new-thing', 1);
             DELETE FROM things WHERE id = 2;",
            long_body()
        ),
    );
    f
}

/// The indented lines under the entry line that contains `head`.
fn entry_lines<'a>(text: &'a str, head: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.contains(head));
    assert!(lines.next().is_some(), "no line with `{head}` in:\n{text}");
    lines.take_while(|l| l.starts_with("               ")).collect()
}

/// Asserts the insert of thing 1 shows all eight fields, the NULL and the
/// folded body.
#[track_caller]
fn shows_the_whole_insert(text: &str) {
    let lines = entry_lines(text, "+ insert   id=1");
    let want = [
        "body: \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\" ... 140 more bytes",
        "flag: 1",
        "icon: <3 bytes",
        "note: NULL",
        "price: 9.25",
        "qty: 42",
        "slug: \"new-thing\"",
        "title: \"New thing ✨\"",
    ];
    assert_eq!(lines.len(), want.len(), "every field, one per line:\n{text}");
    for (line, w) in lines.iter().zip(want) {
        assert!(
            line.trim_start().starts_with(w),
            "`{w}` expected, got `{line}` in:\n{text}"
        );
    }
    assert!(!text.contains(&"z".repeat(141)), "the long value is folded:\n{text}");
}

/// Asserts the delete of thing 2 shows every field it removes.
#[track_caller]
fn shows_the_whole_delete(text: &str) {
    let lines = entry_lines(text, "- delete   id=2");
    let want = [
        "body: \"old body\"",
        "flag: 0",
        "icon: <2 bytes",
        "note: \"gone soon\"",
        "price: 1.5",
        "qty: 3",
        "slug: \"old-thing\"",
        "title: \"Old thing\"",
    ];
    assert_eq!(lines.len(), want.len(), "every field, one per line:\n{text}");
    for (line, w) in lines.iter().zip(want) {
        assert!(
            line.trim_start().starts_with(w),
            "`{w}` expected, got `{line}` in:\n{text}"
        );
    }
}

#[test]
fn inserts_and_deletes_show_every_field_in_diff_plan_and_the_promote_preview() {
    let f = wide();
    let diff = f.run(&["diff", "staging", "production"]).expect(0).stdout;
    shows_the_whole_insert(&diff);
    shows_the_whole_delete(&diff);
    let plan = f.run(&["plan", "staging", "production"]).expect(0).stdout;
    shows_the_whole_insert(&plan);
    shows_the_whole_delete(&plan);
    let preview = f
        .run(&["promote", "staging", "production", "--dry-run"])
        .expect(0)
        .stdout;
    shows_the_whole_insert(&preview);
    shows_the_whole_delete(&preview);

    // The JSON of a delete carries the row it removes, field by field.
    let v = f.diff_json(&[]);
    let d = entry(&v, "things", 2).unwrap_or_else(|| panic!("things:2 missing: {v:#}"));
    let fields = d["fields"].as_array().cloned().unwrap_or_default();
    assert_eq!(fields.len(), 8, "{d:#}");
    let title = fields
        .iter()
        .find(|x| x["column"] == "title")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&title["target"], &title["source"]),
        (&J::from("Old thing"), &J::Null),
        "{d:#}"
    );

    // `show` lists every field the promotion wrote, and the deleted row.
    let id = f.promote(&[]);
    let show = f.run(&["show", &id]).expect(0).stdout;
    for want in [
        "note: NULL",
        "title: \"New thing ✨\"",
        "... 140 more bytes",
        "title: \"Old thing\"",
        "note: \"gone soon\"",
    ] {
        assert!(show.contains(want), "`{want}` missing from show:\n{show}");
    }
}

#[test]
fn a_target_newer_row_says_which_value_is_kept() {
    let f = Fixture::new();
    f.promote(&[]);
    f.exec(
        "production",
        "UPDATE businesses SET name = 'Fixed in production ✍️' WHERE id = 2;",
    );
    let out = f.run(&["diff", "staging", "production"]).expect(0).stdout;
    let lines = entry_lines(&out, "skip     id=2");
    assert_eq!(
        lines.iter().map(|l| l.trim()).collect::<Vec<_>>(),
        ["name: kept in the target: \"Fixed in production ✍️\" (the source has \"Bäckerei 🥨 👩‍👩‍👧 日本語\")"],
        "{out}"
    );
    assert!(!lines[0].contains("->"), "no arrow toward the target: {}", lines[0]);
}

const NK_SCHEMA: &str = "
CREATE TABLE labels (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT NOT NULL, label_id INTEGER REFERENCES labels(id));
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

#[test]
fn a_reference_to_a_new_natural_key_row_shows_the_id_the_target_assigns() {
    let f = Fixture::with(
        NK_SCHEMA,
        "INSERT INTO labels VALUES (1, 'news'), (3, 'staging only');
         INSERT INTO items VALUES (1, 'Matched', 1), (3, 'New label', 3);",
        NK_SCHEMA,
        "INSERT INTO labels VALUES (11, 'news'), (12, 'prod only');",
    );
    f.write_config(NK_CONFIG);
    let out = f.run(&["diff", "staging", "production"]).expect(0).stdout;
    let (labels, items) = out
        .split_once("\nitems\n")
        .unwrap_or_else(|| panic!("no items section:\n{out}"));
    // A matched label: the mapped id is what is written.
    let item1 = entry_lines(items, "+ insert   id=1");
    assert!(item1.iter().any(|l| l.trim() == "label_id: 11"), "{out}");
    // A new label: its id is the target's to assign, not staging's 3.
    let item3: Vec<&str> = entry_lines(items, "+ insert   id=3").iter().map(|l| l.trim()).collect();
    assert!(
        item3.contains(&"label_id: the id production assigns to the new labels:3 (3 in staging)"),
        "{out}"
    );
    assert!(!item3.contains(&"label_id: 3"), "{out}");
    let label3 = labels
        .lines()
        .find(|l| l.contains("+ insert   id=3"))
        .unwrap_or_else(|| panic!("labels:3 not inserted:\n{out}"));
    assert!(label3.contains("new: production assigns its id"), "{label3}");

    let v = f.diff_json(&[]);
    assert_eq!(
        entry(&v, "items", 3).unwrap()["deferred"],
        serde_json::json!(["label_id"]),
        "{v:#}"
    );
}

#[test]
fn the_revert_preview_shows_what_the_revert_does() {
    let f = wide();
    f.exec("staging", "UPDATE things SET title = 'Renamed' WHERE id = 3;");
    let id = f.promote(&[]);
    // No terminal and no --yes: the preview, then a refusal; nothing written.
    let before = f.dump("production");
    let out = f.run(&["revert", &id]).expect(2);
    assert_eq!(f.dump("production"), before);
    let text = out.stdout;
    assert!(
        text.starts_with(&format!(
            "Reverting {id} (staging -> production, promote by tester) in production: 1 row(s) restored to their before-image, 1 removed, 1 re-inserted.\n"
        )),
        "{text}"
    );
    // Children first, as the revert goes: the inserted row is deleted, the
    // updated row goes back, the deleted row comes back whole.
    let deleted = entry_lines_after(&text, "- delete  things:1");
    assert!(deleted.contains(&"title: \"New thing ✨\""), "{text}");
    assert!(deleted.contains(&"note: NULL"), "{text}");
    let restored = entry_lines_after(&text, "~ restore things:3");
    assert!(restored.contains(&"title: \"Renamed\" -> \"Kept\""), "{text}");
    let reinserted = entry_lines_after(&text, "+ insert  things:2");
    assert_eq!(reinserted.len(), 8, "every field of the row it re-inserts: {text}");
    assert!(reinserted.contains(&"title: \"Old thing\""), "{text}");
    // Not the promotion's forward change.
    assert!(!text.contains("\"Kept\" -> \"Renamed\""), "{text}");
}

/// The trimmed indented lines under the line containing `head`.
fn entry_lines_after<'a>(text: &'a str, head: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.contains(head));
    assert!(lines.next().is_some(), "no line with `{head}` in:\n{text}");
    lines
        .take_while(|l| l.starts_with("              "))
        .map(str::trim)
        .collect()
}

/// Runs `ferry ARGS` in `dir` on a terminal (util-linux `script`), typing
/// `input`. `None` when `script` is not there (a failure under `CI=true`).
fn on_terminal(dir: &std::path::Path, args: &[&str], input: &str) -> Option<Output> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_ferry");
    let line = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir)
        .env("FERRY_USER", "tester")
        .env("NO_COLOR", "1")
        .env("CLICOLOR", "0")
        .env("SHELL", "/bin/sh")
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI=true needs util-linux `script` for the terminal tests: {e}"
            );
            eprintln!("SKIP: no `script` to run ferry on a terminal: {e}");
            return None;
        }
    };
    // Typed once the question is up (the first read of the terminal).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("script runs");
    Some(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[test]
fn baseline_on_a_terminal_shows_its_preview_once_then_one_line() {
    let f = Fixture::new();
    let Some(out) = on_terminal(f.path(), &["baseline", "staging", "production"], "y\n") else {
        return;
    };
    let out = out.expect(0);
    let text = &out.stdout;
    assert_eq!(text.matches("would record").count(), 1, "{text}");
    assert_eq!(text.matches("row(s) differ").count(), 1, "the preview once: {text}");
    assert_eq!(
        text.lines().filter(|l| l.trim() == "businesses").count(),
        1,
        "the differing rows once: {text}"
    );
    let last = text.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.contains("Done: baseline ") && last.contains("recorded 2 equal row(s) as in sync in production"),
        "one line of result: {text}"
    );
}

#[test]
fn baseline_with_yes_names_the_baseline_it_recorded() {
    let f = Fixture::new();
    let out = f.run_yes(&["baseline", "staging", "production"]).expect(0).stdout;
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    let id = log[0]["id"].as_str().unwrap_or_else(|| panic!("{log:#}"));
    assert!(
        out.starts_with(&format!(
            "staging -> production: recorded 2 equal row(s) as in sync (baseline {id}).\n"
        )),
        "{out}"
    );
}

#[test]
fn baseline_against_the_pipeline_suggests_the_diff_that_is_accepted() {
    let f = Fixture::new();
    let out = f
        .run(&["baseline", "production", "staging", "--dry-run"])
        .expect(0)
        .stdout;
    assert!(
        out.contains("`production` -> `staging` is against the pipeline; `ferry diff staging production` shows them"),
        "{out}"
    );
    assert!(!out.contains("ferry diff production staging"), "{out}");
    // The suggested command is accepted.
    f.run(&["diff", "staging", "production"]).expect(0);
    f.run(&["diff", "production", "staging"]).expect(3);
}

#[test]
fn a_quick_command_on_a_terminal_draws_no_progress_bar() {
    let f = Fixture::new();
    let Some(out) = on_terminal(f.path(), &["diff", "staging", "production"], "") else {
        return;
    };
    let out = out.expect(0);
    // Before: a spinner per table flickered ("⠁ cities 0 rows 0/s").
    assert!(!out.stdout.contains("/s"), "{:?}", out.stdout);
    assert!(!out.stdout.contains('\u{1b}'), "no terminal escapes: {:?}", out.stdout);
    assert!(out.stdout.starts_with("staging -> production:"), "{:?}", out.stdout);
}

/// Runs a command line printed by Ferry (`ferry ...`, shell-quoted) with
/// the real binary, through `sh`, in the fixture's folder.
fn run_printed(f: &Fixture, line: &str) -> Output {
    let rest = line
        .strip_prefix("ferry ")
        .unwrap_or_else(|| panic!("not a ferry command: {line}"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("\"$FERRY_BIN\" {rest}"))
        .current_dir(f.path())
        .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_USER", "tester")
        .env("NO_COLOR", "1")
        .env_remove("FERRY_CONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("sh runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_apply_hint_of_a_plan_keeps_its_selection() {
    let f = Fixture::new();
    let out = f
        .run(&["plan", "staging", "production", "--where", "cities:name = 'Zürich 🏔️'"])
        .expect(0)
        .stdout;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Apply it with: "))
        .unwrap_or_else(|| panic!("no hint:\n{out}"));
    assert_eq!(
        line, "ferry promote staging production --where 'cities:name = '\\''Zürich 🏔️'\\'''",
        "{out}"
    );
    // The printed command promotes exactly that plan: one city, not everything.
    let v = run_printed(&f, &format!("{line} --dry-run --json")).expect(0).json();
    assert_eq!(
        v["counts"],
        serde_json::json!({"insert": 1, "update": 0, "delete": 0}),
        "{v:#}"
    );
}

#[test]
fn the_apply_hint_of_a_plan_with_conflicts_says_how_to_decide_them() {
    let f = Fixture::new();
    f.run_yes(&["baseline", "staging", "production"]).expect(0);
    f.promote(&[]);
    f.exec("staging", "UPDATE cities SET name = 'Lyon S' WHERE id = 1;");
    f.exec("production", "UPDATE cities SET name = 'Lyon P' WHERE id = 1;");
    f.exec("staging", "INSERT INTO cities VALUES (5, 'Basel');");
    let out = f.run(&["plan", "staging", "production"]).expect(0).stdout;
    assert!(
        !out.contains("Apply it with"),
        "promote would refuse it as it is:\n{out}"
    );
    assert!(
        out.contains("1 conflict(s) refuse it as it is: decide each with `ferry promote staging production --id TABLE:KEY --take source|target`, or let `staging` win them all with `ferry promote staging production --force`"),
        "{out}"
    );
    run_printed(&f, "ferry promote staging production --id cities:1 --take target --yes").expect(0);
}

#[test]
fn a_route_against_the_pipeline_names_a_command_that_exists() {
    let f = Fixture::new();
    let out = f.run_yes(&["promote", "production", "staging"]).expect(3);
    assert!(
        out.stderr
            .contains("refresh it from `production` with `ferry refresh staging --from production`"),
        "{}",
        out.stderr
    );
    // The command it names is accepted.
    f.run(&[
        "refresh",
        "staging",
        "--from",
        "production",
        "--drop-excluded",
        "--dry-run",
    ])
    .expect(0);
}

#[test]
fn the_hint_of_a_saved_plan_quotes_its_path_and_runs() {
    let f = Fixture::new();
    let out = f
        .run(&[
            "plan",
            "staging",
            "production",
            "--table",
            "cities",
            "-o",
            "my plan.json",
        ])
        .expect(0)
        .stdout;
    let line = out
        .lines()
        .find_map(|l| l.split_once("Apply exactly this plan with: ").map(|(_, c)| c))
        .unwrap_or_else(|| panic!("no hint:\n{out}"));
    assert_eq!(line, "ferry promote staging production --plan 'my plan.json'", "{out}");
    let v = run_printed(&f, &format!("{line} --dry-run --json")).expect(0).json();
    assert_eq!(v["counts"]["insert"], 1, "{v:#}");
}

#[test]
fn the_undo_hint_names_revert_only_to_someone_who_may_run_it() {
    let f = Fixture::new();
    f.write_config(&format!(
        "{CONFIG}\n[access]\nusers = {{ alice = [\"pm\"], bob = [\"pm\", \"lead\"] }}\npromote = {{ production = [\"pm\"] }}\nrevert = {{ production = [\"lead\"] }}\n"
    ));
    let out = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--table",
            "cities",
            "--yes",
            "--as",
            "alice",
        ])
        .expect(0)
        .stdout;
    assert!(!out.contains("Undo it with"), "alice may not revert:\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("To undo it, someone who holds `revert` in production runs: ferry revert "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("needs one of the roles lead"), "{line}");
    let id = line
        .split("ferry revert ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    f.run(&["revert", &id, "--yes", "--as", "alice"]).expect(4);

    f.exec("staging", "UPDATE cities SET name = 'Bern 2' WHERE id = 3;");
    let out = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--table",
            "cities",
            "--yes",
            "--force",
            "--as",
            "bob",
        ])
        .expect(0)
        .stdout;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Undo it with: "))
        .unwrap_or_else(|| panic!("bob may revert:\n{out}"));
    run_printed(&f, &format!("{line} --yes --as bob")).expect(0);
}

#[test]
fn the_apply_hint_is_for_someone_who_may_promote() {
    let f = Fixture::new();
    f.write_config(&format!(
        "{CONFIG}\n[access]\nusers = {{ alice = [\"pm\"], carol = [\"qa\"] }}\npromote = {{ production = [\"pm\"] }}\n"
    ));
    let out = f
        .run(&["plan", "staging", "production", "--as", "carol"])
        .expect(0)
        .stdout;
    assert!(!out.contains("Apply it with"), "{out}");
    assert!(
        out.contains("Promoting it needs the `promote` right in production: user `carol` (roles: qa) may not promote in `production`"),
        "{out}"
    );
    let out = f
        .run(&["plan", "staging", "production", "--as", "alice"])
        .expect(0)
        .stdout;
    // The fixture's first-contact row is a conflict: the hint decides it.
    assert!(
        out.contains("let `staging` win them all with `ferry promote staging production --force`"),
        "{out}"
    );
}
