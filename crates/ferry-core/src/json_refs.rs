//! References inside a JSON column (`json_references`): the paths Ferry
//! understands, and the ids found at them.
//!
//! The supported path syntax is a small subset of JSONPath: `$` followed by
//! object members (`.name`, letters, digits and `_` only) and array
//! elements (`[0]`, or `[*]` for every element). Nothing else (no filters,
//! no recursive descent, no quoted members) is accepted.

use std::fmt;

use crate::value::Value;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Member(String),
    Index(usize),
    Every,
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath(pub Vec<Step>);

/// Why a path is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError(pub String);

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const SUPPORTED: &str =
    "supported: `$` followed by `.member` (letters, digits, `_`), `[N]` (one array element) or `[*]` (every element), e.g. \"$.content_type\" or \"$.blocks[*].id\"";

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        let bad = |why: &str| PathError(format!("JSON path `{text}`: {why}; {SUPPORTED}"));
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(bad("a path starts with `$`"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() {
                    return Err(bad("a `.` is followed by a member name"));
                }
                if !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(bad(&format!(
                        "member `{name}` has characters other than letters, digits and `_`"
                    )));
                }
                steps.push(Step::Member(name.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Err(bad("a `[` is closed by `]`"));
                };
                let inner = &r[..end];
                if inner == "*" {
                    steps.push(Step::Every);
                } else if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit()) {
                    let n = inner
                        .parse()
                        .map_err(|_| bad(&format!("index `{inner}` is too large")))?;
                    steps.push(Step::Index(n));
                } else {
                    return Err(bad(&format!("`[{inner}]` is not an array index nor `[*]`")));
                }
                rest = &r[end + 1..];
            } else {
                return Err(bad(&format!("unexpected `{rest}`")));
            }
        }
        if steps.is_empty() {
            return Err(bad("`$` alone is the whole value, not an id inside it"));
        }
        Ok(JsonPath(steps))
    }

    /// Calls `f` with the concrete path (`$.a[2].b`) and the value of every
    /// place the path names that exists and is not null.
    pub fn visit_mut(&self, root: &mut serde_json::Value, f: &mut dyn FnMut(&str, &mut serde_json::Value)) {
        walk(&self.0, root, "$".to_string(), f);
    }

    /// Like [`JsonPath::visit_mut`], read-only.
    pub fn visit(&self, root: &serde_json::Value, f: &mut dyn FnMut(&str, &serde_json::Value)) {
        let mut copy = root.clone();
        self.visit_mut(&mut copy, &mut |p, v| f(p, v));
    }
}

fn walk(steps: &[Step], v: &mut serde_json::Value, at: String, f: &mut dyn FnMut(&str, &mut serde_json::Value)) {
    let Some((first, rest)) = steps.split_first() else {
        if !v.is_null() {
            f(&at, v);
        }
        return;
    };
    match (first, v) {
        (Step::Member(m), serde_json::Value::Object(o)) => {
            if let Some(x) = o.get_mut(m) {
                walk(rest, x, format!("{at}.{m}"), f);
            }
        }
        (Step::Index(i), serde_json::Value::Array(a)) => {
            if let Some(x) = a.get_mut(*i) {
                walk(rest, x, format!("{at}[{i}]"), f);
            }
        }
        (Step::Every, serde_json::Value::Array(a)) => {
            for (i, x) in a.iter_mut().enumerate() {
                walk(rest, x, format!("{at}[{i}]"), f);
            }
        }
        // Absent (or another shape): nothing to rewrite.
        _ => {}
    }
}

/// The id a JSON value holds: an integer, or a string (an integer in a
/// string is read as the integer). `None`: neither.
pub fn id_of(j: &serde_json::Value) -> Option<Value> {
    match j {
        serde_json::Value::Number(n) => n.as_i64().map(Value::Int),
        serde_json::Value::String(s) => Some(match s.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Text(s.clone()),
        }),
        _ => None,
    }
}

/// The JSON value that writes `id` in place of `old`, keeping the JSON type
/// `old` had (a string stays a string).
pub fn replaced(old: &serde_json::Value, id: &Value) -> serde_json::Value {
    let text = id.display_text();
    match (old, id) {
        (serde_json::Value::String(_), _) => serde_json::Value::String(text),
        (_, Value::Int(i)) => serde_json::Value::from(*i),
        _ => serde_json::Value::String(text),
    }
}

/// The parsed JSON of a cell holding JSON (a JSON column, or JSON text in a
/// text column). `Ok(None)`: NULL. `Err`: why it is not JSON.
pub fn parse_cell(v: &Value) -> Result<Option<serde_json::Value>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Json(j) => Ok(Some(j.value().clone())),
        Value::Text(t) => serde_json::from_str(t)
            .map(Some)
            .map_err(|e| format!("the value is not JSON ({e})")),
        other => Err(format!("a {} value is not JSON", other.preview())),
    }
}

/// The cell to write after rewriting: the same kind of cell as `old` (a
/// JSON value, or text), serialized compactly.
pub fn rewritten_cell(old: &Value, new: serde_json::Value) -> Value {
    match old {
        Value::Text(_) => Value::Text(new.to_string()),
        _ => Value::Json(crate::value::Json::from(new)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            JsonPath::parse("$.a[0].b[*]").unwrap().0,
            vec![
                Step::Member("a".into()),
                Step::Index(0),
                Step::Member("b".into()),
                Step::Every
            ]
        );
        for bad in [
            "a.b",
            "$",
            "$.",
            "$..a",
            "$.a[?(@.x)]",
            "$['a']",
            "$.a[",
            "$.a-b",
            "$.a[-1]",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn visits_existing_non_null_places() {
        let mut v: serde_json::Value = serde_json::json!({"a": [{"id": 1}, {"id": null}, {}], "b": 2});
        let mut seen = Vec::new();
        JsonPath::parse("$.a[*].id")
            .unwrap()
            .visit_mut(&mut v, &mut |p, x| seen.push((p.to_string(), x.clone())));
        assert_eq!(seen, vec![("$.a[0].id".to_string(), serde_json::json!(1))]);
    }
}
