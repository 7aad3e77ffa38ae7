//! `ferry revert`

use anyhow::Result;
use ferry_engine::views::RevertView;
use ferry_engine::{audit, journal, revert};

use super::{load, print_json, print_text};
use crate::cli::Global;
use crate::output;
use crate::ui;

pub async fn run(g: &Global, id: &str, force: bool) -> Result<u8> {
    let project = load(g)?;
    let (store, record) = revert::find(&project, id).await?;
    if !g.json {
        let rows = journal::journal_rows(&*store, id).await?;
        print_text(&output::revert_preview_text(&record, &rows))?;
    }
    let _lock = ui::writer_lock(g, &*store).await?;
    if !ui::confirm(g, &format!("Revert {id} in {}?", record.to), &format!("reverting {id}"))? {
        print_text("Nothing was written.\n")?;
        return Ok(1);
    }
    let user = ui::user(g);
    let done = revert::revert(&project, id, &user, force).await;
    if !matches!(done, Err(ferry_engine::Error::Denied(_))) {
        let entry = audit::AuditEntry::new(&user, "revert", record.from.as_deref(), &record.to)
            .outcome(&done, |p| Some(p.id.clone()));
        let _ = audit::record(&*store, &entry).await;
    }
    let done = done?;
    if g.json {
        print_json(&RevertView::new(id, &done))?;
    } else {
        print_text(&output::reverted_text(id, &record.to, &done))?;
    }
    Ok(0)
}
