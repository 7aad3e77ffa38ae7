//! Table and column names with capitals, spaces and reserved words: the one
//! dialect module quotes every identifier, so they promote, update, delete
//! and revert like any other (references, ignored and stamped columns and
//! a generated key included).

use ferry_core::plan::Action;
use ferry_core::selection::{parse_id, Selection};

use super::support::{pair_name, summary, texts, Eng, World};

fn schema(eng: Eng) -> String {
    let q = |s: &str| eng.q(s);
    let (int, text, serial, ts) = match eng {
        Eng::Sqlite => ("INTEGER", "TEXT", "INTEGER PRIMARY KEY", "TEXT"),
        Eng::Postgres => ("integer", "text", "serial PRIMARY KEY", "timestamptz"),
        Eng::Mysql => ("int", "varchar(200)", "int AUTO_INCREMENT PRIMARY KEY", "datetime(6)"),
    };
    format!(
        "CREATE TABLE {group} ({id} {int} PRIMARY KEY, {select} {text}, {order_by} {int});
         CREATE TABLE {items} ({item_id} {serial}, {select} {text}, {group} {int} REFERENCES {group} ({id}),
             {from} {text}, {where} {int}, {updated} {ts}, {key} {text});",
        group = q("Group"),
        id = q("Id"),
        select = q("Select"),
        order_by = q("Order By"),
        items = q("Order Items"),
        item_id = q("Item Id"),
        from = q("From"),
        where = q("Where"),
        updated = q("Updated At"),
        key = q("KEY"),
    )
}

const TABLES: &str = r#"
[tables."Group"]
key = ["Id"]

[tables."Order Items"]
key = ["Item Id"]
references = { "Group" = "Group" }
ignore = ["Where"]
stamp = { "Updated At" = "now" }
"#;

async fn quoted(from: Eng, to: Eng) {
    let name = pair_name(from, to);
    let test = format!("identifiers::{name}");
    let Some(w) = World::new(
        &test,
        &[("staging", from), ("production", to)],
        |_, e| schema(e),
        TABLES,
    )
    .await
    else {
        return;
    };
    let src = w.db("staging");
    let dst = w.db("production");
    let (q, qt) = (|s: &str| from.q(s), |s: &str| to.q(s));
    src.exec(&format!(
        "INSERT INTO {g} ({id}, {sel}, {ob}) VALUES (1, 'select * from \"x\"', 2), (2, 'b', 1);
         INSERT INTO {i} ({iid}, {sel}, {g}, {fr}, {wh}, {k}) VALUES
             (10, 'ten', 1, 'a; DROP TABLE x', 5, 'K'), (11, 'eleven', 2, 'b', 6, NULL), (12, 'twelve', NULL, 'c', 7, 'k');",
        g = q("Group"),
        id = q("Id"),
        sel = q("Select"),
        ob = q("Order By"),
        i = q("Order Items"),
        iid = q("Item Id"),
        fr = q("From"),
        wh = q("Where"),
        k = q("KEY"),
    ))
    .await;

    // One item by key: its group comes along.
    let selection = Selection {
        ids: vec![parse_id("Order Items:10").expect("--id")],
        ..Selection::default()
    };
    let plan = w.plan("staging", "production", &selection).await;
    assert_eq!(
        summary(&plan),
        ["Group:1 insert", "Order Items:10 insert"],
        "{name}: the referenced group is pulled in"
    );
    w.promote("staging", "production", &plan).await.expect("promoted");
    let (plan, first) = w.promote_all("staging", "production").await;
    assert_eq!(
        summary(&plan),
        ["Group:2 insert", "Order Items:11 insert", "Order Items:12 insert"],
        "{name}"
    );
    let first = first.expect("promoted");
    let after = w.plan("staging", "production", &Selection::default()).await;
    assert!(after.entries.is_empty(), "{name}: {:?}", summary(&after));

    let pair = w.pair("staging", "production").await;
    let cols = ["Item Id", "Select", "Group", "From", "Where", "KEY"];
    assert_eq!(
        texts(&*pair.target, "Order Items", &cols).await,
        [
            "10|ten|1|a; DROP TABLE x|NULL|K",
            "11|eleven|2|b|NULL|NULL",
            "12|twelve|NULL|c|NULL|k"
        ],
        "{name}: copied, the ignored column left alone"
    );
    let stamped = dst
        .int(&format!(
            "SELECT count(*) FROM {} WHERE {} IS NOT NULL",
            qt("Order Items"),
            qt("Updated At")
        ))
        .await;
    assert_eq!(stamped, 3, "{name}: the stamped column is set");

    // Update and delete through quoted names, then revert them.
    src.exec(&format!(
        "UPDATE {i} SET {sel} = 'TEN' WHERE {iid} = 10; DELETE FROM {i} WHERE {iid} = 12;",
        i = q("Order Items"),
        sel = q("Select"),
        iid = q("Item Id"),
    ))
    .await;
    let (plan, second) = w.promote_all("staging", "production").await;
    let actions: Vec<Action> = plan.entries.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [Action::Update, Action::Delete],
        "{name}: {:?}",
        summary(&plan)
    );
    assert_eq!(plan.entries[0].fields.len(), 1, "{name}: only `Select` changed");
    let second = second.expect("promoted");
    assert_eq!(
        texts(&*pair.target, "Order Items", &["Item Id", "Select"]).await,
        ["10|TEN", "11|eleven"],
        "{name}"
    );
    w.revert(&second.id).await;
    assert_eq!(
        texts(&*pair.target, "Order Items", &["Item Id", "Select"]).await,
        ["10|ten", "11|eleven", "12|twelve"],
        "{name}: reverted"
    );
    w.revert(&first.id).await;
    assert_eq!(
        texts(&*pair.target, "Order Items", &["Item Id"]).await,
        ["10"],
        "{name}: only the first, separate promotion remains"
    );
    assert_eq!(
        texts(&*pair.target, "Group", &["Id", "Select", "Order By"]).await,
        ["1|select * from \"x\"|2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_postgres() {
    quoted(Eng::Postgres, Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_mariadb() {
    quoted(Eng::Mysql, Eng::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres() {
    quoted(Eng::Sqlite, Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_mariadb() {
    quoted(Eng::Postgres, Eng::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_sqlite() {
    quoted(Eng::Mysql, Eng::Sqlite).await;
}
