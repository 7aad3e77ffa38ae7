//! Change-proportional reading of the tables that declare `changed`
//! (docs/config.md). In: the pair, what each table contributes (stage 1)
//! and the natural-key tables (stage 2). Out: [`Reading`], per table either
//! the bounds of a changed-only read, or nothing (read whole), with the
//! marks a promotion records and one note per table read whole for a
//! reason worth saying; then, in stage 3, [`keys`]: the keys a changed-only
//! read compares.
//!
//! The rule: after a sync that left a table in sync, a row whose `changed`
//! value is below the watermark minus the margin on both sides, and that
//! exists on both sides, is equal to its sync base on both sides, so the
//! three-way rules give it no entry. A changed-only read therefore compares
//! the rows at or above the bound on either side, the keys present on one
//! side only, and the source rows matching `exclude`; closure and annotate
//! fetch any other row they need by key.
//!
//! The keys on one side only: where the key is one integer column on both
//! sides, each database aggregates its keys into blocks of 64 (a bit mask
//! each, [`ferry_db::SqlStore::key_blocks`]) and the plan compares the
//! blocks, so one row per 64 keys travels, and the bits that differ are
//! exactly the keys on one side only. A key deleted on both sides since
//! the last sync is in no block (nor in a full plan's scans); a key deleted
//! and inserted again is in both, and its new `changed` value brings it
//! in. Other keys (text, several columns) are read whole by a key-only
//! scan of both sides, and the plan says so once per table.

use std::collections::{BTreeMap, HashMap};

use ferry_core::canonical::key_text;
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;
use ferry_core::watermark::{unsupported, Mark, Watermark};
use ferry_db::{Predicate, RawBatch, RawBatches, ScanRequest};
use futures_util::{StreamExt, TryStreamExt};

use super::context::Ctx;
use super::rows::conv_err;
use super::select::Mode;
use crate::error::Result;
use crate::pair::Pair;
use crate::{traces, watermarks};

/// What a changed-only read of one side reads beyond its keys.
#[derive(Clone, Debug)]
pub(super) enum SideBound {
    /// The rows whose `changed` is at or above this value.
    From(Value),
    /// Every row (the side was empty at the last sync).
    All,
}

/// The bounds of a changed-only read of one table.
#[derive(Clone, Debug)]
pub(super) struct ChangedRead {
    pub column: String,
    pub source: SideBound,
    pub target: SideBound,
    /// The keys on one side only are found by comparing key blocks the
    /// databases aggregate ([`ferry_db::SqlStore::key_blocks`]: the key is
    /// one integer column on both sides), not by reading every key.
    pub blocks: bool,
    /// The keys deleted on either side since the last sync, from the
    /// databases' trace of deletes (`track_deletes`, [`crate::traces`]):
    /// with them the keys on one side only need no block of keys. `None`:
    /// no trace, or one the plan cannot trust (it says why).
    pub deleted: Option<Vec<i64>>,
}

/// How the tables with `changed` are read, and what a plan says of it.
#[derive(Default)]
pub(super) struct Reading {
    /// Table -> its changed-only read; a table not here is read whole.
    pub reads: HashMap<String, ChangedRead>,
    /// Table -> the marks taken before reading it (for the promotion).
    pub marks: BTreeMap<String, Watermark>,
    /// One line per table with `changed` read whole, saying why.
    pub notes: Vec<String>,
}

/// Decides how each table with `changed` that the selection reads whole is
/// read. `keep_equal`: a baseline (it reads every row, and records marks).
pub(super) async fn prepare(
    pair: &Pair,
    has_meta: bool,
    modes: &BTreeMap<String, Mode>,
    is_natural: impl Fn(&str) -> bool,
    keep_equal: bool,
) -> Result<Reading> {
    let shared = Shared::default();
    let natural: HashMap<&str, bool> = pair.order.iter().map(|t| (t.as_str(), is_natural(t))).collect();
    // Between servers the tables are looked at together: each costs a few
    // round trips per side, none depends on another.
    let at_once = if pair.reads_in_process() {
        1
    } else {
        pair.order.len().max(1)
    };
    let tables: Vec<_> = pair
        .order
        .iter()
        .filter_map(|t| {
            let col = pair.specs[t].changed.clone()?;
            Some(prepare_table(
                pair,
                has_meta,
                t,
                col,
                modes.get(t),
                natural[t.as_str()],
                keep_equal,
                &shared,
            ))
        })
        .collect();
    let ones: Vec<One> = futures_util::stream::iter(tables)
        .buffered(at_once)
        .try_collect()
        .await?;
    let mut out = Reading::default();
    for (t, one) in pair.order.iter().filter(|t| pair.specs[*t].changed.is_some()).zip(ones) {
        out.notes.extend(one.notes);
        if let Some(m) = one.mark {
            out.marks.insert(t.clone(), m);
        }
        if let Some(r) = one.read {
            out.reads.insert(t.clone(), r);
        }
    }
    Ok(out)
}

/// What the environments say once per plan, asked by the first table that
/// needs it.
#[derive(Default)]
struct Shared {
    /// The target holds `_ferry_watermarks` (and Ferry's tables).
    watermarks_here: tokio::sync::OnceCell<bool>,
    /// The source holds them (its rewinds are read).
    source_rewinds: tokio::sync::OnceCell<bool>,
}

/// How one table with `changed` is read.
#[derive(Default)]
struct One {
    read: Option<ChangedRead>,
    mark: Option<Watermark>,
    notes: Vec<String>,
}

/// [`prepare`] for table `t`, whose `changed` column is `col`.
#[allow(clippy::too_many_arguments)]
async fn prepare_table(
    pair: &Pair,
    has_meta: bool,
    t: &String,
    col: String,
    mode: Option<&Mode>,
    is_natural: bool,
    keep_equal: bool,
    shared: &Shared,
) -> Result<One> {
    let mut one = One::default();
    let spec = &pair.specs[t];
    match mode {
        Some(Mode::Scan(None)) => {}
        Some(Mode::Scan(Some(_))) => {
            one.notes.push(format!(
                "`{t}`: a `--where` selection compares the rows it matches, not the rows changed since the last sync"
            ));
            return Ok(one);
        }
        _ => return Ok(one),
    }
    if is_natural {
        one.notes.push(format!(
            "`{t}` is read whole: it is matched by natural key (or keyed by such a table), which reads both sides whole anyway"
        ));
        return Ok(one);
    }
    let (Some(src_sql), Some(dst_sql)) = (pair.source.as_sql(), pair.target.as_sql()) else {
        let env = if pair.source.as_sql().is_none() {
            &pair.from
        } else {
            &pair.to
        };
        one.notes.push(format!(
            "`{t}` is read whole: environment `{env}` cannot read only the rows changed since the last sync (it is not an SQL database)"
        ));
        return Ok(one);
    };
    if let Some(note) = missing_column(pair, t, &col).await? {
        one.notes.push(note);
        return Ok(one);
    }
    let (sc, tc) = tokio::try_join!(src_sql.changed_column(t, &col), dst_sql.changed_column(t, &col))?;
    if let Some(env) = [(&sc, &pair.from), (&tc, &pair.to)]
        .iter()
        .find(|(c, _)| !c.indexed)
        .map(|(_, e)| e)
    {
        // Nor are marks taken: reading them would scan the table. The
        // first promotion after the index is made records them.
        one.notes.push(format!(
            "`{t}` is read whole: no index starts with `{col}` in environment `{env}`; create one (CREATE INDEX ... ON {t} ({col})) to read only the changed rows"
        ));
        return Ok(one);
    }
    if let Some(env) = [(&sc, &pair.from), (&tc, &pair.to)]
        .iter()
        .find(|(c, _)| c.has_nulls)
        .map(|(_, e)| e)
    {
        one.notes.push(format!(
            "`{t}` is read whole: some rows hold NULL in `{col}` in environment `{env}`, so their changes cannot be told; set it on every row (and on every write)"
        ));
        return Ok(one);
    }
    let mut current = [None, None];
    let mut bad = None;
    for (i, (c, env)) in [(&sc, &pair.from), (&tc, &pair.to)].into_iter().enumerate() {
        if let Some(v) = &c.max {
            match Mark::of(v) {
                Some(m) => current[i] = Some(m),
                None => {
                    bad = Some(format!(
                        "`{t}` is read whole: `{col}` in environment `{env}` cannot be ordered in time: {}",
                        unsupported(v)
                    ))
                }
            }
        }
    }
    if let [Some(a), Some(b)] = current {
        if !a.same_kind(b) {
            bad = Some(format!(
                "`{t}` is read whole: `{col}` holds times in one environment and numbers in the other"
            ));
        }
    }
    if let Some(note) = bad {
        one.notes.push(note);
        return Ok(one);
    }
    let [cur_s, cur_t] = current;
    // A mark is never later than now: a row dated in the future must
    // not hide the edits made before that date.
    let read_at = crate::journal::now();
    let now = Mark::Micros(read_at.timestamp_micros());
    let capped = |m: Option<Mark>, other: Option<Mark>| match m.or(other) {
        Some(Mark::Micros(_)) => Some(m.map_or(now, |m| m.min(now))),
        _ => m,
    };
    one.mark = Some(Watermark {
        source: capped(cur_s, cur_t),
        target: capped(cur_t, cur_s),
        taken_at: read_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    });
    if pair.full_plans || keep_equal {
        return Ok(one);
    }
    let here = *shared
        .watermarks_here
        .get_or_try_init(|| async {
            Ok::<_, crate::error::Error>(has_meta && watermarks::present(&*pair.target).await?)
        })
        .await?;
    let stored = if here {
        watermarks::read(&*pair.target, &pair.from, t).await?
    } else {
        None
    };
    let Some(stored) = stored else {
        one.notes.push(format!(
            "`{t}` is read whole: no watermark of `{}` -> `{}` yet (the first plan since `changed` was declared, or after a revert or a partial promotion's review); the next promotion that leaves the table in sync records one",
            pair.from, pair.to
        ));
        return Ok(one);
    };
    let in_source = *shared
        .source_rewinds
        .get_or_try_init(|| async {
            Ok::<_, crate::error::Error>(pair.source.has_meta().await? && watermarks::present(&*pair.source).await?)
        })
        .await?;
    let mut rewound = None;
    for (store, env, has) in [(&pair.source, &pair.from, in_source), (&pair.target, &pair.to, here)] {
        if has {
            if let Some((at, by)) = watermarks::rewound_at(&**store, t).await? {
                // The promotion that recorded the watermark wrote its
                // own rows in sync: only a later write rewinds.
                if at > stored.mark.taken_at && (by.is_none() || by != stored.promotion_id) {
                    rewound = Some(env);
                }
            }
        }
    }
    if let Some(env) = rewound {
        one.notes.push(format!(
            "`{t}` is read whole: Ferry wrote rows of it in environment `{env}` with older `{col}` values (a revert, a refresh, or a promotion that does not stamp `{col}`) since the last sync"
        ));
        return Ok(one);
    }
    let margin = spec.changed_margin_secs;
    let side = |mark: Option<Mark>, cur: Option<Mark>, like: &Option<Value>, env: &str| match (mark, cur, like) {
        // Empty at the last sync: every row came since. Empty now:
        // nothing to read beyond the keys.
        (None, _, _) | (_, None, _) | (_, _, None) => Ok(SideBound::All),
        (Some(w), Some(c), Some(like)) => {
            let bound = w.minus(margin);
            if !w.same_kind(c) {
                return Err(format!(
                    "`{t}` is read whole: `{col}` in environment `{env}` no longer holds the kind of value the watermark was taken from"
                ));
            }
            if c < bound {
                return Err(format!(
                    "`{t}` is read whole: the newest `{col}` in environment `{env}` is older than the last sync's watermark minus the margin (did a clock go backwards?)"
                ));
            }
            bound.bound(like).map(SideBound::From).ok_or_else(|| {
                format!("`{t}` is read whole: `{col}` in environment `{env}` holds values the watermark cannot bound")
            })
        }
    };
    let sides = side(stored.mark.source, cur_s, &sc.max, &pair.from)
        .and_then(|s| Ok((s, side(stored.mark.target, cur_t, &tc.max, &pair.to)?)));
    match sides {
        Ok((source, target)) => {
            let blocks = match spec.key.as_slice() {
                [k] => {
                    let (s_int, t_int) = tokio::try_join!(src_sql.integer_key(t, k), dst_sql.integer_key(t, k))?;
                    if !(s_int && t_int) {
                        let env = if s_int { &pair.to } else { &pair.from };
                        one.notes.push(format!(
                            "`{t}`: inserts and deletes are found by reading every key of both sides: its key `{k}` is not an integer column in environment `{env}`{}",
                            if pair.source.engine() == ferry_db::Engine::Sqlite || pair.target.engine() == ferry_db::Engine::Sqlite {
                                " (on SQLite, the rowid: `INTEGER PRIMARY KEY`)"
                            } else {
                                ""
                            }
                        ));
                    }
                    s_int && t_int
                }
                _ => {
                    one.notes.push(format!(
                        "`{t}`: inserts and deletes are found by reading every key of both sides: its key ({}) has more than one column",
                        spec.key.join(", ")
                    ));
                    false
                }
            };
            let deleted = match (&source, &target) {
                (SideBound::From(_), SideBound::From(_)) if blocks && spec.track_deletes => {
                    let since = &stored.mark.taken_at;
                    let (s, d) = tokio::try_join!(
                        traces::read(&*pair.source, t, since, margin),
                        traces::read(&*pair.target, t, since, margin)
                    )?;
                    match s.and_then(|s| Ok((s, d?))) {
                        Ok((mut s, d)) => {
                            s.extend(d);
                            Some(s)
                        }
                        Err(why) => {
                            one.notes.push(format!(
                                "`{t}`: inserts and deletes are found from blocks of keys, not from the trace of deletes: {why}"
                            ));
                            None
                        }
                    }
                }
                _ => None,
            };
            one.read = Some(ChangedRead {
                column: col,
                source,
                target,
                blocks,
                deleted,
            });
        }
        Err(note) => one.notes.push(note),
    }
    Ok(one)
}

/// A note when `column` is missing from `table` on either side (the plan
/// then reads it whole).
async fn missing_column(pair: &Pair, table: &str, column: &str) -> Result<Option<String>> {
    // A compared column exists on both sides (the pair was resolved so).
    if pair
        .specs
        .get(table)
        .is_some_and(|s| s.compared.iter().any(|c| c == column))
    {
        return Ok(None);
    }
    for (store, env) in [(&pair.source, &pair.from), (&pair.target, &pair.to)] {
        let schema = store.table_schema(table).await?;
        if schema.is_none_or(|s| s.column(column).is_none()) {
            return Ok(Some(format!(
                "`{table}` is read whole: its `changed` column `{column}` does not exist in environment `{env}`; add it, or fix `changed` in ferry.toml"
            )));
        }
    }
    Ok(None)
}

/// The keys a changed-only read compares, in key order, each once: keys
/// present on one side only, source rows matching `exclude`, and the rows
/// at or above each side's bound.
pub(super) async fn keys(ctx: &Ctx<'_>, spec: &TableSpec, read: &ChangedRead) -> Result<Vec<Vec<Value>>> {
    let pair = ctx.pair;
    let mut keys: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let all_s = matches!(read.source, SideBound::All);
    let all_t = matches!(read.target, SideBound::All);
    if let Some(deleted) = &read.deleted {
        // Both sides are read from a bound (`prepare`): every key on one
        // side only was inserted (its `changed` is past the bound) or
        // deleted (traced) since the last sync.
        for k in deleted {
            let key = canonical_key(ctx, spec, &pair.from, &[Value::Int(*k)])?;
            keys.entry(key_text(&key)).or_insert(key);
        }
    }
    if read.blocks && read.deleted.is_none() {
        block_keys(ctx, spec, all_s || all_t, &mut keys).await?;
    }
    if read.blocks {
        if let Some(ex) = &spec.exclude {
            let req = ScanRequest {
                filter: Some(Predicate::Native(ex.clone())),
                ..unordered_keys(spec)
            };
            add_scanned(ctx, spec, &pair.source, &pair.from, req, &mut keys).await?;
        }
    } else {
        scanned_keys(ctx, spec, all_s || all_t, &mut keys).await?;
    }
    for (store, env, bound) in [
        (&pair.source, &pair.from, &read.source),
        (&pair.target, &pair.to, &read.target),
    ] {
        let SideBound::From(bound) = bound else { continue };
        let req = ScanRequest {
            filter: Some(Predicate::Range {
                columns: vec![read.column.clone()],
                from: std::ops::Bound::Included(vec![bound.clone()]),
                to: std::ops::Bound::Unbounded,
            }),
            ..unordered_keys(spec)
        };
        add_scanned(ctx, spec, store, env, req, &mut keys).await?;
    }
    let mut out: Vec<Vec<Value>> = keys.into_values().collect();
    out.sort_by(|a, b| spec.key_cmp(a, b));
    Ok(out)
}

/// A key-only read of one table on one side, in key order.
fn key_scan(spec: &TableSpec, flag: Option<Predicate>) -> ScanRequest {
    ScanRequest {
        table: spec.name.clone(),
        columns: spec.key.clone(),
        order_by: spec.key.clone(),
        filter: None,
        flag,
        descending: false,
        limit: None,
    }
}

/// A key-only read in no particular order, for the reads [`add_scanned`]
/// gathers: asked in key order, SQLite walks the whole table to filter it
/// rather than search the `changed` column's index and sort (measured at
/// S=1: the bound scans read every page of the tables).
fn unordered_keys(spec: &TableSpec) -> ScanRequest {
    ScanRequest {
        order_by: Vec::new(),
        ..key_scan(spec, None)
    }
}

/// Adds the keys a key-only `req` reads from `store` to `keys`.
async fn add_scanned(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    store: &std::sync::Arc<dyn ferry_db::Store>,
    env: &str,
    req: ScanRequest,
    keys: &mut BTreeMap<String, Vec<Value>>,
) -> Result<()> {
    let mut rx = store.scan(req).await?;
    while let Some(batch) = rx.recv().await {
        for raw in batch? {
            let key = canonical_key(ctx, spec, env, &raw)?;
            keys.entry(key_text(&key)).or_insert(key);
        }
    }
    Ok(())
}

/// Adds to `keys` the keys on one side only (`both`: every key of either
/// side) and the source's keys matching `exclude`, from a key-only scan
/// of both sides.
async fn scanned_keys(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    both: bool,
    keys: &mut BTreeMap<String, Vec<Value>>,
) -> Result<()> {
    let pair = ctx.pair;
    let (src, dst) = tokio::try_join!(
        pair.source
            .scan_raw(key_scan(spec, spec.exclude.clone().map(Predicate::Native))),
        pair.target.scan_raw(key_scan(spec, None))
    )?;
    let k = spec.key.len();
    let mut s = KeyStream::new(src, &pair.from);
    let mut t = KeyStream::new(dst, &pair.to);
    let mut s_next = s.next(ctx, spec).await?;
    let mut t_next = t.next(ctx, spec).await?;
    loop {
        let ord = match (&s_next, &t_next) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => spec.key_cmp(a, b),
        };
        match ord {
            std::cmp::Ordering::Less => {
                if let Some((key, _)) = s_next.take() {
                    keys.entry(key_text(&key)).or_insert(key);
                }
                s_next = s.next(ctx, spec).await?;
            }
            std::cmp::Ordering::Greater => {
                if let Some((key, _)) = t_next.take() {
                    keys.entry(key_text(&key)).or_insert(key);
                }
                t_next = t.next(ctx, spec).await?;
            }
            std::cmp::Ordering::Equal => {
                if let Some((key, excluded)) = s_next.take() {
                    if excluded || both {
                        keys.entry(key_text(&key)).or_insert(key);
                    }
                }
                s_next = s.next(ctx, spec).await?;
                t_next = t.next(ctx, spec).await?;
            }
        }
    }
    debug_assert!(keys.values().all(|key| key.len() == k));
    Ok(())
}

/// Adds to `keys` the keys on one side only (`both`: every key of either
/// side), from the key blocks both databases aggregate: a block equal on
/// both sides holds the same keys on both, and the bits that differ are
/// the keys on one side only. Exact: no key is guessed from a checksum.
async fn block_keys(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    both: bool,
    keys: &mut BTreeMap<String, Vec<Value>>,
) -> Result<()> {
    let pair = ctx.pair;
    let column = &spec.key[0];
    // Planned between SQL stores only (`prepare`).
    let (Some(src_sql), Some(dst_sql)) = (pair.source.as_sql(), pair.target.as_sql()) else {
        return scanned_keys(ctx, spec, both, keys).await;
    };
    let (src, dst) = tokio::try_join!(
        src_sql.key_blocks(&spec.name, column),
        dst_sql.key_blocks(&spec.name, column)
    )?;
    let mut s = BlockStream::new(src, &pair.from);
    let mut t = BlockStream::new(dst, &pair.to);
    let (mut s_next, mut t_next) = (s.next(spec).await?, t.next(spec).await?);
    loop {
        let block = match (s_next, t_next) {
            (None, None) => break,
            (Some(a), Some(b)) => a.block.min(b.block),
            (Some(a), None) => a.block,
            (None, Some(b)) => b.block,
        };
        let ms = s_next.filter(|x| x.block == block).map(|x| x.mask);
        let mt = t_next.filter(|x| x.block == block).map(|x| x.mask);
        if ms.is_some() {
            s_next = s.next(spec).await?;
        }
        if mt.is_some() {
            t_next = t.next(spec).await?;
        }
        let (ms, mt) = (ms.unwrap_or(0), mt.unwrap_or(0));
        let mask = if both { ms | mt } else { ms ^ mt };
        for k in (ferry_db::KeyBlock { block, mask }).keys() {
            let key = canonical_key(ctx, spec, &pair.from, &[Value::Int(k)])?;
            keys.entry(key_text(&key)).or_insert(key);
        }
    }
    Ok(())
}

/// One side's key blocks, block by block, checked in ascending order.
struct BlockStream<'e> {
    rx: ferry_db::KeyBlocks,
    batch: std::vec::IntoIter<ferry_db::KeyBlock>,
    env: &'e str,
    last: Option<i64>,
}

impl<'e> BlockStream<'e> {
    fn new(rx: ferry_db::KeyBlocks, env: &'e str) -> BlockStream<'e> {
        BlockStream {
            rx,
            batch: Vec::new().into_iter(),
            env,
            last: None,
        }
    }

    async fn next(&mut self, spec: &TableSpec) -> Result<Option<ferry_db::KeyBlock>> {
        loop {
            if let Some(b) = self.batch.next() {
                if self.last.is_some_and(|l| l >= b.block) {
                    return Err(crate::error::Error::Data(format!(
                        "environment `{}`, table `{}`: the blocks of keys came out of order (block {} after {}); plan with --full",
                        self.env,
                        spec.name,
                        b.block,
                        self.last.unwrap_or_default()
                    )));
                }
                self.last = Some(b.block);
                return Ok(Some(b));
            }
            match self.rx.recv().await {
                Some(batch) => self.batch = batch?.into_iter(),
                None => return Ok(None),
            }
        }
    }
}

fn canonical_key(ctx: &Ctx<'_>, spec: &TableSpec, env: &str, raw: &[Value]) -> Result<Vec<Value>> {
    let pair = ctx.pair;
    spec.canonicalize_key(&raw[..spec.key.len().min(raw.len())])
        .map_err(|(col, e)| conv_err((&pair.from, &pair.to), spec, raw, env, &col, e))
}

/// One side's key-only scan, key by key, with whether the source row
/// matches `exclude`. Read as a raw scan (binary `COPY` on PostgreSQL,
/// the engines' own cells elsewhere): only the key is decoded.
struct KeyStream<'e> {
    rx: RawBatches,
    batch: Option<RawBatch>,
    at: usize,
    env: &'e str,
    last: Option<Vec<Value>>,
}

impl<'e> KeyStream<'e> {
    fn new(rx: RawBatches, env: &'e str) -> KeyStream<'e> {
        KeyStream {
            rx,
            batch: None,
            at: 0,
            env,
            last: None,
        }
    }

    async fn next(&mut self, ctx: &Ctx<'_>, spec: &TableSpec) -> Result<Option<(Vec<Value>, bool)>> {
        loop {
            if let Some(b) = self.batch.as_mut() {
                if self.at < b.len() {
                    let i = self.at;
                    self.at += 1;
                    let raw = b.take_key(i);
                    let excluded = b.flag(i);
                    let key = canonical_key(ctx, spec, self.env, &raw)?;
                    super::scan::check_order(self.env, spec, &mut self.last, &key)?;
                    return Ok(Some((key, excluded)));
                }
                if let Some(done) = self.batch.take() {
                    self.rx.recycle(done);
                }
            }
            match self.rx.recv().await {
                Some(batch) => {
                    self.batch = Some(batch?);
                    self.at = 0;
                }
                None => return Ok(None),
            }
        }
    }
}
