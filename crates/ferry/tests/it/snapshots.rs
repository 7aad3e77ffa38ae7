//! Snapshots of what the commands print (issue 16): every command that
//! prints data, with `--json` (and the text of the main ones), on the
//! SQLite fixture. They guard the output while the code behind it moves:
//! a snapshot that changes is a change of the CLI's output.
//!
//! Ids (ULIDs) become `[id-N]` in order of first appearance, so the
//! relations between them stay visible (the promotion `log` lists is the
//! one `promote` printed); times of this run become `[time]`, the fixture's
//! folder `[dir]`. The fixture's own dates (2019, 2020) are data and stay.

use serde_json::Value as J;

use crate::common::{Fixture, Output, CONFIG};

/// Replaces what changes from run to run in `text`: see the module doc.
struct Redactor {
    dir: String,
    ids: Vec<String>,
}

impl Redactor {
    fn new(f: &Fixture) -> Redactor {
        // The folder as the binary sees it (it runs in it; macOS and some
        // Linux set-ups show it through a symlink).
        let dir = f.path().canonicalize().unwrap_or_else(|_| f.path().to_path_buf());
        Redactor {
            dir: dir.display().to_string(),
            ids: Vec::new(),
        }
    }

    fn text(&mut self, text: &str) -> String {
        let text = text.replace(&self.dir, "[dir]");
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < chars.len() {
            let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
            if boundary {
                if let Some(n) = ulid_at(&chars[i..]) {
                    let id: String = chars[i..i + n].iter().collect();
                    let index = match self.ids.iter().position(|x| *x == id) {
                        Some(p) => p,
                        None => {
                            self.ids.push(id);
                            self.ids.len() - 1
                        }
                    };
                    out.push_str(&format!("[id-{}]", index + 1));
                    i += n;
                    continue;
                }
                if let Some(n) = time_at(&chars[i..]) {
                    out.push_str("[time]");
                    i += n;
                    continue;
                }
            }
            out.push(chars[i]);
            i += 1;
        }
        out
    }

    fn json(&mut self, v: &J) -> J {
        match v {
            J::String(s) => J::String(self.text(s)),
            J::Array(a) => J::Array(a.iter().map(|x| self.json(x)).collect()),
            J::Object(o) => J::Object(o.iter().map(|(k, x)| (self.text(k), self.json(x))).collect()),
            other => other.clone(),
        }
    }
}

/// The length of a ULID (26 characters of Crockford's base32, upper case,
/// starting with a digit: this century's times) at the start of `s`, when
/// it is one and no letter or digit follows it.
fn ulid_at(s: &[char]) -> Option<usize> {
    const N: usize = 26;
    let crockford = |c: &char| c.is_ascii_digit() || (c.is_ascii_uppercase() && !"ILOU".contains(*c));
    if s.len() < N || !s[0].is_ascii_digit() || !s[..N].iter().all(crockford) {
        return None;
    }
    if s.get(N).is_some_and(char::is_ascii_alphanumeric) {
        return None;
    }
    // Words of capitals and digits only: at least one letter and one digit
    // besides the first.
    (s[1..N].iter().any(char::is_ascii_uppercase)).then_some(N)
}

/// The length of a time of this run (`2026-12-06T09:41:28.123456Z`, or
/// with a space and `+00:00`) at the start of `s`: any time from 2024 on
/// (the fixture's own data is older).
fn time_at(s: &[char]) -> Option<usize> {
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| s.get(i).is_some_and(char::is_ascii_digit));
    let is = |i: usize, c: char| s.get(i) == Some(&c);
    if !(digits(0..4) && is(4, '-') && digits(5..7) && is(7, '-') && digits(8..10)) {
        return None;
    }
    if !((is(10, 'T') || is(10, ' '))
        && digits(11..13)
        && is(13, ':')
        && digits(14..16)
        && is(16, ':')
        && digits(17..19))
    {
        return None;
    }
    let year: u32 = s[0..4].iter().collect::<String>().parse().ok()?;
    if year < 2024 {
        return None;
    }
    let mut n = 19;
    if is(n, '.') {
        n += 1;
        while s.get(n).is_some_and(char::is_ascii_digit) {
            n += 1;
        }
    }
    if is(n, 'Z') {
        n += 1;
    } else if (is(n, '+') || is(n, '-')) && digits(n + 1..n + 3) && is(n + 3, ':') && digits(n + 4..n + 6) {
        n += 6;
    }
    Some(n)
}

/// stdout as JSON, redacted.
fn json(r: &mut Redactor, out: &Output) -> J {
    r.json(&out.json())
}

/// The fixture with `extra` appended to its configuration.
fn fixture(extra: &str) -> Fixture {
    let f = Fixture::new();
    f.write_config(&format!("{CONFIG}\n{extra}\n"));
    f
}

/// Config with production under review.
fn review_config() -> String {
    CONFIG.replace(
        "[environments.production]\nurl = \"sqlite://production.db\"\n",
        "[environments.production]\nurl = \"sqlite://production.db\"\nreview = true\n",
    )
}

#[test]
fn diff_plan_promote_log_show_revert() {
    let f = Fixture::new();
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!("check", json(&mut r, &f.run(&["check", "--json"]).expect(0)));
    insta::assert_json_snapshot!(
        "diff",
        json(&mut r, &f.run(&["diff", "staging", "production", "--json"]).expect(0))
    );
    insta::assert_snapshot!(
        "diff_text",
        r.text(&f.run(&["diff", "staging", "production"]).expect(0).stdout)
    );
    insta::assert_snapshot!(
        "plan_text",
        r.text(
            &f.run(&["plan", "staging", "production", "--id", "forms:2"])
                .expect(0)
                .stdout
        )
    );
    insta::assert_json_snapshot!(
        "diff_selection",
        json(
            &mut r,
            &f.run(&["diff", "staging", "production", "--id", "forms:2", "--json"])
                .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "plan_saved",
        json(
            &mut r,
            &f.run(&[
                "plan",
                "staging",
                "production",
                "--table",
                "menus",
                "-o",
                "menus.plan",
                "--json"
            ])
            .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "promote_dry_run",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--dry-run", "--force", "--json"])
                .expect(0)
        )
    );
    // Refusals: conflicts, no terminal, an unknown table, a saved plan with a selection.
    insta::assert_json_snapshot!(
        "error_conflict",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--yes", "--json"])
                .expect(3)
        )
    );
    insta::assert_json_snapshot!(
        "error_no_terminal",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--force", "--json"])
                .expect(2)
        )
    );
    insta::assert_json_snapshot!(
        "error_unknown_table",
        json(
            &mut r,
            &f.run(&["diff", "staging", "production", "--table", "shops", "--json"])
                .expect(2)
        )
    );
    insta::assert_json_snapshot!(
        "error_take_without_id",
        json(
            &mut r,
            &f.run(&[
                "promote",
                "staging",
                "production",
                "--take",
                "source",
                "--yes",
                "--json"
            ])
            .expect(2)
        )
    );
    insta::assert_json_snapshot!(
        "error_against_pipeline",
        json(&mut r, &f.run(&["diff", "production", "staging", "--json"]).expect(3))
    );
    insta::assert_snapshot!(
        "promote_text",
        r.text(
            &f.run(&["promote", "staging", "production", "--id", "cities:2", "--yes"])
                .expect(0)
                .stdout
        )
    );
    insta::assert_json_snapshot!(
        "promote",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--force", "--yes", "--json"])
                .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "promote_nothing",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--yes", "--json"])
                .expect(0)
        )
    );
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    let last = log[0]["id"].as_str().expect("a promotion id").to_string();
    insta::assert_json_snapshot!("log", r.json(&log));
    insta::assert_snapshot!("log_text", r.text(&f.run(&["log"]).expect(0).stdout));
    insta::assert_json_snapshot!("show", json(&mut r, &f.run(&["show", &last, "--json"]).expect(0)));
    insta::assert_snapshot!("show_text", r.text(&f.run(&["show", &last]).expect(0).stdout));
    // The preview, then the refusal without a terminal (what the preview is for).
    let preview = f.run(&["revert", &last]).expect(2);
    insta::assert_snapshot!("revert_preview", r.text(&preview.stdout));
    insta::assert_json_snapshot!(
        "error_revert_no_terminal",
        json(&mut r, &f.run(&["revert", &last, "--json"]).expect(2))
    );
    insta::assert_json_snapshot!(
        "revert",
        json(&mut r, &f.run(&["revert", &last, "--yes", "--json"]).expect(0))
    );
    insta::assert_json_snapshot!(
        "error_revert_twice",
        json(&mut r, &f.run(&["revert", &last, "--yes", "--json"]).expect(3))
    );
    insta::assert_json_snapshot!("audit", json(&mut r, &f.run(&["audit", "--json"]).expect(0)));
    insta::assert_json_snapshot!(
        "error_unknown_promotion",
        json(
            &mut r,
            &f.run(&["show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--json"]).expect(2)
        )
    );
}

#[test]
fn baseline() {
    let f = Fixture::new();
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!(
        "baseline_dry_run",
        json(
            &mut r,
            &f.run(&["baseline", "staging", "production", "--dry-run", "--json"])
                .expect(0)
        )
    );
    insta::assert_snapshot!(
        "baseline_dry_run_text",
        r.text(
            &f.run(&["baseline", "staging", "production", "--dry-run"])
                .expect(0)
                .stdout
        )
    );
    insta::assert_json_snapshot!(
        "baseline",
        json(
            &mut r,
            &f.run(&["baseline", "staging", "production", "--yes", "--json"])
                .expect(0)
        )
    );
}

#[test]
fn env() {
    let f = Fixture::new();
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!(
        "env_create",
        json(
            &mut r,
            &f.run(&["env", "create", "feature/Menu_2", "--from", "production", "--json"])
                .expect(0)
        )
    );
    f.exec(
        "production-feature-menu-2",
        "UPDATE cities SET name = 'Lyon 2' WHERE id = 1",
    );
    insta::assert_json_snapshot!("env_list", json(&mut r, &f.run(&["env", "list", "--json"]).expect(0)));
    insta::assert_snapshot!("env_list_text", r.text(&f.run(&["env", "list"]).expect(0).stdout));
    insta::assert_json_snapshot!(
        "env_merged",
        json(
            &mut r,
            &f.run(&["env", "merged", "feature-menu-2", "--ttl", "0d", "--json"])
                .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "env_gc",
        json(&mut r, &f.run(&["env", "gc", "--yes", "--json"]).expect(0))
    );
}

#[test]
fn gates_and_hooks() {
    let f = fixture(
        r#"[[environments.production.checks]]
sql = "SELECT 1"
on = "target"

[[environments.production.checks]]
command = "echo all good"

[[environments.production.hooks]]
command = "echo reindexed"
timeout = 20
"#,
    );
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!(
        "gates_dry_run",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--dry-run", "--force", "--json"])
                .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "gates_promote",
        json(
            &mut r,
            &f.run(&[
                "promote",
                "staging",
                "production",
                "--id",
                "cities:2",
                "--yes",
                "--json"
            ])
            .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "gates_audit",
        json(&mut r, &f.run(&["audit", "production", "--json"]).expect(0))
    );
    let f = fixture(
        r#"[[environments.production.checks]]
sql = "SELECT count(*) = 0 FROM businesses WHERE name LIKE 'Bäckerei%'"
on = "source"
"#,
    );
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!(
        "error_gate_failed",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--force", "--yes", "--json"])
                .expect(3)
        )
    );
    insta::assert_json_snapshot!(
        "gates_plan_saved",
        json(
            &mut r,
            &f.run(&[
                "plan",
                "staging",
                "production",
                "--id",
                "cities:2",
                "-o",
                "c.plan",
                "--json"
            ])
            .expect(0)
        )
    );
}

#[test]
fn reviews() {
    let f = Fixture::new();
    f.write_config(&review_config());
    let mut r = Redactor::new(&f);
    let submitted = f
        .run(&["promote", "staging", "production", "--force", "--yes", "--json"])
        .expect(0);
    let id = submitted.json()["review"].as_str().expect("a review id").to_string();
    insta::assert_json_snapshot!("review_submitted", json(&mut r, &submitted));
    insta::assert_json_snapshot!("reviews", json(&mut r, &f.run(&["reviews", "--json"]).expect(0)));
    // The target moves under one held change: `show` marks it.
    f.exec("production", "UPDATE cities SET name = 'Lyon (moved)' WHERE id = 1");
    insta::assert_json_snapshot!(
        "review_show",
        json(&mut r, &f.run(&["review", "show", &id, "--json"]).expect(0))
    );
    insta::assert_snapshot!(
        "review_show_text",
        r.text(&f.run(&["review", "show", &id]).expect(0).stdout)
    );
    insta::assert_json_snapshot!(
        "error_review_busy",
        json(
            &mut r,
            &f.run(&["promote", "staging", "production", "--force", "--yes", "--json"])
                .expect(3)
        )
    );
    insta::assert_json_snapshot!(
        "review_approve",
        json(
            &mut r,
            &f.run(&["review", "approve", &id, "--only", "cities:2", "--yes", "--json"])
                .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "review_reject",
        json(
            &mut r,
            &f.run(&["review", "reject", &id, "--only", "forms:1", "--yes", "--json"])
                .expect(0)
        )
    );
    insta::assert_json_snapshot!(
        "review_reject_rest",
        json(&mut r, &f.run(&["review", "reject", &id, "--yes", "--json"]).expect(0))
    );
    insta::assert_json_snapshot!(
        "error_review_decided",
        json(&mut r, &f.run(&["review", "approve", &id, "--yes", "--json"]).expect(3))
    );
    insta::assert_json_snapshot!(
        "reviews_all",
        json(&mut r, &f.run(&["reviews", "production", "--all", "--json"]).expect(0))
    );
    insta::assert_json_snapshot!("review_audit", json(&mut r, &f.run(&["audit", "--json"]).expect(0)));
}

#[test]
fn access_refusals() {
    let f = fixture(
        r#"[access]
users = { alice = ["pm"], bob = ["lead"] }
promote = { production = ["lead"] }
revert = { production = ["lead"] }
"#,
    );
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!(
        "error_denied",
        json(
            &mut r,
            &f.run(&[
                "promote",
                "staging",
                "production",
                "--force",
                "--yes",
                "--as",
                "alice",
                "--json"
            ])
            .expect(4)
        )
    );
    insta::assert_json_snapshot!(
        "access_audit",
        json(&mut r, &f.run(&["audit", "production", "--json"]).expect(0))
    );
}

/// Refusals whose message ends with a hint the command line renders as
/// flags or commands (the engine's message names none).
#[test]
fn hinted_refusals() {
    let f = Fixture::new();
    let mut r = Redactor::new(&f);
    // Another writer holds production's lock (the lock file beside it).
    {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(f.path().join("production.db.ferry-lock"))
            .expect("open the lock file");
        lock.lock().expect("take the writer lock");
        let out = f
            .run(&[
                "promote",
                "staging",
                "production",
                "--force",
                "--yes",
                "--no-wait",
                "--json",
            ])
            .expect(3);
        insta::assert_json_snapshot!("error_busy", json(&mut r, &out));
        insta::assert_snapshot!("error_busy_text", r.text(&out.stderr));
    }
    // A saved plan applied twice.
    f.run(&["plan", "staging", "production", "--id", "cities:2", "-o", "c.plan"])
        .expect(0);
    let id = f
        .run(&[
            "promote",
            "staging",
            "production",
            "--plan",
            "c.plan",
            "--yes",
            "--json",
        ])
        .expect(0)
        .json()["promotion"]
        .as_str()
        .expect("a promotion id")
        .to_string();
    insta::assert_json_snapshot!(
        "error_plan_applied",
        json(
            &mut r,
            &f.run(&[
                "promote",
                "staging",
                "production",
                "--plan",
                "c.plan",
                "--yes",
                "--json"
            ])
            .expect(3)
        )
    );
    // The row the promotion wrote changed since: revert refuses without --force.
    f.exec("production", "UPDATE cities SET name = 'Zurich' WHERE id = 2");
    insta::assert_json_snapshot!(
        "error_revert_moved",
        json(&mut r, &f.run(&["revert", &id, "--yes", "--json"]).expect(3))
    );
    // No configuration.
    let empty = tempfile::tempdir().expect("a temporary folder");
    let out = crate::common::run_in(empty.path(), &["check", "--json"]).expect(2);
    let mut v = out.json();
    let dir = empty
        .path()
        .canonicalize()
        .unwrap_or_else(|_| empty.path().to_path_buf());
    if let Some(m) = v["error"]["message"].as_str() {
        v["error"]["message"] = J::String(m.replace(&dir.display().to_string(), "[dir]"));
    }
    insta::assert_json_snapshot!("error_no_config", r.json(&v));
}

/// `ferry init --demo`: what it wrote and the next steps it suggests, in
/// the demo whose production takes reviews (written beside the fixture,
/// in a folder of its own).
#[test]
fn init_demo() {
    let f = Fixture::new();
    let mut r = Redactor::new(&f);
    insta::assert_snapshot!(
        "init_demo_text",
        r.text(
            &f.run(&["init", "--demo", "--config", "demo/ferry.toml"])
                .expect(0)
                .stdout
        )
    );
    insta::assert_json_snapshot!(
        "init_demo",
        json(
            &mut r,
            &f.run(&["init", "--demo", "--json", "--config", "demo-json/ferry.toml"])
                .expect(0)
        )
    );
}

/// `ferry refresh --dry-run --json` (docs/json.md "refresh"): the
/// fixture's staging, never promoted, with its blocking dev row dropped.
#[test]
fn refresh_dry_run() {
    let f = Fixture::new();
    let mut r = Redactor::new(&f);
    insta::assert_json_snapshot!(
        "refresh_dry_run",
        json(
            &mut r,
            &f.run(&[
                "refresh",
                "staging",
                "--from",
                "production",
                "--drop-excluded",
                "--dry-run",
                "--json"
            ])
            .expect(0)
        )
    );
}
