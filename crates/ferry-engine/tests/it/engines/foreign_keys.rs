//! Issue 21 (Wagtail): a foreign key the database declares but the
//! configuration does not mention (`wagtailcore_revision.user_id` to
//! `auth_user`, whose ids differ per environment) would be copied raw.
//! `check`, and opening a pair to plan or promote, refuse it by table,
//! column and referenced table, until it is a reference, ignored, or
//! declared copied as is with `keep_ids`. On every engine.

use ferry_core::selection::Selection;
use ferry_engine::Error;

use super::support::{Eng, World};

const S: &str = "staging";
const P: &str = "production";

fn schema(_env: &str, eng: Eng) -> String {
    let (int, text) = match eng {
        Eng::Sqlite => ("INTEGER", "TEXT"),
        Eng::Postgres => ("integer", "text"),
        Eng::Mysql => ("int", "varchar(100)"),
    };
    format!(
        "CREATE TABLE auth_user (id {int} PRIMARY KEY, username {text} NOT NULL);
CREATE TABLE revisions (id {int} PRIMARY KEY, content {text}, user_id {int},
    CONSTRAINT revisions_user_fk FOREIGN KEY (user_id) REFERENCES auth_user (id));
INSERT INTO auth_user VALUES (1, 'ann');
INSERT INTO revisions VALUES (1, 'first', 1);"
    )
}

const UNDECLARED: &str = r#"
[tables.revisions]
key = ["id"]
"#;

async fn undeclared_foreign_key_refused(eng: Eng) {
    let l = format!("foreign_keys::{}", eng.name());
    let Some(w) = World::new(&l, &[(S, eng), (P, eng)], schema, UNDECLARED).await else {
        return;
    };
    let report = ferry_engine::check::check(&w.project).await;
    let found: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let p = report
        .problems
        .iter()
        .find(|p| p.column.as_deref() == Some("user_id"))
        .unwrap_or_else(|| panic!("{l}: check passed an undeclared foreign key: {found:?}"));
    assert_eq!(p.table.as_deref(), Some("revisions"), "{l}");
    for want in [
        "`auth_user`",
        "references = { user_id = \"auth_user\" }",
        "keep_ids = [\"user_id\"]",
        "ignore = [\"user_id\"]",
    ] {
        assert!(p.message.contains(want), "{l}: `{want}` missing from: {}", p.message);
    }
    assert!(p.environment.is_some(), "{l}: {p}");

    // Planning and promoting refuse it too, before reading a row.
    let err = match ferry_engine::pair::open(&w.project, S, P).await {
        Ok(_) => panic!("{l}: the pair opened"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Config(_)), "{l}: {err:?}");
    assert!(err.to_string().contains("user_id"), "{l}: {err}");
    assert_eq!(w.db(P).promotions().await, 0, "{l}");

    // Each way of telling Ferry about it passes.
    for (how, toml) in [
        ("keep_ids", "[tables.revisions]\nkey = [\"id\"]\nkeep_ids = [\"user_id\"]\n"),
        ("ignore", "[tables.revisions]\nkey = [\"id\"]\nignore = [\"user_id\"]\n"),
        (
            "references",
            "[tables.auth_user]\nkey = [\"id\"]\n\n[tables.revisions]\nkey = [\"id\"]\nreferences = { user_id = \"auth_user\" }\n",
        ),
    ] {
        let told = w.sibling(toml);
        let report = ferry_engine::check::check(&told.project).await;
        assert!(report.ok(), "{l}: {how}: {:?}", report.problems);
        told.plan(S, P, &Selection::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    undeclared_foreign_key_refused(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    undeclared_foreign_key_refused(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    undeclared_foreign_key_refused(Eng::Mysql).await;
}
