//! Issue 21 (Wagtail): a page authored in each environment got the same
//! tree `path`, and the promotion failed only at apply (`UNIQUE constraint
//! failed: wagtailcore_page.path`). The plan reads the target's unique
//! constraints and reports an insert or update whose values another target
//! row holds, naming both rows and the columns; `promote` refuses it before
//! writing anything, `--force` included. On every engine.

use ferry_core::plan::{Action, Reason};
use ferry_core::selection::Selection;
use ferry_engine::apply::PromoteOptions;
use ferry_engine::Error;

use super::support::{summary, texts, Eng, World, USER};

const S: &str = "staging";
const P: &str = "production";

fn schema(env: &str, eng: Eng) -> String {
    let (int, text) = match eng {
        Eng::Sqlite => ("INTEGER", "TEXT"),
        Eng::Postgres => ("integer", "text"),
        Eng::Mysql => ("int", "varchar(100)"),
    };
    let data = if env == S {
        "INSERT INTO pages VALUES (1, '0001', 'Home'), (2, '00010001', 'About'), (5, '00010002', 'Careers');"
    } else {
        "INSERT INTO pages VALUES (1, '0001', 'Home'), (2, '00010001', 'About'), (7, '00010002', 'Prod promo'), (8, '00010003', 'Prod other');"
    };
    format!("CREATE TABLE pages (id {int} PRIMARY KEY, path {text} NOT NULL UNIQUE, title {text});\n{data}")
}

const TOML: &str = "[tables.pages]\nkey = [\"id\"]\n";

async fn collisions_found_in_the_plan(eng: Eng) {
    let l = format!("unique_collisions::{}", eng.name());
    let Some(w) = World::new(&l, &[(S, eng), (P, eng)], schema, TOML).await else {
        return;
    };
    let rows = || async {
        let target = w.project.open(P).await.expect("open production");
        texts(&*target, "pages", &["id", "path", "title"]).await
    };
    let before = rows().await;

    // An insert whose path production's page 7 holds.
    let plan = w.plan(S, P, &Selection::default()).await;
    assert_eq!(
        summary(&plan),
        [
            "pages:5 conflict/unique-collision",
            "pages:7 skip/target-only",
            "pages:8 skip/target-only"
        ],
        "{l}"
    );
    let said = plan.entries[0].collides_with.clone().unwrap_or_default();
    for want in ["path", "pages:7 in production", "00010002"] {
        assert!(said.contains(want), "{l}: `{want}` missing from `{said}`");
    }
    for force in [false, true] {
        let pair = w.pair(S, P).await;
        let opts = PromoteOptions {
            user: USER.into(),
            force,
        };
        match ferry_engine::apply::promote(&pair, &plan, &opts).await {
            Err(e) if matches!(e.inner(), Error::Blocked(_)) => {
                assert_eq!(e.exit_code(), 3, "{l}");
                let text = e.to_string();
                assert!(text.contains("pages:5") && text.contains("pages:7"), "{l}: {text}");
                assert!(text.contains("nothing was written"), "{l}: {text}");
            }
            other => panic!("{l}: force={force}: a collision must block: {other:?}"),
        }
    }
    assert_eq!(rows().await, before, "{l}: nothing written");
    assert_eq!(w.db(P).promotions().await, 0, "{l}");

    // An update onto a path production's page 8 holds (after a baseline,
    // so the edit is staging's own).
    w.baseline(S, P).await;
    w.db(S).exec("UPDATE pages SET path = '00010003' WHERE id = 2").await;
    let plan = w.plan(S, P, &Selection::default()).await;
    let e = plan
        .entries
        .iter()
        .find(|e| e.label() == "pages:2")
        .expect("pages:2 planned");
    assert_eq!(
        (e.action, e.reason),
        (Action::Conflict, Some(Reason::UniqueCollision)),
        "{l}"
    );
    assert!(
        e.collides_with
            .as_deref()
            .is_some_and(|c| c.contains("pages:8 in production")),
        "{l}: {e:?}"
    );

    // Fixed in staging: both go through, and a row keeping its own path
    // collides with nothing.
    w.db(S)
        .exec("UPDATE pages SET path = '00010004', title = 'Careers!' WHERE id = 5; UPDATE pages SET path = '00010001', title = 'About us' WHERE id = 2;")
        .await;
    let plan = w.plan(S, P, &Selection::default()).await;
    assert!(plan.conflicts().next().is_none(), "{l}: {:?}", summary(&plan));
    let p = w.promote(S, P, &plan).await.expect("written");
    assert_eq!((p.counts.insert, p.counts.update), (1, 1), "{l}: {:?}", p.counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    collisions_found_in_the_plan(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    collisions_found_in_the_plan(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    collisions_found_in_the_plan(Eng::Mysql).await;
}
