//! The rows the planner compares: a row as one side holds it, canonical
//! and hashed ([`SideRow`]), and a key with both sides' rows waiting to be
//! classified ([`Candidate`]).

use ferry_core::canonical::RowHashes;
use ferry_core::plan::DeferredJson;
use ferry_core::value::Value;

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
pub(crate) struct Candidate {
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
    pub(crate) fn natural(
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
