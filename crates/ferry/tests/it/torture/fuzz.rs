//! Structure-aware mutation of `ferry.toml`, saved plan files and the
//! `--where` / `--id` / `--skip` texts (seeded; the seed is printed and
//! `FERRY_TORTURE_SEED` replays it).
//!
//! The bulk goes to the library entry points (`config::parse`,
//! `Plan::from_file`, the selection parsers): no panic, and no password in
//! any error. A few hundred cases run the real binary on SQLite files:
//! exit code in 0..=4, no panic, no password in stdout or stderr, and
//! nothing written when the command refuses (a dump compare).
//! `FERRY_TORTURE_RUNS` scales both (the library count is 100 times it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ferry_core::plan::Plan;
use serde_json::Value as J;

use super::{say, Rng};
use crate::common::{self, Fixture};

/// A password no output may ever show.
const PASSWORD: &str = "Pw0rd-Torture-7781";

/// URLs carrying [`PASSWORD`] in every form a URL can carry one.
fn password_urls() -> Vec<String> {
    let p = PASSWORD;
    vec![
        format!("postgres://ferry:{p}@127.0.0.1:1/app"),
        format!("postgresql://ferry:{p}@127.0.0.1:1/app?sslmode=disable"),
        format!("postgres://:{p}@127.0.0.1:1/app"),
        format!("postgres://ferry@127.0.0.1:1/app?password={p}"),
        format!("mysql://root:{p}@127.0.0.1:1/app"),
        format!("mysql://root:{}@127.0.0.1:1/app", p.replace('-', "%2D")),
        format!("mysql://root:{p}@[::1]:1/app"),
        format!("postgres://ferry:{p}@/app?host=/nonexistent"),
    ]
}

/// Does `text` show the password, plainly or percent-encoded?
fn leaks(text: &str) -> bool {
    text.contains(PASSWORD) || text.contains(&PASSWORD.replace('-', "%2D"))
}

const CONFIG_VALUES: [&str; 14] = [
    "\"x\"",
    "1",
    "-1",
    "true",
    "[]",
    "[\"id\", \"id\"]",
    "{}",
    "{ id = \"cities\" }",
    "\"nowhere\"",
    "\"_ferry_promotions\"",
    "\"Zürich 🏔️ \\u0000\"",
    "1e400",
    "\"sqlite://production.db\"",
    "{ modified_at = \"later\" }",
];

const CONFIG_KEYS: [&str; 14] = [
    "key",
    "references",
    "parent",
    "ignore",
    "stamp",
    "exclude",
    "draft",
    "natural_key",
    "url",
    "url_env",
    "review",
    "pipeline",
    "promotes_to",
    "unknown_key",
];

/// One to three structural edits of a TOML text, line by line.
fn mutate_config(rng: &mut Rng, base: &str) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(12) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                // Retype a value.
                if let Some((k, _)) = lines[i].clone().split_once('=') {
                    lines[i] = format!("{k}= {}", rng.pick(&CONFIG_VALUES));
                }
            }
            3 => {
                // Rename a key.
                if let Some((_, v)) = lines[i].clone().split_once('=') {
                    lines[i] = format!("{} ={v}", rng.pick(&CONFIG_KEYS));
                }
            }
            4 => lines.insert(i, format!("{} = {}", rng.pick(&CONFIG_KEYS), rng.pick(&CONFIG_VALUES))),
            5 => {
                // A URL with a password, written in the file.
                let url = rng.pick(&password_urls()).clone();
                lines.insert(i, format!("url = \"{url}\""));
            }
            6 => {
                let table = rng.pick(&["nowhere", "_ferry_journal", "Zürich 🏔️", "a\"b", "cities"]);
                lines.push(format!("[tables.\"{table}\"]"));
                lines.push("key = [\"id\"]".into());
            }
            7 => {
                let to = *rng.pick(&["nowhere", "_ferry_sync", "CITIES", "cités"]);
                lines[i] = lines[i].replace("cities", to);
            }
            8 => {
                if let Some((k, _)) = lines[i].clone().split_once('=') {
                    lines[i] = format!("{k}= \"{}\"", "é".repeat(50_000));
                }
            }
            9 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            10 => {
                let cut = rng.below(lines[i].len() + 1);
                let mut l = lines[i].clone();
                while !l.is_char_boundary(cut.min(l.len())) {
                    l.pop();
                }
                l.truncate(cut.min(l.len()));
                lines[i] = l;
            }
            _ => lines.insert(
                i,
                format!("[environments.{}]", rng.pick(&["staging", "qa", "prod uction", "🚀"])),
            ),
        }
    }
    lines.join("\n") + "\n"
}

/// Selection texts to start from: `--where`, `--id`, `--skip`.
const WHERE_SEEDS: [&str; 4] = [
    "cities:name = 'Bern'",
    "businesses:created_by_team = 'content' AND id > 0",
    "menus:parent_id IS NULL",
    "form_fields:label LIKE '%a%'",
];
const ID_SEEDS: [&str; 4] = ["cities:2", "businesses:1", "menus:3", "form_fields:2"];
const NOISE: [&str; 18] = [
    "'",
    "\"",
    ";",
    ":",
    ",",
    "(",
    ")",
    "\\",
    "%",
    "_",
    " ",
    "\0",
    "🏔️",
    "é",
    "--",
    "/*",
    "DROP TABLE cities",
    "999999999999999999999",
];

fn mutate_text(rng: &mut Rng, base: &str) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(s.len() + 1);
        match rng.below(6) {
            0 => {
                let noise: Vec<char> = rng.pick(&NOISE).chars().collect();
                s.splice(i..i, noise);
            }
            1 if i < s.len() => {
                s.remove(i);
            }
            2 => s.truncate(i),
            3 => {
                let c = s.clone();
                s.extend(c);
            }
            4 => s.extend("x".repeat(10_000).chars()),
            _ => {
                let table: Vec<char> = rng.pick(&["_ferry_sync", "nowhere", "CITIES", ""]).chars().collect();
                let colon = s.iter().position(|c| *c == ':').unwrap_or(0);
                s.splice(0..colon, table);
            }
        }
    }
    s.into_iter().collect()
}

/// Tables a mutated plan entry may be moved to. An unmanaged table or one
/// of Ferry's own is issue 15 defect 4 ([`forged_plan_tables_are_refused`]).
const PLAN_TABLES: [&str; 5] = ["cities", "menus", "forms", "nowhere", "Cities"];

/// A random edit somewhere in a plan's JSON tree.
fn mutate_json(rng: &mut Rng, v: &mut J, depth: usize) {
    let stop = depth > 0 && rng.chance(30);
    match v {
        J::Object(m) if !m.is_empty() && !stop => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(8) {
                0 => {
                    m.remove(&k);
                }
                1 if k == "table" => {
                    m.insert(k, J::String(rng.pick(&PLAN_TABLES).to_string()));
                }
                _ => mutate_json(rng, m.get_mut(&k).expect("a key just listed"), depth + 1),
            }
        }
        J::Array(a) if !a.is_empty() && !stop => {
            let i = rng.below(a.len());
            match rng.below(6) {
                0 => {
                    a.remove(i);
                }
                1 => {
                    let e = a[i].clone();
                    a.push(e);
                }
                _ => mutate_json(rng, &mut a[i], depth + 1),
            }
        }
        _ => {
            *v = match rng.below(9) {
                0 => J::Null,
                1 => J::from(-1),
                2 => J::from(u64::MAX),
                3 => J::String(String::new()),
                4 => J::String("Zürich 🏔️".into()),
                5 => J::String("ff".repeat(17)),
                6 => serde_json::json!(["int", "not a number"]),
                7 => serde_json::json!(["text", "x"]),
                _ => J::Bool(true),
            }
        }
    }
}

/// A mutated plan file: the edit, then the hash recomputed the way
/// docs/plan-format.md describes (through `Plan::to_file`) whenever the
/// edited JSON still reads as a plan, so the edit reaches the checks behind
/// the hash; otherwise the edited text as it is.
fn mutate_plan(rng: &mut Rng, plan: &J) -> String {
    let mut v = plan.clone();
    for _ in 0..1 + rng.below(2) {
        mutate_json(rng, &mut v, 0);
    }
    match serde_json::from_value::<Plan>(v.clone()) {
        Ok(p) if rng.chance(90) => p.to_file(),
        _ => serde_json::to_string_pretty(&v).expect("JSON prints"),
    }
}

/// Runs `f`, failing the test with `what` when it panics.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => panic!("{what}: panicked"),
    }
}

#[test]
fn library_entry_points_take_mutated_input() {
    let seed = super::seed();
    let cases = super::runs(20) * 100;
    say(&format!(
        "torture fuzz::library: seed {seed} (FERRY_TORTURE_SEED={seed} replays it), {cases} cases of each kind"
    ));
    let mut rng = Rng::new(seed);
    let path = Path::new("ferry.toml");
    let (mut ok, mut refused) = (0, 0);
    for n in 0..cases {
        let text = mutate_config(&mut rng, common::CONFIG);
        let what = format!("config case {n} (seed {seed})");
        match no_panic(&what, || ferry_core::config::parse(&text, path)) {
            Ok(_) => ok += 1,
            Err(e) => {
                refused += 1;
                let shown = format!("{e}");
                assert!(!leaks(&shown), "{what}: the error shows the password:\n{shown}");
            }
        }
    }
    let plan = sample_plan();
    let (mut plan_ok, mut plan_refused) = (0, 0);
    for n in 0..cases {
        let text = mutate_plan(&mut rng, &plan);
        let what = format!("plan case {n} (seed {seed})");
        match no_panic(&what, || Plan::from_file(&text)) {
            Ok(p) => {
                plan_ok += 1;
                // What reads must write back and read again.
                no_panic(&what, || Plan::from_file(&p.to_file())).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            Err(_) => plan_refused += 1,
        }
    }
    let mut selections = 0;
    for n in 0..cases {
        let what = format!("selection case {n} (seed {seed})");
        let seed_text = rng_pick_where(&mut rng);
        let w = mutate_text(&mut rng, seed_text);
        let _ = no_panic(&what, || ferry_core::selection::parse_where(&w));
        let id = mutate_text(&mut rng, ID_SEEDS[n % ID_SEEDS.len()]);
        let _ = no_panic(&what, || ferry_core::selection::parse_id(&id));
        let _ = no_panic(&what, || ferry_core::selection::parse_skip(&id));
        selections += 3;
    }
    say(&format!(
        "torture fuzz::library: configs {ok} accepted, {refused} refused; plans {plan_ok} accepted, {plan_refused} refused; {selections} selection texts"
    ));
}

fn rng_pick_where(rng: &mut Rng) -> &'static str {
    WHERE_SEEDS[rng.below(WHERE_SEEDS.len())]
}

/// A saved plan of the standard fixture (cities, menus and forms with
/// their fields), as JSON.
fn sample_plan() -> J {
    let f = Fixture::new();
    f.run(&[
        "plan",
        "staging",
        "production",
        "--table",
        "cities",
        "--table",
        "menus",
        "--id",
        "forms:2",
        "-o",
        "plan.json",
    ])
    .expect(0);
    let text = std::fs::read_to_string(f.path().join("plan.json")).expect("the saved plan");
    serde_json::from_str(&text).expect("the plan is JSON")
}

/// Checks one binary run: exit code, panic, password, and nothing written
/// on refusal (or at all, for a command that never writes).
fn check_run(f: &Fixture, args: &[&str], before: &str, writes: bool, what: &str) -> i32 {
    let out = f.run_with_env(args, &[("FERRY_PRODUCTION_URL", &password_urls()[0])]);
    let all = out.all();
    assert!(
        (0..=4).contains(&out.code),
        "{what}: exit {} for ferry {args:.200?}\n{all:.2000}",
        out.code
    );
    assert!(
        !all.contains("panicked"),
        "{what}: ferry {args:.200?} panicked\n{all:.2000}"
    );
    assert!(
        !leaks(&all),
        "{what}: ferry {args:.200?} shows the password\n{all:.2000}"
    );
    if out.code != 0 || !writes {
        assert_eq!(
            f.dump("production"),
            before,
            "{what}: ferry {args:.200?} exited {} and wrote to production\n{all:.2000}",
            out.code
        );
    }
    out.code
}

#[test]
fn binary_takes_mutated_config_plan_and_selection() {
    let seed = super::seed();
    let cases = super::runs(20) * 4;
    say(&format!(
        "torture fuzz::binary: seed {seed} (FERRY_TORTURE_SEED={seed} replays it), {cases} runs of each kind"
    ));
    let mut rng = Rng::new(seed ^ 0x5eed);
    let f = Fixture::new();
    let pristine = std::fs::read(f.production()).expect("production.db");
    let restore = || std::fs::write(f.production(), &pristine).expect("restore production.db");
    let before = f.dump("production");
    let mut codes = [0usize; 5];

    // Configurations: read-only commands and a promotion.
    for n in 0..cases {
        let text = mutate_config(&mut rng, common::CONFIG);
        f.write_config(&text);
        let what = format!("config run {n} (seed {seed})");
        let args: &[&str] = match n % 3 {
            0 => &["check"],
            1 => &["diff", "staging", "production", "--table", "cities"],
            _ => &["promote", "staging", "production", "--table", "cities", "--yes"],
        };
        let code = check_run(&f, args, &before, n % 3 == 2, &what);
        codes[code as usize] += 1;
        restore();
    }
    f.write_config(common::CONFIG);

    // Plans, hash recomputed.
    let plan = sample_plan();
    for n in 0..cases {
        std::fs::write(f.path().join("mutated.json"), mutate_plan(&mut rng, &plan)).expect("write the plan");
        let what = format!("plan run {n} (seed {seed})");
        let code = check_run(
            &f,
            &["promote", "staging", "production", "--plan", "mutated.json", "--yes"],
            &before,
            true,
            &what,
        );
        codes[code as usize] += 1;
        restore();
    }

    // Selections.
    for n in 0..cases {
        let what = format!("selection run {n} (seed {seed})");
        let text = match n % 3 {
            0 => {
                let seed_text = rng_pick_where(&mut rng);
                mutate_text(&mut rng, seed_text)
            }
            _ => mutate_text(&mut rng, ID_SEEDS[n % ID_SEEDS.len()]),
        };
        // An argument cannot hold a NUL byte (the library cases have them).
        let text = text.replace('\0', "");
        let flag = ["--where", "--id", "--skip"][n % 3];
        let command = if rng.chance(50) { "diff" } else { "promote" };
        let mut args = vec![command, "staging", "production", flag, &text];
        if command == "promote" {
            args.extend(["--yes", "--force"]);
        }
        let code = check_run(&f, &args, &before, command == "promote", &what);
        codes[code as usize] += 1;
        restore();
    }
    say(&format!(
        "torture fuzz::binary: {} runs, exit codes 0: {}, 1: {}, 2: {}, 3: {}, 4: {}",
        cases * 3,
        codes[0],
        codes[1],
        codes[2],
        codes[3],
        codes[4]
    ));
}

/// Issue 15 defect 4: a saved plan whose hash was recomputed after adding
/// an entry for a table the configuration does not manage, or for one of
/// Ferry's own tables, must be refused with nothing written.
#[test]
fn forged_plan_tables_are_refused() {
    let f = Fixture::new();
    f.exec(
        "production",
        "CREATE TABLE unmanaged (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    );
    // Ferry's own tables exist once something was written.
    f.promote(&["--table", "menus"]);
    f.exec("staging", "INSERT INTO cities VALUES (7, 'Genève');");
    let plan = {
        f.run(&["plan", "staging", "production", "--table", "cities", "-o", "plan.json"])
            .expect(0);
        serde_json::from_str::<J>(&std::fs::read_to_string(f.path().join("plan.json")).expect("the plan"))
            .expect("JSON")
    };
    for table in ["unmanaged", "_ferry_promotions", "_ferry_sync"] {
        let mut v = plan.clone();
        let entries = v["entries"].as_array_mut().expect("entries");
        let mut forged = entries[0].clone();
        forged["table"] = J::String(table.into());
        entries.push(forged);
        // Declared like a managed table, as a forger would.
        v["tables"]
            .as_array_mut()
            .expect("tables")
            .push(J::String(table.into()));
        for field in ["keys", "columns", "specs"] {
            let copy = v[field]["cities"].clone();
            v[field][table] = copy;
        }
        if v["specs"][table]["table"].is_string() {
            v["specs"][table]["table"] = J::String(table.into());
        }
        let forged: Plan = serde_json::from_value(v).expect("still a plan");
        std::fs::write(f.path().join("forged.json"), forged.to_file()).expect("write");
        let before = f.dump("production");
        let out = f.run(&["promote", "staging", "production", "--plan", "forged.json", "--yes"]);
        assert_ne!(out.code, 0, "a plan writing `{table}` was applied:\n{}", out.all());
        assert_eq!(f.dump("production"), before, "a plan writing `{table}` wrote something");
    }
}

/// A URL with a password given where the configuration needs a table was
/// echoed whole in the parser's "invalid type" error (found by the
/// fuzzing above).
#[test]
fn config_type_errors_hide_passwords() {
    let text = format!(
        "pipeline = [\"staging\", \"production\"]\nenvironments = \"{}\"\n",
        password_urls()[0]
    );
    let err = ferry_core::config::parse(&text, Path::new("ferry.toml")).expect_err("not a valid config");
    assert!(!leaks(&format!("{err}")), "the error shows the password:\n{err}");
}
