//! Issue 5 from the command line: the seed workflow (staging -> preprod ->
//! production, both reviewed), drafts and held revisions, approval by
//! someone else, `--only`, rejection, stale reviews, `--approve-revisions`,
//! roles from `[access]`, pipeline order and the audit trail.

use serde_json::Value as J;

use crate::common::*;

/// The three environments share this schema. Businesses and forms have a
/// draft column.
const SCHEMA: &str = "
CREATE TABLE cities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE businesses (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city_id INTEGER REFERENCES cities(id),
    is_published INTEGER NOT NULL DEFAULT 0,
    modified_at TEXT
);
CREATE TABLE forms (
    id INTEGER PRIMARY KEY,
    business_id INTEGER NOT NULL REFERENCES businesses(id),
    title TEXT NOT NULL,
    is_published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE form_fields (
    id INTEGER PRIMARY KEY,
    form_id INTEGER NOT NULL REFERENCES forms(id),
    label TEXT NOT NULL
);
";

/// What every environment holds at the start (and is baselined).
const SHARED: &str = "
INSERT INTO cities VALUES (1, 'Lyon');
INSERT INTO businesses VALUES (1, 'Café Olé ☕', 1, 1, '2020-01-01 00:00:00');
INSERT INTO forms VALUES (1, 1, 'Contact', 1);
INSERT INTO form_fields VALUES (1, 1, 'Name');
";

/// The product manager's new work in staging: a changed business, and a
/// new business in a new city with a new form and its fields (published in
/// staging).
const STAGING_WORK: &str = "
UPDATE businesses SET name = 'Café Olé ☕ v2' WHERE id = 1;
INSERT INTO cities VALUES (2, 'Zürich 🏔️');
INSERT INTO businesses VALUES (2, 'Bäckerei 🥨', 2, 1, NULL);
INSERT INTO forms VALUES (2, 2, 'Order 🧾', 1);
INSERT INTO form_fields VALUES (2, 2, 'Item'), (3, 2, 'Quantity');
";

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
references = { business_id = "businesses" }
draft = { is_published = false }

[tables.form_fields]
key = ["id"]
parent = { form_id = "forms" }
"#;

const ENVIRONMENTS: &str = r#"pipeline = ["staging", "preprod", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.preprod]
url = "sqlite://preprod.db"
review = true

[environments.production]
url = "sqlite://production.db"
review = true
"#;

const ACCESS: &str = r#"
[access]
users = { alice = ["pm"], bob = ["pm", "lead"], carol = ["qa"] }
promote = { preprod = ["pm"], production = ["pm"] }
approve = { preprod = ["lead"], production = ["lead"] }
revert = { preprod = ["lead"], production = ["lead"] }
"#;

/// Three environments holding [`SHARED`], baselined along the pipeline,
/// then [`STAGING_WORK`] in staging; with `[access]` when `access`.
fn seed(access: bool) -> Fixture {
    let f = Fixture::with(SCHEMA, SHARED, SCHEMA, SHARED);
    f.create_db("preprod.db", &format!("{SCHEMA}\n{SHARED}"));
    let config = format!("{ENVIRONMENTS}{TABLES}{}", if access { ACCESS } else { "" });
    f.write_config(&config);
    for (from, to) in [("staging", "preprod"), ("preprod", "production")] {
        let v = f
            .run_yes(&["baseline", from, to, "--as", "bob", "--json"])
            .expect(0)
            .json();
        assert_eq!(v["recorded"], 4, "{v:#}");
    }
    f.exec("staging", STAGING_WORK);
    f
}

/// Runs `ferry ARGS --as USER --yes`.
fn run_as(f: &Fixture, user: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--as", user, "--yes"]);
    f.run(&all)
}

/// `promote FROM TO --as USER --yes --json`, expecting success.
fn promote_as(f: &Fixture, user: &str, from: &str, to: &str, extra: &[&str]) -> J {
    let mut args = vec!["promote", from, to, "--json"];
    args.extend_from_slice(extra);
    run_as(f, user, &args).expect(0).json()
}

/// The application tables and the sync base (`_ferry_sync`) of an
/// environment, every cell's bytes: what a rejection must leave exactly as
/// it was. (The journal, the promotions and the reviews keep the history.)
fn data_and_base(f: &Fixture, env: &str) -> String {
    dump_tables(
        &f.db(env),
        &["cities", "businesses", "forms", "form_fields", "_ferry_sync"],
    )
}

/// The application tables of an environment, see `dump_tables`.
fn managed(f: &Fixture, env: &str) -> String {
    dump_tables(&f.db(env), &["cities", "businesses", "forms", "form_fields"])
}

/// The compared content (everything but the stamped `modified_at`).
fn content(f: &Fixture, env: &str) -> Vec<Vec<Vec<String>>> {
    [
        "SELECT * FROM cities ORDER BY id",
        "SELECT id, name, city_id, is_published FROM businesses ORDER BY id",
        "SELECT * FROM forms ORDER BY id",
        "SELECT * FROM form_fields ORDER BY id",
    ]
    .iter()
    .map(|q| f.query(env, q))
    .collect()
}

fn published(f: &Fixture, env: &str, table: &str, id: i64) -> String {
    f.scalar(env, &format!("SELECT is_published FROM {table} WHERE id = {id}"))
}

/// `(table, id, action, reason, state)` of every change of a review.
fn review_changes(r: &J) -> Vec<(String, i64, String, Option<String>, String)> {
    r["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {r:#}"))
        .iter()
        .map(|c| {
            (
                c["table"].as_str().unwrap_or_default().to_string(),
                c["key"]["id"].as_i64().unwrap_or(-1),
                c["action"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().map(str::to_string),
                c["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn rc(
    table: &str,
    id: i64,
    action: &str,
    reason: Option<&str>,
    state: &str,
) -> (String, i64, String, Option<String>, String) {
    (
        table.to_string(),
        id,
        action.to_string(),
        reason.map(str::to_string),
        state.to_string(),
    )
}

/// `(user, action, from, to, result)` of every audit entry, oldest first.
fn audit_trail(f: &Fixture, env: &str) -> Vec<(String, String, String, String, String)> {
    let v = f.run(&["audit", env, "--json"]).expect(0).json();
    let mut rows: Vec<(String, String, String, String, String)> = v
        .as_array()
        .unwrap_or_else(|| panic!("audit --json is not an array: {v:#}"))
        .iter()
        .map(|a| {
            let t = |k: &str| a[k].as_str().unwrap_or("-").to_string();
            (t("user"), t("action"), t("from"), t("to"), t("result"))
        })
        .collect();
    rows.reverse();
    rows
}

fn au(user: &str, action: &str, from: &str, to: &str, result: &str) -> (String, String, String, String, String) {
    (
        user.to_string(),
        action.to_string(),
        from.to_string(),
        to.to_string(),
        result.to_string(),
    )
}

/// The one open review of `env` (panics unless there is exactly one).
fn open_review(f: &Fixture, env: &str) -> J {
    let v = f.run(&["reviews", env, "--json"]).expect(0).json();
    let list = v.as_array().unwrap_or_else(|| panic!("not an array: {v:#}"));
    assert_eq!(list.len(), 1, "{v:#}");
    list[0].clone()
}

// ---- the seed workflow --------------------------------------------------

/// Long on purpose: the seed workflow end to end, one step after another on
/// the same environments; each step checks the state the previous ones left.
#[test]
fn the_seed_workflow_runs_end_to_end() {
    let f = seed(true);
    let preprod_before = f.dump("preprod");

    // QA may not promote, nor may someone not listed; nothing is written.
    for user in ["carol", "mallory"] {
        let out = run_as(&f, user, &["promote", "staging", "preprod"]).expect(4);
        assert!(out.stderr.contains(user), "{}", out.stderr);
        assert!(out.stderr.contains("Nothing was written"), "{}", out.stderr);
        assert_eq!(f.dump("preprod"), preprod_before);
    }

    // alice promotes to preprod: the new rows arrive as drafts, with the
    // new city they reference and the new form's fields; the update is held.
    let v = promote_as(&f, "alice", "staging", "preprod", &[]);
    let review = v["review"]
        .as_str()
        .unwrap_or_else(|| panic!("no review: {v:#}"))
        .to_string();
    assert!(v["drafts"].is_string(), "{v:#}");
    assert_eq!(v["promotion"], v["drafts"], "{v:#}");
    assert_eq!(v["counts"]["insert"], 5, "{v:#}");
    assert_eq!(v["counts"]["update"], 0, "{v:#}");
    assert_eq!(f.ids("preprod", "cities"), [1, 2]);
    assert_eq!(f.ids("preprod", "businesses"), [1, 2]);
    assert_eq!(f.ids("preprod", "forms"), [1, 2]);
    assert_eq!(f.ids("preprod", "form_fields"), [1, 2, 3]);
    assert_eq!(published(&f, "preprod", "businesses", 2), "0");
    assert_eq!(published(&f, "preprod", "forms", 2), "0");
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕",
        "the update waits for approval"
    );
    let held_preprod = managed(&f, "preprod");

    // The review, as --json lists it.
    let r = open_review(&f, "preprod");
    assert_eq!(r["id"], review.as_str(), "{r:#}");
    assert_eq!(r["status"], "open", "{r:#}");
    assert_eq!(r["by"], "alice", "{r:#}");
    assert_eq!(
        review_changes(&r),
        [
            rc("businesses", 1, "update", None, "pending"),
            rc("businesses", 2, "update", Some("pending-review"), "pending"),
            rc("forms", 2, "update", Some("pending-review"), "pending"),
        ],
        "{r:#}"
    );
    let b1 = &r["changes"][0];
    assert_eq!(b1["fields"][0]["column"], "name", "{r:#}");
    assert_eq!(b1["fields"][0]["source"], "Café Olé ☕ v2", "{r:#}");
    assert_eq!(b1["fields"][0]["target"], "Café Olé ☕", "{r:#}");
    let out = f.run(&["reviews", "preprod"]).expect(0);
    assert!(out.stdout.contains(&review), "{}", out.stdout);
    assert!(out.stdout.contains("alice"), "{}", out.stdout);
    let out = f.run(&["review", "show", &review]).expect(0);
    assert!(out.stdout.contains("Café Olé ☕ v2"), "{}", out.stdout);

    // alice may not approve (she is no lead, and she submitted it).
    let before = f.dump("preprod");
    let out = run_as(&f, "alice", &["review", "approve", &review]).expect(4);
    assert!(out.stderr.contains("alice"), "{}", out.stderr);
    let out = run_as(&f, "carol", &["review", "reject", &review]).expect(4);
    assert!(out.stderr.contains("carol"), "{}", out.stderr);
    assert_eq!(f.dump("preprod"), before);

    // Promoting rows of the open review again is refused until it is decided.
    f.exec("staging", "UPDATE businesses SET name = 'Café Olé ☕ v3' WHERE id = 1;");
    let out = run_as(&f, "alice", &["promote", "staging", "preprod"]).expect(3);
    assert!(out.stderr.contains("businesses:1"), "{}", out.stderr);
    assert!(out.stderr.contains(&review), "{}", out.stderr);
    assert_eq!(f.dump("preprod"), before);
    f.exec("staging", "UPDATE businesses SET name = 'Café Olé ☕ v2' WHERE id = 1;");

    // bob approves: the held update applies and the drafts are published.
    let v = run_as(&f, "bob", &["review", "approve", &review, "--json"])
        .expect(0)
        .json();
    assert_eq!(v["review"], review.as_str(), "{v:#}");
    let approval = v["promotion"].as_str().unwrap_or_else(|| panic!("{v:#}")).to_string();
    assert_eq!(v["counts"]["update"], 3, "{v:#}");
    assert_ne!(managed(&f, "preprod"), held_preprod);
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕ v2"
    );
    assert_eq!(published(&f, "preprod", "businesses", 2), "1");
    assert_eq!(published(&f, "preprod", "forms", 2), "1");
    let none = f.run(&["reviews", "preprod", "--json"]).expect(0).json();
    assert_eq!(none, J::Array(vec![]), "no open review left");
    let all = f.run(&["reviews", "preprod", "--all", "--json"]).expect(0).json();
    assert_eq!(all[0]["status"], "approved", "{all:#}");
    assert_eq!(all[0]["decided_by"], "bob", "{all:#}");
    // The approval is a promotion like any other.
    let log = f.run(&["log", "preprod", "--json"]).expect(0).json();
    assert_eq!(log[0]["id"], approval.as_str(), "{log:#}");
    assert_eq!(log[0]["user"], "bob", "{log:#}");
    let v = f.run(&["diff", "staging", "preprod", "--json"]).expect(0).json();
    assert!(
        changes(&v).iter().all(|c| c["action"] == "skip"),
        "staging and preprod agree: {v:#}"
    );

    // Skipping preprod is refused, naming the path.
    let production_before = f.dump("production");
    let out = run_as(&f, "alice", &["promote", "staging", "production"]).expect(3);
    assert!(
        out.stderr
            .contains("`ferry promote staging preprod`, then `ferry promote preprod production`"),
        "{}",
        out.stderr
    );
    assert_eq!(f.dump("production"), production_before);

    // alice takes the same content to production: approved upstream by bob
    // (who holds approve in production), so it applies directly.
    let v = promote_as(&f, "alice", "preprod", "production", &["--approve-revisions"]);
    assert_eq!(v["review"], J::Null, "{v:#}");
    assert!(v["direct"].is_string(), "{v:#}");
    assert_eq!(v["promotion"], v["direct"], "{v:#}");
    assert_eq!(v["counts"]["insert"], 5, "{v:#}");
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(
        f.run(&["reviews", "production", "--all", "--json"]).expect(0).json(),
        J::Array(vec![]),
        "no review in production"
    );
    assert_eq!(
        f.query(
            "production",
            "SELECT b.id, b.name, b.is_published, c.name FROM businesses b JOIN cities c ON c.id = b.city_id ORDER BY b.id"
        ),
        [
            ["1", "Café Olé ☕ v2", "1", "Lyon"],
            ["2", "Bäckerei 🥨", "1", "Zürich 🏔️"],
        ]
    );
    assert_eq!(published(&f, "production", "forms", 2), "1");
    assert_eq!(f.ids("production", "form_fields"), [1, 2, 3]);
    assert_eq!(
        content(&f, "production"),
        content(&f, "preprod"),
        "production matches preprod"
    );

    // The audit shows who did what.
    assert_eq!(
        audit_trail(&f, "preprod"),
        [
            au("bob", "baseline", "staging", "preprod", "ok"),
            au("carol", "promote", "staging", "preprod", "denied"),
            au("mallory", "promote", "staging", "preprod", "denied"),
            au("alice", "promote", "staging", "preprod", "ok"),
            au("alice", "approve", "staging", "preprod", "denied"),
            au("carol", "reject", "staging", "preprod", "denied"),
            au("alice", "promote", "staging", "preprod", "blocked"),
            au("bob", "approve", "staging", "preprod", "ok"),
        ]
    );
    assert_eq!(
        audit_trail(&f, "production"),
        [
            au("bob", "baseline", "preprod", "production", "ok"),
            au("alice", "promote", "staging", "production", "blocked"),
            au("alice", "promote", "preprod", "production", "ok"),
        ]
    );
    let v = f.run(&["audit", "--json"]).expect(0).json();
    let entries = v.as_array().unwrap();
    let approved = entries
        .iter()
        .find(|a| a["action"] == "approve" && a["result"] == "ok")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(approved["user"], "bob", "{approved}");
    assert!(approved["ref_id"].is_string(), "{approved}");
    let denied = entries
        .iter()
        .find(|a| a["user"] == "carol" && a["action"] == "promote")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(denied["detail"].as_str().unwrap().contains("carol"), "{denied}");
    for a in entries {
        for k in ["id", "at", "user", "action", "to", "result"] {
            assert!(a[k].is_string(), "`{k}` missing from {a}");
        }
    }
    let out = f.run(&["audit", "preprod"]).expect(0);
    assert!(out.stdout.contains("denied"), "{}", out.stdout);
    assert!(out.stdout.contains("mallory"), "{}", out.stdout);
}

// ---- approvals ----------------------------------------------------------

#[test]
fn nobody_approves_a_review_they_submitted() {
    let f = seed(true);
    // bob holds both promote and approve in preprod.
    let v = promote_as(&f, "bob", "staging", "preprod", &[]);
    let review = v["review"].as_str().unwrap().to_string();
    let before = f.dump("preprod");
    for extra in [&[][..], &["--only", "businesses:1"][..]] {
        let mut args = vec!["review", "approve", review.as_str()];
        args.extend_from_slice(extra);
        let out = run_as(&f, "bob", &args).expect(4);
        assert!(out.stderr.contains("submitted"), "{}", out.stderr);
        assert!(out.stderr.contains("bob"), "{}", out.stderr);
    }
    assert_eq!(f.dump("preprod"), before);
    assert_eq!(open_review(&f, "preprod")["status"], "open");
    assert_eq!(
        audit_trail(&f, "preprod")[1..],
        [
            au("bob", "promote", "staging", "preprod", "ok"),
            au("bob", "approve", "staging", "preprod", "denied"),
            au("bob", "approve", "staging", "preprod", "denied"),
        ]
    );
}

#[test]
fn without_access_self_approval_is_allowed_and_audited() {
    let f = seed(false);
    // The acting user is $FERRY_USER (`tester`), listed nowhere: single-user mode.
    let v = f.run_yes(&["promote", "staging", "preprod", "--json"]).expect(0).json();
    let review = v["review"].as_str().unwrap().to_string();
    assert_eq!(open_review(&f, "preprod")["by"], "tester");
    let v = f.run_yes(&["review", "approve", &review, "--json"]).expect(0).json();
    let approval = v["promotion"].as_str().unwrap().to_string();
    assert_eq!(published(&f, "preprod", "businesses", 2), "1");
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕ v2"
    );
    let audit = f.run(&["audit", "preprod", "--json"]).expect(0).json();
    let approved = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "approve")
        .unwrap_or_else(|| panic!("{audit:#}"));
    assert_eq!(approved["user"], "tester", "{approved}");
    assert_eq!(approved["result"], "ok", "{approved}");
    assert_eq!(approved["ref_id"], approval.as_str(), "{approved}");
    assert!(
        approved["detail"].as_str().unwrap_or_default().contains("own review"),
        "the self-approval is said in the audit: {approved}"
    );
    assert_eq!(
        audit_trail(&f, "preprod")[1..],
        [
            au("tester", "promote", "staging", "preprod", "ok"),
            au("tester", "approve", "staging", "preprod", "ok"),
        ]
    );
}

#[test]
fn a_decision_shows_what_it_decides_before_asking() {
    let f = seed(true);
    f.exec("staging", "UPDATE cities SET name = 'Lyon 2' WHERE id = 1;");
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    let before = managed(&f, "preprod");
    // No terminal and no --yes: refused, but only after showing the rows.
    for verb in ["approve", "reject"] {
        let out = f
            .run(&["review", verb, &review, "--only", "cities:1", "--as", "bob"])
            .expect(2);
        assert!(out.stdout.contains(&format!("to {verb}:")), "{}", out.stdout);
        assert!(out.stdout.contains("cities"), "{}", out.stdout);
        assert!(out.stdout.contains("name: \"Lyon\" -> \"Lyon 2\""), "{}", out.stdout);
        assert!(
            !out.stdout.contains("businesses"),
            "only the chosen row: {}",
            out.stdout
        );
        assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    }
    assert_eq!(managed(&f, "preprod"), before, "nothing written");
}

#[test]
fn partial_approval_with_only() {
    let f = seed(true);
    f.exec("staging", "UPDATE cities SET name = 'Lyon 2' WHERE id = 1;");
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    let r = open_review(&f, "preprod");
    assert_eq!(
        review_changes(&r),
        [
            rc("cities", 1, "update", None, "pending"),
            rc("businesses", 1, "update", None, "pending"),
            rc("businesses", 2, "update", Some("pending-review"), "pending"),
            rc("forms", 2, "update", Some("pending-review"), "pending"),
        ],
        "{r:#}"
    );
    // A publish entry shows what publishing changes: the draft value, then
    // the source's.
    let shown = f.run(&["review", "show", &review]).expect(0).stdout;
    let publish: Vec<&str> = shown
        .lines()
        .skip_while(|l| !(l.contains("update   id=2") && l.contains("pending-review")))
        .skip(1)
        .take_while(|l| l.starts_with("               "))
        .map(str::trim)
        .collect();
    assert_eq!(publish, ["is_published: 0 -> 1"], "{shown}");

    // Only the city.
    let v = run_as(
        &f,
        "bob",
        &["review", "approve", &review, "--only", "cities:1", "--json"],
    )
    .expect(0)
    .json();
    assert_eq!(v["counts"]["update"], 1, "{v:#}");
    assert_eq!(f.scalar("preprod", "SELECT name FROM cities WHERE id = 1"), "Lyon 2");
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕",
        "the rest still waits"
    );
    assert_eq!(published(&f, "preprod", "businesses", 2), "0");
    let r = open_review(&f, "preprod");
    assert_eq!(r["status"], "open", "{r:#}");
    assert_eq!(
        review_changes(&r)
            .into_iter()
            .map(|c| (c.0, c.1, c.4))
            .collect::<Vec<_>>(),
        [
            ("cities".to_string(), 1, "approved".to_string()),
            ("businesses".to_string(), 1, "pending".to_string()),
            ("businesses".to_string(), 2, "pending".to_string()),
            ("forms".to_string(), 2, "pending".to_string()),
        ],
        "{r:#}"
    );
    let out = f.run(&["reviews", "preprod"]).expect(0);
    assert!(out.stdout.contains("3 pending"), "{}", out.stdout);

    // Rows not (or no longer) waiting are refused, naming them.
    let before = f.dump("preprod");
    for row in ["cities:1", "businesses:9", "nonsense:1"] {
        let out = run_as(&f, "bob", &["review", "approve", &review, "--only", row]).expect(2);
        assert!(out.stderr.contains(row.split(':').next().unwrap()), "{}", out.stderr);
    }
    // A draft cannot be rejected alone: it is in preprod already.
    let out = run_as(&f, "bob", &["review", "reject", &review, "--only", "businesses:2"]).expect(2);
    assert!(out.stderr.contains("businesses:2"), "{}", out.stderr);
    assert_eq!(f.dump("preprod"), before);

    // Publish the new business and its form; reject the rename.
    run_as(
        &f,
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
    assert_eq!(published(&f, "preprod", "businesses", 2), "1");
    assert_eq!(published(&f, "preprod", "forms", 2), "1");
    let out = run_as(&f, "bob", &["review", "reject", &review, "--only", "businesses:1"]).expect(0);
    // The drafts were published by the approval: they stay, and it says so.
    assert!(!out.stdout.contains("drafts are removed"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "1 held change(s) rejected, the drafts already published in preprod stay; the review is partly-approved"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(published(&f, "preprod", "businesses", 2), "1");
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕"
    );
    let all = f.run(&["reviews", "preprod", "--all", "--json"]).expect(0).json();
    assert_eq!(
        all[0]["status"], "partly-approved",
        "partly approved, nothing pending: {all:#}"
    );
    let shown = f.run(&["review", "show", &review]).expect(0).stdout;
    assert!(shown.contains("(partly-approved)"), "{shown}");
    // A decided review shows what it held, not "nothing to promote".
    assert!(!shown.contains("Nothing to promote"), "{shown}");
    assert!(
        shown.contains("it held these changes, now decided (partly-approved)"),
        "{shown}"
    );
    assert!(shown.contains("name: \"Café Olé ☕\" -> \"Café Olé ☕ v2\""), "{shown}");
    assert!(
        shown.contains("3 change(s) already approved") && shown.contains("1 change(s) rejected"),
        "{shown}"
    );
    assert_eq!(
        review_changes(&all[0]).into_iter().map(|c| c.4).collect::<Vec<_>>(),
        ["approved", "rejected", "approved", "approved"],
        "{all:#}"
    );
    assert_eq!(
        f.run(&["reviews", "preprod", "--json"]).expect(0).json(),
        J::Array(vec![])
    );
    // The rejected rename is promotable again, as a fresh review.
    let v = promote_as(&f, "alice", "staging", "preprod", &[]);
    assert!(v["review"].is_string(), "{v:#}");
    assert_eq!(
        review_changes(&open_review(&f, "preprod")),
        [rc("businesses", 1, "update", None, "pending")]
    );
}

#[test]
fn rejection_leaves_the_target_exactly_as_before_the_promotion() {
    let f = seed(true);
    let before = data_and_base(&f, "preprod");
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(data_and_base(&f, "preprod"), before, "the drafts are in");
    let out = run_as(&f, "bob", &["review", "reject", &review]).expect(0);
    assert!(out.stdout.contains("rejected"), "{}", out.stdout);
    assert_eq!(data_and_base(&f, "preprod"), before);
    let all = f.run(&["reviews", "preprod", "--all", "--json"]).expect(0).json();
    assert_eq!(all[0]["status"], "rejected", "{all:#}");
    assert_eq!(all[0]["decided_by"], "bob", "{all:#}");
    // Decided: it cannot be approved or rejected again.
    let after = f.dump("preprod");
    run_as(&f, "bob", &["review", "approve", &review]).expect(3);
    run_as(&f, "bob", &["review", "reject", &review]).expect(3);
    assert_eq!(f.dump("preprod"), after);
    assert_eq!(
        audit_trail(&f, "preprod")[1..],
        [
            au("alice", "promote", "staging", "preprod", "ok"),
            au("bob", "reject", "staging", "preprod", "ok"),
            au("bob", "approve", "staging", "preprod", "blocked"),
            au("bob", "reject", "staging", "preprod", "blocked"),
        ]
    );
    // The same work can be promoted again.
    let v = promote_as(&f, "alice", "staging", "preprod", &[]);
    assert!(v["review"].is_string(), "{v:#}");
    assert_eq!(published(&f, "preprod", "businesses", 2), "0");
}

#[test]
fn a_stale_review_refuses_to_apply() {
    let f = seed(true);
    f.exec("staging", "UPDATE cities SET name = 'Lyon 2' WHERE id = 1;");
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    // Someone edits preprod's business 1 after the review was made.
    f.exec(
        "preprod",
        "UPDATE businesses SET name = 'Edited in preprod' WHERE id = 1;",
    );
    let before = f.dump("preprod");
    let out = run_as(&f, "bob", &["review", "approve", &review]).expect(3);
    for want in ["stale", "businesses:1", review.as_str()] {
        assert!(out.stderr.contains(want), "`{want}` missing:\n{}", out.stderr);
    }
    assert_eq!(f.dump("preprod"), before, "nothing of the review applied");
    assert_eq!(open_review(&f, "preprod")["status"], "open");
    // `review show` shows where the target moved.
    let out = f.run(&["review", "show", &review]).expect(0);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("target now"))
        .unwrap_or_else(|| panic!("no three-way view:\n{}", out.stdout));
    for want in [
        "name",
        "base \"Café Olé ☕\"",
        "target now \"Edited in preprod\"",
        "review brings \"Café Olé ☕ v2\"",
    ] {
        assert!(line.contains(want), "`{want}` missing from `{line}`");
    }
    let v = f.run(&["review", "show", &review, "--json"]).expect(0).json();
    let moved: Vec<(String, i64)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["moved"] == true)
        .map(|c| {
            (
                c["table"].as_str().unwrap().to_string(),
                c["key"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(moved, [("businesses".to_string(), 1)], "{v:#}");
    assert_eq!(v["changes"][1]["target_now"]["name"], "Edited in preprod", "{v:#}");

    // The rows that did not move can still be approved.
    run_as(&f, "bob", &["review", "approve", &review, "--only", "cities:1"]).expect(0);
    assert_eq!(f.scalar("preprod", "SELECT name FROM cities WHERE id = 1"), "Lyon 2");
    // Rejecting the rest removes the drafts; preprod's own edit stays.
    run_as(&f, "bob", &["review", "reject", &review]).expect(0);
    assert_eq!(f.ids("preprod", "businesses"), [1]);
    assert_eq!(f.ids("preprod", "cities"), [1]);
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Edited in preprod"
    );
}

// ---- roles ----------------------------------------------------------------

#[test]
fn each_role_refusal_exits_4_with_nothing_written() {
    let f = seed(true);
    let before: Vec<String> = ["preprod", "production"].iter().map(|e| f.dump(e)).collect();
    let dumps = |f: &Fixture| -> Vec<String> { ["preprod", "production"].iter().map(|e| f.dump(e)).collect() };
    // Without --as: the acting user is $FERRY_USER, not listed.
    let out = f.run_yes(&["promote", "staging", "preprod"]).expect(4);
    assert!(out.stderr.contains("tester"), "{}", out.stderr);
    assert!(out.stderr.contains("--as"), "{}", out.stderr);
    // A dry run writes nothing: anyone may look.
    let out = f.run_yes(&["promote", "staging", "preprod", "--dry-run"]).expect(0);
    assert!(
        out.stdout.contains("Dry run"),
        "reading is open to anyone: {}",
        out.stdout
    );
    run_as(&f, "carol", &["promote", "staging", "preprod"]).expect(4);
    run_as(&f, "carol", &["promote", "staging", "preprod", "--json"]).expect(4);
    run_as(&f, "carol", &["baseline", "staging", "preprod"]).expect(4);
    run_as(&f, "mallory", &["baseline", "staging", "preprod"]).expect(4);
    f.run(&["plan", "staging", "preprod", "-o", "plan.json"]).expect(0);
    run_as(&f, "carol", &["promote", "staging", "preprod", "--plan", "plan.json"]).expect(4);
    assert_eq!(dumps(&f), before);

    // Reading is open to everyone, listed or not.
    for args in [
        &["diff", "staging", "preprod"][..],
        &["plan", "staging", "preprod"][..],
        &["log", "preprod"][..],
        &["reviews", "preprod"][..],
        &["audit", "preprod"][..],
    ] {
        run_as(&f, "mallory", args).expect(0);
    }

    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<String> = dumps(&f);
    for user in ["alice", "carol", "mallory"] {
        run_as(&f, user, &["review", "approve", &review]).expect(4);
        run_as(&f, user, &["review", "reject", &review]).expect(4);
    }
    // Revert needs `lead` in preprod.
    let drafts = f.run(&["log", "preprod", "--json"]).expect(0).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run_as(&f, "alice", &["revert", &drafts]).expect(4);
    assert!(out.stderr.contains("revert"), "{}", out.stderr);
    assert_eq!(dumps(&f), before);
    let denied = audit_trail(&f, "preprod")
        .into_iter()
        .filter(|a| a.4 == "denied")
        .count();
    assert_eq!(
        denied,
        6 + 6 + 1,
        "every refusal is audited: {:#?}",
        audit_trail(&f, "preprod")
    );
}

#[test]
fn skipping_preprod_is_refused_naming_the_path() {
    let f = seed(true);
    let before = f.dump("production");
    let out = run_as(&f, "alice", &["promote", "staging", "production"]).expect(3);
    assert!(
        out.stderr.contains("staging -> preprod -> production"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ferry promote staging preprod"), "{}", out.stderr);
    assert!(
        out.stderr.contains("ferry promote preprod production"),
        "{}",
        out.stderr
    );
    // Not with --force, not with a saved plan, not backwards.
    run_as(&f, "alice", &["promote", "staging", "production", "--force"]).expect(3);
    run_as(&f, "alice", &["promote", "production", "preprod"]).expect(3);
    run_as(&f, "alice", &["promote", "preprod", "staging"]).expect(3);
    let out = run_as(&f, "alice", &["promote", "staging", "production", "--dry-run"]).expect(3);
    assert!(out.stderr.contains("pipeline"), "{}", out.stderr);
    assert_eq!(f.dump("production"), before);
    assert_eq!(
        audit_trail(&f, "production")
            .into_iter()
            .filter(|a| a.4 == "blocked")
            .count(),
        2,
        "the refusals are audited in the target (a dry run writes nothing, not even that): {:#?}",
        audit_trail(&f, "production")
    );
}

// ---- --approve-revisions --------------------------------------------------

#[test]
fn approve_revisions_applies_only_what_was_approved_upstream() {
    let f = seed(true);
    f.exec("staging", "UPDATE cities SET name = 'Lyon 2' WHERE id = 1;");
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    run_as(&f, "bob", &["review", "approve", &review, "--only", "businesses:1"]).expect(0);
    run_as(
        &f,
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
    run_as(&f, "bob", &["review", "reject", &review]).expect(0);
    // An edit made in preprod without a review.
    f.exec("preprod", "UPDATE form_fields SET label = 'Full name' WHERE id = 1;");

    let v = promote_as(&f, "alice", "preprod", "production", &["--approve-revisions"]);
    let direct = v["direct"].as_str().unwrap_or_else(|| panic!("{v:#}")).to_string();
    let held = v["review"].as_str().unwrap_or_else(|| panic!("{v:#}")).to_string();
    assert_eq!(v["promotion"], direct.as_str(), "{v:#}");
    let shown = f.run(&["show", &direct, "--json"]).expect(0).json();
    let mut written: Vec<String> = shown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}:{}",
                r["action"].as_str().unwrap(),
                r["table"].as_str().unwrap(),
                r["key"]["id"]
            )
        })
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "insert businesses:2",
            "insert cities:2",
            "insert form_fields:2",
            "insert form_fields:3",
            "insert forms:2",
            "update businesses:1",
        ],
        "{shown:#}"
    );
    assert_eq!(published(&f, "production", "businesses", 2), "1");
    assert_eq!(
        f.scalar("production", "SELECT label FROM form_fields WHERE id = 1"),
        "Name",
        "the unreviewed edit waits"
    );
    let r = open_review(&f, "production");
    assert_eq!(r["id"], held.as_str(), "{r:#}");
    assert_eq!(r["by"], "alice", "{r:#}");
    assert_eq!(review_changes(&r), [rc("form_fields", 1, "update", None, "pending")]);
    run_as(&f, "bob", &["review", "approve", &held]).expect(0);
    assert_eq!(
        f.scalar("production", "SELECT label FROM form_fields WHERE id = 1"),
        "Full name"
    );
}

#[test]
fn without_approve_revisions_everything_becomes_a_review() {
    let f = seed(true);
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    run_as(&f, "bob", &["review", "approve", &review]).expect(0);
    let v = promote_as(&f, "alice", "preprod", "production", &[]);
    assert_eq!(v["direct"], J::Null, "{v:#}");
    assert!(v["review"].is_string(), "{v:#}");
    assert_eq!(published(&f, "production", "businesses", 2), "0");
    assert_eq!(
        f.scalar("production", "SELECT name FROM businesses WHERE id = 1"),
        "Café Olé ☕"
    );
}

#[test]
fn approve_revisions_needs_an_upstream_approver_who_holds_approve_in_the_target() {
    let f = seed(true);
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    run_as(&f, "bob", &["review", "approve", &review]).expect(0);
    // Production's approvers are now owners only: bob's approval upstream
    // does not count there.
    let config = std::fs::read_to_string(f.path().join("ferry.toml")).unwrap();
    f.write_config(
        &config
            .replace(r#"carol = ["qa"] }"#, r#"carol = ["qa"], olga = ["owner"] }"#)
            .replace(
                r#"production = ["lead"] }
revert"#,
                r#"production = ["owner"] }
revert"#,
            ),
    );
    let v = promote_as(&f, "alice", "preprod", "production", &["--approve-revisions"]);
    assert_eq!(v["direct"], J::Null, "{v:#}");
    let held = v["review"].as_str().unwrap_or_else(|| panic!("{v:#}")).to_string();
    assert_eq!(published(&f, "production", "businesses", 2), "0");
    run_as(&f, "bob", &["review", "approve", &held]).expect(4);
    run_as(&f, "olga", &["review", "approve", &held]).expect(0);
    assert_eq!(published(&f, "production", "businesses", 2), "1");
}

#[test]
fn a_whole_rejection_says_the_drafts_are_removed_and_all_rejected_is_rejected() {
    let f = seed(false);
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    let out = run_as(&f, "bob", &["review", "reject", &review]).expect(0);
    assert!(
        out.stdout
            .contains("3 held change(s) rejected, the drafts are removed from preprod; the review is rejected"),
        "{}",
        out.stdout
    );
    let all = f.run(&["reviews", "preprod", "--all", "--json"]).expect(0).json();
    assert_eq!(all[0]["status"], "rejected", "{all:#}");
}

#[test]
fn approving_the_rest_after_rejecting_some_is_partly_approved() {
    let f = seed(false);
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    let v = run_as(
        &f,
        "bob",
        &["review", "reject", &review, "--only", "businesses:1", "--json"],
    )
    .expect(0)
    .json();
    assert_eq!(
        (&v["status"], &v["pending"], &v["drafts_removed"]),
        (&J::from("open"), &J::from(2), &J::from(false)),
        "{v:#}"
    );
    run_as(&f, "bob", &["review", "approve", &review]).expect(0);
    let all = f.run(&["reviews", "preprod", "--all", "--json"]).expect(0).json();
    assert_eq!(all[0]["status"], "partly-approved", "{all:#}");
}

#[test]
fn take_target_into_a_review_environment_decides_the_row() {
    let f = seed(false);
    // Both sides renamed business 1 since the baseline: a conflict.
    f.exec("preprod", "UPDATE businesses SET name = 'Preprod name' WHERE id = 1;");
    let before = f.run(&["diff", "staging", "preprod", "--json"]).expect(0).json();
    let b1 = entry(&before, "businesses", 1).unwrap_or_else(|| panic!("{before:#}"));
    assert_eq!(b1["action"], "conflict", "{b1:#}");

    let out = run_as(
        &f,
        "bob",
        &[
            "promote",
            "staging",
            "preprod",
            "--id",
            "businesses:1",
            "--take",
            "target",
        ],
    )
    .expect(0);
    assert!(!out.stdout.contains("Nothing waits for review"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("1 row(s) kept as preprod has them, recorded as in sync"),
        "{}",
        out.stdout
    );
    assert_eq!(
        f.scalar("preprod", "SELECT name FROM businesses WHERE id = 1"),
        "Preprod name"
    );
    // Decided: no longer a conflict, the target's version is kept (as into a
    // direct environment), journalled as `keep`, and no review was opened.
    let after = f.run(&["diff", "staging", "preprod", "--json"]).expect(0).json();
    let b1 = entry(&after, "businesses", 1).unwrap_or_else(|| panic!("{after:#}"));
    assert_eq!(
        (&b1["action"], &b1["reason"]),
        (&J::from("skip"), &J::from("target-newer")),
        "{b1:#}"
    );
    assert_eq!(
        f.run(&["reviews", "preprod", "--json"]).expect(0).json(),
        J::Array(vec![])
    );
    let log = f.run(&["log", "preprod", "--json"]).expect(0).json();
    let id = log[0]["id"].as_str().unwrap_or_else(|| panic!("{log:#}")).to_string();
    let shown = f.run(&["show", &id, "--json"]).expect(0).json();
    assert_eq!(shown["rows"][0]["action"], "keep", "{shown:#}");
}

#[test]
fn a_promotion_blocked_by_an_open_review_says_how_many_rows_it_does_not_list() {
    let f = seed(false);
    let cities: Vec<String> = (10..22).map(|i| format!("({i}, 'City {i}')")).collect();
    f.exec("staging", &format!("INSERT INTO cities VALUES {};", cities.join(", ")));
    promote_as(&f, "alice", "staging", "preprod", &["--table", "cities"]);
    f.exec("staging", "UPDATE cities SET name = name || ' again' WHERE id >= 10;");
    let out = run_as(&f, "alice", &["promote", "staging", "preprod", "--table", "cities"]).expect(3);
    assert!(
        out.stderr.contains("13 row(s) are waiting in an open review") && out.stderr.contains(" and 3 more."),
        "{}",
        out.stderr
    );
    // The audit lists the refusal on one line and says what it leaves out.
    let audit = f.run(&["audit", "preprod"]).expect(0).stdout;
    assert!(audit.contains(" more bytes"), "{audit}");
}

#[test]
fn drafts_removed_by_a_rejection_are_not_approved_upstream() {
    let f = seed(true);
    f.exec("staging", "UPDATE cities SET name = 'Lyon 2' WHERE id = 1;");
    let review = promote_as(&f, "alice", "staging", "preprod", &[])["review"]
        .as_str()
        .unwrap()
        .to_string();
    // The city is approved, everything else (the drafts too) rejected.
    run_as(&f, "bob", &["review", "approve", &review, "--only", "cities:1"]).expect(0);
    let v = run_as(&f, "bob", &["review", "reject", &review, "--json"])
        .expect(0)
        .json();
    assert_eq!(
        (&v["status"], &v["drafts_removed"]),
        (&J::from("partly-approved"), &J::from(true)),
        "{v:#}"
    );
    assert!(
        f.ids("preprod", "businesses").iter().all(|id| *id != 2),
        "drafts removed"
    );
    // The same drafts arrive again, in a review nobody decided yet.
    promote_as(&f, "alice", "staging", "preprod", &[]);
    assert_eq!(published(&f, "preprod", "businesses", 2), "0");

    let v = promote_as(&f, "alice", "preprod", "production", &["--approve-revisions"]);
    let direct = f
        .run(&[
            "show",
            v["direct"].as_str().unwrap_or_else(|| panic!("{v:#}")),
            "--json",
        ])
        .expect(0)
        .json();
    let mut written: Vec<String> = direct["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}:{}", r["table"].as_str().unwrap(), r["key"]["id"]))
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["cities:1"],
        "only what was approved goes directly: {direct:#}"
    );
    let held = review_changes(&open_review(&f, "production"));
    assert!(
        held.iter().any(|c| c.0 == "businesses" && c.1 == 2),
        "the rejected drafts wait for review: {held:?}"
    );
}

#[test]
fn an_unknown_review_is_refused_naming_it_and_where_to_list_them() {
    let f = seed(false);
    let before = data_and_base(&f, "preprod");
    let out = f.run_yes(&["review", "approve", "01NOSUCHREVIEW"]).expect(2);
    assert!(
        out.stderr.contains("no environment has a review `01NOSUCHREVIEW`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`ferry reviews` lists them"), "{}", out.stderr);
    let json = f
        .run_yes(&["review", "approve", "01NOSUCHREVIEW", "--json"])
        .expect(2)
        .json();
    assert_eq!(json["error"]["hint"]["kind"], "list-reviews", "{json}");
    assert_eq!(data_and_base(&f, "preprod"), before);
}
