//! The fast merge of a full-table plan: both sides streamed in key order as
//! raw images ([`ferry_db::RawBatch`]), rows whose images are equal dropped
//! at once, and only the others handed to the planner, which classifies
//! them canonically: decoded from their images where the store says how
//! (SQLite's storage classes, PostgreSQL's and MySQL's binary values),
//! read again whole otherwise. The merge runs on a task of its own
//! ([`RawMerge::spawn`]), so reading goes on meanwhile.
//!
//! It applies when both environments run on the same engine and every
//! column the plan reads has the same declared type on both sides
//! ([`raw_comparable`]): then equal images mean equal values, and nothing
//! needs decoding, converting or hashing for the ~99% of rows that did not
//! change. Other pairs use the planner's canonical merge.

use std::cmp::Ordering;

use ferry_core::schema::TableSchema;
use ferry_core::spec::TableSpec;
use ferry_core::value::{key_cmp_with, Value};
use ferry_db::{RawBatch, RawBatches};

use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Whether the rows of `spec` can be compared by their raw images: both
/// sides on the same engine, and every key and compared column declared
/// alike. A carried column (a document's field order) is no column of
/// either schema, and is never compared: its cell only makes two images
/// differ, and those rows are compared canonically.
pub fn raw_comparable(same_engine: bool, spec: &TableSpec, source: &TableSchema, target: &TableSchema) -> bool {
    same_engine
        && spec
            .key
            .iter()
            .chain(&spec.compared)
            .all(|c| match (source.column(c), target.column(c)) {
                (Some(s), Some(t)) => s.declared.eq_ignore_ascii_case(&t.declared) && s.ty == t.ty,
                _ => false,
            })
}

/// One side of the merge: the batch being read and where.
struct Side {
    env: String,
    rx: RawBatches,
    batch: RawBatch,
    at: usize,
    /// The last key of the previous batch, to check the order across batches.
    last: Option<Vec<Value>>,
    /// Source rows received since the last [`Chunk`].
    read: u64,
}

impl Side {
    /// Makes a row current; false when the side is exhausted.
    async fn fill(&mut self, table: &str, key_cols: &[String], bson: &[bool]) -> Result<bool> {
        while self.at >= self.batch.len() {
            let Some(next) = self.rx.recv().await else {
                return Ok(false);
            };
            let next = next?;
            check_order(&self.env, table, (key_cols, bson), self.last.as_deref(), &next)?;
            if !next.is_empty() {
                self.last = Some(next.key(next.len() - 1).to_vec());
            }
            self.read += next.len() as u64;
            let done = std::mem::replace(&mut self.batch, next);
            self.rx.recycle(done);
            self.at = 0;
        }
        Ok(true)
    }

    fn key(&self) -> &[Value] {
        self.batch.key(self.at)
    }

    /// Moves the current row out: its key, and its cells when the image
    /// decodes.
    fn take(&mut self) -> Taken {
        let cells = self.rx.decode(self.batch.image(self.at));
        let key = self.batch.take_key(self.at);
        self.at += 1;
        Taken { key, cells }
    }
}

/// A row moved out of a batch.
struct Taken {
    key: Vec<Value>,
    cells: Option<Vec<Value>>,
}

impl Taken {
    /// The whole row (key, then cells), or `None` when it must be read again.
    fn into_row(self) -> Option<Vec<Value>> {
        let mut row = self.key;
        row.extend(self.cells?);
        Some(row)
    }
}

/// Refuses a batch whose keys are not strictly increasing (a key that is
/// not unique, or of mixed types): the merge would pair the wrong rows.
/// `bson` says which key columns are document fields (BSON order).
fn check_order(
    env: &str,
    table: &str,
    (key_cols, bson): (&[String], &[bool]),
    last: Option<&[Value]>,
    b: &RawBatch,
) -> Result<()> {
    let mut prev = last;
    for i in 0..b.len() {
        let key = b.key(i);
        if let Some(p) = prev {
            if key_cmp_with(p, key, |c| bson.get(c).copied().unwrap_or(false)) != Ordering::Less {
                return Err(Error::Data(format!(
                    "environment `{env}`, table `{table}`: rows came out of key order ({} after {}); the key ({}) must be unique and of one type",
                    ferry_core::plan::key_label(key),
                    ferry_core::plan::key_label(p),
                    key_cols.join(", ")
                )));
            }
        }
        prev = Some(key);
    }
    Ok(())
}

/// A key whose rows differ, exist on one side only, or whose source row
/// matches `exclude`.
pub(crate) struct Differing {
    /// The key as the scans decoded it.
    pub key: Vec<Value>,
    /// The rows (key, then the scanned columns) decoded from their images
    /// ([`ferry_db::RawBatches::decode`]); `None` when an image does not
    /// decode (a type or value the store leaves to sqlx) and the rows must
    /// be read again.
    pub rows: Option<DecodedRows>,
}

/// Both sides of a [`Differing`] key, as a fetch would have returned them.
pub(crate) struct DecodedRows {
    pub source: Option<Vec<Value>>,
    pub target: Option<Vec<Value>>,
    /// Whether the source row matched `exclude`.
    pub excluded: bool,
}

/// What the merge task sends: differing keys, and how many source rows it
/// read since the last chunk (for a progress bar).
pub(crate) struct Chunk {
    pub read: u64,
    pub rows: Vec<Differing>,
}

/// Differing keys per [`Chunk`], at most: the planner classifies them while
/// the merge reads on.
const CHUNK_ROWS: usize = 512;

/// A chunk goes out after this many source rows even with few differing
/// keys, so a progress bar moves.
const CHUNK_READ: u64 = 64 * 1024;

/// The merge of one table's two raw scans.
pub(crate) struct RawMerge {
    table: String,
    key_cols: Vec<String>,
    /// Which key columns are document fields, compared in BSON order
    /// ([`TableSpec::key_cmp`]).
    bson: Vec<bool>,
    source: Side,
    target: Side,
}

impl RawMerge {
    pub(crate) fn new(spec: &TableSpec, (from, src): (&str, RawBatches), (to, dst): (&str, RawBatches)) -> RawMerge {
        let side = |env: &str, rx| Side {
            env: env.to_string(),
            rx,
            batch: RawBatch::new(spec.key.len()),
            at: 0,
            last: None,
            read: 0,
        };
        RawMerge {
            table: spec.name.clone(),
            key_cols: spec.key.clone(),
            bson: spec
                .key
                .iter()
                .map(|c| spec.types.get(c).is_some_and(|t| t.extended_json))
                .collect(),
            source: side(from, src),
            target: side(to, dst),
        }
    }

    /// Runs the merge on a task of its own, so that reading both sides goes
    /// on while the planner reads and classifies the differing rows. The
    /// chunks end with the scans; an error is the last item.
    pub(crate) fn spawn(mut self) -> mpsc::Receiver<Result<Chunk>> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut rows = Vec::new();
            loop {
                let next = match self.next_differing().await {
                    Ok(next) => next,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let done = next.is_none();
                rows.extend(next);
                if done || rows.len() >= CHUNK_ROWS || self.source.read >= CHUNK_READ {
                    let read = std::mem::take(&mut self.source.read);
                    let chunk = Chunk {
                        read,
                        rows: std::mem::take(&mut rows),
                    };
                    if tx.send(Ok(chunk)).await.is_err() || done {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// The next key whose rows differ, exist on one side only, or whose
    /// source row matches `exclude`; `None` at the end of both scans.
    async fn next_differing(&mut self) -> Result<Option<Differing>> {
        loop {
            let s = self.source.fill(&self.table, &self.key_cols, &self.bson).await?;
            let t = self.target.fill(&self.table, &self.key_cols, &self.bson).await?;
            let ord = match (s, t) {
                (false, false) => return Ok(None),
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (true, true) => {
                    let bson = &self.bson;
                    key_cmp_with(self.source.key(), self.target.key(), |c| {
                        bson.get(c).copied().unwrap_or(false)
                    })
                }
            };
            let (source, target) = match ord {
                Ordering::Less => (true, false),
                Ordering::Greater => (false, true),
                Ordering::Equal => {
                    let (sb, tb) = (&self.source.batch, &self.target.batch);
                    let (i, j) = (self.source.at, self.target.at);
                    if !sb.flag(i) && sb.image(i) == tb.image(j) {
                        self.source.at += 1;
                        self.target.at += 1;
                        continue;
                    }
                    (true, true)
                }
            };
            let excluded = source && self.source.batch.flag(self.source.at);
            let source = source.then(|| self.source.take());
            let target = target.then(|| self.target.take());
            let key = source
                .as_ref()
                .or(target.as_ref())
                .map(|t| t.key.clone())
                .unwrap_or_default();
            let rows = match (source.map(Taken::into_row), target.map(Taken::into_row)) {
                (Some(None), _) | (_, Some(None)) => None,
                (source, target) => Some(DecodedRows {
                    source: source.flatten(),
                    target: target.flatten(),
                    excluded,
                }),
            };
            return Ok(Some(Differing { key, rows }));
        }
    }
}
