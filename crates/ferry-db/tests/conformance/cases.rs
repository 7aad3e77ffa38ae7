//! The checks, each generic over the backend (see `main.rs`).

use std::ops::Bound;
use std::time::Duration;

use ferry_core::schema::{ForeignKey, TableSchema};
use ferry_core::value::{convert, LogicalType, Value};
use ferry_db::raw::is_true;
use ferry_db::{
    meta, Capabilities, DbErrorKind, FetchRequest, KeyBlock, Predicate, Read, Row, ScanRequest, Store, Txn, BATCH_ROWS,
};

use crate::support::{Backend, Db};

// The checks of Ferry's own records through `Records` live in their own file.
pub use crate::cases_records::{
    records_branches, records_by_status, records_damaged, records_empty, records_paging, records_round_trip,
};

fn s(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn text(t: &str) -> Value {
    Value::Text(t.to_string())
}

/// A database with the fixture, and a store on it; `None` after a SKIP line.
async fn setup(b: Backend, test: &str) -> Option<(Db, std::sync::Arc<dyn Store>)> {
    let db = Db::create(b, test).await?;
    let store = db.open("conf").await;
    Some((db, store))
}

async fn schema(store: &dyn Store, table: &str) -> TableSchema {
    store
        .table_schema(table)
        .await
        .expect("table_schema")
        .unwrap_or_else(|| panic!("table {table} is missing"))
}

/// Rows (values in `columns` order) converted to the types of `table`'s
/// columns, as the engine compares them: SQLite keeps a boolean as an
/// integer and a NUMERIC as a REAL, the servers do not; a MongoDB field is
/// Extended JSON. Applied to rows read and to the values a check expects
/// or asks for (a key, a predicate's bounds), as the engine converts them.
/// A field no document holds yet has the table's type of open fields.
async fn normalized(store: &dyn Store, table: &str, columns: &[String], rows: Vec<Row>) -> Vec<Row> {
    let schema = schema(store, table).await;
    rows.into_iter()
        .map(|row| {
            row.iter()
                .zip(columns)
                .map(|(v, c)| {
                    let ty = schema
                        .column(c)
                        .map(|c| c.ty.clone())
                        .or_else(|| schema.open_fields.clone())
                        .unwrap_or_else(|| panic!("{table}.{c}: no such column"));
                    convert(v, &ty).unwrap_or_else(|e| panic!("{table}.{c}: {e}"))
                })
                .collect()
        })
        .collect()
}

fn by_key(table: &str, columns: &[&str], key: &[&str], values: Vec<Row>) -> FetchRequest {
    FetchRequest {
        table: table.into(),
        columns: s(columns),
        match_columns: s(key),
        values,
        flag: None,
        filter: None,
        fixed: Vec::new(),
    }
}

/// `values` of `columns` of `table` in the types of its columns (see [`normalized`]).
async fn typed(store: &dyn Store, table: &str, columns: &[&str], values: Vec<Row>) -> Vec<Row> {
    normalized(store, table, &s(columns), values).await
}

/// One value of `table.column` in the column's type.
async fn typed1(store: &dyn Store, table: &str, column: &str, v: Value) -> Value {
    typed(store, table, &[column], vec![vec![v]]).await.remove(0).remove(0)
}

/// A fetch of `columns` by `key`, its values in the key columns' types.
async fn by_key_typed(
    store: &dyn Store,
    table: &str,
    columns: &[&str],
    key: &[&str],
    values: Vec<Row>,
) -> FetchRequest {
    by_key(table, columns, key, typed(store, table, key, values).await)
}

async fn sorted_fetch(store: &dyn Store, req: FetchRequest) -> Vec<Row> {
    let (table, columns) = (req.table.clone(), req.columns.clone());
    let rows = store.fetch(req).await.expect("fetch");
    let mut rows = normalized(store, &table, &columns, rows).await;
    rows.sort_by_key(|r| format!("{r:?}"));
    rows
}

const ITEM: [&str; 7] = ["id", "parent_id", "label", "price", "active", "data", "note"];

/// Two parents and three items, committed through the store itself.
async fn seed(store: &dyn Store) {
    let mut txn = store.begin().await.expect("begin");
    txn.insert(
        "parent",
        &s(&["id", "name"]),
        &[vec![Value::Int(1), text("one")], vec![Value::Int(2), text("two")]],
    )
    .await
    .expect("insert parents");
    txn.insert("item", &s(&ITEM), &items()).await.expect("insert items");
    txn.commit().await.expect("commit");
}

fn item(id: i64, parent: i64, label: &str, price: &str, active: bool) -> Row {
    vec![
        Value::Int(id),
        Value::Int(parent),
        text(label),
        Value::Decimal(price.into()), // normalized: `1.5`, not `1.50`
        Value::Bool(active),
        Value::Bytes(vec![0, 0xff, id as u8]),
        Value::Null,
    ]
}

fn items() -> Vec<Row> {
    vec![
        item(1, 1, "alpha", "1.5", true),
        item(2, 1, "beta", "20", false),
        item(3, 2, "alpha", "0.25", true),
    ]
}

async fn all_items(store: &dyn Store) -> Vec<Row> {
    let req = ScanRequest {
        table: "item".into(),
        columns: s(&ITEM),
        order_by: s(&["id"]),
        filter: None,
        flag: None,
        descending: false,
        limit: None,
    };
    let mut rx = store.scan(req).await.expect("scan");
    let mut rows = Vec::new();
    while let Some(batch) = rx.recv().await {
        rows.extend(batch.expect("batch"));
    }
    normalized(store, "item", &s(&ITEM), rows).await
}

/// [`items`] in the types of `item`'s columns.
async fn typed_items(store: &dyn Store, rows: Vec<Row>) -> Vec<Row> {
    typed(store, "item", &ITEM, rows).await
}

/// Columns in order with their logical types, nullability, generated keys,
/// the primary key, unique constraints and foreign keys.
pub async fn table_schema(b: Backend) {
    let Some((_db, store)) = setup(b, "table_schema").await else {
        return;
    };
    let parent = schema(&*store, "parent").await;
    if parent.open_fields.is_some() {
        // A table of open fields (a MongoDB collection) declares no typed
        // columns, generated keys, unique constraints or foreign keys: its
        // schema is the union of its documents' fields (`cases_mongo`).
        println!("N/A table_schema::{b:?}: open fields, no declared columns");
        return;
    }
    assert_eq!(parent.primary_key, s(&["id"]));
    assert_eq!(parent.unique, vec![s(&["name"])]);
    let id = parent.column("id").expect("id");
    assert!(
        id.auto_increment && id.has_default,
        "{b:?}: parent.id is generated: {id:?}"
    );

    let item = schema(&*store, "item").await;
    let names: Vec<&str> = item.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ITEM);
    let logical: Vec<LogicalType> = item.columns.iter().map(|c| c.ty.logical).collect();
    use LogicalType::*;
    assert_eq!(logical, [Int, Int, Text, Decimal, Bool, Bytes, Text], "{b:?}");
    assert!(!item.column("label").expect("label").nullable);
    assert!(item.column("note").expect("note").nullable);
    assert!(
        !item.column("id").expect("id").auto_increment,
        "{b:?}: item.id is not generated"
    );
    assert_eq!(item.primary_key, s(&["id"]));
    assert_eq!(item.unique, vec![s(&["parent_id", "label"])]);
    assert_eq!(
        item.foreign_keys,
        vec![ForeignKey {
            columns: s(&["parent_id"]),
            ref_table: "parent".into(),
            ref_columns: s(&["id"]),
        }]
    );

    let word = schema(&*store, "word").await;
    assert_eq!(word.primary_key, s(&["k", "n"]), "{b:?}: key columns in key order");
    assert!(store.table_schema("missing").await.expect("no error").is_none());
}

/// The rows of `word` of the scans: `(k, n, v)`, `None` for NULL.
const WORDS: [(&str, i64, Option<&str>); 6] = [
    ("a", 2, Some("x")),
    ("\u{e9}", 1, Some("y")),
    ("B", 1, Some("same")),
    ("ab", 1, None),
    ("Z", 1, Some("same")),
    ("a", 1, Some("z")),
];

/// Puts [`WORDS`] into `word`.
async fn put_words(db: &Db) {
    let rows: Vec<(String, i64, Option<String>)> = WORDS
        .iter()
        .map(|(k, n, v)| (k.to_string(), *n, v.map(str::to_string)))
        .collect();
    db.words(&rows).await;
}

/// The keys of `word` in Ferry's order: text by bytes, then the number.
const WORD_ORDER: [(&str, i64); 6] = [("B", 1), ("Z", 1), ("a", 1), ("a", 2), ("ab", 1), ("\u{e9}", 1)];

fn word_scan(filter: Option<&str>, flag: Option<&str>) -> ScanRequest {
    ScanRequest {
        table: "word".into(),
        columns: s(&["k", "n", "v"]),
        order_by: s(&["k", "n"]),
        filter: filter.map(Predicate::native),
        flag: flag.map(Predicate::native),
        descending: false,
        limit: None,
    }
}

/// The flag `n = 2` of the scans: SQL text, or, for a store without SQL
/// predicates (a `dir:` folder, MongoDB), the same rows as a structural
/// predicate, its value in the column's type.
async fn n_is_2(store: &dyn Store) -> Option<Predicate> {
    Some(if store.capabilities().sql_predicates {
        Predicate::native("n = 2")
    } else {
        Predicate::In {
            columns: s(&["n"]),
            values: vec![vec![typed1(store, "word", "n", Value::Int(2)).await]],
        }
    })
}

/// Says that a check cannot apply to a store with capabilities `caps`
/// (never by backend name: a store says what it can do), and why; `true`
/// when so.
fn not_applicable(b: Backend, caps: Capabilities, check: &str) -> bool {
    let why = match check {
        "generated_ids" if !caps.generated_ids => "the store generates no key values: rows go in with their keys",
        "read_only_sessions" if !caps.sql_predicates => {
            "the store runs no SQL, so it has no reading session to refuse writes"
        }
        _ => return false,
    };
    println!("N/A {check}::{b:?}: {why}");
    true
}

/// The key `(k, n)` of a `word` row: text and integer, or the same as
/// Extended JSON (a MongoDB field).
fn word_key(row: &[Value]) -> (String, i64) {
    match (&row[0], &row[1]) {
        (Value::Text(k), Value::Int(n)) => (k.clone(), *n),
        (Value::Json(k), Value::Json(n)) => match (k.value().as_str(), n.value().as_i64()) {
            (Some(k), Some(n)) => (k.to_string(), n),
            _ => panic!("unexpected key {k} {n}"),
        },
        other => panic!("unexpected key {other:?}"),
    }
}

/// Scans come in the byte order of their keys, whatever the column's
/// collation; a filter keeps the rows it matches; a flag column says
/// which rows match its predicate.
pub async fn ordered_scans(b: Backend) {
    let Some((db, store)) = setup(b, "ordered_scans").await else {
        return;
    };
    put_words(&db).await;
    let mut req = word_scan(None, None);
    req.flag = n_is_2(&*store).await;
    let mut rx = store.scan(req).await.expect("scan");
    let mut rows = Vec::new();
    while let Some(batch) = rx.recv().await {
        rows.extend(batch.expect("batch"));
    }
    let keys: Vec<(String, i64)> = rows.iter().map(|r| word_key(r)).collect();
    let want: Vec<(String, i64)> = WORD_ORDER.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(keys, want, "{b:?}: byte order of keys");
    let flags: Vec<bool> = rows.iter().map(|r| is_true(r.get(3))).collect();
    assert_eq!(
        flags,
        [false, false, false, true, false, false],
        "{b:?}: the flag column"
    );
    assert_eq!(rows[0][2], typed1(&*store, "word", "v", text("same")).await);
    assert_eq!(rows[4][2], Value::Null);
    if !store.capabilities().sql_predicates {
        // The rest filters with SQL text, which a store without SQL
        // predicates refuses (checked in `capabilities`); `predicates`
        // filters it structurally (MongoDB's filter documents: `cases_mongo`).
        println!("N/A ordered_scans::{b:?} past the flag: SQL filters");
        return;
    }

    let mut rx = store.scan(word_scan(Some("n = 1"), None)).await.expect("scan");
    let mut n = 0;
    while let Some(batch) = rx.recv().await {
        for row in batch.expect("batch") {
            assert_eq!(row.len(), 3, "no flag column was asked for");
            assert_eq!(row[1], Value::Int(1));
            n += 1;
        }
    }
    assert_eq!(n, 5, "{b:?}: the filter keeps its rows");

    let bad = store.scan(word_scan(Some("no_such_column = 1"), None)).await;
    let e = match bad {
        Err(e) => e,
        Ok(mut rx) => match rx.recv().await {
            Some(Err(e)) => e,
            other => panic!(
                "{b:?}: a bad predicate is an error, got {:?}",
                other.map(|r| r.map(|v| v.len()))
            ),
        },
    };
    assert_eq!(e.kind, DbErrorKind::Query);
    assert_eq!(e.env, "conf");
}

/// A scan larger than a batch arrives in batches of at most
/// [`BATCH_ROWS`], still in key order across them.
pub async fn scans_in_batches(b: Backend) {
    let Some((db, store)) = setup(b, "scans_in_batches").await else {
        return;
    };
    let total = 2 * BATCH_ROWS + 300;
    let rows: Vec<(String, i64, Option<String>)> = (0..total)
        .map(|i| (format!("k{:05}", total - i), i as i64, None))
        .collect();
    db.words(&rows).await;
    let mut rx = store.scan(word_scan(None, None)).await.expect("scan");
    let (mut batches, mut keys) = (0, Vec::new());
    while let Some(batch) = rx.recv().await {
        let batch = batch.expect("batch");
        assert!(
            !batch.is_empty() && batch.len() <= BATCH_ROWS,
            "{b:?}: batch of {}",
            batch.len()
        );
        batches += 1;
        keys.extend(batch.iter().map(|r| word_key(r)));
    }
    assert_eq!(keys.len(), total);
    assert!(batches >= 3, "{b:?}: {batches} batches");
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{b:?}: keys in order");
}

/// A raw scan gives the same keys and flags as a scan, equal images for
/// equal values, and images that decode (when the store says how) into
/// the values a scan reads.
pub async fn raw_scans(b: Backend) {
    let Some((db, store)) = setup(b, "raw_scans").await else {
        return;
    };
    put_words(&db).await;
    let mut req = word_scan(None, None);
    req.flag = n_is_2(&*store).await;
    let mut rx = store.scan_raw(req).await.expect("scan_raw");
    let (mut keys, mut flags, mut images) = (Vec::new(), Vec::new(), Vec::new());
    let mut decoded = Vec::new();
    while let Some(batch) = rx.recv().await {
        let mut batch = batch.expect("batch");
        for i in 0..batch.len() {
            flags.push(batch.flag(i));
            images.push(batch.image(i).to_vec());
            decoded.push(rx.decode(batch.image(i)));
            keys.push(word_key(&batch.take_key(i)));
        }
        rx.recycle(batch);
    }
    let want: Vec<(String, i64)> = WORD_ORDER.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(keys, want, "{b:?}: raw scans in byte order of keys");
    assert_eq!(flags, [false, false, false, true, false, false]);
    assert_eq!(images[0], images[1], "{b:?}: B and Z hold the same `v`");
    assert_ne!(images[0], images[2], "{b:?}: `same` and `z` differ");
    assert_ne!(images[4], images[2], "{b:?}: NULL and `z` differ");
    let values = [text("same"), text("same"), text("z"), text("x"), Value::Null, text("y")];
    let values = typed(&*store, "word", &["v"], values.into_iter().map(|v| vec![v]).collect()).await;
    let values: Vec<Value> = values.into_iter().flatten().collect();
    for (i, d) in decoded.into_iter().enumerate() {
        if let Some(d) = d {
            assert_eq!(d, vec![values[i].clone()], "{b:?}: row {i} decodes as scanned");
        }
    }
    // A second reader sends the same bytes.
    let other = db.open("conf").await;
    let mut rx = other.scan_raw(word_scan(None, None)).await.expect("scan_raw");
    let mut again = Vec::new();
    while let Some(batch) = rx.recv().await {
        let batch = batch.expect("batch");
        again.extend((0..batch.len()).map(|i| batch.image(i).to_vec()));
    }
    assert_eq!(again, images);
}

/// Fetches by one or several columns, with fixed columns, a flag and a
/// filter; values that match nothing are no error.
pub async fn fetch_by_values(b: Backend) {
    let Some((_db, store)) = setup(b, "fetch_by_values").await else {
        return;
    };
    seed(&*store).await;
    let all = typed_items(&*store, items()).await;
    let ids = |ids: &[i64]| -> Vec<Row> { ids.iter().map(|i| vec![Value::Int(*i)]).collect() };
    let want_ids = |want: &[i64]| typed(&*store, "item", &["id"], ids(want));
    let got = sorted_fetch(
        &*store,
        by_key_typed(&*store, "item", &ITEM, &["id"], ids(&[1, 3, 99])).await,
    )
    .await;
    assert_eq!(got, vec![all[0].clone(), all[2].clone()], "{b:?}");

    let pairs = vec![vec![Value::Int(1), text("beta")], vec![Value::Int(2), text("beta")]];
    let req = by_key_typed(&*store, "item", &["id"], &["parent_id", "label"], pairs).await;
    let got = sorted_fetch(&*store, req).await;
    assert_eq!(got, want_ids(&[2]).await, "{b:?}: by two columns");

    let labels = vec![vec![text("alpha")], vec![text("beta")]];
    let mut req = by_key_typed(&*store, "item", &["id"], &["label"], labels).await;
    req.fixed = vec![(
        "parent_id".into(),
        typed1(&*store, "item", "parent_id", Value::Int(1)).await,
    )];
    let got = sorted_fetch(&*store, req).await;
    assert_eq!(got, want_ids(&[1, 2]).await, "{b:?}: with a fixed column");

    let mut req = by_key_typed(&*store, "item", &["id"], &["id"], ids(&[1, 2, 3])).await;
    if !store.capabilities().sql_predicates {
        // The same rows without SQL (a folder, MongoDB).
        req.flag = Some(Predicate::Range {
            columns: s(&["price"]),
            from: Bound::Excluded(vec![typed1(&*store, "item", "price", Value::Decimal("1".into())).await]),
            to: Bound::Unbounded,
        });
        req.filter = Some(Predicate::In {
            columns: s(&["parent_id"]),
            values: vec![vec![typed1(&*store, "item", "parent_id", Value::Int(1)).await]],
        });
    } else {
        req.flag = Some(Predicate::native("price > 1"));
        req.filter = Some(Predicate::native("parent_id = 1"));
    }
    let mut rows = store.fetch(req).await.expect("fetch");
    rows.sort_by_key(|r| format!("{r:?}"));
    let flags: Vec<(Value, bool)> = rows.iter().map(|r| (r[0].clone(), is_true(r.get(1)))).collect();
    let want: Vec<(Value, bool)> = want_ids(&[1, 2])
        .await
        .into_iter()
        .map(|r| (r[0].clone(), true))
        .collect();
    assert_eq!(flags, want, "{b:?}: flag and filter");

    let none = store
        .fetch(by_key("item", &ITEM, &["id"], Vec::new()))
        .await
        .expect("fetch");
    assert!(none.is_empty());
}

/// A fetch of more keys than one statement holds, which the SQL stores
/// read in pieces, several at once (SQLite in two halves, on two threads):
/// every row comes back once, and an error in any piece fails the fetch.
pub async fn fetch_in_pieces(b: Backend) {
    let Some((_db, store)) = setup(b, "fetch_in_pieces").await else {
        return;
    };
    seed(&*store).await;
    let more: Vec<Row> = (10..1310)
        .map(|id| item(id, 1 + id % 2, &format!("item {id}"), "2", id % 3 == 0))
        .collect();
    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &s(&ITEM), &more).await.expect("insert items");
    txn.commit().await.expect("commit");
    // Keys 1 to 1,400 in a shuffled order: 1,303 exist.
    let mut keys: Vec<i64> = (1..=1400).collect();
    keys.sort_by_key(|k| (k * 7919) % 1400);
    let values = keys.iter().map(|k| vec![Value::Int(*k)]).collect();
    let req = by_key_typed(&*store, "item", &["id"], &["id"], values).await;
    let rows = store.fetch(req.clone()).await.expect("fetch");
    let mut got: Vec<i64> = rows
        .iter()
        .map(|r| r[0].display_text().parse().expect("an integer id"))
        .collect();
    got.sort_unstable();
    let want: Vec<i64> = [1, 2, 3].into_iter().chain(10..1310).collect();
    assert_eq!(got, want, "{b:?}: each row once");
    if store.capabilities().sql_predicates {
        let mut bad = req;
        bad.flag = Some(Predicate::native("no_such_column > 1"));
        let e = store.fetch(bad).await.expect_err("a flag naming no column");
        assert_eq!((e.kind, e.env.as_str()), (DbErrorKind::Query, "conf"), "{b:?}");
    }
}

/// Deletes the items of `ids` that are under parent 2 (`delete_in`, the
/// parent a fixed column).
async fn delete_under_parent_2(store: &dyn Store, txn: &mut dyn Txn, ids: &[Value]) {
    let parent = typed1(store, "item", "parent_id", Value::Int(2)).await;
    txn.delete_in("item", &[("parent_id".into(), parent)], "id", ids)
        .await
        .expect("delete_in");
}

/// Insert, update, upsert, delete and delete_in, committed.
pub async fn writes(b: Backend) {
    let Some((_db, store)) = setup(b, "writes").await else {
        return;
    };
    seed(&*store).await;
    let mut txn = store.begin().await.expect("begin");
    let id = |i: i64| typed(&*store, "item", &["id"], vec![vec![Value::Int(i)]]);
    let (id1, id2) = (id(1).await.remove(0), id(2).await.remove(0));
    txn.update(
        "item",
        &s(&["id"]),
        &s(&["label", "note"]),
        &[
            (id1.clone(), vec![text("first"), text("n1")]),
            (id2, vec![text("second"), Value::Null]),
        ],
    )
    .await
    .expect("update");
    txn.upsert(
        "item",
        &s(&["id"]),
        &s(&ITEM),
        &[item(3, 2, "third", "3", false), item(4, 2, "fourth", "4", true)],
    )
    .await
    .expect("upsert");
    txn.delete("item", &s(&["id"]), &[id1]).await.expect("delete");
    txn.insert("item", &s(&ITEM), &[item(5, 1, "fifth", "5", true)])
        .await
        .expect("insert");
    let gone: Vec<Value> = typed(
        &*store,
        "item",
        &["id"],
        vec![vec![Value::Int(4)], vec![Value::Int(5)], vec![Value::Int(99)]],
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    delete_under_parent_2(&*store, txn.as_mut(), &gone).await;
    txn.commit().await.expect("commit");

    let mut second = item(2, 1, "second", "20", false);
    second[6] = Value::Null;
    let want = vec![second, item(3, 2, "third", "3", false), item(5, 1, "fifth", "5", true)];
    assert_eq!(all_items(&*store).await, typed_items(&*store, want).await, "{b:?}");
}

/// The seed, and items 10 to 1,309 (under parents 1 and 2 in turn),
/// committed: more rows than one statement of a chunked write holds.
async fn seed_many(store: &dyn Store) {
    seed(store).await;
    let many: Vec<Row> = (10..1310)
        .map(|id| item(id, 1 + id % 2, &format!("item {id}"), "2", true))
        .collect();
    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &s(&ITEM), &many).await.expect("insert items");
    txn.commit().await.expect("commit");
}

/// Writes and a locked read of thousands of rows in one transaction, each
/// more than one statement holds (a store may read a statement's rows
/// ahead while it runs the one before, on other connections): every row
/// is read once and written as asked, and the transaction sees its own
/// writes.
pub async fn writes_in_chunks(b: Backend) {
    let Some((_db, store)) = setup(b, "writes_in_chunks").await else {
        return;
    };
    seed_many(&*store).await;
    // In a shuffled order: a statement's rows are not a range of keys.
    let shuffled = |ids: std::ops::Range<i64>| {
        let mut ids: Vec<i64> = ids.collect();
        ids.sort_by_key(|k| (k * 7919) % 1409);
        ids
    };
    let ids = |ids: &[i64]| {
        typed(
            &*store,
            "item",
            &["id"],
            ids.iter().map(|i| vec![Value::Int(*i)]).collect(),
        )
    };

    let mut txn = store.begin().await.expect("begin");
    let locked = txn
        .fetch_for_update(by_key("item", &["id"], &["id"], ids(&shuffled(1..1400)).await))
        .await
        .expect("fetch_for_update");
    let mut got: Vec<String> = locked.iter().map(|r| r[0].display_text()).collect();
    got.sort_by_key(|k| k.parse::<i64>().expect("an integer id"));
    let want: Vec<String> = [1, 2, 3].into_iter().chain(10..1310).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "{b:?}: each locked row once");

    // Ids 200 to 1,399 written whole: 1,110 over existing rows, 90 new.
    let upserted: Vec<Row> = shuffled(200..1400)
        .into_iter()
        .map(|id| item(id, 1 + id % 2, &format!("upserted {id}"), "3", false))
        .collect();
    txn.upsert("item", &s(&["id"]), &s(&ITEM), &upserted)
        .await
        .expect("upsert");
    // Ids 10 to 1,259 relabelled.
    let relabel: Vec<(Row, Row)> = ids(&shuffled(10..1260))
        .await
        .into_iter()
        .map(|k| {
            let label = format!("new {}", k[0].display_text());
            (k, vec![text(&label)])
        })
        .collect();
    txn.update("item", &s(&["id"]), &s(&["label"]), &relabel)
        .await
        .expect("update");
    // Ids 10 to 299 deleted by key; of ids 300 to 1,399, those under
    // parent 2 (the odd ones).
    txn.delete("item", &s(&["id"]), &ids(&shuffled(10..300)).await)
        .await
        .expect("delete");
    let under_2: Vec<Value> = ids(&shuffled(300..1400)).await.into_iter().flatten().collect();
    delete_under_parent_2(&*store, txn.as_mut(), &under_2).await;
    let seen = txn
        .fetch(by_key("item", &["id"], &["id"], ids(&shuffled(1..1400)).await))
        .await
        .expect("fetch in the transaction");
    txn.commit().await.expect("commit");

    let mut want = items();
    for id in (300..1400).filter(|id| id % 2 == 0) {
        let label = if id < 1260 { "new" } else { "upserted" };
        want.push(item(id, 1, &format!("{label} {id}"), "3", false));
    }
    assert_eq!(seen.len(), want.len(), "{b:?}: the transaction sees its writes");
    assert_eq!(all_items(&*store).await, typed_items(&*store, want).await, "{b:?}");
}

/// A schema change asked for while a write transaction holds a table waits
/// for the transaction, and the transaction does not wait for it: its writes
/// of many rows (which a store may read ahead on connections of its own,
/// whose reads of the table queue behind the schema change) and its commit
/// go through, and then the change runs. The check applies to a database
/// server: SQLite's transaction reads through no other connection (its one
/// writer holds the whole file), and a folder or MongoDB has no schema to
/// change.
pub async fn writes_beside_a_waiting_schema_change(b: Backend) {
    let Some((db, store)) = setup(b, "writes_beside_a_waiting_schema_change").await else {
        return;
    };
    if store.as_sql().is_none() || b == Backend::Sqlite {
        return;
    }
    seed_many(&*store).await;
    let keys = typed(
        &*store,
        "item",
        &["id"],
        (1..1310).map(|i| vec![Value::Int(i)]).collect(),
    )
    .await;
    let relabel = |label: &str| -> Vec<(Row, Row)> {
        keys.iter()
            .map(|k| (k.clone(), vec![text(&format!("{label} {}", k[0].display_text()))]))
            .collect()
    };

    let mut txn = store.begin().await.expect("begin");
    // The transaction holds the table from its first write.
    txn.update("item", &s(&["id"]), &s(&["label"]), &relabel("first")[..1])
        .await
        .expect("first update");
    let committed = std::sync::OnceLock::new();
    let alter = async {
        db.exec("ALTER TABLE item ADD COLUMN extra INTEGER").await;
        std::time::Instant::now()
    };
    let writes = async {
        // Time for the schema change to be asked for, and wait.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        txn.fetch_for_update(by_key("item", &["id"], &["id"], keys.clone()))
            .await
            .expect("fetch_for_update");
        txn.update("item", &s(&["id"]), &s(&["label"]), &relabel("new"))
            .await
            .expect("update");
        txn.commit().await.expect("commit");
        let _ = committed.set(std::time::Instant::now());
    };
    let (altered, ()) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        futures_util::future::join(alter, writes),
    )
    .await
    .unwrap_or_else(|_| panic!("{b:?}: the transaction and the schema change waited for each other"));
    let committed = *committed.get().expect("committed");
    assert!(
        altered >= committed,
        "{b:?}: the schema change waited for the transaction"
    );
    let labels: Vec<String> = all_items(&*store).await.iter().map(|r| r[2].display_text()).collect();
    assert_eq!(labels.len(), 1303, "{b:?}");
    assert!(
        labels.iter().all(|l| l.starts_with("new ")),
        "{b:?}: {:?}",
        &labels[..3]
    );
}

/// A write refused by a constraint names the table and the failing row.
pub async fn write_errors_name_the_row(b: Backend) {
    let Some((_db, store)) = setup(b, "write_errors_name_the_row").await else {
        return;
    };
    seed(&*store).await;
    let mut txn = store.begin().await.expect("begin");
    let e = txn
        .insert(
            "item",
            &s(&ITEM),
            &[item(10, 1, "ten", "1", true), item(1, 1, "dup", "1", true)],
        )
        .await
        .expect_err("a duplicate key is refused");
    assert_eq!(e.kind, DbErrorKind::Constraint, "{b:?}: {e}");
    assert_eq!(e.table.as_deref(), Some("item"), "{b:?}: {e}");
    assert_eq!(e.row, Some(1), "{b:?}: {e}");
    assert_eq!(e.env, "conf");
    drop(txn);
    assert_eq!(
        all_items(&*store).await,
        typed_items(&*store, items()).await,
        "{b:?}: nothing was written"
    );
}

/// `insert_returning` gives the generated key; after explicit keys and
/// `advance_generated`, the next generated key is past them.
pub async fn generated_ids(b: Backend) {
    let Some((_db, store)) = setup(b, "generated_ids").await else {
        return;
    };
    if not_applicable(b, store.capabilities(), "generated_ids") {
        return;
    }
    // The fixture's generated key is the integer `parent.id`; a store
    // whose schema does not generate that column (MongoDB generates only
    // `_id`, an ObjectId: `cases_mongo::generated_object_ids`) says so.
    let schema = store.table_schema("parent").await.expect("schema");
    if !schema
        .as_ref()
        .and_then(|t| t.column("id"))
        .is_some_and(|c| c.auto_increment)
    {
        println!(
            "N/A generated_ids::{b:?}: the store does not generate `parent.id` (its generated key is another column)"
        );
        return;
    }
    let mut txn = store.begin().await.expect("begin");
    let name = s(&["name"]);
    let first = txn
        .insert_returning("parent", &name, &vec![text("gen1")], "id")
        .await
        .expect("insert_returning");
    let Value::Int(first) = first else {
        panic!("{b:?}: a generated key is an integer, got {first:?}");
    };
    assert!(first >= 1);
    txn.insert(
        "parent",
        &s(&["id", "name"]),
        &[vec![Value::Int(100), text("explicit")]],
    )
    .await
    .expect("insert");
    txn.advance_generated("parent", "id").await.expect("advance_generated");
    let next = txn
        .insert_returning("parent", &name, &vec![text("gen2")], "id")
        .await
        .expect("insert_returning");
    assert!(matches!(next, Value::Int(n) if n > 100), "{b:?}: {next:?} after 100");
    txn.commit().await.expect("commit");
    let rows = store
        .fetch(by_key("parent", &["name"], &["id"], vec![vec![next]]))
        .await
        .expect("fetch");
    assert_eq!(rows, vec![vec![text("gen2")]]);
}

/// One writer at a time: `try_lock_writer` refuses while another store
/// holds the lock, `lock_writer` waits for it, and dropping the guard
/// releases it. A transaction commits under the lock.
pub async fn writer_locks(b: Backend) {
    let Some((db, a)) = setup(b, "writer_locks").await else {
        return;
    };
    let other = db.open("conf").await;
    let held = a.try_lock_writer().await.expect("try_lock").expect("free");
    assert!(
        other.try_lock_writer().await.expect("try_lock").is_none(),
        "{b:?}: held"
    );
    let waiter = {
        let other = other.clone();
        tokio::spawn(async move { other.lock_writer().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "{b:?}: lock_writer waits");
    let mut txn = a.begin().await.expect("begin");
    txn.insert("parent", &s(&["id", "name"]), &[vec![Value::Int(7), text("locked")]])
        .await
        .expect("insert");
    txn.commit().await.expect("commit under the lock");
    drop(held);
    let theirs = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("lock_writer returns once the lock is free")
        .expect("task")
        .expect("lock_writer");
    assert!(
        a.try_lock_writer().await.expect("try_lock").is_none(),
        "{b:?}: now theirs"
    );
    drop(theirs);
    // A server lock goes with its connection, which the server may see
    // close a moment after the drop.
    let mut again = None;
    for _ in 0..100 {
        again = a.try_lock_writer().await.expect("try_lock");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "{b:?}: released on drop");
}

/// `fetch_for_update` reads what `fetch` reads, inside the transaction.
pub async fn fetch_for_update(b: Backend) {
    let Some((_db, store)) = setup(b, "fetch_for_update").await else {
        return;
    };
    seed(&*store).await;
    let keys = typed(&*store, "item", &["id"], vec![vec![Value::Int(2)], vec![Value::Int(3)]]).await;
    let mut txn = store.begin().await.expect("begin");
    let mut plain = txn
        .fetch(by_key("item", &ITEM, &["id"], keys.clone()))
        .await
        .expect("fetch");
    let mut locked = txn
        .fetch_for_update(by_key("item", &ITEM, &["id"], keys))
        .await
        .expect("fetch_for_update");
    plain.sort_by_key(|r| format!("{r:?}"));
    locked.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(plain.len(), 2);
    assert_eq!(plain, locked, "{b:?}");
    txn.commit().await.expect("commit");
}

/// A transaction sees its own writes; dropped without a commit, it leaves
/// nothing behind.
pub async fn rolled_back_on_drop(b: Backend) {
    let Some((_db, store)) = setup(b, "rolled_back_on_drop").await else {
        return;
    };
    seed(&*store).await;
    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &s(&ITEM), &[item(50, 1, "gone", "1", true)])
        .await
        .expect("insert");
    let keys = typed(
        &*store,
        "item",
        &["id"],
        vec![vec![Value::Int(50)], vec![Value::Int(1)], vec![Value::Int(3)]],
    )
    .await;
    txn.delete("item", &s(&["id"]), &keys[1..2]).await.expect("delete");
    let seen = txn
        .fetch(by_key("item", &["id"], &["id"], keys[..2].to_vec()))
        .await
        .expect("fetch");
    let seen = typed(&*store, "item", &["id"], seen).await;
    assert_eq!(seen, keys[..1].to_vec(), "{b:?}: its own writes");
    drop(txn);
    assert_eq!(
        all_items(&*store).await,
        typed_items(&*store, items()).await,
        "{b:?}: rolled back"
    );
    // The store writes again after a rollback (no lock or connection left over).
    let mut txn = store.begin().await.expect("begin again");
    txn.delete("item", &s(&["id"]), &keys[2..]).await.expect("delete");
    txn.commit().await.expect("commit");
    assert_eq!(all_items(&*store).await.len(), 2);
}

/// SQL a store runs to read cannot write, and says why.
pub async fn read_only_sessions(b: Backend) {
    let Some((_db, store)) = setup(b, "read_only_sessions").await else {
        return;
    };
    if not_applicable(b, store.capabilities(), "read_only_sessions") {
        return;
    }
    seed(&*store).await;
    assert_eq!(
        store
            .as_sql()
            .expect("an SQL store")
            .query_scalar("SELECT 42")
            .await
            .expect("query"),
        Some(Value::Int(42))
    );
    let e = store
        .as_sql()
        .expect("an SQL store")
        .query_scalar("DELETE FROM item")
        .await
        .expect_err("a reading session refuses writes");
    assert_eq!(e.env, "conf");
    assert_eq!(all_items(&*store).await, items(), "{b:?}: nothing was deleted");
}

/// Ferry's own tables: absent until the first write transaction creates
/// them (committed), with the columns `meta` names; a second transaction
/// finds them at the latest version.
pub async fn own_tables(b: Backend) {
    let Some((_db, store)) = setup(b, "own_tables").await else {
        return;
    };
    store.ping().await.expect("ping");
    assert!(!store.has_meta().await.expect("has_meta"));
    assert!(store.table_schema(meta::PROMOTIONS).await.expect("schema").is_none());
    store.begin().await.expect("begin").commit().await.expect("commit");
    assert!(store.has_meta().await.expect("has_meta"), "{b:?}");
    let tables: [(&str, &[&str]); 5] = [
        (meta::PROMOTIONS, &meta::PROMOTION_COLUMNS),
        (meta::JOURNAL, &meta::JOURNAL_COLUMNS),
        (meta::SYNC, &meta::SYNC_COLUMNS),
        (meta::AUDIT, &meta::AUDIT_COLUMNS),
        (meta::REVIEWS, &meta::REVIEW_COLUMNS),
    ];
    for (table, columns) in tables {
        let schema = schema(&*store, table).await;
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, columns, "{b:?}: {table}");
    }
    let mut txn = store.begin().await.expect("begin at the latest version");
    let row: Row = vec![
        text("staging"),
        text("item"),
        text("[1]"),
        Value::Bytes(vec![1; 16]),
        Value::Bytes(vec![2; 8]),
        text("01TEST"),
        Value::Null,
    ];
    let key = s(&["source_env", "table_name", "row_key"]);
    let cols: Vec<String> = meta::columns(&meta::SYNC_COLUMNS);
    txn.upsert(meta::SYNC, &key, &cols, std::slice::from_ref(&row))
        .await
        .expect("upsert");
    txn.upsert(meta::SYNC, &key, &cols, &[row]).await.expect("upsert again");
    txn.commit().await.expect("commit");
    let got = store
        .fetch(by_key(
            meta::SYNC,
            &["promotion_id"],
            &["source_env", "table_name", "row_key"],
            vec![vec![text("staging"), text("item"), text("[1]")]],
        ))
        .await
        .expect("fetch");
    assert_eq!(got, vec![vec![text("01TEST")]]);
}

/// The keys of `word` a scan (decoded or raw) reads with `filter` and `flag`.
async fn word_keys(
    store: &dyn Store,
    filter: Predicate,
    flag: Option<Predicate>,
    raw: bool,
) -> Vec<(String, i64, bool)> {
    let mut req = word_scan(None, None);
    req.filter = Some(filter);
    req.flag = flag;
    let mut out = Vec::new();
    if raw {
        let mut rx = store.scan_raw(req).await.expect("scan_raw");
        while let Some(batch) = rx.recv().await {
            let mut batch = batch.expect("batch");
            for i in 0..batch.len() {
                let (k, n) = word_key(&batch.take_key(i));
                out.push((k, n, batch.flag(i)));
            }
        }
    } else {
        let mut rx = store.scan(req).await.expect("scan");
        while let Some(batch) = rx.recv().await {
            for row in batch.expect("batch") {
                let (k, n) = word_key(&row);
                out.push((k, n, is_true(row.get(3))));
            }
        }
    }
    out
}

/// The structural predicates every store evaluates: every row, key lists
/// (one column or several) and key ranges in Ferry's key order, as a
/// filter and as a flag, in decoded and raw scans and in fetches.
pub async fn predicates(b: Backend) {
    let Some((db, store)) = setup(b, "predicates").await else {
        return;
    };
    put_words(&db).await;
    let keys = |want: &[(&str, i64, bool)]| -> Vec<(String, i64, bool)> {
        want.iter().map(|(k, n, f)| (k.to_string(), *n, *f)).collect()
    };
    // Keys and bounds in the types of the key columns, as the engine sends them.
    let (k_ty, n_ty) = {
        let schema = schema(&*store, "word").await;
        let ty = |c: &str| {
            schema
                .column(c)
                .map(|c| c.ty.clone())
                .or_else(|| schema.open_fields.clone())
                .expect("a key column")
        };
        (ty("k"), ty("n"))
    };
    let kt = |k: &str| convert(&text(k), &k_ty).expect("k");
    let nt = |n: i64| convert(&Value::Int(n), &n_ty).expect("n");
    let kn = |k: &str, n: i64| vec![kt(k), nt(n)];
    let cols = s(&["k", "n"]);
    for raw in [false, true] {
        let all = word_keys(&*store, Predicate::All, Some(Predicate::All), raw).await;
        assert_eq!(all.len(), 6, "{b:?} raw={raw}");
        assert!(all.iter().all(|(_, _, f)| *f), "{b:?}: every row matches All");

        let listed = Predicate::In {
            columns: cols.clone(),
            values: vec![kn("a", 2), kn("Z", 1), kn("zz", 9)],
        };
        let got = word_keys(&*store, listed, None, raw).await;
        assert_eq!(
            got,
            keys(&[("Z", 1, false), ("a", 2, false)]),
            "{b:?} raw={raw}: key list"
        );

        let one = Predicate::In {
            columns: s(&["k"]),
            values: vec![vec![kt("a")]],
        };
        let got = word_keys(&*store, Predicate::All, Some(one), raw).await;
        let flagged: Vec<(String, i64)> = got.into_iter().filter(|r| r.2).map(|r| (r.0, r.1)).collect();
        assert_eq!(
            flagged,
            vec![("a".to_string(), 1), ("a".to_string(), 2)],
            "{b:?}: key list as a flag"
        );

        let range = Predicate::Range {
            columns: cols.clone(),
            from: Bound::Excluded(kn("Z", 1)),
            to: Bound::Included(kn("ab", 1)),
        };
        let got = word_keys(&*store, range, None, raw).await;
        assert_eq!(
            got,
            keys(&[("a", 1, false), ("a", 2, false), ("ab", 1, false)]),
            "{b:?} raw={raw}: a range in byte order"
        );

        let open = Predicate::Range {
            columns: s(&["k"]),
            from: Bound::Included(vec![kt("a")]),
            to: Bound::Unbounded,
        };
        let got = word_keys(&*store, open, None, raw).await;
        let want = keys(&[("a", 1, false), ("a", 2, false), ("ab", 1, false), ("\u{e9}", 1, false)]);
        assert_eq!(
            got, want,
            "{b:?} raw={raw}: an open range: lower case and accents after capitals"
        );

        let none = Predicate::In {
            columns: cols.clone(),
            values: Vec::new(),
        };
        assert!(
            word_keys(&*store, none, None, raw).await.is_empty(),
            "{b:?}: an empty list"
        );
    }
    let mut req = by_key("word", &["k", "n"], &["k"], vec![vec![kt("a")], vec![kt("ab")]]);
    req.filter = Some(Predicate::Range {
        columns: s(&["n"]),
        from: Bound::Unbounded,
        to: Bound::Excluded(vec![nt(2)]),
    });
    let got = sorted_fetch(&*store, req).await;
    assert_eq!(got, vec![kn("a", 1), kn("ab", 1)], "{b:?}: a fetch filtered by a range");
}

/// What a store says it can do holds: a store with SQL predicates checks
/// them and runs queries; one without refuses them, naming the table.
pub async fn capabilities(b: Backend) {
    let Some((_db, store)) = setup(b, "capabilities").await else {
        return;
    };
    let caps = store.capabilities();
    // The three SQL backends of this crate do everything; a folder has
    // transactions only.
    let want = match b {
        // MongoDB: transactions on a replica set (the test server is one).
        Backend::Dir | Backend::Mongo => Capabilities {
            transactions: true,
            raw_scans: b == Backend::Mongo,
            generated_ids: b == Backend::Mongo,
            sql_predicates: false,
            native_predicates: b == Backend::Mongo,
            branch_clones: b == Backend::Mongo,
            open_fields: b == Backend::Mongo,
            reads_at_once: 2,
        },
        // InnoDB reads the pages its buffer pool lacks from the disk.
        Backend::Mariadb => Capabilities {
            reads_at_once: 6,
            ..Capabilities::SQL
        },
        _ => Capabilities::SQL,
    };
    assert_eq!(caps, want, "{b:?}");
    assert_eq!(caps.sql_predicates, store.as_sql().is_some());
    let checked = ferry_db::check_predicate(&*store, "item", "price > 1").await;
    let bad = ferry_db::check_predicate(&*store, "item", "no_such_column > 1").await;
    if caps.sql_predicates {
        checked.expect("a predicate that runs");
        let e = bad.expect_err("a predicate naming no column");
        assert_eq!((e.kind, e.env.as_str()), (DbErrorKind::Query, "conf"));
        let v = ferry_db::query_scalar(&*store, "SELECT 1").await.expect("query");
        assert_eq!(v, Some(Value::Int(1)));
    } else {
        let e = checked.expect_err("no SQL here");
        assert_eq!(e.table.as_deref(), Some("item"));
        let scan = store.scan(word_scan(Some("n = 1"), None)).await;
        assert!(scan.is_err(), "{b:?}: a native predicate is refused");
    }
}

/// The ids of `item` rows 1 to 60 that `from` reads, through the one read
/// interface a store and a transaction share.
async fn read_ids(mut from: impl Read, keys: Vec<Row>) -> Vec<Value> {
    let mut rows = from
        .fetch_for_update(by_key("item", &["id"], &["id"], keys))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", from.env()));
    rows.sort_by_key(|r| format!("{r:?}"));
    rows.into_iter().flatten().collect()
}

/// A store and a transaction are both a `Read`: the store reads what is
/// committed, the transaction its own writes too.
pub async fn one_read_interface(b: Backend) {
    let Some((_db, store)) = setup(b, "one_read_interface").await else {
        return;
    };
    seed(&*store).await;
    let ids = |ids: Vec<i64>| {
        typed(
            &*store,
            "item",
            &["id"],
            ids.into_iter().map(|i| vec![Value::Int(i)]).collect(),
        )
    };
    let keys = ids((1..=60).collect()).await;
    let committed: Vec<Value> = ids(vec![1, 2, 3]).await.into_iter().flatten().collect();
    let seen: Vec<Value> = ids(vec![1, 2, 3, 50]).await.into_iter().flatten().collect();
    assert_eq!(read_ids(&*store, keys.clone()).await, committed, "{b:?}: the store");
    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &s(&ITEM), &[item(50, 1, "new", "1", true)])
        .await
        .expect("insert");
    assert_eq!(read_ids(&mut *txn, keys.clone()).await, seen, "{b:?}: the transaction");
    assert_eq!(
        read_ids(&*store, keys.clone()).await,
        committed,
        "{b:?}: not committed yet"
    );
    txn.commit().await.expect("commit");
    assert_eq!(read_ids(&*store, keys.clone()).await, seen, "{b:?}: committed");
}

/// What a store says of a `changed` column: whether an index starts with
/// it, whether a row holds NULL there, its largest value; and, on a column
/// no index starts with, nothing more (reading it would scan the table).
pub async fn changed_columns(b: Backend) {
    let Some((_db, store)) = setup(b, "changed_columns").await else {
        return;
    };
    let Some(sql) = store.as_sql() else {
        // A store without SQL (a folder, MongoDB: `as_sql` is `None`
        // exactly when `Capabilities::sql_predicates` is false, checked in
        // `capabilities`) cannot tell changed rows: plans read it whole.
        println!("N/A changed_columns::{b:?}: no SQL store, plans read the table whole");
        return;
    };
    seed(&*store).await;
    // `parent_id` leads the unique index (parent_id, label).
    let c = sql.changed_column("item", "parent_id").await.expect("parent_id");
    assert!(c.indexed, "{b:?}: {c:?}");
    assert!(!c.has_nulls, "{b:?}: {c:?}");
    assert_eq!(c.max, Some(Value::Int(2)), "{b:?}");
    // `label` is second in that index, `price` in none.
    for col in ["label", "price"] {
        let c = sql.changed_column("item", col).await.expect(col);
        assert_eq!((c.indexed, c.has_nulls, &c.max), (false, false, &None), "{b:?}: {col}");
    }
    let mut txn = store.begin().await.expect("begin");
    txn.insert("parent", &s(&["id", "name"]), &[vec![Value::Int(3), text("three")]])
        .await
        .expect("insert a parent");
    let mut orphan = item(5, 0, "delta", "1", true);
    orphan[1] = Value::Null;
    txn.insert("item", &s(&ITEM), &[item(4, 3, "gamma", "1", true), orphan])
        .await
        .expect("insert items");
    txn.commit().await.expect("commit");
    let c = sql.changed_column("item", "parent_id").await.expect("parent_id");
    assert_eq!((c.has_nulls, c.max), (true, Some(Value::Int(3))), "{b:?}");
    let empty = sql.changed_column("word", "k").await.expect("word");
    assert_eq!(
        (empty.indexed, empty.has_nulls, empty.max),
        (true, false, None),
        "{b:?}: an empty table"
    );
}

/// `SqlStore::key_blocks`: a table's integer keys in blocks of 64, each
/// block once and in order, negative keys and gaps included, exact (the
/// changed-only plan takes the bits that differ for the keys on one side
/// only). `integer_key` says which columns it reads.
pub async fn key_blocks(b: Backend) {
    let Some((_db, store)) = setup(b, "key_blocks").await else {
        return;
    };
    let Some(sql) = store.as_sql() else {
        println!("N/A key_blocks::{b:?}: no SQL store, plans read the table whole");
        return;
    };
    seed(&*store).await;
    let keys: Vec<i64> = vec![-4097, -65, -64, -1, 63, 64, 127, 128, 5000, 1 << 40, (1 << 62) + 63];
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| vec![Value::Int(*k), text(&format!("p{k}"))])
        .collect();
    let mut txn = store.begin().await.expect("begin");
    txn.insert("parent", &s(&["id", "name"]), &rows)
        .await
        .expect("insert parents");
    txn.commit().await.expect("commit");
    // `parent.id` is an integer key everywhere (on SQLite, the rowid);
    // `item.id` is declared `INT PRIMARY KEY`, which on SQLite is not the
    // rowid and may hold text; `word.k` is text.
    assert!(sql.integer_key("parent", "id").await.expect("parent"), "{b:?}");
    assert_eq!(
        sql.integer_key("item", "id").await.expect("item"),
        b != Backend::Sqlite,
        "{b:?}: INT PRIMARY KEY"
    );
    assert!(!sql.integer_key("word", "k").await.expect("word"), "{b:?}");
    let mut rx = sql.key_blocks("parent", "id").await.expect("key blocks");
    let mut blocks = Vec::new();
    while let Some(batch) = rx.recv().await {
        blocks.extend(batch.expect("a batch"));
    }
    assert!(
        blocks.windows(2).all(|w| w[0].block < w[1].block),
        "{b:?}: blocks in order, each once: {blocks:?}"
    );
    let read: Vec<i64> = blocks.iter().flat_map(|k| k.keys()).collect();
    let mut expected = keys.clone();
    expected.extend([1, 2]);
    expected.sort();
    assert_eq!(read, expected, "{b:?}");
    // 1, 2 and 63 share block 0; -65 and -64 are blocks -2 and -1.
    assert_eq!(
        blocks.iter().find(|k| k.block == 0).map(|k| k.mask),
        Some(0b110 | 1 << 63),
        "{b:?}"
    );
    assert_eq!(blocks.first().map(|k| k.block), Some(-65), "{b:?}: -4097 >> 6");
    // Without the far keys the range is narrow: SQLite then folds an
    // unordered read (of its smallest index) in memory. The same blocks.
    let far = [Value::Int(1 << 40), Value::Int((1 << 62) + 63)];
    let mut txn = store.begin().await.expect("begin");
    txn.delete_in("parent", &[], "id", &far)
        .await
        .expect("delete the far parents");
    txn.commit().await.expect("commit");
    let mut rx = sql.key_blocks("parent", "id").await.expect("key blocks");
    let mut narrow = Vec::new();
    while let Some(batch) = rx.recv().await {
        narrow.extend(batch.expect("a batch"));
    }
    let near: Vec<KeyBlock> = blocks.iter().copied().filter(|k| k.block < (1 << 34)).collect();
    assert_eq!(narrow, near, "{b:?}: the narrow range's blocks");
    // An empty table has no block; a missing one is an error naming it.
    let mut txn = store.begin().await.expect("begin");
    txn.delete_in("item", &[], "id", &[Value::Int(1), Value::Int(2), Value::Int(3)])
        .await
        .expect("delete items");
    txn.commit().await.expect("commit");
    let mut rx = sql
        .key_blocks("item", "id")
        .await
        .expect("key blocks of an empty table");
    while let Some(batch) = rx.recv().await {
        assert_eq!(batch.expect("a batch"), Vec::new(), "{b:?}: an empty table");
    }
    let err = match sql.key_blocks("nowhere", "id").await {
        Err(e) => e,
        Ok(mut rx) => match rx.recv().await {
            Some(Err(e)) => e,
            other => panic!(
                "{b:?}: blocks of a missing table: {:?}",
                other.map(|r| r.map(|v| v.len()))
            ),
        },
    };
    assert_eq!(err.table.as_deref(), Some("nowhere"), "{b:?}: {err}");
}
