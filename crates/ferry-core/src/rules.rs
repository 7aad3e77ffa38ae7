//! The three-way rules of PRODUCT.md, per row and per field, on hashes only.
//!
//! | source vs base | target vs base | result |
//! | --- | --- | --- |
//! | unchanged | unchanged | nothing to do |
//! | changed | unchanged | insert / update / delete |
//! | unchanged | changed | skip: target is newer |
//! | changed | changed to the same | nothing to do |
//! | changed | changed differently | merge disjoint fields, else conflict |
//!
//! With no base (first contact) Ferry cannot tell which side changed a row
//! that differs: it is a conflict (`no-base`), decided with `--take`,
//! `--force`, or after a baseline. A row only in the source is inserted and
//! a row only in the target is left alone (`target-only`).

use crate::canonical::{FieldHash, RowHash, RowHashes, FIELD_HASH_LEN};

/// What Ferry recorded about a row at the last sync of this pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncBase {
    pub row: RowHash,
    /// Per compared column, in the spec's compared order. Empty or of
    /// another length when the compared columns changed since: then every
    /// field counts as changed.
    pub fields: Vec<FieldHash>,
    /// For tables matched by a natural key: the key text of the target row
    /// this source row is matched with (the stored id mapping).
    pub target_key: Option<String>,
}

impl SyncBase {
    pub fn of(h: &RowHashes) -> SyncBase {
        SyncBase {
            row: h.row,
            fields: h.fields.clone(),
            target_key: None,
        }
    }

    /// Field hashes packed end to end, for storage.
    pub fn packed_fields(&self) -> Vec<u8> {
        self.fields.concat()
    }

    pub fn unpack_fields(bytes: &[u8]) -> Vec<FieldHash> {
        bytes
            .chunks_exact(FIELD_HASH_LEN)
            .map(|c| {
                let mut h = [0u8; FIELD_HASH_LEN];
                h.copy_from_slice(c);
                h
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Equal, or both sides made the same change.
    Nothing,
    Insert,
    /// Write these compared fields (indices into the spec's compared columns).
    Update {
        fields: Vec<usize>,
        merged: bool,
    },
    Delete,
    /// The target changed and the source did not (or the row is only in
    /// the target with no base).
    SkipTargetNewer,
    SkipTargetOnly,
    /// Both sides changed: these fields overlap (empty for a delete on one
    /// side and a change on the other).
    Conflict {
        kind: ConflictKind,
        fields: Vec<usize>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    BothChanged,
    /// Deleted in the target, changed in the source.
    DeletedInTarget,
    /// Deleted in the source, changed in the target.
    DeletedInSource,
    /// First contact: the row differs and there is no sync base, so which
    /// side changed it is unknown (the same id may hold unrelated rows).
    NoBase,
}

/// Indices of the fields whose hashes differ.
pub fn differing(a: &[FieldHash], b: &[FieldHash], n: usize) -> Vec<usize> {
    (0..n).filter(|&i| a.get(i) != b.get(i) || a.get(i).is_none()).collect()
}

/// Applies the rule table to one row.
pub fn decide(source: Option<&RowHashes>, target: Option<&RowHashes>, base: Option<&SyncBase>) -> Decision {
    match (source, target, base) {
        (None, None, _) => Decision::Nothing,
        (Some(_), None, None) => Decision::Insert,
        (Some(s), None, Some(b)) => {
            if s.row == b.row {
                // The target deleted it; the source did not change it.
                Decision::SkipTargetNewer
            } else {
                Decision::Conflict {
                    kind: ConflictKind::DeletedInTarget,
                    fields: Vec::new(),
                }
            }
        }
        (None, Some(_), None) => Decision::SkipTargetOnly,
        (None, Some(t), Some(b)) => {
            if t.row == b.row {
                Decision::Delete
            } else {
                Decision::Conflict {
                    kind: ConflictKind::DeletedInSource,
                    fields: Vec::new(),
                }
            }
        }
        (Some(s), Some(t), base) => {
            if s.row == t.row {
                return Decision::Nothing;
            }
            let n = s.fields.len();
            let diff = differing(&s.fields, &t.fields, n);
            let Some(b) = base else {
                return Decision::Conflict {
                    kind: ConflictKind::NoBase,
                    fields: diff,
                };
            };
            let source_changed = s.row != b.row;
            let target_changed = t.row != b.row;
            match (source_changed, target_changed) {
                (false, false) => Decision::Nothing, // unreachable: s == b == t
                (true, false) => Decision::Update {
                    fields: diff,
                    merged: false,
                },
                (false, true) => Decision::SkipTargetNewer,
                (true, true) => {
                    let s_changed = differing(&s.fields, &b.fields, n);
                    let t_changed = differing(&t.fields, &b.fields, n);
                    let overlap: Vec<usize> = s_changed
                        .iter()
                        .copied()
                        .filter(|i| t_changed.contains(i) && s.fields[*i] != t.fields[*i])
                        .collect();
                    if overlap.is_empty() {
                        let fields: Vec<usize> = s_changed.into_iter().filter(|i| diff.contains(i)).collect();
                        if fields.is_empty() {
                            Decision::SkipTargetNewer
                        } else {
                            Decision::Update { fields, merged: true }
                        }
                    } else {
                        Decision::Conflict {
                            kind: ConflictKind::BothChanged,
                            fields: overlap,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::hash_row;
    use crate::value::Value;
    use proptest::prelude::*;

    const COLS: [&str; 3] = ["a", "b", "c"];

    fn h(row: &[i64; 3]) -> RowHashes {
        let vals: Vec<Value> = row.iter().map(|v| Value::Int(*v)).collect();
        hash_row(COLS.iter().copied().zip(vals.iter()))
    }

    /// Applies a decision to the target the way the engine does, returning
    /// the target afterwards (None = absent).
    fn apply(d: &Decision, s: Option<[i64; 3]>, t: Option<[i64; 3]>) -> Option<[i64; 3]> {
        match d {
            Decision::Insert => s,
            Decision::Delete => None,
            Decision::Update { fields, .. } => {
                let (s, mut t) = (s.unwrap(), t.unwrap());
                for &i in fields {
                    t[i] = s[i];
                }
                Some(t)
            }
            _ => t,
        }
    }

    fn row() -> impl Strategy<Value = Option<[i64; 3]>> {
        proptest::option::of(proptest::array::uniform3(0i64..3))
    }

    proptest! {
        /// The rule table, checked against a plain statement of it.
        #[test]
        fn rules_hold(b in row(), s in row(), t in row()) {
            let (hs, ht, hb) = (s.map(|r| h(&r)), t.map(|r| h(&r)), b.map(|r| SyncBase::of(&h(&r))));
            let d = decide(hs.as_ref(), ht.as_ref(), hb.as_ref());
            let after = apply(&d, s, t);
            match (b, s, t) {
                (_, s, t) if s == t => prop_assert_eq!(d, Decision::Nothing),
                (None, Some(_), None) => prop_assert_eq!(after, s),
                (None, None, Some(_)) => prop_assert_eq!(d, Decision::SkipTargetOnly),
                (None, Some(_), Some(_)) => {
                    // First contact: never overwritten without a decision.
                    prop_assert!(matches!(d, Decision::Conflict { kind: ConflictKind::NoBase, .. }), "{:?}", d);
                    prop_assert_eq!(after, t);
                }
                (Some(b), s, t) if s == Some(b) => {
                    // Only the target changed: never overwritten.
                    prop_assert_eq!(d, Decision::SkipTargetNewer);
                    prop_assert_eq!(after, t);
                }
                (Some(b), s, t) if t == Some(b) => prop_assert_eq!(after, s),
                (Some(b), Some(s), Some(t)) => {
                    let overlap = (0..3).any(|i| s[i] != b[i] && t[i] != b[i] && s[i] != t[i]);
                    if overlap {
                        prop_assert!(matches!(d, Decision::Conflict { kind: ConflictKind::BothChanged, .. }), "{:?}", d);
                        prop_assert_eq!(after, Some(t));
                    } else {
                        // Merged: every field takes whichever side changed it.
                        let want: [i64; 3] = std::array::from_fn(|i| if s[i] != b[i] { s[i] } else { t[i] });
                        prop_assert_eq!(after, Some(want));
                    }
                }
                (Some(_), _, _) => {
                    // A delete on one side, a change on the other.
                    prop_assert!(matches!(d, Decision::Conflict { .. }), "{:?}", d);
                    prop_assert_eq!(after, t);
                }
                (None, None, None) => prop_assert_eq!(d, Decision::Nothing),
            }
        }
    }
}
