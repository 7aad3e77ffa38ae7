//! A value the target column cannot hold is a clear error naming the
//! environments, the table, the key and the column, and nothing is written:
//! the target's rows, Ferry's journal and its sync base stay as they were.
//!
//! The source is SQLite, whose columns hold anything; each target declares
//! the narrower column. Most refusals happen at plan time (the source value
//! converted to the target column's type); a NULL into a NOT NULL column is
//! refused by the database itself (and a NUL character, which PostgreSQL
//! text cannot store, by its store), inside the promotion, after an
//! earlier row was already written, so the rollback is exercised too.

use ferry_core::selection::Selection;
use ferry_engine::progress::Progress;
use ferry_engine::Error;

use super::support::{texts, Eng, World};

const SOURCE: &str = "CREATE TABLE things (
    id INTEGER PRIMARY KEY, short TEXT, small INTEGER, doc TEXT, amount TEXT, required TEXT
);
INSERT INTO things VALUES (5, 'abc', 7, '{\"a\": 1}', '12.5', 'x');";

fn target_schema(eng: Eng) -> String {
    let (json, amount) = match eng {
        Eng::Sqlite => ("JSON", "DECIMAL(6,2)"),
        Eng::Postgres => ("jsonb", "numeric(6,2)"),
        Eng::Mysql => ("json", "decimal(6,2)"),
    };
    format!(
        "CREATE TABLE things (id integer PRIMARY KEY, short varchar(5), small smallint, doc {json}, amount {amount}, required text NOT NULL)"
    )
}

const TABLES: &str = "[tables.things]\nkey = [\"id\"]\n";

struct Case {
    what: &'static str,
    column: &'static str,
    /// SQL for the source: a good new row 1, then the bad row 2.
    rows: &'static str,
    /// Where the target refuses it (SQLite does not check lengths or ranges).
    targets: &'static [Eng],
    /// Refused while planning (else by the database, while promoting).
    at_plan: bool,
    /// A fragment of the reason.
    says: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "text too long for varchar(5)",
        column: "short",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, NULL, 'x'), (2, 'abcdef', 1, NULL, NULL, 'x');",
        targets: &[Eng::Postgres, Eng::Mysql],
        at_plan: true,
        says: "6 characters, the column holds at most 5",
    },
    Case {
        what: "integer out of range for smallint",
        column: "small",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, NULL, 'x'), (2, 'ok', 40000, NULL, NULL, 'x');",
        targets: &[Eng::Postgres, Eng::Mysql],
        at_plan: true,
        says: "out of range -32768..=32767",
    },
    Case {
        what: "invalid JSON text into a JSON column",
        column: "doc",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, '[]', NULL, 'x'), (2, 'ok', 1, '{\"a\": 1,', NULL, 'x');",
        targets: &[Eng::Sqlite, Eng::Postgres, Eng::Mysql],
        at_plan: true,
        says: "invalid JSON",
    },
    Case {
        what: "more fractional digits than numeric(6,2) keeps",
        column: "amount",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, '1.5', 'x'), (2, 'ok', 1, NULL, '1.234', 'x');",
        targets: &[Eng::Postgres, Eng::Mysql],
        at_plan: true,
        says: "3 digits after the point, the column keeps 2",
    },
    Case {
        what: "more integer digits than numeric(6,2) holds",
        column: "amount",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, '1.5', 'x'), (2, 'ok', 1, NULL, '12345.6', 'x');",
        targets: &[Eng::Postgres, Eng::Mysql],
        at_plan: true,
        says: "5 digits before the point, the column holds at most 4",
    },
    Case {
        what: "a decimal beyond what SQLite's DECIMAL (a double) keeps",
        column: "amount",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, '1.5', 'x'), (2, 'ok', 1, NULL, '12345678901234567890.5', 'x');",
        targets: &[Eng::Sqlite],
        at_plan: true,
        says: "21 significant digits",
    },
    Case {
        what: "a NUL character into PostgreSQL text",
        column: "required",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, NULL, 'x'), (2, 'ok', 1, NULL, NULL, 'a' || char(0) || 'b');",
        targets: &[Eng::Postgres],
        at_plan: false,
        says: "NUL character",
    },
    Case {
        what: "NULL into a NOT NULL column",
        column: "required",
        rows: "INSERT INTO things VALUES (1, 'ok', 1, NULL, NULL, 'x'), (2, 'ok', 1, NULL, NULL, NULL);",
        targets: &[Eng::Sqlite, Eng::Postgres, Eng::Mysql],
        at_plan: false,
        says: "rolled back",
    },
];

const COLUMNS: [&str; 6] = ["id", "short", "small", "doc", "amount", "required"];

async fn refuses(target: Eng) {
    let test = format!("bad_values::into_{}", target.name());
    let envs = [("staging", Eng::Sqlite), ("production", target)];
    let schema = |env: &str, eng: Eng| {
        if env == "production" {
            target_schema(eng)
        } else {
            SOURCE.to_string()
        }
    };
    let Some(w) = World::new(&test, &envs, schema, TABLES).await else {
        return;
    };
    // The target starts with one promoted row, so it has a journal to keep.
    let (_, first) = w.promote_all("staging", "production").await;
    assert!(first.is_some(), "{test}: the first promotion");
    let production = w.db("production");
    let staging = w.db("staging");
    for case in CASES.iter().filter(|c| c.targets.contains(&target)) {
        let label = format!("{test}: {}", case.what);
        let pair = w.pair("staging", "production").await;
        let before = texts(&*pair.target, "things", &COLUMNS).await;
        let promotions = production.promotions().await;
        let synced = production.int("SELECT count(*) FROM _ferry_sync").await;

        staging.exec(case.rows).await;
        let planned = ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden()).await;
        let err = if case.at_plan {
            planned.expect_err(&format!("{label}: the plan must refuse"))
        } else {
            let plan = planned.unwrap_or_else(|e| panic!("{label}: plan: {e}"));
            let opts = ferry_engine::apply::PromoteOptions {
                user: super::support::USER.into(),
                force: false,
            };
            ferry_engine::apply::promote(&pair, &plan, &opts)
                .await
                .expect_err(&format!("{label}: the promotion must refuse"))
        };
        let msg = err.to_string();
        assert!(matches!(err.inner(), Error::Data(_)), "{label}: {err:?}");
        for part in [
            "staging",
            "production",
            "table `things`",
            "key 2",
            &format!("column `{}`", case.column),
            case.says,
            "othing was written",
        ] {
            assert!(msg.contains(part), "{label}: the error should say {part:?}:\n{msg}");
        }

        // Nothing written: rows, journal and sync base as they were.
        assert_eq!(
            texts(&*pair.target, "things", &COLUMNS).await,
            before,
            "{label}: target rows"
        );
        assert_eq!(
            production.promotions().await,
            promotions,
            "{label}: promotions recorded"
        );
        assert_eq!(
            production.int("SELECT count(*) FROM _ferry_sync").await,
            synced,
            "{label}: sync base"
        );

        // Without the bad row, the good one goes through.
        staging.exec("DELETE FROM things WHERE id = 2;").await;
        let (plan, done) = w.promote_all("staging", "production").await;
        assert_eq!(plan.counts().insert, 1, "{label}: the good row alone");
        assert!(done.is_some());
        staging.exec("DELETE FROM things WHERE id = 1;").await;
        let (_, done) = w.promote_all("staging", "production").await;
        assert!(done.is_some(), "{label}: clean up");
    }
    let pair = w.pair("staging", "production").await;
    let plan = ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden())
        .await
        .expect("plan");
    assert!(plan.entries.is_empty(), "{test}: {:?}", super::support::summary(&plan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_sqlite() {
    refuses(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_postgres() {
    refuses(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_mariadb() {
    refuses(Eng::Mysql).await;
}
