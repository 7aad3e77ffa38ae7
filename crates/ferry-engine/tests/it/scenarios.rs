//! Scenarios on hand-written content: trees, composite keys, stale plans,
//! target constraints, selections that pull references and children, and
//! reverts refused because rows changed since.

use ferry_core::plan::Action;
use ferry_core::value::Value;
use ferry_engine::error::Part;
use ferry_engine::Error;

use crate::common::{self, World, PRODUCTION, STAGING};

fn no_foreign_key_violations(w: &World, env: &str) {
    let conn = w.conn(env);
    let mut stmt = conn.prepare("PRAGMA foreign_key_check").unwrap();
    let bad: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!("{}:{}", r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(bad.is_empty(), "{env} breaks foreign keys: {bad:?}");
}

// ---- a self-referencing table ---------------------------------------------

const MENUS: &str = "
CREATE TABLE menus (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES menus(id),
    title TEXT NOT NULL,
    position INTEGER NOT NULL
);
INSERT INTO menus VALUES (1, NULL, 'Home', 0), (2, 1, 'About', 1);
";

const MENU_TABLES: &str = r#"
[tables.menus]
references = { parent_id = "menus" }
"#;

/// A subtree whose keys run opposite to its depth: parents have the
/// larger ids, so key order is children first.
const SUBTREE: &str = "
INSERT INTO menus VALUES (30, 1, 'Products', 2);
INSERT INTO menus VALUES (20, 30, 'Ferries ⛴️', 0);
INSERT INTO menus VALUES (10, 20, 'Car ferry', 0);
INSERT INTO menus VALUES (11, 20, 'Foot ferry', 1);
INSERT INTO menus VALUES (5, 10, 'Timetable', 0);
";

#[tokio::test]
async fn a_new_subtree_is_inserted_parent_first_and_deleted_children_first() {
    let w = World::new(MENUS, MENU_TABLES);
    w.baseline().await;
    w.exec(STAGING, SUBTREE);
    let plan = w.plan_all().await;
    assert_eq!(
        common::summary(&plan),
        [
            "menus:5 insert",
            "menus:10 insert",
            "menus:11 insert",
            "menus:20 insert",
            "menus:30 insert"
        ]
    );
    // Production enforces its foreign keys on every statement: this only
    // works parent-first.
    let inserted = w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(inserted.counts.insert, 5);
    assert_eq!(w.dump(PRODUCTION), w.dump(STAGING));
    no_foreign_key_violations(&w, PRODUCTION);
    assert!(w.plan_all().await.entries.is_empty());
    let with_subtree = w.dump(PRODUCTION);

    // Deleting the subtree in staging deletes it in production children first.
    w.exec(STAGING, "DELETE FROM menus WHERE id IN (5, 10, 11, 20, 30)");
    let plan = w.plan_all().await;
    assert_eq!(plan.counts().delete, 5, "{:?}", common::summary(&plan));
    let deleted = w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(w.dump(PRODUCTION), w.dump(STAGING));
    no_foreign_key_violations(&w, PRODUCTION);

    // Reverting the delete puts the subtree back (parents first again),
    // then reverting the insert takes it away (children first).
    w.revert(&deleted.id, false).await.unwrap();
    assert_eq!(w.dump(PRODUCTION), with_subtree);
    no_foreign_key_violations(&w, PRODUCTION);
    w.revert(&inserted.id, false).await.unwrap();
    assert_eq!(w.dump(PRODUCTION), w.dump(STAGING));
    no_foreign_key_violations(&w, PRODUCTION);
}

#[tokio::test]
async fn an_id_in_a_tree_pulls_its_ancestors_and_reparenting_works() {
    let w = World::new(MENUS, MENU_TABLES);
    w.baseline().await;
    w.exec(STAGING, SUBTREE);
    // The leaf alone needs its missing ancestors, not its siblings.
    let plan = w.plan(&common::ids(&["menus:5"])).await;
    assert_eq!(
        common::summary(&plan),
        [
            "menus:5 insert",
            "menus:10 insert",
            "menus:20 insert",
            "menus:30 insert"
        ]
    );
    let pulled = common::find(&plan, "menus", &[Value::Int(10)]).unwrap();
    assert_eq!(pulled.pulled_by.as_deref(), Some("menus:5.parent_id"));
    assert!(common::find(&plan, "menus", &[Value::Int(5)])
        .unwrap()
        .pulled_by
        .is_none());
    w.promote(&plan, false).await.unwrap().unwrap();
    no_foreign_key_violations(&w, PRODUCTION);
    assert_eq!(w.count(PRODUCTION, "SELECT count(*) FROM menus WHERE id = 11"), 0);

    // Moving an existing node under a new one: the insert comes first.
    w.exec(
        STAGING,
        "INSERT INTO menus VALUES (40, 1, 'Company', 3); UPDATE menus SET parent_id = 40 WHERE id = 2;",
    );
    let plan = w.plan(&common::ids(&["menus:2"])).await;
    assert_eq!(common::summary(&plan), ["menus:2 update", "menus:40 insert"]);
    w.promote(&plan, false).await.unwrap().unwrap();
    no_foreign_key_violations(&w, PRODUCTION);
    assert_eq!(
        w.cell(PRODUCTION, "SELECT parent_id FROM menus WHERE id = 2"),
        "integer:40"
    );
}

// ---- a composite key ---------------------------------------------------------

const TRANSLATIONS: &str = "
CREATE TABLE translations (
    item_id INTEGER NOT NULL,
    lang TEXT NOT NULL,
    label TEXT,
    icon BLOB,
    PRIMARY KEY (item_id, lang)
);
INSERT INTO translations VALUES
    (1, 'en', 'Ferry', x'00ff'),
    (1, 'fr', 'Traversier', NULL),
    (2, 'en', 'Boat', NULL),
    (2, 'fr', 'Bateau', NULL);
";

#[tokio::test]
async fn a_composite_key_table_promotes_and_reverts() {
    let w = World::new(TRANSLATIONS, "[tables.translations]\n");
    w.baseline().await;
    w.exec(
        STAGING,
        "INSERT INTO translations VALUES (1, '🦀', 'Krabbe 🦀', x''), (2, 'de', 'Boot', NULL);
         UPDATE translations SET label = 'Traversier 🚢' WHERE item_id = 1 AND lang = 'fr';
         DELETE FROM translations WHERE item_id = 2 AND lang = 'en';
         UPDATE translations SET label = 'Bateau (staging)' WHERE item_id = 2 AND lang = 'fr';",
    );
    w.exec(
        PRODUCTION,
        "UPDATE translations SET label = 'Bateau (production)' WHERE item_id = 2 AND lang = 'fr'",
    );
    let plan = w.plan_all().await;
    assert_eq!(
        common::summary(&plan),
        [
            "translations:1,fr update",
            "translations:1,🦀 insert",
            "translations:2,de insert",
            "translations:2,en delete",
            "translations:2,fr conflict/both-changed",
        ]
    );
    let e = common::find(&plan, "translations", &[Value::Int(1), Value::Text("🦀".into())]).unwrap();
    assert_eq!(e.action, Action::Insert);

    // One composite key on its own.
    let one = w.plan(&common::ids(&["translations:1,fr"])).await;
    assert_eq!(common::summary(&one), ["translations:1,fr update"]);
    let bad = w.try_plan(&common::ids(&["translations:1"])).await.unwrap_err();
    assert!(
        matches!(bad.inner(), Error::Selection { part: Part::Row, given, .. } if given == "translations:1"),
        "{bad:?}"
    );
    assert_eq!(bad.exit_code(), 2);
    assert!(bad.to_string().contains("item_id, lang"), "{bad}");
    assert!(!bad.to_string().contains("--id"), "the engine names no flag: {bad}");

    let before = (w.dump(PRODUCTION), w.sync(PRODUCTION));
    let p = w.promote(&plan, true).await.unwrap().unwrap();
    assert_eq!((p.counts.insert, p.counts.update, p.counts.delete), (2, 2, 1));
    assert_eq!(
        w.dump(PRODUCTION),
        w.dump(STAGING),
        "bytes, blobs and emoji keys included"
    );
    assert!(w.plan_all().await.entries.is_empty());
    assert!(w
        .sync(PRODUCTION)
        .iter()
        .any(|l| l.contains(r#"|translations|[1,"🦀"]|"#)));

    w.revert(&p.id, false).await.unwrap();
    assert_eq!((w.dump(PRODUCTION), w.sync(PRODUCTION)), before);
}

// ---- a stale plan --------------------------------------------------------------

const ITEMS: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, views INTEGER);
INSERT INTO items VALUES (1, 'one', 1, 0), (2, 'two', 2, 0);
";

const ITEM_TABLES: &str = r#"
[tables.items]
ignore = ["views"]
"#;

#[tokio::test]
async fn a_plan_the_target_moved_under_is_refused_and_nothing_is_written() {
    for (what, change) in [
        ("an updated row", "UPDATE items SET qty = 100 WHERE id = 1"),
        ("a deleted row", "DELETE FROM items WHERE id = 1"),
        (
            "a row inserted where the plan inserts",
            "INSERT INTO items VALUES (3, 'three?', 0, 0)",
        ),
    ] {
        let w = World::new(ITEMS, ITEM_TABLES);
        w.baseline().await;
        w.exec(
            STAGING,
            "UPDATE items SET name = 'one!' WHERE id = 1; INSERT INTO items VALUES (3, 'three', 3, 0);",
        );
        let plan = w.plan_all().await;
        assert_eq!(common::summary(&plan), ["items:1 update", "items:3 insert"]);

        w.exec(PRODUCTION, change);
        let bytes = w.bytes(PRODUCTION);
        let err = w.promote(&plan, false).await.unwrap_err();
        assert!(matches!(err.inner(), Error::Blocked(_)), "{what}: {err:?}");
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("changed since the plan"), "{what}: {err}");
        assert!(w.bytes(PRODUCTION) == bytes, "{what}: nothing written");
        // --force resolves conflicts, never a stale plan.
        let err = w.promote(&plan, true).await.unwrap_err();
        assert!(matches!(err.inner(), Error::Blocked(_)), "{what}: {err:?}");
        assert!(w.bytes(PRODUCTION) == bytes, "{what}: nothing written");
    }

    // Changes outside the plan's rows, or to ignored columns, do not make it stale.
    let w = World::new(ITEMS, ITEM_TABLES);
    w.baseline().await;
    w.exec(STAGING, "UPDATE items SET name = 'one!' WHERE id = 1");
    let plan = w.plan_all().await;
    w.exec(
        PRODUCTION,
        "UPDATE items SET qty = 20 WHERE id = 2; UPDATE items SET views = 7 WHERE id = 1",
    );
    w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(
        w.cell(PRODUCTION, "SELECT name || '/' || views FROM items WHERE id = 1"),
        format!("text:{}", common::hex(b"one!/7"))
    );
}

// ---- a constraint only the target has ----------------------------------------

#[tokio::test]
async fn a_row_breaking_a_target_constraint_names_table_key_and_column() {
    let staging = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, code TEXT);
                   INSERT INTO items VALUES (1, 'one', 1, 'A');";
    let production = "CREATE TABLE items (
                          id INTEGER PRIMARY KEY,
                          name TEXT NOT NULL,
                          qty INTEGER CHECK (qty >= 0.0),
                          code TEXT UNIQUE
                      );
                      INSERT INTO items VALUES (1, 'one', 1, 'A');";
    for (baseline, column, bad_row) in [
        (false, "qty", "INSERT INTO items VALUES (7, 'negative', -1, 'B')"),
        (true, "qty", "INSERT INTO items VALUES (7, 'negative', -1, 'B')"),
        (true, "name", "INSERT INTO items VALUES (7, NULL, 1, 'B')"),
        (true, "code", "INSERT INTO items VALUES (7, 'dup', 1, 'A')"),
        (true, "qty", "UPDATE items SET qty = -5 WHERE id = 1"),
    ] {
        let w = World::with_schemas(staging, production, "[tables.items]\n");
        if baseline {
            w.baseline().await;
        }
        // Rows that are fine come before the bad one in apply order.
        w.exec(
            STAGING,
            "INSERT INTO items VALUES (2, 'two', 2, 'C'), (3, 'three', 3, 'D')",
        );
        w.exec(STAGING, bad_row);
        let plan = w.plan_all().await;
        let bad_key = if bad_row.starts_with("UPDATE") { "1" } else { "7" };
        let bytes = w.bytes(PRODUCTION);
        let err = w.promote(&plan, false).await.unwrap_err();
        if column == "code" {
            // A unique collision is found in the plan (issue 21): blocked
            // before the transaction, naming both rows and the column.
            assert!(matches!(err.inner(), Error::Blocked(_)), "{bad_row}: {err:?}");
            let msg = err.to_string();
            for want in [
                "items:7",
                "unique (code)",
                "items:1 in production",
                "nothing was written",
            ] {
                assert!(msg.contains(want), "{bad_row}: `{want}` missing from: {msg}");
            }
            assert!(w.bytes(PRODUCTION) == bytes, "{bad_row}: production unchanged");
            continue;
        }
        assert!(matches!(err.inner(), Error::Data(_)), "{bad_row}: {err:?}");
        assert_eq!(err.exit_code(), 1);
        let msg = err.to_string();
        for want in [
            "`production`",
            "table `items`",
            &format!("key {bad_key}"),
            &format!("column `{column}`"),
        ] {
            assert!(msg.contains(want), "{bad_row}: `{want}` missing from: {msg}");
        }
        assert!(
            w.bytes(PRODUCTION) == bytes,
            "{bad_row}: production unchanged byte for byte"
        );
        assert!(
            !w.path(PRODUCTION).with_extension("db-journal").exists(),
            "{bad_row}: no hot journal left behind"
        );
    }
}

// ---- selections that pull references and bring children -----------------------

const SHOP: &str = "
CREATE TABLE cities (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE partners (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city_id INTEGER REFERENCES cities(id));
CREATE TABLE businesses (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    partner_id INTEGER REFERENCES partners(id),
    city_id INTEGER REFERENCES cities(id),
    created_by_team TEXT,
    modified_at DATETIME
);
CREATE TABLE forms (id INTEGER PRIMARY KEY, business_id INTEGER REFERENCES businesses(id), title TEXT);
CREATE TABLE form_fields (
    id INTEGER PRIMARY KEY,
    form_id INTEGER NOT NULL REFERENCES forms(id),
    label TEXT,
    position INTEGER
);
INSERT INTO cities VALUES (1, 'Lyon');
INSERT INTO partners VALUES (1, 'Acme', 1);
INSERT INTO businesses VALUES (1, 'Old shop', 1, 1, 'pm', '2020-01-01 00:00:00');
INSERT INTO forms VALUES (1, 1, 'Contact');
INSERT INTO form_fields VALUES (1, 1, 'Email', 0), (2, 1, 'Name', 1);
";

const SHOP_TABLES: &str = r#"
[tables.cities]
[tables.partners]
references = { city_id = "cities" }
[tables.businesses]
references = { partner_id = "partners", city_id = "cities" }
exclude = "created_by_team IN ('qa', 'dev')"
stamp = { modified_at = "now" }
[tables.forms]
references = { business_id = "businesses" }
[tables.form_fields]
parent = { form_id = "forms" }
"#;

/// Staging after a sprint of work, production as it was at the baseline.
async fn shop() -> World {
    let w = World::new(SHOP, SHOP_TABLES);
    w.baseline().await;
    w.exec(
        STAGING,
        "INSERT INTO cities VALUES (2, 'Marseille ☀️');
         INSERT INTO partners VALUES (2, 'Ferries & Co', 2);
         INSERT INTO businesses VALUES (2, 'Café du Port', 2, 2, 'pm', NULL);
         INSERT INTO businesses VALUES (3, 'QA test shop', 1, 1, 'qa', NULL);
         UPDATE businesses SET name = 'Old shop (renamed)' WHERE id = 1;
         INSERT INTO forms VALUES (2, 2, 'Booking');
         INSERT INTO form_fields VALUES (3, 2, 'Date', 0), (4, 2, 'Passengers 👪', 1);
         INSERT INTO forms VALUES (3, 3, 'QA form');
         UPDATE forms SET title = 'Contact us' WHERE id = 1;
         UPDATE form_fields SET label = 'E-mail' WHERE id = 1;
         DELETE FROM form_fields WHERE id = 2;
         INSERT INTO form_fields VALUES (5, 1, 'Phone', 2);",
    );
    w
}

#[tokio::test]
async fn a_where_selection_pulls_the_rows_it_references() {
    let w = shop().await;
    let plan = w.plan(&common::wheres(&["businesses:name LIKE 'Caf%'"])).await;
    assert_eq!(
        common::summary(&plan),
        ["cities:2 insert", "partners:2 insert", "businesses:2 insert"]
    );
    assert_eq!(
        common::find(&plan, "partners", &[Value::Int(2)])
            .unwrap()
            .pulled_by
            .as_deref(),
        Some("businesses:2.partner_id")
    );
    let p = w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(p.counts.insert, 3);
    no_foreign_key_violations(&w, PRODUCTION);
    assert_eq!(
        w.cell(PRODUCTION, "SELECT name FROM businesses WHERE id = 1"),
        format!("text:{}", common::hex(b"Old shop")),
        "rows outside the selection stay as they are"
    );
    // The stamp lands in the DATETIME column as PRODUCT.md writes it.
    assert_eq!(
        w.cell(PRODUCTION, "SELECT modified_at FROM businesses WHERE id = 2"),
        format!("text:{}", common::hex(common::stamp_of(&p).as_bytes()))
    );

    // The predicate selects rows matching it on either side, then compares
    // them whole: a row staging renamed away from the predicate is updated
    // (not deleted), one renamed into it is updated (not re-inserted).
    let plan = w.plan(&common::wheres(&["businesses:name = 'Old shop'"])).await;
    assert_eq!(common::summary(&plan), ["businesses:1 update"]);
    let plan = w.plan(&common::wheres(&["businesses:name LIKE '%(renamed)'"])).await;
    assert_eq!(common::summary(&plan), ["businesses:1 update"]);

    // A form selected by predicate brings its fields: inserted, updated and deleted.
    let plan = w.plan(&common::wheres(&["forms:title = 'Contact us'"])).await;
    assert_eq!(
        common::summary(&plan),
        [
            "forms:1 update",
            "form_fields:1 update",
            "form_fields:2 delete",
            "form_fields:5 insert"
        ]
    );
    w.promote(&plan, false).await.unwrap().unwrap();
    no_foreign_key_violations(&w, PRODUCTION);
    assert_eq!(
        w.count(PRODUCTION, "SELECT count(*) FROM form_fields WHERE form_id = 1"),
        2
    );
}

#[tokio::test]
async fn an_id_selection_brings_children_and_pulls_references_transitively() {
    let w = shop().await;
    let plan = w.plan(&common::ids(&["forms:2"])).await;
    assert_eq!(
        common::summary(&plan),
        [
            "cities:2 insert",
            "partners:2 insert",
            "businesses:2 insert",
            "forms:2 insert",
            "form_fields:3 insert",
            "form_fields:4 insert",
        ]
    );
    let p = w.promote(&plan, false).await.unwrap().unwrap();
    no_foreign_key_violations(&w, PRODUCTION);
    for table in ["cities", "partners", "forms"] {
        let want: Vec<String> = w
            .dump(STAGING)
            .into_iter()
            .filter(|l| l.starts_with(&format!("{table}|id=integer:2|")))
            .collect();
        let got: Vec<String> = w
            .dump(PRODUCTION)
            .into_iter()
            .filter(|l| l.starts_with(&format!("{table}|id=integer:2|")))
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(
        w.cell(PRODUCTION, "SELECT label FROM form_fields WHERE id = 4"),
        format!("text:{}", common::hex("Passengers 👪".as_bytes()))
    );
    w.revert(&p.id, false).await.unwrap();
    no_foreign_key_violations(&w, PRODUCTION);
    assert_eq!(w.count(PRODUCTION, "SELECT count(*) FROM cities"), 1);

    // An excluded row is shown, not promoted; a row that needs it stays
    // behind with it, and says so.
    let plan = w.plan(&common::ids(&["businesses:3"])).await;
    assert_eq!(common::summary(&plan), ["businesses:3 skip/excluded"]);
    let plan = w.plan(&common::ids(&["forms:3"])).await;
    assert_eq!(
        common::summary(&plan),
        ["businesses:3 skip/excluded", "forms:3 skip/excluded"]
    );
    let form = plan.entries.iter().find(|e| e.table == "forms").unwrap();
    assert_eq!(form.depends_on.as_deref(), Some("businesses:3"));
    assert!(!plan.has_changes());
}

#[tokio::test]
async fn deleting_a_parent_deletes_its_children_first() {
    let w = World::new(SHOP, SHOP_TABLES);
    w.baseline().await;
    w.exec(
        STAGING,
        "DELETE FROM form_fields WHERE form_id = 1; DELETE FROM forms WHERE id = 1;",
    );
    let plan = w.plan(&common::ids(&["forms:1"])).await;
    assert_eq!(
        common::summary(&plan),
        ["forms:1 delete", "form_fields:1 delete", "form_fields:2 delete"]
    );
    let before = w.dump(PRODUCTION);
    let p = w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(p.counts.delete, 3);
    no_foreign_key_violations(&w, PRODUCTION);
    w.revert(&p.id, false).await.unwrap();
    assert_eq!(w.dump(PRODUCTION), before);
}

// ---- revert refuses when rows changed since --------------------------------------

#[tokio::test]
async fn revert_refuses_rows_changed_since_unless_forced() {
    let w = World::new(ITEMS, ITEM_TABLES);
    w.baseline().await;
    let before = w.dump(PRODUCTION);
    w.exec(
        STAGING,
        "UPDATE items SET name = 'one!' WHERE id = 1; INSERT INTO items VALUES (3, 'three', 3, 0);",
    );
    let p = w.promote(&w.plan_all().await, false).await.unwrap().unwrap();
    w.exec(PRODUCTION, "UPDATE items SET name = 'edited after' WHERE id = 1");

    let bytes = w.bytes(PRODUCTION);
    let err = w.revert(&p.id, false).await.unwrap_err();
    assert!(matches!(err.inner(), Error::Blocked(_)), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    assert!(err.to_string().contains("items:1 (column name)"), "{err}");
    assert!(w.bytes(PRODUCTION) == bytes, "a refused revert writes nothing");

    w.revert(&p.id, true).await.unwrap();
    assert_eq!(w.dump(PRODUCTION), before);
    // A promotion is reverted once.
    let again = w.revert(&p.id, false).await.unwrap_err();
    assert!(matches!(again.inner(), Error::Blocked(_)), "{again:?}");
}

// ---- more rows than one batch ------------------------------------------------------

/// Thousands of rows cross every batch boundary: scan batches, classify
/// batches, fetch chunks and `--where` key chunks.
#[tokio::test]
async fn thousands_of_rows_promote_and_revert() {
    let w = World::new(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, icon BLOB);",
        "[tables.items]\n",
    );
    w.exec(
        STAGING,
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
         INSERT INTO items SELECT i, 'row ' || i || ' 🦀', i, randomblob(i % 5) FROM s;",
    );
    w.copy_staging_to_production();
    assert_eq!(w.baseline().await.recorded, 3000);
    w.exec(
        STAGING,
        "UPDATE items SET n = n + 1 WHERE id % 3 = 0;
         DELETE FROM items WHERE id % 7 = 0;
         WITH RECURSIVE s(i) AS (SELECT 3001 UNION ALL SELECT i + 1 FROM s WHERE i < 3700)
         INSERT INTO items SELECT i, 'new ' || i, i, NULL FROM s;",
    );
    let (updated, deleted) = (
        (1..=3000).filter(|i| i % 3 == 0 && i % 7 != 0).count() as u64,
        (1..=3000).filter(|i| i % 7 == 0).count() as u64,
    );
    let plan = w.plan_all().await;
    let counts = plan.counts();
    assert_eq!((counts.insert, counts.update, counts.delete), (700, updated, deleted));

    // The same rows through a predicate.
    let by_where = w
        .plan(&common::wheres(&["items:id % 3 = 0 OR id % 7 = 0 OR id > 3000"]))
        .await;
    assert_eq!(common::summary(&by_where), common::summary(&plan));

    let before = (w.dump(PRODUCTION), w.sync(PRODUCTION));
    let p = w.promote(&plan, false).await.unwrap().unwrap();
    assert_eq!(p.counts.changes(), 700 + updated + deleted);
    assert_eq!(w.dump(PRODUCTION), w.dump(STAGING));
    assert!(w.plan_all().await.entries.is_empty());
    w.revert(&p.id, false).await.unwrap();
    assert_eq!((w.dump(PRODUCTION), w.sync(PRODUCTION)), before);
}
