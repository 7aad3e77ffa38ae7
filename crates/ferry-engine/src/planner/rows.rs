//! The rows every stage hands on. In: a raw row as a store returned it (and,
//! once stage 2 has run, the id mappings of natural-key tables). Out: a
//! [`SideRow`] (canonical, hashed, references rewritten through the id
//! mapping), and a [`Candidate`] (one key with both sides' rows, waiting to
//! be classified).

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::canonical::{key_text, RowHashes};
use ferry_core::plan::DeferredJson;
use ferry_core::spec::TableSpec;
use ferry_core::value::Value;
use ferry_db::raw::is_true;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::json_ids;

/// A row as one side holds it, canonical, with its hashes.
#[derive(Clone, Debug)]
pub struct SideRow {
    pub row: Vec<Value>,
    pub hashes: RowHashes,
    /// Reference columns holding the source key of a natural-key row the
    /// target does not have yet (resolved when the plan is applied).
    pub deferred: Vec<String>,
    /// Ids inside JSON columns naming such a row (their column is in
    /// `deferred` too).
    pub deferred_json: Vec<DeferredJson>,
}

/// A key seen on either side, waiting for classification.
#[derive(Clone)]
pub(super) struct Candidate {
    pub key: Vec<Value>,
    pub source: Option<SideRow>,
    pub target: Option<SideRow>,
    pub excluded: bool,
    pub explicit: bool,
    pub pulled_by: Option<String>,
    /// Natural-key tables: the matched target row's key.
    pub target_key: Option<Vec<Value>>,
    /// Natural-key tables: a target-only row, whose key is not a source
    /// key, so it has no sync base to look up.
    pub no_base: bool,
}

impl Candidate {
    /// A row met by a scan or a match (not named with `--id`, not pulled
    /// in), with the target key it was matched to, if any.
    pub(super) fn scanned(
        key: Vec<Value>,
        source: Option<SideRow>,
        target: Option<SideRow>,
        target_key: Option<Vec<Value>>,
        excluded: bool,
    ) -> Candidate {
        Candidate {
            key,
            source,
            target,
            excluded,
            explicit: false,
            pulled_by: None,
            target_key,
            no_base: false,
        }
    }
}

/// The id mapping of one natural-key table: source key text -> the matched
/// target key (`None`: a row the target lacks).
pub(super) type IdMap = HashMap<String, Option<Vec<Value>>>;

/// What turning a raw row into a [`SideRow`] needs, shareable with the
/// tasks that canonicalise and hash both sides of a scan in parallel.
#[derive(Clone, Default)]
pub(super) struct Sides {
    from: String,
    to: String,
    /// Natural-key tables: table -> source key text -> matched target key.
    natural: Arc<HashMap<String, IdMap>>,
}

impl Sides {
    pub(super) fn new(from: &str, to: &str) -> Sides {
        Sides {
            from: from.to_string(),
            to: to.to_string(),
            natural: Arc::new(HashMap::new()),
        }
    }

    /// Adds the id mapping of a table matched by natural key (or keyed by
    /// one): the rows read after this go through it.
    pub(super) fn add_map(&mut self, table: &str, map: IdMap) {
        let mut maps = (*self.natural).clone();
        maps.insert(table.to_string(), map);
        self.natural = Arc::new(maps);
    }

    /// Canonicalises a raw row of one side and hashes it. With `full`
    /// false only the row hash is computed (the merge compares that); the
    /// per-field hashes follow for the rows that differ ([`with_fields`]).
    pub(super) fn side(&self, spec: &TableSpec, env: &str, raw: Vec<Value>, full: bool) -> Result<SideRow> {
        let key: Vec<Value> = raw[..spec.key.len().min(raw.len())].to_vec();
        let mut row = spec
            .canonicalize_owned(raw)
            .map_err(|(col, e)| conv_err((&self.from, &self.to), spec, &key, env, &col, e))?;
        let mut deferred = Vec::new();
        let natural_refs = spec.references.values().any(|t| self.natural.contains_key(t));
        if natural_refs && env == self.from {
            // References to natural-key tables: the source id becomes the id
            // of the matched target row; a row the target lacks stays
            // deferred until the plan is applied.
            for (i, col) in spec.columns().iter().enumerate() {
                let Some(m) = spec.references.get(col).and_then(|t| self.natural.get(t)) else {
                    continue;
                };
                if row[i].is_null() {
                    continue;
                }
                match m.get(&key_text(std::slice::from_ref(&row[i]))) {
                    Some(Some(target_key)) => row[i] = target_key[0].clone(),
                    _ => deferred.push(col.clone()),
                }
            }
        }
        let deferred_json = if env == self.from && json_natural_refs(spec, |t| self.natural.contains_key(t)) {
            // Ids inside JSON columns, through the same mapping.
            json_ids::rewrite_json(spec, env, &mut row, &self.natural, &mut deferred)?
        } else {
            Vec::new()
        };
        let hashes = if full {
            spec.hash(&row)
        } else {
            RowHashes {
                row: spec.row_hash(&row),
                fields: Vec::new(),
            }
        };
        Ok(SideRow {
            row,
            hashes,
            deferred,
            deferred_json,
        })
    }

    /// Canonicalises and hashes a scan's batches on a task of its own, so
    /// the two sides of a merge use both cores. Rows carry whether they
    /// match `exclude` (the scan's extra flag column, on the side that
    /// evaluates it).
    pub(super) fn stream(
        self,
        mut rx: ferry_db::RowBatches,
        spec: Arc<TableSpec>,
        env: String,
    ) -> mpsc::Receiver<Result<Vec<(SideRow, bool)>>> {
        let (tx, out) = mpsc::channel(4);
        let n = spec.columns().len();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let converted = batch.map_err(Error::from).and_then(|rows| {
                    rows.into_iter()
                        .map(|mut raw| {
                            let excluded = is_true(raw.get(n));
                            raw.truncate(n);
                            Ok((self.side(&spec, &env, raw, false)?, excluded))
                        })
                        .collect::<Result<Vec<_>>>()
                });
                let failed = converted.is_err();
                if tx.send(converted).await.is_err() || failed {
                    return;
                }
            }
        });
        out
    }
}

pub(super) fn conv_err(
    (from, to): (&str, &str),
    spec: &TableSpec,
    key: &[Value],
    env: &str,
    col: &str,
    e: impl std::fmt::Display,
) -> Error {
    Error::Data(format!(
        "{from} -> {to}: environment `{env}`, table `{}`, key {}, column `{col}`: {e}. Nothing was written; fix the value (or the column type) and plan again",
        spec.name,
        ferry_core::plan::key_label(key),
    ))
}

/// Whether a table declares ids inside JSON that reference a table
/// `natural` says is matched by natural key.
pub(super) fn json_natural_refs(spec: &TableSpec, natural: impl Fn(&str) -> bool) -> bool {
    spec.json_references
        .values()
        .flat_map(|p| p.values())
        .any(|t| natural(t))
}

/// Adds the per-field hashes to a row hashed by row only.
pub(super) fn with_fields(spec: &TableSpec, side: &mut SideRow) {
    if side.hashes.fields.len() != spec.compared.len() {
        side.hashes = spec.hash(&side.row);
    }
}

/// Hashes rows of `spec` read raw from the target (in spec column order).
pub fn target_side(spec: &TableSpec, env: &str, raw: &[Value]) -> Result<SideRow> {
    let row = spec.canonicalize(raw).map_err(|(col, e)| {
        Error::Data(format!(
            "environment `{env}`, table `{}`, key {}, column `{col}`: {e}",
            spec.name,
            ferry_core::plan::key_label(&raw[..spec.key.len().min(raw.len())])
        ))
    })?;
    let hashes = spec.hash(&row);
    Ok(SideRow {
        row,
        hashes,
        deferred: Vec::new(),
        deferred_json: Vec::new(),
    })
}
