//! How plans, promotions and journals look for people (a terminal or a
//! pipe). `--json` prints the engine's views (`ferry_engine::views`).

use std::fmt::Write as _;

use ferry_core::json_diff::{self, Change};
use ferry_core::plan::{key_label, Action, FieldDiff, Plan, PlanEntry, Reason};
use ferry_core::schema::is_carried;
use ferry_core::Value;
use ferry_engine::apply::Promotion;
use ferry_engine::journal::{JournalRow, PromotionRecord};
use ferry_engine::views::plan_json_pair;
use serde_json::Value as J;

use crate::ui;

/// The two values of a journal row's column as JSON documents, when one of
/// them is a JSON value (the target column is JSON) and the other is JSON
/// or text holding JSON (a raw before-image reads JSON as text).
fn journal_json_pair(a: &Value, b: &Value) -> Option<(J, J)> {
    if !matches!(a, Value::Json(_)) && !matches!(b, Value::Json(_)) {
        return None;
    }
    Some((json_diff::document(a, true)?, json_diff::document(b, true)?))
}

/// Text in double quotes with only quotes, backslashes and control
/// characters escaped, so emoji and accents show as they are.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How many characters of a value the text output shows before folding
/// the rest into a visible "... N more bytes".
const SHOWN_CHARS: usize = 60;

/// How a field a document lacks (MongoDB; NULL in its row) is shown.
const ABSENT: &str = "(absent)";

/// A value for people: text quoted, NULL as `NULL`, and a long value cut
/// after [`SHOWN_CHARS`] characters with "... N more bytes" saying how
/// much of it is not shown (never cut silently).
pub fn short(v: &Value) -> String {
    match v {
        Value::Text(s) => folded(s, true),
        other => folded(&other.display_text(), false),
    }
}

/// `text` cut after [`SHOWN_CHARS`] characters with "... N more bytes",
/// quoted first when `is_text`.
fn folded(text: &str, is_text: bool) -> String {
    let (shown, rest) = match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => (&text[..cut], text.len() - cut),
        None => (text, 0),
    };
    let shown = if is_text { quoted(shown) } else { shown.to_string() };
    if rest == 0 {
        shown
    } else {
        format!("{shown} ... {rest} more byte{}", if rest == 1 { "" } else { "s" })
    }
}

/// How many changed paths of one JSON field the text output lists before
/// saying how many more there are (`--json` lists them all).
const SHOWN_PATHS: usize = 20;

/// The changed paths from JSON document `old` to `new`, one line each after
/// `indent`, named from `root` (the column): `body[2].value.text: "a" ->
/// "b"`, `body[3]: (added) ...`, `body[0]: (removed) ...`; values folded
/// like other long values, at most [`SHOWN_PATHS`] lines and then how many
/// more. Empty when the documents are equal.
fn json_path_lines(root: &str, old: &J, new: &J, indent: &str) -> String {
    let changes = json_diff::diff(old, new);
    let mut out = String::new();
    for c in changes.iter().take(SHOWN_PATHS) {
        let path = json_diff::path_text(root, &c.path);
        // A string as text is (quoted, with the quote closed when folded),
        // anything else as compact JSON.
        let fold = |v: &J| match v {
            J::String(t) => folded(t, true),
            other => folded(&other.to_string(), false),
        };
        let _ = match &c.change {
            Change::Added(v) => writeln!(out, "{indent}{path}: (added) {}", ui::green(&fold(v))),
            Change::Removed(v) => writeln!(out, "{indent}{path}: (removed) {}", ui::red(&fold(v))),
            Change::Changed { old, new } => writeln!(
                out,
                "{indent}{path}: {} -> {}",
                ui::red(&fold(old)),
                ui::green(&fold(new))
            ),
        };
    }
    if changes.len() > SHOWN_PATHS {
        let more = changes.len() - SHOWN_PATHS;
        let _ = writeln!(
            out,
            "{indent}... and {more} more changed path{} (every path is in --json)",
            if more == 1 { "" } else { "s" }
        );
    }
    out
}

/// What an entry writes in `column` for people: the value, or, for a
/// reference to a natural-key row this plan inserts, that row and the fact
/// that the target assigns its id (the source's id is not what is written).
fn written(plan: &Plan, e: &PlanEntry, column: &str, v: &Value) -> String {
    if !e.deferred.iter().any(|c| c == column) {
        return short(v);
    }
    // Ids inside a JSON column: the value, and which of its ids the target
    // assigns at apply (the source's id is shown until then).
    let paths: Vec<String> = e
        .deferred_json
        .iter()
        .filter(|d| d.column == column)
        .map(|d| format!("{} -> new {}", d.path, d.table))
        .collect();
    if !paths.is_empty() {
        return format!("{} (ids {} assigns at apply: {})", short(v), plan.to, paths.join(", "));
    }
    let table = plan
        .specs
        .get(&e.table)
        .and_then(|s| s.references.get(column))
        .map_or("the referenced table", String::as_str);
    let id = v.display_text();
    format!(
        "the id {} assigns to the new {table}:{id} ({id} in {})",
        plan.to, plan.from
    )
}

fn summary_line(plan: &Plan) -> String {
    let c = plan.counts();
    let mut parts = vec![
        format!("{} insert{}", c.insert, if c.insert == 1 { "" } else { "s" }),
        format!("{} update{}", c.update, if c.update == 1 { "" } else { "s" }),
        format!("{} delete{}", c.delete, if c.delete == 1 { "" } else { "s" }),
    ];
    if c.conflict > 0 {
        parts.push(ui::magenta(&format!(
            "{} conflict{}",
            c.conflict,
            if c.conflict == 1 { "" } else { "s" }
        )));
    }
    if c.skip > 0 {
        parts.push(format!("{} skipped", c.skip));
    }
    parts.join(", ")
}

/// A plan for people, without the natural-key rows merely matched (see
/// [`plan_text_with`]).
pub fn plan_text(plan: &Plan) -> String {
    plan_text_with(plan, false)
}

/// A plan for people; `verbose` also lists the natural-key rows matched
/// and equal on both sides (otherwise only counted in one line).
pub fn plan_text_with(plan: &Plan, verbose: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} -> {}: {}",
        ui::bold(&plan.from),
        ui::bold(&plan.to),
        summary_line(plan)
    );
    let excluded: u64 = plan.excluded.values().sum();
    if excluded > 0 {
        let per: Vec<String> = plan.excluded.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let _ = writeln!(
            out,
            "{}",
            ui::dim(&format!("  left behind by `exclude`: {}", per.join(", ")))
        );
    }
    let mut table = "";
    let mut matched = 0usize;
    for e in &plan.entries {
        if !verbose && e.reason == Some(Reason::Matched) {
            matched += 1;
            continue;
        }
        if e.table != table {
            table = &e.table;
            let _ = writeln!(out, "\n{}", ui::bold(table));
        }
        out.push_str(&entry_line(plan, e));
        entry_fields(plan, e, &mut out);
    }
    let no_base = plan.entries.iter().filter(|e| e.reason == Some(Reason::NoBase)).count();
    if no_base > 0 {
        let _ = writeln!(
            out,
            "\n{} {no_base} row{} differ{} on first contact (no sync base yet): the same id may hold unrelated rows created separately in each environment, so `promote` refuses them until decided: `--id TABLE:KEY --take source|target` for one row, `--force` for the source everywhere. `ferry baseline {} {}` records the equal rows as synced.",
            ui::yellow("warning:"),
            if no_base == 1 { "" } else { "s" },
            if no_base == 1 { "s" } else { "" },
            plan.from,
            plan.to
        );
    }
    if matched > 0 {
        let _ = writeln!(
            out,
            "\n{}",
            ui::dim(&format!(
                "{matched} row{} matched by natural key and equal (the id mapping is recorded); --verbose lists them",
                if matched == 1 { "" } else { "s" }
            ))
        );
    }
    if plan.entries.is_empty() {
        let _ = writeln!(
            out,
            "\nNothing to promote: {} already has every selected row of {}.",
            plan.to, plan.from
        );
    }
    out
}

/// An entry's line: its mark, action, key and the notes that explain it.
fn entry_line(plan: &Plan, e: &PlanEntry) -> String {
    let (mark, word) = match e.action {
        Action::Insert => (ui::green("+"), ui::green("insert  ")),
        Action::Update => (ui::yellow("~"), ui::yellow("update  ")),
        Action::Delete => (ui::red("-"), ui::red("delete  ")),
        Action::Conflict => (ui::magenta("!"), ui::magenta("conflict")),
        Action::Skip => (ui::dim("="), ui::dim("skip    ")),
    };
    let key = plan
        .named_key(e)
        .iter()
        .map(|(c, v)| format!("{c}={}", v.display_text()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut notes = Vec::new();
    if let Some(r) = e.reason {
        notes.push(match r {
            Reason::NoBase => ui::yellow("no-base: first contact, which side changed it is unknown"),
            Reason::TargetNewer => "target-newer: changed in the target only, kept".to_string(),
            Reason::TargetOnly => "target-only: never synced, left alone".to_string(),
            Reason::Matched => "matched by natural key: the id mapping is recorded".to_string(),
            Reason::KeptTarget => "kept-target: the target's version stays, recorded as in sync".to_string(),
            other => other.name().to_string(),
        });
    }
    if let Some(by) = &e.pulled_by {
        notes.push(format!("needed by {by}"));
    }
    if let Some(on) = &e.depends_on {
        notes.push(format!(
            "stays with {on}, which is {}",
            match e.reason {
                Some(Reason::LeftOut) => "left out",
                _ => "excluded",
            }
        ));
    }
    let natural = plan.specs.get(&e.table).is_some_and(|s| s.natural_key.is_some());
    if natural && e.action == Action::Insert && e.target_key.is_none() {
        // The key shown is the source's: the target gives the row its own.
        notes.push(format!("new: {} assigns its id", plan.to));
    }
    if let Some(c) = &e.collides_with {
        notes.push(format!("{c}: the target would refuse it"));
    }
    if let Some(tk) = &e.target_key {
        // Natural-key tables: ids differ per environment.
        let which = if e.source.is_some() { "matched with" } else { "is" };
        notes.push(format!("{which} {}:{} in {}", e.table, key_label(tk), plan.to));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        ui::dim(&format!("  ({})", notes.join("; ")))
    };
    format!("  {mark} {word} {key}{notes}\n")
}

/// An entry's fields under its line: every field of an insert or delete,
/// the kept value of a skipped row, the three sides of a conflict, and
/// old -> new of an update.
fn entry_fields(plan: &Plan, e: &PlanEntry, out: &mut String) {
    // A document (MongoDB) that lacks a field: said so, not shown as NULL,
    // which a BSON `null` also prints as.
    let open = ferry_engine::views::is_open(plan, &e.table);
    let side = |v: Option<&Value>, show: &dyn Fn(&Value) -> String| match v {
        None => "(none)".to_string(),
        Some(v) if open && v.is_null() => ABSENT.to_string(),
        Some(v) => show(v),
    };
    let target = |f: &FieldDiff| side(f.target.as_ref(), &short);
    let source = |f: &FieldDiff| side(f.source.as_ref(), &|v| written(plan, e, &f.column, v));
    match e.action {
        Action::Insert => {
            // Every field of a new row, NULLs too: nothing it brings is
            // hidden (a document's absent fields are not in what it brings).
            if let (Some(src), Some(cols)) = (&e.source, plan.columns.get(&e.table)) {
                let k = plan.keys.get(&e.table).map_or(1, Vec::len);
                for (c, v) in cols.iter().zip(src).skip(k).filter(|(_, v)| !(open && v.is_null())) {
                    let _ = writeln!(out, "               {c}: {}", ui::green(&written(plan, e, c, v)));
                }
            }
        }
        Action::Delete => {
            // Every field of the row the target loses.
            for f in &e.fields {
                let _ = writeln!(out, "               {}: {}", f.column, ui::red(&target(f)));
            }
        }
        Action::Skip if matches!(e.reason, Some(Reason::TargetNewer | Reason::KeptTarget)) => {
            // Nothing is written: say which value stays.
            for f in &e.fields {
                if let Some(lines) = field_json_lines(plan, e, f, "                 ") {
                    let _ = writeln!(
                        out,
                        "               {}: kept in the target; the source differs at (target -> source):",
                        f.column
                    );
                    out.push_str(&lines);
                    continue;
                }
                let (t, s) = (target(f), source(f));
                let _ = writeln!(
                    out,
                    "               {}: kept in the target: {t} (the source has {s})",
                    f.column
                );
            }
        }
        // First contact has no base to show: the two sides, as an update's.
        Action::Conflict if !e.fields.is_empty() && e.reason != Some(Reason::NoBase) => {
            for f in &e.fields {
                if conflict_json_lines(plan, e, f, out) {
                    continue;
                }
                let base = match &f.base {
                    Some(b) => side(Some(b), &short),
                    None => ui::dim("(base not kept)"),
                };
                let (t, s) = (target(f), source(f));
                let _ = writeln!(
                    out,
                    "               {}: base {base}  target {}  source {}",
                    f.column,
                    ui::red(&t),
                    ui::green(&s)
                );
            }
        }
        _ => {
            for f in &e.fields {
                if let Some(lines) = field_json_lines(plan, e, f, "               ") {
                    out.push_str(&lines);
                    continue;
                }
                let (t, s) = (target(f), source(f));
                let _ = writeln!(out, "               {}: {} -> {}", f.column, ui::red(&t), ui::green(&s));
            }
        }
    }
}

/// A conflicting JSON field, path by path: what each side changed since
/// the last sync, or, when the base was not kept, how the source differs
/// from the target. False (nothing written) when the field is not JSON on
/// both sides, or the documents are equal.
fn conflict_json_lines(plan: &Plan, e: &PlanEntry, f: &FieldDiff, out: &mut String) -> bool {
    let Some((t, s)) = plan_json_pair(plan, e, &f.column, f.target.as_ref(), f.source.as_ref()) else {
        return false;
    };
    let indent = "                   ";
    let base = plan_json_pair(plan, e, &f.column, f.base.as_ref(), f.target.as_ref()).map(|(b, _)| b);
    match base {
        Some(b) => {
            let (in_target, in_source) = (
                json_path_lines(&f.column, &b, &t, indent),
                json_path_lines(&f.column, &b, &s, indent),
            );
            if in_target.is_empty() && in_source.is_empty() {
                return false;
            }
            let _ = writeln!(out, "               {}: changed since the last sync", f.column);
            let _ = writeln!(out, "                 {}", ui::red("in the target (base -> target):"));
            out.push_str(if in_target.is_empty() {
                "                   (unchanged)\n"
            } else {
                &in_target
            });
            let _ = writeln!(out, "                 {}", ui::green("in the source (base -> source):"));
            out.push_str(if in_source.is_empty() {
                "                   (unchanged)\n"
            } else {
                &in_source
            });
        }
        None => {
            let lines = json_path_lines(&f.column, &t, &s, indent);
            if lines.is_empty() {
                return false;
            }
            let _ = writeln!(
                out,
                "               {}: {} target -> source:",
                f.column,
                ui::dim("(base not kept)")
            );
            out.push_str(&lines);
        }
    }
    true
}

/// A log line's counts for people.
fn counts_text(r: &PromotionRecord) -> String {
    let c = &r.counts;
    if r.kind == "baseline" {
        return format!("{} rows recorded as in sync", c.synced);
    }
    format!("+{} ~{} -{}", c.insert, c.update, c.delete)
}

pub fn log_text(records: &[PromotionRecord]) -> String {
    if records.is_empty() {
        return "No promotions recorded yet.\n".to_string();
    }
    let mut out = String::new();
    for r in records {
        let route = format!("{} -> {}", r.from.as_deref().unwrap_or("?"), r.to);
        let mut note = String::new();
        if let Some(by) = &r.reverted_by {
            note = ui::dim(&format!("  reverted by {by}"));
        }
        if let Some(of) = &r.reverts {
            note = ui::dim(&format!("  reverts {of}"));
        }
        let _ = writeln!(
            out,
            "{}  {:<8} {:<28} {:<10} {}  {}{note}",
            ui::bold(&r.id),
            r.kind,
            route,
            r.user,
            r.at,
            counts_text(r)
        );
    }
    out
}

/// `open_fields`: the rows are documents (MongoDB), whose NULL is a field
/// the document lacks: left out of whole rows, `(absent)` in a change.
pub fn show_text(r: &PromotionRecord, rows: &[JournalRow], open_fields: bool) -> String {
    let mut out = log_text(std::slice::from_ref(r));
    if !r.selection.is_empty() {
        let _ = writeln!(out, "{}", ui::dim(&format!("selection: {}", r.selection.join(" "))));
    }
    for j in rows {
        let key = key_label(&j.key_values());
        let _ = writeln!(out, "  {:<7} {}:{key}", j.action, j.table);
        if let (None, Some(before), "delete") = (&j.after, &j.before, j.action.as_str()) {
            // Every field of the row the promotion removed.
            for (c, v) in before {
                let absent = open_fields && v.is_null();
                if !(j.key.iter().any(|(kc, _)| kc == c) || is_carried(c) || absent) {
                    let _ = writeln!(out, "            {c}: {}", ui::red(&short(v)));
                }
            }
        }
        if let Some(after) = &j.after {
            // A carried column (a document's field order) is no changed field.
            for (c, v) in after.iter().filter(|(c, _)| !is_carried(c)) {
                let old = j
                    .before
                    .as_ref()
                    .and_then(|b| b.iter().find(|(bc, _)| bc == c))
                    .map(|(_, bv)| bv);
                match old {
                    Some(o) if o == v => {}
                    Some(o) => change_lines(&mut out, c, o, v, "            ", open_fields),
                    None if open_fields && v.is_null() => {}
                    None => {
                        let _ = writeln!(out, "            {c}: {}", ui::green(&short(v)));
                    }
                }
            }
        }
    }
    out
}

/// A field's change from target to source path by path, when both sides
/// are JSON documents that differ inside.
fn field_json_lines(plan: &Plan, e: &PlanEntry, f: &ferry_core::plan::FieldDiff, indent: &str) -> Option<String> {
    let (t, s) = plan_json_pair(plan, e, &f.column, f.target.as_ref(), f.source.as_ref())?;
    Some(json_path_lines(&f.column, &t, &s, indent)).filter(|lines| !lines.is_empty())
}

/// One column's change from `old` to `new` for people: path by path when
/// both are JSON documents that differ inside, else `old -> new` (a
/// document's absent field as `(absent)` when `open_fields`).
fn change_lines(out: &mut String, column: &str, old: &Value, new: &Value, indent: &str, open_fields: bool) {
    let cell = |v: &Value| {
        if open_fields && v.is_null() {
            ABSENT.to_string()
        } else {
            short(v)
        }
    };
    match journal_json_pair(old, new).filter(|(a, b)| a != b) {
        Some((a, b)) => out.push_str(&json_path_lines(column, &a, &b, indent)),
        None => {
            let _ = writeln!(
                out,
                "{indent}{column}: {} -> {}",
                ui::red(&cell(old)),
                ui::green(&cell(new))
            );
        }
    }
}

/// What reverting a promotion will do, row by row: the rows it inserted are
/// deleted, the rows it updated go back to their before-image, the rows it
/// deleted are inserted again (every field shown), and the rows it only
/// recorded as in sync get their previous sync base back.
/// `open_fields` as for [`show_text`].
pub fn revert_preview_text(r: &PromotionRecord, rows: &[JournalRow], open_fields: bool) -> String {
    let (mut restore, mut remove, mut reinsert) = (0, 0, 0);
    let mut body = String::new();
    for j in rows.iter().rev() {
        let key = key_label(&j.key_values());
        // Key and carried columns are not listed as restored fields.
        let is_key = |c: &str| is_carried(c) || j.key.iter().any(|(kc, _)| kc == c);
        // Whole rows list the fields a document has.
        let listed = |(c, v): &&(String, Value)| !(is_key(c) || open_fields && v.is_null());
        match (j.action.as_str(), &j.before, &j.after) {
            ("keep", _, _) => {
                let _ = writeln!(
                    body,
                    "  {} {}:{key}  {}",
                    ui::dim("= keep   "),
                    j.table,
                    ui::dim("(only its previous sync base is restored)")
                );
            }
            (_, None, _) => {
                remove += 1;
                let _ = writeln!(body, "  {} {}:{key}", ui::red("- delete "), j.table);
                for (c, v) in j.after.iter().flatten().filter(listed) {
                    let _ = writeln!(body, "              {c}: {}", ui::red(&short(v)));
                }
            }
            (_, Some(_), Some(_)) => {
                restore += 1;
                let _ = writeln!(body, "  {} {}:{key}", ui::yellow("~ restore"), j.table);
                for (c, now) in j.after.iter().flatten().filter(|(c, _)| !is_key(c)) {
                    let old = j.before.iter().flatten().find(|(bc, _)| bc == c).map(|(_, v)| v);
                    match old {
                        Some(o) if o == now => {}
                        Some(o) => change_lines(&mut body, c, now, o, "              ", open_fields),
                        None => {
                            let _ = writeln!(body, "              {c}: {} -> (not recorded)", ui::red(&short(now)));
                        }
                    }
                }
            }
            (_, Some(_), None) => {
                reinsert += 1;
                let _ = writeln!(body, "  {} {}:{key}", ui::green("+ insert "), j.table);
                for (c, v) in j.before.iter().flatten().filter(listed) {
                    let _ = writeln!(body, "              {c}: {}", ui::green(&short(v)));
                }
            }
        }
    }
    format!(
        "Reverting {} ({} -> {}, {} by {}) in {}: {restore} row(s) restored to their before-image, {remove} removed, {reinsert} re-inserted.\n{body}",
        ui::bold(&r.id),
        r.from.as_deref().unwrap_or("?"),
        r.to,
        r.kind,
        r.user,
        r.to
    )
}

/// How to undo promotion `id` in `to`: `ferry revert ID`, or, when the
/// acting user may not revert there (`denied`: why), who can.
pub fn undo_line(id: &str, to: &str, denied: Option<&str>) -> String {
    match denied {
        None => format!("Undo it with: ferry revert {id}\n"),
        Some(why) => format!("To undo it, someone who holds `revert` in {to} runs: ferry revert {id} ({why})\n"),
    }
}

/// What `ferry promote` says once a promotion is committed (the demo says
/// the same); `denied` as for [`undo_line`].
pub fn promoted_text(p: &Promotion, to: &str, denied: Option<&str>) -> String {
    format!(
        "{} promotion {} into {}: {} inserted, {} updated, {} deleted{}.\n{}",
        ui::green("Done:"),
        ui::bold(&p.id),
        to,
        p.counts.insert,
        p.counts.update,
        p.counts.delete,
        if p.counts.skip > 0 {
            format!(", {} kept as the target has them", p.counts.skip)
        } else {
            String::new()
        },
        undo_line(&p.id, to, denied)
    )
}

/// What `ferry revert` says once the revert `done` of promotion `id` is
/// committed (the demo says the same).
pub fn reverted_text(id: &str, to: &str, done: &Promotion) -> String {
    format!(
        "{} {id} reverted in {to} by {} ({} restored, {} re-inserted, {} removed).\n",
        ui::green("Done:"),
        ui::bold(&done.id),
        done.counts.update,
        done.counts.insert,
        done.counts.delete
    )
}

/// The first line of what `ferry baseline` says (the demo says the same).
pub fn baseline_line(from: &str, to: &str, recorded: u64, id: Option<&str>, dry_run: bool) -> String {
    if dry_run {
        return format!("{from} -> {to}: would record {recorded} equal row(s) as in sync.\n");
    }
    match id {
        Some(id) => format!(
            "{from} -> {to}: recorded {recorded} equal row(s) as in sync (baseline {}).\n",
            ui::bold(id)
        ),
        None => format!("{from} -> {to}: recorded {recorded} equal row(s) as in sync.\n"),
    }
}
