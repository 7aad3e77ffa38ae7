//! `dir:` environments against every engine: every value type of
//! `round_trip` exported into a folder and promoted back into an empty
//! database of the same engine, byte for byte; an export run twice writes
//! the same bytes; a promotion into the folder changes one line of one
//! file per changed field, and its revert restores the files.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_core::config::UrlSource;
use ferry_core::selection::Selection;

use super::round_trip::{columns, insert_sql, schema, ORIGINAL, TABLES};
use super::support::{read, summary, Eng, World};

/// Every file under `root` but Ferry's own folder, with its bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("list the folder") {
            let path = e.expect("entry").path();
            let rel = path.strip_prefix(root).expect("inside").display().to_string();
            if rel.starts_with("_ferry") {
                continue;
            }
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(rel, std::fs::read(&path).expect("read a file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The world `source` -> `target` of one engine, the every-type rows in
/// `source`, and a `dir:` environment `content` (outside the pipeline,
/// promoting into `target` and accepting from `source`) in `folder`.
async fn world(eng: Eng, test: &str, folder: &Path) -> Option<World> {
    let mut w = World::new(test, &[("source", eng), ("target", eng)], |_, e| schema(e), TABLES).await?;
    w.db("source").exec(&insert_sql(eng, &ORIGINAL)).await;
    let mut content = w.project.config.environments["source"].clone();
    content.name = "content".into();
    content.url = UrlSource::Inline(format!("dir:{}", folder.display()));
    content.promotes_to = Some("target".into());
    content.accepts_from = vec!["source".into()];
    w.project.config.environments.insert("content".into(), content);
    Some(w)
}

/// Every value of `everything` as its lossless tagged text, in key order.
async fn dump(w: &World, env: &str) -> Vec<String> {
    let names: Vec<&str> = std::iter::once("id").chain(columns().iter().map(|c| c.name)).collect();
    let store = w.project.open(env).await.expect("open");
    read(&*store, "everything", &names)
        .await
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.to_tagged().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

async fn export_round_trip(eng: Eng) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let folder = dir.path().join("content");
    let Some(w) = world(eng, &format!("dir::export_round_trip::{eng:?}"), &folder).await else {
        return;
    };
    let first = ferry_engine::export::export(&w.project, "source", &folder)
        .await
        .expect("export");
    assert_eq!(first.tables["everything"].written, 5, "{first:?}");
    let bytes = tree(&folder);
    assert_eq!(bytes.len(), 5, "one file per row: {:?}", bytes.keys());
    assert!(bytes.contains_key("everything/1.json"), "{:?}", bytes.keys());

    // Twice: identical bytes, nothing rewritten.
    let again = ferry_engine::export::export(&w.project, "source", &folder)
        .await
        .expect("export again");
    assert_eq!(
        (again.tables["everything"].written, again.tables["everything"].unchanged),
        (0, 5)
    );
    assert_eq!(tree(&folder), bytes, "a second export changed bytes");

    // Back into an empty database of the same engine: the same bytes.
    let (plan, done) = w.promote_all("content", "target").await;
    assert_eq!(plan.counts().insert, 5, "{:?}", summary(&plan));
    assert!(done.is_some());
    assert_eq!(
        dump(&w, "source").await,
        dump(&w, "target").await,
        "{eng:?}: the round trip changed values"
    );
    let again = w.plan("content", "target", &Selection::default()).await;
    assert!(again.entries.is_empty(), "{:?}", summary(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_round_trip_sqlite() {
    export_round_trip(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_round_trip_postgres() {
    export_round_trip(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_round_trip_mariadb() {
    export_round_trip(Eng::Mysql).await;
}

/// A promotion into the folder: one changed field is one changed line of
/// one file; a deleted row removes its file; revert restores every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_into_a_folder_and_revert() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let folder = dir.path().join("content");
    let Some(w) = world(Eng::Sqlite, "dir::promote_into_a_folder", &folder).await else {
        return;
    };
    ferry_engine::export::export(&w.project, "source", &folder)
        .await
        .expect("export");
    // An export writes no sync base: a baseline records the rows as in sync.
    w.baseline("source", "content").await;
    let before = tree(&folder);
    w.db("source")
        .exec("UPDATE everything SET label = 'changed' WHERE id = 1; DELETE FROM everything WHERE id = 5;")
        .await;
    let (plan, done) = w.promote_all("source", "content").await;
    assert_eq!(
        (plan.counts().update, plan.counts().delete),
        (1, 1),
        "{:?}",
        summary(&plan)
    );
    let promotion = done.expect("the promotion writes");
    let after = tree(&folder);
    assert!(!after.contains_key("everything/5.json"), "the deleted row's file stays");
    let changed: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert_eq!(changed, ["everything/1.json"]);
    let (old, new) = (
        String::from_utf8(before["everything/1.json"].clone()).expect("utf-8"),
        String::from_utf8(after["everything/1.json"].clone()).expect("utf-8"),
    );
    let diff: Vec<(&str, &str)> = old.lines().zip(new.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(diff, [("  \"label\": \"🦀🦀🦀\",", "  \"label\": \"changed\",")]);
    assert_eq!(old.lines().count(), new.lines().count());
    let again = w.plan("source", "content", &Selection::default()).await;
    assert!(again.entries.is_empty(), "{:?}", summary(&again));

    // The journal is in the folder: revert restores every file.
    w.revert(&promotion.id).await;
    assert_eq!(tree(&folder), before, "revert did not restore the files");

    // The folder as a source with an `exclude`: refused, naming the table.
    let mut project = w.project.clone();
    project.config.tables.get_mut("everything").expect("table").exclude = Some("id = 1".into());
    let pair = ferry_engine::pair::open(&project, "content", "target")
        .await
        .expect("open");
    let e = ferry_engine::planner::plan(&pair, &Selection::default(), ferry_engine::progress::Progress::hidden())
        .await
        .expect_err("an exclude on a folder");
    assert!(e.to_string().contains("everything"), "{e}");
}
