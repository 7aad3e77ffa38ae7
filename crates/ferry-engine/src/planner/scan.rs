//! Stage 3, scan. In: one table and what the selection asks of it (a
//! [`Mode`]). Out: [`Batch`]es of [`Candidate`]s, the keys whose rows differ,
//! exist on one side only or match `exclude`, with the rows equal on both
//! sides when a baseline wants them, and the selected keys when children
//! follow them.
//!
//! A full scan streams both sides in key order: canonically (a merge-join
//! on row hashes, each side converted and hashed on a task of its own), or,
//! when both sides run on the same engine with columns declared alike, as
//! raw images ([`crate::merge`]). Named keys, children and the keys a
//! `--where` predicate matches are fetched from both sides.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;

use ferry_core::canonical::{key_text, RowHashes};
use ferry_core::rules::SyncBase;
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;
use ferry_db::raw::is_true;
use ferry_db::{FetchRequest, Predicate, Row, ScanRequest};
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::context::Ctx;
use super::rows::{conv_err, json_natural_refs, Candidate, SideRow};
use super::select::Mode;
use crate::error::{Error, Part, Result};
use crate::merge::{Chunk, RawMerge};
use crate::pair::Pair;
use crate::progress::TableProgress;

/// Differing keys per batch, at most: memory holds them until they are
/// classified.
const BATCH_ROWS: usize = 512;

/// Equal or selected keys per batch, at most.
const BATCH_KEYS: usize = 4096;

/// What a scan hands on: a slice of one table.
#[derive(Default)]
pub(super) struct Batch {
    /// Keys whose rows differ, exist on one side only or match `exclude`.
    pub candidates: Vec<Candidate>,
    /// Rows equal on both sides (key, full hashes), when the context keeps
    /// them (a baseline).
    pub equal: Vec<(Vec<Value>, RowHashes)>,
    /// Every selected key read, when tracked (children follow them).
    pub selected: Vec<Vec<Value>>,
    /// The sync bases of the candidates, when read with them (a chunk of
    /// known keys); `None`: [`super::classify::classify`] reads them.
    pub bases: Option<HashMap<String, SyncBase>>,
}

impl Batch {
    fn of(candidates: Vec<Candidate>) -> Batch {
        Batch {
            candidates,
            ..Batch::default()
        }
    }
}

/// One table being read, batch by batch ([`TableScan::next`]).
pub(super) struct TableScan<'c> {
    ctx: &'c Ctx<'c>,
    spec: &'c TableSpec,
    track: bool,
    source: Source<'c>,
}

/// Chunks of known keys read ahead: each gives its candidates, their sync
/// bases and how many keys it held.
type KeyedChunks<'c> =
    Pin<Box<dyn Stream<Item = Result<(Vec<Candidate>, HashMap<String, SyncBase>, u64)>> + Send + 'c>>;

/// Reads `chunks` of `spec`'s keys from both sides and their sync bases
/// (the three at once), [`Pair::reads_at_once`] chunks at a time, in order:
/// the next chunk is in flight while one is classified where reads wait on
/// a disk or a server.
fn keyed<'c>(ctx: &'c Ctx<'c>, spec: &'c TableSpec, keys: Vec<Vec<Value>>) -> KeyedChunks<'c> {
    let chunks: Vec<Vec<Vec<Value>>> = keys.chunks(BATCH_ROWS).map(<[_]>::to_vec).collect();
    let read = move |chunk: Vec<Vec<Value>>| async move {
        let n = chunk.len() as u64;
        let refs: Vec<&Vec<Value>> = chunk.iter().collect();
        let (cands, bases) = tokio::try_join!(
            fetch_candidates(ctx, spec, &spec.key, chunk.clone(), false, None),
            super::classify::sync_bases(ctx, spec, &refs)
        )?;
        Ok((cands, bases, n))
    };
    Box::pin(
        futures_util::stream::iter(chunks)
            .map(read)
            .buffered(ctx.pair.reads_at_once()),
    )
}

/// Where a [`TableScan`]'s batches come from.
enum Source<'c> {
    /// Read at once (named keys, children, a natural-key table): one batch.
    Once(Option<Vec<Candidate>>),
    /// The keys a `--where` predicate matches (or a changed-only read
    /// compares), fetched a chunk at a time with their sync bases, the
    /// next chunks in flight while one is classified ([`keyed`]).
    Keys(KeyedChunks<'c>, Box<dyn TableProgress>),
    /// Both sides streamed in key order, canonical.
    Merge(Box<Merge>),
    /// Both sides streamed as raw images.
    Raw(mpsc::Receiver<Result<Chunk>>, Box<dyn TableProgress>),
}

/// Opens the reading of one table's selected rows. `explicit`: the keys
/// were named with `--id` (a missing one is an error). `pulled_by`: the row
/// that needs them. `track`: every selected key is handed on (for the
/// children to follow).
pub(super) async fn open<'c>(
    ctx: &'c Ctx<'c>,
    spec: &'c TableSpec,
    mode: Mode,
    explicit: bool,
    pulled_by: Option<String>,
    track: bool,
) -> Result<TableScan<'c>> {
    let source = if ctx.is_natural(&spec.name) {
        Source::Once(Some(natural(ctx, spec, &mode, explicit, pulled_by).await?))
    } else {
        match mode {
            // `changed`: the keys changed since the last sync, present on
            // one side only, or excluded, compared whole like `--where`'s.
            Mode::Scan(None) if ctx.changed.contains_key(&spec.name) => {
                let read = &ctx.changed[&spec.name];
                let keys = super::changed::keys(ctx, spec, read).await?;
                let bar = ctx.progress.table(&spec.name);
                bar.set_total(keys.len() as u64);
                Source::Keys(keyed(ctx, spec, keys), bar)
            }
            // The raw merge sees only the keys that differ: it cannot give
            // every selected key.
            Mode::Scan(None) if !track && merges_raw(ctx, spec) => {
                let pair = ctx.pair;
                let (src_req, dst_req) = full_scan(pair, spec, None);
                // No predicate here: a failing scan is the database's error as it is.
                let (src, dst) = tokio::try_join!(pair.source.scan_raw(src_req), pair.target.scan_raw(dst_req))?;
                let chunks = RawMerge::new(spec, (&pair.from, src), (&pair.to, dst)).spawn();
                Source::Raw(chunks, ctx.progress.table(&spec.name))
            }
            Mode::Scan(None) => Source::Merge(Box::new(Merge::open(ctx, spec, None).await?)),
            Mode::Scan(Some(filter)) => {
                // A predicate selects the keys whose row matches it on
                // either side; both rows are then compared whole. Filtering
                // each side on its own would make a row that an edit moved
                // out of (or into) the predicate look deleted on one side,
                // and plan a delete or an insert for a mere update.
                let keys = matching_keys(ctx, spec, &filter).await?;
                let bar = ctx.progress.table(&spec.name);
                bar.set_total(keys.len() as u64);
                Source::Keys(keyed(ctx, spec, keys), bar)
            }
            Mode::Keys(keys) => {
                let cands = fetch_candidates(ctx, spec, &spec.key, keys.clone(), explicit, pulled_by).await?;
                if explicit {
                    let found: HashSet<String> = cands.iter().map(|c| key_text(&c.key)).collect();
                    if let Some(k) = keys.iter().find(|k| !found.contains(&key_text(k))) {
                        return Err(Error::Selection {
                            part: Part::Row,
                            given: format!("{}:{}", spec.name, ferry_core::plan::key_label(k)),
                            message: format!("no such row in `{}` or `{}`", ctx.pair.from, ctx.pair.to),
                        });
                    }
                }
                Source::Once(Some(cands))
            }
            Mode::Children(parents) => match spec.parent.clone() {
                None => Source::Once(None),
                Some((col, _)) => {
                    let values = parents.into_iter().map(|v| vec![v]).collect();
                    Source::Once(Some(fetch_candidates(ctx, spec, &[col], values, false, None).await?))
                }
            },
        }
    };
    Ok(TableScan {
        ctx,
        spec,
        track,
        source,
    })
}

/// The candidates of a natural-key table (matched in stage 2) for a mode.
async fn natural(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    mode: &Mode,
    explicit: bool,
    pulled_by: Option<String>,
) -> Result<Vec<Candidate>> {
    let Some(m) = ctx.natural.get(&spec.name) else {
        return Ok(Vec::new());
    };
    let mut cands = match mode {
        Mode::Scan(None) => m.all(),
        Mode::Scan(Some(filter)) => m.by_keys(&matching_keys(ctx, spec, filter).await?),
        Mode::Keys(keys) => m.by_keys(keys),
        Mode::Children(parents) => m.children(spec, parents),
    };
    if let Mode::Keys(keys) = mode {
        if explicit && cands.len() < keys.len() {
            return Err(Error::Selection {
                part: Part::Row,
                given: spec.name.clone(),
                message: format!(
                    "no such row in `{}` (a row of a table matched by natural key is named by the source row's key)",
                    ctx.pair.from
                ),
            });
        }
    }
    for c in cands.iter_mut() {
        c.explicit = explicit;
        c.pulled_by = pulled_by.clone();
    }
    Ok(cands)
}

/// The candidates of rows pulled in by a reference: the row of `key` on
/// both sides (through the match of a natural-key table).
pub(super) async fn referenced(ctx: &Ctx<'_>, spec: &TableSpec, key: Value, by: &str) -> Result<Vec<Candidate>> {
    if ctx.is_natural(&spec.name) {
        natural(ctx, spec, &Mode::Keys(vec![vec![key]]), false, Some(by.to_string())).await
    } else {
        fetch_candidates(ctx, spec, &spec.key, vec![vec![key]], false, Some(by.to_string())).await
    }
}

impl TableScan<'_> {
    /// The next batch; `None` when the table is read.
    pub(super) async fn next(&mut self) -> Result<Option<Batch>> {
        let (ctx, spec) = (self.ctx, self.spec);
        let batch = match &mut self.source {
            Source::Once(cands) => cands.take().map(Batch::of),
            Source::Keys(chunks, bar) => match chunks.next().await {
                Some(read) => {
                    let (cands, bases, n) = read?;
                    bar.inc(n);
                    Some(Batch {
                        bases: Some(bases),
                        ..Batch::of(cands)
                    })
                }
                None => {
                    bar.finish();
                    None
                }
            },
            Source::Merge(merge) => return merge.next(ctx, spec, self.track).await,
            Source::Raw(chunks, bar) => match chunks.recv().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    bar.inc(chunk.read);
                    Some(Batch::of(raw_candidates(ctx, spec, chunk).await?))
                }
                None => {
                    bar.finish();
                    None
                }
            },
        };
        Ok(batch.map(|mut b| {
            if self.track {
                b.selected = b.candidates.iter().map(|c| c.key.clone()).collect();
            }
            b
        }))
    }
}

/// The candidates of one chunk of the raw merge: rows decoded from their
/// images, and the others read again whole.
async fn raw_candidates(ctx: &Ctx<'_>, spec: &TableSpec, chunk: Chunk) -> Result<Vec<Candidate>> {
    let pair = ctx.pair;
    let (mut source, mut target, mut again) = (Vec::new(), Vec::new(), Vec::new());
    for d in chunk.rows {
        match d.rows {
            Some(rows) => {
                source.extend(rows.source.map(|r| (r, rows.excluded)));
                // No raw merge evaluates `exclude` on the target side
                // ([`merges_raw`]).
                target.extend(rows.target.map(|r| (r, false)));
            }
            None => again.push(
                spec.canonicalize_key(&d.key)
                    .map_err(|(col, e)| conv_err((&pair.from, &pair.to), spec, &d.key, &pair.from, &col, e))?,
            ),
        }
    }
    let mut cands = candidates(ctx, spec, source, target, false, None)?;
    cands.extend(fetch_candidates(ctx, spec, &spec.key, again, false, None).await?);
    Ok(cands)
}

/// Whether a full scan of `spec` can use the raw merge ([`crate::merge`]):
/// not for a baseline (it records the hashes of equal rows too), nor
/// for references to natural-key tables (the source's ids are rewritten
/// before comparing).
fn merges_raw(ctx: &Ctx<'_>, spec: &TableSpec) -> bool {
    let pair = ctx.pair;
    pair.raw_comparable.contains(&spec.name)
        && pair.exclude_flags(spec).1.is_none()
        && !ctx.keep_equal
        && !spec.references.values().any(|t| ctx.is_natural(t))
        && !json_natural_refs(spec, |t| ctx.is_natural(t))
}

/// Fetches the rows matching `values` on `columns` from both sides.
pub(super) async fn fetch_candidates(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    columns: &[String],
    values: Vec<Vec<Value>>,
    explicit: bool,
    pulled_by: Option<String>,
) -> Result<Vec<Candidate>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let (src_flag, dst_flag) = ctx.pair.exclude_flags(spec);
    let req = FetchRequest {
        table: spec.name.clone(),
        columns: spec.columns(),
        match_columns: columns.to_vec(),
        values,
        flag: src_flag,
        filter: None,
        fixed: Vec::new(),
    };
    let (source, target) = tokio::try_join!(
        ctx.pair.source.fetch(req.clone()),
        ctx.pair.target.fetch(FetchRequest { flag: dst_flag, ..req })
    )?;
    let n = spec.columns().len();
    let flagged = |rows: Vec<Row>| -> Vec<(Row, bool)> {
        rows.into_iter()
            .map(|mut raw| {
                let excluded = is_true(raw.get(n));
                raw.truncate(n);
                (raw, excluded)
            })
            .collect()
    };
    candidates(ctx, spec, flagged(source), flagged(target), explicit, pulled_by)
}

/// Pairs rows read from both sides by key, each with whether it matches
/// `exclude` on the side that evaluates it ([`Pair::exclude_flags`]).
fn candidates(
    ctx: &Ctx<'_>,
    spec: &TableSpec,
    source: Vec<(Row, bool)>,
    target: Vec<(Row, bool)>,
    explicit: bool,
    pulled_by: Option<String>,
) -> Result<Vec<Candidate>> {
    let mut by_key: BTreeMap<String, Candidate> = BTreeMap::new();
    for (raw, excluded) in source {
        let side = ctx.side(spec, &ctx.pair.from, raw, true)?;
        let key = side.row[..spec.key.len()].to_vec();
        by_key.insert(
            key_text(&key),
            Candidate {
                key,
                source: Some(side),
                target: None,
                excluded,
                explicit,
                pulled_by: pulled_by.clone(),
                target_key: None,
                no_base: false,
            },
        );
    }
    for (raw, excluded) in target {
        let side = ctx.side(spec, &ctx.pair.to, raw, true)?;
        let key = side.row[..spec.key.len()].to_vec();
        let c = by_key.entry(key_text(&key)).or_insert_with(|| Candidate {
            key,
            source: None,
            target: None,
            excluded: false,
            explicit,
            pulled_by: pulled_by.clone(),
            target_key: None,
            no_base: false,
        });
        c.target = Some(side);
        c.excluded |= excluded;
    }
    Ok(by_key.into_values().collect())
}

/// The keys of the rows matching `filter` in the source or in the
/// target (canonical, each once).
pub(super) async fn matching_keys(ctx: &Ctx<'_>, spec: &TableSpec, filter: &str) -> Result<Vec<Vec<Value>>> {
    let pair = ctx.pair;
    let req = ScanRequest {
        table: spec.name.clone(),
        columns: spec.key.clone(),
        order_by: spec.key.clone(),
        filter: Some(Predicate::native(filter)),
        flag: None,
        descending: false,
        limit: None,
    };
    let mut keys: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (store, env) in [(&pair.source, &pair.from), (&pair.target, &pair.to)] {
        let mut rx = match store.scan(req.clone()).await {
            Ok(rx) => rx,
            Err(e) => return Err(where_error(pair, spec, Some(filter), e).await),
        };
        while let Some(batch) = rx.recv().await {
            for raw in batch? {
                let key = spec
                    .canonicalize_key(&raw)
                    .map_err(|(col, e)| conv_err((&pair.from, &pair.to), spec, &raw, env, &col, e))?;
                keys.entry(key_text(&key)).or_insert(key);
            }
        }
    }
    Ok(keys.into_values().collect())
}

/// The canonical merge of one table's two scans, in key order: each side
/// converted and hashed on a task of its own, rows with equal hashes
/// dropped.
struct Merge {
    src: mpsc::Receiver<Result<Vec<(SideRow, bool)>>>,
    dst: mpsc::Receiver<Result<Vec<(SideRow, bool)>>>,
    s_buf: std::vec::IntoIter<(SideRow, bool)>,
    t_buf: std::vec::IntoIter<(SideRow, bool)>,
    s_next: Option<(SideRow, bool)>,
    t_next: Option<(SideRow, bool)>,
    s_done: bool,
    t_done: bool,
    last_s: Option<Vec<Value>>,
    last_t: Option<Vec<Value>>,
    bar: Box<dyn TableProgress>,
    done: bool,
}

impl Merge {
    /// Starts both scans (`filter`: a predicate on both sides).
    async fn open(ctx: &Ctx<'_>, spec: &TableSpec, filter: Option<String>) -> Result<Merge> {
        let pair = ctx.pair;
        let (src_req, dst_req) = full_scan(pair, spec, filter.clone());
        let scans = tokio::try_join!(pair.source.scan(src_req), pair.target.scan(dst_req));
        let (src, dst) = match scans {
            Ok(s) => s,
            Err(e) => return Err(where_error(pair, spec, filter.as_deref(), e).await),
        };
        let shared = Arc::new(spec.clone());
        Ok(Merge {
            src: ctx.sides.clone().stream(src, shared.clone(), pair.from.clone()),
            dst: ctx.sides.clone().stream(dst, shared, pair.to.clone()),
            s_buf: Vec::new().into_iter(),
            t_buf: Vec::new().into_iter(),
            s_next: None,
            t_next: None,
            s_done: false,
            t_done: false,
            last_s: None,
            last_t: None,
            bar: ctx.progress.table(&spec.name),
            done: false,
        })
    }

    /// The next key of either side, in key order, with its rows and
    /// whether it matches `exclude` (on the side that evaluates it);
    /// `None` at the end of both scans.
    async fn next_key(
        &mut self,
        ctx: &Ctx<'_>,
        spec: &TableSpec,
    ) -> Result<Option<(Option<SideRow>, bool, Option<SideRow>)>> {
        let pair = ctx.pair;
        let k = spec.key.len();
        if self.s_next.is_none() && !self.s_done {
            match next_item(&mut self.s_buf, &mut self.src).await? {
                Some((side, excluded)) => {
                    check_order(&pair.from, spec, &mut self.last_s, &side.row[..k])?;
                    self.s_next = Some((side, excluded));
                }
                None => self.s_done = true,
            }
        }
        if self.t_next.is_none() && !self.t_done {
            match next_item(&mut self.t_buf, &mut self.dst).await? {
                Some((side, excluded)) => {
                    check_order(&pair.to, spec, &mut self.last_t, &side.row[..k])?;
                    self.t_next = Some((side, excluded));
                }
                None => self.t_done = true,
            }
        }
        let ord = match (&self.s_next, &self.t_next) {
            (None, None) => return Ok(None),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((s, _)), Some((t, _))) => spec.key_cmp(&s.row[..k], &t.row[..k]),
        };
        Ok(Some(match ord {
            std::cmp::Ordering::Less => {
                let (s, ex) = self.s_next.take().unwrap_or_else(|| unreachable!("checked above"));
                (Some(s), ex, None)
            }
            std::cmp::Ordering::Greater => {
                let (t, ex) = self.t_next.take().unwrap_or_else(|| unreachable!("checked above"));
                (None, ex, Some(t))
            }
            std::cmp::Ordering::Equal => {
                let (s, s_ex) = self.s_next.take().unwrap_or_else(|| unreachable!("checked above"));
                let (t, t_ex) = self.t_next.take().unwrap_or_else(|| unreachable!("checked above"));
                (Some(s), s_ex || t_ex, Some(t))
            }
        }))
    }

    /// The next batch of differing keys (and equal rows, selected keys);
    /// `None` once the last batch is out.
    async fn next(&mut self, ctx: &Ctx<'_>, spec: &TableSpec, track: bool) -> Result<Option<Batch>> {
        if self.done {
            return Ok(None);
        }
        let k = spec.key.len();
        let mut batch = Batch::default();
        while let Some((source, excluded, target)) = self.next_key(ctx, spec).await? {
            self.bar.inc(1);
            let key = source
                .as_ref()
                .or(target.as_ref())
                .map(|r| r.row[..k].to_vec())
                .unwrap_or_default();
            if track {
                batch.selected.push(key.clone());
            }
            let equal =
                matches!((&source, &target, excluded), (Some(s), Some(t), false) if s.hashes.row == t.hashes.row);
            if equal {
                if let (true, Some(s)) = (ctx.keep_equal, &source) {
                    batch.equal.push((key, spec.hash(&s.row)));
                }
            } else {
                batch
                    .candidates
                    .push(Candidate::scanned(key, source, target, None, excluded));
            }
            if batch.candidates.len() >= BATCH_ROWS
                || batch.equal.len() >= BATCH_KEYS
                || batch.selected.len() >= BATCH_KEYS
            {
                return Ok(Some(batch));
            }
        }
        self.bar.finish();
        self.done = true;
        Ok(Some(batch))
    }
}

/// The scans of both sides of a table in key order, each with the
/// `exclude` flag when it is the side that evaluates it
/// ([`Pair::exclude_flags`]).
fn full_scan(pair: &Pair, spec: &TableSpec, filter: Option<String>) -> (ScanRequest, ScanRequest) {
    let (src_flag, dst_flag) = pair.exclude_flags(spec);
    let source = ScanRequest {
        table: spec.name.clone(),
        columns: spec.columns(),
        order_by: spec.key.clone(),
        filter: filter.map(Predicate::Native),
        flag: src_flag,
        descending: false,
        limit: None,
    };
    let target = ScanRequest {
        flag: dst_flag,
        ..source.clone()
    };
    (source, target)
}

/// A scan that failed: when a `--where` predicate does not run on one side,
/// that is a usage error naming the predicate and the environment (exit 2),
/// not a database failure.
async fn where_error(pair: &Pair, spec: &TableSpec, filter: Option<&str>, e: ferry_db::DbError) -> Error {
    let Some(pred) = filter else { return e.into() };
    if e.kind != ferry_db::DbErrorKind::Query {
        return e.into();
    }
    for store in [&pair.source, &pair.target] {
        if let Err(p) = ferry_db::check_predicate(&**store, &spec.name, pred).await {
            // rusqlite appends the whole statement ("... in SELECT ..."): the
            // predicate is what the user wrote, so say that instead.
            let why = p.message.split(" in SELECT ").next().unwrap_or(&p.message);
            return Error::Selection {
                part: Part::Condition,
                given: format!("{}:{pred}", spec.name),
                message: format!(
                    "the predicate does not run in environment `{}`: {why}. Nothing was written; it is passed to the database as written, so use that database's language (SQL, or a filter document as Extended JSON on MongoDB) and the table's columns",
                    store.env()
                ),
            };
        }
    }
    e.into()
}

/// The next item of a stream of batches.
async fn next_item<T>(buf: &mut std::vec::IntoIter<T>, rx: &mut mpsc::Receiver<Result<Vec<T>>>) -> Result<Option<T>> {
    loop {
        if let Some(r) = buf.next() {
            return Ok(Some(r));
        }
        match rx.recv().await {
            Some(batch) => *buf = batch?.into_iter(),
            None => return Ok(None),
        }
    }
}

pub(super) fn check_order(env: &str, spec: &TableSpec, last: &mut Option<Vec<Value>>, key: &[Value]) -> Result<()> {
    if let Some(prev) = last {
        if spec.key_cmp(prev, key) != std::cmp::Ordering::Less {
            return Err(Error::Data(format!(
                "environment `{env}`, table `{}`: rows came out of key order ({} after {}); the key ({}) must be unique and of one type",
                spec.name,
                ferry_core::plan::key_label(key),
                ferry_core::plan::key_label(prev),
                spec.key.join(", ")
            )));
        }
    }
    *last = Some(key.to_vec());
    Ok(())
}
