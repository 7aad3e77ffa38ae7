//! The start of the torture suite (issue 15): `ferry promote` killed with
//! SIGKILL at points spread over its run, on SQLite, in a loop bounded to a
//! few seconds. After each kill the target must be exactly as before or
//! exactly as after, Ferry's own tables must agree with it (a promotion
//! record and its journal exactly when the rows were written), and the next
//! commands must work without any manual repair: `ferry log` first (a kill
//! during the commit leaves a hot journal that Ferry itself must roll
//! back), then a promotion that completes.
//!
//! The client-UPDATE races and the lost writer lock on PostgreSQL and
//! MariaDB are in `ferry-engine`'s `engines::races`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{dump_tables, query, Fixture};

const ROWS: usize = 1000;
const KILLS: usize = 10;

const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB);";

const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.items]
key = ["id"]
"#;

fn promote_child(f: &Fixture) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["promote", "staging", "production", "--yes", "--force"])
        .current_dir(f.path())
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_LOG")
        .env("FERRY_USER", "tester")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferry promote")
}

/// Production put back as it was before any promotion (no journal, no lock).
fn reset(f: &Fixture, pristine: &std::path::Path) {
    let _ = std::fs::remove_file(f.path().join("production.db-journal"));
    std::fs::copy(pristine, f.production()).expect("put production back");
}

#[test]
fn promote_killed_at_any_point_leaves_before_or_after_and_the_next_command_works() {
    let data: Vec<String> = (1..=ROWS)
        .map(|i| format!("({i}, 'item {i}', randomblob(512))"))
        .collect();
    let f = Fixture::with(
        SCHEMA,
        &format!("INSERT INTO items VALUES {};", data.join(", ")),
        SCHEMA,
        "INSERT INTO items VALUES (1, 'old', NULL);",
    );
    f.write_config(CONFIG);
    let pristine = f.path().join("pristine.db");
    std::fs::copy(f.production(), &pristine).expect("keep production's first state");
    let before = dump_tables(&pristine, &["items"]);
    let after = dump_tables(&f.staging(), &["items"]);

    // How long an uninterrupted promotion takes, to spread the kills over it.
    let started = Instant::now();
    let status = promote_child(&f).wait().expect("ferry promote");
    assert!(status.success(), "an uninterrupted promotion works");
    let full = started.elapsed();
    assert_eq!(dump_tables(&f.production(), &["items"]), after);

    let (mut befores, mut afters) = (0, 0);
    for i in 0..KILLS {
        reset(&f, &pristine);
        let mut child = promote_child(&f);
        std::thread::sleep(full.mul_f64(i as f64 / KILLS as f64) + Duration::from_millis(5));
        let _ = child.kill();
        let _ = child.wait();

        // The next command works as it is (no repair): the log first.
        let log = f.run(&["log", "production", "--json"]).expect(0).json();
        let logged = log.as_array().map_or(0, Vec::len);
        let now = dump_tables(&f.production(), &["items"]);
        let journalled = if logged == 0 {
            0
        } else {
            query(&f.production(), "SELECT count(*) FROM _ferry_journal")[0][0]
                .parse::<usize>()
                .expect("a count")
        };
        if now == before {
            befores += 1;
            assert_eq!(logged, 0, "kill {i}: rows as before, yet a promotion is recorded");
        } else {
            assert!(now == after, "kill {i}: production is neither as before nor as after");
            afters += 1;
            assert_eq!(logged, 1, "kill {i}: rows written, so one promotion is recorded");
            assert_eq!(journalled, ROWS, "kill {i}: every written row is journalled");
        }
        // And a promotion completes.
        f.run(&["promote", "staging", "production", "--yes", "--force"])
            .expect(0);
        assert_eq!(dump_tables(&f.production(), &["items"]), after, "kill {i}");
    }
    eprintln!("torture: {KILLS} kills of `ferry promote` (about {full:?} each): {befores} before, {afters} after");
    assert_eq!(befores + afters, KILLS);
}
