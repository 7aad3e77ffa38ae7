//! `ferry refresh ENV --from ENV2`: parse, prepare the engine's operation,
//! show what it discards and what comes down, confirm, commit, render.

use anyhow::Result;
use ferry_engine::ops::refresh::{self, RefreshRequest};

use super::gates::Shown;
use super::{envs, print_json, print_text};
use crate::cli::Global;
use crate::output;
use crate::ui;

/// The flags of `ferry refresh`.
pub struct Options {
    pub drop_excluded: bool,
    pub dry_run: bool,
}

pub async fn run(g: &Global, env: &str, from: &str, opts: Options) -> Result<u8> {
    let envs = envs(g)?;
    let shown = Shown::new(g);
    let req = RefreshRequest {
        env: env.to_string(),
        from: from.to_string(),
        user: ui::user(g),
        drop_excluded: opts.drop_excluded,
        dry_run: opts.dry_run,
        wait: !g.no_wait,
    };
    let prepared = refresh::prepare(&envs, req, &shown).await;
    shown.result()?;
    let prepared = prepared?;
    let view = prepared.view();
    if !g.json {
        print_text(&preview(&prepared))?;
    }
    if prepared.writes_nothing() {
        if g.json {
            print_json(&view)?;
        } else if opts.dry_run {
            print_text("\nDry run: nothing was written.\n")?;
        } else {
            print_text(&format!("\n`{env}` already matches `{from}`: nothing to write.\n"))?;
        }
        return Ok(0);
    }
    let question = format!(
        "Refresh {env} from {from} ({} change(s); {} unpromoted change(s) of {env} are discarded)?",
        view.counts.insert + view.counts.update + view.counts.delete,
        prepared.unpromoted.entries.len()
    );
    if !ui::confirm(g, &question, &format!("refreshing `{env}`"))? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let done = prepared.commit().await?;
    let view = view.done(&done);
    if g.json {
        return print_json(&view).map(|()| 0);
    }
    let c = view.counts;
    let mut text = format!(
        "\n{} refresh {} of {env} from {from}: {} inserted, {} updated, {} deleted.\n",
        ui::green("Done:"),
        ui::bold(view.refresh.as_deref().unwrap_or("(none)")),
        c.insert,
        c.update,
        c.delete
    );
    if let Some(b) = &view.next_baseline {
        text.push_str(&format!(
            "{} row(s) equal in {env} and {} recorded as in sync there.\n",
            b.recorded, view.next
        ));
    }
    if let Some(id) = &view.refresh {
        text.push_str(&format!("Undo it with `ferry revert {id}`.\n"));
    }
    print_text(&text).map(|()| 0)
}

/// What the refresh discards, what comes down and which excluded rows stay.
fn preview(p: &refresh::PreparedRefresh<'_>) -> String {
    let req = p.request();
    let (env, from) = (&req.env, &req.from);
    let mut out = String::new();
    if p.unpromoted.entries.is_empty() {
        out.push_str(&format!("{env} has no unpromoted changes towards {}.\n", p.next));
    } else {
        out.push_str(&format!(
            "Unpromoted changes of {env} (towards {}) that the refresh discards:\n",
            p.next
        ));
        out.push_str(&output::plan_text(&p.unpromoted));
    }
    out.push_str(&format!("\nWhat comes down from {from} into {env}:\n"));
    out.push_str(&output::plan_text(&p.incoming));
    for (table, n) in &p.kept_excluded {
        out.push_str(&format!("{n} excluded row(s) of {table} stay as {env} has them.\n"));
    }
    if !p.dropped_excluded.is_empty() {
        out.push_str(&format!(
            "Excluded rows deleted because they reference rows the refresh deletes: {}\n",
            p.dropped_excluded.join(", ")
        ));
    }
    out
}
