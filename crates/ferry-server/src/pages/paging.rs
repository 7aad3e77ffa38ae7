//! Listings merged across environments and paged by id: ids are ULIDs,
//! which sort by time, so "older than the last id seen" pages the merged
//! listing newest first with one cursor for every environment.

/// How many records a listing page shows.
pub const PAGE_SIZE: usize = 50;

/// One environment's part of a page: its records (newest first, each older
/// than the cursor) and whether it has more after them.
pub struct Part<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// The parts merged, newest (greatest id) first, cut to `limit`, and the
/// cursor to the next page: the last id shown, when anything is left.
pub fn merge<T>(parts: Vec<Part<T>>, limit: usize, id_of: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
    let mut more = parts.iter().any(|p| p.more);
    let mut all: Vec<T> = parts.into_iter().flat_map(|p| p.items).collect();
    all.sort_by(|a, b| id_of(b).cmp(id_of(a)));
    if all.len() > limit {
        all.truncate(limit);
        more = true;
    }
    let next = if more {
        all.last().map(|t| id_of(t).to_string())
    } else {
        None
    };
    (all, next)
}

/// One environment's part from its whole listing (the stopgap until the
/// engine pages filtered listings): the records older than `cursor` that
/// `keep` keeps, at most `limit` of them.
pub fn part_of<T>(
    all: Vec<T>,
    cursor: Option<&str>,
    limit: usize,
    id_of: impl Fn(&T) -> &str,
    keep: impl Fn(&T) -> bool,
) -> Part<T> {
    let mut items: Vec<T> = all
        .into_iter()
        .filter(|t| cursor.is_none_or(|c| id_of(t) < c) && keep(t))
        .collect();
    items.sort_by(|a, b| id_of(b).cmp(id_of(a)));
    let more = items.len() > limit;
    items.truncate(limit);
    Part { items, more }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parts_merge_newest_first_and_page_on_from_the_last_id() {
        let a = part_of(ids(&["01", "03", "05", "07"]), None, 2, |s| s, |_| true);
        let b = part_of(ids(&["02", "04", "06"]), None, 2, |s| s, |_| true);
        let (page, next) = merge(vec![a, b], 2, |s| s);
        assert_eq!(page, ids(&["07", "06"]));
        assert_eq!(next.as_deref(), Some("06"));
        let a = part_of(ids(&["01", "03", "05", "07"]), Some("06"), 2, |s| s, |_| true);
        let b = part_of(ids(&["02", "04", "06"]), Some("06"), 2, |s| s, |_| true);
        let (page, next) = merge(vec![a, b], 2, |s| s);
        assert_eq!(page, ids(&["05", "04"]));
        assert_eq!(next.as_deref(), Some("04"));
        // The last page says so.
        let a = part_of(ids(&["01", "03"]), Some("02"), 2, |s| s, |s| s != "03");
        let (page, next) = merge(vec![a], 2, |s| s);
        assert_eq!(page, ids(&["01"]));
        assert_eq!(next, None);
    }
}
