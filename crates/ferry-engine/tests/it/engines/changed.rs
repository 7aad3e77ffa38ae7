//! Change-proportional plans (`changed`): after every step of a random
//! sequence of edits on both sides (updates that date `modified_at` back
//! within the margin (1 s here, so that pauses longer than it make plans
//! read fewer rows than were ever written), deletes, re-inserts of deleted keys, rows matching
//! `exclude`), promotions (which stamp `modified_at`), baselines and
//! reverts, the plan that reads only the changed rows has exactly the
//! entries of the plan that reads both sides whole (`--full`).
//!
//! Every edit is made to two tables alike: `items`, keyed by an integer
//! (the keys on one side only found from the key blocks both databases
//! aggregate; its keys spread over several blocks of 64, negative ones
//! included), and `labels`, keyed by text (found by reading every key).
//!
//! SQLite runs as a property test; PostgreSQL and MariaDB run a few
//! deterministic cases of the same strategy (each case makes databases).

use ferry_core::plan::Plan;
use ferry_core::selection::Selection;
use ferry_engine::apply::PromoteOptions;
use ferry_engine::progress::Progress;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::support::{Eng, World, USER};

const S: &str = "staging";
const P: &str = "production";

/// Rows 1..=KEYS; row [`QA`] is a QA row in staging (`exclude`).
const KEYS: u8 = 8;
const QA: u8 = 7;

/// The `items` key of row `i` (1..=KEYS): in blocks 0, 1, -1, -2 and far
/// away, two of them sharing a block.
fn key(i: u8) -> i64 {
    [0, 1, 63, 64, -1, -65, 4_000_000_000_003, 130, -64][usize::from(i)]
}

/// `items` alone, for the fallbacks.
const ITEMS: &str = r#"
[tables.items]
key = ["id"]
changed = "modified_at"
changed_margin = "1s"
stamp = { modified_at = "now" }
exclude = "qa = 1"
"#;

const TABLES: &str = r#"
[tables.items]
key = ["id"]
changed = "modified_at"
changed_margin = "1s"
stamp = { modified_at = "now" }
exclude = "qa = 1"

[tables.labels]
key = ["code"]
changed = "modified_at"
changed_margin = "1s"
stamp = { modified_at = "now" }
exclude = "qa = 1"
"#;

fn schema(_env: &str, eng: Eng) -> String {
    // SQLite's integer key is the rowid (`INTEGER PRIMARY KEY`).
    let (ts, int) = match eng {
        Eng::Sqlite => ("TEXT", "INTEGER"),
        Eng::Postgres => ("TIMESTAMP(6)", "BIGINT"),
        Eng::Mysql => ("DATETIME(6)", "BIGINT"),
    };
    format!(
        "CREATE TABLE items (id {int} NOT NULL PRIMARY KEY, name VARCHAR(20) NOT NULL, qa INTEGER NOT NULL, \
         modified_at {ts} NOT NULL);\nCREATE INDEX items_modified_at ON items (modified_at);\n\
         CREATE TABLE labels (code VARCHAR(20) NOT NULL PRIMARY KEY, name VARCHAR(20) NOT NULL, qa INTEGER NOT NULL, \
         modified_at {ts} NOT NULL);\nCREATE INDEX labels_modified_at ON labels (modified_at);"
    )
}

/// The statements that write row `i` into both tables.
fn write_row(i: u8, name: char, qa: i32, at: &str) -> String {
    let k = key(i);
    format!(
        "DELETE FROM items WHERE id = {k};\nINSERT INTO items (id, name, qa, modified_at) VALUES ({k}, '{name}', {qa}, '{at}');\n\
         DELETE FROM labels WHERE code = 'k{i}';\nINSERT INTO labels (code, name, qa, modified_at) VALUES ('k{i}', '{name}', {qa}, '{at}')"
    )
}

/// The statements that delete row `i` from both tables.
fn delete_row(i: u8) -> String {
    format!(
        "DELETE FROM items WHERE id = {};\nDELETE FROM labels WHERE code = 'k{i}'",
        key(i)
    )
}

#[derive(Clone, Debug)]
enum Op {
    /// Writes row `id` (insert, or update of every column) on one side,
    /// dated `age_ms` milliseconds back (within the margin).
    Write {
        prod: bool,
        id: u8,
        name: u8,
        age_ms: u16,
    },
    /// Lets more than the margin pass, so that later plans read fewer rows
    /// than every row written so far.
    Wait,
    Delete {
        prod: bool,
        id: u8,
    },
    /// Plans changed-only and promotes with `--force`.
    Promote,
    Baseline,
    /// Reverts the last promotion (with `--force`).
    RevertLast,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 1..=KEYS, 0u8..4, 0u16..900).prop_map(|(prod, id, name, age_ms)| Op::Write { prod, id, name, age_ms }),
        1 => Just(Op::Wait),
        2 => (any::<bool>(), 1..=KEYS).prop_map(|(prod, id)| Op::Delete { prod, id }),
        3 => Just(Op::Promote),
        1 => Just(Op::Baseline),
        1 => Just(Op::RevertLast),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..16)
}

fn stamp(age_ms: u16) -> String {
    (chrono::Utc::now() - chrono::Duration::milliseconds(i64::from(age_ms)))
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// Plans `staging -> production`, changed-only where it can (`full`:
/// every table read whole).
async fn plan(w: &World, full: bool) -> Plan {
    let mut pair = w.pair(S, P).await;
    pair.full_plans = full;
    ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden())
        .await
        .unwrap_or_else(|e| panic!("plan (full: {full}): {e}"))
}

/// Whether a plan read `items` changed-only.
fn changed_only(plan: &Plan) -> bool {
    !plan.notes.0.iter().any(|n| n.starts_with("`items` is read whole"))
}

/// Whether a changed-only plan found the keys of `items` from key blocks
/// (or its trace of deletes) and those of `labels` by reading every key,
/// saying so.
fn read_by_key_shape(plan: &Plan) -> bool {
    !plan.notes.0.iter().any(|n| n.starts_with("`items`"))
        && plan
            .notes
            .0
            .iter()
            .any(|n| n.starts_with("`labels`: inserts and deletes are found by reading every key"))
}

/// [`TABLES`] with `items`' deletes traced (`track_deletes`).
fn traced_tables() -> String {
    TABLES.replacen(
        "exclude = \"qa = 1\"\n",
        "exclude = \"qa = 1\"\ntrack_deletes = true\n",
        1,
    )
}

/// Runs one sequence; gives how many of its plans were changed-only
/// (`None`: the engine's server is not configured, skipped). `traced`:
/// `items` keeps a trace of its deletes, installed before the first
/// baseline, which plans read instead of its key blocks.
async fn run(eng: Eng, ops: &[Op], traced: bool) -> Result<Option<usize>, TestCaseError> {
    let tables = if traced { traced_tables() } else { TABLES.to_string() };
    let Some(w) = World::new("changed", &[(S, eng), (P, eng)], schema, &tables).await else {
        return Ok(None);
    };
    if traced {
        let pair = w.pair(S, P).await;
        for store in [&pair.source, &pair.target] {
            let done = ferry_engine::traces::install(&**store, &[("items".into(), "id".into())])
                .await
                .unwrap_or_else(|e| panic!("install the trace: {e}"));
            assert!(done[0].created && done[0].warning.is_none(), "{done:?}");
        }
    }
    // Both sides start alike (one row each), in sync: the baseline records
    // the first watermark.
    for env in [S, P] {
        w.db(env).exec(&write_row(1, 'a', 0, &stamp(0))).await;
    }
    w.baseline(S, P).await;
    let mut changed = 0;
    let mut last: Option<String> = None;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Wait => tokio::time::sleep(std::time::Duration::from_millis(1100)).await,
            Op::Write { prod, id, name, age_ms } => {
                let env = if *prod { P } else { S };
                let qa = i32::from(*id == QA && !prod);
                w.db(env)
                    .exec(&write_row(*id, (b'a' + name) as char, qa, &stamp(*age_ms)))
                    .await;
            }
            Op::Delete { prod, id } => {
                let env = if *prod { P } else { S };
                w.db(env).exec(&delete_row(*id)).await;
            }
            Op::Promote => {
                let pair = w.pair(S, P).await;
                let plan = ferry_engine::planner::plan(&pair, &Selection::default(), Progress::hidden())
                    .await
                    .unwrap_or_else(|e| panic!("plan to promote: {e}"));
                let opts = PromoteOptions {
                    user: USER.into(),
                    force: true,
                };
                let done = ferry_engine::apply::promote(&pair, &plan, &opts)
                    .await
                    .unwrap_or_else(|e| panic!("promote: {e}"));
                if let Some(p) = done {
                    last = Some(p.id);
                }
            }
            Op::Baseline => {
                w.baseline(S, P).await;
            }
            Op::RevertLast => {
                if let Some(id) = last.take() {
                    ferry_engine::revert::revert(&w.project, &id, USER, true)
                        .await
                        .unwrap_or_else(|e| panic!("revert {id}: {e}"));
                }
            }
        }
        let (fast, full) = (plan(&w, false).await, plan(&w, true).await);
        prop_assert_eq!(
            super::support::summary(&fast),
            super::support::summary(&full),
            "{}: step {} ({:?}) of {:?}; notes {:?}",
            eng.name(),
            step,
            op,
            ops,
            fast.notes.0
        );
        prop_assert!(
            fast.entries == full.entries,
            "{}: step {step}: entries differ in detail",
            eng.name()
        );
        prop_assert_eq!(&fast.excluded, &full.excluded, "{}: step {}", eng.name(), step);
        if changed_only(&fast) {
            prop_assert!(
                read_by_key_shape(&fast),
                "{}: step {}: notes {:?}",
                eng.name(),
                step,
                fast.notes.0
            );
            changed += 1;
        }
    }
    Ok(Some(changed))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn w(prod: bool, id: u8, name: u8, age_ms: u16) -> Op {
    Op::Write { prod, id, name, age_ms }
}

/// Sequences that random ones reach rarely: three promotions apart by more
/// than the margin (so the watermark of each side has moved past the
/// early rows), then one edit of an old row, or a delete, re-insert,
/// revert, QA row.
fn scenarios() -> Vec<Vec<Op>> {
    let prefix = vec![
        w(false, 2, 0, 0),
        w(false, 3, 0, 0),
        Op::Promote,
        Op::Wait,
        w(false, 4, 0, 0),
        Op::Promote,
        Op::Wait,
        w(false, 5, 0, 0),
        Op::Promote,
        Op::Wait,
    ];
    let endings = vec![
        vec![w(false, 2, 1, 800)],
        vec![w(true, 2, 1, 800)],
        vec![w(false, 2, 1, 0), w(true, 2, 1, 0)],
        vec![Op::Delete { prod: false, id: 3 }],
        vec![Op::Delete { prod: true, id: 3 }],
        vec![
            Op::Delete { prod: false, id: 2 },
            Op::Promote,
            Op::Wait,
            w(false, 2, 1, 500),
        ],
        vec![w(false, 2, 1, 0), Op::Promote, Op::RevertLast],
        vec![
            w(false, QA, 1, 0),
            Op::Wait,
            w(false, 6, 1, 0),
            Op::Promote,
            Op::Wait,
            w(false, QA, 1, 900),
        ],
    ];
    endings
        .into_iter()
        .map(|end| prefix.iter().cloned().chain(end).collect())
        .collect()
}

/// Runs the [`scenarios`] and `cases` random sequences on `eng`
/// (deterministic), and checks that the changed-only path was taken.
fn check(eng: Eng, cases: u32, traced: bool) {
    let rt = runtime();
    let mut ran_scenarios = None;
    for ops in scenarios() {
        match rt.block_on(run(eng, &ops, traced)) {
            Ok(n) => ran_scenarios = n.or(ran_scenarios),
            Err(e) => panic!("{}: {e}", eng.name()),
        }
    }
    if ran_scenarios.is_none() {
        return;
    }
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let ran: std::cell::Cell<Option<usize>> = std::cell::Cell::new(None);
    let result = runner.run(&ops(), |ops| {
        if let Some(n) = rt.block_on(run(eng, &ops, traced))? {
            ran.set(Some(ran.get().unwrap_or(0) + n));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{}: {e}", eng.name());
    }
    // A skipped engine (no server configured, outside CI) ran nothing.
    if let Some(n) = ran.into_inner() {
        assert!(
            n > 0,
            "{}: no plan read `items` changed-only: the property compared full plans only",
            eng.name()
        );
    }
}

#[test]
fn changed_only_plans_equal_full_plans_sqlite() {
    check(Eng::Sqlite, 24, false);
}

#[test]
fn changed_only_plans_equal_full_plans_postgres() {
    check(Eng::Postgres, 3, false);
}

#[test]
fn changed_only_plans_equal_full_plans_mariadb() {
    check(Eng::Mysql, 3, false);
}

#[test]
fn traced_deletes_plans_equal_full_plans_sqlite() {
    check(Eng::Sqlite, 24, true);
}

#[test]
fn traced_deletes_plans_equal_full_plans_postgres() {
    check(Eng::Postgres, 3, true);
}

#[test]
fn traced_deletes_plans_equal_full_plans_mariadb() {
    check(Eng::Mysql, 3, true);
}

/// The plan's note for `items`, if it read it whole.
fn note(plan: &Plan) -> String {
    plan.notes
        .0
        .iter()
        .find(|n| n.starts_with("`items`"))
        .cloned()
        .unwrap_or_default()
}

/// Where the watermark cannot be trusted the plan reads the table whole
/// and says why, once; and it is the full plan all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_watermarks_fall_back_to_the_full_plan_and_say_why() {
    let plain = |_: &str, _: Eng| {
        "CREATE TABLE items (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(20) NOT NULL, qa INTEGER NOT NULL, \
         modified_at TEXT);"
            .to_string()
    };
    let Some(w) = World::new("changed_fallbacks", &[(S, Eng::Sqlite), (P, Eng::Sqlite)], plain, ITEMS).await else {
        return;
    };
    let row = |id: u8, age_ms: u16| {
        format!(
            "INSERT INTO items (id, name, qa, modified_at) VALUES ({id}, 'a', 0, '{}');",
            stamp(age_ms)
        )
    };
    for env in [S, P] {
        w.db(env).exec(&format!("{}{}", row(1, 0), row(2, 0))).await;
    }
    let same = |fast: &Plan, full: &Plan| {
        assert_eq!(super::support::summary(fast), super::support::summary(full));
    };
    // No index: read whole.
    let plan1 = plan(&w, false).await;
    assert!(
        note(&plan1).contains("no index starts with `modified_at`"),
        "{:?}",
        plan1.notes.0
    );
    for env in [S, P] {
        w.db(env).exec("CREATE INDEX items_m ON items (modified_at)").await;
    }
    // No watermark yet.
    assert!(note(&plan(&w, false).await).contains("no watermark"));
    w.baseline(S, P).await;
    let fast = plan(&w, false).await;
    assert_eq!(note(&fast), "", "after the baseline the plan reads changed rows only");
    // A NULL in the column.
    w.db(S).exec("UPDATE items SET modified_at = NULL WHERE id = 2").await;
    let (fast, full) = (plan(&w, false).await, plan(&w, true).await);
    assert!(
        note(&fast).contains("hold NULL in `modified_at` in environment `staging`"),
        "{:?}",
        fast.notes.0
    );
    same(&fast, &full);
    // A clock gone backwards: every row dated an hour back.
    w.db(S)
        .exec("UPDATE items SET modified_at = '2001-01-01 00:00:00', name = 'b'")
        .await;
    let (fast, full) = (plan(&w, false).await, plan(&w, true).await);
    assert!(
        note(&fast).contains("older than the last sync's watermark"),
        "{:?}",
        fast.notes.0
    );
    same(&fast, &full);
    // A promotion records a new watermark; its revert rewinds the table.
    let pair = w.pair(S, P).await;
    let done = super::support::promote(&pair, &plan(&w, false).await)
        .await
        .expect("a promotion");
    assert_eq!(note(&plan(&w, false).await), "");
    w.revert(&done.id).await;
    let (fast, full) = (plan(&w, false).await, plan(&w, true).await);
    assert!(
        note(&fast).contains("Ferry wrote rows of it in environment `production`"),
        "{:?}",
        fast.notes.0
    );
    same(&fast, &full);
    // A `--where` selection says that it is one.
    let sel = Selection {
        wheres: vec![("items".into(), "id = 1".into())],
        ..Selection::default()
    };
    let narrowed = ferry_engine::planner::plan(&w.pair(S, P).await, &sel, Progress::hidden())
        .await
        .expect("plan");
    assert!(
        narrowed.notes.0.iter().any(|n| n.contains("`--where`")),
        "{:?}",
        narrowed.notes.0
    );
}

/// Installs `items`' trace of deletes in `env`; gives whether it was made.
async fn track(w: &World, env: &str) -> bool {
    let pair = w.pair(S, P).await;
    let store = if env == S { &pair.source } else { &pair.target };
    let done = ferry_engine::traces::install(&**store, &[("items".into(), "id".into())])
        .await
        .unwrap_or_else(|e| panic!("install the trace in {env}: {e}"));
    assert!(done[0].warning.is_none(), "{done:?}");
    done[0].created
}

/// Where the trace of deletes cannot be trusted the plan compares blocks
/// of keys instead and says why, once; every plan is the full plan all the
/// same. On every engine configured.
async fn untrusted_traces(eng: Eng) {
    let tables = ITEMS.replacen("exclude", "track_deletes = true\nexclude", 1);
    let Some(w) = World::new("traces", &[(S, eng), (P, eng)], schema, &tables).await else {
        return;
    };
    for env in [S, P] {
        for i in 1..=5 {
            w.db(env).exec(&write_row(i, 'a', 0, &stamp(0))).await;
        }
    }
    let check = |why: &'static str| {
        let w = &w;
        async move {
            let (fast, full) = (plan(w, false).await, plan(w, true).await);
            assert_eq!(
                super::support::summary(&fast),
                super::support::summary(&full),
                "{}: {why}",
                eng.name()
            );
            assert!(
                note(&fast).contains(why),
                "{}: expected a note saying {why:?}; notes {:?}",
                eng.name(),
                fast.notes.0
            );
        }
    };
    w.baseline(S, P).await;
    check("no trace of deletes in environment `staging` (run `ferry track staging`)").await;
    assert!(track(&w, S).await);
    assert!(!track(&w, S).await, "a second install makes nothing");
    check("the trace of its deletes in environment `staging` began after the last sync").await;
    assert!(track(&w, P).await);
    w.db(S).exec(&delete_row(2)).await;
    check("began after the last sync").await;
    // A sync after the install: the trace is read, no blocks, no note.
    assert!(w.promote_all(S, P).await.1.is_some());
    w.db(S).exec(&delete_row(3)).await;
    w.db(P).exec(&delete_row(1)).await;
    let (fast, full) = (plan(&w, false).await, plan(&w, true).await);
    assert_eq!(note(&fast), "", "{}: the trace is used", eng.name());
    assert_eq!(super::support::summary(&fast), super::support::summary(&full));
    assert_eq!(
        full.counts().delete,
        1,
        "{}: {:?}",
        eng.name(),
        super::support::summary(&full)
    );
    w.db(S).exec(&delete_row(1)).await;
    assert!(w.promote_all(S, P).await.1.is_some());
    assert_eq!(note(&plan(&w, false).await), "", "{}: in sync", eng.name());
    // The trigger dropped (by hand): noticed, and installed again.
    let name = ferry_db::dialect::trace_name("items");
    let drop = match eng {
        Eng::Postgres => format!("DROP TRIGGER \"{name}\" ON items"),
        Eng::Mysql => format!("DROP TRIGGER `{name}`"),
        Eng::Sqlite => format!("DROP TRIGGER \"{name}\""),
    };
    w.db(P).exec(&drop).await;
    check("missing or disabled in environment `production` (run `ferry track production`)").await;
    assert!(track(&w, P).await);
    check("the trace of its deletes in environment `production` began after the last sync").await;
    w.baseline(S, P).await;
    assert_eq!(note(&plan(&w, false).await), "", "{}: in sync again", eng.name());
    if eng == Eng::Postgres {
        w.db(P)
            .exec(&format!("TRUNCATE items;\n{}", write_row(4, 'b', 0, &stamp(0))))
            .await;
        check("truncated in environment `production`").await;
        w.db(P).exec("ALTER TABLE items DISABLE TRIGGER ALL").await;
        check("missing or disabled in environment `production`").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_traces_fall_back_to_blocks_of_keys_sqlite() {
    untrusted_traces(Eng::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_traces_fall_back_to_blocks_of_keys_postgres() {
    untrusted_traces(Eng::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_traces_fall_back_to_blocks_of_keys_mariadb() {
    untrusted_traces(Eng::Mysql).await;
}

/// On MySQL/MariaDB a table whose rows a foreign key deletes in cascade
/// gets no trigger call for them: `track` warns, and plans compare keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletes_on_mariadb_are_not_traced() {
    let schema = |_: &str, _: Eng| {
        "CREATE TABLE lists (id BIGINT NOT NULL PRIMARY KEY);\n\
         CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, list_id BIGINT NOT NULL, modified_at DATETIME(6) NOT NULL, \
         FOREIGN KEY (list_id) REFERENCES lists (id) ON DELETE CASCADE);\n\
         CREATE INDEX items_m ON items (modified_at);"
            .to_string()
    };
    let tables =
        "[tables.items]\nkey = [\"id\"]\nchanged = \"modified_at\"\ntrack_deletes = true\nkeep_ids = [\"list_id\"]\n";
    let Some(w) = World::new("traces_cascade", &[(S, Eng::Mysql), (P, Eng::Mysql)], schema, tables).await else {
        return;
    };
    let pair = w.pair(S, P).await;
    let before = ferry_engine::traces::check(&*pair.source, "items", &["id".into()])
        .await
        .expect("check");
    assert!(
        before
            .as_deref()
            .is_some_and(|m| m.contains("run `ferry track staging`")),
        "{before:?}"
    );
    let done = ferry_engine::traces::install(&*pair.source, &[("items".into(), "id".into())])
        .await
        .expect("install");
    assert!(
        done[0].warning.as_deref().is_some_and(|m| m.contains("in cascade")),
        "{done:?}"
    );
    // `ferry check` says so too, once the trace is there.
    let after = ferry_engine::traces::check(&*pair.source, "items", &["id".into()])
        .await
        .expect("check");
    assert!(after.as_deref().is_some_and(|m| m.contains("in cascade")), "{after:?}");
}

/// The error paths of the trace: a key that is not one integer column is
/// refused before anything is written, and a damaged row of the trace
/// fails the plan, naming the environment and the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_key_is_refused_and_a_damaged_trace_fails_the_plan() {
    let tables = traced_tables();
    let Some(w) = World::new("traces_errors", &[(S, Eng::Sqlite), (P, Eng::Sqlite)], schema, &tables).await else {
        return;
    };
    let pair = w.pair(S, P).await;
    let refused = ferry_engine::traces::install(&*pair.source, &[("labels".into(), "code".into())])
        .await
        .expect_err("a text key");
    assert!(
        refused
            .to_string()
            .contains("environment `staging`, table `labels`: the key `code` is not an integer column"),
        "{refused}"
    );
    assert!(
        pair.source
            .table_schema(ferry_db::meta::DELETED)
            .await
            .expect("schema")
            .is_none(),
        "nothing was written"
    );
    let said = ferry_engine::traces::check(&*pair.source, "labels", &["code".into()])
        .await
        .expect("check");
    assert!(
        said.as_deref()
            .is_some_and(|m| m.contains("the key `code` is not an integer column")),
        "{said:?}"
    );
    // A primary key of two columns (no `key` configured) cannot be traced.
    let said = ferry_engine::traces::check(&*pair.source, "labels", &["code".into(), "id".into()])
        .await
        .expect("check");
    assert!(
        said.as_deref()
            .is_some_and(|m| m.contains("the key (code, id) has more than one column")),
        "{said:?}"
    );
    for env in [S, P] {
        w.db(env).exec(&write_row(1, 'a', 0, &stamp(0))).await;
        assert!(track(&w, env).await);
    }
    w.baseline(S, P).await;
    w.db(S)
        .exec(&format!(
            "INSERT INTO _ferry_deleted (table_name, row_key, at, kind) VALUES ('items', NULL, '{}', NULL)",
            stamp(0)
        ))
        .await;
    let err = ferry_engine::planner::plan(&w.pair(S, P).await, &Selection::default(), Progress::hidden())
        .await
        .expect_err("a damaged trace");
    assert!(
        err.to_string()
            .contains("environment `staging`: a row of `_ferry_deleted` for table `items` holds the key"),
        "{err}"
    );
    assert!(err.to_string().contains("plan with --full"), "{err}");
}
