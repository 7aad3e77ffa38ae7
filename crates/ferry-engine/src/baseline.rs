//! `ferry baseline`: record the rows that are equal on both sides as in
//! sync, so later plans can tell which side changed them. Rows that differ
//! are reported, not touched.

use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use ferry_core::canonical::{hex, key_text, unhex, RowHashes};
use ferry_core::plan::{Counts, Plan};
use ferry_core::rules::SyncBase;
use ferry_core::selection::Selection;
use ferry_core::Value;

use crate::error::{Error, Result};
use crate::journal::{self, PromotionRecord};
use crate::pair::Pair;
use crate::planner::Planner;
use crate::progress::Progress;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Baseline {
    /// The journal record, `None` when nothing was recorded.
    pub id: Option<String>,
    /// Rows recorded as in sync.
    pub recorded: u64,
    /// The rows that differ (a plan of them): not recorded.
    pub differing: Plan,
}

/// Compares both sides and returns the outcome without writing: the plan of
/// the rows that differ, and how many rows are equal.
pub async fn survey(pair: &Pair, selection: &Selection, progress: Progress) -> Result<(Plan, u64)> {
    Planner::new(pair, progress)
        .await?
        .on_equal(Box::new(|_, _, _, _| Ok(())))
        .run(selection)
        .await
}

fn spill_error(e: impl std::fmt::Display) -> Error {
    Error::Data(format!("cannot use a temporary file for the baseline: {e}"))
}

/// Records every equal row of the selection as in sync, in one transaction.
/// The equal rows are spilled to a temporary file while both sides stream
/// by, so memory does not grow with the table.
pub async fn baseline(pair: &Pair, selection: &Selection, user: &str, progress: Progress) -> Result<Baseline> {
    let file = tempfile::tempfile().map_err(spill_error)?;
    let mut writer = BufWriter::new(file.try_clone().map_err(spill_error)?);
    let sink = Box::new(
        move |table: &str, key: &[Value], h: &RowHashes, target_key: Option<&[Value]>| {
            let line = serde_json::json!([
                table,
                key_text(key),
                hex(&h.row),
                hex(&h.fields.concat()),
                target_key.map(key_text)
            ]);
            serde_json::to_writer(&mut writer, &line)?;
            // Flushed when the planner drops the sink; a short last line is
            // caught as damaged when read back.
            writer.write_all(b"\n")
        },
    );
    let (mut differing, equal) = Planner::new(pair, progress)
        .await?
        .on_equal(sink)
        .run(selection)
        .await?;
    differing
        .entries
        .retain(|e| e.reason != Some(ferry_core::plan::Reason::Excluded));
    if equal == 0 {
        return Ok(Baseline {
            id: None,
            recorded: 0,
            differing,
        });
    }
    let id = journal::new_id();
    let mut file = file;
    file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
    let mut txn = pair.target.begin().await?;
    let mut table = String::new();
    let mut batch: Vec<(String, Option<SyncBase>)> = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(spill_error)?;
        let (t, key, base) = parse_spilled(&line).ok_or_else(|| spill_error("a spilled row is damaged"))?;
        if (t != table && !batch.is_empty()) || batch.len() >= 1000 {
            journal::write_bases_text(txn.as_mut(), &pair.from, &table, Some(&id), &batch).await?;
            batch.clear();
        }
        table = t;
        batch.push((key, Some(base)));
    }
    if !batch.is_empty() {
        journal::write_bases_text(txn.as_mut(), &pair.from, &table, Some(&id), &batch).await?;
    }
    let counts = Counts {
        synced: equal,
        ..Counts::default()
    };
    let record = PromotionRecord {
        id: id.clone(),
        kind: "baseline".into(),
        from: Some(pair.from.clone()),
        to: pair.to.clone(),
        user: user.to_string(),
        at: journal::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        selection: differing.selection.clone(),
        counts,
        reverts: None,
        reverted_by: None,
    };
    journal::write_journal(txn.as_mut(), &record, Vec::new(), None).await?;
    if pair.target.as_sql().is_some() {
        // A table none of whose rows differ is in sync: its marks become
        // the pair's watermark (docs/config.md, `changed`).
        let synced: Vec<&str> = differing
            .marks
            .0
            .keys()
            .map(String::as_str)
            .filter(|t| !differing.entries.iter().any(|e| e.table == *t))
            .collect();
        crate::watermarks::record(txn.as_mut(), &differing, &synced, &id).await?;
    }
    txn.commit().await?;
    // The sync table grew: let the target's planner see it before the next plan.
    let _ = pair.target.refresh_statistics(ferry_db::meta::SYNC).await;
    Ok(Baseline {
        id: Some(id),
        recorded: equal,
        differing,
    })
}

/// Reads back one spilled equal row: (table, key text, base).
fn parse_spilled(line: &str) -> Option<(String, String, SyncBase)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let a = v.as_array()?;
    let text = |i: usize| a.get(i).and_then(|x| x.as_str()).map(str::to_string);
    Some((
        text(0)?,
        text(1)?,
        SyncBase {
            row: unhex(&text(2)?)?.try_into().ok()?,
            fields: SyncBase::unpack_fields(&unhex(&text(3)?)?),
            target_key: text(4),
        },
    ))
}
