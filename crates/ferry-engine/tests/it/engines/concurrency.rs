//! One writer per target: two promotions into one target started at once
//! run one after the other. Each takes the target's writer lock the way the
//! command line does (`lock::writer`, then plan, then promote, then release);
//! the second waits, says so, and then sees the first one's result, so its
//! plan is empty. With `wait = false` the second is refused instead.
//!
//! Each side opens its own pair (its own connections or file handles), as
//! two `ferry` processes would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::plan::Plan;
use ferry_core::selection::Selection;
use ferry_engine::apply::Promotion;
use ferry_engine::progress::Progress;
use ferry_engine::Error;

use super::support::{promote, texts, Eng, World};

const ROWS: i64 = 40;

fn schema(_: &str, eng: Eng) -> String {
    let text = if eng == Eng::Mysql { "varchar(50)" } else { "text" };
    format!("CREATE TABLE items (id integer PRIMARY KEY, name {text});")
}

const TABLES: &str = "[tables.items]\nkey = [\"id\"]\n";

/// What one writer saw and did.
struct Run {
    waited: Option<String>,
    locked_at: Instant,
    released_at: Instant,
    plan: Plan,
    promotion: Option<Promotion>,
}

/// Takes the lock (waiting), plans, holds on a moment, promotes, releases.
async fn writer(w: Arc<World>, start: Arc<tokio::sync::Barrier>) -> Run {
    let pair = w.pair("staging", "production").await;
    start.wait().await;
    let waited = Arc::new(Mutex::new(None));
    let note = waited.clone();
    let lock = ferry_engine::lock::writer(&*pair.target, true, move |msg| {
        *note.lock().expect("note") = Some(msg.to_string());
    })
    .await
    .unwrap_or_else(|e| panic!("take the writer lock: {e}"));
    let locked_at = Instant::now();
    let plan = ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden())
        .await
        .unwrap_or_else(|e| panic!("plan: {e}"));
    // Hold the lock long enough that the other writer surely tries meanwhile.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let promotion = promote(&pair, &plan).await;
    let released_at = Instant::now();
    drop(lock);
    let waited = waited.lock().expect("note").take();
    Run {
        waited,
        locked_at,
        released_at,
        plan,
        promotion,
    }
}

async fn one_writer(target: Eng) {
    let test = format!("concurrency::into_{}", target.name());
    let Some(w) = World::new(
        &test,
        &[("staging", Eng::Sqlite), ("production", target)],
        schema,
        TABLES,
    )
    .await
    else {
        return;
    };
    let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 'item {i}')")).collect();
    w.db("staging")
        .exec(&format!("INSERT INTO items VALUES {};", values.join(", ")))
        .await;

    // While one writer holds the target, a writer that may not wait is refused.
    {
        let holder = w.pair("staging", "production").await;
        let other = w.pair("staging", "production").await;
        let lock = ferry_engine::lock::writer(&*holder.target, false, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{test}: the first writer: {e}"));
        let refused = ferry_engine::lock::writer(&*other.target, false, |_| {})
            .await
            .expect_err("a second writer that may not wait is refused");
        assert!(matches!(refused.inner(), Error::Blocked(_)), "{test}: {refused:?}");
        assert!(refused.to_string().contains("production"), "{test}: {refused}");
        drop(lock);
        // Once released, it is free again (a server notices the closed
        // connection, and so the released lock, a moment later).
        let mut tries = 0;
        let again = loop {
            match ferry_engine::lock::writer(&*other.target, false, |_| {}).await {
                Ok(lock) => break lock,
                Err(Error::Blocked(_)) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{test}: the lock is free again: {e}"),
            }
        };
        drop(again);
    }

    // Two promotions started at once.
    let w = Arc::new(w);
    let start = Arc::new(tokio::sync::Barrier::new(2));
    let a = tokio::spawn(writer(w.clone(), start.clone()));
    let b = tokio::spawn(writer(w.clone(), start.clone()));
    let (a, b) = (a.await.expect("writer a"), b.await.expect("writer b"));
    let (first, second) = if a.locked_at <= b.locked_at { (a, b) } else { (b, a) };

    assert!(
        second.locked_at >= first.released_at,
        "{test}: the writers interleaved: the second took the lock {:?} before the first released it",
        first.released_at - second.locked_at
    );
    assert!(first.waited.is_none(), "{test}: the first writer found the lock free");
    let said = second
        .waited
        .as_deref()
        .unwrap_or_else(|| panic!("{test}: the second writer must wait"));
    assert!(
        said.contains("waiting") && said.contains("production"),
        "{test}: {said}"
    );

    assert_eq!(
        first.plan.counts().insert,
        ROWS as u64,
        "{test}: the first writer promotes everything"
    );
    assert!(first.promotion.is_some());
    assert!(
        second.plan.entries.is_empty(),
        "{test}: the second writer sees the first one's rows: {:?}",
        super::support::summary(&second.plan)
    );
    assert!(second.promotion.is_none());

    let production = w.db("production");
    assert_eq!(production.promotions().await, 1, "{test}: one promotion recorded");
    let pair = w.pair("staging", "production").await;
    assert_eq!(texts(&*pair.target, "items", &["id"]).await.len(), ROWS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_sqlite() {
    one_writer(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_postgres() {
    one_writer(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_mariadb() {
    one_writer(Eng::Mysql).await;
}
