//! `ferry env create|list|merged|destroy|gc`: per-branch environments.

use anyhow::Result;
use ferry_core::plan::Counts;
use ferry_engine::ops::env::{self, unpromoted, CreateRequest, PreparedDestroy};
use ferry_engine::ops::Quiet;
use ferry_engine::views::BranchEnvView;
use ferry_engine::Error;

use super::{envs, print_json, print_text};
use crate::cli::{EnvAction, Global};
use crate::ui;

pub async fn run(g: &Global, action: EnvAction) -> Result<u8> {
    match action {
        EnvAction::Create {
            branch,
            from,
            promotes_to,
        } => create(g, branch, from, promotes_to).await,
        EnvAction::List => list(g).await,
        EnvAction::Merged { name, ttl } => merged(g, &name, &ttl).await,
        EnvAction::Destroy { name } => destroy(g, &name).await,
        EnvAction::Gc => gc(g).await,
    }
}

async fn create(g: &Global, branch: String, from: String, promotes_to: Option<String>) -> Result<u8> {
    let envs = envs(g)?;
    let req = CreateRequest {
        branch,
        from,
        promotes_to,
        user: ui::user(g),
    };
    let made = env::create(&envs, req, &Quiet).await?;
    if g.json {
        print_json(&BranchEnvView::new(&made.record))?;
        return Ok(0);
    }
    let b = &made.record;
    let in_sync: Vec<String> = made
        .in_sync
        .iter()
        .map(|(e, n)| format!("{n} row(s) in sync with {e}"))
        .collect();
    print_text(&format!(
        "{} environment {} cloned from {} for branch {} ({} table(s); {}); it promotes into {}.\n",
        ui::green("Created:"),
        ui::bold(&b.name),
        b.from,
        b.branch,
        made.tables.len(),
        in_sync.join(", "),
        b.promotes_to
    ))?;
    Ok(0)
}

/// `3 insert, 1 update, 0 delete, 0 conflict`.
fn changes(c: &Counts) -> String {
    format!(
        "{} insert, {} update, {} delete, {} conflict",
        c.insert, c.update, c.delete, c.conflict
    )
}

/// Names each registry that could not be read on stderr, so a listing
/// never looks complete when it is not.
fn warn_unreachable(unreachable: &[(String, Error)]) {
    if !unreachable.is_empty() {
        let lines: Vec<String> = unreachable.iter().map(|(n, e)| format!("  {n}: {e}")).collect();
        eprintln!(
            "{} {} environment(s) could not be read and their per-branch environments are left out:\n{}",
            ui::warning_label(),
            lines.len(),
            lines.join("\n")
        );
    }
}

async fn list(g: &Global) -> Result<u8> {
    let envs = envs(g)?;
    let (listed, unreachable) = env::list(&envs).await?;
    warn_unreachable(&unreachable);
    let views: Vec<BranchEnvView> = listed
        .iter()
        .map(|l| BranchEnvView::with_pending(&l.record, &l.pending))
        .collect();
    if g.json {
        print_json(&views)?;
        return Ok(0);
    }
    if listed.is_empty() {
        print_text("No per-branch environments.\n")?;
        return Ok(0);
    }
    let mut out = String::new();
    for l in &listed {
        let b = &l.record;
        let pending = match &l.pending {
            Ok(c) => format!("pending into {}: {}", b.promotes_to, changes(c)),
            Err(e) => format!("pending into {}: cannot be read ({e})", b.promotes_to),
        };
        let expiry = match (&b.merged_at, &b.expires_at) {
            (Some(m), Some(e)) => format!("merged {m}, expires {e}"),
            _ => "not merged".to_string(),
        };
        out.push_str(&format!(
            "{}  branch {}  from {}  by {} at {}\n    {pending}\n    {expiry}\n",
            ui::bold(&b.name),
            b.branch,
            b.from,
            b.created_by,
            b.created_at
        ));
    }
    print_text(&out)?;
    Ok(0)
}

async fn merged(g: &Global, name: &str, ttl: &str) -> Result<u8> {
    let secs = ferry_core::branch::parse_ttl(ttl).map_err(|e| Error::Usage(format!("--ttl: {e}")))?;
    let envs = envs(g)?;
    let b = env::merged(&envs, name, secs, &ui::user(g)).await?;
    if g.json {
        print_json(&BranchEnvView::new(&b))?;
    } else {
        print_text(&format!(
            "{} {} marked merged; it expires at {} (UTC).\n",
            ui::green("Done:"),
            ui::bold(&b.name),
            b.expires_at.as_deref().unwrap_or("?")
        ))?;
    }
    Ok(0)
}

/// The line that says what destroying `p` loses.
fn loses(p: &PreparedDestroy<'_>) -> String {
    let b = &p.record;
    match &p.pending {
        Ok(c) if unpromoted(c) == 0 => format!(
            "{} (branch {}): every change is promoted into {}",
            b.name, b.branch, b.promotes_to
        ),
        Ok(c) => format!(
            "{} (branch {}): {} not promoted into {} would be lost ({})",
            b.name,
            b.branch,
            ui::yellow(&format!("{} change(s)", unpromoted(c))),
            b.promotes_to,
            changes(c)
        ),
        Err(e) => format!(
            "{} (branch {}): its unpromoted changes cannot be read ({e})",
            b.name, b.branch
        ),
    }
}

async fn destroy(g: &Global, name: &str) -> Result<u8> {
    let envs = envs(g)?;
    let user = ui::user(g);
    let prepared = env::prepare_destroy(&envs, name, &user).await?;
    if !g.json {
        eprintln!("{}", loses(&prepared));
    }
    if !ui::confirm(
        g,
        &format!("Destroy {name} (its database and its record)?"),
        "env destroy",
    )? {
        print_text("Nothing was destroyed.\n")?;
        return Ok(1);
    }
    let b = prepared.commit(&user).await?;
    if g.json {
        print_json(&BranchEnvView::new(&b))?;
    } else {
        print_text(&format!("{} {} destroyed.\n", ui::green("Done:"), ui::bold(&b.name)))?;
    }
    Ok(0)
}

async fn gc(g: &Global) -> Result<u8> {
    let envs = envs(g)?;
    let (expired, unreachable) = env::expired(&envs).await?;
    warn_unreachable(&unreachable);
    if expired.is_empty() {
        if g.json {
            print_json(&Vec::<BranchEnvView>::new())?;
        } else {
            print_text("No per-branch environment has expired.\n")?;
        }
        return Ok(0);
    }
    if !g.json {
        for p in &expired {
            eprintln!("{}", loses(p));
        }
    }
    if !ui::confirm(
        g,
        &format!("Destroy these {} expired environment(s)?", expired.len()),
        "env gc",
    )? {
        print_text("Nothing was destroyed.\n")?;
        return Ok(1);
    }
    let user = ui::user(g);
    let mut done = Vec::new();
    for p in expired {
        let b = p.commit(&user).await?;
        if !g.json {
            print_text(&format!("{} {} destroyed.\n", ui::green("Done:"), ui::bold(&b.name)))?;
        }
        done.push(BranchEnvView::new(&b));
    }
    if g.json {
        print_json(&done)?;
    }
    Ok(0)
}
