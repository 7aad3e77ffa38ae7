//! Pages of Ferry's records as a front end pages through them (the server's
//! `?cursor=`): a listing of one environment, filtered in the engine and
//! still full and correctly continued when the filter drops records, and
//! a listing of several environments merged newest first under one cursor.
//!
//! Records are ordered by id: ids are ULIDs, which sort by the time they
//! were made (to the millisecond, across environments too), so newest
//! first is id descending. A cursor is opaque to the front end; one that
//! no page gave (not a ULID, or a merged cursor that does not decode) is
//! refused as a usage error rather than read as "from the start".

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use ferry_core::canonical::{hex, unhex};
use ferry_db::Store;

pub use ferry_db::records::{Cursor, Page, PageRequest};

use crate::error::{Error, Result};

/// How many records a filtered page reads at a time at most: it reads
/// `limit` records first (all a page needs when the filter keeps them),
/// then twice as many each time up to this, so that a filter that keeps
/// few records reads the table in few round trips.
const READ_AT_MOST: usize = 1000;

/// The cursor of a page of one environment, checked: the id of a record,
/// in the form Ferry writes ids (so that it orders as they do).
pub(crate) fn checked(after: Option<&Cursor>) -> Result<Option<Cursor>> {
    after
        .map(|c| checked_id(c.as_text()).map(Cursor::from_text))
        .transpose()
}

/// `text` as a record id in Ferry's form (a ULID, upper case).
fn checked_id(text: &str) -> Result<String> {
    ulid::Ulid::from_string(text)
        .map(|id| id.to_string())
        .map_err(|_| not_a_cursor(text))
}

fn not_a_cursor(text: &str) -> Error {
    let shown: String = text.chars().take(60).collect();
    Error::Usage(format!(
        "`{shown}` is not a cursor of this listing (cursors come from the page before); start again from the first page"
    ))
}

/// One page of a listing, keeping only the records `keep` keeps: reads
/// page after page of `read` until `req.limit` records are kept or the
/// listing ends. The cursor to the next page is the id of the last record
/// kept, so the records read after it and not shown are read again next
/// time; it is `None` only when the listing is known to have ended.
pub(crate) async fn filtered<T, F, Fut>(
    req: &PageRequest,
    keep: impl Fn(&T) -> bool,
    id_of: impl Fn(&T) -> &str,
    read: F,
) -> Result<Page<T>>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut after = checked(req.after.as_ref())?;
    let mut items = Vec::new();
    if req.limit == 0 {
        return Ok(Page { items, next: None });
    }
    let mut size = req.limit;
    loop {
        let page = read(PageRequest { limit: size, after }).await?;
        size = size.saturating_mul(2).min(READ_AT_MOST.max(req.limit));
        let mut rest = page.items.into_iter();
        for item in rest.by_ref() {
            if keep(&item) {
                items.push(item);
                if items.len() == req.limit {
                    break;
                }
            }
        }
        if items.len() == req.limit {
            // Full: more may follow, unless nothing after the last record
            // kept is left to read or would be kept.
            let more = rest.any(|t| keep(&t)) || page.next.is_some();
            let next = match (more, items.last()) {
                (true, Some(last)) => Some(Cursor::from_text(id_of(last))),
                _ => None,
            };
            return Ok(Page { items, next });
        }
        match page.next {
            Some(c) => after = Some(c),
            None => return Ok(Page { items, next: None }),
        }
    }
}

/// Where a merged listing is in each environment: absent, from its newest
/// record; `Some(id)`, after that record; `None`, done.
type Positions = BTreeMap<String, Option<String>>;

/// The text of a merged cursor: `m`, then per environment the hex of its
/// name, `-` and the id it is after (nothing when it is done), joined by
/// `.` (hex, ULIDs and the separators cannot be confused).
fn encode(positions: &Positions) -> Cursor {
    let parts: Vec<String> = positions
        .iter()
        .map(|(env, at)| format!("{}-{}", hex(env.as_bytes()), at.as_deref().unwrap_or("")))
        .collect();
    Cursor::from_text(format!("m{}", parts.join(".")))
}

fn decode(cursor: &Cursor) -> Result<Positions> {
    let text = cursor.as_text();
    let body = text.strip_prefix('m').ok_or_else(|| not_a_cursor(text))?;
    let mut positions = Positions::new();
    for part in body.split('.').filter(|p| !p.is_empty()) {
        let (env, at) = part.split_once('-').ok_or_else(|| not_a_cursor(text))?;
        let env = unhex(env)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| not_a_cursor(text))?;
        let at = match at {
            "" => None,
            id => Some(checked_id(id).map_err(|_| not_a_cursor(text))?),
        };
        positions.insert(env, at);
    }
    Ok(positions)
}

/// One page of a listing across `stores`, newest first (by id, which is
/// by time): `page_of` gives one page of one store. The cursor holds where
/// the listing is in each environment; an environment missing from
/// `stores` this time (unreachable) keeps its place for the next page.
pub(crate) async fn merged<T, F, Fut>(
    stores: &[Arc<dyn Store>],
    req: &PageRequest,
    id_of: impl Fn(&T) -> &str,
    page_of: F,
) -> Result<Page<T>>
where
    F: Fn(Arc<dyn Store>, PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut positions = match &req.after {
        Some(c) => decode(c)?,
        None => Positions::new(),
    };
    if req.limit == 0 {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    // Each environment's next page, its records tagged with where they came from.
    let mut candidates: Vec<(usize, T)> = Vec::new();
    let mut ended = Vec::with_capacity(stores.len());
    for (i, store) in stores.iter().enumerate() {
        let after = match positions.get(store.env()) {
            Some(None) => {
                ended.push(true);
                continue;
            }
            Some(Some(id)) => Some(Cursor::from_text(id.clone())),
            None => None,
        };
        let page = page_of(
            store.clone(),
            PageRequest {
                limit: req.limit,
                after,
            },
        )
        .await?;
        ended.push(page.next.is_none());
        candidates.extend(page.items.into_iter().map(|t| (i, t)));
    }
    candidates.sort_by(|a, b| id_of(&b.1).cmp(id_of(&a.1)));
    // What each environment gave, and how much of it the page shows.
    let mut given = vec![0usize; stores.len()];
    for (i, _) in &candidates {
        given[*i] += 1;
    }
    candidates.truncate(req.limit);
    let mut shown = vec![0usize; stores.len()];
    for (i, t) in &candidates {
        shown[*i] += 1;
        positions.insert(stores[*i].env().to_string(), Some(id_of(t).to_string()));
    }
    for (i, store) in stores.iter().enumerate() {
        if ended[i] && shown[i] == given[i] {
            positions.insert(store.env().to_string(), None);
        }
    }
    let done = stores.iter().all(|s| positions.get(s.env()) == Some(&None));
    Ok(Page {
        items: candidates.into_iter().map(|(_, t)| t).collect(),
        next: (!done).then(|| encode(&positions)),
    })
}
