//! Schema shapes found by the Wagtail test (issue 21), on plain SQLite
//! files so they run without Python: a text column holding an integer id
//! (Django's generic `object_id`), ids a natural-key table holds about
//! itself (a page alias, a revision naming another revision inside its
//! JSON), and a revert that an unmanaged row
//! referencing a promoted row blocks (SQLite checks deferred foreign keys at
//! commit, and names no row by itself).

use crate::common::*;

const SCHEMA: &str = "
CREATE TABLE pages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url_path TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    alias_of_id INTEGER REFERENCES pages(id)
);
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    object_id VARCHAR(255) NOT NULL,
    created_at TEXT NOT NULL,
    title TEXT NOT NULL,
    content TEXT
);
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    page_id INTEGER NOT NULL REFERENCES pages(id) DEFERRABLE INITIALLY DEFERRED
);
";

/// Page ids differ: staging's `/about/` is 2, production's is 7. The new
/// page `/news/` is an alias of `/about/`, and its revision names About's
/// revision (1 in staging, 5 in production) inside its JSON: ids a
/// natural-key table holds about itself.
const STAGING: &str = r#"
INSERT INTO pages VALUES (1, '/', 'Root', NULL), (2, '/about/', 'About', NULL), (3, '/news/', 'News', 2);
INSERT INTO revisions VALUES
    (1, '2', '2026-01-01 10:00:00', 'About v1', '{"previous": null}'),
    (2, '3', '2026-01-01 11:00:00', 'News v1', '{"previous": 1}');
"#;
const PRODUCTION: &str = r#"
INSERT INTO pages VALUES (1, '/', 'Root', NULL), (7, '/about/', 'About', NULL);
INSERT INTO revisions VALUES (5, '7', '2026-01-01 10:00:00', 'About v1', '{"previous": null}');
"#;
const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.pages]
key = ["id"]
natural_key = ["url_path"]
references = { alias_of_id = "pages" }

[tables.revisions]
key = ["id"]
natural_key = ["object_id", "created_at"]
references = { object_id = "pages" }
json_references = { content = { "$.previous" = "revisions" } }
"#;

fn fixture() -> Fixture {
    let f = Fixture::with(SCHEMA, STAGING, SCHEMA, PRODUCTION);
    f.write_config(CONFIG);
    f
}

#[test]
fn a_text_column_holding_an_integer_id_goes_through_the_id_mapping() {
    let f = fixture();
    f.run(&["check"]).expect(0);
    let v = f.diff_json(&[]);
    // About's revision is matched through the page mapping ("2" is 7 in
    // production); News and its revision are new.
    assert_eq!(
        summary(&v),
        [
            s("pages", 1, "skip", Some("matched")),
            s("pages", 2, "skip", Some("matched")),
            s("pages", 3, "insert", None),
            s("revisions", 1, "skip", Some("matched")),
            s("revisions", 2, "insert", None),
        ],
        "{v:#}"
    );
    let id = f.promote(&[]);
    assert_eq!(
        f.query("production", "SELECT id, url_path FROM pages ORDER BY id"),
        [["1", "/"], ["7", "/about/"], ["8", "/news/"]]
    );
    // Written as text, with the id production assigned the new page.
    assert_eq!(
        f.query(
            "production",
            "SELECT typeof(object_id), object_id, title FROM revisions ORDER BY id"
        ),
        [["text", "7", "About v1"], ["text", "8", "News v1"]]
    );
    // Ids about the table itself went through its own mapping.
    assert_eq!(
        f.scalar("production", "SELECT alias_of_id FROM pages WHERE id = 8"),
        "7"
    );
    assert_eq!(
        f.scalar("production", "SELECT content FROM revisions WHERE title = 'News v1'"),
        r#"{"previous":5}"#
    );
    assert_eq!(summary(&f.diff_json(&[])), [], "promoted rows compare equal");

    // An unmanaged row in production now references the new page: the
    // revert would break it. Refused, naming the table, nothing written.
    f.exec("production", "INSERT INTO subscriptions VALUES (1, 8)");
    let before = f.dump("production");
    let out = f.run_yes(&["revert", &id]).expect(1);
    assert!(
        out.stderr.contains("subscriptions") && out.stderr.contains("references a missing `pages` row"),
        "{}",
        out.all()
    );
    assert_eq!(f.dump("production"), before);
    f.exec("production", "DELETE FROM subscriptions");
    f.run_yes(&["revert", &id]).expect(0);
    assert_eq!(f.ids("production", "pages"), [1, 7]);
}

#[test]
fn a_text_id_that_is_not_an_integer_is_refused_naming_the_row() {
    let f = fixture();
    f.exec(
        "staging",
        "INSERT INTO revisions VALUES (3, 'abc', '2026-01-02 10:00:00', 'Snippet', NULL)",
    );
    let out = f.run(&["diff", "staging", "production"]).expect(1);
    assert!(
        out.stderr.contains("revisions") && out.stderr.contains("object_id") && out.stderr.contains("abc"),
        "{}",
        out.all()
    );
}
