//! Issue 21, item 6: a JSON column's change shows path by path in the text
//! output of `diff`, `plan`, `promote`'s preview, `review show`, `show` and
//! `revert`'s preview (a conflict and a row kept in the target too), and
//! `--json` adds every changed path to the field while keeping the whole
//! values.

use serde_json::{json, Value as J};

use crate::common::*;

const SCHEMA: &str = "
CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body JSON, meta JSON);
";

const CONFIG: &str = r#"pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url = "sqlite://production.db"

[tables.pages]
key = ["id"]
"#;

/// A StreamField-like body of four blocks.
fn body(text2: &str) -> J {
    json!([
        {"type": "heading", "value": "Welcome, this heading is long enough to be noticed if printed"},
        {"type": "text", "value": {"text": "Intro"}},
        {"type": "text", "value": {"text": text2}},
        {"type": "quote", "value": "Unchanged quote"},
    ])
}

fn sql_json(v: &J) -> String {
    format!("'{}'", v.to_string().replace('\'', "''"))
}

/// A settings blob with many keys, for the "N more paths" line.
fn settings(n: i64) -> J {
    J::Object((0..25).map(|i| (format!("k{i:02}"), json!(n + i))).collect())
}

/// Pages 1..=4 on both sides, baselined (no base values kept) or promoted
/// (base values kept), page 5 too; then staging edits page 1
/// (one block's text, one block added, one tag removed), page 2's 25
/// settings, page 3 (which production edits too) and page 5's heading (to
/// a long one); production edits page 4 only.
fn pages(baselined: bool) -> Fixture {
    let both = format!(
        "INSERT INTO pages VALUES (1, 'Home', {}, {});
         INSERT INTO pages VALUES (2, 'Settings', '[]', {});
         INSERT INTO pages VALUES (3, 'Both', {}, '{{}}');
         INSERT INTO pages VALUES (4, 'Prod', {}, '{{}}');
         INSERT INTO pages VALUES (5, 'Long', {}, '{{}}');",
        sql_json(&body("Old words")),
        sql_json(&json!({"tags": ["draft", "news"], "seo title": "Home"})),
        sql_json(&settings(0)),
        sql_json(&body("Base")),
        sql_json(&body("Base")),
        sql_json(&body("Base")),
    );
    let f = if baselined {
        Fixture::with(SCHEMA, &both, SCHEMA, &both)
    } else {
        Fixture::with(SCHEMA, &both, SCHEMA, "")
    };
    f.write_config(CONFIG);
    if baselined {
        f.run_yes(&["baseline", "staging", "production"]).expect(0);
    } else {
        f.promote(&[]);
    }
    let mut new_body = body("New words");
    if let Some(blocks) = new_body.as_array_mut() {
        blocks.insert(3, json!({"type": "image", "value": 12}));
    }
    f.exec(
        "staging",
        &format!(
            "UPDATE pages SET body = {}, meta = {} WHERE id = 1;
             UPDATE pages SET meta = {} WHERE id = 2;
             UPDATE pages SET body = {} WHERE id = 3;
             UPDATE pages SET body = json_set(body, '$[0].value', '{}') WHERE id = 5;",
            sql_json(&new_body),
            sql_json(&json!({"tags": ["news"], "seo title": "Home"})),
            sql_json(&settings(100)),
            sql_json(&body("Staging")),
            "é".repeat(100),
        ),
    );
    f.exec(
        "production",
        &format!(
            "UPDATE pages SET body = {} WHERE id IN (3, 4);",
            sql_json(&body("Production"))
        ),
    );
    f
}

/// The indented lines under the entry line that contains `head`, trimmed.
fn entry_lines(text: &str, head: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.contains(head));
    assert!(lines.next().is_some(), "no line with `{head}` in:\n{text}");
    lines
        .take_while(|l| l.starts_with("               "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[track_caller]
fn shows_page_1_path_by_path(text: &str) {
    assert_eq!(
        entry_lines(text, "~ update   id=1"),
        [
            r#"body[2].value.text: "Old words" -> "New words""#,
            r#"body[3]: (added) {"type":"image","value":12}"#,
            r#"meta.tags[0]: (removed) "draft""#,
        ],
        "{text}"
    );
    assert!(
        !text.contains("Unchanged quote"),
        "unchanged blocks are not printed:\n{text}"
    );
}

/// A long string at a path is folded like other long values, its quote
/// closed.
#[track_caller]
fn folds_page_5s_long_string(text: &str) {
    assert_eq!(
        entry_lines(text, "~ update   id=5"),
        [format!(
            r#"body[0].value: "{}" ... 1 more byte -> "{}" ... 80 more bytes"#,
            &"Welcome, this heading is long enough to be noticed if printed"[..60],
            "é".repeat(60)
        )],
        "{text}"
    );
}

#[track_caller]
fn folds_page_2_after_twenty_paths(text: &str) {
    let lines = entry_lines(text, "~ update   id=2");
    assert_eq!(lines.len(), 21, "{text}");
    assert_eq!(lines[0], "meta.k00: 0 -> 100", "{text}");
    assert_eq!(lines[19], "meta.k19: 19 -> 119", "{text}");
    assert_eq!(
        lines[20], "... and 5 more changed paths (every path is in --json)",
        "{text}"
    );
}

#[test]
fn json_columns_show_their_changed_paths_in_diff_plan_and_the_promote_preview() {
    let f = pages(false);
    for args in [
        &["diff", "staging", "production"][..],
        &["plan", "staging", "production"],
    ] {
        let text = f.run(args).stdout;
        shows_page_1_path_by_path(&text);
        folds_page_2_after_twenty_paths(&text);
        folds_page_5s_long_string(&text);

        // A conflict: what each side changed since the last sync.
        assert_eq!(
            entry_lines(&text, "! conflict id=3"),
            [
                "body: changed since the last sync",
                "in the target (base -> target):",
                r#"body[2].value.text: "Base" -> "Production""#,
                "in the source (base -> source):",
                r#"body[2].value.text: "Base" -> "Staging""#,
            ],
            "{text}"
        );
        // Kept in the target: where the source differs.
        assert_eq!(
            entry_lines(&text, "skip     id=4"),
            [
                "body: kept in the target; the source differs at (target -> source):",
                r#"body[2].value.text: "Production" -> "Base""#,
            ],
            "{text}"
        );
    }
    // `promote` shows its preview once the conflict is decided.
    let out = f
        .run(&["promote", "staging", "production", "--dry-run", "--force"])
        .expect(0);
    shows_page_1_path_by_path(&out.all());
    folds_page_2_after_twenty_paths(&out.all());
}

#[test]
fn a_conflict_without_a_kept_base_shows_the_paths_from_target_to_source() {
    let f = pages(true);
    let text = f.run(&["diff", "staging", "production"]).stdout;
    assert_eq!(
        entry_lines(&text, "! conflict id=3"),
        [
            "body: (base not kept) target -> source:",
            r#"body[2].value.text: "Production" -> "Staging""#,
        ],
        "{text}"
    );
    shows_page_1_path_by_path(&text);
}

#[test]
fn json_output_keeps_the_whole_values_and_adds_every_path() {
    let f = pages(true);
    let v = f.diff_json(&[]);
    let e = entry(&v, "pages", 1).unwrap_or_else(|| panic!("pages:1 missing: {v:#}"));
    let field = |c: &str| {
        e["fields"]
            .as_array()
            .and_then(|fs| fs.iter().find(|x| x["column"] == c))
            .cloned()
            .unwrap_or_else(|| panic!("no field {c}: {e:#}"))
    };
    let b = field("body");
    assert_eq!(b["target"], body("Old words"), "{b:#}");
    assert_eq!(b["source"][2]["value"]["text"], "New words", "{b:#}");
    assert_eq!(
        b["paths"],
        json!([
            {"path": "$[2].value.text", "change": "changed", "source": "New words", "target": "Old words"},
            {"path": "$[3]", "change": "added", "source": {"type": "image", "value": 12}},
        ]),
        "{b:#}"
    );
    assert_eq!(
        field("meta")["paths"],
        json!([{"path": "$.tags[0]", "change": "removed", "target": "draft"}]),
        "{e:#}"
    );
    let e2 = entry(&v, "pages", 2).unwrap_or_else(|| panic!("pages:2 missing: {v:#}"));
    assert_eq!(
        e2["fields"][0]["paths"].as_array().map(Vec::len),
        Some(25),
        "--json lists every path: {e2:#}"
    );
    // A field that is not JSON has no `paths`.
    f.exec("staging", "UPDATE pages SET title = 'Home 2' WHERE id = 1;");
    let v = f.diff_json(&[]);
    let e = entry(&v, "pages", 1).unwrap_or_else(|| panic!("pages:1 missing: {v:#}"));
    let t = e["fields"]
        .as_array()
        .and_then(|fs| fs.iter().find(|x| x["column"] == "title"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(t["source"], "Home 2", "{e:#}");
    assert!(t.get("paths").is_none(), "{t:#}");
}

#[test]
fn show_lists_the_changed_paths_a_promotion_wrote() {
    let f = pages(true);
    let id = f.promote(&["--force"]);
    let show = f.run(&["show", &id]).expect(0).stdout;
    for want in [
        r#"body[2].value.text: "Old words" -> "New words""#,
        r#"body[3]: (added) {"type":"image","value":12}"#,
        r#"meta.tags[0]: (removed) "draft""#,
        "... and 5 more changed paths",
    ] {
        assert!(show.contains(want), "`{want}` missing from show:\n{show}");
    }
    assert!(!show.contains("Unchanged quote"), "{show}");

    // Reverting shows the way back, path by path (new -> old).
    let preview = f.run(&["revert", &id]).all();
    for want in [
        r#"body[2].value.text: "New words" -> "Old words""#,
        r#"body[3]: (removed) {"type":"image","value":12}"#,
        r#"meta.tags[0]: (added) "draft""#,
    ] {
        assert!(
            preview.contains(want),
            "`{want}` missing from the revert preview:\n{preview}"
        );
    }
    assert!(!preview.contains("Unchanged quote"), "{preview}");
}

#[test]
fn review_show_lists_the_changed_paths_a_review_holds() {
    let f = pages(false);
    f.write_config(&CONFIG.replace(
        "url = \"sqlite://production.db\"\n",
        "url = \"sqlite://production.db\"\nreview = true\n",
    ));
    let v = f
        .run(&["promote", "staging", "production", "--force", "--yes", "--json"])
        .expect(0)
        .json();
    let review = v["review"]
        .as_str()
        .unwrap_or_else(|| panic!("no review: {v:#}"))
        .to_string();
    let text = f.run(&["review", "show", &review]).expect(0).stdout;
    shows_page_1_path_by_path(&text);
    folds_page_2_after_twenty_paths(&text);
}
