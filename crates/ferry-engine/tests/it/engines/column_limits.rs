//! Columns that keep less than a value carries: `datetime` / `timestamp(0)`
//! / `time` keep whole seconds (`datetime(3)` milliseconds), `CHAR(n)` does
//! not keep trailing spaces. A value is compared as the target column keeps
//! it, and written that way (cut, never rounded by the server), so promoted
//! rows are not proposed again, and a promotion that stamped such a column
//! can be reverted at once. A date beyond what MariaDB holds is refused,
//! never stored as NULL.

use ferry_core::selection::Selection;
use ferry_engine::progress::Progress;
use ferry_engine::Error;

use super::support::{summary, texts, Eng, World};

const SOURCE: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, at_tz TIMESTAMPTZ, tm TIME,
    ms DATETIME, code TEXT, modified_at TEXT);";

fn target(eng: Eng) -> &'static str {
    match eng {
        Eng::Postgres => {
            "CREATE TABLE t (id integer PRIMARY KEY, at timestamp(0), at_tz timestamptz(0), tm time(0),
                ms timestamp(3), code char(3), modified_at timestamp(0));"
        }
        Eng::Mysql => {
            "CREATE TABLE t (id int PRIMARY KEY, at datetime, at_tz datetime, tm time,
                ms datetime(3), code char(3), modified_at datetime);"
        }
        Eng::Sqlite => unreachable!("SQLite columns keep what they are given"),
    }
}

const TABLES: &str = "[tables.t]\nkey = [\"id\"]\nstamp = { modified_at = \"now\" }\n";
const COLUMNS: [&str; 6] = ["id", "at", "at_tz", "tm", "ms", "code"];

async fn cut_not_rounded(to: Eng) {
    let test = format!("column_limits::into_{}", to.name());
    let schema = |env: &str, _: Eng| {
        if env == "production" {
            target(to).to_string()
        } else {
            SOURCE.to_string()
        }
    };
    let Some(w) = World::new(&test, &[("staging", Eng::Sqlite), ("production", to)], schema, TABLES).await else {
        return;
    };
    w.db("staging")
        .exec(
            "INSERT INTO t VALUES
                (1, '2024-01-01 00:00:00.723456', '2024-01-01 10:00:00.9+02:00', '10:00:00.5',
                    '2024-01-01 00:00:00.123456', 'ab ', NULL),
                (2, '2024-12-31 23:59:59.999999', '2024-12-31 23:59:59.999999+00:00', '23:59:59.999999',
                    '2024-12-31 23:59:59.9999', 'a', NULL);",
        )
        .await;
    let (plan, first) = w.promote_all("staging", "production").await;
    assert_eq!(plan.counts().insert, 2, "{test}");
    let first = first.expect("promoted");
    let again = w.plan("staging", "production", &Selection::default()).await;
    assert!(
        again.entries.is_empty(),
        "{test}: proposed again: {:?}",
        summary(&again)
    );
    let pair = w.reader().await;
    // MariaDB has no zoned type: its DATETIME holds the UTC wall clock.
    let tz = if to == Eng::Postgres { "+00:00" } else { "" };
    assert_eq!(
        texts(&*pair.target, "t", &COLUMNS).await,
        [
            format!("1|2024-01-01 00:00:00|2024-01-01 08:00:00{tz}|10:00:00|2024-01-01 00:00:00.123|ab"),
            // Cut, not rounded up into the next year.
            format!("2|2024-12-31 23:59:59|2024-12-31 23:59:59{tz}|23:59:59|2024-12-31 23:59:59.999|a"),
        ],
        "{test}"
    );
    // The stamped whole-second column does not make the rows look changed.
    w.revert(&first.id).await;
    assert!(texts(&*pair.target, "t", &COLUMNS).await.is_empty(), "{test}: reverted");

    let (_, second) = w.promote_all("staging", "production").await;
    assert!(second.is_some());
    w.db("staging").exec("UPDATE t SET code = 'xyz' WHERE id = 2;").await;
    let (plan, update) = w.promote_all("staging", "production").await;
    assert_eq!(summary(&plan), ["t:2 update"], "{test}");
    w.revert(&update.expect("promoted").id).await;
    assert_eq!(
        texts(&*pair.target, "t", &["id", "code"]).await,
        ["1|ab", "2|a"],
        "{test}: the update reverted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_postgres() {
    cut_not_rounded(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_mariadb() {
    cut_not_rounded(Eng::Mysql).await;
}

/// PostgreSQL holds years past 9999; MariaDB refuses them (Ferry binds such
/// a date as text, so strict mode rejects it instead of storing NULL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_beyond_mariadb_is_refused() {
    let test = "column_limits::a_date_beyond_mariadb_is_refused";
    let schema = |_: &str, eng: Eng| {
        let ts = if eng == Eng::Postgres {
            "timestamp"
        } else {
            "datetime(6)"
        };
        format!("CREATE TABLE t (id integer PRIMARY KEY, day date, at {ts});")
    };
    let envs = [("staging", Eng::Postgres), ("production", Eng::Mysql)];
    let Some(w) = World::new(test, &envs, schema, "[tables.t]\nkey = [\"id\"]\n").await else {
        return;
    };
    for (id, row) in [(1, "'10000-01-01', NULL"), (2, "NULL, '12000-06-01 10:00:00'")] {
        w.db("staging")
            .exec(&format!("DELETE FROM t; INSERT INTO t VALUES ({id}, {row});"))
            .await;
        let pair = w.pair("staging", "production").await;
        let plan = ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden())
            .await
            .expect("plan");
        let opts = ferry_engine::apply::PromoteOptions {
            user: super::support::USER.into(),
            force: false,
        };
        let err = ferry_engine::apply::promote(&pair, &plan, &opts)
            .await
            .expect_err("MariaDB cannot hold the year");
        assert!(matches!(err.inner(), Error::Data(_)), "{err:?}");
        let msg = err.to_string();
        let column = if id == 1 { "column `day`" } else { "column `at`" };
        for want in [
            "`production`",
            "table `t`",
            &format!("key {id}"),
            column,
            "nothing was written",
        ] {
            assert!(msg.contains(want), "{want:?} missing from: {msg}");
        }
        assert!(texts(&*pair.target, "t", &["id"]).await.is_empty(), "nothing written");
        assert_eq!(w.db("production").promotions().await, 0);
    }
}

/// NaN and the infinities: PostgreSQL keeps them; SQLite keeps the
/// infinities but would turn NaN into NULL, and MariaDB has none of them:
/// those are refused, naming the column, with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_floats() {
    let test = "column_limits::non_finite_floats";
    let schema = |_: &str, eng: Eng| {
        let double = match eng {
            Eng::Sqlite => "REAL",
            Eng::Postgres => "double precision",
            Eng::Mysql => "double",
        };
        format!("CREATE TABLE f (id integer PRIMARY KEY, v {double});")
    };
    let envs = [
        ("staging", Eng::Postgres),
        ("pg", Eng::Postgres),
        ("lite", Eng::Sqlite),
        ("maria", Eng::Mysql),
    ];
    let Some(w) = World::new(test, &envs, schema, "[tables.f]\nkey = [\"id\"]\n").await else {
        return;
    };
    w.db("staging")
        .exec("INSERT INTO f VALUES (1, 'NaN'), (2, 'Infinity'), (3, '-Infinity');")
        .await;
    let promote = |to: &'static str, ids: &'static [&'static str]| {
        let w = &w;
        async move {
            let pair = ferry_engine::pair::open_unchecked(&w.project, "staging", to)
                .await
                .expect("open");
            let selection = Selection {
                ids: ids
                    .iter()
                    .map(|a| ferry_core::selection::parse_id(a).expect("--id"))
                    .collect(),
                ..Selection::default()
            };
            let plan = ferry_engine::planner::plan(&pair, &selection, Progress::hidden()).await?;
            let opts = ferry_engine::apply::PromoteOptions {
                user: super::support::USER.into(),
                force: false,
            };
            ferry_engine::apply::promote(&pair, &plan, &opts).await?;
            let again = ferry_engine::planner::plan(&pair, &selection, Progress::hidden()).await?;
            assert!(again.entries.is_empty(), "{to}: proposed again: {:?}", summary(&again));
            Ok::<_, Error>(texts(&*pair.target, "f", &["id", "v"]).await)
        }
    };
    let all = &["f:1", "f:2", "f:3"];
    assert_eq!(
        promote("pg", all).await.expect("into PostgreSQL"),
        ["1|NaN", "2|inf", "3|-inf"]
    );
    assert_eq!(
        promote("lite", &["f:2", "f:3"]).await.expect("into SQLite"),
        ["2|inf", "3|-inf"]
    );
    let refused: [(&str, &'static [&'static str]); 2] = [("lite", &["f:1"]), ("maria", &["f:2"])];
    for (to, ids) in refused {
        let err = promote(to, ids).await.expect_err(to);
        let msg = err.to_string();
        for want in [&format!("`{to}`"), "table `f`", "column `v`", "nothing was written"] {
            assert!(msg.contains(want), "{to}: {want:?} missing from: {msg}");
        }
    }
    assert_eq!(w.db("maria").promotions().await, 0, "nothing recorded in MariaDB");
}
