//! `ferry reviews`, `ferry review show|approve|reject` and `ferry audit`

use std::collections::BTreeMap;

use anyhow::Result;
use ferry_core::access::Right;
use ferry_core::plan::{Action, Reason};
use ferry_core::selection::parse_id;
use ferry_core::Value;
use ferry_engine::audit::{self, AuditEntry};
use ferry_engine::reviews::{self, Review};
use ferry_engine::views::{ApproveView, RejectView, ReviewView};
use ferry_engine::Error;

use super::{load, print_json, print_text};
use crate::cli::{Global, ReviewAction};
use crate::output;
use crate::ui;

pub async fn list(g: &Global, env: Option<&str>, all: bool) -> Result<u8> {
    let project = load(g)?;
    let mut found = Vec::new();
    for store in super::stores(&project, env).await? {
        found.extend(
            reviews::list(&*store)
                .await?
                .into_iter()
                .filter(|r| all || r.status == "open"),
        );
    }
    found.sort_by(|a, b| b.id.cmp(&a.id));
    if g.json {
        print_json(&found.iter().map(ReviewView::new).collect::<Vec<_>>())?;
        return Ok(0);
    }
    if found.is_empty() {
        print_text(if all { "No reviews.\n" } else { "No open reviews.\n" })?;
        return Ok(0);
    }
    let mut out = String::new();
    for r in &found {
        let pending = r.pending().count();
        out.push_str(&format!(
            "{}  {:<9} {} -> {}  by {:<10} {}  {} change(s), {} pending\n",
            ui::bold(&r.id),
            r.status,
            r.from,
            r.to,
            r.user,
            r.at,
            r.plan.entries.len(),
            pending
        ));
    }
    print_text(&out)?;
    Ok(0)
}

/// The rows of an open review whose target moved: base (the target when
/// the review was made, where known), the target now, and what the review
/// brings.
fn moved_text(r: &Review, moved: &BTreeMap<usize, Option<Vec<Value>>>) -> String {
    if moved.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{} {} row(s) changed in {} since this review was made; approving them is refused as stale (reject the review and promote again):\n",
        ui::yellow("warning:"),
        moved.len(),
        r.to
    );
    for (i, now) in moved {
        let e = &r.plan.entries[*i];
        out.push_str(&format!("  {}\n", e.label()));
        let (Some(spec), Some(source)) = (r.plan.specs.get(&e.table), &e.source) else {
            continue;
        };
        let Some(now) = now else {
            out.push_str("      the row is gone from the target\n");
            continue;
        };
        for (c, column) in spec.columns().iter().enumerate().skip(spec.key.len()) {
            let (s, t) = (&source[c], &now[c]);
            if s == t {
                continue;
            }
            // An update's columns outside its field diff were equal then.
            let base = match e.fields.iter().find(|f| f.column == *column) {
                Some(f) => f.target.clone(),
                None if e.action == Action::Update && e.reason != Some(Reason::PendingReview) => Some(s.clone()),
                None => None,
            };
            out.push_str(&format!(
                "      {column}: base {}  target now {}  review brings {}\n",
                base.as_ref().map_or_else(|| ui::dim("(unknown)"), output::short),
                ui::red(&output::short(t)),
                ui::green(&output::short(s))
            ));
        }
    }
    out
}

fn only(values: &[String]) -> Result<Vec<(String, Vec<String>)>> {
    Ok(values
        .iter()
        .map(|s| parse_id(s).map_err(|e| Error::Usage(e.0.replace("--id", "--only"))))
        .collect::<Result<_, _>>()?)
}

pub async fn act(g: &Global, action: ReviewAction) -> Result<u8> {
    let project = load(g)?;
    let user = ui::user(g);
    match action {
        ReviewAction::Show { id } => {
            let (store, r) = reviews::find(&project, &id).await?;
            // The three-way view where the target moved since the review was made.
            let moved = if r.status == "open" {
                reviews::moved(&*store, &r).await?
            } else {
                BTreeMap::new()
            };
            if g.json {
                print_json(&ReviewView::with_moved(&r, &moved))?;
            } else {
                let mut text = format!(
                    "review {} ({}) {} -> {}, submitted by {} at {}\n",
                    ui::bold(&r.id),
                    r.status,
                    r.from,
                    r.to,
                    r.user,
                    r.at
                );
                if let Some(p) = &r.draft_promotion {
                    text.push_str(&format!("drafts inserted by promotion {p}\n"));
                }
                // An open review shows what waits; a decided one what it held
                // (not an empty plan reading "nothing to promote").
                let mut shown = r.plan.clone();
                if r.status == "open" {
                    shown.entries = r.pending().map(|(_, e)| e.clone()).collect();
                } else {
                    text.push_str(&format!("it held these changes, now decided ({}):\n", r.status));
                }
                text.push_str(&output::plan_text(&shown));
                let approved = r.decided.values().filter(|d| d.approved).count();
                let rejected = r.decided.len() - approved;
                if approved > 0 {
                    text.push_str(&format!("{approved} change(s) already approved\n"));
                }
                if rejected > 0 {
                    text.push_str(&format!("{rejected} change(s) rejected\n"));
                }
                text.push_str(&moved_text(&r, &moved));
                print_text(&text)?;
            }
            Ok(0)
        }
        ReviewAction::Approve { id, only: rows } => {
            let rows = only(&rows)?;
            let (_, r) = reviews::find(&project, &id).await?;
            if !ui::confirm(
                g,
                &format!("Approve review {id} in {}?", r.to),
                &format!("approving {id}"),
            )? {
                print_text("Nothing was written.\n")?;
                return Ok(1);
            }
            let target = project.open(&r.to).await?;
            // Approving writes the target: one writer at a time.
            let _lock = ui::writer_lock(g, &*target).await?;
            let done = reviews::approve(&project, &id, &user, &rows).await;
            let store = project.open(&r.to).await?;
            let mut entry = AuditEntry::new(&user, "approve", Some(&r.from), &r.to)
                .outcome(&done, |p| p.as_ref().map(|p| p.id.clone()).or(Some(id.clone())));
            if done.is_ok() && r.user == user {
                // Only possible without [access] (single-user mode): said in the audit.
                entry.detail = format!("approved their own review {id} (single-user mode: no [access])");
            }
            if !matches!(done, Err(Error::Denied(_))) {
                if entry.ref_id.is_none() {
                    entry.ref_id = Some(id.clone());
                }
                let _ = audit::record(&*store, &entry).await;
            }
            let done = done?;
            // The approval wrote the changes: the target's hooks run now.
            let hooks = match &done {
                Some(p) => super::gates::hooks(g, &project, &*store, p, &r.from, &r.to, &user, Some(&id)).await,
                None => Vec::new(),
            };
            if g.json {
                print_json(&ApproveView::new(&id, done.as_ref(), hooks))?;
            } else {
                let denied =
                    ferry_core::access::check(project.config.access.as_ref(), &user, Right::Revert, &r.to).err();
                match &done {
                    Some(p) => print_text(&format!(
                        "{} review {id} approved{}: promotion {} ({} inserted, {} updated, {} deleted). {}",
                        ui::green("Done:"),
                        if rows.is_empty() {
                            String::new()
                        } else {
                            " in part".into()
                        },
                        ui::bold(&p.id),
                        p.counts.insert,
                        p.counts.update,
                        p.counts.delete,
                        output::undo_line(&p.id, &r.to, denied.as_deref())
                    ))?,
                    None => print_text(&format!(
                        "{} review {id} approved; nothing needed writing.\n",
                        ui::green("Done:")
                    ))?,
                }
            }
            Ok(0)
        }
        ReviewAction::Reject { id, only: rows } => {
            let rows = only(&rows)?;
            let (_, r) = reviews::find(&project, &id).await?;
            if !ui::confirm(
                g,
                &format!("Reject review {id} in {}?", r.to),
                &format!("rejecting {id}"),
            )? {
                print_text("Nothing was written.\n")?;
                return Ok(1);
            }
            let target = project.open(&r.to).await?;
            let _lock = ui::writer_lock(g, &*target).await?;
            let done = reviews::reject(&project, &id, &user, &rows).await;
            let store = project.open(&r.to).await?;
            let entry = AuditEntry::new(&user, "reject", Some(&r.from), &r.to).outcome(&done, |_| Some(id.clone()));
            if !matches!(done, Err(Error::Denied(_))) {
                let _ = audit::record(&*store, &entry).await;
            }
            let done = done?;
            if g.json {
                print_json(&RejectView::new(&id, &done))?;
            } else {
                print_text(&rejected_text(&id, &r, &done))?;
            }
            Ok(0)
        }
    }
}

/// What a rejection did, for people: whether the drafts were removed or
/// stay (published already), and what is left to decide.
fn rejected_text(id: &str, r: &Review, done: &reviews::Rejected) -> String {
    let mut parts = vec![format!("{} held change(s) rejected", done.rejected)];
    if done.drafts_removed {
        parts.push(format!("the drafts are removed from {}", r.to));
    } else if done.drafts_stay && done.pending == 0 {
        parts.push(format!("the drafts already published in {} stay", r.to));
    }
    let tail = if done.pending > 0 {
        format!(
            "; {} change(s) still wait for review (ferry review show {id})",
            done.pending
        )
    } else {
        format!("; the review is {}", done.status)
    };
    format!("{} review {id}: {}{tail}.\n", ui::green("Done:"), parts.join(", "))
}

pub async fn audit(g: &Global, env: Option<&str>, limit: usize) -> Result<u8> {
    let project = load(g)?;
    let mut entries: Vec<AuditEntry> = Vec::new();
    for store in super::stores(&project, env).await? {
        entries.extend(audit::list(&*store).await?);
    }
    entries.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    entries.truncate(limit);
    if g.json {
        print_json(&entries)?;
        return Ok(0);
    }
    if entries.is_empty() {
        print_text("Nothing audited yet.\n")?;
        return Ok(0);
    }
    let mut out = String::new();
    for a in &entries {
        let result = match a.result.as_str() {
            "ok" => ui::green("ok"),
            other => ui::red(other),
        };
        out.push_str(&format!(
            "{}  {:<10} {:<9} {} -> {}  {}{}\n",
            a.at,
            a.user,
            a.action,
            a.from.as_deref().unwrap_or("-"),
            a.to,
            result,
            a.ref_id.as_ref().map(|r| format!("  {r}")).unwrap_or_default()
        ));
        if a.result != "ok" && !a.detail.is_empty() {
            // One line per entry; what is cut is said, never dropped silently.
            let mut lines = a.detail.lines();
            let first = lines.next().unwrap_or("");
            let mut shown: String = first.chars().take(160).collect();
            if shown.len() < first.len() {
                shown.push_str(&format!(" ... {} more bytes", first.len() - shown.len()));
            }
            let more = lines.count();
            if more > 0 {
                shown.push_str(&format!(" (+{more} more line(s): `ferry audit --json` has them all)"));
            }
            out.push_str(&format!("    {}\n", ui::dim(&shown)));
        }
    }
    print_text(&out)?;
    Ok(0)
}
