//! `ferry reviews`, `ferry review show|approve|reject` and `ferry audit`

use std::collections::BTreeMap;

use anyhow::Result;
use ferry_core::access::Right;
use ferry_core::plan::{Action, Reason};
use ferry_core::selection::parse_id;
use ferry_core::Value;
use ferry_engine::audit::{self, AuditEntry};
use ferry_engine::ops::review::{self, Decision, DecisionOutcome, DecisionRequest};
use ferry_engine::registry::Envs;
use ferry_engine::reviews::{self, Review};
use ferry_engine::views::{ApproveView, RejectView, ReviewView};
use ferry_engine::Error;

use super::gates::Shown;
use super::{envs, print_json, print_text};
use crate::cli::{Global, ReviewAction};
use crate::output;
use crate::ui;

pub async fn list(g: &Global, env: Option<&str>, all: bool) -> Result<u8> {
    let envs = envs(g)?;
    let mut found = Vec::new();
    for store in super::stores(&envs, env).await? {
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
        for (c, column) in spec.shown_columns().iter().enumerate().skip(spec.key.len()) {
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
        .map(|s| parse_id(s).map_err(|e| Error::Usage(format!("--only {}", e.0))))
        .collect::<Result<_, _>>()?)
}

pub async fn act(g: &Global, action: ReviewAction) -> Result<u8> {
    let envs = envs(g)?;
    match action {
        ReviewAction::Show { id } => {
            let (store, r) = reviews::find_with(&envs, &id).await?;
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
        ReviewAction::Approve { id, only: rows } => decide(g, &envs, id, only(&rows)?, Decision::Approve).await,
        ReviewAction::Reject { id, only: rows } => decide(g, &envs, id, only(&rows)?, Decision::Reject).await,
    }
}

/// `review approve|reject`: the decision prepared (the review found, its
/// target locked), confirmed, committed and rendered.
async fn decide(
    g: &Global,
    envs: &Envs,
    id: String,
    rows: Vec<(String, Vec<String>)>,
    decision: Decision,
) -> Result<u8> {
    let user = ui::user(g);
    let shown = Shown::new(g);
    let partly = !rows.is_empty();
    let req = DecisionRequest {
        review: id.clone(),
        user: user.clone(),
        only: rows,
        wait: !g.no_wait,
    };
    let prepared = review::prepare(envs, req, decision, &shown).await?;
    let to = prepared.review.to.clone();
    // What the decision covers, shown before the question (as promote shows its plan).
    let deciding = prepared.deciding()?;
    if !g.json {
        let r = &prepared.review;
        let verb = match decision {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        };
        print_text(&format!(
            "review {} {} -> {}, submitted by {} at {}; to {verb}:\n{}",
            ui::bold(&r.id),
            r.from,
            r.to,
            r.user,
            r.at,
            output::plan_text(&deciding)
        ))?;
    }
    let (question, what) = match decision {
        Decision::Approve => (format!("Approve review {id} in {to}?"), format!("approving {id}")),
        Decision::Reject => (format!("Reject review {id} in {to}?"), format!("rejecting {id}")),
    };
    if !ui::confirm(g, &question, &what)? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let r = prepared.review.clone();
    match prepared.commit().await? {
        DecisionOutcome::Approved(done, hooks) => {
            if g.json {
                return print_json(&ApproveView::new(&id, done.as_ref(), hooks)).map(|()| 0);
            }
            let denied =
                ferry_core::access::check(envs.project().config.access.as_ref(), &user, Right::Revert, &to).err();
            match &done {
                Some(p) => print_text(&format!(
                    "{} review {id} approved{}: promotion {} ({} inserted, {} updated, {} deleted). {}",
                    ui::green("Done:"),
                    if partly { " in part" } else { "" },
                    ui::bold(&p.id),
                    p.counts.insert,
                    p.counts.update,
                    p.counts.delete,
                    output::undo_line(&p.id, &to, denied.as_deref())
                ))?,
                None => print_text(&format!(
                    "{} review {id} approved; nothing needed writing.\n",
                    ui::green("Done:")
                ))?,
            }
        }
        DecisionOutcome::Rejected(done) => {
            if g.json {
                print_json(&RejectView::new(&id, &done))?;
            } else {
                print_text(&rejected_text(&id, &r, &done))?;
            }
        }
    }
    Ok(0)
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
    let envs = envs(g)?;
    let mut entries: Vec<AuditEntry> = Vec::new();
    for store in super::stores(&envs, env).await? {
        entries.extend(audit::newest(&*store, limit).await?);
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
