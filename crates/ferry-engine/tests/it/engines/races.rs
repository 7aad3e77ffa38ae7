//! A client writing the target while Ferry applies: nothing it commits is
//! lost, and a row it changed makes the promotion (or revert) refuse with
//! nothing written.
//!
//! Each race is made deterministic with the database's own row locks, not
//! with timing: a client connection opens a transaction and changes a
//! planned row without committing; Ferry's apply starts and the test waits
//! until the server reports one of Ferry's statements waiting for a lock
//! (PostgreSQL's `pg_stat_activity`, InnoDB's `INNODB_TRX`); then the client
//! commits. Ferry re-checks the target under `SELECT ... FOR UPDATE`, so it
//! waits at the re-check and then reads the client's committed row. (With a
//! plain `SELECT` it read the old row, waited at its own `UPDATE` and then
//! overwrote the client's edit, journalling a before-image that never
//! held.) SQLite's write transaction keeps other writers out altogether.

use std::time::{Duration, Instant};

use ferry_core::selection::Selection;
use ferry_engine::apply::PromoteOptions;
use ferry_engine::Error;
use sqlx::{Connection, Executor};

use super::support::{texts, Eng, World, USER};

fn schema(_: &str, eng: Eng) -> String {
    let text = if eng == Eng::Mysql { "varchar(50)" } else { "text" };
    format!("CREATE TABLE items (id integer PRIMARY KEY, name {text});")
}

const TABLES: &str = "[tables.items]\nkey = [\"id\"]\n";

/// A client connection to a server database, with an open transaction.
enum Client {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Client {
    async fn begin(eng: Eng, url: &str) -> Client {
        let mut c = match eng {
            Eng::Postgres => Client::Pg(sqlx::PgConnection::connect(url).await.expect("client connects")),
            Eng::Mysql => Client::My(sqlx::MySqlConnection::connect(url).await.expect("client connects")),
            Eng::Sqlite => unreachable!("races are tested on the servers"),
        };
        c.exec("BEGIN").await;
        c
    }

    async fn exec(&mut self, sql: &str) {
        let done = match self {
            Client::Pg(c) => c.execute(sql).await.map(|_| ()),
            Client::My(c) => c.execute(sql).await.map(|_| ()),
        };
        done.unwrap_or_else(|e| panic!("client: {e}\n{sql}"));
    }
}

/// How many statements of this database's other sessions wait for a lock.
/// MariaDB's `INNODB_TRX` lags (it is a cache): a statement on `items`
/// that has run for 200 ms on a three-row table is one that waits.
fn waiting_sql(eng: Eng) -> &'static str {
    match eng {
        Eng::Postgres => {
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        }
        _ => {
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() \
             AND COMMAND <> 'Sleep' AND INFO LIKE '%`items`%' AND TIME_MS > 200"
        }
    }
}

/// Waits until a session of the target waits for a lock (Ferry's, blocked
/// by the client), or `task` ended without waiting.
async fn until_blocked<T>(w: &World, eng: Eng, task: &tokio::task::JoinHandle<T>, test: &str) {
    let started = Instant::now();
    while w.db("production").int(waiting_sql(eng)).await == 0 {
        if task.is_finished() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{test}: Ferry never waited for the client's row lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Staging and production hold (1, a), (2, b) as their sync base; then
/// staging changes row 1, deletes row 2 and adds row 3.
async fn world(eng: Eng, test: &str) -> Option<World> {
    let w = World::new(test, &[("staging", Eng::Sqlite), ("production", eng)], schema, TABLES).await?;
    for env in ["staging", "production"] {
        w.db(env).exec("INSERT INTO items VALUES (1, 'a'), (2, 'b');").await;
    }
    w.baseline("staging", "production").await;
    w.db("staging")
        .exec("UPDATE items SET name = 'from staging' WHERE id = 1; DELETE FROM items WHERE id = 2; INSERT INTO items VALUES (3, 'new');")
        .await;
    Some(w)
}

async fn production(w: &World) -> Vec<String> {
    let pair = w.pair("staging", "production").await;
    texts(&*pair.target, "items", &["id", "name"]).await
}

/// The client changes one planned row (uncommitted) before Ferry applies,
/// and commits once Ferry waits for it: the promotion refuses (exit 3),
/// naming the row, and the client's edit stays.
async fn client_edit_before_apply(eng: Eng, what: &str, client_sql: &str, row: &str) {
    let test = format!("races::{what}_{}", eng.name());
    let Some(w) = world(eng, &test).await else { return };
    let plan = w.plan("staging", "production", &Selection::default()).await;
    assert_eq!(plan.entries.len(), 3, "{test}: update 1, delete 2, insert 3");

    let journalled = w.db("production").promotions().await;
    let mut client = Client::begin(eng, &w.db("production").url).await;
    client.exec(client_sql).await;
    let pair = w.pair("staging", "production").await;
    let apply = tokio::spawn(async move {
        let opts = PromoteOptions {
            user: USER.into(),
            force: false,
        };
        ferry_engine::apply::promote(&pair, &plan, &opts).await
    });
    until_blocked(&w, eng, &apply, &test).await;
    client.exec("COMMIT").await;
    let done = apply.await.expect("the apply task");

    let after = production(&w).await;
    match done {
        Err(e) if matches!(e.inner(), Error::Blocked(_)) => {
            let msg = e.to_string();
            assert!(msg.contains(row), "{test}: the refusal names {row}: {msg}");
            assert!(msg.contains("nothing was written"), "{test}: {msg}");
        }
        other => panic!("{test}: the promotion must refuse (exit 3), got {other:?}; production now holds {after:?}"),
    }
    assert_eq!(
        w.db("production").promotions().await,
        journalled,
        "{test}: nothing journalled"
    );
    assert!(
        !after
            .iter()
            .any(|r| r.contains("from staging") || r.starts_with("3|new")),
        "{test}: nothing of the promotion was written: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_of_an_updated_row_is_kept_postgres() {
    client_edit_before_apply(
        Eng::Postgres,
        "update_updated",
        "UPDATE items SET name = 'client' WHERE id = 1",
        "items:1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_of_an_updated_row_is_kept_mariadb() {
    client_edit_before_apply(
        Eng::Mysql,
        "update_updated",
        "UPDATE items SET name = 'client' WHERE id = 1",
        "items:1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_of_a_deleted_row_is_kept_postgres() {
    client_edit_before_apply(
        Eng::Postgres,
        "update_deleted",
        "UPDATE items SET name = 'client' WHERE id = 2",
        "items:2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_of_a_deleted_row_is_kept_mariadb() {
    client_edit_before_apply(
        Eng::Mysql,
        "update_deleted",
        "UPDATE items SET name = 'client' WHERE id = 2",
        "items:2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_insert_of_an_inserted_key_is_a_refusal_postgres() {
    client_edit_before_apply(
        Eng::Postgres,
        "insert_inserted",
        "INSERT INTO items VALUES (3, 'client')",
        "items:3",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_insert_of_an_inserted_key_is_a_refusal_mariadb() {
    client_edit_before_apply(
        Eng::Mysql,
        "insert_inserted",
        "INSERT INTO items VALUES (3, 'client')",
        "items:3",
    )
    .await;
}

/// A revert re-checks the rows it restores the same way: a client edit of
/// a promoted row, committed while the revert waits, makes it refuse.
async fn client_edit_before_revert(eng: Eng) {
    let test = format!("races::revert_{}", eng.name());
    let Some(w) = world(eng, &test).await else { return };
    let (_, done) = w.promote_all("staging", "production").await;
    let id = done.expect("a promotion").id;
    let journalled = w.db("production").promotions().await;

    let mut client = Client::begin(eng, &w.db("production").url).await;
    client.exec("UPDATE items SET name = 'client' WHERE id = 1").await;
    let project = w.project.clone();
    let revert_id = id.clone();
    let revert = tokio::spawn(async move { ferry_engine::revert::revert(&project, &revert_id, USER, false).await });
    until_blocked(&w, eng, &revert, &test).await;
    client.exec("COMMIT").await;
    let done = revert.await.expect("the revert task");
    let after = production(&w).await;
    match done {
        Err(e) if matches!(e.inner(), Error::Blocked(_)) => assert!(e.to_string().contains("items:1"), "{test}: {e}"),
        other => panic!("{test}: the revert must refuse (exit 3), got {other:?}; production now holds {after:?}"),
    }
    assert_eq!(
        after,
        vec!["1|client".to_string(), "3|new".to_string()],
        "{test}: the client's edit stays, nothing restored"
    );
    assert_eq!(
        w.db("production").promotions().await,
        journalled,
        "{test}: no revert journalled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_during_revert_is_kept_postgres() {
    client_edit_before_revert(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_during_revert_is_kept_mariadb() {
    client_edit_before_revert(Eng::Mysql).await;
}

/// Approving a review applies its held plan through the same re-check: a
/// client edit of a held row, committed while the approval waits for it,
/// makes the review stale (exit 3) and stays.
async fn client_edit_before_approve(eng: Eng) {
    let test = format!("races::approve_{}", eng.name());
    let Some(mut w) = world(eng, &test).await else { return };
    w.project
        .config
        .environments
        .get_mut("production")
        .expect("production is configured")
        .review = true;
    let plan = w.plan("staging", "production", &Selection::default()).await;
    let pair = w.pair("staging", "production").await;
    let opts = PromoteOptions {
        user: "submitter".into(),
        force: false,
    };
    let submitted = ferry_engine::reviews::submit(&w.project, &*pair.target, &plan, &opts, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{test}: submit: {e}"));
    let review = submitted.review.expect("the changes are held in a review");
    let before = production(&w).await;
    let journalled = w.db("production").promotions().await;

    let mut client = Client::begin(eng, &w.db("production").url).await;
    client.exec("UPDATE items SET name = 'client' WHERE id = 1").await;
    let project = w.project.clone();
    let approve = tokio::spawn(async move { ferry_engine::reviews::approve(&project, &review, USER, &[]).await });
    until_blocked(&w, eng, &approve, &test).await;
    client.exec("COMMIT").await;
    let done = approve.await.expect("the approve task");
    let after = production(&w).await;
    match done {
        Err(e) if matches!(e.inner(), Error::Blocked(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("items:1") && msg.contains("stale"), "{test}: {msg}")
        }
        other => panic!("{test}: the approval must refuse (exit 3), got {other:?}; production now holds {after:?}"),
    }
    let expected: Vec<String> = before
        .iter()
        .map(|r| {
            if r.starts_with("1|") {
                "1|client".to_string()
            } else {
                r.clone()
            }
        })
        .collect();
    assert_eq!(after, expected, "{test}: the client's edit stays, nothing approved");
    assert_eq!(
        w.db("production").promotions().await,
        journalled,
        "{test}: nothing journalled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_during_approve_is_kept_postgres() {
    client_edit_before_approve(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_update_during_approve_is_kept_mariadb() {
    client_edit_before_approve(Eng::Mysql).await;
}

/// The connection holding the writer lock dies while a promotion applies
/// (a server restart of that session, an idle-connection killer): the
/// promotion must not commit, since a second writer can take the lock at
/// once. The apply is held at its re-check by a client's row lock that
/// changes nothing; meanwhile the lock's connection is terminated and a
/// second writer takes the lock; then the client lets go.
async fn lock_lost_mid_apply(eng: Eng) {
    let test = format!("races::lost_lock_{}", eng.name());
    let Some(w) = world(eng, &test).await else { return };
    let pair = w.pair("staging", "production").await;
    let lock = ferry_engine::lock::writer(&*pair.target, false, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{test}: take the writer lock: {e}"));
    let plan = w.plan("staging", "production", &Selection::default()).await;
    let before = production(&w).await;
    let journalled = w.db("production").promotions().await;

    let mut client = Client::begin(eng, &w.db("production").url).await;
    client.exec("SELECT id FROM items WHERE id = 1 FOR UPDATE").await;
    let apply = tokio::spawn(async move {
        let opts = PromoteOptions {
            user: USER.into(),
            force: false,
        };
        ferry_engine::apply::promote(&pair, &plan, &opts).await
    });
    until_blocked(&w, eng, &apply, &test).await;
    let db = w.db("production");
    match eng {
        Eng::Postgres => {
            let killed = db
                .int(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .await;
            assert_eq!(killed, 1, "{test}: the lock's connection found and terminated");
        }
        _ => {
            let id = db.int("SELECT IS_USED_LOCK(CONCAT('ferry:', DATABASE()))").await;
            assert!(id > 0, "{test}: the lock's connection found");
            db.exec(&format!("KILL CONNECTION {id}")).await;
        }
    }
    // The lock is free: a second writer takes it.
    let other = w.pair("staging", "production").await;
    let started = Instant::now();
    let second = loop {
        match ferry_engine::lock::writer(&*other.target, false, |_| {}).await {
            Ok(l) => break l,
            Err(Error::Blocked(_)) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{test}: a second writer takes the lost lock: {e}"),
        }
    };
    client.exec("ROLLBACK").await;
    let done = apply.await.expect("the apply task");
    let after = production(&w).await;
    match done {
        Err(e) if matches!(e.inner(), Error::Blocked(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("writer lock was lost"), "{test}: {msg}");
            assert!(msg.contains("nothing was written"), "{test}: {msg}");
        }
        other => panic!("{test}: a promotion that lost its lock must refuse (exit 3), got {other:?}; production now holds {after:?}"),
    }
    assert_eq!(after, before, "{test}: nothing written");
    assert_eq!(db.promotions().await, journalled, "{test}: nothing journalled");
    drop(second);
    drop(lock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_writer_lock_refuses_the_commit_postgres() {
    lock_lost_mid_apply(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_writer_lock_refuses_the_commit_mariadb() {
    lock_lost_mid_apply(Eng::Mysql).await;
}
