//! JSON arrives as the source wrote it: where both sides hold JSON as text
//! (MariaDB JSON, PostgreSQL `json`, SQLite), a promotion writes the
//! source's text byte for byte (`{"a": 1}` stays `{"a": 1}`), while the
//! comparison stays parsed (`{"a":1}` and `{"a": 1}` are no change).
//! PostgreSQL `jsonb` holds no text of its own: it is written compactly.

use super::support::{pair_name, summary, Db, Eng, World};

const S: &str = "staging";
const P: &str = "production";

const ENGINES: [Eng; 3] = [Eng::Sqlite, Eng::Postgres, Eng::Mysql];

/// Texts spaced, ordered and escaped as no serializer would write them.
const DOCS: [&str; 5] = [
    r#"{"b": 1, "a": {"z": [1, 2.50, {"y": null}], "x": "é🦀"}}"#,
    r#"{ "a" : 1 }"#,
    "[1,2,   3]",
    r#""\u00e9 escaped""#,
    r#"{"n": 1.0e2, "m": -0.0}"#,
];

fn schema(json: &str) -> String {
    format!("CREATE TABLE docs (id integer PRIMARY KEY, doc {json});")
}

/// The JSON type holding text on each engine.
fn text_json(eng: Eng) -> &'static str {
    match eng {
        Eng::Sqlite => "JSON",
        Eng::Postgres => "json",
        Eng::Mysql => "JSON",
    }
}

/// The `doc` column's stored bytes, in hex, in key order.
async fn stored(db: &Db) -> Vec<String> {
    use sqlx::{Connection, Row};
    let (sql, url) = match db.eng {
        Eng::Sqlite => ("SELECT hex(doc) FROM docs ORDER BY id", None),
        Eng::Postgres => (
            "SELECT encode(convert_to(doc::text, 'UTF8'), 'hex') FROM docs ORDER BY id",
            Some(&db.url),
        ),
        Eng::Mysql => (
            "SELECT CAST(HEX(CAST(doc AS BINARY)) AS CHAR) FROM docs ORDER BY id",
            Some(&db.url),
        ),
    };
    let rows: Vec<String> = match (db.eng, url) {
        (Eng::Sqlite, _) => {
            let c = rusqlite::Connection::open(db.path.as_ref().expect("SQLite path")).expect("open");
            let mut stmt = c.prepare(sql).expect("prepare");
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("query");
            rows.map(|r| r.expect("row")).collect()
        }
        (Eng::Postgres, Some(url)) => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            let rows = sqlx::query(sql).fetch_all(&mut c).await.expect("query");
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
        (_, Some(url)) => {
            let mut c = sqlx::MySqlConnection::connect(url).await.expect("connect");
            let rows = sqlx::query(sql).fetch_all(&mut c).await.expect("query");
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
        _ => unreachable!("servers have URLs"),
    };
    rows.into_iter().map(|h| h.to_ascii_lowercase()).collect()
}

fn insert_docs(eng: Eng, docs: &[&str]) -> String {
    docs.iter()
        .enumerate()
        .map(|(i, d)| {
            // MariaDB reads backslashes in string literals as escapes.
            let d = if eng == Eng::Mysql {
                d.replace('\\', "\\\\")
            } else {
                d.to_string()
            };
            format!("INSERT INTO docs VALUES ({}, '{}');", i + 1, d.replace('\'', "''"))
        })
        .collect()
}

#[tokio::test]
async fn json_text_arrives_byte_for_byte() {
    let want: Vec<String> = DOCS.iter().map(|d| ferry_core::canonical::hex(d.as_bytes())).collect();
    for from in ENGINES {
        for to in ENGINES {
            let test = format!("json_text::{}", pair_name(from, to));
            let Some(w) = World::new(
                &test,
                &[(S, from), (P, to)],
                |_, e| schema(text_json(e)),
                "[tables.docs]\n",
            )
            .await
            else {
                continue;
            };
            w.db(S).exec(&insert_docs(from, &DOCS)).await;
            assert_eq!(stored(w.db(S)).await, want, "{test}: the source holds the texts");
            let (plan, _) = w.promote_all(S, P).await;
            assert_eq!(plan.entries.len(), DOCS.len(), "{test}");
            assert_eq!(stored(w.db(P)).await, want, "{test}: the target holds other bytes");

            // Written otherwise in the target, equal parsed: no change.
            w.db(P).exec(r#"UPDATE docs SET doc = '{"a":1}' WHERE id = 2"#).await;
            let plan = w.plan(S, P, &Default::default()).await;
            assert_eq!(summary(&plan), Vec::<String>::new(), "{test}");

            // An update writes the source's new text as it is.
            w.db(S).exec(r#"UPDATE docs SET doc = '{"a" :  2}' WHERE id = 2"#).await;
            let plan = w.plan(S, P, &Default::default()).await;
            assert_eq!(summary(&plan), ["docs:2 update"], "{test}");
            w.promote(S, P, &plan).await;
            let now = stored(w.db(P)).await;
            assert_eq!(now[1], ferry_core::canonical::hex(br#"{"a" :  2}"#), "{test}");
        }
    }
}

/// PostgreSQL `jsonb` into MariaDB's JSON: inserted (compact), and equal.
#[tokio::test]
async fn jsonb_into_mariadb_inserts() {
    let test = format!("json_text::{}::jsonb", pair_name(Eng::Postgres, Eng::Mysql));
    let Some(w) = World::new(
        &test,
        &[(S, Eng::Postgres), (P, Eng::Mysql)],
        |_, e| schema(if e == Eng::Postgres { "jsonb" } else { "JSON" }),
        "[tables.docs]\n",
    )
    .await
    else {
        return;
    };
    w.db(S).exec(&insert_docs(Eng::Postgres, &DOCS)).await;
    let (plan, _) = w.promote_all(S, P).await;
    assert_eq!(plan.entries.len(), DOCS.len(), "{test}");
    assert_eq!(
        w.db(P).int("SELECT count(*) FROM docs WHERE JSON_VALID(doc)").await,
        5,
        "{test}"
    );
    let stored = stored(w.db(P)).await;
    assert_eq!(stored[1], ferry_core::canonical::hex(br#"{"a":1}"#), "{test}");
    let plan = w.plan(S, P, &Default::default()).await;
    assert_eq!(summary(&plan), Vec::<String>::new(), "{test}");
}
