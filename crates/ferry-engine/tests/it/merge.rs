//! The raw merge of full-table plans (same engine, same column types):
//! rows whose raw images differ while their values are equal must plan
//! nothing, and pairs whose column types differ take the canonical merge.

use ferry_core::plan::Action;

use crate::common::{self, World, PRODUCTION, STAGING};

const SCHEMA: &str = "
CREATE TABLE banners (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    config JSON,
    weight REAL,
    team TEXT
);
";

const TABLES: &str = r#"
[tables.banners]
exclude = "team = 'qa'"
"#;

#[tokio::test]
async fn equal_values_with_different_bytes_plan_nothing() {
    let w = World::new(SCHEMA, TABLES);
    w.exec(
        STAGING,
        r#"INSERT INTO banners VALUES
            (1, 'Été ☀️', '{"a":1,"b":[1,2]}', 1.5, NULL),
            (2, 'Winter', '{"b":2}', 2, NULL),
            (3, 'QA only', NULL, NULL, 'qa'),
            (4, 'Spring', NULL, NULL, NULL);"#,
    );
    // The same values, written otherwise: JSON keys reordered and spaced
    // (different bytes), a REAL written as an integer literal, and the QA
    // row the target also has.
    w.exec(
        PRODUCTION,
        r#"INSERT INTO banners VALUES
            (1, 'Été ☀️', '{ "b": [1, 2], "a": 1 }', 1.5, NULL),
            (2, 'Winter', '{"b":2}', 2.0, NULL),
            (3, 'QA only', NULL, NULL, 'qa'),
            (4, 'Spring', NULL, NULL, NULL);"#,
    );
    let pair = w.pair().await;
    assert!(
        pair.raw_comparable.contains("banners"),
        "same engine, same types: the raw merge applies"
    );
    let plan = w.plan_all().await;
    assert!(plan.entries.is_empty(), "{:?}", common::summary(&plan));
    assert_eq!(
        plan.excluded.get("banners"),
        Some(&1),
        "the QA row is counted as left behind"
    );

    // After a baseline, real changes among them are found, field by field.
    w.baseline().await;
    w.exec(
        STAGING,
        "UPDATE banners SET title = 'Été 🌞' WHERE id = 1; DELETE FROM banners WHERE id = 4;",
    );
    w.exec(STAGING, "INSERT INTO banners VALUES (5, 'New', '{}', 0, NULL)");
    let plan = w.plan_all().await;
    assert_eq!(
        common::summary(&plan),
        ["banners:1 update", "banners:4 delete", "banners:5 insert"]
    );
    let update = &plan.entries[0];
    assert_eq!(update.fields.len(), 1, "{:?}", update.fields);
    assert_eq!(update.fields[0].column, "title");
    assert_eq!(update.reason, None);
    assert!(common::has(&plan, "banners", 4, Action::Delete, None));

    // Promoted, the target equals the source, and the next plan is empty.
    w.promote(&plan, false).await.unwrap();
    let plan = w.plan_all().await;
    assert!(plan.entries.is_empty(), "{:?}", common::summary(&plan));
}

#[tokio::test]
async fn a_column_declared_otherwise_takes_the_canonical_merge() {
    let production = SCHEMA.replace("weight REAL", "weight NUMERIC(6, 2)");
    let w = World::with_schemas(SCHEMA, &production, TABLES);
    w.exec(
        STAGING,
        "INSERT INTO banners VALUES (1, 'A', NULL, 1.5, NULL), (2, 'B', NULL, 2, NULL)",
    );
    w.exec(
        PRODUCTION,
        "INSERT INTO banners VALUES (1, 'A', NULL, 1.5, NULL), (2, 'B', NULL, 3, NULL)",
    );
    let pair = w.pair().await;
    assert!(!pair.raw_comparable.contains("banners"));
    let plan = w.plan_all().await;
    assert_eq!(common::summary(&plan), ["banners:2 conflict/no-base"]);
}

#[tokio::test]
async fn a_key_that_is_not_unique_is_refused_by_name() {
    // `code` is the configured key but not unique: the merge would pair
    // the wrong rows, so the plan fails naming the environment and table.
    let schema = "CREATE TABLE banners (code TEXT NOT NULL, title TEXT NOT NULL);
                  INSERT INTO banners VALUES ('a', 'one'), ('b', 'two'), ('b', 'three');";
    let w = World::new(schema, "[tables.banners]\nkey = [\"code\"]\n");
    assert!(w.pair().await.raw_comparable.contains("banners"));
    let err = w.try_plan(&Default::default()).await.expect_err("duplicate keys");
    let text = err.to_string();
    assert!(
        text.contains("environment `staging`") && text.contains("table `banners`") && text.contains("unique"),
        "{text}"
    );
}
