//! Issue 5 on PostgreSQL, through the real binary: three throw-away
//! databases (staging, preprod, production) on the server named by
//! `FERRY_TEST_POSTGRES_URL`, reached through `url_env` (the URLs are given
//! to the binary as environment variables, never written in `ferry.toml`).
//! Drafts and held revisions, approval by someone else, self-approval and
//! role refusals, rejection, a stale review, `--only`, pipeline order,
//! failing checks, `--approve-revisions` and a command hook.
//!
//! Without the variable the test prints a `SKIP` line and passes; with
//! `CI=true` a missing variable or an unreachable server fails it. The
//! databases come from `ferry_testdb` (dropped with their guards) and are
//! read and written with `psql`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ferry_testdb::{Database, Engine};
use serde_json::Value as J;

use crate::common::Output;

const TEST: &str = "reviews_postgres";

/// The three environments share this schema: businesses reference cities
/// and carry a draft flag and a stamp; forms belong to a business (parent)
/// and carry a draft flag; form fields belong to a form.
const SCHEMA: &str = "
CREATE TABLE cities (
    id integer PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE businesses (
    id integer PRIMARY KEY,
    name text NOT NULL,
    city_id integer REFERENCES cities(id),
    is_published boolean NOT NULL DEFAULT false,
    modified_at timestamptz
);
CREATE TABLE forms (
    id integer PRIMARY KEY,
    business_id integer NOT NULL REFERENCES businesses(id),
    title text NOT NULL,
    is_published boolean NOT NULL DEFAULT false
);
CREATE TABLE form_fields (
    id integer PRIMARY KEY,
    form_id integer NOT NULL REFERENCES forms(id),
    label text NOT NULL
);
";

/// What every environment holds at the start (and is baselined).
const SHARED: &str = "
INSERT INTO cities VALUES (1, 'Lyon');
INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1, true, '2020-01-01 00:00:00+00');
INSERT INTO forms VALUES (1, 1, 'Contact', true);
INSERT INTO form_fields VALUES (1, 1, 'Name');
";

/// The product manager's new work in staging: a renamed city and business,
/// and a new business in a new city with a new form and its fields
/// (published in staging).
const STAGING_WORK: &str = "
UPDATE cities SET name = 'Lyon 2' WHERE id = 1;
UPDATE businesses SET name = 'Café Olé ☕ v2' WHERE id = 1;
INSERT INTO cities VALUES (2, 'Zürich 🏔️');
INSERT INTO businesses VALUES (2, 'Bäckerei 🥨', 2, true, NULL);
INSERT INTO forms VALUES (2, 2, 'Order 🧾', true);
INSERT INTO form_fields VALUES (2, 2, 'Item'), (3, 2, 'Quantity');
";

const ENVIRONMENTS: &str = r#"pipeline = ["staging", "preprod", "production"]

[environments.staging]
url_env = "FERRY_PGT_STAGING_URL"

[environments.preprod]
url_env = "FERRY_PGT_PREPROD_URL"
review = true

[environments.production]
url_env = "FERRY_PGT_PRODUCTION_URL"
review = true
"#;

const TABLES: &str = r#"
[tables.cities]
key = ["id"]

[tables.businesses]
key = ["id"]
references = { city_id = "cities" }
stamp = { modified_at = "now" }
draft = { is_published = false }

[tables.forms]
key = ["id"]
parent = { business_id = "businesses" }
draft = { is_published = false }

[tables.form_fields]
key = ["id"]
parent = { form_id = "forms" }
"#;

const ACCESS: &str = r#"
[access]
users = { alice = ["pm"], bob = ["pm", "lead"], carol = ["qa"] }
promote = { preprod = ["pm"], production = ["pm"] }
approve = { preprod = ["lead"], production = ["lead"] }
revert = { preprod = ["lead"], production = ["lead"] }
"#;

const APP_TABLES: [&str; 4] = ["cities", "businesses", "forms", "form_fields"];

/// One throw-away database, dropped (with `FORCE`) when the guard goes.
struct Db {
    name: String,
    url: String,
    db: Database,
}

impl Db {
    /// A new database for environment `env`; `None` after a SKIP line.
    fn create(env: &str) -> Option<Db> {
        let db = Database::create(Engine::Postgres, TEST, &format!("rv_{env}"))?;
        Some(Db {
            name: db.name(),
            url: db.url.clone(),
            db,
        })
    }

    #[track_caller]
    fn exec(&self, sql: &str) -> String {
        self.db.client(sql)
    }

    /// The rows of a query, columns split on `|`.
    #[track_caller]
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.exec(sql)
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }

    #[track_caller]
    fn scalar(&self, sql: &str) -> String {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql} returned {rows:?}");
        rows[0][0].clone()
    }

    fn ids(&self, table: &str) -> Vec<i64> {
        self.query(&format!("SELECT id FROM {table} ORDER BY id"))
            .into_iter()
            .map(|r| r[0].parse().expect("an integer id"))
            .collect()
    }

    /// The named tables' rows, each as its row literal (`t::text`), in
    /// order of that text: equal dumps hold the same values in every cell.
    fn dump_tables(&self, tables: &[&str]) -> String {
        ferry_testdb::pg_dump_tables(&self.url, tables).unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// What "nothing written" covers: the application's tables and Ferry's
    /// own (journal, promotions, reviews, sync base), but not the audit
    /// trail (refusals are audited) nor Ferry's migration version.
    fn dump(&self) -> String {
        let tables: Vec<String> = self
            .exec(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' \
                 AND tablename NOT IN ('_ferry_audit', '_ferry_schema') ORDER BY 1;",
            )
            .lines()
            .map(str::to_string)
            .collect();
        let names: Vec<&str> = tables.iter().map(String::as_str).collect();
        format!("{}\n{}", names.join(","), self.dump_tables(&names))
    }

    /// The application tables and the sync base: what a rejection must
    /// leave exactly as it was.
    fn data_and_base(&self) -> String {
        let mut t = APP_TABLES.to_vec();
        t.push("_ferry_sync");
        self.dump_tables(&t)
    }

    /// The compared content (everything but the stamped `modified_at`).
    fn content(&self) -> Vec<Vec<Vec<String>>> {
        [
            "SELECT * FROM cities ORDER BY id",
            "SELECT id, name, city_id, is_published FROM businesses ORDER BY id",
            "SELECT * FROM forms ORDER BY id",
            "SELECT * FROM form_fields ORDER BY id",
        ]
        .iter()
        .map(|q| self.query(q))
        .collect()
    }

    fn published(&self, table: &str, id: i64) -> String {
        self.scalar(&format!("SELECT is_published FROM {table} WHERE id = {id}"))
    }
}

/// The three databases and a folder with `ferry.toml`.
struct Fixture {
    dir: tempfile::TempDir,
    staging: Db,
    preprod: Db,
    production: Db,
}

impl Fixture {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self, extra: &str) {
        std::fs::write(
            self.path().join("ferry.toml"),
            format!("{ENVIRONMENTS}{TABLES}{ACCESS}{extra}"),
        )
        .expect("write ferry.toml");
    }

    /// Runs `ferry ARGS` in the folder, the URLs in the environment.
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .current_dir(self.path())
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_LOG")
            .env("FERRY_PGT_STAGING_URL", &self.staging.url)
            .env("FERRY_PGT_PREPROD_URL", &self.preprod.url)
            .env("FERRY_PGT_PRODUCTION_URL", &self.production.url)
            .env("FERRY_USER", "tester")
            .env("NO_COLOR", "1")
            .env("CLICOLOR", "0")
            .stdin(Stdio::null())
            .output()
            .expect("run the ferry binary");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `ferry ARGS --as USER --yes`.
    fn run_as(&self, user: &str, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--as", user, "--yes"]);
        self.run(&all)
    }

    /// `promote FROM TO --as USER --yes --json`, expecting success.
    fn promote_as(&self, user: &str, from: &str, to: &str, extra: &[&str]) -> J {
        let mut args = vec!["promote", from, to, "--json"];
        args.extend_from_slice(extra);
        self.run_as(user, &args).expect(0).json()
    }

    /// The one open review of `env` (panics unless there is exactly one).
    fn open_review(&self, env: &str) -> J {
        let v = self.run(&["reviews", env, "--json"]).expect(0).json();
        let list = v.as_array().unwrap_or_else(|| panic!("not an array: {v:#}"));
        assert_eq!(list.len(), 1, "{v:#}");
        list[0].clone()
    }

    /// `(user, action, result)` of every audit entry of `env`, oldest first.
    fn audit(&self, env: &str) -> Vec<(String, String, String)> {
        let v = self.run(&["audit", env, "--json"]).expect(0).json();
        let mut rows: Vec<(String, String, String)> = v
            .as_array()
            .unwrap_or_else(|| panic!("audit --json is not an array: {v:#}"))
            .iter()
            .map(|a| {
                let t = |k: &str| a[k].as_str().unwrap_or("-").to_string();
                (t("user"), t("action"), t("result"))
            })
            .collect();
        rows.reverse();
        rows
    }
}

/// Three databases holding [`SHARED`], baselined along the pipeline by
/// bob, then [`STAGING_WORK`] in staging. `None` (after a SKIP line) when
/// no server is configured or reachable.
fn seed() -> Option<Fixture> {
    let f = Fixture {
        dir: tempfile::tempdir().expect("a temporary folder"),
        staging: Db::create("staging")?,
        preprod: Db::create("preprod")?,
        production: Db::create("production")?,
    };
    for db in [&f.staging, &f.preprod, &f.production] {
        db.exec(&format!("{SCHEMA}\n{SHARED}"));
    }
    f.write_config("");
    // The file names no URL, only the variables.
    let text = std::fs::read_to_string(f.path().join("ferry.toml")).expect("read ferry.toml");
    assert!(!text.contains("postgres://") && !text.contains("url ="), "{text}");
    for (from, to) in [("staging", "preprod"), ("preprod", "production")] {
        let v = f.run_as("bob", &["baseline", from, to, "--json"]).expect(0).json();
        assert_eq!(v["recorded"], 4, "{v:#}");
    }
    f.staging.exec(STAGING_WORK);
    Some(f)
}

/// A one-request HTTP server on loopback (any free port): the body of the
/// request it answered (with 200) comes out of the receiver. It stops after
/// that request, or after a minute.
fn webhook_server() -> (u16, mpsc::Receiver<String>, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return,
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok(clone) = stream.try_clone() else { return };
        let mut reader = BufReader::new(clone);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let mut len = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        let _ = stream.flush();
        let _ = tx.send(format!("{}\n{}", line.trim(), String::from_utf8_lossy(&body)));
    });
    (port, rx, handle)
}

fn review_id(v: &J) -> String {
    v["review"]
        .as_str()
        .unwrap_or_else(|| panic!("no review: {v:#}"))
        .to_string()
}

/// `(table, id, state)` of every change of a review.
fn states(r: &J) -> Vec<(String, i64, String)> {
    r["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {r:#}"))
        .iter()
        .map(|c| {
            (
                c["table"].as_str().unwrap_or_default().to_string(),
                c["key"]["id"].as_i64().unwrap_or(-1),
                c["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn st(table: &str, id: i64, state: &str) -> (String, i64, String) {
    (table.to_string(), id, state.to_string())
}

/// Long on purpose: one review story on PostgreSQL told in order (refusals,
/// rejection, self-approval, drafts and held rows, a stale review, partial
/// approval); each step needs the state the previous ones left, so
/// splitting it would hide the sequence.
#[test]
fn the_review_flow_on_postgres() {
    let Some(f) = seed() else { return };

    // ---- role refusals: exit 4, nothing written --------------------------
    let preprod_before = f.preprod.dump();
    for user in ["carol", "mallory"] {
        let out = f.run_as(user, &["promote", "staging", "preprod"]).expect(4);
        assert!(out.stderr.contains(user), "{}", out.stderr);
        assert!(out.stderr.contains("Nothing was written"), "{}", out.stderr);
    }
    f.run_as("carol", &["baseline", "staging", "preprod"]).expect(4);
    assert_eq!(f.preprod.dump(), preprod_before);

    // ---- skipping preprod: exit 3, naming the path -----------------------
    let production_before = f.production.dump();
    let out = f.run_as("alice", &["promote", "staging", "production"]).expect(3);
    assert!(
        out.stderr
            .contains("`ferry promote staging preprod`, then `ferry promote preprod production`"),
        "{}",
        out.stderr
    );
    assert_eq!(f.production.dump(), production_before);

    // ---- rejection leaves the target exactly as before --------------------
    let before = f.preprod.data_and_base();
    let v = f.promote_as("alice", "staging", "preprod", &[]);
    let rejected = review_id(&v);
    assert_eq!(v["promotion"], v["drafts"], "{v:#}");
    assert_eq!(v["counts"]["insert"], 5, "{v:#}");
    assert_eq!(f.preprod.ids("businesses"), [1, 2]);
    assert_eq!(f.preprod.published("businesses", 2), "f");
    assert_eq!(f.preprod.published("forms", 2), "f");
    assert_eq!(f.preprod.ids("form_fields"), [1, 2, 3]);
    assert_ne!(f.preprod.data_and_base(), before, "the drafts are in");
    let out = f.run_as("bob", &["review", "reject", &rejected]).expect(0);
    assert!(out.stdout.contains("rejected"), "{}", out.stdout);
    assert_eq!(f.preprod.data_and_base(), before);

    // ---- self-approval refused --------------------------------------------
    // bob holds both promote and approve in preprod, but submitted it.
    let own = review_id(&f.promote_as("bob", "staging", "preprod", &[]));
    let held = f.preprod.dump();
    let out = f.run_as("bob", &["review", "approve", &own]).expect(4);
    assert!(out.stderr.contains("submitted"), "{}", out.stderr);
    assert!(out.stderr.contains("bob"), "{}", out.stderr);
    assert_eq!(f.preprod.dump(), held);
    f.run_as("bob", &["review", "reject", &own]).expect(0);
    assert_eq!(f.preprod.data_and_base(), before);

    // ---- drafts + held revisions, then approval by someone else ----------
    let v = f.promote_as("alice", "staging", "preprod", &[]);
    let review = review_id(&v);
    assert_eq!(f.preprod.published("businesses", 2), "f");
    assert_eq!(
        f.preprod.scalar("SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕",
        "the update waits for approval"
    );
    assert_eq!(f.preprod.scalar("SELECT name FROM cities WHERE id = 1"), "Lyon");
    let r = f.open_review("preprod");
    assert_eq!(r["id"], review.as_str(), "{r:#}");
    assert_eq!(r["by"], "alice", "{r:#}");
    assert_eq!(
        states(&r),
        [
            st("cities", 1, "pending"),
            st("businesses", 1, "pending"),
            st("businesses", 2, "pending"),
            st("forms", 2, "pending"),
        ],
        "{r:#}"
    );
    let out = f.run(&["review", "show", &review]).expect(0);
    assert!(out.stdout.contains("Café Olé ☕ v2"), "{}", out.stdout);
    // Neither the submitter nor QA may decide it.
    let held = f.preprod.dump();
    f.run_as("alice", &["review", "approve", &review]).expect(4);
    f.run_as("carol", &["review", "approve", &review]).expect(4);
    f.run_as("carol", &["review", "reject", &review]).expect(4);
    assert_eq!(f.preprod.dump(), held);

    // ---- a stale review refuses to apply ----------------------------------
    f.preprod
        .exec("UPDATE businesses SET name = 'Edited in preprod' WHERE id = 1;");
    let held = f.preprod.dump();
    let out = f.run_as("bob", &["review", "approve", &review]).expect(3);
    for want in ["stale", "businesses:1", review.as_str()] {
        assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
    }
    assert_eq!(f.preprod.dump(), held, "nothing of the review applied");
    let out = f.run(&["review", "show", &review]).expect(0);
    assert!(
        out.stdout.contains("target now \"Edited in preprod\""),
        "{}",
        out.stdout
    );

    // ---- partial approval with --only ------------------------------------
    let v = f
        .run_as("bob", &["review", "approve", &review, "--only", "cities:1", "--json"])
        .expect(0)
        .json();
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(f.preprod.scalar("SELECT name FROM cities WHERE id = 1"), "Lyon 2");
    assert_eq!(f.preprod.published("businesses", 2), "f", "the rest still waits");
    f.run_as(
        "bob",
        &[
            "review",
            "approve",
            &review,
            "--only",
            "businesses:2",
            "--only",
            "forms:2",
        ],
    )
    .expect(0);
    assert_eq!(f.preprod.published("businesses", 2), "t");
    assert_eq!(f.preprod.published("forms", 2), "t");
    let out = f
        .run_as("bob", &["review", "reject", &review, "--only", "businesses:1"])
        .expect(0);
    // The drafts were published by the approval: they stay, and it says so.
    assert!(
        out.stdout
            .contains("the drafts already published in preprod stay; the review is partly-approved"),
        "{}",
        out.stdout
    );
    assert_eq!(f.preprod.published("businesses", 2), "t");
    assert_eq!(
        f.preprod.scalar("SELECT name FROM businesses WHERE id = 1"),
        "Edited in preprod",
        "preprod's own edit stays"
    );
    let all = f.run(&["reviews", "preprod", "--all", "--json"]).expect(0).json();
    assert_eq!(all[0]["id"], review.as_str(), "{all:#}");
    assert_eq!(all[0]["status"], "partly-approved", "{all:#}");
    assert_eq!(all[0]["decided_by"], "bob", "{all:#}");
    assert_eq!(
        states(&all[0]),
        [
            st("cities", 1, "approved"),
            st("businesses", 1, "rejected"),
            st("businesses", 2, "approved"),
            st("forms", 2, "approved"),
        ],
        "{all:#}"
    );
    // Undo preprod's own edit: what goes on to production is all reviewed.
    f.preprod
        .exec("UPDATE businesses SET name = 'Café Olé ☕' WHERE id = 1;");

    // ---- failing checks block with exit 3, writing nothing ---------------
    let production_before = f.production.dump();
    f.write_config(
        r#"
[[environments.production.checks]]
sql = "SELECT true"
on = "target"

[[environments.production.checks]]
sql = "SELECT count(*) = 0 FROM businesses WHERE name LIKE 'Bäckerei%'"
on = "source"
"#,
    );
    let out = f
        .run_as("alice", &["promote", "preprod", "production", "--approve-revisions"])
        .expect(3);
    let text = out.all();
    assert!(text.contains("#2 sql on source"), "{text}");
    assert!(text.contains("returned false"), "{text}");
    assert_eq!(f.production.dump(), production_before);
    f.write_config(
        r#"
[[environments.production.checks]]
command = "echo 'search index unreachable' >&2; exit 1"
"#,
    );
    let out = f
        .run_as("alice", &["promote", "preprod", "production", "--approve-revisions"])
        .expect(3);
    let text = out.all();
    assert!(text.contains("exited with status 1"), "{text}");
    assert!(text.contains("search index unreachable"), "{text}");
    assert_eq!(f.production.dump(), production_before);

    // ---- --approve-revisions applies directly, the hooks get the id -----
    let (port, requests, server) = webhook_server();
    f.write_config(&format!(
        r#"
[[environments.production.checks]]
sql = "SELECT count(*) = 2 FROM businesses WHERE is_published"
on = "source"

[[environments.production.hooks]]
command = "cat > hook-payload.json; echo \"$FERRY_PROMOTION\" > hook-env.txt"
timeout = 20

[[environments.production.hooks]]
webhook = "http://127.0.0.1:{port}/reindex"
timeout = 20
"#
    ));
    let v = f.promote_as("alice", "preprod", "production", &["--approve-revisions"]);
    assert_eq!(v["review"], J::Null, "{v:#}");
    let direct = v["direct"]
        .as_str()
        .unwrap_or_else(|| panic!("no direct promotion: {v:#}"))
        .to_string();
    assert_eq!(v["promotion"], direct.as_str(), "{v:#}");
    assert_eq!(v["counts"]["insert"], 5, "{v:#}");
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(v["hooks"][0]["ok"], true, "{v:#}");
    assert_eq!(v["hooks"][1]["ok"], true, "{v:#}");
    assert_eq!(
        f.run(&["reviews", "production", "--all", "--json"]).expect(0).json(),
        J::Array(vec![]),
        "no review in production"
    );
    assert_eq!(
        f.production.query(
            "SELECT b.id, b.name, b.is_published, c.name FROM businesses b \
             JOIN cities c ON c.id = b.city_id ORDER BY b.id"
        ),
        [
            ["1", "Café Olé ☕", "t", "Lyon 2"],
            ["2", "Bäckerei 🥨", "t", "Zürich 🏔️"],
        ]
    );
    assert_eq!(f.production.published("forms", 2), "t");
    assert_eq!(f.production.ids("form_fields"), [1, 2, 3]);
    assert_eq!(
        f.production.content(),
        f.preprod.content(),
        "production matches preprod"
    );
    let payload = std::fs::read_to_string(f.path().join("hook-payload.json")).expect("the hook ran");
    let payload: J = serde_json::from_str(&payload).expect("the payload is JSON");
    assert_eq!(payload["promotion"], direct.as_str(), "{payload}");
    assert_eq!(payload["from"], "preprod", "{payload}");
    assert_eq!(payload["to"], "production", "{payload}");
    assert_eq!(payload["user"], "alice", "{payload}");
    let env_id = std::fs::read_to_string(f.path().join("hook-env.txt")).expect("the hook ran");
    assert_eq!(env_id.trim(), direct);
    let request = requests
        .recv_timeout(Duration::from_secs(30))
        .expect("the webhook was called");
    server.join().expect("the server stops");
    let (line, body) = request.split_once('\n').unwrap_or_default();
    assert_eq!(line, "POST /reindex HTTP/1.1");
    let body: J = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["promotion"], direct.as_str(), "{body}");
    assert_eq!(body["to"], "production", "{body}");

    // ---- the audit shows who did what -------------------------------------
    let a = |u: &str, act: &str, res: &str| (u.to_string(), act.to_string(), res.to_string());
    assert_eq!(
        f.audit("preprod"),
        [
            a("bob", "baseline", "ok"),
            a("carol", "promote", "denied"),
            a("mallory", "promote", "denied"),
            a("carol", "baseline", "denied"),
            a("alice", "promote", "ok"),
            a("bob", "reject", "ok"),
            a("bob", "promote", "ok"),
            a("bob", "approve", "denied"),
            a("bob", "reject", "ok"),
            a("alice", "promote", "ok"),
            a("alice", "approve", "denied"),
            a("carol", "approve", "denied"),
            a("carol", "reject", "denied"),
            a("bob", "approve", "blocked"),
            a("bob", "approve", "ok"),
            a("bob", "approve", "ok"),
            a("bob", "reject", "ok"),
        ]
    );
    let prod = f.audit("production");
    assert_eq!(prod[0], a("bob", "baseline", "ok"), "{prod:#?}");
    assert_eq!(prod[1], a("alice", "promote", "blocked"), "{prod:#?}");
    assert!(prod.contains(&a("alice", "promote", "ok")), "{prod:#?}");
}
