//! Values in a page: every value shown whole, a long one folded behind a
//! `<details>` (never cut off), NULL set apart from the text "NULL".

use ferry_core::Value;
use maud::{html, Markup};

/// Characters of a value shown before the rest is folded.
const SHOWN_CHARS: usize = 120;

/// One value: NULL muted, long text folded (the whole value stays in the
/// page), bytes by their size and hash.
pub fn value(v: &Value) -> Markup {
    match v {
        Value::Null => html! { span.muted.null { "NULL" } },
        other => text(&other.display_text()),
    }
}

/// A value that may be absent (a column not recorded).
pub fn maybe(v: Option<&Value>) -> Markup {
    match v {
        Some(v) => value(v),
        None => html! { span.muted { "(not recorded)" } },
    }
}

/// Text, folded after [`SHOWN_CHARS`] characters.
pub fn text(t: &str) -> Markup {
    match t.char_indices().nth(SHOWN_CHARS) {
        None => html! { span.mono.value { (t) } },
        Some((cut, _)) => html! {
            details.value {
                summary.mono { (&t[..cut]) "… (" (t.len() - cut) " more bytes)" }
                pre { (t) }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_folded_but_kept_whole() {
        let long = "é".repeat(300);
        let html = value(&Value::Text(long.clone())).into_string();
        assert!(html.contains("<details"), "{html}");
        assert!(html.contains(&long), "the whole value is in the page: {html}");
        let short = value(&Value::Text("Lyon".into())).into_string();
        assert!(!short.contains("<details") && short.contains("Lyon"), "{short}");
        assert!(value(&Value::Null).into_string().contains("null"));
    }
}
