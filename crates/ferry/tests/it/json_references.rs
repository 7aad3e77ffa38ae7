//! Ids inside JSON columns (`json_references`): rewritten through the id
//! mapping of natural-key tables, shown in the diff as written, compared
//! rewritten, deferred for a row the promotion itself inserts, reverted to
//! the exact text, and refused loudly when malformed.

use serde_json::Value as J;

use crate::common::*;

const SCHEMA: &str = "
CREATE TABLE content_types (
    id INTEGER PRIMARY KEY,
    app_label TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE TABLE revisions (
    id INTEGER PRIMARY KEY,
    content JSON,
    blocks TEXT
);
";

/// Content types created separately in each environment: `home.homepage`
/// is 31 in staging and 49 in production; `blog.blogpage` only in staging.
const STAGING: &str = r#"
INSERT INTO content_types VALUES (1, 'wagtailcore', 'page'), (31, 'home', 'homepage'), (32, 'blog', 'blogpage');
INSERT INTO revisions VALUES
    (1, '{"content_type": 31, "pk": 9, "title": "x"}', '{"items": [{"ct": "31"}, {"ct": null}, {}]}'),
    (2, '{"content_type": 32, "pk": 10, "title": "y"}', NULL),
    (3, '{ "title":  "no content type" }', '{"items": []}'),
    (4, '{"content_type": 31, "title": "new"}', NULL),
    (5, '{"content_type": 31, "title": "same"}', NULL);
"#;
const PRODUCTION: &str = r#"
INSERT INTO content_types VALUES (1, 'wagtailcore', 'page'), (49, 'home', 'homepage'), (50, 'other', 'thing');
INSERT INTO revisions VALUES
    (4, '{"content_type":  49, "title": "old"}', NULL),
    (5, '{"content_type": 49, "title": "same"}', NULL);
"#;
const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.content_types]
key = ["id"]
natural_key = ["app_label", "model"]

[tables.revisions]
key = ["id"]
json_references = { content = { "$.content_type" = "content_types" }, blocks = { "$.items[*].ct" = "content_types" } }
"#;

fn fixture() -> Fixture {
    let f = Fixture::with(SCHEMA, STAGING, SCHEMA, PRODUCTION);
    f.write_config(CONFIG);
    f
}

fn content(f: &Fixture, env: &str, id: i64) -> String {
    f.scalar(env, &format!("SELECT content FROM revisions WHERE id = {id}"))
}

#[test]
fn ids_inside_json_are_rewritten_through_the_natural_key_mapping() {
    let f = fixture();
    let v = f.diff_json(&[]);
    assert_eq!(
        summary(&v),
        [
            s("content_types", 1, "skip", Some("matched")),
            s("content_types", 31, "skip", Some("matched")),
            s("content_types", 32, "insert", None),
            s("content_types", 50, "skip", Some("target-only")),
            s("revisions", 1, "insert", None),
            s("revisions", 2, "insert", None),
            s("revisions", 3, "insert", None),
            s("revisions", 4, "conflict", Some("no-base")),
        ],
        "revision 5 names `home.homepage` on both sides: equal once rewritten: {v:#}"
    );
    // The diff shows the value that will be written: production's id.
    let rev1 = entry(&v, "revisions", 1).unwrap();
    let shown = rev1["row"]["content"].to_string();
    assert!(shown.contains("49") && !shown.contains("31"), "{rev1:#}");
    let rev4 = entry(&v, "revisions", 4).unwrap();
    assert!(rev4.to_string().contains("49"), "{rev4:#}");
    let out = f.run(&["diff", "staging", "production"]).expect(0);
    assert!(out.stdout.contains("49"), "{}", out.stdout);
    // The new content type comes along, pulled in by the JSON reference.
    assert_eq!(
        entry(&v, "content_types", 32).unwrap()["pulled_by"],
        J::Null,
        "a scan selects it itself: {v:#}"
    );

    let before = dump_tables(&f.db("production"), &["content_types", "revisions"]);
    let id = f.promote(&[]);
    assert_eq!(
        f.query(
            "production",
            "SELECT id, app_label, model FROM content_types ORDER BY id"
        ),
        [
            ["1", "wagtailcore", "page"],
            ["49", "home", "homepage"],
            ["50", "other", "thing"],
            ["51", "blog", "blogpage"],
        ]
    );
    // Rewritten: production's ids, compact; a string id stays a string.
    assert_eq!(
        content(&f, "production", 1),
        r#"{"content_type":49,"pk":9,"title":"x"}"#
    );
    assert_eq!(
        f.scalar("production", "SELECT blocks FROM revisions WHERE id = 1"),
        r#"{"items":[{"ct":"49"},{"ct":null},{}]}"#
    );
    // Deferred: the id production assigned the new content type.
    assert_eq!(
        content(&f, "production", 2),
        r#"{"content_type":51,"pk":10,"title":"y"}"#
    );
    // Nothing to rewrite: the text as it was, byte for byte.
    assert_eq!(content(&f, "production", 3), r#"{ "title":  "no content type" }"#);
    assert_eq!(content(&f, "production", 4), r#"{"content_type":49,"title":"new"}"#);
    assert_eq!(content(&f, "production", 5), r#"{"content_type": 49, "title": "same"}"#);
    // Staging is untouched.
    assert_eq!(
        content(&f, "staging", 1),
        r#"{"content_type": 31, "pk": 9, "title": "x"}"#
    );

    // Promoted rows compare equal afterwards.
    let v = f.diff_json(&[]);
    assert_eq!(
        summary(&v),
        [s("content_types", 50, "skip", Some("target-only"))],
        "{v:#}"
    );

    // Revert restores the exact original text.
    f.run_yes(&["revert", &id]).expect(0);
    assert_eq!(
        dump_tables(&f.db("production"), &["content_types", "revisions"]),
        before
    );
    assert_eq!(content(&f, "production", 4), r#"{"content_type":  49, "title": "old"}"#);
}

#[test]
fn a_json_reference_to_a_new_row_alone_pulls_it_in() {
    let f = fixture();
    let v = f.diff_json(&["--id", "revisions:2"]);
    assert_eq!(
        summary(&v),
        [
            s("content_types", 32, "insert", None),
            s("revisions", 2, "insert", None)
        ],
        "{v:#}"
    );
    assert_eq!(
        entry(&v, "content_types", 32).unwrap()["pulled_by"],
        "revisions:2.content at $.content_type",
        "{v:#}"
    );
    f.promote(&["--id", "revisions:2"]);
    assert_eq!(f.ids("production", "content_types"), [1, 49, 50, 51]);
    assert_eq!(
        content(&f, "production", 2),
        r#"{"content_type":51,"pk":10,"title":"y"}"#
    );
}

#[test]
fn an_id_inside_json_that_names_no_row_is_an_error() {
    let f = fixture();
    f.exec(
        "staging",
        r#"UPDATE revisions SET content = '{"content_type": 999}' WHERE id = 3"#,
    );
    let before = dump(&f.db("production"));
    let out = f.run_yes(&["promote", "staging", "production", "--force"]);
    assert_ne!(out.code, 0, "{}", out.all());
    let all = out.all();
    for want in [
        "revisions",
        "`content`",
        "$.content_type",
        "content_types:999",
        "staging",
        "production",
    ] {
        assert!(all.contains(want), "missing {want}: {all}");
    }
    assert_eq!(dump(&f.db("production")), before, "nothing written");

    // Neither a number nor a string: refused, naming the place.
    f.exec(
        "staging",
        r#"UPDATE revisions SET content = '{"content_type": {"id": 31}}' WHERE id = 3"#,
    );
    let out = f.run(&["diff", "staging", "production"]);
    assert_ne!(out.code, 0, "{}", out.all());
    for want in [
        "staging",
        "revisions",
        "key 3",
        "`content`",
        "$.content_type",
        "not an id",
    ] {
        assert!(out.all().contains(want), "missing {want}: {}", out.all());
    }

    // JSON text that does not parse, in a text column declared to hold ids.
    f.exec(
        "staging",
        "UPDATE revisions SET content = NULL, blocks = 'not json' WHERE id = 3",
    );
    let out = f.run(&["diff", "staging", "production"]);
    assert_ne!(out.code, 0, "{}", out.all());
    for want in [
        "staging",
        "revisions",
        "key 3",
        "`blocks`",
        "not JSON",
        "json_references",
    ] {
        assert!(out.all().contains(want), "missing {want}: {}", out.all());
    }
    assert_eq!(dump(&f.db("production")), before, "nothing written");
}

#[test]
fn malformed_json_references_are_config_errors_at_their_line() {
    let f = fixture();
    let cases: [(&str, &[&str]); 5] = [
        (
            "json_references = { content = { \"$.content_type\" = \"content_types\" } }\nignore = [\"content\"]",
            &["line 16", "`content`", "reference column cannot be ignored"],
        ),
        (
            r#"json_references = { content = { "$.items[?(@.x)]" = "content_types" } }"#,
            &["line 15", "revisions", "`content`", "$.items[?(@.x)]", "supported"],
        ),
        (
            r#"json_references = { content = { "content_type" = "content_types" } }"#,
            &["line 15", "starts with `$`"],
        ),
        (
            r#"json_references = { content = { "$.content_type" = "pages" } }"#,
            &["line 15", "`pages`", "not a managed table"],
        ),
        (
            r#"json_references = { body = { "$.content_type" = "content_types" } }"#,
            &["revisions", "`body`", "no such column"],
        ),
    ];
    for (line, wants) in cases {
        let config = CONFIG.replace(
            r#"json_references = { content = { "$.content_type" = "content_types" }, blocks = { "$.items[*].ct" = "content_types" } }"#,
            line,
        );
        assert_ne!(config, CONFIG);
        f.write_config(&config);
        let out = f.run(&["diff", "staging", "production"]);
        assert_eq!(out.code, 2, "{line}: {}", out.all());
        for want in wants {
            assert!(out.all().contains(want), "{line}: missing {want}: {}", out.all());
        }
    }
}

/// `$.pk` names a page, a table whose ids are the same everywhere: no
/// rewriting, but the page is a reference all the same.
const PAGES_SCHEMA: &str = "
CREATE TABLE pages (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL
);
";

fn with_pages() -> Fixture {
    let schema = format!("{SCHEMA}{PAGES_SCHEMA}");
    let f = Fixture::with(
        &schema,
        &format!("{STAGING}INSERT INTO pages VALUES (9, 'Home'), (10, 'QA scratch');"),
        &schema,
        PRODUCTION,
    );
    f.write_config(&format!(
        "{}\n[tables.pages]\nkey = [\"id\"]\nexclude = \"title LIKE 'QA%'\"\n",
        CONFIG.replace(
            r#"content = { "$.content_type" = "content_types" }"#,
            r#"content = { "$.content_type" = "content_types", "$.pk" = "pages" }"#
        )
    ));
    f
}

#[test]
fn an_id_inside_json_pulls_in_a_missing_row_of_a_table_with_equal_ids() {
    let f = with_pages();
    let v = f.diff_json(&["--id", "revisions:1"]);
    assert_eq!(
        summary(&v),
        [s("pages", 9, "insert", None), s("revisions", 1, "insert", None)],
        "{v:#}"
    );
    assert_eq!(
        entry(&v, "pages", 9).unwrap()["pulled_by"],
        "revisions:1.content at $.pk",
        "{v:#}"
    );
    // Not rewritten: the ids are equal in every environment.
    f.promote(&["--id", "revisions:1"]);
    assert_eq!(f.scalar("production", "SELECT title FROM pages WHERE id = 9"), "Home");
    assert_eq!(
        content(&f, "production", 1),
        r#"{"content_type":49,"pk":9,"title":"x"}"#
    );

    // A revision of a page left behind stays behind with it.
    let v = f.diff_json(&["--id", "revisions:2"]);
    let rev2 = entry(&v, "revisions", 2).unwrap();
    assert_eq!(rev2["action"], "skip", "{v:#}");
    assert_eq!(rev2["reason"], "excluded", "{v:#}");
    assert_eq!(rev2["depends_on"], "pages:10", "{v:#}");

    // An id naming a page that exists nowhere.
    f.exec("staging", r#"UPDATE revisions SET content = '{"pk": 77}' WHERE id = 3"#);
    let out = f.run(&["diff", "staging", "production", "--id", "revisions:3"]);
    assert_ne!(out.code, 0, "{}", out.all());
    for want in ["revisions", "key 3", "`content`", "path `$.pk`", "pages:77", "neither"] {
        assert!(out.all().contains(want), "missing {want}: {}", out.all());
    }
}
