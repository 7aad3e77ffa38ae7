//! `ferry promote`, `revert` and `review approve`, killed with SIGKILL at
//! random points, on every engine.
//!
//! Each test makes staging and production hold the same shelves and items,
//! records them as synced (`ferry baseline`), then changes staging (updates,
//! inserts in new shelves, deletes): hundreds of rows by default, thousands
//! with `FERRY_TORTURE_ROWS`, so that a command takes a measurable time. One
//! run to completion learns the state "after" and the command's duration;
//! then, `FERRY_TORTURE_RUNS` times (default 20), the command is started
//! again from the state "before" and killed after a random delay between
//! zero and the duration of its last complete run (seeded; the seed is
//! printed, `FERRY_TORTURE_SEED` replays it). After each kill:
//!
//! - the managed tables of the target are byte for byte the state before or
//!   the state after, nothing in between;
//! - Ferry's own tables are consistent: no journal row without its
//!   promotion, no sync base row naming a missing promotion, one sync base
//!   row per target row, the last promotion's rows in the sync base, the
//!   review decided exactly when its rows were written;
//! - the next command works without repair: the killed command is run again
//!   (or its work undone) and ends in the expected state.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{ferry, ferry_command, say, Db, Eng, Rng};

/// Shelves in both environments before staging changes.
const SHELVES: usize = 40;

/// Items in both environments before staging changes:
/// `FERRY_TORTURE_ROWS`, else 200 (CI's time; the long run takes 2000).
/// Staging changes a third, deletes a tenth and adds 30% more.
fn items() -> usize {
    match std::env::var("FERRY_TORTURE_ROWS") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FERRY_TORTURE_ROWS={s:?} is not a number")),
        Err(_) => 200,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmd {
    Promote,
    Revert,
    Approve,
}

impl Cmd {
    pub(super) fn name(self) -> &'static str {
        match self {
            Cmd::Promote => "promote",
            Cmd::Revert => "revert",
            Cmd::Approve => "review approve",
        }
    }
}

fn schema(eng: Eng) -> &'static str {
    match eng {
        Eng::Sqlite => {
            "CREATE TABLE shelves (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE items (id INTEGER PRIMARY KEY, shelf_id INTEGER NOT NULL REFERENCES shelves(id),
                                 name TEXT NOT NULL, qty INTEGER, data BLOB);"
        }
        Eng::Postgres => {
            "CREATE TABLE shelves (id integer PRIMARY KEY, name text NOT NULL);
             CREATE TABLE items (id integer PRIMARY KEY, shelf_id integer NOT NULL REFERENCES shelves(id),
                                 name text NOT NULL, qty integer, data bytea);"
        }
        Eng::Mysql => {
            "CREATE TABLE shelves (id INT PRIMARY KEY, name VARCHAR(200) NOT NULL) ENGINE=InnoDB;
             CREATE TABLE items (id INT PRIMARY KEY, shelf_id INT NOT NULL, name VARCHAR(200) NOT NULL,
                                 qty INT, data BLOB, FOREIGN KEY (shelf_id) REFERENCES shelves(id)) ENGINE=InnoDB;"
        }
    }
}

fn item_row(eng: Eng, id: usize, shelf: usize) -> String {
    let qty = if id.is_multiple_of(11) {
        "NULL".to_string()
    } else {
        (id * 3 % 100).to_string()
    };
    let data = eng.blob(&[(id % 256) as u8, 0, 0xff, (id * 31 % 256) as u8]);
    format!(
        "({id}, {shelf}, 'item {id} Zürich 🏔️ {}', {qty}, {data})",
        id * 7919 % 1000
    )
}

/// What both environments hold at first.
fn shared_data(eng: Eng, items: usize) -> String {
    let mut sql = String::new();
    let shelves: Vec<String> = (1..=SHELVES).map(|i| format!("({i}, 'shelf {i} 📚')")).collect();
    sql.push_str(&format!("INSERT INTO shelves VALUES {};\n", shelves.join(", ")));
    let rows: Vec<String> = (1..=items).map(|i| item_row(eng, i, 1 + i % SHELVES)).collect();
    for chunk in rows.chunks(500) {
        sql.push_str(&format!("INSERT INTO items VALUES {};\n", chunk.join(", ")));
    }
    sql
}

/// Staging's new work: a third of the items changed, new items in new
/// shelves, some items deleted.
fn staging_work(eng: Eng, items: usize) -> String {
    let mut sql = format!(
        "UPDATE items SET name = {}, qty = coalesce(qty, 0) + 1 WHERE id % 3 = 0;\n",
        eng.concat("name", "' v2 ✨'")
    );
    let shelves: Vec<String> = (SHELVES + 1..=SHELVES + 5)
        .map(|i| format!("({i}, 'new shelf {i}')"))
        .collect();
    sql.push_str(&format!("INSERT INTO shelves VALUES {};\n", shelves.join(", ")));
    let rows: Vec<String> = (items + 1..=items * 13 / 10)
        .map(|i| item_row(eng, i, SHELVES + 1 + i % 5))
        .collect();
    for chunk in rows.chunks(500) {
        sql.push_str(&format!("INSERT INTO items VALUES {};\n", chunk.join(", ")));
    }
    sql.push_str("DELETE FROM items WHERE id % 7 = 0 AND id % 3 <> 0;\n");
    sql
}

/// The managed tables, every cell's bytes, in key order.
pub(super) fn dump(db: &Db) -> String {
    let e = db.eng;
    db.sql(&format!(
        "SELECT 'shelf', id, {} FROM shelves ORDER BY id;\n\
         SELECT 'item', id, shelf_id, {}, qty, {} FROM items ORDER BY id;",
        e.hex_of("name"),
        e.hex_of("name"),
        e.hex_of_blob("data")
    ))
}

/// The state of Ferry's own tables that must hold in every settled state.
/// Returns the id of the last promotion that wrote rows and is not reverted.
/// One script, so that a server is asked once.
pub(super) fn check_ferry_tables(db: &Db, what: &str) -> Option<String> {
    let out = db.sql(
        "SELECT 'orphan-journal', count(*) FROM _ferry_journal j \
         WHERE NOT EXISTS (SELECT 1 FROM _ferry_promotions p WHERE p.id = j.promotion_id);\n\
         SELECT 'orphan-base', count(*) FROM _ferry_sync s WHERE s.promotion_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM _ferry_promotions p WHERE p.id = s.promotion_id);\n\
         SELECT 'base', table_name, count(*) FROM _ferry_sync GROUP BY table_name ORDER BY table_name;\n\
         SELECT 'rows', 'items', count(*) FROM items;\n\
         SELECT 'rows', 'shelves', count(*) FROM shelves;\n\
         SELECT 'promotion', p.id, p.kind, CASE WHEN p.reverted_by IS NULL THEN 'live' ELSE 'reverted' END, \
         (SELECT count(*) FROM _ferry_journal j WHERE j.promotion_id = p.id), \
         (SELECT count(*) FROM _ferry_journal j WHERE j.promotion_id = p.id AND j.action <> 'delete'), \
         (SELECT count(*) FROM _ferry_sync s WHERE s.promotion_id = p.id), p.counts \
         FROM _ferry_promotions p WHERE p.kind <> 'baseline' ORDER BY p.id;",
    );
    let mut base = Vec::new();
    let mut rows = Vec::new();
    let mut last = None;
    for line in out.lines() {
        let parts: Vec<&str> = line.splitn(8, '|').collect();
        match parts[0] {
            "orphan-journal" => assert_eq!(parts[1], "0", "{what}: journal rows without their promotion"),
            "orphan-base" => assert_eq!(parts[1], "0", "{what}: sync base rows naming a missing promotion"),
            "base" => base.push(format!("{} {}", parts[1], parts[2])),
            "rows" => rows.push(format!("{} {}", parts[1], parts[2])),
            "promotion" => {
                let (id, kind, live) = (parts[1], parts[2], parts[3] == "live");
                let journalled: u64 = parts[4].parse().expect("a count");
                let counts: serde_json::Value = serde_json::from_str(parts[7])
                    .unwrap_or_else(|e| panic!("{what}: promotion {id} has unreadable counts {:?}: {e}", parts[7]));
                let total: u64 = ["insert", "update", "delete"]
                    .iter()
                    .map(|k| counts[k].as_u64().unwrap_or(0))
                    .sum();
                assert_eq!(
                    total, journalled,
                    "{what}: promotion {id} counts {total} rows but journals {journalled}"
                );
                if live && kind != "revert" {
                    last = Some((id.to_string(), parts[5].to_string(), parts[6].to_string()));
                }
            }
            other => panic!("{what}: unexpected line {other:?} in {out}"),
        }
    }
    // Everything in the target was promoted or baselined: one sync base
    // row per target row, per table.
    assert_eq!(base, rows, "{what}: the sync base does not hold one row per target row");
    // The sync base names the last promotion for every row it inserted or
    // updated. (The journal and the sync base write keys in different
    // forms; a promotion writes each key once, so the counts must agree.)
    if let Some((p, written, based)) = &last {
        assert_eq!(
            written, based,
            "{what}: promotion {p} wrote {written} rows but the sync base names it for {based}"
        );
    }
    last.map(|(p, _, _)| p)
}

pub(super) struct Setup {
    dir: tempfile::TempDir,
    pub(super) staging: Db,
    pub(super) production: Db,
    pub(super) vars: Vec<(String, String)>,
}

impl Setup {
    pub(super) fn new(eng: Eng, test: &str, review: bool) -> Option<Setup> {
        Setup::with_items(eng, test, review, items())
    }

    /// [`Setup::new`] with `items` items.
    pub(super) fn with_items(eng: Eng, test: &str, review: bool, items: usize) -> Option<Setup> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let staging = Db::create(eng, dir.path(), "staging", test)?;
        let production = Db::create(eng, dir.path(), "production", test)?;
        for db in [&staging, &production] {
            db.sql(&format!("{}\n{}", schema(eng), shared_data(eng, items)));
        }
        let review = if review { "review = true\n" } else { "" };
        std::fs::write(
            dir.path().join("ferry.toml"),
            format!(
                "pipeline = [\"staging\", \"production\"]\n\n\
                 [environments.staging]\nurl_env = \"FERRY_TORTURE_STAGING_URL\"\n\n\
                 [environments.production]\nurl_env = \"FERRY_TORTURE_PRODUCTION_URL\"\n{review}\n\
                 [tables.shelves]\nkey = [\"id\"]\n\n\
                 [tables.items]\nkey = [\"id\"]\nreferences = {{ shelf_id = \"shelves\" }}\n"
            ),
        )
        .expect("write ferry.toml");
        let vars = vec![
            ("FERRY_TORTURE_STAGING_URL".to_string(), staging.url.clone()),
            ("FERRY_TORTURE_PRODUCTION_URL".to_string(), production.url.clone()),
        ];
        let s = Setup {
            dir,
            staging,
            production,
            vars,
        };
        s.run_ok(&["baseline", "staging", "production", "--yes"]);
        s.staging.sql(&staging_work(eng, items));
        Some(s)
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    #[track_caller]
    pub(super) fn run_ok(&self, args: &[&str]) -> crate::common::Output {
        let out = ferry(self.path(), args, &self.vars);
        assert!(
            !out.stderr.contains("panicked"),
            "ferry {args:?} panicked:\n{}",
            out.stderr
        );
        out.expect(0)
    }

    /// Promotes staging into production; the promotion id (or the review
    /// id when production takes reviews).
    pub(super) fn promote(&self) -> String {
        let v = self
            .run_ok(&["promote", "staging", "production", "--yes", "--json"])
            .json();
        let id = if v["review"].is_string() {
            &v["review"]
        } else {
            &v["promotion"]
        };
        id.as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
    }

    pub(super) fn revert(&self, id: &str) {
        self.run_ok(&["revert", id, "--yes"]);
    }

    pub(super) fn review_status(&self, id: &str) -> String {
        self.production
            .scalar(&format!("SELECT status FROM _ferry_reviews WHERE id = '{id}'"))
    }
}

/// Waits until the server has ended every session of the killed process.
/// A backend whose client died still finishes the statement it was given:
/// a COMMIT sent just before the kill lands a moment later, and a state
/// read before it and a status read after it would disagree.
fn sessions_ended(db: &Db, what: &str) {
    let others = match db.eng {
        Eng::Sqlite => return,
        Eng::Postgres => {
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        }
        Eng::Mysql => {
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
        }
    };
    let start = Instant::now();
    while db.scalar(others) != "0" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: the killed command's sessions are still open after 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How one kill ended.
#[derive(Default)]
struct Tally {
    before: usize,
    after: usize,
    finished: usize,
    hot_journal: usize,
}

/// Runs `args` and kills it with SIGKILL after `delay` unless it ended
/// first; `Some(exit code)` when it ended on its own.
fn run_and_kill(s: &Setup, args: &[&str], delay: Duration) -> Option<i32> {
    let log = s.path().join("killed.log");
    let file = std::fs::File::create(&log).expect("a log file");
    let mut child = ferry_command(s.path(), args, &s.vars)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start ferry");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for ferry") {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(!stderr.contains("panicked"), "ferry {args:?} panicked:\n{stderr}");
            return Some(status.code().unwrap_or(-1));
        }
        if start.elapsed() >= delay {
            // std's kill is SIGKILL on Unix.
            child.kill().expect("kill ferry");
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Long on purpose: one command's torture run (a run to completion for the
/// states and the duration, then kills at random points, each checked to
/// leave the state before or the state after) reads as one sequence; its
/// steps share the fixture and those states.
fn torture(eng: Eng, cmd: Cmd) {
    let test = format!("kill::{}_{}", cmd.name().replace(' ', "_"), eng.name());
    let Some(s) = Setup::new(eng, &test, cmd == Cmd::Approve) else {
        return;
    };
    let seed = super::seed();
    let runs = super::runs(20);
    say(&format!(
        "torture {test}: seed {seed} (FERRY_TORTURE_SEED={seed} replays it), {runs} kills"
    ));
    let mut rng = Rng::new(seed);
    let before = dump(&s.production);

    // One run to completion: the state after, and the command's duration.
    // `pending` is what the killed command works on: the promotion to
    // revert, or the review to approve.
    let (after, mut duration, mut pending) = match cmd {
        Cmd::Promote => {
            let t = Instant::now();
            let id = s.promote();
            let d = t.elapsed();
            let after = dump(&s.production);
            s.revert(&id);
            (after, d, String::new())
        }
        Cmd::Revert => {
            let id = s.promote();
            let after = dump(&s.production);
            let t = Instant::now();
            s.revert(&id);
            let d = t.elapsed();
            assert_eq!(
                dump(&s.production),
                before,
                "{test}: revert did not restore the state before"
            );
            (after, d, s.promote())
        }
        Cmd::Approve => {
            let review = s.promote();
            assert_eq!(dump(&s.production), before, "{test}: a review wrote rows");
            let t = Instant::now();
            s.run_ok(&["review", "approve", &review, "--yes"]);
            let d = t.elapsed();
            let after = dump(&s.production);
            let promotion = check_ferry_tables(&s.production, &test).expect("the approval's promotion");
            s.revert(&promotion);
            (after, d, s.promote())
        }
    };
    assert_ne!(before, after, "{test}: the command changed nothing");
    assert_eq!(
        dump(&s.production),
        if cmd == Cmd::Revert {
            after.clone()
        } else {
            before.clone()
        },
        "{test}: the reference run did not come back to its start"
    );
    let args_of = |pending: &str| -> Vec<String> {
        match cmd {
            Cmd::Promote => ["promote", "staging", "production", "--yes"]
                .map(str::to_string)
                .to_vec(),
            Cmd::Revert => vec!["revert".into(), pending.to_string(), "--yes".into()],
            Cmd::Approve => vec!["review".into(), "approve".into(), pending.to_string(), "--yes".into()],
        }
    };
    // The states the killed command goes from and to.
    let (from, to) = match cmd {
        Cmd::Revert => (&after, &before),
        _ => (&before, &after),
    };
    let journal = s.path().join("production.db-journal");
    let mut tally = Tally::default();
    for run in 0..runs {
        let delay = Duration::from_micros(rng.next() % (duration.as_micros() as u64 + 1));
        let what = format!("{test} run {run} (seed {seed}, kill after {delay:?} of {duration:?})");
        let args = args_of(&pending);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ended = run_and_kill(&s, &args, delay);
        if ended.is_none() {
            sessions_ended(&s.production, &what);
        }
        if let Some(code) = ended {
            assert_eq!(code, 0, "{what}: the command failed on its own");
        }
        if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
            tally.hot_journal += 1;
        }
        let state = dump(&s.production);
        let done = if state == *from {
            false
        } else if state == *to {
            true
        } else {
            panic!("{what}: the target is neither the state before nor the state after");
        };
        let last = check_ferry_tables(&s.production, &what);
        match (ended, done) {
            (Some(_), false) => panic!("{what}: the command exited 0 but the target did not change"),
            (Some(_), true) => tally.finished += 1,
            (None, true) => tally.after += 1,
            (None, false) => tally.before += 1,
        }
        // Ferry's own tables agree with the state, and the next command
        // works without repair.
        match cmd {
            Cmd::Promote => {
                let id = if done {
                    last.unwrap_or_else(|| panic!("{what}: promoted rows but no promotion"))
                } else {
                    assert!(
                        last.is_none(),
                        "{what}: target unchanged but promotion {last:?} is recorded"
                    );
                    let t = Instant::now();
                    let id = s.promote();
                    duration = t.elapsed();
                    id
                };
                assert_eq!(&dump(&s.production), to, "{what}: the promotion run again");
                s.revert(&id);
                assert_eq!(&dump(&s.production), from, "{what}: revert after the kill");
            }
            Cmd::Revert => {
                if done {
                    assert!(last.is_none(), "{what}: reverted, but {last:?} is not marked reverted");
                } else {
                    assert_eq!(last.as_deref(), Some(pending.as_str()), "{what}: the promotion is gone");
                    let t = Instant::now();
                    s.revert(&pending);
                    duration = t.elapsed();
                }
                assert_eq!(&dump(&s.production), to, "{what}: the revert run again");
                pending = s.promote();
                assert_eq!(&dump(&s.production), from, "{what}: the promotion after the revert");
            }
            Cmd::Approve => {
                let status = s.review_status(&pending);
                let promotion = if done {
                    assert_eq!(status, "approved", "{what}: rows written, review not approved");
                    last.unwrap_or_else(|| panic!("{what}: approved but no promotion"))
                } else {
                    assert_eq!(status, "open", "{what}: nothing written, yet the review is {status}");
                    assert!(last.is_none(), "{what}: nothing written but {last:?} is recorded");
                    let t = Instant::now();
                    s.run_ok(&["review", "approve", &pending, "--yes"]);
                    duration = t.elapsed();
                    check_ferry_tables(&s.production, &what).expect("the approval's promotion")
                };
                assert_eq!(&dump(&s.production), to, "{what}: the approval run again");
                s.revert(&promotion);
                assert_eq!(&dump(&s.production), from, "{what}: revert after the kill");
                pending = s.promote();
            }
        }
    }
    say(&format!(
        "torture {test}: {runs} kills (seed {seed}, command {duration:?}): {} before, {} after, {} finished first{}",
        tally.before,
        tally.after,
        tally.finished,
        if eng == Eng::Sqlite {
            format!(", {} hot journals rolled back by the checker", tally.hot_journal)
        } else {
            String::new()
        }
    ));
    let _ = &s.staging;
}

#[test]
fn promote_sqlite() {
    torture(Eng::Sqlite, Cmd::Promote);
}

#[test]
fn promote_postgres() {
    torture(Eng::Postgres, Cmd::Promote);
}

#[test]
fn promote_mariadb() {
    torture(Eng::Mysql, Cmd::Promote);
}

#[test]
fn revert_sqlite() {
    torture(Eng::Sqlite, Cmd::Revert);
}

#[test]
fn revert_postgres() {
    torture(Eng::Postgres, Cmd::Revert);
}

#[test]
fn revert_mariadb() {
    torture(Eng::Mysql, Cmd::Revert);
}

#[test]
fn approve_sqlite() {
    torture(Eng::Sqlite, Cmd::Approve);
}

#[test]
fn approve_postgres() {
    torture(Eng::Postgres, Cmd::Approve);
}

#[test]
fn approve_mariadb() {
    torture(Eng::Mysql, Cmd::Approve);
}

/// The checks above see what they must: a target half promoted is neither
/// state, a journal row without its promotion and a sync base out of step
/// with the target fail. (A checker that sees nothing would pass every kill.)
#[test]
fn the_checks_see_a_broken_target() {
    let s = Setup::new(Eng::Sqlite, "kill::checks", false).expect("SQLite needs no server");
    let id = s.promote();
    let after = dump(&s.production);
    assert_eq!(
        check_ferry_tables(&s.production, "promoted").as_deref(),
        Some(id.as_str())
    );
    let file = s.production.path.clone().expect("a file");
    let pristine = std::fs::read(&file).expect("production.db");
    s.production.sql("UPDATE items SET name = name || ' ' WHERE id = 3;");
    assert_ne!(dump(&s.production), after, "a changed cell is seen");
    let broken = [
        format!("DELETE FROM _ferry_promotions WHERE id = '{id}';"),
        "DELETE FROM _ferry_sync WHERE row_key = (SELECT min(row_key) FROM _ferry_sync);".to_string(),
        format!("DELETE FROM _ferry_journal WHERE promotion_id = '{id}' AND seq = 1;"),
        "DELETE FROM items WHERE id = 1;".to_string(),
    ];
    for sql in broken {
        std::fs::write(&file, &pristine).expect("restore");
        s.production.sql(&sql);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_ferry_tables(&s.production, "broken")
        }));
        assert!(caught.is_err(), "the checks did not see: {sql}");
    }
}
