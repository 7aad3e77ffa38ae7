//! Differences between two JSON documents, path by path: what a reviewer
//! reads instead of two truncated strings (`body[2].value.text: "a" -> "b"`).
//! Objects are compared key by key (in key order), arrays index by index.

use serde_json::Value as J;

/// One changed place in a JSON document.
#[derive(Clone, Debug, PartialEq)]
pub struct PathChange {
    /// From the document's root: `[2].value.text`, `.title`, `["odd key"]`;
    /// empty for the root itself.
    pub path: String,
    /// `None`: absent on that side.
    pub before: Option<J>,
    pub after: Option<J>,
}

/// Every place where `after` differs from `before`, in document order.
pub fn diff(before: &J, after: &J) -> Vec<PathChange> {
    let mut out = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut out);
    out
}

/// The JSON document a column value holds: a JSON value, or text that is
/// a JSON object or array (JSON kept in a text column).
pub fn document(v: &crate::value::Value) -> Option<J> {
    match v {
        crate::value::Value::Json(j) => Some(j.value().clone()),
        crate::value::Value::Text(s) if s.trim_start().starts_with(['{', '[']) => serde_json::from_str(s).ok(),
        _ => None,
    }
}

fn walk(path: String, before: Option<&J>, after: Option<&J>, out: &mut Vec<PathChange>) {
    match (before, after) {
        (Some(J::Object(a)), Some(J::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(format!("{path}{}", key_step(k)), a.get(k), b.get(k), out);
            }
        }
        (Some(J::Array(a)), Some(J::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a != b => out.push(PathChange {
            path,
            before: a.cloned(),
            after: b.cloned(),
        }),
        _ => {}
    }
}

/// `.key` for an identifier, `["key"]` otherwise.
fn key_step(k: &str) -> String {
    let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!(".{k}")
    } else {
        format!("[{}]", J::String(k.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(a: J, b: J) -> Vec<(String, Option<J>, Option<J>)> {
        diff(&a, &b).into_iter().map(|c| (c.path, c.before, c.after)).collect()
    }

    #[test]
    fn a_streamfield_change_is_one_path() {
        let before = json!([
            {"type": "heading", "value": "Jobs"},
            {"type": "paragraph", "value": {"text": "old", "id": 7}}
        ]);
        let mut after = before.clone();
        after[1]["value"]["text"] = json!("new 🚢");
        assert_eq!(
            paths(before, after),
            [("[1].value.text".to_string(), Some(json!("old")), Some(json!("new 🚢")))]
        );
    }

    #[test]
    fn added_removed_and_odd_keys() {
        assert_eq!(
            paths(json!({"a b": 1, "x": [1, 2]}), json!({"a b": 2, "x": [1], "y": null})),
            [
                ("[\"a b\"]".to_string(), Some(json!(1)), Some(json!(2))),
                (".x[1]".to_string(), Some(json!(2)), None),
                (".y".to_string(), None, Some(J::Null)),
            ]
        );
        // Different kinds: the whole place changes.
        assert_eq!(
            paths(json!({"a": [1]}), json!({"a": {"0": 1}})),
            [(".a".to_string(), Some(json!([1])), Some(json!({"0": 1})))]
        );
        assert!(paths(json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})).is_empty());
        assert_eq!(
            paths(json!(1), json!(2)),
            [(String::new(), Some(json!(1)), Some(json!(2)))]
        );
    }

    #[test]
    fn json_in_text_is_a_document() {
        use crate::value::Value;
        assert_eq!(document(&Value::Text(" [1]".into())), Some(json!([1])));
        assert_eq!(document(&Value::Text("plain".into())), None);
        assert_eq!(document(&Value::Text("{not json".into())), None);
        assert_eq!(document(&Value::Json(json!("s").into())), Some(json!("s")));
    }
}
