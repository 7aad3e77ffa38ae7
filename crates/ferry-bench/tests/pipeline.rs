//! The whole benchmark at S=0.01: generate, baseline, change staging, plan,
//! promote, the baselines, and the checks that production equals staging
//! afterwards. Correctness only: no time is asserted.
//!
//! SQLite always runs; PostgreSQL and MariaDB when FERRY_TEST_POSTGRES_URL /
//! FERRY_TEST_MYSQL_URL are set. Under CI=true a missing server fails.

use std::path::PathBuf;

use ferry_bench::bench::{self, EngineResult, Options};
use ferry_bench::db::{verify_equal, Db};
use ferry_bench::gen::{Workload, DEFAULT_SEED};
use ferry_bench::schema::Engine;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_promotes_correctly_at_small_scale() {
    let mut opts = Options::new(0.01, PathBuf::from(env!("CARGO_BIN_EXE_ferry-bench")));
    opts.runs = 1;
    // Correctness only: the engines run side by side to keep the test short.
    opts.parallel = true;
    opts.verbose = std::env::var_os("FERRY_BENCH_VERBOSE").is_some();
    let results = bench::run(&opts).await.expect("benchmark");
    assert_eq!(results.len(), 3);
    for r in &results {
        match r {
            EngineResult::Done(rep) => {
                // Each promote was verified inside the run (production equals
                // staging on every column); here: that every step ran.
                assert_eq!(rep.plan.len(), 1, "{}", rep.engine);
                assert_eq!(rep.promote.len(), 1, "{}", rep.engine);
                assert_eq!(rep.baseline.recorded, rep.rows, "{}", rep.engine);
                let (ins, upd, del) = rep.changes;
                assert!(ins > 0 && upd > 0 && del > 0, "{}: {:?}", rep.engine, rep.changes);
                let p = &rep.promote[0];
                assert_eq!((p.insert, p.update, p.delete, p.conflict), (ins, upd, del, 0));
                assert!(
                    rep.hand_sync.is_ok(),
                    "{}: hand-written sync: {:?}",
                    rep.engine,
                    rep.hand_sync
                );
                assert!(
                    rep.scan_floor.is_ok(),
                    "{}: scan floor: {:?}",
                    rep.engine,
                    rep.scan_floor
                );
                if rep.engine == Engine::Sqlite {
                    match &rep.sqldiff {
                        Some(Ok(_)) => {}
                        Some(Err(why)) if why == "not installed" => {
                            eprintln!("NOTE: sqldiff not installed; its baseline was not checked")
                        }
                        other => panic!("sqldiff: {other:?}"),
                    }
                }
            }
            EngineResult::Skipped(e, why) => {
                assert!(!ci(), "{e}: {why}; CI=true needs both servers");
                eprintln!("SKIP {e}: {why}");
            }
            EngineResult::Failed(e, why) => panic!("{e}: {why}"),
        }
    }
}

/// The check behind every verification does fail when the databases differ.
#[tokio::test]
async fn verification_catches_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let w = Workload::new(0.01, DEFAULT_SEED);
    let production = Db::Sqlite(dir.path().join("production.db"));
    let staging = Db::Sqlite(dir.path().join("staging.db"));
    production.create_production(&w).await.unwrap();
    production.copy_to(&staging).await.unwrap();
    verify_equal(&production, &staging).await.unwrap();
    staging.apply(&w.changes()).await.unwrap();
    let err = verify_equal(&production, &staging).await.unwrap_err().to_string();
    assert!(err.contains("differs at row"), "{err}");
    // One changed byte in one blob is enough.
    let c = rusqlite::Connection::open(dir.path().join("staging.db")).unwrap();
    c.execute_batch(
        "DELETE FROM form_fields; DELETE FROM forms; DELETE FROM businesses; DELETE FROM partners; DELETE FROM cities;",
    )
    .unwrap();
    drop(c);
    let copy = Db::Sqlite(dir.path().join("copy.db"));
    production.copy_to(&copy).await.unwrap();
    let c = rusqlite::Connection::open(dir.path().join("copy.db")).unwrap();
    c.execute(
        "UPDATE businesses SET icon = substr(icon, 1, 100) || x'00' || substr(icon, 102) WHERE id = (SELECT min(id) FROM businesses WHERE icon IS NOT NULL)",
        [],
    )
    .unwrap();
    drop(c);
    let err = verify_equal(&production, &copy).await.unwrap_err().to_string();
    assert!(err.contains("businesses"), "{err}");
}

/// A change set sized for a bigger scale than the tables is refused before
/// anything is generated.
#[test]
fn a_change_scale_above_the_scale_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .args(["--scale", "0.01", "--change-scale", "0.2", "--engines", "sqlite"])
        .output()
        .expect("ferry-bench runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--change-scale must be above 0 and at most --scale (0.01)"),
        "{err}"
    );
}
