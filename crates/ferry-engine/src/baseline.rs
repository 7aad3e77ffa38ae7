//! `ferry baseline`: record the rows that are equal on both sides as in
//! sync, so later plans can tell which side changed them. Rows that differ
//! are reported, not touched.

use ferry_core::plan::{Counts, Plan};
use ferry_core::selection::Selection;

use crate::error::Result;
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

/// Compares both sides and returns the outcome without writing.
pub async fn survey(
    pair: &Pair,
    selection: &Selection,
    progress: Progress,
) -> Result<(Plan, crate::planner::EqualRows)> {
    Planner::new(pair, progress).await?.collect_equal().run(selection).await
}

/// Records every equal row of the selection as in sync, in one transaction.
pub async fn baseline(pair: &Pair, selection: &Selection, user: &str, progress: Progress) -> Result<Baseline> {
    let (mut differing, equal) = survey(pair, selection, progress).await?;
    differing
        .entries
        .retain(|e| e.reason != Some(ferry_core::plan::Reason::Excluded));
    if equal.is_empty() {
        return Ok(Baseline {
            id: None,
            recorded: 0,
            differing,
        });
    }
    let id = journal::new_id();
    let mut txn = pair.target.begin().await?;
    let mut start = 0;
    while start < equal.len() {
        let table = &equal[start].0;
        let end = equal[start..]
            .iter()
            .position(|(t, _, _, _)| t != table)
            .map_or(equal.len(), |n| start + n);
        let bases: Vec<_> = equal[start..end]
            .iter()
            .map(|(_, k, h, target_key)| {
                let mut base = ferry_core::rules::SyncBase::of(h);
                base.target_key = target_key.as_deref().map(ferry_core::canonical::key_text);
                (k.clone(), Some(base))
            })
            .collect();
        journal::write_bases(txn.as_mut(), &pair.from, table, Some(&id), &bases).await?;
        start = end;
    }
    let counts = Counts {
        synced: equal.len() as u64,
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
    journal::write_journal(txn.as_mut(), &record, &[], None).await?;
    txn.commit().await?;
    // The sync table grew: let the target's planner see it before the next plan.
    let _ = pair.target.refresh_statistics(ferry_db::meta::SYNC).await;
    Ok(Baseline {
        id: Some(id),
        recorded: equal.len() as u64,
        differing,
    })
}
