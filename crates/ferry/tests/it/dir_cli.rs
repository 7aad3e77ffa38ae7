//! `ferry export` and `dir:` environments through the binary: an export
//! leaves excluded rows out and is byte-stable; the folder promotes into
//! SQLite; a folder as a source with `exclude` configured is refused.

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

    // A folder as a source evaluates no `exclude`: refused, clearly.
    let refused = f.run(&["diff", "content", "production"]);
    assert_ne!(refused.code, 0, "{}", refused.all());
    assert!(refused.all().contains("businesses"), "{}", refused.all());

    // Without it, the folder promotes into SQLite, and then nothing differs
    // (production's own city stays, skipped as target-only).
    let config = CONFIG.replace("exclude = \"created_by_team IN ('qa', 'dev')\"\n", "");
    f.write_config(&format!("{config}{CONTENT}"));
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

/// The pull-request flow of docs/ci.md on a temporary git repository:
/// set up from production, bring staging's changes into a branch, review
/// the diff, merge, apply to production.
#[test]
fn the_content_pull_request_flow_with_git() {
    let f = Fixture::new();
    let config = CONFIG.replace("exclude = \"created_by_team IN ('qa', 'dev')\"\n", "");
    f.write_config(&format!("{config}{CONTENT}"));
    // Staging's QA and developer rows are not content.
    f.exec(
        "staging",
        "DELETE FROM businesses WHERE created_by_team IN ('qa', 'dev')",
    );
    let repo = f.path();
    git(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join(".gitignore"), "*.db\n*.ferry-lock\n").expect("write .gitignore");

    // Once: the folder equals production, recorded as in sync both ways.
    f.run(&["export", "production", "content"]).expect(0);
    f.run_yes(&["baseline", "production", "content"]).expect(0);
    f.run_yes(&["baseline", "content", "production"]).expect(0);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "content as files"]);

    // The content pull request: staging's changes, as files.
    git(repo, &["checkout", "-q", "-b", "content-update"]);
    f.run(&["promote", "staging", "content", "--yes", "--force"]).expect(0);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "content from staging"]);
    let changed = git(repo, &["diff", "--name-only", "main", "--", "content/forms"]);
    assert!(changed.contains("content/forms/1.json"), "{changed}");

    // CI on the pull request: check, and what the merge would apply.
    f.run(&["check"]).expect(0);
    let diff = f.run(&["diff", "content", "production", "--json"]).expect(0).json();
    assert!(diff["counts"]["insert"].as_u64().expect("inserts") > 0, "{diff}");

    // CI on merge: apply.
    git(repo, &["checkout", "-q", "main"]);
    git(repo, &["merge", "-q", "--ff-only", "content-update"]);
    f.run(&["promote", "content", "production", "--yes"]).expect(0);
    assert_eq!(
        f.query("production", "SELECT id, title FROM forms ORDER BY id"),
        f.query("staging", "SELECT id, title FROM forms ORDER BY id")
    );
    let after = f.run(&["diff", "content", "production", "--json"]).expect(0).json();
    assert_eq!(after["counts"]["insert"].as_u64(), Some(0), "{after}");
    assert_eq!(after["counts"]["update"].as_u64(), Some(0), "{after}");
}
