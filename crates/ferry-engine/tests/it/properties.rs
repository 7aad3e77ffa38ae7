//! Property tests of plan, promote, baseline and revert on random content
//! in real SQLite files.
//!
//! One table with an integer key and columns of every SQLite storage class
//! (text with emoji, empty strings and the text "NULL"; integers; reals;
//! blobs; an untyped column holding any of them; NULLs everywhere), an
//! ignored column and a stamped one. Random edits on each side are checked
//! against a plain statement of PRODUCT.md's three-way rules ([`model`]).

use std::collections::{BTreeMap, BTreeSet};

use ferry_core::plan::{Action, Counts, Plan, Reason};
use ferry_core::value::Value;
use ferry_engine::apply::Promotion;
use ferry_engine::Error;
use proptest::prelude::*;
use rusqlite::types::{Value as Sql, ValueRef};

use crate::common::{self, World, PRODUCTION, STAGING};

const SCHEMA: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT,
    qty INTEGER,
    price REAL,
    icon BLOB,
    extra,
    views INTEGER,
    modified_at TEXT
);";

const TABLES: &str = r#"
[tables.items]
key = ["id"]
ignore = ["views"]
stamp = { modified_at = "now" }
"#;

/// The non-key columns, in table order: the first [`COMPARED`] are
/// compared and copied, then the ignored and the stamped column.
const COLUMNS: [&str; 7] = ["name", "qty", "price", "icon", "extra", "views", "modified_at"];
const COMPARED: usize = 5;
const VIEWS: usize = 5;
const MODIFIED_AT: usize = 6;

/// A stored value. Equality is Ferry's ("exact" in PRODUCT.md): `0.0`
/// equals `-0.0`, an integer never equals a real or a text.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    fn sql(&self) -> Sql {
        match self {
            Cell::Null => Sql::Null,
            Cell::Int(i) => Sql::Integer(*i),
            Cell::Real(f) => Sql::Real(*f),
            Cell::Text(s) => Sql::Text(s.clone()),
            Cell::Blob(b) => Sql::Blob(b.clone()),
        }
    }

    fn read(v: ValueRef<'_>) -> Cell {
        match v {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) => Cell::Int(i),
            ValueRef::Real(f) => Cell::Real(f),
            ValueRef::Text(t) => Cell::Text(String::from_utf8(t.to_vec()).expect("test text is UTF-8")),
            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
        }
    }
}

/// The non-key cells of a row, in [`COLUMNS`] order.
type Row = Vec<Cell>;
/// A table's content by key.
type Content = BTreeMap<i64, Row>;

fn compared(r: &Row) -> &[Cell] {
    &r[..COMPARED]
}

// ---- strategies ------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NULL".to_string()),
        Just("null".to_string()),
        Just("🦀 Ferry ⛴️".to_string()),
        Just("héllo wörld".to_string()),
        Just("it's \"quoted\"; --".to_string()),
        Just("tab\tand\nnewline".to_string()),
        Just("nul\u{0}byte".to_string()),
        "[ab🦀é ]{0,3}",
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![Just(i64::MIN), Just(i64::MAX), -2i64..3]
}

fn real() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(1.5),
        Just(-2.25e-10),
        Just(1e300),
        Just(f64::INFINITY),
        Just(f64::MIN_POSITIVE),
        proptest::num::f64::NORMAL,
    ]
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(vec![0u8, 255]),
        Just(b"NULL".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ]
}

fn nullable(s: impl Strategy<Value = Cell> + 'static) -> BoxedStrategy<Cell> {
    prop_oneof![1 => Just(Cell::Null), 4 => s].boxed()
}

/// Any storage class, for the untyped column.
fn any_cell() -> BoxedStrategy<Cell> {
    prop_oneof![
        Just(Cell::Null),
        int().prop_map(Cell::Int),
        real().prop_map(Cell::Real),
        text().prop_map(Cell::Text),
        blob().prop_map(Cell::Blob),
    ]
    .boxed()
}

fn row() -> impl Strategy<Value = Row> {
    (
        nullable(text().prop_map(Cell::Text)),
        nullable(int().prop_map(Cell::Int)),
        nullable(real().prop_map(Cell::Real)),
        nullable(blob().prop_map(Cell::Blob)),
        any_cell(),
        nullable(int().prop_map(Cell::Int)),
        nullable(text().prop_map(Cell::Text)),
    )
        .prop_map(|(a, b, c, d, e, f, g)| vec![a, b, c, d, e, f, g])
}

/// What one side does to a row after the common starting point.
#[derive(Clone, Debug)]
enum Edit {
    Keep,
    Delete,
    /// Sets the columns marked in the mask to the row's values (on a row
    /// that does not exist: inserts the row).
    Change(Vec<bool>, Row),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => Just(Edit::Keep),
        1 => Just(Edit::Delete),
        3 => (proptest::collection::vec(proptest::bool::weighted(0.3), COLUMNS.len()), row())
            .prop_map(|(mask, row)| Edit::Change(mask, row)),
    ]
}

fn apply(base: Option<&Row>, e: &Edit) -> Option<Row> {
    match (e, base) {
        (Edit::Keep, b) => b.cloned(),
        (Edit::Delete, _) => None,
        (Edit::Change(_, new), None) => Some(new.clone()),
        (Edit::Change(mask, new), Some(b)) => Some(
            b.iter()
                .zip(new)
                .zip(mask)
                .map(|((old, new), m)| if *m { new.clone() } else { old.clone() })
                .collect(),
        ),
    }
}

/// Per key: the row both sides start from (if any), then what staging
/// and production each do to it.
#[derive(Clone, Debug)]
struct Case {
    rows: BTreeMap<i64, (Option<Row>, Edit, Edit)>,
}

impl Case {
    fn base(&self) -> Content {
        self.rows
            .iter()
            .filter_map(|(k, (b, _, _))| b.clone().map(|b| (*k, b)))
            .collect()
    }
    fn staging(&self) -> Content {
        self.rows
            .iter()
            .filter_map(|(k, (b, s, _))| apply(b.as_ref(), s).map(|r| (*k, r)))
            .collect()
    }
    fn production(&self) -> Content {
        self.rows
            .iter()
            .filter_map(|(k, (b, _, t))| apply(b.as_ref(), t).map(|r| (*k, r)))
            .collect()
    }
    /// The same case with production left as it started.
    fn staging_edits_only(mut self) -> Case {
        for (_, _, t) in self.rows.values_mut() {
            *t = Edit::Keep;
        }
        self
    }
}

fn text_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NULL".to_string()),
        Just("a".to_string()),
        Just("A".to_string()),
        Just("é".to_string()),
        Just("e\u{301}".to_string()),
        Just("🦀".to_string()),
        Just("10".to_string()),
        Just("9".to_string()),
        "[aAé🦀0-9 ]{1,3}",
    ]
}

/// `--where` predicates over every kind of column.
fn predicate() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "qty > 0",
        "name = 'NULL'",
        "name IS NULL",
        "length(name) > 3",
        "extra IS NOT NULL AND price < 1",
        "icon = x''",
        "id % 2 = 0",
        "views > 0",
    ])
}

fn key() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -3i64..20, 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn case() -> impl Strategy<Value = Case> {
    proptest::collection::btree_map(key(), (proptest::option::weighted(0.75, row()), edit(), edit()), 0..10)
        .prop_map(|rows| Case { rows })
}

// ---- databases -------------------------------------------------------------

fn write(w: &World, env: &str, content: &Content) {
    let conn = w.conn(env);
    conn.execute("DELETE FROM items", []).expect("clear items");
    let mut stmt = conn
        .prepare(&format!(
            "INSERT INTO items (id, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            COLUMNS.join(", ")
        ))
        .expect("prepare insert");
    for (k, r) in content {
        let params: Vec<Sql> = std::iter::once(Sql::Integer(*k))
            .chain(r.iter().map(Cell::sql))
            .collect();
        stmt.execute(rusqlite::params_from_iter(params)).expect("insert row");
    }
}

fn read(w: &World, env: &str) -> Content {
    let conn = w.conn(env);
    let mut stmt = conn
        .prepare(&format!("SELECT id, {} FROM items ORDER BY id", COLUMNS.join(", ")))
        .expect("prepare select");
    let mut rows = stmt.query([]).expect("select");
    let mut out = Content::new();
    while let Some(r) = rows.next().expect("row") {
        let k: i64 = r.get(0).expect("key");
        let cells = (1..=COLUMNS.len())
            .map(|i| Cell::read(r.get_ref(i).expect("cell")))
            .collect();
        out.insert(k, cells);
    }
    out
}

/// Two environments holding `base`, with a sync base recorded when
/// `baseline`, then `staging` and `production` written over them.
async fn world(base: &Content, baseline: bool, staging: &Content, production: &Content) -> World {
    let w = World::new(SCHEMA, TABLES);
    if baseline {
        write(&w, STAGING, base);
        write(&w, PRODUCTION, base);
        let b = w.baseline().await;
        assert_eq!(b.recorded as usize, base.len(), "baseline records every equal row");
        assert!(b.differing.entries.is_empty(), "{:?}", common::summary(&b.differing));
    }
    write(&w, STAGING, staging);
    write(&w, PRODUCTION, production);
    w
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---- the model ---------------------------------------------------------------

/// What promoting (with `--force`) does to a row.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// The target row is left exactly as it is.
    Keep,
    /// The compared columns are written with these values (and stamped).
    Write(Vec<Cell>),
    Delete,
}

/// PRODUCT.md's rules for one row: the plan entry expected (`None`: no
/// entry) and what a forced promotion does. `base` is the row as synced,
/// `None` when Ferry has no sync base for it.
fn model(s: Option<&Row>, t: Option<&Row>, base: Option<&Row>) -> (Option<(Action, Option<Reason>)>, Outcome) {
    let (cs, ct) = (s.map(compared), t.map(compared));
    let Some(b) = base.map(compared) else {
        // First contact.
        return match (cs, ct) {
            (None, None) => (None, Outcome::Keep),
            (Some(s), None) => (Some((Action::Insert, None)), Outcome::Write(s.to_vec())),
            (None, Some(_)) => (Some((Action::Skip, Some(Reason::TargetOnly))), Outcome::Keep),
            (Some(s), Some(t)) if s == t => (None, Outcome::Keep),
            // Which side changed it is unknown: a conflict, forced for the source.
            (Some(s), Some(_)) => (
                Some((Action::Conflict, Some(Reason::NoBase))),
                Outcome::Write(s.to_vec()),
            ),
        };
    };
    if cs == ct {
        return (None, Outcome::Keep);
    }
    let source_changed = cs != Some(b);
    let target_changed = ct != Some(b);
    match (cs, ct) {
        _ if !source_changed => (Some((Action::Skip, Some(Reason::TargetNewer))), Outcome::Keep),
        (None, Some(_)) if !target_changed => (Some((Action::Delete, None)), Outcome::Delete),
        (Some(s), Some(_)) if !target_changed => (Some((Action::Update, None)), Outcome::Write(s.to_vec())),
        (None, _) => (Some((Action::Conflict, Some(Reason::DeletedInSource))), Outcome::Delete),
        (Some(s), None) => (
            Some((Action::Conflict, Some(Reason::DeletedInTarget))),
            Outcome::Write(s.to_vec()),
        ),
        (Some(s), Some(t)) => {
            let overlap = (0..COMPARED).any(|i| s[i] != b[i] && t[i] != b[i] && s[i] != t[i]);
            if overlap {
                return (
                    Some((Action::Conflict, Some(Reason::BothChanged))),
                    Outcome::Write(s.to_vec()),
                );
            }
            // Every field takes the side that changed it.
            let merged: Vec<Cell> = (0..COMPARED)
                .map(|i| if s[i] != b[i] { s[i].clone() } else { t[i].clone() })
                .collect();
            if merged == t {
                (Some((Action::Skip, Some(Reason::TargetNewer))), Outcome::Keep)
            } else {
                (Some((Action::Update, Some(Reason::Merged))), Outcome::Write(merged))
            }
        }
    }
}

/// The model applied to every key of a case.
struct Expected {
    entries: BTreeMap<i64, (Action, Option<Reason>)>,
    outcomes: BTreeMap<i64, Outcome>,
}

fn expect(staging: &Content, production: &Content, base: Option<&Content>) -> Expected {
    let keys: BTreeSet<i64> = staging
        .keys()
        .chain(production.keys())
        .chain(base.iter().flat_map(|b| b.keys()))
        .copied()
        .collect();
    let mut entries = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    for k in keys {
        let (entry, outcome) = model(staging.get(&k), production.get(&k), base.and_then(|b| b.get(&k)));
        if let Some(e) = entry {
            entries.insert(k, e);
        }
        outcomes.insert(k, outcome);
    }
    Expected { entries, outcomes }
}

fn entries_of(plan: &Plan) -> BTreeMap<i64, (Action, Option<Reason>)> {
    plan.entries
        .iter()
        .map(|e| match e.key.as_slice() {
            [Value::Int(k)] => (*k, (e.action, e.reason)),
            other => panic!("unexpected key {other:?}"),
        })
        .collect()
}

/// Checks production against the model after a promotion stamped `stamp`
/// (`None`: nothing was promoted).
fn check_outcome(
    expected: &Expected,
    before: &Content,
    after: &Content,
    stamp: Option<&str>,
) -> Result<Counts, TestCaseError> {
    let mut counts = Counts::default();
    for (k, outcome) in &expected.outcomes {
        let t = before.get(k);
        let now = after.get(k);
        match outcome {
            Outcome::Keep => prop_assert_eq!(now, t, "key {} must be left alone", k),
            Outcome::Delete => {
                prop_assert!(now.is_none(), "key {} must be deleted, is {:?}", k, now);
                counts.delete += 1;
            }
            Outcome::Write(values) => {
                let Some(now) = now else {
                    return Err(TestCaseError::fail(format!("key {k} missing after promotion")));
                };
                let Some(stamp) = stamp else {
                    return Err(TestCaseError::fail(format!(
                        "key {k} should be written but nothing was promoted"
                    )));
                };
                prop_assert_eq!(compared(now), values.as_slice(), "compared columns of key {}", k);
                let views = t.map_or(Cell::Null, |t| t[VIEWS].clone());
                prop_assert_eq!(
                    &now[VIEWS],
                    &views,
                    "ignored column of key {} keeps the target's value",
                    k
                );
                prop_assert_eq!(
                    &now[MODIFIED_AT],
                    &Cell::Text(stamp.to_string()),
                    "stamped column of key {}",
                    k
                );
                if t.is_some() {
                    counts.update += 1;
                } else {
                    counts.insert += 1;
                }
            }
        }
    }
    // No row appears that the model does not know of.
    for k in after.keys() {
        prop_assert!(expected.outcomes.contains_key(k), "unexpected row {} in production", k);
    }
    Ok(counts)
}

/// The promotion's counts are the model's (no promotion: no change).
fn same_counts(promotion: Option<&Promotion>, want: &Counts) -> Result<(), TestCaseError> {
    let got = promotion.map(|p| p.counts.clone()).unwrap_or_default();
    prop_assert_eq!(
        (got.insert, got.update, got.delete),
        (want.insert, want.update, want.delete),
        "promotion counts"
    );
    Ok(())
}

// ---- the properties ----------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// 1. The diff of a database with a copy of itself is empty, and stays
    /// empty when only ignored and stamped columns differ.
    #[test]
    fn plan_of_a_copy_is_empty(c in case()) {
        runtime().block_on(async {
            let content = c.staging();
            let w = World::new(SCHEMA, TABLES);
            write(&w, STAGING, &content);
            w.copy_staging_to_production();
            let plan = w.plan_all().await;
            prop_assert!(plan.entries.is_empty(), "{:?}", common::summary(&plan));

            // Production-local columns differ: still nothing to do.
            let local: Content = content
                .iter()
                .map(|(k, r)| {
                    let mut r = r.clone();
                    r[VIEWS] = Cell::Int(k.wrapping_mul(31));
                    r[MODIFIED_AT] = Cell::Text(format!("local {k}"));
                    (*k, r)
                })
                .collect();
            write(&w, PRODUCTION, &local);
            let plan = w.plan_all().await;
            prop_assert!(plan.entries.is_empty(), "{:?}", common::summary(&plan));
            Ok(())
        })?;
    }

    /// 2a. After a baseline, staging's inserts, updates and deletes are
    /// promoted: production then equals staging on every compared column,
    /// keeps its ignored values, holds the promotion time in the stamped
    /// column of the rows written, and a new plan is empty.
    #[test]
    fn promotion_after_baseline_makes_target_equal(c in case()) {
        let c = c.staging_edits_only();
        runtime().block_on(async {
            let (base, staging) = (c.base(), c.staging());
            let w = world(&base, true, &staging, &base).await;
            let expected = expect(&staging, &base, Some(&base));
            let plan = w.plan_all().await;
            prop_assert_eq!(&entries_of(&plan), &expected.entries, "{:?}", common::summary(&plan));
            prop_assert!(
                plan.entries.iter().all(|e| e.is_change()),
                "only staging changed: no skips, no conflicts: {:?}",
                common::summary(&plan)
            );
            let before = read(&w, PRODUCTION);
            let promotion = w.promote(&plan, false).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let stamp = promotion.as_ref().map(common::stamp_of);
            let after = read(&w, PRODUCTION);
            let counts = check_outcome(&expected, &before, &after, stamp.as_deref())?;
            same_counts(promotion.as_ref(), &counts)?;

            // Production equals staging on the selection.
            let keys = |c: &Content| c.keys().copied().collect::<Vec<_>>();
            prop_assert_eq!(keys(&after), keys(&staging));
            for (k, r) in &staging {
                prop_assert_eq!(compared(&after[k]), compared(r), "key {}", k);
            }
            let again = w.plan_all().await;
            prop_assert!(again.entries.is_empty(), "{:?}", common::summary(&again));
            Ok(())
        })?;
    }

    /// 2b. First contact (no sync base): no deletes, rows only in the
    /// target are left alone, rows that differ are `no-base` conflicts that
    /// block until forced; afterwards every staging row is in production
    /// and a new plan changes nothing.
    #[test]
    fn first_contact_promotion(c in case()) {
        runtime().block_on(async {
            let (staging, production) = (c.staging(), c.production());
            let w = world(&BTreeMap::new(), false, &staging, &production).await;
            let expected = expect(&staging, &production, None);
            let plan = w.plan_all().await;
            prop_assert_eq!(&entries_of(&plan), &expected.entries, "{:?}", common::summary(&plan));
            for e in &plan.entries {
                prop_assert!(e.action != Action::Delete && e.action != Action::Update, "{}", common::entry_summary(e));
                if e.action == Action::Conflict {
                    prop_assert_eq!(e.reason, Some(Reason::NoBase));
                }
            }
            if plan.conflicts().next().is_some() {
                // A row that differs on first contact blocks, nothing written.
                let bytes = w.bytes(PRODUCTION);
                match w.promote(&plan, false).await {
                    Err(e) if matches!(e.inner(), Error::Blocked(_)) => prop_assert_eq!(e.exit_code(), 3),
                    other => return Err(TestCaseError::fail(format!("first contact must block: {other:?}"))),
                }
                prop_assert!(w.bytes(PRODUCTION) == bytes, "a blocked promotion writes nothing");
            }
            let promotion = w.promote(&plan, true).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let stamp = promotion.as_ref().map(common::stamp_of);
            let after = read(&w, PRODUCTION);
            let counts = check_outcome(&expected, &production, &after, stamp.as_deref())?;
            same_counts(promotion.as_ref(), &counts)?;
            for (k, r) in &staging {
                prop_assert_eq!(after.get(k).map(compared), Some(compared(r)), "key {}", k);
            }
            for (k, r) in production.iter().filter(|(k, _)| !staging.contains_key(k)) {
                prop_assert_eq!(after.get(k), Some(r), "target-only row {} untouched", k);
            }
            let again = w.plan_all().await;
            prop_assert!(!again.has_changes(), "{:?}", common::summary(&again));
            let target_only: BTreeMap<i64, (Action, Option<Reason>)> = production
                .keys()
                .filter(|k| !staging.contains_key(k))
                .map(|k| (*k, (Action::Skip, Some(Reason::TargetOnly))))
                .collect();
            prop_assert_eq!(entries_of(&again), target_only);
            Ok(())
        })?;
    }

    /// 3. Reverting a promotion restores production exactly (every column
    /// of every managed row, by storage class and bytes) and its sync base;
    /// reverting the revert brings the promotion back exactly.
    /// The promotion applies either the plan as made (journalling the sync
    /// bases it carries when `locked`, as a promotion planned under the
    /// writer lock does) or the same plan saved to a file and read back
    /// (which must then be equal to it).
    #[test]
    fn revert_restores_exactly(
        c in case(),
        baseline in any::<bool>(),
        saved in any::<bool>(),
        locked in any::<bool>(),
    ) {
        runtime().block_on(async {
            let (base, staging, production) = (c.base(), c.staging(), c.production());
            let w = world(&base, baseline, &staging, &production).await;
            let mut plan = w.plan_all().await;
            plan.under_lock.0 = locked;
            let (data_before, sync_before) = (w.dump(PRODUCTION), w.sync(PRODUCTION));
            let promotion = if saved {
                w.promote_saved(&plan, true).await
            } else {
                w.promote(&plan, true).await
            };
            let promotion = promotion.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let Some(promotion) = promotion else {
                prop_assert!(!plan.has_changes() && plan.conflicts().next().is_none());
                prop_assert_eq!(w.dump(PRODUCTION), data_before);
                return Ok(());
            };
            let (data_promoted, sync_promoted) = (w.dump(PRODUCTION), w.sync(PRODUCTION));
            let revert = w.revert(&promotion.id, false).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(w.dump(PRODUCTION), data_before, "data after revert");
            prop_assert_eq!(w.sync(PRODUCTION), sync_before, "sync base after revert");
            prop_assert_eq!(revert.counts.changes(), promotion.counts.changes());

            w.revert(&revert.id, false).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(w.dump(PRODUCTION), data_promoted, "data after reverting the revert");
            prop_assert_eq!(w.sync(PRODUCTION), sync_promoted, "sync base after reverting the revert");
            Ok(())
        })?;
    }

    /// 4. Three-way: after a baseline, with edits on both sides, every row
    /// is planned as the rule table says: production-only edits are
    /// skipped (target-newer) and never overwritten, disjoint edits merge,
    /// same-field edits conflict and block the promotion (exit 3, nothing
    /// written) unless forced.
    #[test]
    fn three_way_rules(c in case()) {
        runtime().block_on(async {
            let (base, staging, production) = (c.base(), c.staging(), c.production());
            let w = world(&base, true, &staging, &production).await;
            let expected = expect(&staging, &production, Some(&base));
            let plan = w.plan_all().await;
            prop_assert_eq!(&entries_of(&plan), &expected.entries, "{:?}", common::summary(&plan));
            for e in plan.entries.iter().filter(|e| e.action == Action::Update && e.reason == Some(Reason::Merged)) {
                // A merge writes only what staging changed.
                let Value::Int(k) = e.key[0] else { unreachable!("integer keys") };
                let b = &base[&k];
                for col in &e.set {
                    let i = COLUMNS.iter().position(|c| c == col).expect("known column");
                    prop_assert!(staging[&k][i] != b[i], "merged update of {} sets `{}`, unchanged in staging", k, col);
                }
            }

            let before = read(&w, PRODUCTION);
            if plan.conflicts().next().is_some() {
                let bytes = w.bytes(PRODUCTION);
                match w.promote(&plan, false).await {
                    Err(e) if matches!(e.inner(), Error::Blocked(_)) => prop_assert_eq!(e.exit_code(), 3),
                    other => return Err(TestCaseError::fail(format!("conflicts must block: {other:?}"))),
                }
                prop_assert!(w.bytes(PRODUCTION) == bytes, "a blocked promotion writes nothing");
            }
            let promotion = w.promote(&plan, true).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let stamp = promotion.as_ref().map(common::stamp_of);
            let after = read(&w, PRODUCTION);
            let counts = check_outcome(&expected, &before, &after, stamp.as_deref())?;
            same_counts(promotion.as_ref(), &counts)?;
            let again = w.plan_all().await;
            prop_assert!(!again.has_changes(), "{:?}", common::summary(&again));
            prop_assert!(again.conflicts().next().is_none(), "{:?}", common::summary(&again));
            Ok(())
        })?;
    }

    /// 2c. A `--where` selection promotes the rows matching the predicate
    /// in staging or in production (each compared whole, so a row an edit
    /// moved out of the predicate is updated, never deleted) and leaves
    /// every other row alone.
    #[test]
    fn where_selection_promotes_rows_matching_on_either_side(c in case(), pred in predicate()) {
        let c = c.staging_edits_only();
        runtime().block_on(async {
            let (base, staging) = (c.base(), c.staging());
            let w = world(&base, true, &staging, &base).await;
            let matching = |env: &str| -> BTreeSet<i64> {
                let conn = w.conn(env);
                let mut stmt = conn.prepare(&format!("SELECT id FROM items WHERE {pred}")).expect("predicate");
                let keys = stmt.query_map([], |r| r.get(0)).expect("query").map(|k| k.expect("key")).collect();
                keys
            };
            let selected: BTreeSet<i64> = matching(STAGING).union(&matching(PRODUCTION)).copied().collect();
            let mut expected = expect(&staging, &base, Some(&base));
            expected.entries.retain(|k, _| selected.contains(k));
            for (k, o) in expected.outcomes.iter_mut() {
                if !selected.contains(k) {
                    *o = Outcome::Keep;
                }
            }
            let plan = w.plan(&common::wheres(&[&format!("items:{pred}")])).await;
            prop_assert_eq!(&entries_of(&plan), &expected.entries, "{:?}", common::summary(&plan));
            let promotion = w.promote(&plan, false).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let stamp = promotion.as_ref().map(common::stamp_of);
            let after = read(&w, PRODUCTION);
            let counts = check_outcome(&expected, &base, &after, stamp.as_deref())?;
            same_counts(promotion.as_ref(), &counts)?;
            let again = w.plan(&common::wheres(&[&format!("items:{pred}")])).await;
            prop_assert!(again.entries.is_empty(), "{:?}", common::summary(&again));
            Ok(())
        })?;
    }

    /// Text keys (emoji, the empty string, "NULL", digits, case) merge in
    /// the same order on both sides: a first-contact plan classifies every
    /// key right, and after the promotion staging's rows are all in
    /// production, exactly.
    #[test]
    fn text_keys_merge_in_one_order(
        staging in proptest::collection::btree_map(text_key(), any_cell(), 0..10),
        production in proptest::collection::btree_map(text_key(), any_cell(), 0..10),
    ) {
        runtime().block_on(async {
            let w = World::new("CREATE TABLE tags (code TEXT NOT NULL PRIMARY KEY, label);", "[tables.tags]\n");
            for (env, content) in [(STAGING, &staging), (PRODUCTION, &production)] {
                let conn = w.conn(env);
                for (k, v) in content {
                    conn.execute("INSERT INTO tags VALUES (?1, ?2)", rusqlite::params![k, v.sql()]).expect("insert tag");
                }
            }
            let plan = w.plan_all().await;
            let mut want = BTreeMap::new();
            for k in staging.keys().chain(production.keys()) {
                let e = match (staging.get(k), production.get(k)) {
                    (Some(_), None) => Some((Action::Insert, None)),
                    (None, Some(_)) => Some((Action::Skip, Some(Reason::TargetOnly))),
                    (Some(s), Some(t)) if s != t => Some((Action::Conflict, Some(Reason::NoBase))),
                    _ => None,
                };
                if let Some(e) = e {
                    want.insert(k.clone(), e);
                }
            }
            let got: BTreeMap<String, (Action, Option<Reason>)> = plan
                .entries
                .iter()
                .map(|e| match e.key.as_slice() {
                    [Value::Text(k)] => (k.clone(), (e.action, e.reason)),
                    other => panic!("unexpected key {other:?}"),
                })
                .collect();
            prop_assert_eq!(got, want);
            w.promote(&plan, true).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Equal as Ferry compares (a -0.0 label is written as 0.0).
            let conn = w.conn(PRODUCTION);
            let mut stmt = conn.prepare("SELECT code, label FROM tags").expect("select tags");
            let after: BTreeMap<String, Cell> = stmt
                .query_map([], |r| Ok((r.get(0)?, Cell::read(r.get_ref(1)?))))
                .expect("tags")
                .map(|r| r.expect("tag"))
                .collect();
            let mut want = production.clone();
            want.extend(staging.clone());
            prop_assert_eq!(after, want);
            prop_assert!(!w.plan_all().await.has_changes());
            Ok(())
        })?;
    }
}
