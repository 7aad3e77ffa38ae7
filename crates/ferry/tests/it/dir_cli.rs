//! `ferry export` and `dir:` environments through the binary: an export
//! leaves excluded rows out and is byte-stable; the folder promotes into
//! SQLite with `exclude` configured (evaluated in the target); docs/ci.md
//! runs as written.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{Fixture, CONFIG};

/// Every file under `root` (Ferry's own folder left out), with its bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for table in std::fs::read_dir(root).expect("the folder") {
        let table = table.expect("entry").path();
        if table.file_name().is_some_and(|n| n == "_ferry") {
            continue;
        }
        for file in std::fs::read_dir(&table).expect("a table's folder") {
            let file = file.expect("entry").path();
            let rel = file.strip_prefix(root).expect("inside").display().to_string();
            out.insert(rel, std::fs::read(&file).expect("read"));
        }
    }
    out
}

const CONTENT: &str =
    "\n[environments.content]\nurl = \"dir:content\"\npromotes_to = \"production\"\naccepts_from = [\"staging\"]\n";

#[test]
fn export_then_promote_the_folder_into_sqlite() {
    let f = Fixture::new();
    f.write_config(&format!("{CONFIG}{CONTENT}"));
    let out = f.run(&["export", "staging", "content"]).expect(0);
    assert!(out.stdout.contains("excluded"), "{}", out.all());
    let folder = f.path().join("content");
    let files = tree(&folder);
    assert!(files.contains_key("businesses/1.json") && files.contains_key("businesses/2.json"));
    assert!(
        !files.contains_key("businesses/3.json") && !files.contains_key("businesses/4.json"),
        "QA and developer rows were exported: {:?}",
        files.keys()
    );
    assert_eq!(files.len(), 3 + 2 + 2 + 3 + 4, "{:?}", files.keys());

    // Twice: the same bytes. A row deleted at the source loses its file.
    f.run(&["export", "staging", "content"]).expect(0);
    assert_eq!(tree(&folder), files);
    f.exec("staging", "DELETE FROM menus WHERE id = 2");
    f.run(&["export", "staging", "content"]).expect(0);
    assert!(!folder.join("menus/2.json").exists());

    // The folder promotes into SQLite (`exclude` evaluated there: the
    // folder has no excluded rows), and then nothing differs (production's
    // own city stays, skipped as target-only).
    f.run(&["promote", "content", "production", "--yes", "--force"])
        .expect(0);
    assert_eq!(
        f.query("production", "SELECT id, title FROM forms ORDER BY id"),
        f.query("staging", "SELECT id, title FROM forms ORDER BY id")
    );
    let diff = f.run(&["diff", "content", "production", "--json"]).expect(0).json();
    let counts = &diff["counts"];
    let writes: Vec<u64> = ["insert", "update", "delete", "conflict"]
        .iter()
        .map(|k| counts[k].as_u64().expect("a count"))
        .collect();
    assert_eq!(writes, [0, 0, 0, 0], "{diff}");
    f.run(&["log", "production"]).expect(0);
}

/// Runs git in `dir`, expecting success; gives its output.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fenced blocks of `lang` in a Markdown text, in order.
fn fenced(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() == format!("```{lang}") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim_end() != "```").collect();
            out.push(body.join("\n") + "\n");
        }
    }
    out
}

/// One step of a GitHub Actions job, as docs/ci.md writes it.
#[derive(Debug, Default)]
struct Step {
    name: String,
    uses: String,
    condition: String,
    run: String,
}

/// The job's `env:` (name, value as written) and its steps, read from the
/// workflow of docs/ci.md (the subset of YAML it uses: one job, steps with
/// `name`, `uses`, `if`, `with` and `run`, a `run: |` block or one line).
fn workflow(yaml: &str) -> (Vec<(String, String)>, Vec<Step>) {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = yaml.lines().collect();
    let (mut env, mut steps) = (Vec::new(), Vec::<Step>::new());
    let mut i = 0;
    let mut section = "";
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        i += 1;
        if t.is_empty() {
            continue;
        }
        if indent(line) == 4 {
            section = t.trim_end_matches(':');
            continue;
        }
        match section {
            "env" if indent(line) == 6 => {
                let (k, v) = t.split_once(": ").expect("KEY: value");
                env.push((k.to_string(), v.to_string()));
            }
            "steps" => {
                let t = match t.strip_prefix("- ") {
                    Some(rest) if indent(line) == 6 => {
                        steps.push(Step::default());
                        rest
                    }
                    _ => t,
                };
                let step = steps.last_mut().expect("a step");
                let Some((k, v)) = t.split_once(':') else { continue };
                let v = v.trim();
                match k {
                    "name" => step.name = v.to_string(),
                    "uses" => step.uses = v.to_string(),
                    "if" => step.condition = v.to_string(),
                    "run" if v == "|" => {
                        let body = indent(line) + 2;
                        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) >= body) {
                            step.run.push_str(lines[i].get(body..).unwrap_or(""));
                            step.run.push('\n');
                            i += 1;
                        }
                    }
                    "run" => step.run = format!("{v}\n"),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (env, steps)
}

/// Runs a shell script of docs/ci.md in `dir`, with the `ferry` under
/// test first on `PATH`, expecting success.
fn sh(dir: &Path, script: &str, vars: &[(String, String)]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_ferry"))
        .parent()
        .expect("the binary's folder");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .env("PATH", path)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs([
            ("GIT_AUTHOR_NAME", "Test"),
            ("GIT_AUTHOR_EMAIL", "test@example.invalid"),
            ("GIT_COMMITTER_NAME", "Test"),
            ("GIT_COMMITTER_EMAIL", "test@example.invalid"),
        ])
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "docs/ci.md script failed:\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// docs/ci.md, run as written on a temporary git repository: its
/// configuration (with the test tables, `exclude` included), its `sh`
/// blocks (set up once, then one change on a branch), and the `run:` steps
/// of its workflow for the pull request and for the push of the merge.
/// Production holds QA rows too: the folder never has them, and the
/// promotion from the folder leaves them as they are.
#[test]
fn the_ci_md_flow_runs_as_written() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ci.md")).expect("read docs/ci.md");
    let toml = fenced(&doc, "toml");
    let scripts = fenced(&doc, "sh");
    let yaml = fenced(&doc, "yaml");
    assert_eq!(
        (toml.len(), scripts.len(), yaml.len()),
        (1, 2, 1),
        "docs/ci.md changed shape"
    );
    let (job_env, steps) = workflow(&yaml[0]);

    let f = Fixture::with(
        crate::common::SCHEMA,
        crate::common::STAGING_DATA,
        crate::common::SCHEMA,
        crate::common::STAGING_DATA,
    );
    let tables = &CONFIG[CONFIG.find("[tables.").expect("the tables")..];
    f.write_config(&format!("{}\n{tables}", toml[0]));
    let secrets = [
        ("FERRY_STAGING_URL", "sqlite://staging.db"),
        ("FERRY_PRODUCTION_URL", "sqlite://production.db"),
    ];
    let vars: Vec<(String, String)> = job_env
        .iter()
        .map(|(k, v)| {
            let value = match v.strip_prefix("${{ secrets.").and_then(|r| r.strip_suffix(" }}")) {
                Some(secret) => secrets
                    .iter()
                    .find(|(n, _)| *n == secret)
                    .unwrap_or_else(|| panic!("docs/ci.md uses a secret the test lacks: {secret}"))
                    .1
                    .to_string(),
                None => v.clone(),
            };
            (k.clone(), value)
        })
        .collect();
    assert!(vars.iter().any(|(k, _)| k == "FERRY_PRODUCTION_URL"), "{vars:?}");
    let repo = f.path();
    git(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join(".gitignore"), "*.db\n*.ferry-lock\nferry-diff.json\n").expect("write .gitignore");

    // Once.
    sh(repo, &scripts[0], &vars);
    assert!(
        !repo.join("content/businesses/3.json").exists(),
        "a QA row was exported"
    );

    // An editor's changes in staging, brought into a pull request.
    f.exec(
        "staging",
        "UPDATE forms SET title = 'Contact us' WHERE id = 1; INSERT INTO cities VALUES (7, 'Basel');",
    );
    sh(repo, &scripts[1], &vars);
    let changed = git(repo, &["diff", "--name-only", "main"]);
    assert!(
        changed.contains("content/forms/1.json") && changed.contains("content/cities/7.json"),
        "{changed}"
    );

    // The workflow's steps, for one event.
    let run_event = |event: &str| {
        for step in &steps {
            if !step.uses.is_empty() {
                continue;
            }
            if step.name == "Install ferry" {
                // Not run (it builds Ferry): it must build the binary crate
                // of a checkout, at the path the checkout step gives.
                let path = step
                    .run
                    .trim()
                    .strip_prefix("cargo install --locked --path .ferry-src/")
                    .unwrap_or_else(|| panic!("the install step changed: {}", step.run));
                let manifest = format!("{}/../../{path}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
                let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{manifest}: {e}"));
                assert!(text.contains("name = \"ferry\""), "{manifest} is not the ferry binary");
                continue;
            }
            if !step.condition.is_empty() && !step.condition.contains(&format!("'{event}'")) {
                continue;
            }
            assert!(!step.run.is_empty(), "a step without `run`: {step:?}");
            sh(repo, &step.run, &vars);
        }
    };
    assert!(
        steps.iter().any(|s| s.uses.contains("checkout") && !s.uses.is_empty()),
        "{steps:?}"
    );
    run_event("pull_request");
    let diff: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("ferry-diff.json")).expect("ferry-diff.json"))
            .expect("the diff as JSON");
    assert_eq!(
        (diff["counts"]["insert"].as_u64(), diff["counts"]["update"].as_u64()),
        (Some(1), Some(1)),
        "{diff}"
    );
    assert_eq!(diff["counts"]["conflict"].as_u64(), Some(0), "{diff}");

    // Merged: the push to main applies it.
    git(repo, &["checkout", "-q", "main"]);
    git(repo, &["merge", "-q", "--ff-only", "content-update"]);
    run_event("push");
    for sql in [
        "SELECT id, title FROM forms ORDER BY id",
        "SELECT id, name FROM cities ORDER BY id",
    ] {
        assert_eq!(f.query("production", sql), f.query("staging", sql), "{sql}");
    }
    assert_eq!(
        f.scalar(
            "production",
            "SELECT count(*) FROM businesses WHERE created_by_team IN ('qa', 'dev')"
        ),
        "2",
        "production's QA rows were touched"
    );
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let after = f
        .run_with_env(&["diff", "content", "production", "--json"], &env)
        .expect(0)
        .json();
    for k in ["insert", "update", "delete", "conflict"] {
        assert_eq!(after["counts"][k].as_u64(), Some(0), "{k}: {after}");
    }
}
