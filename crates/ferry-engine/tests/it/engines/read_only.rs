//! Reads cannot write: every connection a store reads through is read-only
//! (PostgreSQL and MariaDB sessions with read-only transactions, SQLite
//! opened read-only with `query_only`), so SQL that a read runs, a
//! `--where` predicate, an `exclude` predicate or a gate's query, cannot
//! change either database. Promotions still write, through their own
//! transaction.

use ferry_core::selection::{parse_where, Selection};
use ferry_engine::progress::Progress;

use super::support::{summary, Eng, World};

const S: &str = "staging";
const P: &str = "production";

fn schema(eng: Eng) -> String {
    let text = if eng == Eng::Mysql { "varchar(100)" } else { "text" };
    let mut sql = format!("CREATE TABLE items (id integer PRIMARY KEY, name {text} NOT NULL);");
    if eng != Eng::Sqlite {
        sql.push_str("CREATE SEQUENCE s;");
    }
    sql
}

/// The next value of sequence `s`: 1 when nothing advanced it.
async fn next_value(w: &World, env: &str) -> i64 {
    let db = w.db(env);
    match db.eng {
        Eng::Postgres => db.int("SELECT nextval('s')").await,
        _ => db.int("SELECT NEXTVAL(s)").await,
    }
}

#[tokio::test]
async fn reads_cannot_write() {
    for eng in [Eng::Sqlite, Eng::Postgres, Eng::Mysql] {
        let test = format!("read_only::{}", eng.name());
        let Some(w) = World::new(&test, &[(S, eng), (P, eng)], |_, e| schema(e), "[tables.items]\n").await else {
            continue;
        };
        w.db(S).exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
        let pair = w.pair(S, P).await;

        // A query run through a store's reading connection (as a gate's
        // `sql` is) cannot write, on either side.
        for store in [&pair.source, &pair.target] {
            let e = store
                .as_sql()
                .expect("an SQL store")
                .query_scalar("DELETE FROM items WHERE id > 0")
                .await
                .expect_err(&test)
                .to_string();
            assert!(e.contains("read-only sessions"), "{test}: {e}");
            assert!(e.contains(&format!("`{}`", store.env())), "{test}: {e}");
        }
        assert_eq!(w.db(S).int("SELECT count(*) FROM items").await, 2, "{test}");

        // A `--where` predicate calling a function that writes is refused
        // on both sides, naming the environment, and nothing advanced.
        if eng != Eng::Sqlite {
            let next = if eng == Eng::Postgres {
                "nextval('s')"
            } else {
                "NEXTVAL(s)"
            };
            let selection = Selection {
                wheres: vec![parse_where(&format!("items:{next} > 0")).expect("valid --where")],
                ..Selection::default()
            };
            let e = ferry_engine::planner::plan(&pair, &selection, Progress::hidden())
                .await
                .expect_err(&test)
                .to_string();
            assert!(e.contains("read-only"), "{test}: {e}");
            assert!(e.contains("environment `staging`"), "{test}: {e}");
            assert_eq!(next_value(&w, S).await, 1, "{test}: the source's sequence advanced");
            assert_eq!(next_value(&w, P).await, 1, "{test}: the target's sequence advanced");
        }

        // Promotions still write (their own transaction, the writer lock).
        let (plan, done) = w.promote_all(S, P).await;
        assert_eq!(summary(&plan), ["items:1 insert", "items:2 insert"], "{test}");
        assert!(done.is_some(), "{test}");
        assert_eq!(w.db(P).int("SELECT count(*) FROM items").await, 2, "{test}");
    }
}
