//! What every stage after the natural-key mapping reads and none changes.
//! In: the pair, whether the target holds Ferry's own tables, stage 2's
//! [`Matched`], and whether equal rows are wanted. Out: [`Ctx`], lent to
//! the scan, classify, closure and annotate stages (and the tables read
//! changed-only, from [`super::changed`]).

use std::collections::HashMap;

use ferry_core::spec::TableSpec;
use ferry_core::value::Value;

use super::changed::ChangedRead;
use super::natural::{Matched, NaturalMatch};
use super::rows::{SideRow, Sides};
use crate::error::Result;
use crate::pair::Pair;
use crate::progress::Progress;

pub(super) struct Ctx<'a> {
    pub pair: &'a Pair,
    /// Whether the target has Ferry's own tables (else there is no sync
    /// base and no journal to read).
    pub has_meta: bool,
    /// Natural-key tables and the tables keyed by them, matched once per
    /// plan.
    pub natural: HashMap<String, NaturalMatch>,
    /// Turns raw rows into [`SideRow`]s, through the id mappings.
    pub sides: Sides,
    /// Whether the rows equal on both sides are reported (a baseline).
    pub keep_equal: bool,
    /// Tables read changed-only, with their bounds (`changed`).
    pub changed: HashMap<String, ChangedRead>,
    pub progress: Progress,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        pair: &'a Pair,
        has_meta: bool,
        matched: Matched,
        keep_equal: bool,
        changed: HashMap<String, ChangedRead>,
        progress: Progress,
    ) -> Ctx<'a> {
        Ctx {
            pair,
            has_meta,
            natural: matched.matches,
            sides: matched.sides,
            keep_equal,
            changed,
            progress,
        }
    }

    /// Canonicalises a raw row of one side and hashes it (see
    /// [`Sides::side`]).
    pub(super) fn side(&self, spec: &TableSpec, env: &str, raw: Vec<Value>, full: bool) -> Result<SideRow> {
        self.sides.side(spec, env, raw, full)
    }

    /// Whether `table` is matched by natural key (or keyed by such a table).
    pub(super) fn is_natural(&self, table: &str) -> bool {
        self.natural.contains_key(table)
    }
}
