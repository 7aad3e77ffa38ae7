//! The three-way rules on hand-written edits after a baseline: a change
//! only in production is never overwritten, disjoint edits merge, the same
//! field changed on both sides is a conflict that blocks the promotion
//! (nothing written) unless forced, and the same change on both sides is
//! nothing to do.

use ferry_core::plan::{Action, Reason};
use ferry_core::value::Value;
use ferry_engine::Error;

use crate::common::{self, World, PRODUCTION, STAGING};

const SCHEMA: &str = "
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    qty INTEGER,
    price REAL,
    views INTEGER,
    modified_at TEXT
);
INSERT INTO items VALUES
    (1, 'one', 1, 1.0, 10, '2020-01-01 00:00:00'),
    (2, 'two', 2, 2.0, 20, '2020-01-01 00:00:00'),
    (3, 'three', 3, 3.0, 30, '2020-01-01 00:00:00'),
    (4, 'four', 4, 4.0, 40, '2020-01-01 00:00:00'),
    (5, 'five', 5, 5.0, 50, '2020-01-01 00:00:00');
";

const TABLES: &str = r#"
[tables.items]
ignore = ["views"]
stamp = { modified_at = "now" }
"#;

async fn synced() -> World {
    let w = World::new(SCHEMA, TABLES);
    let b = w.baseline().await;
    assert_eq!(b.recorded, 5);
    w
}

fn row(w: &World, env: &str, id: i64) -> String {
    w.dump(env)
        .into_iter()
        .find(|l| l.starts_with(&format!("items|id=integer:{id}|")))
        .unwrap_or_else(|| panic!("{env} has no items:{id}"))
}

#[tokio::test]
async fn an_edit_only_in_production_is_never_overwritten() {
    let w = synced().await;
    w.exec(
        PRODUCTION,
        "UPDATE items SET name = 'fixed in production ✍️' WHERE id = 1",
    );
    w.exec(PRODUCTION, "DELETE FROM items WHERE id = 4");
    // Staging touches only a column Ferry does not compare.
    w.exec(STAGING, "UPDATE items SET views = 999, modified_at = 'x' WHERE id = 1");
    let plan = w.plan_all().await;
    assert_eq!(
        common::summary(&plan),
        ["items:1 skip/target-newer", "items:4 skip/target-newer"]
    );
    let before = w.dump(PRODUCTION);
    // Not even --force overrides a target-newer row.
    assert!(w.promote(&plan, true).await.unwrap().is_none());
    assert_eq!(w.dump(PRODUCTION), before);

    // A later staging change to another field of the same row merges.
    w.exec(STAGING, "UPDATE items SET qty = 100 WHERE id = 1");
    let plan = w.plan_all().await;
    assert!(common::has(&plan, "items", 1, Action::Update, Some(Reason::Merged)));
    let p = w.promote(&plan, false).await.unwrap().unwrap();
    let one = row(&w, PRODUCTION, 1);
    assert!(
        one.contains(&format!(
            "name=text:{}",
            common::hex("fixed in production ✍️".as_bytes())
        )),
        "{one}"
    );
    assert!(one.contains("qty=integer:100"), "{one}");
    assert!(
        one.contains("views=integer:10"),
        "the ignored column keeps production's value: {one}"
    );
    assert!(
        one.contains(&format!(
            "modified_at=text:{}",
            common::hex(common::stamp_of(&p).as_bytes())
        )),
        "{one}"
    );
}

#[tokio::test]
async fn disjoint_edits_on_both_sides_merge() {
    let w = synced().await;
    w.exec(
        STAGING,
        "UPDATE items SET name = 'two from staging', price = 2.5 WHERE id = 2",
    );
    w.exec(PRODUCTION, "UPDATE items SET qty = 22 WHERE id = 2");
    let plan = w.plan_all().await;
    assert_eq!(common::summary(&plan), ["items:2 update/merged"]);
    let e = &plan.entries[0];
    assert_eq!(e.set, ["name", "price"], "a merge writes only what staging changed");
    let p = w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(p.counts.update, 1);
    let two = row(&w, PRODUCTION, 2);
    assert!(
        two.contains(&format!("name=text:{}", common::hex(b"two from staging"))),
        "{two}"
    );
    assert!(two.contains(&format!("price=real:{:016x}", 2.5f64.to_bits())), "{two}");
    assert!(two.contains("qty=integer:22"), "production's own edit survives: {two}");

    // Production now holds more than staging: target-newer, nothing to do.
    let again = w.plan_all().await;
    assert_eq!(common::summary(&again), ["items:2 skip/target-newer"]);
}

#[tokio::test]
async fn the_same_field_changed_on_both_sides_blocks_unless_forced() {
    let w = synced().await;
    w.exec(STAGING, "UPDATE items SET name = 'staging says' WHERE id = 3");
    w.exec(PRODUCTION, "UPDATE items SET name = 'production says' WHERE id = 3");
    // Both deleted-and-changed shapes conflict too.
    w.exec(STAGING, "DELETE FROM items WHERE id = 4");
    w.exec(PRODUCTION, "UPDATE items SET qty = 44 WHERE id = 4");
    w.exec(STAGING, "UPDATE items SET qty = 55 WHERE id = 5");
    w.exec(PRODUCTION, "DELETE FROM items WHERE id = 5");
    // The same change on both sides is nothing to do.
    w.exec(STAGING, "UPDATE items SET qty = 9 WHERE id = 1");
    w.exec(PRODUCTION, "UPDATE items SET qty = 9 WHERE id = 1");
    // An ordinary change travels with them.
    w.exec(STAGING, "UPDATE items SET qty = 20 WHERE id = 2");

    let plan = w.plan_all().await;
    assert_eq!(
        common::summary(&plan),
        [
            "items:2 update",
            "items:3 conflict/both-changed",
            "items:4 conflict/deleted-in-source",
            "items:5 conflict/deleted-in-target",
        ]
    );
    let conflict = common::find(&plan, "items", &[Value::Int(3)]).unwrap();
    assert_eq!(conflict.fields.len(), 1);
    assert_eq!(conflict.fields[0].column, "name");
    assert_eq!(conflict.fields[0].source, Some(Value::Text("staging says".into())));
    assert_eq!(conflict.fields[0].target, Some(Value::Text("production says".into())));

    let bytes = w.bytes(PRODUCTION);
    let err = w.promote(&plan, false).await.unwrap_err();
    assert!(matches!(err.inner(), Error::Blocked(_)), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    for want in ["items:3", "items:4", "items:5", "name"] {
        assert!(msg.contains(want), "`{want}` missing from: {msg}");
    }
    // The way out (letting the source win) is a hint each front end
    // words itself; the message names no flag.
    assert!(
        matches!(
            err.hint_of(),
            Some(ferry_engine::error::Hint::Conflicts {
                first_contact: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!msg.contains("--"), "{msg}");
    assert!(w.bytes(PRODUCTION) == bytes, "a blocked promotion writes nothing");

    // --force lets staging win every conflict.
    let p = w.promote(&plan, true).await.unwrap().unwrap();
    assert_eq!((p.counts.insert, p.counts.update, p.counts.delete), (1, 2, 1));
    assert!(row(&w, PRODUCTION, 3).contains(&format!("name=text:{}", common::hex(b"staging says"))));
    assert_eq!(w.count(PRODUCTION, "SELECT count(*) FROM items WHERE id = 4"), 0);
    assert!(row(&w, PRODUCTION, 5).contains("qty=integer:55"));
    let again = w.plan_all().await;
    assert!(again.entries.is_empty(), "{:?}", common::summary(&again));
}
