//! `revert::changed_since`: what a revert would refuse unless forced, told
//! before the revert is asked for, on real SQLite files.

use ferry_engine::{journal, revert};

use crate::common::{World, PRODUCTION, STAGING};

const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";

#[tokio::test]
async fn changed_since_names_the_rows_a_revert_would_refuse_and_writes_nothing() {
    let w = World::new(SCHEMA, "[tables.items]\n");
    w.exec(
        STAGING,
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    );
    w.exec(PRODUCTION, "INSERT INTO items VALUES (3, 'three');");
    w.baseline().await;
    w.exec(STAGING, "UPDATE items SET name = 'three v2' WHERE id = 3;");
    let plan = w.plan_all().await;
    let promotion = w.promote(&plan, false).await.expect("promote").expect("a promotion");
    let (store, record) = revert::find(&w.project, &promotion.id).await.expect("found");
    let rows = journal::journal_rows(&*store, &promotion.id).await.expect("rows");

    // Nothing changed since: nothing named.
    let none = revert::changed_since(&*store, &record, &rows).await.expect("read");
    assert!(none.is_empty(), "{none:?}");

    // An update, a deletion and a row inserted again, each named with why.
    w.exec(
        PRODUCTION,
        "UPDATE items SET name = 'edited' WHERE id = 3; DELETE FROM items WHERE id = 2;",
    );
    let before = w.dump(PRODUCTION);
    let changed = revert::changed_since(&*store, &record, &rows).await.expect("read");
    assert_eq!(
        changed,
        ["items:2 (deleted since)", "items:3 (column name)"],
        "{changed:?}"
    );
    assert_eq!(w.dump(PRODUCTION), before, "a preview writes nothing");
    // The revert refuses exactly those rows.
    let err = w.revert(&promotion.id, false).await.expect_err("refused");
    assert!(
        err.to_string()
            .contains("items:2 (deleted since), items:3 (column name)"),
        "{err}"
    );
}
