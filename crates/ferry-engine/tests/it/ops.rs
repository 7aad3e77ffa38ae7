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
