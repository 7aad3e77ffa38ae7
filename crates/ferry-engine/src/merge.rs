//! The fast merge of a full-table plan: both sides streamed in key order as
//! raw images ([`ferry_db::RawBatch`]), rows whose images are equal dropped
//! at once, and only the keys of the others handed to the planner, which
//! reads those rows again whole and classifies them canonically.
//!
//! It applies when both environments run on the same engine and every
//! column the plan reads has the same declared type on both sides
//! ([`raw_comparable`]): then equal images mean equal values, and nothing
//! needs decoding, converting or hashing for the ~99% of rows that did not
//! change. Other pairs use the canonical merge of [`crate::planner`].

use std::cmp::Ordering;

use ferry_core::schema::TableSchema;
use ferry_core::spec::TableSpec;
use ferry_core::value::{key_cmp, Value};
use ferry_db::{RawBatch, RawBatches};

use crate::error::{Error, Result};

/// Whether the rows of `spec` can be compared by their raw images: both
/// sides on the same engine, and every key and compared column declared
/// alike.
pub fn raw_comparable(same_engine: bool, spec: &TableSpec, source: &TableSchema, target: &TableSchema) -> bool {
    same_engine
        && spec
            .columns()
            .iter()
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
    /// Rows received since [`RawMerge::take_read`] last asked.
    read: u64,
}

impl Side {
    /// Makes a row current; false when the side is exhausted.
    async fn fill(&mut self, table: &str, key_cols: &[String]) -> Result<bool> {
        while self.at >= self.batch.len() {
            let Some(next) = self.rx.recv().await else {
                return Ok(false);
            };
            let next = next?;
            check_order(&self.env, table, key_cols, self.last.as_deref(), &next)?;
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

    fn take(&mut self) -> Vec<Value> {
        let key = self.batch.take_key(self.at);
        self.at += 1;
        key
    }
}

/// Refuses a batch whose keys are not strictly increasing (a key that is
/// not unique, or of mixed types): the merge would pair the wrong rows.
fn check_order(env: &str, table: &str, key_cols: &[String], last: Option<&[Value]>, b: &RawBatch) -> Result<()> {
    let mut prev = last;
    for i in 0..b.len() {
        let key = b.key(i);
        if let Some(p) = prev {
            if key_cmp(p, key) != Ordering::Less {
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

/// The merge of one table's two raw scans.
pub(crate) struct RawMerge {
    table: String,
    key_cols: Vec<String>,
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
            source: side(from, src),
            target: side(to, dst),
        }
    }

    /// How many source rows arrived since the last call (for a progress bar).
    pub(crate) fn take_read(&mut self) -> u64 {
        std::mem::take(&mut self.source.read)
    }

    /// The next key (as the scans decoded it) whose rows differ, exist on
    /// one side only, or whose source row matches `exclude`; `None` at the
    /// end of both scans.
    pub(crate) async fn next_differing(&mut self) -> Result<Option<Vec<Value>>> {
        loop {
            let s = self.source.fill(&self.table, &self.key_cols).await?;
            let t = self.target.fill(&self.table, &self.key_cols).await?;
            let ord = match (s, t) {
                (false, false) => return Ok(None),
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (true, true) => key_cmp(self.source.key(), self.target.key()),
            };
            match ord {
                Ordering::Less => return Ok(Some(self.source.take())),
                Ordering::Greater => return Ok(Some(self.target.take())),
                Ordering::Equal => {
                    let (sb, tb) = (&self.source.batch, &self.target.batch);
                    let (i, j) = (self.source.at, self.target.at);
                    let differ = sb.flag(i) || sb.image(i) != tb.image(j);
                    self.target.at += 1;
                    if differ {
                        return Ok(Some(self.source.take()));
                    }
                    self.source.at += 1;
                }
            }
        }
    }
}
