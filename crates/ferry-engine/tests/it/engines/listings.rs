//! The listings a front end pages through (issue 17): the audit trail
//! filtered by user and action (pages full however many entries the
//! filter drops, the cursor going on where the page stopped), promotions,
//! both merged across environments under one cursor, the open reviews read
//! without the closed ones; on every engine.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use ferry_core::plan::{Counts, Plan};
use ferry_core::selection::Selection;
use ferry_core::value::Value;
use ferry_db::records::{self, AuditEntry, PromotionRecord, Review};
use ferry_db::{meta, Store};
use ferry_engine::audit::{self, AuditFilter};
use ferry_engine::paging::{Cursor, Page, PageRequest};
use ferry_engine::registry::Envs;
use ferry_engine::views::AuditPageView;
use ferry_engine::{journal, reviews};

use super::support::{Eng, World};

const S: &str = "staging";
const P: &str = "production";

const ENGINES: [Eng; 3] = [Eng::Sqlite, Eng::Postgres, Eng::Mysql];

async fn world(test: &str, eng: Eng) -> Option<(World, Envs)> {
    let schema = |_: &str, _: Eng| "CREATE TABLE items (id integer PRIMARY KEY);".to_string();
    let w = World::new(test, &[(S, eng), (P, eng)], schema, "[tables.items]\n").await?;
    let envs = Envs::new(w.project.clone());
    Some((w, envs))
}

/// Audit entry `i`: users and actions cycle with different periods, and
/// `zed` acts rarely (every 37th), so a filter on them drops many entries
/// between two it keeps, across the engine's reads.
fn entry(env: &str, i: usize) -> AuditEntry {
    let user = match i {
        i if i % 37 == 0 => "zed",
        i if i % 3 == 0 => "ana",
        i if i % 3 == 1 => "bo",
        _ => "cy",
    };
    let action = if i.is_multiple_of(2) { "promote" } else { "approve" };
    let mut e = audit::entry(user, action, Some("elsewhere"), env);
    e.detail = format!("#{i}");
    e
}

/// Writes audit entries `range` into `store` in one transaction, oldest
/// first; gives them.
async fn write_audit(store: &dyn Store, range: std::ops::Range<usize>) -> Vec<AuditEntry> {
    let entries: Vec<AuditEntry> = range.map(|i| entry(store.env(), i)).collect();
    let mut txn = store.begin().await.expect("begin");
    for e in &entries {
        records::write_audit(txn.as_mut(), e)
            .await
            .expect("write an audit entry");
    }
    txn.commit().await.expect("commit");
    entries
}

/// Every page of a listing with `limit`, as the details of each page; the
/// cursor is handed back as its text, as a front end does.
async fn pages<T, F, Fut>(limit: usize, label: impl Fn(&T) -> String, list: F) -> Vec<Vec<String>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = ferry_engine::Result<Page<T>>>,
{
    let mut out = Vec::new();
    let mut req = PageRequest::first(limit);
    for _ in 0..1000 {
        let page = list(req.clone()).await.expect("a page");
        assert!(page.items.len() <= limit, "a page holds at most its limit");
        out.push(page.items.iter().map(&label).collect::<Vec<_>>());
        match page.next {
            Some(c) => {
                assert_eq!(
                    out.last().map(Vec::len),
                    Some(limit),
                    "a page short of its limit has a next page"
                );
                req.after = Some(Cursor::from_text(c.as_text().to_string()));
            }
            None => return out,
        }
    }
    panic!("the listing does not end");
}

/// The pages of `got` hold `want` in order, every page but the last full
/// (the last may be empty only after a full one).
fn assert_pages(got: &[Vec<String>], want: &[String], limit: usize, what: &str) {
    assert_eq!(got.concat(), want, "{what}: newest first, none missed or twice");
    let (last, full) = got.split_last().expect("one page at least");
    assert!(full.iter().all(|p| p.len() == limit), "{what}: {got:?}");
    assert!(last.len() <= limit, "{what}");
}

fn details(entries: &[AuditEntry], keep: impl Fn(&AuditEntry) -> bool) -> Vec<String> {
    let mut kept: Vec<&AuditEntry> = entries.iter().filter(|e| keep(e)).collect();
    kept.sort_by(|a, b| b.id.cmp(&a.id));
    kept.iter().map(|e| format!("{} {}", e.to, e.detail)).collect()
}

fn label(e: &AuditEntry) -> String {
    format!("{} {}", e.to, e.detail)
}

#[tokio::test]
async fn the_audit_trail_pages_through_a_filter() {
    for eng in ENGINES {
        let test = format!("listings::{}::audit", eng.name());
        let Some((_w, envs)) = world(&test, eng).await else {
            continue;
        };
        let store = envs.open(P).await.expect("open");
        // Nothing written yet (not even Ferry's tables): one empty last page.
        let empty = audit::page(&*store, &AuditFilter::default(), PageRequest::first(5))
            .await
            .expect("an empty trail");
        assert!(empty.items.is_empty() && empty.next.is_none(), "{test}");
        let written = write_audit(&*store, 0..250).await;

        let filters = [
            AuditFilter::default(),
            AuditFilter {
                user: Some("zed".into()),
                action: None,
            },
            AuditFilter {
                user: Some("bo".into()),
                action: Some("approve".into()),
            },
            AuditFilter {
                user: None,
                action: Some("promote".into()),
            },
        ];
        for filter in &filters {
            for limit in [1, 2, 7, 100] {
                let what = format!("{test}: {filter:?}, limit {limit}");
                let got = pages(limit, label, |req| {
                    let store = store.clone();
                    async move { audit::page(&*store, filter, req).await }
                })
                .await;
                assert_pages(&got, &details(&written, |e| filter.keeps(e)), limit, &what);
            }
        }
        // As a front end sends it: `ferry audit --json`'s entries and the cursor.
        let first = audit::page(&*store, &AuditFilter::default(), PageRequest::first(2))
            .await
            .expect("a page");
        let next = first.next.clone().expect("a next page");
        let json = serde_json::to_value(AuditPageView::new(first)).expect("the view serializes");
        assert_eq!(json["next"], serde_json::json!(next.as_text()), "{test}");
        let newest = &written[249];
        assert_eq!(
            json["entries"][0],
            serde_json::json!({
                "id": newest.id, "at": newest.at, "user": newest.user, "action": "approve",
                "from": "elsewhere", "to": P, "result": "ok", "detail": "#249", "ref_id": null,
            }),
            "{test}"
        );
        assert_eq!(json["entries"].as_array().map(Vec::len), Some(2), "{test}");
        // A filter nothing matches: one empty last page.
        let nobody = AuditFilter {
            user: Some("nobody".into()),
            action: None,
        };
        let none = audit::page(&*store, &nobody, PageRequest::first(10))
            .await
            .expect("a page");
        assert!(none.items.is_empty() && none.next.is_none(), "{test}");
        // A limit of 0 reads nothing.
        let zero = audit::page(&*store, &AuditFilter::default(), PageRequest::first(0))
            .await
            .expect("a page");
        assert!(zero.items.is_empty() && zero.next.is_none(), "{test}");
    }
}

#[tokio::test]
async fn a_cursor_no_page_gave_is_refused_or_read_as_a_time() {
    for eng in ENGINES {
        let test = format!("listings::{}::cursors", eng.name());
        let Some((_w, envs)) = world(&test, eng).await else {
            continue;
        };
        let store = envs.open(P).await.expect("open");
        let written = write_audit(&*store, 0..5).await;
        let at = |text: &str| PageRequest {
            limit: 10,
            after: Some(Cursor::from_text(text.to_string())),
        };
        for bad in ["not-a-cursor", "", "'; DROP TABLE _ferry_audit; --", "m00-"] {
            let err = audit::page(&*store, &AuditFilter::default(), at(bad))
                .await
                .err()
                .unwrap_or_else(|| panic!("{test}: the cursor {bad:?} was accepted"));
            assert_eq!(err.code(), "usage", "{test}: {err}");
            assert!(err.to_string().contains("not a cursor"), "{test}: {err}");
            let err = journal::page(&*store, at(bad)).await.expect_err("refused");
            assert_eq!(err.code(), "usage", "{test}: {err}");
        }
        // A well-formed id that is no record's: the records older than it.
        let older_than_all = audit::page(&*store, &AuditFilter::default(), at("00000000000000000000000000"))
            .await
            .expect("a page");
        assert!(
            older_than_all.items.is_empty() && older_than_all.next.is_none(),
            "{test}"
        );
        let newer = journal::new_id();
        let all = audit::page(&*store, &AuditFilter::default(), at(&newer.to_lowercase()))
            .await
            .expect("a page");
        assert_eq!(all.items.len(), written.len(), "{test}");
        // The cursor of an entry, in lower case too: the entries after it.
        let third = &written[2].id;
        let after = audit::page(&*store, &AuditFilter::default(), at(&third.to_lowercase()))
            .await
            .expect("a page");
        assert_eq!(
            after.items.iter().map(label).collect::<Vec<_>>(),
            details(&written[..2], |_| true),
            "{test}"
        );
    }
}

fn promotion(env: &str, i: usize) -> PromotionRecord {
    PromotionRecord {
        id: journal::new_id(),
        kind: "promote".into(),
        from: Some("elsewhere".into()),
        to: env.to_string(),
        user: "ana".into(),
        at: format!("2026-12-06 00:00:00.{i:06}"),
        selection: Vec::new(),
        counts: Counts::default(),
        reverts: None,
        reverted_by: None,
    }
}

#[tokio::test]
async fn every_environment_pages_as_one_listing() {
    for eng in ENGINES {
        let test = format!("listings::{}::merged", eng.name());
        let Some((_w, envs)) = world(&test, eng).await else {
            continue;
        };
        let stores: Vec<Arc<dyn Store>> = vec![envs.open(S).await.expect("open"), envs.open(P).await.expect("open")];
        // Nothing anywhere: one empty last page.
        let empty = audit::page_all(&stores, &AuditFilter::default(), PageRequest::first(3))
            .await
            .expect("a page");
        assert!(empty.items.is_empty() && empty.next.is_none(), "{test}");
        // Interleaved in time: a run in one environment, then the other.
        let mut written = Vec::new();
        let mut promoted = Vec::new();
        for (n, (store, range)) in [(1, 0..7), (0, 7..9), (1, 9..10), (0, 10..30), (1, 30..33)]
            .into_iter()
            .map(|(s, r)| (stores[s].clone(), r))
            .enumerate()
        {
            written.extend(write_audit(&*store, range.clone()).await);
            let mut txn = store.begin().await.expect("begin");
            for i in range {
                let p = promotion(store.env(), n * 100 + i);
                records::write_promotion(txn.as_mut(), &p, Vec::new(), None)
                    .await
                    .expect("write a promotion");
                promoted.push(p);
            }
            txn.commit().await.expect("commit");
        }
        let filters = [
            AuditFilter::default(),
            AuditFilter {
                user: Some("ana".into()),
                action: None,
            },
        ];
        for filter in &filters {
            for limit in [1, 4, 33, 50] {
                let what = format!("{test}: {filter:?}, limit {limit}");
                let got = pages(limit, label, |req| {
                    let stores = &stores;
                    async move { audit::page_all(stores, filter, req).await }
                })
                .await;
                assert_pages(&got, &details(&written, |e| filter.keeps(e)), limit, &what);
            }
        }
        promoted.sort_by(|a, b| b.id.cmp(&a.id));
        let want: Vec<String> = promoted.iter().map(|p| p.id.clone()).collect();
        let got = pages(
            5,
            |p: &PromotionRecord| p.id.clone(),
            |req| {
                let stores = &stores;
                async move { journal::page_all(stores, req).await }
            },
        )
        .await;
        assert_pages(&got, &want, 5, &test);
        // One environment's promotions alone, page by page.
        let got = pages(
            4,
            |p: &PromotionRecord| p.id.clone(),
            |req| {
                let store = stores[1].clone();
                async move { journal::page(&*store, req).await }
            },
        )
        .await;
        let mine: Vec<String> = promoted.iter().filter(|p| p.to == P).map(|p| p.id.clone()).collect();
        assert_pages(&got, &mine, 4, &test);
        // A cursor of one environment is not a cursor of all of them.
        let one = journal::page(&*stores[1], PageRequest::first(1)).await.expect("a page");
        let err = journal::page_all(
            &stores,
            PageRequest {
                limit: 3,
                after: one.next,
            },
        )
        .await
        .expect_err("refused");
        assert_eq!(err.code(), "usage", "{test}: {err}");
    }
}

/// A review of `env` with `status`; a closed one's record holds no plan
/// that reads (as if damaged), which a listing of the open ones never sees.
fn review_row(env: &str, status: &str) -> Vec<Value> {
    let plan: Plan = serde_json::from_value(serde_json::json!({
        "format": 1, "from": S, "to": env, "created_at": "2026-12-06T00:00:00Z",
        "selection": [], "tables": ["items"], "entries": [],
    }))
    .expect("a plan");
    let review = Review {
        id: journal::new_id(),
        from: S.into(),
        to: env.into(),
        user: "ana".into(),
        at: "2026-12-06T00:00:00Z".into(),
        status: status.into(),
        plan,
        decided: BTreeMap::new(),
        draft_promotion: None,
        decided_by: None,
        decided_at: None,
    };
    let mut row = records::review_row(&review);
    if status != "open" {
        row[6] = Value::Text("{\"plan\": \"damaged\"}".into());
    }
    row
}

#[tokio::test]
async fn the_open_reviews_are_read_without_the_closed_ones() {
    for eng in ENGINES {
        let test = format!("listings::{}::open_reviews", eng.name());
        let Some((w, envs)) = world(&test, eng).await else {
            continue;
        };
        let store = envs.open(P).await.expect("open");
        assert!(reviews::open(&*store).await.expect("no reviews").is_empty(), "{test}");
        let mut txn = store.begin().await.expect("begin");
        let mut open = Vec::new();
        for status in ["approved", "open", "rejected", "partly-approved", "open", "approved"] {
            let row = review_row(P, status);
            if status == "open" {
                open.push(row[0].display_text());
            }
            txn.insert(meta::REVIEWS, &meta::columns(&meta::REVIEW_COLUMNS), &[row])
                .await
                .expect("write a review");
        }
        txn.commit().await.expect("commit");
        open.reverse();
        let got = reviews::open(&*store).await.expect("the open reviews");
        assert_eq!(got.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), open, "{test}");
        // Reading every review would meet the damaged closed ones.
        assert!(reviews::list(&*store).await.is_err(), "{test}");
        // A promotion checks the open reviews alone.
        w.db(S).exec("INSERT INTO items VALUES (1)").await;
        let plan = w.plan(S, P, &Selection::default()).await;
        reviews::check_open(&*store, &plan)
            .await
            .unwrap_or_else(|e| panic!("{test}: {e}"));
    }
}
