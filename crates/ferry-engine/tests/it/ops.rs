//! The operation API (issue 16) on real SQLite files: a prepared promotion
//! holds the writer lock and writes nothing until committed (dropping it
//! writes nothing and frees the lock), a refusal is audited in the target,
//! and the registry opens each environment once.

use std::sync::Arc;

use ferry_core::plan::Plan;
use ferry_core::selection::Selection;
use ferry_engine::error::Hint;
use ferry_engine::ops::promote::{self, PromoteOutcome, PromoteRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::registry::Envs;
use ferry_engine::Error;

use crate::common::{World, PRODUCTION, STAGING, USER};

const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";

fn world() -> World {
    let w = World::new(SCHEMA, "[tables.items]\n");
    w.exec(STAGING, "INSERT INTO items VALUES (1, 'one'), (2, 'two');");
    w
}

fn request() -> PromoteRequest {
    PromoteRequest {
        from: STAGING.into(),
        to: PRODUCTION.into(),
        user: USER.into(),
        selection: Selection::default(),
        saved: None,
        dry_run: false,
        approve_revisions: false,
        force: false,
        take: None,
        wait: false,
        expect: None,
    }
}

#[tokio::test]
async fn a_prepared_promotion_holds_the_lock_and_writes_only_when_committed() {
    let w = world();
    let envs = Envs::new(w.project.clone());
    let before = w.dump(PRODUCTION);
    let prepared = promote::prepare(&envs, request(), &Quiet).await.expect("prepare");
    assert_eq!((prepared.changes, prepared.would.insert), (2, 2));
    assert!(!prepared.writes_nothing());
    // A second writer that may not wait is refused, with the hint to wait.
    let other = Envs::new(w.project.clone());
    let err = promote::prepare(&other, request(), &Quiet)
        .await
        .err()
        .expect("the lock is held");
    assert!(matches!(err.inner(), Error::Blocked(_)), "{err:?}");
    assert_eq!(err.hint_of(), Some(&Hint::Wait));
    assert!(!err.to_string().contains("--"), "{err}");
    // Dropped: nothing written (the refusal above is audited, in
    // Ferry's own tables), the lock free again.
    drop(prepared);
    assert_eq!(w.dump(PRODUCTION), before, "a dropped promotion wrote something");
    let prepared = promote::prepare(&other, request(), &Quiet)
        .await
        .expect("the lock is free");
    match prepared.commit().await.expect("commit") {
        PromoteOutcome::Applied(p, hooks) => {
            assert_eq!((p.counts.insert, hooks.len()), (2, 0));
        }
        _ => panic!("a direct promotion applies"),
    }
    assert_ne!(w.dump(PRODUCTION), before);
}

#[tokio::test]
async fn a_refused_promotion_is_audited_in_the_target_and_a_dry_run_is_not() {
    let w = world();
    w.exec(PRODUCTION, "INSERT INTO items VALUES (1, 'uno');");
    let envs = Envs::new(w.project.clone());
    // A dry run of a conflict refuses too, and is no action: not audited.
    let dry = PromoteRequest {
        dry_run: true,
        ..request()
    };
    let err = promote::prepare(&envs, dry, &Quiet).await.err().expect("a conflict");
    assert!(
        matches!(
            err.hint_of(),
            Some(Hint::Conflicts {
                first_contact: true,
                ..
            })
        ),
        "{err:?}"
    );
    let target = envs.open(PRODUCTION).await.expect("open");
    assert!(ferry_engine::audit::list(&*target).await.expect("audit").is_empty());
    let err = promote::prepare(&envs, request(), &Quiet)
        .await
        .err()
        .expect("a conflict");
    let audit = ferry_engine::audit::list(&*target).await.expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].result.as_str()),
        ("promote", "blocked")
    );
    assert_eq!(audit[0].detail, err.to_string());
}

#[tokio::test]
async fn the_registry_opens_each_environment_once() {
    let w = world();
    let envs = Envs::new(w.project.clone());
    let a = envs.open(PRODUCTION).await.expect("open");
    let b = envs.open(PRODUCTION).await.expect("open again");
    assert!(Arc::ptr_eq(&a, &b), "the store was opened twice");
    let pair = envs
        .pair(STAGING, PRODUCTION, &Selection::default(), true)
        .await
        .expect("pair");
    assert!(Arc::ptr_eq(&a, &pair.target), "the pair opened its own target");
    let err = envs.open("nowhere").await.err().expect("no such environment");
    assert!(matches!(err, Error::Usage(_)), "{err:?}");
}

#[tokio::test]
async fn an_expected_hash_with_a_saved_plan_is_a_usage_error() {
    let w = world();
    let envs = Envs::new(w.project.clone());
    let pair = envs
        .pair(STAGING, PRODUCTION, &Selection::default(), true)
        .await
        .expect("pair");
    let plan = ferry_engine::planner::plan(&pair, &Selection::default(), ferry_engine::progress::Progress::hidden())
        .await
        .expect("plan");
    let before = w.dump(PRODUCTION);
    let req = PromoteRequest {
        expect: Some(promote::Expected {
            selection: Selection::default(),
            hash: plan.content_hash(),
        }),
        saved: Some(Plan::from_file(&plan.to_file()).expect("a saved plan reads back")),
        ..request()
    };
    let err = promote::prepare(&envs, req, &Quiet).await.err().expect("refused");
    assert_eq!(err.code(), "usage", "{err}");
    assert!(err.to_string().contains("saved plan"), "{err}");
    assert!(!err.to_string().contains("--"), "{err}");
    assert_eq!(w.dump(PRODUCTION), before);
}

/// A PostgreSQL "server" that accepts connections and never answers:
/// opening an environment there hangs. Says on `accepted` when the first
/// connection came in.
async fn silent_server() -> (u16, tokio::sync::oneshot::Receiver<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let port = listener.local_addr().expect("a bound port").port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
        }
    });
    (port, rx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_registry_answers_while_one_environment_does_not() {
    let (port, accepted, server) = silent_server().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let text = format!(
        "pipeline = [\"stuck\", \"missing\", \"production\"]\n\n\
         [environments.stuck]\nurl = \"postgres://ferry@127.0.0.1:{port}/nothing\"\n\n\
         [environments.missing]\nurl = \"sqlite://missing.db\"\n\n\
         [environments.production]\nurl = \"sqlite://production.db\"\n\n\
         [tables.items]\n"
    );
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, &text).expect("write ferry.toml");
    rusqlite::Connection::open(dir.path().join("production.db"))
        .and_then(|c| c.execute_batch(SCHEMA))
        .expect("create production");
    let config = ferry_core::config::parse(&text, &path).unwrap_or_else(|e| panic!("bad test config: {e}"));
    // One registry for the server's lifetime, shared by its requests.
    let envs = Arc::new(Envs::new(ferry_engine::project::Project::from_config(config, path)));

    let stuck = tokio::spawn({
        let envs = envs.clone();
        async move { envs.open("stuck").await.map(|_| ()) }
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), accepted)
        .await
        .expect("the stuck environment is being opened")
        .expect("the silent server reports");
    // Meanwhile, the other environments answer: one opens, twice at once
    // (both callers get the same store), and one fails at once.
    let quick = std::time::Duration::from_secs(5);
    let (a, b) = tokio::time::timeout(quick, async {
        tokio::join!(envs.open(PRODUCTION), envs.open(PRODUCTION))
    })
    .await
    .expect("production opened while another environment hangs");
    let (a, b) = (a.expect("production opens"), b.expect("production opens"));
    assert!(Arc::ptr_eq(&a, &b), "two stores kept for one environment");
    let again = envs.open(PRODUCTION).await.expect("production again");
    assert!(Arc::ptr_eq(&a, &again), "the kept store was not reused");
    let err = tokio::time::timeout(quick, envs.open("missing"))
        .await
        .expect("a missing file is refused while another environment hangs")
        .err()
        .expect("a missing SQLite file does not open");
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!stuck.is_finished(), "the silent server answered");
    stuck.abort();

    // With a time limit (a server's), the silent database is an
    // unreachable database error naming it.
    let limited = Envs::shared(Arc::new(envs.project().clone())).open_timeout(std::time::Duration::from_millis(300));
    let err = tokio::time::timeout(quick, limited.open("stuck"))
        .await
        .expect("the time limit ends the opening")
        .err()
        .expect("the silent server does not open");
    assert_eq!(err.code(), "database", "{err}");
    assert_eq!(
        err.to_string(),
        "environment `stuck`: the database did not answer within 0.3 s; nothing was read from it or written to it"
    );
    limited.open(PRODUCTION).await.expect("production opens");
    // A listing of every environment: what opens, and what did not, each
    // with why.
    let (opened, left_out) = tokio::time::timeout(quick, limited.each(None))
        .await
        .expect("the listing ends")
        .expect("the environments are known");
    assert_eq!(
        opened.iter().map(|s| s.env().to_string()).collect::<Vec<_>>(),
        [PRODUCTION]
    );
    assert_eq!(
        left_out.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        ["stuck", "missing"]
    );
    server.abort();
}
