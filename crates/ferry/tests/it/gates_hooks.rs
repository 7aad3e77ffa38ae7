//! Gates (`[[environments.NAME.checks]]`) and hooks
//! (`[[environments.NAME.hooks]]`), through the real binary on SQLite files:
//! a failing check blocks with exit 3, names the check, shows its output and
//! writes nothing; hooks run after the promotion commits and a failing one
//! never undoes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value as J;

use crate::common::{Fixture, CONFIG};

/// The standard fixture with `extra` (checks and hooks of production)
/// appended to its configuration.
fn fixture(extra: &str) -> Fixture {
    let f = Fixture::new();
    f.write_config(&format!("{CONFIG}\n{extra}\n"));
    f
}

/// `promote staging production --yes --force`: `--force` decides the
/// fixture's first-contact row (business 1) for staging.
fn promote_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["promote", "staging", "production", "--yes", "--force"];
    all.extend_from_slice(extra);
    all
}

fn read(f: &Fixture, name: &str) -> String {
    std::fs::read_to_string(f.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_failing_sql_check_on_the_source_blocks_and_writes_nothing() {
    let f = fixture(
        r#"[[environments.production.checks]]
sql = "SELECT 1"
on = "target"

[[environments.production.checks]]
sql = "SELECT count(*) = 0 FROM businesses WHERE name LIKE 'Bäckerei%'"
on = "source"

[[environments.production.checks]]
command = "touch never-ran.txt"
"#,
    );
    let before = f.dump("production");
    let out = f.run(&promote_args(&[])).expect(3);
    let all = out.all();
    assert!(all.contains("#2 sql on source"), "{all}");
    assert!(
        all.contains("SELECT count(*) = 0 FROM businesses WHERE name LIKE 'Bäckerei%'"),
        "{all}"
    );
    assert!(all.contains("returned 0"), "{all}");
    assert!(all.contains("nothing was written"), "{all}");
    assert_eq!(f.dump("production"), before, "a blocked promotion wrote something");
    // The first failure stops the others.
    assert!(!f.path().join("never-ran.txt").exists());

    // --json: the error names the check too, with the blocked code.
    let out = f.run(&promote_args(&["--json"])).expect(3);
    let v = out.json();
    assert_eq!(v["error"]["code"], "blocked", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("check #2 of `production` failed (sql on source: SELECT"),
        "{v}"
    );
    assert_eq!(f.dump("production"), before);
}

#[test]
fn a_failing_sql_check_on_the_target_blocks_even_a_dry_run() {
    let f = fixture(
        r#"[[environments.production.checks]]
sql = "SELECT NULL FROM cities WHERE id = 99"
on = "target"
"#,
    );
    let before = f.dump("production");
    let out = f.run(&promote_args(&["--dry-run"])).expect(3);
    assert!(out.all().contains("#1 sql on target"), "{}", out.all());
    assert!(out.all().contains("returned NULL"), "{}", out.all());
    let out = f.run(&promote_args(&[])).expect(3);
    assert!(out.stderr.contains("FAILED  #1 sql on target"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);

    // No row at all fails too.
    f.write_config(&format!(
        "{CONFIG}\n[[environments.production.checks]]\nsql = \"SELECT 1 FROM cities WHERE id = 12345\"\non = \"target\"\n"
    ));
    let out = f.run(&promote_args(&[])).expect(3);
    assert!(out.all().contains("returned no row"), "{}", out.all());
    // A query that cannot run is a failing check, not a crash.
    f.write_config(&format!(
        "{CONFIG}\n[[environments.production.checks]]\nsql = \"SELECT nope FROM nowhere\"\non = \"target\"\n"
    ));
    let out = f.run(&promote_args(&[])).expect(3);
    assert!(out.all().contains("the query failed"), "{}", out.all());
    assert_eq!(f.dump("production"), before);
}

#[test]
fn passing_checks_let_the_promotion_through_and_are_reported() {
    let f = fixture(
        r#"[[environments.production.checks]]
sql = "SELECT count(*) > 0 FROM businesses WHERE created_by_team = 'content'"
on = "source"

[[environments.production.checks]]
sql = "SELECT 'true'"
on = "target"

[[environments.production.checks]]
command = "echo all good"
"#,
    );
    // A dry run shows them and writes nothing.
    let before = f.dump("production");
    let v = f.run(&promote_args(&["--dry-run", "--json"])).expect(0).json();
    let checks = v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {v}"))
        .clone();
    assert_eq!(checks.len(), 3, "{v}");
    assert!(checks.iter().all(|c| c["passed"] == true), "{v}");
    assert_eq!(f.dump("production"), before);

    let out = f.run(&promote_args(&[])).expect(0);
    assert!(out.stderr.contains("passed  #1 sql on source"), "{}", out.stderr);
    assert!(
        out.stderr.contains("passed  #3 command: echo all good: all good"),
        "{}",
        out.stderr
    );
    assert_eq!(f.ids("production", "businesses"), [1, 2]);

    // Nothing left to promote: nothing to check either.
    let v = f.run(&promote_args(&["--json"])).expect(0).json();
    assert_eq!(v["promotion"], J::Null, "{v}");
}

#[test]
fn a_failing_command_check_shows_its_output() {
    let f = fixture(
        r#"[[environments.production.checks]]
command = "echo 'running 12 tests'; echo 'test forms::submit ... FAILED' >&2; exit 1"
"#,
    );
    let before = f.dump("production");
    let out = f.run(&promote_args(&[])).expect(3);
    let all = out.all();
    assert!(all.contains("#1 command: echo 'running 12 tests'"), "{all}");
    assert!(all.contains("exited with status 1"), "{all}");
    assert!(all.contains("running 12 tests"), "{all}");
    assert!(all.contains("test forms::submit ... FAILED"), "{all}");
    assert_eq!(f.dump("production"), before);
}

#[test]
fn a_command_check_reads_the_plan_from_ferry_plan() {
    let f = fixture(
        r#"[[environments.production.checks]]
command = "cp \"$FERRY_PLAN\" seen-plan.json && echo \"$FERRY_PLAN\" > plan-path.txt && echo \"$FERRY_FROM -> $FERRY_TO\" > route.txt"
"#,
    );
    let id = f.promote(&["--table", "cities"]);
    assert!(!id.is_empty());
    let plan: J = serde_json::from_str(&read(&f, "seen-plan.json")).expect("the plan is JSON");
    assert_eq!(plan["from"], "staging", "{plan}");
    assert_eq!(plan["to"], "production", "{plan}");
    let changes = plan["changes"].as_array().expect("changes");
    assert!(
        changes
            .iter()
            .any(|c| c["table"] == "cities" && c["key"]["id"] == 2 && c["action"] == "insert"),
        "{plan}"
    );
    assert_eq!(read(&f, "route.txt").trim(), "staging -> production");
    // The plan's file is gone once the checks ran.
    let path = read(&f, "plan-path.txt");
    assert!(!std::path::Path::new(path.trim()).exists(), "{path} was left behind");
}

#[test]
fn a_saved_plan_carries_its_source_checks() {
    let f = fixture(
        r#"[[environments.production.checks]]
sql = "SELECT count(*) = 2 FROM cities WHERE id IN (1, 2)"
on = "source"

[[environments.production.checks]]
sql = "SELECT count(*) > 0 FROM cities"
on = "target"
"#,
    );
    let v = f
        .run(&[
            "plan",
            "staging",
            "production",
            "--table",
            "cities",
            "-o",
            "plan.json",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(v["checks"][0]["passed"], true, "{v}");
    let saved: J = serde_json::from_str(&read(&f, "plan.json")).expect("plan file");
    assert_eq!(saved["checks"][0]["side"], "source", "{saved}");
    assert_eq!(saved["checks"].as_array().map(Vec::len), Some(1), "{saved}");

    // The source is gone: its check comes from the plan, the target's runs.
    let staging = f.staging();
    std::fs::rename(&staging, f.path().join("staging-away.db")).expect("move staging away");
    let v = f
        .run(&promote_args(&["--plan", "plan.json", "--json"]))
        .expect(0)
        .json();
    assert!(v["promotion"].is_string(), "{v}");
    assert_eq!(v["checks"][0]["from_plan"], true, "{v}");
    assert_eq!(v["checks"][1]["from_plan"], false, "{v}");
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    std::fs::rename(f.path().join("staging-away.db"), &staging).expect("move staging back");

    // A plan saved while the source check failed stays blocked.
    f.exec("staging", "INSERT INTO cities VALUES (4, 'Genève');");
    f.write_config(&format!(
        "{CONFIG}\n[[environments.production.checks]]\nsql = \"SELECT count(*) = 0 FROM cities WHERE id = 4\"\non = \"source\"\n"
    ));
    f.run(&["plan", "staging", "production", "-o", "bad.json"]).expect(0);
    f.exec("staging", "DELETE FROM cities WHERE id = 4;");
    let before = f.dump("production");
    let out = f.run(&promote_args(&["--plan", "bad.json"])).expect(3);
    assert!(out.all().contains("recorded in the saved plan"), "{}", out.all());
    assert_eq!(f.dump("production"), before);

    // A check the plan carries no result of, and no source to run it on.
    f.write_config(CONFIG);
    f.run(&["plan", "staging", "production", "-o", "old.json"]).expect(0);
    f.write_config(&format!(
        "{}\n[[environments.production.checks]]\nsql = \"SELECT 1\"\non = \"source\"\n",
        CONFIG.replace("sqlite://staging.db", "sqlite://gone/staging.db")
    ));
    let out = f.run(&promote_args(&["--plan", "old.json"])).expect(3);
    assert!(out.all().contains("carries no result of this check"), "{}", out.all());
    assert_eq!(f.dump("production"), before);
}

#[test]
fn a_command_hook_receives_the_promotion_on_stdin() {
    let f = fixture(
        r#"[[environments.production.hooks]]
command = "cat > hook-payload.json; echo \"$FERRY_PROMOTION $FERRY_FROM $FERRY_TO\" > hook-env.txt"
timeout = 20
"#,
    );
    // Not for dry runs.
    f.run(&promote_args(&["--dry-run"])).expect(0);
    assert!(!f.path().join("hook-payload.json").exists(), "a dry run ran the hook");

    let v = f.run(&promote_args(&["--json"])).expect(0).json();
    let id = v["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("no promotion in {v}"))
        .to_string();
    assert_eq!(v["hooks"][0]["ok"], true, "{v}");
    assert_eq!(v["hooks"][0]["error"], J::Null, "{v}");
    let payload: J = serde_json::from_str(&read(&f, "hook-payload.json")).expect("the payload is JSON");
    assert_eq!(payload["promotion"], id.as_str(), "{payload}");
    assert_eq!(payload["from"], "staging");
    assert_eq!(payload["to"], "production");
    assert_eq!(payload["user"], "tester");
    assert!(payload["at"].is_string(), "{payload}");
    assert_eq!(payload["counts"]["insert"], v["counts"]["insert"], "{payload}");
    assert_eq!(read(&f, "hook-env.txt").trim(), format!("{id} staging production"));

    // Nothing promoted: no hook.
    std::fs::remove_file(f.path().join("hook-payload.json")).expect("remove");
    let v = f.run(&promote_args(&["--json"])).expect(0).json();
    assert_eq!(v["promotion"], J::Null, "{v}");
    assert!(!f.path().join("hook-payload.json").exists(), "a hook ran for nothing");
}

/// One HTTP request as the test server saw it.
#[derive(Debug)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A small HTTP server on 127.0.0.1 (port 0: any free one) that answers at
/// most `max` requests with `status`, then stops (and stops anyway after a
/// minute).
fn http_server(max: usize, status: &'static str) -> (u16, mpsc::Receiver<Request>, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < max && Instant::now() < deadline {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(_) => break,
            };
            served += 1;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            });
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
            let _ = stream.flush();
            let _ = tx.send(Request {
                line: line.trim().to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    });
    (port, rx, handle)
}

#[test]
fn a_webhook_receives_the_promotion_as_a_post() {
    let (port, requests, server) = http_server(1, "200 OK");
    let f = fixture(&format!(
        "[[environments.production.hooks]]\nwebhook = \"http://127.0.0.1:{port}/reindex\"\ntimeout = 20\n"
    ));
    let v = f.run(&promote_args(&["--json"])).expect(0).json();
    let id = v["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("no promotion in {v}"))
        .to_string();
    let req = requests
        .recv_timeout(Duration::from_secs(30))
        .expect("the webhook was called");
    server.join().expect("the server stops");
    assert_eq!(req.line, "POST /reindex HTTP/1.1", "{req:?}");
    assert!(
        req.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json")),
        "{req:?}"
    );
    let body: J = serde_json::from_str(&req.body).expect("a JSON body");
    assert_eq!(body["promotion"], id.as_str(), "{body}");
    assert_eq!(body["to"], "production", "{body}");
    assert_eq!(v["hooks"][0]["ok"], true, "{v}");
    assert_eq!(
        v["hooks"][0]["hook"],
        format!("webhook: http://127.0.0.1:{port}/reindex"),
        "{v}"
    );
}

#[test]
fn failing_hooks_are_reported_and_the_promotion_stays() {
    // A port nobody listens on any more: connection refused.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    };
    let (port, requests, server) = http_server(1, "500 Internal Server Error");
    let f = fixture(&format!(
        r#"[[environments.production.hooks]]
command = "echo 'cache refresh failed' >&2; exit 1"

[[environments.production.hooks]]
webhook = "http://127.0.0.1:{closed}/hook"
timeout = 5

[[environments.production.hooks]]
webhook = "http://127.0.0.1:{port}/hook"
timeout = 20

[[environments.production.hooks]]
command = "sleep 30"
timeout = 1

[[environments.production.hooks]]
command = "echo done > last-hook.txt"
"#
    ));
    let started = Instant::now();
    let v = f.run(&promote_args(&["--json", "--table", "cities"])).expect(0).json();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the timeout did not stop `sleep 30`"
    );
    let id = v["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("no promotion in {v}"))
        .to_string();
    let hooks = v["hooks"]
        .as_array()
        .unwrap_or_else(|| panic!("no hooks in {v}"))
        .clone();
    assert_eq!(hooks.len(), 5, "{v}");
    let err = |i: usize| hooks[i]["error"].as_str().unwrap_or("").to_string();
    assert_eq!(hooks[0]["ok"], false, "{v}");
    assert!(err(0).contains("exited with status 1"), "{v}");
    assert!(
        hooks[0]["output"]
            .as_str()
            .unwrap_or("")
            .contains("cache refresh failed"),
        "{v}"
    );
    assert_eq!(hooks[1]["ok"], false, "{v}");
    assert!(!err(1).is_empty(), "{v}");
    assert_eq!(hooks[2]["ok"], false, "{v}");
    assert!(err(2).contains("500"), "{v}");
    assert_eq!(hooks[3]["ok"], false, "{v}");
    assert!(err(3).contains("timed out"), "{v}");
    assert_eq!(hooks[4]["ok"], true, "{v}");
    assert_eq!(read(&f, "last-hook.txt").trim(), "done");
    requests
        .recv_timeout(Duration::from_secs(30))
        .expect("the webhook was called");
    server.join().expect("the server stops");

    // The promotion is applied, journalled, and the failures audited.
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 99]);
    let log = f.run(&["log", "production", "--json"]).expect(0).json();
    assert_eq!(log[0]["id"], id.as_str(), "{log}");
    let audited = f.query(
        "production",
        "SELECT result, count(*) FROM _ferry_audit WHERE action = 'hook' GROUP BY result ORDER BY result",
    );
    assert_eq!(
        audited,
        [vec!["failed".to_string(), "4".into()], vec!["ok".into(), "1".into()]]
    );

    // For people: each failure on stderr, and the promotion said done.
    f.exec("staging", "INSERT INTO cities VALUES (5, 'Basel');");
    let out = f.run(&promote_args(&["--table", "cities"])).expect(0);
    assert!(out.stderr.contains("FAILED  #1 command"), "{}", out.stderr);
    assert!(out.stderr.contains("| cache refresh failed"), "{}", out.stderr);
    assert!(out.stderr.contains("stays applied"), "{}", out.stderr);
    assert!(out.stdout.contains("Done:"), "{}", out.stdout);
    assert_eq!(f.ids("production", "cities"), [1, 2, 3, 5, 99]);
}
