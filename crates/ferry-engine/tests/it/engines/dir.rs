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
    let first = ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export");
    assert_eq!(first.tables["everything"].written, 5, "{first:?}");
    let bytes = tree(&folder);
    assert_eq!(bytes.len(), 5, "one file per row: {:?}", bytes.keys());
    assert!(bytes.contains_key("everything/1.json"), "{:?}", bytes.keys());

    // Twice: identical bytes, nothing rewritten.
    let again = ferry_engine::export::export(&w.project, "source", &folder, "tester")
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
    ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export");
    // The export recorded the sync base (`source` -> `content` is a route).
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
}

/// A folder as the source of tables with `exclude`: the folder holds none
/// of the excluded rows (the export left them out), so the target
/// evaluates `exclude` and its matching rows stay as they are, never
/// deleted or updated, even with a sync base that says the folder had
/// them. `--where` on the folder is a usage error naming it.
async fn folder_source_with_exclude(eng: Eng) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let folder = dir.path().join("content");
    let Some(mut w) = world(eng, &format!("dir::folder_source_with_exclude::{eng:?}"), &folder).await else {
        return;
    };
    w.promote_all("source", "target").await;
    ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export");
    // As if the folder had been promoted into `target` already.
    w.baseline("content", "target").await;

    // Row 1 becomes a QA row; row 2 is edited; the folder is exported again.
    w.project.config.tables.get_mut("everything").expect("table").exclude = Some("id = 1".into());
    w.db("source")
        .exec("UPDATE everything SET label = 'changed' WHERE id = 2")
        .await;
    let again = ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export again");
    assert_eq!(again.tables["everything"].excluded, 1, "{again:?}");
    assert!(!folder.join("everything/1.json").exists());

    let plan = w.plan("content", "target", &Selection::default()).await;
    let c = plan.counts();
    assert_eq!(
        (c.insert, c.update, c.delete, c.conflict),
        (0, 1, 0, 0),
        "{eng:?}: {:?}",
        summary(&plan)
    );
    assert_eq!(plan.excluded.get("everything"), Some(&1), "{:?}", plan.excluded);
    // The QA row edited in the target stays as it is too.
    w.db("target")
        .exec("UPDATE everything SET label = 'qa edit' WHERE id = 1")
        .await;
    let (plan, done) = w.promote_all("content", "target").await;
    assert_eq!(
        (plan.counts().update, plan.counts().delete),
        (1, 0),
        "{:?}",
        summary(&plan)
    );
    assert!(done.is_some());
    let target = w.project.open("target").await.expect("open");
    let labels = super::support::texts(&*target, "everything", &["id", "label"]).await;
    assert!(labels.iter().any(|l| l.contains("qa edit")), "{labels:?}");
    assert!(labels.iter().any(|l| l.contains("changed")), "{labels:?}");
    assert_eq!(labels.len(), 5, "{labels:?}");

    // `--where` on the folder: refused, naming it and why.
    let sel = Selection {
        wheres: vec![("everything".into(), "id = 2".into())],
        ..Selection::default()
    };
    let pair = w.pair("content", "target").await;
    let e = ferry_engine::planner::plan(&pair, &sel, ferry_engine::progress::Progress::hidden())
        .await
        .expect_err("a --where on a folder");
    let text = e.to_string();
    assert!(text.contains("`content`") && text.contains("predicate"), "{text}");
    assert_eq!(e.exit_code(), 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_source_with_exclude_sqlite() {
    folder_source_with_exclude(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_source_with_exclude_postgres() {
    folder_source_with_exclude(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_source_with_exclude_mariadb() {
    folder_source_with_exclude(Eng::Mysql).await;
}

/// An export into the folder of a `dir:` environment records the sync
/// base along each declared route, so the first promotion either way is
/// three-way: `source` -> `content` sees only the source's change, and
/// `content` -> `target` (exported from `target`) sees the target's own
/// edit as target-newer, not as first contact.
async fn export_records_the_sync_base(eng: Eng) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let folder = dir.path().join("content");
    let Some(w) = world(eng, &format!("dir::export_records_the_sync_base::{eng:?}"), &folder).await else {
        return;
    };
    let done = ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export");
    assert_eq!(done.environment.as_deref(), Some("content"));
    assert_eq!(done.in_sync.len(), 1, "{done:?}");
    assert_eq!(
        (
            done.in_sync[0].from.as_str(),
            done.in_sync[0].to.as_str(),
            done.in_sync[0].recorded
        ),
        ("source", "content", 5)
    );
    w.db("source")
        .exec("UPDATE everything SET label = 'changed' WHERE id = 1")
        .await;
    let plan = w.plan("source", "content", &Selection::default()).await;
    let c = plan.counts();
    assert_eq!((c.update, c.conflict), (1, 0), "{eng:?}: {:?}", summary(&plan));

    // The other direction: exported from `target`, recorded in `target`.
    w.promote_all("source", "target").await;
    let done = ferry_engine::export::export(&w.project, "target", &folder, "tester")
        .await
        .expect("export from target");
    assert_eq!(done.in_sync.len(), 1, "{done:?}");
    assert_eq!(
        (
            done.in_sync[0].from.as_str(),
            done.in_sync[0].to.as_str(),
            done.in_sync[0].recorded
        ),
        ("content", "target", 5)
    );
    w.db("target")
        .exec("UPDATE everything SET label = 'edited in target' WHERE id = 2")
        .await;
    let plan = w.plan("content", "target", &Selection::default()).await;
    assert_eq!(plan.counts().conflict, 0, "{eng:?}: {:?}", summary(&plan));
    assert_eq!(plan.entries.len(), 1, "{:?}", summary(&plan));
    assert_eq!(
        plan.entries[0].reason,
        Some(ferry_core::plan::Reason::TargetNewer),
        "{:?}",
        summary(&plan)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_records_the_sync_base_sqlite() {
    export_records_the_sync_base(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_records_the_sync_base_postgres() {
    export_records_the_sync_base(Eng::Postgres).await;
}

/// The same for a table matched by natural key: a tag promoted from the
/// folder, then made a QA tag (in the source, so the export drops it, and
/// in the target) is not deleted from the target although the stored id
/// mapping says the folder had it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_source_with_exclude_on_a_natural_key_table() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let folder = dir.path().join("content");
    let schema = |env: &str, _: Eng| {
        let ddl = "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, team TEXT);";
        match env {
            "source" => format!("{ddl} INSERT INTO tags VALUES (1, 'red', NULL), (2, 'qa-tag', NULL);"),
            _ => format!("{ddl} INSERT INTO tags VALUES (40, 'green', NULL);"),
        }
    };
    let toml = "[tables.tags]\nkey = [\"id\"]\nnatural_key = [\"name\"]\n";
    let Some(mut w) = World::new(
        "dir::folder_source_with_exclude_on_a_natural_key_table",
        &[("source", Eng::Sqlite), ("target", Eng::Sqlite)],
        schema,
        toml,
    )
    .await
    else {
        return;
    };
    let mut content = w.project.config.environments["source"].clone();
    content.name = "content".into();
    content.url = UrlSource::Inline(format!("dir:{}", folder.display()));
    content.promotes_to = Some("target".into());
    content.accepts_from = vec!["source".into()];
    w.project.config.environments.insert("content".into(), content);

    ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export");
    let (plan, done) = w.promote_all("content", "target").await;
    assert_eq!(plan.counts().insert, 2, "{:?}", summary(&plan));
    assert!(done.is_some());

    w.db("source")
        .exec("UPDATE tags SET team = 'qa' WHERE name = 'qa-tag'")
        .await;
    w.db("target")
        .exec("UPDATE tags SET team = 'qa' WHERE name = 'qa-tag'")
        .await;
    w.project.config.tables.get_mut("tags").expect("table").exclude = Some("team = 'qa'".into());
    ferry_engine::export::export(&w.project, "source", &folder, "tester")
        .await
        .expect("export again");
    let plan = w.plan("content", "target", &Selection::default()).await;
    let c = plan.counts();
    assert_eq!(
        (c.insert, c.update, c.delete, c.conflict),
        (0, 0, 0, 0),
        "{:?}",
        summary(&plan)
    );
    assert_eq!(plan.excluded.get("tags"), Some(&1), "{:?}", plan.excluded);
    assert_eq!(
        w.db("target").int("SELECT count(*) FROM tags WHERE team = 'qa'").await,
        1
    );
}
