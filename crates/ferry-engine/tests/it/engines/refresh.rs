//! `ops::refresh` (issue 18, part 3) on each engine: staging reset to
//! production with unpromoted work discarded, the ignored column and the
//! excluded (QA) rows kept, production's stamps copied, an excluded row
//! that references a row the refresh deletes refusing it (nothing written)
//! until dropped, the next diff empty, and the revert restoring staging.

use ferry_core::plan::Action;
use ferry_core::selection::Selection;
use ferry_engine::ops::refresh::{self, RefreshRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::registry::Envs;
use ferry_engine::Error;

use super::support::{texts, Eng, World, USER};

const S: &str = "staging";
const P: &str = "production";

fn schema(eng: Eng) -> String {
    let (int, text, ts) = match eng {
        Eng::Sqlite => ("INTEGER", "TEXT", "TEXT"),
        Eng::Postgres => ("integer", "text", "timestamp"),
        Eng::Mysql => ("int", "varchar(100)", "datetime(6)"),
    };
    format!(
        "CREATE TABLE cities (id {int} PRIMARY KEY, name {text} NOT NULL);
         CREATE TABLE shops (id {int} PRIMARY KEY, name {text} NOT NULL, city_id {int},
             views {int} NOT NULL DEFAULT 0, stamped_at {ts}, team {text},
             FOREIGN KEY (city_id) REFERENCES cities(id));"
    )
}

const TABLES: &str = r#"
[tables.cities]
key = ["id"]

[tables.shops]
key = ["id"]
references = { city_id = "cities" }
ignore = ["views"]
stamp = { stamped_at = "now" }
exclude = "team IN ('qa', 'dev')"
"#;

const PRODUCTION: &str = "
INSERT INTO cities VALUES (1, 'Lyon'), (3, 'Bern');
INSERT INTO shops VALUES (1, 'Cafe', 1, 100, '2020-01-01 10:00:00', 'content'), (2, 'Bakery', 3, 7, '2020-02-02 10:00:00', 'content');
";

/// Staging: an unpromoted edit, an unpromoted city, a QA shop and a dev
/// shop in that city.
const STAGING: &str = "
INSERT INTO cities VALUES (1, 'Lyon (draft)'), (2, 'Zurich');
INSERT INTO shops VALUES (1, 'Cafe', 1, 5, '2021-01-01 10:00:00', 'content'), (5, 'QA shop', 1, 0, NULL, 'qa'), (6, 'Dev shop', 2, 0, NULL, 'dev');
";

const CITY: &[&str] = &["id", "name"];
const SHOP: &[&str] = &["id", "name", "city_id", "stamped_at", "team"];

async fn staging_rows(w: &World) -> Vec<String> {
    let store = w.project.open(S).await.expect("open staging");
    let mut out = texts(&*store, "cities", CITY).await;
    out.extend(
        texts(
            &*store,
            "shops",
            &["id", "name", "city_id", "views", "stamped_at", "team"],
        )
        .await,
    );
    out
}

fn request(drop_excluded: bool) -> RefreshRequest {
    RefreshRequest {
        env: S.into(),
        from: P.into(),
        user: USER.into(),
        drop_excluded,
        dry_run: false,
        wait: false,
    }
}

async fn refresh_keeps_qa_rows_and_reverts(eng: Eng) {
    let Some(w) = World::new(
        &format!("refresh::{}", eng.name()),
        &[(S, eng), (P, eng)],
        |env, eng| format!("{}\n{}", schema(eng), if env == P { PRODUCTION } else { STAGING }),
        TABLES,
    )
    .await
    else {
        return;
    };
    let envs = Envs::new(w.project.clone());
    let before = staging_rows(&w).await;
    // The dev shop needs Zurich, which production lacks: refused.
    let err = match refresh::prepare(&envs, request(false), &Quiet).await {
        Ok(_) => panic!("{}: the dev shop should block the refresh", eng.name()),
        Err(e) => e,
    };
    assert!(matches!(err.inner(), Error::Blocked(_)), "{err}");
    assert!(err.to_string().contains("`shops:6` references `cities:2`"), "{err}");
    assert_eq!(staging_rows(&w).await, before, "nothing written");

    let prepared = refresh::prepare(&envs, request(true), &Quiet)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", eng.name()));
    let discarded: Vec<String> = prepared.unpromoted.entries.iter().map(|e| e.label()).collect();
    assert!(discarded.contains(&"cities:1".to_string()), "{discarded:?}");
    assert!(discarded.contains(&"cities:2".to_string()), "{discarded:?}");
    assert_eq!(prepared.dropped_excluded, vec!["shops:6".to_string()]);
    let done = prepared
        .commit()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", eng.name()));
    let id = done.refresh.as_ref().expect("a refresh was written").id.clone();

    let (s, p) = (
        w.project.open(S).await.expect("staging"),
        w.project.open(P).await.expect("production"),
    );
    assert_eq!(texts(&*s, "cities", CITY).await, texts(&*p, "cities", CITY).await);
    let shops = texts(&*s, "shops", SHOP).await;
    let mut want = texts(&*p, "shops", SHOP).await;
    want.push("5|QA shop|1|NULL|qa".to_string());
    assert_eq!(
        shops,
        want,
        "{}: production's shops (stamps included) and the QA shop",
        eng.name()
    );
    assert_eq!(
        texts(&*s, "shops", &["id", "views"]).await,
        vec!["1|5", "2|0", "5|0"],
        "views stay staging's own; a new row gets the column's default, not production's"
    );
    // The next diff is empty, and a staging edit is an update.
    let plan = w.plan(S, P, &Selection::default()).await;
    assert!(
        plan.entries
            .iter()
            .all(|e| !e.is_change() && e.action != Action::Conflict),
        "{:?}",
        plan.entries
    );
    w.db(S)
        .exec("UPDATE cities SET name = 'Bern (staging)' WHERE id = 3")
        .await;
    let plan = w.plan(S, P, &Selection::default()).await;
    let e = plan.entries.iter().find(|e| e.label() == "cities:3").expect("cities:3");
    assert_eq!(e.action, Action::Update, "{e:?}");
    w.db(S).exec("UPDATE cities SET name = 'Bern' WHERE id = 3").await;

    w.revert(&id).await;
    assert_eq!(
        staging_rows(&w).await,
        before,
        "{}: the revert restores staging",
        eng.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_sqlite() {
    refresh_keeps_qa_rows_and_reverts(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_postgres() {
    refresh_keeps_qa_rows_and_reverts(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_mariadb() {
    refresh_keeps_qa_rows_and_reverts(Eng::Mysql).await;
}
