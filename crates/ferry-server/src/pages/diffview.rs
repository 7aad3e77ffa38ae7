//! One plan entry rendered field by field: every field of an insert, old
//! -> new per changed field of an update (path by path for JSON), base /
//! source / target of a conflict. Long values are folded in a
//! `<details>`, never cut. Pure functions of the engine's views, for every
//! page that shows a diff (changes, reviews).

use ferry_engine::views::{EntryView, FieldView};
use maud::{html, Markup};
use serde_json::{Map, Value as J};

/// Values longer than this (or on several lines) are folded.
pub const FOLD_AT: usize = 80;

/// The key of an entry as the command line and the forms write it:
/// `TABLE:V` or `TABLE:V1,V2` (a composite key in key order).
pub fn key_label(e: &EntryView) -> String {
    format!("{}:{}", e.table, key_values(&e.key))
}

/// Key values joined by commas, as `--id` takes them.
pub fn key_values(key: &Map<String, J>) -> String {
    key.values().map(plain).collect::<Vec<_>>().join(",")
}

/// A value as text: strings as they are, `NULL`, anything else as JSON.
pub fn plain(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        J::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// One value: `NULL` marked as such, a long one folded (its start as the
/// summary, the whole value inside).
pub fn value(v: Option<&J>) -> Markup {
    let Some(v) = v else {
        return html! { span.muted { "—" } };
    };
    if v.is_null() {
        return html! { span.null { "NULL" } };
    }
    let text = plain(v);
    let long = text.chars().count() > FOLD_AT || text.contains('\n');
    if !long {
        return html! { span.value { (text) } };
    }
    let head: String = text.lines().next().unwrap_or("").chars().take(FOLD_AT / 2).collect();
    html! {
        details.value {
            summary { (head) "… (" (text.chars().count()) " characters)" }
            pre { (text) }
        }
    }
}

/// An entry's fields: the whole row of an insert; the changed fields of
/// an update (old -> new); base / source / target of a conflict.
pub fn entry(e: &EntryView) -> Markup {
    if e.action == "insert" {
        if let Some(row) = &e.row {
            return html! {
                table.fields data-testid="diff-fields" {
                    @for (column, v) in row {
                        tr data-column=(column) {
                            th { (column) }
                            td.field-new { (value(Some(v))) }
                        }
                    }
                }
            };
        }
    }
    if e.fields.is_empty() {
        return html! {};
    }
    if e.action == "conflict" {
        return conflict(e);
    }
    html! {
        table.fields data-testid="diff-fields" {
            @for f in &e.fields {
                tr data-column=(f.column) {
                    th { (f.column) }
                    td { (change(f)) }
                }
            }
        }
    }
}

/// One side of a field: "absent" when the document lacks the field
/// (MongoDB), which its `null` value would not tell from a BSON `null`.
fn side(f: &FieldView, which: &str, v: Option<&J>) -> Markup {
    if f.absent.contains(&which) {
        return html! { span.muted.absent { "(absent)" } };
    }
    value(v)
}

/// One changed field: old -> new, and for JSON each changed path.
fn change(f: &FieldView) -> Markup {
    html! {
        span.field-old { (side(f, "target", f.target.as_ref())) }
        " → "
        span.field-new { (side(f, "source", f.source.as_ref())) }
        @if let Some(paths) = &f.paths {
            ul.paths {
                @for p in paths {
                    li {
                        code { (p.path) } " " span.muted { (p.change) } ": "
                        span.field-old { (value(p.target.as_ref())) }
                        " → "
                        span.field-new { (value(p.source.as_ref())) }
                    }
                }
            }
        }
    }
}

/// A conflict: each field with its base (when known), source and target.
fn conflict(e: &EntryView) -> Markup {
    html! {
        table.fields.conflict data-testid="diff-fields" {
            tr { th { "field" } th { "base" } th { "source" } th { "target" } }
            @for f in &e.fields {
                tr data-column=(f.column) {
                    th { (f.column) }
                    td { (side(f, "base", f.base.as_ref())) }
                    td.field-new { (side(f, "source", f.source.as_ref())) }
                    td.field-old { (side(f, "target", f.target.as_ref())) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(action: &'static str, row: Option<J>, fields: Vec<FieldView>) -> EntryView {
        EntryView {
            table: "businesses".into(),
            key: json!({"id": 7}).as_object().cloned().unwrap_or_default(),
            action,
            fields,
            reason: None,
            pulled_by: None,
            depends_on: None,
            deferred: Vec::new(),
            collides_with: None,
            base: None,
            row: row.and_then(|r| r.as_object().cloned()),
        }
    }

    #[test]
    fn an_insert_shows_every_field_and_folds_long_values_without_cutting_them() {
        let long = "x".repeat(500);
        let e = view(
            "insert",
            Some(json!({"id": 7, "name": "Café <b>", "notes": long, "icon": null})),
            Vec::new(),
        );
        assert_eq!(key_label(&e), "businesses:7");
        let html = entry(&e).into_string();
        for column in ["id", "name", "notes", "icon"] {
            assert!(html.contains(&format!("data-column=\"{column}\"")), "{column}: {html}");
        }
        // Escaped, folded, and whole.
        assert!(html.contains("Café &lt;b&gt;"), "{html}");
        assert!(html.contains("<details"), "{html}");
        assert!(html.contains(&long), "{html}");
        assert!(html.contains("NULL"), "{html}");
    }

    #[test]
    fn an_update_shows_old_and_new_and_a_conflict_its_three_sides() {
        let field = FieldView {
            column: "name".into(),
            source: Some(json!("new name")),
            target: Some(json!("old name")),
            base: Some(json!("base name")),
            absent: Vec::new(),
            paths: None,
        };
        let html = entry(&view("update", None, vec![field.clone()])).into_string();
        let (old, new) = (html.find("old name").unwrap(), html.find("new name").unwrap());
        assert!(old < new, "{html}");
        let html = entry(&view("conflict", None, vec![field])).into_string();
        for v in ["base name", "new name", "old name"] {
            assert!(html.contains(v), "{v}: {html}");
        }
    }

    #[test]
    fn a_field_a_document_lacks_is_not_shown_as_null() {
        // A document's field removed (source absent) and a BSON null set.
        let removed = FieldView {
            column: "name".into(),
            source: Some(J::Null),
            target: Some(json!("Lyon")),
            base: None,
            absent: vec!["source"],
            paths: None,
        };
        let nulled = FieldView {
            column: "team".into(),
            source: Some(J::Null),
            target: Some(json!("qa")),
            base: None,
            absent: Vec::new(),
            paths: None,
        };
        let html = entry(&view("update", None, vec![removed, nulled])).into_string();
        let (name, team) = (
            html.find("data-column=\"name\"").unwrap(),
            html.find("data-column=\"team\"").unwrap(),
        );
        assert!(html[name..team].contains("(absent)"), "{html}");
        assert!(!html[name..team].contains("NULL"), "{html}");
        assert!(html[team..].contains("NULL"), "{html}");
        assert!(!html[team..].contains("(absent)"), "{html}");
    }
}
