//! The history and audit pages over HTTP, on the real binary and real
//! SQLite files: a promotion listed and shown before and after, revert
//! restoring the target exactly, a revert refused when rows changed since
//! and then forced, a revert without the right, and the audit trail
//! filtered and paged.

use super::reviews_pages::{audit_trail, page, post, promote_as, seed, testid};
use super::support::Server;
use crate::common::{dump, dump_tables, summary, Fixture};

/// `(table, id, action, reason)` of each entry of a plan.
type Summary = Vec<(String, i64, String, Option<String>)>;

/// The application tables of production, every cell's bytes, and the plan
/// from staging (which shows whether the sync base is what it was).
fn production_state(f: &Fixture) -> (String, Summary) {
    (
        dump_tables(&f.production(), &["cities", "businesses"]),
        summary(&f.diff_json(&[])),
    )
}

/// alice's promotion into production (not reviewed): its id.
fn promoted(f: &Fixture) -> String {
    let v = promote_as(f, "alice").expect(0).json();
    v["promotion"]
        .as_str()
        .unwrap_or_else(|| panic!("no promotion: {v:#}"))
        .to_string()
}

#[tokio::test]
async fn history_lists_a_promotion_and_its_page_shows_its_rows_before_and_after() {
    let f = seed(false);
    let id = promoted(&f);
    let s = Server::start(f.path(), &[]);
    let alice = s.sign_in("alice", "pw-alice").await;
    for path in ["/history", "/history?env=production"] {
        let (status, html) = page(&alice, path).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains(&format!("href=\"/promotions/{id}\"")), "{path}: {html}");
    }
    let (_, staging) = page(&alice, "/history?env=staging").await;
    assert!(!staging.contains(&id) && staging.contains("no-promotions"), "{staging}");

    let (status, html) = page(&alice, &format!("/promotions/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(testid(&html, "promotion-user").as_deref(), Some("alice"), "{html}");
    // The revision: before and after; the new rows: no row before.
    let revised = html
        .split("data-key=\"businesses:1\" data-action=\"update\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no businesses:1 update: {html}"));
    let revised = revised.split("</section>").next().unwrap_or_default();
    assert!(
        revised.contains("Café Olé ☕<") && revised.contains("Café Olé ☕ v2"),
        "{revised}"
    );
    assert!(html.contains("data-key=\"cities:2\" data-action=\"insert\""), "{html}");
    assert!(
        html.contains("Zürich 🏔️") && html.contains("Bäckerei &lt;b&gt;&amp;"),
        "{html}"
    );
    // alice may not revert in production: no button, and why.
    assert!(
        !html.contains("revert-button") && html.contains("revert-not-allowed"),
        "{html}"
    );
    // bob may: the preview of what the revert restores, and the button.
    let bob = s.sign_in("bob", "pw-bob").await;
    let (_, html) = page(&bob, &format!("/promotions/{id}")).await;
    assert!(html.contains("data-testid=\"revert-button\""), "{html}");
    let preview = html
        .split("data-testid=\"revert-preview\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no preview: {html}"));
    assert!(
        preview.contains("restore") && preview.contains("Café Olé ☕<"),
        "{preview}"
    );
    assert!(preview.contains("delete") && preview.contains("cities:2"), "{preview}");
    // An unknown promotion is a 404 page.
    let (status, missing) = page(&bob, "/promotions/01NOPE").await;
    assert_eq!(status, 404, "{missing}");
}

#[tokio::test]
async fn revert_restores_the_target_exactly_and_is_listed() {
    let f = seed(false);
    let before = production_state(&f);
    let id = promoted(&f);
    assert_ne!(production_state(&f), before);
    let s = Server::start(f.path(), &[]);
    let bob = s.sign_in("bob", "pw-bob").await;
    let (status, done) = post(&bob, &format!("/promotions/{id}/revert"), &[]).await;
    assert_eq!(status, 200, "{done}");
    let revert = testid(&done, "promotion-id").unwrap_or_else(|| panic!("no promotion-id: {done}"));
    assert_ne!(revert, id);
    assert_eq!(
        production_state(&f),
        before,
        "the revert restores every byte and the sync base"
    );
    // The promotion now says who reverted it, and offers no second revert.
    let (_, html) = page(&bob, &format!("/promotions/{id}")).await;
    assert!(html.contains(&format!("href=\"/promotions/{revert}\"")), "{html}");
    assert!(
        html.contains("reverted-by") && !html.contains("revert-button"),
        "{html}"
    );
    let (_, list) = page(&bob, "/history?env=production").await;
    assert!(list.contains(&revert) && list.contains(&id), "{list}");
    assert_eq!(
        audit_trail(&f, "production").last().cloned(),
        Some(("bob".into(), "revert".into(), "ok".into()))
    );
}

#[tokio::test]
async fn a_revert_over_rows_changed_since_is_refused_then_forced() {
    let f = seed(false);
    let before = production_state(&f);
    let id = promoted(&f);
    f.exec("production", "UPDATE businesses SET name = 'Edited since' WHERE id = 1");
    let s = Server::start(f.path(), &[]);
    let bob = s.sign_in("bob", "pw-bob").await;
    let edited = dump(&f.production());
    // The page says so before the click, and offers the forced revert only.
    let (_, html) = page(&bob, &format!("/promotions/{id}")).await;
    assert!(html.contains("data-testid=\"notice-warning\""), "{html}");
    assert!(html.contains("businesses:1 (column name)"), "{html}");
    assert!(
        html.contains("data-testid=\"revert-force\"") && !html.contains("revert-button"),
        "{html}"
    );
    assert_eq!(dump(&f.production()), edited, "a page writes nothing");
    // A plain revert (a page from before the edit) is refused.
    let (status, refused) = post(&bob, &format!("/promotions/{id}/revert"), &[]).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.contains("data-testid=\"notice-error\""), "{refused}");
    assert!(refused.contains("changed since"), "{refused}");
    assert!(refused.contains("data-testid=\"revert-force\""), "{refused}");
    assert_eq!(dump(&f.production()), edited, "a refused revert writes nothing");
    let (status, done) = post(&bob, &format!("/promotions/{id}/revert"), &[("force", "1")]).await;
    assert_eq!(status, 200, "{done}");
    assert!(testid(&done, "promotion-id").is_some(), "{done}");
    assert_eq!(production_state(&f), before, "forced: the before-images are back");
}

#[tokio::test]
async fn a_revert_without_the_right_is_refused_and_nothing_is_written() {
    let f = seed(false);
    let id = promoted(&f);
    let s = Server::start(f.path(), &[]);
    let alice = s.sign_in("alice", "pw-alice").await;
    let promoted = dump(&f.production());
    for force in [None, Some("1")] {
        let fields: Vec<(&str, &str)> = force.map(|v| ("force", v)).into_iter().collect();
        let (status, refused) = post(&alice, &format!("/promotions/{id}/revert"), &fields).await;
        assert_eq!(status, 403, "{refused}");
        assert!(refused.contains("data-code=\"denied\""), "{refused}");
        assert!(!refused.contains("revert-force"), "{refused}");
        assert_eq!(dump(&f.production()), promoted);
    }
    let trail = audit_trail(&f, "production");
    assert_eq!(
        trail.last().cloned(),
        Some(("alice".into(), "revert".into(), "denied".into())),
        "{trail:?}"
    );
}

/// The `data-id`s of the audit rows of a page.
fn audit_ids(html: &str) -> Vec<String> {
    html.split("data-testid=\"audit-row\" data-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The `href` of the next-page link, unescaped.
fn next_page(html: &str) -> Option<String> {
    let rest = html.split("data-testid=\"next-page\" href=\"").nth(1)?;
    Some(rest.split('"').next()?.replace("&amp;", "&"))
}

#[tokio::test]
async fn the_audit_page_filters_and_pages() {
    let f = seed(false);
    let id = promoted(&f);
    let s = Server::start(f.path(), &[]);
    let alice = s.sign_in("alice", "pw-alice").await;
    // 55 refusals, each audited: more than a page.
    for _ in 0..55 {
        let (status, _) = post(&alice, &format!("/promotions/{id}/revert"), &[]).await;
        assert_eq!(status, 403);
    }
    let bob = s.sign_in("bob", "pw-bob").await;
    let expected: Vec<String> = {
        let v = f
            .run(&["audit", "production", "--json", "--limit", "1000"])
            .expect(0)
            .json();
        let list = v.as_array().unwrap_or_else(|| panic!("not an array: {v:#}"));
        let mut ids: Vec<String> = list
            .iter()
            .map(|a| a["id"].as_str().unwrap_or("").to_string())
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids
    };
    // 1 baseline + 1 promotion + 55 refusals.
    assert_eq!(expected.len(), 57, "{expected:?}");

    // Every entry once, newest first, 50 then the rest.
    let (status, first) = page(&bob, "/audit").await;
    assert_eq!(status, 200, "{first}");
    let one = audit_ids(&first);
    assert_eq!(one.len(), 50, "{first}");
    let next = next_page(&first).unwrap_or_else(|| panic!("no next page: {first}"));
    let (_, second) = page(&bob, &next).await;
    let two = audit_ids(&second);
    assert!(next_page(&second).is_none(), "{second}");
    assert_eq!([one, two].concat(), expected);

    // Filtered by user and action: bob's baseline alone.
    let (_, bobs) = page(&bob, "/audit?env=&user=bob&action=").await;
    assert_eq!(audit_ids(&bobs).len(), 1, "{bobs}");
    assert!(
        bobs.contains("data-action=\"baseline\"") && !bobs.contains("data-user=\"alice\""),
        "{bobs}"
    );
    let (_, promotes) = page(&bob, "/audit?action=promote").await;
    assert_eq!(audit_ids(&promotes).len(), 1, "{promotes}");
    assert!(promotes.contains("data-user=\"alice\""), "{promotes}");
    // A filter keeps to its pages: alice's refusals, 50 and then 5, with the
    // filter carried by the next-page link.
    let (_, reverts) = page(&bob, "/audit?env=production&user=alice&action=revert").await;
    assert_eq!(audit_ids(&reverts).len(), 50, "{reverts}");
    let next = next_page(&reverts).unwrap_or_else(|| panic!("no next page: {reverts}"));
    assert!(next.contains("user=alice") && next.contains("action=revert"), "{next}");
    let (_, rest) = page(&bob, &next).await;
    assert_eq!(audit_ids(&rest).len(), 5, "{rest}");
    assert!(!rest.contains("data-action=\"promote\""), "{rest}");
    // By environment: nothing is audited in staging.
    let (_, staging) = page(&bob, "/audit?env=staging").await;
    assert!(
        audit_ids(&staging).is_empty() && staging.contains("no-audit"),
        "{staging}"
    );
    // An unknown environment is a usage error.
    let (status, _) = page(&bob, "/audit?env=nowhere").await;
    assert_eq!(status, 400);
    // So is a cursor no page gave.
    let (status, bad) = page(&bob, "/audit?cursor=made-up").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("not a cursor"), "{bad}");
}

/// The `data-id`s of the promotion rows of a history page.
fn promotion_ids(html: &str) -> Vec<String> {
    html.split("data-testid=\"promotion-row\" data-id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn history_pages_through_older_promotions() {
    let f = seed(false);
    let mut last = promoted(&f);
    let s = Server::start(f.path(), &[]);
    let bob = s.sign_in("bob", "pw-bob").await;
    // Each revert is a promotion too (a revert of a revert applies again):
    // 1 baseline + 1 promotion + 52 reverts, more than a page.
    for _ in 0..52 {
        let (status, done) = post(&bob, &format!("/promotions/{last}/revert"), &[]).await;
        assert_eq!(status, 200, "{done}");
        last = testid(&done, "promotion-id").unwrap_or_else(|| panic!("no promotion-id: {done}"));
    }
    let (status, first) = page(&bob, "/history?env=production").await;
    assert_eq!(status, 200, "{first}");
    let one = promotion_ids(&first);
    assert_eq!(one.len(), 50, "{first}");
    assert_eq!(one[0], last, "newest first");
    let next = next_page(&first).unwrap_or_else(|| panic!("no next page: {first}"));
    assert!(next.contains("env=production"), "{next}");
    let (_, second) = page(&bob, &next).await;
    let two = promotion_ids(&second);
    assert_eq!(two.len(), 4, "{second}");
    assert!(next_page(&second).is_none(), "{second}");
    let mut all = [one, two].concat();
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "no promotion on two pages");
    // Every environment at once pages the same way.
    let (_, every) = page(&bob, "/history").await;
    assert_eq!(promotion_ids(&every).len(), 50, "{every}");
}
