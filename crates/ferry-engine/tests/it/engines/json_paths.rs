//! Issue 21, item 6, on every engine: a JSON column's values reach the plan
//! as JSON documents (a JSON value, or text the plan's column types declare
//! JSON), so the front ends can show the change path by path. PostgreSQL
//! `jsonb`, MariaDB `JSON` (a LONGTEXT with a check), SQLite `JSON`, and a
//! SQLite `TEXT` column promoted into a PostgreSQL `jsonb` one.

use ferry_core::json_diff::{self, Change};
use ferry_core::plan::Action;
use ferry_core::selection::Selection;
use serde_json::json;

use super::support::{pair_name, Eng, World};

fn json_type(env: &str, eng: Eng, text_source: bool) -> &'static str {
    match eng {
        Eng::Sqlite if text_source && env == "staging" => "TEXT",
        Eng::Sqlite => "JSON",
        Eng::Postgres => "jsonb",
        Eng::Mysql => "JSON",
    }
}

async fn paths(from: Eng, to: Eng, text_source: bool) {
    let test = format!("json_paths::{}", pair_name(from, to));
    let Some(w) = World::new(
        &test,
        &[("staging", from), ("production", to)],
        |env, eng| {
            format!(
                "CREATE TABLE pages (id integer PRIMARY KEY, body {});",
                json_type(env, eng, text_source)
            )
        },
        "[tables.pages]\nkey = [\"id\"]\n",
    )
    .await
    else {
        return;
    };
    let staging = w.db("staging");
    let old = json!([{"type": "text", "value": {"text": "Old"}}, {"type": "quote", "value": "Same"}]);
    let new = json!([{"type": "text", "value": {"text": "New"}}, {"type": "quote", "value": "Same"}]);
    staging
        .exec(&format!("INSERT INTO pages (id, body) VALUES (1, '{old}');"))
        .await;
    let (_, done) = w.promote_all("staging", "production").await;
    assert!(done.is_some(), "{test}");
    staging
        .exec(&format!("UPDATE pages SET body = '{new}' WHERE id = 1;"))
        .await;

    let plan = w.plan("staging", "production", &Selection::default()).await;
    let e = plan
        .entries
        .iter()
        .find(|e| e.action == Action::Update)
        .unwrap_or_else(|| panic!("{test}: no update in {:?}", plan.entries));
    let f = e
        .fields
        .iter()
        .find(|f| f.column == "body")
        .unwrap_or_else(|| panic!("{test}: body not in {:?}", e.fields));
    let spec = &plan.specs["pages"];
    let declared = json_diff::declared_json([spec.types.get("body"), spec.target_types.get("body")]);
    let doc = |v: &Option<ferry_core::Value>| {
        let v = v
            .as_ref()
            .unwrap_or_else(|| panic!("{test}: a side of body is missing"));
        json_diff::document(v, declared).unwrap_or_else(|| panic!("{test}: {v:?} is not a JSON document"))
    };
    let (target, source) = (doc(&f.target), doc(&f.source));
    assert_eq!((&target, &source), (&old, &new), "{test}");
    let changes = json_diff::diff(&target, &source);
    assert_eq!(changes.len(), 1, "{test}: {changes:?}");
    assert_eq!(
        json_diff::path_text("body", &changes[0].path),
        "body[0].value.text",
        "{test}"
    );
    assert_eq!(
        changes[0].change,
        Change::Changed {
            old: json!("Old"),
            new: json!("New")
        },
        "{test}"
    );
}

macro_rules! pairs {
    ($($name:ident: $from:expr => $to:expr, $text:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            paths($from, $to, $text).await;
        }
    )*};
}

pairs! {
    sqlite_to_sqlite: Eng::Sqlite => Eng::Sqlite, false;
    postgres_to_postgres: Eng::Postgres => Eng::Postgres, false;
    mariadb_to_mariadb: Eng::Mysql => Eng::Mysql, false;
    sqlite_text_to_postgres: Eng::Sqlite => Eng::Postgres, true;
    mariadb_to_postgres: Eng::Mysql => Eng::Postgres, false;
}
