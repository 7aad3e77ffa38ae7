//! Ferry's database connections cut under it while it applies: the
//! transaction's connection (PostgreSQL `pg_terminate_backend`, MariaDB
//! `KILL CONNECTION`) and the connection holding the writer lock, for
//! `ferry promote`, `revert` and `review approve`.
//!
//! A killed process closes its sockets; here the process goes on while a
//! connection dies under it. Each cut is deterministic, made at a point the
//! test holds Ferry at with the database's own row locks (as
//! `ferry-engine`'s `engines::races` does): a client transaction locks rows
//! Ferry is about to lock (`SELECT ... FOR UPDATE`), the test waits until
//! the server shows one of Ferry's statements waiting for that lock, finds
//! the connection, cuts it, and lets the client go. The points:
//!
//! - `recheck`: a planned row of `items`, which the transaction re-checks
//!   before it writes anything (the transaction's connection is cut);
//! - `sync base`: the sync base rows of `items`, which the transaction
//!   writes after every row of the target (inserts, updates and deletes are
//!   done, not committed; the transaction's connection is cut);
//! - `lock`: the writer lock's connection is cut while the transaction
//!   waits at the re-check; the transaction then goes on, and must not
//!   commit (another writer may hold the lock by then).
//!
//! After each cut: the command failed with its documented exit code (1, a
//! database failed; 3, the writer lock was lost) and a message naming the
//! environment; the target is byte for byte as before; Ferry's own tables
//! are consistent and record nothing of the failed command (the review is
//! still open); the same command then works without repair.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, Row as _};

use super::kill::{check_ferry_tables, dump, Cmd, Setup};
use super::{ferry_command, say, Eng};

/// A client connection to the target's server.
enum Client {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Client {
    async fn open(eng: Eng, url: &str) -> Client {
        match eng {
            Eng::Postgres => Client::Pg(sqlx::PgConnection::connect(url).await.expect("client connects")),
            Eng::Mysql => Client::My(sqlx::MySqlConnection::connect(url).await.expect("client connects")),
            Eng::Sqlite => unreachable!("connections are cut on the servers"),
        }
    }

    async fn exec(&mut self, sql: &str) {
        let done = match self {
            Client::Pg(c) => c.execute(sql).await.map(|_| ()),
            Client::My(c) => c.execute(sql).await.map(|_| ()),
        };
        done.unwrap_or_else(|e| panic!("client: {e}\n{sql}"));
    }

    /// The first column of every row, as numbers.
    async fn ids(&mut self, sql: &str) -> Vec<i64> {
        let rows = match self {
            Client::Pg(c) => c
                .fetch_all(sql)
                .await
                .map(|rows| rows.iter().map(|r| r.get::<i64, _>(0)).collect()),
            Client::My(c) => c
                .fetch_all(sql)
                .await
                .map(|rows| rows.iter().map(|r| r.get::<i64, _>(0)).collect()),
        };
        rows.unwrap_or_else(|e| panic!("client: {e}\n{sql}"))
    }
}

/// Where Ferry is held, and which of its connections is cut there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Point {
    Recheck,
    SyncBase,
    Lock,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::Recheck => "transaction at the re-check",
            Point::SyncBase => "transaction at the sync base",
            Point::Lock => "writer lock",
        }
    }

    /// What the client locks to hold Ferry here. Item 3 is updated by the
    /// promotion (and restored by its revert).
    fn hold(self) -> &'static str {
        match self {
            Point::Recheck | Point::Lock => "SELECT id FROM items WHERE id = 3 FOR UPDATE",
            Point::SyncBase => {
                "SELECT row_key FROM _ferry_sync WHERE source_env = 'staging' AND table_name = 'items' FOR UPDATE"
            }
        }
    }

    /// Ferry's statement waiting for the client's lock: its connection.
    fn waiting(self, eng: Eng) -> String {
        let table = match self {
            Point::SyncBase => "_ferry_sync",
            _ => "`items`",
        };
        match eng {
            Eng::Postgres => "SELECT pid::bigint FROM pg_stat_activity WHERE datname = current_database() \
                              AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                .to_string(),
            // MariaDB shows no lock wait in the process list: a statement on
            // that table running for 300 ms on tables this small waits.
            _ => format!(
                "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
                 AND ID <> CONNECTION_ID() AND COMMAND <> 'Sleep' AND TIME_MS > 300 AND INFO LIKE '%{table}%'"
            ),
        }
    }
}

/// The connection holding Ferry's writer lock.
fn lock_holder(eng: Eng) -> &'static str {
    match eng {
        Eng::Postgres => {
            "SELECT pid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        }
        _ => {
            "SELECT CAST(IS_USED_LOCK(CONCAT('ferry:', DATABASE())) AS SIGNED) FROM DUAL \
              WHERE IS_USED_LOCK(CONCAT('ferry:', DATABASE())) IS NOT NULL"
        }
    }
}

/// Cuts the connection `id`, and waits until the server has ended it: a
/// terminated backend exits asynchronously, and until it has, it still
/// holds its locks (a lock cut that lands after the command's commit
/// check is no cut at all).
async fn cut_connection(observer: &mut Client, eng: Eng, id: i64) {
    let alive = match eng {
        Eng::Postgres => {
            observer.exec(&format!("SELECT pg_terminate_backend({id})")).await;
            format!("SELECT pid::bigint FROM pg_stat_activity WHERE pid = {id}")
        }
        _ => {
            observer.exec(&format!("KILL CONNECTION {id}")).await;
            format!("SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE ID = {id}")
        }
    };
    for _ in 0..200 {
        if observer.ids(&alive).await.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("connection {id} was cut but is still alive after 5 s");
}

/// The command's arguments, on `pending` (the promotion to revert, the
/// review to approve).
fn args_of(cmd: Cmd, pending: &str) -> Vec<String> {
    match cmd {
        Cmd::Promote => ["promote", "staging", "production", "--yes"]
            .map(str::to_string)
            .to_vec(),
        Cmd::Revert => vec!["revert".into(), pending.to_string(), "--yes".into()],
        Cmd::Approve => vec!["review".into(), "approve".into(), pending.to_string(), "--yes".into()],
    }
}

/// Runs the command to completion from the state `from`, checks it reaches
/// `to`, and comes back to `from`; the next `pending`.
fn complete(s: &Setup, cmd: Cmd, pending: &str, to: &str, what: &str) -> String {
    match cmd {
        Cmd::Promote => {
            let id = s.promote();
            assert_eq!(dump(&s.production), to, "{what}: the promotion run again");
            s.revert(&id);
            String::new()
        }
        Cmd::Revert => {
            s.revert(pending);
            assert_eq!(dump(&s.production), to, "{what}: the revert run again");
            s.promote()
        }
        Cmd::Approve => {
            s.run_ok(&["review", "approve", pending, "--yes"]);
            assert_eq!(dump(&s.production), to, "{what}: the approval run again");
            let promotion = check_ferry_tables(&s.production, what).expect("the approval's promotion");
            s.revert(&promotion);
            s.promote()
        }
    }
}

fn cuts(eng: Eng, cmd: Cmd) {
    let test = format!("cut::{}_{}", cmd.name().replace(' ', "_"), eng.name());
    // Few rows: the cuts are made at fixed points, not at random times.
    let Some(s) = Setup::with_items(eng, &test, cmd == Cmd::Approve, 60) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // The states the command goes from and to, and what it works on.
    let before = dump(&s.production);
    let (from, to, mut pending) = match cmd {
        Cmd::Promote => {
            let id = s.promote();
            let after = dump(&s.production);
            s.revert(&id);
            (before, after, String::new())
        }
        Cmd::Revert => {
            let id = s.promote();
            (dump(&s.production), before, id)
        }
        Cmd::Approve => {
            let review = s.promote();
            s.run_ok(&["review", "approve", &review, "--yes"]);
            let after = dump(&s.production);
            let promotion = check_ferry_tables(&s.production, &test).expect("the approval's promotion");
            s.revert(&promotion);
            (before, after, s.promote())
        }
    };
    assert_ne!(from, to, "{test}: the command changes nothing");
    assert_eq!(dump(&s.production), from, "{test}: the start");

    for point in [Point::Recheck, Point::SyncBase, Point::Lock] {
        let what = format!("{test}, {} cut", point.name());
        let last_before = check_ferry_tables(&s.production, &what);
        let args = args_of(cmd, &pending);
        let (code, stderr) = rt.block_on(async {
            let mut client = Client::open(eng, &s.production.url).await;
            let mut observer = Client::open(eng, &s.production.url).await;
            client.exec("BEGIN").await;
            client.exec(point.hold()).await;
            let log = s.path().join("cut.log");
            let mut child = ferry_command(s.path(), &args.iter().map(String::as_str).collect::<Vec<_>>(), &s.vars)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("a log file"))
                .spawn()
                .expect("start ferry");
            // Ferry waits for the client's lock.
            let started = Instant::now();
            let waiting = loop {
                let ids = observer.ids(&point.waiting(eng)).await;
                if let [one] = ids.as_slice() {
                    break *one;
                }
                assert!(ids.len() < 2, "{what}: several statements wait: {ids:?}");
                if let Some(status) = child.try_wait().expect("wait for ferry") {
                    panic!(
                        "{what}: ferry ended ({status}) before it waited for the client's lock:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{what}: ferry never waited for the client's lock"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let victim = if point == Point::Lock {
                let ids = observer.ids(lock_holder(eng)).await;
                assert_eq!(ids.len(), 1, "{what}: one connection holds the writer lock: {ids:?}");
                assert_ne!(ids[0], waiting, "{what}: the lock has a connection of its own");
                ids[0]
            } else {
                waiting
            };
            cut_connection(&mut observer, eng, victim).await;
            client.exec("ROLLBACK").await;
            let started = Instant::now();
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait for ferry") {
                    break status;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    let _ = child.kill();
                    panic!("{what}: ferry did not end within 60 s of the cut");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            (
                status.code().unwrap_or(-1),
                std::fs::read_to_string(&log).unwrap_or_default(),
            )
        });
        assert!(!stderr.contains("panicked"), "{what}: ferry panicked:\n{stderr}");
        let (expected, says) = match point {
            Point::Lock => (3, "writer lock was lost"),
            _ => (1, "the database connection closed under Ferry"),
        };
        assert_eq!(code, expected, "{what}: exit code; stderr:\n{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("`production`"),
            "{what}: the error says {says:?} and names the environment:\n{stderr}"
        );
        // Nothing of the command: the target and Ferry's tables as before.
        assert_eq!(dump(&s.production), from, "{what}: the target changed");
        let last = check_ferry_tables(&s.production, &what);
        assert_eq!(last, last_before, "{what}: Ferry's records changed");
        if cmd == Cmd::Approve {
            assert_eq!(s.review_status(&pending), "open", "{what}: the review");
        }
        say(&format!("torture {what}: exit {code}: {}", stderr.trim()));
        // The same command works without repair.
        pending = complete(&s, cmd, &pending, &to, &what);
        assert_eq!(dump(&s.production), from, "{what}: back to the start");
    }
    let _ = &s.staging;
}

#[test]
fn promote_postgres() {
    cuts(Eng::Postgres, Cmd::Promote);
}

#[test]
fn promote_mariadb() {
    cuts(Eng::Mysql, Cmd::Promote);
}

#[test]
fn revert_postgres() {
    cuts(Eng::Postgres, Cmd::Revert);
}

#[test]
fn revert_mariadb() {
    cuts(Eng::Mysql, Cmd::Revert);
}

#[test]
fn approve_postgres() {
    cuts(Eng::Postgres, Cmd::Approve);
}

#[test]
fn approve_mariadb() {
    cuts(Eng::Mysql, Cmd::Approve);
}
