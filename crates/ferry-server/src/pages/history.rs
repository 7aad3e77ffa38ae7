//! History: the promotions of each environment, newest first; a
//! promotion's rows before and after; and Revert, with the preview of what
//! it restores, for users with the revert right there.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::Form;
use ferry_core::access::{self, Right};
use ferry_core::plan::key_label;
use ferry_core::schema::is_carried;
use ferry_core::Value;
use ferry_engine::error::Hint;
use ferry_engine::journal::{self, JournalRow, PromotionRecord};
use ferry_engine::ops::revert::{self as revert_op, RevertRequest};
use ferry_engine::ops::Quiet;
use ferry_engine::revert;
use maud::{html, Markup};
use serde::Deserialize;

use super::paging;
use super::{cells, encode, layout, PageError, PageResult};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::AppState;

/// `GET /history` query: one environment, and where the page starts.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub env: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /history[?env=E][&cursor=C]`: promotions, reverts, approvals and
/// baselines, newest first, [`paging::PAGE_SIZE`] a page.
pub async fn list(State(state): State<AppState>, user: CurrentUser, Query(q): Query<HistoryQuery>) -> PageResult {
    let env = q.env.as_deref().filter(|e| !e.is_empty());
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    let (stores, unreachable) = state.envs_for(env).await?.each(env).await?;
    let page = journal::page_all(&stores, paging::request(cursor)).await?;
    let (records, next) = (page.items, page.next);
    let envs_now = state.envs();
    let names = envs_now.project().config.environments_in_order();
    let env_q = encode(env.unwrap_or(""));
    let body = html! {
        h1 { "History" }
        nav.toolbar data-testid="env-filter" {
            @if env.is_none() { strong { "All environments" } } @else { a href="/history" { "All environments" } }
            @for n in names {
                @if env == Some(n) { strong { (n) } } @else { a href=(format!("/history?env={}", encode(n))) { (n) } }
            }
        }
        @for (name, e) in &unreachable {
            (layout::notice("error", &format!("`{name}` could not be read, its promotions are not listed: {e}")))
        }
        @if records.is_empty() {
            p.muted data-testid="no-promotions" { "Nothing promoted yet." }
        } @else {
            table data-testid="promotions" {
                thead { tr { th { "Promotion" } th { "Kind" } th { "Route" } th { "By" } th { "At" }
                    th.num { "Inserted" } th.num { "Updated" } th.num { "Deleted" } th { "" } } }
                tbody {
                    @for p in &records {
                        tr data-testid="promotion-row" data-id=(p.id) data-env=(p.to) {
                            td { a.mono href=(format!("/promotions/{}", encode(&p.id))) data-testid="promotion-link" data-key=(p.id) { (p.id) } }
                            td { (p.kind) }
                            td { (p.from.as_deref().unwrap_or("-")) " → " (p.to) }
                            td { (p.user) }
                            td.mono { (p.at) }
                            td.num { (p.counts.insert) }
                            td.num { (p.counts.update) }
                            td.num { (p.counts.delete) }
                            td {
                                @if let Some(by) = &p.reverted_by { span.muted { "reverted by " (by) } }
                                @if let Some(of) = &p.reverts { span.muted { "reverts " (of) } }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &next {
            p.pager { a data-testid="next-page" href=(format!("/history?env={env_q}&cursor={}", encode(c.as_text()))) { "Older promotions →" } }
        }
    };
    Ok(layout::page(&user, "History", body).into_response())
}

/// `GET /promotions/{id}`: the promotion, its rows before and after, and
/// Revert for a user who may revert there.
pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<String>) -> PageResult {
    let envs = state.envs();
    let (store, record) = match revert::find_with(&envs, &id).await {
        Ok(found) => found,
        // An audit entry of an approval that wrote nothing names its
        // review: the id leads there instead of to a 404.
        Err(e) => match ferry_engine::reviews::find_with(&envs, &id).await {
            Ok(_) => return Ok(axum::response::Redirect::to(&format!("/reviews/{}", encode(&id))).into_response()),
            Err(_) => return Err(e.into()),
        },
    };
    let rows = journal::journal_rows(&*store, &id).await?;
    // Whether a revert would need forcing, said before the click (for
    // whoever is offered the revert).
    let revertible = record.kind != "baseline" && record.reverted_by.is_none();
    let shown = if revertible && why_not_revert(&state, &user, &record).is_none() {
        match revert::changed_since(&*store, &record, &rows).await {
            Ok(changed) if changed.is_empty() => Shown::Plain,
            Ok(changed) => Shown::Changed(changed),
            Err(e) => Shown::Unchecked(e.to_string()),
        }
    } else {
        Shown::Plain
    };
    let open = store.capabilities().open_fields;
    let body = promotion_body(&state, &user, (&record, &rows, open), &shown);
    Ok(layout::page(&user, &format!("Promotion {id}"), body).into_response())
}

/// What the page says about reverting.
enum Shown {
    /// Nothing changed since: the plain revert.
    Plain,
    /// These rows changed since (`table:key (why)`): a revert needs
    /// forcing.
    Changed(Vec<String>),
    /// Whether rows changed since could not be read (why); the revert
    /// checks again.
    Unchecked(String),
    /// A revert was just refused (the engine's message) because rows
    /// changed since.
    Refused(String),
}

/// Why `user` may not revert in `record.to` (`None`: they may).
fn why_not_revert(state: &AppState, user: &CurrentUser, record: &PromotionRecord) -> Option<String> {
    access::check(
        state.envs().project().config.access.as_ref(),
        &user.name,
        Right::Revert,
        &record.to,
    )
    .err()
}

/// The promotion page, and what it says about reverting. `open_fields`:
/// the rows are documents (MongoDB), whose NULL is a field they lack.
fn promotion_body(
    state: &AppState,
    user: &CurrentUser,
    (record, rows, open_fields): (&PromotionRecord, &[JournalRow], bool),
    shown: &Shown,
) -> Markup {
    let link = |id: &str| html! { a.mono href=(format!("/promotions/{}", encode(id))) { (id) } };
    html! {
        h1 { "Promotion " span.mono data-testid="promotion-shown" { (record.id) } }
        dl.facts data-testid="promotion-facts" {
            dt { "Kind" } dd { (record.kind) }
            dt { "Route" } dd { (record.from.as_deref().unwrap_or("-")) " → " (record.to) }
            dt { "By" } dd data-testid="promotion-user" { (record.user) }
            dt { "At" } dd.mono { (record.at) }
            dt { "Rows" } dd data-testid="promotion-counts" {
                (record.counts.insert) " inserted, " (record.counts.update) " updated, " (record.counts.delete) " deleted"
                @if record.counts.synced > 0 { ", " (record.counts.synced) " recorded in sync" }
            }
            @if !record.selection.is_empty() {
                dt { "Selection" } dd data-testid="promotion-selection" { (selection_text(&record.selection)) }
            }
            @if let Some(of) = &record.reverts { dt { "Reverts" } dd data-testid="reverts" { (link(of)) } }
            @if let Some(by) = &record.reverted_by { dt { "Reverted by" } dd data-testid="reverted-by" { (link(by)) } }
        }
        @match shown {
            Shown::Refused(message) => (layout::notice("error", message)),
            Shown::Changed(rows) => (layout::notice("warning", &format!(
                "{} row(s) changed in {} since this promotion: {}. Reverting restores the before-images over them only when forced.",
                rows.len(), record.to, rows.join(", ")))),
            Shown::Unchecked(why) => (layout::notice("warning", &format!(
                "Whether rows changed since this promotion could not be read ({why}); the revert checks again."))),
            Shown::Plain => {},
        }
        h2 { "Rows" }
        @if rows.is_empty() { p.muted { "No rows." } }
        @for r in rows { (row(r, open_fields)) }
        (revert_section(state, user, record, rows, matches!(shown, Shown::Changed(_) | Shown::Refused(_))))
    }
}

/// A promotion's selection as a page says it, from the command-line words
/// the journal keeps (`--id forms:4` reads "row forms:4"); a word of
/// another shape is shown as it is.
fn selection_text(words: &[String]) -> String {
    let said: Vec<String> = words
        .iter()
        .map(|w| {
            for (flag, reads) in [
                ("--table ", "table "),
                ("--id ", "row "),
                ("--where ", "rows where "),
                ("--skip ", "not "),
            ] {
                if let Some(rest) = w.strip_prefix(flag) {
                    return format!("{reads}{rest}");
                }
            }
            w.clone()
        })
        .collect();
    said.join(", ")
}

/// One journalled row: what the promotion did, each column before and
/// after (the columns it wrote; every column of an insert or a delete; a
/// document's absent field as "(absent)").
fn row(r: &JournalRow, open_fields: bool) -> Markup {
    let cell = |v: Option<&Value>| match v {
        Some(Value::Null) if open_fields => html! { span.muted.absent { "(absent)" } },
        v => cells::maybe(v),
    };
    let label = format!("{}:{}", r.table, key_label(&r.key_values()));
    let is_key = |c: &str| r.key.iter().any(|(k, _)| k == c);
    let find = |image: &Option<Vec<(String, Value)>>, c: &str| {
        image
            .as_ref()
            .and_then(|i| i.iter().find(|(ic, _)| ic == c).map(|(_, v)| v.clone()))
    };
    // The written columns, else (a delete) the columns the row had; a
    // carried column (a document's field order) is no field.
    let columns: Vec<String> = match (&r.after, &r.before) {
        (Some(after), _) => after.iter().map(|(c, _)| c.clone()).collect(),
        (None, Some(before)) => before.iter().map(|(c, _)| c.clone()).collect(),
        (None, None) => Vec::new(),
    };
    let columns: Vec<String> = columns.into_iter().filter(|c| !is_carried(c)).collect();
    html! {
        section.change data-testid="journal-row" data-key=(label) data-action=(r.action) {
            h3 { span class=(format!("action {}", r.action)) { (r.action) } " " span.mono { (label) } }
            @if r.action == "keep" {
                p.muted { "Only its sync base was recorded; the row was not written." }
            } @else {
                table.fields {
                    thead { tr { th { "Field" } th { "Before" } th { "After" } } }
                    tbody {
                        @for c in columns.iter().filter(|c| !is_key(c)) {
                            @let before = find(&r.before, c);
                            @let after = find(&r.after, c);
                            tr data-column=(c) class=(if before == after { "same" } else { "changed" }) {
                                td.mono { (c) }
                                td.field-old data-testid="before" {
                                    @if r.before.is_none() { span.muted { "(no row)" } } @else { (cell(before.as_ref())) }
                                }
                                td.field-new data-testid="after" {
                                    @if r.after.is_none() { span.muted { "(deleted)" } } @else { (cell(after.as_ref())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Revert: what it restores, and the button, for a user with the revert
/// right; `forcing`: rows changed since, so a plain revert would be (or
/// just was) refused: offer it forced.
fn revert_section(
    state: &AppState,
    user: &CurrentUser,
    record: &PromotionRecord,
    rows: &[JournalRow],
    forcing: bool,
) -> Markup {
    if record.kind == "baseline" || record.reverted_by.is_some() {
        return html! {};
    }
    let action = format!("/promotions/{}/revert", encode(&record.id));
    html! {
        h2 { "Revert" }
        @if let Some(why) = why_not_revert(state, user, record) {
            p.muted data-testid="revert-not-allowed" { "You cannot revert here: " (why) "." }
        } @else {
            section data-testid="revert-preview" {
                p { "Reverting restores " (record.to) " as it was before this promotion:" }
                ul {
                    @for r in rows.iter().rev() { li data-key=(format!("{}:{}", r.table, key_label(&r.key_values()))) { (restores(r)) } }
                }
                p.muted { "A row changed since this promotion is not overwritten unless you revert anyway." }
            }
            form method="post" action=(action) {
                (layout::csrf_field(user))
                @if forcing {
                    input type="hidden" name="force" value="1";
                    button.danger type="submit" data-testid="revert-force"
                        data-confirm=(format!("Revert {} anyway, over the rows changed since?", record.id)) { "Revert anyway" }
                } @else {
                    button.danger type="submit" data-testid="revert-button"
                        data-confirm=(format!("Revert {} in {}?", record.id, record.to)) { "Revert" }
                }
            }
        }
    }
}

/// What the revert does to one row: delete what was inserted, restore the
/// before-image of what was updated, insert again what was deleted.
fn restores(r: &JournalRow) -> Markup {
    let label = format!("{}:{}", r.table, key_label(&r.key_values()));
    // Key and carried columns are not listed as restored fields.
    let is_key = |c: &str| is_carried(c) || r.key.iter().any(|(k, _)| k == c);
    match (r.action.as_str(), &r.before, &r.after) {
        ("keep", _, _) => {
            html! { "keep " span.mono { (label) } span.muted { " (only its previous sync base is restored)" } }
        }
        (_, None, _) => html! { span.action.delete { "delete " } span.mono { (label) } },
        (_, Some(before), Some(after)) => html! {
            span.action.update { "restore " } span.mono { (label) } ": "
            @for (c, now) in after.iter().filter(|(c, _)| !is_key(c)) {
                @let old = before.iter().find(|(bc, _)| bc == c).map(|(_, v)| v);
                @if old != Some(now) {
                    span.restore data-column=(c) { span.mono { (c) } " " (cells::maybe(old)) " " }
                }
            }
        },
        (_, Some(before), None) => html! {
            span.action.insert { "insert again " } span.mono { (label) } ": "
            @for (c, v) in before.iter().filter(|(c, _)| !is_key(c)) {
                span.restore data-column=(c) { span.mono { (c) } " " (cells::value(v)) " " }
            }
        },
    }
}

/// The revert form: the CSRF token, and `force` to restore over rows
/// changed since.
#[derive(Debug, Default, Deserialize)]
pub struct RevertForm {
    pub csrf_token: Option<String>,
    pub force: Option<String>,
}

/// `POST /promotions/{id}/revert`: reverts through the engine (as the
/// command line does) and shows the revert's id. Refused because rows
/// changed since: the promotion page again (409) with the refusal and
/// "Revert anyway".
pub async fn revert(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RevertForm>,
) -> PageResult {
    user.check_csrf(&headers, form.csrf_token.as_deref())?;
    let force = form.force.as_deref().is_some_and(|f| !f.is_empty() && f != "0");
    let req = RevertRequest {
        promotion: id.clone(),
        user: user.name.clone(),
        force,
        // A page does not hang on another writer: it says the target is busy.
        wait: false,
    };
    let envs = state.envs();
    let prepared = revert_op::prepare(&envs, req, &Quiet).await?;
    let (record, rows, open) = (prepared.record.clone(), prepared.rows.clone(), prepared.open_fields());
    let done = match prepared.commit().await {
        Ok(done) => done,
        Err(e) if matches!(e.hint_of(), Some(Hint::ForceRevert)) => {
            let body = promotion_body(&state, &user, (&record, &rows, open), &Shown::Refused(e.to_string()));
            let page = layout::page(&user, &format!("Promotion {id}"), body);
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
        Err(e) => return Err(PageError(AppError::Engine(e))),
    };
    let body = html! {
        h1 { "Reverted" }
        (layout::notice("ok", &format!(
            "{} inserted, {} updated, {} deleted in {}.", done.counts.insert, done.counts.update, done.counts.delete, record.to)))
        p { "Promotion " a.mono href=(format!("/promotions/{}", encode(&id))) { (id) } " reverted by "
            a.mono href=(format!("/promotions/{}", encode(&done.id))) data-testid="promotion-id" { (done.id) } "." }
    };
    Ok(layout::page(&user, &format!("Reverted {id}"), body).into_response())
}

#[cfg(test)]
mod tests {
    use super::{row, selection_text, JournalRow, Value};

    #[test]
    fn a_documents_absent_field_is_shown_as_absent_not_null() {
        let image = |name: Value| vec![("_id".to_string(), Value::Int(1)), ("name".to_string(), name)];
        let r = JournalRow {
            seq: 1,
            table: "cities".into(),
            key: vec![("_id".into(), Value::Int(1))],
            action: "update".into(),
            before: Some(image(Value::Text("Lyon".into()))),
            after: Some(image(Value::Null)),
            base_before: None,
            source_key: None,
        };
        let document = row(&r, true).into_string();
        assert!(document.contains("(absent)"), "{document}");
        assert!(!document.contains("NULL"), "{document}");
        let sql = row(&r, false).into_string();
        assert!(sql.contains("NULL") && !sql.contains("(absent)"), "{sql}");
    }

    #[test]
    fn a_selection_reads_without_command_line_flags() {
        let words: Vec<String> = [
            "--id businesses:7",
            "--id forms:4",
            "--table cities",
            "--where forms:id > 3",
            "--skip x:1",
            "odd",
        ]
        .iter()
        .map(|w| w.to_string())
        .collect();
        assert_eq!(
            selection_text(&words),
            "row businesses:7, row forms:4, table cities, rows where forms:id > 3, not x:1, odd"
        );
    }
}
