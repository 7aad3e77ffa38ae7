//! Rows the closure pulls in are written only while a written row needs
//! them: a post that stays with its excluded author does not bring its new
//! tag (or the tag's children) along on its own.

use crate::common::*;

const SCHEMA: &str = "
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, team TEXT NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE tag_aliases (id INTEGER PRIMARY KEY, tag_id INTEGER NOT NULL REFERENCES tags(id), alias TEXT NOT NULL);
CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    author_id INTEGER NOT NULL REFERENCES authors(id),
    tag_id INTEGER NOT NULL REFERENCES tags(id),
    title TEXT NOT NULL
);
";
const STAGING: &str = "
INSERT INTO authors VALUES (1, 'QA bot', 'qa'), (2, 'Ada', 'editorial');
INSERT INTO tags VALUES (1, 'news'), (2, 'food');
INSERT INTO tag_aliases VALUES (1, 1, 'headlines'), (2, 2, 'cuisine');
INSERT INTO posts VALUES (1, 1, 1, 'smoke test post'), (2, 2, 2, 'Pierogi');
";
const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.authors]
key = ["id"]
exclude = "team = 'qa'"

[tables.tags]
key = ["id"]

[tables.tag_aliases]
key = ["id"]
parent = { tag_id = "tags" }

[tables.posts]
key = ["id"]
references = { author_id = "authors", tag_id = "tags" }
"#;

#[test]
fn a_row_pulled_only_for_a_row_left_behind_is_not_written() {
    let f = Fixture::with(SCHEMA, STAGING, SCHEMA, "");
    f.write_config(CONFIG);
    f.run(&["check"]).expect(0);
    let v = f.diff_json(&["--table", "posts"]);
    // Post 1 stays with its QA author; its tag 1 (and the tag's alias,
    // which came with it) are not promoted for it. Post 2 brings author 2,
    // tag 2 and tag 2's alias.
    assert_eq!(
        summary(&v),
        [
            s("authors", 1, "skip", Some("excluded")),
            s("authors", 2, "insert", None),
            s("tags", 2, "insert", None),
            s("posts", 1, "skip", Some("excluded")),
            s("posts", 2, "insert", None),
            s("tag_aliases", 2, "insert", None),
        ],
        "{v:#}"
    );
    f.run_yes(&["promote", "staging", "production", "--table", "posts"])
        .expect(0);
    // Only what post 2 needs arrived; tag 1 and its alias stayed behind.
    assert_eq!(f.ids("production", "authors"), [2]);
    assert_eq!(f.ids("production", "tags"), [2]);
    assert_eq!(f.ids("production", "tag_aliases"), [2]);
    assert_eq!(f.ids("production", "posts"), [2]);
}
