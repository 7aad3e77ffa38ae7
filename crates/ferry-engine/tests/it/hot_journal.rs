//! An SQLite writer that died mid-commit leaves a hot rollback journal
//! beside the database. Ferry reads through read-only connections, which
//! cannot roll it back: opening the environment failed ("attempt to write
//! a readonly database") until another program opened the file read-write.
//! Ferry now rolls the journal back itself when it opens the database.
//!
//! The dead writer is made without killing anything: a transaction with a
//! one-page cache spills its changes into the database file (the original
//! pages go to the journal first); the two files are copied while it is
//! open, then put back once it is rolled back. The copy is exactly what a
//! writer killed at that moment leaves.

use std::path::Path;

use ferry_core::selection::Selection;

use crate::common::{World, PRODUCTION, STAGING};

const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB);";
const TABLES: &str = "[tables.items]\nkey = [\"id\"]\n";

fn journal_of(db: &Path) -> std::path::PathBuf {
    let mut name = db.file_name().expect("a file name").to_os_string();
    name.push("-journal");
    db.with_file_name(name)
}

/// Leaves `db` as a writer killed mid-commit leaves it: 500 rows of 4 KB
/// half written into the file, and a hot journal holding the pages they
/// replaced.
fn die_mid_commit(db: &Path) {
    let journal = journal_of(db);
    let saved = db.with_extension("dead-writer");
    let saved_journal = db.with_extension("dead-writer-journal");
    {
        let conn = rusqlite::Connection::open(db).expect("open the database");
        conn.execute_batch("PRAGMA cache_size = 1; BEGIN;").expect("begin");
        for i in 0..500 {
            conn.execute(
                "INSERT INTO items VALUES (?1, 'never committed', zeroblob(4096))",
                [1000 + i],
            )
            .expect("insert");
        }
        assert!(
            journal.metadata().is_ok_and(|m| m.len() > 0),
            "the transaction spilled into the file, with a journal"
        );
        std::fs::copy(db, &saved).expect("copy the half-written database");
        std::fs::copy(&journal, &saved_journal).expect("copy its journal");
        // Dropped without COMMIT: rolled back here; the copies stay as they were.
    }
    std::fs::rename(&saved, db).expect("put the half-written database back");
    std::fs::rename(&saved_journal, &journal).expect("put its journal back");
}

#[tokio::test]
async fn a_hot_journal_left_by_a_dead_writer_is_rolled_back_on_open() {
    let w = World::new(SCHEMA, TABLES);
    w.exec(STAGING, "INSERT INTO items VALUES (1, 'one', x'01'), (2, 'two', NULL);");
    w.exec(PRODUCTION, "INSERT INTO items VALUES (1, 'one', x'01');");
    let production = w.path(PRODUCTION);
    die_mid_commit(&production);
    assert!(journal_of(&production).exists(), "a hot journal is left");

    // Opening, planning, promoting and reading the log work again.
    let plan = w
        .try_plan(&Selection::default())
        .await
        .unwrap_or_else(|e| panic!("a database with a hot journal opens (the journal rolled back): {e}"));
    assert!(
        !journal_of(&production).metadata().is_ok_and(|m| m.len() > 0),
        "the journal was rolled back"
    );
    assert_eq!(
        plan.entries.iter().map(|e| e.label()).collect::<Vec<_>>(),
        ["items:2"],
        "the dead writer's rows are gone: only row 2 is missing"
    );
    let done = w.promote(&plan, false).await.expect("promote").expect("a promotion");
    assert_eq!(w.dump(PRODUCTION), w.dump(STAGING));
    let store = w.project.open(PRODUCTION).await.expect("open production");
    let log = ferry_engine::journal::promotions(&*store).await.expect("the log");
    assert!(log.iter().any(|p| p.id == done.id), "the promotion is in the log");
    assert_eq!(w.count(PRODUCTION, "SELECT count(*) FROM items WHERE id >= 1000"), 0);
}
