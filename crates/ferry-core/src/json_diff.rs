//! The difference of two JSON values, path by path, for people reviewing a
//! change of a JSON column (a CMS body, a settings blob): which paths were
//! added, removed or changed, instead of two whole documents.
//!
//! Rendering lives in the front ends; this module only computes the changes
//! ([`diff`]), names their paths ([`path_text`]) and can apply them again
//! ([`apply`], which is how the tests prove nothing is lost).
//!
//! Paths (written down in docs/commands.md):
//! - the value itself is `$` (front ends print the column name instead);
//! - an object key is `.key` when it is an identifier (`[A-Za-z_][A-Za-z0-9_]*`),
//!   else `["a b"]` (a JSON string);
//! - an array element is `[i]`.
//!
//! Arrays are aligned with a longest common subsequence of equal elements,
//! so one block inserted in the middle of a list shows as one addition, not
//! as a change of every later element. Between two aligned elements, the
//! elements that differ are paired in order when they are of the same kind
//! (both objects with the same `"type"` member, both arrays, or both
//! scalars), and a pair is compared path by path; the rest are added or
//! removed. When the parts of two arrays that differ (after their common
//! beginning and end) hold more than [`LCS_CELLS`] pairs of elements, they
//! are compared index by index instead, which bounds the work.
//!
//! An index in a path is the element's position in the **new** value, except
//! for the last index of a removal, which is the removed element's position
//! in the **old** value.

use serde_json::{Map, Value as J};

use crate::value::{ColumnType, LogicalType, Value};

/// Above this many pairs of differing elements (the product of the two
/// lengths: what the alignment costs in time and memory), arrays are
/// compared index by index.
pub const LCS_CELLS: usize = 1_000_000;

/// Whether arrays of `n` and `m` differing elements are too long to align.
fn too_long(n: usize, m: usize) -> bool {
    n.saturating_mul(m) > LCS_CELLS
}

/// A cell as a JSON document when it is one: a JSON value, text in a
/// column declared JSON (`declared_json`) that parses as JSON, or text that
/// parses as a JSON object or array whatever the column (frameworks such as
/// Django keep JSON in plain `text` columns on SQLite). Anything else is
/// not a document and is shown whole.
pub fn document(v: &Value, declared_json: bool) -> Option<J> {
    match v {
        Value::Json(j) => Some(j.value().clone()),
        Value::Text(t) if declared_json => serde_json::from_str(t).ok(),
        Value::Text(t) if t.trim_start().starts_with(['{', '[']) => serde_json::from_str::<J>(t)
            .ok()
            .filter(|j| j.is_object() || j.is_array()),
        _ => None,
    }
}

/// Whether `column` of a table whose columns have `types` (a plan's
/// `specs[table].types` or `target_types`) is declared JSON.
pub fn declared_json<'a>(types: impl IntoIterator<Item = Option<&'a ColumnType>>) -> bool {
    types.into_iter().flatten().any(|t| t.logical == LogicalType::Json)
}

/// One step of a path: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// What happened at a path.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Only the new value has it.
    Added(J),
    /// Only the old value has it.
    Removed(J),
    /// Both have it, with different values (of different kinds, or scalars).
    Changed { old: J, new: J },
}

/// One changed path.
#[derive(Clone, Debug, PartialEq)]
pub struct PathChange {
    pub path: Vec<Step>,
    pub change: Change,
}

impl PathChange {
    /// The value the old document has at this path, if any.
    pub fn old(&self) -> Option<&J> {
        match &self.change {
            Change::Added(_) => None,
            Change::Removed(v) | Change::Changed { old: v, .. } => Some(v),
        }
    }

    /// The value the new document has at this path, if any.
    pub fn new_value(&self) -> Option<&J> {
        match &self.change {
            Change::Removed(_) => None,
            Change::Added(v) | Change::Changed { new: v, .. } => Some(v),
        }
    }

    /// `added`, `removed` or `changed`.
    pub fn kind(&self) -> &'static str {
        match self.change {
            Change::Added(_) => "added",
            Change::Removed(_) => "removed",
            Change::Changed { .. } => "changed",
        }
    }
}

/// A path in the documented notation, after `root` (`$`, or a column name).
pub fn path_text(root: &str, path: &[Step]) -> String {
    let mut out = root.to_string();
    for step in path {
        match step {
            Step::Key(k) if is_identifier(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Key(k) => {
                out.push('[');
                out.push_str(&J::String(k.clone()).to_string());
                out.push(']');
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn is_identifier(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every path at which `old` and `new` differ, in document order (the new
/// value's order; removed object keys after the kept ones). Empty when they
/// are equal.
pub fn diff(old: &J, new: &J) -> Vec<PathChange> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(old, new, &mut path, &mut out);
    out
}

fn walk(old: &J, new: &J, path: &mut Vec<Step>, out: &mut Vec<PathChange>) {
    if old == new {
        return;
    }
    match (old, new) {
        (J::Object(a), J::Object(b)) => objects(a, b, path, out),
        (J::Array(a), J::Array(b)) => arrays(a, b, path, out),
        _ => out.push(PathChange {
            path: path.clone(),
            change: Change::Changed {
                old: old.clone(),
                new: new.clone(),
            },
        }),
    }
}

fn objects(a: &Map<String, J>, b: &Map<String, J>, path: &mut Vec<Step>, out: &mut Vec<PathChange>) {
    for (k, nv) in b {
        path.push(Step::Key(k.clone()));
        match a.get(k) {
            Some(ov) => walk(ov, nv, path, out),
            None => out.push(PathChange {
                path: path.clone(),
                change: Change::Added(nv.clone()),
            }),
        }
        path.pop();
    }
    for (k, ov) in a {
        if !b.contains_key(k) {
            path.push(Step::Key(k.clone()));
            out.push(PathChange {
                path: path.clone(),
                change: Change::Removed(ov.clone()),
            });
            path.pop();
        }
    }
}

fn arrays(a: &[J], b: &[J], path: &mut Vec<Step>, out: &mut Vec<PathChange>) {
    // The common beginning and end cost nothing to align.
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let pairs = if too_long(ma.len(), mb.len()) {
        Vec::new()
    } else {
        lcs(ma, mb)
    };
    // Walk the gaps between aligned elements (and after the last one).
    let (mut i, mut j) = (0, 0);
    for (pi, pj) in pairs.into_iter().chain(std::iter::once((ma.len(), mb.len()))) {
        gap(&ma[i..pi], &mb[j..pj], prefix + i, prefix + j, path, out);
        i = pi + 1;
        j = pj + 1;
    }
}

/// The elements between two aligned ones. Elements of the same kind (both
/// objects with the same `"type"`, both arrays, both scalars) are paired in
/// order, aligned like the elements themselves, and compared path by path;
/// the rest are added or removed. `at_old`/`at_new`: where the gap starts in
/// each array.
fn gap(a: &[J], b: &[J], at_old: usize, at_new: usize, path: &mut Vec<Step>, out: &mut Vec<PathChange>) {
    let pairs = if too_long(a.len(), b.len()) {
        // Too long to align: index by index.
        (0..a.len().min(b.len())).map(|k| (k, k)).collect()
    } else {
        let (ka, kb): (Vec<Kind>, Vec<Kind>) = (a.iter().map(kind).collect(), b.iter().map(kind).collect());
        lcs(&ka, &kb)
    };
    let (mut i, mut j) = (0, 0);
    for (pi, pj) in pairs.into_iter().chain(std::iter::once((a.len(), b.len()))) {
        for (k, v) in b.iter().enumerate().take(pj).skip(j) {
            path.push(Step::Index(at_new + k));
            out.push(PathChange {
                path: path.clone(),
                change: Change::Added(v.clone()),
            });
            path.pop();
        }
        for (k, v) in a.iter().enumerate().take(pi).skip(i) {
            path.push(Step::Index(at_old + k));
            out.push(PathChange {
                path: path.clone(),
                change: Change::Removed(v.clone()),
            });
            path.pop();
        }
        if pi < a.len() {
            path.push(Step::Index(at_new + pj));
            walk(&a[pi], &b[pj], path, out);
            path.pop();
        }
        i = pi + 1;
        j = pj + 1;
    }
}

/// What [`gap`] pairs elements by.
#[derive(PartialEq)]
enum Kind<'a> {
    Scalar,
    Array,
    Object(Option<&'a str>),
}

fn kind(v: &J) -> Kind<'_> {
    match v {
        J::Array(_) => Kind::Array,
        J::Object(m) => Kind::Object(m.get("type").and_then(J::as_str)),
        _ => Kind::Scalar,
    }
}

/// The index pairs of a longest common subsequence of equal elements.
fn lcs<T: PartialEq>(a: &[T], b: &[T]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return Vec::new();
    }
    // len[i][j]: LCS length of a[i..] and b[j..].
    let mut len = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[at(i, j)] = if a[i] == b[j] {
                len[at(i + 1, j + 1)] + 1
            } else {
                len[at(i + 1, j)].max(len[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut pairs) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if len[at(i + 1, j)] >= len[at(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Why [`apply`] could not apply a change.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("cannot apply the change at {path}: {why}")]
pub struct ApplyError {
    pub path: String,
    pub why: String,
}

/// `old` with `changes` (as [`diff`] reports them) applied: the new value.
pub fn apply(old: &J, changes: &[PathChange]) -> Result<J, ApplyError> {
    let refs: Vec<Pending> = changes.iter().map(|c| (c.path.as_slice(), &c.change)).collect();
    apply_at(old, &refs, &mut Vec::new())
}

/// A change still to apply: its path below the value at hand.
type Pending<'a> = (&'a [Step], &'a Change);

fn fail(path: &[Step], why: &str) -> ApplyError {
    ApplyError {
        path: path_text("$", path),
        why: why.to_string(),
    }
}

fn apply_at(value: &J, changes: &[Pending], here: &mut Vec<Step>) -> Result<J, ApplyError> {
    // No change here: the value stays, whatever it is (a scalar included).
    if changes.is_empty() {
        return Ok(value.clone());
    }
    if let Some((_, change)) = changes.iter().find(|(p, _)| p.is_empty()) {
        return match change {
            Change::Changed { new, .. } if changes.len() == 1 => Ok(new.clone()),
            _ => Err(fail(here, "a whole-value change must be the only change there")),
        };
    }
    match value {
        J::Object(map) => {
            let mut map = map.clone();
            let mut deeper: Vec<(String, Vec<Pending>)> = Vec::new();
            for (p, change) in changes {
                let Step::Key(k) = &p[0] else {
                    return Err(fail(here, "an index into an object"));
                };
                if p.len() == 1 {
                    match change {
                        Change::Added(v) | Change::Changed { new: v, .. } => {
                            map.insert(k.clone(), v.clone());
                        }
                        Change::Removed(_) => {
                            if map.remove(k).is_none() {
                                return Err(fail(here, &format!("no key {k} to remove")));
                            }
                        }
                    }
                } else {
                    match deeper.iter_mut().find(|(dk, _)| dk == k) {
                        Some((_, list)) => list.push((&p[1..], change)),
                        None => deeper.push((k.clone(), vec![(&p[1..], change)])),
                    }
                }
            }
            for (k, list) in deeper {
                here.push(Step::Key(k.clone()));
                let inner = map.get(&k).ok_or_else(|| fail(here, "no such key"))?;
                let v = apply_at(inner, &list, here)?;
                here.pop();
                map.insert(k, v);
            }
            Ok(J::Object(map))
        }
        J::Array(items) => {
            let (mut removed, mut added, mut replaced) = (Vec::new(), Vec::new(), Vec::new());
            let mut deeper: Vec<(usize, Vec<Pending>)> = Vec::new();
            for (p, change) in changes {
                let Step::Index(i) = p[0] else {
                    return Err(fail(here, "a key into an array"));
                };
                match (p.len(), change) {
                    (1, Change::Removed(_)) => removed.push(i),
                    (1, Change::Added(v)) => added.push((i, v)),
                    (1, Change::Changed { new, .. }) => replaced.push((i, new)),
                    _ => match deeper.iter_mut().find(|(di, _)| *di == i) {
                        Some((_, list)) => list.push((&p[1..], change)),
                        None => deeper.push((i, vec![(&p[1..], change)])),
                    },
                }
            }
            // Old positions of removals; the survivors keep their order.
            let mut kept = items
                .iter()
                .enumerate()
                .filter(|(i, _)| !removed.contains(i))
                .map(|(_, v)| v.clone());
            if removed.iter().any(|&i| i >= items.len()) {
                return Err(fail(here, "a removal past the end"));
            }
            // New positions of additions: the rest are the survivors.
            let len = items.len() - removed.len() + added.len();
            let mut out = Vec::with_capacity(len);
            for i in 0..len {
                match added.iter().find(|(ai, _)| *ai == i) {
                    Some((_, v)) => out.push((*v).clone()),
                    None => out.push(kept.next().ok_or_else(|| fail(here, "fewer elements than expected"))?),
                }
            }
            if kept.next().is_some() {
                return Err(fail(here, "more elements than expected"));
            }
            for (i, v) in replaced {
                *out.get_mut(i).ok_or_else(|| fail(here, "a change past the end"))? = v.clone();
            }
            for (i, list) in deeper {
                here.push(Step::Index(i));
                let inner = out.get(i).ok_or_else(|| fail(here, "no such element"))?;
                let v = apply_at(inner, &list, here)?;
                here.pop();
                out[i] = v;
            }
            Ok(J::Array(out))
        }
        _ => Err(fail(here, "a path into a scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn lines(old: J, new: J) -> Vec<String> {
        diff(&old, &new)
            .iter()
            .map(|c| {
                let p = path_text("body", &c.path);
                match &c.change {
                    Change::Added(v) => format!("{p}: (added) {v}"),
                    Change::Removed(v) => format!("{p}: (removed) {v}"),
                    Change::Changed { old, new } => format!("{p}: {old} -> {new}"),
                }
            })
            .collect()
    }

    #[test]
    fn documents_are_json_values_or_text_declared_json() {
        let text = Value::Text(r#"{"a": [1]}"#.into());
        assert_eq!(document(&text, true), Some(json!({"a": [1]})));
        assert_eq!(
            document(&text, false),
            Some(json!({"a": [1]})),
            "an object or array in plain text is a document too"
        );
        assert_eq!(
            document(&Value::Text("\"s\"".into()), false),
            None,
            "a scalar in text is text"
        );
        assert_eq!(document(&Value::Text("[not json".into()), false), None);
        assert_eq!(document(&Value::Text("not json".into()), true), None);
        assert_eq!(document(&Value::Json(json!([1]).into()), false), Some(json!([1])));
        assert_eq!(document(&Value::Int(1), true), None);
    }

    #[test]
    fn equal_values_have_no_changes() {
        let v = json!({"a": [1, {"b": null}], "c": "x"});
        assert!(diff(&v, &v).is_empty());
    }

    #[test]
    fn a_nested_text_change_is_one_path() {
        let old = json!([{"type": "text", "value": {"text": "Old words"}}]);
        let new = json!([{"type": "text", "value": {"text": "New words"}}]);
        assert_eq!(
            lines(old, new),
            vec![r#"body[0].value.text: "Old words" -> "New words""#]
        );
    }

    #[test]
    fn a_block_inserted_in_the_middle_is_one_addition() {
        let old = json!(["a", "b", "c", "d"]);
        let new = json!(["a", "x", "b", "c", "d"]);
        assert_eq!(lines(old, new), vec![r#"body[1]: (added) "x""#]);
    }

    #[test]
    fn removals_name_the_old_position_and_changes_the_new_one() {
        let old = json!([1, 2, {"t": "a"}, 4]);
        let new = json!([1, {"t": "b"}, 4]);
        assert_eq!(
            lines(old.clone(), new.clone()),
            vec!["body[1]: (removed) 2", r#"body[1].t: "a" -> "b""#]
        );
        assert_eq!(apply(&old, &diff(&old, &new)), Ok(new));
    }

    #[test]
    fn keys_that_are_not_identifiers_are_quoted() {
        let old = json!({"meta": {"tags": ["draft"], "a b": 1, "9x": true}});
        let new = json!({"meta": {"tags": [], "a b": 2}});
        assert_eq!(
            lines(old, new),
            vec![
                r#"body.meta.tags[0]: (removed) "draft""#,
                r#"body.meta["a b"]: 1 -> 2"#,
                r#"body.meta["9x"]: (removed) true"#,
            ]
        );
    }

    #[test]
    fn a_change_of_kind_is_the_whole_value() {
        assert_eq!(lines(json!({"a": 1}), json!([1])), vec![r#"body: {"a":1} -> [1]"#]);
    }

    #[test]
    fn long_arrays_beyond_the_limit_are_compared_by_index() {
        let n = 1001;
        assert!(too_long(n, n + 2));
        let old: Vec<J> = (0..n).map(|i| json!(i)).collect();
        let mut new = old.clone();
        new.insert(0, json!("first"));
        new.push(json!("last"));
        let (old, new) = (J::Array(old), J::Array(new));
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), n + 2, "every index changed, nothing dropped");
        assert_eq!(apply(&old, &changes), Ok(new));
    }

    fn any_json() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::Bool),
            (-3i64..3).prop_map(|i| json!(i)),
            "[ab ]{0,2}".prop_map(J::String),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
                prop::collection::vec(("type|[ab9 ]{1,2}", inner), 0..5)
                    .prop_map(|kv| J::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn applying_the_changes_to_the_old_value_gives_the_new(old in any_json(), new in any_json()) {
            let changes = diff(&old, &new);
            prop_assert_eq!(apply(&old, &changes), Ok(new.clone()));
            prop_assert_eq!(changes.is_empty(), old == new);
        }

        #[test]
        fn a_value_has_no_changes_against_itself(v in any_json()) {
            prop_assert!(diff(&v, &v).is_empty());
            prop_assert_eq!(apply(&v, &[]), Ok(v.clone()));
        }

        #[test]
        fn an_edited_value_round_trips(old in any_json(), edit in any_json()) {
            // Values that share most of their structure: one part replaced.
            let new = match &old {
                J::Array(items) if !items.is_empty() => {
                    let mut items = items.clone();
                    items.insert(items.len() / 2, edit);
                    J::Array(items)
                }
                J::Object(map) => {
                    let mut map = map.clone();
                    map.insert("b".into(), edit);
                    J::Object(map)
                }
                _ => json!([old.clone(), edit]),
            };
            prop_assert_eq!(apply(&old, &diff(&old, &new)), Ok(new));
        }
    }
}
