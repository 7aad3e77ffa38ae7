//! Ferry's own records (`_ferry_*`) read back exactly on every engine, and
//! a record that does not hold what Ferry writes is an error naming it,
//! never a record left out.
//!
//! MariaDB flags a `utf8mb4_bin` text column BINARY like a BLOB, so a
//! decoder that guesses from the bytes read a 16-byte row hash that happens
//! to be valid UTF-8 as text, and the planner then skipped that sync base:
//! the row was "never synced", a delete in the source was skipped as
//! `target-only`. [`sync_base_hashes_that_are_utf8_are_used`] reproduces
//! that end to end; [`sync_rows_read_back_as_written`] writes random hashes
//! (UTF-8, ASCII, zeros) through the journal code and reads them back.

use ferry_core::canonical::{row_digest, FIELD_HASH_LEN, ROW_HASH_LEN};
use ferry_core::rules::SyncBase;
use ferry_core::value::Value;
use ferry_db::meta;
use ferry_engine::journal;
use proptest::prelude::*;

use super::support::{summary, Eng, World};

const S: &str = "staging";
const P: &str = "production";

const ENGINES: [Eng; 3] = [Eng::Sqlite, Eng::Postgres, Eng::Mysql];

fn schema(eng: Eng) -> String {
    let text = if eng == Eng::Mysql { "varchar(100)" } else { "text" };
    format!("CREATE TABLE items (id integer PRIMARY KEY, name {text} NOT NULL);")
}

const TABLES: &str = "[tables.items]\n";

/// A name whose row hash (the table compares `name` alone) is valid
/// UTF-8: about one in 25,000 is.
fn name_with_utf8_hash() -> String {
    (0u32..)
        .map(|i| format!("n{i}"))
        .find(|n| std::str::from_utf8(&row_digest([("name", &Value::Text(n.clone()))])).is_ok())
        .expect("some name hashes to UTF-8")
}

#[tokio::test]
async fn sync_base_hashes_that_are_utf8_are_used() {
    let name = name_with_utf8_hash();
    for eng in ENGINES {
        let test = format!("own_records::{}::utf8_hash", eng.name());
        let Some(w) = World::new(&test, &[(S, eng), (P, eng)], |_, e| schema(e), TABLES).await else {
            continue;
        };
        for env in [S, P] {
            w.db(env)
                .exec(&format!("INSERT INTO items VALUES (1, '{name}'), (2, 'plain')"))
                .await;
        }
        w.baseline(S, P).await;
        assert_eq!(w.db(P).int("SELECT count(*) FROM _ferry_sync").await, 2, "{test}");
        // Deleted in staging: the sync base says production still holds
        // what was synced, so the row is deleted there.
        w.db(S).exec("DELETE FROM items WHERE id IN (1, 2)").await;
        let plan = w.plan(S, P, &Default::default()).await;
        assert_eq!(summary(&plan), ["items:1 delete", "items:2 delete"], "{test}");
        w.promote(S, P, &plan).await;
        assert_eq!(w.db(P).int("SELECT count(*) FROM items").await, 0, "{test}");
    }
}

/// Row hashes worth a case of their own, besides random ones.
fn row_hash() -> impl Strategy<Value = [u8; ROW_HASH_LEN]> {
    prop_oneof![
        any::<[u8; ROW_HASH_LEN]>(),
        Just([0u8; ROW_HASH_LEN]),
        Just(*b"0123456789abcdef"),
        // Valid UTF-8 with multi-byte characters: "€€€€éé" is 16 bytes.
        Just(*b"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xc3\xa9\xc3\xa9"),
        proptest::array::uniform16(0x20u8..0x7f),
    ]
}

fn field_hashes() -> impl Strategy<Value = Vec<[u8; FIELD_HASH_LEN]>> {
    let one = prop_oneof![
        any::<[u8; FIELD_HASH_LEN]>(),
        Just([0u8; FIELD_HASH_LEN]),
        proptest::array::uniform8(0x20u8..0x7f),
    ];
    proptest::collection::vec(one, 0..4)
}

fn bases() -> impl Strategy<Value = Vec<SyncBase>> {
    let base =
        (row_hash(), field_hashes(), proptest::option::of("[a-z0-9é]{0,6}")).prop_map(|(row, fields, t)| SyncBase {
            row,
            fields,
            target_key: t,
        });
    proptest::collection::vec(base, 1..12)
}

/// Sync rows written through the journal code read back equal, through a
/// transaction ([`journal::read_bases`]) and through the store (as the
/// planner reads them), on every engine.
#[test]
fn sync_rows_read_back_as_written() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    for eng in ENGINES {
        let test = format!("own_records::{}::sync_rows", eng.name());
        let Some(w) = rt.block_on(World::new(&test, &[(S, eng), (P, eng)], |_, e| schema(e), TABLES)) else {
            continue;
        };
        let store = rt.block_on(w.project.open(P)).expect("open production");
        let cases = if eng == Eng::Sqlite { 64 } else { 16 };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let round = std::cell::Cell::new(0);
        let result = runner.run(&bases(), |bases| {
            round.set(round.get() + 1);
            let table = format!("t{}", round.get());
            let keys: Vec<Vec<Value>> = (0..bases.len() as i64).map(|i| vec![Value::Int(i)]).collect();
            let updates: Vec<journal::BaseUpdate> = keys.iter().cloned().zip(bases.iter().cloned().map(Some)).collect();
            let read = rt.block_on(async {
                let mut txn = store.begin().await?;
                journal::write_bases(&mut *txn, S, &table, Some("p1"), &updates).await?;
                txn.commit().await?;
                let mut txn = store.begin().await?;
                let in_txn = journal::read_bases(&mut *txn, S, &table, &keys).await?;
                let rows = store
                    .fetch(ferry_db::FetchRequest {
                        table: meta::SYNC.into(),
                        columns: meta::columns(&journal::SYNC_READ),
                        match_columns: meta::columns(&["source_env", "table_name"]),
                        values: vec![vec![Value::Text(S.into()), Value::Text(table.clone())]],
                        flag: None,
                        filter: None,
                        fixed: Vec::new(),
                    })
                    .await?;
                let by_store = rows
                    .iter()
                    .map(|r| journal::parse_sync_row(P, r))
                    .collect::<ferry_engine::Result<std::collections::BTreeMap<_, _>>>()?;
                Ok::<_, ferry_engine::Error>((in_txn, by_store))
            });
            let (in_txn, by_store) = read.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want: std::collections::BTreeMap<String, SyncBase> = keys
                .iter()
                .map(|k| ferry_core::canonical::key_text(k))
                .zip(bases.iter().cloned())
                .collect();
            prop_assert_eq!(&in_txn, &want);
            prop_assert_eq!(&by_store, &want);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{test}: {e}");
        }
    }
}

/// `bytes` as an SQL literal of `eng`.
fn bytes_sql(eng: Eng, bytes: &[u8]) -> String {
    let hex = ferry_core::canonical::hex(bytes);
    match eng {
        Eng::Postgres => format!("'\\x{hex}'::bytea"),
        _ => format!("X'{hex}'"),
    }
}

/// Asserts that `result` failed naming the environment, the table, the
/// record's key and the column.
fn names_the_record<T: std::fmt::Debug>(test: &str, result: ferry_engine::Result<T>, parts: &[&str]) {
    let e = result.expect_err(test).to_string();
    for p in parts {
        assert!(e.contains(p), "{test}: the error does not name {p}: {e}");
    }
    assert!(e.contains("nothing was written"), "{test}: {e}");
}

#[tokio::test]
async fn damaged_records_are_errors_naming_them() {
    for eng in ENGINES {
        let test = format!("own_records::{}::damaged", eng.name());
        let Some(w) = World::new(&test, &[(S, eng), (P, eng)], |_, e| schema(e), TABLES).await else {
            continue;
        };
        w.db(S).exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
        let (_, done) = w.promote_all(S, P).await;
        let id = done.expect("a promotion").id;
        let store = w.project.open(P).await.expect("open production");

        // A row hash that is not 16 bytes: the plan fails, no row is
        // taken for "never synced".
        w.db(P)
            .exec(&format!(
                "UPDATE _ferry_sync SET row_hash = {} WHERE row_key = '[1]'",
                bytes_sql(eng, b"abc")
            ))
            .await;
        w.db(S).exec("DELETE FROM items WHERE id = 1").await;
        let pair = w.pair(S, P).await;
        let plan =
            ferry_engine::planner::plan(&pair, &Default::default(), ferry_engine::progress::Progress::hidden()).await;
        names_the_record(
            &test,
            plan,
            &[
                "`production`",
                "`_ferry_sync`",
                "row_key = [1]",
                "`row_hash`",
                "3 bytes (hex 616263)",
                "16-byte",
            ],
        );

        // Counts that are not JSON: `log` fails rather than show zeros.
        w.db(P).exec("UPDATE _ferry_promotions SET counts = 'zero'").await;
        names_the_record(
            &test,
            journal::promotions(&*store).await,
            &[
                "`production`",
                "`_ferry_promotions`",
                &format!("id = {id}"),
                "`counts`",
                "\"zero\"",
            ],
        );

        // An after-image that does not parse: a revert would not know what was written.
        w.db(P)
            .exec("UPDATE _ferry_journal SET after_image = '{\"name\": 1' WHERE seq = 1")
            .await;
        names_the_record(
            &test,
            journal::journal_rows(&*store, &id).await,
            &[
                "`production`",
                "`_ferry_journal`",
                &format!("promotion_id = {id}, seq = 1"),
                "`after_image`",
            ],
        );

        // A review whose plan is not a plan.
        w.db(P)
            .exec(
                "INSERT INTO _ferry_reviews (id, source_env, target_env, user_name, at, status, plan) \
                 VALUES ('r1', 'staging', 'production', 'me', 'now', 'pending', '{\"plan\": 3}')",
            )
            .await;
        names_the_record(
            &test,
            ferry_engine::reviews::list(&*store).await,
            &["`production`", "`_ferry_reviews`", "id = r1", "`plan`"],
        );

        // An audit entry whose user is not text (only SQLite can hold one).
        if eng == Eng::Sqlite {
            w.db(P)
                .exec(
                    "INSERT INTO _ferry_audit (id, at, user_name, action, target_env, result) \
                     VALUES ('a1', 'now', X'00', 'promote', 'production', 'ok')",
                )
                .await;
            names_the_record(
                &test,
                ferry_engine::audit::list(&*store).await,
                &[
                    "`production`",
                    "`_ferry_audit`",
                    "id = a1",
                    "`user_name`",
                    "1 bytes (hex 00)",
                ],
            );
        }
    }
}

/// A store that looked at `_ferry_sync` before the first write created it
/// still reads its hashes as bytes afterwards (the column types are not
/// cached from a table that did not exist).
#[tokio::test]
async fn sync_rows_read_back_after_the_first_write() {
    for eng in ENGINES {
        let test = format!("own_records::{}::first_write", eng.name());
        let Some(w) = World::new(&test, &[(S, eng), (P, eng)], |_, e| schema(e), TABLES).await else {
            continue;
        };
        let store = w.project.open(P).await.expect("open production");
        let read = || {
            store.fetch(ferry_db::FetchRequest {
                table: meta::SYNC.into(),
                columns: meta::columns(&journal::SYNC_READ),
                match_columns: meta::columns(&["source_env"]),
                values: vec![vec![Value::Text(S.into())]],
                flag: None,
                filter: None,
                fixed: Vec::new(),
            })
        };
        assert!(read().await.is_err(), "{test}: no _ferry_sync yet");
        let base = SyncBase {
            row: *b"0123456789abcdef",
            fields: vec![*b"abcdefgh"],
            target_key: None,
        };
        let mut txn = store.begin().await.expect("begin");
        journal::write_bases(
            &mut *txn,
            S,
            "items",
            None,
            &[(vec![Value::Int(1)], Some(base.clone()))],
        )
        .await
        .expect("write");
        txn.commit().await.expect("commit");
        let rows = read().await.expect("read");
        let got = journal::parse_sync_row(P, &rows[0]).unwrap_or_else(|e| panic!("{test}: {e}"));
        assert_eq!(got, ("[1]".to_string(), base), "{test}");
    }
}
