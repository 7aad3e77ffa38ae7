//! MongoDB's own checks (see `main.rs`): a collection's schema is the union
//! of its documents' fields; every BSON type reads and writes back byte for
//! byte; scans come in Ferry's key order, with structural predicates and
//! filter documents; fetches match by BSON type, not by number value;
//! writes, absent fields and rollback; the lock document's expiry.

use std::collections::HashSet;
use std::ops::Bound;
use std::time::Duration;

use ferry_core::Value;
use ferry_db::{FetchRequest, Predicate, Row, ScanRequest, Store};
use mongodb::bson::{self, doc, Bson, Document, RawDocumentBuf};

use crate::support::{Backend, Db};

fn s(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A value in Ferry's form, from Extended JSON text.
fn j(text: &str) -> Value {
    Value::Json(ferry_core::extjson::from_user_text(text).expect("extended JSON").into())
}

async fn setup(test: &str) -> Option<(Db, std::sync::Arc<dyn Store>)> {
    let db = Db::create(Backend::Mongo, test).await?;
    let store = db.open("conf").await;
    Some((db, store))
}

async fn put(db: &Db, coll: &str, docs: Vec<Document>) {
    db.mongo()
        .await
        .collection::<Document>(coll)
        .insert_many(docs)
        .await
        .expect("insert documents");
}

async fn scan(store: &dyn Store, req: ScanRequest) -> Vec<Row> {
    let mut rx = store.scan(req).await.expect("scan");
    let mut rows = Vec::new();
    while let Some(b) = rx.recv().await {
        rows.extend(b.expect("batch"));
    }
    rows
}

fn scan_req(table: &str, columns: &[&str], filter: Option<Predicate>, flag: Option<Predicate>) -> ScanRequest {
    ScanRequest {
        table: table.into(),
        columns: s(columns),
        order_by: s(&["_id"]),
        filter,
        flag,
        descending: false,
        limit: None,
    }
}

/// Every BSON type Ferry promises to carry exactly, in one document.
fn every_type(id: i32) -> Document {
    doc! {
        "_id": id,
        "oid": bson::oid::ObjectId::parse_str("64b000000000000000000001").expect("oid"),
        "s": "Café 😀",
        "i32": 7i32,
        "i64": 7i64,
        "d": 7.0f64,
        "negzero": -0.0f64,
        "nan": f64::NAN,
        "dec": Bson::Decimal128("1.10".parse().expect("decimal")),
        "yes": true,
        "when": bson::DateTime::from_millis(1_700_000_000_123),
        "ts": bson::Timestamp { time: 1_700_000_000, increment: 7 },
        "bin": bson::Binary { subtype: bson::spec::BinarySubtype::UserDefined(0x80), bytes: vec![0, 1, 254, 255] },
        "uuid": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] },
        "nothing": Bson::Null,
        "list": [1i32, "two", 3.5f64, { "z": 1i32, "a": 2i32 }],
        "nested": { "zeta": 1i32, "alpha": { "y": 2i64, "b": [] } },
        "re": bson::Regex { pattern: "^caf".into(), options: "i".into() },
    }
}

pub async fn schema_is_the_union_of_fields() {
    let Some((db, store)) = setup("mongo_schema").await else {
        return;
    };
    put(
        &db,
        "item",
        vec![doc! { "_id": 1, "b": 1, "a": 1 }, doc! { "_id": 2, "c": 1, "a": 2 }],
    )
    .await;
    let schema = store.table_schema("item").await.expect("schema").expect("item");
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "b", "a", "c"], "fields in the order first seen");
    assert_eq!(schema.primary_key, s(&["_id"]));
    assert!(schema.open_fields.is_some(), "a collection's fields are open");
    assert!(schema.columns.iter().all(|c| c.ty.extended_json));
    assert!(store.table_schema("missing").await.expect("no error").is_none());
    let rows = scan(&*store, scan_req("item", &["_id", "b", "c"], None, None)).await;
    assert_eq!(
        rows,
        vec![vec![j("1"), j("1"), Value::Null], vec![j("2"), Value::Null, j("1")]],
        "an absent field is NULL, never a BSON null"
    );
}

pub async fn every_bson_type_round_trips_byte_for_byte() {
    let Some((db, store)) = setup("mongo_round_trip").await else {
        return;
    };
    let docs = vec![every_type(1), every_type(2)];
    put(&db, "item", docs.clone()).await;
    let schema = store.table_schema("item").await.expect("schema").expect("item");
    let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let rows = scan(&*store, scan_req("item", &cols, None, None)).await;
    assert_eq!(rows.len(), 2);
    // int32 7, int64 7 and double 7.0 are three values; so are 1.10 and 1.1.
    let at = |n: &str| columns.iter().position(|c| c == n).expect("column");
    assert_ne!(rows[0][at("i32")], rows[0][at("i64")]);
    assert_ne!(rows[0][at("i64")], rows[0][at("d")]);
    assert_eq!(rows[0][at("dec")], j(r#"{"$numberDecimal": "1.10"}"#));
    assert_ne!(rows[0][at("dec")], j(r#"{"$numberDecimal": "1.1"}"#));
    assert_ne!(rows[0][at("negzero")], j(r#"{"$numberDouble": "0.0"}"#));
    assert_ne!(
        rows[0][at("nothing")],
        Value::Null,
        "a BSON null is not an absent field"
    );

    // Written back through a transaction into another collection: the same
    // bytes, field order included.
    let mut txn = store.begin().await.expect("begin");
    txn.insert("word", &columns, &rows).await.expect("insert");
    txn.commit().await.expect("commit");
    let m = db.mongo().await;
    let raw = |c: &str| {
        let m = m.clone();
        let c = c.to_string();
        async move {
            let mut out = Vec::new();
            let mut cur = m
                .collection::<RawDocumentBuf>(&c)
                .find(doc! {})
                .sort(doc! { "_id": 1 })
                .await
                .expect("find");
            while cur.advance().await.expect("next") {
                out.push(cur.current().as_bytes().to_vec());
            }
            out
        }
    };
    assert_eq!(raw("item").await, raw("word").await, "the documents' BSON bytes");
}

pub async fn scans_in_key_order_with_predicates() {
    let Some((db, store)) = setup("mongo_scans").await else {
        return;
    };
    put(
        &db,
        "word",
        vec![
            doc! { "_id": "b", "n": 2, "team": "qa" },
            doc! { "_id": "B", "n": 1, "team": "content" },
            doc! { "_id": 10, "n": 3 },
            doc! { "_id": "a", "n": 4, "team": "dev" },
            doc! { "_id": 9, "n": 5, "team": "content" },
        ],
    )
    .await;
    let keys = |rows: &[Row]| rows.iter().map(|r| r[0].display_text()).collect::<Vec<_>>();
    let all = scan(&*store, scan_req("word", &["_id", "n"], None, None)).await;
    // Ferry's key order on these values (BSON order: numbers by value
    // before strings by bytes): the same the merge of two environments
    // uses.
    let mut want = all.clone();
    want.sort_by(|a, b| ferry_core::value::bson_key_cmp(&a[..1], &b[..1]));
    assert_eq!(all, want);
    assert_eq!(all.len(), 5);

    let qa = r#"{"team": {"$in": ["qa", "dev"]}}"#;
    let kept = scan(&*store, scan_req("word", &["_id"], Some(Predicate::native(qa)), None)).await;
    assert_eq!(keys(&kept), ["\"a\"", "\"b\""]);
    let flagged = scan(&*store, scan_req("word", &["_id"], None, Some(Predicate::native(qa)))).await;
    let on: Vec<String> = flagged
        .iter()
        .filter(|r| r[1] == Value::Bool(true))
        .map(|r| r[0].display_text())
        .collect();
    assert_eq!(on, ["\"a\"", "\"b\""]);

    let range = Predicate::Range {
        columns: s(&["_id"]),
        from: Bound::Excluded(vec![all[0][0].clone()]),
        to: Bound::Included(vec![all[3][0].clone()]),
    };
    let mid = scan(&*store, scan_req("word", &["_id"], Some(range), None)).await;
    assert_eq!(mid.len(), 3);
    let some = Predicate::In {
        columns: s(&["n"]),
        values: vec![vec![j("1")], vec![j("5")]],
    };
    assert_eq!(scan(&*store, scan_req("word", &["n"], Some(some), None)).await.len(), 2);

    let bad = store
        .scan(scan_req("word", &["_id"], Some(Predicate::native("n = 1")), None))
        .await;
    let e = bad.expect_err("SQL is no filter document");
    assert!(e.message.contains("filter document"), "{e}");
    ferry_db::check_predicate(&*store, "word", qa)
        .await
        .expect("a filter that runs");
    assert!(ferry_db::check_predicate(&*store, "word", "team = 'qa'").await.is_err());
}

pub async fn fetches_match_exactly() {
    let Some((db, store)) = setup("mongo_fetch").await else {
        return;
    };
    put(
        &db,
        "item",
        vec![
            doc! { "_id": 1, "n": 7i32 },
            doc! { "_id": 2, "n": 7i64 },
            doc! { "_id": 3, "n": 7.0f64 },
            doc! { "_id": bson::oid::ObjectId::parse_str("64b000000000000000000001").expect("oid"), "n": 1 },
        ],
    )
    .await;
    let fetch = |column: &str, value: Value| FetchRequest {
        table: "item".into(),
        columns: s(&["_id"]),
        match_columns: s(&[column]),
        values: vec![vec![value]],
        flag: None,
        filter: None,
        fixed: Vec::new(),
    };
    let got = store.fetch(fetch("n", j("7"))).await.expect("fetch");
    assert_eq!(got, vec![vec![j("1")]], "int32 7 only, not int64 7 nor 7.0");
    let got = store
        .fetch(fetch("n", j(r#"{"$numberLong": "7"}"#)))
        .await
        .expect("fetch");
    assert_eq!(got, vec![vec![j("2")]]);
    let oid = j(r#"{"$oid": "64b000000000000000000001"}"#);
    let got = store.fetch(fetch("_id", oid.clone())).await.expect("fetch");
    assert_eq!(got, vec![vec![oid]]);
}

pub async fn writes_and_rollback() {
    let Some((db, store)) = setup("mongo_writes").await else {
        return;
    };
    put(&db, "item", vec![doc! { "_id": 1, "a": 1, "b": "x", "c": true }]).await;
    let cols = s(&["_id", "a", "b", "c"]);
    {
        let mut txn = store.begin().await.expect("begin");
        txn.insert("item", &cols, &[vec![j("2"), j("2"), Value::Null, j("false")]])
            .await
            .expect("insert");
        // Dropped without a commit: nothing written.
    }
    let m = db.mongo().await.collection::<Document>("item");
    assert_eq!(m.count_documents(doc! {}).await.expect("count"), 1);

    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &cols, &[vec![j("2"), j("2"), Value::Null, j("false")]])
        .await
        .expect("insert");
    let e = txn
        .insert(
            "item",
            &cols,
            &[
                vec![j("3"), j("3"), Value::Null, Value::Null],
                vec![j("1"), j("9"), Value::Null, Value::Null],
            ],
        )
        .await
        .expect_err("a duplicate _id");
    assert_eq!((e.kind, e.row), (ferry_db::DbErrorKind::Constraint, Some(1)), "{e}");
    drop(txn);

    let mut txn = store.begin().await.expect("begin");
    txn.update(
        "item",
        &s(&["_id"]),
        &s(&["b", "a", "d"]),
        &[(
            vec![j("1")],
            vec![Value::Null, j("10"), j(r#"{"$date": {"$numberLong": "0"}}"#)],
        )],
    )
    .await
    .expect("update");
    txn.upsert("item", &s(&["_id"]), &s(&["_id", "a"]), &[vec![j("5"), j("5")]])
        .await
        .expect("upsert");
    txn.commit().await.expect("commit");
    let one = m.find_one(doc! { "_id": 1 }).await.expect("find").expect("doc 1");
    assert_eq!(
        one,
        doc! { "_id": 1, "a": 10, "c": true, "d": bson::DateTime::from_millis(0) },
        "an absent value unsets its field; a field keeps its place"
    );
    assert!(m.find_one(doc! { "_id": 5 }).await.expect("find").is_some());

    let mut txn = store.begin().await.expect("begin");
    txn.delete("item", &s(&["_id"]), &[vec![j("1")]]).await.expect("delete");
    txn.delete_in("item", &[], "a", &[j("5")]).await.expect("delete_in");
    txn.commit().await.expect("commit");
    assert_eq!(m.count_documents(doc! {}).await.expect("count"), 0);
}

pub async fn lock_document_expires() {
    let Some((db, store)) = setup("mongo_lock").await else {
        return;
    };
    let locks = db.mongo().await.collection::<Document>("_ferry_lock");
    // A live writer elsewhere: refused.
    let later = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() + 60_000);
    locks
        .insert_one(doc! { "_id": "writer", "owner": "someone-else", "expires": later })
        .await
        .expect("lock");
    assert!(
        store.try_lock_writer().await.expect("try_lock").is_none(),
        "held by a live writer"
    );
    // A writer that crashed: its lock expired, taken over.
    let past = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 1);
    locks
        .update_one(doc! { "_id": "writer" }, doc! { "$set": { "expires": past } })
        .await
        .expect("expire");
    let held = store
        .try_lock_writer()
        .await
        .expect("try_lock")
        .expect("an expired lock is free");
    // Taken away meanwhile: this writer's transaction does not commit.
    locks
        .update_one(doc! { "_id": "writer" }, doc! { "$set": { "owner": "thief" } })
        .await
        .expect("steal");
    let txn = store.begin().await.expect("begin");
    let e = txn.commit().await.expect_err("the lock was lost");
    assert_eq!(e.kind, ferry_db::DbErrorKind::Busy, "{e}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A transaction that outlives the expiry its snapshot saw commits when
    // the lock was renewed meanwhile (the check reads the lock as it is
    // now, not in the transaction's snapshot).
    locks
        .delete_one(doc! { "_id": "writer" })
        .await
        .expect("the thief is done");
    let held = store.try_lock_writer().await.expect("try_lock").expect("free");
    let in_ms = |ms: i64| bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() + ms);
    locks
        .update_one(doc! { "_id": "writer" }, doc! { "$set": { "expires": in_ms(1_500) } })
        .await
        .expect("about to expire");
    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &s(&["_id", "a"]), &[vec![j("1"), j("1")]])
        .await
        .expect("insert");
    locks
        .update_one(doc! { "_id": "writer" }, doc! { "$set": { "expires": in_ms(60_000) } })
        .await
        .expect("renewed");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    txn.commit().await.expect("the renewed lock is held");
    let items = db.mongo().await.collection::<Document>("item");
    assert_eq!(items.count_documents(doc! {}).await.expect("count"), 1);
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A scan that follows its collection's schema read reads the documents
/// that read kept (one read of the collection per plan), but not once the
/// store has taken the writer lock or begun a transaction since: what a
/// promotion reads under its lock comes from the server.
pub async fn the_lock_reads_afresh() {
    let Some((db, store)) = setup("mongo_lock_afresh").await else {
        return;
    };
    put(&db, "item", vec![doc! { "_id": 1, "n": 1 }, doc! { "_id": 2, "n": 2 }]).await;
    let items = db.mongo().await.collection::<Document>("item");
    let set = |n: i32| {
        let items = items.clone();
        async move {
            items
                .update_one(doc! { "_id": 1 }, doc! { "$set": { "n": n } })
                .await
                .expect("update");
        }
    };
    let first_n = |rows: Vec<Row>| rows[0][1].clone();
    let req = || scan_req("item", &["_id", "n"], None, None);

    store.table_schema("item").await.expect("schema");
    set(10).await;
    assert_eq!(
        first_n(scan(&*store, req()).await),
        j("1"),
        "the schema read's documents"
    );
    assert_eq!(first_n(scan(&*store, req()).await), j("10"), "they serve one scan");

    store.table_schema("item").await.expect("schema");
    set(20).await;
    let held = store.try_lock_writer().await.expect("try_lock").expect("free");
    assert_eq!(first_n(scan(&*store, req()).await), j("20"), "read under the lock");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;

    store.table_schema("item").await.expect("schema");
    set(30).await;
    drop(store.begin().await.expect("begin"));
    assert_eq!(
        first_n(scan(&*store, req()).await),
        j("30"),
        "read after a transaction began"
    );
}

/// A standalone server (`FERRY_TEST_MONGODB_STANDALONE_URL`, started by
/// `.ci/run`) has no multi-document transactions: writes are refused with
/// the reason, reads work.
pub async fn a_standalone_server_refuses_writes() {
    let label = "conformance::mongo_documents::a_standalone_server_refuses_writes";
    let Ok(server) = std::env::var("FERRY_TEST_MONGODB_STANDALONE_URL") else {
        ferry_testdb::skip_or_fail(
            label,
            "FERRY_TEST_MONGODB_STANDALONE_URL not set",
            "CI=true needs a standalone MongoDB-wire server there (.ci/run starts SecantusDB --standalone)",
        );
        return;
    };
    let url = ferry_testdb::with_database(&server, &ferry_testdb::unique_name("standalone"));
    let opening = ferry_db::registry::Opening {
        env: "lone",
        url: &url,
        base_dir: std::path::Path::new("/"),
    };
    let store = ferry_db::registry::open(opening)
        .await
        .expect("a MongoDB URL")
        .expect("a standalone server opens");
    assert!(!store.capabilities().transactions);
    assert!(store.table_schema("item").await.expect("reads work").is_none());
    let e = store.begin().await.err().expect("no transactions, no writes");
    assert!(e.message.contains("replica set"), "{e}");
}

/// The `_id` of a collection's `i`th document.
type IdOf = Box<dyn Fn(usize) -> Bson>;

/// Scans of collections larger than one batch ([`ferry_db::BATCH_ROWS`])
/// come in Ferry's key order, MongoDB's BSON order, streamed as the server
/// sorts them whatever the `_id`s' types (ObjectIds, strings, numbers,
/// mixed); limits, descending scans, filters and flags across batches.
pub async fn large_scans_stream_in_key_order() {
    let Some((db, store)) = setup("mongo_large_scans").await else {
        return;
    };
    let n = ferry_db::BATCH_ROWS * 2 + 300;
    // Inserted in an order that is neither the server's nor Ferry's.
    let shuffled = |i: usize| (i * 7919) % n;
    let oid = |i: usize| {
        bson::oid::ObjectId::from_bytes([0x64, 0, 0, 0, 0, 0, 0, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8])
    };
    let ids: Vec<(&str, IdOf)> = vec![
        ("oids", Box::new(move |i| Bson::ObjectId(oid(i)))),
        ("names", Box::new(|i| Bson::String(format!("k{i}")))),
        (
            "spaced",
            Box::new(|i| {
                Bson::String(if i % 2 == 0 {
                    format!("k{}", i / 2)
                } else {
                    format!("k{} x", i / 2)
                })
            }),
        ),
        ("numbers", Box::new(|i| Bson::Int32(i as i32))),
        (
            "mixed",
            Box::new(move |i| match i % 3 {
                0 => Bson::ObjectId(oid(i)),
                1 => Bson::String(format!("k{i}")),
                _ => Bson::Int64(i as i64),
            }),
        ),
    ];
    for (coll, id) in &ids {
        let docs = (0..n)
            .map(|i| {
                let i = shuffled(i);
                let mut d = doc! { "_id": id(i), "n": i as i32 };
                if i == n - 1 {
                    d.insert("last", true);
                }
                d
            })
            .collect();
        put(&db, coll, docs).await;
        let schema = store.table_schema(coll).await.expect("schema").expect("collection");
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "n", "last"], "{coll}: fields in the order first seen");

        let all = scan(&*store, scan_req(coll, &["_id", "n"], None, None)).await;
        assert_eq!(all.len(), n, "{coll}");
        let mut want = all.clone();
        want.sort_by(|a, b| ferry_core::value::bson_key_cmp(&a[..1], &b[..1]));
        assert_eq!(all, want, "{coll}: Ferry's key order");

        let mut rx = store.scan(scan_req(coll, &["_id"], None, None)).await.expect("scan");
        while let Some(b) = rx.recv().await {
            assert!(
                b.expect("batch").len() <= ferry_db::BATCH_ROWS,
                "{coll}: batches of at most BATCH_ROWS"
            );
        }

        let mut down = scan_req(coll, &["_id", "n"], None, None);
        down.descending = true;
        down.limit = Some(ferry_db::BATCH_ROWS + 10);
        let got = scan(&*store, down).await;
        let mut want: Vec<Row> = all.iter().rev().take(ferry_db::BATCH_ROWS + 10).cloned().collect();
        assert_eq!(got.len(), want.len(), "{coll}: descending with a limit");
        assert_eq!(got, std::mem::take(&mut want), "{coll}: descending with a limit");

        let even = r#"{"n": {"$mod": [2, 0]}}"#;
        let kept = scan(
            &*store,
            scan_req(coll, &["_id", "n"], Some(Predicate::native(even)), None),
        )
        .await;
        let want: Vec<Row> = all
            .iter()
            .filter(|r| r[1].display_text().parse::<usize>().expect("n") % 2 == 0)
            .cloned()
            .collect();
        assert_eq!(kept, want, "{coll}: a filter document across batches");
        let flagged = scan(
            &*store,
            scan_req(coll, &["_id", "n"], None, Some(Predicate::native(even))),
        )
        .await;
        assert_eq!(flagged.len(), n);
        for r in &flagged {
            let on = r[1].display_text().parse::<usize>().expect("n") % 2 == 0;
            assert_eq!(r[2], Value::Bool(on), "{coll}: the flag of {}", r[0].display_text());
        }
        assert_eq!(
            flagged.iter().map(|r| r[..2].to_vec()).collect::<Vec<_>>(),
            all,
            "{coll}"
        );

        let range = Predicate::Range {
            columns: s(&["_id"]),
            from: Bound::Included(vec![all[100][0].clone()]),
            to: Bound::Excluded(vec![all[n - 100][0].clone()]),
        };
        let mid = scan(&*store, scan_req(coll, &["_id", "n"], Some(range), None)).await;
        assert_eq!(mid, all[100..n - 100].to_vec(), "{coll}: a key range");
    }
}

/// Writes of more rows than a batch: inserted and deleted a batch at a
/// time, an error naming the row it failed at.
pub async fn large_writes_are_batched() {
    let Some((db, store)) = setup("mongo_large_writes").await else {
        return;
    };
    let n = ferry_db::BATCH_ROWS * 2 + 5;
    let cols = s(&["_id", "a"]);
    let rows: Vec<Row> = (0..n)
        .map(|i| vec![j(&i.to_string()), j(&(i * 2).to_string())])
        .collect();
    let m = db.mongo().await.collection::<Document>("item");
    let mut txn = store.begin().await.expect("begin");
    txn.insert("item", &cols, &rows).await.expect("insert");
    txn.commit().await.expect("commit");
    assert_eq!(m.count_documents(doc! {}).await.expect("count"), n as u64);

    // A duplicate in the second batch: named by its row, nothing written.
    let at = ferry_db::BATCH_ROWS + 17;
    let mut more: Vec<Row> = (n..n + ferry_db::BATCH_ROWS * 2)
        .map(|i| vec![j(&i.to_string()), Value::Null])
        .collect();
    more[at] = vec![j("3"), Value::Null];
    let mut txn = store.begin().await.expect("begin");
    let e = txn.insert("item", &cols, &more).await.expect_err("a duplicate _id");
    assert_eq!((e.kind, e.row), (ferry_db::DbErrorKind::Constraint, Some(at)), "{e}");
    drop(txn);
    assert_eq!(m.count_documents(doc! {}).await.expect("count"), n as u64);

    // Deleted by a single-column key (batches of `$in`) and by a key of
    // two fields (one by one).
    let mut txn = store.begin().await.expect("begin");
    let gone: Vec<Row> = (0..n).filter(|i| i % 3 != 0).map(|i| vec![j(&i.to_string())]).collect();
    txn.delete("item", &s(&["_id"]), &gone).await.expect("delete");
    txn.delete("item", &s(&["_id", "a"]), &[vec![j("0"), j("0")], vec![j("3"), j("7")]])
        .await
        .expect("delete by two fields");
    txn.commit().await.expect("commit");
    let left = (0..n).filter(|i| i % 3 == 0).count() - 1;
    assert_eq!(m.count_documents(doc! {}).await.expect("count"), left as u64);
    assert!(m.find_one(doc! { "_id": 0 }).await.expect("find").is_none());
    assert!(
        m.find_one(doc! { "_id": 3 }).await.expect("find").is_some(),
        "a is 6, not 7"
    );
}

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `_id`s of every BSON type an `_id` may hold, none two of which the
/// server holds equal (numbers are distinct by value across their types:
/// int32 multiples of 3, int64 one above, doubles halves, decimals
/// eighths, and the edges of each type's range).
fn mixed_ids(rng: &mut Rng, n: usize) -> Vec<Bson> {
    let mut out: Vec<Bson> = vec![
        Bson::Null,
        Bson::MinKey,
        Bson::MaxKey,
        Bson::Boolean(false),
        Bson::Boolean(true),
        Bson::Int64(i64::MAX),
        Bson::Int64(i64::MIN),
        Bson::Double(9_223_372_036_854_775_808.0),
        Bson::Int64(9_007_199_254_740_993),
        Bson::Double(9_007_199_254_740_992.0),
        Bson::Double(f64::INFINITY),
        Bson::Double(f64::NEG_INFINITY),
        Bson::Double(f64::NAN),
        Bson::Double(1e300),
        Bson::Double(-1e-300),
        Bson::Decimal128("0.3".parse().expect("decimal")),
        Bson::Double(0.1),
        Bson::String(String::new()),
        Bson::Timestamp(bson::Timestamp { time: 5, increment: 1 }),
        Bson::Timestamp(bson::Timestamp { time: 4, increment: 9 }),
        Bson::Document(doc! { "a": 1i32 }),
        Bson::Document(doc! { "a": 1i32, "b": "x" }),
        Bson::Document(doc! { "a": "x" }),
        Bson::Document(doc! { "b": 0i32 }),
        Bson::Document(doc! {}),
    ];
    let pieces = [
        "", " ", "!", "\"", "\\", "é", "😀", "\u{1}", "Z", "a", "10", "9", "k", "~",
    ];
    let mut strings: HashSet<String> = [String::new()].into();
    let mut dates = HashSet::new();
    let mut bins = HashSet::new();
    let mut ints = HashSet::new();
    while out.len() < n {
        let v = rng.below(2000) as i64 - 1000;
        let id = match rng.below(9) {
            0 => Bson::Int32((v * 3) as i32),
            1 => Bson::Int64(v * 3 + 1),
            2 => Bson::Double(v as f64 * 3.0 + 0.5),
            3 => Bson::Decimal128(format!("{}.125", v * 3).parse().expect("decimal")),
            4 => {
                let s: String = (0..rng.below(4))
                    .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
                    .collect();
                Bson::String(s)
            }
            5 => {
                let mut b = [0u8; 12];
                for x in &mut b {
                    *x = rng.below(256) as u8;
                }
                Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))
            }
            6 => Bson::DateTime(bson::DateTime::from_millis(v * 86_400_000 + rng.below(1000) as i64)),
            7 => {
                let bytes: Vec<u8> = (0..rng.below(4)).map(|_| rng.below(256) as u8).collect();
                // One subtype: SecantusDB orders binaries by their bytes
                // alone, MongoDB (and Ferry) by length, subtype, bytes.
                let subtype = 0u8;
                Bson::Binary(bson::Binary {
                    subtype: subtype.into(),
                    bytes,
                })
            }
            _ => Bson::Document(doc! { "a": v as i32, "b": [1i32, "x"] }),
        };
        // None two equal to the server.
        let fresh = match &id {
            Bson::String(s) => strings.insert(s.clone()),
            Bson::DateTime(d) => dates.insert(d.timestamp_millis()),
            // SecantusDB holds binaries equal by their bytes alone.
            Bson::Binary(b) => bins.insert(b.bytes.clone()),
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) | Bson::Document(_) => {
                ints.insert(id.to_string())
            }
            _ => true,
        };
        if fresh {
            out.push(id);
        }
    }
    out
}

/// Ferry's key order of document fields is MongoDB's own sort order:
/// `_id`s of every type, mixed in one collection, sorted by the server
/// (ascending and descending) come in the order `bson_cmp` gives, and a
/// store scan returns them in that order.
pub async fn key_order_is_the_servers() {
    let Some((db, store)) = setup("mongo_key_order").await else {
        return;
    };
    for seed in [7u64, 1_234_567, 0x9e37_79b9_7f4a_7c15] {
        let coll = format!("mixed{}", seed % 1000);
        let ids = mixed_ids(&mut Rng(seed), 400);
        put(&db, &coll, ids.iter().map(|id| doc! { "_id": id.clone() }).collect()).await;
        for dir in [1i32, -1] {
            let mut cursor = db
                .mongo()
                .await
                .collection::<Document>(&coll)
                .find(doc! {})
                .sort(doc! { "_id": dir })
                .await
                .expect("find");
            let mut served = Vec::new();
            while let Some(d) = futures_util::TryStreamExt::try_next(&mut cursor).await.expect("next") {
                served.push(ferry_db::mongo::values::to_json(d.get("_id").expect("_id")));
            }
            assert_eq!(served.len(), ids.len());
            for w in served.windows(2) {
                let o = ferry_core::extjson::bson_cmp(&w[0], &w[1]);
                let want = if dir == 1 {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                };
                assert_eq!(o, want, "seed {seed}: the server sorts {} before {}", w[0], w[1]);
            }
            let mut req = scan_req(&coll, &["_id"], None, None);
            req.descending = dir == -1;
            let scanned: Vec<serde_json::Value> = scan(&*store, req)
                .await
                .into_iter()
                .map(|r| match &r[0] {
                    Value::Json(j) => j.value().clone(),
                    other => panic!("an _id read as {other:?}"),
                })
                .collect();
            assert_eq!(scanned, served, "seed {seed}: the store's scan, in the server's order");
        }
    }
}

/// A collection of numeric `_id`s (int32, int64 and doubles mixed) is
/// streamed as the server sorts it, both ways: no more than the channel's
/// two batches are read ahead of the reader, so memory stays flat in the
/// collection's size. `_id`s that are embedded documents with their
/// fields in different orders are ordered in memory, by Ferry's rule.
pub async fn numeric_ids_stream() {
    let Some((db, store)) = setup("mongo_numeric_stream").await else {
        return;
    };
    let n = ferry_db::BATCH_ROWS * 6 + 17;
    let id = |i: usize| match i % 3 {
        0 => Bson::Int32(i as i32),
        1 => Bson::Int64(i as i64 - 3000),
        _ => Bson::Double(i as f64 / 2.0 + 0.25),
    };
    let docs = (0..n)
        .map(|i| doc! { "_id": id((i * 7919) % n), "n": i as i32 })
        .collect();
    put(&db, "numbers", docs).await;
    for descending in [false, true] {
        let mut req = scan_req("numbers", &["_id", "n"], None, None);
        req.descending = descending;
        let mut rx = store.scan(req).await.expect("scan");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            rx.len() <= 2,
            "descending {descending}: {} batches read ahead: the scan was read whole, not streamed",
            rx.len()
        );
        let mut rows: Vec<Row> = Vec::new();
        let mut batches = 0;
        while let Some(b) = rx.recv().await {
            rows.extend(b.expect("batch"));
            batches += 1;
        }
        assert_eq!(rows.len(), n);
        assert!(batches > 5, "{batches} batches");
        let mut want = rows.clone();
        want.sort_by(|a, b| ferry_core::value::bson_key_cmp(&a[..1], &b[..1]));
        if descending {
            want.reverse();
        }
        assert_eq!(rows, want, "descending {descending}: Ferry's key order");
        let first = if descending {
            "6159"
        } else {
            r#"{"$numberLong": "-2999"}"#
        };
        assert_eq!(rows[0][0], j(first), "descending {descending}");
    }

    // Embedded documents whose fields come in different orders: the
    // server orders them by their first field, Ferry with the fields
    // sorted; the scan gives Ferry's order.
    let docs = (0..50)
        .map(|i: i32| {
            if i % 2 == 0 {
                doc! { "_id": { "b": i, "a": 50 - i } }
            } else {
                doc! { "_id": { "a": 50 - i, "b": i } }
            }
        })
        .collect();
    put(&db, "shapes", docs).await;
    let rows = scan(&*store, scan_req("shapes", &["_id"], None, None)).await;
    assert_eq!(rows.len(), 50);
    let mut want = rows.clone();
    want.sort_by(|a, b| ferry_core::value::bson_key_cmp(a, b));
    assert_eq!(rows, want, "documents ordered with their fields sorted");
    assert_eq!(rows[0][0], j(r#"{"a": 1, "b": 49}"#));
}

/// A document inserted without `_id` gets a new ObjectId from the
/// target, returned in Ferry's form (what a `natural_key` table's new rows
/// need); another key column is refused, naming it; a rollback keeps
/// nothing.
pub async fn generated_object_ids() {
    let Some((db, store)) = setup("mongo_generated_ids").await else {
        return;
    };
    assert!(store.capabilities().generated_ids);
    let schema = store.table_schema("parent").await.expect("schema").expect("parent");
    let id = schema.column("_id").expect("_id");
    assert!(id.auto_increment && id.has_default, "{id:?}");
    let m = db.mongo().await.collection::<Document>("parent");
    {
        let mut txn = store.begin().await.expect("begin");
        txn.insert_returning("parent", &s(&["name"]), &vec![j(r#""rolled back""#)], "_id")
            .await
            .expect("insert_returning");
    }
    assert_eq!(
        m.count_documents(doc! {}).await.expect("count"),
        0,
        "dropped: nothing written"
    );

    let mut txn = store.begin().await.expect("begin");
    let first = txn
        .insert_returning("parent", &s(&["name"]), &vec![j(r#""Zürich 🏔️""#)], "_id")
        .await
        .expect("insert_returning");
    let second = txn
        .insert_returning("parent", &s(&["name"]), &vec![j(r#""Lyon""#)], "_id")
        .await
        .expect("insert_returning");
    let e = txn
        .insert_returning("parent", &s(&["name"]), &vec![j(r#""x""#)], "id")
        .await
        .expect_err("only _id is generated");
    assert_eq!(e.column.as_deref(), Some("id"), "{e}");
    assert!(e.message.contains("`_id`"), "{e}");
    drop(txn);

    let mut txn = store.begin().await.expect("begin");
    let first = txn
        .insert_returning("parent", &s(&["name"]), &vec![j(r#""Zürich 🏔️""#)], "_id")
        .await
        .unwrap_or_else(|e| panic!("insert_returning after {first:?} and {second:?}: {e}"));
    let second = txn
        .insert_returning("parent", &s(&["name"]), &vec![j(r#""Lyon""#)], "_id")
        .await
        .expect("insert_returning");
    txn.commit().await.expect("commit");
    assert_ne!(first, second);
    for (id, name) in [(&first, "Zürich 🏔️"), (&second, "Lyon")] {
        let Value::Json(oid) = id else {
            panic!("a generated _id is Extended JSON: {id:?}");
        };
        let hex = oid["$oid"].as_str().unwrap_or_else(|| panic!("an ObjectId: {oid}"));
        let found = m
            .find_one(doc! { "_id": bson::oid::ObjectId::parse_str(hex).expect("hex") })
            .await
            .expect("find")
            .unwrap_or_else(|| panic!("{name} under {hex}"));
        assert_eq!(found.get_str("name").expect("name"), name);
    }
}

fn bytes(d: &Document) -> Vec<u8> {
    bson::to_vec(d).expect("BSON bytes")
}

/// A document's field order as its carried column holds it.
fn order(names: &[&str]) -> Value {
    j(&serde_json::to_string(names).expect("JSON"))
}

/// A document's top-level field order is a carried column
/// (`_ferry_order`), not a field: read with every row asked for it,
/// written with inserts and updates (the whole document when its order
/// must change), never stored; a collection with a real field of that
/// name is refused.
pub async fn field_order_is_carried() {
    let Some((db, store)) = setup("mongo_field_order").await else {
        return;
    };
    let order_col = ferry_core::schema::FIELD_ORDER;
    put(
        &db,
        "item",
        vec![
            doc! { "_id": 1, "a": 1, "b": "x" },
            doc! { "_id": 2, "b": "y", "a": 2 },
            doc! { "_id": 3, "c": true, "a": 3 },
        ],
    )
    .await;
    let schema = store.table_schema("item").await.expect("schema").expect("item");
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["_id", "a", "b", "c"], "the order is no field");
    assert_eq!(schema.carried, s(&[order_col]));
    let cols = ["_id", "a", "b", "c", order_col];
    let rows = scan(&*store, scan_req("item", &cols, None, None)).await;
    assert_eq!(rows[1][4], order(&["_id", "b", "a"]), "{rows:?}");

    // (a) Inserted elsewhere: each document in its own order, byte for byte.
    let mut txn = store.begin().await.expect("begin");
    txn.insert("word", &s(&cols), &rows).await.expect("insert");
    txn.commit().await.expect("commit");
    assert_eq!(db.raw_docs("word").await, db.raw_docs("item").await);

    // (b) An update carrying another order: the document takes it, a new
    // field at its place; one keeping its order is a `$set`.
    let original = db.raw_docs("item").await;
    let set = s(&["a", "d", order_col]);
    let mut txn = store.begin().await.expect("begin");
    txn.update(
        "item",
        &s(&["_id"]),
        &set,
        &[
            (
                vec![j("1")],
                vec![j("10"), j("\"new\""), order(&["_id", "d", "b", "a"])],
            ),
            (vec![j("2")], vec![j("20"), Value::Null, order(&["_id", "b", "a"])]),
        ],
    )
    .await
    .expect("update");
    txn.commit().await.expect("commit");
    let now = db.raw_docs("item").await;
    assert_eq!(now[0], bytes(&doc! { "_id": 1, "d": "new", "b": "x", "a": 10 }));
    assert_eq!(now[1], bytes(&doc! { "_id": 2, "b": "y", "a": 20 }));
    let field = db.mongo().await.collection::<Document>("item");
    assert!(
        field
            .find_one(doc! { order_col: { "$exists": true } })
            .await
            .expect("find")
            .is_none(),
        "the order is never stored"
    );

    // (c) A field removed, then the before-images written back (as a
    // revert does): every document byte-identical to before.
    let mut txn = store.begin().await.expect("begin");
    txn.update(
        "item",
        &s(&["_id"]),
        &s(&["c", order_col]),
        &[(vec![j("3")], vec![Value::Null, order(&["_id", "a"])])],
    )
    .await
    .expect("update");
    txn.commit().await.expect("commit");
    assert_eq!(db.raw_docs("item").await[2], bytes(&doc! { "_id": 3, "a": 3 }));
    let mut txn = store.begin().await.expect("begin");
    txn.update(
        "item",
        &s(&["_id"]),
        &s(&["a", "b", "c", "d", order_col]),
        // The before-images: a, b, c as read, d absent, the order read.
        &rows
            .iter()
            .map(|r| {
                let mut v = r[1..4].to_vec();
                v.extend([Value::Null, r[4].clone()]);
                (vec![r[0].clone()], v)
            })
            .collect::<Vec<_>>(),
    )
    .await
    .expect("restore");
    txn.commit().await.expect("commit");
    assert_eq!(db.raw_docs("item").await, original, "restored byte for byte");

    // An upsert of a new document carrying its order.
    let mut txn = store.begin().await.expect("begin");
    txn.upsert(
        "item",
        &s(&["_id"]),
        &s(&["_id", "a", "b", order_col]),
        &[vec![j("4"), j("4"), j("\"z\""), order(&["b", "_id", "a"])]],
    )
    .await
    .expect("upsert");
    txn.commit().await.expect("commit");
    let four = field.find_one(doc! { "_id": 4 }).await.expect("find").expect("doc 4");
    assert_eq!(four.keys().collect::<Vec<_>>(), ["_id", "b", "a"], "{four}");

    // A real field of that name: refused, saying what to do.
    put(&db, "clash", vec![doc! { "_id": 1, order_col: [1] }]).await;
    let e = store.table_schema("clash").await.expect_err("a clash");
    assert!(e.message.contains(order_col) && e.message.contains("rename"), "{e}");
    assert_eq!(e.table.as_deref(), Some("clash"), "{e}");
}

/// Updates and upserts of more rows than a batch go a batch of `update`
/// statements per round trip; a statement failing in the middle names
/// its row and the transaction writes nothing.
pub async fn large_updates_are_batched() {
    let Some((db, store)) = setup("mongo_large_updates").await else {
        return;
    };
    let n = ferry_db::BATCH_ROWS * 2 + 5;
    let m = db.mongo().await.collection::<Document>("item");
    let docs: Vec<Document> = (0..n as i32)
        .map(|i| doc! { "_id": i, "slug": format!("s{i}"), "n": i })
        .chain([doc! { "_id": -1, "slug": "taken" }])
        .collect();
    put(&db, "item", docs).await;
    m.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! { "slug": 1 })
            .options(mongodb::options::IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await
    .expect("a unique index");
    let before = db.raw_docs("item").await;
    let order_col = ferry_core::schema::FIELD_ORDER;
    let update = |bad: Option<usize>, reorder: bool| -> Vec<(Row, Row)> {
        (0..n)
            .map(|i| {
                let slug = if bad == Some(i) {
                    "taken".to_string()
                } else {
                    format!("new{i}")
                };
                let mut v = vec![j(&format!("\"{slug}\""))];
                if reorder {
                    v.push(order(&["_id", "n", "slug"]));
                }
                (vec![j(&i.to_string())], v)
            })
            .collect()
    };
    for reorder in [false, true] {
        let set = if reorder { s(&["slug", order_col]) } else { s(&["slug"]) };
        let at = ferry_db::BATCH_ROWS + 17;
        let mut txn = store.begin().await.expect("begin");
        let e = txn
            .update("item", &s(&["_id"]), &set, &update(Some(at), reorder))
            .await
            .expect_err("a duplicate slug");
        assert_eq!(
            (e.kind, e.row, e.table.as_deref()),
            (ferry_db::DbErrorKind::Constraint, Some(at), Some("item")),
            "{e}"
        );
        drop(txn);
        assert_eq!(db.raw_docs("item").await, before, "nothing written");
    }

    let mut txn = store.begin().await.expect("begin");
    txn.update("item", &s(&["_id"]), &s(&["slug", order_col]), &update(None, true))
        .await
        .expect("update");
    txn.commit().await.expect("commit");
    assert_eq!(
        m.count_documents(doc! { "slug": { "$regex": "^new" } })
            .await
            .expect("count"),
        n as u64
    );
    let last = m
        .find_one(doc! { "_id": n as i32 - 1 })
        .await
        .expect("find")
        .expect("doc");
    assert_eq!(
        bytes(&last),
        bytes(&doc! { "_id": n as i32 - 1, "n": n as i32 - 1, "slug": format!("new{}", n - 1) }),
        "the order the row carries, in the last batch too"
    );

    // Upserts across batches: existing rows updated, new ones inserted; a
    // failing one named.
    let cols = s(&["_id", "slug"]);
    let rows: Vec<Row> = (0..n + 10)
        .map(|i| vec![j(&i.to_string()), j(&format!("\"up{i}\""))])
        .collect();
    let mut bad = rows.clone();
    let at = ferry_db::BATCH_ROWS * 2 + 1;
    bad[at][1] = j("\"taken\"");
    let mut txn = store.begin().await.expect("begin");
    let e = txn
        .upsert("item", &s(&["_id"]), &cols, &bad)
        .await
        .expect_err("a duplicate slug");
    assert_eq!((e.kind, e.row), (ferry_db::DbErrorKind::Constraint, Some(at)), "{e}");
    drop(txn);
    let mut txn = store.begin().await.expect("begin");
    txn.upsert("item", &s(&["_id"]), &cols, &rows).await.expect("upsert");
    txn.commit().await.expect("commit");
    assert_eq!(
        m.count_documents(doc! { "slug": { "$regex": "^up" } })
            .await
            .expect("count"),
        (n + 10) as u64
    );
}

/// A raw scan agrees with the decoded scan: the same keys and flags, and
/// each image decodes into the row the decoded scan reads, every BSON type
/// and the carried field order included. Byte-equal documents have equal
/// images; a field absent and a field `null` differ, and so do two
/// embedded documents with their fields in another order (which decode
/// equal: the planner then compares them canonically).
pub async fn raw_scans_decode_as_scans() {
    let Some((db, store)) = setup("mongo_raw_scans").await else {
        return;
    };
    let mut reordered = every_type(4);
    reordered.insert("nested", doc! { "alpha": { "b": [], "y": 2i64 }, "zeta": 1i32 });
    let mut absent = every_type(5);
    absent.remove("nothing");
    put(
        &db,
        "item",
        vec![
            every_type(1),
            every_type(2),
            doc! { "_id": 3, "s": "x" },
            reordered,
            absent,
        ],
    )
    .await;
    let schema = store.table_schema("item").await.expect("schema").expect("item");
    let mut cols: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    cols.push(ferry_core::schema::FIELD_ORDER);
    let flag = Predicate::native(r#"{"s": "x"}"#);
    for filter in [None, Some(Predicate::native(r#"{"_id": {"$gte": 2}}"#))] {
        let req = scan_req("item", &cols, filter.clone(), Some(flag.clone()));
        let rows = scan(&*store, req.clone()).await;
        let mut rx = store.scan_raw(req).await.expect("scan_raw");
        let (mut got, mut images) = (Vec::new(), Vec::new());
        while let Some(b) = rx.recv().await {
            let mut b = b.expect("batch");
            for i in 0..b.len() {
                let mut row = b.take_key(i);
                row.extend(rx.decode(b.image(i)).expect("every image decodes"));
                row.push(Value::Bool(b.flag(i)));
                images.push(b.image(i).to_vec());
                got.push(row);
            }
        }
        assert_eq!(got, rows, "{filter:?}: raw rows decode as the scan reads them");
        if filter.is_none() {
            assert_eq!(got.len(), 5);
            assert_eq!(images[0], images[1], "byte-equal documents");
            assert_ne!(images[0], images[3], "an embedded document's fields in another order");
            assert_ne!(images[0], images[4], "a field absent and a field null");
            // The fields after `_id`, but the carried order, canonically.
            let canonical = |row: &Row| {
                let mut buf = Vec::new();
                for v in &row[1..cols.len() - 1] {
                    ferry_core::canonical::encode_value(&mut buf, v);
                }
                buf
            };
            assert_eq!(
                canonical(&got[0]),
                canonical(&got[3]),
                "fields in another order decode to equal values"
            );
            assert_eq!(got[2][cols.len()], Value::Bool(true), "the flag's filter document");
        }
    }
}

/// Under the writer lock, a collection's schema is read once: the schema
/// read under the lock serves the lock's later reads (a promotion checks
/// the schema again before writing, and its transaction encodes with it)
/// until a transaction commits. A schema read before the lock does not
/// serve, nor does one once the lock is gone.
pub async fn a_schema_read_under_the_lock_serves_until_a_commit() {
    let Some((db, store)) = setup("mongo_schema_under_lock").await else {
        return;
    };
    put(&db, "item", vec![doc! { "_id": 1, "a": 1 }]).await;
    let items = db.mongo().await.collection::<Document>("item");
    let fields = |s: Option<ferry_core::schema::TableSchema>| -> Vec<String> {
        s.expect("item").columns.iter().map(|c| c.name.clone()).collect()
    };
    let add = |id: i32, field: &'static str| {
        let items = items.clone();
        async move {
            items.insert_one(doc! { "_id": id, field: 1 }).await.expect("insert");
        }
    };
    assert_eq!(fields(store.table_schema("item").await.expect("schema")), ["_id", "a"]);
    add(2, "b").await;
    let held = store.try_lock_writer().await.expect("try_lock").expect("free");
    assert_eq!(
        fields(store.table_schema("item").await.expect("schema")),
        ["_id", "a", "b"],
        "a read from before the lock does not serve"
    );
    add(3, "c").await;
    assert_eq!(
        fields(store.table_schema("item").await.expect("schema")),
        ["_id", "a", "b"],
        "the read under the lock serves"
    );
    let txn = store.begin().await.expect("begin");
    txn.commit().await.expect("commit");
    assert_eq!(
        fields(store.table_schema("item").await.expect("schema")),
        ["_id", "a", "b", "c"],
        "a commit ends it"
    );
    add(4, "d").await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        fields(store.table_schema("item").await.expect("schema")),
        ["_id", "a", "b", "c", "d"],
        "without the lock, every read is read"
    );
}

/// Lookups by more values than one `$in` lists (the store sends them in
/// lists of 64) find every one: a fetch of 200 keys with a flag, the
/// flags of a scan of 300 documents (decoded and raw), and a delete of
/// 150 values.
pub async fn lookups_of_many_values_find_every_one() {
    let Some((db, store)) = setup("mongo_many_values").await else {
        return;
    };
    let n = 300;
    put(
        &db,
        "item",
        (0..n).map(|i| doc! { "_id": i, "even": i % 2 == 0 }).collect(),
    )
    .await;
    let even = Predicate::native(r#"{"even": true}"#);
    let wanted: Vec<Row> = (0..200).map(|i| vec![j(&i.to_string())]).collect();
    let mut got = store
        .fetch(FetchRequest {
            table: "item".into(),
            columns: s(&["_id"]),
            match_columns: s(&["_id"]),
            values: wanted.clone(),
            flag: Some(even.clone()),
            filter: None,
            fixed: Vec::new(),
        })
        .await
        .expect("fetch");
    got.sort_by_key(|r| r[0].display_text().parse::<i32>().expect("an integer _id"));
    let want: Vec<Row> = (0..200)
        .map(|i| vec![j(&i.to_string()), Value::Bool(i % 2 == 0)])
        .collect();
    assert_eq!(got, want, "every key fetched, each flagged");

    let req = scan_req("item", &["_id", "even"], None, Some(even));
    let flags: Vec<Value> = scan(&*store, req.clone())
        .await
        .into_iter()
        .map(|r| r[2].clone())
        .collect();
    let want: Vec<Value> = (0..n).map(|i| Value::Bool(i % 2 == 0)).collect();
    assert_eq!(flags, want, "a decoded scan's flags");
    let mut rx = store.scan_raw(req).await.expect("scan_raw");
    let mut raw_flags = Vec::new();
    while let Some(b) = rx.recv().await {
        let b = b.expect("batch");
        raw_flags.extend((0..b.len()).map(|i| Value::Bool(b.flag(i))));
    }
    assert_eq!(raw_flags, want, "a raw scan's flags");

    let mut txn = store.begin().await.expect("begin");
    let gone: Vec<Value> = (0..150).map(|i| j(&i.to_string())).collect();
    txn.delete_in("item", &[], "_id", &gone).await.expect("delete_in");
    txn.commit().await.expect("commit");
    let left = db.raw_docs("item").await.len();
    assert_eq!(left, (n - 150) as usize, "every value deleted");
}
