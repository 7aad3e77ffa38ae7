//! `ferry log` and `ferry show`

use anyhow::Result;
use ferry_engine::views::{JournalEntryView, ShowView};
use ferry_engine::{journal, revert};

use super::{envs, print_json, print_text};
use crate::cli::Global;
use crate::output;

pub async fn run(g: &Global, env: Option<&str>, limit: usize) -> Result<u8> {
    let envs = super::envs_for(g, env.as_slice()).await?;
    let mut records = Vec::new();
    for store in super::stores(&envs, env).await? {
        records.extend(journal::newest(&*store, limit).await?);
    }
    records.sort_by(|a, b| (&b.at, &b.id).cmp(&(&a.at, &a.id)));
    records.truncate(limit);
    if g.json {
        print_json(&records.iter().map(JournalEntryView::new).collect::<Vec<_>>())?;
    } else {
        print_text(&output::log_text(&records))?;
    }
    Ok(0)
}

pub async fn show(g: &Global, id: &str) -> Result<u8> {
    let (store, record) = revert::find_with(&envs(g)?, id).await?;
    let rows = journal::journal_rows(&*store, id).await?;
    let open = store.capabilities().open_fields;
    if g.json {
        print_json(&ShowView::new(&record, &rows, open))?;
    } else {
        print_text(&output::show_text(&record, &rows, open))?;
    }
    Ok(0)
}
