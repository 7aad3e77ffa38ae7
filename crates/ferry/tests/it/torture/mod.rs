//! The torture suite of issue 15: the real `ferry` binary killed with
//! SIGKILL at random points ([`kill`]), and mutated configuration files,
//! plan files and selection texts ([`fuzz`]). What it checks, how to run the
//! long version and what it does not cover: `docs/reliability.md`.
//!
//! This module holds what both share: a seeded random generator, the
//! throw-away databases of the three engines (SQLite files; PostgreSQL and
//! MariaDB databases from `ferry_testdb`, on the servers named by
//! `FERRY_TEST_POSTGRES_URL` / `FERRY_TEST_MYSQL_URL`, read and written
//! with `psql` and `mysql`), and a runner for the binary. Without a server
//! variable a test prints a `SKIP` line and passes; with `CI=true` a
//! missing variable or an unreachable server fails it.

mod cut;
mod fuzz;
mod kill;
mod race;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferry_testdb::{Database, Engine};

use crate::common::Output;

/// The engines the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eng {
    Sqlite,
    Postgres,
    Mysql,
}

impl Eng {
    pub fn name(self) -> &'static str {
        match self {
            Eng::Sqlite => "sqlite",
            Eng::Postgres => "postgres",
            Eng::Mysql => "mariadb",
        }
    }

    fn engine(self) -> Engine {
        match self {
            Eng::Sqlite => Engine::Sqlite,
            Eng::Postgres => Engine::Postgres,
            Eng::Mysql => Engine::Mariadb,
        }
    }

    /// A blob literal of this engine's SQL.
    pub fn blob(self, bytes: &[u8]) -> String {
        let hex = crate::common::hex(bytes);
        match self {
            Eng::Postgres => format!("decode('{hex}', 'hex')"),
            _ => format!("X'{hex}'"),
        }
    }

    /// `a || b` in this engine's SQL.
    pub fn concat(self, a: &str, b: &str) -> String {
        match self {
            Eng::Mysql => format!("CONCAT({a}, {b})"),
            _ => format!("{a} || {b}"),
        }
    }

    /// A column's bytes as hex text, for byte-for-byte dumps.
    pub fn hex_of(self, column: &str) -> String {
        self.engine().hex_of(column)
    }

    /// A bytea/blob column's bytes as hex text.
    pub fn hex_of_blob(self, column: &str) -> String {
        self.engine().hex_of_blob(column)
    }
}

/// The seed of a run: `FERRY_TORTURE_SEED`, else the clock. Printed by
/// every test so that a failure can be replayed.
pub fn seed() -> u64 {
    match std::env::var("FERRY_TORTURE_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FERRY_TORTURE_SEED={s:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// `FERRY_TORTURE_RUNS`, else `default`.
pub fn runs(default: usize) -> usize {
    match std::env::var("FERRY_TORTURE_RUNS") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FERRY_TORTURE_RUNS={s:?} is not a number")),
        Err(_) => default,
    }
}

/// splitmix64: small, seeded, good enough to pick delays and mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Prints past the harness's capture.
pub fn say(line: &str) {
    ferry_testdb::announce(line)
}

/// One throw-away database: a file in the test's folder, or a database on
/// a server, dropped when the guard goes.
pub struct Db {
    pub eng: Eng,
    /// The URL Ferry opens (SQLite: an absolute `sqlite://` path).
    pub url: String,
    /// SQLite: the file.
    pub path: Option<PathBuf>,
    /// Servers: the database, dropped with this guard.
    server: Option<Database>,
}

impl Db {
    /// A new empty database, `None` (after a SKIP line, or a failure under
    /// `CI=true`) when the engine's server is not configured or reachable.
    /// SQLite: `TAG.db` in `dir`, not created yet.
    pub fn create(eng: Eng, dir: &Path, tag: &str, test: &str) -> Option<Db> {
        if eng == Eng::Sqlite {
            let path = dir.join(format!("{tag}.db"));
            return Some(Db {
                eng,
                url: format!("sqlite://{}", path.display()),
                path: Some(path),
                server: None,
            });
        }
        let db = Database::create(eng.engine(), &format!("torture::{test}"), &format!("tt_{tag}"))?;
        Some(Db {
            eng,
            url: db.url.clone(),
            path: None,
            server: Some(db),
        })
    }

    /// Runs SQL (several statements); the rows, columns joined by `|`
    /// (`NULL` for null on SQLite and MariaDB, empty on PostgreSQL).
    ///
    /// On SQLite this opens the file read-write, as any SQLite client does:
    /// a hot `-journal` left by a killed writer is rolled back here (until
    /// Ferry recovers it itself, issue 15 defect 3).
    #[track_caller]
    pub fn sql(&self, sql: &str) -> String {
        match (&self.path, &self.server) {
            (Some(path), _) => sqlite_sql(path, sql),
            (None, Some(db)) => db.client(sql),
            (None, None) => unreachable!("a database is a file or on a server"),
        }
    }

    /// The one value of a query.
    #[track_caller]
    pub fn scalar(&self, sql: &str) -> String {
        let out = self.sql(sql);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{sql} returned {out:?}");
        lines[0].to_string()
    }
}

/// Runs SQL on an SQLite file (foreign keys off, as a plain client has
/// them); each statement's rows, columns joined by `|`.
fn sqlite_sql(path: &Path, sql: &str) -> String {
    let conn = rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let statements: Vec<&str> = sql
        .split(";\n")
        .map(|q| q.trim().trim_end_matches(';').trim())
        .filter(|q| !q.is_empty())
        .collect();
    let all_queries = statements
        .iter()
        .all(|q| q.get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select")));
    if !all_queries {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", path.display()));
        return String::new();
    }
    drop(conn);
    statements
        .iter()
        .flat_map(|q| crate::common::query(path, q))
        .map(|r| r.join("|") + "\n")
        .collect()
}

/// Runs the `ferry` binary in `dir` with extra environment variables, no
/// terminal on stdin and no configuration inherited from the caller.
pub fn ferry_command(dir: &Path, args: &[&str], vars: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("FERRY_CONFIG")
        .env_remove("FERRY_LOG")
        .env_remove("FERRY_PLAN_KEY")
        .env("FERRY_USER", "tester")
        .env("NO_COLOR", "1")
        .env("CLICOLOR", "0")
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `ferry ARGS` to its end.
pub fn ferry(dir: &Path, args: &[&str], vars: &[(String, String)]) -> Output {
    let out = ferry_command(dir, args, vars).output().expect("run the ferry binary");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
