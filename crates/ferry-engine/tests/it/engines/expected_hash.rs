//! A promotion that applies only what was shown (issue 17): a front end
//! shows a plan with its content hash, and the promotion, planned again
//! under the target's writer lock, is refused when that plan moved since,
//! on every engine.

use ferry_core::selection::{parse_id, Selection};
use ferry_engine::audit;
use ferry_engine::error::Hint;
use ferry_engine::ops::promote::{self, Expected, PromoteOutcome, PromoteRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::registry::Envs;
use ferry_engine::views::PlanView;

use super::support::{texts, Eng, World, USER};

const S: &str = "staging";
const P: &str = "production";

const ENGINES: [Eng; 3] = [Eng::Sqlite, Eng::Postgres, Eng::Mysql];

const TABLES: &str = "[tables.items]\n";

fn schema(eng: Eng) -> String {
    let text = if eng == Eng::Mysql { "varchar(100)" } else { "text" };
    format!("CREATE TABLE items (id integer PRIMARY KEY, name {text} NOT NULL);")
}

async fn world(test: &str, eng: Eng) -> Option<World> {
    let w = World::new(test, &[(S, eng), (P, eng)], |_, e| schema(e), TABLES).await?;
    w.db(S)
        .exec("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four')")
        .await;
    w.db(P).exec("INSERT INTO items VALUES (4, 'four')").await;
    Some(w)
}

fn request(selection: Selection, expect: Expected) -> PromoteRequest {
    PromoteRequest {
        from: S.into(),
        to: P.into(),
        user: USER.into(),
        selection,
        saved: None,
        dry_run: false,
        approve_revisions: false,
        force: false,
        take: None,
        wait: false,
        expect: Some(expect),
    }
}

/// The hash a front end shows with the plan of `selection` (the plan
/// JSON's `hash`), made without the lock as `diff` makes it.
async fn shown(w: &World, selection: &Selection) -> Expected {
    let plan = w.plan(S, P, selection).await;
    Expected {
        selection: selection.clone(),
        hash: PlanView::new(&plan).hash,
    }
}

async fn items(w: &World) -> Vec<String> {
    texts(&*w.reader().await.target, "items", &["id", "name"]).await
}

#[tokio::test]
async fn a_promotion_of_changes_moved_since_they_were_shown_is_refused() {
    for eng in ENGINES {
        let test = format!("expected_hash::{}::moved", eng.name());
        let Some(w) = world(&test, eng).await else {
            continue;
        };
        let expect = shown(&w, &Selection::default()).await;
        // Edited in the source after the page was shown.
        w.db(S).exec("UPDATE items SET name = 'uno' WHERE id = 1").await;
        let before = items(&w).await;
        let envs = Envs::new(w.project.clone());
        let err = promote::prepare(&envs, request(Selection::default(), expect.clone()), &Quiet)
            .await
            .err()
            .unwrap_or_else(|| panic!("{test}: a moved plan was accepted"));
        assert_eq!(err.code(), "blocked", "{test}: {err}");
        assert_eq!(
            err.to_string(),
            "staging -> production: the changes are not the ones shown any more (another edit or promotion moved them); nothing was written",
            "{test}"
        );
        assert_eq!(
            err.hint_of(),
            Some(&Hint::Stale {
                from: S.into(),
                to: P.into()
            }),
            "{test}"
        );
        assert_eq!(items(&w).await, before, "{test}: the refused promotion wrote");
        assert_eq!(
            w.db(P).promotions().await,
            0,
            "{test}: the refused promotion was journalled"
        );
        let target = envs.open(P).await.expect("open the target");
        let trail = audit::list(&*target).await.expect("read the audit trail");
        assert_eq!(trail.len(), 1, "{test}: {trail:?}");
        assert_eq!(
            (
                trail[0].action.as_str(),
                trail[0].result.as_str(),
                trail[0].detail.as_str()
            ),
            ("promote", "blocked", err.to_string().as_str()),
            "{test}"
        );
        drop(envs);

        // Shown again, unchanged since: it applies.
        let expect = shown(&w, &Selection::default()).await;
        let envs = Envs::new(w.project.clone());
        let prepared = promote::prepare(&envs, request(Selection::default(), expect), &Quiet)
            .await
            .unwrap_or_else(|e| panic!("{test}: an unchanged plan was refused: {e}"));
        match prepared
            .commit()
            .await
            .unwrap_or_else(|e| panic!("{test}: commit: {e}"))
        {
            PromoteOutcome::Applied(p, _) => assert_eq!(p.counts.insert, 3, "{test}"),
            _ => panic!("{test}: a direct promotion applies"),
        }
        assert_eq!(items(&w).await, ["1|uno", "2|two", "3|three", "4|four"], "{test}");
    }
}

#[tokio::test]
async fn the_rows_ticked_on_a_page_that_showed_the_whole_pair_apply() {
    for eng in ENGINES {
        let test = format!("expected_hash::{}::ticked", eng.name());
        let Some(w) = world(&test, eng).await else {
            continue;
        };
        // The page shows the whole pair; the user ticks two rows.
        let expect = shown(&w, &Selection::default()).await;
        let ticked = Selection {
            ids: vec![parse_id("items:1").expect("an id"), parse_id("items:3").expect("an id")],
            ..Selection::default()
        };
        let envs = Envs::new(w.project.clone());
        let prepared = promote::prepare(&envs, request(ticked.clone(), expect.clone()), &Quiet)
            .await
            .unwrap_or_else(|e| panic!("{test}: the ticked rows were refused: {e}"));
        assert_eq!(prepared.changes, 2, "{test}");
        prepared
            .commit()
            .await
            .unwrap_or_else(|e| panic!("{test}: commit: {e}"));
        assert_eq!(items(&w).await, ["1|one", "3|three", "4|four"], "{test}");
        drop(envs);

        // Shown: one row (equal on both sides: nothing to do); asked for:
        // another, never shown. Refused, though the row shown did not move.
        let one = Selection {
            ids: vec![parse_id("items:4").expect("an id")],
            ..Selection::default()
        };
        let other = Selection {
            ids: vec![parse_id("items:2").expect("an id")],
            ..Selection::default()
        };
        let shown_one = shown(&w, &one).await;
        let envs = Envs::new(w.project.clone());
        let err = promote::prepare(&envs, request(other, shown_one), &Quiet)
            .await
            .err()
            .unwrap_or_else(|| panic!("{test}: a row never shown was promoted"));
        assert!(matches!(err.hint_of(), Some(Hint::Stale { .. })), "{test}: {err:?}");
        assert_eq!(items(&w).await, ["1|one", "3|three", "4|four"], "{test}");
        drop(envs);

        // The page is not reloaded: the whole pair's plan moved (two rows
        // went), so ticking the last row of the old page is refused.
        let envs = Envs::new(w.project.clone());
        let last = Selection {
            ids: vec![parse_id("items:2").expect("an id")],
            ..Selection::default()
        };
        let err = promote::prepare(&envs, request(last, expect), &Quiet)
            .await
            .err()
            .unwrap_or_else(|| panic!("{test}: a page older than the last promotion was accepted"));
        assert!(matches!(err.hint_of(), Some(Hint::Stale { .. })), "{test}: {err:?}");
        assert_eq!(items(&w).await, ["1|one", "3|three", "4|four"], "{test}");
    }
}
