//! The checks of Ferry's own records through [`ferry_db::records::Records`]
//! (see `main.rs`): paged listings (newest first, limit, cursor, empty
//! pages), lookups by id, and the round trip of each record type.

use std::collections::BTreeMap;

use ferry_core::plan::{Counts, Plan};
use ferry_core::rules::SyncBase;
use ferry_core::Value;
use ferry_db::records::{self, AuditEntry, Decided, JournalRow, Page, PageRequest, PromotionRecord, Review};
use ferry_db::{meta, Store};

use crate::support::{Backend, Db};

async fn setup(b: Backend, test: &str) -> Option<(Db, std::sync::Arc<dyn Store>)> {
    let db = Db::create(b, test).await?;
    let store = db.open("production").await;
    Some((db, store))
}

fn promotion(id: &str) -> PromotionRecord {
    PromotionRecord {
        id: id.to_string(),
        kind: "promote".into(),
        from: Some("staging".into()),
        to: "production".into(),
        user: "ana".into(),
        at: format!("2026-01-01 00:00:00.{:0>6}", id.len()),
        selection: vec!["--table".into(), "item".into()],
        counts: Counts {
            insert: 2,
            update: 1,
            delete: 0,
            conflict: 0,
            skip: 3,
            synced: 0,
        },
        reverts: None,
        reverted_by: None,
    }
}

fn audit(id: &str) -> AuditEntry {
    AuditEntry {
        id: id.to_string(),
        at: "2026-01-01T00:00:00.000001Z".into(),
        user: "ana".into(),
        action: "promote".into(),
        from: Some("staging".into()),
        to: "production".into(),
        result: "denied".into(),
        detail: "ana may not promote into production".into(),
        ref_id: None,
    }
}

fn review(id: &str) -> Review {
    let plan: Plan = serde_json::from_value(serde_json::json!({
        "format": 1,
        "from": "staging",
        "to": "production",
        "created_at": "2026-01-01T00:00:00Z",
        "selection": [],
        "tables": ["item"],
        "entries": [],
    }))
    .expect("a plan");
    Review {
        id: id.to_string(),
        from: "staging".into(),
        to: "production".into(),
        user: "ana".into(),
        at: "2026-01-01T00:00:00Z".into(),
        status: "open".into(),
        plan,
        decided: BTreeMap::from([(
            0,
            Decided {
                approved: true,
                by: "bo".into(),
                at: "2026-01-02T00:00:00Z".into(),
                promotion: Some("01P".into()),
            },
        )]),
        draft_promotion: Some("01D".into()),
        decided_by: None,
        decided_at: None,
    }
}

/// Ids that sort as ULIDs do, by when they were made: `n` ascending.
fn id(prefix: &str, n: usize) -> String {
    format!("01{prefix}{n:06}")
}

/// Writes `n` promotions, audit entries and reviews in one transaction.
async fn write_all(store: &dyn Store, n: usize) {
    let mut txn = store.begin().await.expect("begin");
    for i in 0..n {
        records::write_promotion(txn.as_mut(), &promotion(&id("P", i)), Vec::new(), None)
            .await
            .expect("write a promotion");
        records::write_audit(txn.as_mut(), &audit(&id("A", i)))
            .await
            .expect("write an audit entry");
        txn.insert(
            meta::REVIEWS,
            &meta::columns(&meta::REVIEW_COLUMNS),
            &[records::review_row(&review(&id("R", i)))],
        )
        .await
        .expect("write a review");
    }
    txn.commit().await.expect("commit");
}

/// Every page of a listing with `limit`, as the ids of each page.
async fn pages<T, F, Fut>(limit: usize, id_of: fn(&T) -> String, list: F) -> Vec<Vec<String>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Page<T>>,
{
    let mut out = Vec::new();
    let mut req = PageRequest::first(limit);
    for _ in 0..100 {
        let page = list(req.clone()).await;
        assert!(page.items.len() <= limit, "a page holds at most its limit");
        out.push(page.items.iter().map(id_of).collect());
        match page.next {
            Some(c) => req.after = Some(c),
            None => return out,
        }
    }
    panic!("the listing does not end");
}

/// A store where Ferry never wrote has no records: every listing is one
/// empty last page, every lookup finds nothing.
pub async fn records_empty(b: Backend) {
    let Some((_db, store)) = setup(b, "records_empty").await else {
        return;
    };
    let r = store.records();
    let first = PageRequest::first(10);
    let p = r.promotions(&first).await.expect("promotions");
    assert!(p.items.is_empty() && p.next.is_none(), "{b:?}");
    let a = r.audit(&first).await.expect("audit");
    assert!(a.items.is_empty() && a.next.is_none(), "{b:?}");
    let v = r.reviews(&first).await.expect("reviews");
    assert!(v.items.is_empty() && v.next.is_none(), "{b:?}");
    assert_eq!(r.promotion("01X").await.expect("promotion"), None);
    assert!(r.review("01X").await.expect("review").is_none());
    assert!(r.reviews_with_status("open").await.expect("open reviews").is_empty());
    assert!(r.journal("01X").await.expect("journal").is_empty());

    // Ferry's tables exist but hold nothing yet.
    store.begin().await.expect("begin").commit().await.expect("commit");
    let p = r.promotions(&first).await.expect("promotions");
    assert!(p.items.is_empty() && p.next.is_none(), "{b:?}");
    let a = r.audit(&first).await.expect("audit");
    assert!(a.items.is_empty() && a.next.is_none(), "{b:?}");
}

/// Listings come newest first (by id), at most `limit` a page, each page
/// going on from its cursor, with no record twice or missed; a page of
/// exactly the rest is followed by an empty last page; a limit of 0 reads
/// nothing.
pub async fn records_paging(b: Backend) {
    let Some((_db, store)) = setup(b, "records_paging").await else {
        return;
    };
    let n = 23;
    write_all(&*store, n).await;
    let r = store.records();
    let newest_first = |prefix: &str| (0..n).rev().map(|i| id(prefix, i)).collect::<Vec<_>>();

    let got = pages(
        10,
        |p: &PromotionRecord| p.id.clone(),
        |req| {
            let r = &r;
            async move { r.promotions(&req).await.expect("promotions") }
        },
    )
    .await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3], "{b:?}");
    assert_eq!(
        got.concat(),
        newest_first("P"),
        "{b:?}: newest first, none twice or missed"
    );

    let got = pages(
        5,
        |a: &AuditEntry| a.id.clone(),
        |req| {
            let r = &r;
            async move { r.audit(&req).await.expect("audit") }
        },
    )
    .await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 5, 5, 3], "{b:?}");
    assert_eq!(got.concat(), newest_first("A"), "{b:?}");

    // 23 = 23 * 1: the page after the last full one is empty, and last.
    let got = pages(
        23,
        |v: &Review| v.id.clone(),
        |req| {
            let r = &r;
            async move { r.reviews(&req).await.expect("reviews") }
        },
    )
    .await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [23, 0], "{b:?}");
    assert_eq!(got.concat(), newest_first("R"), "{b:?}");

    // A cursor from a page carries on after it; a limit of 0 reads nothing.
    let first = r.promotions(&PageRequest::first(1)).await.expect("first");
    assert_eq!(first.items[0].id, id("P", n - 1));
    let next = first.next.expect("a cursor");
    let second = r
        .promotions(&PageRequest {
            limit: 2,
            after: Some(records::Cursor::from_text(next.as_text())),
        })
        .await
        .expect("second");
    assert_eq!(
        second.items.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
        [id("P", n - 2), id("P", n - 3)]
    );
    let none = r.promotions(&PageRequest::first(0)).await.expect("limit 0");
    assert!(none.items.is_empty() && none.next.is_none(), "{b:?}");
}

/// Each record type reads back as written: a promotion with its journal
/// rows (images of every kind of value, the previous sync base, the source
/// key) in the order written, an audit entry, a review with its plan and
/// decisions; and lookups by id find them.
pub async fn records_round_trip(b: Backend) {
    let Some((_db, store)) = setup(b, "records_round_trip").await else {
        return;
    };
    let mut p = promotion(&id("P", 7));
    p.kind = "revert".into();
    p.reverts = Some(id("P", 3));
    p.reverted_by = Some(id("P", 9));
    p.from = None;
    let rows: Vec<JournalRow> = (1..=1500)
        .map(|seq| JournalRow {
            seq,
            table: "item".into(),
            key: vec![("id".into(), Value::Int(seq))],
            action: if seq % 2 == 0 { "update".into() } else { "insert".into() },
            before: (seq % 2 == 0).then(|| {
                vec![
                    ("id".into(), Value::Int(seq)),
                    ("name".into(), Value::Text("été ☃".into())),
                    ("blob".into(), Value::Bytes(vec![0, 255, 7])),
                    ("price".into(), Value::Decimal("12.50".into())),
                    ("gone".into(), Value::Null),
                ]
            }),
            after: Some(vec![
                ("id".into(), Value::Int(seq)),
                ("name".into(), Value::Text(format!("row {seq}"))),
                ("ok".into(), Value::Bool(true)),
                ("ratio".into(), Value::Float(0.25)),
            ]),
            base_before: (seq % 3 == 0).then(|| SyncBase {
                row: [seq as u8; 16],
                fields: vec![[1; 8], [2; 8]],
                target_key: (seq % 2 == 0).then(|| "[\"slug\"]".to_string()),
            }),
            source_key: (seq % 5 == 0).then(|| format!("[{}]", seq + 1000)),
        })
        .collect();
    let a = audit(&id("A", 1));
    let mut a_null = audit(&id("A", 2));
    a_null.from = None;
    a_null.ref_id = Some(id("P", 7));
    a_null.detail = String::new();
    let v = review(&id("R", 1));

    let mut txn = store.begin().await.expect("begin");
    records::write_promotion(txn.as_mut(), &p, rows.clone(), Some("abc".into()))
        .await
        .expect("write the promotion");
    records::write_audit(txn.as_mut(), &a).await.expect("audit");
    records::write_audit(txn.as_mut(), &a_null).await.expect("audit");
    txn.insert(
        meta::REVIEWS,
        &meta::columns(&meta::REVIEW_COLUMNS),
        &[records::review_row(&v)],
    )
    .await
    .expect("review");
    txn.commit().await.expect("commit");

    let r = store.records();
    assert_eq!(r.promotion(&p.id).await.expect("promotion"), Some(p.clone()), "{b:?}");
    assert_eq!(r.promotion(&id("P", 8)).await.expect("promotion"), None, "{b:?}");
    assert_eq!(r.journal(&p.id).await.expect("journal"), rows, "{b:?}");
    assert!(r.journal(&id("P", 8)).await.expect("journal").is_empty());
    let listed = r.promotions(&PageRequest::first(5)).await.expect("promotions");
    assert_eq!(listed.items, vec![p.clone()], "{b:?}");
    let audited = r.audit(&PageRequest::first(5)).await.expect("audit");
    assert_eq!(audited.items, vec![a_null, a], "{b:?}");
    let got = r.review(&v.id).await.expect("review").expect("the review");
    assert_eq!(
        serde_json::to_value(&got).expect("json"),
        serde_json::to_value(&v).expect("json"),
        "{b:?}"
    );
    assert!(r.review(&id("R", 2)).await.expect("review").is_none());

    // The saved plan's hash finds the promotion only while it is live.
    assert_eq!(r.applied_as("abc").await.expect("applied_as"), None, "{b:?}: reverted");
    let mut txn = store.begin().await.expect("begin");
    records::set_reverted_by(txn.as_mut(), &p.id, None)
        .await
        .expect("live again");
    txn.commit().await.expect("commit");
    assert_eq!(
        r.applied_as("abc").await.expect("applied_as"),
        Some(p.id.clone()),
        "{b:?}"
    );
    assert_eq!(r.applied_as("abd").await.expect("applied_as"), None, "{b:?}");
    let mut txn = store.begin().await.expect("begin");
    records::set_reverted_by(txn.as_mut(), &p.id, Some("01REV"))
        .await
        .expect("reverted");
    txn.commit().await.expect("commit");
    let got = r.promotion(&p.id).await.expect("promotion").expect("the promotion");
    assert_eq!(got.reverted_by.as_deref(), Some("01REV"), "{b:?}");
    assert_eq!(r.applied_as("abc").await.expect("applied_as"), None, "{b:?}");
}

/// A record changed outside Ferry is an error of kind `Damaged` naming
/// the environment, the table, the record and the column.
pub async fn records_damaged(b: Backend) {
    let Some((db, store)) = setup(b, "records_damaged").await else {
        return;
    };
    write_all(&*store, 1).await;
    db.exec("UPDATE _ferry_promotions SET counts = 'zero'").await;
    let e = store
        .records()
        .promotions(&PageRequest::first(5))
        .await
        .expect_err("damaged counts");
    assert_eq!(e.kind, ferry_db::DbErrorKind::Damaged, "{b:?}");
    for part in [
        "`production`",
        "`_ferry_promotions`",
        &format!("id = {}", id("P", 0)),
        "`counts`",
    ] {
        assert!(e.message.contains(part), "{b:?}: {} does not name {part}", e.message);
    }
}

/// The reviews of one status come back newest first, all of them, and
/// none of another status (whose plans are not read: a damaged plan of a
/// closed review does not fail the listing of the open ones).
pub async fn records_by_status(b: Backend) {
    let Some((_db, store)) = setup(b, "records_by_status").await else {
        return;
    };
    let statuses = ["open", "approved", "open", "rejected", "partly-approved", "open"];
    let mut txn = store.begin().await.expect("begin");
    for (i, status) in statuses.iter().enumerate() {
        let mut r = review(&id("R", i));
        r.status = status.to_string();
        let mut row = records::review_row(&r);
        if *status != "open" {
            // A closed review whose plan does not read.
            row[6] = Value::Text("not a plan".into());
        }
        txn.insert(meta::REVIEWS, &meta::columns(&meta::REVIEW_COLUMNS), &[row])
            .await
            .expect("write a review");
    }
    txn.commit().await.expect("commit");
    let r = store.records();
    let open = r.reviews_with_status("open").await.expect("open reviews");
    assert_eq!(
        open.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        [id("R", 5), id("R", 2), id("R", 0)],
        "{b:?}"
    );
    assert!(open.iter().all(|v| v.status == "open" && v.decided.len() == 1), "{b:?}");
    assert!(
        r.reviews_with_status("withdrawn").await.expect("none").is_empty(),
        "{b:?}"
    );
    let err = r.reviews_with_status("approved").await.expect_err("a damaged plan");
    assert!(err.to_string().contains(&id("R", 1)), "{b:?}: {err}");
}

/// The registry of per-branch environments: none before Ferry wrote, each
/// written one read back by name, merged, removed.
pub async fn records_branches(b: Backend) {
    let Some((_db, store)) = setup(b, "records_branches").await else {
        return;
    };
    let r = store.records();
    assert!(r.branches().await.expect("branches").is_empty(), "{b:?}");
    let branch = |name: &str| records::BranchEnvRecord {
        name: name.to_string(),
        branch: format!("feature/{name}"),
        from: "production".into(),
        promotes_to: "preprod".into(),
        created_by: "ana".into(),
        created_at: "2026-01-01 00:00:00.000000".into(),
        merged_at: None,
        ttl_secs: None,
        expires_at: None,
    };
    let mut txn = store.begin().await.expect("begin");
    for name in ["zeta", "alpha"] {
        records::write_branch(&mut *txn, &branch(name)).await.expect("write");
    }
    txn.commit().await.expect("commit");
    assert_eq!(
        r.branches().await.expect("branches"),
        [branch("alpha"), branch("zeta")],
        "{b:?}"
    );

    let mut txn = store.begin().await.expect("begin");
    records::set_branch_merged(&mut *txn, "zeta", "2026-01-02 00:00:00", 60, "2026-01-02 00:01:00")
        .await
        .expect("merged");
    records::delete_branch(&mut *txn, "alpha").await.expect("delete");
    txn.commit().await.expect("commit");
    let mut merged = branch("zeta");
    merged.merged_at = Some("2026-01-02 00:00:00".into());
    merged.ttl_secs = Some(60);
    merged.expires_at = Some("2026-01-02 00:01:00".into());
    assert_eq!(r.branches().await.expect("branches"), [merged], "{b:?}");
}
